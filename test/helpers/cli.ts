/**
 * Helpers for the CLI tests: run `ext4ts` as a child process, loop-mount images as
 * the oracle, and snapshot a directory tree (types, modes, owners, contents, symlink
 * targets, hard-link identity, nanosecond times, xattrs) for comparison.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { scratchDir } from './images.js';

export const REPO = join(import.meta.dirname, '..', '..');
const MAIN = join(REPO, 'src', 'cli', 'main.ts');

export interface CliResult {
  readonly status: number | null;
  readonly stdout: Buffer;
  readonly stderr: string;
}

export interface CliOptions {
  readonly env?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
}

function cliEnv(extra: Readonly<Record<string, string>> | undefined): NodeJS.ProcessEnv {
  return { ...process.env, TZ: 'UTC', LC_ALL: 'C', ...extra };
}

/** Runs `node --import tsx src/cli/main.ts ARGS...` and waits for it. */
export function runCli(args: readonly string[], options: CliOptions = {}): CliResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: REPO,
    env: cliEnv(options.env),
    maxBuffer: 256 << 20,
    timeout: options.timeoutMs ?? 60_000,
  });
  if (r.error !== undefined) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

/** The same, without blocking: independent runs can overlap. */
export function runCliAsync(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return runChild(process.execPath, ['--import', 'tsx', MAIN, ...args], REPO, options);
}

/**
 * Runs CMD ARGS in `cwd` (TZ=UTC, LC_ALL=C, plus `options.env`) as a child process
 * without blocking this one (a test may be serving the mount the child uses); SIGKILL
 * after `options.timeoutMs` (default 60 s).
 */
export function runChild(cmd: string, args: readonly string[], cwd: string, options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: cliEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

let mountSerial = 0;

/** Loop-mounts `image` (read-only unless `rw`) on a fresh mountpoint, runs `body`, always unmounts. */
export function withMount<T>(image: string, rw: boolean, body: (mnt: string) => T): T {
  const mnt = join(scratchDir(), `mnt-${process.pid}-${mountSerial++}`);
  fs.mkdirSync(mnt);
  execFileSync('mount', ['-o', rw ? 'loop' : 'loop,ro', '-t', 'ext4', image, mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    return body(mnt);
  } finally {
    execFileSync('umount', [mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
    fs.rmdirSync(mnt);
  }
}

/**
 * Every path under `root` (relative, as Buffers) with its lstat, parents before children,
 * siblings sorted bytewise. Each entry is lstat'ed before its directory is read, so the
 * walk does not change the atimes it records.
 */
export function walkStats(root: string): [Buffer, fs.BigIntStats][] {
  const out: [Buffer, fs.BigIntStats][] = [];
  const abs = (rel: Buffer): Buffer => (rel.length === 0 ? Buffer.from(root) : Buffer.concat([Buffer.from(root + '/'), rel]));
  const visit = (rel: Buffer): void => {
    const st = fs.lstatSync(abs(rel), { bigint: true });
    out.push([rel, st]);
    if (!st.isDirectory()) return;
    const names = (fs.readdirSync(abs(rel), { encoding: 'buffer' }) as Buffer[]).sort((a, b) => Buffer.compare(a, b));
    for (const name of names) visit(rel.length === 0 ? name : Buffer.concat([rel, Buffer.from('/'), name]));
  };
  visit(Buffer.alloc(0));
  return out;
}

/** Every path under `root`, relative, without the root itself. */
export function walk(root: string): Buffer[] {
  return walkStats(root)
    .slice(1)
    .map(([rel]) => rel);
}

export interface EntrySnapshot {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  /** Regular files only. */
  size?: number;
  sha256?: string;
  /** Symlink target bytes, hex. */
  target?: string;
  rdev?: number;
  /** For hard links: the first path (in walk order) of the same inode. */
  linkOf?: string;
  mtimeNs: string;
  atimeNs: string;
  /** user.* and ACL xattrs: name -> value hex. */
  xattrs: Record<string, string>;
}

/** Path key: the bytes as latin1 (reversible, binary-safe). */
export const key = (rel: Buffer): string => rel.toString('latin1');

function typeOf(st: fs.BigIntStats): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'chr';
  if (st.isBlockDevice()) return 'blk';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return 'unknown';
}

/** getfattr's \ooo unquoting of a "# file:" name. */
function unquote(text: string): Buffer {
  const bytes: number[] = [];
  const raw = Buffer.from(text, 'latin1');
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i] as number;
    if (b === 0x5c && i + 3 < raw.length && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString('latin1'))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else bytes.push(b);
  }
  return Buffer.from(bytes);
}

/** xattrs (user.* and POSIX ACLs) of every path under root: key(rel) -> name -> hex. */
export function xattrsOf(root: string): Map<string, Record<string, string>> {
  const out = execFileSync('getfattr', ['-R', '-P', '-h', '-d', '-m', '^(user\\.|system\\.posix_acl_)', '-e', 'hex', '--absolute-names', root], {
    maxBuffer: 64 << 20,
    stdio: ['ignore', 'pipe', 'pipe'],
  }).toString('latin1');
  const map = new Map<string, Record<string, string>>();
  let current: Record<string, string> | undefined;
  const prefix = Buffer.from(root + '/');
  for (const line of out.split('\n')) {
    if (line.startsWith('# file: ')) {
      const abs = unquote(line.slice(8));
      const rel = abs.equals(Buffer.from(root)) ? Buffer.alloc(0) : abs.subarray(prefix.length);
      current = {};
      map.set(key(rel), current);
    } else if (current !== undefined && line.includes('=')) {
      const eq = line.indexOf('=');
      current[line.slice(0, eq)] = line.slice(eq + 1).replace(/^0x/, '');
    }
  }
  return map;
}

/**
 * Snapshot of a tree. Each entry is lstat'ed before anything reads it, so reading
 * contents (which may update atime) does not change what is recorded.
 */
export function snapshot(root: string, options: { skip?: (rel: string) => boolean } = {}): Map<string, EntrySnapshot> {
  const entries = walkStats(root); // first: getfattr -R and reading contents may touch atimes
  const xattrs = xattrsOf(root);
  const snap = new Map<string, EntrySnapshot>();
  const firstOfInode = new Map<bigint, string>();
  for (const [rel, st] of entries) {
    const k = key(rel);
    if (options.skip?.(k) === true) continue;
    const abs = rel.length === 0 ? Buffer.from(root) : Buffer.concat([Buffer.from(root + '/'), rel]);
    const type = typeOf(st);
    const e: EntrySnapshot = {
      type,
      mode: Number(st.mode),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtimeNs: st.mtimeNs.toString(),
      atimeNs: st.atimeNs.toString(),
      xattrs: xattrs.get(k) ?? {},
    };
    if (type !== 'dir' && st.nlink > 1n) {
      const first = firstOfInode.get(st.ino);
      if (first !== undefined) e.linkOf = first;
      else firstOfInode.set(st.ino, k);
    }
    if (type === 'file') {
      e.size = Number(st.size);
      e.sha256 = createHash('sha256').update(fs.readFileSync(abs)).digest('hex');
    }
    if (type === 'symlink') e.target = (fs.readlinkSync(abs, { encoding: 'buffer' }) as Buffer).toString('hex');
    if (type === 'chr' || type === 'blk') e.rdev = Number(st.rdev);
    snap.set(k, e);
  }
  return snap;
}

/**
 * Copies atime and mtime, to the nanosecond, of every path of `src` onto the same path
 * under `dst`, children before parents. Node's utimes keeps microseconds only and
 * touch(1) takes names as text, so one python3 process does it with os.utime(ns=...).
 */
export function copyTimes(src: string, dst: string, rels: readonly Buffer[]): void {
  const script = `
import os, sys
src, dst = sys.argv[1].encode(), sys.argv[2].encode()
for rel in reversed(sys.stdin.buffer.read().split(b'\\0')[:-1]):
    st = os.lstat(src + b'/' + rel)
    os.utime(dst + b'/' + rel, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
st = os.lstat(src)
os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
`;
  const input = Buffer.concat(rels.flatMap((r) => [r, Buffer.alloc(1)]));
  execFileSync('python3', ['-c', script, src, dst], { input, stdio: ['pipe', 'ignore', 'pipe'] });
}
