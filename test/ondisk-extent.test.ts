/**
 * Extent tree nodes and ext2/ext3 block maps against real images: trees walked with
 * decodeExtentNode compared with `debugfs ex`, block lookups with `debugfs bmap`, tail
 * checksums, encode round trips, every validation rule, and fast-check properties on
 * hostile bytes.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import fc from 'fast-check';

import { debugfs, dumpe2fsHeader, makeImage } from './helpers/images.js';
import { FsError } from '../src/errors.js';
import { crc32cRaw } from '../src/ondisk/crc.js';
import { decodeInode, EXTENTS_FL, inodeCsumSeed, type Inode } from '../src/ondisk/inode.js';
import {
  decodeExtentHeader,
  decodeExtentLeaf,
  decodeExtentNode,
  encodeExtentHeader,
  encodeExtentIndex,
  encodeExtentLeaf,
  encodeExtentNode,
  EXTENT_ENTRY_SIZE,
  EXTENT_HEADER_SIZE,
  EXTENT_INIT_MAX_LEN,
  EXTENT_MAGIC,
  EXTENT_UNINIT_MAX_LEN,
  extentContains,
  extentNodeSpace,
  extentTailChecksum,
  extentTailOffset,
  findExtent,
  lookupExtent,
  setExtentTail,
  verifyExtentTail,
  type ExtentIndex,
  type ExtentLeaf,
  type ExtentNode,
  type ExtentNodeOptions,
} from '../src/ondisk/extent.js';
import {
  blockMapLimits,
  blocksPerPointer,
  checkBlockPointers,
  decodeBlockMapRoot,
  decodeIndirectBlock,
  decodePointers,
  DIND_SLOT,
  encodePointers,
  IND_SLOT,
  indirectPath,
  isValidBlockPointer,
  TIND_SLOT,
} from '../src/ondisk/indirect.js';

/* ------------------------------------------------------------------ helpers */

interface FsInfo {
  readonly blockSize: number;
  readonly inodeSize: number;
  readonly totalBlocks: number;
  readonly firstDataBlock: number;
  readonly csumSeed: number;
  readonly metadataCsum: boolean;
}

function fsInfo(image: string): FsInfo {
  const h = dumpe2fsHeader(image);
  const uuid = Buffer.from((h.get('Filesystem UUID') ?? '').replace(/-/g, ''), 'hex');
  const seedField = h.get('Checksum seed');
  return {
    blockSize: Number(h.get('Block size')),
    inodeSize: Number(h.get('Inode size')),
    totalBlocks: Number(h.get('Block count')),
    firstDataBlock: Number(h.get('First block')),
    csumSeed: seedField !== undefined ? Number(seedField) >>> 0 : crc32cRaw(0xffffffff, uuid),
    metadataCsum: (h.get('Filesystem features') ?? '').split(/\s+/).includes('metadata_csum'),
  };
}

function readBytes(image: string, offset: number, length: number): Uint8Array {
  const fd = openSync(image, 'r');
  try {
    const buf = new Uint8Array(length);
    assert.equal(readSync(fd, buf, 0, length, offset), length);
    return buf;
  } finally {
    closeSync(fd);
  }
}

function inodeNumber(image: string, path: string): number {
  const m = /^Inode: (\d+)/m.exec(debugfs(image, `stat ${path}`));
  assert.ok(m?.[1] !== undefined, `stat ${path}`);
  return Number(m[1]);
}

function readInode(image: string, info: FsInfo, ino: number): Inode {
  const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(debugfs(image, `imap <${ino}>`));
  assert.ok(m?.[1] !== undefined && m[2] !== undefined);
  const raw = readBytes(image, Number(m[1]) * info.blockSize + parseInt(m[2], 16), info.inodeSize);
  return decodeInode(raw, { inodeNo: ino, inodeSize: info.inodeSize });
}

/** Run several debugfs requests in one process; returns each request's output. */
function debugfsBatch(image: string, requests: readonly string[]): string[] {
  const out = execFileSync('debugfs', ['-f', '-', image], { input: requests.join('\n') + '\n', encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'], maxBuffer: 64 * 1024 * 1024 });
  const parts = out.split(/^debugfs: .*$/m).slice(1);
  assert.equal(parts.length, requests.length);
  return parts.map((p) => p.trim());
}

/** `debugfs bmap` for many logical blocks: physical block (0 = hole) and the uninit mark. */
function debugfsBmap(image: string, ino: number, blocks: readonly number[]): { phys: number; uninit: boolean }[] {
  return debugfsBatch(image, blocks.map((b) => `bmap <${ino}> ${b}`)).map((text) => {
    const m = /^(\d+)( \(uninit\))?$/.exec(text);
    assert.ok(m?.[1] !== undefined, `bmap output ${text}`);
    return { phys: Number(m[1]), uninit: m[2] !== undefined };
  });
}

interface ExLine {
  readonly level: number;
  readonly maxLevel: number;
  readonly entry: number;
  readonly entries: number;
  readonly lstart: number;
  readonly lend?: number;
  readonly pstart: number;
  readonly pend?: number;
  readonly len?: number;
  readonly uninit?: boolean;
}

function parseEx(out: string): ExLine[] {
  const lines: ExLine[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\/\s*(\d+)\s+(\d+)\/\s*(\d+)\s+(\d+)\s+-\s+(\d+)\s+(\d+)(?:\s+-\s+(\d+))?\s+(\d+)\s*(Uninit)?\s*$/.exec(line);
    if (m === null) continue;
    const [level, maxLevel, entry, entries, lstart, lend, pstart, pend, len] = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => (m[i] === undefined ? undefined : Number(m[i])));
    const isLeaf = pend !== undefined;
    lines.push({
      level: level ?? -1,
      maxLevel: maxLevel ?? -1,
      entry: entry ?? -1,
      entries: entries ?? -1,
      lstart: lstart ?? -1,
      pstart: pstart ?? -1,
      ...(isLeaf ? { lend: lend ?? -1, pend, len: len ?? -1, uninit: m[10] !== undefined } : {}),
    });
  }
  return lines;
}

interface TreeBlock {
  readonly block: number;
  readonly bytes: Uint8Array;
  readonly node: ExtentNode;
  readonly options: ExtentNodeOptions;
}

interface Tree {
  readonly root: ExtentNode;
  readonly lines: ExLine[];
  readonly blocks: TreeBlock[];
  readonly leaves: ExtentLeaf[];
  readonly seed: number;
}

/** Walk an inode's whole extent tree with decodeExtentNode, producing debugfs `ex` lines in the same order. */
function walkTree(image: string, info: FsInfo, ino: number): Tree {
  const inode = readInode(image, info, ino);
  assert.ok((inode.flags & EXTENTS_FL) !== 0, `inode ${ino} uses extents`);
  const seed = inodeCsumSeed(info.csumSeed, ino, inode.generation);
  const base = { inode: ino, totalBlocks: info.totalBlocks, firstDataBlock: info.firstDataBlock };
  const root = decodeExtentNode(inode.block, { ...base, capacity: 60 });
  const maxLevel = root.header.depth;
  const lines: ExLine[] = [];
  const blocks: TreeBlock[] = [];
  const leaves: ExtentLeaf[] = [];
  const visit = (node: ExtentNode): void => {
    const level = maxLevel - node.header.depth;
    if (node.kind === 'leaf') {
      node.entries.forEach((e, i) => {
        lines.push({ level, maxLevel, entry: i + 1, entries: node.entries.length, lstart: e.block, lend: e.block + e.len - 1, pstart: e.start, pend: e.start + e.len - 1, len: e.len, uninit: e.uninit });
        leaves.push(e);
      });
      return;
    }
    node.entries.forEach((e, i) => {
      lines.push({ level, maxLevel, entry: i + 1, entries: node.entries.length, lstart: e.block, pstart: e.leaf });
      const bytes = readBytes(image, e.leaf * info.blockSize, info.blockSize);
      const options: ExtentNodeOptions = {
        ...base,
        capacity: info.blockSize,
        block: e.leaf,
        expectedDepth: node.header.depth - 1,
        firstLogical: e.block,
        ...(info.metadataCsum ? { csumSeed: seed } : {}),
      };
      const child = decodeExtentNode(bytes, options);
      blocks.push({ block: e.leaf, bytes, node: child, options });
      visit(child);
    });
  };
  visit(root);
  return { root, lines, blocks, leaves, seed };
}

/** Map a logical block through the tree the way a reader would: findExtent at each level. */
function mapBlock(image: string, info: FsInfo, ino: number, tree: Tree, logical: number): { phys: number; uninit: boolean } {
  let node = tree.root;
  for (;;) {
    if (node.kind === 'leaf') {
      const e = lookupExtent(node.entries, logical);
      return e === undefined ? { phys: 0, uninit: false } : { phys: e.start + (logical - e.block), uninit: e.uninit };
    }
    const i = findExtent(node.entries, logical);
    const idx = node.entries[i];
    if (idx === undefined) return { phys: 0, uninit: false };
    const found = tree.blocks.find((b) => b.block === idx.leaf);
    assert.ok(found !== undefined);
    node = found.node;
  }
}

function debugfsWrite(image: string, requests: readonly string[]): void {
  execFileSync('debugfs', ['-w', '-f', '-', image], { input: requests.join('\n') + '\n', stdio: ['pipe', 'ignore', 'ignore'] });
}

function writeAt(path: string, offset: number, data: Uint8Array): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, data, 0, data.length, offset);
  } finally {
    closeSync(fd);
  }
}

function sparseFile(path: string, size: number, pieces: readonly [number, number][]): void {
  writeFileSync(path, '');
  truncateSync(path, size);
  for (const [offset, length] of pieces) writeAt(path, offset, randomBytes(length));
}

/* ------------------------------------------------------------------ images */

function populateExtents(dir: string): void {
  writeFileSync(join(dir, 'empty'), '');
  writeFileSync(join(dir, 'one'), 'x');
  writeFileSync(join(dir, 'mega'), randomBytes(1 << 20));
  sparseFile(join(dir, 'sparse'), 8 << 20, [
    [0, 4096],
    [1 << 20, 3 * 4096],
    [5 << 20, 4096],
  ]);
  // 400 separated 4 KiB pieces: too many extents for the inode; a depth-1 tree at 4 KiB blocks, depth 2 at 1 KiB.
  sparseFile(
    join(dir, 'frag'),
    800 * 4096,
    Array.from({ length: 400 }, (_, i) => [i * 2 * 4096, 4096] as [number, number]),
  );
  writeFileSync(join(dir, 'prealloc'), 'p');
}

const extentImages = new Map<string, string>();
function extentImage(name: string, mkfsArgs: readonly string[]): string {
  const cached = extentImages.get(name);
  if (cached !== undefined) return cached;
  const path = makeImage({ name, size: '64M', mkfsArgs, populate: populateExtents });
  // Unwritten extents: mke2fs -d never makes them, debugfs fallocate does.
  debugfsWrite(path, ['fallocate /prealloc 4 40', 'fallocate /sparse 300 302']);
  extentImages.set(name, path);
  return path;
}

const EXT4_4K = (): string => extentImage('extents-4k', ['-t', 'ext4', '-b', '4096']);
const EXT4_1K = (): string => extentImage('extents-1k', ['-t', 'ext4', '-b', '1024']);

function populateIndirect(dir: string): void {
  writeFileSync(join(dir, 'small'), randomBytes(5 * 1024));
  writeFileSync(join(dir, 'double'), randomBytes(1536 * 1024)); // 1K blocks: direct, single and double
  writeFileSync(join(dir, 'five'), randomBytes(5 << 20)); // 4K blocks: direct, single and double
  // One block at 70 MiB: logical block 71680 at 1 KiB is in the triple-indirect range.
  sparseFile(join(dir, 'triple'), 70 * (1 << 20) + 1024, [[70 * (1 << 20), 1024]]);
  sparseFile(join(dir, 'holes'), 3 << 20, [
    [0, 1024],
    [300 * 1024, 1024],
    [2 << 20, 2048],
  ]);
}

const EXT2_1K = (): string => makeImage({ name: 'ext2-1k', size: '32M', mkfsArgs: ['-t', 'ext2', '-b', '1024'], populate: populateIndirect });
const EXT3_4K = (): string => makeImage({ name: 'ext3-4k', size: '64M', mkfsArgs: ['-t', 'ext3', '-b', '4096'], populate: populateIndirect });

/* ------------------------------------------------------------------ extent tests */

describe('extent trees of real images', () => {
  for (const [name, make, frag] of [
    ['4 KiB blocks', EXT4_4K, 1],
    ['1 KiB blocks', EXT4_1K, 2],
  ] as const) {
    test(`${name}: trees walked with decodeExtentNode match debugfs ex`, () => {
      const img = make();
      const info = fsInfo(img);
      for (const path of ['/empty', '/one', '/mega', '/sparse', '/frag', '/prealloc']) {
        const ino = inodeNumber(img, path);
        const tree = walkTree(img, info, ino);
        assert.deepEqual(tree.lines, parseEx(debugfs(img, `ex <${ino}>`)), `${name} ${path}`);
      }
      const fragTree = walkTree(img, info, inodeNumber(img, '/frag'));
      assert.equal(fragTree.root.header.depth, frag, 'depth of /frag');
      assert.equal(fragTree.root.header.max, 4);
      assert.ok(fragTree.leaves.length >= 400);
      const empty = walkTree(img, info, inodeNumber(img, '/empty'));
      assert.equal(empty.root.entries.length, 0);
      const pre = walkTree(img, info, inodeNumber(img, '/prealloc'));
      assert.ok(pre.leaves.some((e) => e.uninit));
      assert.ok(pre.leaves.some((e) => !e.uninit));
      for (const b of fragTree.blocks) {
        assert.equal(b.node.header.max, extentNodeSpace(info.blockSize));
      }
    });

    test(`${name}: block lookups match debugfs bmap`, () => {
      const img = make();
      const info = fsInfo(img);
      for (const path of ['/one', '/mega', '/sparse', '/frag', '/prealloc']) {
        const ino = inodeNumber(img, path);
        const tree = walkTree(img, info, ino);
        const probes = new Set<number>([0, 1, 2, 3, 5, 100, 255, 256, 257, 1000, 5000, 100000]);
        for (const e of tree.leaves.filter((_, i) => i % 37 === 0 || i < 3)) {
          for (const d of [-1, 0, 1, e.len - 1, e.len]) if (e.block + d >= 0) probes.add(e.block + d);
        }
        const list = [...probes].sort((a, b) => a - b);
        const expected = debugfsBmap(img, ino, list);
        list.forEach((lblk, i) => assert.deepEqual(mapBlock(img, info, ino, tree, lblk), expected[i], `${name} ${path} block ${lblk}`));
      }
    });

    test(`${name}: tail checksums verify, and fail on any flipped byte`, () => {
      const img = make();
      const info = fsInfo(img);
      assert.ok(info.metadataCsum);
      const tree = walkTree(img, info, inodeNumber(img, '/frag'));
      assert.ok(tree.blocks.length >= 2);
      for (const b of tree.blocks) {
        assert.ok(verifyExtentTail(b.bytes, tree.seed), `block ${b.block}`);
        const tail = extentTailOffset(b.node.header.max);
        assert.equal(extentTailChecksum(b.bytes, tree.seed), new DataView(b.bytes.buffer).getUint32(tail, true));
        assert.equal(verifyExtentTail(b.bytes, tree.seed ^ 1), false);
      }
      const first = tree.blocks[0];
      assert.ok(first !== undefined);
      for (let i = 0; i < first.bytes.length; i += 1) {
        const bad = first.bytes.slice();
        bad[i] = (bad[i] ?? 0) ^ 0x80;
        assert.equal(verifyExtentTail(bad, tree.seed), false, `flip at ${i}`);
      }
      const bad = first.bytes.slice();
      bad[20] = (bad[20] ?? 0) ^ 1;
      assert.throws(
        () => decodeExtentNode(bad, first.options),
        (e: unknown) => e instanceof FsError && e.code === 'EUCLEAN' && /extent tree/.test(e.message) && /checksum/.test(e.message) && e.context.block === first.block && e.context.inode === first.options.inode,
      );
      // setExtentTail restores it.
      setExtentTail(bad, tree.seed);
      bad[20] = (bad[20] ?? 0) ^ 1;
      assert.equal(verifyExtentTail(bad, tree.seed), false);
      const fixed = first.bytes.slice();
      new DataView(fixed.buffer).setUint32(extentTailOffset(first.node.header.max), 0, true);
      setExtentTail(fixed, tree.seed);
      assert.deepEqual(fixed, first.bytes);
    });

    test(`${name}: encode over the original bytes round-trips`, () => {
      const img = make();
      const info = fsInfo(img);
      for (const path of ['/empty', '/one', '/sparse', '/frag', '/prealloc']) {
        const ino = inodeNumber(img, path);
        const inode = readInode(img, info, ino);
        const tree = walkTree(img, info, ino);
        const root = inode.block.slice();
        encodeExtentNode(tree.root, root);
        assert.deepEqual(root, inode.block, `${path} root`);
        for (const b of tree.blocks) {
          const copy = b.bytes.slice();
          encodeExtentNode(b.node, copy);
          assert.deepEqual(copy, b.bytes, `${path} block ${b.block}`);
          // Rewriting each entry individually changes nothing either.
          const copy2 = b.bytes.slice();
          encodeExtentHeader(b.node.header, copy2, 0);
          b.node.entries.forEach((e: ExtentIndex | ExtentLeaf, i) => {
            const at = EXTENT_HEADER_SIZE + i * EXTENT_ENTRY_SIZE;
            if ('leaf' in e) encodeExtentIndex(e, copy2, at);
            else encodeExtentLeaf(e, copy2, at);
          });
          assert.deepEqual(copy2, b.bytes);
        }
      }
    });
  }
});

/* Synthetic nodes for the validation rules. */

const OPTS = { inode: 12, totalBlocks: 10000, firstDataBlock: 0 } as const;

function leafNode(extents: readonly ExtentLeaf[], capacity = 60, max = extentNodeSpace(capacity)): Uint8Array {
  const bytes = new Uint8Array(capacity);
  encodeExtentNode({ header: { magic: EXTENT_MAGIC, entries: 0, max, depth: 0, generation: 0 }, kind: 'leaf', entries: extents }, bytes);
  return bytes;
}

function indexNode(indexes: readonly ExtentIndex[], depth: number, capacity = 60): Uint8Array {
  const bytes = new Uint8Array(capacity);
  encodeExtentNode({ header: { magic: EXTENT_MAGIC, entries: 0, max: extentNodeSpace(capacity), depth, generation: 0 }, kind: 'index', entries: indexes }, bytes);
  return bytes;
}

function setU16(bytes: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = bytes.slice();
  new DataView(copy.buffer).setUint16(offset, value, true);
  return copy;
}

function rejects(bytes: Uint8Array, options: Partial<ExtentNodeOptions>, pattern: RegExp): void {
  assert.throws(
    () => decodeExtentNode(bytes, { ...OPTS, capacity: bytes.length, ...options }),
    (e: unknown) => {
      assert.ok(e instanceof FsError, String(e));
      assert.equal(e.code, 'EUCLEAN');
      assert.match(e.message, /extent tree/);
      assert.match(e.message, pattern);
      assert.equal(e.context.inode, options.inode ?? OPTS.inode);
      assert.equal(e.context.block, options.block);
      assert.equal(e.context.structure, 'extent tree');
      return true;
    },
  );
}

describe('decodeExtentNode validation', () => {
  const good = leafNode([
    { block: 0, len: 4, start: 100, uninit: false },
    { block: 10, len: 2, start: 200, uninit: true },
  ]);

  test('a well-formed root decodes', () => {
    const node = decodeExtentNode(good, { ...OPTS, capacity: 60 });
    assert.equal(node.kind, 'leaf');
    assert.deepEqual(node.header, { magic: EXTENT_MAGIC, entries: 2, max: 4, depth: 0, generation: 0 });
    assert.deepEqual(node.entries[1], { block: 10, len: 2, start: 200, uninit: true });
  });

  test('header rules', () => {
    rejects(setU16(good, 0, 0xf30b), {}, /magic/);
    rejects(setU16(good, 4, 5), {}, /eh_max 5 exceeds/);
    rejects(setU16(good, 4, 0), {}, /eh_max is 0/);
    rejects(setU16(good, 2, 4), {}, /overlapping|length 0/); // entries 3..4 are zero
    rejects(setU16(setU16(good, 4, 1), 2, 2), {}, /eh_entries 2 > eh_max 1/);
    rejects(setU16(good, 6, 6), {}, /depth 6/);
    rejects(good, { expectedDepth: 1, block: 77 }, /depth 0, expected 1/);
    const emptyIndex = indexNode([], 1);
    rejects(emptyIndex, {}, /no entries/);
    // A 4096-byte block holds 340 entries; 1024 holds 84.
    rejects(setU16(leafNode([], 4096), 4, 341), { block: 5 }, /eh_max 341/);
    assert.equal(decodeExtentNode(leafNode([], 4096), { ...OPTS, capacity: 4096, block: 5 }).header.max, 340);
    assert.equal(decodeExtentNode(leafNode([], 1024), { ...OPTS, capacity: 1024, block: 5 }).header.max, 84);
    // A smaller eh_max than the space is accepted (as the kernel does).
    assert.equal(decodeExtentNode(leafNode([], 1024, 10), { ...OPTS, capacity: 1024, block: 5 }).header.max, 10);
    // The root's depth may be anything up to 5; an empty depth-0 root is an empty file.
    assert.equal(decodeExtentNode(leafNode([]), { ...OPTS, capacity: 60 }).entries.length, 0);
  });

  test('leaf rules', () => {
    const leaf = (extents: ExtentLeaf[]): Uint8Array => leafNode(extents);
    rejects(setU16(good, 12 + 4, 0), {}, /length 0/);
    rejects(leaf([{ block: 0, len: 4, start: 100, uninit: false }, { block: 3, len: 1, start: 300, uninit: false }]), {}, /overlapping/);
    rejects(leaf([{ block: 10, len: 1, start: 100, uninit: false }, { block: 5, len: 1, start: 300, uninit: false }]), {}, /before the previous/);
    rejects(leaf([{ block: 0xfffffff0, len: 16, start: 100, uninit: false }]), {}, /past the last logical block/);
    assert.equal(decodeExtentNode(leaf([{ block: 0xfffffff0, len: 15, start: 100, uninit: false }]), { ...OPTS, capacity: 60 }).entries.length, 1);
    rejects(leaf([{ block: 0, len: 1, start: 0, uninit: false }]), {}, /outside the filesystem/);
    rejects(leaf([{ block: 0, len: 1, start: 1, uninit: false }]), { firstDataBlock: 1 }, /outside the filesystem/);
    rejects(leaf([{ block: 0, len: 10, start: 9995, uninit: false }]), {}, /outside the filesystem/);
    rejects(leaf([{ block: 0, len: 1, start: 2 ** 40, uninit: false }]), {}, /outside the filesystem/);
    assert.equal(decodeExtentNode(leaf([{ block: 0, len: 5, start: 9995, uninit: false }]), { ...OPTS, capacity: 60 }).entries.length, 1);
    rejects(good, { firstLogical: 3, block: 9 }, /parent index says 3/);
    // Adjacent extents are fine.
    assert.equal(decodeExtentNode(leaf([{ block: 0, len: 4, start: 100, uninit: false }, { block: 4, len: 1, start: 300, uninit: false }]), { ...OPTS, capacity: 60 }).entries.length, 2);
  });

  test('index rules', () => {
    const ok = indexNode([{ block: 0, leaf: 50 }, { block: 100, leaf: 51 }], 1);
    assert.deepEqual(decodeExtentNode(ok, { ...OPTS, capacity: 60 }).entries, [{ block: 0, leaf: 50 }, { block: 100, leaf: 51 }]);
    rejects(indexNode([{ block: 100, leaf: 50 }, { block: 100, leaf: 51 }], 1), {}, /not after the previous index/);
    rejects(indexNode([{ block: 0, leaf: 10000 }], 1), {}, /outside the filesystem/);
    rejects(indexNode([{ block: 0, leaf: 0 }], 2), {}, /outside the filesystem/);
    rejects(indexNode([{ block: 7, leaf: 50 }], 1), { firstLogical: 0, block: 4 }, /parent index says 0/);
  });

  test('uninitialized length rule', () => {
    const raw = new Uint8Array(12);
    for (const [rawLen, len, uninit] of [
      [1, 1, false],
      [32767, 32767, false],
      [32768, 32768, false],
      [32769, 1, true],
      [65535, 32767, true],
    ] as const) {
      new DataView(raw.buffer).setUint16(4, rawLen, true);
      const e = decodeExtentLeaf(raw, 0);
      assert.equal(e.len, len);
      assert.equal(e.uninit, uninit);
      const back = new Uint8Array(12);
      encodeExtentLeaf(e, back, 0);
      assert.deepEqual(back, raw);
    }
    assert.throws(() => encodeExtentLeaf({ block: 0, len: EXTENT_INIT_MAX_LEN, start: 5, uninit: true }, new Uint8Array(12), 0), FsError);
    assert.throws(() => encodeExtentLeaf({ block: 0, len: 0, start: 5, uninit: false }, new Uint8Array(12), 0), FsError);
    assert.throws(() => encodeExtentLeaf({ block: 0, len: EXTENT_INIT_MAX_LEN + 1, start: 5, uninit: false }, new Uint8Array(12), 0), FsError);
    assert.equal(EXTENT_UNINIT_MAX_LEN, 32767);
    // 48-bit physical blocks.
    const wide = new Uint8Array(12);
    encodeExtentLeaf({ block: 7, len: 3, start: 2 ** 47 + 5, uninit: false }, wide, 0);
    assert.deepEqual(decodeExtentLeaf(wide, 0), { block: 7, len: 3, start: 2 ** 47 + 5, uninit: false });
    assert.throws(() => encodeExtentLeaf({ block: 7, len: 3, start: 2 ** 48, uninit: false }, wide, 0), FsError);
  });

  test('tail checksum of a synthetic block', () => {
    const block = leafNode([{ block: 0, len: 1, start: 9, uninit: false }], 1024);
    setExtentTail(block, 0x1234);
    assert.equal(new DataView(block.buffer).getUint32(1020, true), crc32cRaw(0x1234, block, 0, 1020));
    assert.equal(decodeExtentNode(block, { ...OPTS, capacity: 1024, block: 3, csumSeed: 0x1234 }).entries.length, 1);
    rejects(block, { block: 3, csumSeed: 0x1235 }, /checksum mismatch/);
    // With a smaller eh_max the tail moves up.
    const small = leafNode([], 1024, 10);
    setExtentTail(small, 7);
    assert.equal(new DataView(small.buffer).getUint32(12 + 120, true), crc32cRaw(7, small, 0, 132));
    assert.ok(verifyExtentTail(small, 7));
    assert.equal(verifyExtentTail(new Uint8Array(4), 7), false);
  });

  test('findExtent and lookupExtent agree with a linear scan', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 1, max: 20 })), { maxLength: 40 }), fc.integer({ min: 0, max: 2000 }), (gaps, lblk) => {
        const extents: ExtentLeaf[] = [];
        let next = 0;
        for (const [gap, len] of gaps) {
          extents.push({ block: next + gap, len, start: 1000 + next, uninit: false });
          next += gap + len;
        }
        let expectIdx = -1;
        extents.forEach((e, i) => {
          if (e.block <= lblk) expectIdx = i;
        });
        assert.equal(findExtent(extents, lblk), expectIdx);
        const covering = extents.find((e) => extentContains(e, lblk));
        assert.equal(lookupExtent(extents, lblk), covering);
      }),
    );
    assert.equal(findExtent([], 5), -1);
  });

  test('encoders refuse what does not fit', () => {
    assert.throws(() => encodeExtentHeader({ entries: 1, max: 70000, depth: 0, generation: 0 }, new Uint8Array(12)), FsError);
    assert.throws(() => encodeExtentIndex({ block: 2 ** 32, leaf: 1 }, new Uint8Array(12), 0), FsError);
    assert.throws(() => encodeExtentIndex({ block: 1, leaf: 1 }, new Uint8Array(12), 4), FsError);
    const five = Array.from({ length: 5 }, (_, i) => ({ block: i, len: 1, start: 10 + i, uninit: false }));
    assert.throws(() => leafNode(five), FsError);
    assert.throws(() => leafNode([], 60, 5), FsError);
    assert.throws(() => encodeExtentNode({ header: { magic: EXTENT_MAGIC, entries: 0, max: 4, depth: 1, generation: 0 }, kind: 'leaf', entries: [] }, new Uint8Array(60)), FsError);
    assert.deepEqual(decodeExtentHeader(leafNode([], 60)), { magic: EXTENT_MAGIC, entries: 0, max: 4, depth: 0, generation: 0 });
  });
});

describe('hostile extent bytes', () => {
  test('property: mutated real roots and tree blocks decode or throw FsError', () => {
    const img = EXT4_4K();
    const info = fsInfo(img);
    const tree = walkTree(img, info, inodeNumber(img, '/frag'));
    const samples: { bytes: Uint8Array; options: ExtentNodeOptions }[] = [];
    const base = { inode: 99, totalBlocks: info.totalBlocks, firstDataBlock: info.firstDataBlock };
    samples.push({ bytes: readInode(img, info, inodeNumber(img, '/frag')).block, options: { ...base, capacity: 60 } });
    samples.push({ bytes: readInode(img, info, inodeNumber(img, '/prealloc')).block, options: { ...base, capacity: 60 } });
    for (const b of tree.blocks) samples.push({ bytes: b.bytes, options: b.options });
    for (const b of tree.blocks) samples.push({ bytes: b.bytes, options: { ...base, capacity: info.blockSize, block: b.block } });
    fc.assert(
      fc.property(
        fc.nat({ max: samples.length - 1 }),
        fc.array(fc.record({ at: fc.nat({ max: 120 }), value: fc.nat({ max: 255 }) }), { minLength: 1, maxLength: 8 }),
        fc.option(fc.integer({ min: 0, max: 7 }), { nil: undefined }),
        (which, edits, depth) => {
          const sample = samples[which];
          assert.ok(sample !== undefined);
          const bytes = sample.bytes.slice();
          // Mostly the header and first entries, where the structure is.
          for (const { at, value } of edits) bytes[at % bytes.length] = value;
          const options = depth === undefined ? sample.options : { ...sample.options, expectedDepth: depth };
          try {
            const node = decodeExtentNode(bytes, options);
            const copy = bytes.slice();
            encodeExtentNode(node, copy);
            assert.deepEqual(copy, bytes);
          } catch (e) {
            assert.ok(e instanceof FsError, `not an FsError: ${String(e)}`);
            assert.equal(e.code, 'EUCLEAN');
          }
          verifyExtentTail(bytes, 1);
        },
      ),
      { numRuns: 3000 },
    );
  });

  test('property: random bytes never crash the decoders', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 60, maxLength: 1024 }), fc.boolean(), (data, magic) => {
        const bytes = data.slice();
        if (magic) new DataView(bytes.buffer).setUint16(0, EXTENT_MAGIC, true);
        for (const capacity of [60, bytes.length]) {
          try {
            decodeExtentNode(bytes, { inode: 1, capacity, totalBlocks: 2 ** 40, firstDataBlock: 0, block: 1, csumSeed: 5 });
          } catch (e) {
            assert.ok(e instanceof FsError, `not an FsError: ${String(e)}`);
          }
        }
        try {
          decodeIndirectBlock(bytes.subarray(0, bytes.length - (bytes.length % 4)), { inode: 1, totalBlocks: 1000, firstDataBlock: 1, block: 3 });
        } catch (e) {
          assert.ok(e instanceof FsError && e.code === 'EUCLEAN', `not an FsError: ${String(e)}`);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

/* ------------------------------------------------------------------ block maps */

/** Map a logical block through an ext2/3 block map, reading indirect blocks from the image. */
function mapIndirect(image: string, info: FsInfo, ino: number, inode: Inode, logical: number): number {
  const check = { inode: ino, totalBlocks: info.totalBlocks, firstDataBlock: info.firstDataBlock };
  const path = indirectPath(logical, info.blockSize / 4);
  let ptr = decodeBlockMapRoot(inode.block, check)[path.slot] ?? 0;
  for (const index of path.indexes) {
    if (ptr === 0) return 0;
    const block = decodeIndirectBlock(readBytes(image, ptr * info.blockSize, info.blockSize), { ...check, block: ptr });
    ptr = block[index] ?? 0;
  }
  return ptr;
}

/** Every block of a block-mapped file (data and indirect), by a full walk. */
function allMappedBlocks(image: string, info: FsInfo, ino: number, inode: Inode): number[] {
  const check = { inode: ino, totalBlocks: info.totalBlocks, firstDataBlock: info.firstDataBlock };
  const out: number[] = [];
  const walk = (ptr: number, level: number): void => {
    if (ptr === 0) return;
    out.push(ptr);
    if (level === 0) return;
    for (const p of decodeIndirectBlock(readBytes(image, ptr * info.blockSize, info.blockSize), { ...check, block: ptr })) walk(p, level - 1);
  };
  const root = decodeBlockMapRoot(inode.block, check);
  root.forEach((p, slot) => walk(p, slot < IND_SLOT ? 0 : slot - IND_SLOT + 1));
  return out.sort((a, b) => a - b);
}

describe('indirect block maps', () => {
  test('indirectPath boundaries at 1 KiB and 4 KiB blocks', () => {
    const a = 256;
    assert.deepEqual(indirectPath(0, a), { slot: 0, depth: 0, indexes: [] });
    assert.deepEqual(indirectPath(11, a), { slot: 11, depth: 0, indexes: [] });
    assert.deepEqual(indirectPath(12, a), { slot: IND_SLOT, depth: 1, indexes: [0] });
    assert.deepEqual(indirectPath(12 + 255, a), { slot: IND_SLOT, depth: 1, indexes: [255] });
    assert.deepEqual(indirectPath(12 + 256, a), { slot: DIND_SLOT, depth: 2, indexes: [0, 0] });
    assert.deepEqual(indirectPath(12 + 256 + 257, a), { slot: DIND_SLOT, depth: 2, indexes: [1, 1] });
    assert.deepEqual(indirectPath(12 + 256 + 65535, a), { slot: DIND_SLOT, depth: 2, indexes: [255, 255] });
    assert.deepEqual(indirectPath(12 + 256 + 65536, a), { slot: TIND_SLOT, depth: 3, indexes: [0, 0, 0] });
    assert.deepEqual(indirectPath(71680, a), { slot: TIND_SLOT, depth: 3, indexes: [0, 22, 244] }); // 71680 - 65804 = 22 * 256 + 244
    const lim = blockMapLimits(a);
    assert.equal(lim.end, 12 + 256 + 65536 + 16777216);
    assert.deepEqual(indirectPath(lim.end - 1, a), { slot: TIND_SLOT, depth: 3, indexes: [255, 255, 255] });
    assert.throws(() => indirectPath(lim.end, a), (e: unknown) => e instanceof FsError && e.code === 'EFBIG');
    assert.throws(() => indirectPath(-1, a), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
    assert.throws(() => indirectPath(1.5, a), FsError);
    assert.equal(blockMapLimits(1024).end, 12 + 1024 + 1024 ** 2 + 1024 ** 3);
    // 64 KiB blocks: the triple range passes 2^32; logical blocks stop at 2^32 - 2.
    assert.equal(blockMapLimits(16384).end, 0xffffffff);
    assert.equal(indirectPath(0xfffffffe, 16384).slot, TIND_SLOT);
    assert.throws(() => indirectPath(0xffffffff, 16384), FsError);
    assert.equal(blocksPerPointer(2, 256), 65536);
  });

  test('property: indirectPath inverts', () => {
    fc.assert(
      fc.property(fc.constantFrom(4, 256, 1024, 2048, 4096), fc.double({ min: 0, max: 1, noNaN: true }), (a, frac) => {
        const end = blockMapLimits(a).end;
        const lblk = Math.min(end - 1, Math.floor(frac * end));
        const p = indirectPath(lblk, a);
        assert.equal(p.indexes.length, p.depth);
        for (const i of p.indexes) assert.ok(i >= 0 && i < a);
        const [i0 = 0, i1 = 0, i2 = 0] = p.indexes;
        const back = p.depth === 0 ? p.slot : p.depth === 1 ? 12 + i0 : p.depth === 2 ? 12 + a + i0 * a + i1 : 12 + a + a * a + i0 * a * a + i1 * a + i2;
        assert.equal(back, lblk);
        assert.equal(p.slot, p.depth === 0 ? lblk : 11 + p.depth);
      }),
      { numRuns: 2000 },
    );
  });

  for (const [name, make, files] of [
    ['ext2, 1 KiB blocks', EXT2_1K, ['/small', '/double', '/triple', '/holes', '/five']],
    ['ext3, 4 KiB blocks', EXT3_4K, ['/small', '/double', '/five', '/triple', '/holes']],
  ] as const) {
    test(`${name}: lookups match debugfs bmap, walks match debugfs blocks`, () => {
      const img = make();
      const info = fsInfo(img);
      const a = info.blockSize / 4;
      const lim = blockMapLimits(a);
      let sawTriple = false;
      let sawDouble = false;
      for (const path of files) {
        const ino = inodeNumber(img, path);
        const inode = readInode(img, info, ino);
        assert.equal(inode.flags & EXTENTS_FL, 0);
        const fileBlocks = Math.ceil(inode.size / info.blockSize);
        const probes = new Set<number>([0, 1, 11, 12, 13, lim.doubleStart - 1, lim.doubleStart, lim.doubleStart + 1, lim.doubleStart + a, lim.tripleStart - 1, lim.tripleStart, 300, 2048, 71679, 71680, 71681, fileBlocks - 1, fileBlocks]);
        for (let i = 0; i < 20; i++) probes.add(Math.floor((fileBlocks * i) / 20));
        const list = [...probes].filter((b) => b >= 0 && b < lim.end).sort((x, y) => x - y);
        const expected = debugfsBmap(img, ino, list);
        list.forEach((lblk, i) => {
          const phys = mapIndirect(img, info, ino, inode, lblk);
          assert.equal(phys, expected[i]?.phys, `${name} ${path} block ${lblk}`);
          if (phys !== 0 && lblk >= lim.tripleStart) sawTriple = true;
          if (phys !== 0 && lblk >= lim.doubleStart && lblk < lim.tripleStart) sawDouble = true;
        });
        const listed = debugfs(img, `blocks <${ino}>`).trim().split(/\s+/).filter((s) => s !== '').map(Number).sort((x, y) => x - y);
        assert.deepEqual(allMappedBlocks(img, info, ino, inode), listed, `${name} ${path} blocks`);
      }
      assert.ok(sawDouble, 'a double-indirect block was mapped');
      if (info.blockSize === 1024) assert.ok(sawTriple, 'a triple-indirect block was mapped');
    });
  }

  test('pointer validation', () => {
    const img = EXT2_1K();
    const info = fsInfo(img);
    const ino = inodeNumber(img, '/double');
    const inode = readInode(img, info, ino);
    const root = decodeBlockMapRoot(inode.block, { inode: ino, totalBlocks: info.totalBlocks, firstDataBlock: info.firstDataBlock });
    const ind = root[IND_SLOT] ?? 0;
    const bytes = readBytes(img, ind * info.blockSize, info.blockSize);
    const check = { inode: ino, totalBlocks: info.totalBlocks, firstDataBlock: info.firstDataBlock, block: ind };
    assert.equal(decodeIndirectBlock(bytes, check).length, 256);
    for (const bad of [info.totalBlocks, info.totalBlocks + 5, 1, 0xffffffff]) {
      const copy = bytes.slice();
      encodePointers([bad], copy, 40);
      assert.throws(
        () => decodeIndirectBlock(copy, check),
        (e: unknown) => e instanceof FsError && e.code === 'EUCLEAN' && e.context.structure === 'block map' && e.context.inode === ino && e.context.block === ind && /pointer 10/.test(e.message),
      );
    }
    const hole = bytes.slice();
    encodePointers([0], hole, 40);
    assert.equal(decodeIndirectBlock(hole, check)[10], 0);
    assert.ok(isValidBlockPointer(0, 100, 1));
    assert.ok(isValidBlockPointer(2, 100, 1));
    assert.equal(isValidBlockPointer(1, 100, 1), false);
    assert.equal(isValidBlockPointer(100, 100, 1), false);
    assert.ok(isValidBlockPointer(1, 100, 0));
    const rootBad = inode.block.slice();
    encodePointers([info.totalBlocks], rootBad, 4 * DIND_SLOT);
    assert.throws(() => decodeBlockMapRoot(rootBad, { inode: ino, totalBlocks: info.totalBlocks, firstDataBlock: 1 }), (e: unknown) => e instanceof FsError && e.context.block === undefined);
    assert.doesNotThrow(() => checkBlockPointers([0, 0, 5], { inode: 1, totalBlocks: 6, firstDataBlock: 0 }));
    // Encode/decode round trip.
    const again = new Uint8Array(bytes.length);
    encodePointers(decodePointers(bytes), again);
    assert.deepEqual(again, bytes);
    assert.throws(() => encodePointers([2 ** 32], new Uint8Array(4)), FsError);
    assert.throws(() => encodePointers([1, 2], new Uint8Array(4)), FsError);
    assert.throws(() => decodePointers(new Uint8Array(6)), FsError);
  });
});
