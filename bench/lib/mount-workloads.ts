/**
 * The client side of the mount benchmark (bench/mount.ts): each workload is a child
 * process pinned to the same CPU as the server (taskset, via bench/lib/proc.ts), timed
 * around the spawn, and its output is reduced to a digest that must be the same for
 * every tool (the kernel's is the reference).
 *
 *   walk     `find MNT -printf '%y %s %m %n %U %G %T@ %P\n'`: readdir plus an lstat of
 *            every entry (the printf fields need it); digest of the sorted lines;
 *   readall  `find . -type f -print0 | xargs -0 sha256sum` below MNT (big.bin pruned):
 *            open, read and hash every small file; digest of the sorted lines;
 *   seq      `dd if=MNT/big.bin of=/dev/null bs=1M`: sequential read of the large file;
 *   random   a Node script doing COUNT preads of 4 KiB at random 4 KiB-aligned offsets
 *            of big.bin (xorshift32, fixed seed), timed inside the script (Node's
 *            start-up excluded); digest = a checksum of the data read.
 */
import * as crypto from 'node:crypto';
import { runMeasured, type RunResult } from './proc.js';

export type WorkloadKey = 'walk' | 'readall' | 'seq' | 'random';
export const WORKLOADS: readonly WorkloadKey[] = ['walk', 'readall', 'seq', 'random'];

export const WORKLOAD_TITLES: Record<WorkloadKey, string> = {
  walk: 'find + lstat of every entry',
  readall: 'read + sha256 every small file',
  seq: 'sequential read of big.bin',
  random: 'random 4 KiB preads of big.bin',
};

export const WORKLOAD_SHORT: Record<WorkloadKey, string> = {
  walk: 'find+lstat',
  readall: 'read all files',
  seq: 'seq. read',
  random: 'random 4K',
};

export interface WorkloadParams {
  readonly cpu: number | undefined;
  readonly timeoutSeconds: number;
  readonly bigName: string;
  readonly bigBytes: number;
  readonly randomCount: number;
  readonly randomSeed: number;
}

export interface WorkloadResult {
  readonly ok: boolean;
  readonly error?: string;
  /** The reported time: wall time of the client, or in-process time (random). */
  readonly seconds: number;
  readonly wall: number;
  /** User + system CPU seconds of the client (GNU time). */
  readonly clientCpu?: number;
  /** Entries listed, files hashed, bytes read, preads done. */
  readonly count: number;
  /** What must agree between the tools. */
  readonly digest: string;
  /** The sorted output lines (walk, readall), for showing a difference; not serialized. */
  readonly lines?: readonly string[];
}

const WALK_FORMAT = '%y %s %m %n %U %G %T@ %P\\n';

/** The random-read client (CommonJS for `node -e`): prints {"seconds", "bytes", "reads", "sum"}. */
const RANDOM_CLIENT = `
const fs = require('node:fs');
const [file, countText, seedText] = process.argv.slice(1);
const count = Number(countText);
let x = (Number(seedText) >>> 0) || 1;
const fd = fs.openSync(file, 'r');
const blocks = Math.floor(fs.fstatSync(fd).size / 4096);
const buf = Buffer.alloc(4096);
let sum = 0, bytes = 0, short = 0;
const t0 = process.hrtime.bigint();
for (let i = 0; i < count; i++) {
  x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
  const n = fs.readSync(fd, buf, 0, 4096, (x % blocks) * 4096);
  if (n !== 4096) short++;
  bytes += n;
  sum = (Math.imul(sum, 31) + buf.readUInt32LE(0) + buf.readUInt32LE(2048) + buf.readUInt32LE(4092)) >>> 0;
}
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
fs.closeSync(fd);
process.stdout.write(JSON.stringify({ seconds, bytes, reads: count, short, sum }) + '\\n');
`;

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.trim() ?? '';
}

function cpuOf(r: RunResult): number | undefined {
  return r.user === undefined || r.sys === undefined ? undefined : r.user + r.sys;
}

function sortedLines(stdout: string): string[] {
  const lines = stdout.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.sort();
}

function sha256(text: string): string {
  return crypto.createHash('sha256').update(text).digest('hex');
}

function failed(r: RunResult, what: string): string | undefined {
  if (r.timedOut) return `${what} timed out`;
  if (r.status !== 0) return `${what} exit ${r.status ?? 'by signal'}: ${firstLine(r.stderr)}`;
  if (r.stderr.trim() !== '') return `${what}: ${firstLine(r.stderr)}`;
  return undefined;
}

/** Run one workload against the mount at `mnt`. */
export function runWorkload(key: WorkloadKey, mnt: string, p: WorkloadParams): WorkloadResult {
  const opts = { cpu: p.cpu, timeoutSeconds: p.timeoutSeconds } as const;
  const big = `${mnt}/${p.bigName}`;
  switch (key) {
    case 'walk': {
      const r = runMeasured(['find', mnt, '-printf', WALK_FORMAT], { ...opts, stdout: 'pipe' });
      const lines = sortedLines(r.stdout);
      const error = failed(r, 'find');
      return { ok: error === undefined, ...(error === undefined ? {} : { error }), seconds: r.wall, wall: r.wall, ...withCpu(r), count: Math.max(0, lines.length - 1), digest: sha256(lines.join('\n')), lines };
    }
    case 'readall': {
      const script = `set -o pipefail; cd "$1" && find . -path ./${p.bigName} -prune -o -type f -print0 | xargs -0 -r sha256sum`;
      const r = runMeasured(['bash', '-c', script, 'bash', mnt], { ...opts, stdout: 'pipe' });
      const lines = sortedLines(r.stdout);
      const error = failed(r, 'find | xargs sha256sum');
      return { ok: error === undefined, ...(error === undefined ? {} : { error }), seconds: r.wall, wall: r.wall, ...withCpu(r), count: lines.length, digest: sha256(lines.join('\n')), lines };
    }
    case 'seq': {
      const r = runMeasured(['dd', `if=${big}`, 'of=/dev/null', 'bs=1M'], { ...opts, stdout: 'ignore' });
      const m = /^(\d+) bytes/m.exec(r.stderr);
      const bytes = m === null ? 0 : Number(m[1]);
      let error = r.timedOut ? 'dd timed out' : r.status !== 0 ? `dd exit ${r.status ?? 'by signal'}: ${firstLine(r.stderr)}` : undefined;
      if (error === undefined && bytes !== p.bigBytes) error = `dd read ${bytes} bytes, expected ${p.bigBytes}`;
      return { ok: error === undefined, ...(error === undefined ? {} : { error }), seconds: r.wall, wall: r.wall, ...withCpu(r), count: bytes, digest: String(bytes) };
    }
    case 'random': {
      const r = runMeasured([process.execPath, '-e', RANDOM_CLIENT, big, String(p.randomCount), String(p.randomSeed)], { ...opts, stdout: 'pipe' });
      let out: { seconds: number; bytes: number; reads: number; short: number; sum: number } | undefined;
      try {
        out = JSON.parse(r.stdout) as typeof out;
      } catch {
        out = undefined;
      }
      let error = failed(r, 'random-read client');
      if (error === undefined && out === undefined) error = `random-read client printed no result: ${firstLine(r.stdout)}`;
      if (error === undefined && out !== undefined && out.short > 0) error = `${out.short} short reads`;
      return {
        ok: error === undefined,
        ...(error === undefined ? {} : { error }),
        seconds: out?.seconds ?? r.wall,
        wall: r.wall,
        ...withCpu(r),
        count: out?.reads ?? 0,
        digest: `${out?.bytes ?? 0}:${out?.sum ?? 0}`,
      };
    }
  }
}

function withCpu(r: RunResult): { clientCpu?: number } {
  const cpu = cpuOf(r);
  return cpu === undefined ? {} : { clientCpu: cpu };
}

/** sha256 of the big file through the mount (not timed): a content check of the data path. */
export function hashBig(mnt: string, p: WorkloadParams): string | undefined {
  const r = runMeasured(['sha256sum', `${mnt}/${p.bigName}`], { cpu: p.cpu, timeoutSeconds: p.timeoutSeconds, stdout: 'pipe' });
  if (r.status !== 0) return undefined;
  return r.stdout.trim().split(/\s+/)[0];
}
