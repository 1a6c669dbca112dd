/**
 * The FUSE kernel ABI: constants, struct layouts, request-argument decoders and
 * reply/notification encoders, as bytes. Pure functions over `Uint8Array`/`DataView`,
 * no I/O; `protocol.ts` builds requests and replies on top of these.
 *
 * Source of truth: the kernel's `include/uapi/linux/fuse.h`, protocol 7.45 (Linux 6.18).
 * Every offset below is the C struct's, little-endian, with the struct's size as `SIZE`.
 *
 * Integer conventions (see DESIGN.md, "64-bit values"):
 * - `unique` and lock owners are arbitrary u64 values the kernel makes up: `bigint`.
 * - Node ids, file handles, lookup counts and flags are values we hand out (or small):
 *   numbers, and a value of 2^53 or more is a malformed request (FsError EINVAL).
 * - File offsets and lengths the kernel passes through from user space (read/write/lseek
 *   offsets, fallocate and copy_file_range ranges, setattr size) saturate at
 *   `Number.MAX_SAFE_INTEGER`: ext4's largest file is far below 2^53 bytes, so such an
 *   offset is past the end of any file and the filesystem answers exactly as it would
 *   for the real value (0 bytes read, EFBIG, ENXIO). copy_file_range's length in
 *   particular is often "as much as possible" (close to 2^63).
 * - Times are signed 64-bit seconds (time64_t) stored in u64 fields: negative seconds
 *   (before 1970) are written as two's complement, which is what the kernel reads back
 *   when it assigns the field to a time64_t.
 *
 * Decoders take the request's argument bytes (after the 40-byte `fuse_in_header`, before
 * any extensions), check every length against that region, and throw `FsError` with code
 * EINVAL on a short or malformed request; they never read outside it. Names and write data
 * are returned as views into the request buffer: they are valid until the buffer is reused
 * for the next request; copy them to keep them.
 *
 * Encoders take values from the filesystem and throw `FsError` EOVERFLOW when a value does
 * not fit its field (negative, not an integer, or too large).
 */
import { FsError } from '../errors.js';

// ---------------------------------------------------------------------------------------
// Versions and fixed numbers
// ---------------------------------------------------------------------------------------

/** Major version of the FUSE protocol this module speaks. */
export const FUSE_KERNEL_VERSION = 7;
/** Minor version this module implements; the session uses min(kernel's, this). */
export const FUSE_KERNEL_MINOR_VERSION = 45;
/**
 * Oldest kernel minor accepted (Linux 2.6.29, 2009): from 7.12 on, every request struct
 * used here has its current size except fuse_init_in (grew in 7.6 and 7.36) and
 * fuse_setxattr_in (extended form only when FUSE_SETXATTR_EXT is negotiated), and
 * fuse_init_out is 24 bytes before 7.23.
 */
export const FUSE_MIN_KERNEL_MINOR = 12;
/** Node id of the root directory. */
export const FUSE_ROOT_ID = 1;
/** A /dev/fuse read buffer must be at least this big, and at least max_write + 80 (in header + fuse_write_in). */
export const FUSE_MIN_READ_BUFFER = 8192;
/** Longest name the kernel accepts in a directory entry or notification (fc->name_max default). */
export const FUSE_NAME_MAX = 1024;
/** Bit 63 of `unique`: the kernel is resending this request (FUSE_HAS_RESEND). */
export const FUSE_UNIQUE_RESEND = 1n << 63n;
/** uid/gid the kernel sends when an idmapped mount cannot map the caller (FUSE_ALLOW_IDMAP). */
export const FUSE_INVALID_UIDGID = 0xffff_ffff;

/** Request opcodes (enum fuse_opcode). */
export const Opcode = {
  LOOKUP: 1,
  FORGET: 2, // no reply
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36, // no reply
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  NOTIFY_REPLY: 41, // no reply
  BATCH_FORGET: 42, // no reply
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SETUPMAPPING: 48,
  REMOVEMAPPING: 49,
  SYNCFS: 50,
  TMPFILE: 51,
  STATX: 52,
  COPY_FILE_RANGE_64: 53,
  CUSE_INIT: 4096,
} as const;

export type OpcodeName = keyof typeof Opcode;

const OPCODE_NAMES: ReadonlyMap<number, OpcodeName> = new Map(
  (Object.keys(Opcode) as OpcodeName[]).map((name) => [Opcode[name], name]),
);

/** "LOOKUP", "READ", ... or "opcode N" for an unknown one (for logs and messages). */
export function opcodeName(opcode: number): string {
  return OPCODE_NAMES.get(opcode) ?? `opcode ${opcode}`;
}

/**
 * INIT flags (fuse_init_in/out `flags`, and bits 32..63 in `flags2` when FUSE_INIT_EXT is
 * set). As `bigint` because they pass 2^31; INIT happens once per mount.
 */
export const InitFlag = {
  ASYNC_READ: 1n << 0n,
  POSIX_LOCKS: 1n << 1n,
  FILE_OPS: 1n << 2n,
  ATOMIC_O_TRUNC: 1n << 3n,
  EXPORT_SUPPORT: 1n << 4n,
  BIG_WRITES: 1n << 5n,
  DONT_MASK: 1n << 6n,
  SPLICE_WRITE: 1n << 7n,
  SPLICE_MOVE: 1n << 8n,
  SPLICE_READ: 1n << 9n,
  FLOCK_LOCKS: 1n << 10n,
  HAS_IOCTL_DIR: 1n << 11n,
  AUTO_INVAL_DATA: 1n << 12n,
  DO_READDIRPLUS: 1n << 13n,
  READDIRPLUS_AUTO: 1n << 14n,
  ASYNC_DIO: 1n << 15n,
  WRITEBACK_CACHE: 1n << 16n,
  NO_OPEN_SUPPORT: 1n << 17n,
  PARALLEL_DIROPS: 1n << 18n,
  HANDLE_KILLPRIV: 1n << 19n,
  POSIX_ACL: 1n << 20n,
  ABORT_ERROR: 1n << 21n,
  MAX_PAGES: 1n << 22n,
  CACHE_SYMLINKS: 1n << 23n,
  NO_OPENDIR_SUPPORT: 1n << 24n,
  EXPLICIT_INVAL_DATA: 1n << 25n,
  MAP_ALIGNMENT: 1n << 26n,
  SUBMOUNTS: 1n << 27n,
  HANDLE_KILLPRIV_V2: 1n << 28n,
  SETXATTR_EXT: 1n << 29n,
  INIT_EXT: 1n << 30n,
  INIT_RESERVED: 1n << 31n,
  // bits 32..63 travel in flags2
  SECURITY_CTX: 1n << 32n,
  HAS_INODE_DAX: 1n << 33n,
  CREATE_SUPP_GROUP: 1n << 34n,
  HAS_EXPIRE_ONLY: 1n << 35n,
  DIRECT_IO_ALLOW_MMAP: 1n << 36n,
  PASSTHROUGH: 1n << 37n,
  NO_EXPORT_SUPPORT: 1n << 38n,
  HAS_RESEND: 1n << 39n,
  ALLOW_IDMAP: 1n << 40n,
  OVER_IO_URING: 1n << 41n,
  REQUEST_TIMEOUT: 1n << 42n,
} as const;

/** Names of the INIT flags set in `flags`, lowest bit first; unknown bits as "bit N". */
export function describeInitFlags(flags: bigint): string[] {
  const names: string[] = [];
  for (let bit = 0n; bit < 64n; bit++) {
    const mask = 1n << bit;
    if ((flags & mask) === 0n) continue;
    const name = (Object.keys(InitFlag) as (keyof typeof InitFlag)[]).find((key) => InitFlag[key] === mask);
    names.push(name ?? `bit ${bit.toString()}`);
  }
  return names;
}

/** CUSE INIT flags. */
export const CUSE_UNRESTRICTED_IOCTL = 1 << 0;

/** fuse_open_out.open_flags (FOPEN_*). */
export const FOPEN = {
  DIRECT_IO: 1 << 0,
  KEEP_CACHE: 1 << 1,
  NONSEEKABLE: 1 << 2,
  CACHE_DIR: 1 << 3,
  STREAM: 1 << 4,
  NOFLUSH: 1 << 5,
  PARALLEL_DIRECT_WRITES: 1 << 6,
  PASSTHROUGH: 1 << 7,
} as const;

/** fuse_open_in/fuse_create_in.open_flags (FUSE_OPEN_*). */
export const OpenInFlag = {
  KILL_SUIDGID: 1 << 0,
} as const;

/** fuse_setattr_in.valid (FATTR_*). */
export const FATTR = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  FH: 1 << 6,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
  LOCKOWNER: 1 << 9,
  CTIME: 1 << 10,
  KILL_SUIDGID: 1 << 11,
} as const;

/** fuse_release_in.release_flags. */
export const ReleaseFlag = { FLUSH: 1 << 0, FLOCK_UNLOCK: 1 << 1 } as const;
/** fuse_getattr_in.getattr_flags (also fuse_statx_in). */
export const GetattrFlag = { FH: 1 << 0 } as const;
/** fuse_lk_in.lk_flags. */
export const LkFlag = { FLOCK: 1 << 0 } as const;
/** fuse_read_in.read_flags. */
export const ReadFlag = { LOCKOWNER: 1 << 1 } as const;
/** fuse_write_in.write_flags. */
export const WriteFlag = { CACHE: 1 << 0, LOCKOWNER: 1 << 1, KILL_SUIDGID: 1 << 2 } as const;
/** fuse_fsync_in.fsync_flags. */
export const FsyncFlag = { FDATASYNC: 1 << 0 } as const;
/** fuse_attr.flags. */
export const AttrFlag = { SUBMOUNT: 1 << 0, DAX: 1 << 1 } as const;
/** fuse_notify_inval_entry_out.flags (needs FUSE_HAS_EXPIRE_ONLY). */
export const InvalEntryFlag = { EXPIRE_ONLY: 1 << 0 } as const;
/** fuse_setxattr_in.setxattr_flags (extended layout only). */
export const SetxattrExtFlag = { ACL_KILL_SGID: 1 << 0 } as const;
/** fuse_setxattr_in.flags: setxattr(2)'s flags. */
export const XattrFlag = { CREATE: 1, REPLACE: 2 } as const;
/** fuse_ioctl_in.flags / fuse_ioctl_out.flags (FUSE_IOCTL_*). */
export const IoctlFlag = {
  /** A 32-bit caller on a 64-bit kernel (compat_ioctl). */
  COMPAT: 1 << 0,
  /** CUSE only: the server may ask for arbitrary iovecs (RETRY). */
  UNRESTRICTED: 1 << 1,
  /** Reply: retry with the iovecs that follow fuse_ioctl_out (unrestricted ioctls only). */
  RETRY: 1 << 2,
  /** The caller's longs and pointers are 32-bit. */
  BIT32: 1 << 3,
  /** The ioctl is on a directory. */
  DIR: 1 << 4,
  /** x32 ABI caller. */
  COMPAT_X32: 1 << 5,
} as const;
/** Most iovecs a RETRY reply may ask for. */
export const FUSE_IOCTL_MAX_IOV = 256;

/**
 * ioctl commands that reach a FUSE filesystem as FUSE_IOCTL (linux/fs.h): since Linux 5.13
 * the VFS's fileattr_get/fileattr_set (FS_IOC_GETFLAGS and friends, i.e. lsattr/chattr)
 * are sent by fuse_priv_ioctl with the 64-bit command numbers and an exact size:
 * GETFLAGS/SETFLAGS carry a 4-byte int (though the number says `long`), FSGETXATTR/
 * FSSETXATTR a 28-byte struct fsxattr. The 32-bit numbers (FS_IOC32_*) are what a 32-bit
 * kernel sends, and what a compat caller's own ioctl would carry.
 */
export const IoctlCmd = {
  /** _IOR('f', 1, long) on a 64-bit kernel. */
  FS_IOC_GETFLAGS: 0x8008_6601,
  /** _IOW('f', 2, long) on a 64-bit kernel. */
  FS_IOC_SETFLAGS: 0x4008_6602,
  /** _IOR('f', 1, int). */
  FS_IOC32_GETFLAGS: 0x8004_6601,
  /** _IOW('f', 2, int). */
  FS_IOC32_SETFLAGS: 0x4004_6602,
  /** _IOR('X', 31, struct fsxattr). */
  FS_IOC_FSGETXATTR: 0x801c_581f,
  /** _IOW('X', 32, struct fsxattr). */
  FS_IOC_FSSETXATTR: 0x401c_5820,
} as const;

/** struct fsxattr's fsx_xflags bits (FS_XFLAG_*, linux/fs.h). */
export const FsXflag = {
  REALTIME: 0x0000_0001,
  PREALLOC: 0x0000_0002,
  IMMUTABLE: 0x0000_0008,
  APPEND: 0x0000_0010,
  SYNC: 0x0000_0020,
  NOATIME: 0x0000_0040,
  NODUMP: 0x0000_0080,
  RTINHERIT: 0x0000_0100,
  PROJINHERIT: 0x0000_0200,
  NOSYMLINKS: 0x0000_0400,
  EXTSIZE: 0x0000_0800,
  EXTSZINHERIT: 0x0000_1000,
  NODEFRAG: 0x0000_2000,
  FILESTREAM: 0x0000_4000,
  DAX: 0x0000_8000,
  COWEXTSIZE: 0x0001_0000,
  HASATTR: 0x8000_0000,
} as const;


/** Notification codes (enum fuse_notify_code): the `error` field of an unsolicited message. */
export const NotifyCode = {
  POLL: 1,
  INVAL_INODE: 2,
  INVAL_ENTRY: 3,
  STORE: 4,
  RETRIEVE: 5,
  DELETE: 6,
  RESEND: 7,
  INC_EPOCH: 8,
  PRUNE: 9,
} as const;

/** fuse_lseek_in.whence. */
export const Whence = { SET: 0, CUR: 1, END: 2, DATA: 3, HOLE: 4 } as const;
/** fuse_rename2_in.flags (renameat2(2)). */
export const RenameFlag = { NOREPLACE: 1 << 0, EXCHANGE: 1 << 1, WHITEOUT: 1 << 2 } as const;
/** fuse_fallocate_in.mode (fallocate(2), linux/falloc.h). */
export const FallocateMode = {
  KEEP_SIZE: 0x01,
  PUNCH_HOLE: 0x02,
  NO_HIDE_STALE: 0x04,
  COLLAPSE_RANGE: 0x08,
  ZERO_RANGE: 0x10,
  INSERT_RANGE: 0x20,
  UNSHARE_RANGE: 0x40,
} as const;
/** fuse_access_in.mask (access(2)). */
export const AccessMask = { F_OK: 0, X_OK: 1, W_OK: 2, R_OK: 4 } as const;

/** statx mask bits (fuse_statx_in.sx_mask, fuse_statx.mask; linux/stat.h). */
export const StatxMask = {
  TYPE: 0x0001,
  MODE: 0x0002,
  NLINK: 0x0004,
  UID: 0x0008,
  GID: 0x0010,
  ATIME: 0x0020,
  MTIME: 0x0040,
  CTIME: 0x0080,
  INO: 0x0100,
  SIZE: 0x0200,
  BLOCKS: 0x0400,
  BASIC_STATS: 0x07ff,
  BTIME: 0x0800,
} as const;
/** statx attribute bits (fuse_statx.attributes / attributes_mask). */
export const StatxAttr = {
  COMPRESSED: 0x0000_0004,
  IMMUTABLE: 0x0000_0010,
  APPEND: 0x0000_0020,
  NODUMP: 0x0000_0040,
  ENCRYPTED: 0x0000_0800,
  VERITY: 0x0010_0000,
  DAX: 0x0020_0000,
} as const;
/** fuse_statx_in.sx_flags: the AT_STATX_* synchronisation bits. */
export const AtStatx = { SYNC_TYPE: 0x6000, SYNC_AS_STAT: 0x0000, FORCE_SYNC: 0x2000, DONT_SYNC: 0x4000 } as const;

/** fuse_dirent.type: DT_* values, i.e. (mode & S_IFMT) >> 12. */
export const DirentType = {
  UNKNOWN: 0,
  FIFO: 1,
  CHR: 2,
  DIR: 4,
  BLK: 6,
  REG: 8,
  LNK: 10,
  SOCK: 12,
} as const;

/** The DT_* value for a st_mode (its file-type bits). */
export function direntTypeOfMode(mode: number): number {
  return Math.floor((mode % 0o200000) / 0o10000);
}

/**
 * The kernel's 32-bit device encoding for fuse_attr.rdev (new_encode_dev): minor bits 0-7,
 * major bits 8-19, minor bits 8-19 at 20-31.
 */
export function encodeDevice(major: number, minor: number): number {
  if (!Number.isInteger(major) || major < 0 || major > 0xfff || !Number.isInteger(minor) || minor < 0 || minor > 0xf_ffff) {
    throw overflow('rdev', `${major}:${minor}`);
  }
  return (minor % 0x100) + major * 0x100 + Math.floor(minor / 0x100) * 0x10_0000;
}

// ---------------------------------------------------------------------------------------
// Struct sizes and layouts
// ---------------------------------------------------------------------------------------

/** Sizes in bytes of the structs this module reads or writes. */
export const StructSize = {
  IN_HEADER: 40,
  OUT_HEADER: 16,
  ATTR: 88,
  ENTRY_OUT: 128,
  ATTR_OUT: 104,
  OPEN_OUT: 16,
  WRITE_OUT: 8,
  KSTATFS: 80,
  STATFS_OUT: 80,
  GETXATTR_OUT: 8,
  INIT_IN: 64,
  /** fuse_init_in before 7.36 (no flags2). */
  INIT_IN_COMPAT_35: 16,
  /** fuse_init_in before 7.6 (major, minor only). */
  INIT_IN_COMPAT_5: 8,
  INIT_OUT: 64,
  /** fuse_init_out before 7.23 (up to max_write). */
  INIT_OUT_COMPAT_22: 24,
  LSEEK_OUT: 8,
  COPY_FILE_RANGE_OUT: 8,
  STATX: 256,
  STATX_OUT: 288,
  DIRENT: 24,
  DIRENTPLUS: 152,
  FORGET_IN: 8,
  BATCH_FORGET_IN: 8,
  FORGET_ONE: 16,
  GETATTR_IN: 16,
  SETATTR_IN: 88,
  MKNOD_IN: 16,
  MKDIR_IN: 8,
  RENAME_IN: 8,
  RENAME2_IN: 16,
  LINK_IN: 8,
  OPEN_IN: 8,
  CREATE_IN: 16,
  RELEASE_IN: 24,
  FLUSH_IN: 24,
  READ_IN: 40,
  WRITE_IN: 40,
  FSYNC_IN: 16,
  SETXATTR_IN: 16,
  /** fuse_setxattr_in without FUSE_SETXATTR_EXT (size, flags). */
  SETXATTR_IN_COMPAT: 8,
  GETXATTR_IN: 8,
  ACCESS_IN: 8,
  INTERRUPT_IN: 8,
  LSEEK_IN: 24,
  FALLOCATE_IN: 32,
  COPY_FILE_RANGE_IN: 56,
  STATX_IN: 24,
  IOCTL_IN: 32,
  IOCTL_OUT: 16,
  IOCTL_IOVEC: 16,
  /** struct fsxattr (linux/fs.h), the FSGETXATTR/FSSETXATTR payload. */
  FSXATTR: 28,
  NOTIFY_INVAL_INODE_OUT: 24,
  NOTIFY_INVAL_ENTRY_OUT: 16,
  NOTIFY_DELETE_OUT: 24,
} as const;

/** Field offsets of fuse_in_header, fuse_out_header and fuse_read_in/fuse_write_in (exported for the session's READ fast path). */
export const IN_HEADER = { len: 0, opcode: 4, unique: 8, nodeid: 16, uid: 24, gid: 28, pid: 32, totalExtlen: 36 } as const;
export const OUT_HEADER = { len: 0, error: 4, unique: 8 } as const;
const ATTR = {
  ino: 0,
  size: 8,
  blocks: 16,
  atime: 24,
  mtime: 32,
  ctime: 40,
  atimensec: 48,
  mtimensec: 52,
  ctimensec: 56,
  mode: 60,
  nlink: 64,
  uid: 68,
  gid: 72,
  rdev: 76,
  blksize: 80,
  flags: 84,
} as const;
const ENTRY_OUT = { nodeid: 0, generation: 8, entryValid: 16, attrValid: 24, entryValidNsec: 32, attrValidNsec: 36, attr: 40 } as const;
const ATTR_OUT = { attrValid: 0, attrValidNsec: 8, attr: 16 } as const;
const OPEN_OUT = { fh: 0, openFlags: 8, backingId: 12 } as const;
const KSTATFS = { blocks: 0, bfree: 8, bavail: 16, files: 24, ffree: 32, bsize: 40, namelen: 44, frsize: 48 } as const;
const INIT_IN = { major: 0, minor: 4, maxReadahead: 8, flags: 12, flags2: 16 } as const;
const INIT_OUT = {
  major: 0,
  minor: 4,
  maxReadahead: 8,
  flags: 12,
  maxBackground: 16,
  congestionThreshold: 18,
  maxWrite: 20,
  timeGran: 24,
  maxPages: 28,
  mapAlignment: 30,
  flags2: 32,
  maxStackDepth: 36,
  requestTimeout: 40,
} as const;
const STATX_OUT = { attrValid: 0, attrValidNsec: 8, flags: 12, stat: 32 } as const;
const STATX = {
  mask: 0,
  blksize: 4,
  attributes: 8,
  nlink: 16,
  uid: 20,
  gid: 24,
  mode: 28,
  ino: 32,
  size: 40,
  blocks: 48,
  attributesMask: 56,
  atime: 64,
  btime: 80,
  ctime: 96,
  mtime: 112,
  rdevMajor: 128,
  rdevMinor: 132,
  devMajor: 136,
  devMinor: 140,
} as const;
/** struct fuse_sx_time: tv_sec i64, tv_nsec u32, reserved i32. */
const SX_TIME = { sec: 0, nsec: 8 } as const;
const DIRENT = { ino: 0, off: 8, namelen: 16, type: 20, name: 24 } as const;
const FORGET_ONE = { nodeid: 0, nlookup: 8 } as const;
const GETATTR_IN = { getattrFlags: 0, fh: 8 } as const;
const SETATTR_IN = {
  valid: 0,
  fh: 8,
  size: 16,
  lockOwner: 24,
  atime: 32,
  mtime: 40,
  ctime: 48,
  atimensec: 56,
  mtimensec: 60,
  ctimensec: 64,
  mode: 68,
  uid: 76,
  gid: 80,
} as const;
const MKNOD_IN = { mode: 0, rdev: 4, umask: 8 } as const;
const MKDIR_IN = { mode: 0, umask: 4 } as const;
const RENAME2_IN = { newdir: 0, flags: 8 } as const;
const OPEN_IN = { flags: 0, openFlags: 4 } as const;
const CREATE_IN = { flags: 0, mode: 4, umask: 8, openFlags: 12 } as const;
const RELEASE_IN = { fh: 0, flags: 8, releaseFlags: 12, lockOwner: 16 } as const;
const FLUSH_IN = { fh: 0, lockOwner: 16 } as const;
/** fuse_read_in and fuse_write_in share this layout. */
export const RW_IN = { fh: 0, offset: 8, size: 16, rwFlags: 20, lockOwner: 24, flags: 32 } as const;
const FSYNC_IN = { fh: 0, fsyncFlags: 8 } as const;
const SETXATTR_IN = { size: 0, flags: 4, setxattrFlags: 8 } as const;
const LSEEK_IN = { fh: 0, offset: 8, whence: 16 } as const;
const FALLOCATE_IN = { fh: 0, offset: 8, length: 16, mode: 24 } as const;
const COPY_FILE_RANGE_IN = { fhIn: 0, offIn: 8, nodeidOut: 16, fhOut: 24, offOut: 32, len: 40, flags: 48 } as const;
const STATX_IN = { getattrFlags: 0, fh: 8, sxFlags: 16, sxMask: 20 } as const;
const IOCTL_IN = { fh: 0, flags: 8, cmd: 12, arg: 16, inSize: 24, outSize: 28 } as const;
const IOCTL_OUT = { result: 0, flags: 4, inIovs: 8, outIovs: 12 } as const;
const FSXATTR = { xflags: 0, extsize: 4, nextents: 8, projid: 12, cowextsize: 16 } as const;
const NOTIFY_INVAL_INODE = { ino: 0, off: 8, len: 16 } as const;
const NOTIFY_INVAL_ENTRY = { parent: 0, namelen: 8, flags: 12 } as const;
const NOTIFY_DELETE = { parent: 0, child: 8, namelen: 16 } as const;

// ---------------------------------------------------------------------------------------
// Little-endian field helpers (64-bit values as lo + hi * 2^32, never bitwise)
// ---------------------------------------------------------------------------------------

const TWO_32 = 0x1_0000_0000;
/** hi word of the largest safe integer (2^53 - 1 = 0x1f_ffff_ffff_ffff). */
const SAFE_HI_MAX = 0x1f_ffff;
const MAX_NSEC = 999_999_999;

function malformed(what: string, structure?: string): FsError {
  const context = structure === undefined ? {} : { structure };
  return new FsError('EINVAL', `malformed FUSE request: ${what}`, context);
}

function overflow(field: string, value: unknown): FsError {
  return new FsError('EOVERFLOW', `FUSE reply field ${field} cannot hold ${String(value)}`);
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A DataView over the whole ArrayBuffer under `bytes`, to be read at `bytes.byteOffset + n`.
 * Cached for the last buffer seen: a session decodes every request from the same read
 * buffer, and creating a DataView costs more than decoding a small struct.
 */
function wholeView(bytes: Uint8Array): DataView {
  const buffer = bytes.buffer;
  if (buffer !== cachedBuffer || cachedView === undefined) {
    cachedView = new DataView(buffer);
    cachedBuffer = buffer;
  }
  return cachedView;
}
let cachedBuffer: ArrayBufferLike | undefined;
let cachedView: DataView | undefined;

/** Check that `body` holds a `size`-byte struct (EINVAL otherwise); its offset in wholeView(body). */
function need(body: Uint8Array, size: number, structure: string): number {
  if (body.length < size) throw malformed(`${structure} needs ${size} bytes, got ${body.length}`, structure);
  return body.byteOffset;
}

/** u64 that must be below 2^53 (ids and counts we handed out). */
function getU64(view: DataView, offset: number, field: string): number {
  const lo = view.getUint32(offset, true);
  const hi = view.getUint32(offset + 4, true);
  if (hi > SAFE_HI_MAX) throw malformed(`${field} is 2^53 or more`);
  return hi * TWO_32 + lo;
}

/** u64 offset/length from user space, saturated at Number.MAX_SAFE_INTEGER. */
function getU64Clamped(view: DataView, offset: number): number {
  const lo = view.getUint32(offset, true);
  const hi = view.getUint32(offset + 4, true);
  return hi > SAFE_HI_MAX ? Number.MAX_SAFE_INTEGER : hi * TWO_32 + lo;
}

/** Signed 64-bit (time64_t seconds), saturated at +-Number.MAX_SAFE_INTEGER. */
function getI64Clamped(view: DataView, offset: number): number {
  const lo = view.getUint32(offset, true);
  const hi = view.getInt32(offset + 4, true);
  const value = hi * TWO_32 + lo;
  if (value > Number.MAX_SAFE_INTEGER) return Number.MAX_SAFE_INTEGER;
  if (value < -Number.MAX_SAFE_INTEGER) return -Number.MAX_SAFE_INTEGER;
  return value;
}

function setU64(view: DataView, offset: number, value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw overflow(field, value);
  const lo = value % TWO_32;
  view.setUint32(offset, lo, true);
  view.setUint32(offset + 4, (value - lo) / TWO_32, true);
}

/** Signed 64-bit as two's complement (also for time64_t seconds in u64 fields). */
function setI64(view: DataView, offset: number, value: number, field: string): void {
  if (!Number.isSafeInteger(value)) throw overflow(field, value);
  const hi = Math.floor(value / TWO_32);
  view.setUint32(offset, value - hi * TWO_32, true);
  view.setInt32(offset + 4, hi, true);
}

function setU32(view: DataView, offset: number, value: number, field: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw overflow(field, value);
  view.setUint32(offset, value, true);
}

function setU16(view: DataView, offset: number, value: number, field: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw overflow(field, value);
  view.setUint16(offset, value, true);
}

/** Nanoseconds for a u32 field: integers, clamped to 0..999,999,999 (a hostile inode can hold up to 2^30 - 1). */
function clampNsec(nanoseconds: number, field: string): number {
  if (!Number.isInteger(nanoseconds)) throw overflow(field, nanoseconds);
  return Math.min(Math.max(nanoseconds, 0), MAX_NSEC);
}

/** A cache timeout in seconds (may be fractional) as (seconds, nanoseconds). */
function setTimeout64(view: DataView, secOffset: number, nsecOffset: number, seconds: number, field: string): void {
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > Number.MAX_SAFE_INTEGER) throw overflow(field, seconds);
  let whole = Math.floor(seconds);
  let nsec = Math.round((seconds - whole) * 1e9);
  if (nsec > MAX_NSEC) {
    whole += 1;
    nsec = 0;
  }
  setU64(view, secOffset, whole, field);
  view.setUint32(nsecOffset, nsec, true);
}

function getBigU64(view: DataView, offset: number): bigint {
  return view.getBigUint64(offset, true);
}

/** A NUL-terminated name starting at `start`; returns the name (a view) and the offset after the NUL. */
function readName(body: Uint8Array, start: number, what: string): { readonly name: Uint8Array; readonly next: number } {
  const end = body.indexOf(0, start);
  if (end < 0) throw malformed(`${what} is not NUL-terminated`);
  return { name: body.subarray(start, end), next: end + 1 };
}

// ---------------------------------------------------------------------------------------
// Request side
// ---------------------------------------------------------------------------------------

/** struct fuse_in_header. */
export interface InHeader {
  /** Total request length in bytes, header included. */
  readonly len: number;
  readonly opcode: number;
  /** Request id, copied into the reply; an arbitrary u64 (bit 63 = resend, bit 0 = interrupt). */
  readonly unique: bigint;
  /** Node the request is about (0 for INIT and other connection-level requests). */
  readonly nodeid: number;
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
  /** Length of the extensions at the end of the request, in 8-byte units (7.38+). */
  readonly totalExtlen: number;
}

/** Decode the 40-byte request header. EINVAL if `bytes` is shorter, `len` < 40, or nodeid >= 2^53. */
export function decodeInHeader(bytes: Uint8Array): InHeader {
  const at = need(bytes, StructSize.IN_HEADER, 'fuse_in_header');
  const view = wholeView(bytes);
  const len = view.getUint32(at + IN_HEADER.len, true);
  if (len < StructSize.IN_HEADER) throw malformed(`fuse_in_header.len ${len} is shorter than the header`, 'fuse_in_header');
  return {
    len,
    opcode: view.getUint32(at + IN_HEADER.opcode, true),
    unique: getBigU64(view, at + IN_HEADER.unique),
    nodeid: getU64(view, at + IN_HEADER.nodeid, 'fuse_in_header.nodeid'),
    uid: view.getUint32(at + IN_HEADER.uid, true),
    gid: view.getUint32(at + IN_HEADER.gid, true),
    pid: view.getUint32(at + IN_HEADER.pid, true),
    totalExtlen: view.getUint16(at + IN_HEADER.totalExtlen, true),
  };
}

/** struct fuse_init_in, any size the kernel sent (8, 16 or 64 bytes). */
export interface InitIn {
  readonly major: number;
  readonly minor: number;
  /** 0 when the kernel predates 7.6. */
  readonly maxReadahead: number;
  /** `flags`, plus `flags2` << 32 when the kernel set FUSE_INIT_EXT. */
  readonly flags: bigint;
}

export function decodeInitIn(body: Uint8Array): InitIn {
  const at = need(body, StructSize.INIT_IN_COMPAT_5, 'fuse_init_in');
  const view = wholeView(body);
  const major = view.getUint32(at + INIT_IN.major, true);
  const minor = view.getUint32(at + INIT_IN.minor, true);
  if (body.length < StructSize.INIT_IN_COMPAT_35) return { major, minor, maxReadahead: 0, flags: 0n };
  const maxReadahead = view.getUint32(at + INIT_IN.maxReadahead, true);
  let flags = BigInt(view.getUint32(at + INIT_IN.flags, true));
  if ((flags & InitFlag.INIT_EXT) !== 0n && body.length >= INIT_IN.flags2 + 4) {
    flags |= BigInt(view.getUint32(at + INIT_IN.flags2, true)) << 32n;
  }
  return { major, minor, maxReadahead, flags };
}

/** A request whose only argument is a name: LOOKUP, UNLINK, RMDIR, REMOVEXATTR. */
export interface NameIn {
  readonly name: Uint8Array;
}

export function decodeNameIn(body: Uint8Array): NameIn {
  return { name: readName(body, 0, 'name').name };
}

/** struct fuse_forget_in (FORGET; the node is the header's nodeid). */
export interface ForgetIn {
  readonly nlookup: number;
}

export function decodeForgetIn(body: Uint8Array): ForgetIn {
  const at = need(body, StructSize.FORGET_IN, 'fuse_forget_in');
  const view = wholeView(body);
  return { nlookup: getU64(view, at, 'fuse_forget_in.nlookup') };
}

/** struct fuse_forget_one. */
export interface ForgetOne {
  readonly nodeid: number;
  readonly nlookup: number;
}

/** struct fuse_batch_forget_in followed by `count` fuse_forget_one. */
export interface BatchForgetIn {
  readonly forgets: readonly ForgetOne[];
}

export function decodeBatchForgetIn(body: Uint8Array): BatchForgetIn {
  const at = need(body, StructSize.BATCH_FORGET_IN, 'fuse_batch_forget_in');
  const view = wholeView(body);
  const count = view.getUint32(at, true);
  const needed = StructSize.BATCH_FORGET_IN + count * StructSize.FORGET_ONE;
  if (body.length < needed) {
    throw malformed(`fuse_batch_forget_in announces ${count} entries (${needed} bytes), got ${body.length} bytes`, 'fuse_batch_forget_in');
  }
  const forgets: ForgetOne[] = [];
  for (let i = 0; i < count; i++) {
    const one = at + StructSize.BATCH_FORGET_IN + i * StructSize.FORGET_ONE;
    forgets.push({
      nodeid: getU64(view, one + FORGET_ONE.nodeid, 'fuse_forget_one.nodeid'),
      nlookup: getU64(view, one + FORGET_ONE.nlookup, 'fuse_forget_one.nlookup'),
    });
  }
  return { forgets };
}

/** struct fuse_getattr_in. */
export interface GetattrIn {
  readonly getattrFlags: number;
  /** Only when getattrFlags has GetattrFlag.FH. */
  readonly fh: number | undefined;
}

export function decodeGetattrIn(body: Uint8Array): GetattrIn {
  const at = need(body, StructSize.GETATTR_IN, 'fuse_getattr_in');
  const view = wholeView(body);
  const getattrFlags = view.getUint32(at + GETATTR_IN.getattrFlags, true);
  const fh = (getattrFlags & GetattrFlag.FH) !== 0 ? getU64(view, at + GETATTR_IN.fh, 'fuse_getattr_in.fh') : undefined;
  return { getattrFlags, fh };
}

/** Seconds (may be negative) and nanoseconds, the shape of ext4ts' Timestamp. */
export interface FuseTime {
  readonly seconds: number;
  readonly nanoseconds: number;
}

/** struct fuse_setattr_in. Fields are meaningful only where `valid` (FATTR) says so. */
export interface SetattrIn {
  readonly valid: number;
  /** With FATTR.FH. */
  readonly fh: number | undefined;
  /** Bytes; saturates at Number.MAX_SAFE_INTEGER. */
  readonly size: number;
  /** With FATTR.LOCKOWNER. */
  readonly lockOwner: bigint | undefined;
  readonly atime: FuseTime;
  readonly mtime: FuseTime;
  readonly ctime: FuseTime;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

export function decodeSetattrIn(body: Uint8Array): SetattrIn {
  const at = need(body, StructSize.SETATTR_IN, 'fuse_setattr_in');
  const view = wholeView(body);
  const valid = view.getUint32(at + SETATTR_IN.valid, true);
  const time = (sec: number, nsec: number): FuseTime => ({
    seconds: getI64Clamped(view, at + sec),
    nanoseconds: view.getUint32(at + nsec, true),
  });
  return {
    valid,
    fh: (valid & FATTR.FH) !== 0 ? getU64(view, at + SETATTR_IN.fh, 'fuse_setattr_in.fh') : undefined,
    size: getU64Clamped(view, at + SETATTR_IN.size),
    lockOwner: (valid & FATTR.LOCKOWNER) !== 0 ? getBigU64(view, at + SETATTR_IN.lockOwner) : undefined,
    atime: time(SETATTR_IN.atime, SETATTR_IN.atimensec),
    mtime: time(SETATTR_IN.mtime, SETATTR_IN.mtimensec),
    ctime: time(SETATTR_IN.ctime, SETATTR_IN.ctimensec),
    mode: view.getUint32(at + SETATTR_IN.mode, true),
    uid: view.getUint32(at + SETATTR_IN.uid, true),
    gid: view.getUint32(at + SETATTR_IN.gid, true),
  };
}

/** SYMLINK: the new entry's name, then the link target, both NUL-terminated. */
export interface SymlinkIn {
  readonly name: Uint8Array;
  readonly target: Uint8Array;
}

export function decodeSymlinkIn(body: Uint8Array): SymlinkIn {
  const first = readName(body, 0, 'symlink name');
  const target = readName(body, first.next, 'symlink target');
  return { name: first.name, target: target.name };
}

/** struct fuse_mknod_in + name. */
export interface MknodIn {
  readonly mode: number;
  /** Kernel device encoding (new_encode_dev). */
  readonly rdev: number;
  readonly umask: number;
  readonly name: Uint8Array;
}

export function decodeMknodIn(body: Uint8Array): MknodIn {
  const at = need(body, StructSize.MKNOD_IN, 'fuse_mknod_in');
  const view = wholeView(body);
  return {
    mode: view.getUint32(at + MKNOD_IN.mode, true),
    rdev: view.getUint32(at + MKNOD_IN.rdev, true),
    umask: view.getUint32(at + MKNOD_IN.umask, true),
    name: readName(body, StructSize.MKNOD_IN, 'mknod name').name,
  };
}

/** struct fuse_mkdir_in + name. */
export interface MkdirIn {
  readonly mode: number;
  readonly umask: number;
  readonly name: Uint8Array;
}

export function decodeMkdirIn(body: Uint8Array): MkdirIn {
  const at = need(body, StructSize.MKDIR_IN, 'fuse_mkdir_in');
  const view = wholeView(body);
  return {
    mode: view.getUint32(at + MKDIR_IN.mode, true),
    umask: view.getUint32(at + MKDIR_IN.umask, true),
    name: readName(body, StructSize.MKDIR_IN, 'mkdir name').name,
  };
}

/** RENAME (fuse_rename_in, flags 0) or RENAME2 (fuse_rename2_in), + old name + new name. */
export interface RenameIn {
  readonly newdir: number;
  /** RenameFlag bits; always 0 for RENAME. */
  readonly flags: number;
  readonly name: Uint8Array;
  readonly newname: Uint8Array;
}

export function decodeRenameIn(body: Uint8Array): RenameIn {
  const at = need(body, StructSize.RENAME_IN, 'fuse_rename_in');
  const view = wholeView(body);
  return renameNames(body, getU64(view, at, 'fuse_rename_in.newdir'), 0, StructSize.RENAME_IN);
}

export function decodeRename2In(body: Uint8Array): RenameIn {
  const at = need(body, StructSize.RENAME2_IN, 'fuse_rename2_in');
  const view = wholeView(body);
  const newdir = getU64(view, at + RENAME2_IN.newdir, 'fuse_rename2_in.newdir');
  return renameNames(body, newdir, view.getUint32(at + RENAME2_IN.flags, true), StructSize.RENAME2_IN);
}

function renameNames(body: Uint8Array, newdir: number, flags: number, start: number): RenameIn {
  const old = readName(body, start, 'rename old name');
  const neu = readName(body, old.next, 'rename new name');
  return { newdir, flags, name: old.name, newname: neu.name };
}

/** struct fuse_link_in + new name (the header's nodeid is the new parent). */
export interface LinkIn {
  readonly oldnodeid: number;
  readonly newname: Uint8Array;
}

export function decodeLinkIn(body: Uint8Array): LinkIn {
  const at = need(body, StructSize.LINK_IN, 'fuse_link_in');
  const view = wholeView(body);
  return {
    oldnodeid: getU64(view, at, 'fuse_link_in.oldnodeid'),
    newname: readName(body, StructSize.LINK_IN, 'link name').name,
  };
}

/** struct fuse_open_in (OPEN, OPENDIR). */
export interface OpenIn {
  /** open(2) flags (O_*). */
  readonly flags: number;
  /** OpenInFlag bits. */
  readonly openFlags: number;
}

export function decodeOpenIn(body: Uint8Array): OpenIn {
  const at = need(body, StructSize.OPEN_IN, 'fuse_open_in');
  const view = wholeView(body);
  return { flags: view.getUint32(at + OPEN_IN.flags, true), openFlags: view.getUint32(at + OPEN_IN.openFlags, true) };
}

/** struct fuse_create_in + name. */
export interface CreateIn {
  readonly flags: number;
  readonly mode: number;
  readonly umask: number;
  readonly openFlags: number;
  readonly name: Uint8Array;
}

export function decodeCreateIn(body: Uint8Array): CreateIn {
  const at = need(body, StructSize.CREATE_IN, 'fuse_create_in');
  const view = wholeView(body);
  return {
    flags: view.getUint32(at + CREATE_IN.flags, true),
    mode: view.getUint32(at + CREATE_IN.mode, true),
    umask: view.getUint32(at + CREATE_IN.umask, true),
    openFlags: view.getUint32(at + CREATE_IN.openFlags, true),
    name: readName(body, StructSize.CREATE_IN, 'create name').name,
  };
}

/** struct fuse_read_in (READ, READDIR, READDIRPLUS). */
export interface ReadIn {
  readonly fh: number;
  /** Bytes for READ; the cookie of the previous entry (0 = start) for READDIR(PLUS). Saturating. */
  readonly offset: number;
  /** Most bytes the reply may carry. */
  readonly size: number;
  readonly readFlags: number;
  /** With ReadFlag.LOCKOWNER. */
  readonly lockOwner: bigint | undefined;
  /** The file's open(2) flags. */
  readonly flags: number;
}

export function decodeReadIn(body: Uint8Array): ReadIn {
  const at = need(body, StructSize.READ_IN, 'fuse_read_in');
  const view = wholeView(body);
  const readFlags = view.getUint32(at + RW_IN.rwFlags, true);
  return {
    fh: getU64(view, at + RW_IN.fh, 'fuse_read_in.fh'),
    offset: getU64Clamped(view, at + RW_IN.offset),
    size: view.getUint32(at + RW_IN.size, true),
    readFlags,
    lockOwner: (readFlags & ReadFlag.LOCKOWNER) !== 0 ? getBigU64(view, at + RW_IN.lockOwner) : undefined,
    flags: view.getUint32(at + RW_IN.flags, true),
  };
}

/** struct fuse_write_in + the data. */
export interface WriteIn {
  readonly fh: number;
  /** Saturating (see the module comment). */
  readonly offset: number;
  readonly size: number;
  readonly writeFlags: number;
  /** With WriteFlag.LOCKOWNER. */
  readonly lockOwner: bigint | undefined;
  readonly flags: number;
  /** `size` bytes, a view into the request buffer. */
  readonly data: Uint8Array;
}

export function decodeWriteIn(body: Uint8Array): WriteIn {
  const at = need(body, StructSize.WRITE_IN, 'fuse_write_in');
  const view = wholeView(body);
  const size = view.getUint32(at + RW_IN.size, true);
  const writeFlags = view.getUint32(at + RW_IN.rwFlags, true);
  if (body.length - StructSize.WRITE_IN < size) {
    throw malformed(`fuse_write_in.size ${size} exceeds the ${body.length - StructSize.WRITE_IN} data bytes`, 'fuse_write_in');
  }
  return {
    fh: getU64(view, at + RW_IN.fh, 'fuse_write_in.fh'),
    offset: getU64Clamped(view, at + RW_IN.offset),
    size,
    writeFlags,
    lockOwner: (writeFlags & WriteFlag.LOCKOWNER) !== 0 ? getBigU64(view, at + RW_IN.lockOwner) : undefined,
    flags: view.getUint32(at + RW_IN.flags, true),
    data: body.subarray(StructSize.WRITE_IN, StructSize.WRITE_IN + size),
  };
}

/** struct fuse_release_in (RELEASE, RELEASEDIR). */
export interface ReleaseIn {
  readonly fh: number;
  readonly flags: number;
  readonly releaseFlags: number;
  readonly lockOwner: bigint;
}

export function decodeReleaseIn(body: Uint8Array): ReleaseIn {
  const at = need(body, StructSize.RELEASE_IN, 'fuse_release_in');
  const view = wholeView(body);
  return {
    fh: getU64(view, at + RELEASE_IN.fh, 'fuse_release_in.fh'),
    flags: view.getUint32(at + RELEASE_IN.flags, true),
    releaseFlags: view.getUint32(at + RELEASE_IN.releaseFlags, true),
    lockOwner: getBigU64(view, at + RELEASE_IN.lockOwner),
  };
}

/** struct fuse_flush_in. */
export interface FlushIn {
  readonly fh: number;
  readonly lockOwner: bigint;
}

export function decodeFlushIn(body: Uint8Array): FlushIn {
  const at = need(body, StructSize.FLUSH_IN, 'fuse_flush_in');
  const view = wholeView(body);
  return { fh: getU64(view, at + FLUSH_IN.fh, 'fuse_flush_in.fh'), lockOwner: getBigU64(view, at + FLUSH_IN.lockOwner) };
}

/** struct fuse_fsync_in (FSYNC, FSYNCDIR). */
export interface FsyncIn {
  readonly fh: number;
  /** FsyncFlag bits. */
  readonly fsyncFlags: number;
}

export function decodeFsyncIn(body: Uint8Array): FsyncIn {
  const at = need(body, StructSize.FSYNC_IN, 'fuse_fsync_in');
  const view = wholeView(body);
  return { fh: getU64(view, at + FSYNC_IN.fh, 'fuse_fsync_in.fh'), fsyncFlags: view.getUint32(at + FSYNC_IN.fsyncFlags, true) };
}

/** struct fuse_setxattr_in + name + value. */
export interface SetxattrIn {
  readonly size: number;
  /** XattrFlag bits. */
  readonly flags: number;
  /** SetxattrExtFlag bits; 0 without the extended layout. */
  readonly setxattrFlags: number;
  readonly name: Uint8Array;
  /** `size` bytes, a view into the request buffer. */
  readonly value: Uint8Array;
}

/**
 * `extended`: FUSE_SETXATTR_EXT was negotiated, so the kernel sends the 16-byte struct
 * (with setxattr_flags); otherwise the 8-byte one.
 */
export function decodeSetxattrIn(body: Uint8Array, extended: boolean): SetxattrIn {
  const size0 = extended ? StructSize.SETXATTR_IN : StructSize.SETXATTR_IN_COMPAT;
  const at = need(body, size0, 'fuse_setxattr_in');
  const view = wholeView(body);
  const size = view.getUint32(at + SETXATTR_IN.size, true);
  const { name, next } = readName(body, size0, 'xattr name');
  if (body.length - next < size) throw malformed(`fuse_setxattr_in.size ${size} exceeds the ${body.length - next} value bytes`, 'fuse_setxattr_in');
  return {
    size,
    flags: view.getUint32(at + SETXATTR_IN.flags, true),
    setxattrFlags: extended ? view.getUint32(at + SETXATTR_IN.setxattrFlags, true) : 0,
    name,
    value: body.subarray(next, next + size),
  };
}

/** struct fuse_getxattr_in + name (GETXATTR). */
export interface GetxattrIn {
  /** Buffer size; 0 asks for the value's size (reply with fuse_getxattr_out). */
  readonly size: number;
  readonly name: Uint8Array;
}

export function decodeGetxattrIn(body: Uint8Array): GetxattrIn {
  const at = need(body, StructSize.GETXATTR_IN, 'fuse_getxattr_in');
  const view = wholeView(body);
  return { size: view.getUint32(at, true), name: readName(body, StructSize.GETXATTR_IN, 'xattr name').name };
}

/** struct fuse_getxattr_in (LISTXATTR). */
export interface ListxattrIn {
  readonly size: number;
}

export function decodeListxattrIn(body: Uint8Array): ListxattrIn {
  const at = need(body, StructSize.GETXATTR_IN, 'fuse_getxattr_in');
  const view = wholeView(body);
  return { size: view.getUint32(at, true) };
}

/** struct fuse_access_in. */
export interface AccessIn {
  /** AccessMask bits. */
  readonly mask: number;
}

export function decodeAccessIn(body: Uint8Array): AccessIn {
  const at = need(body, StructSize.ACCESS_IN, 'fuse_access_in');
  const view = wholeView(body);
  return { mask: view.getUint32(at, true) };
}

/** struct fuse_interrupt_in. */
export interface InterruptIn {
  /** The interrupted request's unique. */
  readonly unique: bigint;
}

export function decodeInterruptIn(body: Uint8Array): InterruptIn {
  const at = need(body, StructSize.INTERRUPT_IN, 'fuse_interrupt_in');
  const view = wholeView(body);
  return { unique: getBigU64(view, at) };
}

/** struct fuse_lseek_in. */
export interface LseekIn {
  readonly fh: number;
  /** Saturating. */
  readonly offset: number;
  /** Whence value. */
  readonly whence: number;
}

export function decodeLseekIn(body: Uint8Array): LseekIn {
  const at = need(body, StructSize.LSEEK_IN, 'fuse_lseek_in');
  const view = wholeView(body);
  return {
    fh: getU64(view, at + LSEEK_IN.fh, 'fuse_lseek_in.fh'),
    offset: getU64Clamped(view, at + LSEEK_IN.offset),
    whence: view.getUint32(at + LSEEK_IN.whence, true),
  };
}

/** struct fuse_fallocate_in. */
export interface FallocateIn {
  readonly fh: number;
  /** Saturating. */
  readonly offset: number;
  /** Saturating. */
  readonly length: number;
  /** FallocateMode bits. */
  readonly mode: number;
}

export function decodeFallocateIn(body: Uint8Array): FallocateIn {
  const at = need(body, StructSize.FALLOCATE_IN, 'fuse_fallocate_in');
  const view = wholeView(body);
  return {
    fh: getU64(view, at + FALLOCATE_IN.fh, 'fuse_fallocate_in.fh'),
    offset: getU64Clamped(view, at + FALLOCATE_IN.offset),
    length: getU64Clamped(view, at + FALLOCATE_IN.length),
    mode: view.getUint32(at + FALLOCATE_IN.mode, true),
  };
}

/** struct fuse_copy_file_range_in (COPY_FILE_RANGE, COPY_FILE_RANGE_64). */
export interface CopyFileRangeIn {
  readonly fhIn: number;
  /** Saturating. */
  readonly offIn: number;
  readonly nodeidOut: number;
  readonly fhOut: number;
  /** Saturating. */
  readonly offOut: number;
  /** Saturating: user space often asks for "everything" (close to 2^63). */
  readonly len: number;
  readonly flags: number;
}

export function decodeCopyFileRangeIn(body: Uint8Array): CopyFileRangeIn {
  const at = need(body, StructSize.COPY_FILE_RANGE_IN, 'fuse_copy_file_range_in');
  const view = wholeView(body);
  return {
    fhIn: getU64(view, at + COPY_FILE_RANGE_IN.fhIn, 'fuse_copy_file_range_in.fh_in'),
    offIn: getU64Clamped(view, at + COPY_FILE_RANGE_IN.offIn),
    nodeidOut: getU64(view, at + COPY_FILE_RANGE_IN.nodeidOut, 'fuse_copy_file_range_in.nodeid_out'),
    fhOut: getU64(view, at + COPY_FILE_RANGE_IN.fhOut, 'fuse_copy_file_range_in.fh_out'),
    offOut: getU64Clamped(view, at + COPY_FILE_RANGE_IN.offOut),
    len: getU64Clamped(view, at + COPY_FILE_RANGE_IN.len),
    flags: getU64(view, at + COPY_FILE_RANGE_IN.flags, 'fuse_copy_file_range_in.flags'),
  };
}

/** struct fuse_statx_in. */
export interface StatxIn {
  readonly getattrFlags: number;
  /** Only when getattrFlags has GetattrFlag.FH. */
  readonly fh: number | undefined;
  /** AtStatx bits. */
  readonly sxFlags: number;
  /** StatxMask bits wanted. */
  readonly sxMask: number;
}

export function decodeStatxIn(body: Uint8Array): StatxIn {
  const at = need(body, StructSize.STATX_IN, 'fuse_statx_in');
  const view = wholeView(body);
  const getattrFlags = view.getUint32(at + STATX_IN.getattrFlags, true);
  return {
    getattrFlags,
    fh: (getattrFlags & GetattrFlag.FH) !== 0 ? getU64(view, at + STATX_IN.fh, 'fuse_statx_in.fh') : undefined,
    sxFlags: view.getUint32(at + STATX_IN.sxFlags, true),
    sxMask: view.getUint32(at + STATX_IN.sxMask, true),
  };
}

/** struct fuse_ioctl_in and the input data that follows it. */
export interface IoctlIn {
  readonly fh: number;
  /** IoctlFlag bits (COMPAT, UNRESTRICTED, BIT32, DIR, COMPAT_X32). */
  readonly flags: number;
  /** The ioctl command number (IoctlCmd), as the caller's kernel encodes it. */
  readonly cmd: number;
  /** The caller's argument: a user-space address or a plain value (u64, opaque). */
  readonly arg: bigint;
  /** Bytes of input data (also `data.length`). */
  readonly inSize: number;
  /** Most bytes of output data the reply may carry. */
  readonly outSize: number;
  /** The input data (in_size bytes), a view of the request. */
  readonly data: Uint8Array;
}

export function decodeIoctlIn(body: Uint8Array): IoctlIn {
  const at = need(body, StructSize.IOCTL_IN, 'fuse_ioctl_in');
  const view = wholeView(body);
  const inSize = view.getUint32(at + IOCTL_IN.inSize, true);
  if (body.length - StructSize.IOCTL_IN < inSize) {
    throw malformed(`fuse_ioctl_in.in_size ${inSize} exceeds the ${body.length - StructSize.IOCTL_IN} data bytes`, 'fuse_ioctl_in');
  }
  return {
    fh: getU64(view, at + IOCTL_IN.fh, 'fuse_ioctl_in.fh'),
    flags: view.getUint32(at + IOCTL_IN.flags, true),
    cmd: view.getUint32(at + IOCTL_IN.cmd, true),
    arg: getBigU64(view, at + IOCTL_IN.arg),
    inSize,
    outSize: view.getUint32(at + IOCTL_IN.outSize, true),
    data: body.subarray(StructSize.IOCTL_IN, StructSize.IOCTL_IN + inSize),
  };
}

/** struct fsxattr (linux/fs.h): the FS_IOC_FSGETXATTR / FS_IOC_FSSETXATTR payload. */
export interface Fsxattr {
  /** FsXflag bits. */
  readonly xflags: number;
  readonly extsize: number;
  readonly nextents: number;
  readonly projid: number;
  readonly cowextsize: number;
}

/** Decode a struct fsxattr (the 8 pad bytes are ignored); EINVAL when shorter than 28 bytes. */
export function decodeFsxattr(bytes: Uint8Array): Fsxattr {
  const at = need(bytes, StructSize.FSXATTR, 'struct fsxattr');
  const view = wholeView(bytes);
  return {
    xflags: view.getUint32(at + FSXATTR.xflags, true),
    extsize: view.getUint32(at + FSXATTR.extsize, true),
    nextents: view.getUint32(at + FSXATTR.nextents, true),
    projid: view.getUint32(at + FSXATTR.projid, true),
    cowextsize: view.getUint32(at + FSXATTR.cowextsize, true),
  };
}

/** Encode a struct fsxattr (28 bytes, pad zero). */
export function encodeFsxattr(fa: Fsxattr): Uint8Array {
  const bytes = new Uint8Array(StructSize.FSXATTR);
  const view = viewOf(bytes);
  setU32(view, FSXATTR.xflags, fa.xflags, 'fsxattr.fsx_xflags');
  setU32(view, FSXATTR.extsize, fa.extsize, 'fsxattr.fsx_extsize');
  setU32(view, FSXATTR.nextents, fa.nextents, 'fsxattr.fsx_nextents');
  setU32(view, FSXATTR.projid, fa.projid, 'fsxattr.fsx_projid');
  setU32(view, FSXATTR.cowextsize, fa.cowextsize, 'fsxattr.fsx_cowextsize');
  return bytes;
}

// ---------------------------------------------------------------------------------------
// Reply side
// ---------------------------------------------------------------------------------------

/** Write a fuse_out_header: `error` is 0, -errno, or a notification code (with unique 0). */
export function writeOutHeader(view: DataView, offset: number, len: number, error: number, unique: bigint): void {
  view.setUint32(offset + OUT_HEADER.len, len, true);
  view.setInt32(offset + OUT_HEADER.error, error, true);
  view.setBigUint64(offset + OUT_HEADER.unique, unique, true);
}

/** struct fuse_attr, from the filesystem's stat data. */
export interface FuseAttr {
  readonly ino: number;
  /** Bytes. */
  readonly size: number;
  /** 512-byte units. */
  readonly blocks: number;
  readonly atime: FuseTime;
  readonly mtime: FuseTime;
  readonly ctime: FuseTime;
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  /** Kernel device encoding: see encodeDevice. */
  readonly rdev: number;
  readonly blksize: number;
  /** AttrFlag bits (usually 0). */
  readonly flags?: number;
}

function writeTime(view: DataView, secOffset: number, nsecOffset: number, time: FuseTime, field: string): void {
  setI64(view, secOffset, time.seconds, field);
  view.setUint32(nsecOffset, clampNsec(time.nanoseconds, field), true);
}

/** Write struct fuse_attr (88 bytes) at `offset`. */
export function writeAttr(view: DataView, offset: number, attr: FuseAttr): void {
  setU64(view, offset + ATTR.ino, attr.ino, 'attr.ino');
  setU64(view, offset + ATTR.size, attr.size, 'attr.size');
  setU64(view, offset + ATTR.blocks, attr.blocks, 'attr.blocks');
  writeTime(view, offset + ATTR.atime, offset + ATTR.atimensec, attr.atime, 'attr.atime');
  writeTime(view, offset + ATTR.mtime, offset + ATTR.mtimensec, attr.mtime, 'attr.mtime');
  writeTime(view, offset + ATTR.ctime, offset + ATTR.ctimensec, attr.ctime, 'attr.ctime');
  setU32(view, offset + ATTR.mode, attr.mode, 'attr.mode');
  setU32(view, offset + ATTR.nlink, attr.nlink, 'attr.nlink');
  setU32(view, offset + ATTR.uid, attr.uid, 'attr.uid');
  setU32(view, offset + ATTR.gid, attr.gid, 'attr.gid');
  setU32(view, offset + ATTR.rdev, attr.rdev, 'attr.rdev');
  setU32(view, offset + ATTR.blksize, attr.blksize, 'attr.blksize');
  setU32(view, offset + ATTR.flags, attr.flags ?? 0, 'attr.flags');
}

/** struct fuse_entry_out. nodeid 0 with a timeout caches a negative lookup (ENOENT). */
export interface EntryOut {
  readonly nodeid: number;
  readonly generation: number;
  /** How long the kernel may cache the name, in seconds (fractions allowed). */
  readonly entryTimeout: number;
  /** How long the kernel may cache the attributes, in seconds. */
  readonly attrTimeout: number;
  readonly attr: FuseAttr;
}

/** Write struct fuse_entry_out (128 bytes) at `offset`. */
export function writeEntryOut(view: DataView, offset: number, entry: EntryOut): void {
  setU64(view, offset + ENTRY_OUT.nodeid, entry.nodeid, 'entry.nodeid');
  setU64(view, offset + ENTRY_OUT.generation, entry.generation, 'entry.generation');
  setTimeout64(view, offset + ENTRY_OUT.entryValid, offset + ENTRY_OUT.entryValidNsec, entry.entryTimeout, 'entry.entryTimeout');
  setTimeout64(view, offset + ENTRY_OUT.attrValid, offset + ENTRY_OUT.attrValidNsec, entry.attrTimeout, 'entry.attrTimeout');
  writeAttr(view, offset + ENTRY_OUT.attr, entry.attr);
}

/** struct fuse_attr_out. */
export interface AttrOut {
  /** Seconds (fractions allowed). */
  readonly attrTimeout: number;
  readonly attr: FuseAttr;
}

/** Write struct fuse_attr_out (104 bytes) at `offset`. */
export function writeAttrOut(view: DataView, offset: number, out: AttrOut): void {
  setTimeout64(view, offset + ATTR_OUT.attrValid, offset + ATTR_OUT.attrValidNsec, out.attrTimeout, 'attr_out.attrTimeout');
  writeAttr(view, offset + ATTR_OUT.attr, out.attr);
}

/** struct fuse_open_out. */
export interface OpenOut {
  readonly fh: number;
  /** FOPEN bits. */
  readonly openFlags: number;
  /** FOPEN_PASSTHROUGH backing id (unused here: needs an ioctl Node cannot make). */
  readonly backingId?: number;
}

/** Write struct fuse_open_out (16 bytes) at `offset`. */
export function writeOpenOut(view: DataView, offset: number, out: OpenOut): void {
  setU64(view, offset + OPEN_OUT.fh, out.fh, 'open.fh');
  setU32(view, offset + OPEN_OUT.openFlags, out.openFlags, 'open.openFlags');
  view.setInt32(offset + OPEN_OUT.backingId, out.backingId ?? 0, true);
}

/** struct fuse_kstatfs. */
export interface Kstatfs {
  readonly blocks: number;
  readonly bfree: number;
  readonly bavail: number;
  readonly files: number;
  readonly ffree: number;
  readonly bsize: number;
  readonly namelen: number;
  readonly frsize: number;
}

/** Write struct fuse_statfs_out / fuse_kstatfs (80 bytes) at `offset`. */
export function writeStatfsOut(view: DataView, offset: number, st: Kstatfs): void {
  setU64(view, offset + KSTATFS.blocks, st.blocks, 'statfs.blocks');
  setU64(view, offset + KSTATFS.bfree, st.bfree, 'statfs.bfree');
  setU64(view, offset + KSTATFS.bavail, st.bavail, 'statfs.bavail');
  setU64(view, offset + KSTATFS.files, st.files, 'statfs.files');
  setU64(view, offset + KSTATFS.ffree, st.ffree, 'statfs.ffree');
  setU32(view, offset + KSTATFS.bsize, st.bsize, 'statfs.bsize');
  setU32(view, offset + KSTATFS.namelen, st.namelen, 'statfs.namelen');
  setU32(view, offset + KSTATFS.frsize, st.frsize, 'statfs.frsize');
}

/** struct fuse_init_out. */
export interface InitOut {
  readonly major: number;
  readonly minor: number;
  readonly maxReadahead: number;
  /** All 64 flag bits; bits 32..63 go to flags2 (and need FUSE_INIT_EXT set). */
  readonly flags: bigint;
  readonly maxBackground: number;
  readonly congestionThreshold: number;
  readonly maxWrite: number;
  /** Timestamp granularity in ns (1 = nanoseconds). */
  readonly timeGran: number;
  /** With FUSE_MAX_PAGES: most pages in one request. */
  readonly maxPages: number;
  readonly mapAlignment: number;
  /** With FUSE_PASSTHROUGH. */
  readonly maxStackDepth: number;
  /** With FUSE_REQUEST_TIMEOUT: seconds. */
  readonly requestTimeout: number;
}

/** Bytes of fuse_init_out a kernel speaking `minor` expects (it rejects a longer reply). */
export function initOutSize(minor: number): number {
  if (minor < 5) return 8;
  return minor < 23 ? StructSize.INIT_OUT_COMPAT_22 : StructSize.INIT_OUT;
}

/**
 * Encode fuse_init_out, trimmed to what a kernel speaking `out.minor` reads
 * (8 bytes before 7.5, 24 before 7.23, else 64).
 */
export function encodeInitOut(out: InitOut): Uint8Array {
  const full = new Uint8Array(StructSize.INIT_OUT);
  const view = viewOf(full);
  if (out.flags < 0n || out.flags >= 1n << 64n) throw overflow('init.flags', out.flags);
  setU32(view, INIT_OUT.major, out.major, 'init.major');
  setU32(view, INIT_OUT.minor, out.minor, 'init.minor');
  setU32(view, INIT_OUT.maxReadahead, out.maxReadahead, 'init.maxReadahead');
  view.setUint32(INIT_OUT.flags, Number(out.flags & 0xffff_ffffn), true);
  setU16(view, INIT_OUT.maxBackground, out.maxBackground, 'init.maxBackground');
  setU16(view, INIT_OUT.congestionThreshold, out.congestionThreshold, 'init.congestionThreshold');
  setU32(view, INIT_OUT.maxWrite, out.maxWrite, 'init.maxWrite');
  setU32(view, INIT_OUT.timeGran, out.timeGran, 'init.timeGran');
  setU16(view, INIT_OUT.maxPages, out.maxPages, 'init.maxPages');
  setU16(view, INIT_OUT.mapAlignment, out.mapAlignment, 'init.mapAlignment');
  view.setUint32(INIT_OUT.flags2, Number(out.flags >> 32n), true);
  setU32(view, INIT_OUT.maxStackDepth, out.maxStackDepth, 'init.maxStackDepth');
  setU16(view, INIT_OUT.requestTimeout, out.requestTimeout, 'init.requestTimeout');
  return full.subarray(0, initOutSize(out.minor));
}

/** struct fuse_statx (the statx(2) layout). */
export interface FuseStatx {
  /** StatxMask bits that are valid. */
  readonly mask: number;
  readonly blksize: number;
  /** StatxAttr bits set. */
  readonly attributes: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  /** st_mode (16 bits). */
  readonly mode: number;
  readonly ino: number;
  readonly size: number;
  /** 512-byte units. */
  readonly blocks: number;
  /** StatxAttr bits this filesystem supports. */
  readonly attributesMask: number;
  readonly atime: FuseTime;
  /** Creation time; set StatxMask.BTIME in `mask` when present. */
  readonly btime?: FuseTime;
  readonly ctime: FuseTime;
  readonly mtime: FuseTime;
  readonly rdevMajor: number;
  readonly rdevMinor: number;
  readonly devMajor: number;
  readonly devMinor: number;
}

/** struct fuse_statx_out. */
export interface StatxOut {
  /** Seconds (fractions allowed). */
  readonly attrTimeout: number;
  readonly flags?: number;
  readonly stat: FuseStatx;
}

function writeSxTime(view: DataView, offset: number, time: FuseTime, field: string): void {
  setI64(view, offset + SX_TIME.sec, time.seconds, field);
  view.setUint32(offset + SX_TIME.nsec, clampNsec(time.nanoseconds, field), true);
}

/** Write struct fuse_statx_out (288 bytes) at `offset`. */
export function writeStatxOut(view: DataView, offset: number, out: StatxOut): void {
  setTimeout64(view, offset + STATX_OUT.attrValid, offset + STATX_OUT.attrValidNsec, out.attrTimeout, 'statx.attrTimeout');
  setU32(view, offset + STATX_OUT.flags, out.flags ?? 0, 'statx.flags');
  const at = offset + STATX_OUT.stat;
  const st = out.stat;
  setU32(view, at + STATX.mask, st.mask, 'statx.mask');
  setU32(view, at + STATX.blksize, st.blksize, 'statx.blksize');
  setU64(view, at + STATX.attributes, st.attributes, 'statx.attributes');
  setU32(view, at + STATX.nlink, st.nlink, 'statx.nlink');
  setU32(view, at + STATX.uid, st.uid, 'statx.uid');
  setU32(view, at + STATX.gid, st.gid, 'statx.gid');
  setU16(view, at + STATX.mode, st.mode, 'statx.mode');
  setU64(view, at + STATX.ino, st.ino, 'statx.ino');
  setU64(view, at + STATX.size, st.size, 'statx.size');
  setU64(view, at + STATX.blocks, st.blocks, 'statx.blocks');
  setU64(view, at + STATX.attributesMask, st.attributesMask, 'statx.attributesMask');
  writeSxTime(view, at + STATX.atime, st.atime, 'statx.atime');
  writeSxTime(view, at + STATX.btime, st.btime ?? { seconds: 0, nanoseconds: 0 }, 'statx.btime');
  writeSxTime(view, at + STATX.ctime, st.ctime, 'statx.ctime');
  writeSxTime(view, at + STATX.mtime, st.mtime, 'statx.mtime');
  setU32(view, at + STATX.rdevMajor, st.rdevMajor, 'statx.rdevMajor');
  setU32(view, at + STATX.rdevMinor, st.rdevMinor, 'statx.rdevMinor');
  setU32(view, at + STATX.devMajor, st.devMajor, 'statx.devMajor');
  setU32(view, at + STATX.devMinor, st.devMinor, 'statx.devMinor');
}

/** struct fuse_ioctl_out (followed in the reply by the output data, at most out_size bytes). */
export interface IoctlOut {
  /** ioctl(2)'s return value for the caller (>= 0), or -errno. */
  readonly result: number;
  /** IoctlFlag.RETRY, or 0. */
  readonly flags: number;
  /** With RETRY: how many fuse_ioctl_iovec (input first, then output) follow. */
  readonly inIovs: number;
  readonly outIovs: number;
}

export function writeIoctlOut(view: DataView, offset: number, out: IoctlOut): void {
  if (!Number.isInteger(out.result) || out.result < -0x8000_0000 || out.result > 0x7fff_ffff) throw overflow('ioctl.result', out.result);
  view.setInt32(offset + IOCTL_OUT.result, out.result, true);
  setU32(view, offset + IOCTL_OUT.flags, out.flags, 'ioctl.flags');
  setU32(view, offset + IOCTL_OUT.inIovs, out.inIovs, 'ioctl.in_iovs');
  setU32(view, offset + IOCTL_OUT.outIovs, out.outIovs, 'ioctl.out_iovs');
}

/** Write a u32 reply struct (fuse_write_out, fuse_getxattr_out: value + 4 bytes padding, left as is). */
export function writeU32Out(view: DataView, offset: number, value: number, field: string): void {
  setU32(view, offset, value, field);
}

/** Write a u64 reply struct (fuse_lseek_out, fuse_copy_file_range_out). */
export function writeU64Out(view: DataView, offset: number, value: number, field: string): void {
  setU64(view, offset, value, field);
}

// ---------------------------------------------------------------------------------------
// Directory entries (READDIR, READDIRPLUS)
// ---------------------------------------------------------------------------------------

/** One entry for fuse_dirent. */
export interface Dirent {
  readonly ino: number;
  /** Cookie of the *next* entry: the READDIR offset that resumes after this one. */
  readonly off: number;
  /** DirentType value. */
  readonly type: number;
  readonly name: Uint8Array;
}

const SLASH = 0x2f;

/** Names the kernel accepts in a dirent: 1..FUSE_NAME_MAX bytes, no '/' and no NUL. */
export function isValidDirentName(name: Uint8Array): boolean {
  return name.length > 0 && name.length <= FUSE_NAME_MAX && !name.includes(SLASH) && !name.includes(0);
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

/** Bytes one entry takes in a READDIR (plus=false) or READDIRPLUS (plus=true) reply, padding included. */
export function direntSize(nameLength: number, plus: boolean): number {
  return align8((plus ? StructSize.DIRENTPLUS : StructSize.DIRENT) + nameLength);
}

/**
 * Packs fuse_dirent or fuse_direntplus records into a READDIR(PLUS) reply of at most
 * `maxSize` bytes (the request's `size`). Each record is padded with zeros to 8 bytes,
 * padding included in the limit. `add`/`addPlus` return false and write nothing when the
 * entry does not fit; the caller stops there and resumes from the last added cookie.
 * `count` tells how many went in (a READDIRPLUS entry counts as a lookup of its node only
 * if it was added).
 */
export class DirentPacker {
  readonly maxSize: number;
  #buffer: Uint8Array;
  #view: DataView;
  #length = 0;
  #count = 0;
  #plus: boolean | undefined;

  constructor(maxSize: number) {
    if (!Number.isInteger(maxSize) || maxSize < 0 || maxSize > 0xffff_ffff) throw overflow('readdir size', maxSize);
    this.maxSize = maxSize;
    this.#buffer = new Uint8Array(Math.min(maxSize, 4096));
    this.#view = viewOf(this.#buffer);
  }

  /** Entries added. */
  get count(): number {
    return this.#count;
  }

  /** Bytes used. */
  get length(): number {
    return this.#length;
  }

  /** Add a fuse_dirent (READDIR). Throws EINVAL for a name the kernel would reject. */
  add(dirent: Dirent): boolean {
    return this.#append(dirent, undefined);
  }

  /** Add a fuse_direntplus (READDIRPLUS): the entry's lookup reply, then its dirent. */
  addPlus(dirent: Dirent, entry: EntryOut): boolean {
    return this.#append(dirent, entry);
  }

  /** The packed records (a view; valid until the next add). */
  bytes(): Uint8Array {
    return this.#buffer.subarray(0, this.#length);
  }

  #append(dirent: Dirent, entry: EntryOut | undefined): boolean {
    const plus = entry !== undefined;
    if (this.#plus !== undefined && this.#plus !== plus) throw new Error('DirentPacker: cannot mix READDIR and READDIRPLUS records');
    if (!isValidDirentName(dirent.name)) {
      throw new FsError('EINVAL', `directory entry name of ${dirent.name.length} bytes is not valid for FUSE (empty, too long, or holds '/' or NUL)`, {
        inode: dirent.ino,
      });
    }
    const at = this.#length;
    const end = at + direntSize(dirent.name.length, plus);
    if (end > this.maxSize) return false;
    if (end > this.#buffer.length) this.#grow(end);
    try {
      let direntAt = at;
      if (entry !== undefined) {
        writeEntryOut(this.#view, at, entry);
        direntAt += StructSize.ENTRY_OUT;
      }
      const view = this.#view;
      setU64(view, direntAt + DIRENT.ino, dirent.ino, 'dirent.ino');
      setU64(view, direntAt + DIRENT.off, dirent.off, 'dirent.off');
      view.setUint32(direntAt + DIRENT.namelen, dirent.name.length, true);
      setU32(view, direntAt + DIRENT.type, dirent.type, 'dirent.type');
      this.#buffer.set(dirent.name, direntAt + DIRENT.name);
    } catch (error) {
      this.#buffer.fill(0, at, end); // keep the padding-is-zero invariant for the next record
      throw error;
    }
    // The padding after the name is zero: the buffer starts zeroed and is only written once.
    this.#plus = plus;
    this.#length = end;
    this.#count += 1;
    return true;
  }

  #grow(needed: number): void {
    const grown = new Uint8Array(Math.min(this.maxSize, Math.max(needed, this.#buffer.length * 2)));
    grown.set(this.#buffer.subarray(0, this.#length));
    this.#buffer = grown;
    this.#view = viewOf(grown);
  }
}

// ---------------------------------------------------------------------------------------
// Notifications (unsolicited messages: unique 0, error = notify code)
// ---------------------------------------------------------------------------------------

/**
 * FUSE_NOTIFY_INVAL_INODE: drop cached data of `ino` in [off, off+len) (len <= 0: to the
 * end) and its attributes; off < 0 drops only the attributes.
 */
export function encodeNotifyInvalInode(ino: number, off: number, len: number): Uint8Array {
  const size = StructSize.OUT_HEADER + StructSize.NOTIFY_INVAL_INODE_OUT;
  const bytes = new Uint8Array(size);
  const view = viewOf(bytes);
  writeOutHeader(view, 0, size, NotifyCode.INVAL_INODE, 0n);
  const at = StructSize.OUT_HEADER;
  setU64(view, at + NOTIFY_INVAL_INODE.ino, ino, 'inval_inode.ino');
  setI64(view, at + NOTIFY_INVAL_INODE.off, off, 'inval_inode.off');
  setI64(view, at + NOTIFY_INVAL_INODE.len, len, 'inval_inode.len');
  return bytes;
}

function checkNotifyName(name: Uint8Array): void {
  if (name.length === 0 || name.length > FUSE_NAME_MAX || name.includes(0)) {
    throw new FsError('EINVAL', `FUSE notification name of ${name.length} bytes is empty, too long or holds NUL`);
  }
}

/** FUSE_NOTIFY_INVAL_ENTRY: drop the dentry `name` in `parent` (flags: InvalEntryFlag). */
export function encodeNotifyInvalEntry(parent: number, name: Uint8Array, flags = 0): Uint8Array {
  checkNotifyName(name);
  const size = StructSize.OUT_HEADER + StructSize.NOTIFY_INVAL_ENTRY_OUT + name.length + 1;
  const bytes = new Uint8Array(size);
  const view = viewOf(bytes);
  writeOutHeader(view, 0, size, NotifyCode.INVAL_ENTRY, 0n);
  const at = StructSize.OUT_HEADER;
  setU64(view, at + NOTIFY_INVAL_ENTRY.parent, parent, 'inval_entry.parent');
  view.setUint32(at + NOTIFY_INVAL_ENTRY.namelen, name.length, true);
  setU32(view, at + NOTIFY_INVAL_ENTRY.flags, flags, 'inval_entry.flags');
  bytes.set(name, at + StructSize.NOTIFY_INVAL_ENTRY_OUT); // followed by the NUL the kernel requires
  return bytes;
}

/** FUSE_NOTIFY_DELETE: `name` in `parent`, which was `child`, is gone. */
export function encodeNotifyDelete(parent: number, child: number, name: Uint8Array): Uint8Array {
  checkNotifyName(name);
  const size = StructSize.OUT_HEADER + StructSize.NOTIFY_DELETE_OUT + name.length + 1;
  const bytes = new Uint8Array(size);
  const view = viewOf(bytes);
  writeOutHeader(view, 0, size, NotifyCode.DELETE, 0n);
  const at = StructSize.OUT_HEADER;
  setU64(view, at + NOTIFY_DELETE.parent, parent, 'delete.parent');
  setU64(view, at + NOTIFY_DELETE.child, child, 'delete.child');
  view.setUint32(at + NOTIFY_DELETE.namelen, name.length, true);
  bytes.set(name, at + StructSize.NOTIFY_DELETE_OUT);
  return bytes;
}
