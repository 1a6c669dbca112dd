/**
 * Typed wrapper over the `ext4ts_native` N-API addon (native/ext4ts_native.c): the
 * Linux syscalls Node.js lacks — flock, fallocate, the block-device ioctls,
 * file-descriptor passing over unix sockets (to receive /dev/fuse from fusermount3),
 * the kernel's coarse clock for inode times, read-ahead hints (posix_fadvise), and for
 * `ext4ts get`: nanosecond times that may precede 1970 (utimensat), mknod and lsetxattr.
 * Paths ({@link NativePath}) are strings or raw bytes (Buffer/Uint8Array), so names that
 * are not UTF-8 work.
 *
 * The addon is built by node-gyp when the package is installed (`npm ci` runs the
 * `install` script), or by hand with `npm run build:native`. It is loaded lazily on
 * first use. When it is missing or cannot be loaded, `isNativeAvailable()` is false
 * and every function throws `FsError('EOPNOTSUPP')` saying how to build it.
 *
 * Every call is synchronous and blocks the calling thread (a blocking `flock` or
 * `recvFd` waits until it can proceed), like the rest of the ext4ts core.
 *
 * Errors: a failed syscall throws a plain `Error` shaped as {@link NativeSyscallError}:
 * `code` is the errno name ('EAGAIN', 'EOPNOTSUPP', 'EBUSY', ...), `errno` the positive
 * Linux errno number, `syscall` the call that failed ('flock', 'ioctl(BLKDISCARD)', ...).
 * Invalid numeric arguments (negative, fractional, above 2^53) throw the same shape with
 * code 'EINVAL' before any syscall is made. Callers in `io/` map these to `FsError` with
 * `fromSystemError` (src/errors.ts).
 *
 * Units: all offsets and lengths are bytes, as JavaScript numbers exact up to 2^53.
 */
import { createRequire } from 'node:module';
import { FsError } from '../errors.js';

/** fallocate mode: do not change the file size (st_size) even when allocating past it. */
export const FALLOC_FL_KEEP_SIZE = 0x01;
/** fallocate mode: deallocate the range (reads return zeros); must be or-ed with KEEP_SIZE. */
export const FALLOC_FL_PUNCH_HOLE = 0x02;
/** fallocate mode: make the range read as zeros, keeping (or allocating) its blocks. */
export const FALLOC_FL_ZERO_RANGE = 0x10;

export type FlockOperation = 'shared' | 'exclusive' | 'unlock';

/**
 * A path for the addon: a string (encoded as UTF-8) or the raw bytes of the name
 * (Buffer or Uint8Array). It must not contain a NUL byte (EINVAL) and must be shorter
 * than PATH_MAX, 4096 bytes (ENAMETOOLONG).
 */
export type NativePath = string | Uint8Array;

/** The shape of the errors the addon throws for a failed syscall or a bad argument. */
export interface NativeSyscallError extends Error {
  /** errno name, e.g. 'EAGAIN'; 'E<number>' for a number the addon has no name for. */
  readonly code: string;
  /** Positive Linux errno number, e.g. 11 for EAGAIN. */
  readonly errno: number;
  /** The syscall (or, for a bad argument, the function) that failed. */
  readonly syscall: string;
}

/** True for an error thrown by the addon for a failed syscall or a bad argument. */
export function isNativeSyscallError(error: unknown): error is NativeSyscallError {
  return (
    error instanceof Error &&
    typeof (error as Partial<NativeSyscallError>).code === 'string' &&
    typeof (error as Partial<NativeSyscallError>).errno === 'number' &&
    typeof (error as Partial<NativeSyscallError>).syscall === 'string'
  );
}

/** What the .node file exports (see the table at the top of native/ext4ts_native.c). */
interface Binding {
  flock(fd: number, op: number, nonBlocking: boolean): void;
  fallocate(fd: number, mode: number, offset: number, length: number): void;
  blockDeviceSize(fd: number): number;
  blockSectorSize(fd: number): number;
  blockDiscard(fd: number, offset: number, length: number): void;
  blockZeroout(fd: number, offset: number, length: number): void;
  sendFd(socketFd: number, fd: number): void;
  recvFd(socketFd: number): number;
  socketpair(): [number, number];
  lutimens(path: NativePath, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void;
  mknod(path: NativePath, mode: number, major: number, minor: number): void;
  lsetxattr(path: NativePath, name: string, value: Uint8Array): void;
  pwriteBatch(fd: number, buffers: readonly Uint8Array[], offsets: Float64Array): void;
  // Newer than the rest: an addon built from an older checkout lacks them.
  lgetxattr?(path: NativePath, name: string): Buffer | undefined;
  writeNewFile?(path: NativePath, data: Uint8Array, mode: number, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void;
  inodeChecksumsOk?(records: Uint8Array, inodeSize: number, fsSeed: number, firstIno: number, out: Uint8Array): number;
  fileWriterCreate?(): WriterHandle;
  fileWriterAdd?(writer: WriterHandle, path: NativePath, data: Uint8Array, mode: number, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): number;
  fileWriterAddFromFd?(writer: WriterHandle, path: NativePath, fd: number, offset: number, length: number, source: NativePath, mode: number, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): number;
  fileWriterTake?(writer: WriterHandle): RawWriterFailure[];
  fileWriterDrain?(writer: WriterHandle): RawWriterFailure[];
  clockCoarse?(out: Float64Array): void;
  adviseWillNeed?(fd: number, offset: number, length: number): void;
  readSpin?(fd: number, buffer: Uint8Array, spinMicros: number): number;
  setNonBlocking?(fd: number): void;
}

/** The addon's file writer (an opaque external value). */
declare const writerHandle: unique symbol;
type WriterHandle = { readonly [writerHandle]: true };

/** A failure as the addon's file writer reports it. */
interface RawWriterFailure {
  readonly path: Buffer;
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  readonly message: string;
  readonly source?: Buffer;
}

/**
 * Path of the addon relative to this module. This file runs from `src/io/` (tsx) or
 * `dist/io/` (after `tsc`); both are two levels below the package root.
 */
const ADDON_PATH = '../../native/build/Release/ext4ts_native.node';

let binding: Binding | undefined;
let loadError: unknown;
let loadAttempted = false;

function tryLoad(): Binding | undefined {
  if (!loadAttempted) {
    loadAttempted = true;
    try {
      const require = createRequire(import.meta.url);
      binding = require(ADDON_PATH) as Binding;
    } catch (error) {
      loadError = error;
    }
  }
  return binding;
}

function load(): Binding {
  const loaded = tryLoad();
  if (loaded !== undefined) return loaded;
  const reason = loadError instanceof Error ? loadError.message.split('\n')[0] : String(loadError);
  throw new FsError(
    'EOPNOTSUPP',
    `the ext4ts native helper (native/build/Release/ext4ts_native.node) is not built or cannot be loaded: ${reason}; ` +
      'build it with `npm rebuild` or `npm run build:native` (needs python3, make and a C compiler)',
    {},
    { cause: loadError },
  );
}

/** True when the addon is built and loads; never throws. */
export function isNativeAvailable(): boolean {
  return tryLoad() !== undefined;
}

const FLOCK_OPS: Readonly<Record<FlockOperation, number>> = { shared: 0, exclusive: 1, unlock: 2 };

/**
 * flock(2) on `fd`: take a shared or exclusive advisory lock, or release it. Locks
 * belong to the open file description: two `fs.openSync` of one file conflict, two
 * fds from `dup` do not. With `nonBlocking`, a conflicting lock throws EAGAIN;
 * without it the call waits (blocking the thread).
 */
export function flock(fd: number, op: FlockOperation, nonBlocking: boolean): void {
  const code = FLOCK_OPS[op] as number | undefined;
  if (code === undefined) {
    throw new FsError('EINVAL', `flock: op must be 'shared', 'exclusive' or 'unlock', got ${String(op)}`);
  }
  load().flock(fd, code, nonBlocking);
}

/**
 * fallocate(2): `mode` 0 allocates [offset, offset+length) (growing the file);
 * FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE frees it; FALLOC_FL_ZERO_RANGE zeroes it.
 * Filesystems that lack a mode throw EOPNOTSUPP.
 */
export function fallocate(fd: number, mode: number, offset: number, length: number): void {
  load().fallocate(fd, mode, offset, length);
}

/** Size in bytes of the block device open on `fd` (ioctl BLKGETSIZE64). ENOTTY on a regular file. */
export function blockDeviceSize(fd: number): number {
  return load().blockDeviceSize(fd);
}

/** Logical sector size in bytes of the block device on `fd` (ioctl BLKSSZGET), e.g. 512. */
export function blockSectorSize(fd: number): number {
  return load().blockSectorSize(fd);
}

/**
 * Discard [offset, offset+length) on the block device on `fd` (ioctl BLKDISCARD).
 * Both must be multiples of the logical sector size (else EINVAL); EOPNOTSUPP where
 * the device does not support discard. What a discarded range reads back as is up to
 * the device (a loop device over a file punches a hole: zeros).
 */
export function blockDiscard(fd: number, offset: number, length: number): void {
  load().blockDiscard(fd, offset, length);
}

/**
 * Make [offset, offset+length) on the block device on `fd` read as zeros (ioctl
 * BLKZEROOUT). Both must be multiples of the logical sector size (else EINVAL).
 */
export function blockZeroout(fd: number, offset: number, length: number): void {
  load().blockZeroout(fd, offset, length);
}

/** Send `fd` over the unix socket `socketFd` (SCM_RIGHTS, with one data byte). */
export function sendFd(socketFd: number, fd: number): void {
  load().sendFd(socketFd, fd);
}

/**
 * Receive one file descriptor sent with SCM_RIGHTS over the unix socket `socketFd`
 * (blocking recvmsg). The new fd is close-on-exec; extra fds in the same message are
 * closed. A message without an fd, or the peer closing the socket first (as
 * fusermount3 does when it fails), throws ENOMSG.
 */
export function recvFd(socketFd: number): number {
  return load().recvFd(socketFd);
}

/**
 * A connected pair of unix stream sockets (AF_UNIX, SOCK_STREAM, close-on-exec).
 * To hand one end to a child (fusermount3's _FUSE_COMMFD), pass it in the child's
 * `stdio` array: the child's copy is made by dup2 and so survives exec.
 */
export function socketpair(): [number, number] {
  return load().socketpair();
}

/**
 * utimensat(AT_FDCWD, path, [atime, mtime], AT_SYMLINK_NOFOLLOW): set the access and
 * modification times to the nanosecond, on a symlink itself rather than its target.
 * Seconds since the epoch are integers in [-2^53, 2^53] (negative: before 1970);
 * nanoseconds integers in [0, 999999999]; anything else throws EINVAL before the call.
 */
export function lutimens(path: NativePath, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void {
  load().lutimens(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec);
}

/** S_IF* file-type bits for {@link mknod}'s `mode`. */
export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFSOCK = 0o140000;

/**
 * mknod(path, mode, makedev(major, minor)): `mode` is a file type ({@link S_IFCHR},
 * S_IFBLK, S_IFIFO, S_IFSOCK, or 0 for a regular file) or-ed with the permission bits,
 * which the umask reduces. Devices need CAP_MKNOD (else EPERM); an existing path is EEXIST.
 * `major` and `minor` are integers in [0, 2^32); they are ignored for fifos and sockets.
 */
export function mknod(path: NativePath, mode: number, major: number, minor: number): void {
  load().mknod(path, mode, major, minor);
}

/**
 * lsetxattr(path, name, value, size, 0): create or replace an extended attribute, on a
 * symlink itself rather than its target. A filesystem (or, for user.* on a symlink, a
 * file type) without xattr support throws EOPNOTSUPP (the same number as ENOTSUP on Linux);
 * a name longer than 255 bytes throws ERANGE.
 */
export function lsetxattr(path: NativePath, name: string, value: Uint8Array): void {
  load().lsetxattr(path, name, value);
}

/**
 * pwrite(2) of every `buffers[i]`, in full, at byte offset `offsets[i]`, in order: one
 * call into C for a whole write-back rather than one fs.writeSync per block (each costs
 * several microseconds of Node overhead on top of the syscall). Stops at the first
 * failure and throws it; which of the later buffers were written is then unknown.
 */
export function pwriteBatch(fd: number, buffers: readonly Uint8Array[], offsets: Float64Array): void {
  load().pwriteBatch(fd, buffers, offsets);
}

/** The addon's function `name`, or EOPNOTSUPP saying to rebuild it (built from an older checkout). */
function newer<K extends 'lgetxattr' | 'writeNewFile'>(name: K): NonNullable<Binding[K]> {
  const fn = load()[name];
  if (fn === undefined) throw new FsError('EOPNOTSUPP', `the ext4ts native helper is older than this code (it has no ${name}); rebuild it with \`npm run build:native\``);
  return fn;
}

/**
 * lgetxattr(2): the value of one extended attribute of `path` (a symlink itself, not
 * its target), or undefined when it has none of that name (ENODATA) or its filesystem
 * has no extended attributes (EOPNOTSUPP).
 */
export function lgetxattr(path: NativePath, name: string): Buffer | undefined {
  return newer('lgetxattr').call(load(), path, name);
}

/** True when {@link writeNewFile} can be called (the addon is built, and recent enough). */
export function canWriteNewFile(): boolean {
  return tryLoad()?.writeNewFile !== undefined;
}

/**
 * A new regular file holding `data`, in one call into C: open(O_WRONLY | O_CREAT |
 * O_EXCL, mode) (the umask applies; an existing path, symlinks included, is EEXIST),
 * write all of `data`, futimens (times as for {@link lutimens}), close. A failure
 * throws with `syscall` naming the call that failed ('open', 'write', 'futimens',
 * 'close'); the descriptor is closed; a file whose data could not all be written is
 * removed again, one whose times could not be set stays (its data complete).
 */
export function writeNewFile(path: NativePath, data: Uint8Array, mode: number, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void {
  newer('writeNewFile').call(load(), path, data, mode, atimeSec, atimeNsec, mtimeSec, mtimeNsec);
}

/**
 * The metadata_csum check of every inode record in `records` (consecutive records of an
 * inode table, record i being inode `firstIno + i`) in one call into C (hardware CRC32C
 * where the CPU has it): `out[i]` = 1 when record i's stored checksum is the computed
 * one, else 0. Returns how many matched. A record that does not match may still be
 * acceptable (an all-zero, never-written one): callers check those one by one.
 * Undefined when the addon is missing or older than this function: the caller then
 * checks every record itself.
 */
export function inodeChecksumsOk(records: Uint8Array, inodeSize: number, fsSeed: number, firstIno: number, out: Uint8Array): number | undefined {
  const b = tryLoad();
  return b?.inodeChecksumsOk === undefined ? undefined : b.inodeChecksumsOk(records, inodeSize, fsSeed >>> 0, firstIno, out);
}

/**
 * The time the kernel stamps inodes with (current_time(): CLOCK_REALTIME_COARSE, the
 * last timer tick) into `out` ([seconds, nanoseconds]). False, `out` untouched, when
 * the addon is missing or older than this function.
 */
export function clockCoarse(out: Float64Array): boolean {
  const b = tryLoad();
  if (b?.clockCoarse === undefined) return false;
  b.clockCoarse(out);
  return true;
}

/**
 * posix_fadvise(POSIX_FADV_WILLNEED) on [offset, offset+length) of `fd`: the kernel
 * starts reading the range's missing pages into the page cache and this returns at
 * once. False, nothing done, when the addon is missing or older than this function.
 */
export function adviseWillNeed(fd: number, offset: number, length: number): boolean {
  const b = tryLoad();
  if (b?.adviseWillNeed === undefined) return false;
  b.adviseWillNeed(fd, offset, length);
  return true;
}

/**
 * A reader of `fd` (made non-blocking here, once) that, when nothing is there, tries
 * again for up to `spinMicros` (yielding the CPU between tries) before it waits in
 * poll(2); returns the bytes read. Undefined when the addon is missing or older than
 * this function. For /dev/fuse: see the addon's readSpin.
 */
export function spinningReader(fd: number, spinMicros: number): ((buffer: Uint8Array) => number) | undefined {
  const b = tryLoad();
  if (b?.readSpin === undefined || b.setNonBlocking === undefined) return undefined;
  const addon = b as Required<Pick<Binding, 'readSpin' | 'setNonBlocking'>>;
  addon.setNonBlocking(fd);
  return (buffer) => addon.readSpin(fd, buffer, spinMicros);
}

/** A file {@link BackgroundFileWriter} could not write: `error` is shaped like a failed syscall's (code, errno, syscall). */
export interface BackgroundWriteFailure {
  readonly path: Buffer;
  readonly error: NativeSyscallError;
  /** The `source` given to addFromFd, when reading the data failed (syscall 'read'). */
  readonly source?: Buffer;
}

/**
 * New regular files written on two threads of the addon's own, so that the caller goes
 * on while the syscalls are made (`ext4ts get`: reading the image overlaps writing the
 * destination when there are two CPUs). `add` does what {@link writeNewFile} does for
 * one file (open O_CREAT|O_EXCL with `mode`, less the umask; write; futimens; close),
 * later; the data is copied, so the caller may reuse its buffer. `addFromFd` leaves the
 * reading of the data to the thread too. Files go over in batches (256 files or 2 MiB),
 * written in parallel, in no set order between batches; when six batches are
 * unfinished, adding waits, so memory stays bounded.
 *
 * Failures come back from `take` (those so far) and `drain` (which first waits until
 * every file added is written): a file whose data could not all be written is removed
 * (it was created by us), and after ENOSPC, EDQUOT or EROFS the files not yet written
 * are dropped (only that failure is reported). The umask in force when a file is
 * written applies: change it only after `drain`. Anything that needs the files to
 * exist (a hard link to one, its directory's times) must `drain` first.
 */
export class BackgroundFileWriter {
  private readonly handle: WriterHandle;
  private readonly binding: Binding;
  /** Files added since the last drain. */
  private pending = 0;

  constructor() {
    this.binding = load();
    if (this.binding.fileWriterCreate === undefined || this.binding.fileWriterAddFromFd === undefined) {
      throw new FsError('EOPNOTSUPP', 'the ext4ts native helper is older than this code (it has no fileWriterAddFromFd); rebuild it with `npm run build:native`');
    }
    this.handle = this.binding.fileWriterCreate();
  }

  /** Queues a new file; returns how many failures wait to be taken. */
  add(path: NativePath, data: Uint8Array, mode: number, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): number {
    const waiting = (this.binding.fileWriterAdd as NonNullable<Binding['fileWriterAdd']>)(this.handle, path, data, mode, atimeSec, atimeNsec, mtimeSec, mtimeNsec);
    this.pending++;
    return waiting;
  }

  /**
   * Queues a new file whose data is `length` bytes at byte `offset` of the open file
   * `fd`, read by the writer's thread just before it creates the file (nothing is
   * created when that read fails; the failure then has syscall 'read' and `source`).
   * `fd` must stay open, and those bytes unchanged, until `drain`. At most 16 MiB.
   */
  addFromFd(path: NativePath, fd: number, offset: number, length: number, source: NativePath, mode: number, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): number {
    const waiting = (this.binding.fileWriterAddFromFd as NonNullable<Binding['fileWriterAddFromFd']>)(this.handle, path, fd, offset, length, source, mode, atimeSec, atimeNsec, mtimeSec, mtimeNsec);
    this.pending++;
    return waiting;
  }

  /** Whether files were added since the last drain. */
  get busy(): boolean {
    return this.pending > 0;
  }

  /** The failures so far, without waiting. */
  take(): BackgroundWriteFailure[] {
    return (this.binding.fileWriterTake as NonNullable<Binding['fileWriterTake']>)(this.handle).map(toFailure);
  }

  /** Waits until every file added is written (or dropped); then the failures. */
  drain(): BackgroundWriteFailure[] {
    if (this.pending === 0) return this.take();
    this.pending = 0;
    return (this.binding.fileWriterDrain as NonNullable<Binding['fileWriterDrain']>)(this.handle).map(toFailure);
  }
}

function toFailure(raw: RawWriterFailure): BackgroundWriteFailure {
  const error = Object.assign(new Error(raw.message), { code: raw.code, errno: raw.errno, syscall: raw.syscall });
  return raw.source === undefined ? { path: raw.path, error } : { path: raw.path, error, source: raw.source };
}

/** True when a {@link BackgroundFileWriter} can be made (the addon is built, and recent enough). */
export function canWriteInBackground(): boolean {
  return tryLoad()?.fileWriterAddFromFd !== undefined;
}

/** The same functions and constants as one object. */
export const native = {
  isNativeAvailable,
  flock,
  fallocate,
  blockDeviceSize,
  blockSectorSize,
  blockDiscard,
  blockZeroout,
  sendFd,
  recvFd,
  socketpair,
  lutimens,
  mknod,
  lsetxattr,
  pwriteBatch,
  lgetxattr,
  writeNewFile,
  canWriteNewFile,
  canWriteInBackground,
  inodeChecksumsOk,
  clockCoarse,
  S_IFIFO,
  S_IFCHR,
  S_IFBLK,
  S_IFSOCK,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
} as const;
