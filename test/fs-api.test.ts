/**
 * The filesystem API's own semantics: errno codes, cookies, streams, the inode
 * cache. (What the API reads is compared with the kernel in fs-matrix.test.ts.)
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { Ext4, ROOT_INO } from '../src/fs/ext4.js';
import { InodeCache } from '../src/fs/inode-cache.js';
import { MemoryChannel } from '../src/io/memory-channel.js';
import { CachingChannel } from '../src/cache/caching-channel.js';
import { quoteName } from '../src/errors.js';
import { FsError } from '../src/errors.js';
import { makeImage, debugfs, dumpe2fsHeader } from './helpers/images.js';
import { RecordingChannel } from './helpers/recording-channel.js';
import type { Inode } from '../src/ondisk/inode.js';
import type { InodeListing, Stat } from '../src/fs/types.js';

function isCode(code: string) {
  return (e: unknown) => e instanceof FsError && e.code === code;
}

let image = '';
before(() => {
  image = makeImage({
    name: 'fs-api',
    size: '32M',
    mkfsArgs: ['-t', 'ext4', '-b', '1024'],
    populate: (dir) => {
      fs.writeFileSync(join(dir, 'hello.txt'), 'hello world\n');
      fs.mkdirSync(join(dir, 'sub/deeper'), { recursive: true });
      fs.writeFileSync(join(dir, 'sub/deeper/file'), 'deep');
      fs.writeFileSync(join(dir, 'sub/deeper/ünï-名'), 'not ascii');
      const big = Buffer.alloc(3 * 1024 * 1024 + 123);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
      fs.writeFileSync(join(dir, 'big.bin'), big);
      fs.symlinkSync('loop2', join(dir, 'loop1'));
      fs.symlinkSync('loop1', join(dir, 'loop2'));
      fs.symlinkSync('sub/deeper', join(dir, 'dirlink'));
      fs.symlinkSync('../hello.txt', join(dir, 'sub/up'));
      fs.symlinkSync('/sub/deeper/file', join(dir, 'abs'));
      for (let i = 0; i < 500; i++) fs.writeFileSync(join(dir, `sub/n${i}`), String(i));
    },
  });
});

/** What a path operation answers, as one comparable line: the inode and kind, or the errno code. */
function outcome(x: Ext4, path: string, op: 'lstat' | 'stat' | 'resolve' | 'readdir'): string {
  try {
    if (op === 'resolve') return `ino ${x.resolve(path, false)} ${x.resolve(path, true)}`;
    if (op === 'readdir') return x.readdir(path).join(',');
    const st = x[op](path);
    return `${st.ino} ${st.kind}`;
  } catch (error) {
    if (error instanceof FsError) return error.code;
    throw error;
  }
}

describe('Ext4 path API errors and resolution', () => {
  it('resolves relative and absolute symlinks, .. and .', () => {
    const e = Ext4.openFile(image);
    assert.equal(new TextDecoder().decode(e.readFile('/dirlink/file')), 'deep');
    assert.equal(new TextDecoder().decode(e.readFile('sub/up')), 'hello world\n');
    assert.equal(new TextDecoder().decode(e.readFile('/abs')), 'deep');
    assert.equal(e.stat('/sub/deeper/../..').ino, ROOT_INO);
    assert.equal(e.stat('/sub/./deeper/.').ino, e.stat('/dirlink').ino);
    assert.equal(e.lstat('/dirlink').kind, 'symlink');
    assert.equal(e.stat('/dirlink').kind, 'directory');
    assert.equal(e.realpath('/dirlink'), '/sub/deeper');
    assert.equal(e.readlink('/sub/up'), '../hello.txt');
    e.close();
  });

  it("a directory readdir listed resolves the paths under it as a fresh walk does (read-only); a writable filesystem keeps no such shortcut", () => {
    const bytes = new Uint8Array(fs.readFileSync(image));
    const open = () => Ext4.open(new MemoryChannel(bytes, { blockSize: 1024 }));
    const listed = open();
    const dirs = ['/', '/sub', '/sub/deeper', 'sub', '/sub/', '/sub/../sub', '/dirlink', 'dirlink', '/dirlink/', '/sub/./deeper', '/dirlink/..'];
    let compared = 0;
    // Not directories: readdir fails, and nothing under them resolves.
    for (const notDir of ['/hello.txt', '/loop1', '/missing']) assert.throws(() => listed.readdir(notDir), FsError);
    for (const dir of [...dirs, '/hello.txt', '/loop1', '/missing']) {
      const names = [...(dirs.includes(dir) ? listed.readdir(dir) : []), '.', '..', 'missing', 'hello.txt', 'file', 'up', 'loop1', 'abs', 'dirlink', 'deeper', 'ünï-名', 'a\u0000b', 'x'.repeat(256)];
      for (const name of names) {
        const path = dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`;
        // A fresh filesystem (nothing listed) for every path: it resolves the whole path.
        const fresh = open();
        for (const op of ['lstat', 'stat', 'resolve'] as const) {
          assert.equal(outcome(listed, path, op), outcome(fresh, path, op), `${op} ${path}`);
          compared++;
        }
        if (path.length > 4096 / 3) assert.fail('test paths are short');
      }
    }
    assert.ok(compared > 3000);
    // The shortcut is taken: under a listed directory, only the last name is looked up.
    const hits = (x: Ext4, path: string): number => {
      const before = x.stats().inodeHits;
      x.lstat(path);
      return x.stats().inodeHits - before;
    };
    const fresh = open();
    fresh.lstat('/sub/deeper/file');
    assert.ok(hits(listed, '/sub/deeper/file') < hits(fresh, '/sub/deeper/file'));
    // Writable: a directory renamed after it was listed is not found under its old path.
    const w = Ext4.open(new MemoryChannel(bytes.slice(), { blockSize: 1024 }), { write: true });
    assert.equal(w.readdir('/sub/deeper').length, 2);
    w.rename('/sub/deeper', '/moved');
    assert.throws(() => w.lstat('/sub/deeper/file'), isCode('ENOENT'));
    assert.equal(w.lstat('/moved/file').kind, 'file');
  });

  it('property: any mix of readdir calls and path lookups answers as a filesystem that lists nothing', () => {
    const bytes = new Uint8Array(fs.readFileSync(image));
    const open = () => Ext4.open(new MemoryChannel(bytes, { blockSize: 1024 }));
    const dirPart = fc.constantFrom('', '/', '/sub', 'sub', '/sub/', '/dirlink', 'dirlink', '/sub/deeper', '/sub/..', '/dirlink/..', '/hello.txt', '/loop1', '/nope', '//sub', '/sub//deeper', '/sub/up');
    const namePart = fc.constantFrom('.', '..', 'file', 'hello.txt', 'n7', 'up', 'deeper', 'dirlink', 'abs', 'loop2', 'missing', 'ünï-名', 'n499', '');
    const step = fc.record({ op: fc.constantFrom('lstat', 'stat', 'resolve', 'readdir'), dir: dirPart, name: namePart, joined: fc.boolean() });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), (steps) => {
        const listing = open();
        const reference = open(); // never lists: resolves every path in full
        for (const { op, dir, name, joined } of steps) {
          const path = joined ? `${dir}/${name}` : dir;
          const mine = outcome(listing, path, op);
          const theirs = op === 'readdir' ? outcome(open(), path, op) : outcome(reference, path, op);
          assert.equal(mine, theirs, `${op} ${JSON.stringify(path)}`);
        }
      }),
      { numRuns: 300, seed: 1717 },
    );
  });

  it('answers with the right errno codes', () => {
    const e = Ext4.openFile(image);
    assert.throws(() => e.stat('/nope'), isCode('ENOENT'));
    assert.throws(() => e.stat('/hello.txt/x'), isCode('ENOTDIR'));
    assert.throws(() => e.stat('/loop1'), isCode('ELOOP'));
    assert.throws(() => e.stat('/' + 'x'.repeat(256)), isCode('ENAMETOOLONG'));
    assert.throws(() => e.stat('/a'.repeat(2100)), isCode('ENAMETOOLONG'));
    assert.throws(() => e.readFile('/sub'), isCode('EISDIR'));
    assert.throws(() => e.readdir('/hello.txt'), isCode('ENOTDIR'));
    assert.throws(() => e.readlink('/hello.txt'), isCode('EINVAL'));
    assert.throws(() => e.getxattr('/hello.txt', 'user.none'), isCode('ENODATA'));
    assert.throws(() => e.getxattr('/hello.txt', 'bogus.ns'), isCode('EOPNOTSUPP'));
    const err = (() => {
      try {
        e.stat('/sub/missing');
      } catch (x) {
        return x;
      }
      return undefined;
    })();
    assert.ok(err instanceof FsError && err.context.path === '/sub/missing', 'errors name the path');
    assert.equal(e.exists('/sub/missing'), false);
    assert.equal(e.exists('/sub'), true);
    e.close();
  });

  it('readdir cookies resume exactly where they left off', () => {
    const e = Ext4.openFile(image);
    const dir = e.resolve('/sub');
    const all = [...e.readdirInode(dir)];
    assert.equal(all.length, 500 + 2 + 2, '500 files, deeper, up, . and ..');
    const resumed: string[] = [];
    let cookie = 0;
    for (;;) {
      const page = [];
      for (const entry of e.readdirInode(dir, cookie)) {
        page.push(entry);
        if (page.length === 37) break;
      }
      if (page.length === 0) break;
      resumed.push(...page.map((p) => p.name));
      cookie = (page[page.length - 1] as { next: number }).next;
    }
    assert.deepEqual(resumed, all.map((x) => x.name));
    const names = debugfs(image, 'ls /sub').split(/\s+/).filter((w) => w !== '' && !/^\d+$/.test(w) && !/^\(\d+\)$/.test(w));
    for (const n of names) assert.ok(all.some((x) => x.name === n), `debugfs lists ${n}`);
    e.close();
  });

  it('reads files whole, by range and as a stream, identically', async () => {
    const e = Ext4.openFile(image);
    const whole = e.readFile('/big.bin');
    assert.equal(whole.length, 3 * 1024 * 1024 + 123);
    const ino = e.resolve('/big.bin');
    assert.deepEqual(e.read(ino, 1000, 5000), whole.subarray(1000, 6000));
    assert.deepEqual(e.read(ino, whole.length - 10, 100), whole.subarray(whole.length - 10));
    assert.equal(e.read(ino, whole.length + 5, 10).length, 0);
    const hash = createHash('sha256');
    for await (const chunk of e.createReadStream('/big.bin', { highWaterMark: 65536 })) hash.update(chunk as Buffer);
    assert.equal(hash.digest('hex'), createHash('sha256').update(whole).digest('hex'));
    const dumped = execFileSync('debugfs', ['-R', 'cat /big.bin', image], { maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'ignore'] });
    assert.ok(Buffer.from(whole).equals(dumped), 'same bytes as debugfs cat');
    e.close();
  });

  it('reads into a reused buffer: holes, unwritten extents and inline data come back as zeros', () => {
    const copy = `${image}.into`;
    fs.copyFileSync(image, copy);
    const e = Ext4.openFile(copy, { write: true });
    const ino = e.mknodInode(ROOT_INO, 'sparse', 0o100644, { uid: 0, gid: 0 });
    const pattern = Uint8Array.from({ length: 3000 }, (_, i) => (i % 251) + 1);
    e.write(ino, 5000, pattern); // a hole before
    e.write(ino, 40_000, pattern); // a hole between
    e.fallocate(ino, 0x01 /* KEEP_SIZE */, 60_000, 8192); // unwritten, past EOF
    e.truncate(ino, 70_000); // a hole after, and the unwritten extent inside the size
    const dirty = new Uint8Array(80_000).fill(0xee);
    for (const [offset, length] of [
      [0, 80_000],
      [4000, 2000],
      [7000, 40_000],
      [59_000, 11_000],
      [69_999, 50],
    ] as const) {
      dirty.fill(0xee);
      const got = e.read(ino, offset, length, dirty);
      assert.deepEqual(got, e.read(ino, offset, length), `range ${offset}+${length}`);
      assert.equal(got.buffer, dirty.buffer, 'a view of the buffer given');
    }
    assert.throws(() => e.read(ino, 0, 100, new Uint8Array(99)), isCode('EINVAL'));
    dirty.fill(0xee);
    const hello = e.resolve('/hello.txt');
    assert.equal(Buffer.from(e.read(hello, 0, 100, dirty)).toString(), 'hello world\n');
    e.close();
    fs.rmSync(copy);
  });

  it('SEEK_DATA/SEEK_HOLE on a file whose i_size (2^50) reaches far past its last extent', () => {
    const image = makeImage({ name: 'api-seek-huge', size: '8M', mkfsArgs: ['-t', 'ext4', '-b', '1024'], populate: (dir) => fs.writeFileSync(join(dir, 'f'), Buffer.alloc(5000, 1)) });
    const copy = join(fs.mkdtempSync(join(image, '..', 'seek-')), 'huge.img');
    fs.copyFileSync(image, copy);
    execFileSync('debugfs', ['-w', '-R', 'sif /f size 0x4000000000000', copy], { stdio: 'ignore' });
    const fsys = Ext4.openFile(copy);
    const ino = fsys.resolve('/f');
    assert.equal(fsys.getattr(ino).size, 2 ** 50);
    assert.equal(fsys.seek(ino, 0, 'hole'), 5120, 'the hole after the five data blocks');
    assert.equal(fsys.seek(ino, 2 ** 40, 'hole'), 2 ** 40);
    assert.throws(() => fsys.seek(ino, 6000, 'data'), (e: unknown) => e instanceof FsError && e.code === 'ENXIO');
    fsys.close();
  });

  it('refuses non-ext images and filesystems larger than the device', () => {
    const junk = new MemoryChannel(new Uint8Array(1 << 20), { blockSize: 1024 });
    assert.throws(() => Ext4.open(junk), (x: unknown) => x instanceof FsError && x.code === 'EINVAL' && /not an ext2\/ext3\/ext4/.test(x.message));
    const bytes = new Uint8Array(fs.readFileSync(image));
    const truncated = new MemoryChannel(bytes.slice(0, 4 << 20), { blockSize: 1024 });
    assert.throws(() => Ext4.open(truncated), (x: unknown) => x instanceof FsError && x.code === 'EUCLEAN' && /device holds only/.test(x.message));
  });
});

describe('read-ahead hints', () => {
  /** The hints (readahead calls) that reached the device, as [first, count]. */
  function hints(rec: RecordingChannel): [number, number][] {
    return rec.ops.filter((op) => op[0] === 'readahead').map((op) => [op[1] as number, op[2] as number]);
  }

  it("prefetchBlocks hints a directory's and a file's blocks, only uncached ones, and nothing for what has none", () => {
    const bytes = new Uint8Array(fs.readFileSync(image));
    const rec = new RecordingChannel(new MemoryChannel(bytes, { blockSize: 1024 }));
    const e = Ext4.open(new CachingChannel(rec, { cacheSize: 1 << 20 }));
    const blocksOf = (path: string) => debugfs(image, `blocks ${path}`).trim().split(/\s+/).map(Number);
    const expand = (runs: [number, number][]) => runs.flatMap(([first, count]) => Array.from({ length: count }, (_, i) => first + i));
    const sub = e.resolve('/sub');
    const hello = e.resolve('/hello.txt');
    rec.reset();
    // /sub's seven blocks need an extent tree of depth 1: its one index block is hinted.
    const leaf = /\(ETB0\):(\d+)/.exec(debugfs(image, 'stat /sub'));
    assert.ok(leaf !== null);
    e.prefetchBlocks(sub);
    assert.deepEqual(hints(rec), [[Number(leaf[1]), 1]]);
    assert.equal(rec.ops.filter((op) => op[0] === 'read').length, 0, 'nothing is read for a hint');
    const deeper = e.resolve('/sub/deeper');
    rec.reset();
    e.prefetchBlocks(deeper);
    e.prefetchBlocks(hello);
    assert.deepEqual(expand(hints(rec)), [...blocksOf('/sub/deeper'), ...blocksOf('/hello.txt')], 'the blocks of a directory and of a file');
    const up = e.resolve('/sub/up', false);
    e.readdir('/sub');
    rec.reset();
    e.prefetchBlocks(sub);
    e.prefetchBlocks(up); // a fast symlink: its target is in the inode
    e.prefetchBlocks(99_999_999); // no such inode: skipped, no error
    assert.deepEqual(hints(rec), [], 'cached blocks, a fast symlink and a bad inode number give no hint');
  });

  /** Per group, from dumpe2fs: its inode table's first block, the table blocks with inodes in use (256-byte inodes, 1 KiB blocks), INODE_UNINIT. */
  function groupTables(): { table: number; used: number; uninit: boolean }[] {
    const dump = execFileSync('dumpe2fs', [image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const perGroup = Number(/Inodes per group:\s+(\d+)/.exec(dump)?.[1]);
    return [...dump.matchAll(/^Group \d+: .*?(\[[^\]]*\])?\n\s+.*?Inode table at (\d+)-\d+[^\n]*\n[^\n]*?(\d+) unused inodes/gms)].map((m) => ({
      table: Number(m[2]),
      used: Math.ceil(((perGroup - Number(m[3])) * 256) / 1024),
      uninit: (m[1] ?? '').includes('INODE_UNINIT'),
    }));
  }

  it('prefetchInodeTables hints the inodes in use of each group, skipping uninitialized tables, up to a byte budget', () => {
    const want = groupTables()
      .filter((g) => !g.uninit)
      .map((g): [number, number] => [g.table, g.used]);
    assert.ok(want.length >= 1 && (want[0] as [number, number])[1] > 0, `fixture: ${JSON.stringify(want)}`);
    const bytes = new Uint8Array(fs.readFileSync(image));
    const rec = new RecordingChannel(new MemoryChannel(bytes, { blockSize: 1024 }));
    const e = Ext4.open(new CachingChannel(rec, { cacheSize: 4 << 20 }));
    rec.reset();
    e.prefetchInodeTables();
    assert.deepEqual(hints(rec), want);
    assert.deepEqual(rec.ops.filter((op) => op[0] === 'read' && (op[1] as number) >= (want[0] as [number, number])[0]), [], 'no table block read (only group descriptors)');
    rec.reset();
    e.prefetchInodeTables(10 * 1024);
    assert.deepEqual(hints(rec), [[(want[0] as [number, number])[0], 10]], 'a 10 KiB budget: ten 1 KiB blocks');
  });

  it("a hint into the next group's table never fails the read that led to it (a damaged descriptor there)", () => {
    const bytes = new Uint8Array(fs.readFileSync(image));
    const descSize = Number(dumpe2fsHeader(image).get('Group descriptor size') ?? 32);
    // 1 KiB blocks: the descriptor table is block 2; group 1's bg_checksum (0x1e) made wrong.
    const at = 2 * 1024 + descSize + 0x1e;
    bytes[at] = ((bytes[at] as number) ^ 0xff) & 0xff;
    const e = Ext4.open(new CachingChannel(new MemoryChannel(bytes, { blockSize: 1024 }), { cacheSize: 4 << 20 }), { inodeCacheSize: 0 });
    assert.throws(() => e.readInode(2048 + 1), (x: unknown) => x instanceof FsError && x.code === 'EUCLEAN', 'the damage is there');
    // Table blocks 384 and 448 of group 0 (four 256-byte inodes per block): the second
    // read's run ends at the table's end, so the next run to hint is group 1's.
    e.readInode(384 * 4 + 1);
    assert.doesNotThrow(() => e.readInode(448 * 4 + 1));
  });

  it('an inode-table miss next to the last run read hints the runs after it', () => {
    const bytes = new Uint8Array(fs.readFileSync(image));
    const rec = new RecordingChannel(new MemoryChannel(bytes, { blockSize: 1024 }));
    const e = Ext4.open(new CachingChannel(rec, { cacheSize: 4 << 20 }), { inodeCacheSize: 0 });
    const where = /located at block (\d+), offset 0x0+\b/.exec(debugfs(image, 'imap <1>'));
    assert.ok(where !== null);
    const table = Number(where[1]);
    const used = (groupTables()[0] as { used: number }).used; // group 0's table blocks with inodes in use
    assert.ok(used > 128 && used < 256, `fixture: ${used} table blocks in use in group 0`);
    rec.reset();
    e.readInode(1); // table block 0: a run of 64 blocks read, the first: no hint
    assert.deepEqual(hints(rec), []);
    e.readInode(64 * 4 + 1); // table block 64, where that run ended: hint 128.. (up to 2 runs, not past the inodes in use)
    assert.deepEqual(hints(rec), [[table + 128, used - 128]]);
    rec.reset();
    e.readInode(4 * 4 + 1); // cached: nothing
    e.readInode(2 * 4 + 2);
    assert.deepEqual(rec.ops, []);
    // Without a cache: one read per inode, neither runs nor hints.
    const rec0 = new RecordingChannel(new MemoryChannel(bytes, { blockSize: 1024 }));
    const e0 = Ext4.open(new CachingChannel(rec0, { cacheSize: 0 }), { inodeCacheSize: 0 });
    rec0.reset();
    e0.readInode(1);
    e0.readInode(64 * 4 + 1);
    e0.readInode(65 * 4 + 1);
    assert.deepEqual(
      rec0.ops.filter((op) => op[0] !== 'read' || (op[1] as number) >= table),
      [
        ['read', table, 1],
        ['read', table + 64, 1],
        ['read', table + 65, 1],
      ],
      'the inode-table blocks, one each, and nothing else but the group descriptors',
    );
  });
});

describe('inode cache', () => {
  it('verifies an inode once, when it enters the cache', () => {
    const bytes = new Uint8Array(fs.readFileSync(image));
    const e = Ext4.open(new CachingChannel(new MemoryChannel(bytes, { blockSize: 1024 }), { cacheSize: 0 }), { inodeCacheSize: 100 });
    const ino = e.resolve('/hello.txt');
    e.getattr(ino);
    // Corrupt the inode on the "device" behind the caches: its mode bytes.
    const where = /Inode \d+ is part of block group \d+\s+located at block (\d+), offset (0x[0-9a-f]+)/.exec(debugfs(image, `imap <${ino}>`));
    assert.ok(where !== null);
    const off = Number(where[1]) * 1024 + Number(where[2]);
    (bytes as Uint8Array)[off + 1] = ((bytes[off + 1] as number) ^ 0x01) & 0xff;
    assert.equal(e.getattr(ino).size, 12, 'served from the inode cache: not re-read, not re-verified');
    const fresh = Ext4.open(new CachingChannel(new MemoryChannel(bytes, { blockSize: 1024 }), { cacheSize: 0 }), { inodeCacheSize: 0 });
    assert.throws(() => fresh.getattr(ino), (x: unknown) => x instanceof FsError && x.code === 'EUCLEAN' && /inode/.test(x.message) && x.context.inode === ino);
    const lax = Ext4.open(new CachingChannel(new MemoryChannel(bytes, { blockSize: 1024 }), { cacheSize: 0 }), { inodeCacheSize: 0, checksums: false });
    assert.equal(lax.getattr(ino).size, 12, 'checksums: false reads past the mismatch');
  });

  it('getattr with cache: false reads and verifies without filling the cache', () => {
    const bytes = new Uint8Array(fs.readFileSync(image));
    const ino = Ext4.open(new MemoryChannel(bytes, { blockSize: 1024 })).resolve('/hello.txt');
    const e = Ext4.open(new CachingChannel(new MemoryChannel(bytes, { blockSize: 1024 }), { cacheSize: 0 }), { inodeCacheSize: 100 });
    const cachedBefore = e.stats().inodesCached;
    const peeked = e.getattr(ino, { cache: false });
    assert.equal(e.stats().inodesCached, cachedBefore, 'not added to the inode cache');
    assert.deepEqual(peeked, e.getattr(ino));
    assert.equal(e.stats().inodesCached, cachedBefore, 'the remembered read serves a plain getattr too');
    e.getattr(ROOT_INO, { cache: false }); // remembered instead
    assert.deepEqual(peeked, e.getattr(ino));
    assert.equal(e.stats().inodesCached, cachedBefore + 1, 'a plain getattr caches it');
    const where = /Inode \d+ is part of block group \d+\s+located at block (\d+), offset (0x[0-9a-f]+)/.exec(debugfs(image, `imap <${ino}>`));
    assert.ok(where !== null);
    const off = Number(where[1]) * 1024 + Number(where[2]);
    (bytes as Uint8Array)[off + 1] = ((bytes[off + 1] as number) ^ 0x01) & 0xff;
    assert.equal(e.getattr(ino, { cache: false }).size, 12, 'a cached inode is served from the cache');
    const fresh = Ext4.open(new CachingChannel(new MemoryChannel(bytes, { blockSize: 1024 }), { cacheSize: 0 }), { inodeCacheSize: 100 });
    assert.throws(() => fresh.getattr(ino, { cache: false }), (x: unknown) => x instanceof FsError && x.code === 'EUCLEAN' && x.context.inode === ino);
  });

  it('describeInode answers as getattr, readlinkInode and hasXattrInode, without filling the cache', () => {
    const bytes = new Uint8Array(fs.readFileSync(image));
    const e = Ext4.open(new MemoryChannel(bytes, { blockSize: 1024 }), { write: true, inodeCacheSize: 100 });
    const file = e.resolve('/hello.txt');
    e.setxattrInode(file, 'user.mark', new Uint8Array([1, 2]));
    // A symlink whose target is in a data block, and one with an xattr block: describeInode
    // reads more through the cache for those (the record must not be read in place then).
    e.symlink(`/${'long/'.repeat(40)}target`, '/long-link');
    // (trusted.*: user.* attributes are for regular files and directories only.)
    e.setxattrInode(e.resolve('/long-link', false), 'trusted.mark', new Uint8Array(600).fill(7));
    // Kinds read straight from the table (a fifo, a socket) and not (a device).
    e.mknodInode(ROOT_INO, 'fifo', 0o010640, { uid: 7, gid: 8 });
    e.mknodInode(ROOT_INO, 'sock', 0o140600, { uid: 0, gid: 0 });
    e.mknodInode(ROOT_INO, 'tty', 0o020620, { uid: 0, gid: 5 }, [4, 1030]);
    e.sync();
    const names = ['user.mark', 'user.other', 'trusted.mark'] as const;
    const paths = ['/hello.txt', '/sub/up', '/abs', '/sub', '/big.bin', '/long-link', '/fifo', '/sock', '/tty', '/sub/n7'];
    const expected = (r: Ext4, ino: number, st: Stat): InodeListing => ({
      kind: st.kind,
      mode: st.mode,
      nlink: st.nlink,
      uid: st.uid,
      gid: st.gid,
      size: st.size,
      blocks: st.blocks,
      rdevMajor: st.rdevMajor,
      rdevMinor: st.rdevMinor,
      mtimeSeconds: st.mtime.seconds,
      mtimeNanoseconds: st.mtime.nanoseconds,
      target: st.kind === 'symlink' ? r.readlinkInode(ino) : undefined,
      hasXattr: r.hasXattrInode(ino, names),
    });
    // The default cache, and one of two blocks, where every other read recycles a buffer.
    for (const cacheSize of [undefined, 2048]) {
      const channel = new MemoryChannel(bytes, { blockSize: 1024 });
      const r = Ext4.open(cacheSize === undefined ? channel : new CachingChannel(channel, { cacheSize }), { inodeCacheSize: 100 });
      // One object reused for every inode, as ls does: each answer replaces all of it.
      const reused = r.describeInode(r.resolve('/long-link', false), names);
      for (const path of [...paths, ...paths.reverse()]) {
        const ino = r.resolve(path, false);
        const cachedBefore = r.stats().inodesCached;
        const d = r.describeInode(ino, names);
        assert.equal(r.stats().inodesCached, cachedBefore, `${path}: not added to the inode cache`);
        assert.equal(r.describeInode(ino, names, reused), reused);
        const st = r.getattr(ino);
        assert.deepEqual(d, expected(r, ino, st), path);
        assert.deepEqual(reused, d, `${path}: into a reused object`);
        assert.deepEqual(r.getattr(ino, { cache: false }), st, `${path}: getattr without the cache`);
        // Now in the inode cache (getattr above): answered from there, the same.
        assert.deepEqual(r.describeInode(ino, names), d, `${path}: from the inode cache`);
      }
      assert.equal(Buffer.from(r.describeInode(r.resolve('/long-link', false), names).target ?? []).toString(), `/${'long/'.repeat(40)}target`);
      assert.equal(r.describeInode(r.resolve('/long-link', false), names).hasXattr, true);
      assert.deepEqual([r.describeInode(r.resolve('/tty'), []).rdevMajor, r.describeInode(r.resolve('/tty'), []).rdevMinor], [4, 1030]);
      assert.equal(r.describeInode(r.resolve('/fifo'), []).kind, 'fifo');
    }
    const r = Ext4.open(new MemoryChannel(bytes, { blockSize: 1024 }), { inodeCacheSize: 100 });
    assert.equal(r.describeInode(r.resolve('/hello.txt'), names).hasXattr, true);
    assert.equal(r.describeInode(r.resolve('/hello.txt'), ['user.other']).hasXattr, false);
    assert.equal(Buffer.from(r.describeInode(r.resolve('/abs', false), []).target ?? []).toString(), '/sub/deeper/file');
    assert.throws(() => r.describeInode(99_999_999, []), isCode('EUCLEAN'));
    // A writer's changes, still only in its inode cache, are what describeInode answers.
    const w = Ext4.open(new MemoryChannel(bytes, { blockSize: 1024 }), { write: true, inodeCacheSize: 100 });
    const n7 = w.resolve('/sub/n7');
    w.setattr(n7, { mode: 0o600, uid: 1234, mtime: { seconds: 1_000_000_000, nanoseconds: 5 } });
    const seen = w.describeInode(n7, []);
    assert.deepEqual([seen.mode & 0o7777, seen.uid, seen.mtimeSeconds, seen.mtimeNanoseconds], [0o600, 1234, 1_000_000_000, 5]);
  });

  it('describeInode reports a damaged record as getattr does', () => {
    const bytes = new Uint8Array(fs.readFileSync(image));
    const probe = Ext4.open(new MemoryChannel(bytes, { blockSize: 1024 }));
    const ino = probe.resolve('/sub/n3');
    const where = /Inode \d+ is part of block group \d+\s+located at block (\d+), offset (0x[0-9a-f]+)/.exec(debugfs(image, `imap <${ino}>`));
    assert.ok(where !== null);
    const off = Number(where[1]) * 1024 + Number(where[2]);
    const cases: [string, (b: Uint8Array) => void, RegExp][] = [
      ['checksum', (b) => void (b[off + 0x1c] = ((b[off + 0x1c] as number) ^ 0x40) & 0xff), /checksum/],
      ['free inode', (b) => b.fill(0, off, off + 0x80), /free inode|checksum/],
      ['extra_isize', (b) => void (b[off + 0x80] = 0xfe), /i_extra_isize|checksum/],
      ['size_high', (b) => b.fill(0xff, off + 0x6c, off + 0x70), /exceed 2\^53|checksum/],
    ];
    for (const [what, damage, message] of cases) {
      const copy = bytes.slice();
      damage(copy);
      for (const verify of [true, false]) {
        const r = Ext4.open(new MemoryChannel(copy, { blockSize: 1024 }), verify ? {} : { checksums: false });
        let viaGetattr: unknown;
        try {
          r.getattr(ino, { cache: false });
        } catch (error) {
          viaGetattr = error;
        }
        let viaDescribe: unknown;
        try {
          r.describeInode(ino, []);
        } catch (error) {
          viaDescribe = error;
        }
        if (!verify && what === 'checksum') {
          // Unverified, a flipped i_blocks bit is just another value.
          assert.equal(viaGetattr, undefined);
          assert.equal(viaDescribe, undefined);
          continue;
        }
        assert.ok(viaDescribe instanceof FsError && viaGetattr instanceof FsError, `${what}, verify ${verify}`);
        assert.equal(viaDescribe.code, viaGetattr.code, `${what}, verify ${verify}`);
        assert.equal(viaDescribe.message, viaGetattr.message, `${what}, verify ${verify}`);
        if (verify) assert.match(viaDescribe.message, message, what);
      }
    }
  });

  it('read-only with a block cache: getattr answers as a decoded copy does, without filling the inode cache; reading data, or a writer, caches', () => {
    const bytes = new Uint8Array(fs.readFileSync(image));
    const e = Ext4.open(new MemoryChannel(bytes, { blockSize: 1024 }), { inodeCacheSize: 1000 });
    // Without a block cache every inode is decoded as a copy into the inode cache.
    const copies = Ext4.open(new CachingChannel(new MemoryChannel(bytes, { blockSize: 1024 }), { cacheSize: 0 }), { inodeCacheSize: 1000 });
    const before = e.stats().inodesCached;
    let entries = 0;
    let dirs = 0;
    let file = 0;
    const walk = (dir: number): void => {
      dirs++;
      for (const d of e.readdirInode(dir)) {
        if (d.name === '.' || d.name === '..') continue;
        entries++;
        const st = e.getattr(d.ino);
        assert.deepEqual(st, copies.getattr(d.ino), d.name);
        assert.deepEqual(e.getattr(d.ino), st, `${d.name} again`);
        if (st.kind === 'directory') walk(d.ino);
        else if (st.kind === 'file' && file === 0) file = d.ino;
      }
    };
    walk(ROOT_INO);
    assert.ok(entries > 500);
    assert.ok(e.stats().inodesCached - before <= dirs, `only the directories listed were cached (${e.stats().inodesCached - before} of ${entries} entries)`);
    assert.equal(copies.stats().inodesCached, entries, 'the copies went into the inode cache');
    const cached = e.stats().inodesCached;
    e.read(file, 0, 4);
    assert.equal(e.stats().inodesCached, cached + 1, 'reading data caches the inode');
    const w = Ext4.open(new MemoryChannel(bytes.slice(), { blockSize: 1024 }), { write: true, inodeCacheSize: 1000 });
    const wBefore = w.stats().inodesCached;
    w.getattr(file);
    assert.equal(w.stats().inodesCached, wBefore + 1, 'a writable filesystem caches what getattr reads');
  });

  it('is bounded and keeps frequently used inodes over a scan', () => {
    const c = new InodeCache(100);
    const fake = {} as Inode;
    for (let i = 1; i <= 10; i++) c.set(i, fake);
    for (let r = 0; r < 60; r++) for (let i = 1; i <= 10; i++) c.get(i); // priority 1
    for (let i = 1000; i < 1500; i++) c.set(i, fake); // a scan of 500 > 100
    assert.equal(c.size, 100);
    for (let i = 1; i <= 10; i++) assert.notEqual(c.get(i), undefined, `hot inode ${i} kept`);
    assert.equal(c.get(1000), undefined, 'old scan entries reclaimed');
    assert.ok(c.evictions >= 410);
  });
});

describe('forEachEntry', () => {
  it('visits what readdirInode lists, while the visitor reads through a cache of two blocks', () => {
    const bytes = new Uint8Array(fs.readFileSync(image));
    const e = Ext4.open(new CachingChannel(new MemoryChannel(bytes, { blockSize: 1024 }), { cacheSize: 2048 }), { inodeCacheSize: 0 });
    const dir = e.resolve('/sub');
    // (Listed by another instance: a leaf decoded here would be served from its cache.)
    const other = Ext4.open(new MemoryChannel(bytes, { blockSize: 1024 }));
    const expected = [...other.readdirInode(dir)].map((d) => `${d.name} ${d.ino} ${d.kind}`).sort();
    const seen: string[] = [];
    let next = 0;
    e.forEachEntry(dir, (name, ino, kind) => {
      const st = e.getattr(ino, { cache: false });
      assert.equal(st.ino, ino);
      // Two more blocks through the cache: whatever buffer the scan was given is recycled.
      e.channel.view(2000 + (next++ % 1000));
      e.channel.view(3000 + (next % 1000));
      seen.push(`${Buffer.from(name).toString()} ${ino} ${kind}`);
    });
    assert.equal(seen.length, 504);
    assert.deepEqual(seen.sort(), expected);
  });
});

describe('inode cache: the remembered uncached read', () => {
  it('is found until replaced, set, deleted or cleared, and is not counted', () => {
    const c = new InodeCache(10);
    const a = { mode: 1 } as Inode;
    const b = { mode: 2 } as Inode;
    c.remember(5, a);
    assert.equal(c.size, 0);
    assert.equal(c.get(5), a);
    assert.equal(c.get(6), undefined);
    c.remember(6, b);
    assert.equal(c.get(5), undefined, 'replaced by the next remembered read');
    assert.equal(c.get(6), b);
    c.set(6, a);
    assert.equal(c.get(6), a, 'a stored inode wins');
    c.delete(6);
    assert.equal(c.get(6), undefined, 'deleted: neither cached nor remembered');
    c.remember(7, b);
    c.clear();
    assert.equal(c.get(7), undefined);
    const none = new InodeCache(0);
    none.remember(3, a);
    none.set(3, b);
    assert.equal(none.get(3), undefined, 'a store forgets it even where nothing is cached');
  });

  it('getattr without the cache, then the calls about the same inode, decode it once', () => {
    const bytes = new Uint8Array(fs.readFileSync(image));
    const probe = Ext4.open(new MemoryChannel(bytes, { blockSize: 1024 }));
    const ino = probe.resolve('/sub/n5');
    const other = probe.resolve('/sub/n6');
    const e = Ext4.open(new MemoryChannel(bytes, { blockSize: 1024 }), { inodeCacheSize: 100 });
    const before = e.stats();
    const st = e.getattr(ino, { cache: false });
    assert.deepEqual(e.listxattrInode(ino), []);
    assert.equal(e.getattr(ino).size, st.size);
    const after = e.stats();
    assert.equal(after.inodeMisses - before.inodeMisses, 1, 'one read of the table');
    assert.equal(after.inodesCached, before.inodesCached, 'nothing added to the cache');
    e.getattr(other, { cache: false });
    e.getattr(ino, { cache: false });
    assert.equal(e.stats().inodeMisses - after.inodeMisses, 2, 'only the last uncached read is remembered');
    // A writer's change replaces what was remembered.
    const w = Ext4.open(new MemoryChannel(bytes.slice(), { blockSize: 1024 }), { write: true, inodeCacheSize: 0 });
    assert.equal(w.getattr(ino, { cache: false }).uid, 0);
    w.setattr(ino, { uid: 4321 });
    assert.equal(w.getattr(ino, { cache: false }).uid, 4321);
    assert.equal(w.getattr(ino).uid, 4321);
  });
});

describe('names in error messages', () => {
  it('quoteName escapes every control character of a raw name (C0, DEL, C1) and keeps the rest', () => {
    const raw = new Uint8Array([0x61, 0x0a, 0x1b, 0x5b, 0x7f, 0xc2, 0x9b, 0xc3, 0xa9, 0xff, 0x22]);
    const q = quoteName(raw);
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(q, /[\u0000-\u001f\u007f-\u009f]/);
    assert.equal(q, '"a\\n\\u001b[\\u007f\\u009bé\ufffd\\""');
  });
});
