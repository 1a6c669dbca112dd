/**
 * Running measured commands for bench/read.ts: every command is pinned to one CPU
 * (`taskset -c N`), wrapped in `timeout` (which kills it, not just a wrapper, when a
 * cap runs out) and in GNU time for its CPU times; the wall time is taken here around
 * the whole spawn. Also: dropping and filling the OS page cache.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface RunOptions {
  /** CPU to pin to (taskset -c); undefined = no pinning. */
  readonly cpu: number | undefined;
  /** Where stdout goes: 'ignore' (/dev/null) or 'pipe' (returned). */
  readonly stdout: 'ignore' | 'pipe';
  /** Kill the command (SIGKILL) after this many seconds. */
  readonly timeoutSeconds?: number;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

export interface RunResult {
  readonly argv: readonly string[];
  /** Seconds, measured around the spawn. */
  readonly wall: number;
  /** User and system CPU seconds of the command and its children (GNU time), if known. */
  readonly user: number | undefined;
  readonly sys: number | undefined;
  /** Peak resident set size in KiB (GNU time), if known. */
  readonly maxRssKiB: number | undefined;
  /** Exit status; 124 or 137 after a timeout. */
  readonly status: number | null;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

const GNU_TIME = '/usr/bin/time';
const hasGnuTime = ((): boolean => {
  try {
    return spawnSync(GNU_TIME, ['-f', '%e', 'true'], { stdio: 'ignore' }).status === 0;
  } catch {
    return false;
  }
})();
const hasTaskset = spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' }).status === 0;

/**
 * Node loads the CA bundle NODE_EXTRA_CA_CERTS names at every start, before any script
 * runs: ~30-70 ms per node process on the machines this was written on, which set it
 * for their npm registry. Not part of what the benchmarks measure (every ext4ts CLI run
 * would pay it, debugfs and fuse2fs not): each benchmark unsets it for what it runs and
 * says so in its set-up lines (`CA_CERTS_NOTE`).
 */
export const CA_CERTS_UNSET = process.env.NODE_EXTRA_CA_CERTS !== undefined;
delete process.env.NODE_EXTRA_CA_CERTS;
export const CA_CERTS_NOTE = CA_CERTS_UNSET ? 'NODE_EXTRA_CA_CERTS unset for the commands run (its CA bundle costs every node start ~30-70 ms)' : '';

export function pinningAvailable(): boolean {
  return hasTaskset;
}

let timeFileSeq = 0;

/** Run `argv` (pinned, capped, timed) and wait for it. */
export function runMeasured(argv: readonly string[], options: RunOptions): RunResult {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error('runMeasured: empty command');
  const wrapped: string[] = [];
  const timeFile = path.join(os.tmpdir(), `bench-read-time-${process.pid}-${timeFileSeq++}.txt`);
  if (hasGnuTime) wrapped.push(GNU_TIME, '-o', timeFile, '-f', '%e %U %S %M');
  if (options.timeoutSeconds !== undefined) wrapped.push('timeout', '-s', 'KILL', String(Math.ceil(options.timeoutSeconds)));
  if (options.cpu !== undefined && hasTaskset) wrapped.push('taskset', '-c', String(options.cpu));
  wrapped.push(cmd, ...args);
  const started = performance.now();
  const r = spawnSync(wrapped[0] as string, wrapped.slice(1), {
    stdio: ['ignore', options.stdout, 'pipe'],
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
  const wall = (performance.now() - started) / 1000;
  if (r.error !== undefined) throw new Error(`cannot run ${cmd}: ${r.error.message}`);
  let user: number | undefined;
  let sys: number | undefined;
  let maxRssKiB: number | undefined;
  if (hasGnuTime) {
    try {
      // "Command exited with non-zero status N" may come first; the numbers are last.
      const last = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop() ?? '';
      const parts = last.split(' ').map(Number);
      if (parts.length === 4 && parts.every((n) => Number.isFinite(n))) [, user, sys, maxRssKiB] = parts;
    } catch {
      // no numbers: leave them unknown
    }
    fs.rmSync(timeFile, { force: true });
  }
  const status = r.status;
  return {
    argv,
    wall,
    user,
    sys,
    maxRssKiB,
    status,
    timedOut: options.timeoutSeconds !== undefined && (status === 137 || status === 124) && wall >= options.timeoutSeconds - 0.5,
    stdout: typeof r.stdout === 'string' ? r.stdout : '',
    stderr: typeof r.stderr === 'string' ? r.stderr : '',
  };
}

/** `sync; echo 3 > /proc/sys/vm/drop_caches`. Throws a one-line error when not possible. */
export function dropCaches(): void {
  spawnSync('sync', [], { stdio: 'ignore' });
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new Error(`cannot drop the page cache (writing /proc/sys/vm/drop_caches failed: ${String(code ?? error)}); run as root, or pass --no-cold`);
  }
}

/**
 * Evict one file's pages from the page cache (posix_fadvise POSIX_FADV_DONTNEED after
 * fsync: only clean pages go), leaving everything else cached. Node has no fadvise;
 * python3 (which node-gyp needs anyway) has.
 */
export function evictFromPageCache(file: string): void {
  const r = spawnSync('python3', ['-c', 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot evict ${file} from the page cache (python3 posix_fadvise): ${(r.stderr ?? String(r.error)).trim()}`);
}

/**
 * A private copy of this Node binary under `dir` (made once; remade when the binary
 * changes), for running the tool under test. The harness, itself Node, keeps its own
 * binary's pages mapped, and `drop_caches` cannot drop mapped pages: a child run from
 * process.execPath would start with Node already in memory however cold the rest is.
 * The copy is a file of its own, dropped like any other, so a cold run includes Node's
 * own start-up from the disk, as debugfs's cold runs include debugfs's.
 */
export function privateNode(dir: string): string {
  const copy = path.join(dir, 'node-runtime', 'node');
  const src = fs.statSync(process.execPath);
  const have = fs.statSync(copy, { throwIfNoEntry: false });
  if (have === undefined || have.size !== src.size || have.mtimeMs !== src.mtimeMs) {
    fs.mkdirSync(path.dirname(copy), { recursive: true });
    const tmp = `${copy}.${process.pid}.tmp`;
    fs.copyFileSync(process.execPath, tmp);
    fs.chmodSync(tmp, 0o755);
    fs.utimesSync(tmp, src.atime, src.mtime);
    fs.renameSync(tmp, copy);
  }
  return copy;
}

/** Read a file once, 4 MiB at a time, so that the page cache holds it. */
export function fillPageCache(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
    let pos = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** First line of a command's version output (e.g. "debugfs 1.47.0 (5-Feb-2023)"), or undefined. */
export function versionLine(argv: readonly string[]): string | undefined {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return undefined;
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error !== undefined) return undefined;
  const text = `${r.stdout}\n${r.stderr}`.trim();
  return text.split('\n')[0]?.trim();
}

/** Clock ticks per second of /proc/PID/stat's utime and stime (USER_HZ on Linux). */
const CLK_TCK = 100;

/** utime + stime of a process, seconds (from /proc/PID/stat), or undefined once it is gone. */
export function processCpu(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}
