/**
 * The mount benchmark's chart (bench/mount.ts): a hand-written SVG, no dependency.
 * Grouped bars, one group per workload and cache state, one bar per tool, showing
 * each tool's median time divided by the kernel's on a log scale (the kernel is 1x;
 * lower is better). A dashed line over each group marks the goal for ext4ts; the
 * kernel's seconds are printed under each group.
 */

export interface ChartBar {
  readonly label: string;
  /** Median seconds; undefined when the cell failed. */
  readonly seconds: number | undefined;
}

export interface ChartGroup {
  /** Two lines under the group, e.g. "find+lstat" and "cold". */
  readonly title: readonly [string, string];
  /** The reference time (the kernel's), seconds. */
  readonly reference: number | undefined;
  /** Goal for ext4ts as a ratio to the reference, if any. */
  readonly goal: number | undefined;
  readonly bars: readonly ChartBar[];
}

export interface ChartSpec {
  readonly title: string;
  readonly subtitle: readonly string[];
  /** Bar colours in the order of ChartGroup.bars. */
  readonly colors: readonly string[];
  readonly groups: readonly ChartGroup[];
}

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmtRatio(r: number): string {
  if (r >= 10) return `${r.toFixed(0)}x`;
  if (r >= 1) return `${r.toFixed(1)}x`;
  return `${r.toFixed(2)}x`;
}

function fmtSeconds(s: number): string {
  return s >= 10 ? `${s.toFixed(1)} s` : s >= 0.1 ? `${s.toFixed(2)} s` : `${(s * 1000).toFixed(0)} ms`;
}

/** 1-2-5 ticks covering [lo, hi]. */
function ticks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)) - 1; e <= Math.ceil(Math.log10(hi)) + 1; e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(Number(v.toPrecision(3)));
    }
  }
  return out;
}

function niceDown(v: number): number {
  const e = Math.floor(Math.log10(v));
  for (const m of [5, 2, 1]) if (m * 10 ** e <= v) return m * 10 ** e;
  return 10 ** e;
}

function niceUp(v: number): number {
  const e = Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * 10 ** e >= v) return m * 10 ** e;
  return 10 ** (e + 1);
}

/** Render the chart as a standalone SVG document. */
export function renderChart(spec: ChartSpec): string {
  const nBars = Math.max(1, ...spec.groups.map((g) => g.bars.length));
  const barW = 30;
  const gap = 4;
  const groupW = nBars * barW + (nBars - 1) * gap + 34;
  const left = 64;
  const right = 24;
  const top = 58 + 16 * spec.subtitle.length + 26;
  const plotH = 300;
  const bottom = 78;
  const width = Math.max(720, left + right + groupW * spec.groups.length);
  const height = top + plotH + bottom;

  const ratios: number[] = [1];
  for (const g of spec.groups) {
    if (g.goal !== undefined) ratios.push(g.goal);
    for (const b of g.bars) if (b.seconds !== undefined && g.reference !== undefined && g.reference > 0) ratios.push(b.seconds / g.reference);
  }
  const lo = niceDown(Math.min(0.5, ...ratios.filter((r) => r > 0)) / 1.05);
  const hi = niceUp(Math.max(2, ...ratios) * 1.25);
  const y = (r: number): number => top + plotH - ((Math.log10(r) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${left}" y="26" font-size="16" font-weight="bold">${esc(spec.title)}</text>`);
  spec.subtitle.forEach((line, i) => out.push(`<text x="${left}" y="${46 + 16 * i}" fill="#444">${esc(line)}</text>`));

  // Legend.
  let lx = left;
  const ly = 58 + 16 * spec.subtitle.length;
  const legend = spec.groups[0]?.bars.map((b) => b.label) ?? [];
  legend.forEach((label, i) => {
    out.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${spec.colors[i] ?? '#888'}"/>`);
    out.push(`<text x="${lx + 17}" y="${ly}">${esc(label)}</text>`);
    lx += 30 + label.length * 7;
  });
  out.push(`<line x1="${lx}" y1="${ly - 4}" x2="${lx + 22}" y2="${ly - 4}" stroke="#d62728" stroke-width="2" stroke-dasharray="5,3"/>`);
  out.push(`<text x="${lx + 27}" y="${ly}">goal for ext4ts</text>`);

  // Axis and grid.
  for (const t of ticks(lo, hi)) {
    const ty = y(t).toFixed(1);
    const strong = t === 1;
    out.push(`<line x1="${left}" y1="${ty}" x2="${width - right}" y2="${ty}" stroke="${strong ? '#555' : '#e3e3e3'}" stroke-width="${strong ? 1.2 : 1}"/>`);
    out.push(`<text x="${left - 6}" y="${(Number(ty) + 4).toFixed(1)}" text-anchor="end" fill="#333">${esc(`${t}x`)}</text>`);
  }
  out.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#555"/>`);
  out.push(
    `<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#333">time / kernel's time (log scale, lower is better)</text>`,
  );

  spec.groups.forEach((g, gi) => {
    const gx = left + gi * groupW + 17;
    if (gi > 0) out.push(`<line x1="${gx - 17}" y1="${top}" x2="${gx - 17}" y2="${top + plotH + 44}" stroke="#eee"/>`);
    g.bars.forEach((b, bi) => {
      const x = gx + bi * (barW + gap);
      if (b.seconds === undefined || g.reference === undefined || g.reference <= 0) {
        out.push(`<text x="${x + barW / 2}" y="${top + plotH - 4}" text-anchor="middle" font-size="10" fill="#999">n/a</text>`);
        return;
      }
      const r = b.seconds / g.reference;
      const by = y(Math.max(r, lo));
      out.push(
        `<rect x="${x}" y="${by.toFixed(1)}" width="${barW}" height="${(top + plotH - by).toFixed(1)}" fill="${spec.colors[bi] ?? '#888'}"><title>${esc(`${b.label}: ${fmtSeconds(b.seconds)} (${fmtRatio(r)} the kernel)`)}</title></rect>`,
      );
      out.push(`<text x="${x + barW / 2}" y="${(by - 4).toFixed(1)}" text-anchor="middle" font-size="10" stroke="#fff" stroke-width="3" paint-order="stroke">${esc(fmtRatio(r))}</text>`);
    });
    if (g.goal !== undefined) {
      const gy = y(g.goal).toFixed(1);
      out.push(`<line x1="${gx - 6}" y1="${gy}" x2="${gx + nBars * (barW + gap) + 2}" y2="${gy}" stroke="#d62728" stroke-width="2" stroke-dasharray="5,3"/>`);
    }
    const cx = gx + (nBars * (barW + gap) - gap) / 2;
    out.push(`<text x="${cx}" y="${top + plotH + 16}" text-anchor="middle" font-weight="bold">${esc(g.title[0])}</text>`);
    out.push(`<text x="${cx}" y="${top + plotH + 31}" text-anchor="middle">${esc(g.title[1])}</text>`);
    out.push(`<text x="${cx}" y="${top + plotH + 46}" text-anchor="middle" font-size="10" fill="#555">${esc(g.reference === undefined ? 'kernel n/a' : `kernel ${fmtSeconds(g.reference)}`)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
