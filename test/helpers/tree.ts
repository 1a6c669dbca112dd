/**
 * A rich, deterministic source tree for `mke2fs -d`, and the kernel-side mutations
 * made through a read-write loop mount (what only the kernel writes: nanosecond
 * times, shared xattr blocks, unwritten extents, deleted entries, kernel-grown
 * htrees). fs-matrix.test.ts builds one image per feature set from these and
 * compares what ext4ts reads with a read-only kernel mount of the same image.
 *
 * Everything is sized by `TreeOptions` so the same tree fits 1 KiB blocks,
 * 128-byte inodes and 16 KiB clusters. Contents come from a seeded PRNG; names
 * and sizes are fixed, so two runs build the same tree (times aside).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, chmodSync, chownSync, linkSync, lchownSync, mkdirSync, openSync, symlinkSync, unlinkSync, writeFileSync, writeSync, ftruncateSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

export interface TreeOptions {
  /** Filesystem block size: xattr values and symlink lengths are sized to fit it. */
  readonly blockSize: number;
  /** Inode size (128 leaves no room for in-inode xattrs). */
  readonly inodeSize: number;
  /** A 5 GiB sparse file with a few bytes written at high offsets. */
  readonly hugeSparse?: boolean;
  /** A sparse file with one block at ~70 MiB (triple-indirect on 1 KiB block maps). */
  readonly tripleIndirect?: boolean;
  /** /cf and /cfbig: names for directories that will be made casefolded. */
  readonly casefold?: boolean;
}

/** What populate() made that tests look up by name. */
export interface TreeManifest {
  /** Names in /bigdir (filled in by whoever creates it). */
  readonly bigDirNames: readonly string[];
  /** Names in /cf and /cfbig (when options.casefold). */
  readonly casefoldNames: readonly string[];
  readonly casefoldBigNames: readonly string[];
}

export const HUGE_SIZE = 5 * 1024 * 1024 * 1024;
const KiB = 1024;
const MiB = 1024 * 1024;

/** mulberry32: a small seeded PRNG, so contents are the same on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomBytes(seed: number, length: number): Buffer {
  const next = prng(seed);
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(next() * 256);
  return out;
}

function run(cmd: string, args: readonly string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Write `pieces` (offset, bytes) into a file of `size` bytes; unwritten ranges stay holes. */
export function writeSparse(path: string | Buffer, size: number, pieces: readonly (readonly [number, Uint8Array])[]): void {
  const fd = openSync(path, 'w');
  try {
    for (const [offset, bytes] of pieces) writeSync(fd, bytes, 0, bytes.length, offset);
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

/** Set atime and mtime with nanoseconds (`touch -d @s.ns`); `-h`: the link itself. */
export function setTimes(path: string, atime: string, mtime: string): void {
  run('touch', ['-h', '-a', '-d', `@${atime}`, path]);
  run('touch', ['-h', '-m', '-d', `@${mtime}`, path]);
}

function setfattr(path: string, name: string, value: Buffer | string, noDereference = false): void {
  const v = typeof value === 'string' ? Buffer.from(value) : value;
  run('setfattr', [...(noDereference ? ['-h'] : []), '-n', name, '-v', `0x${v.toString('hex')}`, path]);
}

/** Xattrs to set in one `setfattr --restore` run (one process instead of one per xattr). */
class XattrBatch {
  private readonly files = new Map<string, [string, Buffer][]>();

  set(path: string, name: string, value: Buffer | string): void {
    let list = this.files.get(path);
    if (list === undefined) this.files.set(path, (list = []));
    list.push([name, typeof value === 'string' ? Buffer.from(value) : value]);
  }

  /** Apply with one setfattr run; the dump is written to (and removed from) `workDir`. */
  apply(workDir: string): void {
    let dump = '';
    for (const [path, list] of this.files) {
      if (!/^[\x21-\x7e]+$/.test(path)) throw new Error(`setfattr --restore needs a plain path: ${path}`);
      dump += `# file: ${path}\n${list.map(([n, v]) => `${n}=0x${v.toString('hex')}\n`).join('')}\n`;
    }
    const file = join(workDir, '.xattrs.dump');
    writeFileSync(file, dump);
    try {
      run('setfattr', [`--restore=${file}`]);
    } finally {
      unlinkSync(file);
    }
  }
}

function setfacl(path: string, ...args: string[]): void {
  run('setfacl', [...args, path]);
}

/**
 * A UNIX socket file: bind a listening socket, hard-link its file to `path`, close
 * the server (which unlinks only the name it bound).
 */
async function makeSocket(path: string): Promise<void> {
  const bound = `${path}.bound`;
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(bound, () => resolve());
  });
  try {
    linkSync(bound, path);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(bound, { force: true });
  }
}

/** Names that differ only by case, are not ASCII, or are not UTF-8 at all. */
const ODD_NAMES: readonly (string | Buffer)[] = [
  'Case',
  'case',
  'CASE',
  'café',
  'naïve-日本語-файл',
  'with space',
  'new\nline',
  'back\\slash',
  'tab\there',
  '-leading-dash',
  '...',
  '.hidden',
  '=equals=',
  '#hash',
  '😀 emoji',
  Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0x2e, 0x62, 0x69, 0x6e]), // "bad\xff\xfe.bin": not UTF-8
  Buffer.from([0xc3, 0x28]), // an invalid 2-byte sequence
  'x'.repeat(255),
  'é'.repeat(127), // 254 bytes
  // Long non-ASCII names: /names outgrows a 1 KiB block, so e2fsck -D indexes it, with
  // bytes >= 0x80 that signed and unsigned directory hashing treat differently.
  `${'ü'.repeat(100)}-long`,
  'Ω'.repeat(100),
  `${'ß'.repeat(60)}${'ñ'.repeat(40)}`,
];

/** Names for the casefold directories: mixed case, non-ASCII, normalization forms. */
export const CASEFOLD_NAMES: readonly string[] = [
  'readme.txt',
  'MixedCase.TXT',
  'café',
  'Straße',
  'ÄRGER.md',
  'ΣΊΣΥΦΟΣ',
  'Ǆemal',
  'İstanbul',
  'kelvin-\u212a', // KELVIN SIGN folds to 'k'
  'lower-dir',
];

/** Directory /cf contents: one file per name (lower-dir is a directory). */
function populateCasefold(root: string): { small: string[]; big: string[] } {
  const cf = join(root, 'cf');
  mkdirSync(cf);
  for (const name of CASEFOLD_NAMES) {
    if (name === 'lower-dir') {
      mkdirSync(join(cf, name));
      writeFileSync(join(cf, name, 'Inner.File'), 'inner\n');
    } else {
      writeFileSync(join(cf, name), `${name}\n`);
    }
  }
  const big: string[] = [];
  const cfbig = join(root, 'cfbig');
  mkdirSync(cfbig);
  for (let i = 0; i < 600; i++) {
    const name = i % 7 === 0 ? `Grüße-${i}-ÉTÉ` : `File-${String(i).padStart(4, '0')}-MiXeD`;
    big.push(name);
    writeFileSync(join(cfbig, name), i % 50 === 0 ? `${i}\n` : '');
  }
  return { small: [...CASEFOLD_NAMES], big };
}

/**
 * Fill `dir` with the tree: regular files of many shapes, holes, symlinks of every
 * length class, hard links, special files, mode bits, large ids, xattrs in the inode
 * and in a block, ACLs, odd names, timestamps. Needs root (chown, mknod).
 */
export async function populate(dir: string, options: TreeOptions): Promise<TreeManifest> {
  const bs = options.blockSize;
  const xattrs = new XattrBatch();
  const d = (...parts: string[]): string => join(dir, ...parts);
  const mk = (...parts: string[]): string => {
    const p = d(...parts);
    mkdirSync(p, { recursive: true });
    return p;
  };

  // ------------------------------------------------------------ regular files
  writeFileSync(d('empty'), '');
  writeFileSync(d('small.txt'), 'hello, world\n');
  writeFileSync(d('tiny-inline'), randomBytes(1, 40)); // fits i_block (60 bytes) with inline_data
  writeFileSync(d('medium-inline'), randomBytes(2, 100)); // i_block + system.data with inline_data
  writeFileSync(d('one-block'), randomBytes(3, bs));
  writeFileSync(d('block-plus-one'), randomBytes(4, bs + 1));
  writeFileSync(d('random-1m'), randomBytes(5, MiB + 123));
  writeFileSync(d('random-5m'), randomBytes(6, 5 * MiB + 7)); // > the 4 MiB whole-read limit of the walkers
  const zeros = Buffer.alloc(3 * bs);
  writeFileSync(d('zeros'), zeros); // mke2fs -d turns zero blocks into holes
  mk('deep/a/b/c/d/e/f/g/h');
  writeFileSync(d('deep/a/b/c/d/e/f/g/h/leaf'), 'deep leaf\n');
  for (let i = 0; i < 40; i++) writeFileSync(d('deep', `sibling-${i}`), `${i}`.repeat(i));

  // ------------------------------------------------------------ holes and extents
  mk('holes');
  const tag = (s: string): Buffer => Buffer.from(s);
  writeSparse(d('holes/hole-start'), 256 * KiB + 5, [[256 * KiB, tag('tail!')]]);
  writeSparse(d('holes/hole-middle'), 3 * MiB, [
    [0, randomBytes(7, 10 * KiB)],
    [2 * MiB + 100, randomBytes(8, 1 * MiB - 100)],
  ]);
  writeSparse(d('holes/hole-end'), 2 * MiB, [[0, randomBytes(9, 5000)]]);
  writeSparse(d('holes/all-hole'), 10 * MiB, []);
  writeSparse(d('holes/unaligned-pieces'), 100 * KiB, [
    [bs - 3, tag('across-a-block-boundary')],
    [50 * KiB + 1, tag('x')],
    [100 * KiB - 1, tag('z')],
  ]);
  // Every other 4 KiB block of 8 MiB: 1024 extents, an extent tree of depth >= 1.
  const manyExtents: [number, Uint8Array][] = [];
  for (let off = 0; off < 8 * MiB; off += 8 * KiB) manyExtents.push([off, randomBytes(off + 11, 4 * KiB)]);
  writeSparse(d('holes/many-extents'), 8 * MiB, manyExtents);
  if (options.tripleIndirect === true) {
    writeSparse(d('holes/triple-indirect'), 70 * MiB + 3 * KiB, [
      [5 * KiB, tag('low')],
      [70 * MiB + 17, tag('past the double-indirect range on 1 KiB block maps')],
    ]);
  }
  if (options.hugeSparse === true) {
    writeSparse(d('holes/huge-5g'), HUGE_SIZE, [
      [123, tag('start')],
      [4 * 1024 * MiB + 12345, tag('above 4 GiB')],
      [HUGE_SIZE - 100, randomBytes(10, 100)],
    ]);
  }

  // ------------------------------------------------------------ symlinks
  mk('links');
  const target = (length: number, seed: string): string => {
    let s = `${seed}/`;
    while (s.length < length) s += 'abcdefghijklmnopqrstuvwxyz0123456789/'.slice(0, Math.min(37, length - s.length));
    return s.slice(0, length);
  };
  symlinkSync('../small.txt', d('links/short'));
  symlinkSync('../deep/a/b', d('links/to-dir'));
  symlinkSync('/small.txt', d('links/absolute'));
  symlinkSync('does/not/exist', d('links/dangling'));
  symlinkSync('loop-b', d('links/loop-a'));
  symlinkSync('loop-a', d('links/loop-b'));
  symlinkSync('to-dir/c/d', d('links/through-link'));
  symlinkSync('../small.txt/x', d('links/not-a-dir'));
  symlinkSync('café/ü', d('links/utf8-target'));
  for (const n of [59, 60, 61, 100]) symlinkSync(target(n, `len${n}`), d(`links/len-${n}`));
  symlinkSync(target(Math.min(1000, bs - 24), 'long'), d('links/very-long'));

  // ------------------------------------------------------------ hard links
  mk('hard/sub');
  writeFileSync(d('hard/a'), 'linked three times\n');
  linkSync(d('hard/a'), d('hard/b'));
  linkSync(d('hard/a'), d('hard/sub/c'));
  writeSparse(d('hard/sparse'), MiB, [[512 * KiB, tag('mid')]]);
  linkSync(d('hard/sparse'), d('hard/sparse-link'));

  // ------------------------------------------------------------ special files
  mk('special');
  run('mkfifo', [d('special/fifo')]);
  run('mknod', [d('special/null'), 'c', '1', '3']);
  run('mknod', [d('special/loop0'), 'b', '7', '0']);
  run('mknod', [d('special/big-char'), 'c', '300', '70000']); // needs the new (32-bit) encoding
  run('mknod', [d('special/big-block'), 'b', '4095', '1048575']);
  run('mknod', [d('special/minor-256'), 'c', '4', '256']);
  await makeSocket(d('special/socket'));

  // ------------------------------------------------------------ mode bits and owners
  mk('modes');
  const modeFile = (name: string, mode: number, uid = 0, gid = 0): void => {
    writeFileSync(d('modes', name), name);
    chownSync(d('modes', name), uid, gid); // before chmod: chown clears setuid/setgid
    chmodSync(d('modes', name), mode);
  };
  modeFile('setuid', 0o4755);
  modeFile('setgid', 0o2755);
  modeFile('all-bits', 0o7777);
  modeFile('no-bits', 0o000);
  modeFile('read-only', 0o444);
  modeFile('setuid-owned', 0o4711, 1000, 1000);
  mk('modes/sticky');
  chmodSync(d('modes/sticky'), 0o1777);
  mk('modes/setgid-dir');
  chmodSync(d('modes/setgid-dir'), 0o2775);
  mk('modes/private');
  writeFileSync(d('modes/private/inside'), 'x');
  chmodSync(d('modes/private'), 0o700);
  mk('owners');
  const owned = (name: string, uid: number, gid: number): void => {
    writeFileSync(d('owners', name), name);
    chownSync(d('owners', name), uid, gid);
  };
  owned('u65535', 65535, 65535);
  owned('u65536', 65536, 65537);
  owned('u100000', 100000, 200000);
  owned('u-large', 3000000000, 4000000000);
  owned('mixed', 70000, 7);
  mk('owners/dir-100000');
  chownSync(d('owners/dir-100000'), 100000, 100001);
  symlinkSync('u100000', d('owners/link-owned'));
  lchownSync(d('owners/link-owned'), 123456, 654321);

  // ------------------------------------------------------------ extended attributes
  mk('xattr');
  writeFileSync(d('xattr/in-inode'), 'one small xattr');
  xattrs.set(d('xattr/in-inode'), 'user.a', 'xyz');
  writeFileSync(d('xattr/many'), 'many xattrs');
  for (let i = 0; i < 15; i++) xattrs.set(d('xattr/many'), `user.k${String(i).padStart(2, '0')}`, randomBytes(100 + i, 20));
  writeFileSync(d('xattr/large-value'), 'one large value');
  xattrs.set(d('xattr/large-value'), 'user.big', randomBytes(200, Math.min(3000, bs - 200)));
  writeFileSync(d('xattr/namespaces'), 'user, trusted, security');
  xattrs.set(d('xattr/namespaces'), 'user.u', 'user value');
  xattrs.set(d('xattr/namespaces'), 'trusted.t', 'trusted value');
  xattrs.set(d('xattr/namespaces'), 'security.s', 'security value');
  writeFileSync(d('xattr/empty-value'), '');
  xattrs.set(d('xattr/empty-value'), 'user.empty', '');
  writeFileSync(d('xattr/binary'), 'binary');
  xattrs.set(d('xattr/binary'), 'user.bytes', Buffer.from(Array.from({ length: 256 }, (_, i) => i)));
  writeFileSync(d('xattr/long-name'), 'long xattr name');
  xattrs.set(d('xattr/long-name'), `user.${'n'.repeat(200)}`, 'v');
  mk('xattr/dir-with-xattr');
  xattrs.set(d('xattr/dir-with-xattr'), 'user.dir', 'on a directory');
  symlinkSync('../small.txt', d('xattr/symlink-with-xattr'));
  setfattr(d('xattr/symlink-with-xattr'), 'trusted.link', 'on a symlink', true);
  writeFileSync(d('xattr/mixed-inode-and-block'), 'both');
  xattrs.set(d('xattr/mixed-inode-and-block'), 'user.small', 's');
  xattrs.set(d('xattr/mixed-inode-and-block'), 'user.blocky', randomBytes(300, Math.min(600, bs - 300)));
  xattrs.set(dir, 'user.on-the-root', 'root directory xattr');

  // ------------------------------------------------------------ POSIX ACLs
  mk('acl/dir-default');
  writeFileSync(d('acl/file'), 'acl');
  setfacl(d('acl/file'), '-m', 'u:1234:rwx,g:55:r,u:100000:r,m::rwx');
  writeFileSync(d('acl/file-and-xattr'), 'acl + xattr');
  setfacl(d('acl/file-and-xattr'), '-m', 'u:42:r');
  xattrs.set(d('acl/file-and-xattr'), 'user.also', 'here');
  setfacl(d('acl/dir-default'), '-m', 'u:1000:rwx');
  setfacl(d('acl/dir-default'), '-d', '-m', 'u:1000:rwx,g:2000:rx,o::-');
  writeFileSync(d('acl/dir-default/inherited'), 'inherits the default ACL');

  xattrs.apply(dir);

  // ------------------------------------------------------------ names
  mk('names');
  for (const name of ODD_NAMES) {
    const p = typeof name === 'string' ? d('names', name) : Buffer.concat([Buffer.from(d('names') + '/'), name]);
    writeFileSync(p, typeof name === 'string' ? name : name.toString('hex'));
  }
  mk('names/sub dir with space/ünïcode dir');
  writeFileSync(d('names/sub dir with space/ünïcode dir/file'), 'x');

  // ------------------------------------------------------------ times
  mk('times/dir-ns/child');
  const timed: readonly [string, string, string][] = [
    ['ns', '1500000000.987654321', '1600000000.123456789'],
    ['epoch', '0', '1'],
    ['pre-1970', '-100000000.5', '-1.999999999'],
    ['y2038', '2147483647.999999999', '2147483648.000000001'],
    ['y2106', '4294967296.5', '4294967295'],
    ['y2400', '13000000000', '13000000000.000000007'],
  ];
  for (const [name, atime, mtime] of timed) {
    writeFileSync(d('times', name), name);
    setTimes(d('times', name), atime, mtime);
  }
  symlinkSync('ns', d('times/link-ns'));
  setTimes(d('times/link-ns'), '1400000000.111111111', '1400000001.222222222');
  setTimes(d('times/dir-ns/child'), '1300000000.5', '1300000000.25');
  setTimes(d('times/dir-ns'), '1234567890.123456789', '1234567891.987654321');

  const cf = options.casefold === true ? populateCasefold(dir) : { small: [], big: [] };
  return { bigDirNames: [], casefoldNames: cf.small, casefoldBigNames: cf.big };
}

export interface KernelWriteOptions {
  /** The filesystem has extents (fallocate works). */
  readonly extents: boolean;
  /** Files the kernel creates in /kw/htree (it indexes the directory as it grows). */
  readonly htreeEntries: number;
  /** Xattr values too large for a block (the ea_inode feature: values in their own inodes). */
  readonly largeXattrs?: boolean;
}

/**
 * Mutations made through a read-write kernel mount at `mnt`: the structures the
 * kernel writes and mke2fs -d does not (ns times, shared xattr blocks, unwritten
 * extents, deleted entries, a kernel-built htree, a truncated tail).
 */
export function kernelWrites(mnt: string, options: KernelWriteOptions): void {
  const k = (...parts: string[]): string => join(mnt, 'kw', ...parts);
  mkdirSync(k('dir-ns/sub'), { recursive: true });
  writeFileSync(k('written'), randomBytes(500, 70 * KiB + 3));
  // Many small appends: delayed allocation, possibly several extents.
  const fd = openSync(k('appended'), 'w');
  for (let i = 0; i < 100; i++) writeSync(fd, randomBytes(600 + i, 1000));
  closeSync(fd);
  writeFileSync(k('truncated'), randomBytes(700, MiB));
  const tfd = openSync(k('truncated'), 'r+');
  ftruncateSync(tfd, 5000);
  closeSync(tfd);
  writeSparse(k('sparse-kernel'), 3 * MiB + 1, [
    [MiB, randomBytes(701, 4 * KiB)],
    [3 * MiB, tag1('!')],
  ]);
  // The same xattrs on three files: the kernel shares one xattr block (refcount 3).
  const shared = randomBytes(800, 400);
  for (const n of ['shared-1', 'shared-2', 'shared-3']) {
    writeFileSync(k(n), n);
    setfattr(k(n), 'user.shared', shared);
    setfattr(k(n), 'user.shared2', shared.subarray(0, 150));
  }
  writeFileSync(k('acl'), 'acl by the kernel');
  setfacl(k('acl'), '-m', 'u:777:rw,g:888:r');
  symlinkSync('x'.repeat(200), k('slow-symlink'));
  symlinkSync('fast', k('fast-symlink'));
  // Deleted entries: create 120 files, remove every third.
  mkdirSync(k('holey-dir'));
  for (let i = 0; i < 120; i++) writeFileSync(k('holey-dir', `f${i}`), `${i}`);
  for (let i = 0; i < 120; i += 3) rmSync(k('holey-dir', `f${i}`));
  if (options.extents) {
    run('fallocate', ['-l', String(256 * KiB), k('unwritten')]);
    run('fallocate', ['-l', String(256 * KiB), k('unwritten-partly')]);
    const pfd = openSync(k('unwritten-partly'), 'r+');
    writeSync(pfd, tag1('written into an unwritten extent'), 0, 32, 8 * KiB + 5);
    closeSync(pfd);
    run('fallocate', ['-n', '-o', String(MiB), '-l', String(64 * KiB), k('written')]); // past EOF, keep size
  }
  if (options.largeXattrs === true) {
    // Through a dump file: a 64 KiB value in hex is longer than one argv string may be.
    const batch = new XattrBatch();
    const huge = randomBytes(900, 20000);
    for (const n of ['ea-1', 'ea-2']) {
      writeFileSync(k(n), n);
      batch.set(k(n), 'user.huge', huge); // one EA inode, referenced twice
    }
    batch.set(k('ea-1'), 'user.max', randomBytes(901, 65536)); // the VFS limit
    batch.set(k('ea-2'), 'user.small', 'small');
    batch.apply(join(mnt, '..'));
  }
  if (options.htreeEntries > 0) {
    mkdirSync(k('htree'));
    for (let i = 0; i < options.htreeEntries; i++) closeSync(openSync(k('htree', htreeName(i)), 'w'));
  }
  // Times the kernel stores with nanoseconds and epoch bits (clamped with 128-byte inodes).
  for (const [name, atime, mtime] of [
    ['time-ns', '1700000000.000000001', '1700000001.999999999'],
    ['time-pre-1970', '-1.999999999', '-2147483648.5'],
    ['time-2038', '2147483647.999999999', '2147483648.000000001'],
    ['time-2106', '4294967295.25', '4294967296.75'],
    ['time-2400', '13000000000.123', '13000000000.999999999'],
  ] as const) {
    writeFileSync(k(name), name);
    setTimes(k(name), atime, mtime);
  }
  setTimes(k('written'), '1700000000.000000001', '1700000001.999999999');
  run('mknod', [k('char-300-70000'), 'c', '300', '70000']);
  run('mknod', [k('block-8-1'), 'b', '8', '1']);
  linkSync(k('written'), k('written-link'));
  setTimes(k('dir-ns/sub'), '1111111111.111111111', '1222222222.222222222');
  setTimes(k('dir-ns'), '1333333333.333333333', '1444444444.444444444');
  run('sync', []);
}

function tag1(s: string): Buffer {
  return Buffer.from(s);
}

/** Long names (240 bytes) that make a directory's htree deep on 1 KiB blocks. */
export function longName(i: number): string {
  return `long-${String(i).padStart(6, '0')}-`.padEnd(240, 'abcdefghij'[i % 10] ?? 'x');
}

/** Names for a big directory: distinct, not in hash order. */
export function bigDirName(i: number): string {
  return `entry-${String(i).padStart(6, '0')}-${(i * 2654435761) % 1000003}`;
}

/**
 * Names for /kw/htree: long enough that 2000 of them need a two-level htree on 1 KiB
 * blocks; every third has bytes >= 0x80, which the signed and unsigned hash variants
 * hash differently.
 */
export function htreeName(i: number): string {
  return `kernel-entry-${i}-${(i * 40503) % 65536}-${i % 3 === 0 ? 'ñé' : ''}`.padEnd(60, 'q');
}

/** The kernel creates `count` empty files named `name(i)` in `dir` (it builds the htree as the directory grows). */
export function kernelBigDir(dir: string, count: number, name: (i: number) => string): string[] {
  mkdirSync(dir, { recursive: true });
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const n = name(i);
    names.push(n);
    closeSync(openSync(join(dir, n), 'w'));
  }
  return names;
}
