/**
 * Logical -> physical block mapping for a file: extent trees (any depth) and
 * ext2/ext3 indirect block maps. `mapRun` answers one run: the longest stretch
 * starting at a logical block that is contiguous on disk (or a hole, or an
 * unwritten extent), so file data can be read in large coalesced requests.
 * Every node read is validated; tree depth is bounded by the on-disk format (an
 * extent tree cannot be deeper than 5, a block map than 3), so hostile trees
 * cannot loop.
 */
import { corrupted } from '../errors.js';
import type { CachingChannel } from '../cache/caching-channel.js';
import type { Superblock } from '../ondisk/superblock.js';
import { decodeExtentNode, findExtent, type ExtentNode } from '../ondisk/extent.js';
import { BLOCK_MAP_MAX_LOGICAL, IND_SLOT, blockMapLimits, indirectPath } from '../ondisk/indirect.js';
import { EXTENTS_FL, type Inode } from '../ondisk/inode.js';
import { readU32 } from '../ondisk/bytes.js';
import type { NodeCache } from './node-cache.js';

export type RunKind = 'data' | 'hole' | 'unwritten';

export interface BlockRun {
  /** First physical block (0 for a hole). */
  readonly physical: number;
  /** Blocks in the run (>= 1). */
  readonly count: number;
  readonly kind: RunKind;
}

/** What the mapper needs from the filesystem. */
export interface MapContext {
  readonly sb: Superblock;
  readonly cache: CachingChannel;
  /**
   * The checksum seed of inode `ino`'s extent blocks' tails, or undefined to skip
   * verification. Asked only when a block is decoded: most files' trees are all in the
   * inode, and one context can serve every inode.
   */
  readonly extentSeed: (ino: number, inode: Inode) => number | undefined;
  /** Decoded (and verified) extent tree blocks, by physical block. */
  readonly nodes?: NodeCache<ExtentNode>;
}

/** Largest logical block + 1 that ext4 addresses (32-bit logical block numbers). */
export const LOGICAL_END = BLOCK_MAP_MAX_LOGICAL + 1;

/** Map `lblk` of inode `ino`: the run starting there, at most `max` blocks long. */
export function mapRun(ctx: MapContext, ino: number, inode: Inode, lblk: number, max: number): BlockRun {
  if (lblk >= LOGICAL_END) return { physical: 0, count: Math.max(1, max), kind: 'hole' };
  const limit = Math.max(1, Math.min(max, LOGICAL_END - lblk));
  return (inode.flags & EXTENTS_FL) !== 0 ? mapExtent(ctx, ino, inode, lblk, limit) : mapIndirect(ctx, ino, inode, lblk, limit);
}

/**
 * The physical runs of `inode` that its i_block alone names, read by nothing: with an
 * extent tree, the root's extents (initialized ones) or, for a deeper tree, its index
 * blocks; with a block map, the direct blocks and the first indirect block. At most
 * `maxBlocks` blocks in all, in logical order, each run given to `visit`. For read-ahead
 * hints: whatever else the inode maps is found later, when it is read. Throws EUCLEAN
 * for a damaged root (as mapping it would).
 */
export function residentRuns(ctx: MapContext, ino: number, inode: Inode, maxBlocks: number, visit: (physical: number, count: number) => void): void {
  const { sb } = ctx;
  let left = maxBlocks;
  if ((inode.flags & EXTENTS_FL) !== 0) {
    const root = decodeRoot(inode.block, { inode: ino, totalBlocks: sb.blocksCount, firstDataBlock: sb.firstDataBlock });
    if (root.kind === 'index') {
      for (const e of root.entries) {
        if (left <= 0) return;
        visit(e.leaf, 1);
        left--;
      }
      return;
    }
    for (const e of root.entries) {
      if (left <= 0) return;
      if (e.uninit) continue;
      const n = Math.min(e.len, left);
      visit(e.start, n);
      left -= n;
    }
    return;
  }
  let runStart = 0;
  let runLen = 0;
  for (let slot = 0; slot <= IND_SLOT && left > 0; slot++) {
    const p = checkPointer(ctx, ino, readU32(inode.block, slot * 4), undefined);
    if (p !== 0 && runLen > 0 && p === runStart + runLen) {
      runLen++;
    } else {
      if (runLen > 0) visit(runStart, runLen);
      runStart = p;
      runLen = p === 0 ? 0 : 1;
    }
    if (p !== 0) left--;
  }
  if (runLen > 0) visit(runStart, runLen);
}

function mapExtent(ctx: MapContext, ino: number, inode: Inode, lblk: number, max: number): BlockRun {
  const { sb } = ctx;
  const common = { inode: ino, totalBlocks: sb.blocksCount, firstDataBlock: sb.firstDataBlock };
  let node: ExtentNode = decodeRoot(inode.block, common);
  let end = LOGICAL_END; // the run may not pass the next sibling subtree's start
  while (node.kind === 'index') {
    const i = findExtent(node.entries, lblk);
    if (i < 0) {
      const first = node.entries[0];
      return hole(Math.min(first === undefined ? end : first.block, end) - lblk, max);
    }
    const entry = node.entries[i];
    const next = node.entries[i + 1];
    if (entry === undefined) throw corrupted('extent tree', 'index entry missing', { inode: ino });
    if (next !== undefined) end = Math.min(end, next.block);
    const cached = ctx.nodes?.get(entry.leaf);
    if (cached !== undefined && cached.header.depth === node.header.depth - 1 && cached.entries[0]?.block === entry.block) {
      node = cached;
      continue;
    }
    const view = ctx.cache.view(entry.leaf);
    // One literal of one shape (a spread adding csumSeed took V8's slow clone path).
    node = decodeExtentNode(view, {
      capacity: sb.blockSize,
      inode: ino,
      block: entry.leaf,
      expectedDepth: node.header.depth - 1,
      firstLogical: entry.block,
      totalBlocks: sb.blocksCount,
      firstDataBlock: sb.firstDataBlock,
      csumSeed: ctx.extentSeed(ino, inode),
    });
    ctx.nodes?.set(entry.leaf, node);
  }
  const i = findExtent(node.entries, lblk);
  const e = i >= 0 ? node.entries[i] : undefined;
  if (e !== undefined && lblk < e.block + e.len) {
    const off = lblk - e.block;
    return { physical: e.start + off, count: Math.min(e.len - off, max), kind: e.uninit ? 'unwritten' : 'data' };
  }
  const next = node.entries[i + 1];
  return hole(Math.min(next === undefined ? end : next.block, end) - lblk, max);
}

/**
 * The decoded root in i_block, remembered per inode number together with a copy of the
 * bytes (and the filesystem bounds) it was decoded from: a lookup compares 60 bytes
 * instead of decoding and validating again, and bytes changed in place, or a fresh copy
 * of a changed inode (the write side's), are decoded afresh. The decode depends on
 * nothing else, so a memo is right for any buffer, even another filesystem's inode of
 * the same number. (Keyed by the i_block buffer in a WeakMap, a one-pass walk over
 * 50,000 files paid more for the WeakMap's inserts than for the decoding.)
 * Kept from an inode's second decode on: most inodes are mapped once (a file read whole
 * by one READ), and a memo (some 800 bytes) for each of them was most of the long-lived
 * garbage of reading many files; the first decode only notes the inode number.
 * Both maps are bounded: cleared when full.
 */
const ROOT_MEMO_ENTRIES = 4096;
const DECODED_ONCE_ENTRIES = 16_384;

interface RootMemo {
  readonly bytes: Uint8Array;
  readonly node: ExtentNode;
  readonly totalBlocks: number;
  readonly firstDataBlock: number;
}

const roots = new Map<number, RootMemo>();
const decodedOnce = new Set<number>();

function decodeRoot(block: Uint8Array, common: { inode: number; totalBlocks: number; firstDataBlock: number }): ExtentNode {
  const memo = roots.get(common.inode);
  if (memo !== undefined && memo.totalBlocks === common.totalBlocks && memo.firstDataBlock === common.firstDataBlock && sameBytes(memo.bytes, block)) {
    return memo.node;
  }
  // A literal of one fixed shape (a spread of `common` made the decoder's option reads polymorphic).
  const node = decodeExtentNode(block, { capacity: 60, inode: common.inode, totalBlocks: common.totalBlocks, firstDataBlock: common.firstDataBlock });
  if (memo === undefined && !decodedOnce.has(common.inode)) {
    if (decodedOnce.size >= DECODED_ONCE_ENTRIES) decodedOnce.clear();
    decodedOnce.add(common.inode);
    return node;
  }
  if (memo === undefined && roots.size >= ROOT_MEMO_ENTRIES) roots.clear();
  roots.set(common.inode, { bytes: block.slice(), node, totalBlocks: common.totalBlocks, firstDataBlock: common.firstDataBlock });
  return node;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function hole(length: number, max: number): BlockRun {
  return { physical: 0, count: Math.max(1, Math.min(length, max)), kind: 'hole' };
}


function checkPointer(ctx: MapContext, ino: number, pointer: number, from: number | undefined): number {
  const { sb } = ctx;
  if (pointer !== 0 && (pointer <= sb.firstDataBlock || pointer >= sb.blocksCount)) {
    const where = from === undefined ? { inode: ino } : { inode: ino, block: from };
    throw corrupted('block map', `pointer to block ${pointer} is outside the filesystem`, where);
  }
  return pointer;
}

/**
 * The physical block of one logical block through a block map, or for a hole
 * `-span`: minus the number of logical blocks, from `lblk` on, that the zero
 * pointer found leaves unmapped (a whole missing subtree is skipped at once).
 */
function indirectLookup(ctx: MapContext, ino: number, inode: Inode, lblk: number, addr: number): number {
  const path = indirectPath(lblk, addr);
  const limits = blockMapLimits(addr);
  const rangeStart = path.depth === 0 ? lblk : path.depth === 1 ? limits.singleStart : path.depth === 2 ? limits.doubleStart : limits.tripleStart;
  const n = lblk - rangeStart;
  let span = addr ** path.depth; // blocks covered by the pointer about to be read
  let pointer = checkPointer(ctx, ino, readU32(inode.block, path.slot * 4), undefined);
  for (const index of path.indexes) {
    if (pointer === 0) break;
    const from = pointer;
    const view = ctx.cache.view(from);
    pointer = checkPointer(ctx, ino, readU32(view, index * 4), from);
    span /= addr;
  }
  return pointer !== 0 ? pointer : -(span - (n % span));
}

function mapIndirect(ctx: MapContext, ino: number, inode: Inode, lblk: number, max: number): BlockRun {
  const addr = ctx.sb.blockSize / 4;
  const end = blockMapLimits(addr).end;
  if (lblk >= end) return hole(max, max);
  const cap = Math.min(max, end - lblk);
  const first = indirectLookup(ctx, ino, inode, lblk, addr);
  if (first < 0) {
    // A hole: extend over following holes (each lookup skips a whole missing subtree).
    let count = -first;
    while (count < cap) {
      const p = indirectLookup(ctx, ino, inode, lblk + count, addr);
      if (p > 0) break;
      count += -p;
    }
    return { physical: 0, count: Math.min(count, cap), kind: 'hole' };
  }
  let count = 1;
  while (count < cap && indirectLookup(ctx, ino, inode, lblk + count, addr) === first + count) count++;
  return { physical: first, count, kind: 'data' };
}
