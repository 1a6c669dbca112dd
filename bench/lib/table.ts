/** Plain-text tables and number formatting for the benchmark reports. */

export interface Column {
  readonly title: string;
  /** 'left' for text, 'right' (default) for numbers. */
  readonly align?: 'left' | 'right';
}

/** Render rows as an aligned table with a title row and a dashed rule, each line indented. */
export function renderTable(columns: readonly Column[], rows: readonly (readonly string[])[], indent = '  '): string {
  const widths = columns.map((c, i) => Math.max(c.title.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    indent +
    columns
      .map((c, i) => {
        const cell = cells[i] ?? '';
        const w = widths[i] ?? 0;
        return c.align === 'left' ? cell.padEnd(w) : cell.padStart(w);
      })
      .join('  ')
      .trimEnd();
  const rule = indent + widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(columns.map((c) => c.title)), rule, ...rows.map(line)].join('\n');
}

/** 1234567.8 -> "1,234,568". */
export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Fixed decimals with thousands separators. */
export function fmtNum(n: number, decimals: number): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

/** 0.91234 -> "91.2%"; undefined -> "-". */
export function fmtPct(ratio: number | undefined, decimals = 1): string {
  return ratio === undefined || Number.isNaN(ratio) ? '-' : `${(ratio * 100).toFixed(decimals)}%`;
}

/** A ratio as "1.23x". */
export function fmtRatio(r: number | undefined): string {
  if (r === undefined || !Number.isFinite(r)) return '-';
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}x`;
}

/** A difference of ratios in percentage points, signed: "+12.3 pp". */
export function fmtPp(diff: number | undefined): string {
  if (diff === undefined || Number.isNaN(diff)) return '-';
  const pp = diff * 100;
  return `${pp >= 0 ? '+' : ''}${pp.toFixed(1)} pp`;
}

/** Parse "256M", "32MiB", "4k", "1G", "65536" (binary multiples) into bytes; undefined if malformed. */
export function parseBytes(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (m === null) return undefined;
  const unit = (m[2] ?? '').toLowerCase();
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : unit === 't' ? 1024 ** 4 : 1;
  const bytes = Number(m[1]) * mult;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** Bytes as "256 MiB" / "4 KiB" / "1.5 GiB". */
export function fmtBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u] ?? 'B'}`;
}
