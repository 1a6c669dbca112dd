/**
 * Extended attributes, POSIX ACLs and inline data against real images.
 *
 * Images are made by `mke2fs -d` over source trees whose xattrs are set with setfattr/setfacl
 * (the attr and acl packages), and by the kernel on a loop mount (ea_inode values, shared
 * blocks, kernel layouts). The oracles are `getfattr -d -m - -e hex` on a read-only kernel
 * loop mount and `debugfs ea_list`. Tests needing the tools or root loop mounts are skipped
 * (with the reason) where they are not available.
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readSync, rmdirSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';

import { FsError } from '../src/errors.js';
import { crc32cRaw } from '../src/ondisk/crc.js';
import {
  XATTR_INDEX,
  XATTR_PREFIXES,
  blockXattrCapacity,
  compareXattrEntries,
  decodeInodeXattrs,
  decodeXattrBlock,
  encodeInodeXattrs,
  encodeXattrBlock,
  hasInodeXattrMagic,
  inodeXattrCapacity,
  joinXattrName,
  splitXattrName,
  verifyXattrBlockChecksum,
  xattrBlockChecksum,
  xattrBlockHash,
  xattrEaInodeEntryHash,
  xattrEaInodeValueHash,
  xattrEntryHash,
  xattrNameString,
  xattrSpaceNeeded,
  type DecodedXattrEntry,
  type InodeXattrLayout,
  type InodeXattrs,
  type XattrBlock,
  type XattrEntry,
} from '../src/ondisk/xattr.js';
import {
  ACL_GROUP,
  ACL_GROUP_OBJ,
  ACL_MASK,
  ACL_OTHER,
  ACL_UNDEFINED_ID,
  ACL_USER,
  ACL_USER_OBJ,
  decodeExt4Acl,
  decodeVfsAcl,
  encodeExt4Acl,
  encodeVfsAcl,
  ext4AclToVfs,
  validateAcl,
  vfsAclToExt4,
  type AclEntry,
} from '../src/ondisk/acl.js';
import {
  INLINE_DATA_IBLOCK_SIZE,
  assembleInlineData,
  inlineDataXattrEntry,
  isInlineDataXattr,
  maxInlineDataSize,
  splitInlineData,
} from '../src/ondisk/inline-data.js';
import { debugfs, dumpe2fsHeader, makeImage, scratchDir } from './helpers/images.js';

// ---------------------------------------------------------------------------------------
// Environment

function haveCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const ATTR_TOOLS = haveCommand('setfattr') && haveCommand('getfattr') && haveCommand('setfacl');
void test('has the attr/acl oracles (getfattr, setfattr, setfacl) installed', () => {
  assert.ok(ATTR_TOOLS, 'setfattr/getfattr/setfacl missing: apt-get install attr acl (see README)');
});

let mountProbe: boolean | undefined;
/** Whether this process can loop-mount ext4 images (root, loop devices, ext4 in the kernel). */
function canMount(): boolean {
  if (mountProbe === undefined) {
    mountProbe = false;
    if (process.getuid?.() === 0 && haveCommand('mount')) {
      try {
        const image = join(scratchDir(), 'mount-probe.img');
        execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', image, '4M'], { stdio: 'ignore' });
        withLoopMount(image, true, () => undefined);
        mountProbe = true;
      } catch {
        mountProbe = false;
      }
    }
  }
  return mountProbe;
}

/** Loop-mount `image` on a fresh mountpoint, run fn, and always unmount. */
function withLoopMount<T>(image: string, readonly: boolean, fn: (dir: string) => T): T {
  const dir = mkdtempSync('/tmp/ext4ts-xattr-mnt-');
  try {
    execFileSync('mount', ['-t', 'ext4', '-o', readonly ? 'ro,loop,noload' : 'loop', image, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      return fn(dir);
    } finally {
      unmount(dir);
    }
  } finally {
    rmdirSync(dir);
  }
}

function unmount(dir: string): void {
  for (let attempt = 0; ; attempt++) {
    try {
      execFileSync('umount', [dir], { stdio: ['ignore', 'ignore', 'pipe'] });
      return;
    } catch (error) {
      if (attempt >= 20) throw error;
      execFileSync('sleep', ['0.1']);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Reading images

interface FsInfo {
  readonly blockSize: number;
  readonly inodeSize: number;
  readonly inodesCount: number;
  readonly firstIno: number;
  readonly metadataCsum: boolean;
  readonly eaInode: boolean;
  readonly csumSeed: number;
}

function readAt(image: string, offset: number, length: number): Uint8Array {
  const fd = openSync(image, 'r');
  try {
    const buf = new Uint8Array(length);
    const n = readSync(fd, buf, 0, length, offset);
    assert.equal(n, length, `short read of ${image} at ${offset}`);
    return buf;
  } finally {
    closeSync(fd);
  }
}

function writeAt(image: string, offset: number, bytes: Uint8Array): void {
  const fd = openSync(image, 'r+');
  try {
    assert.equal(writeSync(fd, bytes, 0, bytes.length, offset), bytes.length);
  } finally {
    closeSync(fd);
  }
}

function u16(b: Uint8Array, off: number): number {
  return (b[off] as number) | ((b[off + 1] as number) << 8);
}

function u32(b: Uint8Array, off: number): number {
  return (u16(b, off) + u16(b, off + 2) * 0x10000) >>> 0;
}

const fsInfoCache = new Map<string, FsInfo>();
function fsInfo(image: string): FsInfo {
  const cached = fsInfoCache.get(image);
  if (cached !== undefined) return cached;
  const sb = readAt(image, 1024, 1024);
  const incompat = u32(sb, 0x60);
  const roCompat = u32(sb, 0x64);
  const csumSeedFeature = (incompat & 0x2000) !== 0;
  const info: FsInfo = {
    blockSize: 1024 << u32(sb, 0x18),
    inodeSize: u16(sb, 0x58),
    inodesCount: u32(sb, 0x00),
    firstIno: u32(sb, 0x54),
    metadataCsum: (roCompat & 0x400) !== 0,
    eaInode: (incompat & 0x400) !== 0,
    csumSeed: csumSeedFeature ? u32(sb, 0x270) : crc32cRaw(0xffffffff, sb, 0x68, 0x78),
  };
  const header = dumpe2fsHeader(image);
  assert.equal(String(info.blockSize), header.get('Block size'));
  assert.equal(String(info.inodeSize), header.get('Inode size'));
  fsInfoCache.set(image, info);
  return info;
}

function inodeNumber(image: string, path: string): number {
  const m = /Inode: (\d+)/.exec(debugfs(image, `stat ${path}`));
  assert.ok(m?.[1] !== undefined, `no inode for ${path}`);
  return Number(m[1]);
}

function readInode(image: string, ino: number): Uint8Array {
  const info = fsInfo(image);
  const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(debugfs(image, `imap <${ino}>`));
  assert.ok(m?.[1] !== undefined && m[2] !== undefined, `imap <${ino}>`);
  return readAt(image, Number(m[1]) * info.blockSize + parseInt(m[2], 16), info.inodeSize);
}

function layoutOf(image: string, inode: Uint8Array): InodeXattrLayout {
  return { inodeSize: fsInfo(image).inodeSize, extraIsize: fsInfo(image).inodeSize > 128 ? u16(inode, 0x80) : 0 };
}

/** i_file_acl: lo 32 bits at 0x68, high 16 bits at 0x76 (osd2.l_i_file_acl_high). */
function fileAcl(inode: Uint8Array): number {
  return u32(inode, 0x68) + u16(inode, 0x76) * 0x1_0000_0000;
}

interface FileXattrs {
  readonly ino: number;
  readonly inode: Uint8Array;
  readonly ibody: InodeXattrs;
  readonly blockNo: number;
  readonly blockBytes: Uint8Array | undefined;
  readonly block: XattrBlock | undefined;
  readonly all: readonly DecodedXattrEntry[];
}

function fileXattrs(image: string, path: string): FileXattrs {
  const info = fsInfo(image);
  const ino = inodeNumber(image, path);
  const inode = readInode(image, ino);
  const opts = { inode: ino, eaInode: info.eaInode, inodesCount: info.inodesCount, firstIno: info.firstIno, verifyHashes: true };
  const ibody = decodeInodeXattrs(inode, layoutOf(image, inode), opts);
  const blockNo = fileAcl(inode);
  const statAcl = /File ACL: (\d+)/.exec(debugfs(image, `stat ${path}`));
  assert.equal(blockNo, Number(statAcl?.[1] ?? 0), `File ACL of ${path}`);
  let blockBytes: Uint8Array | undefined;
  let block: XattrBlock | undefined;
  if (blockNo !== 0) {
    blockBytes = readAt(image, blockNo * info.blockSize, info.blockSize);
    block = decodeXattrBlock(blockBytes, { ...opts, blockNo, ...(info.metadataCsum ? { csumSeed: info.csumSeed } : {}) });
  }
  return { ino, inode, ibody, blockNo, blockBytes, block, all: [...ibody.entries, ...(block?.entries ?? [])] };
}

/** The content of a file (or of an inode, `<N>`), through debugfs. */
function debugfsCat(image: string, what: string): Uint8Array {
  return new Uint8Array(execFileSync('debugfs', ['-R', `cat ${what}`, image], { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 * 1024 * 1024 }));
}

/** `debugfs ea_list`: "name (size)" per attribute, ASCII names only. */
function debugfsEaList(image: string, path: string): string[] {
  const out: string[] = [];
  for (const line of debugfs(image, `ea_list ${path}`).split('\n')) {
    const m = /^\s+(\S+) \((\d+)\)/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined && /^[\x21-\x7e]+$/.test(m[1])) out.push(`${m[1]} (${m[2]})`);
  }
  return out.sort();
}

/** `getfattr -d -m - -e hex` of some paths under a mount: path -> (name -> value). */
function getfattrDump(mountDir: string, paths: readonly string[]): Map<string, Map<string, string>> {
  const result = new Map<string, Map<string, string>>();
  for (const p of paths) {
    const out = execFileSync('getfattr', ['-d', '-m', '-', '-e', 'hex', '--absolute-names', join(mountDir, p)], { encoding: 'utf8' });
    const attrs = new Map<string, string>();
    for (const line of out.split('\n')) {
      const m = /^([^#=][^=]*)=0x([0-9a-f]*)$/.exec(line);
      if (m?.[1] !== undefined && m[2] !== undefined) attrs.set(m[1], m[2]);
    }
    result.set(p, attrs);
  }
  return result;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

function fromHex(h: string): Uint8Array {
  return new Uint8Array(Buffer.from(h, 'hex'));
}

/** What getfattr shows for our decoded entries: VFS names, ACLs in VFS format, no system.data. */
function asGetfattr(entries: readonly XattrEntry[], eaValues: ReadonlyMap<number, Uint8Array> = new Map()): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of entries) {
    if (e.index === XATTR_INDEX.SYSTEM || e.index === XATTR_INDEX.LUSTRE || e.index === XATTR_INDEX.ENCRYPTION) continue;
    const name = xattrNameString(e.index, e.name);
    assert.ok(name !== null);
    let value: Uint8Array;
    if (e.value.kind === 'inode') {
      const v = eaValues.get(e.value.inode);
      assert.ok(v !== undefined, `value of EA inode ${e.value.inode}`);
      value = v;
    } else {
      value = e.value.bytes;
    }
    if (e.index === XATTR_INDEX.POSIX_ACL_ACCESS || e.index === XATTR_INDEX.POSIX_ACL_DEFAULT) {
      const vfs = ext4AclToVfs(value);
      if (vfs === null) continue;
      value = vfs;
    }
    out.set(name, hex(value));
  }
  return out;
}

function sortedMap(m: ReadonlyMap<string, string>): [string, string][] {
  return [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** Deterministic pseudo-random bytes. */
function bytesOf(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function setfattr(path: string, name: string, value?: Uint8Array): void {
  execFileSync('setfattr', ['-n', name, ...(value === undefined ? [] : ['-v', `0x${hex(value)}`]), path]);
}

function setfacl(path: string, ...args: string[]): void {
  execFileSync('setfacl', [...args, path]);
}

function isEuclean(error: unknown): boolean {
  return error instanceof FsError && error.code === 'EUCLEAN';
}

function stripLocation(entries: readonly DecodedXattrEntry[]): XattrEntry[] {
  return entries.map((e) => ({ index: e.index, name: e.name, value: e.value, hash: e.hash }));
}

// ---------------------------------------------------------------------------------------
// Images

const utf8 = new TextEncoder();

/** 4 KiB blocks, 256-byte inodes, metadata_csum: in-inode and block xattrs, ACLs, security/trusted. */
const MAIN_FILES = ['small', 'odd', 'many', 'acl', 'dacl', 'sec', 'highbit', 'large', 'plain'] as const;
function mainImage(): string {
  return makeImage({
    name: 'xattr-main',
    size: '16M',
    mkfsArgs: ['-t', 'ext4', '-b', '4096', '-I', '256', '-O', 'metadata_csum'],
    populate: (dir) => {
      for (const f of MAIN_FILES) {
        if (f === 'dacl') mkdirSync(join(dir, f));
        else writeFileSync(join(dir, f), `content of ${f}\n`);
      }
      setfattr(join(dir, 'small'), 'user.a', utf8.encode('hello'));
      setfattr(join(dir, 'small'), 'user.e');
      setfattr(join(dir, 'small'), 'user.p1', new Uint8Array([0x80]));
      for (const n of [1, 2, 3, 5]) setfattr(join(dir, 'odd'), `user.v${n}`, bytesOf(n, n));
      for (let i = 0; i < 24; i++) setfattr(join(dir, 'many'), `user.attr${String(i).padStart(2, '0')}`, bytesOf(100 + i, 100));
      setfacl(join(dir, 'acl'), '-m', 'u:1234:rwx,g:77:r-x,u:99:r');
      setfacl(join(dir, 'dacl'), '-d', '-m', 'u:1000:rw,g:55:rx');
      setfacl(join(dir, 'dacl'), '-m', 'u:42:rwx');
      setfattr(join(dir, 'sec'), 'security.test', utf8.encode('sec-value'));
      setfattr(join(dir, 'sec'), 'trusted.overlay.x', utf8.encode('y'));
      setfattr(join(dir, 'sec'), 'trusted.t', bytesOf(7, 300));
      setfattr(join(dir, 'highbit'), 'user.é', bytesOf(9, 200));
      setfattr(join(dir, 'highbit'), 'user.\u00ff\u00fe', bytesOf(10, 120));
      setfattr(join(dir, 'large'), 'user.big', bytesOf(11, 3000));
    },
  });
}

/** 1 KiB blocks, 128-byte inodes: every xattr in a block. */
function smallInodeImage(): string {
  return makeImage({
    name: 'xattr-1k-128',
    size: '8M',
    mkfsArgs: ['-t', 'ext4', '-b', '1024', '-I', '128', '-O', 'metadata_csum'],
    populate: (dir) => {
      writeFileSync(join(dir, 'f'), 'f\n');
      setfattr(join(dir, 'f'), 'user.a', utf8.encode('hello'));
      setfattr(join(dir, 'f'), 'user.zz', bytesOf(3, 33));
      writeFileSync(join(dir, 'acl'), 'acl\n');
      setfacl(join(dir, 'acl'), '-m', 'u:1234:rwx,g:5:r');
    },
  });
}

/** No metadata_csum: the block checksum is not kept. */
function noCsumImage(): string {
  return makeImage({
    name: 'xattr-nocsum',
    size: '8M',
    mkfsArgs: ['-t', 'ext4', '-b', '4096', '-I', '256', '-O', '^metadata_csum'],
    populate: (dir) => {
      writeFileSync(join(dir, 'f'), 'f\n');
      for (let i = 0; i < 6; i++) setfattr(join(dir, 'f'), `user.n${i}`, bytesOf(20 + i, 40));
    },
  });
}

/** e2fsprogs' own EA inodes (mke2fs -O ea_inode). */
function eaInodeImage(): string {
  return makeImage({
    name: 'xattr-eainode-e2fs',
    size: '16M',
    mkfsArgs: ['-t', 'ext4', '-b', '4096', '-I', '256', '-O', 'metadata_csum,ea_inode'],
    populate: (dir) => writeFileSync(join(dir, 'big'), 'big\n'),
  });
}

/** The e2fsprogs EA inode image, with its attributes added by `debugfs -w ea_set` (once per process). */
let eaInodeReady: string | undefined;
function eaInodeImageWithValues(): string {
  if (eaInodeReady !== undefined) return eaInodeReady;
  const image = eaInodeImage();
  // debugfs 1.47 reads at most one block of a value file: a 4096-byte value is the largest it
  // stores, still above the EA inode threshold of a 4 KiB block.
  const valueFile = join(scratchDir(), 'ea-value.bin');
  writeFileSync(valueFile, E2FS_EA_VALUE);
  execFileSync('debugfs', ['-w', '-R', `ea_set -f ${valueFile} /big user.big`, image], { stdio: 'ignore' });
  execFileSync('debugfs', ['-w', '-R', 'ea_set /big user.small s', image], { stdio: 'ignore' });
  eaInodeReady = image;
  return image;
}
const E2FS_EA_VALUE = bytesOf(31, 4096);

const INLINE_SIZES = [0, 10, 59, 60, 61, 100, 128, 129] as const;
function inlineImage(): string {
  return makeImage({
    name: 'xattr-inline',
    size: '8M',
    mkfsArgs: ['-t', 'ext4', '-b', '4096', '-I', '256', '-O', 'metadata_csum,inline_data'],
    populate: (dir) => {
      for (const n of INLINE_SIZES) writeFileSync(join(dir, `f${n}`), bytesOf(n + 1, n));
      writeFileSync(join(dir, 'withx'), bytesOf(77, 70));
      setfattr(join(dir, 'withx'), 'user.x', utf8.encode('hello'));
      mkdirSync(join(dir, 'dd'));
      for (const n of ['one', 'two', 'three']) writeFileSync(join(dir, 'dd', n), n);
    },
  });
}

// ---------------------------------------------------------------------------------------
// Names and hashes

describe('xattr names', () => {
  test('prefix table', () => {
    assert.deepEqual([...XATTR_PREFIXES.entries()].filter(([i]) => i <= 8), [
      [1, 'user.'],
      [2, 'system.posix_acl_access'],
      [3, 'system.posix_acl_default'],
      [4, 'trusted.'],
      [6, 'security.'],
      [7, 'system.'],
      [8, 'system.richacl'],
    ]);
  });

  test('split and join', () => {
    const cases: [string, number, string][] = [
      ['user.foo', 1, 'foo'],
      ['system.posix_acl_access', 2, ''],
      ['system.posix_acl_default', 3, ''],
      ['trusted.overlay.opaque', 4, 'overlay.opaque'],
      ['security.selinux', 6, 'selinux'],
      ['system.data', 7, 'data'],
      ['system.posix_acl_accessX', 7, 'posix_acl_accessX'],
      ['system.richacl', 8, ''],
      ['gnu.translator', 10, 'translator'],
    ];
    for (const [full, index, name] of cases) {
      const split = splitXattrName(full);
      assert.ok(split !== null, full);
      assert.equal(split.index, index, full);
      assert.equal(Buffer.from(split.name).toString(), name, full);
      assert.equal(xattrNameString(split.index, split.name), full);
      assert.deepEqual(joinXattrName(split.index, split.name), utf8.encode(full));
    }
    for (const bad of ['foo.bar', 'user.', 'trusted.', 'usr.x', '', `user.${'x'.repeat(256)}`]) assert.equal(splitXattrName(bad), null, bad);
    assert.equal(splitXattrName(`user.${'x'.repeat(255)}`)?.name.length, 255);
    assert.equal(joinXattrName(5, utf8.encode('lustre')), null);
    assert.equal(joinXattrName(9, utf8.encode('c')), null);
    const bytes = splitXattrName(new Uint8Array([...utf8.encode('user.'), 0xff, 0xfe]));
    assert.deepEqual(bytes, { index: 1, name: new Uint8Array([0xff, 0xfe]) });
  });

  test('entry hash: name rotate 5, value words rotate 16, padding as zeros', () => {
    // Computed by hand from the definition.
    assert.equal(xattrEntryHash(new Uint8Array(0), new Uint8Array(0)), 0);
    assert.equal(xattrEntryHash(utf8.encode('a'), new Uint8Array(0)), 0x61);
    assert.equal(xattrEntryHash(utf8.encode('ab'), new Uint8Array(0)), ((0x61 << 5) ^ 0x62) >>> 0);
    assert.equal(xattrEntryHash(utf8.encode('a'), new Uint8Array([1, 2, 3, 4])), ((0x61 << 16) ^ 0x04030201) >>> 0);
    assert.equal(xattrEntryHash(utf8.encode('a'), new Uint8Array([1, 2, 3])), xattrEntryHash(utf8.encode('a'), new Uint8Array([1, 2, 3, 0])));
    // A 32-bit rotate, not a shift: high bits come back.
    const long = utf8.encode('abcdefghijklmnop');
    let h = 0;
    for (const c of long) h = (((h << 5) | (h >>> 27)) ^ c) >>> 0;
    assert.equal(xattrEntryHash(long, new Uint8Array(0)), h);
    // Signed variant differs only for bytes >= 0x80.
    assert.equal(xattrEntryHash(long, new Uint8Array(0), true), h);
    assert.equal(xattrEntryHash(new Uint8Array([0xe9]), new Uint8Array(0), true), 0xffffffe9);
    assert.equal(xattrEntryHash(new Uint8Array([0xe9]), new Uint8Array(0)), 0xe9);
    assert.equal(xattrEaInodeEntryHash(utf8.encode('a'), 0x04030201), xattrEntryHash(utf8.encode('a'), new Uint8Array([1, 2, 3, 4])));
    assert.equal(xattrBlockHash([]), 0);
    assert.equal(xattrBlockHash([1, 0, 2]), 0);
    assert.equal(xattrBlockHash([0x12345678, 0x9abcdef0]), (((0x12345678 << 16) | (0x12345678 >>> 16)) ^ 0x9abcdef0) >>> 0);
  });
});

// ---------------------------------------------------------------------------------------
// Real images made by mke2fs -d

describe('mke2fs -d images', () => {
  let kernelView: Map<string, Map<string, string>> | undefined;
  before(() => {
    if (canMount()) kernelView = withLoopMount(mainImage(), true, (dir) => getfattrDump(dir, MAIN_FILES));
  });

  test('decoded attributes equal getfattr on a kernel mount', () => {
    if (kernelView === undefined) return assert.fail('cannot loop-mount here: the test suite needs root and loop devices');
    const image = mainImage();
    for (const f of MAIN_FILES) {
      const x = fileXattrs(image, `/${f}`);
      assert.deepEqual(sortedMap(asGetfattr(x.all)), sortedMap(kernelView.get(f) ?? new Map()), f);
    }
  });

  test('names and sizes equal debugfs ea_list', () => {
    const image = mainImage();
    for (const f of MAIN_FILES) {
      const x = fileXattrs(image, `/${f}`);
      const ours = x.all
        .map((e) => `${xattrNameString(e.index, e.name)} (${e.value.kind === 'bytes' ? e.value.bytes.length : e.value.size})`)
        .filter((s) => /^[\x21-\x7e]+ \(\d+\)$/.test(s))
        .sort();
      assert.deepEqual(ours, debugfsEaList(image, `/${f}`), f);
    }
  });

  test('where the attributes went: in-inode first, then the block', () => {
    const image = mainImage();
    const small = fileXattrs(image, '/small');
    assert.equal(small.ibody.present, true);
    assert.equal(small.blockNo, 0);
    assert.deepEqual(
      small.ibody.entries.map((e) => [e.index, Buffer.from(e.name).toString(), hex(e.value.kind === 'bytes' ? e.value.bytes : new Uint8Array())]),
      [
        [1, 'a', hex(utf8.encode('hello'))],
        [1, 'e', ''],
        [1, 'p1', '80'],
      ],
    );
    // In-inode values are addressed from the first entry and packed from the end of the inode.
    const capacity = inodeXattrCapacity(layoutOf(image, small.inode));
    assert.equal(capacity, 256 - 128 - 32 - 4);
    assert.equal(small.ibody.entries[0]?.valueOffset, capacity - 8);
    assert.equal(small.ibody.freeBytes, capacity - 4 - small.ibody.entries.reduce((n, e) => n + xattrSpaceNeeded(e), 0));
    // 24 + 100 bytes each do not fit the 88 free bytes of the inode: all go to the block, and
    // e2fsprogs still leaves the in-inode magic over an empty table.
    const many = fileXattrs(image, '/many');
    assert.equal(many.ibody.present, true);
    assert.equal(many.ibody.entries.length, 0);
    assert.equal(many.block?.entries.length, 24);
    const plain = fileXattrs(image, '/plain');
    assert.equal(plain.ibody.present, false);
    assert.equal(plain.all.length, 0);
  });

  test('block checksums, entry hashes and block hashes', () => {
    const info = fsInfo(mainImage());
    assert.ok(info.metadataCsum);
    let blocks = 0;
    for (const f of MAIN_FILES) {
      const x = fileXattrs(mainImage(), `/${f}`);
      if (x.block === undefined || x.blockBytes === undefined) continue;
      blocks++;
      assert.ok(verifyXattrBlockChecksum(x.blockBytes, x.blockNo, info.csumSeed), f);
      assert.equal(x.block.header.checksum, xattrBlockChecksum(x.blockBytes, x.blockNo, info.csumSeed));
      assert.equal(x.block.header.refcount, 1);
      // e2fsprogs 1.47 leaves h_hash 0 (the kernel fills it in on its next change).
      assert.ok(x.block.header.hash === 0 || x.block.header.hash === xattrBlockHash(x.block.entries.map((e) => e.hash)), f);
      for (const e of x.block.entries) {
        assert.ok(e.value.kind === 'bytes');
        assert.equal(e.hash, xattrEntryHash(e.name, e.value.bytes), `${f} ${xattrNameString(e.index, e.name)}`);
      }
      // Block entries are kept in kernel order.
      const sorted = [...x.block.entries].sort(compareXattrEntries);
      assert.deepEqual(sorted, x.block.entries);
    }
    assert.ok(blocks >= 5, `only ${blocks} xattr blocks`);
  });

  test('names with bytes >= 0x80 hash unsigned (as e2fsprogs 1.47 and current kernels do)', () => {
    const x = fileXattrs(mainImage(), '/highbit');
    const high = x.all.filter((e) => e.name.some((b) => b >= 0x80));
    assert.equal(high.length, 2);
    for (const e of high) {
      assert.ok(e.value.kind === 'bytes');
      if (e.hash === 0) continue;
      assert.equal(e.hash, xattrEntryHash(e.name, e.value.bytes));
      assert.notEqual(e.hash, xattrEntryHash(e.name, e.value.bytes, true));
    }
    assert.ok(high.some((e) => e.hash !== 0));
  });

  test('encode(decode(raw)) reproduces e2fsprogs blocks and in-inode regions byte for byte', () => {
    for (const image of [mainImage(), smallInodeImage(), noCsumImage()]) {
      const info = fsInfo(image);
      const files = image === mainImage() ? MAIN_FILES.map((f) => `/${f}`) : image === smallInodeImage() ? ['/f', '/acl'] : ['/f'];
      for (const path of files) {
        const x = fileXattrs(image, path);
        if (x.block !== undefined && x.blockBytes !== undefined) {
          const again = encodeXattrBlock(stripLocation(x.block.entries), {
            blockSize: info.blockSize,
            blockNo: x.blockNo,
            ...(info.metadataCsum ? { csumSeed: info.csumSeed } : {}),
            refcount: x.block.header.refcount,
            reserved: x.block.header.reserved,
            blockHash: x.block.header.hash !== 0,
          });
          assert.equal(hex(again), hex(x.blockBytes), `block of ${path}`);
        }
        if (x.ibody.present) {
          const copy = x.inode.slice();
          encodeInodeXattrs(copy, stripLocation(x.ibody.entries), layoutOf(image, x.inode), { magicWhenEmpty: true });
          assert.equal(hex(copy), hex(x.inode), `inode of ${path}`);
        }
      }
    }
  });

  test('128-byte inodes keep everything in the block; 1 KiB block checksums', () => {
    const image = smallInodeImage();
    const info = fsInfo(image);
    assert.equal(info.blockSize, 1024);
    const f = fileXattrs(image, '/f');
    assert.equal(f.ibody.present, false);
    assert.deepEqual(
      f.block?.entries.map((e) => xattrNameString(e.index, e.name)),
      ['user.a', 'user.zz'],
    );
    assert.ok(f.blockBytes !== undefined && verifyXattrBlockChecksum(f.blockBytes, f.blockNo, info.csumSeed));
    const acl = fileXattrs(image, '/acl');
    const entry = acl.all.find((e) => e.index === XATTR_INDEX.POSIX_ACL_ACCESS);
    assert.ok(entry?.value.kind === 'bytes');
    assert.deepEqual(decodeExt4Acl(entry.value.bytes), [
      { tag: ACL_USER_OBJ, perm: 6, id: ACL_UNDEFINED_ID },
      { tag: ACL_USER, perm: 7, id: 1234 },
      { tag: ACL_GROUP_OBJ, perm: 4, id: ACL_UNDEFINED_ID },
      { tag: ACL_GROUP, perm: 4, id: 5 },
      { tag: ACL_MASK, perm: 7, id: ACL_UNDEFINED_ID },
      { tag: ACL_OTHER, perm: 4, id: ACL_UNDEFINED_ID },
    ]);
  });

  test('without metadata_csum the block checksum field stays 0', () => {
    const image = noCsumImage();
    assert.equal(fsInfo(image).metadataCsum, false);
    const x = fileXattrs(image, '/f');
    assert.ok(x.block !== undefined);
    assert.equal(x.block.header.checksum, 0);
    assert.equal(x.all.length, 6);
  });

  test('ACLs: on-disk -> VFS equals getfattr, and back', () => {
    const image = mainImage();
    const acl = fileXattrs(image, '/acl');
    const access = acl.all.find((e) => e.index === XATTR_INDEX.POSIX_ACL_ACCESS);
    assert.ok(access?.value.kind === 'bytes');
    const decoded = decodeExt4Acl(access.value.bytes);
    validateAcl(decoded);
    assert.deepEqual(
      decoded.map((e) => [e.tag, e.perm, e.id]),
      [
        [ACL_USER_OBJ, 6, ACL_UNDEFINED_ID],
        [ACL_USER, 4, 99],
        [ACL_USER, 7, 1234],
        [ACL_GROUP_OBJ, 4, ACL_UNDEFINED_ID],
        [ACL_GROUP, 5, 77],
        [ACL_MASK, 7, ACL_UNDEFINED_ID],
        [ACL_OTHER, 4, ACL_UNDEFINED_ID],
      ],
    );
    assert.deepEqual(encodeExt4Acl(decoded), access.value.bytes);
    const dacl = fileXattrs(image, '/dacl');
    const dflt = dacl.all.find((e) => e.index === XATTR_INDEX.POSIX_ACL_DEFAULT);
    assert.ok(dflt?.value.kind === 'bytes');
    validateAcl(decodeExt4Acl(dflt.value.bytes));
    if (kernelView === undefined) return assert.fail('cannot loop-mount here: the test suite needs root and loop devices');
    for (const [file, entry, name] of [
      ['acl', access, 'system.posix_acl_access'],
      ['dacl', dflt, 'system.posix_acl_default'],
    ] as const) {
      const shown: string | undefined = kernelView.get(file)?.get(name);
      assert.ok(shown !== undefined, `${file} ${name}`);
      assert.ok(entry.value.kind === 'bytes');
      assert.equal(hex(ext4AclToVfs(entry.value.bytes) ?? new Uint8Array()), shown);
      assert.deepEqual(vfsAclToExt4(fromHex(shown)), entry.value.bytes);
    }
  });

  test('writing encoded regions back: e2fsck -fn is clean, debugfs and the kernel see the change', () => {
    // A block on a metadata_csum image: checksum, entry hashes and order must satisfy e2fsck.
    const csumCopy = join(scratchDir(), 'xattr-write-csum.img');
    copyFileSync(mainImage(), csumCopy);
    const info = fsInfo(csumCopy);
    const sec = fileXattrs(csumCopy, '/sec');
    assert.ok(sec.block !== undefined);
    const added: XattrEntry = { index: XATTR_INDEX.USER, name: utf8.encode('added'), value: { kind: 'bytes', bytes: utf8.encode('new value') }, hash: 0 };
    const block = encodeXattrBlock([...stripLocation(sec.block.entries), added], { blockSize: info.blockSize, blockNo: sec.blockNo, csumSeed: info.csumSeed });
    writeAt(csumCopy, sec.blockNo * info.blockSize, block);
    // An in-inode region on an image without metadata_csum (no inode checksum to redo here).
    const plainCopy = join(scratchDir(), 'xattr-write-nocsum.img');
    copyFileSync(noCsumImage(), plainCopy);
    const f = fileXattrs(plainCopy, '/f');
    const q: XattrEntry = { index: XATTR_INDEX.USER, name: utf8.encode('q'), value: { kind: 'bytes', bytes: utf8.encode('q') }, hash: 0 };
    const inode = f.inode.slice();
    encodeInodeXattrs(inode, [...stripLocation(f.ibody.entries), q], layoutOf(plainCopy, f.inode));
    const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(debugfs(plainCopy, `imap <${f.ino}>`));
    assert.ok(m?.[1] !== undefined && m[2] !== undefined);
    writeAt(plainCopy, Number(m[1]) * fsInfo(plainCopy).blockSize + parseInt(m[2], 16), inode);
    for (const [image, path, name] of [
      [csumCopy, '/sec', 'user.added'],
      [plainCopy, '/f', 'user.q'],
    ] as const) {
      execFileSync('e2fsck', ['-fn', image], { stdio: ['ignore', 'pipe', 'pipe'] });
      assert.ok(debugfsEaList(image, path).some((l) => l.startsWith(`${name} (`)), `${name} in debugfs ea_list`);
    }
    if (!canMount()) return assert.fail('cannot loop-mount here: the test suite needs root and loop devices');
    assert.equal(withLoopMount(csumCopy, true, (dir) => getfattrDump(dir, ['sec']).get('sec')?.get('user.added')), hex(utf8.encode('new value')));
    assert.equal(withLoopMount(plainCopy, true, (dir) => getfattrDump(dir, ['f']).get('f')?.get('user.q')), hex(utf8.encode('q')));
  });

  test('EA inodes written by e2fsprogs: reference, value hash in i_atime, entry hash', () => {
    const image = eaInodeImageWithValues();
    const info = fsInfo(image);
    assert.ok(info.eaInode);
    const x = fileXattrs(image, '/big');
    const big = x.all.find((e) => xattrNameString(e.index, e.name) === 'user.big');
    assert.ok(big?.value.kind === 'inode');
    assert.equal(big.value.size, E2FS_EA_VALUE.length);
    const eaInode = readInode(image, big.value.inode);
    assert.ok((u32(eaInode, 0x20) & 0x200000) !== 0, 'EXT4_EA_INODE_FL');
    const content = debugfsCat(image, `<${big.value.inode}>`);
    assert.deepEqual(content, E2FS_EA_VALUE);
    const valueHash = xattrEaInodeValueHash(info.csumSeed, content);
    assert.equal(u32(eaInode, 0x08), valueHash, 'i_atime holds the value hash');
    assert.equal(big.hash, xattrEaInodeEntryHash(big.name, valueHash));
    // Without the feature flag the same bytes are corruption.
    if (x.block !== undefined && x.blockBytes !== undefined && x.block.entries.includes(big)) {
      assert.throws(() => decodeXattrBlock(x.blockBytes as Uint8Array, { blockNo: x.blockNo }), isEuclean);
    } else {
      assert.throws(() => decodeInodeXattrs(x.inode, layoutOf(image, x.inode), { inode: x.ino }), isEuclean);
    }
    // And the re-encoding keeps the EA inode reference and hash.
    const entries = stripLocation(x.ibody.entries);
    const copy = x.inode.slice();
    encodeInodeXattrs(copy, entries, layoutOf(image, x.inode), { magicWhenEmpty: true });
    assert.equal(hex(copy), hex(x.inode));
  });
});

// ---------------------------------------------------------------------------------------
// Inline data

describe('inline data', () => {
  test('assembled content equals the file content; split reproduces the stored parts', () => {
    const image = inlineImage();
    for (const n of INLINE_SIZES) {
      const x = fileXattrs(image, `/f${n}`);
      const flags = u32(x.inode, 0x20);
      const inline = (flags & 0x10000000) !== 0;
      const expected = bytesOf(n + 1, n);
      // debugfs 1.47 `cat` prints all 60 i_block bytes of an inline file whatever i_size says,
      // so it is an oracle only for the others; inline files compare with what was written.
      if (!inline) assert.deepEqual(debugfsCat(image, `/f${n}`), expected);
      // With 256-byte inodes the inline limit is 60 + 68 bytes (e2fsprogs and maxInlineDataSize agree).
      assert.equal(inline, n <= (maxInlineDataSize(layoutOf(image, x.inode), []) ?? -1), `f${n} inline`);
      if (!inline) continue;
      const iBlock = x.inode.subarray(0x28, 0x28 + INLINE_DATA_IBLOCK_SIZE);
      const size = u32(x.inode, 0x04);
      assert.deepEqual(assembleInlineData(iBlock, x.ibody.entries, size, { inode: x.ino }), expected, `f${n}`);
      const parts = splitInlineData(expected);
      assert.deepEqual(parts.iBlock, iBlock.slice(), `f${n} i_block`);
      const data = x.ibody.entries.find(isInlineDataXattr);
      assert.ok(data?.value.kind === 'bytes');
      assert.deepEqual(parts.dataValue, data.value.bytes, `f${n} system.data`);
      // And the in-inode region re-encodes byte for byte.
      const copy = x.inode.slice();
      encodeInodeXattrs(copy, [inlineDataXattrEntry(parts.dataValue)], layoutOf(image, x.inode));
      assert.equal(hex(copy), hex(x.inode), `f${n} inode`);
    }
    assert.equal(maxInlineDataSize({ inodeSize: 256, extraIsize: 32 }, []), 128);
    assert.equal(maxInlineDataSize({ inodeSize: 128, extraIsize: 0 }, []), null);
  });

  test('inline file next to a user xattr; inline directory', () => {
    const image = inlineImage();
    const x = fileXattrs(image, '/withx');
    const size = u32(x.inode, 0x04);
    const content = bytesOf(77, 70);
    if ((u32(x.inode, 0x20) & 0x10000000) !== 0) {
      assert.deepEqual(assembleInlineData(x.inode.subarray(0x28, 0x88), x.ibody.entries, size), content);
      const others = x.ibody.entries.filter((e) => !isInlineDataXattr(e));
      assert.ok((maxInlineDataSize(layoutOf(image, x.inode), others) ?? 0) >= 70);
    }
    const dir = fileXattrs(image, '/dd');
    assert.ok((u32(dir.inode, 0x20) & 0x10000000) !== 0, 'dd is inline');
    const bytes = assembleInlineData(dir.inode.subarray(0x28, 0x88), dir.ibody.entries, u32(dir.inode, 0x04));
    // An inline directory starts with the parent's inode number (the root).
    assert.equal(u32(bytes, 0), 2);
    const text = Buffer.from(bytes).toString('latin1');
    for (const n of ['one', 'two', 'three']) assert.ok(text.includes(n), n);
  });

  test('sizes are validated', () => {
    const iBlock = bytesOf(1, 60);
    const entries = [inlineDataXattrEntry(bytesOf(2, 8))];
    assert.equal(assembleInlineData(iBlock, entries, 68).length, 68);
    assert.equal(assembleInlineData(iBlock, entries, 3).length, 3);
    assert.throws(() => assembleInlineData(iBlock, entries, 69, { inode: 12 }), (e: unknown) => isEuclean(e) && (e as FsError).context.inode === 12);
    assert.throws(() => assembleInlineData(iBlock, [], 10), isEuclean);
    assert.throws(() => assembleInlineData(iBlock, entries, -1), isEuclean);
    const inInode: XattrEntry = { ...entries[0]!, value: { kind: 'inode', inode: 20, size: 8 } };
    assert.throws(() => assembleInlineData(iBlock, [inInode], 10), isEuclean);
    assert.deepEqual(splitInlineData(new Uint8Array(0)), { iBlock: new Uint8Array(60), dataValue: new Uint8Array(0) });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (content) => {
        const parts = splitInlineData(content);
        const again = assembleInlineData(parts.iBlock, [inlineDataXattrEntry(parts.dataValue)], content.length);
        assert.deepEqual(again, content);
      }),
    );
  });
});

// ---------------------------------------------------------------------------------------
// Attributes the kernel writes: EA inodes, shared blocks, kernel layouts

describe('kernel-written attributes', () => {
  const KERNEL_FILES = ['big', 'sorted', 'reversed', 'share1', 'share2', 'kacl', 'kdacl', 'kinline', 'kdir'] as const;
  let image: string | undefined;
  let view: Map<string, Map<string, string>> | undefined;
  const contents = new Map<string, Uint8Array>();

  before(() => {
    if (!canMount()) return;
    const path = makeImage({ name: 'xattr-kernel', size: '32M', mkfsArgs: ['-t', 'ext4', '-b', '4096', '-I', '256', '-O', 'metadata_csum,ea_inode,inline_data'] });
    view = withLoopMount(path, false, (dir) => {
      const p = (f: string): string => join(dir, f);
      for (const f of KERNEL_FILES) {
        if (f === 'kdacl' || f === 'kdir') mkdirSync(p(f));
        else if (f === 'kinline') {
          contents.set(f, bytesOf(5, 100));
          writeFileSync(p(f), bytesOf(5, 100));
        } else writeFileSync(p(f), `${f}\n`.repeat(40)); // past the inline limit: no system.data in the way
      }
      setfattr(p('big'), 'user.big', bytesOf(41, 10000));
      setfattr(p('big'), 'user.huge', bytesOf(42, 60000)); // 120000 hex digits: below the 128 KiB argv limit
      setfattr(p('big'), 'user.s', utf8.encode('small'));
      for (const n of ['a', 'bb', 'ccc']) setfattr(p('sorted'), `user.${n}`, bytesOf(n.length, n.length));
      for (let i = 11; i >= 0; i--) setfattr(p('reversed'), `user.r${String(i).padStart(2, '0')}`, bytesOf(200 + i, 150));
      for (const f of ['share1', 'share2']) setfattr(p(f), 'user.shared', bytesOf(99, 500));
      setfacl(p('kacl'), '-m', 'u:1234:rwx,g:77:r');
      setfacl(p('kdacl'), '-d', '-m', 'u:1000:rw,o::-');
      for (const n of ['x', 'y']) writeFileSync(join(p('kdir'), n), n);
      execFileSync('sync');
      return getfattrDump(dir, KERNEL_FILES);
    });
    image = path;
  });

  test('decoded attributes equal getfattr; EA inode values verified by hash', () => {
    if (image === undefined || view === undefined) return assert.fail('cannot loop-mount here: the test suite needs root and loop devices');
    const info = fsInfo(image);
    for (const f of KERNEL_FILES) {
      const x = fileXattrs(image, `/${f}`);
      const eaValues = new Map<number, Uint8Array>();
      for (const e of x.all) {
        if (e.value.kind !== 'inode') continue;
        const content = debugfsCat(image, `<${e.value.inode}>`);
        assert.equal(content.length, e.value.size);
        const ea = readInode(image, e.value.inode);
        const valueHash = xattrEaInodeValueHash(info.csumSeed, content);
        assert.equal(u32(ea, 0x08), valueHash, `${f}: EA inode ${e.value.inode} hash`);
        assert.equal(e.hash, xattrEaInodeEntryHash(e.name, valueHash), `${f}: entry hash of ${xattrNameString(e.index, e.name)}`);
        eaValues.set(e.value.inode, content);
      }
      assert.deepEqual(sortedMap(asGetfattr(x.all, eaValues)), sortedMap(view.get(f) ?? new Map()), f);
    }
    const big = fileXattrs(image, '/big');
    assert.deepEqual(
      big.all.filter((e) => e.value.kind === 'inode').map((e) => xattrNameString(e.index, e.name)).sort(),
      ['user.big', 'user.huge'],
    );
  });

  test('kernel hashes: in-inode entries, block entries, block hash; shared block refcount', () => {
    if (image === undefined) return assert.fail('cannot loop-mount here: the test suite needs root and loop devices');
    const info = fsInfo(image);
    // Like e2fsprogs, the kernel hashes only block entries (and EA inode references).
    const sorted = fileXattrs(image, '/sorted');
    assert.equal(sorted.ibody.entries.length, 3);
    for (const e of sorted.ibody.entries) assert.equal(e.hash, 0, 'in-inode entry hash');
    const big = fileXattrs(image, '/big');
    for (const e of big.ibody.entries) assert.equal(e.hash === 0, e.value.kind === 'bytes', `in-inode hash of ${xattrNameString(e.index, e.name)}`);
    const reversed = fileXattrs(image, '/reversed');
    assert.ok(reversed.block !== undefined && reversed.blockBytes !== undefined);
    assert.equal(reversed.block.header.hash, xattrBlockHash(reversed.block.entries.map((e) => e.hash)));
    assert.ok(verifyXattrBlockChecksum(reversed.blockBytes, reversed.blockNo, info.csumSeed));
    const s1 = fileXattrs(image, '/share1');
    const s2 = fileXattrs(image, '/share2');
    assert.ok(s1.block !== undefined && s1.blockNo !== 0);
    assert.equal(s1.blockNo, s2.blockNo, 'identical xattr sets share one block');
    assert.equal(s1.block.header.refcount, 2);
    assert.equal(s1.block.header.hash, xattrBlockHash(s1.block.entries.map((e) => e.hash)));
  });

  test('re-encoding kernel regions: same bytes where the kernel layout is canonical', () => {
    if (image === undefined) return assert.fail('cannot loop-mount here: the test suite needs root and loop devices');
    const info = fsInfo(image);
    // Inserted in sorted order: the kernel's in-inode layout equals ours.
    const sorted = fileXattrs(image, '/sorted');
    const copy = sorted.inode.slice();
    encodeInodeXattrs(copy, stripLocation(sorted.ibody.entries), layoutOf(image, sorted.inode));
    assert.equal(hex(copy), hex(sorted.inode));
    // The shared block was built in sorted order too.
    const s1 = fileXattrs(image, '/share1');
    assert.ok(s1.block !== undefined && s1.blockBytes !== undefined);
    const again = encodeXattrBlock(stripLocation(s1.block.entries), { blockSize: info.blockSize, blockNo: s1.blockNo, csumSeed: info.csumSeed, refcount: 2 });
    assert.equal(hex(again), hex(s1.blockBytes));
    // Inserted in reverse order, the kernel keeps entries sorted but values in insertion
    // order: a different but equivalent layout. Decoding ours gives the same attributes.
    const rev = fileXattrs(image, '/reversed');
    assert.ok(rev.block !== undefined && rev.blockBytes !== undefined);
    const ours = encodeXattrBlock(stripLocation(rev.block.entries), { blockSize: info.blockSize, blockNo: rev.blockNo, csumSeed: info.csumSeed });
    assert.notEqual(hex(ours), hex(rev.blockBytes));
    const back = decodeXattrBlock(ours, { blockNo: rev.blockNo, csumSeed: info.csumSeed, verifyHashes: true });
    assert.deepEqual(stripLocation(back.entries), stripLocation(rev.block.entries));
    assert.equal(back.header.hash, rev.block.header.hash);
  });

  test('kernel inline data: file and directory', () => {
    if (image === undefined) return assert.fail('cannot loop-mount here: the test suite needs root and loop devices');
    const f = fileXattrs(image, '/kinline');
    assert.ok((u32(f.inode, 0x20) & 0x10000000) !== 0, 'kinline is inline');
    const content = contents.get('kinline');
    assert.ok(content !== undefined);
    assert.deepEqual(assembleInlineData(f.inode.subarray(0x28, 0x88), f.ibody.entries, u32(f.inode, 0x04)), content);
    const d = fileXattrs(image, '/kdir');
    assert.ok((u32(d.inode, 0x20) & 0x10000000) !== 0, 'kdir is inline');
    const bytes = assembleInlineData(d.inode.subarray(0x28, 0x88), d.ibody.entries, u32(d.inode, 0x04));
    assert.equal(u32(bytes, 0), 2);
  });
});

// ---------------------------------------------------------------------------------------
// Round trips of the encoders

const nameArb = fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => b.map((x) => (x === 0 ? 1 : x)));
// Plain objects (fast-check records have a null prototype, which deepStrictEqual tells apart).
const entryArb: fc.Arbitrary<XattrEntry> = fc.oneof(
  fc
    .tuple(fc.constantFrom(1, 4, 6, 7), nameArb, fc.uint8Array({ maxLength: 300 }))
    .map(([index, name, bytes]): XattrEntry => ({ index, name, value: { kind: 'bytes', bytes }, hash: 0 })),
  fc
    .tuple(fc.constantFrom(2, 3), fc.uint8Array({ maxLength: 60 }))
    .map(([index, bytes]): XattrEntry => ({ index, name: new Uint8Array(0), value: { kind: 'bytes', bytes }, hash: 0 })),
  fc
    .tuple(nameArb, fc.integer({ min: 11, max: 1000 }), fc.integer({ min: 1, max: 1 << 24 }), fc.nat({ max: 0xffffffff }))
    .map(([name, inode, size, hash]): XattrEntry => ({ index: 1, name, value: { kind: 'inode', inode, size }, hash })),
);

function uniqueNames(entries: readonly XattrEntry[]): XattrEntry[] {
  const seen = new Set<string>();
  return entries.filter((e) => {
    const key = `${e.index}:${hex(e.name)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function withComputedHashes(entries: readonly XattrEntry[]): XattrEntry[] {
  return entries.map((e) => (e.value.kind === 'bytes' ? { ...e, hash: xattrEntryHash(e.name, e.value.bytes) } : e));
}

describe('encode/decode round trips', () => {
  test('hasInodeXattrMagic is true exactly when decodeInodeXattrs finds a region', () => {
    for (const [inodeSize, extraIsize] of [
      [256, 32],
      [256, 0],
      [128, 0],
      [160, 28],
      [512, 32],
    ] as const) {
      const layout = { inodeSize, extraIsize };
      const inode = new Uint8Array(inodeSize);
      assert.equal(hasInodeXattrMagic(inode, inodeSize, extraIsize), false, `${inodeSize}/${extraIsize}: zeroed`);
      assert.equal(decodeInodeXattrs(inode, layout).present, false);
      const fits = inodeXattrCapacity(layout) > 0;
      if (!fits) continue;
      encodeInodeXattrs(inode, [], layout, { magicWhenEmpty: true });
      assert.equal(hasInodeXattrMagic(inode, inodeSize, extraIsize), true, `${inodeSize}/${extraIsize}: magic, no entries`);
      assert.equal(decodeInodeXattrs(inode, layout).present, true);
      encodeInodeXattrs(inode, [], layout);
      assert.equal(hasInodeXattrMagic(inode, inodeSize, extraIsize), false, `${inodeSize}/${extraIsize}: cleared`);
    }
  });

  test('xattr block: decode(encode(x)) == sorted x, checksum and hashes valid', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 30 }), fc.constantFrom(1024, 4096), fc.nat({ max: 2 ** 40 }), fc.nat({ max: 0xffffffff }), (raw, blockSize, blockNo, seed) => {
        const entries = uniqueNames(raw);
        const need = 4 + entries.reduce((n, e) => n + xattrSpaceNeeded(e), 0);
        if (need > blockXattrCapacity(blockSize)) {
          assert.throws(() => encodeXattrBlock(entries, { blockSize, blockNo, csumSeed: seed }), (e: unknown) => e instanceof FsError && e.code === 'ENOSPC');
          return;
        }
        const block = encodeXattrBlock(entries, { blockSize, blockNo, csumSeed: seed });
        const back = decodeXattrBlock(block, { blockNo, csumSeed: seed, verifyHashes: true, eaInode: true });
        assert.deepEqual(stripLocation(back.entries), withComputedHashes([...entries].sort(compareXattrEntries)));
        assert.equal(back.header.hash, xattrBlockHash(back.entries.map((e) => e.hash)));
        assert.equal(back.freeBytes, blockXattrCapacity(blockSize) - need);
        // encode(decode(block)) is the identity on our own blocks.
        assert.deepEqual(encodeXattrBlock(stripLocation(back.entries), { blockSize, blockNo, csumSeed: seed }), block);
      }),
      { numRuns: 300 },
    );
  });

  test('in-inode: decode(encode(x)) == x in the given order', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 8 }), fc.constantFrom(256, 512, 1024), fc.constantFrom(0, 4, 28, 32), fc.boolean(), (raw, inodeSize, extraIsize, zero) => {
        const entries = uniqueNames(raw);
        const layout = { inodeSize, extraIsize };
        const inode = bytesOf(inodeSize + extraIsize, inodeSize);
        const need = 4 + entries.reduce((n, e) => n + xattrSpaceNeeded(e), 0);
        if (need > inodeXattrCapacity(layout)) {
          assert.throws(() => encodeInodeXattrs(inode, entries, layout), (e: unknown) => e instanceof FsError && e.code === 'ENOSPC');
          return;
        }
        const before = inode.slice();
        encodeInodeXattrs(inode, entries, layout, { hashes: zero ? 'zero' : 'compute' });
        // Bytes before the region are untouched.
        assert.deepEqual(inode.subarray(0, 128 + extraIsize), before.subarray(0, 128 + extraIsize));
        const back = decodeInodeXattrs(inode, layout, { verifyHashes: true, eaInode: true });
        assert.equal(back.present, entries.length > 0);
        const expected = zero ? entries.map((e) => (e.value.kind === 'bytes' ? { ...e, hash: 0 } : e)) : withComputedHashes(entries);
        assert.deepEqual(stripLocation(back.entries), expected);
      }),
      { numRuns: 300 },
    );
  });

  test('encoders refuse what cannot be stored', () => {
    const layout = { inodeSize: 256, extraIsize: 32 };
    const inode = new Uint8Array(256);
    const bad = (e: Partial<XattrEntry>): XattrEntry => ({ index: 1, name: utf8.encode('x'), value: { kind: 'bytes', bytes: new Uint8Array(1) }, hash: 0, ...e });
    const code = (c: string) => (e: unknown) => e instanceof FsError && e.code === c;
    assert.throws(() => encodeInodeXattrs(inode, [bad({ index: 0 })], layout), code('EINVAL'));
    assert.throws(() => encodeInodeXattrs(inode, [bad({ name: new Uint8Array(0) })], layout), code('EINVAL'));
    assert.throws(() => encodeInodeXattrs(inode, [bad({ name: new Uint8Array([0x61, 0]) })], layout), code('EINVAL'));
    assert.throws(() => encodeInodeXattrs(inode, [bad({ name: new Uint8Array(256).fill(0x61) })], layout), code('ERANGE'));
    assert.throws(() => encodeInodeXattrs(inode, [bad({ value: { kind: 'inode', inode: 0, size: 1 } })], layout), code('EINVAL'));
    assert.throws(() => encodeInodeXattrs(inode, [bad({ value: { kind: 'bytes', bytes: new Uint8Array(200) } })], layout), code('ENOSPC'));
    assert.throws(() => encodeXattrBlock([bad({}), bad({})], { blockSize: 1024, blockNo: 5 }), code('EINVAL'));
    assert.throws(() => encodeInodeXattrs(new Uint8Array(128), [bad({})], { inodeSize: 128, extraIsize: 0 }), code('ENOSPC'));
    // Removing every attribute clears the magic, as the kernel does.
    encodeInodeXattrs(inode, [bad({})], layout);
    assert.equal(decodeInodeXattrs(inode, layout).present, true);
    encodeInodeXattrs(inode, [], layout);
    assert.equal(decodeInodeXattrs(inode, layout).present, false);
    assert.ok(inode.subarray(160).every((b) => b === 0));
  });
});

// ---------------------------------------------------------------------------------------
// ACL codec

describe('ACL codec', () => {
  const minimal: AclEntry[] = [
    { tag: ACL_USER_OBJ, perm: 6, id: ACL_UNDEFINED_ID },
    { tag: ACL_GROUP_OBJ, perm: 4, id: ACL_UNDEFINED_ID },
    { tag: ACL_OTHER, perm: 4, id: ACL_UNDEFINED_ID },
  ];
  const full: AclEntry[] = [
    { tag: ACL_USER_OBJ, perm: 7, id: ACL_UNDEFINED_ID },
    { tag: ACL_USER, perm: 7, id: 1234 },
    { tag: ACL_GROUP_OBJ, perm: 5, id: ACL_UNDEFINED_ID },
    { tag: ACL_GROUP, perm: 4, id: 77 },
    { tag: ACL_MASK, perm: 7, id: ACL_UNDEFINED_ID },
    { tag: ACL_OTHER, perm: 0, id: ACL_UNDEFINED_ID },
  ];

  test('formats: on-disk short/long entries, VFS 8-byte entries', () => {
    assert.equal(hex(encodeExt4Acl(minimal)), '01000000' + '01000600' + '04000400' + '20000400');
    assert.equal(hex(encodeVfsAcl(minimal)), '02000000' + '01000600ffffffff' + '04000400ffffffff' + '20000400ffffffff');
    assert.equal(hex(encodeExt4Acl(full)), '01000000' + '01000700' + '02000700d2040000' + '04000500' + '080004004d000000' + '10000700' + '20000000');
    // What getfattr showed on a kernel mount after `setfacl -m u:1234:rwx` on a 0644 file.
    const kernel = '0200000001000600ffffffff02000700d204000004000400ffffffff10000700ffffffff20000400ffffffff';
    const disk = vfsAclToExt4(fromHex(kernel));
    assert.ok(disk !== null);
    assert.equal(hex(ext4AclToVfs(disk) ?? new Uint8Array()), kernel);
    for (const acl of [minimal, full]) {
      assert.deepEqual(decodeExt4Acl(encodeExt4Acl(acl)), acl);
      assert.deepEqual(decodeVfsAcl(encodeVfsAcl(acl)), acl);
      validateAcl(acl);
    }
    assert.deepEqual(decodeExt4Acl(fromHex('01000000')), []);
    assert.equal(ext4AclToVfs(fromHex('01000000')), null);
    assert.equal(vfsAclToExt4(fromHex('02000000')), null);
  });

  test('malformed on-disk ACLs are EUCLEAN', () => {
    for (const h of ['', '010000', '02000000', '01000000010006000400', '01000000400006000400040020000400', '0100000001000600040004002000040002000700d2040000']) {
      assert.throws(() => decodeExt4Acl(fromHex(h), { inode: 14 }), (e: unknown) => isEuclean(e) && (e as FsError).context.inode === 14, h);
    }
  });

  test('VFS input errors are EINVAL / EOPNOTSUPP', () => {
    const code = (c: string) => (e: unknown) => e instanceof FsError && e.code === c;
    assert.throws(() => decodeVfsAcl(fromHex('01000000')), code('EOPNOTSUPP'));
    assert.throws(() => decodeVfsAcl(fromHex('0200000001000600')), code('EINVAL'));
    assert.throws(() => decodeVfsAcl(fromHex('0200000003000600ffffffff')), code('EINVAL'));
    const invalid: AclEntry[][] = [
      [minimal[1]!, minimal[0]!, minimal[2]!],
      [minimal[0]!, minimal[2]!],
      [minimal[0]!, minimal[0]!, minimal[1]!, minimal[2]!],
      [full[0]!, full[1]!, full[2]!, full[5]!],
      [{ ...minimal[0]!, perm: 8 }, minimal[1]!, minimal[2]!],
      [full[0]!, { tag: ACL_USER, perm: 7, id: ACL_UNDEFINED_ID }, full[2]!, full[4]!, full[5]!],
      [...minimal, minimal[2]!],
    ];
    for (const acl of invalid) {
      assert.throws(() => validateAcl(acl), code('EINVAL'));
      assert.throws(() => vfsAclToExt4(encodeVfsAcl(acl)), code('EINVAL'));
    }
    // Structurally fine on disk (the kernel reads it), but not a valid ACL.
    const lone = decodeExt4Acl(fromHex('0100000001000600'));
    assert.equal(lone.length, 1);
    assert.throws(() => validateAcl(lone), code('EINVAL'));
    // Like the kernel: a mask without named entries is fine, named ids need no order.
    validateAcl([minimal[0]!, minimal[1]!, { tag: ACL_MASK, perm: 4, id: ACL_UNDEFINED_ID }, minimal[2]!]);
    validateAcl([full[0]!, { tag: ACL_USER, perm: 1, id: 9 }, { tag: ACL_USER, perm: 1, id: 3 }, full[2]!, full[4]!, full[5]!]);
  });

  test('random bytes: decoders return or throw FsError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.boolean(), (bytes, versioned) => {
        const b = bytes.slice();
        if (versioned && b.length >= 4) b.set([1, 0, 0, 0], 0);
        for (const f of [() => decodeExt4Acl(b), () => ext4AclToVfs(b), () => decodeVfsAcl(b), () => vfsAclToExt4(b)]) {
          try {
            f();
          } catch (error) {
            assert.ok(error instanceof FsError, String(error));
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});

// ---------------------------------------------------------------------------------------
// Corruption and hostile input

describe('corruption', () => {
  test('targeted damage to a block is EUCLEAN naming the block and inode', () => {
    const image = mainImage();
    const info = fsInfo(image);
    const x = fileXattrs(image, '/many');
    assert.ok(x.blockBytes !== undefined && x.block !== undefined);
    const good = x.blockBytes;
    const first = x.block.entries[0];
    const second = x.block.entries[1];
    assert.ok(first !== undefined && second !== undefined);
    const le16 = (b: Uint8Array, off: number, v: number): void => {
      b[off] = v & 0xff;
      b[off + 1] = v >>> 8;
    };
    const damages: [string, (b: Uint8Array) => void][] = [
      ['magic', (b) => (b[3] = 0xeb)],
      ['h_blocks', (b) => (b[8] = 2)],
      ['no terminator', (b) => b.fill(0x41, 32 + x.block!.entries.reduce((n, e) => n + 16 + Math.ceil(e.name.length / 4) * 4, 0), b.length)],
      ['value into the table', (b) => le16(b, first.entryOffset + 2, 32)],
      ['value past the end', (b) => le16(b, first.entryOffset + 2, b.length - 4)],
      ['overlapping values', (b) => le16(b, second.entryOffset + 2, first.valueOffset)],
      ['huge value size', (b) => (b[first.entryOffset + 11] = 0x7f)],
      ['NUL in name', (b) => (b[first.entryOffset + 16] = 0)],
      ['name runs out', (b) => (b[first.entryOffset] = 255)],
      ['EA inode without the feature', (b) => (b[first.entryOffset + 4] = 20)],
      ['empty user name', (b) => (b[first.entryOffset] = 0)],
      ['entry hash', (b) => (b[first.entryOffset + 12] = (b[first.entryOffset + 12] as number) ^ 1)],
    ];
    for (const [what, damage] of damages) {
      const b = good.slice();
      damage(b);
      // Without the checksum, so the structural checks are what fails.
      assert.throws(
        () => decodeXattrBlock(b, { blockNo: x.blockNo, inode: x.ino, verifyHashes: true }),
        (e: unknown) => isEuclean(e) && (e as FsError).context.structure === 'xattr block' && (e as FsError).context.block === x.blockNo && (e as FsError).context.inode === x.ino,
        what,
      );
    }
    // Any flipped bit fails the checksum.
    fc.assert(
      fc.property(fc.nat({ max: good.length - 1 }), fc.integer({ min: 0, max: 7 }), (at, bit) => {
        const b = good.slice();
        b[at] = (b[at] as number) ^ (1 << bit);
        assert.throws(() => decodeXattrBlock(b, { blockNo: x.blockNo, csumSeed: info.csumSeed }), isEuclean);
      }),
      { numRuns: 200 },
    );
    // The wrong block number fails the checksum too.
    assert.throws(() => decodeXattrBlock(good, { blockNo: x.blockNo + 1, csumSeed: info.csumSeed }), isEuclean);
  });

  test('targeted damage to the in-inode region is EUCLEAN naming the inode', () => {
    const image = mainImage();
    const x = fileXattrs(image, '/small');
    const layout = layoutOf(image, x.inode);
    const first = x.ibody.entries[0];
    assert.ok(first !== undefined);
    const base = 128 + layout.extraIsize + 4;
    const damages: [string, (b: Uint8Array) => void][] = [
      ['value into the table', (b) => (b[first.entryOffset + 2] = 0)],
      ['value past the end', (b) => (b[first.entryOffset + 2] = 250)],
      ['no terminator', (b) => b.fill(0x41, base + x.ibody.entries.reduce((n, e) => n + 16 + Math.ceil(e.name.length / 4) * 4, 0), 256)],
      ['name runs out', (b) => (b[first.entryOffset] = 200)],
      ['entry hash', (b) => (b[first.entryOffset + 12] = 1)],
    ];
    for (const [what, damage] of damages) {
      const b = x.inode.slice();
      damage(b);
      assert.throws(
        () => decodeInodeXattrs(b, layout, { inode: x.ino, verifyHashes: true }),
        (e: unknown) => isEuclean(e) && (e as FsError).context.structure === 'in-inode xattrs' && (e as FsError).context.inode === x.ino,
        what,
      );
    }
    // A bad i_extra_isize is refused rather than used.
    assert.throws(() => decodeInodeXattrs(x.inode, { inodeSize: 256, extraIsize: 30 }, { inode: x.ino }), isEuclean);
    assert.throws(() => decodeInodeXattrs(x.inode, { inodeSize: 256, extraIsize: 200 }, { inode: x.ino }), isEuclean);
    // No magic (or no room for it) means no in-inode xattrs.
    const noMagic = x.inode.slice();
    noMagic[base - 1] = 0;
    assert.equal(decodeInodeXattrs(noMagic, layout).present, false);
    assert.equal(decodeInodeXattrs(x.inode, { inodeSize: 256, extraIsize: 124 }).present, false);
  });

  test('random mutations of real regions: decoders return or throw FsError, never anything else', () => {
    const samples: { kind: 'block' | 'inode'; bytes: Uint8Array; blockNo: number; layout: InodeXattrLayout }[] = [];
    const images: [string, readonly string[]][] = [
      [mainImage(), MAIN_FILES.map((f) => `/${f}`)],
      [smallInodeImage(), ['/f', '/acl']],
      [eaInodeImageWithValues(), ['/big']],
      [inlineImage(), ['/f100', '/withx', '/dd']],
    ];
    for (const [image, paths] of images) {
      for (const p of paths) {
        const x = fileXattrs(image, p);
        const layout = layoutOf(image, x.inode);
        if (x.ibody.present) samples.push({ kind: 'inode', bytes: x.inode, blockNo: 0, layout });
        if (x.blockBytes !== undefined) samples.push({ kind: 'block', bytes: x.blockBytes, blockNo: x.blockNo, layout });
      }
    }
    assert.ok(samples.length >= 10);
    const mutation = fc.tuple(fc.nat(), fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0, 0xff, 0x80)));
    fc.assert(
      fc.property(
        fc.nat({ max: samples.length - 1 }),
        fc.array(mutation, { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 0, max: 16 }),
        (which, mutations, verifyHashes, eaInode, bias) => {
          const sample = samples[which]!;
          const b = sample.bytes.slice();
          // Bias mutations towards the headers and entry tables, where the structure is.
          const window = bias < 12 ? Math.min(b.length, sample.kind === 'block' ? 256 : sample.layout.inodeSize) : b.length;
          const start = sample.kind === 'inode' ? Math.min(128 + sample.layout.extraIsize, b.length - 1) : 0;
          for (const [at, value] of mutations) b[Math.min(b.length - 1, start + (at % window))] = value;
          try {
            if (sample.kind === 'block') {
              const r = decodeXattrBlock(b, { blockNo: sample.blockNo, verifyHashes, eaInode, inodesCount: 4096 });
              for (const e of r.entries) assert.ok(e.value.kind === 'inode' || e.value.bytes.length <= b.length);
              assert.ok(r.freeBytes >= 0);
            } else {
              const r = decodeInodeXattrs(b, sample.layout, { inode: 12, verifyHashes, eaInode });
              assert.ok(r.freeBytes >= 0);
              for (const e of r.entries) if (e.value.kind === 'bytes' && isInlineDataXattr(e)) assembleInlineData(b.subarray(0x28, 0x88), r.entries, e.value.bytes.length + 60);
            }
          } catch (error) {
            assert.ok(error instanceof FsError, `not an FsError: ${String(error)}`);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  test('random bytes as a block or an inode', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1024, maxLength: 1024 }), fc.boolean(), (bytes, magic) => {
        const b = bytes.slice();
        if (magic) b.set([0, 0, 2, 0xea], 0);
        if (magic) b.set([0, 0, 2, 0xea], 160);
        try {
          decodeXattrBlock(b, { blockNo: 1, eaInode: true });
        } catch (error) {
          assert.ok(error instanceof FsError, String(error));
        }
        try {
          decodeInodeXattrs(b, { inodeSize: 1024, extraIsize: 32 }, { eaInode: true, verifyHashes: true });
        } catch (error) {
          assert.ok(error instanceof FsError, String(error));
        }
      }),
      { numRuns: 1000 },
    );
  });
});
