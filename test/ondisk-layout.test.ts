/**
 * Group layout against real images: superblock backups and descriptor-table copies as
 * dumpe2fs lists them, descriptor locations (decoded with their checksums, which cover
 * the group number), inode locations against debugfs `imap`, and block bitmap positions
 * against debugfs `testb`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { isFsError } from '../src/errors.js';
import { debugfs, makeImage, type ImageSpec } from './helpers/images.js';
import { decodeSuperblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, type Superblock } from '../src/ondisk/superblock.js';
import { BG_BLOCK_UNINIT, decodeGroupDesc, type GroupDesc } from '../src/ondisk/group-desc.js';
import {
  blockBitmapPosition,
  blockOffsetInCluster,
  blockOfBitmapBit,
  blocksToClusters,
  blockToCluster,
  clusterToBlock,
  descriptorBlockFor,
  descriptorTableBlock,
  groupBlockCount,
  groupFirstBlock,
  groupFirstInode,
  groupHasSuperblock,
  groupLastBlock,
  groupLayout,
  groupOfBlock,
  inodeLocation,
  superblockBlock,
  superblockByteOffset,
} from '../src/ondisk/layout.js';

function populate(dir: string): void {
  mkdirSync(join(dir, 'a/b'), { recursive: true });
  for (let i = 0; i < 30; i++) writeFileSync(join(dir, 'a', `file${i}`), `contents ${i}\n`.repeat(i * 50));
  writeFileSync(join(dir, 'a/b/large.bin'), Buffer.alloc(2_000_000, 1));
}

interface Spec extends ImageSpec {
  readonly env?: Readonly<Record<string, string>>;
}

const IMAGES: readonly Spec[] = [
  { name: 'ext4-4k', size: '600M', mkfsArgs: ['-t', 'ext4', '-b', '4096'], populate },
  { name: 'ext2-1k', size: '300M', mkfsArgs: ['-t', 'ext2', '-b', '1024'], populate },
  { name: 'ext2-nosparse', size: '48M', mkfsArgs: ['-t', 'ext2', '-b', '1024', '-O', '^sparse_super,^resize_inode'] },
  { name: 'ext3-1k', size: '64M', mkfsArgs: ['-t', 'ext3', '-b', '1024'], populate },
  { name: 'meta-bg', size: '256M', mkfsArgs: ['-t', 'ext4', '-b', '1024', '-O', 'meta_bg,^resize_inode'], populate },
  { name: 'meta-bg-first2', size: '600M', mkfsArgs: ['-t', 'ext4', '-b', '1024', '-O', 'meta_bg,^resize_inode,^64bit'], env: { MKE2FS_FIRST_META_BG: '2' } },
  { name: 'meta-bg-4k', size: '5G', mkfsArgs: ['-t', 'ext4', '-b', '4096', '-O', 'meta_bg,^resize_inode'] },
  { name: 'sparse-super2', size: '512M', mkfsArgs: ['-t', 'ext4', '-b', '4096', '-O', 'sparse_super2'] },
  { name: 'sparse-super2-one', size: '200M', mkfsArgs: ['-t', 'ext4', '-b', '1024', '-O', 'sparse_super2', '-E', 'num_backup_sb=1'] },
  { name: 'bigalloc-1k', size: '400M', mkfsArgs: ['-t', 'ext4', '-b', '1024', '-O', 'bigalloc', '-C', '16384'], populate },
  { name: 'bigalloc-4k', size: '5G', mkfsArgs: ['-t', 'ext4', '-b', '4096', '-O', 'bigalloc', '-C', '65536'], populate },
  { name: 'block-64k', size: '8G', mkfsArgs: ['-t', 'ext4', '-b', '65536'] },
  { name: 'big-64bit', size: '20G', mkfsArgs: ['-t', 'ext4', '-O', '64bit'], populate },
  { name: 'few-inodes', size: '64M', mkfsArgs: ['-t', 'ext4', '-b', '1024', '-N', '64'] },
];

const paths = new Map<string, string>();
function image(name: string): string {
  const known = paths.get(name);
  if (known !== undefined) return known;
  const spec = IMAGES.find((s) => s.name === name);
  if (spec === undefined) throw new Error(`no image ${name}`);
  const saved = new Map<string, string | undefined>();
  for (const [k, v] of Object.entries(spec.env ?? {})) {
    saved.set(k, process.env[k]);
    process.env[k] = v;
  }
  try {
    const path = makeImage(spec);
    paths.set(name, path);
    return path;
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

function readAt(path: string, offset: number, length: number): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const buf = new Uint8Array(length);
    assert.equal(readSync(fd, buf, 0, length, offset), length);
    return buf;
  } finally {
    closeSync(fd);
  }
}

function superblockOf(path: string): Superblock {
  return decodeSuperblock(readAt(path, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE));
}

interface DumpGroup {
  first: number;
  last: number;
  superblock: number | null;
  superKind: 'Primary' | 'Backup' | null;
  descriptors: [number, number] | null;
  reservedGdt: [number, number] | null;
  metaBgDescriptor: number | null;
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
}

/** dumpe2fs's group listing, reduced to what layout.ts computes. */
function dumpGroups(path: string): DumpGroup[] {
  const out = execFileSync('dumpe2fs', [path], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 256 * 1024 * 1024 });
  const groups: DumpGroup[] = [];
  let g: DumpGroup | undefined;
  for (const line of out.split('\n')) {
    const head = /^Group (\d+): \(Blocks (\d+)-(\d+)\)/.exec(line);
    if (head !== null) {
      g = { first: Number(head[2]), last: Number(head[3]), superblock: null, superKind: null, descriptors: null, reservedGdt: null, metaBgDescriptor: null, blockBitmap: -1, inodeBitmap: -1, inodeTable: -1 };
      assert.equal(Number(head[1]), groups.length);
      groups.push(g);
      continue;
    }
    if (g === undefined) continue;
    let m = /(Primary|Backup) superblock at (\d+)/.exec(line);
    if (m !== null) {
      g.superKind = m[1] === 'Primary' ? 'Primary' : 'Backup';
      g.superblock = Number(m[2]);
    }
    m = /Group descriptors at (\d+)-(\d+)/.exec(line);
    if (m !== null) g.descriptors = [Number(m[1]), Number(m[2])];
    m = /Reserved GDT blocks at (\d+)-(\d+)/.exec(line);
    if (m !== null) g.reservedGdt = [Number(m[1]), Number(m[2])];
    m = /Group descriptor at (\d+)/.exec(line);
    if (m !== null) g.metaBgDescriptor = Number(m[1]);
    m = /Block bitmap at (\d+)/.exec(line);
    if (m !== null) g.blockBitmap = Number(m[1]);
    m = /Inode bitmap at (\d+)/.exec(line);
    if (m !== null) g.inodeBitmap = Number(m[1]);
    m = /Inode table at (\d+)-/.exec(line);
    if (m !== null) g.inodeTable = Number(m[1]);
  }
  return groups;
}

function readDescriptor(path: string, sb: Superblock, group: number): GroupDesc {
  const loc = descriptorBlockFor(sb, group);
  return decodeGroupDesc(readAt(path, loc.block * sb.blockSize, sb.blockSize), loc.offset, sb, group, { block: loc.block });
}

function expectEuclean(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => isFsError(e) && e.code === 'EUCLEAN');
}

describe('group layout against dumpe2fs', () => {
  for (const spec of IMAGES) {
    it(`${spec.name}: every group's range, superblock and descriptor copies`, () => {
      const path = image(spec.name);
      const sb = superblockOf(path);
      const dump = dumpGroups(path);
      assert.equal(sb.groupCount, dump.length);
      for (let g = 0; g < sb.groupCount; g++) {
        const d = dump[g];
        assert.ok(d !== undefined);
        const at = `${spec.name} group ${g}`;
        const layout = groupLayout(sb, g);
        assert.equal(layout.firstBlock, d.first, `${at} first block`);
        assert.equal(groupFirstBlock(sb, g), d.first);
        assert.equal(groupLastBlock(sb, g), d.last, `${at} last block`);
        assert.equal(groupBlockCount(sb, g), d.last - d.first + 1);
        assert.equal(layout.blockCount, d.last - d.first + 1);
        assert.equal(layout.superblock, d.superblock, `${at} superblock`);
        assert.equal(superblockBlock(sb, g), d.superblock);
        assert.equal(groupHasSuperblock(sb, g), d.superblock !== null, `${at} has superblock`);
        assert.equal(d.superKind, d.superblock === null ? null : g === 0 ? 'Primary' : 'Backup');
        assert.deepEqual(layout.descriptors === null ? null : [layout.descriptors.start, layout.descriptors.start + layout.descriptors.count - 1], d.descriptors, `${at} descriptors`);
        assert.deepEqual(layout.reservedGdt === null ? null : [layout.reservedGdt.start, layout.reservedGdt.start + layout.reservedGdt.count - 1], d.reservedGdt, `${at} reserved GDT`);
        assert.equal(layout.metaBgDescriptor, d.metaBgDescriptor, `${at} meta_bg descriptor`);
        assert.equal(groupOfBlock(sb, d.first), g);
        assert.equal(groupOfBlock(sb, d.last), g);
      }
    });

    it(`${spec.name}: each descriptor is where descriptorBlockFor says (its checksum covers the group number)`, () => {
      const path = image(spec.name);
      const sb = superblockOf(path);
      const dump = dumpGroups(path);
      for (let g = 0; g < sb.groupCount; g++) {
        const desc = readDescriptor(path, sb, g);
        const d = dump[g];
        assert.ok(d !== undefined);
        assert.equal(desc.blockBitmap, d.blockBitmap, `${spec.name} group ${g} block bitmap`);
        assert.equal(desc.inodeBitmap, d.inodeBitmap, `${spec.name} group ${g} inode bitmap`);
        assert.equal(desc.inodeTable, d.inodeTable, `${spec.name} group ${g} inode table`);
      }
    });

    it(`${spec.name}: backup descriptor copies equal the primary table`, () => {
      const path = image(spec.name);
      const sb = superblockOf(path);
      const primary = (index: number): Uint8Array => readAt(path, descriptorTableBlock(sb, index) * sb.blockSize, sb.blockSize);
      let copies = 0;
      for (let g = 1; g < sb.groupCount && copies < 64; g++) {
        const layout = groupLayout(sb, g);
        if (layout.descriptors !== null) {
          for (let i = 0; i < layout.descriptors.count; i++) {
            assert.deepEqual(readAt(path, (layout.descriptors.start + i) * sb.blockSize, sb.blockSize), primary(i), `${spec.name} group ${g} copy of block ${i}`);
            copies++;
          }
        }
        if (layout.metaBgDescriptor !== null) {
          const index = Math.floor(g / sb.descPerBlock);
          if (descriptorTableBlock(sb, index) !== layout.metaBgDescriptor) {
            assert.deepEqual(readAt(path, layout.metaBgDescriptor * sb.blockSize, sb.blockSize), primary(index), `${spec.name} group ${g} meta_bg copy`);
            copies++;
          }
        }
      }
      if (sb.groupCount > 1) assert.ok(copies > 0 || (sb.featureCompat & 0x200) !== 0, 'some backup exists');
    });
  }
});

describe('superblock backup rules', () => {
  it('sparse_super: groups 0, 1 and powers of 3, 5, 7', () => {
    const sb = superblockOf(image('ext2-1k'));
    assert.equal(sb.groupCount, 38);
    const groups = Array.from({ length: sb.groupCount }, (_, g) => g).filter((g) => groupHasSuperblock(sb, g));
    assert.deepEqual(groups, [0, 1, 3, 5, 7, 9, 25, 27]);
    // The rule itself, past this image's size.
    const wide = { ...sb, groupCount: 100_000 };
    const big = [49, 81, 125, 243, 343, 625, 729, 2187, 2401, 3125, 6561, 15625, 16807, 19683, 59049, 78125];
    for (const g of big) assert.ok(groupHasSuperblock(wide, g), `group ${g}`);
    for (const g of [2, 15, 21, 35, 45, 63, 75, 99, 105, 147, 175, 245, 27 * 5]) assert.ok(!groupHasSuperblock(wide, g), `group ${g}`);
  });

  it('no sparse_super: every group', () => {
    const sb = superblockOf(image('ext2-nosparse'));
    for (let g = 0; g < sb.groupCount; g++) assert.ok(groupHasSuperblock(sb, g));
  });

  it('sparse_super2: s_backup_bgs only', () => {
    const two = superblockOf(image('sparse-super2'));
    assert.deepEqual(two.backupBgs, [1, two.groupCount - 1]);
    const one = superblockOf(image('sparse-super2-one'));
    assert.ok(one.groupCount > 2);
    const groups = Array.from({ length: one.groupCount }, (_, g) => g).filter((g) => groupHasSuperblock(one, g));
    assert.deepEqual(groups, [0, 1]);
  });

  it('superblock byte offsets: 1024 for the primary, the group start for backups', () => {
    for (const name of ['ext4-4k', 'ext2-1k', 'bigalloc-1k', 'block-64k']) {
      const path = image(name);
      const sb = superblockOf(path);
      assert.equal(superblockByteOffset(sb, 0), 1024);
      assert.equal(superblockBlock(sb, 0), sb.blockSize === 1024 ? 1 : 0);
      if (sb.groupCount > 1) {
        const offset = superblockByteOffset(sb, 1);
        assert.equal(offset, groupFirstBlock(sb, 1) * sb.blockSize);
        assert.ok(offset !== null);
        assert.equal(decodeSuperblock(readAt(path, offset, SUPERBLOCK_SIZE), { offset }).blockGroupNr, 1);
      }
    }
  });

  it('1 KiB blocks with bigalloc: first data block 0, but superblock at 1 and descriptors at 2', () => {
    const sb = superblockOf(image('bigalloc-1k'));
    assert.equal(sb.firstDataBlock, 0);
    assert.equal(groupFirstBlock(sb, 0), 0);
    assert.equal(descriptorBlockFor(sb, 0).block, 2);
    assert.deepEqual(groupLayout(sb, 0).descriptors, { start: 2, count: sb.descBlocks });
  });

  it('meta_bg with s_first_meta_bg = 2: classic blocks 0-1, then meta groups', () => {
    const sb = superblockOf(image('meta-bg-first2'));
    assert.equal(sb.firstMetaBg, 2);
    assert.equal(sb.descPerBlock, 32);
    assert.equal(descriptorBlockFor(sb, 0).block, 2);
    assert.equal(descriptorBlockFor(sb, 63).block, 3);
    assert.deepEqual(descriptorBlockFor(sb, 64), { block: groupFirstBlock(sb, 64), offset: 0, tableIndex: 2 });
    assert.deepEqual(descriptorBlockFor(sb, 70), { block: groupFirstBlock(sb, 64), offset: 6 * 32, tableIndex: 2 });
  });
});

describe('descriptor table errors', () => {
  it('out-of-range groups and table blocks are EUCLEAN', () => {
    const sb = superblockOf(image('ext4-4k'));
    for (const g of [-1, sb.groupCount, 1.5, Number.NaN, 2 ** 40]) {
      expectEuclean(() => descriptorBlockFor(sb, g));
      expectEuclean(() => groupLayout(sb, g));
      expectEuclean(() => groupHasSuperblock(sb, g));
      expectEuclean(() => groupFirstInode(sb, g));
    }
    expectEuclean(() => descriptorTableBlock(sb, sb.descBlocks));
    for (const b of [-1, sb.blocksCount, 0.5, Number.POSITIVE_INFINITY]) expectEuclean(() => groupOfBlock(sb, b));
  });
});

/* ------------------------------------------------------------------ inodes */

/** debugfs `imap <ino>`: group, block and offset of the inode. */
function imap(path: string, ino: number): { group: number; block: number; offset: number } {
  const out = debugfs(path, `imap <${ino}>`);
  const m = /part of block group (\d+)\s+located at block (\d+), offset 0x([0-9a-f]+)/.exec(out);
  assert.ok(m !== null, `debugfs imap <${ino}>: ${out}`);
  return { group: Number(m[1]), block: Number(m[2]), offset: parseInt(m[3] ?? '', 16) };
}

describe('inode locations against debugfs imap', () => {
  for (const name of ['ext4-4k', 'ext2-1k', 'meta-bg', 'bigalloc-4k', 'block-64k', 'big-64bit', 'few-inodes']) {
    it(`${name}: group, table block and offset`, () => {
      const path = image(name);
      const sb = superblockOf(path);
      const ipg = sb.inodesPerGroup;
      const inos = new Set([1, 2, 11, 12, ipg - 1, ipg, ipg + 1, 2 * ipg, sb.inodesCount - 1, sb.inodesCount, Math.floor(sb.inodesCount / 2) + 3]);
      for (const ino of inos) {
        if (ino < 1 || ino > sb.inodesCount) continue;
        const loc = inodeLocation(sb, ino);
        const expected = imap(path, ino);
        assert.equal(loc.group, expected.group, `inode ${ino} group`);
        assert.equal(loc.index, (ino - 1) % ipg);
        assert.equal(loc.tableOffset, loc.index * sb.inodeSize);
        const desc = readDescriptor(path, sb, loc.group);
        assert.equal(desc.inodeTable + loc.tableBlock, expected.block, `inode ${ino} block`);
        assert.equal(loc.blockOffset, expected.offset, `inode ${ino} offset`);
        assert.equal(groupFirstInode(sb, loc.group) + loc.index, ino);
      }
    });
  }

  it('inode 0, numbers past s_inodes_count and non-integers are EUCLEAN', () => {
    const sb = superblockOf(image('ext4-4k'));
    for (const ino of [0, -1, sb.inodesCount + 1, 2 ** 32, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53 + 2]) {
      assert.throws(
        () => inodeLocation(sb, ino),
        (e: unknown) => isFsError(e) && e.code === 'EUCLEAN' && /inode number/.test(e.message),
        `inode ${ino}`,
      );
    }
  });
});

/* ------------------------------------------------------------------ clusters and bitmaps */

/** debugfs `testb <start> <count>`: in-use status of each block. */
function testb(path: string, start: number, count: number): boolean[] {
  const out = debugfs(path, `testb ${start} ${count}`);
  const result: boolean[] = [];
  for (const m of out.matchAll(/Block (\d+) (marked in use|not in use)/g)) {
    assert.equal(Number(m[1]), start + result.length);
    result.push(m[2] === 'marked in use');
  }
  assert.equal(result.length, count, out);
  return result;
}

describe('block bitmap positions', () => {
  for (const name of ['ext2-1k', 'ext4-4k', 'bigalloc-1k', 'bigalloc-4k', 'meta-bg']) {
    it(`${name}: the bit blockBitmapPosition picks is what debugfs testb reports`, () => {
      const path = image(name);
      const sb = superblockOf(path);
      let compared = 0;
      for (let g = 0; g < sb.groupCount; g++) {
        const desc = readDescriptor(path, sb, g);
        if (sb.hasGroupDescCsum && (desc.flags & BG_BLOCK_UNINIT) !== 0) continue;
        const bitmap = readAt(path, desc.blockBitmap * sb.blockSize, sb.blockSize);
        const first = Math.max(groupFirstBlock(sb, g), 1); // debugfs refuses block 0
        const count = Math.min(groupBlockCount(sb, g), 48);
        // The start of the group (metadata, in use) and a run further in (often free).
        for (const start of [first, first + Math.floor(groupBlockCount(sb, g) / 3)]) {
          const n = Math.min(count, groupLastBlock(sb, g) - start + 1);
          const expected = testb(path, start, n);
          for (let i = 0; i < n; i++) {
            const pos = blockBitmapPosition(sb, start + i);
            assert.equal(pos.group, g);
            const byte = bitmap[pos.bit >> 3] ?? 0;
            assert.equal(((byte >> (pos.bit & 7)) & 1) === 1, expected[i], `${name} block ${start + i}`);
            compared++;
          }
        }
      }
      assert.ok(compared > 0);
    });
  }

  it('cluster conversions and bitmap bits are inverse (property)', () => {
    for (const name of ['bigalloc-1k', 'bigalloc-4k', 'ext2-1k']) {
      const sb = superblockOf(image(name));
      fc.assert(
        fc.property(fc.integer({ min: sb.firstDataBlock, max: sb.blocksCount - 1 }), (block) => {
          const cluster = blockToCluster(sb, block);
          const start = clusterToBlock(sb, cluster);
          assert.ok(start <= block && block < start + sb.clusterRatio);
          assert.equal(blockOffsetInCluster(sb, block), block - start);
          assert.equal(blocksToClusters(sb, block), Math.ceil(block / sb.clusterRatio));
          const pos = blockBitmapPosition(sb, block);
          const back = blockOfBitmapBit(sb, pos.group, pos.bit);
          assert.ok(back <= block && block < back + sb.clusterRatio, `${name}: block ${block} -> bit ${pos.bit} -> ${back}`);
        }),
        { numRuns: 300 },
      );
    }
    const sb = superblockOf(image('bigalloc-4k'));
    assert.equal(sb.clusterRatio, 16);
    assert.equal(blocksToClusters(sb, 17), 2);
    assert.equal(blocksToClusters(sb, 16), 1);
    assert.equal(blockToCluster(sb, 31), 1);
    assert.equal(clusterToBlock(sb, 3), 48);
  });
});
