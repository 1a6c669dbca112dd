/**
 * Helpers for the FUSE mount tests: `ext4ts mount`/`umount` run as child processes,
 * read-only kernel loop mounts that stay up across asynchronous work, the server's
 * processes (found by pid file and by command line), and a walk of a mounted tree
 * into the same canonical records as helpers/kernel.ts's walkKernel.
 *
 * The test process never serves a mount (the server is a detached process), so it may
 * read the mounts itself, synchronously.
 *
 * Nothing is left behind: every mount made here is registered and, at process exit,
 * lazily unmounted if still there; every ext4ts server still alive is killed by pid.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, realpathSync, rmdirSync, rmSync, statSync, type BigIntStats, type Dirent } from 'node:fs';
import { runCliAsync, type CliResult } from './cli.js';
import { CHUNK, ContentDigest, WHOLE_LIMIT, displayName, joinBytes, kernelXattrs, kindOfStats, mappedRanges, sortedXattrs, splitDev, timeString, type PathRecord } from './kernel.js';

// ------------------------------------------------------------------ mount table and processes

/** One line of /proc/self/mountinfo, for a mount point. */
export interface MountInfo {
  readonly mountpoint: string;
  readonly fsType: string;
  readonly source: string;
  readonly options: string;
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function mountTable(): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const parts = line.split(' ');
    const sep = parts.indexOf('-');
    if (sep < 0) continue;
    out.push({ mountpoint: unescapeMountinfo(parts[4] ?? ''), options: parts[5] ?? '', fsType: parts[sep + 1] ?? '', source: unescapeMountinfo(parts[sep + 2] ?? '') });
  }
  return out;
}

/** The (topmost) mount at exactly `mnt` (an absolute, resolved path), if any. */
export function mountAt(mnt: string): MountInfo | undefined {
  return mountTable()
    .filter((m) => m.mountpoint === mnt)
    .pop();
}

export function isMounted(mnt: string): boolean {
  return mountAt(mnt) !== undefined;
}

/** Command lines of all processes: pid -> argv. */
export function processes(): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (argv[argv.length - 1] === '') argv.pop();
      if (argv.length > 0) out.set(Number(name), argv);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * Processes that belong to an ext4ts mount at `mnt`: the serving process (`main.ts
 * mount IMAGE MNT -f ...`), the foreground `mount` command still waiting, and the
 * server's watchdog (`sh -c ... MNT`).
 */
export function mountProcesses(mnt: string): { pid: number; argv: string[] }[] {
  const out: { pid: number; argv: string[] }[] = [];
  for (const [pid, argv] of processes()) {
    if (pid === process.pid) continue;
    const isServer = argv.some((a) => a.endsWith('main.ts') || a.endsWith('main.js') || a.endsWith('ext4ts.js')) && argv.includes('mount') && argv.includes(mnt);
    const isWatchdog = argv[0] === 'sh' && argv[1] === '-c' && (argv[2] ?? '').includes('umount -l') && argv[3] === mnt;
    if (isServer || isWatchdog) out.push({ pid, argv });
  }
  return out;
}

/** True while `pid` runs (a zombie has finished). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Poll `pred` every 50 ms until true; false after `timeoutMs`. */
export async function waitUntil(pred: () => boolean, timeoutMs: number): Promise<boolean> {
  const limit = Date.now() + timeoutMs;
  for (;;) {
    if (pred()) return true;
    if (Date.now() > limit) return false;
    await sleep(50);
  }
}

// ------------------------------------------------------------------ cleanup

/** Mount points this process mounted (ext4ts or kernel), resolved. */
const ours = new Set<string>();

/**
 * Undo whatever is left, synchronously (it also runs in an `exit` handler): lazily unmount
 * every registered mount point still mounted (an ext4ts server then exits by itself once
 * its last user is gone), again as long as servers of those mount points still run (a
 * mount command in flight may mount later); after 3 s kill (SIGKILL, by pid) the servers
 * and watchdogs that remain, and detach what they leave. Returns what it had to undo.
 */
export function cleanupMounts(): string[] {
  const leftovers = new Set<string>();
  const started = Date.now();
  for (;;) {
    let pending = false;
    for (const mnt of ours) {
      if (isMounted(mnt)) {
        leftovers.add(`${mnt}: still mounted (${mountAt(mnt)?.fsType})`);
        spawnSync('umount', ['-l', mnt]);
        pending = true;
      }
      const procs = mountProcesses(mnt);
      if (procs.length === 0) continue;
      pending = true;
      if (Date.now() - started < 3000) continue;
      for (const p of procs) {
        leftovers.add(`${mnt}: process ${p.pid} killed: ${p.argv.join(' ')}`);
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    if (!pending || Date.now() - started > 10_000) break;
    sleepSync(100);
  }
  for (const mnt of ours) {
    removeStalePidFile(mnt);
    if (isMounted(mnt)) continue;
    ours.delete(mnt);
    try {
      rmdirSync(mnt);
    } catch {
      // not empty or gone: the scratch directory removal takes it
    }
  }
  return [...leftovers];
}

/** Block this thread for `ms` (for the synchronous exit-time cleanup). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
// Registered at import, before scratchDir()'s removal handler (registered on its first use).
process.on('exit', () => {
  cleanupMounts();
});
// A test process stopped by a signal (Ctrl-C, the test runner's SIGTERM) would run no
// exit handlers: exit instead (128 + signal number), which runs them.
for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
  process.on(signal, () => process.exit(128 + number));
}

/** A fresh directory to mount on, registered for cleanup; returns its resolved path. */
export function freshMountpoint(path: string): string {
  mkdirSync(path, { recursive: true });
  const real = realpathSync(path);
  ours.add(real);
  return real;
}

// ------------------------------------------------------------------ ext4ts mount / umount

export interface Ext4tsMount {
  readonly image: string;
  readonly mnt: string;
  /** The serving process. */
  readonly pid: number;
}

/** The pid the server recorded for `mnt` (src/fuse/server.ts pidFileFor: /run/ext4ts/<encoded path>.pid). */
export function pidFromFile(mnt: string): number | undefined {
  const file = `/run/ext4ts/${encodeURIComponent(mnt)}.pid`;
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function pidFileExists(mnt: string): boolean {
  return existsSync(`/run/ext4ts/${encodeURIComponent(mnt)}.pid`);
}

/** Remove the pid file of `mnt` if the process it names is gone. */
export function removeStalePidFile(mnt: string): void {
  const pid = pidFromFile(mnt);
  if (pid !== undefined && alive(pid)) return;
  rmSync(`/run/ext4ts/${encodeURIComponent(mnt)}.pid`, { force: true });
}

/** True when one of the `-o` lists says `rw` or `ro`. */
function choosesMode(options: readonly string[]): boolean {
  return options.some((list) => list.split(',').some((o) => o.trim() === 'rw' || o.trim() === 'ro'));
}

/**
 * Run `ext4ts mount [-o opts] IMAGE MNT` (background server); throws with its stderr if it
 * fails. Read-only unless the options say `rw` (ext4ts itself mounts a writable image
 * read-write by default; these helpers' callers mostly inspect shared images).
 */
export async function mountExt4ts(image: string, mnt: string, options: readonly string[] = []): Promise<Ext4tsMount> {
  ours.add(mnt);
  const lists = choosesMode(options) ? options : ['ro', ...options];
  const r = await ext4ts(['mount', ...lists.flatMap((o) => ['-o', o]), image, mnt]);
  if (r.status !== 0) throw new Error(`ext4ts mount ${image} ${mnt} exited ${r.status}: ${r.stderr.trim()}`);
  const m = mountAt(mnt);
  if (m?.fsType !== 'fuse.ext4ts') throw new Error(`ext4ts mount returned 0 but ${mnt} is ${m === undefined ? 'not mounted' : `a ${m.fsType} mount`}`);
  const pid = pidFromFile(mnt) ?? mountProcesses(mnt).find((p) => p.argv.includes('-f'))?.pid;
  if (pid === undefined) throw new Error(`no server process found for ${mnt}`);
  return { image, mnt, pid };
}

/** `ext4ts umount [--lazy] MNT` (waits for the server to exit). */
export async function umountExt4ts(mnt: string, lazy = false): Promise<CliResult> {
  return ext4ts(['umount', ...(lazy ? ['--lazy'] : []), mnt]);
}

/** `ext4ts umount MNT`, asserting it succeeded, the mount is gone and the server has exited. */
export async function umountOk(m: Ext4tsMount): Promise<void> {
  const r = await umountExt4ts(m.mnt);
  assert.equal(r.status, 0, `ext4ts umount: ${r.stderr}`);
  assert.ok(!isMounted(m.mnt), 'still mounted after umount');
  assert.ok(!alive(m.pid), 'the server still runs after umount returned');
}

/** Run the CLI (node --import tsx src/cli/main.ts ...). */
export function ext4ts(args: readonly string[], timeoutMs = 60_000): Promise<CliResult> {
  return runCliAsync(args, { timeoutMs });
}

// ------------------------------------------------------------------ kernel loop mounts

/** `mount -o ro,loop IMAGE MNT` (registered for cleanup). */
export function loopMount(image: string, mnt: string): void {
  ours.add(mnt);
  const r = spawnSync('mount', ['-o', 'ro,loop', image, mnt], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mount -o ro,loop ${image} ${mnt}: ${r.stderr.trim()}`);
}

/** umount(8) with a few retries while busy; lazily as a last resort. */
export function loopUnmount(mnt: string): void {
  for (let i = 0; i < 10 && isMounted(mnt); i++) {
    const r = spawnSync('umount', [mnt], { encoding: 'utf8' });
    if (r.status === 0) break;
    spawnSync('sleep', ['0.2']);
  }
  if (isMounted(mnt)) spawnSync('umount', ['-l', mnt]);
}

// ------------------------------------------------------------------ the walk

/** Files up to this size are read whole when walking; larger ones are read where data is (plus a sample of holes). */
export const FULL_READ_LIMIT = 96 * 1024 * 1024;

export interface MountWalkOptions {
  /** Paths (display form) whose subtrees are not walked (their own record is kept). */
  readonly prune?: ReadonlySet<string>;
  /**
   * For a file larger than FULL_READ_LIMIT: its mapped byte ranges. Default: FIEMAP
   * (filefrag) on the walked path itself, which a FUSE mount does not answer, so pass
   * the ranges the kernel mount reported for the same path (`WalkResult.ranges`).
   */
  readonly ranges?: (key: string) => readonly (readonly [number, number])[] | undefined;
}

export interface WalkResult {
  readonly records: Map<string, PathRecord>;
  /** Mapped ranges used for the big files, by display path. */
  readonly ranges: Map<string, readonly (readonly [number, number])[]>;
  /** Bytes read from files. */
  bytesRead: number;
}

/**
 * A content digest equal to kernel.ts's (`ContentDigest`): whole reads up to
 * FULL_READ_LIMIT. Above, every chunk that a mapped range touches is read, and so is a
 * sample of the others (first, last, every 64th): their bytes, not assumed zeros, go into
 * the digest, so a hole that does not read as zeros changes it. Only the chunks not
 * sampled are assumed to be zeros.
 */
function contentDigest(abs: Buffer, size: number, ranges: readonly (readonly [number, number])[] | undefined, result: WalkResult): string {
  const digest = new ContentDigest(size);
  if (size === 0) return digest.digest();
  if (size <= WHOLE_LIMIT) {
    const data = readFileSync(abs);
    result.bytesRead += data.length;
    digest.update(data);
    return digest.digest();
  }
  const fd = openSync(abs, 'r');
  try {
    const buf = Buffer.alloc(CHUNK);
    const chunks = Math.ceil(size / CHUNK);
    for (let index = 0; index < chunks; index++) {
      const chunkStart = index * CHUNK;
      const chunkEnd = Math.min(size, chunkStart + CHUNK);
      const touched = ranges === undefined || ranges.some(([s, e]) => s < chunkEnd && e > chunkStart);
      const sampled = index === 0 || index === chunks - 1 || index % 64 === 0;
      if (!touched && !sampled) {
        digest.zeros(chunkEnd - chunkStart);
        continue;
      }
      let got = 0;
      while (got < chunkEnd - chunkStart) {
        const n = readSync(fd, buf, got, chunkEnd - chunkStart - got, chunkStart + got);
        if (n === 0) throw new Error(`short read of ${abs.toString()} at ${chunkStart + got}`);
        got += n;
      }
      result.bytesRead += got;
      digest.update(buf.subarray(0, got));
    }
  } finally {
    closeSync(fd);
  }
  return digest.digest();
}

function errnoCode(error: unknown): string {
  if (error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string') return (error as NodeJS.ErrnoException).code as string;
  throw error;
}

/**
 * walkKernel's walk (same record for every path: lstat with ns times, d_type, readlink,
 * what a relative link leads to, content digest, getfattr -d -m -), for any mounted
 * tree: a kernel mount or an ext4ts mount. Only the content digest of files above
 * FULL_READ_LIMIT differs in how it reads (see contentDigest); the digest is the same.
 */
export function walkMounted(root: string, options: MountWalkOptions = {}): WalkResult {
  const result: WalkResult = { records: new Map(), ranges: new Map(), bytesRead: 0 };
  const rootBytes = Buffer.from(root);
  const xattrs = kernelXattrs(root, options.prune);
  const stack: { rel: Buffer; direntKind: string | null }[] = [{ rel: Buffer.from('/'), direntKind: null }];
  while (stack.length > 0) {
    const { rel, direntKind } = stack.pop() as { rel: Buffer; direntKind: string | null };
    const abs = rel.length === 1 ? rootBytes : Buffer.concat([rootBytes, rel]);
    const key = displayName(rel);
    const st: BigIntStats = lstatSync(abs, { bigint: true });
    const kind = kindOfStats(st);
    const [major, minor] = splitDev(st.rdev);
    let target: string | null = null;
    let follows: string | null = null;
    if (kind === 'symlink') {
      const t = readlinkSync(abs, { encoding: 'buffer' });
      target = displayName(t);
      if (t[0] !== 0x2f) {
        try {
          follows = `ino ${statSync(abs, { bigint: true }).ino}`;
        } catch (error) {
          follows = errnoCode(error);
        }
      }
    }
    const size = Number(st.size);
    let content: string | null = null;
    if (kind === 'file') {
      let ranges: readonly (readonly [number, number])[] | undefined;
      if (size > FULL_READ_LIMIT) {
        ranges = options.ranges !== undefined ? options.ranges(key) : mappedRanges(abs);
        if (ranges === undefined) throw new Error(`no mapped ranges given for the big file ${key}`);
        result.ranges.set(key, ranges);
      }
      content = contentDigest(abs, size, ranges, result);
    }
    result.records.set(key, {
      path: key,
      kind,
      direntKind,
      ino: Number(st.ino),
      mode: st.mode.toString(8),
      nlink: Number(st.nlink),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size,
      blocks: Number(st.blocks),
      blksize: Number(st.blksize),
      rdev: `${major}:${minor} (${st.rdev})`,
      atime: timeString(st.atimeNs),
      mtime: timeString(st.mtimeNs),
      ctime: timeString(st.ctimeNs),
      birthtime: st.birthtimeNs === 0n ? null : timeString(st.birthtimeNs),
      target,
      follows,
      content,
      xattrs: sortedXattrs(xattrs.get(key) ?? {}),
    });
    if (kind === 'directory' && !(options.prune?.has(key) ?? false)) {
      const entries: Dirent<Buffer>[] = readdirSync(abs, { withFileTypes: true, encoding: 'buffer' });
      for (const e of entries) stack.push({ rel: joinBytes(rel, e.name), direntKind: kindOfStats(e) });
    }
  }
  return result;
}

const FIELDS = ['kind', 'direntKind', 'ino', 'mode', 'nlink', 'uid', 'gid', 'size', 'blocks', 'blksize', 'rdev', 'atime', 'mtime', 'ctime', 'birthtime', 'target', 'follows', 'content', 'xattrs', 'error'] as const;

function show(value: unknown): string {
  const s = JSON.stringify(value) ?? 'undefined';
  return s.length > 160 ? `${s.slice(0, 157)}...` : s;
}

/**
 * Differences between two walks (kernel vs ext4ts), path by path. st_blksize of block
 * device nodes is skipped: for a block special file the VFS reports the host block
 * device's own parameters (bdev_statx), not the filesystem's.
 */
export function diffWalks(kernel: ReadonlyMap<string, PathRecord>, ext4: ReadonlyMap<string, PathRecord>): string[] {
  const out: string[] = [];
  for (const key of [...new Set([...kernel.keys(), ...ext4.keys()])].sort()) {
    const k = kernel.get(key);
    const o = ext4.get(key);
    if (k === undefined || o === undefined) {
      out.push(`${key}: only ${k === undefined ? 'the ext4ts mount' : 'the kernel mount'} lists it`);
      continue;
    }
    for (const f of FIELDS) {
      if (f === 'blksize' && k.kind === 'block-device') continue;
      if (f === 'xattrs') {
        for (const name of new Set([...Object.keys(k.xattrs), ...Object.keys(o.xattrs)])) {
          if (k.xattrs[name] !== o.xattrs[name]) out.push(`${key}: xattr ${name}: kernel ${show(k.xattrs[name])}, ext4ts ${show(o.xattrs[name])}`);
        }
        continue;
      }
      const kv = show(k[f]);
      const ov = show(o[f]);
      if (kv !== ov) out.push(`${key}: ${f}: kernel ${kv}, ext4ts ${ov}`);
    }
  }
  return out;
}

export function report(title: string, diffs: readonly string[], max = 40): string {
  return [`${title}: ${diffs.length} difference(s)`, ...diffs.slice(0, max).map((d) => `  ${d}`), ...(diffs.length > max ? [`  ... and ${diffs.length - max} more`] : [])].join('\n');
}

// ------------------------------------------------------------------ the walk in a child process

type Ranges = readonly (readonly [number, number])[];

/** The mapped ranges of the files above FULL_READ_LIMIT under a kernel mount (FIEMAP), by display path. */
export function bigFileRanges(root: string): Map<string, Ranges> {
  const out = new Map<string, Ranges>();
  const r = spawnSync('find', [root, '-type', 'f', '-size', `+${FULL_READ_LIMIT / 1024}k`, '-print0'], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`find ${root}: ${r.stderr.toString()}`);
  const rootBytes = Buffer.from(root);
  for (const p of r.stdout.toString('latin1').split('\0')) {
    if (p === '') continue;
    const abs = Buffer.from(p, 'latin1');
    out.set(displayName(abs.subarray(rootBytes.length)), mappedRanges(abs));
  }
  return out;
}

/**
 * walkMounted in a child process (this file run as a script), so that two mounts can
 * be walked at the same time and this process stays free. `ranges`: see MountWalkOptions.
 */
export function walkMountedInChild(root: string, ranges?: ReadonlyMap<string, Ranges>): Promise<WalkResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', import.meta.filename, 'walk', root], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (status) => {
      if (status !== 0) {
        reject(new Error(`walk of ${root} failed (${status}): ${Buffer.concat(err).toString()}`));
        return;
      }
      const parsed = JSON.parse(Buffer.concat(out).toString('utf8')) as { records: PathRecord[]; ranges: [string, Ranges][]; bytesRead: number };
      resolve({ records: new Map(parsed.records.map((r) => [r.path, r])), ranges: new Map(parsed.ranges), bytesRead: parsed.bytesRead });
    });
    child.stdin.end(JSON.stringify(ranges === undefined ? null : [...ranges]));
  });
}

async function walkMain(root: string): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const given = JSON.parse(Buffer.concat(chunks).toString('utf8')) as [string, Ranges][] | null;
  const map = given === null ? undefined : new Map(given);
  const result = walkMounted(root, map === undefined ? {} : { ranges: (key) => map.get(key) });
  const text = JSON.stringify({ records: [...result.records.values()], ranges: [...result.ranges], bytesRead: result.bytesRead });
  await new Promise<void>((resolve, reject) => process.stdout.write(text, (e) => (e === null || e === undefined ? resolve() : reject(e))));
}

if (process.argv[1] !== undefined && process.argv[2] === 'walk' && process.argv[3] !== undefined && realpathSync(process.argv[1]) === import.meta.filename) {
  await walkMain(process.argv[3]);
}
