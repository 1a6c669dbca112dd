/**
 * Block and inode allocation for a writable filesystem.
 *
 * The allocator owns the group descriptors of a read-write filesystem: it keeps a
 * mutable copy of each, changes bitmaps in place in the block cache (acquire/release,
 * so they are written back with the rest of the metadata), and writes the changed
 * descriptors, their bitmap checksums and the superblock's free counts at `sync`.
 *
 * Uninitialized groups (uninit_bg / metadata_csum):
 * - BLOCK_UNINIT: the bitmap block holds nothing valid. The first allocation in the
 *   group builds it from the layout (superblock and descriptor copies, and every
 *   group's bitmaps and inode table that fall inside this group, as flex_bg places
 *   them) and clears the flag.
 * - INODE_UNINIT: the inode bitmap is all free; the first inode allocated there
 *   zeroes it and clears the flag. bg_itable_unused is lowered to cover every inode
 *   handed out, so e2fsck scans them.
 *
 * Placement, after the kernel's policies in miniature:
 * - directories (Orlov): top-level directories go to a group with at least average
 *   free inodes and blocks and the fewest directories; subdirectories stay in their
 *   parent's group while it has room, else the next group that does;
 * - files: the parent directory's group, then the following groups;
 * - blocks: the first free run at or after a goal (the block after the file's last
 *   one, or the start of its inode's group), wrapping around the filesystem.
 *
 * Bigalloc: the bitmaps and the free counts (descriptors and this class's total) are
 * in clusters of `clusterRatio` blocks; the API speaks blocks. `allocBlocks` hands out
 * whole clusters (its run starts and ends on cluster boundaries) and `freeBlocks`
 * releases every cluster its range touches. Which blocks of a cluster a file maps,
 * and when a cluster is free again, is the writer's business. Without bigalloc a
 * cluster is a block and all of this is the identity.
 */
import { FsError, corrupted } from '../errors.js';
import type { CachingChannel } from '../cache/caching-channel.js';
import { changedGroupDesc, encodeGroupDesc, BG_BLOCK_UNINIT, BG_INODE_UNINIT, BG_INODE_ZEROED, type GroupDesc, type GroupDescChange } from '../ondisk/group-desc.js';
import { withBlockBitmapChecksum, withInodeBitmapChecksum } from '../ondisk/bitmap.js';
import { descriptorBlockFor, groupBlockCount, groupFirstBlock, groupLayout } from '../ondisk/layout.js';
import type { Superblock } from '../ondisk/superblock.js';

/** A run of blocks handed out by `allocBlocks`. */
/** Blocks a group's bitmap or inode table occupies. */
interface MetadataRange {
  readonly start: number;
  readonly count: number;
}

export interface BlockExtent {
  readonly start: number;
  readonly count: number;
}

function testBit(bitmap: Uint8Array, bit: number): boolean {
  return (((bitmap[bit >>> 3] as number) >>> (bit & 7)) & 1) !== 0;
}
function setBit(bitmap: Uint8Array, bit: number): void {
  bitmap[bit >>> 3] = (bitmap[bit >>> 3] as number) | (1 << (bit & 7));
}
function clearBit(bitmap: Uint8Array, bit: number): void {
  bitmap[bit >>> 3] = (bitmap[bit >>> 3] as number) & ~(1 << (bit & 7));
}

/** First clear bit in [from, end), or -1. Skips full bytes eight bits at a time. */
function findClear(bitmap: Uint8Array, from: number, end: number): number {
  let bit = from;
  while (bit < end) {
    if ((bit & 7) === 0 && bitmap[bit >>> 3] === 0xff) {
      bit += 8;
      continue;
    }
    if (!testBit(bitmap, bit)) return bit;
    bit++;
  }
  return -1;
}

/**
 * findClear over [max(from, hints[g]), end), where `hints[g]` is a bit below which group
 * g's bitmap has no clear bit that could be handed out. When the scan started at the
 * hint, every bit it passed is set: the hint moves up to what it found (or to `end`).
 * New files aim at their group's first block, so without the hint each allocation would
 * walk over every block already used in the group (thousands of bits once it fills up).
 */
function findClearHinted(bitmap: Uint8Array, hints: Int32Array, g: number, from: number, end: number): number {
  const hint = hints[g] as number;
  const start = from < hint ? hint : from;
  const bit = findClear(bitmap, start, end);
  if (start === hint) hints[g] = bit < 0 ? end : bit;
  return bit;
}

export class Allocator {
  private readonly descs: GroupDesc[];
  private readonly dirtyDescs = new Set<number>();
  private readonly dirtyBlockBitmaps = new Set<number>();
  private readonly dirtyInodeBitmaps = new Set<number>();
  /** Groups whose descriptor was touched since `sync` (for the superblock counts). */
  private freeBlocksTotal: number;
  private freeInodesTotal: number;
  private dirsTotal: number;
  /**
   * Per group, a bit below which its block (inode) bitmap has no free block (inode)
   * to hand out: scans start there. Raised by allocations that scanned from it,
   * lowered by every free; only this class changes the bitmaps.
   */
  private readonly blockHints: Int32Array;
  /** metadataRanges(), once built. */
  private metaRanges: readonly MetadataRange[] | undefined;
  private readonly inodeHints: Int32Array;
  /** Rotor for spreading top-level directories. */
  private orlovRotor = 0;
  /** Blocks per cluster (1 without bigalloc). */
  private readonly ratio: number;

  constructor(
    private readonly sb: Superblock,
    private readonly channel: CachingChannel,
    loadDesc: (group: number) => GroupDesc,
  ) {
    this.ratio = sb.clusterRatio;
    this.descs = [];
    let blocks = 0;
    let inodes = 0;
    let dirs = 0;
    for (let g = 0; g < sb.groupCount; g++) {
      const gd = loadDesc(g);
      this.descs.push(gd);
      blocks += gd.freeBlocksCount;
      inodes += gd.freeInodesCount;
      dirs += gd.usedDirsCount;
    }
    this.freeBlocksTotal = blocks;
    this.freeInodesTotal = inodes;
    this.dirsTotal = dirs;
    this.blockHints = new Int32Array(sb.groupCount);
    // Inodes below s_first_ino are reserved (group 0): never handed out.
    this.inodeHints = new Int32Array(sb.groupCount);
    if (sb.groupCount > 0) this.inodeHints[0] = Math.max(0, sb.firstIno - 1);
  }

  /** The current (possibly unsynced) descriptor of group `g`. */
  desc(g: number): GroupDesc {
    const gd = this.descs[g];
    if (gd === undefined) throw new FsError('EINVAL', `group ${g} out of range`);
    return gd;
  }

  /** Free clusters (free blocks without bigalloc). */
  get freeBlockCount(): number {
    return this.freeBlocksTotal;
  }
  get freeInodeCount(): number {
    return this.freeInodesTotal;
  }

  private update(g: number, change: GroupDescChange): void {
    this.descs[g] = changedGroupDesc(this.desc(g), change);
    this.dirtyDescs.add(g);
  }

  // ---------------------------------------------------------------- blocks

  /** Clusters of group `g` that hold group metadata (bit numbers within the group's bitmap, ascending, once each). */
  private metadataBits(g: number): number[] {
    const sb = this.sb;
    const first = groupFirstBlock(sb, g);
    const count = groupBlockCount(sb, g);
    const bits: number[] = [];
    // Only the part of [start, start + n) inside this group.
    const add = (start: number, n: number): void => {
      const from = Math.max(start, first);
      const to = Math.min(start + n, first + count);
      const ratio = this.ratio;
      for (let b = from; b < to; b++) {
        const bit = Math.floor((b - first) / ratio);
        if (bits[bits.length - 1] !== bit) bits.push(bit);
      }
    };
    const l = groupLayout(sb, g);
    if (l.superblock !== null) add(l.superblock, 1);
    if (first === 0 && sb.blockSize === 1024 && sb.firstDataBlock === 0) add(0, 1);
    if (l.descriptors !== null) add(l.descriptors.start, l.descriptors.count);
    if (l.reservedGdt !== null) add(l.reservedGdt.start, l.reservedGdt.count);
    if (l.metaBgDescriptor !== null) add(l.metaBgDescriptor, 1);
    // Every group's bitmaps and inode table may lie in this one (flex_bg puts a whole
    // flex group's there): the ranges that can, found by binary search in all of them
    // sorted by start, not by walking 32,768 groups of a 4 TiB filesystem per group.
    const ranges = this.metadataRanges();
    const end = first + count;
    const longest = Math.max(1, sb.inodeTableBlocks);
    let lo = 0;
    let hi = ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((ranges[mid] as MetadataRange).start + longest <= first) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < ranges.length; i++) {
      const r = ranges[i] as MetadataRange;
      if (r.start >= end) break;
      add(r.start, r.count);
    }
    if (this.ratio === 1) return bits;
    // Ranges come in any order: sort and drop the clusters two of them share.
    return [...new Set(bits)].sort((a, b) => a - b);
  }

  /** Clusters in group `g` (a partial cluster at the filesystem's end is not one). */
  private groupClusters(g: number): number {
    return Math.floor(groupBlockCount(this.sb, g) / this.ratio);
  }

  /** The block bitmaps, inode bitmaps and inode tables of all groups, sorted by first block (built once: they never move). */
  private metadataRanges(): readonly MetadataRange[] {
    if (this.metaRanges !== undefined) return this.metaRanges;
    const itb = this.sb.inodeTableBlocks;
    const ranges: MetadataRange[] = [];
    for (const gd of this.descs) ranges.push({ start: gd.blockBitmap, count: 1 }, { start: gd.inodeBitmap, count: 1 }, { start: gd.inodeTable, count: itb });
    ranges.sort((a, b) => a.start - b.start);
    this.metaRanges = ranges;
    return ranges;
  }

  /** Hold group `g`'s block bitmap for modification, initializing an uninitialized one. */
  private acquireBlockBitmap(g: number): Uint8Array {
    const gd = this.desc(g);
    if ((gd.flags & BG_BLOCK_UNINIT) !== 0) {
      const bitmap = this.channel.acquire(gd.blockBitmap, true);
      bitmap.fill(0);
      const count = this.groupClusters(g);
      for (const bit of this.metadataBits(g)) setBit(bitmap, bit);
      // Bits past the end of a short last group, and past the group, are set (padding).
      for (let bit = count; bit < this.sb.blockSize * 8; bit++) setBit(bitmap, bit);
      let used = 0;
      for (let bit = 0; bit < count; bit++) if (testBit(bitmap, bit)) used++;
      const free = count - used;
      this.freeBlocksTotal += free - gd.freeBlocksCount;
      this.update(g, { flags: gd.flags & ~BG_BLOCK_UNINIT, freeBlocksCount: free });
      this.dirtyBlockBitmaps.add(g);
      return bitmap;
    }
    return this.channel.acquire(gd.blockBitmap);
  }

  /**
   * Allocate up to `count` contiguous blocks: the first free run at or after `goal`
   * (wrapping around), as long as it is, up to `count`. ENOSPC when none is free.
   * With bigalloc the run is of whole clusters, enough to hold `count` blocks (the
   * returned count may exceed it by less than a cluster).
   */
  allocBlocks(goal: number, count: number): BlockExtent {
    const sb = this.sb;
    const ratio = this.ratio;
    if (count < 1) throw new FsError('EINVAL', `allocation of ${count} blocks`);
    const clusters = Math.ceil(count / ratio);
    if (this.freeBlocksTotal <= 0) throw new FsError('ENOSPC', 'no free blocks left on the filesystem');
    const goalBlock = goal >= sb.firstDataBlock && goal < sb.blocksCount ? goal : sb.firstDataBlock;
    const goalGroup = Math.floor((goalBlock - sb.firstDataBlock) / sb.blocksPerGroup);
    for (let i = 0; i <= sb.groupCount; i++) {
      const g = (goalGroup + i) % sb.groupCount;
      const gd = this.desc(g);
      if (gd.freeBlocksCount === 0) continue;
      const first = groupFirstBlock(sb, g);
      const n = this.groupClusters(g);
      const startBit = i === 0 ? Math.min(n, Math.floor((goalBlock - first) / ratio)) : 0;
      const bitmap = this.acquireBlockBitmap(g);
      let got: BlockExtent | undefined;
      try {
        const hints = this.blockHints;
        let bit = findClearHinted(bitmap, hints, g, startBit, n);
        if (bit < 0 && i === 0 && startBit > 0) bit = findClearHinted(bitmap, hints, g, 0, startBit);
        if (bit >= 0) {
          let end = bit;
          while (end < n && end - bit < clusters && !testBit(bitmap, end)) setBit(bitmap, end++);
          if (hints[g] === bit) hints[g] = end;
          got = { start: first + bit * ratio, count: (end - bit) * ratio };
        }
      } finally {
        this.channel.release(this.desc(g).blockBitmap, got !== undefined);
      }
      if (got === undefined) {
        // The descriptor claimed free blocks the bitmap does not have.
        throw corrupted('group descriptor', `group ${g} counts ${gd.freeBlocksCount} free blocks, but its bitmap has none`);
      }
      this.dirtyBlockBitmaps.add(g);
      const taken = got.count / ratio;
      this.update(g, { freeBlocksCount: this.desc(g).freeBlocksCount - taken });
      this.freeBlocksTotal -= taken;
      return got;
    }
    throw new FsError('ENOSPC', 'no free blocks left on the filesystem');
  }

  /** Called with every range of blocks freed (after the checks; whole clusters), before the bitmaps change. */
  onFree: ((start: number, count: number) => void) | undefined;

  /**
   * Release `count` blocks from `start` (they may span groups); with bigalloc, every
   * cluster the range touches.
   */
  freeBlocks(start: number, count: number): void {
    const sb = this.sb;
    const ratio = this.ratio;
    if (count <= 0) return;
    if (start < sb.firstDataBlock || start + count > sb.blocksCount) {
      throw corrupted('block map', `freeing blocks ${start}..${start + count - 1}, outside the filesystem`);
    }
    let block = start - ((start - sb.firstDataBlock) % ratio);
    const end = Math.min(sb.blocksCount, Math.ceil((start + count - sb.firstDataBlock) / ratio) * ratio + sb.firstDataBlock);
    this.onFree?.(block, end - block);
    while (block < end) {
      const g = Math.floor((block - sb.firstDataBlock) / sb.blocksPerGroup);
      const first = groupFirstBlock(sb, g);
      const groupEnd = Math.min(end, first + groupBlockCount(sb, g));
      const bitmap = this.acquireBlockBitmap(g);
      let freed = 0;
      let doubleFree = -1;
      try {
        for (let b = block; b < groupEnd; b += ratio) {
          const bit = (b - first) / ratio;
          if (!testBit(bitmap, bit)) {
            doubleFree = b;
            continue;
          }
          clearBit(bitmap, bit);
          if (bit < (this.blockHints[g] as number)) this.blockHints[g] = bit;
          freed++;
        }
      } finally {
        this.channel.release(this.desc(g).blockBitmap, true);
      }
      this.dirtyBlockBitmaps.add(g);
      this.update(g, { freeBlocksCount: this.desc(g).freeBlocksCount + freed });
      this.freeBlocksTotal += freed;
      if (doubleFree >= 0) throw corrupted('block bitmap', `${ratio === 1 ? 'block' : 'cluster of block'} ${doubleFree} was freed but is not in use (a block shared by two owners?)`, { block: doubleFree });
      block = groupEnd;
    }
  }

  /** True when `block` is marked in use. */
  blockInUse(block: number): boolean {
    const sb = this.sb;
    const g = Math.floor((block - sb.firstDataBlock) / sb.blocksPerGroup);
    const gd = this.desc(g);
    const bit = Math.floor((block - groupFirstBlock(sb, g)) / this.ratio);
    if ((gd.flags & BG_BLOCK_UNINIT) !== 0) return this.metadataBits(g).includes(bit);
    return testBit(this.channel.view(gd.blockBitmap), bit);
  }

  // ---------------------------------------------------------------- inodes

  /** Group where a new inode should go (Orlov-like for directories). */
  private inodeGroup(parentIno: number, isDirectory: boolean): number {
    const sb = this.sb;
    const groups = sb.groupCount;
    const parentGroup = Math.min(groups - 1, Math.floor((parentIno - 1) / sb.inodesPerGroup));
    const usable = (g: number): boolean => this.desc(g).freeInodesCount > 0;
    if (isDirectory) {
      const avgInodes = this.freeInodesTotal / groups;
      const avgBlocks = this.freeBlocksTotal / groups;
      if (parentIno === 2 && groups > 1) {
        // Top-level directories: spread them over groups with room, fewest directories first.
        let best = -1;
        for (let i = 0; i < groups; i++) {
          const g = (this.orlovRotor + i) % groups;
          const gd = this.desc(g);
          if (gd.freeInodesCount < avgInodes || gd.freeBlocksCount < avgBlocks) continue;
          if (best < 0 || gd.usedDirsCount < this.desc(best).usedDirsCount) best = g;
        }
        if (best >= 0) {
          this.orlovRotor = (best + 1) % groups;
          return best;
        }
      } else {
        // Subdirectories stay near their parent while its group has room.
        for (let i = 0; i < groups; i++) {
          const g = (parentGroup + i) % groups;
          const gd = this.desc(g);
          if (gd.freeInodesCount >= Math.min(avgInodes, sb.inodesPerGroup / 8) && gd.freeBlocksCount >= Math.min(avgBlocks, sb.clustersPerGroup / 8)) return g;
        }
      }
    } else {
      if (usable(parentGroup) && this.desc(parentGroup).freeBlocksCount > 0) return parentGroup;
      for (let i = 1; i < groups; i++) {
        const g = (parentGroup + i) % groups;
        if (usable(g) && this.desc(g).freeBlocksCount > 0) return g;
      }
    }
    for (let i = 0; i < groups; i++) {
      const g = (parentGroup + i) % groups;
      if (usable(g)) return g;
    }
    throw new FsError('ENOSPC', 'no free inodes left on the filesystem');
  }

  /** Allocate an inode near `parentIno`; returns its number. */
  allocInode(parentIno: number, isDirectory: boolean): number {
    const sb = this.sb;
    if (this.freeInodesTotal <= 0) throw new FsError('ENOSPC', 'no free inodes left on the filesystem');
    const start = this.inodeGroup(parentIno, isDirectory);
    for (let i = 0; i < sb.groupCount; i++) {
      const g = (start + i) % sb.groupCount;
      const gd = this.desc(g);
      if (gd.freeInodesCount === 0) continue;
      const uninit = (gd.flags & BG_INODE_UNINIT) !== 0;
      const bitmap = this.channel.acquire(gd.inodeBitmap, uninit);
      let index = -1;
      try {
        if (uninit) {
          bitmap.fill(0);
          for (let bit = sb.inodesPerGroup; bit < sb.blockSize * 8; bit++) setBit(bitmap, bit);
        }
        // Inodes below s_first_ino are reserved (group 0): the hint starts above them.
        index = findClearHinted(bitmap, this.inodeHints, g, 0, sb.inodesPerGroup);
        if (index >= 0) {
          setBit(bitmap, index);
          this.inodeHints[g] = index + 1;
        }
      } finally {
        this.channel.release(gd.inodeBitmap, index >= 0 || uninit);
      }
      if (index < 0) {
        if (uninit) continue;
        throw corrupted('group descriptor', `group ${g} counts ${gd.freeInodesCount} free inodes, but its bitmap has none`);
      }
      this.dirtyInodeBitmaps.add(g);
      const change: { -readonly [K in keyof GroupDesc]?: GroupDesc[K] } = {
        freeInodesCount: gd.freeInodesCount - 1,
        flags: gd.flags & ~BG_INODE_UNINIT,
      };
      if (isDirectory) change.usedDirsCount = gd.usedDirsCount + 1;
      if (sb.hasGroupDescCsum) {
        const used = sb.inodesPerGroup - gd.itableUnused;
        if (index >= used) change.itableUnused = sb.inodesPerGroup - index - 1;
        if (uninit) change.flags = (change.flags ?? gd.flags) & ~BG_INODE_ZEROED;
      }
      this.update(g, change);
      this.freeInodesTotal--;
      if (isDirectory) this.dirsTotal++;
      return g * sb.inodesPerGroup + index + 1;
    }
    throw new FsError('ENOSPC', 'no free inodes left on the filesystem');
  }

  /** Release inode `ino`. */
  freeInode(ino: number, isDirectory: boolean): void {
    const sb = this.sb;
    if (ino < sb.firstIno || ino > sb.inodesCount) throw corrupted('inode number', `freeing reserved or out-of-range inode ${ino}`, { inode: ino });
    const g = Math.floor((ino - 1) / sb.inodesPerGroup);
    const index = (ino - 1) % sb.inodesPerGroup;
    const gd = this.desc(g);
    if ((gd.flags & BG_INODE_UNINIT) !== 0) throw corrupted('inode bitmap', `freeing inode ${ino} of an uninitialized group`, { inode: ino });
    const bitmap = this.channel.acquire(gd.inodeBitmap);
    let wasSet = false;
    try {
      wasSet = testBit(bitmap, index);
      clearBit(bitmap, index);
      if (index < (this.inodeHints[g] as number)) this.inodeHints[g] = index;
    } finally {
      this.channel.release(gd.inodeBitmap, wasSet);
    }
    if (!wasSet) throw corrupted('inode bitmap', `inode ${ino} was freed but is not in use`, { inode: ino });
    this.dirtyInodeBitmaps.add(g);
    this.update(g, { freeInodesCount: gd.freeInodesCount + 1, usedDirsCount: isDirectory ? Math.max(0, gd.usedDirsCount - 1) : gd.usedDirsCount });
    this.freeInodesTotal++;
    if (isDirectory) this.dirsTotal--;
  }

  // ---------------------------------------------------------------- write-back

  /** True when descriptors or bitmaps changed since the last `sync`. */
  get dirty(): boolean {
    return this.dirtyDescs.size > 0;
  }

  /**
   * Put the changed descriptors (with their bitmap checksums) into the cached
   * descriptor table; returns the superblock's free counts to record.
   */
  sync(): { readonly freeBlocks: number; readonly freeInodes: number } {
    const sb = this.sb;
    for (const g of this.dirtyBlockBitmaps) {
      const gd = this.desc(g);
      this.descs[g] = withBlockBitmapChecksum(sb, gd, this.channel.view(gd.blockBitmap));
      this.dirtyDescs.add(g);
    }
    for (const g of this.dirtyInodeBitmaps) {
      const gd = this.desc(g);
      this.descs[g] = withInodeBitmapChecksum(sb, gd, this.channel.view(gd.inodeBitmap));
      this.dirtyDescs.add(g);
    }
    this.dirtyBlockBitmaps.clear();
    this.dirtyInodeBitmaps.clear();
    for (const g of [...this.dirtyDescs].sort((a, b) => a - b)) {
      const loc = descriptorBlockFor(sb, g);
      const block = this.channel.acquire(loc.block);
      try {
        encodeGroupDesc(this.desc(g), block, loc.offset, sb);
      } finally {
        this.channel.release(loc.block, true);
      }
    }
    this.dirtyDescs.clear();
    return { freeBlocks: this.freeBlocksTotal, freeInodes: this.freeInodesTotal };
  }
}
