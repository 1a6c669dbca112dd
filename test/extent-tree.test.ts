/**
 * ExtentTree (src/fs/extent-tree.ts): model tests with fast-check (random insert /
 * remove / markWritten against a Map of logical -> physical blocks), checked after each
 * step through `find` and through the real reader `mapRun`; a structural checker
 * (validated nodes, exact index keys, no empty non-root node, eh_max, no leaked node
 * block); depth growth and shrink with 1 KiB blocks; sequential-append cost; corrupted
 * nodes giving EUCLEAN; and e2fsck -fn accepting trees built on real images.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';

import { dumpe2fsHeader, scratchDir } from './helpers/images.js';
import { FsError } from '../src/errors.js';
import { MemoryChannel } from '../src/io/memory-channel.js';
import { CachingChannel } from '../src/cache/caching-channel.js';
import { mapRun, type MapContext } from '../src/fs/blockmap.js';
import { ExtentTree, type Mapping, type TreeStore } from '../src/fs/extent-tree.js';
import { decodeExtentNode, extentNodeSpace, setExtentTail, type ExtentNode } from '../src/ondisk/extent.js';
import { EXTENTS_FL, inodeCsumSeed, type Inode } from '../src/ondisk/inode.js';
import type { Superblock } from '../src/ondisk/superblock.js';
import { crc32cRaw } from '../src/ondisk/crc.js';

/* ------------------------------------------------------------------ in-memory store */

/** Node blocks live in 1..metaBlocks-1 of a MemoryChannel; data blocks are numbers above, never read. */
class MemStore implements TreeStore {
  readonly device: MemoryChannel;
  readonly live = new Set<number>();
  private readonly freeList: number[] = [];
  private next = 2;
  allocs = 0;
  frees = 0;
  reads = 0;
  writes = 0;
  /** Make the n-th following allocation fail with ENOSPC (undefined: never). */
  failIn: number | undefined;
  readonly ino = 12;
  readonly firstDataBlock: number;

  constructor(
    readonly blockSize: number,
    readonly metaBlocks: number,
    readonly totalBlocks: number,
    readonly csumSeed: number | undefined,
  ) {
    this.device = new MemoryChannel(metaBlocks * blockSize, { blockSize });
    this.firstDataBlock = blockSize === 1024 ? 1 : 0;
  }

  read(block: number): Uint8Array {
    this.reads++;
    assert.ok(block > 0 && block < this.metaBlocks, `read of block ${block} outside the node area`);
    return this.device.contents.slice(block * this.blockSize, (block + 1) * this.blockSize);
  }

  write(block: number, bytes: Uint8Array): void {
    this.writes++;
    assert.ok(this.live.has(block), `write to unallocated block ${block}`);
    assert.equal(bytes.length, this.blockSize);
    this.device.contents.set(bytes, block * this.blockSize);
  }

  allocMeta(_goal: number): number {
    if (this.failIn !== undefined && this.failIn-- <= 0) throw new FsError('ENOSPC', 'test: no space');
    const block = this.freeList.pop() ?? this.next++;
    if (block >= this.metaBlocks) throw new FsError('ENOSPC', 'test: node area full');
    this.allocs++;
    this.live.add(block);
    return block;
  }

  freeMeta(block: number): void {
    assert.ok(this.live.has(block), `free of unallocated block ${block}`);
    this.live.delete(block);
    this.frees++;
    // Scribble over freed blocks so a tree still pointing there fails loudly.
    this.device.contents.fill(0xa5, block * this.blockSize, (block + 1) * this.blockSize);
    this.freeList.push(block);
  }
}

/** mapRun over the store's node blocks (a passthrough cache: always the current bytes). */
function readerContext(store: MemStore): MapContext {
  const sb = { blockSize: store.blockSize, blocksCount: store.totalBlocks, firstDataBlock: store.firstDataBlock } as unknown as Superblock;
  return { sb, cache: new CachingChannel(store.device, { cacheSize: 0 }), extentSeed: () => store.csumSeed };
}

function inodeFor(root: Uint8Array): Inode {
  return { flags: EXTENTS_FL, block: root } as unknown as Inode;
}

/* ------------------------------------------------------------------ model + checks */

interface Cell {
  readonly pblk: number;
  readonly unwritten: boolean;
}
type Model = Map<number, Cell>;

function expand(mappings: readonly Mapping[]): Model {
  const out: Model = new Map();
  for (const m of mappings) for (let i = 0; i < m.len; i++) out.set(m.lblk + i, { pblk: m.pblk + i, unwritten: m.unwritten });
  return out;
}

function sortedModel(model: Model): [number, Cell][] {
  return [...model.entries()].sort((a, b) => a[0] - b[0]);
}

/** The tree (via find and via mapRun) agrees with the model over [0, universe). */
function checkAgainstModel(tree: ExtentTree, root: Uint8Array, store: MemStore, model: Model, universe: number): void {
  const found = tree.find(0, 2 ** 32);
  for (let i = 1; i < found.length; i++) {
    const a = found[i - 1];
    const b = found[i];
    assert.ok(a !== undefined && b !== undefined && a.lblk + a.len <= b.lblk, 'find returns sorted, disjoint mappings');
  }
  assert.deepEqual(sortedModel(expand(found)), sortedModel(model), 'find agrees with the model');

  const ctx = readerContext(store);
  const inode = inodeFor(root);
  for (let lblk = 0; lblk < universe; ) {
    const run = mapRun(ctx, store.ino, inode, lblk, universe - lblk);
    for (let i = 0; i < run.count; i++) {
      const cell = model.get(lblk + i);
      if (run.kind === 'hole') {
        assert.equal(cell, undefined, `mapRun says ${lblk + i} is a hole`);
      } else {
        assert.deepEqual(cell, { pblk: run.physical + i, unwritten: run.kind === 'unwritten' }, `mapRun at ${lblk + i}`);
      }
    }
    lblk += run.count;
  }
  const past = mapRun(ctx, store.ino, inode, universe, 2 ** 32 - universe);
  assert.equal(past.kind, 'hole', 'nothing mapped past the universe');
}

/**
 * Structural invariants: every node valid (decodeExtentNode with depth, key and tail
 * checks), leaves' extents inside their index range, no empty non-root node, eh_max the
 * full node space, no node block leaked or shared, nodeCount() exact.
 */
function checkStructure(tree: ExtentTree, root: Uint8Array, store: MemStore): void {
  const common = { inode: store.ino, totalBlocks: store.totalBlocks, firstDataBlock: store.firstDataBlock };
  const blocks = new Set<number>();
  const visit = (node: ExtentNode, start: number, end: number, isRoot: boolean): void => {
    if (!isRoot) {
      assert.ok(node.entries.length > 0, 'no empty non-root node');
      assert.equal(node.header.max, extentNodeSpace(store.blockSize), 'eh_max of a block');
    }
    if (node.kind === 'leaf') {
      for (const e of node.entries) assert.ok(e.block >= start && e.block + e.len <= end, `extent ${e.block}+${e.len} inside [${start}, ${end})`);
      return;
    }
    node.entries.forEach((e, i) => {
      const next = node.entries[i + 1]?.block ?? end;
      assert.ok(e.block >= start && next <= end);
      assert.ok(!blocks.has(e.leaf), 'node block used once');
      blocks.add(e.leaf);
      assert.ok(store.live.has(e.leaf), 'node block is allocated');
      const opts = { ...common, capacity: store.blockSize, block: e.leaf, expectedDepth: node.header.depth - 1, firstLogical: e.block };
      const child = decodeExtentNode(store.device.contents.subarray(e.leaf * store.blockSize, (e.leaf + 1) * store.blockSize), store.csumSeed === undefined ? opts : { ...opts, csumSeed: store.csumSeed });
      visit(child, e.block, next, false);
    });
  };
  const rootNode = decodeExtentNode(root, { ...common, capacity: 60 });
  assert.equal(rootNode.header.max, 4);
  visit(rootNode, 0, 2 ** 32, true);
  assert.equal(blocks.size, store.allocs - store.frees, 'allocations - frees = node blocks in the tree');
  assert.equal(tree.nodeCount(), blocks.size, 'nodeCount');
  if (rootNode.kind === 'index') {
    // Shrunk whenever the root's children fit in the root.
    let total = 0;
    for (const e of rootNode.entries) {
      const child = decodeExtentNode(store.device.contents.subarray(e.leaf * store.blockSize, (e.leaf + 1) * store.blockSize), { ...common, capacity: store.blockSize });
      total += child.entries.length;
    }
    assert.ok(total > 4, 'a tree whose root children fit in the root is shrunk');
  }
}

/* ------------------------------------------------------------------ model operations */

function modelInsert(model: Model, lblk: number, pblk: number, len: number, unwritten: boolean): boolean {
  for (let i = 0; i < len; i++) if (model.has(lblk + i)) return false;
  for (let i = 0; i < len; i++) model.set(lblk + i, { pblk: pblk + i, unwritten });
  return true;
}

function modelRemove(model: Model, from: number, to: number): Model {
  const removed: Model = new Map();
  for (const [l, c] of model) {
    if (l >= from && l < to) {
      removed.set(l, c);
      model.delete(l);
    }
  }
  return removed;
}

type Op =
  | { readonly kind: 'insert'; readonly lblk: number; readonly len: number; readonly unwritten: boolean; readonly contiguous: boolean; readonly pblk: number }
  | { readonly kind: 'bulk'; readonly lblk: number; readonly count: number; readonly pblk: number }
  | { readonly kind: 'remove'; readonly from: number; readonly len: number }
  | { readonly kind: 'written'; readonly lblk: number; readonly len: number };

const UNIVERSE = 3000;
const DATA_BASE = 10_000;

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('insert' as const), lblk: fc.nat(UNIVERSE - 1), len: fc.integer({ min: 1, max: 40 }), unwritten: fc.boolean(), contiguous: fc.boolean(), pblk: fc.nat(500_000) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('bulk' as const), lblk: fc.nat(UNIVERSE - 1), count: fc.integer({ min: 1, max: 150 }), pblk: fc.nat(500_000) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('remove' as const), from: fc.nat(UNIVERSE - 1), len: fc.oneof(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: UNIVERSE })) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('written' as const), lblk: fc.nat(UNIVERSE - 1), len: fc.integer({ min: 1, max: 80 }) }) },
);

function applyOp(tree: ExtentTree, model: Model, op: Op): void {
  switch (op.kind) {
    case 'insert': {
      // "contiguous": continue the physical run of the block before, to exercise merging.
      const len = Math.min(op.len, UNIVERSE - op.lblk);
      const before = model.get(op.lblk - 1);
      const pblk = op.contiguous && before !== undefined ? before.pblk + 1 : DATA_BASE + op.pblk;
      const free = [...Array(len).keys()].every((i) => !model.has(op.lblk + i));
      if (free) {
        tree.insert(op.lblk, pblk, len, op.unwritten);
        modelInsert(model, op.lblk, pblk, len, op.unwritten);
      } else {
        assert.throws(() => tree.insert(op.lblk, pblk, len, op.unwritten), (e: unknown) => e instanceof FsError && e.code === 'EEXIST');
      }
      return;
    }
    case 'bulk': {
      // Fragmented single-block extents every other block (forces splits and depth).
      for (let i = 0; i < op.count; i++) {
        const l = op.lblk + 2 * i;
        if (l >= UNIVERSE || model.has(l)) continue;
        const pblk = DATA_BASE + op.pblk + 3 * i;
        tree.insert(l, pblk, 1, i % 3 === 0);
        modelInsert(model, l, pblk, 1, i % 3 === 0);
      }
      return;
    }
    case 'remove': {
      const to = Math.min(op.from + op.len, UNIVERSE);
      const removed = modelRemove(model, op.from, to);
      const ranges = tree.remove(op.from, to);
      const got: number[] = [];
      for (const r of ranges) for (let i = 0; i < r.len; i++) got.push(r.pblk + i);
      assert.deepEqual(got.sort((a, b) => a - b), [...removed.values()].map((c) => c.pblk).sort((a, b) => a - b), 'remove returns the unmapped blocks');
      return;
    }
    case 'written': {
      tree.markWritten(op.lblk, op.len);
      for (let i = 0; i < op.len; i++) {
        const c = model.get(op.lblk + i);
        if (c !== undefined) model.set(op.lblk + i, { pblk: c.pblk, unwritten: false });
      }
      return;
    }
  }
}

function fresh(blockSize: number, csumSeed: number | undefined): { store: MemStore; root: Uint8Array; tree: ExtentTree } {
  const store = new MemStore(blockSize, 4096, 4_000_000, csumSeed);
  const root = new Uint8Array(60);
  ExtentTree.initRoot(root);
  return { store, root, tree: new ExtentTree(root, store) };
}

/* ------------------------------------------------------------------ tests */

describe('ExtentTree: model', () => {
  for (const [blockSize, seed] of [[1024, undefined], [1024, 0x1234_5678], [4096, 0xdead_beef]] as const) {
    it(`random insert/remove/markWritten agree with a model (${blockSize}-byte blocks, ${seed === undefined ? 'no csum' : 'csum'})`, () => {
      fc.assert(
        fc.property(fc.array(opArb, { minLength: 1, maxLength: 60 }), (ops) => {
          const { store, root, tree } = fresh(blockSize, seed);
          const model: Model = new Map();
          for (const op of ops) {
            applyOp(tree, model, op);
            checkAgainstModel(tree, root, store, model, UNIVERSE);
            checkStructure(tree, root, store);
          }
          tree.remove(0, 2 ** 32);
          checkStructure(tree, root, store);
          assert.equal(tree.depth, 0);
          assert.equal(store.allocs, store.frees, 'an emptied tree holds no node block');
        }),
        { numRuns: blockSize === 1024 ? 50 : 25 },
      );
    });
  }

  it('find clips to the range and merges contiguous inserts', () => {
    const { tree } = fresh(4096, undefined);
    tree.insert(10, 1000, 5);
    tree.insert(15, 1005, 5); // merges
    tree.insert(5, 995, 5); // merges on the left side of the existing extent
    assert.deepEqual(tree.find(0, 100), [{ lblk: 5, pblk: 995, len: 15, unwritten: false }]);
    assert.deepEqual(tree.find(7, 3), [{ lblk: 7, pblk: 997, len: 3, unwritten: false }]);
    tree.insert(20, 2000, 3, true);
    assert.deepEqual(tree.find(18, 4), [
      { lblk: 18, pblk: 1008, len: 2, unwritten: false },
      { lblk: 20, pblk: 2000, len: 2, unwritten: true },
    ]);
    assert.throws(() => tree.insert(19, 3000, 1), (e: unknown) => e instanceof FsError && e.code === 'EEXIST');
    assert.throws(() => tree.insert(0, 0, 1), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
    assert.throws(() => tree.insert(2 ** 32 - 2, 5000, 2), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
  });

  it('splits lengths over the extent limit', () => {
    const { tree } = fresh(4096, undefined);
    tree.insert(0, 100_000, 100_000);
    assert.deepEqual(
      tree.find(0, 2 ** 32).map((m) => m.len),
      [32768, 32768, 32768, 1696],
    );
    assert.equal(tree.depth, 0);
    tree.insert(200_000, 300_000, 40_000, true);
    assert.equal(tree.depth, 1);
    const all = tree.find(0, 2 ** 32);
    assert.equal(all.filter((m) => m.unwritten).reduce((s, m) => s + m.len, 0), 40_000);
    assert.ok(all.every((m) => m.len <= (m.unwritten ? 32767 : 32768)));
  });
});

describe('ExtentTree: depth', () => {
  it('grows to depth >= 2 with 1 KiB blocks, then shrinks back to an empty root', () => {
    const { store, root, tree } = fresh(1024, 0xcafe_f00d);
    const model: Model = new Map();
    const n = 2000;
    // Fragmented extents inserted in a scrambled order (splits in the middle of nodes).
    const order = [...Array(n).keys()].map((i) => (i * 7919) % n);
    for (const i of order) {
      tree.insert(2 * i, DATA_BASE + 3 * i, 1);
      model.set(2 * i, { pblk: DATA_BASE + 3 * i, unwritten: false });
    }
    assert.ok(tree.depth >= 2, `depth ${tree.depth}`);
    checkStructure(tree, root, store);
    checkAgainstModel(tree, root, store, model, 2 * n + 10);
    for (let k = 0; k < n; k += 37) {
      const from = 2 * ((k * 104729) % n);
      tree.remove(from, from + 50);
      modelRemove(model, from, from + 50);
      checkStructure(tree, root, store);
    }
    checkAgainstModel(tree, root, store, model, 2 * n + 10);
    tree.remove(0, 2 ** 32);
    assert.equal(tree.depth, 0);
    assert.equal(tree.find(0, 2 ** 32).length, 0);
    assert.equal(store.allocs, store.frees);
  });

  it('sequential appends merge into the last extent and cost O(depth) node I/O', () => {
    const { store, root, tree } = fresh(1024, 1);
    // Build a deep-ish tree first.
    for (let i = 0; i < 1000; i++) tree.insert(2 * i, DATA_BASE + 3 * i, 1);
    const depth = tree.depth;
    assert.ok(depth >= 2);
    // 1 GiB in 1 MiB writes of 1 KiB blocks: 1024 appends of 1024 blocks, one physical run.
    const base = 2000;
    const t0 = performance.now();
    const reads0 = store.reads;
    const writes0 = store.writes;
    for (let i = 0; i < 1024; i++) tree.insert(base + i * 1024, 1_000_000 + i * 1024, 1024);
    const ms = performance.now() - t0;
    const perOp = (store.reads - reads0) / 1024;
    assert.ok(perOp <= 2 * depth + 1, `node reads per append ${perOp}`);
    assert.ok((store.writes - writes0) / 1024 <= depth + 1, 'node writes per append');
    assert.ok(ms < 2000, `appends took ${ms} ms`);
    const tail = tree.find(base, 1024 * 1024);
    assert.equal(tail.length, 32, '1 GiB of 1 KiB blocks is 32 extents of 32768');
    checkStructure(tree, root, store);
  });

  it('fails cleanly (ENOSPC, tree unchanged, nothing leaked) when a split cannot allocate', () => {
    const { store, root, tree } = fresh(1024, undefined);
    for (let i = 0; i < 4; i++) tree.insert(2 * i, DATA_BASE + 3 * i, 1);
    const before = root.slice();
    store.failIn = 0;
    assert.throws(() => tree.insert(100, DATA_BASE + 1000, 1), (e: unknown) => e instanceof FsError && e.code === 'ENOSPC');
    assert.deepEqual(root, before);
    store.failIn = undefined;
    for (let i = 4; i < 84; i++) tree.insert(2 * i, DATA_BASE + 3 * i, 1); // depth 1, a full leaf
    const snapshot = root.slice();
    const allocs = store.allocs;
    store.failIn = 0;
    assert.throws(() => tree.insert(1000, DATA_BASE + 9999, 1), (e: unknown) => e instanceof FsError && e.code === 'ENOSPC');
    assert.deepEqual(root, snapshot);
    assert.equal(store.allocs - store.frees, allocs - store.frees);
    store.failIn = undefined;
    checkStructure(tree, root, store);
  });
});

describe('ExtentTree: corruption', () => {
  function deepTree(seed: number | undefined): { store: MemStore; root: Uint8Array; tree: ExtentTree; leafBlock: number } {
    const t = fresh(1024, seed);
    for (let i = 0; i < 200; i++) t.tree.insert(2 * i, DATA_BASE + 3 * i, 1);
    const node = decodeExtentNode(t.root, { capacity: 60, inode: 12, totalBlocks: 4_000_000, firstDataBlock: 1 });
    assert.equal(node.kind, 'index');
    const first = node.entries[0];
    assert.ok(first !== undefined && 'leaf' in first);
    return { ...t, leafBlock: first.leaf };
  }
  const euclean = (e: unknown): boolean => e instanceof FsError && e.code === 'EUCLEAN';
  const allOps = (tree: ExtentTree): (() => unknown)[] => [
    () => tree.find(0, 10),
    () => tree.insert(1, DATA_BASE + 100_000, 1),
    () => tree.remove(0, 3),
    () => tree.markWritten(0, 10),
  ];

  it('bad root magic', () => {
    const { root, tree } = deepTree(undefined);
    root[0] = 0;
    for (const op of allOps(tree)) assert.throws(op, euclean);
  });

  it('bad node magic, depth, key, checksum, eh_entries', () => {
    const mutations: [string, (b: Uint8Array) => void][] = [
      ['magic', (b) => (b[1] = 0)],
      ['depth', (b) => (b[6] = 1)],
      ['entries > max', (b) => (b[2] = 0xff)],
      ['first key', (b) => (b[12] = 99)],
      ['physical past the end', (b) => (b[12 + 10] = 0xff)],
    ];
    for (const seed of [undefined, 77]) {
      for (const [name, mutate] of mutations) {
        const { store, tree, leafBlock } = deepTree(seed);
        const bytes = store.device.contents.subarray(leafBlock * 1024, (leafBlock + 1) * 1024);
        mutate(bytes);
        if (seed !== undefined && name !== 'magic') setExtentTail(bytes, seed); // the structure check, not the crc, must catch it
        for (const op of allOps(tree)) assert.throws(op, euclean, `${name}`);
      }
    }
    const { store, tree, leafBlock } = deepTree(77);
    const bytes = store.device.contents;
    bytes[leafBlock * 1024 + 40] = (bytes[leafBlock * 1024 + 40] ?? 0) ^ 1; // checksum only
    for (const op of allOps(tree)) assert.throws(op, euclean, 'checksum');
  });

  it('an index node pointing twice at the same child is EUCLEAN, not a double free', () => {
    const { root, tree } = deepTree(undefined);
    const node = decodeExtentNode(root, { capacity: 60, inode: 12, totalBlocks: 4_000_000, firstDataBlock: 1 });
    assert.ok(node.entries.length >= 2);
    root.copyWithin(24 + 4, 12 + 4, 12 + 10); // entry 1's leaf := entry 0's leaf
    assert.throws(() => tree.remove(0, 2 ** 32), euclean);
  });

  it('random bytes in a node never throw anything but FsError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1024, maxLength: 1024 }), fc.boolean(), (junk, keepHeader) => {
        const { store, tree, leafBlock } = deepTree(undefined);
        const bytes = store.device.contents.subarray(leafBlock * 1024, (leafBlock + 1) * 1024);
        if (keepHeader) bytes.set(junk.subarray(12), 12);
        else bytes.set(junk);
        for (const op of allOps(tree)) {
          try {
            op();
          } catch (e) {
            assert.ok(e instanceof FsError, String(e));
          }
        }
      }),
      { numRuns: 100 },
    );
  });
});

/* ------------------------------------------------------------------ e2fsck */

/** A TreeStore over an image file: nodes come from [metaStart, metaEnd), recorded for setb. */
class ImageStore implements TreeStore {
  readonly used = new Set<number>();
  private next: number;
  private readonly freed: number[] = [];
  constructor(
    private readonly fd: number,
    readonly blockSize: number,
    readonly totalBlocks: number,
    readonly firstDataBlock: number,
    readonly csumSeed: number | undefined,
    readonly ino: number,
    metaStart: number,
    private readonly metaEnd: number,
  ) {
    this.next = metaStart;
  }
  read(block: number): Uint8Array {
    const out = new Uint8Array(this.blockSize);
    readSync(this.fd, out, 0, this.blockSize, block * this.blockSize);
    return out;
  }
  write(block: number, bytes: Uint8Array): void {
    writeSync(this.fd, bytes, 0, this.blockSize, block * this.blockSize);
  }
  allocMeta(): number {
    const b = this.freed.pop() ?? this.next++;
    if (b >= this.metaEnd) throw new FsError('ENOSPC', 'test image: node area full');
    this.used.add(b);
    return b;
  }
  freeMeta(block: number): void {
    this.used.delete(block);
    this.freed.push(block);
  }
}

type Scenario = (tree: ExtentTree, model: Model) => void;

/** Fragmented single-block extents (every other block of 5000..7399), inserted in a scrambled order. */
const scrambled: Scenario = (tree, model) => {
  for (let i = 0; i < 1200; i++) {
    const l = ((i * 7) % 1200) * 2;
    tree.insert(l, 5000 + l, 1, l % 6 === 0);
    modelInsert(model, l, 5000 + l, 1, l % 6 === 0);
  }
  assert.ok(tree.depth >= 2);
  tree.remove(300, 900);
  modelRemove(model, 300, 900);
  tree.markWritten(1000, 400);
  markModel(model, 1000, 400);
  tree.insert(1, 5001, 1); // after the unwritten extent at 0: no merge
  modelInsert(model, 1, 5001, 1, false);
  tree.remove(2000, 2 ** 32);
  modelRemove(model, 2000, 2 ** 32);
};

/** The same extents appended in order (full nodes), whole unwritten extents converted, the tail truncated. */
const sequential: Scenario = (tree, model) => {
  for (let l = 0; l < 2400; l += 2) {
    tree.insert(l, 5000 + l, 1, l % 6 === 0);
    modelInsert(model, l, 5000 + l, 1, l % 6 === 0);
  }
  assert.ok(tree.depth >= 2);
  tree.markWritten(600, 200);
  markModel(model, 600, 200);
  tree.remove(1500, 2 ** 32);
  modelRemove(model, 1500, 2 ** 32);
};

function markModel(model: Model, lblk: number, len: number): void {
  for (let l = lblk; l < lblk + len; l++) {
    const c = model.get(l);
    if (c !== undefined) model.set(l, { pblk: c.pblk, unwritten: false });
  }
}

/**
 * Build a tree with `scenario` for a file made by debugfs on a fresh 8 MiB ext4 image
 * (1 KiB blocks, one group), install it in the inode with consistent bitmaps and counts,
 * and run e2fsck -fn (plus `extra` options).
 */
function buildOnImage(metadataCsum: boolean, scenario: Scenario, name: string, extra: readonly string[] = []): { status: number | null; out: string } {
  const image = join(scratchDir(), `extent-tree-${name}-${metadataCsum ? 'csum' : 'nocsum'}.img`);
  execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '1024', '-O', metadataCsum ? 'metadata_csum' : '^metadata_csum', image, '8M'], { stdio: 'ignore' });
  execFileSync('debugfs', ['-w', '-R', 'write /dev/null f', image], { stdio: 'ignore' });
  const h = dumpe2fsHeader(image);
  const totalBlocks = Number(h.get('Block count'));
  const firstDataBlock = Number(h.get('First block'));
  const freeBlocks = Number(h.get('Free blocks'));
  const stat = execFileSync('debugfs', ['-R', 'stat f', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const ino = Number(/Inode:\s*(\d+)/.exec(stat)?.[1]);
  const generation = Number(/Generation:\s*(\d+)/.exec(stat)?.[1]);
  let csumSeed: number | undefined;
  if (metadataCsum) {
    const seedField = h.get('Checksum seed');
    const uuid = Buffer.from((h.get('Filesystem UUID') ?? '').replace(/-/g, ''), 'hex');
    const fsSeed = seedField !== undefined ? Number(seedField) >>> 0 : crc32cRaw(0xffffffff, uuid);
    csumSeed = inodeCsumSeed(fsSeed, ino, generation);
  }
  // The 8 MiB image is one group of 8192 blocks; data goes to 5000..7499, nodes to 7500..8191.
  const fd = openSync(image, 'r+');
  const store = new ImageStore(fd, 1024, totalBlocks, firstDataBlock, csumSeed, ino, 7500, 8192);
  const root = new Uint8Array(60);
  ExtentTree.initRoot(root);
  const tree = new ExtentTree(root, store);
  const model: Model = new Map();
  scenario(tree, model);
  assert.deepEqual(sortedModel(expand(tree.find(0, 2 ** 32))), sortedModel(model));
  assert.equal(tree.nodeCount(), store.used.size);
  closeSync(fd);

  // Mark the blocks in use (with matching free counts), set i_block, size and i_blocks.
  const cmds: string[] = [];
  for (const c of model.values()) cmds.push(`setb ${c.pblk}`);
  for (const b of store.used) cmds.push(`setb ${b}`);
  const free = freeBlocks - model.size - store.used.size;
  cmds.push(`set_bg 0 free_blocks_count ${free}`, 'set_bg 0 checksum calc', `ssv free_blocks_count ${free}`);
  const view = new DataView(root.buffer);
  // debugfs names i_block's last three slots IND, DIND, TIND.
  for (let i = 0; i < 15; i++) cmds.push(`sif f block[${['IND', 'DIND', 'TIND'][i - 12] ?? i}] ${view.getUint32(i * 4, true)}`);
  cmds.push(`sif f size ${(Math.max(...model.keys()) + 1) * 1024}`);
  cmds.push(`sif f blocks ${(model.size + store.used.size) * 2}`);
  const cmdFile = `${image}.cmds`;
  writeFileSync(cmdFile, cmds.join('\n') + '\n');
  execFileSync('debugfs', ['-w', '-f', cmdFile, image], { stdio: 'ignore' });
  const r = spawnSync('e2fsck', ['-fn', ...extra, image], { encoding: 'utf8' });

  // And the real reader agrees with the model on the final image.
  const bytes = readFileSync(image);
  const dev = new MemoryChannel(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), { blockSize: 1024 });
  const sb = { blockSize: 1024, blocksCount: totalBlocks, firstDataBlock } as unknown as Superblock;
  const ctx: MapContext = { sb, cache: new CachingChannel(dev, { cacheSize: 0 }), extentSeed: () => csumSeed };
  for (let l = 0; l < 2500; l++) {
    const run = mapRun(ctx, ino, inodeFor(root), l, 1);
    const c = model.get(l);
    if (c === undefined) assert.equal(run.kind, 'hole');
    else assert.deepEqual({ pblk: run.physical, unwritten: run.kind === 'unwritten' }, { pblk: c.pblk, unwritten: c.unwritten });
  }
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** e2fsck output lines other than its headers and summary. */
function complaints(out: string): string[] {
  return out.split('\n').filter((l) => l.trim() !== '' && !/^Pass \d|^e2fsck \d|^\/.*: \d+\/\d+ files/.test(l));
}

describe('ExtentTree: e2fsck accepts the trees it builds', () => {
  for (const csum of [true, false]) {
    const kind = csum ? 'metadata_csum' : 'no metadata_csum';
    it(`sequential appends, conversions, truncation: e2fsck -fn clean (${kind})`, () => {
      const fsck = buildOnImage(csum, sequential, 'seq');
      assert.equal(fsck.status, 0, fsck.out);
      assert.deepEqual(complaints(fsck.out), [], fsck.out);
    });
    it(`scrambled inserts, removes, markWritten: no error, at most e2fsck's optimization notice (${kind})`, () => {
      const fsck = buildOnImage(csum, scrambled, 'scr');
      assert.equal(fsck.status, 0, fsck.out);
      assert.deepEqual(complaints(fsck.out).filter((l) => !/extent tree \(at level \d+\) could be (narrower|shorter)\.\s+Optimize\? no/.test(l)), [], fsck.out);
      const strict = buildOnImage(csum, scrambled, 'scr2', ['-E', 'no_optimize_extents']);
      assert.equal(strict.status, 0, strict.out);
      assert.deepEqual(complaints(strict.out), [], strict.out);
    });
  }
});
