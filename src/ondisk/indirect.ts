/**
 * ext2/ext3 block maps (inodes without EXTENTS_FL): i_block holds 15 little-endian u32
 * block numbers. Slots 0..11 map logical blocks 0..11 directly; slot 12 points to a
 * single-indirect block (blockSize / 4 pointers), slot 13 to a double-indirect block,
 * slot 14 to a triple-indirect block. A pointer of 0 is a hole (the whole subtree is
 * unmapped). Block numbers here are 32-bit.
 */
import { corrupted, FsError } from '../errors.js';

/** Number of direct slots in i_block. */
export const DIRECT_BLOCKS = 12;
/** i_block slot of the single-indirect block. */
export const IND_SLOT = 12;
/** i_block slot of the double-indirect block. */
export const DIND_SLOT = 13;
/** i_block slot of the triple-indirect block. */
export const TIND_SLOT = 14;
/** Slots in i_block. */
export const BLOCK_MAP_SLOTS = 15;
/** Bytes of i_block. */
export const BLOCK_MAP_SIZE = 60;
/** Logical block numbers are 32-bit; the kernel's largest is 2^32 - 2. */
export const BLOCK_MAP_MAX_LOGICAL = 0xffff_fffe;

/** Where a logical block's pointer is: the i_block slot, then one index per indirect level. */
export interface IndirectPath {
  /** i_block slot: 0..11 direct, 12 single, 13 double, 14 triple. */
  readonly slot: number;
  /** Indirection levels below the slot: 0 (direct) .. 3 (triple). */
  readonly depth: 0 | 1 | 2 | 3;
  /** Index of the pointer in each indirect block, outermost first; `depth` entries. */
  readonly indexes: readonly number[];
}

/** The logical-block ranges each slot kind covers, for `addrPerBlock` pointers per block. */
export interface BlockMapLimits {
  /** First logical block of the single-indirect range (12). */
  readonly singleStart: number;
  /** First logical block of the double-indirect range. */
  readonly doubleStart: number;
  /** First logical block of the triple-indirect range. */
  readonly tripleStart: number;
  /** One past the last logical block a block map can address (capped at 2^32 - 1). */
  readonly end: number;
}

function checkAddrPerBlock(addrPerBlock: number): void {
  // Block sizes 1 KiB .. 64 KiB give 256 .. 16384 pointers; smaller values are allowed for tests.
  if (!Number.isInteger(addrPerBlock) || addrPerBlock < 1 || addrPerBlock > 16384) {
    throw new FsError('EINVAL', `invalid pointers per block ${addrPerBlock}`);
  }
}

/** Ranges covered by direct, single, double and triple slots. */
export function blockMapLimits(addrPerBlock: number): BlockMapLimits {
  checkAddrPerBlock(addrPerBlock);
  const a = addrPerBlock;
  const singleStart = DIRECT_BLOCKS;
  const doubleStart = singleStart + a;
  const tripleStart = doubleStart + a * a;
  const end = Math.min(tripleStart + a * a * a, BLOCK_MAP_MAX_LOGICAL + 1);
  return { singleStart, doubleStart, tripleStart, end };
}

/**
 * Which i_block slot maps `logicalBlock` and the index at each indirect level.
 * Throws EFBIG beyond the triple-indirect range (or past logical block 2^32 - 2).
 */
export function indirectPath(logicalBlock: number, addrPerBlock: number): IndirectPath {
  const limits = blockMapLimits(addrPerBlock);
  const a = addrPerBlock;
  if (!Number.isInteger(logicalBlock) || logicalBlock < 0) throw new FsError('EINVAL', `invalid logical block ${logicalBlock}`);
  if (logicalBlock >= limits.end) {
    throw new FsError('EFBIG', `logical block ${logicalBlock} is beyond what a block map addresses (${limits.end} blocks)`);
  }
  if (logicalBlock < limits.singleStart) return { slot: logicalBlock, depth: 0, indexes: [] };
  if (logicalBlock < limits.doubleStart) return { slot: IND_SLOT, depth: 1, indexes: [logicalBlock - limits.singleStart] };
  if (logicalBlock < limits.tripleStart) {
    const n = logicalBlock - limits.doubleStart;
    return { slot: DIND_SLOT, depth: 2, indexes: [Math.floor(n / a), n % a] };
  }
  const n = logicalBlock - limits.tripleStart;
  return { slot: TIND_SLOT, depth: 3, indexes: [Math.floor(n / (a * a)), Math.floor(n / a) % a, n % a] };
}

/** The logical blocks one pointer covers at indirect `level` below a slot: 1 at the bottom, a, a^2 ... */
export function blocksPerPointer(level: number, addrPerBlock: number): number {
  checkAddrPerBlock(addrPerBlock);
  return addrPerBlock ** level;
}

/** Decode little-endian u32 pointers from `bytes` (length a multiple of 4). No validation. */
export function decodePointers(bytes: Uint8Array): number[] {
  if (bytes.length % 4 !== 0) throw new FsError('EINVAL', `pointer array of ${bytes.length} bytes is not a multiple of 4`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Array<number>(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getUint32(i * 4, true);
  return out;
}

export interface BlockPointerCheck {
  /** Filesystem size in blocks (s_blocks_count). */
  readonly totalBlocks: number;
  /** s_first_data_block: pointers must lie after it (it holds the superblock). */
  readonly firstDataBlock: number;
  /** Inode owning the map, for error messages. */
  readonly inode: number;
  /** The indirect block the pointers came from; omit for i_block. */
  readonly block?: number;
}

/** True for a pointer that is a hole (0) or a block inside the filesystem. */
export function isValidBlockPointer(pointer: number, totalBlocks: number, firstDataBlock: number): boolean {
  return pointer === 0 || (pointer > firstDataBlock && pointer < totalBlocks);
}

/** Throws EUCLEAN ("block map", inode, block) for the first pointer outside the filesystem. */
export function checkBlockPointers(pointers: readonly number[], check: BlockPointerCheck): void {
  for (let i = 0; i < pointers.length; i++) {
    const p = pointers[i] ?? 0;
    if (!isValidBlockPointer(p, check.totalBlocks, check.firstDataBlock)) {
      const where: { inode: number; block?: number } = { inode: check.inode };
      if (check.block !== undefined) where.block = check.block;
      throw corrupted('block map', `pointer ${i} is block ${p}, outside the filesystem (${check.firstDataBlock + 1}..${check.totalBlocks - 1})`, where);
    }
  }
}

/** The 15 slots of i_block, validated (a hole is 0). */
export function decodeBlockMapRoot(iBlock: Uint8Array, check: Omit<BlockPointerCheck, 'block'>): number[] {
  if (iBlock.length < BLOCK_MAP_SIZE) throw new FsError('EINVAL', `i_block needs ${BLOCK_MAP_SIZE} bytes, got ${iBlock.length}`);
  const pointers = decodePointers(iBlock.subarray(0, BLOCK_MAP_SIZE));
  checkBlockPointers(pointers, check);
  return pointers;
}

/** The pointers of an indirect block (blockSize / 4 of them), validated. */
export function decodeIndirectBlock(bytes: Uint8Array, check: BlockPointerCheck): number[] {
  const pointers = decodePointers(bytes);
  checkBlockPointers(pointers, check);
  return pointers;
}

/** Encode pointers as little-endian u32 into `target` at `offset` (i_block or an indirect block). */
export function encodePointers(pointers: readonly number[], target: Uint8Array, offset = 0): void {
  if (!Number.isInteger(offset) || offset < 0 || offset + pointers.length * 4 > target.length) {
    throw new FsError('EINVAL', `${pointers.length} pointers at ${offset} do not fit in ${target.length} bytes`);
  }
  const view = new DataView(target.buffer, target.byteOffset, target.byteLength);
  pointers.forEach((p, i) => {
    if (!Number.isInteger(p) || p < 0 || p > 0xffff_ffff) throw new FsError('EINVAL', `block pointer ${p} is not a 32-bit block number`);
    view.setUint32(offset + i * 4, p, true);
  });
}
