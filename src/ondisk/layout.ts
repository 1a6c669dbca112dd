/**
 * Group geometry as pure functions of the superblock: where groups start and end, which
 * groups hold superblock and descriptor-table copies, where a group's descriptor lives,
 * cluster <-> block conversion, and where an inode sits in its group's inode table.
 * Documentation/filesystems/ext4/blockgroup.rst and bigalloc.rst; e2fsprogs
 * ext2fs_super_and_bgd_loc2() and ext2fs_descriptor_block_loc2().
 *
 * Facts this module encodes:
 * - group g covers blocks [firstDataBlock + g * blocksPerGroup, ...), the last group
 *   ending at blocksCount - 1; firstDataBlock is 1 for 1 KiB blocks without bigalloc,
 *   else 0;
 * - the primary superblock is always at byte 1024: block 1 with 1 KiB blocks (even with
 *   bigalloc, where block 0 still belongs to group 0), block 0 otherwise; a backup
 *   superblock fills the first block of its group (from byte 0 of that block);
 * - backups: every group without sparse_super; groups 0, 1 and powers of 3, 5 and 7 with
 *   sparse_super; group 0 and s_backup_bgs[0..1] with sparse_super2;
 * - classic descriptor table: right after each superblock copy, descBlocks blocks then
 *   s_reserved_gdt_blocks reserved ones;
 * - meta_bg: descriptor blocks from index s_first_meta_bg on live in their meta group
 *   (descPerBlock groups): in its first, second and last group, right after the
 *   superblock copy if that group has one.
 */
import { corrupted } from '../errors.js';
import { COMPAT_SPARSE_SUPER2, RO_COMPAT_SPARSE_SUPER } from './features.js';
import type { Superblock } from './superblock.js';

type Geometry = Pick<
  Superblock,
  | 'blockSize'
  | 'blocksCount'
  | 'firstDataBlock'
  | 'blocksPerGroup'
  | 'groupCount'
  | 'clusterRatio'
  | 'featureCompat'
  | 'featureRoCompat'
  | 'backupBgs'
  | 'hasMetaBg'
  | 'firstMetaBg'
  | 'descBlocks'
  | 'descPerBlock'
  | 'descSize'
  | 'reservedGdtBlocks'
>;

/** A run of blocks. */
export interface BlockRange {
  readonly start: number;
  readonly count: number;
}

/** What a group holds at its start, as `dumpe2fs` lists it. */
export interface GroupLayout {
  readonly group: number;
  readonly firstBlock: number;
  /** Blocks in the group (the last group may be shorter). */
  readonly blockCount: number;
  /** Block holding this group's superblock copy (primary for group 0), or null. */
  readonly superblock: number | null;
  /** Copy of the classic descriptor table (the first s_first_meta_bg blocks with meta_bg), or null. */
  readonly descriptors: BlockRange | null;
  /** Reserved GDT blocks after the classic table copy (resize_inode), or null. */
  readonly reservedGdt: BlockRange | null;
  /** The meta_bg descriptor block copy this group holds, or null. */
  readonly metaBgDescriptor: number | null;
}

/** Where a group's descriptor is in the primary descriptor table. */
export interface DescriptorLocation {
  /** Filesystem block holding the descriptor. */
  readonly block: number;
  /** Byte offset of the descriptor within that block. */
  readonly offset: number;
  /** Index of the descriptor block in the table (0..descBlocks-1). */
  readonly tableIndex: number;
}

/** Where an inode is: its group, its index in that group, and its place in the inode table. */
export interface InodeLocation {
  readonly group: number;
  /** 0-based index within the group's inode table. */
  readonly index: number;
  /** Byte offset of the inode record from the start of the group's inode table. */
  readonly tableOffset: number;
  /** Block of the inode table holding the record, counted from the table's first block. */
  readonly tableBlock: number;
  /** Byte offset of the record within that block. */
  readonly blockOffset: number;
}

function checkGroup(sb: Pick<Superblock, 'groupCount'>, group: number): void {
  if (!Number.isInteger(group) || group < 0 || group >= sb.groupCount) {
    throw corrupted('block group number', `group ${group} out of range 0..${sb.groupCount - 1}`);
  }
}

/* ---------------------------------------------------------------- groups */

/** First block of group `group`. */
export function groupFirstBlock(sb: Geometry, group: number): number {
  checkGroup(sb, group);
  return sb.firstDataBlock + group * sb.blocksPerGroup;
}

/** Last block (inclusive) of group `group`. */
export function groupLastBlock(sb: Geometry, group: number): number {
  const first = groupFirstBlock(sb, group);
  return Math.min(first + sb.blocksPerGroup, sb.blocksCount) - 1;
}

/** Number of blocks in group `group` (blocksPerGroup, or fewer for the last group). */
export function groupBlockCount(sb: Geometry, group: number): number {
  return groupLastBlock(sb, group) - groupFirstBlock(sb, group) + 1;
}

/** Group containing `block`; EUCLEAN for a block outside [firstDataBlock, blocksCount). */
export function groupOfBlock(sb: Geometry, block: number): number {
  if (!Number.isInteger(block) || block < sb.firstDataBlock || block >= sb.blocksCount) {
    throw corrupted('block number', `block ${block} outside the filesystem (${sb.firstDataBlock}..${sb.blocksCount - 1})`);
  }
  return Math.floor((block - sb.firstDataBlock) / sb.blocksPerGroup);
}

/** Group of `block` and the bit for its cluster in that group's block bitmap. */
export function blockBitmapPosition(sb: Geometry, block: number): { readonly group: number; readonly bit: number } {
  const group = groupOfBlock(sb, block);
  const within = block - sb.firstDataBlock - group * sb.blocksPerGroup;
  return { group, bit: Math.floor(within / sb.clusterRatio) };
}

/** The block a bit of group `group`'s block bitmap stands for (the cluster's first block). */
export function blockOfBitmapBit(sb: Geometry, group: number, bit: number): number {
  const first = groupFirstBlock(sb, group);
  const clusters = sb.blocksPerGroup / sb.clusterRatio;
  if (!Number.isInteger(bit) || bit < 0 || bit >= clusters) throw new RangeError(`bit ${bit} outside a block bitmap of ${clusters} clusters`);
  return first + bit * sb.clusterRatio;
}

/* ---------------------------------------------------------------- clusters (bigalloc) */

/** Cluster containing `block` (EXT4_B2C: clusters are counted from block 0). */
export function blockToCluster(sb: Pick<Superblock, 'clusterRatio'>, block: number): number {
  return Math.floor(block / sb.clusterRatio);
}

/** First block of `cluster` (EXT4_C2B). */
export function clusterToBlock(sb: Pick<Superblock, 'clusterRatio'>, cluster: number): number {
  return cluster * sb.clusterRatio;
}

/** Clusters needed to hold `blocks` blocks (EXT4_NUM_B2C: rounded up). */
export function blocksToClusters(sb: Pick<Superblock, 'clusterRatio'>, blocks: number): number {
  return Math.ceil(blocks / sb.clusterRatio);
}

/** Offset of `block` within its cluster. */
export function blockOffsetInCluster(sb: Pick<Superblock, 'clusterRatio'>, block: number): number {
  return block % sb.clusterRatio;
}

/* ---------------------------------------------------------------- superblock copies */

/** n is a power of `base` (n >= 1; 1 = base^0). */
function isPowerOf(n: number, base: number): boolean {
  let x = n;
  while (x > 1 && x % base === 0) x /= base;
  return x === 1;
}

/** True when group `group` holds a superblock (primary for group 0, a backup otherwise). */
export function groupHasSuperblock(sb: Geometry, group: number): boolean {
  checkGroup(sb, group);
  if (group === 0) return true;
  if ((sb.featureCompat & COMPAT_SPARSE_SUPER2) !== 0) return group === sb.backupBgs[0] || group === sb.backupBgs[1];
  if (group === 1 || (sb.featureRoCompat & RO_COMPAT_SPARSE_SUPER) === 0) return true;
  if (group % 2 === 0) return false;
  return isPowerOf(group, 3) || isPowerOf(group, 5) || isPowerOf(group, 7);
}

/** Block where group `group`'s metadata starts: its first block, except block 1 for group 0 with 1 KiB blocks and bigalloc. */
function metadataStart(sb: Geometry, group: number): number {
  const first = groupFirstBlock(sb, group);
  return first === 0 && sb.blockSize === 1024 ? 1 : first;
}

/** Block holding group `group`'s superblock copy, or null when it has none. */
export function superblockBlock(sb: Geometry, group: number): number | null {
  return groupHasSuperblock(sb, group) ? metadataStart(sb, group) : null;
}

/**
 * Device byte offset of group `group`'s superblock copy, or null: 1024 for the primary,
 * the start of the group's first block for a backup.
 */
export function superblockByteOffset(sb: Geometry, group: number): number | null {
  if (!groupHasSuperblock(sb, group)) return null;
  return group === 0 ? 1024 : groupFirstBlock(sb, group) * sb.blockSize;
}

/* ---------------------------------------------------------------- descriptor table */

/** Block of the primary copy of descriptor-table block `index` (0..descBlocks-1). */
export function descriptorTableBlock(sb: Geometry, index: number): number {
  if (!Number.isInteger(index) || index < 0 || index >= sb.descBlocks) {
    throw corrupted('group descriptor table', `descriptor block ${index} out of range 0..${sb.descBlocks - 1}`);
  }
  if (!sb.hasMetaBg || index < sb.firstMetaBg) return metadataStart(sb, 0) + 1 + index;
  const group = index * sb.descPerBlock;
  return metadataStart(sb, group) + (groupHasSuperblock(sb, group) ? 1 : 0);
}

/** Block and byte offset of group `group`'s descriptor in the primary descriptor table. */
export function descriptorBlockFor(sb: Geometry, group: number): DescriptorLocation {
  checkGroup(sb, group);
  const tableIndex = Math.floor(group / sb.descPerBlock);
  return { block: descriptorTableBlock(sb, tableIndex), offset: (group % sb.descPerBlock) * sb.descSize, tableIndex };
}

/** Superblock and descriptor-table copies at the start of group `group` (e2fsprogs' ext2fs_super_and_bgd_loc2). */
export function groupLayout(sb: Geometry, group: number): GroupLayout {
  const firstBlock = groupFirstBlock(sb, group);
  const blockCount = groupBlockCount(sb, group);
  const hasSuper = groupHasSuperblock(sb, group);
  const start = metadataStart(sb, group);
  const superblock = hasSuper ? start : null;
  let descriptors: BlockRange | null = null;
  let reservedGdt: BlockRange | null = null;
  let metaBgDescriptor: number | null = null;
  const metaGroup = Math.floor(group / sb.descPerBlock);
  if (!sb.hasMetaBg || metaGroup < sb.firstMetaBg) {
    if (hasSuper) {
      const count = sb.hasMetaBg ? sb.firstMetaBg : sb.descBlocks;
      descriptors = { start: start + 1, count };
      if (sb.reservedGdtBlocks > 0) reservedGdt = { start: start + 1 + count, count: sb.reservedGdtBlocks };
    }
  } else {
    const r = group % sb.descPerBlock;
    if (r === 0 || r === 1 || r === sb.descPerBlock - 1) metaBgDescriptor = start + (hasSuper ? 1 : 0);
  }
  return { group, firstBlock, blockCount, superblock, descriptors, reservedGdt, metaBgDescriptor };
}

/* ---------------------------------------------------------------- inodes */

/**
 * Group, index and inode-table position of inode `ino`. EUCLEAN for 0, for numbers above
 * s_inodes_count, and for anything not an integer. The table's first block comes from the
 * group's descriptor: the record is at block `desc.inodeTable + tableBlock`, byte `blockOffset`.
 */
export function inodeLocation(sb: Pick<Superblock, 'inodesCount' | 'inodesPerGroup' | 'inodeSize' | 'blockSize'>, ino: number): InodeLocation {
  if (!Number.isInteger(ino) || ino < 1 || ino > sb.inodesCount) {
    throw corrupted('inode number', `inode ${ino} out of range 1..${sb.inodesCount}`, Number.isSafeInteger(ino) ? { inode: ino } : {});
  }
  if (sb.inodesPerGroup === 0) throw corrupted('superblock', 'no inodes per group');
  const group = Math.floor((ino - 1) / sb.inodesPerGroup);
  const index = (ino - 1) % sb.inodesPerGroup;
  const tableOffset = index * sb.inodeSize;
  return { group, index, tableOffset, tableBlock: Math.floor(tableOffset / sb.blockSize), blockOffset: tableOffset % sb.blockSize };
}

/** First inode number of group `group`. */
export function groupFirstInode(sb: Pick<Superblock, 'groupCount' | 'inodesPerGroup'>, group: number): number {
  checkGroup(sb, group);
  return group * sb.inodesPerGroup + 1;
}
