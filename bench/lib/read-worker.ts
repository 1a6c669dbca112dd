/**
 * Child process of bench/read.ts: runs one in-process measurement and prints JSON lines
 * on stdout. Run as `node --import tsx bench/lib/read-worker.ts '<job JSON>'`.
 *
 * Jobs:
 *   lib-walk       ext4ts library: readdirInode + getattr of every entry (depth first);
 *   lib-paths-walk ext4ts library, by path: readdir + lstat of every entry, the calls
 *                  (and the order) of ext2fs-walk;
 *   lib-extract    ext4ts library: the walk, plus read + write of every file (mode and
 *                  times set), symlinks re-created, into `dest`;
 *   ext2fs-walk    the ext2fs npm package (balena's libext2fs in WASM): readdir + lstat
 *                  of every entry;
 *   ext2fs-extract the same, plus open/read/close of every file and readlink of every
 *                  symlink, written into `dest` the same way.
 * Times are measured inside the process, from just before the image is opened (library)
 * or mounted (package) to the end: process and module start-up are not included.
 *
 * The ext2fs jobs print one progress line per finished directory, so that the parent can
 * start a fresh process on the remaining directories when one dies (the package's WASM
 * heap is known to abort with an out-of-memory on long runs) or resume after a time cap.
 */
import * as fs from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { Ext4 } from '../../src/fs/ext4.js';
import type { Stat } from '../../src/fs/types.js';

export interface LibJob {
  readonly kind: 'lib-walk' | 'lib-paths-walk' | 'lib-extract';
  readonly image: string;
  readonly dest?: string;
  /** Block cache budget in bytes; undefined = the library default. */
  readonly cacheSize?: number;
}

export interface Ext2fsJob {
  readonly kind: 'ext2fs-walk' | 'ext2fs-extract';
  readonly image: string;
  readonly dest?: string;
  /** Directories to walk (absolute paths in the image), e.g. ['/']. */
  readonly dirs: readonly string[];
  /** Stop starting new directories after this many seconds. */
  readonly budgetSeconds: number;
}

export type Job = LibJob | Ext2fsJob;

export interface DeviceStats {
  /** Blocks read from the device (4 KiB units for the package). */
  readonly reads: number;
  /** Read requests sent to the device. */
  readonly readOps: number;
}

/** Last line of a library job. */
export interface LibResult {
  readonly type: 'result';
  readonly entries: number;
  readonly files: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly device: DeviceStats;
  readonly stats: Record<string, number>;
}

/** One line per directory finished by an ext2fs job. */
export interface Ext2fsProgress {
  readonly type: 'dir';
  readonly dir: string;
  readonly entries: number;
  readonly files: number;
  readonly bytes: number;
  readonly subdirs: readonly string[];
  /** Seconds since the mount started (this process). */
  readonly t: number;
  readonly device: DeviceStats;
}

/** Last line of an ext2fs job that was not killed. */
export interface Ext2fsDone {
  readonly type: 'done';
  /** False when the time budget ran out with directories left. */
  readonly complete: boolean;
  readonly seconds: number;
  readonly device: DeviceStats;
}

function emit(line: LibResult | Ext2fsProgress | Ext2fsDone): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function seconds(ts: { seconds: number; nanoseconds: number }): number {
  return ts.seconds + ts.nanoseconds / 1e9;
}

// ------------------------------------------------------------------ ext4ts library

const DOT = 0x2e;
function isDotOrDotDot(raw: Uint8Array): boolean {
  return raw[0] === DOT && (raw.length === 1 || (raw.length === 2 && raw[1] === DOT));
}

function runLib(job: LibJob): void {
  const extract = job.kind === 'lib-extract';
  const dest = job.dest ?? '';
  if (extract && dest === '') throw new Error('lib-extract needs dest');
  const started = performance.now();
  const ext4 = Ext4.openFile(job.image, job.cacheSize === undefined ? {} : { cacheSize: job.cacheSize });
  let entries = 0;
  let files = 0;
  let bytes = 0;
  const setTimes = (target: string, st: Stat): void => {
    fs.utimesSync(target, seconds(st.atime), seconds(st.mtime));
  };
  const walk = (dirIno: number, dirPath: string): void => {
    for (const e of ext4.readdirInode(dirIno)) {
      if (isDotOrDotDot(e.rawName)) continue;
      const st = ext4.getattr(e.ino);
      entries++;
      const target = extract ? path.join(dirPath, e.name) : '';
      if (st.kind === 'directory') {
        if (extract) fs.mkdirSync(target, { mode: st.mode & 0o7777 });
        walk(e.ino, target);
        if (extract) setTimes(target, st);
      } else if (st.kind === 'file') {
        files++;
        if (extract) {
          const data = ext4.read(e.ino, 0, st.size);
          bytes += data.length;
          fs.writeFileSync(target, data, { mode: st.mode & 0o7777 });
          setTimes(target, st);
        }
      } else if (st.kind === 'symlink' && extract) {
        fs.symlinkSync(Buffer.from(ext4.readlinkInode(e.ino)), target);
      }
    }
  };
  // The ext2fs job's walk, call for call: a stack of directory paths, readdir, lstat.
  const walkPaths = (): void => {
    const stack = ['/'];
    while (stack.length > 0) {
      const dir = stack.pop() as string;
      const subdirs: string[] = [];
      for (const name of ext4.readdir(dir)) {
        const full = dir === '/' ? `/${name}` : `${dir}/${name}`;
        const st = ext4.lstat(full);
        entries++;
        if (st.kind === 'directory') subdirs.push(full);
        else if (st.kind === 'file') files++;
      }
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i] as string);
    }
  };
  if (extract) fs.mkdirSync(dest, { recursive: true });
  if (job.kind === 'lib-paths-walk') walkPaths();
  else walk(2, dest);
  const stats = ext4.stats();
  ext4.close();
  const elapsed = (performance.now() - started) / 1000;
  emit({ type: 'result', entries, files, bytes, seconds: elapsed, device: { reads: stats.reads, readOps: stats.readOps }, stats: { ...stats } });
}

// ------------------------------------------------------------------ ext2fs package

interface Ext2Stats {
  readonly mode: number;
  readonly size: number;
  readonly atime: Date;
  readonly mtime: Date;
  isDirectory(): boolean;
  isFile(): boolean;
  isSymbolicLink(): boolean;
}

interface Ext2FileHandle {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

interface Ext2Promises {
  readdir(path: string): Promise<string[]>;
  lstat(path: string): Promise<Ext2Stats>;
  readlink(path: string): Promise<string>;
  open(path: string, flags: number): Promise<Ext2FileHandle>;
}

interface Ext2Disk {
  read(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<{ bytesRead: number; buffer: Buffer }>;
  write(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<{ bytesWritten: number; buffer: Buffer }>;
  flush(): Promise<void>;
  discard(offset: number, length: number): Promise<void>;
}

interface Ext2fsModule {
  mount(disk: Ext2Disk, offset: number): Promise<{ promises: Ext2Promises }>;
}

/** O_RDONLY | O_NOATIME: without O_NOATIME every read updates the inode's atime (a write). */
const EXT2FS_O_RDONLY_NOATIME = 0o1000000;

async function runExt2fs(job: Ext2fsJob): Promise<void> {
  const extract = job.kind === 'ext2fs-extract';
  const dest = job.dest ?? '';
  if (extract && dest === '') throw new Error('ext2fs-extract needs dest');
  const require = createRequire(import.meta.url);
  const ext2fs = require('ext2fs') as Ext2fsModule;
  const handle = await openFile(job.image, 'r');
  let readOps = 0;
  let readBytes = 0;
  const disk: Ext2Disk = {
    read: async (buffer, bufferOffset, length, fileOffset) => {
      readOps++;
      const r = await handle.read(buffer, bufferOffset, length, fileOffset);
      readBytes += r.bytesRead;
      return { bytesRead: r.bytesRead, buffer };
    },
    write: () => Promise.reject(new Error('read-only benchmark disk')),
    flush: () => Promise.resolve(),
    discard: () => Promise.resolve(),
  };
  const device = (): DeviceStats => ({ reads: Math.round(readBytes / 4096), readOps });
  const started = performance.now();
  const elapsed = (): number => (performance.now() - started) / 1000;
  const p = (await ext2fs.mount(disk, 0)).promises;
  const stack = [...job.dirs];
  // Test hook for the parent's restart path: die (like an abort) after this many directories.
  const crashAfter = Number(process.env.BENCH_READ_EXT2FS_CRASH_AFTER ?? 'NaN');
  let dirsDone = 0;
  let buffer = Buffer.alloc(64 * 1024);
  while (stack.length > 0) {
    if (elapsed() > job.budgetSeconds) {
      emit({ type: 'done', complete: false, seconds: elapsed(), device: device() });
      await handle.close();
      return;
    }
    const dir = stack.pop() as string;
    const names = await p.readdir(dir);
    const subdirs: string[] = [];
    let entries = 0;
    let files = 0;
    let bytes = 0;
    for (const name of names) {
      if (name === '.' || name === '..') continue;
      const full = dir === '/' ? `/${name}` : `${dir}/${name}`;
      const st = await p.lstat(full);
      entries++;
      const target = extract ? path.join(dest, full) : '';
      if (st.isDirectory()) {
        subdirs.push(full);
        if (extract) fs.mkdirSync(target, { recursive: true, mode: st.mode & 0o7777 });
      } else if (st.isFile()) {
        files++;
        if (extract) {
          if (buffer.length < st.size) buffer = Buffer.alloc(st.size);
          const fh = await p.open(full, EXT2FS_O_RDONLY_NOATIME);
          let got = 0;
          try {
            while (got < st.size) {
              const r = await fh.read(buffer, got, st.size - got, got);
              if (r.bytesRead === 0) break;
              got += r.bytesRead;
            }
          } finally {
            await fh.close();
          }
          bytes += got;
          fs.writeFileSync(target, buffer.subarray(0, got), { mode: st.mode & 0o7777 });
          fs.utimesSync(target, st.atime, st.mtime);
        }
      } else if (st.isSymbolicLink() && extract) {
        const link = await p.readlink(full);
        fs.rmSync(target, { force: true });
        fs.symlinkSync(link, target);
      }
    }
    emit({ type: 'dir', dir, entries, files, bytes, subdirs, t: elapsed(), device: device() });
    if (++dirsDone === crashAfter) process.abort();
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i] as string);
  }
  emit({ type: 'done', complete: true, seconds: elapsed(), device: device() });
  await handle.close();
}

// ------------------------------------------------------------------ main

function isLibJob(job: Job): job is LibJob {
  return job.kind === 'lib-walk' || job.kind === 'lib-paths-walk' || job.kind === 'lib-extract';
}

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (arg === undefined) throw new Error('usage: read-worker.ts <job JSON>');
  const job = JSON.parse(arg) as Job;
  if (isLibJob(job)) runLib(job);
  else await runExt2fs(job);
}

try {
  await main();
} catch (error) {
  process.stderr.write(`read-worker: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(2);
}
