/**
 * Inode codec against real images: every field compared with `debugfs stat`, checksums of
 * every used inode, byte-for-byte round trips, writes checked by debugfs and e2fsck, and
 * fast-check properties on hostile bytes. Also the timestamp codec (src/ondisk/time.ts).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, copyFileSync, mkdirSync, openSync, readSync, symlinkSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import fc from 'fast-check';

import { debugfs, dumpe2fsHeader, makeImage, scratchDir } from './helpers/images.js';
import { FsError } from '../src/errors.js';
import { crc32cRaw } from '../src/ondisk/crc.js';
import {
  APPEND_FL,
  blankInode,
  DIRSYNC_FL,
  decodeInode,
  encodeInode,
  encodeInodeBlocks,
  EXTENTS_FL,
  fileType,
  GOOD_OLD_INODE_SIZE,
  HUGE_FILE_FL,
  IMMUTABLE_FL,
  INODE_OFFSETS,
  inodeBlocksBytes,
  inodeChecksum,
  inodeCsumSeed,
  inodeFileAcl,
  isDir,
  isFifo,
  isReg,
  isSymlink,
  isValidFileType,
  NOATIME_FL,
  NODUMP_FL,
  PROJINHERIT_FL,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  S_IFSOCK,
  setInodeChecksum,
  storedInodeChecksum,
  TOPDIR_FL,
  verifyInodeChecksum,
  type Inode,
} from '../src/ondisk/inode.js';
import {
  clampTime,
  decodeTime,
  encodeTime,
  encodeTimeLegacy,
  TIME_MAX_SECONDS_EXTRA,
  TIME_MAX_SECONDS_LEGACY,
  TIME_MIN_SECONDS,
} from '../src/ondisk/time.js';

// debugfs prints dates in local time unless TZ is GMT; make its dates comparable.
process.env.TZ = 'GMT';

/* ------------------------------------------------------------------ helpers */

interface FsInfo {
  readonly blockSize: number;
  readonly inodeSize: number;
  readonly inodesPerGroup: number;
  readonly inodeCount: number;
  readonly totalBlocks: number;
  readonly firstDataBlock: number;
  readonly csumSeed: number;
  readonly metadataCsum: boolean;
  readonly hugeFile: boolean;
  readonly is64bit: boolean;
}

function fsInfo(image: string): FsInfo {
  const h = dumpe2fsHeader(image);
  const num = (key: string): number => {
    const v = h.get(key);
    assert.ok(v !== undefined, `dumpe2fs field ${key}`);
    return Number(v);
  };
  const features = (h.get('Filesystem features') ?? '').split(/\s+/);
  const uuid = Buffer.from((h.get('Filesystem UUID') ?? '').replace(/-/g, ''), 'hex');
  const seedField = h.get('Checksum seed');
  return {
    blockSize: num('Block size'),
    inodeSize: num('Inode size'),
    inodesPerGroup: num('Inodes per group'),
    inodeCount: num('Inode count'),
    totalBlocks: num('Block count'),
    firstDataBlock: num('First block'),
    csumSeed: seedField !== undefined ? Number(seedField) >>> 0 : crc32cRaw(0xffffffff, uuid),
    metadataCsum: features.includes('metadata_csum'),
    hugeFile: features.includes('huge_file'),
    is64bit: features.includes('64bit'),
  };
}

function readBytes(image: string, offset: number, length: number): Uint8Array {
  const fd = openSync(image, 'r');
  try {
    const buf = new Uint8Array(length);
    const n = readSync(fd, buf, 0, length, offset);
    assert.equal(n, length);
    return buf;
  } finally {
    closeSync(fd);
  }
}

function writeBytes(image: string, offset: number, data: Uint8Array): void {
  const fd = openSync(image, 'r+');
  try {
    writeSync(fd, data, 0, data.length, offset);
  } finally {
    closeSync(fd);
  }
}

/** Byte offset of an inode record, from `debugfs imap`. */
function inodeOffset(image: string, ino: number, info: FsInfo): number {
  const out = debugfs(image, `imap <${ino}>`);
  const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(out);
  assert.ok(m?.[1] !== undefined && m[2] !== undefined, `imap output for ${ino}: ${out}`);
  return Number(m[1]) * info.blockSize + parseInt(m[2], 16);
}

function inodeNumber(image: string, path: string): number {
  const out = debugfs(image, `stat ${path}`);
  const m = /^Inode: (\d+)/m.exec(out);
  assert.ok(m?.[1] !== undefined, `stat ${path}: ${out}`);
  return Number(m[1]);
}

interface StatTime {
  readonly lo: number;
  readonly extra: number | undefined;
  readonly date: string;
}

interface DebugfsStat {
  readonly type: string;
  readonly mode: number;
  readonly flags: number;
  readonly generation: number;
  readonly versionLo: number;
  readonly versionHi: number | undefined;
  readonly uid: number;
  readonly gid: number;
  readonly project: number | undefined;
  readonly size: number;
  readonly fileAcl: number;
  readonly links: number;
  readonly blockcount: number;
  readonly times: ReadonlyMap<string, StatTime>;
  readonly extraIsize: number | undefined;
  readonly checksum: number | undefined;
}

function parseStat(out: string): DebugfsStat {
  const need = (re: RegExp): RegExpExecArray => {
    const m = re.exec(out);
    assert.ok(m !== null, `${re} in:\n${out}`);
    return m;
  };
  const head = need(/^Inode: \d+\s+Type: (.+?)\s+Mode:\s+(\d+)\s+Flags: 0x([0-9a-f]+)/m);
  const gen = need(/Generation: (\d+)\s+Version: 0x([0-9a-f]+)(?::([0-9a-f]+))?/);
  const owner = need(/User:\s+(\d+)\s+Group:\s+(\d+)(?:\s+Project:\s+(\d+))?\s+Size: (\d+)/);
  const acl = need(/File ACL: (\d+)/);
  const links = need(/Links: (\d+)\s+Blockcount: (\d+)/);
  const times = new Map<string, StatTime>();
  for (const m of out.matchAll(/^\s*(ctime|atime|mtime|crtime|dtime): 0x([0-9a-f]+)(?::\(?([0-9a-f]+)\)?)? -- (.*)$/gm)) {
    times.set(m[1] ?? '', { lo: parseInt(m[2] ?? '', 16), extra: m[3] !== undefined ? parseInt(m[3], 16) : undefined, date: (m[4] ?? '').trim() });
  }
  const extra = /Size of extra inode fields: (\d+)/.exec(out);
  const csum = /Inode checksum: 0x([0-9a-f]+)/.exec(out);
  // With a hi part, debugfs prints "Version: 0x<hi>:<lo>"; otherwise just lo.
  const v1 = parseInt(gen[2] ?? '', 16);
  const v2 = gen[3] !== undefined ? parseInt(gen[3], 16) : undefined;
  return {
    type: head[1] ?? '',
    mode: parseInt(head[2] ?? '', 8),
    flags: parseInt(head[3] ?? '', 16),
    generation: Number(gen[1]),
    versionLo: v2 ?? v1,
    versionHi: v2 !== undefined ? v1 : undefined,
    uid: Number(owner[1]),
    gid: Number(owner[2]),
    project: owner[3] !== undefined ? Number(owner[3]) : undefined,
    size: Number(owner[4]),
    fileAcl: Number(acl[1]),
    links: Number(links[1]),
    blockcount: Number(links[2]),
    times,
    extraIsize: extra?.[1] !== undefined ? Number(extra[1]) : undefined,
    checksum: csum?.[1] !== undefined ? parseInt(csum[1], 16) : undefined,
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Seconds since the epoch of a ctime(3)-style date as debugfs prints it in GMT. */
function parseDebugfsDate(date: string): number {
  const m = /^\w{3} (\w{3})\s+(\d+) (\d+):(\d+):(\d+) (-?\d+)$/.exec(date);
  assert.ok(m !== null, `date ${date}`);
  const ms = Date.UTC(Number(m[6]), MONTHS.indexOf(m[1] ?? ''), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]));
  return ms / 1000;
}

const TYPE_NAMES = new Map<number, string>([
  [S_IFREG, 'regular'],
  [S_IFDIR, 'directory'],
  [S_IFLNK, 'symlink'],
  [S_IFIFO, 'FIFO'],
  [S_IFSOCK, 'socket'],
  [S_IFCHR, 'character special'],
  [S_IFBLK, 'block special'],
]);

function readInode(image: string, ino: number, info: FsInfo): { raw: Uint8Array; inode: Inode; offset: number } {
  const offset = inodeOffset(image, ino, info);
  const raw = readBytes(image, offset, info.inodeSize);
  return { raw, inode: decodeInode(raw, { inodeNo: ino, inodeSize: info.inodeSize }), offset };
}

/** Compare every decoded field with `debugfs stat <ino>`. */
function compareWithDebugfs(image: string, ino: number, info: FsInfo): Inode {
  const { raw, inode } = readInode(image, ino, info);
  const s = parseStat(debugfs(image, `stat <${ino}>`));
  const label = `${image} inode ${ino}`;
  assert.equal(TYPE_NAMES.get(fileType(inode.mode)) ?? 'bad type', s.type, `${label} type`);
  assert.equal(inode.mode & 0o7777, s.mode, `${label} mode`);
  assert.equal(inode.flags, s.flags, `${label} flags`);
  assert.equal(inode.generation, s.generation, `${label} generation`);
  assert.equal(inode.versionLo, s.versionLo, `${label} version lo`);
  assert.equal(inode.versionHi, s.versionHi, `${label} version hi`);
  assert.equal(inode.uid, s.uid, `${label} uid`);
  assert.equal(inode.gid, s.gid, `${label} gid`);
  if (s.project !== undefined) assert.equal(inode.projid, s.project, `${label} projid`);
  assert.equal(inode.size, s.size, `${label} size`);
  assert.equal(inodeFileAcl(inode, info.is64bit), s.fileAcl, `${label} file acl`);
  assert.equal(inode.linksCount, s.links, `${label} links`);
  assert.equal(inodeBlocksBytes(inode, info.blockSize, info.hugeFile), s.blockcount * 512, `${label} blockcount`);
  if (info.inodeSize > GOOD_OLD_INODE_SIZE) assert.equal(inode.extraIsize, s.extraIsize, `${label} extra isize`);
  else assert.equal(s.extraIsize, undefined);
  for (const name of ['atime', 'ctime', 'mtime', 'crtime'] as const) {
    const t = inode[name];
    const st = s.times.get(name);
    if (t === undefined) {
      assert.equal(st, undefined, `${label} ${name} absent`);
      continue;
    }
    assert.ok(st !== undefined, `${label} ${name} printed`);
    const lo = (raw[INODE_OFFSETS[name]] ?? 0) + (raw[INODE_OFFSETS[name] + 1] ?? 0) * 256 + (raw[INODE_OFFSETS[name] + 2] ?? 0) * 65536 + (raw[INODE_OFFSETS[name] + 3] ?? 0) * 16777216;
    assert.equal(lo, st.lo, `${label} ${name} lo`);
    // Decoded seconds against debugfs's own decoding (its date), nanoseconds against the extra field.
    assert.equal(t.seconds, parseDebugfsDate(st.date), `${label} ${name} seconds (${st.date})`);
    assert.equal(t.nanoseconds, st.extra === undefined ? 0 : st.extra >>> 2, `${label} ${name} nanoseconds`);
    assert.deepEqual(decodeTime(st.lo, st.extra), t);
  }
  const dt = s.times.get('dtime');
  assert.equal(inode.dtime, dt?.lo ?? 0, `${label} dtime`);
  if (info.metadataCsum) {
    assert.equal(storedInodeChecksum(raw), s.checksum, `${label} stored checksum`);
    assert.equal(inodeChecksum(raw, { inodeNo: ino, fsCsumSeed: info.csumSeed }), s.checksum, `${label} computed checksum`);
  }
  assert.deepEqual(encodeInode(inode), raw, `${label} round trip`);
  return inode;
}

/** Used inode numbers and the byte offset of each record, from the group summaries of dumpe2fs. */
function usedInodes(image: string, info: FsInfo): Map<number, number> {
  const out = execFileSync('dumpe2fs', [image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 * 1024 * 1024 });
  const used = new Map<number, number>();
  const groups = out.split(/^Group (?=\d+:)/m).slice(1);
  for (const text of groups) {
    const g = Number(/^(\d+):/.exec(text)?.[1]);
    const table = /Inode table at (\d+)-/.exec(text);
    assert.ok(table?.[1] !== undefined);
    const free = new Set<number>();
    const freeLine = /^\s+Free inodes: (.*)$/m.exec(text)?.[1] ?? '';
    for (const part of freeLine.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
      const [a, b] = part.split('-').map(Number);
      for (let i = a ?? 0; i <= (b ?? a ?? 0); i++) free.add(i);
    }
    if (/INODE_UNINIT/.test(text.split('\n')[0] ?? '')) continue;
    for (let i = 0; i < info.inodesPerGroup; i++) {
      const ino = g * info.inodesPerGroup + i + 1;
      if (!free.has(ino)) used.set(ino, Number(table[1]) * info.blockSize + i * info.inodeSize);
    }
  }
  return used;
}

/* ------------------------------------------------------------------ images */

function populate(dir: string, big: boolean): void {
  writeFileSync(join(dir, 'empty'), '');
  writeFileSync(join(dir, 'one'), 'x');
  writeFileSync(join(dir, 'four'), Buffer.alloc(4096, 7));
  if (big) writeFileSync(join(dir, 'mega'), randomBytes(1 << 20));
  const sparse = join(dir, 'sparse');
  writeFileSync(sparse, '');
  truncateSync(sparse, 3 << 20);
  const fd = openSync(sparse, 'r+');
  writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 0);
  writeSync(fd, Buffer.alloc(8192, 2), 0, 8192, 1 << 20);
  writeSync(fd, Buffer.alloc(100, 3), 0, 100, (3 << 20) - 100);
  closeSync(fd);
  if (big) {
    const frag = join(dir, 'frag');
    writeFileSync(frag, '');
    const f = openSync(frag, 'r+');
    for (let i = 0; i < 400; i++) writeSync(f, randomBytes(4096), 0, 4096, i * 2 * 4096);
    closeSync(f);
  }
  mkdirSync(join(dir, 'dir'));
  writeFileSync(join(dir, 'dir', 'inner'), 'inner');
  mkdirSync(join(dir, 'setgid'));
  chmodSync(join(dir, 'setgid'), 0o2755);
  mkdirSync(join(dir, 'sticky'));
  chmodSync(join(dir, 'sticky'), 0o1777);
  writeFileSync(join(dir, 'suid'), '#!/bin/sh\n');
  chmodSync(join(dir, 'suid'), 0o4755);
  writeFileSync(join(dir, 'owned'), 'o');
  chownSync(join(dir, 'owned'), 70000, 80000);
  symlinkSync('one', join(dir, 'shortlink'));
  symlinkSync('t'.repeat(100), join(dir, 'longlink'));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  writeFileSync(join(dir, 'old'), 'old');
  execFileSync('touch', ['-m', '-d', '1960-05-05 12:34:56', join(dir, 'old')]);
  execFileSync('touch', ['-a', '-d', '1901-12-14 00:00:00', join(dir, 'old')]);
  writeFileSync(join(dir, 'times'), 'times');
  writeFileSync(join(dir, 'flags'), 'flags');
}

/** Run debugfs -w with a list of requests (mke2fs -d keeps neither nanoseconds nor epoch bits). */
function debugfsWrite(image: string, requests: readonly string[]): void {
  execFileSync('debugfs', ['-w', '-f', '-', image], { input: requests.join('\n') + '\n', stdio: ['pipe', 'ignore', 'ignore'] });
}

const TIME_EDITS = [
  'sif /times atime 0xf4865700', // with epoch 3: 2372
  'sif /times atime_extra 0x00000003',
  'sif /times mtime 0x80000000', // with epoch 1: 2^31 = 2038-01-19T03:14:08Z, .123456789
  `sif /times mtime_extra 0x${((123456789 * 4 + 1) >>> 0).toString(16)}`,
  'sif /times ctime 0xedd4d400', // 1960-05-05, .999999999, epoch 0
  `sif /times ctime_extra 0x${((999999999 * 4) >>> 0).toString(16)}`,
  'sif /times crtime 0x00000001', // epoch 2
  'sif /times crtime_extra 0x00000002',
  'sif /times generation 0xdeadbeef',
  'sif /times version 0x1234567800abcdef',
  'sif /times projid 4242',
  `sif /flags flags 0x${(EXTENTS_FL | NOATIME_FL | NODUMP_FL | APPEND_FL | IMMUTABLE_FL).toString(16)}`,
  'sif /flags dtime 0x12345678',
  'sif /flags generation 7',
  `sif /dir flags 0x${(EXTENTS_FL | DIRSYNC_FL | TOPDIR_FL | PROJINHERIT_FL).toString(16)}`,
];

const memo = new Map<string, string>();
function image(name: string, size: string, mkfsArgs: readonly string[], big: boolean, edits: readonly string[]): string {
  const cached = memo.get(name);
  if (cached !== undefined) return cached;
  const path = makeImage({ name, size, mkfsArgs, populate: (dir) => populate(dir, big) });
  if (edits.length > 0) debugfsWrite(path, edits);
  memo.set(name, path);
  return path;
}

const IMAGES = {
  ext4: () => image('ext4', '64M', ['-t', 'ext4', '-b', '4096'], true, TIME_EDITS),
  ext4i128: () => image('ext4-128', '32M', ['-t', 'ext4', '-b', '4096', '-I', '128'], false, TIME_EDITS.filter((r) => !/_extra|crtime|projid|version/.test(r))),
  ext4k1: () => image('ext4-1k', '32M', ['-t', 'ext4', '-b', '1024'], false, []),
  ext2: () => image('ext2', '16M', ['-t', 'ext2', '-b', '1024'], false, []),
  ext3: () => image('ext3', '32M', ['-t', 'ext3', '-b', '4096'], false, []),
} as const;

const PATHS = ['/', '/empty', '/one', '/four', '/sparse', '/dir', '/dir/inner', '/setgid', '/sticky', '/suid', '/owned', '/shortlink', '/longlink', '/fifo', '/old', '/times', '/flags'];

/* ------------------------------------------------------------------ tests */

describe('decodeInode against debugfs stat', () => {
  for (const [name, make] of Object.entries(IMAGES)) {
    test(`${name}: every field of the test files`, () => {
      const img = make();
      const info = fsInfo(img);
      const paths = name === 'ext4' ? [...PATHS, '/mega', '/frag'] : PATHS;
      for (const path of paths) compareWithDebugfs(img, inodeNumber(img, path), info);
      // Reserved inodes too (bad blocks, root, journal, resize).
      for (const ino of [1, 2, 7, 8]) compareWithDebugfs(img, ino, info);
    });
  }

  test('ext4: file types, special bits and owners decode as created', () => {
    const img = IMAGES.ext4();
    const info = fsInfo(img);
    const get = (p: string): Inode => readInode(img, inodeNumber(img, p), info).inode;
    assert.ok(isReg(get('/one').mode));
    assert.ok(isDir(get('/dir').mode));
    assert.ok(isSymlink(get('/shortlink').mode));
    assert.ok(isFifo(get('/fifo').mode));
    assert.equal(get('/suid').mode, S_IFREG | 0o4755);
    assert.equal(get('/setgid').mode, S_IFDIR | 0o2755);
    assert.equal(get('/sticky').mode, S_IFDIR | 0o1777);
    const owned = get('/owned');
    assert.equal(owned.uid, 70000);
    assert.equal(owned.gid, 80000);
    assert.equal(get('/mega').size, 1 << 20);
    assert.equal(get('/sparse').size, 3 << 20);
    assert.equal(get('/one').size, 1);
    assert.equal(get('/empty').size, 0);
    assert.equal(inodeBlocksBytes(get('/empty'), info.blockSize, true), 0);
    // The sparse file is charged for its 4 data blocks only (plus no tree blocks).
    assert.equal(inodeBlocksBytes(get('/sparse'), info.blockSize, true), 4 * 4096);
    // A short symlink keeps its target in i_block; a long one does not.
    const short = get('/shortlink');
    assert.equal(short.size, 3);
    assert.equal(Buffer.from(short.block.subarray(0, 3)).toString(), 'one');
    assert.equal(get('/longlink').size, 100);
    assert.ok((get('/longlink').flags & EXTENTS_FL) !== 0);
  });

  test('ext4: timestamps with nanoseconds, epoch bits, pre-1970 and post-2038', () => {
    const img = IMAGES.ext4();
    const info = fsInfo(img);
    const t = readInode(img, inodeNumber(img, '/times'), info).inode;
    assert.deepEqual(t.atime, { seconds: (0xf4865700 | 0) + 3 * 2 ** 32, nanoseconds: 0 });
    assert.equal(new Date(t.atime.seconds * 1000).getUTCFullYear(), 2372);
    assert.deepEqual(t.mtime, { seconds: 2 ** 31, nanoseconds: 123456789 });
    assert.equal(new Date(t.mtime.seconds * 1000).toISOString(), '2038-01-19T03:14:08.000Z');
    assert.deepEqual(t.ctime, { seconds: Date.UTC(1960, 4, 5) / 1000, nanoseconds: 999999999 });
    assert.deepEqual(t.crtime, { seconds: 1 + 2 * 2 ** 32, nanoseconds: 0 });
    assert.equal(t.generation, 0xdeadbeef);
    assert.equal(t.versionLo, 0x00abcdef);
    assert.equal(t.versionHi, 0x12345678);
    assert.equal(t.projid, 4242);
    const old = readInode(img, inodeNumber(img, '/old'), info).inode;
    assert.equal(old.mtime.seconds, Date.UTC(1960, 4, 5, 12, 34, 56) / 1000);
    assert.equal(old.atime.seconds, Date.UTC(1901, 11, 14) / 1000);
    const flags = readInode(img, inodeNumber(img, '/flags'), info).inode;
    assert.equal(flags.flags, EXTENTS_FL | NOATIME_FL | NODUMP_FL | APPEND_FL | IMMUTABLE_FL);
    assert.equal(flags.dtime, 0x12345678);
  });

  test('128-byte inodes: no extra fields, 16-bit checksum, signed 32-bit times', () => {
    const img = IMAGES.ext4i128();
    const info = fsInfo(img);
    assert.equal(info.inodeSize, 128);
    const { inode, raw } = readInode(img, inodeNumber(img, '/old'), info);
    assert.equal(inode.extraIsize, 0);
    assert.equal(inode.crtime, undefined);
    assert.equal(inode.checksumHi, undefined);
    assert.equal(inode.versionHi, undefined);
    assert.equal(inode.projid, undefined);
    assert.equal(inode.mtime.seconds, Date.UTC(1960, 4, 5, 12, 34, 56) / 1000);
    assert.equal(inode.mtime.nanoseconds, 0);
    const csum = inodeChecksum(raw, { inodeNo: inodeNumber(img, '/old'), fsCsumSeed: info.csumSeed });
    assert.ok(csum <= 0xffff);
    // Bytes 128.. of a raw 128-byte record do not exist: the extra_isize bytes of the
    // next record must not be read.
    const owned = readInode(img, inodeNumber(img, '/owned'), info).inode;
    assert.equal(owned.uid, 70000);
  });
});

describe('inode checksums', () => {
  for (const name of ['ext4', 'ext4i128', 'ext4k1'] as const) {
    test(`${name}: every used inode verifies, and round-trips`, () => {
      const img = IMAGES[name]();
      const info = fsInfo(img);
      assert.ok(info.metadataCsum);
      const used = usedInodes(img, info);
      assert.ok(used.size >= 20, `found ${used.size} used inodes`);
      let nonZero = 0;
      for (const [ino, offset] of used) {
        const raw = readBytes(img, offset, info.inodeSize);
        if (raw.some((b) => b !== 0)) nonZero++;
        assert.ok(verifyInodeChecksum(raw, { inodeNo: ino, fsCsumSeed: info.csumSeed }), `inode ${ino} checksum`);
        const inode = decodeInode(raw, { inodeNo: ino, inodeSize: info.inodeSize });
        assert.deepEqual(encodeInode(inode), raw, `inode ${ino} round trip`);
        // Recomputing the checksum of an intact record changes nothing.
        const copy = raw.slice();
        if (raw.some((b) => b !== 0)) {
          setInodeChecksum(copy, { inodeNo: ino, fsCsumSeed: info.csumSeed });
          assert.deepEqual(copy, raw, `inode ${ino} setInodeChecksum`);
        }
      }
      assert.ok(nonZero >= 18, `${nonZero} non-zero inode records`);
    });
  }

  test('any flipped byte, a wrong inode number or a wrong seed fails verification', () => {
    for (const name of ['ext4', 'ext4i128'] as const) {
      const img = IMAGES[name]();
      const info = fsInfo(img);
      const ino = inodeNumber(img, '/times');
      const { raw } = readInode(img, ino, info);
      const opts = { inodeNo: ino, fsCsumSeed: info.csumSeed };
      assert.ok(verifyInodeChecksum(raw, opts));
      for (let i = 0; i < raw.length; i++) {
        const bad = raw.slice();
        bad[i] = (bad[i] ?? 0) ^ 0x01;
        assert.equal(verifyInodeChecksum(bad, opts), false, `${name}: flip at byte ${i}`);
      }
      assert.equal(verifyInodeChecksum(raw, { inodeNo: ino + 1, fsCsumSeed: info.csumSeed }), false);
      assert.equal(verifyInodeChecksum(raw, { inodeNo: ino, fsCsumSeed: info.csumSeed ^ 1 }), false);
    }
  });

  test('the generation is part of the seed; all-zero records verify (as e2fsprogs)', () => {
    assert.notEqual(inodeCsumSeed(1, 12, 0), inodeCsumSeed(1, 12, 1));
    assert.notEqual(inodeCsumSeed(1, 12, 0), inodeCsumSeed(1, 13, 0));
    assert.ok(verifyInodeChecksum(new Uint8Array(256), { inodeNo: 5, fsCsumSeed: 0x1234 }));
    assert.ok(verifyInodeChecksum(new Uint8Array(128), { inodeNo: 5, fsCsumSeed: 0x1234 }));
  });

  test('i_checksum_hi exists only when i_extra_isize >= 4', () => {
    const img = IMAGES.ext4();
    const info = fsInfo(img);
    const ino = inodeNumber(img, '/one');
    const { raw } = readInode(img, ino, info);
    const opts = { inodeNo: ino, fsCsumSeed: info.csumSeed };
    // Shrink extra_isize to 0: the record now has a 16-bit checksum, and bytes 0x82..0x83 are checksummed data.
    const small = raw.slice();
    small[INODE_OFFSETS.extraIsize] = 0;
    setInodeChecksum(small, opts);
    assert.ok(inodeChecksum(small, opts) <= 0xffff);
    assert.ok(verifyInodeChecksum(small, opts));
    const decoded = decodeInode(small, { inodeNo: ino, inodeSize: info.inodeSize });
    assert.equal(decoded.checksumHi, undefined);
    assert.equal(decoded.crtime, undefined);
    const touched = small.slice();
    touched[INODE_OFFSETS.checksumHi] = (touched[INODE_OFFSETS.checksumHi] ?? 0) ^ 0xff;
    assert.equal(verifyInodeChecksum(touched, opts), false);
  });
});

describe('encodeInode', () => {
  test('edits written into an image are read back by debugfs and pass e2fsck', () => {
    for (const [name, size, args] of [
      ['write-ext4', '32M', ['-t', 'ext4', '-b', '4096']],
      ['write-128', '32M', ['-t', 'ext4', '-b', '4096', '-I', '128']],
    ] as const) {
      const img = makeImage({ name, size, mkfsArgs: args, populate: (dir) => populate(dir, false) });
      const copy = join(scratchDir(), `${name}-edited.img`);
      copyFileSync(img, copy);
      const info = fsInfo(copy);
      const ino = inodeNumber(copy, '/owned');
      const { inode, offset } = readInode(copy, ino, info);
      const large = info.inodeSize > GOOD_OLD_INODE_SIZE;
      const edited: Inode = {
        ...inode,
        mode: S_IFREG | 0o6640,
        uid: 123456,
        gid: 654321,
        flags: inode.flags | NOATIME_FL,
        generation: 0x01020304,
        mtime: large ? { seconds: 5_000_000_000, nanoseconds: 42 } : { seconds: -1_000_000, nanoseconds: 0 },
        atime: { seconds: 1_700_000_000, nanoseconds: large ? 999_999_999 : 0 },
        crtime: large ? { seconds: -5, nanoseconds: 7 } : undefined,
      };
      const bytes = encodeInode(edited);
      setInodeChecksum(bytes, { inodeNo: ino, fsCsumSeed: info.csumSeed });
      writeBytes(copy, offset, bytes);
      const back = compareWithDebugfs(copy, ino, info);
      assert.equal(back.uid, 123456);
      assert.equal(back.gid, 654321);
      assert.equal(back.mode, S_IFREG | 0o6640);
      assert.deepEqual(back.mtime, edited.mtime);
      assert.deepEqual(back.atime, edited.atime);
      assert.deepEqual(back.crtime, edited.crtime);
      const fsck = spawnSync('e2fsck', ['-fn', copy], { encoding: 'utf8' });
      assert.equal(fsck.status, 0, `${name}: e2fsck -fn\n${fsck.stdout}${fsck.stderr}`);
    }
  });

  test('fields the record cannot hold are refused; nanoseconds without extra are dropped', () => {
    const small = blankInode(128);
    assert.equal(small.extraIsize, 0);
    assert.throws(() => encodeInode({ ...small, crtime: { seconds: 1, nanoseconds: 0 } }), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
    assert.throws(() => encodeInode({ ...small, projid: 1 }), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
    assert.throws(() => encodeInode({ ...small, mtime: { seconds: 2 ** 31, nanoseconds: 0 } }), (e: unknown) => e instanceof FsError && e.code === 'EOVERFLOW');
    const withNs = decodeInode(encodeInode({ ...small, mtime: { seconds: 5, nanoseconds: 9 } }), { inodeNo: 1, inodeSize: 128 });
    assert.deepEqual(withNs.mtime, { seconds: 5, nanoseconds: 0 });
    const large = blankInode(256);
    assert.equal(large.extraIsize, 32);
    assert.ok(large.crtime !== undefined && large.projid !== undefined);
    const big = decodeInode(encodeInode({ ...large, size: 2 ** 40 + 5, uid: 0xffffffff, gid: 0x10000, mtime: { seconds: TIME_MAX_SECONDS_EXTRA, nanoseconds: 1 } }), { inodeNo: 1, inodeSize: 256 });
    assert.equal(big.size, 2 ** 40 + 5);
    assert.equal(big.uid, 0xffffffff);
    assert.equal(big.gid, 0x10000);
    assert.deepEqual(big.mtime, { seconds: TIME_MAX_SECONDS_EXTRA, nanoseconds: 1 });
    assert.throws(() => encodeInode({ ...large, size: -1 }), FsError);
    assert.throws(() => encodeInode({ ...large, uid: 2 ** 32 }), FsError);
    assert.throws(() => encodeInode({ ...large, block: new Uint8Array(12) }), FsError);
    // extra_isize 4: only i_checksum_hi fits; times are 32-bit.
    const four = blankInode(256, 4);
    assert.equal(four.checksumHi, 0);
    assert.equal(four.crtime, undefined);
    assert.throws(() => encodeInode({ ...four, ctime: { seconds: 2 ** 32, nanoseconds: 0 } }), FsError);
  });

  test('bad i_extra_isize and impossible sizes are EUCLEAN', () => {
    const raw = encodeInode(blankInode(256));
    for (const bad of [130, 2, 33, 0xffff]) {
      const b = raw.slice();
      b[INODE_OFFSETS.extraIsize] = bad & 0xff;
      b[INODE_OFFSETS.extraIsize + 1] = bad >>> 8;
      assert.throws(() => decodeInode(b, { inodeNo: 9, inodeSize: 256 }), (e: unknown) => e instanceof FsError && e.code === 'EUCLEAN' && e.context.inode === 9 && /extra_isize/.test(e.message));
    }
    // 128 is the largest valid extra_isize of a 256-byte record.
    const b = raw.slice();
    b[INODE_OFFSETS.extraIsize] = 128;
    assert.equal(decodeInode(b, { inodeNo: 9, inodeSize: 256 }).extraIsize, 128);
    const huge = raw.slice();
    huge[INODE_OFFSETS.sizeHi + 2] = 0x20; // i_size_high = 0x200000: size 2^53
    assert.throws(() => decodeInode(huge, { inodeNo: 9, inodeSize: 256 }), (e: unknown) => e instanceof FsError && e.code === 'EUCLEAN');
    assert.throws(() => decodeInode(raw, { inodeNo: 9, inodeSize: 512 }), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
    // An offset into a larger buffer.
    const table = new Uint8Array(512);
    table.set(raw, 256);
    assert.equal(decodeInode(table, { inodeNo: 2, inodeSize: 256, offset: 256 }).extraIsize, 32);
  });
});

describe('i_blocks units and file ACL', () => {
  test('huge_file rules', () => {
    const base = { blocksLo: 8, blocksHi: 1, flags: 0 };
    assert.equal(inodeBlocksBytes(base, 4096, false), 8 * 512);
    assert.equal(inodeBlocksBytes(base, 4096, true), (8 + 2 ** 32) * 512);
    assert.equal(inodeBlocksBytes({ ...base, flags: HUGE_FILE_FL }, 4096, true), (8 + 2 ** 32) * 4096);
    assert.equal(inodeBlocksBytes({ ...base, flags: HUGE_FILE_FL }, 4096, false), 8 * 512);
    assert.throws(() => inodeBlocksBytes({ blocksLo: 0xffffffff, blocksHi: 0xffff, flags: HUGE_FILE_FL }, 65536, true), FsError);
    assert.deepEqual(encodeInodeBlocks(4096, 4096, false), { blocksLo: 8, blocksHi: 0, hugeFileFlag: false });
    assert.deepEqual(encodeInodeBlocks(2 ** 41, 4096, true), { blocksLo: 0, blocksHi: 1, hugeFileFlag: false });
    assert.throws(() => encodeInodeBlocks(2 ** 41, 4096, false), (e: unknown) => e instanceof FsError && e.code === 'EFBIG');
    assert.throws(() => encodeInodeBlocks(100, 4096, true), FsError);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 43 }), fc.boolean(), (sectors, huge) => {
        const bytes = sectors * 512;
        if (!huge && sectors > 0xffffffff) return;
        const enc = encodeInodeBlocks(bytes, 4096, huge);
        assert.equal(inodeBlocksBytes({ blocksLo: enc.blocksLo, blocksHi: enc.blocksHi, flags: enc.hugeFileFlag ? HUGE_FILE_FL : 0 }, 4096, huge), bytes);
      }),
    );
    assert.equal(inodeFileAcl({ fileAclLo: 5, fileAclHi: 2 }, true), 5 + 2 * 2 ** 32);
    assert.equal(inodeFileAcl({ fileAclLo: 5, fileAclHi: 2 }, false), 5);
  });

  test('file type helpers', () => {
    for (const t of [S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK]) assert.ok(isValidFileType(t | 0o644));
    assert.equal(isValidFileType(0o644), false);
    assert.equal(isValidFileType(0o030000), false);
    assert.equal(fileType(S_IFDIR | 0o1777), S_IFDIR);
  });
});

describe('timestamps (time.ts)', () => {
  test('the kernel encoding table', () => {
    const cases: [number, number, number][] = [
      // seconds, lo, epoch bits
      [-0x80000000, 0x80000000, 0],
      [-1, 0xffffffff, 0],
      [0, 0, 0],
      [0x7fffffff, 0x7fffffff, 0],
      [0x80000000, 0x80000000, 1],
      [0xffffffff, 0xffffffff, 1],
      [0x100000000, 0, 1],
      [0x17fffffff, 0x7fffffff, 1],
      [0x180000000, 0x80000000, 2],
      [0x280000000, 0x80000000, 3],
      [0x37fffffff, 0x7fffffff, 3],
    ];
    for (const [seconds, lo, epoch] of cases) {
      const enc = encodeTime({ seconds, nanoseconds: 5 });
      assert.deepEqual(enc, { lo, extra: 5 * 4 + epoch }, `encode ${seconds}`);
      assert.deepEqual(decodeTime(lo, 5 * 4 + epoch), { seconds, nanoseconds: 5 }, `decode ${seconds}`);
    }
    assert.equal(TIME_MAX_SECONDS_EXTRA, 0x37fffffff);
    assert.equal(new Date(TIME_MAX_SECONDS_EXTRA * 1000).toISOString(), '2446-05-10T22:38:55.000Z');
    assert.equal(new Date(TIME_MIN_SECONDS * 1000).toISOString(), '1901-12-13T20:45:52.000Z');
    assert.deepEqual(decodeTime(0xffffffff), { seconds: -1, nanoseconds: 0 });
    assert.deepEqual(decodeTime(0, 0xffffffff), { seconds: 3 * 2 ** 32, nanoseconds: 2 ** 30 - 1 });
  });

  test('range errors and clamping', () => {
    assert.throws(() => encodeTime({ seconds: TIME_MAX_SECONDS_EXTRA + 1, nanoseconds: 0 }), (e: unknown) => e instanceof FsError && e.code === 'EOVERFLOW');
    assert.throws(() => encodeTime({ seconds: TIME_MIN_SECONDS - 1, nanoseconds: 0 }), (e: unknown) => e instanceof FsError && e.code === 'EOVERFLOW');
    assert.throws(() => encodeTime({ seconds: 0, nanoseconds: -1 }), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
    assert.throws(() => encodeTime({ seconds: 0.5, nanoseconds: 0 }), FsError);
    assert.throws(() => encodeTimeLegacy({ seconds: TIME_MAX_SECONDS_LEGACY + 1, nanoseconds: 0 }), FsError);
    assert.equal(encodeTimeLegacy({ seconds: -1, nanoseconds: 999 }), 0xffffffff);
    assert.deepEqual(clampTime({ seconds: 1e12, nanoseconds: 5 }, false), { seconds: TIME_MAX_SECONDS_LEGACY, nanoseconds: 0 });
    assert.deepEqual(clampTime({ seconds: 1e12, nanoseconds: 5 }, true), { seconds: TIME_MAX_SECONDS_EXTRA, nanoseconds: 5 });
    assert.deepEqual(clampTime({ seconds: -1e12, nanoseconds: 2e9 }, true), { seconds: TIME_MIN_SECONDS, nanoseconds: 999_999_999 });
  });

  test('property: encode/decode round-trip over the whole range', () => {
    fc.assert(
      fc.property(fc.integer({ min: TIME_MIN_SECONDS, max: TIME_MAX_SECONDS_EXTRA }), fc.integer({ min: 0, max: 999_999_999 }), (seconds, nanoseconds) => {
        const { lo, extra } = encodeTime({ seconds, nanoseconds });
        assert.ok(lo >= 0 && lo <= 0xffffffff && extra >= 0 && extra <= 0xffffffff);
        assert.deepEqual(decodeTime(lo, extra), { seconds, nanoseconds });
        if (seconds <= TIME_MAX_SECONDS_LEGACY) assert.deepEqual(decodeTime(encodeTimeLegacy({ seconds, nanoseconds })), { seconds, nanoseconds: 0 });
      }),
      { numRuns: 2000 },
    );
  });
});

describe('hostile inode bytes', () => {
  test('property: mutated real inodes decode or throw FsError; decodable ones round-trip', () => {
    const samples: { raw: Uint8Array; inodeSize: number; ino: number }[] = [];
    for (const make of [IMAGES.ext4, IMAGES.ext4i128]) {
      const img = make();
      const info = fsInfo(img);
      for (const p of ['/times', '/sparse', '/shortlink', '/dir']) {
        const ino = inodeNumber(img, p);
        samples.push({ raw: readInode(img, ino, info).raw, inodeSize: info.inodeSize, ino });
      }
    }
    fc.assert(
      fc.property(
        fc.nat({ max: samples.length - 1 }),
        fc.array(fc.record({ at: fc.nat({ max: 255 }), value: fc.nat({ max: 255 }) }), { minLength: 1, maxLength: 12 }),
        (which, edits) => {
          const sample = samples[which];
          assert.ok(sample !== undefined);
          const bytes = sample.raw.slice();
          for (const { at, value } of edits) bytes[at % bytes.length] = value;
          let inode: Inode;
          try {
            inode = decodeInode(bytes, { inodeNo: sample.ino, inodeSize: sample.inodeSize });
          } catch (e) {
            assert.ok(e instanceof FsError, `not an FsError: ${String(e)}`);
            assert.equal(e.code, 'EUCLEAN');
            return;
          }
          assert.deepEqual(encodeInode(inode), bytes);
          verifyInodeChecksum(bytes, { inodeNo: sample.ino, fsCsumSeed: 0xabcdef });
          try {
            inodeBlocksBytes(inode, 4096, true);
          } catch (e) {
            assert.ok(e instanceof FsError && e.code === 'EOVERFLOW', `not an FsError: ${String(e)}`);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  test('property: random records of random sizes never crash', () => {
    fc.assert(
      fc.property(fc.constantFrom(128, 256, 512, 1024), fc.uint8Array({ minLength: 1024, maxLength: 1024 }), (inodeSize, data) => {
        const bytes = data.subarray(0, inodeSize);
        try {
          const inode = decodeInode(bytes, { inodeNo: 11, inodeSize });
          assert.deepEqual(encodeInode(inode), bytes);
        } catch (e) {
          assert.ok(e instanceof FsError, `not an FsError: ${String(e)}`);
        }
        verifyInodeChecksum(bytes, { inodeNo: 11, fsCsumSeed: 1 });
      }),
      { numRuns: 1000 },
    );
  });
});
