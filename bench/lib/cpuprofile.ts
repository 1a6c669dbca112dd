/**
 * Summaries of V8 CPU profiles (`node --cpu-prof`): self and inclusive time per
 * function, with positions mapped back to the TypeScript sources through the `.js.map`
 * files tsc writes next to the compiled code.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  /** 0-based. */
  readonly lineNumber: number;
  /** 0-based. */
  readonly columnNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

export interface FunctionTime {
  /** "name (file:line)" with the file relative to the project. */
  readonly where: string;
  readonly selfMs: number;
  readonly totalMs: number;
  readonly selfShare: number;
  readonly totalShare: number;
}

export interface FileTime {
  readonly file: string;
  readonly selfMs: number;
  readonly selfShare: number;
}

export interface ProfileSummary {
  readonly file: string;
  readonly totalMs: number;
  readonly functions: readonly FunctionTime[];
  readonly byFile: readonly FileTime[];
}

// ------------------------------------------------------------------ source maps

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Segments of one generated line: [generated column, source index, source line, source column]. */
type Segment = readonly [number, number, number, number];

interface SourceMap {
  readonly sources: readonly string[];
  readonly lines: readonly (readonly Segment[])[];
  readonly dir: string;
}

function decodeVlq(text: string, at: { i: number }): number {
  let result = 0;
  let shift = 0;
  for (;;) {
    const digit = B64.indexOf(text[at.i++] ?? '');
    if (digit < 0) throw new Error('bad VLQ digit');
    result += (digit & 31) * 2 ** shift;
    shift += 5;
    if ((digit & 32) === 0) break;
  }
  return result % 2 === 1 ? -Math.floor(result / 2) : result / 2;
}

function parseSourceMap(file: string): SourceMap | undefined {
  let raw: { sources?: string[]; mappings?: string; sourceRoot?: string };
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof raw;
  } catch {
    return undefined;
  }
  const mappings = raw.mappings ?? '';
  const lines: Segment[][] = [];
  let srcIdx = 0;
  let srcLine = 0;
  let srcCol = 0;
  for (const lineText of mappings.split(';')) {
    const segs: Segment[] = [];
    let genCol = 0;
    for (const segText of lineText.split(',')) {
      if (segText === '') continue;
      const at = { i: 0 };
      genCol += decodeVlq(segText, at);
      if (at.i >= segText.length) continue;
      srcIdx += decodeVlq(segText, at);
      srcLine += decodeVlq(segText, at);
      srcCol += decodeVlq(segText, at);
      segs.push([genCol, srcIdx, srcLine, srcCol]);
    }
    lines.push(segs);
  }
  return { sources: raw.sources ?? [], lines, dir: path.join(path.dirname(file), raw.sourceRoot ?? '') };
}

/** Maps positions in compiled files to their sources; caches the parsed maps. */
class SourceMapper {
  private readonly maps = new Map<string, SourceMap | undefined>();

  /** The original file and 1-based line of a 0-based position, or undefined. */
  map(jsFile: string, line: number, column: number): { file: string; line: number } | undefined {
    if (!this.maps.has(jsFile)) this.maps.set(jsFile, parseSourceMap(`${jsFile}.map`));
    const sm = this.maps.get(jsFile);
    const segs = sm?.lines[line];
    if (sm === undefined || segs === undefined || segs.length === 0) return undefined;
    let best: Segment | undefined;
    for (const s of segs) {
      if (s[0] <= column) best = s;
      else break;
    }
    best ??= segs[0];
    if (best === undefined) return undefined;
    const source = sm.sources[best[1]];
    if (source === undefined) return undefined;
    return { file: path.resolve(sm.dir, source), line: best[2] + 1 };
  }
}

// ------------------------------------------------------------------ summary

function describe(frame: CallFrame, root: string, mapper: SourceMapper): string {
  const name = frame.functionName === '' ? '(anonymous)' : frame.functionName;
  if (frame.url === '') return name; // (garbage collector), (program), (idle), natives
  let file = frame.url;
  let line = frame.lineNumber + 1;
  if (file.startsWith('file://')) {
    file = fileURLToPath(file);
    const mapped = mapper.map(file, frame.lineNumber, frame.columnNumber);
    if (mapped !== undefined) ({ file, line } = mapped);
  }
  if (file.startsWith(root + path.sep)) file = path.relative(root, file);
  return `${name} (${file}:${line})`;
}

function fileOf(where: string): string {
  const m = /\(([^()]*):\d+\)$/.exec(where);
  return m?.[1] ?? where;
}

/** Self and inclusive time per function of a `.cpuprofile`, heaviest first. */
export function summarizeProfile(file: string, projectRoot: string, top = 15): ProfileSummary {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const root = path.resolve(projectRoot);
  const mapper = new SourceMapper();
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const keyOf = new Map<number, string>();
  for (const n of profile.nodes) keyOf.set(n.id, describe(n.callFrame, root, mapper));
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let totalUs = 0;
  for (let i = 0; i < samples.length; i++) {
    // timeDeltas[i] is the time before sample i; attribute the time after it instead.
    const us = Math.max(0, deltas[i + 1] ?? 0);
    const id = samples[i] as number;
    const key = keyOf.get(id) ?? '?';
    if (key === '(idle)') continue;
    totalUs += us;
    self.set(key, (self.get(key) ?? 0) + us);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const k = keyOf.get(at) ?? '?';
      if (k === '(root)' || seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + us);
    }
  }
  const share = (us: number): number => (totalUs === 0 ? 0 : us / totalUs);
  const functions = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([where, us]) => ({ where, selfMs: us / 1000, totalMs: (total.get(where) ?? us) / 1000, selfShare: share(us), totalShare: share(total.get(where) ?? us) }));
  const files = new Map<string, number>();
  for (const [where, us] of self) files.set(fileOf(where), (files.get(fileOf(where)) ?? 0) + us);
  const byFile = [...files.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([f, us]) => ({ file: f, selfMs: us / 1000, selfShare: share(us) }));
  return { file, totalMs: totalUs / 1000, functions, byFile };
}

/** The newest `.cpuprofile` in `dir`, or undefined. */
export function newestProfile(dir: string): string | undefined {
  let best: { file: string; mtime: number } | undefined;
  for (const name of fs.readdirSync(dir)) {
    if (!name.endsWith('.cpuprofile')) continue;
    const file = path.join(dir, name);
    const mtime = fs.statSync(file).mtimeMs;
    if (best === undefined || mtime > best.mtime) best = { file, mtime };
  }
  return best?.file;
}
