/**
 * The kernel as an oracle: loop mounts of test images, and a walk of a mounted tree
 * into one canonical record per path. fs-matrix.test.ts walks the same image through
 * ext4ts into the same record shape and compares the two.
 *
 * Mounts are always undone: `withMount` unmounts in `finally`, and anything still
 * mounted (a crash between mount and finally) is unmounted at process exit, before
 * the scratch directory is removed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, rmdirSync, statSync, type BigIntStats, type Dirent } from 'node:fs';

// ------------------------------------------------------------------ mounts

const mounted = new Set<string>();

function unmountAll(): void {
  for (const mnt of [...mounted]) unmount(mnt);
}
// Registered at import, so it runs before scratchDir()'s removal handler (registered later).
process.on('exit', unmountAll);

function unmount(mnt: string): void {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const r = spawnSync('umount', [mnt], { encoding: 'utf8' });
    if (r.status === 0) {
      mounted.delete(mnt);
      return;
    }
    lastError = new Error(`umount ${mnt}: ${r.stderr}`);
    if (!/busy/i.test(r.stderr)) break;
    spawnSync('sleep', ['0.2']);
  }
  // Last resort: a lazy unmount detaches it now and frees the loop device when idle.
  const lazy = spawnSync('umount', ['-l', mnt], { encoding: 'utf8' });
  if (lazy.status === 0) {
    mounted.delete(mnt);
    return;
  }
  throw lastError instanceof Error ? lastError : new Error(`umount ${mnt} failed`);
}

export interface MountOptions {
  readonly readOnly: boolean;
}

/**
 * Loop-mount `image` at the (new, unique) directory `mnt`, run `fn`, unmount. The
 * mount exists only inside this call. Mount failures include the kernel's log tail.
 */
export function withMount<T>(image: string, mnt: string, options: MountOptions, fn: (mnt: string) => T): T {
  mkdirSync(mnt, { recursive: true });
  const r = spawnSync('mount', ['-o', `${options.readOnly ? 'ro' : 'rw'},loop`, image, mnt], { encoding: 'utf8' });
  if (r.status !== 0) {
    const dmesg = spawnSync('dmesg', [], { encoding: 'utf8' });
    const tail = (dmesg.stdout ?? '').trim().split('\n').slice(-5).join('\n');
    throw new Error(`mount -o ${options.readOnly ? 'ro' : 'rw'},loop ${image} ${mnt} failed (need root and loop devices): ${r.stderr.trim()}\n${tail}`);
  }
  mounted.add(mnt);
  try {
    return fn(mnt);
  } finally {
    unmount(mnt);
    try {
      rmdirSync(mnt);
    } catch {
      // leave the empty directory; the scratch directory removal takes it
    }
  }
}

/** Unmount whatever this process still has mounted (for `after()` hooks). */
export function unmountLeftovers(): void {
  unmountAll();
}

/** True if the running kernel can mount filesystems with the casefold feature. */
export function kernelSupportsCasefold(): boolean {
  return existsSync('/sys/fs/ext4/features/casefold');
}

// ------------------------------------------------------------------ records

/** One path of a tree, as stat(2), readlink(2), read(2) and getxattr(2) see it. */
export interface PathRecord {
  /** Display form of the path (see `displayName`). */
  readonly path: string;
  readonly kind: string;
  /** The type the parent directory's entry gives (d_type); null for the root. */
  readonly direntKind: string | null;
  readonly ino: number;
  /** st_mode in octal. */
  readonly mode: string;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  /** st_blocks (512-byte units). */
  readonly blocks: number;
  /** st_blksize. */
  readonly blksize: number;
  /** "major:minor (st_rdev)" of a device node, else "0:0 (0)". */
  readonly rdev: string;
  /** Times as "seconds.nanoseconds" (nanoseconds zero-padded to 9 digits). */
  readonly atime: string;
  readonly mtime: string;
  readonly ctime: string;
  /** Creation time, or null when there is none. */
  readonly birthtime: string | null;
  /** Symlink target (display form), else null. */
  readonly target: string | null;
  /** For a relative symlink: what stat(2) through it finds ("ino N" or an errno code); else null. */
  readonly follows: string | null;
  /** Content digest of a regular file (see `ContentDigest`), else null. */
  readonly content: string | null;
  /** Extended attributes: name -> hex value, names sorted. */
  readonly xattrs: Readonly<Record<string, string>>;
  /** Set when reading this path failed: the error code and message. */
  readonly error?: string;
}

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

/**
 * A name or path as an unambiguous string: UTF-8 text as itself unless it holds a
 * backslash or a control character; otherwise every byte outside printable ASCII
 * (and every backslash) as \xNN. (Escaped forms always contain a backslash, plain
 * forms never do, so distinct byte strings give distinct strings.)
 */
export function displayName(bytes: Uint8Array): string {
  let text: string | undefined;
  try {
    text = utf8Fatal.decode(bytes);
  } catch {
    text = undefined;
  }
  // eslint-disable-next-line no-control-regex
  if (text !== undefined && !/[\\\x00-\x1f\x7f]/.test(text)) return text;
  let out = '';
  for (const b of bytes) out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return out;
}

export function joinBytes(dir: Uint8Array, name: Uint8Array): Buffer {
  if (dir.length === 1 && dir[0] === 0x2f) return Buffer.concat([dir, name]);
  return Buffer.concat([dir, Buffer.from('/'), name]);
}

/** "seconds.nanoseconds" from a nanosecond count (floor division, so ns is in 0..999999999). */
export function timeString(ns: bigint): string {
  let s = ns / 1_000_000_000n;
  let rem = ns % 1_000_000_000n;
  if (rem < 0n) {
    rem += 1_000_000_000n;
    s -= 1n;
  }
  return `${s}.${rem.toString().padStart(9, '0')}`;
}

export function timeFromParts(seconds: number, nanoseconds: number): string {
  return timeString(BigInt(seconds) * 1_000_000_000n + BigInt(nanoseconds));
}

/** Major and minor of a glibc-encoded dev_t. */
export function splitDev(dev: bigint): [number, number] {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return [major, minor];
}

export function kindOfStats(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isFIFO(): boolean; isSocket(): boolean }): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char-device';
  if (st.isBlockDevice()) return 'block-device';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return 'unknown';
}

// ------------------------------------------------------------------ content digests

/** Files up to this size are hashed whole; larger ones chunk by chunk. */
export const WHOLE_LIMIT = 4 * 1024 * 1024;
export const CHUNK = 1024 * 1024;
const zeroChunk = Buffer.alloc(CHUNK);
const zeroDigests = new Map<number, Buffer>();

function zeroDigest(length: number): Buffer {
  let d = zeroDigests.get(length);
  if (d === undefined) {
    d = createHash('sha256').update(zeroChunk.subarray(0, length)).digest();
    zeroDigests.set(length, d);
  }
  return d;
}

/**
 * A digest of a file's content that never needs the whole file in memory and
 * need not hash runs of zeros: "sha256:<hex>" of the content for files up to
 * WHOLE_LIMIT bytes, else "chunked-sha256:<hex>", the sha256 of the sha256s of
 * its 1 MiB chunks (an all-zero chunk's digest is a constant, computed once).
 * Feed bytes in file order with `update`, or declare known-zero ranges with `zeros`.
 */
export class ContentDigest {
  private readonly whole: boolean;
  private readonly outer = createHash('sha256');
  private readonly pending: Buffer[] = [];
  private pendingBytes = 0;
  private pendingZero = true;
  private fed = 0;

  constructor(readonly size: number) {
    this.whole = size <= WHOLE_LIMIT;
  }

  update(bytes: Uint8Array): void {
    let b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    while (b.length > 0) {
      const take = Math.min(b.length, this.chunkRoom());
      const part = b.subarray(0, take);
      if (this.pendingZero && !isZero(part)) this.pendingZero = false;
      this.pending.push(part);
      this.pendingBytes += take;
      this.fed += take;
      b = b.subarray(take);
      this.maybeFlush();
    }
  }

  /** `length` bytes of zeros, without materializing them. */
  zeros(length: number): void {
    let left = length;
    while (left > 0) {
      const take = Math.min(left, this.chunkRoom(), CHUNK);
      if (!this.whole && this.pendingBytes === 0 && take === this.chunkLength()) {
        this.outer.update(zeroDigest(take));
        this.fed += take;
      } else {
        this.pending.push(zeroChunk.subarray(0, take));
        this.pendingBytes += take;
        this.fed += take;
        this.maybeFlush();
      }
      left -= take;
    }
  }

  get position(): number {
    return this.fed;
  }

  digest(): string {
    if (this.fed !== this.size) throw new Error(`content digest fed ${this.fed} bytes of a ${this.size}-byte file`);
    if (this.whole) {
      const h = createHash('sha256');
      for (const p of this.pending) h.update(p);
      return `sha256:${h.digest('hex')}`;
    }
    return `chunked-sha256:${this.outer.digest('hex')}`;
  }

  private chunkLength(): number {
    if (this.whole) return Math.max(1, this.size);
    const chunkStart = this.fed - this.pendingBytes;
    return Math.min(CHUNK, this.size - chunkStart);
  }

  private chunkRoom(): number {
    if (this.whole) return Math.max(1, this.size - this.fed);
    return this.chunkLength() - this.pendingBytes;
  }

  private maybeFlush(): void {
    if (this.whole || this.pendingBytes < this.chunkLength()) return;
    if (this.pendingZero) {
      this.outer.update(zeroDigest(this.pendingBytes));
    } else {
      const h = createHash('sha256');
      for (const p of this.pending) h.update(p);
      this.outer.update(h.digest());
    }
    this.pending.length = 0;
    this.pendingBytes = 0;
    this.pendingZero = true;
  }
}

function isZero(b: Buffer): boolean {
  for (let off = 0; off < b.length; off += CHUNK) {
    const part = b.subarray(off, Math.min(b.length, off + CHUNK));
    if (!part.equals(zeroChunk.subarray(0, part.length))) return false;
  }
  return true;
}

/**
 * The byte ranges of a file that FIEMAP reports as mapped (`filefrag -v`), merged;
 * everything else is a hole the kernel reads as zeros. Lets the kernel side hash a
 * 5 GiB sparse file without reading 5 GiB through the page cache.
 */
export function mappedRanges(path: Buffer): [number, number][] {
  const name = path.toString('utf8');
  if (!Buffer.from(name, 'utf8').equals(path)) throw new Error(`filefrag needs a UTF-8 path: ${displayName(path)}`);
  const out = execFileSync('filefrag', ['-v', '-b512', name], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C' } });
  const ranges: [number, number][] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*\d+:\s*(\d+)\.\.\s*(\d+):/.exec(line);
    if (m === null) continue;
    const start = Number(m[1]) * 512;
    const end = (Number(m[2]) + 1) * 512;
    const last = ranges[ranges.length - 1];
    if (last !== undefined && start <= last[1]) last[1] = Math.max(last[1], end);
    else ranges.push([start, end]);
  }
  return ranges;
}

/** Digest of a file on a kernel mount: whole reads for small files, FIEMAP-guided for big ones. */
export function kernelContentDigest(path: Buffer, size: number): string {
  const digest = new ContentDigest(size);
  if (size === 0) return digest.digest();
  if (size <= WHOLE_LIMIT) {
    digest.update(readFileSync(path));
    return digest.digest();
  }
  const ranges = mappedRanges(path);
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(CHUNK);
    // Read every chunk a mapped range touches; declare the others zero.
    for (let chunkStart = 0; chunkStart < size; chunkStart += CHUNK) {
      const chunkEnd = Math.min(size, chunkStart + CHUNK);
      const touched = ranges.some(([s, e]) => s < chunkEnd && e > chunkStart);
      if (!touched) {
        digest.zeros(chunkEnd - chunkStart);
        continue;
      }
      let got = 0;
      while (got < chunkEnd - chunkStart) {
        const n = readSync(fd, buf, got, chunkEnd - chunkStart - got, chunkStart + got);
        if (n === 0) throw new Error(`short read of ${path.toString()} at ${chunkStart + got}`);
        got += n;
      }
      digest.update(buf.subarray(0, got));
    }
  } finally {
    closeSync(fd);
  }
  return digest.digest();
}

// ------------------------------------------------------------------ xattrs via getfattr

/** Undo getfattr's quoting of names: \ooo octal escapes (backslash itself is \134). */
function unquoteGetfattr(text: string): Buffer {
  const latin = Buffer.from(text, 'latin1');
  const out: number[] = [];
  for (let i = 0; i < latin.length; i++) {
    const c = latin[i] as number;
    if (c === 0x5c && i + 3 < latin.length && /^[0-7]{3}$/.test(latin.subarray(i + 1, i + 4).toString('latin1'))) {
      out.push(parseInt(latin.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else {
      out.push(c);
    }
  }
  return Buffer.from(out);
}

/** Run getfattr (-h -d -m - -e hex) on `paths` and add what it prints to `result`, keyed by path relative to `root`. */
function getfattrInto(root: string, paths: readonly Buffer[], recursive: boolean, result: Map<string, Record<string, string>>): void {
  const args: string[] = [];
  for (const p of paths) {
    const text = p.toString('utf8');
    if (!Buffer.from(text, 'utf8').equals(p)) throw new Error(`cannot pass a non-UTF-8 path to getfattr: ${displayName(p)}`);
    args.push(text);
  }
  const r = spawnSync('getfattr', [...(recursive ? ['-R'] : []), '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', '--', ...args], {
    maxBuffer: 1024 * 1024 * 1024,
    env: { ...process.env, LC_ALL: 'C' },
  });
  if (r.error !== undefined) throw new Error(`getfattr not runnable (install the attr package): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`getfattr ${recursive ? '-R ' : ''}${args.join(' ')} failed (${r.status}): ${r.stderr.toString()}`);
  const rootBytes = Buffer.from(root);
  let current: Record<string, string> | undefined;
  for (const line of r.stdout.toString('latin1').split('\n')) {
    if (line.startsWith('# file: ')) {
      const p = unquoteGetfattr(line.slice('# file: '.length));
      if (!p.subarray(0, rootBytes.length).equals(rootBytes)) throw new Error(`getfattr reported a path outside ${root}: ${line}`);
      const rel = p.subarray(rootBytes.length);
      const key = rel.length === 0 ? '/' : displayName(rel);
      current = {};
      result.set(key, current);
      continue;
    }
    if (line === '' || current === undefined) continue;
    const eq = line.indexOf('=');
    const name = eq < 0 ? line : line.slice(0, eq);
    const value = eq < 0 ? '' : line.slice(eq + 1);
    if (!/^(0x[0-9a-f]*)?$/.test(value)) throw new Error(`unexpected getfattr value line: ${line}`);
    current[unquoteGetfattr(name).toString('utf8')] = value.replace(/^0x/, '');
  }
}

/**
 * Every xattr under `root` (symlinks not followed), from `getfattr -R -h -d -m - -e hex`:
 * path relative to root in display form ("/" for the root) -> name -> hex value.
 * Pruned subtrees (display paths) are not descended into; their roots are still read.
 */
export function kernelXattrs(root: string, prune: ReadonlySet<string> = new Set()): Map<string, Record<string, string>> {
  const result = new Map<string, Record<string, string>>();
  const rootBytes = Buffer.from(root);
  const abs = (rel: Buffer): Buffer => (rel.length === 1 ? rootBytes : Buffer.concat([rootBytes, rel]));
  const holdsPruned = (key: string): boolean => [...prune].some((p) => key === '/' || p === key || p.startsWith(`${key}/`));
  const visit = (rel: Buffer): void => {
    const key = displayName(rel);
    if (!holdsPruned(key)) {
      getfattrInto(root, [abs(rel)], true, result);
      return;
    }
    // The directory itself, then each child: pruned ones alone, others recursively.
    getfattrInto(root, [abs(rel)], false, result);
    if (prune.has(key)) return;
    const leaves: Buffer[] = [];
    for (const e of readdirSync(abs(rel), { withFileTypes: true, encoding: 'buffer' })) {
      const child = joinBytes(rel, e.name);
      if (e.isDirectory()) visit(child);
      else leaves.push(abs(child));
    }
    if (leaves.length > 0) getfattrInto(root, leaves, false, result);
  };
  visit(Buffer.from('/'));
  return result;
}

/** Sort an xattr map by name, for deterministic records. */
export function sortedXattrs(x: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(x).sort()) out[k] = x[k] as string;
  return out;
}

// ------------------------------------------------------------------ the kernel walk

function errnoCode(error: unknown): string {
  if (error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string') return (error as NodeJS.ErrnoException).code as string;
  throw error;
}

export interface WalkOptions {
  /** Paths (display form, "/"-rooted) whose subtrees are not walked (their own record is kept). */
  readonly prune?: ReadonlySet<string>;
}

/**
 * Walk the tree mounted at `root`: one record per path ("/" is the root itself),
 * every directory listed, every file hashed, every symlink read, every xattr read.
 */
export function walkKernel(root: string, options: WalkOptions = {}): Map<string, PathRecord> {
  const rootBytes = Buffer.from(root);
  const xattrs = kernelXattrs(root, options.prune);
  const records = new Map<string, PathRecord>();
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
    records.set(key, {
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
      content: kind === 'file' ? kernelContentDigest(abs, size) : null,
      xattrs: sortedXattrs(xattrs.get(key) ?? {}),
    });
    if (kind === 'directory' && !(options.prune?.has(key) ?? false)) {
      const entries: Dirent<Buffer>[] = readdirSync(abs, { withFileTypes: true, encoding: 'buffer' });
      for (const e of entries) stack.push({ rel: joinBytes(rel, e.name), direntKind: kindOfStats(e) });
    }
  }
  return records;
}

/** lstat through the kernel: "ino N" or the errno code. */
export function kernelProbe(root: string, rel: Uint8Array, follow: boolean): string {
  const abs = Buffer.concat([Buffer.from(root), rel[0] === 0x2f ? Buffer.alloc(0) : Buffer.from('/'), rel]);
  try {
    const st = follow ? statSync(abs, { bigint: true }) : lstatSync(abs, { bigint: true });
    return `ino ${st.ino}`;
  } catch (error) {
    return errnoCode(error);
  }
}
