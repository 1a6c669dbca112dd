/**
 * WRITE through a FuseSession (no kernel) when the filesystem runs out of space half-way
 * through a request. A write(2) that reached the server directly may be acknowledged
 * short (the caller sees the short count and retries into ENOSPC); a write-back from the
 * page cache (FUSE_WRITE_CACHE, writeback_cache mounts) must not be: the kernel takes a
 * short count as the pages written and drops the rest without an error, so the server
 * answers ENOSPC and fsync/close report it. COPY_FILE_RANGE counts what it wrote. Either
 * way e2fsck finds the image clean. And FLUSH after a read that changed only atime
 * writes nothing back (the atime goes with the next write-back). READDIRPLUS has the
 * device fetch the listed subdirectories' blocks.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Ext4 } from '../src/fs/ext4.js';
import { scratchDir } from './helpers/images.js';
import { RecordingChannel } from './helpers/recording-channel.js';
import { FileChannel } from '../src/io/file-channel.js';
import { CachingChannel } from '../src/cache/caching-channel.js';
import { Opcode, SessionClient, struct, WRITE_CACHE } from './helpers/fuse-client.js';
import { fillFile, fsckClean } from './helpers/twin.js';

const ENOSPC = 28;
const KIB = 1024;

/** A 1 KiB-block image whose data blocks are all taken but one; returns its path and /f's inode. */
function nearlyFull(name: string): { image: string; ino: number } {
  const image = join(scratchDir(), `${name}.img`);
  fs.rmSync(image, { force: true });
  execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '1024', '-m', '0', image, '2M'], { stdio: 'ignore' });
  const fsys = Ext4.openFile(image, { write: true });
  fsys.writeFile('/f', '');
  fsys.writeFile('/src', new Uint8Array(3 * KIB).fill(0x5a));
  fsys.writeFile('/filler', '');
  const filler = fsys.stat('/filler').ino;
  const size = fillFile(fsys, filler, KIB);
  // Give one block back: the last of the filler's data.
  fsys.truncate(filler, size - KIB);
  const ino = fsys.stat('/f').ino;
  fsys.close();
  return { image, ino };
}

describe('WRITE through the session when the space runs out half-way', () => {
  for (const cache of [false, true]) {
    it(cache ? 'a page-cache write-back (WRITE_CACHE) fails with ENOSPC instead of a short count' : 'a direct write is acknowledged short: the bytes that fit', () => {
      const { image, ino } = nearlyFull(`session-enospc-${cache ? 'cache' : 'direct'}`);
      const fsys = Ext4.openFile(image, { write: true });
      const client = new SessionClient(fsys);
      client.init();
      const opened = client.open(ino, false, 0o2);
      assert.ok('fh' in opened, 'OPEN');
      const data = new Uint8Array(3 * KIB).fill(0x5a);
      const result = client.write(ino, opened.fh, 0, data, cache ? WRITE_CACHE : 0);
      if (cache) assert.equal(result, -ENOSPC);
      else assert.equal(result, KIB, 'the one free block, and no more');
      assert.equal(client.release(ino, opened.fh, false), 0);
      fsys.close();
      fsckClean(image);
      // What was written stays written, readable and accounted for.
      const back = Ext4.openFile(image);
      assert.equal(back.stat('/f').size, KIB);
      assert.deepEqual(back.readFile('/f'), data.subarray(0, KIB));
      back.close();
    });
  }

  it('COPY_FILE_RANGE reports the bytes it copied, not the bytes it read', () => {
    const { image, ino } = nearlyFull('session-enospc-copy');
    const fsys = Ext4.openFile(image, { write: true });
    const src = fsys.stat('/src').ino;
    const client = new SessionClient(fsys);
    client.init();
    // fuse_copy_file_range_in: fh_in, off_in, nodeid_out, fh_out, off_out, len, flags
    const r = client.request(Opcode.COPY_FILE_RANGE, src, struct(56, (v) => (v.setBigUint64(16, BigInt(ino), true), v.setBigUint64(40, BigInt(3 * KIB), true))));
    assert.equal(r.errno, 0);
    assert.equal(r.body.readUInt32LE(0), KIB, 'one block fitted');
    fsys.close();
    fsckClean(image);
    const back = Ext4.openFile(image);
    assert.equal(back.stat('/f').size, KIB);
    back.close();
  });
});

describe('FLUSH and access times', () => {
  it('a close after a read that only changed atime writes nothing back; the atime reaches the image later', () => {
    const image = join(scratchDir(), 'session-flush-atime.img');
    fs.rmSync(image, { force: true });
    execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '1024', image, '4M'], { stdio: 'ignore' });
    const old = { seconds: 946_684_800, nanoseconds: 0 }; // 2000-01-01: relatime updates it at the next read
    let fsys = Ext4.openFile(image, { write: true });
    fsys.writeFile('/f', 'data');
    fsys.utimes('/f', old, old);
    fsys.close();
    fsys = Ext4.openFile(image, { write: true });
    const ino = fsys.stat('/f').ino;
    const client = new SessionClient(fsys);
    client.init();
    const opened = client.open(ino, false, 0);
    assert.ok('fh' in opened, 'OPEN');
    const flush = (): number => client.request(Opcode.FLUSH, ino, struct(24, (v) => v.setBigUint64(0, opened.fh, true))).errno;
    assert.equal(flush(), 0);
    const before = fsys.stats().dirty;
    assert.equal(client.read(ino, opened.fh, 0, 100)?.toString(), 'data');
    assert.ok(fsys.stat('/f').atime.seconds > old.seconds, 'relatime updated atime');
    assert.ok(client.notifications.length > 0, 'and told the kernel');
    assert.ok(fsys.stats().dirty > before, 'the inode is dirty in the cache');
    // The close: nothing written back for an access time alone.
    assert.equal(flush(), 0);
    assert.ok(fsys.stats().dirty > before, 'still dirty after FLUSH');
    const onImage = (): number => {
      // A second look at the image (no lock: the session's Ext4 holds it read-write).
      const look = Ext4.openFile(image, { lock: false });
      try {
        return look.stat('/f').atime.seconds;
      } finally {
        look.close();
      }
    };
    assert.equal(onImage(), old.seconds, 'not on the image yet');
    // Anything else changed: the next FLUSH writes everything back, the atime too.
    assert.equal(client.write(ino, opened.fh, 4, new TextEncoder().encode('!')), 1);
    assert.equal(flush(), 0);
    assert.equal(fsys.stats().dirty, 0);
    assert.ok(onImage() > old.seconds, 'on the image now');
    assert.equal(client.release(ino, opened.fh, false), 0);
    fsys.close();
    fsckClean(image);
  });
});

describe('READDIRPLUS and read-ahead', () => {
  it("hints each listed subdirectory's blocks to the device, and nothing for files", () => {
    const src = join(scratchDir(), 'session-hints.src');
    fs.rmSync(src, { recursive: true, force: true });
    for (const d of ['a', 'b/inner', 'c']) fs.mkdirSync(join(src, d), { recursive: true });
    for (let i = 0; i < 40; i++) fs.writeFileSync(join(src, 'c', `long-file-name-${i}`), `${i}`); // c: several blocks
    fs.writeFileSync(join(src, 'file'), 'data');
    const image = join(scratchDir(), 'session-hints.img');
    execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '1024', '-d', src, image, '8M'], { stdio: 'ignore' });
    const rec = new RecordingChannel(FileChannel.open(image, { readOnly: true }));
    const client = new SessionClient(Ext4.open(new CachingChannel(rec)));
    client.init();
    const dir = client.open(1, true);
    assert.ok('fh' in dir);
    rec.reset();
    const listed = client.readdirplus(1, dir.fh, 0n, 64 << 10);
    assert.deepEqual(listed?.map((e) => e.name.toString()).sort(), ['.', '..', 'a', 'b', 'c', 'file', 'lost+found']);
    const hinted = rec.ops.filter((op) => op[0] === 'readahead').flatMap(([, first, count]) => Array.from({ length: count as number }, (_, i) => (first as number) + i));
    const blocksOf = (path: string) => execFileSync('debugfs', ['-R', `blocks ${path}`, image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(/\s+/).map(Number);
    assert.deepEqual(hinted.sort((x, y) => x - y), ['/a', '/b', '/c', '/lost+found'].flatMap(blocksOf).sort((x, y) => x - y));
    assert.ok(blocksOf('/c').length > 1, 'fixture: /c has several blocks');
    client.release(1, dir.fh, true);
  });
});
