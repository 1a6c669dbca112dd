/**
 * Extent tree nodes (ext4_extents.h, Documentation/filesystems/ext4/ifork.rst).
 *
 * A node is a 12-byte header followed by `eh_max` 12-byte entries: index entries
 * (interior nodes, depth > 0) or leaf extents (depth 0). The root lives in the inode's
 * 60-byte i_block (room for 4 entries); other nodes fill a filesystem block and, after
 * the `eh_max` entries, carry a 4-byte tail with a crc32c of the block up to the tail
 * (seeded with the per-inode seed; see `inodeCsumSeed` in inode.ts). Since
 * blockSize % 12 >= 4 for every power of two >= 1024, the tail always fits.
 *
 * Physical block numbers are 48-bit (lo 32 + hi 16), combined as lo + hi * 2^32.
 * Logical block numbers are 32-bit.
 */
import { corrupted, FsError } from '../errors.js';
import { readU16, readU32 } from './bytes.js';
import { crc32cRaw } from './crc.js';

/** eh_magic. */
export const EXTENT_MAGIC = 0xf30a;
/** sizeof(struct ext4_extent_header). */
export const EXTENT_HEADER_SIZE = 12;
/** sizeof(struct ext4_extent) = sizeof(struct ext4_extent_idx). */
export const EXTENT_ENTRY_SIZE = 12;
/** sizeof(struct ext4_extent_tail). */
export const EXTENT_TAIL_SIZE = 4;
/** Deepest tree the kernel accepts (EXT4_MAX_EXTENT_DEPTH). */
export const EXTENT_MAX_DEPTH = 5;
/** Bytes of the in-inode root (i_block). */
export const EXTENT_ROOT_SIZE = 60;
/** Longest initialized extent (EXT_INIT_MAX_LEN): an ee_len of exactly 32768. */
export const EXTENT_INIT_MAX_LEN = 32768;
/** Longest uninitialized (unwritten) extent (EXT_UNWRITTEN_MAX_LEN): ee_len 32769..65535. */
export const EXTENT_UNINIT_MAX_LEN = 32767;
/** Largest logical block an extent may end at + 1: ee_block + len must stay below 2^32 - 1 inclusive. */
export const EXTENT_MAX_LOGICAL_END = 0xffff_ffff;

/** Byte offsets inside the header and the entries. */
export const EXTENT_OFFSETS = {
  magic: 0,
  entries: 2,
  max: 4,
  depth: 6,
  generation: 8,
  /* struct ext4_extent_idx */
  idxBlock: 0,
  idxLeafLo: 4,
  idxLeafHi: 8,
  idxUnused: 10,
  /* struct ext4_extent */
  extBlock: 0,
  extLen: 4,
  extStartHi: 6,
  extStartLo: 8,
} as const;

export interface ExtentHeader {
  readonly magic: number;
  /** eh_entries: valid entries following the header. */
  readonly entries: number;
  /** eh_max: capacity of the node in entries. */
  readonly max: number;
  /** eh_depth: 0 for leaves; the root's depth is the tree's depth. */
  readonly depth: number;
  /** eh_generation (unused by Linux; kept). */
  readonly generation: number;
}

/** An index entry: the subtree covering logical blocks from `block` lives at physical block `leaf`. */
export interface ExtentIndex {
  /** ei_block: first logical block covered. */
  readonly block: number;
  /** ei_leaf_lo + ei_leaf_hi * 2^32: physical block of the child node. */
  readonly leaf: number;
}

/** A leaf extent: `len` logical blocks from `block` map to physical blocks from `start`. */
export interface ExtentLeaf {
  /** ee_block: first logical block. */
  readonly block: number;
  /** Number of blocks (1..32768 initialized, 1..32767 uninitialized). */
  readonly len: number;
  /** ee_start_lo + ee_start_hi * 2^32: first physical block. */
  readonly start: number;
  /** Unwritten extent (ee_len > 32768 on disk): reads as zeros. */
  readonly uninit: boolean;
}

export type ExtentNode =
  | { readonly header: ExtentHeader; readonly kind: 'index'; readonly entries: readonly ExtentIndex[] }
  | { readonly header: ExtentHeader; readonly kind: 'leaf'; readonly entries: readonly ExtentLeaf[] };

export interface ExtentNodeOptions {
  /** Bytes the node occupies: 60 for the in-inode root, the block size for a tree block. */
  readonly capacity: number;
  /** Inode owning the tree, for error messages. */
  readonly inode: number;
  /** Physical block holding the node; omit for the in-inode root. */
  readonly block?: number;
  /** The depth the parent expects (parent depth - 1); the root's is free (0..5). */
  readonly expectedDepth?: number;
  /** The parent's ei_block: a non-root node's first entry must start exactly there (as the kernel checks). */
  readonly firstLogical?: number;
  /** Filesystem size in blocks (s_blocks_count): physical ranges must end at or before it. */
  readonly totalBlocks: number;
  /** s_first_data_block: physical blocks must lie after it (it holds the superblock). */
  readonly firstDataBlock: number;
  /** Per-inode checksum seed: when given, a tree block's tail checksum is verified. */
  readonly csumSeed?: number | undefined;
}

const TWO_32 = 0x1_0000_0000;

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Entries a node of `capacity` bytes can hold: 4 in i_block, (blockSize - 12) / 12 in a block. */
export function extentNodeSpace(capacity: number): number {
  return Math.floor((capacity - EXTENT_HEADER_SIZE) / EXTENT_ENTRY_SIZE);
}

/** Byte offset of the tail in a tree block whose header says eh_max = `max`. */
export function extentTailOffset(max: number): number {
  return EXTENT_HEADER_SIZE + max * EXTENT_ENTRY_SIZE;
}

/** Decode a header without validating it (needs 12 bytes). */
export function decodeExtentHeader(bytes: Uint8Array, offset = 0): ExtentHeader {
  if (offset < 0 || offset + EXTENT_HEADER_SIZE > bytes.length) throw new FsError('EINVAL', `extent header at ${offset} outside ${bytes.length} bytes`);
  const o = EXTENT_OFFSETS;
  return {
    magic: readU16(bytes, offset + o.magic),
    entries: readU16(bytes, offset + o.entries),
    max: readU16(bytes, offset + o.max),
    depth: readU16(bytes, offset + o.depth),
    generation: readU32(bytes, offset + o.generation),
  };
}

/** Decode an index entry at `offset` (no validation). */
export function decodeExtentIndex(bytes: Uint8Array, offset: number): ExtentIndex {
  const o = EXTENT_OFFSETS;
  return {
    block: readU32(bytes, offset + o.idxBlock),
    leaf: readU32(bytes, offset + o.idxLeafLo) + readU16(bytes, offset + o.idxLeafHi) * TWO_32,
  };
}

/** Decode a leaf extent at `offset` (no validation; an ee_len of 0 decodes as len 0). */
export function decodeExtentLeaf(bytes: Uint8Array, offset: number): ExtentLeaf {
  const o = EXTENT_OFFSETS;
  const rawLen = readU16(bytes, offset + o.extLen);
  const uninit = rawLen > EXTENT_INIT_MAX_LEN;
  return {
    block: readU32(bytes, offset + o.extBlock),
    len: uninit ? rawLen - EXTENT_INIT_MAX_LEN : rawLen,
    start: readU32(bytes, offset + o.extStartLo) + readU16(bytes, offset + o.extStartHi) * TWO_32,
    uninit,
  };
}

/**
 * Decode and validate one extent tree node at the start of `bytes`. Every failure is an
 * EUCLEAN "extent tree" error naming the inode and block: bad magic; eh_max zero or more
 * than the space holds; eh_entries > eh_max; depth > 5 or not the expected one; an index
 * node with no entries; entries unsorted or overlapping; a zero-length extent; a logical
 * range past 2^32 - 1; a physical range outside (firstDataBlock, totalBlocks); a first
 * entry not at `firstLogical`; a tail checksum mismatch (when `csumSeed` is given).
 */
export function decodeExtentNode(bytes: Uint8Array, options: ExtentNodeOptions): ExtentNode {
  const { capacity } = options;
  // Error context and messages are built only on failure (nodeFailure): a walk decodes
  // thousands of nodes, and a closure per decode was garbage per file.

  if (!Number.isInteger(capacity) || capacity < EXTENT_HEADER_SIZE + EXTENT_ENTRY_SIZE) {
    throw new FsError('EINVAL', `extent node capacity ${capacity} too small`, whereOf(options));
  }
  if (bytes.length < capacity) throw new FsError('EINVAL', `extent node needs ${capacity} bytes, got ${bytes.length}`, whereOf(options));

  const header = decodeExtentHeader(bytes, 0);
  if (header.magic !== EXTENT_MAGIC) throw nodeFailure(options, `bad magic 0x${header.magic.toString(16).padStart(4, '0')}`);
  const space = extentNodeSpace(capacity);
  if (header.max === 0) throw nodeFailure(options, 'eh_max is 0');
  if (header.max > space) throw nodeFailure(options, `eh_max ${header.max} exceeds the ${space} entries that fit in ${capacity} bytes`);
  if (header.entries > header.max) throw nodeFailure(options, `eh_entries ${header.entries} > eh_max ${header.max}`);
  if (header.depth > EXTENT_MAX_DEPTH) throw nodeFailure(options, `depth ${header.depth} > ${EXTENT_MAX_DEPTH}`);
  if (options.expectedDepth !== undefined && header.depth !== options.expectedDepth) {
    throw nodeFailure(options, `depth ${header.depth}, expected ${options.expectedDepth}`);
  }
  if (header.depth > 0 && header.entries === 0) throw nodeFailure(options, `index node (depth ${header.depth}) has no entries`);

  const isBlock = options.block !== undefined || capacity > EXTENT_ROOT_SIZE;
  if (isBlock && options.csumSeed !== undefined) {
    const tail = extentTailOffset(header.max);
    if (tail + EXTENT_TAIL_SIZE > capacity) throw nodeFailure(options, `no room for the tail after ${header.max} entries`);
    const stored = readU32(bytes, tail);
    const computed = crc32cRaw(options.csumSeed, bytes, 0, tail);
    if (stored !== computed) {
      throw nodeFailure(options, `checksum mismatch: stored 0x${stored.toString(16).padStart(8, '0')}, computed 0x${computed.toString(16).padStart(8, '0')}`);
    }
  }

  const { totalBlocks, firstDataBlock } = options;
  if (header.depth > 0) {
    const entries: ExtentIndex[] = [];
    for (let i = 0; i < header.entries; i++) {
      const e = decodeExtentIndex(bytes, EXTENT_HEADER_SIZE + i * EXTENT_ENTRY_SIZE);
      const prev = entries[i - 1];
      if (prev !== undefined && e.block <= prev.block) {
        throw nodeFailure(options, `index ${i} starts at logical block ${e.block}, not after the previous index (${prev.block})`);
      }
      if (!(e.leaf > firstDataBlock && e.leaf + 1 <= totalBlocks)) throw nodeFailure(options, `index ${i} points to block ${e.leaf}, outside the filesystem (${firstDataBlock + 1}..${totalBlocks - 1})`);
      entries.push(e);
    }
    checkFirst(entries[0]?.block, options);
    return { header, kind: 'index', entries };
  }

  const entries: ExtentLeaf[] = [];
  let nextFree = 0;
  for (let i = 0; i < header.entries; i++) {
    const e = decodeExtentLeaf(bytes, EXTENT_HEADER_SIZE + i * EXTENT_ENTRY_SIZE);
    if (e.len === 0) throw nodeFailure(options, `extent ${i} (logical ${e.block}) has length 0`);
    if (e.block + e.len > EXTENT_MAX_LOGICAL_END) throw nodeFailure(options, `extent ${i} (logical ${e.block}, ${e.len} blocks) runs past the last logical block`);
    if (i > 0 && e.block < nextFree) {
      throw nodeFailure(options, `extent ${i} starts at logical block ${e.block}, overlapping or before the previous extent (ends at ${nextFree - 1})`);
    }
    if (!(e.start > firstDataBlock && e.start + e.len <= totalBlocks)) {
      throw nodeFailure(options, `extent ${i} maps to blocks ${e.start}..${e.start + e.len - 1}, outside the filesystem (${firstDataBlock + 1}..${totalBlocks - 1})`);
    }
    nextFree = e.block + e.len;
    entries.push(e);
  }
  checkFirst(entries[0]?.block, options);
  return { header, kind: 'leaf', entries };
}

function whereOf(options: ExtentNodeOptions): { inode: number; block?: number } {
  return options.block === undefined ? { inode: options.inode } : { inode: options.inode, block: options.block };
}

/** The EUCLEAN error for a damaged node: "extent tree: WHAT", naming the inode and block. */
function nodeFailure(options: ExtentNodeOptions, what: string): FsError {
  return corrupted('extent tree', what, whereOf(options));
}

function checkFirst(first: number | undefined, options: ExtentNodeOptions): void {
  const expected = options.firstLogical;
  if (first === undefined || expected === undefined) return;
  if (first !== expected) throw nodeFailure(options, `first entry starts at logical block ${first}, but the parent index says ${expected}`);
}

/**
 * Index of the last entry whose first logical block is <= `logicalBlock`, or -1 when
 * every entry starts after it. Entries must be sorted (as decodeExtentNode guarantees).
 * For an index node this is the child to descend into; for a leaf, check `extentContains`.
 */
export function findExtent(entries: readonly { readonly block: number }[], logicalBlock: number): number {
  let lo = 0;
  let hi = entries.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const entry = entries[mid];
    if (entry === undefined) break;
    if (entry.block <= logicalBlock) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

/** True when the leaf extent covers `logicalBlock`. */
export function extentContains(extent: ExtentLeaf, logicalBlock: number): boolean {
  return logicalBlock >= extent.block && logicalBlock < extent.block + extent.len;
}

/** The leaf extent covering `logicalBlock`, or undefined for a hole. */
export function lookupExtent(entries: readonly ExtentLeaf[], logicalBlock: number): ExtentLeaf | undefined {
  const extent = entries[findExtent(entries, logicalBlock)];
  return extent !== undefined && extentContains(extent, logicalBlock) ? extent : undefined;
}

/* ---- Encoding (over an existing buffer: bytes not written are left as they are) ---- */

function checkRange(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new FsError('EINVAL', `extent ${name} ${value} outside 0..${max}`);
}

function checkRoom(target: Uint8Array, offset: number, size: number): void {
  if (!Number.isInteger(offset) || offset < 0 || offset + size > target.length) {
    throw new FsError('EINVAL', `extent structure at ${offset} (+${size}) outside ${target.length} bytes`);
  }
}

/** Write a header at `offset`. */
export function encodeExtentHeader(header: Omit<ExtentHeader, 'magic'> & { readonly magic?: number }, target: Uint8Array, offset = 0): void {
  checkRoom(target, offset, EXTENT_HEADER_SIZE);
  const magic = header.magic ?? EXTENT_MAGIC;
  checkRange('magic', magic, 0xffff);
  checkRange('entries', header.entries, 0xffff);
  checkRange('max', header.max, 0xffff);
  checkRange('depth', header.depth, 0xffff);
  checkRange('generation', header.generation, 0xffff_ffff);
  const view = viewOf(target);
  const o = EXTENT_OFFSETS;
  view.setUint16(offset + o.magic, magic, true);
  view.setUint16(offset + o.entries, header.entries, true);
  view.setUint16(offset + o.max, header.max, true);
  view.setUint16(offset + o.depth, header.depth, true);
  view.setUint32(offset + o.generation, header.generation, true);
}

/** Write an index entry at `offset` (ei_unused is left as it is). */
export function encodeExtentIndex(entry: ExtentIndex, target: Uint8Array, offset: number): void {
  checkRoom(target, offset, EXTENT_ENTRY_SIZE);
  checkRange('index block', entry.block, 0xffff_ffff);
  checkRange('index leaf', entry.leaf, 2 ** 48 - 1);
  const view = viewOf(target);
  const o = EXTENT_OFFSETS;
  view.setUint32(offset + o.idxBlock, entry.block, true);
  view.setUint32(offset + o.idxLeafLo, entry.leaf % TWO_32, true);
  view.setUint16(offset + o.idxLeafHi, Math.floor(entry.leaf / TWO_32), true);
}

/** Write a leaf extent at `offset`; the length is stored with the uninitialized bias when `uninit`. */
export function encodeExtentLeaf(entry: ExtentLeaf, target: Uint8Array, offset: number): void {
  checkRoom(target, offset, EXTENT_ENTRY_SIZE);
  checkRange('block', entry.block, 0xffff_ffff);
  checkRange('start', entry.start, 2 ** 48 - 1);
  const maxLen = entry.uninit ? EXTENT_UNINIT_MAX_LEN : EXTENT_INIT_MAX_LEN;
  if (!Number.isInteger(entry.len) || entry.len < 1 || entry.len > maxLen) {
    throw new FsError('EINVAL', `${entry.uninit ? 'uninitialized' : 'initialized'} extent length ${entry.len} outside 1..${maxLen}`);
  }
  const view = viewOf(target);
  const o = EXTENT_OFFSETS;
  view.setUint32(offset + o.extBlock, entry.block, true);
  view.setUint16(offset + o.extLen, entry.uninit ? entry.len + EXTENT_INIT_MAX_LEN : entry.len, true);
  view.setUint16(offset + o.extStartHi, Math.floor(entry.start / TWO_32), true);
  view.setUint32(offset + o.extStartLo, entry.start % TWO_32, true);
}

/**
 * Write a whole node (header + entries) over `target`, which is `capacity` bytes (60 for
 * the root, the block size for a tree block). eh_entries comes from the entries; entries
 * beyond them and the tail are left as they are (see `setExtentTail`).
 */
export function encodeExtentNode(node: ExtentNode, target: Uint8Array): void {
  const count = node.entries.length;
  if (count > node.header.max) throw new FsError('EINVAL', `${count} extent entries exceed eh_max ${node.header.max}`);
  if (node.header.max > extentNodeSpace(target.length)) {
    throw new FsError('EINVAL', `eh_max ${node.header.max} exceeds the ${extentNodeSpace(target.length)} entries of a ${target.length}-byte node`);
  }
  if ((node.kind === 'leaf') !== (node.header.depth === 0)) throw new FsError('EINVAL', `extent ${node.kind} node with depth ${node.header.depth}`);
  encodeExtentHeader({ ...node.header, entries: count }, target, 0);
  if (node.kind === 'index') {
    node.entries.forEach((e, i) => encodeExtentIndex(e, target, EXTENT_HEADER_SIZE + i * EXTENT_ENTRY_SIZE));
  } else {
    node.entries.forEach((e, i) => encodeExtentLeaf(e, target, EXTENT_HEADER_SIZE + i * EXTENT_ENTRY_SIZE));
  }
}

/* ---- Tail checksum ---- */

/** The checksum a tree block should carry: crc32c from the per-inode seed over the block up to the tail. */
export function extentTailChecksum(block: Uint8Array, csumSeed: number): number {
  const tail = extentTailOffset(decodeExtentHeader(block, 0).max);
  if (tail + EXTENT_TAIL_SIZE > block.length) throw corrupted('extent tree', `eh_max leaves no room for the tail in ${block.length} bytes`);
  return crc32cRaw(csumSeed, block, 0, tail);
}

/** True when a tree block's tail holds its checksum. Never throws for a short block or a bad eh_max: false. */
export function verifyExtentTail(block: Uint8Array, csumSeed: number): boolean {
  if (block.length < EXTENT_HEADER_SIZE) return false;
  const tail = extentTailOffset(decodeExtentHeader(block, 0).max);
  if (tail + EXTENT_TAIL_SIZE > block.length) return false;
  return viewOf(block).getUint32(tail, true) === crc32cRaw(csumSeed, block, 0, tail);
}

/** Compute and store a tree block's tail checksum in place. */
export function setExtentTail(block: Uint8Array, csumSeed: number): void {
  const crc = extentTailChecksum(block, csumSeed);
  viewOf(block).setUint32(extentTailOffset(decodeExtentHeader(block, 0).max), crc, true);
}
