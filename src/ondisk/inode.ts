/**
 * The on-disk inode (struct ext4_inode): decode, encode, checksum.
 *
 * An inode record is `inodeSize` bytes (the superblock's s_inode_size; 128 on revision-0
 * filesystems). The first 128 bytes are the "good old" inode; a larger record starts
 * its extra part with i_extra_isize, the number of bytes of known extra fields that
 * follow byte 128. A field of the extra part exists only if it lies entirely within
 * `128 + i_extra_isize` (the kernel's EXT4_FITS_IN_INODE); the bytes after that (up to
 * `inodeSize`) hold in-inode extended attributes and are kept untouched.
 *
 * The decoded `Inode` keeps a copy of the whole record in `raw`; `encodeInode` patches
 * the known fields over a copy of it, so unknown, reserved and OS-specific bytes
 * round-trip byte for byte. The osd1/osd2 unions are read with their Linux meaning
 * (creator OS 0), which is what every ext4 filesystem uses.
 *
 * 64-bit quantities are split lo/hi on disk and combined as `lo + hi * 2^32` (never with
 * bitwise operators); values past 2^53 are rejected.
 */
import { corrupted, FsError } from '../errors.js';
import { readU16, readU32, writeU16, writeU32 } from './bytes.js';
import { crc32cRaw, crc32cRawU32 } from './crc.js';
import { decodeTime, decodeTimeNanoseconds, decodeTimeSeconds, encodeTime, encodeTimeLegacy, type Timestamp } from './time.js';

export type { Timestamp } from './time.js';

/** Size of the "good old" inode: everything up to and including osd2. */
export const GOOD_OLD_INODE_SIZE = 128;
/** Bytes of i_block: 15 little-endian u32 (block map) or an extent tree root, or inline data/symlink text. */
export const INODE_BLOCK_SIZE = 60;
/** Number of u32 slots in i_block. */
export const INODE_N_BLOCKS = 15;
/** i_extra_isize that covers every extra field known here (up to and including i_projid). */
export const INODE_EXTRA_ISIZE_FULL = 32;

/** Byte offsets of the inode fields (struct ext4_inode). */
export const INODE_OFFSETS = {
  mode: 0x00,
  uidLo: 0x02,
  sizeLo: 0x04,
  atime: 0x08,
  ctime: 0x0c,
  mtime: 0x10,
  dtime: 0x14,
  gidLo: 0x18,
  linksCount: 0x1a,
  blocksLo: 0x1c,
  flags: 0x20,
  /** osd1: l_i_version on Linux. */
  versionLo: 0x24,
  block: 0x28,
  generation: 0x64,
  fileAclLo: 0x68,
  sizeHi: 0x6c,
  obsoFaddr: 0x70,
  /** osd2 (Linux): l_i_blocks_high. */
  blocksHi: 0x74,
  fileAclHi: 0x76,
  uidHi: 0x78,
  gidHi: 0x7a,
  checksumLo: 0x7c,
  osd2Reserved: 0x7e,
  /* Extra part (large inodes). */
  extraIsize: 0x80,
  checksumHi: 0x82,
  ctimeExtra: 0x84,
  mtimeExtra: 0x88,
  atimeExtra: 0x8c,
  crtime: 0x90,
  crtimeExtra: 0x94,
  versionHi: 0x98,
  projid: 0x9c,
} as const;

/* File type and permission bits of i_mode (the same values as POSIX/Linux). */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;
export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;
export const S_ISVTX = 0o1000;
/** Permission bits plus setuid/setgid/sticky: everything of i_mode except the type. */
export const S_IALLUGO = 0o7777;

/* i_flags (EXT4_*_FL, ext4.h and e2fsprogs' ext2_fs.h). */
/** Secure deletion (not implemented by Linux). */
export const SECRM_FL = 0x0000_0001;
/** Undelete (not implemented by Linux). */
export const UNRM_FL = 0x0000_0002;
/** Compressed file (not implemented by ext4). */
export const COMPR_FL = 0x0000_0004;
/** Synchronous updates. */
export const SYNC_FL = 0x0000_0008;
/** Immutable file. */
export const IMMUTABLE_FL = 0x0000_0010;
/** Append-only file. */
export const APPEND_FL = 0x0000_0020;
/** Not to be dumped. */
export const NODUMP_FL = 0x0000_0040;
/** Do not update atime. */
export const NOATIME_FL = 0x0000_0080;
/** Compression: dirty (unused). */
export const DIRTY_FL = 0x0000_0100;
/** Compression: one or more compressed clusters (unused). */
export const COMPRBLK_FL = 0x0000_0200;
/** Compression: do not compress (unused). */
export const NOCOMPR_FL = 0x0000_0400;
/** Encrypted inode (fscrypt). */
export const ENCRYPT_FL = 0x0000_0800;
/** Hash-indexed (htree) directory. */
export const INDEX_FL = 0x0000_1000;
/** AFS magic directory. */
export const IMAGIC_FL = 0x0000_2000;
/** File data is journaled (data=journal per file). */
export const JOURNAL_DATA_FL = 0x0000_4000;
/** Do not merge file tail (unused). */
export const NOTAIL_FL = 0x0000_8000;
/** Directory entries are updated synchronously. */
export const DIRSYNC_FL = 0x0001_0000;
/** Top of directory hierarchy (Orlov allocator hint). */
export const TOPDIR_FL = 0x0002_0000;
/** i_blocks counts filesystem blocks, not 512-byte sectors (needs the huge_file feature). */
export const HUGE_FILE_FL = 0x0004_0000;
/** The inode uses an extent tree (i_block holds its root). */
export const EXTENTS_FL = 0x0008_0000;
/** fs-verity protected file. */
export const VERITY_FL = 0x0010_0000;
/** The inode stores a large extended attribute value (ea_inode feature). */
export const EA_INODE_FL = 0x0020_0000;
/** Formerly EXT4_EOFBLOCKS_FL (blocks allocated past EOF); no longer used. */
export const EOFBLOCKS_FL = 0x0040_0000;
/** Do not copy-on-write (FS_NOCOW_FL; meaningless for ext4). */
export const NOCOW_FL = 0x0080_0000;
/** next3 snapshot file (e2fsprogs reservation). */
export const SNAPFILE_FL = 0x0100_0000;
/** Direct access (DAX) for this file. */
export const DAX_FL = 0x0200_0000;
/** next3 snapshot being deleted (e2fsprogs reservation). */
export const SNAPFILE_DELETED_FL = 0x0400_0000;
/** next3 snapshot shrink completed (e2fsprogs reservation). */
export const SNAPFILE_SHRUNK_FL = 0x0800_0000;
/** Data stored inline in i_block and the system.data xattr. */
export const INLINE_DATA_FL = 0x1000_0000;
/** New children inherit the project id. */
export const PROJINHERIT_FL = 0x2000_0000;
/** Case-insensitive directory. */
export const CASEFOLD_FL = 0x4000_0000;
/** Reserved for the ext4 library. */
export const RESERVED_FL = 0x8000_0000;

/** A decoded inode. Fields are in the units named; lo/hi halves are combined unless noted. */
export interface Inode {
  /** i_mode: file type (S_IFMT bits) and permissions incl. setuid/setgid/sticky. */
  readonly mode: number;
  /** Owner: i_uid | l_i_uid_high << 16. */
  readonly uid: number;
  /** Group: i_gid | l_i_gid_high << 16. */
  readonly gid: number;
  /** File size in bytes: i_size_lo + i_size_high * 2^32. */
  readonly size: number;
  /** i_links_count. */
  readonly linksCount: number;
  /** i_blocks_lo, raw; its unit depends on huge_file and HUGE_FILE_FL (see `inodeBlocksBytes`). */
  readonly blocksLo: number;
  /** l_i_blocks_high, raw (meaningful only with the huge_file feature). */
  readonly blocksHi: number;
  /** i_flags (the *_FL constants). */
  readonly flags: number;
  /** i_block: the 60 raw bytes (block map, extent root, inline data or fast symlink text); a view into `raw`. */
  readonly block: Uint8Array;
  /** i_generation (NFS), also part of the per-inode checksum seed. */
  readonly generation: number;
  /** i_file_acl_lo: low 32 bits of the xattr block number. */
  readonly fileAclLo: number;
  /** l_i_file_acl_high: high 16 bits of the xattr block (meaningful only with the 64bit feature). */
  readonly fileAclHi: number;
  readonly atime: Timestamp;
  readonly ctime: Timestamp;
  readonly mtime: Timestamp;
  /** Creation time; only in inodes whose extra part holds i_crtime. */
  readonly crtime: Timestamp | undefined;
  /** i_dtime: deletion time, or the next inode of the orphan list; raw u32. */
  readonly dtime: number;
  /** i_extra_isize (0 for 128-byte inode records). */
  readonly extraIsize: number;
  /** l_i_checksum_lo, raw. */
  readonly checksumLo: number;
  /** i_checksum_hi, raw; only when the extra part holds it. */
  readonly checksumHi: number | undefined;
  /** osd1 l_i_version: low 32 bits of the inode version. */
  readonly versionLo: number;
  /** i_version_hi; only when the extra part holds it. */
  readonly versionHi: number | undefined;
  /** i_projid; only when the extra part holds it. */
  readonly projid: number | undefined;
  /** A copy of the whole on-disk record (`inodeSize` bytes); encode patches over it. */
  readonly raw: Uint8Array;
}

export interface InodeDecodeOptions {
  /** Inode number, for error messages. */
  readonly inodeNo: number;
  /** Superblock s_inode_size: the record size (128 or more). */
  readonly inodeSize: number;
  /** Byte offset of the record in `bytes` (default 0). */
  readonly offset?: number;
  /** Block the record was read from, for error messages. */
  readonly block?: number;
  /**
   * Decode in place: `raw` and `block` are then views of `bytes`, not a copy, valid only
   * as long as `bytes` holds the record (for a caller that is done with the inode before
   * the buffer can change: a listing's one look at each inode).
   */
  readonly transient?: boolean;
}

const TWO_32 = 0x1_0000_0000;
/** i_size_high values above this make the size exceed 2^53 - 1. */
const SIZE_HI_MAX = 0x1f_ffff;

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** True when an extra-part field `[offset, offset+size)` lies within 128 + extraIsize. */
function fits(extraIsize: number, offset: number, size: number): boolean {
  return offset + size <= GOOD_OLD_INODE_SIZE + extraIsize;
}

/** Throws EINVAL unless `inodeSize` is a usable record size (the superblock module validates the real rules). */
function checkInodeSize(inodeSize: number): void {
  if (!Number.isInteger(inodeSize) || inodeSize < GOOD_OLD_INODE_SIZE || inodeSize % 4 !== 0 || inodeSize > 65536) {
    throw new FsError('EINVAL', `invalid inode size ${inodeSize}`);
  }
}

/**
 * The i_extra_isize of a record, validated: 0 for 128-byte records (the field is not
 * part of them); otherwise a multiple of 4 with 128 + extra_isize <= inodeSize.
 */
export function inodeExtraIsize(raw: Uint8Array, inodeSize: number, where: { readonly inodeNo?: number; readonly block?: number } = {}): number {
  return extraIsizeAt(raw, 0, inodeSize, where.inodeNo, where.block);
}

/** inodeExtraIsize of the record at `start` in `bytes` (checked to be inside them). */
function extraIsizeAt(bytes: Uint8Array, start: number, inodeSize: number, inodeNo: number | undefined, block: number | undefined): number {
  if (inodeSize <= GOOD_OLD_INODE_SIZE) return 0;
  const extra = readU16(bytes, start + INODE_OFFSETS.extraIsize);
  if (GOOD_OLD_INODE_SIZE + extra > inodeSize || extra % 4 !== 0) {
    throw corrupted('inode', `bad i_extra_isize ${extra} (inode size ${inodeSize})`, context(inodeNo, block));
  }
  return extra;
}

/** i_size of the record at `start`; EUCLEAN when it exceeds 2^53. */
function sizeAt(bytes: Uint8Array, start: number, inodeNo: number, block: number | undefined): number {
  const sizeHi = readU32(bytes, start + INODE_OFFSETS.sizeHi);
  if (sizeHi > SIZE_HI_MAX) {
    throw corrupted('inode', `i_size_high 0x${sizeHi.toString(16)} makes the size exceed 2^53`, context(inodeNo, block));
  }
  return readU32(bytes, start + INODE_OFFSETS.sizeLo) + sizeHi * TWO_32;
}

/** EINVAL unless the record size is usable and `[start, start + inodeSize)` lies in `bytes`. */
function checkRecordBounds(bytes: Uint8Array, start: number, inodeSize: number, inodeNo: number, block: number | undefined): void {
  checkInodeSize(inodeSize);
  if (!Number.isInteger(start) || start < 0 || start + inodeSize > bytes.length) {
    throw new FsError('EINVAL', `inode record [${start}, ${start + inodeSize}) outside ${bytes.length} bytes`, context(inodeNo, block));
  }
}

function context(inodeNo: number | undefined, block: number | undefined): { inode?: number; block?: number } {
  const c: { inode?: number; block?: number } = {};
  if (inodeNo !== undefined) c.inode = inodeNo;
  if (block !== undefined) c.block = block;
  return c;
}

/**
 * Copies of small records carved out of shared slabs: one ArrayBuffer per 16 records of
 * 256 bytes instead of one each. A 256-byte typed array of its own costs ~0.5 us to make
 * and collect (an off-heap backing store), a slab slice ~0.1 us; walking 50,000 inodes
 * spent a fifth of its time collecting them. A slab lives as long as one of its records:
 * at most 4 KiB held per record kept.
 */
export class RecordSlab {
  private slab = new Uint8Array(0);
  private used = 0;

  constructor(private readonly slabBytes = 4096) {}

  /** A copy of `bytes[start, start + size)`. */
  copy(bytes: Uint8Array, start: number, size: number): Uint8Array {
    if (size > this.slabBytes / 2) return bytes.slice(start, start + size);
    if (this.used + size > this.slab.length) {
      this.slab = new Uint8Array(this.slabBytes);
      this.used = 0;
    }
    const raw = this.slab.subarray(this.used, this.used + size);
    raw.set(start === 0 && bytes.length === size ? bytes : bytes.subarray(start, start + size));
    this.used += size;
    return raw;
  }
}

/** Records of decoded and encoded inodes: what the inode cache keeps. */
const records = new RecordSlab();

/** A timestamp field and, when the record holds it, its extra field. */
function timeAt(v: DataView, extraIsize: number, field: number, extraField: number): Timestamp {
  return decodeTime(v.getUint32(field, true), fits(extraIsize, extraField, 4) ? v.getUint32(extraField, true) : undefined);
}

/**
 * Decode one inode record. Throws EUCLEAN for a bad i_extra_isize or a size beyond 2^53.
 * Fields are read with one DataView (builtins) and no per-call objects besides the
 * result: a tree walk decodes tens of thousands of records, most of them before the
 * JIT has optimized this function, where each helper call and spread costs.
 */
export function decodeInode(bytes: Uint8Array, options: InodeDecodeOptions): Inode {
  const { inodeNo, inodeSize } = options;
  const start = options.offset ?? 0;
  checkRecordBounds(bytes, start, inodeSize, inodeNo, options.block);
  const extraIsize = extraIsizeAt(bytes, start, inodeSize, inodeNo, options.block);
  const size = sizeAt(bytes, start, inodeNo, options.block);
  // Transient: decoded in place; the caller's view itself when it is exactly the record.
  const raw = options.transient !== true ? records.copy(bytes, start, inodeSize) : start === 0 && bytes.length === inodeSize ? bytes : bytes.subarray(start, start + inodeSize);
  const v = new DataView(raw.buffer, raw.byteOffset, inodeSize);
  const o = INODE_OFFSETS;

  return {
    mode: v.getUint16(o.mode, true),
    uid: v.getUint16(o.uidLo, true) + v.getUint16(o.uidHi, true) * 0x1_0000,
    gid: v.getUint16(o.gidLo, true) + v.getUint16(o.gidHi, true) * 0x1_0000,
    size,
    linksCount: v.getUint16(o.linksCount, true),
    blocksLo: v.getUint32(o.blocksLo, true),
    blocksHi: v.getUint16(o.blocksHi, true),
    flags: v.getUint32(o.flags, true),
    block: raw.subarray(o.block, o.block + INODE_BLOCK_SIZE),
    generation: v.getUint32(o.generation, true),
    fileAclLo: v.getUint32(o.fileAclLo, true),
    fileAclHi: v.getUint16(o.fileAclHi, true),
    atime: timeAt(v, extraIsize, o.atime, o.atimeExtra),
    ctime: timeAt(v, extraIsize, o.ctime, o.ctimeExtra),
    mtime: timeAt(v, extraIsize, o.mtime, o.mtimeExtra),
    crtime: fits(extraIsize, o.crtime, 4) ? timeAt(v, extraIsize, o.crtime, o.crtimeExtra) : undefined,
    dtime: v.getUint32(o.dtime, true),
    extraIsize,
    checksumLo: v.getUint16(o.checksumLo, true),
    checksumHi: fits(extraIsize, o.checksumHi, 2) ? v.getUint16(o.checksumHi, true) : undefined,
    versionLo: v.getUint32(o.versionLo, true),
    versionHi: fits(extraIsize, o.versionHi, 4) ? v.getUint32(o.versionHi, true) : undefined,
    projid: fits(extraIsize, o.projid, 4) ? v.getUint32(o.projid, true) : undefined,
    raw,
  };
}

/**
 * The fields of an inode record a long listing shows (and what decides whether it needs
 * more than these: the xattr block, the flags), in an object the caller owns and reuses.
 */
export interface InodeSummary {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  linksCount: number;
  blocksLo: number;
  blocksHi: number;
  flags: number;
  fileAclLo: number;
  fileAclHi: number;
  extraIsize: number;
  mtimeSeconds: number;
  mtimeNanoseconds: number;
}

/** A summary to fill (summarizeInode, summarizeDecoded). */
export function emptyInodeSummary(): InodeSummary {
  return { mode: 0, uid: 0, gid: 0, size: 0, linksCount: 0, blocksLo: 0, blocksHi: 0, flags: 0, fileAclLo: 0, fileAclHi: 0, extraIsize: 0, mtimeSeconds: 0, mtimeNanoseconds: 0 };
}

/**
 * Decode the summary fields of the record at `start` in `bytes` into `into` (and return
 * it), validated as decodeInode validates them: no Inode, view or Timestamp per record,
 * for walks that read each of tens of thousands of inodes once.
 */
export function summarizeInode(bytes: Uint8Array, start: number, inodeSize: number, inodeNo: number, block: number | undefined, into: InodeSummary): InodeSummary {
  checkRecordBounds(bytes, start, inodeSize, inodeNo, block);
  const o = INODE_OFFSETS;
  const extraIsize = extraIsizeAt(bytes, start, inodeSize, inodeNo, block);
  into.size = sizeAt(bytes, start, inodeNo, block);
  into.extraIsize = extraIsize;
  into.mode = readU16(bytes, start + o.mode);
  into.uid = readU16(bytes, start + o.uidLo) + readU16(bytes, start + o.uidHi) * 0x1_0000;
  into.gid = readU16(bytes, start + o.gidLo) + readU16(bytes, start + o.gidHi) * 0x1_0000;
  into.linksCount = readU16(bytes, start + o.linksCount);
  into.blocksLo = readU32(bytes, start + o.blocksLo);
  into.blocksHi = readU16(bytes, start + o.blocksHi);
  into.flags = readU32(bytes, start + o.flags);
  into.fileAclLo = readU32(bytes, start + o.fileAclLo);
  into.fileAclHi = readU16(bytes, start + o.fileAclHi);
  const mtimeExtra = fits(extraIsize, o.mtimeExtra, 4) ? readU32(bytes, start + o.mtimeExtra) : undefined;
  into.mtimeSeconds = decodeTimeSeconds(readU32(bytes, start + o.mtime), mtimeExtra);
  into.mtimeNanoseconds = decodeTimeNanoseconds(mtimeExtra);
  return into;
}

/** The summary of an already decoded inode, into `into` (and returned). */
export function summarizeDecoded(inode: Inode, into: InodeSummary): InodeSummary {
  into.mode = inode.mode;
  into.uid = inode.uid;
  into.gid = inode.gid;
  into.size = inode.size;
  into.linksCount = inode.linksCount;
  into.blocksLo = inode.blocksLo;
  into.blocksHi = inode.blocksHi;
  into.flags = inode.flags;
  into.fileAclLo = inode.fileAclLo;
  into.fileAclHi = inode.fileAclHi;
  into.extraIsize = inode.extraIsize;
  into.mtimeSeconds = inode.mtime.seconds;
  into.mtimeNanoseconds = inode.mtime.nanoseconds;
  return into;
}

function checkUint(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new FsError('EINVAL', `inode ${name} ${value} outside 0..${max}`);
  }
}

/**
 * Encode an inode: a copy of `inode.raw` with every known field patched in. Fields the
 * record cannot hold must be `undefined` (crtime, checksumHi, versionHi, projid when
 * i_extra_isize does not cover them) — else EINVAL. Timestamps whose extra field is
 * absent lose their nanoseconds (one-second granularity) and must fit in signed 32 bits
 * (EOVERFLOW otherwise; see `clampTime`). The checksum fields are written as given:
 * call `setInodeChecksum` afterwards on metadata_csum filesystems.
 */
export function encodeInode(inode: Inode): Uint8Array {
  const inodeSize = inode.raw.length;
  checkInodeSize(inodeSize);
  const o = INODE_OFFSETS;

  const extraIsize = inodeSize > GOOD_OLD_INODE_SIZE ? inode.extraIsize : 0;
  if (inodeSize === GOOD_OLD_INODE_SIZE && inode.extraIsize !== 0) {
    throw new FsError('EINVAL', `a ${inodeSize}-byte inode has no extra part (extraIsize ${inode.extraIsize})`);
  }
  if (!Number.isInteger(extraIsize) || extraIsize < 0 || extraIsize % 4 !== 0 || GOOD_OLD_INODE_SIZE + extraIsize > inodeSize) {
    throw new FsError('EINVAL', `inode extraIsize ${extraIsize} invalid for inode size ${inodeSize}`);
  }

  checkUint('mode', inode.mode, 0xffff);
  checkUint('uid', inode.uid, 0xffff_ffff);
  checkUint('gid', inode.gid, 0xffff_ffff);
  checkUint('size', inode.size, Number.MAX_SAFE_INTEGER);
  checkUint('linksCount', inode.linksCount, 0xffff);
  checkUint('blocksLo', inode.blocksLo, 0xffff_ffff);
  checkUint('blocksHi', inode.blocksHi, 0xffff);
  checkUint('flags', inode.flags, 0xffff_ffff);
  checkUint('generation', inode.generation, 0xffff_ffff);
  checkUint('fileAclLo', inode.fileAclLo, 0xffff_ffff);
  checkUint('fileAclHi', inode.fileAclHi, 0xffff);
  checkUint('dtime', inode.dtime, 0xffff_ffff);
  checkUint('checksumLo', inode.checksumLo, 0xffff);
  checkUint('versionLo', inode.versionLo, 0xffff_ffff);
  if (inode.block.length !== INODE_BLOCK_SIZE) throw new FsError('EINVAL', `inode i_block must be ${INODE_BLOCK_SIZE} bytes, got ${inode.block.length}`);

  // Byte stores, not a DataView: this runs for every inode change (several per file
  // created), and making a DataView over a fresh 256-byte copy cost more than the stores.
  const raw = records.copy(inode.raw, 0, inodeSize);
  writeU16(raw, o.mode, inode.mode);
  writeU16(raw, o.uidLo, inode.uid & 0xffff);
  writeU16(raw, o.uidHi, inode.uid >>> 16);
  writeU16(raw, o.gidLo, inode.gid & 0xffff);
  writeU16(raw, o.gidHi, inode.gid >>> 16);
  writeU32(raw, o.sizeLo, inode.size % TWO_32);
  writeU32(raw, o.sizeHi, Math.floor(inode.size / TWO_32));
  writeU16(raw, o.linksCount, inode.linksCount);
  writeU32(raw, o.blocksLo, inode.blocksLo);
  writeU16(raw, o.blocksHi, inode.blocksHi);
  writeU32(raw, o.flags, inode.flags);
  writeU32(raw, o.versionLo, inode.versionLo);
  raw.set(inode.block, o.block);
  writeU32(raw, o.generation, inode.generation);
  writeU32(raw, o.fileAclLo, inode.fileAclLo);
  writeU16(raw, o.fileAclHi, inode.fileAclHi);
  writeU32(raw, o.dtime, inode.dtime);
  writeU16(raw, o.checksumLo, inode.checksumLo);

  putTime(raw, extraIsize, 'atime', inode.atime, o.atime, o.atimeExtra);
  putTime(raw, extraIsize, 'ctime', inode.ctime, o.ctime, o.ctimeExtra);
  putTime(raw, extraIsize, 'mtime', inode.mtime, o.mtime, o.mtimeExtra);

  if (inodeSize > GOOD_OLD_INODE_SIZE) writeU16(raw, o.extraIsize, extraIsize);
  putOptional(raw, extraIsize, 'checksumHi', inode.checksumHi, o.checksumHi, 2);
  putOptional(raw, extraIsize, 'versionHi', inode.versionHi, o.versionHi, 4);
  putOptional(raw, extraIsize, 'projid', inode.projid, o.projid, 4);
  if (inode.crtime !== undefined) {
    if (!fits(extraIsize, o.crtime, 4)) throw new FsError('EINVAL', `inode crtime does not fit in an inode with extraIsize ${extraIsize}`);
    putTime(raw, extraIsize, 'crtime', inode.crtime, o.crtime, o.crtimeExtra);
  }
  return raw;
}

/** encodeInode's timestamp: the 32-bit field, and the extra field when the record has it. */
function putTime(raw: Uint8Array, extraIsize: number, name: string, time: Timestamp, field: number, extraField: number): void {
  if (fits(extraIsize, extraField, 4)) {
    const { lo, extra } = encodeTime(time);
    writeU32(raw, field, lo);
    writeU32(raw, extraField, extra);
    return;
  }
  try {
    writeU32(raw, field, encodeTimeLegacy(time));
  } catch (error) {
    if (error instanceof FsError) throw new FsError(error.code, `inode ${name}: ${error.message}`);
    throw error;
  }
}

/** encodeInode's extra-part field that may be absent (`undefined`). */
function putOptional(raw: Uint8Array, extraIsize: number, name: string, value: number | undefined, offset: number, size: 2 | 4): void {
  if (value === undefined) return;
  if (!fits(extraIsize, offset, size)) throw new FsError('EINVAL', `inode ${name} does not fit in an inode with extraIsize ${extraIsize}`);
  checkUint(name, value, size === 2 ? 0xffff : 0xffff_ffff);
  if (size === 2) writeU16(raw, offset, value);
  else writeU32(raw, offset, value);
}

/**
 * A zeroed inode record of `inodeSize` bytes, decoded: a template for new inodes.
 * Large records get i_extra_isize = `extraIsize` (default 32, every known field).
 */
export function blankInode(inodeSize: number, extraIsize: number = INODE_EXTRA_ISIZE_FULL): Inode {
  checkInodeSize(inodeSize);
  const raw = new Uint8Array(inodeSize);
  if (inodeSize > GOOD_OLD_INODE_SIZE) {
    if (extraIsize % 4 !== 0 || extraIsize < 0 || GOOD_OLD_INODE_SIZE + extraIsize > inodeSize) {
      throw new FsError('EINVAL', `extraIsize ${extraIsize} invalid for inode size ${inodeSize}`);
    }
    viewOf(raw).setUint16(INODE_OFFSETS.extraIsize, extraIsize, true);
  }
  return decodeInode(raw, { inodeNo: 0, inodeSize });
}

/* ---- File type helpers ---- */

/** The S_IFMT bits of a mode. */
export function fileType(mode: number): number {
  return mode & S_IFMT;
}
export function isReg(mode: number): boolean {
  return (mode & S_IFMT) === S_IFREG;
}
export function isDir(mode: number): boolean {
  return (mode & S_IFMT) === S_IFDIR;
}
export function isSymlink(mode: number): boolean {
  return (mode & S_IFMT) === S_IFLNK;
}
export function isChr(mode: number): boolean {
  return (mode & S_IFMT) === S_IFCHR;
}
export function isBlk(mode: number): boolean {
  return (mode & S_IFMT) === S_IFBLK;
}
export function isFifo(mode: number): boolean {
  return (mode & S_IFMT) === S_IFIFO;
}
export function isSock(mode: number): boolean {
  return (mode & S_IFMT) === S_IFSOCK;
}
/** True for the seven file types POSIX defines (a mode with another S_IFMT value is corrupt). */
export function isValidFileType(mode: number): boolean {
  switch (mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK:
      return true;
    default:
      return false;
  }
}

/* ---- i_blocks, file ACL ---- */

/**
 * Bytes of storage charged to the inode (st_blocks * 512), from i_blocks:
 * - without the huge_file feature: i_blocks_lo counts 512-byte sectors (the high half is ignored);
 * - with huge_file: the 48-bit i_blocks_lo + l_i_blocks_high * 2^32 counts 512-byte sectors,
 *   or filesystem blocks when the inode has HUGE_FILE_FL.
 * Throws EOVERFLOW past 2^53 bytes.
 */
export function inodeBlocksBytes(inode: Pick<Inode, 'blocksLo' | 'blocksHi' | 'flags'>, blockSize: number, hugeFile: boolean): number {
  if (!hugeFile) return inode.blocksLo * 512;
  const count = inode.blocksLo + inode.blocksHi * TWO_32;
  const unit = (inode.flags & HUGE_FILE_FL) !== 0 ? blockSize : 512;
  const bytes = count * unit;
  if (!Number.isSafeInteger(bytes)) throw new FsError('EOVERFLOW', `i_blocks ${count} x ${unit} bytes exceeds 2^53`);
  return bytes;
}

/**
 * The i_blocks fields for `bytes` of storage (a multiple of 512), as the kernel writes them:
 * 32-bit sector counts need no feature; up to 2^48 sectors need huge_file (EFBIG without it);
 * beyond that HUGE_FILE_FL switches the unit to filesystem blocks.
 */
export function encodeInodeBlocks(bytes: number, blockSize: number, hugeFile: boolean): { readonly blocksLo: number; readonly blocksHi: number; readonly hugeFileFlag: boolean } {
  if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes % 512 !== 0) throw new FsError('EINVAL', `i_blocks byte count ${bytes} is not a multiple of 512`);
  const sectors = bytes / 512;
  if (sectors <= 0xffff_ffff) return { blocksLo: sectors, blocksHi: 0, hugeFileFlag: false };
  if (!hugeFile) throw new FsError('EFBIG', `${bytes} bytes of blocks need the huge_file feature`);
  if (sectors < 2 ** 48) return { blocksLo: sectors % TWO_32, blocksHi: Math.floor(sectors / TWO_32), hugeFileFlag: false };
  const blocks = Math.ceil(bytes / blockSize);
  return { blocksLo: blocks % TWO_32, blocksHi: Math.floor(blocks / TWO_32), hugeFileFlag: true };
}

/** The extended-attribute block: i_file_acl_lo, plus l_i_file_acl_high * 2^32 with the 64bit feature. */
export function inodeFileAcl(inode: Pick<Inode, 'fileAclLo' | 'fileAclHi'>, has64bit: boolean): number {
  return has64bit ? inode.fileAclLo + inode.fileAclHi * TWO_32 : inode.fileAclLo;
}

/* ---- Checksum (metadata_csum) ---- */

/**
 * The per-inode checksum seed: crc32c over the little-endian inode number then the
 * generation, starting from the filesystem seed (s_checksum_seed, or crc32c(~0, uuid)).
 * Extent blocks, directory blocks and xattr blocks of the inode are seeded with it too.
 */
export function inodeCsumSeed(fsCsumSeed: number, inodeNo: number, generation: number): number {
  return crc32cRawU32(crc32cRawU32(fsCsumSeed, inodeNo), generation);
}

export interface InodeChecksumOptions {
  readonly inodeNo: number;
  /** The filesystem checksum seed. */
  readonly fsCsumSeed: number;
}

/** True when the record's checksum has a high half: a large record whose i_extra_isize covers i_checksum_hi. */
function hasChecksumHi(raw: Uint8Array): boolean {
  if (raw.length <= GOOD_OLD_INODE_SIZE || raw.length < INODE_OFFSETS.checksumHi + 2) return false;
  const extra = (raw[INODE_OFFSETS.extraIsize] ?? 0) | ((raw[INODE_OFFSETS.extraIsize + 1] ?? 0) << 8);
  return fits(extra, INODE_OFFSETS.checksumHi, 2);
}

/**
 * The checksum of an inode record (`raw` = the whole `inodeSize`-byte record), as stored:
 * crc32c from the per-inode seed over the entire record with i_checksum_lo (and
 * i_checksum_hi when present) read as zero. 32 bits when the record holds
 * i_checksum_hi, else only the low 16 bits (128-byte records, or i_extra_isize < 4).
 */
export function inodeChecksum(raw: Uint8Array, options: InodeChecksumOptions): number {
  checkInodeSize(raw.length);
  const seed = inodeCsumSeed(options.fsCsumSeed, options.inodeNo, readU32(raw, INODE_OFFSETS.generation));
  const withHi = hasChecksumHi(raw);
  // One pass over a copy with the checksum fields zeroed: a single CRC call (the native
  // one for 256-byte records) instead of five small ones, which cost most in the first
  // thousands of inodes a short-lived process reads, before the JIT has optimized them.
  if (checksumScratch.length < raw.length) checksumScratch = new Uint8Array(raw.length);
  const copy = checksumScratch;
  copy.set(raw);
  copy[INODE_OFFSETS.checksumLo] = 0;
  copy[INODE_OFFSETS.checksumLo + 1] = 0;
  if (withHi) {
    copy[INODE_OFFSETS.checksumHi] = 0;
    copy[INODE_OFFSETS.checksumHi + 1] = 0;
  }
  const crc = crc32cRaw(seed, copy, 0, raw.length);
  return withHi ? crc >>> 0 : crc & 0xffff;
}

/** Where inodeChecksum copies a record (one buffer, grown to the largest record seen). */
let checksumScratch = new Uint8Array(256);

/** The checksum stored in a record: l_i_checksum_lo, plus i_checksum_hi << 16 when present. */
export function storedInodeChecksum(raw: Uint8Array): number {
  const lo = readU16(raw, INODE_OFFSETS.checksumLo);
  return hasChecksumHi(raw) ? (lo + readU16(raw, INODE_OFFSETS.checksumHi) * 0x1_0000) >>> 0 : lo;
}

/**
 * Verify an inode record's checksum. As e2fsprogs does, a record whose first 128 bytes
 * are all zero is accepted (a never-written inode of an initialized table).
 */
export function verifyInodeChecksum(raw: Uint8Array, options: InodeChecksumOptions): boolean {
  if (storedInodeChecksum(raw) === inodeChecksum(raw, options)) return true;
  for (let i = 0; i < GOOD_OLD_INODE_SIZE; i++) if (raw[i] !== 0) return false;
  return true;
}

/** Compute the checksum of `raw` (an encoded record) and store it in place. */
export function setInodeChecksum(raw: Uint8Array, options: InodeChecksumOptions): void {
  const crc = inodeChecksum(raw, options);
  const view = viewOf(raw);
  view.setUint16(INODE_OFFSETS.checksumLo, crc & 0xffff, true);
  if (hasChecksumHi(raw)) view.setUint16(INODE_OFFSETS.checksumHi, crc >>> 16, true);
}
