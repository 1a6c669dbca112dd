/**
 * IndirectTree (src/fs/indirect-tree.ts): fast-check model tests of insert/remove over
 * direct, single-, double- and triple-indirect ranges, checked after each step with
 * `find` and the real reader `mapRun`; indirect blocks allocated zeroed, freed when
 * emptied, never leaked; errors (EOPNOTSUPP, EFBIG, EEXIST, EUCLEAN); and e2fsck -fn
 * accepting a map built on a real ext3 image.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, openSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';

import { dumpe2fsHeader, scratchDir } from './helpers/images.js';
import { FsError } from '../src/errors.js';
import { MemoryChannel } from '../src/io/memory-channel.js';
import { CachingChannel } from '../src/cache/caching-channel.js';
import { mapRun, type MapContext } from '../src/fs/blockmap.js';
import { IndirectTree, type Mapping, type TreeStore } from '../src/fs/indirect-tree.js';
import { blockMapLimits } from '../src/ondisk/indirect.js';
import type { Inode } from '../src/ondisk/inode.js';
import type { Superblock } from '../src/ondisk/superblock.js';

const BS = 1024;
const ADDR = BS / 4;
const LIMITS = blockMapLimits(ADDR);

/** Indirect blocks live in 2..metaBlocks-1 of a MemoryChannel; data blocks are numbers above, never read. */
class MemStore implements TreeStore {
  readonly blockSize = BS;
  readonly device: MemoryChannel;
  readonly live = new Set<number>();
  private readonly freeList: number[] = [];
  private next = 2;
  allocs = 0;
  frees = 0;
  failIn: number | undefined;
  readonly ino = 12;
  readonly firstDataBlock = 1;
  readonly csumSeed = undefined;

  constructor(
    readonly metaBlocks: number,
    readonly totalBlocks: number,
  ) {
    this.device = new MemoryChannel(metaBlocks * BS, { blockSize: BS });
  }
  read(block: number): Uint8Array {
    assert.ok(block > 1 && block < this.metaBlocks, `read of block ${block} outside the indirect area`);
    return this.device.contents.slice(block * BS, (block + 1) * BS);
  }
  write(block: number, bytes: Uint8Array): void {
    assert.ok(this.live.has(block), `write to unallocated block ${block}`);
    assert.equal(bytes.length, BS);
    this.device.contents.set(bytes, block * BS);
  }
  allocMeta(_goal: number): number {
    if (this.failIn !== undefined && this.failIn-- <= 0) throw new FsError('ENOSPC', 'test: no space');
    const block = this.freeList.pop() ?? this.next++;
    if (block >= this.metaBlocks) throw new FsError('ENOSPC', 'test: indirect area full');
    // Stale contents: the tree must zero a new indirect block itself.
    this.device.contents.fill(0x5a, block * BS, (block + 1) * BS);
    this.allocs++;
    this.live.add(block);
    return block;
  }
  freeMeta(block: number): void {
    assert.ok(this.live.has(block), `free of unallocated block ${block}`);
    this.live.delete(block);
    this.frees++;
    this.device.contents.fill(0xa5, block * BS, (block + 1) * BS);
    this.freeList.push(block);
  }
}

function readerContext(store: MemStore): MapContext {
  const sb = { blockSize: BS, blocksCount: store.totalBlocks, firstDataBlock: store.firstDataBlock } as unknown as Superblock;
  return { sb, cache: new CachingChannel(store.device, { cacheSize: 0 }), extentSeed: () => undefined };
}

type Model = Map<number, number>;

function expand(mappings: readonly Mapping[]): [number, number][] {
  const out: [number, number][] = [];
  for (const m of mappings) {
    assert.equal(m.unwritten, false);
    for (let i = 0; i < m.len; i++) out.push([m.lblk + i, m.pblk + i]);
  }
  return out;
}

/** Windows of logical blocks the model tests use: direct/single, double/triple boundary, deep triple, the very end. */
const REGIONS = [0, LIMITS.tripleStart - 300, 5_000_000, LIMITS.end - 400] as const;
const WINDOW = 400;

function check(tree: IndirectTree, root: Uint8Array, store: MemStore, model: Model): void {
  const sorted = [...model.entries()].sort((a, b) => a[0] - b[0]);
  assert.deepEqual(expand(tree.find(0, 2 ** 32)), sorted, 'find agrees with the model');
  const ctx = readerContext(store);
  const inode = { flags: 0, block: root } as unknown as Inode;
  for (const base of REGIONS) {
    for (let l = base; l < base + WINDOW && l < LIMITS.end; ) {
      const run = mapRun(ctx, store.ino, inode, l, base + WINDOW - l);
      for (let i = 0; i < run.count; i++) {
        const p = model.get(l + i);
        if (run.kind === 'hole') assert.equal(p, undefined, `mapRun hole at ${l + i}`);
        else assert.equal(p, run.physical + i, `mapRun at ${l + i}`);
      }
      l += run.count;
    }
  }
  // Every reachable indirect block is live, non-zero, reached once; none leaked.
  const seen = new Set<number>();
  const view = new DataView(root.buffer, root.byteOffset, 60);
  const walk = (block: number, levels: number): void => {
    assert.ok(store.live.has(block), `indirect block ${block} allocated`);
    assert.ok(!seen.has(block));
    seen.add(block);
    const bytes = store.device.contents.subarray(block * BS, (block + 1) * BS);
    assert.ok(bytes.some((b) => b !== 0), `indirect block ${block} is not all zero`);
    if (levels === 1) return;
    const v = new DataView(bytes.buffer, bytes.byteOffset, BS);
    for (let i = 0; i < ADDR; i++) {
      const p = v.getUint32(i * 4, true);
      if (p !== 0) walk(p, levels - 1);
    }
  };
  for (let slot = 12; slot < 15; slot++) {
    const p = view.getUint32(slot * 4, true);
    if (p !== 0) walk(p, slot - 11);
  }
  assert.equal(seen.size, store.allocs - store.frees, 'allocations - frees = indirect blocks in the map');
  assert.equal(tree.nodeCount(), seen.size, 'nodeCount');
}

type Op =
  | { readonly kind: 'insert'; readonly region: number; readonly off: number; readonly len: number; readonly pblk: number }
  | { readonly kind: 'remove'; readonly region: number; readonly off: number; readonly len: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('insert' as const), region: fc.nat(REGIONS.length - 1), off: fc.nat(WINDOW - 1), len: fc.integer({ min: 1, max: 300 }), pblk: fc.nat(1_000_000) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('remove' as const), region: fc.nat(REGIONS.length - 1), off: fc.nat(WINDOW - 1), len: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.constant(2 ** 32)) }) },
);

function fresh(): { store: MemStore; root: Uint8Array; tree: IndirectTree } {
  const store = new MemStore(8192, 4_000_000);
  const root = new Uint8Array(60);
  IndirectTree.initRoot(root);
  return { store, root, tree: new IndirectTree(root, store) };
}

describe('IndirectTree: model', () => {
  it('random inserts and removes agree with a model and with mapRun', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 25 }), (ops) => {
        const { store, root, tree } = fresh();
        const model: Model = new Map();
        for (const op of ops) {
          const base = REGIONS[op.region] ?? 0;
          const lblk = base + op.off;
          if (op.kind === 'insert') {
            const len = Math.min(op.len, base + WINDOW - lblk, LIMITS.end - lblk);
            if (len < 1) continue;
            const pblk = 10_000 + op.pblk;
            const clash = [...Array(len).keys()].some((i) => model.has(lblk + i));
            if (clash) {
              assert.throws(() => tree.insert(lblk, pblk, len), (e: unknown) => e instanceof FsError && e.code === 'EEXIST');
            } else {
              tree.insert(lblk, pblk, len);
              for (let i = 0; i < len; i++) model.set(lblk + i, pblk + i);
            }
          } else {
            const to = Math.min(lblk + op.len, 2 ** 32);
            const expected: number[] = [];
            for (const [l, p] of model) if (l >= lblk && l < to) expected.push(p);
            for (const [l] of model) if (l >= lblk && l < to) model.delete(l);
            const got: number[] = [];
            for (const r of tree.remove(lblk, to)) for (let i = 0; i < r.len; i++) got.push(r.pblk + i);
            assert.deepEqual(got.sort((a, b) => a - b), expected.sort((a, b) => a - b));
          }
          check(tree, root, store, model);
        }
        tree.remove(0, 2 ** 32);
        assert.deepEqual([...root], new Array<number>(60).fill(0));
        assert.equal(store.allocs, store.frees);
      }),
      { numRuns: 60 },
    );
  });

  it('a 64 MiB contiguous file maps as one run, with the indirect blocks counted', () => {
    const { store, root, tree } = fresh();
    const n = 65536;
    tree.insert(0, 100_000, n);
    assert.deepEqual(tree.find(0, 2 ** 32), [{ lblk: 0, pblk: 100_000, len: n, unwritten: false }]);
    // single (1) + double (1) + (65536 - 12 - 256) / 256 rounded up second-level blocks
    assert.equal(tree.nodeCount(), 1 + 1 + Math.ceil((n - 12 - 256) / 256));
    assert.equal(store.allocs, tree.nodeCount());
    const ranges = tree.remove(1000, 2 ** 32);
    assert.deepEqual(ranges, [{ pblk: 101_000, len: n - 1000 }]);
    assert.equal(tree.nodeCount(), store.allocs - store.frees);
    assert.equal(tree.nodeCount(), 1 + 1 + Math.ceil((1000 - 12 - 256) / 256));
    void root;
  });
});

describe('IndirectTree: errors', () => {
  const code = (c: string) => (e: unknown) => e instanceof FsError && e.code === c;

  it('refuses unwritten, out-of-range and overlapping inserts without changing anything', () => {
    const { root, tree } = fresh();
    tree.insert(5, 20_000, 10);
    const before = root.slice();
    assert.throws(() => tree.insert(100, 30_000, 1, true), code('EOPNOTSUPP'));
    assert.throws(() => tree.insert(LIMITS.end - 1, 30_000, 2), code('EFBIG'));
    assert.throws(() => tree.insert(14, 30_000, 5), code('EEXIST'));
    assert.throws(() => tree.insert(100, 1, 1), code('EINVAL'));
    assert.throws(() => tree.insert(100, 3_999_999, 2), code('EINVAL'));
    assert.deepEqual(root, before);
    tree.markWritten(0, 100); // no-op
    assert.deepEqual(root, before);
  });

  it('ENOSPC while allocating indirect blocks frees them and leaves the map unchanged', () => {
    const { store, root, tree } = fresh();
    tree.insert(0, 20_000, 12);
    const before = root.slice();
    store.failIn = 1; // the single-indirect block is allocated, the double-indirect fails
    assert.throws(() => tree.insert(12, 30_000, 400), code('ENOSPC'));
    assert.deepEqual(root, before);
    assert.equal(store.allocs, store.frees);
  });

  it('pointers outside the filesystem and shared indirect blocks are EUCLEAN', () => {
    {
      const { root, tree } = fresh();
      tree.insert(0, 20_000, 300);
      new DataView(root.buffer).setUint32(12 * 4, 5_000_000, true);
      for (const op of [() => tree.find(0, 400), () => tree.remove(0, 400), () => tree.insert(100, 50_000, 1), () => tree.nodeCount()]) assert.throws(op, code('EUCLEAN'));
    }
    {
      const { store, root, tree } = fresh();
      tree.insert(0, 20_000, 300);
      const ind = new DataView(root.buffer).getUint32(12 * 4, true);
      new DataView(store.device.contents.buffer, ind * BS).setUint32(8, 4_100_000, true);
      assert.throws(() => tree.find(0, 400), code('EUCLEAN'));
    }
    {
      const { root, tree } = fresh();
      tree.insert(LIMITS.doubleStart, 20_000, 600); // double-indirect with 3 second-level blocks
      const v = new DataView(root.buffer);
      v.setUint32(12 * 4, 0, true);
      const dind = v.getUint32(13 * 4, true);
      void dind;
      // Make the triple slot point at the double-indirect block: reached twice in one walk.
      v.setUint32(14 * 4, dind, true);
      assert.throws(() => tree.remove(0, 2 ** 32), code('EUCLEAN'));
    }
  });
});

/* ------------------------------------------------------------------ e2fsck */

class ImageStore implements TreeStore {
  readonly used = new Set<number>();
  private next: number;
  readonly csumSeed = undefined;
  constructor(
    private readonly fd: number,
    readonly blockSize: number,
    readonly totalBlocks: number,
    readonly firstDataBlock: number,
    readonly ino: number,
    metaStart: number,
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
    const b = this.next++;
    this.used.add(b);
    return b;
  }
  freeMeta(block: number): void {
    this.used.delete(block);
  }
}

describe('IndirectTree: e2fsck accepts the maps it builds', () => {
  for (const fsType of ['ext2', 'ext3']) {
    it(`direct, single, double and triple indirect, with holes and removals (${fsType})`, () => {
      const image = join(scratchDir(), `indirect-tree-${fsType}.img`);
      execFileSync('mke2fs', ['-q', '-F', '-t', fsType, '-b', '1024', image, '8M'], { stdio: 'ignore' });
      execFileSync('debugfs', ['-w', '-R', 'write /dev/null f', image], { stdio: 'ignore' });
      const h = dumpe2fsHeader(image);
      const totalBlocks = Number(h.get('Block count'));
      const firstDataBlock = Number(h.get('First block'));
      const freeBlocks = Number(h.get('Free blocks'));
      const groups = Math.ceil((totalBlocks - firstDataBlock) / Number(h.get('Blocks per group')));
      assert.equal(groups, 1);
      const stat = execFileSync('debugfs', ['-R', 'stat f', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      const ino = Number(/Inode:\s*(\d+)/.exec(stat)?.[1]);

      const fd = openSync(image, 'r+');
      const store = new ImageStore(fd, 1024, totalBlocks, firstDataBlock, ino, 7900);
      const root = new Uint8Array(60);
      IndirectTree.initRoot(root);
      const tree = new IndirectTree(root, store);
      const model: Model = new Map();
      const put = (lblk: number, pblk: number, len: number): void => {
        tree.insert(lblk, pblk, len);
        for (let i = 0; i < len; i++) model.set(lblk + i, pblk + i);
      };
      put(0, 5000, 20); // direct + single
      put(600, 5100, 700); // double, several second-level blocks
      put(LIMITS.tripleStart + 70_000, 5900, 300); // triple
      put(LIMITS.tripleStart + 5, 6300, 10);
      for (const [from, to] of [[5, 9], [700, 1000], [LIMITS.tripleStart, LIMITS.tripleStart + 69_950]]) {
        tree.remove(from ?? 0, to ?? 0);
        for (const [l] of model) if (l >= (from ?? 0) && l < (to ?? 0)) model.delete(l);
      }
      assert.deepEqual(expand(tree.find(0, 2 ** 32)), [...model.entries()].sort((a, b) => a[0] - b[0]));
      assert.equal(tree.nodeCount(), store.used.size);
      closeSync(fd);

      const cmds: string[] = [];
      for (const p of model.values()) cmds.push(`setb ${p}`);
      for (const b of store.used) cmds.push(`setb ${b}`);
      const free = freeBlocks - model.size - store.used.size;
      cmds.push(`set_bg 0 free_blocks_count ${free}`, `ssv free_blocks_count ${free}`);
      const view = new DataView(root.buffer);
      // debugfs names i_block's last three slots IND, DIND, TIND.
      for (let i = 0; i < 15; i++) cmds.push(`sif f block[${['IND', 'DIND', 'TIND'][i - 12] ?? i}] ${view.getUint32(i * 4, true)}`);
      cmds.push(`sif f size ${(Math.max(...model.keys()) + 1) * 1024}`);
      cmds.push(`sif f blocks ${(model.size + store.used.size) * 2}`);
      const cmdFile = `${image}.cmds`;
      writeFileSync(cmdFile, cmds.join('\n') + '\n');
      execFileSync('debugfs', ['-w', '-f', cmdFile, image], { stdio: 'ignore' });
      const r = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
      const out = `${r.stdout}${r.stderr}`;
      assert.equal(r.status, 0, out);
      assert.deepEqual(out.split('\n').filter((l) => l.trim() !== '' && !/^Pass \d|^e2fsck \d|^\/.*: \d+\/\d+ files/.test(l)), [], out);
    });
  }
});
