/**
 * Block group descriptors: 32 bytes (struct ext2_group_desc) or, with 64bit, s_desc_size
 * bytes (64 or more; struct ext4_group_desc holds 64, the rest is reserved and kept).
 * Documentation/filesystems/ext4/group_descr.rst.
 *
 * The `_hi` halves are used only when the descriptor size is at least 64 bytes, as the
 * kernel does; values are `lo + hi * 2^32` (blocks) or `lo + hi * 2^16` (counts).
 *
 * Checksum (bg_checksum, 16 bits), over the descriptor with bg_checksum taken as zero:
 * - metadata_csum: crc32c(csumSeed, le32 group number, descriptor[0, descSize)) & 0xffff;
 * - uninit_bg (gdt_csum) without metadata_csum: crc16(~0, uuid, le32 group number,
 *   descriptor[0, 0x1e), descriptor[0x20, descSize)) — the part after the checksum field
 *   only exists when descSize > 32, i.e. with 64bit;
 * - neither: no checksum (bg_checksum is left as is).
 */
import { corrupted, FsError } from '../errors.js';
import { crc16, crc32cRaw, crc32cRawU32 } from './crc.js';
import { combineU64, splitU64, type Superblock } from './superblock.js';

/** Byte offsets of the descriptor fields. */
export const GD = {
  blockBitmapLo: 0x00,
  inodeBitmapLo: 0x04,
  inodeTableLo: 0x08,
  freeBlocksCountLo: 0x0c,
  freeInodesCountLo: 0x0e,
  usedDirsCountLo: 0x10,
  flags: 0x12,
  excludeBitmapLo: 0x14,
  blockBitmapCsumLo: 0x18,
  inodeBitmapCsumLo: 0x1a,
  itableUnusedLo: 0x1c,
  checksum: 0x1e,
  // 64-byte descriptors only:
  blockBitmapHi: 0x20,
  inodeBitmapHi: 0x24,
  inodeTableHi: 0x28,
  freeBlocksCountHi: 0x2c,
  freeInodesCountHi: 0x2e,
  usedDirsCountHi: 0x30,
  itableUnusedHi: 0x32,
  excludeBitmapHi: 0x34,
  blockBitmapCsumHi: 0x38,
  inodeBitmapCsumHi: 0x3a,
  reserved: 0x3c,
} as const;

/** Size of the classic descriptor, and the smallest 64bit one. */
export const GROUP_DESC_SIZE = 32;
export const GROUP_DESC_SIZE_64BIT = 64;

/** bg_flags bits. */
export const BG_INODE_UNINIT = 0x0001;
export const BG_BLOCK_UNINIT = 0x0002;
export const BG_INODE_ZEROED = 0x0004;

const TWO_16 = 0x1_0000;
/** Stands in for bg_checksum's two bytes in the crc32c. */
const ZERO16 = new Uint8Array(2);

/** A decoded group descriptor. Block numbers and counts combine their lo/hi halves. */
export interface GroupDesc {
  /** Group number this descriptor describes. */
  readonly group: number;
  readonly blockBitmap: number;
  readonly inodeBitmap: number;
  /** First block of the group's inode table. */
  readonly inodeTable: number;
  /** Free clusters (free blocks without bigalloc). */
  readonly freeBlocksCount: number;
  readonly freeInodesCount: number;
  readonly usedDirsCount: number;
  /** bg_flags: BG_INODE_UNINIT | BG_BLOCK_UNINIT | BG_INODE_ZEROED. */
  readonly flags: number;
  /** next3 snapshot exclude bitmap block (snapshot_bitmap feature). */
  readonly excludeBitmap: number;
  /** bg_block_bitmap_csum_lo + hi * 2^16 (hi only with 64-byte descriptors). */
  readonly blockBitmapCsum: number;
  readonly inodeBitmapCsum: number;
  /** Inodes at the end of the inode table never used (counted from the end). */
  readonly itableUnused: number;
  /** bg_checksum as stored. */
  readonly checksum: number;
  /** A copy of the descriptor's bytes (descSize long). Do not mutate. */
  readonly raw: Uint8Array;
}

export interface DecodeGroupDescOptions {
  /** Check bg_checksum when the filesystem has one (default true). */
  readonly verifyChecksum?: boolean;
  /** Filesystem block the descriptor was read from, for error messages. */
  readonly block?: number;
}

export interface EncodeGroupDescOptions {
  /** Recompute bg_checksum when the filesystem has one (default true); false writes `desc.checksum`. */
  readonly updateChecksum?: boolean;
}

type GeometryForDesc = Pick<
  Superblock,
  | 'descSize'
  | 'hasMetadataCsum'
  | 'hasGroupDescCsum'
  | 'csumSeed'
  | 'uuid'
  | 'groupCount'
  | 'blockSize'
  | 'blocksCount'
  | 'inodesPerGroup'
  | 'clustersPerGroup'
  | 'inodeTableBlocks'
  | 'hasMetaBg'
  | 'hasFlexBg'
  | 'firstMetaBg'
  | 'descBlocks'
  | 'firstDataBlock'
  | 'blocksPerGroup'
>;

function checkRange(bytes: Uint8Array, offset: number, size: number): void {
  if (!Number.isInteger(offset) || offset < 0 || offset + size > bytes.length) {
    throw new RangeError(`group descriptor at ${offset} (${size} bytes) outside a buffer of ${bytes.length}`);
  }
}

/**
 * The checksum the descriptor at `bytes[offset, offset + descSize)` should carry for
 * `group` (0 when the filesystem has no descriptor checksums). bg_checksum's own bytes
 * are skipped, so the buffer need not have them zeroed.
 */
export function groupDescChecksum(sb: GeometryForDesc, group: number, bytes: Uint8Array, offset = 0): number {
  const size = sb.descSize;
  checkRange(bytes, offset, size);
  const csumAt = offset + GD.checksum;
  const after = csumAt + 2;
  const end = offset + size;
  if (sb.hasMetadataCsum) {
    let crc = crc32cRawU32(sb.csumSeed, group >>> 0);
    crc = crc32cRaw(crc, bytes, offset, csumAt);
    crc = crc32cRaw(crc, ZERO16, 0, 2);
    if (after < end) crc = crc32cRaw(crc, bytes, after, end);
    return (crc & 0xffff) >>> 0;
  }
  if (sb.hasGroupDescCsum) {
    let crc = crc16(0xffff, sb.uuid, 0, sb.uuid.length);
    const le = new Uint8Array(4);
    new DataView(le.buffer).setUint32(0, group >>> 0, true);
    crc = crc16(crc, le, 0, 4);
    crc = crc16(crc, bytes, offset, csumAt);
    if (after < end) crc = crc16(crc, bytes, after, end);
    return crc;
  }
  return 0;
}

/** True when the stored bg_checksum matches (always true without descriptor checksums). */
export function verifyGroupDescChecksum(sb: GeometryForDesc, group: number, bytes: Uint8Array, offset = 0): boolean {
  if (!sb.hasGroupDescCsum) return true;
  checkRange(bytes, offset, sb.descSize);
  const stored = new DataView(bytes.buffer, bytes.byteOffset + offset, sb.descSize).getUint16(GD.checksum, true);
  return stored === groupDescChecksum(sb, group, bytes, offset);
}

/**
 * Decode and validate the descriptor of `group` at `bytes[offset, offset + descSize)`.
 * Throws EUCLEAN on a checksum mismatch, on bitmaps or inode table outside the
 * filesystem or overlapping the primary superblock, and on counts above the group's size.
 */
/** The fields of a descriptor that change as the filesystem is written. */
export type GroupDescChange = Partial<Omit<GroupDesc, 'group' | 'raw'>>;

/**
 * `desc` with `change` applied, built field by field in the decoder's order: one object
 * shape for every descriptor (a spread of two objects takes V8's slow clone path, and
 * descriptors change on every allocation).
 */
export function changedGroupDesc(desc: GroupDesc, change: GroupDescChange): GroupDesc {
  return {
    group: desc.group,
    blockBitmap: change.blockBitmap ?? desc.blockBitmap,
    inodeBitmap: change.inodeBitmap ?? desc.inodeBitmap,
    inodeTable: change.inodeTable ?? desc.inodeTable,
    freeBlocksCount: change.freeBlocksCount ?? desc.freeBlocksCount,
    freeInodesCount: change.freeInodesCount ?? desc.freeInodesCount,
    usedDirsCount: change.usedDirsCount ?? desc.usedDirsCount,
    flags: change.flags ?? desc.flags,
    excludeBitmap: change.excludeBitmap ?? desc.excludeBitmap,
    blockBitmapCsum: change.blockBitmapCsum ?? desc.blockBitmapCsum,
    inodeBitmapCsum: change.inodeBitmapCsum ?? desc.inodeBitmapCsum,
    itableUnused: change.itableUnused ?? desc.itableUnused,
    checksum: change.checksum ?? desc.checksum,
    raw: desc.raw,
  };
}

export function decodeGroupDesc(bytes: Uint8Array, offset: number, sb: GeometryForDesc, group: number, options: DecodeGroupDescOptions = {}): GroupDesc {
  const size = sb.descSize;
  checkRange(bytes, offset, size);
  const where = options.block !== undefined ? { block: options.block, offset } : { offset };
  const bad = (what: string): FsError => corrupted('group descriptor', `group ${group}: ${what}`, where);
  if (!Number.isInteger(group) || group < 0 || group >= sb.groupCount) throw bad(`group number out of range 0..${sb.groupCount - 1}`);
  // A copy (new Uint8Array, not slice: Buffer.slice would share the caller's memory).
  const raw = new Uint8Array(bytes.subarray(offset, offset + size));
  const v = new DataView(raw.buffer, raw.byteOffset, size);
  const u16 = (o: number): number => v.getUint16(o, true);
  const u32 = (o: number): number => v.getUint32(o, true);
  const wide = size >= GROUP_DESC_SIZE_64BIT;
  const block = (lo: number, hi: number, name: string): number => combineU64(u32(lo), wide ? u32(hi) : 0, () => bad(`${name} block is above 2^53`));
  const count = (lo: number, hi: number): number => u16(lo) + (wide ? u16(hi) * TWO_16 : 0);

  const checksum = u16(GD.checksum);
  if (sb.hasGroupDescCsum && options.verifyChecksum !== false) {
    const computed = groupDescChecksum(sb, group, raw, 0);
    if (computed !== checksum) throw bad(`checksum mismatch: stored 0x${hex16(checksum)}, computed 0x${hex16(computed)}`);
  }

  const desc: GroupDesc = {
    group,
    blockBitmap: block(GD.blockBitmapLo, GD.blockBitmapHi, 'block bitmap'),
    inodeBitmap: block(GD.inodeBitmapLo, GD.inodeBitmapHi, 'inode bitmap'),
    inodeTable: block(GD.inodeTableLo, GD.inodeTableHi, 'inode table'),
    freeBlocksCount: count(GD.freeBlocksCountLo, GD.freeBlocksCountHi),
    freeInodesCount: count(GD.freeInodesCountLo, GD.freeInodesCountHi),
    usedDirsCount: count(GD.usedDirsCountLo, GD.usedDirsCountHi),
    flags: u16(GD.flags),
    excludeBitmap: block(GD.excludeBitmapLo, GD.excludeBitmapHi, 'exclude bitmap'),
    blockBitmapCsum: count(GD.blockBitmapCsumLo, GD.blockBitmapCsumHi),
    inodeBitmapCsum: count(GD.inodeBitmapCsumLo, GD.inodeBitmapCsumHi),
    itableUnused: count(GD.itableUnusedLo, GD.itableUnusedHi),
    checksum,
    raw,
  };

  // Locations (the kernel's ext4_check_descriptors): after the primary superblock, not in
  // group 0's copy of the descriptor table, and inside the filesystem — with flex_bg
  // anywhere in it, without flex_bg inside the descriptor's own group.
  const minBlock = sb.blockSize === 1024 ? 2 : 1;
  const gdtEnd = minBlock + (sb.hasMetaBg ? Math.max(sb.firstMetaBg, 1) : sb.descBlocks);
  const groupStart = sb.firstDataBlock + group * sb.blocksPerGroup;
  const low = sb.hasFlexBg ? minBlock : Math.max(minBlock, groupStart);
  const end = sb.hasFlexBg ? sb.blocksCount : Math.min(sb.blocksCount, groupStart + sb.blocksPerGroup);
  const place = (name: string, b: number, n: number): void => {
    const last = b + n - 1;
    if (b < low || last >= end) throw bad(`${name} at ${b}..${last} outside blocks ${low}..${end - 1}${sb.hasFlexBg ? '' : ' (its group, without flex_bg)'}`);
    if (b < gdtEnd) throw bad(`${name} at ${b}..${last} overlaps the group descriptor table (blocks ${minBlock}..${gdtEnd - 1})`);
  };
  place('block bitmap', desc.blockBitmap, 1);
  place('inode bitmap', desc.inodeBitmap, 1);
  place('inode table', desc.inodeTable, sb.inodeTableBlocks);
  if (desc.freeInodesCount > sb.inodesPerGroup) throw bad(`${desc.freeInodesCount} free inodes, more than the ${sb.inodesPerGroup} per group`);
  if (desc.usedDirsCount > sb.inodesPerGroup) throw bad(`${desc.usedDirsCount} directories, more than the ${sb.inodesPerGroup} inodes per group`);
  if (desc.itableUnused > sb.inodesPerGroup) throw bad(`${desc.itableUnused} unused inodes, more than the ${sb.inodesPerGroup} per group`);
  if (desc.freeBlocksCount > sb.clustersPerGroup) throw bad(`${desc.freeBlocksCount} free clusters, more than the ${sb.clustersPerGroup} per group`);
  return desc;
}

/**
 * Write `desc` (descSize bytes) into `into` at `offset`: its raw bytes first, then every
 * field over them. The `_hi` halves are written only for descriptors of 64 bytes or more;
 * a value that needs them in a 32-byte descriptor is EINVAL. bg_checksum is recomputed
 * when the filesystem has descriptor checksums, unless `updateChecksum` is false.
 */
export function encodeGroupDesc(desc: GroupDesc, into: Uint8Array, offset: number, sb: GeometryForDesc, options: EncodeGroupDescOptions = {}): Uint8Array {
  const size = sb.descSize;
  checkRange(into, offset, size);
  if (desc.raw.length !== size) throw new RangeError(`group descriptor raw copy has ${desc.raw.length} bytes, descriptor size is ${size}`);
  into.set(desc.raw, offset);
  const v = new DataView(into.buffer, into.byteOffset + offset, size);
  const wide = size >= GROUP_DESC_SIZE_64BIT;
  const block = (lo: number, hi: number, value: number, name: string): void => {
    const [l, h] = splitU64(value, name);
    v.setUint32(lo, l, true);
    if (wide) v.setUint32(hi, h, true);
    else if (h !== 0) throw new FsError('EINVAL', `${name}: ${value} needs a 64-byte group descriptor`);
  };
  const count = (lo: number, hi: number, value: number, name: string): void => {
    const max = wide ? 0xffffffff : 0xffff;
    if (!Number.isInteger(value) || value < 0 || value > max) throw new FsError('EINVAL', `${name}: ${value} does not fit (0..${max})`);
    v.setUint16(lo, value % TWO_16, true);
    if (wide) v.setUint16(hi, Math.floor(value / TWO_16), true);
  };
  block(GD.blockBitmapLo, GD.blockBitmapHi, desc.blockBitmap, 'block bitmap');
  block(GD.inodeBitmapLo, GD.inodeBitmapHi, desc.inodeBitmap, 'inode bitmap');
  block(GD.inodeTableLo, GD.inodeTableHi, desc.inodeTable, 'inode table');
  count(GD.freeBlocksCountLo, GD.freeBlocksCountHi, desc.freeBlocksCount, 'free blocks count');
  count(GD.freeInodesCountLo, GD.freeInodesCountHi, desc.freeInodesCount, 'free inodes count');
  count(GD.usedDirsCountLo, GD.usedDirsCountHi, desc.usedDirsCount, 'used directories count');
  if (!Number.isInteger(desc.flags) || desc.flags < 0 || desc.flags > 0xffff) throw new FsError('EINVAL', `group flags ${desc.flags} do not fit 16 bits`);
  v.setUint16(GD.flags, desc.flags, true);
  block(GD.excludeBitmapLo, GD.excludeBitmapHi, desc.excludeBitmap, 'exclude bitmap');
  count(GD.blockBitmapCsumLo, GD.blockBitmapCsumHi, desc.blockBitmapCsum, 'block bitmap checksum');
  count(GD.inodeBitmapCsumLo, GD.inodeBitmapCsumHi, desc.inodeBitmapCsum, 'inode bitmap checksum');
  count(GD.itableUnusedLo, GD.itableUnusedHi, desc.itableUnused, 'unused inodes count');
  const recompute = options.updateChecksum !== false && sb.hasGroupDescCsum;
  const checksum = recompute ? groupDescChecksum(sb, desc.group, into, offset) : desc.checksum;
  if (!Number.isInteger(checksum) || checksum < 0 || checksum > 0xffff) throw new FsError('EINVAL', `group descriptor checksum ${checksum} does not fit 16 bits`);
  v.setUint16(GD.checksum, checksum, true);
  return into;
}

function hex16(n: number): string {
  return n.toString(16).padStart(4, '0');
}
