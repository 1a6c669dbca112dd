/**
 * Block and inode bitmap checksums (metadata_csum), stored in the group descriptor.
 * Documentation/filesystems/ext4/checksums.rst and group_descr.rst.
 *
 * - block bitmap: crc32c(csumSeed, bitmap[0, clustersPerGroup / 8));
 * - inode bitmap: crc32c(csumSeed, bitmap[0, inodesPerGroup / 8)).
 * Neither includes the group number. The low 16 bits go to bg_*_bitmap_csum_lo; the high
 * 16 bits to bg_*_bitmap_csum_hi only when descriptors are 64 bytes or more — with
 * 32-byte descriptors only the low 16 bits are stored and compared.
 *
 * A group flagged BLOCK_UNINIT (INODE_UNINIT) has no block (inode) bitmap on disk worth
 * checking: callers build it in memory and skip verification.
 */
import { crc32cRaw } from './crc.js';
import { changedGroupDesc, type GroupDesc } from './group-desc.js';
import type { Superblock } from './superblock.js';

type BitmapGeometry = Pick<Superblock, 'csumSeed' | 'clustersPerGroup' | 'inodesPerGroup' | 'descSize' | 'hasMetadataCsum'>;

/** Bytes of a block bitmap the checksum covers: one bit per cluster of a group. */
export function blockBitmapBytes(sb: Pick<Superblock, 'clustersPerGroup'>): number {
  return Math.floor(sb.clustersPerGroup / 8);
}

/** Bytes of an inode bitmap the checksum covers: one bit per inode of a group. */
export function inodeBitmapBytes(sb: Pick<Superblock, 'inodesPerGroup'>): number {
  return Math.floor(sb.inodesPerGroup / 8);
}

function crcOver(sb: BitmapGeometry, bitmap: Uint8Array, length: number, what: string): number {
  if (bitmap.length < length) throw new RangeError(`${what} needs ${length} bytes, got ${bitmap.length}`);
  return crc32cRaw(sb.csumSeed, bitmap, 0, length);
}

/** Full 32-bit crc32c of a block bitmap (the bitmap block's contents, from its first byte). */
export function blockBitmapChecksum(sb: BitmapGeometry, bitmap: Uint8Array): number {
  return crcOver(sb, bitmap, blockBitmapBytes(sb), 'block bitmap');
}

/** Full 32-bit crc32c of an inode bitmap. */
export function inodeBitmapChecksum(sb: BitmapGeometry, bitmap: Uint8Array): number {
  return crcOver(sb, bitmap, inodeBitmapBytes(sb), 'inode bitmap');
}

/** The part of a 32-bit checksum the descriptor stores: all of it with 64-byte descriptors, else the low 16 bits. */
function stored(sb: BitmapGeometry, crc: number): number {
  return sb.descSize >= 64 ? crc >>> 0 : crc & 0xffff;
}

/** True when the descriptor's block bitmap checksum matches `bitmap` (always true without metadata_csum). */
export function verifyBlockBitmapChecksum(sb: BitmapGeometry, desc: Pick<GroupDesc, 'blockBitmapCsum'>, bitmap: Uint8Array): boolean {
  if (!sb.hasMetadataCsum) return true;
  return stored(sb, blockBitmapChecksum(sb, bitmap)) === desc.blockBitmapCsum;
}

/** True when the descriptor's inode bitmap checksum matches `bitmap` (always true without metadata_csum). */
export function verifyInodeBitmapChecksum(sb: BitmapGeometry, desc: Pick<GroupDesc, 'inodeBitmapCsum'>, bitmap: Uint8Array): boolean {
  if (!sb.hasMetadataCsum) return true;
  return stored(sb, inodeBitmapChecksum(sb, bitmap)) === desc.inodeBitmapCsum;
}

/** `desc` with its block bitmap checksum set for `bitmap` (unchanged without metadata_csum). */
export function withBlockBitmapChecksum(sb: BitmapGeometry, desc: GroupDesc, bitmap: Uint8Array): GroupDesc {
  if (!sb.hasMetadataCsum) return desc;
  return changedGroupDesc(desc, { blockBitmapCsum: stored(sb, blockBitmapChecksum(sb, bitmap)) });
}

/** `desc` with its inode bitmap checksum set for `bitmap` (unchanged without metadata_csum). */
export function withInodeBitmapChecksum(sb: BitmapGeometry, desc: GroupDesc, bitmap: Uint8Array): GroupDesc {
  if (!sb.hasMetadataCsum) return desc;
  return changedGroupDesc(desc, { inodeBitmapCsum: stored(sb, inodeBitmapChecksum(sb, bitmap)) });
}
