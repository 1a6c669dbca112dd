/**
 * Superblock, feature table, group descriptors and bitmap checksums against real images
 * made by mke2fs, with dumpe2fs as the oracle.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { FsError, isFsError } from '../src/errors.js';
import { makeImage, type ImageSpec } from './helpers/images.js';
import {
  decodeSuperblock,
  encodeSuperblock,
  formatUuid,
  SB,
  SUPERBLOCK_OFFSET,
  SUPERBLOCK_SIZE,
  superblockChecksum,
  verifySuperblockChecksum,
  type Superblock,
} from '../src/ondisk/superblock.js';
import {
  assessFeatures,
  checkFeatures,
  featureByName,
  featureNames,
  FEATURES,
  hasFeatureNamed,
  INCOMPAT_CASEFOLD,
  INCOMPAT_COMPRESSION,
  INCOMPAT_RECOVER,
  RO_COMPAT_BIGALLOC,
  RO_COMPAT_QUOTA,
} from '../src/ondisk/features.js';
import { BG_BLOCK_UNINIT, BG_INODE_UNINIT, decodeGroupDesc, encodeGroupDesc, GD, groupDescChecksum, verifyGroupDescChecksum, type GroupDesc } from '../src/ondisk/group-desc.js';
import { blockBitmapChecksum, inodeBitmapChecksum, verifyBlockBitmapChecksum, verifyInodeBitmapChecksum, withBlockBitmapChecksum } from '../src/ondisk/bitmap.js';
import { descriptorBlockFor, groupHasSuperblock, groupLayout, inodeLocation, superblockByteOffset } from '../src/ondisk/layout.js';

/* ------------------------------------------------------------------ images */

function populate(dir: string): void {
  writeFileSync(join(dir, 'hello.txt'), 'hello, world\n');
  mkdirSync(join(dir, 'sub/deeper'), { recursive: true });
  writeFileSync(join(dir, 'sub/deeper/big.bin'), Buffer.alloc(300_000, 7));
  for (let i = 0; i < 40; i++) writeFileSync(join(dir, 'sub', `f${i}`), `file ${i}\n`);
}

const IMAGES: readonly ImageSpec[] = [
  { name: 'ext2', size: '32M', mkfsArgs: ['-t', 'ext2', '-L', 'ext2-label', '-M', '/mnt/ext2', '-e', 'remount-ro'], populate },
  { name: 'ext2-rev0', size: '16M', mkfsArgs: ['-t', 'ext2', '-r', '0'] },
  { name: 'ext2-nosparse', size: '48M', mkfsArgs: ['-t', 'ext2', '-O', '^sparse_super,^resize_inode'] },
  { name: 'ext3', size: '64M', mkfsArgs: ['-t', 'ext3'], populate },
  { name: 'ext4', size: '600M', mkfsArgs: ['-t', 'ext4', '-E', 'stride=4,stripe_width=16'], populate },
  { name: 'ext4-1k', size: '64M', mkfsArgs: ['-t', 'ext4', '-b', '1024'], populate },
  { name: 'no-csum', size: '64M', mkfsArgs: ['-t', 'ext4', '-O', '^metadata_csum,^64bit'] },
  { name: 'uninit-bg', size: '64M', mkfsArgs: ['-t', 'ext4', '-O', '^metadata_csum,^64bit,uninit_bg'], populate },
  { name: 'uninit-bg-64', size: '64M', mkfsArgs: ['-t', 'ext4', '-O', '^metadata_csum,64bit,uninit_bg'] },
  { name: 'meta-bg', size: '64M', mkfsArgs: ['-t', 'ext4', '-b', '1024', '-O', 'meta_bg,^resize_inode'], populate },
  // s_first_meta_bg = 2 (set through mke2fs's debugging variable, see image()): classic
  // descriptor blocks 0-1, then meta groups.
  { name: 'meta-bg-first2', size: '600M', mkfsArgs: ['-t', 'ext4', '-b', '1024', '-O', 'meta_bg,^resize_inode,^64bit'] },
  { name: 'bigalloc', size: '300M', mkfsArgs: ['-t', 'ext4', '-b', '4096', '-O', 'bigalloc', '-C', '16384'], populate },
  { name: 'bigalloc-1k', size: '300M', mkfsArgs: ['-t', 'ext4', '-b', '1024', '-O', 'bigalloc', '-C', '16384'] },
  { name: 'sparse-super2', size: '512M', mkfsArgs: ['-t', 'ext4', '-b', '4096', '-O', 'sparse_super2'] },
  { name: 'inode-128', size: '64M', mkfsArgs: ['-t', 'ext4', '-I', '128'] },
  { name: 'block-64k', size: '256M', mkfsArgs: ['-t', 'ext4', '-b', '65536'] },
  { name: 'casefold', size: '64M', mkfsArgs: ['-t', 'ext4', '-O', 'casefold', '-E', 'encoding_flags=strict'] },
  { name: 'inline-data', size: '64M', mkfsArgs: ['-t', 'ext4', '-O', 'inline_data'], populate },
  { name: 'few-inodes', size: '64M', mkfsArgs: ['-t', 'ext4', '-N', '64'] },
  { name: 'many-inodes', size: '64M', mkfsArgs: ['-t', 'ext4', '-N', '60000'] },
  { name: 'big-64bit', size: '20G', mkfsArgs: ['-t', 'ext4', '-O', '64bit'] },
  { name: 'desc-128', size: '64M', mkfsArgs: ['-t', 'ext4', '-E', 'desc_size=128'] },
  { name: 'csum-seed', size: '64M', mkfsArgs: ['-t', 'ext4', '-O', 'metadata_csum_seed'] },
  { name: 'mmp', size: '64M', mkfsArgs: ['-t', 'ext4', '-O', 'mmp'] },
  { name: 'extras', size: '64M', mkfsArgs: ['-t', 'ext4', '-O', 'orphan_file,quota,project,encrypt,verity,large_dir,ea_inode,stable_inodes'] },
];

/** Image path by name; makes the image (once) on first use. */
const paths = new Map<string, string>();
function image(name: string): string {
  const known = paths.get(name);
  if (known !== undefined) return known;
  const spec = IMAGES.find((s) => s.name === name);
  if (spec === undefined) throw new Error(`no image ${name}`);
  let path: string;
  if (name === 'meta-bg-first2') {
    process.env.MKE2FS_FIRST_META_BG = '2';
    try {
      path = makeImage(spec);
    } finally {
      delete process.env.MKE2FS_FIRST_META_BG;
    }
  } else {
    path = makeImage(spec);
  }
  if (name === 'csum-seed') {
    // A new UUID without rewriting checksums: only s_checksum_seed still seeds them.
    execFileSync('tune2fs', ['-U', '8d5a6a3a-1b0c-4f6e-9a51-2a9c1c0f6e11', path], { stdio: 'ignore' });
  }
  paths.set(name, path);
  return path;
}

function readAt(path: string, offset: number, length: number): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const buf = new Uint8Array(length);
    const n = readSync(fd, buf, 0, length, offset);
    assert.equal(n, length, `short read at ${offset} of ${path}`);
    return buf;
  } finally {
    closeSync(fd);
  }
}

function readSuperblockBytes(path: string): Uint8Array {
  return readAt(path, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE);
}

/* ------------------------------------------------------------------ dumpe2fs oracle */

interface DumpGroup {
  group: number;
  first: number;
  last: number;
  csum: number | undefined;
  flags: string[];
  blockBitmap: number;
  blockBitmapCsum: number | undefined;
  inodeBitmap: number;
  inodeBitmapCsum: number | undefined;
  inodeTable: [number, number];
  freeBlocks: number;
  freeInodes: number;
  dirs: number;
  unused: number;
}

interface Dump {
  header: Map<string, string>;
  groups: DumpGroup[];
}

const dumps = new Map<string, Dump>();
function dumpe2fs(path: string): Dump {
  const cached = dumps.get(path);
  if (cached !== undefined) return cached;
  const out = execFileSync('dumpe2fs', [path], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, TZ: 'UTC', LANG: 'C', LC_ALL: 'C' },
    maxBuffer: 256 * 1024 * 1024,
  });
  const header = new Map<string, string>();
  const groups: DumpGroup[] = [];
  let current: DumpGroup | undefined;
  for (const line of out.split('\n')) {
    const g = /^Group (\d+): \(Blocks (\d+)-(\d+)\)(?: csum 0x([0-9a-f]+))?(?: \[([A-Z_, ]+)\])?/.exec(line);
    if (g !== null) {
      current = {
        group: Number(g[1]),
        first: Number(g[2]),
        last: Number(g[3]),
        csum: g[4] === undefined ? undefined : parseInt(g[4], 16),
        flags: g[5] === undefined ? [] : g[5].split(', '),
        blockBitmap: -1,
        blockBitmapCsum: undefined,
        inodeBitmap: -1,
        inodeBitmapCsum: undefined,
        inodeTable: [-1, -1],
        freeBlocks: -1,
        freeInodes: -1,
        dirs: -1,
        unused: 0,
      };
      groups.push(current);
      continue;
    }
    if (current === undefined) {
      const m = /^([^:]+):\s*(.*)$/.exec(line);
      if (m?.[1] !== undefined && m[2] !== undefined) header.set(m[1].trim(), m[2].trim());
      continue;
    }
    let m = /Block bitmap at (\d+)[^,]*(?:, csum 0x([0-9a-f]+))?/.exec(line);
    if (m !== null) {
      current.blockBitmap = Number(m[1]);
      current.blockBitmapCsum = m[2] === undefined ? undefined : parseInt(m[2], 16);
    }
    m = /Inode bitmap at (\d+)[^,]*(?:, csum 0x([0-9a-f]+))?/.exec(line);
    if (m !== null) {
      current.inodeBitmap = Number(m[1]);
      current.inodeBitmapCsum = m[2] === undefined ? undefined : parseInt(m[2], 16);
    }
    m = /Inode table at (\d+)-(\d+)/.exec(line);
    if (m !== null) current.inodeTable = [Number(m[1]), Number(m[2])];
    m = /^\s+(\d+) free (?:blocks|clusters), (\d+) free inodes, (\d+) directories(?:, (\d+) unused inodes)?/.exec(line);
    if (m !== null) {
      current.freeBlocks = Number(m[1]);
      current.freeInodes = Number(m[2]);
      current.dirs = Number(m[3]);
      current.unused = m[4] === undefined ? 0 : Number(m[4]);
    }
  }
  const dump = { header, groups };
  dumps.set(path, dump);
  return dump;
}

/** C's ctime() in UTC, without the newline. */
function ctime(seconds: number): string {
  const d = new Date(seconds * 1000);
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p2 = (n: number): string => String(n).padStart(2, '0');
  return `${days[d.getUTCDay()]} ${months[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} ${d.getUTCFullYear()}`;
}

function lifetimeWrites(kb: number): string {
  if (kb < 2 ** 13) return `${kb} kB`;
  if (kb < 2 ** 23) return `${Math.floor((kb + 2 ** 9) / 2 ** 10)} MB`;
  return `${Math.floor((kb + 2 ** 19) / 2 ** 20)} GB`;
}

/** Compares every superblock field dumpe2fs -h prints. */
function compareHeader(sb: Superblock, h: Map<string, string>, name: string): void {
  const eq = (key: string, expected: string | number): void => {
    assert.equal(h.get(key), String(expected), `${name}: ${key}`);
  };
  const num = (key: string): number => {
    const value = h.get(key);
    assert.ok(value !== undefined, `${name}: dumpe2fs prints no "${key}"`);
    return Number(/^-?\d+/.exec(value)?.[0]);
  };
  eq('Filesystem volume name', sb.volumeName === '' ? '<none>' : sb.volumeName);
  eq('Last mounted on', sb.lastMounted === '' ? '<not available>' : sb.lastMounted);
  eq('Filesystem UUID', sb.uuid.every((b) => b === 0) ? '<none>' : formatUuid(sb.uuid));
  eq('Filesystem magic number', `0x${sb.magic.toString(16).toUpperCase()}`);
  eq('Filesystem revision #', `${sb.revLevel} (${sb.revLevel === 0 ? 'original' : 'dynamic'})`);
  const names = featureNames(sb);
  eq('Filesystem features', names.length === 0 ? '(none)' : names.join(' '));
  const flagNames = [
    [1, 'signed_directory_hash'],
    [2, 'unsigned_directory_hash'],
    [4, 'test_filesystem'],
  ] as const;
  if (sb.flags !== 0) eq('Filesystem flags', flagNames.filter(([bit]) => (sb.flags & bit) !== 0).map(([, n]) => n).join(' '));
  const mntopts = [
    [0x4, 'user_xattr'],
    [0x8, 'acl'],
  ] as const;
  eq('Default mount options', sb.defaultMountOpts === 0 ? '(none)' : mntopts.filter(([bit]) => (sb.defaultMountOpts & bit) !== 0).map(([, n]) => n).join(' '));
  eq('Filesystem state', (sb.state & 1) !== 0 ? 'clean' : 'not clean');
  eq('Errors behavior', ['Unknown (ignored)', 'Continue', 'Remount read-only', 'Panic'][sb.errors] ?? '');
  eq('Filesystem OS type', sb.creatorOs === 0 ? 'Linux' : String(sb.creatorOs));
  eq('Inode count', sb.inodesCount);
  eq('Block count', sb.blocksCount);
  eq('Reserved block count', sb.rBlocksCount);
  if (sb.overheadClusters !== 0) eq('Overhead clusters', sb.overheadClusters);
  eq('Free blocks', sb.freeBlocksCount);
  eq('Free inodes', sb.freeInodesCount);
  eq('First block', sb.firstDataBlock);
  eq('Block size', sb.blockSize);
  eq(sb.hasBigalloc ? 'Cluster size' : 'Fragment size', sb.clusterSize);
  if (sb.has64bit) eq('Group descriptor size', sb.descSizeField);
  if (sb.reservedGdtBlocks !== 0) eq('Reserved GDT blocks', sb.reservedGdtBlocks);
  eq('Blocks per group', sb.blocksPerGroup);
  eq(sb.hasBigalloc ? 'Clusters per group' : 'Fragments per group', sb.clustersPerGroup);
  eq('Inodes per group', sb.inodesPerGroup);
  eq('Inode blocks per group', sb.inodeTableBlocks);
  if (sb.raidStride !== 0) eq('RAID stride', sb.raidStride);
  if (sb.raidStripeWidth !== 0) eq('RAID stripe width', sb.raidStripeWidth);
  if (sb.hasMetaBg && sb.firstMetaBg !== 0) eq('First meta block group', sb.firstMetaBg);
  if (sb.hasFlexBg) eq('Flex block group size', sb.groupsPerFlex);
  if (sb.mkfsTime !== 0) eq('Filesystem created', ctime(sb.mkfsTime));
  eq('Last mount time', sb.mtime === 0 ? 'n/a' : ctime(sb.mtime));
  eq('Last write time', ctime(sb.wtime));
  eq('Mount count', sb.mntCount);
  eq('Maximum mount count', sb.maxMntCount);
  eq('Last checked', ctime(sb.lastcheck));
  assert.equal(num('Check interval'), sb.checkinterval, `${name}: check interval`);
  if (sb.kbytesWritten !== 0) eq('Lifetime writes', lifetimeWrites(sb.kbytesWritten));
  assert.equal(num('Reserved blocks uid'), sb.defResuid);
  assert.equal(num('Reserved blocks gid'), sb.defResgid);
  if (sb.revLevel >= 1) {
    eq('First inode', sb.firstIno);
    eq('Inode size', sb.inodeSize);
    if (sb.minExtraIsize !== 0) eq('Required extra isize', sb.minExtraIsize);
    if (sb.wantExtraIsize !== 0) eq('Desired extra isize', sb.wantExtraIsize);
  } else {
    assert.equal(sb.inodeSize, 128);
    assert.equal(sb.firstIno, 11);
  }
  if (sb.journalUuid.some((b) => b !== 0)) eq('Journal UUID', formatUuid(sb.journalUuid));
  if (sb.journalInum !== 0) eq('Journal inode', sb.journalInum);
  if (sb.journalDev !== 0) eq('Journal device', `0x${sb.journalDev.toString(16).padStart(4, '0')}`);
  if (sb.lastOrphan !== 0) eq('First orphan inode', sb.lastOrphan);
  if (sb.hashSeed.some((w) => w !== 0) || sb.defHashVersion !== 0) {
    eq('Default directory hash', ['legacy', 'half_md4', 'tea'][sb.defHashVersion] ?? '');
    eq('Directory Hash Seed', formatUuid(sb.raw.subarray(SB.hashSeed, SB.hashSeed + 16)));
  }
  if (sb.jnlBackupType !== 0) eq('Journal backup', sb.jnlBackupType === 1 ? 'inode blocks' : `type ${sb.jnlBackupType}`);
  if (sb.backupBgs[0] !== 0 || sb.backupBgs[1] !== 0) {
    eq('Backup block groups', sb.backupBgs.filter((g) => g !== 0).join(' '));
  }
  if (sb.usrQuotaInum !== 0) eq('User quota inode', sb.usrQuotaInum);
  if (sb.grpQuotaInum !== 0) eq('Group quota inode', sb.grpQuotaInum);
  if (sb.prjQuotaInum !== 0) eq('Project quota inode', sb.prjQuotaInum);
  if (sb.mmpBlock !== 0) {
    eq('MMP block number', sb.mmpBlock);
    eq('MMP update interval', sb.mmpUpdateInterval);
  }
  if (sb.hasMetadataCsum) {
    eq('Checksum type', 'crc32c');
    eq('Checksum', `0x${sb.checksum.toString(16).padStart(8, '0')}`);
  }
  if ((sb.featureIncompat & 0x2000) !== 0) eq('Checksum seed', `0x${sb.checksumSeed.toString(16).padStart(8, '0')}`);
  if ((sb.featureIncompat & INCOMPAT_CASEFOLD) !== 0) eq('Character encoding', sb.encoding === 1 ? 'utf8-12.1' : String(sb.encoding));
  if (sb.orphanFileInum !== 0) eq('Orphan file inode', sb.orphanFileInum);
  if (sb.errorCount !== 0) eq('FS Error count', sb.errorCount);
}

/** Every group descriptor of an image, decoded from the primary table. */
function readDescriptors(path: string, sb: Superblock): { descs: GroupDesc[]; blocks: Map<number, Uint8Array> } {
  const blocks = new Map<number, Uint8Array>();
  const descs: GroupDesc[] = [];
  for (let g = 0; g < sb.groupCount; g++) {
    const loc = descriptorBlockFor(sb, g);
    let block = blocks.get(loc.block);
    if (block === undefined) {
      block = readAt(path, loc.block * sb.blockSize, sb.blockSize);
      blocks.set(loc.block, block);
    }
    descs.push(decodeGroupDesc(block, loc.offset, sb, g, { block: loc.block }));
  }
  return { descs, blocks };
}

function expectEuclean(fn: () => unknown, pattern?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isFsError(e), `expected FsError, got ${String(e)}`);
    assert.equal(e.code, 'EUCLEAN', e.message);
    if (pattern !== undefined) assert.match(e.message, pattern);
    return true;
  });
}

function expectCode(fn: () => unknown, code: string, pattern?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isFsError(e), `expected FsError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern !== undefined) assert.match(e.message, pattern);
    return true;
  });
}

/* ------------------------------------------------------------------ superblock */

describe('superblock on real images', () => {
  before(() => {
    for (const spec of IMAGES) image(spec.name);
  });

  for (const spec of IMAGES) {
    it(`${spec.name}: decodes every field as dumpe2fs prints it`, () => {
      const path = image(spec.name);
      const raw = readSuperblockBytes(path);
      const sb = decodeSuperblock(raw);
      compareHeader(sb, dumpe2fs(path).header, spec.name);
      assert.equal(sb.groupCount, dumpe2fs(path).groups.length, 'group count');
      assert.ok(verifySuperblockChecksum(raw));
    });

    it(`${spec.name}: encode(decode(raw)) is raw, byte for byte`, () => {
      const raw = readSuperblockBytes(image(spec.name));
      const sb = decodeSuperblock(raw);
      assert.deepEqual(encodeSuperblock(sb), raw);
      assert.deepEqual(encodeSuperblock(sb, new Uint8Array(SUPERBLOCK_SIZE), { updateChecksum: false }), raw);
    });

    it(`${spec.name}: every group descriptor matches dumpe2fs, verifies and round-trips`, () => {
      const path = image(spec.name);
      const sb = decodeSuperblock(readSuperblockBytes(path));
      const { descs, blocks } = readDescriptors(path, sb);
      const dump = dumpe2fs(path);
      for (const desc of descs) {
        const d = dump.groups[desc.group];
        assert.ok(d !== undefined);
        const at = `${spec.name} group ${desc.group}`;
        assert.equal(desc.blockBitmap, d.blockBitmap, `${at} block bitmap`);
        assert.equal(desc.inodeBitmap, d.inodeBitmap, `${at} inode bitmap`);
        assert.deepEqual([desc.inodeTable, desc.inodeTable + sb.inodeTableBlocks - 1], d.inodeTable, `${at} inode table`);
        assert.equal(desc.freeBlocksCount, d.freeBlocks, `${at} free blocks`);
        assert.equal(desc.freeInodesCount, d.freeInodes, `${at} free inodes`);
        assert.equal(desc.usedDirsCount, d.dirs, `${at} directories`);
        assert.equal(desc.itableUnused, d.unused, `${at} unused inodes`);
        if (sb.hasGroupDescCsum) {
          assert.equal(desc.checksum, d.csum, `${at} checksum`);
          const flags = [];
          if (desc.flags & 1) flags.push('INODE_UNINIT');
          if (desc.flags & 2) flags.push('BLOCK_UNINIT');
          if (desc.flags & 4) flags.push('ITABLE_ZEROED');
          assert.deepEqual(flags, d.flags, `${at} flags`);
        } else {
          assert.equal(d.csum, undefined);
        }
        if (sb.hasMetadataCsum) {
          assert.equal(desc.blockBitmapCsum, d.blockBitmapCsum, `${at} block bitmap checksum`);
          assert.equal(desc.inodeBitmapCsum, d.inodeBitmapCsum, `${at} inode bitmap checksum`);
        }
        // Round trip, with and without recomputing the checksum.
        const loc = descriptorBlockFor(sb, desc.group);
        const original = blocks.get(loc.block)?.slice(loc.offset, loc.offset + sb.descSize);
        assert.ok(original !== undefined);
        const out = new Uint8Array(sb.descSize + 8).fill(0xaa);
        encodeGroupDesc(desc, out, 4, sb);
        assert.deepEqual(out.subarray(4, 4 + sb.descSize), original, `${at} round trip`);
        assert.deepEqual(out.subarray(0, 4), new Uint8Array(4).fill(0xaa), `${at} bytes before untouched`);
        assert.deepEqual(out.subarray(4 + sb.descSize), new Uint8Array(4).fill(0xaa), `${at} bytes after untouched`);
        encodeGroupDesc(desc, out, 0, sb, { updateChecksum: false });
        assert.deepEqual(out.subarray(0, sb.descSize), original);
        assert.ok(verifyGroupDescChecksum(sb, desc.group, original));
      }
      // The whole table, re-encoded block by block, is the table on disk.
      for (const [block, bytes] of blocks) {
        const copy = bytes.slice();
        for (const desc of descs) {
          const loc = descriptorBlockFor(sb, desc.group);
          if (loc.block === block) encodeGroupDesc(desc, copy, loc.offset, sb);
        }
        assert.deepEqual(copy, bytes, `${spec.name} descriptor block ${block}`);
      }
    });

    it(`${spec.name}: block and inode bitmap checksums verify`, () => {
      const path = image(spec.name);
      const sb = decodeSuperblock(readSuperblockBytes(path));
      const { descs } = readDescriptors(path, sb);
      let checked = 0;
      for (const desc of descs) {
        if ((desc.flags & BG_BLOCK_UNINIT) === 0 || !sb.hasGroupDescCsum) {
          const bitmap = readAt(path, desc.blockBitmap * sb.blockSize, sb.blockSize);
          assert.ok(verifyBlockBitmapChecksum(sb, desc, bitmap), `${spec.name} group ${desc.group} block bitmap`);
          if (sb.hasMetadataCsum) {
            checked++;
            assert.deepEqual(withBlockBitmapChecksum(sb, { ...desc, blockBitmapCsum: 0 }, bitmap), desc);
            bitmap[0] = (bitmap[0] ?? 0) ^ 0x10;
            assert.ok(!verifyBlockBitmapChecksum(sb, desc, bitmap), `${spec.name} group ${desc.group} flipped block bitmap`);
          }
        }
        if ((desc.flags & BG_INODE_UNINIT) === 0 || !sb.hasGroupDescCsum) {
          const bitmap = readAt(path, desc.inodeBitmap * sb.blockSize, sb.blockSize);
          assert.ok(verifyInodeBitmapChecksum(sb, desc, bitmap), `${spec.name} group ${desc.group} inode bitmap`);
          if (sb.hasMetadataCsum) {
            checked++;
            const full = inodeBitmapChecksum(sb, bitmap);
            assert.equal(sb.descSize >= 64 ? full : full & 0xffff, desc.inodeBitmapCsum);
            const last = Math.floor(sb.inodesPerGroup / 8) - 1;
            bitmap[last] = (bitmap[last] ?? 0) ^ 0x01;
            assert.ok(!verifyInodeBitmapChecksum(sb, desc, bitmap), `${spec.name} group ${desc.group} flipped inode bitmap`);
            // Bytes past inodesPerGroup / 8 are padding, outside the checksum.
            if (last + 1 < bitmap.length) {
              bitmap[last] = (bitmap[last] ?? 0) ^ 0x01;
              bitmap[last + 1] = (bitmap[last + 1] ?? 0) ^ 0x01;
              assert.ok(verifyInodeBitmapChecksum(sb, desc, bitmap));
            }
          }
        }
      }
      if (sb.hasMetadataCsum) assert.ok(checked > 0);
    });

    it(`${spec.name}: backup superblocks decode and name their group`, () => {
      const path = image(spec.name);
      const sb = decodeSuperblock(readSuperblockBytes(path));
      let backups = 0;
      for (let g = 1; g < sb.groupCount; g++) {
        if (!groupHasSuperblock(sb, g)) continue;
        const offset = superblockByteOffset(sb, g);
        assert.ok(offset !== null);
        const backup = decodeSuperblock(readAt(path, offset, SUPERBLOCK_SIZE), { offset });
        assert.equal(backup.blockGroupNr, g);
        assert.equal(backup.blocksCount, sb.blocksCount);
        assert.deepEqual(backup.uuid, sb.uuid);
        backups++;
        if (backups > 8) break;
      }
      if (sb.groupCount > 1 && (sb.featureCompat & 0x200) === 0) assert.ok(backups > 0, 'group 1 always has a backup without sparse_super2');
    });
  }
});

describe('superblock: specific images', () => {
  it('ext2 rev 0: inode size and first inode come from the revision, not the fields', () => {
    const sb = decodeSuperblock(readSuperblockBytes(image('ext2-rev0')));
    assert.equal(sb.revLevel, 0);
    assert.equal(sb.inodeSize, 128);
    assert.equal(sb.firstIno, 11);
    assert.equal(sb.descSize, 32);
    assert.equal(sb.hasGroupDescCsum, false);
    assert.deepEqual(featureNames(sb), []);
  });

  it('ext2: label, last mounted and errors behaviour', () => {
    const sb = decodeSuperblock(readSuperblockBytes(image('ext2')));
    assert.equal(sb.volumeName, 'ext2-label');
    assert.equal(sb.lastMounted, '/mnt/ext2');
    assert.equal(sb.errors, 2);
    assert.equal(sb.hasMetadataCsum, false);
    assert.equal(sb.journalInum, 0);
  });

  it('ext4 default: 64bit, metadata_csum, csum seed from the UUID', () => {
    const sb = decodeSuperblock(readSuperblockBytes(image('ext4')));
    assert.equal(sb.blockSize, 4096);
    assert.equal(sb.descSize, 64);
    assert.equal(sb.descPerBlock, 64);
    assert.ok(sb.has64bit && sb.hasMetadataCsum && sb.hasFlexBg && sb.hasGroupDescCsum);
    assert.equal(sb.groupsPerFlex, 16);
    assert.equal(sb.checksumType, 1);
    assert.equal(sb.raidStride, 4);
    assert.equal(sb.raidStripeWidth, 16);
    assert.equal(sb.journalInum, 8);
    assert.equal(sb.firstDataBlock, 0);
  });

  it('metadata_csum_seed: checksums use s_checksum_seed, not the (changed) UUID', () => {
    const path = image('csum-seed');
    const sb = decodeSuperblock(readSuperblockBytes(path));
    assert.equal(sb.csumSeed, sb.checksumSeed);
    assert.equal(formatUuid(sb.uuid), '8d5a6a3a-1b0c-4f6e-9a51-2a9c1c0f6e11');
    // Descriptors verify only with the stored seed.
    const { descs } = readDescriptors(path, sb);
    assert.ok(descs.length > 0);
    const wrongSeed = { ...sb, featureIncompat: sb.featureIncompat & ~0x2000 };
    const block = readAt(path, descriptorBlockFor(sb, 0).block * sb.blockSize, sb.blockSize);
    assert.ok(verifyGroupDescChecksum(sb, 0, block, 0));
    const reseeded = decodeSuperblock(encodeSuperblock(wrongSeed, new Uint8Array(SUPERBLOCK_SIZE)));
    assert.notEqual(reseeded.csumSeed, sb.csumSeed);
    assert.ok(!verifyGroupDescChecksum(reseeded, 0, block, 0));
  });

  it('bigalloc: cluster geometry', () => {
    const sb = decodeSuperblock(readSuperblockBytes(image('bigalloc')));
    assert.equal(sb.clusterSize, 16384);
    assert.equal(sb.clusterRatio, 4);
    assert.equal(sb.clusterBits, 2);
    assert.equal(sb.blocksPerGroup, sb.clustersPerGroup * 4);
    const k = decodeSuperblock(readSuperblockBytes(image('bigalloc-1k')));
    assert.equal(k.blockSize, 1024);
    assert.equal(k.clusterRatio, 16);
    assert.equal(k.firstDataBlock, 0, '1 KiB blocks with bigalloc start at block 0');
    assert.ok(k.blocksPerGroup > 8 * k.blockSize, 'blocks per group may exceed 8 x block size with bigalloc');
  });

  it('64 KiB blocks and 128-byte descriptors', () => {
    const sb = decodeSuperblock(readSuperblockBytes(image('block-64k')));
    assert.equal(sb.blockSize, 65536);
    assert.equal(sb.logBlockSize, 6);
    const d = decodeSuperblock(readSuperblockBytes(image('desc-128')));
    assert.equal(d.descSize, 128);
    assert.equal(d.descPerBlock, d.blockSize / 128);
  });

  it('20 GiB 64bit image: more than 2^32 bytes, block count exact', () => {
    const sb = decodeSuperblock(readSuperblockBytes(image('big-64bit')));
    assert.equal(sb.blocksCount * sb.blockSize, 20 * 2 ** 30);
    assert.equal(sb.groupCount, 160);
  });

  it('decoded objects own their bytes, even when decoded from a Node Buffer', () => {
    const path = image('ext4');
    const original = readSuperblockBytes(path);
    const buffer = Buffer.from(original);
    const sb = decodeSuperblock(buffer);
    const uuid = sb.uuid.slice();
    buffer.fill(0);
    assert.deepEqual(sb.raw, original);
    assert.deepEqual(sb.uuid, uuid);
    assert.deepEqual(encodeSuperblock(sb), original);
    const loc = descriptorBlockFor(sb, 0);
    const block = Buffer.from(readAt(path, loc.block * sb.blockSize, sb.blockSize));
    const desc = decodeGroupDesc(block, loc.offset, sb, 0);
    const copy = new Uint8Array(block.subarray(loc.offset, loc.offset + sb.descSize));
    block.fill(0);
    assert.deepEqual(desc.raw, copy);
    // Encoding into a Buffer view at an offset works too.
    const out = Buffer.alloc(3000, 0xee);
    encodeSuperblock(sb, out.subarray(1024, 2048));
    assert.deepEqual(new Uint8Array(out.subarray(1024, 2048)), original);
    assert.equal(out[1023], 0xee);
    assert.equal(out[2048], 0xee);
  });

  it('encode writes changed fields and a fresh checksum', () => {
    const raw = readSuperblockBytes(image('ext4'));
    const sb = decodeSuperblock(raw);
    const changed = { ...sb, freeBlocksCount: sb.freeBlocksCount - 5, volumeName: 'renamed', wtime: 2 ** 33 + 7, mntCount: 3 };
    const bytes = encodeSuperblock(changed);
    assert.ok(verifySuperblockChecksum(bytes));
    const again = decodeSuperblock(bytes);
    assert.equal(again.freeBlocksCount, sb.freeBlocksCount - 5);
    assert.equal(again.volumeName, 'renamed');
    assert.equal(again.wtime, 2 ** 33 + 7);
    assert.equal(again.mntCount, 3);
    assert.equal(bytes[SB.wtimeHi], 2);
    expectCode(() => encodeSuperblock({ ...sb, volumeName: 'x'.repeat(17) }), 'EINVAL');
    expectCode(() => encodeSuperblock({ ...sb, mntCount: 70000 }), 'EINVAL');
    expectCode(() => encodeSuperblock({ ...sb, kbytesWritten: 2 ** 53 }), 'EINVAL');
    expectCode(() => encodeSuperblock({ ...sb, wtime: 2 ** 40 }), 'EINVAL');
    const narrow = decodeSuperblock(readSuperblockBytes(image('no-csum')));
    expectCode(() => encodeSuperblock({ ...narrow, blocksCount: 2 ** 32 }), 'EINVAL');
  });

  it('casefold: encoding and strict flag', () => {
    const sb = decodeSuperblock(readSuperblockBytes(image('casefold')));
    assert.equal(sb.encoding, 1);
    assert.equal(sb.encodingFlags, 1);
  });
});

/* ------------------------------------------------------------------ corruption */

/** `raw` with `edit` applied and the checksum recomputed (when metadata_csum is set). */
function patched(raw: Uint8Array, edit: (v: DataView) => void): Uint8Array {
  const out = raw.slice();
  const v = new DataView(out.buffer);
  edit(v);
  if ((v.getUint32(SB.featureRoCompat, true) & 0x400) !== 0) v.setUint32(SB.checksum, superblockChecksum(out), true);
  return out;
}

describe('superblock: corruption and hostile values', () => {
  it('a flipped byte fails the checksum (metadata_csum)', () => {
    for (const name of ['ext4', 'ext4-1k', 'bigalloc', 'big-64bit']) {
      const raw = readSuperblockBytes(image(name));
      for (const offset of [0x00, 0x78, 0x200, 0x3fb, 0x3fc]) {
        const bad = raw.slice();
        bad[offset] = (bad[offset] ?? 0) ^ 0x04;
        assert.ok(!verifySuperblockChecksum(bad), `${name} @${offset}`);
        expectEuclean(() => decodeSuperblock(bad), /checksum/);
        // Without checking the checksum, a harmless field still decodes.
        if (offset === 0x78 || offset === 0x200) decodeSuperblock(bad, { verifyChecksum: false });
      }
    }
  });

  it('a bad magic is EUCLEAN even without checksums', () => {
    const raw = readSuperblockBytes(image('ext2'));
    const bad = patched(raw, (v) => v.setUint16(SB.magic, 0xef54, true));
    expectEuclean(() => decodeSuperblock(bad), /magic/);
    expectEuclean(() => decodeSuperblock(raw.subarray(0, 1000)), /1000 bytes/);
  });

  const cases: readonly [string, string, (v: DataView) => void, RegExp, string?][] = [
    ['ext4', 'block size 2^17', (v) => v.setUint32(SB.logBlockSize, 7, true), /block size/],
    ['ext4', 'huge log block size', (v) => v.setUint32(SB.logBlockSize, 0xffffffff, true), /block size/],
    ['ext4', 'cluster size without bigalloc', (v) => v.setUint32(SB.logClusterSize, 3, true), /cluster size/],
    ['bigalloc', 'cluster smaller than block', (v) => v.setUint32(SB.logClusterSize, 1, true), /cluster size/],
    ['bigalloc', 'blocks per group not clusters x ratio', (v) => v.setUint32(SB.blocksPerGroup, v.getUint32(SB.blocksPerGroup, true) - 4, true), /blocks per group/],
    ['ext4', 'zero blocks per group', (v) => { v.setUint32(SB.blocksPerGroup, 0, true); v.setUint32(SB.clustersPerGroup, 0, true); }, /clusters per group/],
    ['ext4', 'blocks per group above 8 x block size', (v) => { v.setUint32(SB.blocksPerGroup, 32769, true); v.setUint32(SB.clustersPerGroup, 32769, true); }, /clusters per group/],
    ['ext4', 'zero inodes per group', (v) => v.setUint32(SB.inodesPerGroup, 0, true), /inodes per group/],
    ['ext4', 'inodes per group above 8 x block size', (v) => v.setUint32(SB.inodesPerGroup, 32769, true), /inodes per group/],
    ['ext4', 'inode count not groups x per group', (v) => v.setUint32(SB.inodesCount, v.getUint32(SB.inodesCount, true) + 1, true), /inode count/],
    ['ext4', 'inode size 100', (v) => v.setUint16(SB.inodeSize, 100, true), /inode size/],
    ['ext4', 'inode size 384', (v) => v.setUint16(SB.inodeSize, 384, true), /inode size/],
    ['ext4', 'inode size above block size', (v) => v.setUint16(SB.inodeSize, 8192, true), /inode size/],
    ['ext4', 'first inode 5', (v) => v.setUint32(SB.firstIno, 5, true), /first non-reserved inode/],
    ['ext4', 'descriptor size 48', (v) => v.setUint16(SB.descSize, 48, true), /descriptor size/],
    ['ext4', 'descriptor size 32 with 64bit', (v) => v.setUint16(SB.descSize, 32, true), /descriptor size/],
    ['ext4', 'descriptor size 2048', (v) => v.setUint16(SB.descSize, 2048, true), /descriptor size/],
    ['ext4', 'first data block 1 with 4 KiB blocks', (v) => v.setUint32(SB.firstDataBlock, 1, true), /first data block/],
    ['ext4-1k', 'first data block 0 with 1 KiB blocks', (v) => v.setUint32(SB.firstDataBlock, 0, true), /first data block/],
    ['ext4', 'no blocks', (v) => v.setUint32(SB.blocksCountLo, 0, true), /block count/],
    ['ext4', 'checksum type 2', (v) => v.setUint8(SB.checksumType, 2), /checksum type/],
    ['ext4', 'log groups per flex 40', (v) => v.setUint8(SB.logGroupsPerFlex, 40), /flex/],
    ['ext4', 'reserved GDT blocks above blocksize / 4', (v) => v.setUint16(SB.reservedGdtBlocks, 1025, true), /reserved GDT/],
    ['meta-bg', 'first meta bg past the table', (v) => v.setUint32(SB.firstMetaBg, 100, true), /first meta block group/],
    ['ext4', 'want extra isize above inode size - 128', (v) => v.setUint16(SB.wantExtraIsize, 200, true), /extra isize/],
    ['ext4', 'min extra isize above inode size - 128', (v) => v.setUint16(SB.minExtraIsize, 130, true), /extra isize/],
    ['ext4', 'kbytes written above 2^53', (v) => v.setUint32(SB.kbytesWritten + 4, 0xffffffff, true), /2\^53/],
    ['ext4', 'block count above 2^53', (v) => v.setUint32(SB.blocksCountHi, 0x00400000, true), /2\^53/],
  ];
  for (const [name, what, edit, pattern] of cases) {
    it(`${name}: ${what} is EUCLEAN`, () => {
      const raw = readSuperblockBytes(image(name));
      expectEuclean(() => decodeSuperblock(patched(raw, edit)), pattern);
    });
  }

  it('revision 2 is EOPNOTSUPP; a byte size past 2^53 is EFBIG', () => {
    const raw = readSuperblockBytes(image('ext4'));
    expectCode(() => decodeSuperblock(patched(raw, (v) => v.setUint32(SB.revLevel, 2, true))), 'EOPNOTSUPP', /revision/);
    expectCode(() => decodeSuperblock(patched(raw, (v) => v.setUint32(SB.blocksCountHi, 0x10000, true))), 'EFBIG');
  });

  it('the _hi halves are ignored without 64bit', () => {
    const raw = readSuperblockBytes(image('no-csum'));
    const sb0 = decodeSuperblock(raw);
    const withHi = patched(raw, (v) => {
      v.setUint32(SB.blocksCountHi, 7, true);
      v.setUint32(SB.freeBlocksCountHi, 7, true);
      v.setUint16(SB.descSize, 999, true);
    });
    const sb = decodeSuperblock(withHi);
    assert.equal(sb.blocksCount, sb0.blocksCount);
    assert.equal(sb.descSize, 32);
    assert.deepEqual(encodeSuperblock(sb), withHi, 'ignored bytes are written back unchanged');
  });

  it('fast-check: decodeSuperblock on mutated superblocks returns or throws FsError, and what decodes round-trips', () => {
    const bases = ['ext4', 'ext4-1k', 'bigalloc-1k', 'meta-bg', 'ext2-rev0', 'sparse-super2', 'big-64bit'].map((n) => readSuperblockBytes(image(n)));
    const edit = fc.oneof(
      fc.record({ kind: fc.constant('byte' as const), offset: fc.integer({ min: 0, max: 1023 }), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('u32' as const), offset: fc.integer({ min: 0, max: 255 }).map((i) => i * 4), value: fc.oneof(fc.constantFrom(0, 1, 2, 0xffffffff, 0x80000000, 0x7fffffff, 65536, 32768), fc.nat()) }),
      fc.record({ kind: fc.constant('u16' as const), offset: fc.integer({ min: 0, max: 511 }).map((i) => i * 2), value: fc.integer({ min: 0, max: 0xffff }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: bases.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 8 }), fc.boolean(), (which, edits, fixChecksum) => {
        const base = bases[which];
        assert.ok(base !== undefined);
        const bytes = base.slice();
        const v = new DataView(bytes.buffer);
        for (const e of edits) {
          if (e.kind === 'byte') v.setUint8(e.offset, e.value);
          else if (e.kind === 'u16') v.setUint16(e.offset, e.value, true);
          else v.setUint32(e.offset, e.value >>> 0, true);
        }
        if (fixChecksum) v.setUint32(SB.checksum, superblockChecksum(bytes), true);
        for (const verifyChecksum of [true, false]) {
          let sb: Superblock;
          try {
            sb = decodeSuperblock(bytes, { verifyChecksum });
          } catch (e) {
            if (!(e instanceof FsError)) throw e;
            continue;
          }
          assert.deepEqual(encodeSuperblock(sb, new Uint8Array(SUPERBLOCK_SIZE), { updateChecksum: false }), bytes);
          // Layout functions on whatever decoded stay within FsError too.
          try {
            assessFeatures(sb);
            if (sb.groupCount > 0) {
              for (const g of [0, 1, sb.groupCount - 1]) {
                if (g < sb.groupCount) {
                  groupLayout(sb, g);
                  descriptorBlockFor(sb, g);
                }
              }
              inodeLocation(sb, sb.inodesCount);
            }
          } catch (e) {
            if (!(e instanceof FsError)) throw e;
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('group descriptors: corruption', () => {
  for (const name of ['ext4', 'ext4-1k', 'uninit-bg', 'uninit-bg-64', 'meta-bg', 'desc-128', 'big-64bit']) {
    it(`${name}: a flipped byte in any descriptor fails its checksum`, () => {
      const path = image(name);
      const sb = decodeSuperblock(readSuperblockBytes(path));
      assert.ok(sb.hasGroupDescCsum);
      for (const g of new Set([0, 1, Math.floor(sb.groupCount / 2), sb.groupCount - 1])) {
        if (g >= sb.groupCount) continue;
        const loc = descriptorBlockFor(sb, g);
        const block = readAt(path, loc.block * sb.blockSize, sb.blockSize);
        for (const field of [GD.freeBlocksCountLo, GD.flags, GD.checksum, GD.itableUnusedLo, sb.descSize - 1]) {
          const bad = block.slice();
          const at = loc.offset + field;
          bad[at] = (bad[at] ?? 0) ^ 0x01;
          assert.ok(!verifyGroupDescChecksum(sb, g, bad, loc.offset), `${name} group ${g} field ${field}`);
          expectEuclean(() => decodeGroupDesc(bad, loc.offset, sb, g, { block: loc.block }), /checksum/);
        }
        // The checksum covers the group number: the same bytes are wrong for another group.
        const other = (g + 1) % sb.groupCount;
        if (other !== g) assert.notEqual(groupDescChecksum(sb, other, block, loc.offset), groupDescChecksum(sb, g, block, loc.offset));
      }
    });
  }

  it('without checksums, impossible locations and counts are EUCLEAN', () => {
    const path = image('no-csum');
    const sb = decodeSuperblock(readSuperblockBytes(path));
    assert.equal(sb.hasGroupDescCsum, false);
    const loc = descriptorBlockFor(sb, 1);
    const block = readAt(path, loc.block * sb.blockSize, sb.blockSize);
    const edit = (f: (v: DataView) => void): Uint8Array => {
      const out = block.slice();
      f(new DataView(out.buffer, loc.offset, sb.descSize));
      return out;
    };
    const decode = (bytes: Uint8Array): GroupDesc => decodeGroupDesc(bytes, loc.offset, sb, 1);
    decode(block);
    expectEuclean(() => decode(edit((v) => v.setUint32(GD.blockBitmapLo, sb.blocksCount, true))), /block bitmap/);
    expectEuclean(() => decode(edit((v) => v.setUint32(GD.inodeBitmapLo, 0, true))), /inode bitmap/);
    expectEuclean(() => decode(edit((v) => v.setUint32(GD.inodeTableLo, sb.blocksCount - 2, true))), /inode table/);
    expectEuclean(() => decode(edit((v) => v.setUint32(GD.blockBitmapLo, 2, true))), /descriptor table/);
    expectEuclean(() => decode(edit((v) => v.setUint16(GD.freeInodesCountLo, sb.inodesPerGroup + 1, true))), /free inodes/);
    expectEuclean(() => decode(edit((v) => v.setUint16(GD.freeBlocksCountLo, sb.clustersPerGroup + 1, true))), /free clusters/);
    expectEuclean(() => decode(edit((v) => v.setUint16(GD.itableUnusedLo, sb.inodesPerGroup + 1, true))), /unused/);
    expectEuclean(() => decodeGroupDesc(block, loc.offset, sb, sb.groupCount), /group number/);
    // flex_bg lets group 1's bitmap live in group 0 (no-csum has flex_bg); ext2 does not.
    assert.ok(sb.hasFlexBg);
    decode(edit((v) => v.setUint32(GD.blockBitmapLo, 1000, true)));
    const ext2 = image('ext2');
    const e2 = decodeSuperblock(readSuperblockBytes(ext2));
    assert.ok(!e2.hasFlexBg && e2.groupCount > 1);
    const l2 = descriptorBlockFor(e2, 1);
    const b2 = readAt(ext2, l2.block * e2.blockSize, e2.blockSize);
    decodeGroupDesc(b2, l2.offset, e2, 1);
    const moved = b2.slice();
    new DataView(moved.buffer).setUint32(l2.offset + GD.inodeBitmapLo, 1000, true);
    expectEuclean(() => decodeGroupDesc(moved, l2.offset, e2, 1), /its group, without flex_bg/);
  });

  it('fast-check: decodeGroupDesc on mutated descriptors returns or throws FsError, and what decodes round-trips', () => {
    const cases = ['ext4', 'no-csum', 'uninit-bg', 'desc-128', 'big-64bit'].map((name) => {
      const path = image(name);
      const sb = decodeSuperblock(readSuperblockBytes(path));
      const loc = descriptorBlockFor(sb, 0);
      return { sb, loc, block: readAt(path, loc.block * sb.blockSize, sb.blockSize) };
    });
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: cases.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        fc.boolean(),
        (which, edits, verifyChecksum) => {
          const c = cases[which];
          assert.ok(c !== undefined);
          const bytes = c.block.slice();
          const group = Math.floor(c.loc.offset / c.sb.descSize) % c.sb.groupCount;
          for (const [at, value] of edits) bytes[c.loc.offset + (at % c.sb.descSize)] = value;
          let desc: GroupDesc;
          try {
            desc = decodeGroupDesc(bytes, c.loc.offset, c.sb, group, { verifyChecksum });
          } catch (e) {
            if (!(e instanceof FsError)) throw e;
            return;
          }
          const out = new Uint8Array(c.sb.descSize);
          encodeGroupDesc(desc, out, 0, c.sb, { updateChecksum: false });
          assert.deepEqual(out, bytes.subarray(c.loc.offset, c.loc.offset + c.sb.descSize));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('64-byte descriptors: _hi halves count; above 2^53 is EUCLEAN', () => {
    const path = image('big-64bit');
    const sb = decodeSuperblock(readSuperblockBytes(path));
    const loc = descriptorBlockFor(sb, 0);
    const block = readAt(path, loc.block * sb.blockSize, sb.blockSize);
    const bad = block.slice();
    new DataView(bad.buffer).setUint32(loc.offset + GD.inodeTableHi, 0xffffffff, true);
    expectEuclean(() => decodeGroupDesc(bad, loc.offset, sb, 0, { verifyChecksum: false }), /2\^53/);
    new DataView(bad.buffer).setUint32(loc.offset + GD.inodeTableHi, 1, true);
    expectEuclean(() => decodeGroupDesc(bad, loc.offset, sb, 0, { verifyChecksum: false }), /inode table/);
  });

  it('encode rejects values that do not fit a 32-byte descriptor', () => {
    const path = image('no-csum');
    const sb = decodeSuperblock(readSuperblockBytes(path));
    const { descs } = readDescriptors(path, sb);
    const d = descs[0];
    assert.ok(d !== undefined);
    const out = new Uint8Array(32);
    expectCode(() => encodeGroupDesc({ ...d, blockBitmap: 2 ** 32 }, out, 0, sb), 'EINVAL');
    expectCode(() => encodeGroupDesc({ ...d, freeInodesCount: 70000 }, out, 0, sb), 'EINVAL');
    // A changed field with a checksum recomputed verifies again.
    const csum = decodeSuperblock(readSuperblockBytes(image('uninit-bg')));
    const cd = readDescriptors(image('uninit-bg'), csum).descs[1];
    assert.ok(cd !== undefined);
    const enc = encodeGroupDesc({ ...cd, freeInodesCount: cd.freeInodesCount - 1 }, new Uint8Array(32), 0, csum);
    assert.ok(verifyGroupDescChecksum(csum, 1, enc));
    assert.equal(decodeGroupDesc(enc, 0, csum, 1).freeInodesCount, cd.freeInodesCount - 1);
  });
});

describe('block and inode bitmap checksums', () => {
  it('only the low 16 bits are kept with 32-byte descriptors', () => {
    const sb = decodeSuperblock(readSuperblockBytes(image('ext4')));
    const narrow = { ...sb, descSize: 32 };
    const bitmap = new Uint8Array(sb.blockSize).fill(0x5a);
    const full = blockBitmapChecksum(sb, bitmap);
    assert.ok(verifyBlockBitmapChecksum(sb, { blockBitmapCsum: full }, bitmap));
    assert.ok(verifyBlockBitmapChecksum(narrow, { blockBitmapCsum: full & 0xffff }, bitmap));
    assert.ok(!verifyBlockBitmapChecksum(sb, { blockBitmapCsum: full & 0xffff }, bitmap) || full <= 0xffff);
    assert.throws(() => blockBitmapChecksum(sb, new Uint8Array(10)), RangeError);
    const plain = decodeSuperblock(readSuperblockBytes(image('ext2')));
    assert.ok(verifyBlockBitmapChecksum(plain, { blockBitmapCsum: 12345 }, bitmap), 'no metadata_csum: nothing to check');
  });
});

/* ------------------------------------------------------------------ features */

describe('feature table', () => {
  it('every entry is consistent: one bit, unique names', () => {
    const seen = new Set<string>();
    for (const f of FEATURES) {
      assert.ok(Number.isInteger(f.bit) && f.bit >= 0 && f.bit < 32, f.name);
      assert.equal(f.mask, 2 ** f.bit);
      for (const n of [f.name, ...f.aliases]) {
        assert.ok(!seen.has(n), `duplicate name ${n}`);
        seen.add(n);
        assert.equal(featureByName(n)?.info, f);
      }
    }
    assert.deepEqual(featureByName('FEATURE_I5'), { word: 'incompat', bit: 5, mask: 32, info: undefined });
    assert.equal(featureByName('FEATURE_R99'), undefined);
    assert.equal(featureByName('no_such_feature'), undefined);
    assert.equal(featureByName('gdt_csum')?.info?.name, 'uninit_bg');
    assert.equal(featureByName('recover')?.info?.name, 'needs_recovery');
  });

  it('names every set bit like dumpe2fs, unknown ones as FEATURE_<word><bit>', () => {
    const words = { featureCompat: 0x80 | 0x4, featureIncompat: 0x20 | 0x2, featureRoCompat: 0x80000000 | 0x1 };
    assert.deepEqual(featureNames(words), ['has_journal', 'FEATURE_C7', 'filetype', 'FEATURE_I5', 'sparse_super', 'FEATURE_R31']);
    assert.ok(hasFeatureNamed(words, 'has_journal'));
    assert.ok(!hasFeatureNamed(words, 'extent'));
  });

  const ctx = (incompat: number, roCompat = 0, compat = 0, encoding = 0, encodingFlags = 0) => ({
    featureCompat: compat,
    featureIncompat: incompat,
    featureRoCompat: roCompat,
    encoding,
    encodingFlags,
  });

  it('real images: what ext4ts can do', () => {
    const check = (name: string): ReturnType<typeof checkFeatures> => checkFeatures(decodeSuperblock(readSuperblockBytes(image(name))), true);
    for (const name of ['ext2', 'ext3', 'ext4', 'ext4-1k', 'meta-bg', 'uninit-bg', 'sparse-super2', 'inline-data', 'big-64bit', 'csum-seed', 'block-64k', 'mmp', 'casefold', 'bigalloc']) {
      const r = check(name);
      assert.ok(r.canRead && r.canWrite, `${name}: ${r.reasons.join('; ')}`);
      assert.deepEqual(r.reasons, []);
    }
    const extras = check('extras');
    assert.ok(extras.canRead && !extras.canWrite);
    assert.ok(extras.reasons.some((r) => r.startsWith('encrypt:')), extras.reasons.join('; '));
    assert.ok(extras.reasons.some((r) => r.startsWith('quota:')));
  });

  it('unknown incompat refuses, unknown ro_compat is read-only, unknown compat is allowed', () => {
    expectCode(() => checkFeatures(ctx(0x2 | 0x20), false), 'EOPNOTSUPP', /^unsupported incompat feature: FEATURE_I5$/);
    expectCode(() => checkFeatures(ctx(0x40000000), true), 'EOPNOTSUPP', /FEATURE_I30/);
    const ro = checkFeatures(ctx(0x2, 0x20000), true);
    assert.deepEqual([ro.canRead, ro.canWrite, ro.unknown], [true, false, ['FEATURE_R17']]);
    assert.equal(checkFeatures(ctx(0x2, 0x20000), false).reasons.length, 0, 'read-only reasons only when writing');
    const compat = checkFeatures(ctx(0x2, 0, 0x4000), true);
    assert.deepEqual([compat.canRead, compat.canWrite, compat.unknown], [true, true, ['FEATURE_C14']]);
    assert.equal(assessFeatures(ctx(0x20)).canRead, false);
  });

  it('refused features: compression, journal_dev, dirdata, unknown casefold encodings', () => {
    expectCode(() => checkFeatures(ctx(INCOMPAT_COMPRESSION), false), 'EOPNOTSUPP', /unsupported incompat feature: compression/);
    expectCode(() => checkFeatures(ctx(0x1000), false), 'EOPNOTSUPP', /dirdata/);
    expectCode(() => checkFeatures(ctx(INCOMPAT_CASEFOLD, 0, 0, 2), false), 'EOPNOTSUPP', /encoding 2/);
    expectCode(() => checkFeatures(ctx(INCOMPAT_CASEFOLD, 0, 0, 1, 0x8), false), 'EOPNOTSUPP', /encoding flags/);
    // A real external journal: the superblock decodes, the features refuse.
    const path = makeImage({ name: 'journal-dev', size: '8M', mkfsArgs: ['-O', 'journal_dev', '-b', '4096'] });
    const sb = decodeSuperblock(readSuperblockBytes(path));
    assert.equal(sb.groupCount, 0);
    expectCode(() => checkFeatures(sb, false), 'EOPNOTSUPP', /journal_dev/);
  });

  it('needs_recovery: readable with a reason, not writable', () => {
    const r = checkFeatures(ctx(0x2 | INCOMPAT_RECOVER), false);
    assert.ok(r.canRead && !r.canWrite);
    assert.ok(r.reasons.some((s) => /journal needs recovery/.test(s)), r.reasons.join('; '));
    const both = checkFeatures(ctx(0x2, 0x400 | 0x10), true);
    assert.ok(both.canWrite);
    assert.ok(both.reasons.some((s) => /metadata_csum and uninit_bg/.test(s)));
    assert.equal(checkFeatures(ctx(0, RO_COMPAT_BIGALLOC), false).canWrite, true, 'bigalloc is written');
    assert.equal(checkFeatures(ctx(0, RO_COMPAT_QUOTA), false).canWrite, false);
  });
});
