import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { FileChannel } from '../src/io/file-channel.js';
import { FsError } from '../src/errors.js';
import { scratchDir, makeImage } from './helpers/images.js';

const BS = 4096;

function makeFile(name: string, blocks: number, seed: number): string {
  const path = join(scratchDir(), name);
  const data = new Uint8Array(blocks * BS);
  for (let i = 0; i < data.length; i++) data[i] = (i * 3 + seed) & 0xff;
  fs.writeFileSync(path, data);
  return path;
}

describe('FileChannel on an image file', () => {
  it('reads and writes blocks and bytes at positions, and flushes', () => {
    const path = makeFile('rw.img', 16, 1);
    const ch = FileChannel.open(path, { blockSize: BS });
    assert.equal(ch.sizeBytes, 16 * BS);
    const b3 = ch.read(3, 1);
    assert.equal(b3[0], (3 * BS * 3 + 1) & 0xff);
    ch.write(5, 2, new Uint8Array(2 * BS).fill(0xab));
    ch.writeBytes(BS * 9 + 7, new Uint8Array([1, 2, 3]));
    ch.flush();
    assert.equal(ch.stats().flushes, 1);
    ch.close();
    const raw = fs.readFileSync(path);
    assert.ok(raw.subarray(5 * BS, 7 * BS).every((x) => x === 0xab));
    assert.deepEqual([...raw.subarray(9 * BS + 7, 9 * BS + 10)], [1, 2, 3]);
  });

  it('honours an offset and size window inside a larger file', () => {
    const path = makeFile('window.img', 16, 2);
    const raw = fs.readFileSync(path);
    const ch = FileChannel.open(path, { blockSize: BS, offset: 2 * BS + 512, size: 4 * BS });
    assert.equal(ch.sizeBytes, 4 * BS);
    assert.deepEqual(ch.read(0, 1), new Uint8Array(raw.subarray(2 * BS + 512, 3 * BS + 512)));
    assert.throws(() => ch.read(4, 1), (e: unknown) => e instanceof FsError && e.code === 'EIO' && /past the end/.test(e.message));
    ch.write(1, 1, new Uint8Array(BS).fill(7));
    ch.close();
    const after = fs.readFileSync(path);
    assert.ok(after.subarray(3 * BS + 512, 4 * BS + 512).every((x) => x === 7));
    assert.equal(after[3 * BS + 511], raw[3 * BS + 511]);
    assert.throws(() => FileChannel.open(path, { offset: 17 * BS }), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
  });

  it('writeBlocks writes each block where write would, in a window too; checks everything first', () => {
    const path = makeFile('batch.img', 16, 3);
    const raw = fs.readFileSync(path);
    const ch = FileChannel.open(path, { blockSize: BS, offset: BS + 100, size: 8 * BS });
    const blocks = [6, 0, 3];
    ch.writeBlocks(
      blocks,
      blocks.map((b) => new Uint8Array(BS + 9).fill(0x40 + b)),
    );
    assert.equal(ch.stats().writes, 3);
    assert.throws(() => ch.writeBlocks([1, 8], [new Uint8Array(BS), new Uint8Array(BS)]), (e: unknown) => e instanceof FsError && /past the end/.test(e.message));
    assert.throws(() => ch.writeBlocks([1], [new Uint8Array(BS - 1)]), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
    assert.throws(() => ch.writeBlocks([1, 2], [new Uint8Array(BS)]), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
    ch.close();
    const after = fs.readFileSync(path);
    for (const b of blocks) assert.ok(after.subarray(BS + 100 + b * BS, BS + 100 + (b + 1) * BS).every((x) => x === 0x40 + b), `block ${b}`);
    assert.deepEqual(after.subarray(BS + 100 + BS, BS + 100 + 3 * BS), raw.subarray(BS + 100 + BS, BS + 100 + 3 * BS), 'refused batches wrote nothing');
    const ro = FileChannel.open(path, { blockSize: BS, readOnly: true });
    assert.throws(() => ro.writeBlocks([1], [new Uint8Array(BS)]), (e: unknown) => e instanceof FsError && e.code === 'EROFS');
    ro.close();
  });

  it('reading past the end is an error naming the blocks, not zeros', () => {
    const path = makeFile('short.img', 4, 3);
    const ch = FileChannel.open(path, { blockSize: BS, readOnly: true });
    assert.throws(
      () => ch.read(3, 2),
      (e: unknown) => e instanceof FsError && e.code === 'EIO' && e.context.block === 3 && e.context.count === 2 && e.message.includes('short.img'),
    );
    assert.throws(() => ch.write(0, 1, new Uint8Array(BS)), (e: unknown) => e instanceof FsError && e.code === 'EROFS');
    ch.close();
  });

  it('readahead has the kernel fetch the blocks (inside the window, clipped at its end) and returns at once', () => {
    const path = makeFile('hint.img', 64, 5);
    const ch = FileChannel.open(path, { blockSize: BS, readOnly: true, offset: 8 * BS, size: 32 * BS });
    const resident = () => Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], { encoding: 'utf8' }).trim());
    const evict = () => execFileSync('python3', ['-c', 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)', path]);
    const settle = (want: number) => {
      let got = resident();
      for (let tries = 0; got < want && tries < 500; tries++) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
        got = resident();
      }
      return got;
    };
    evict();
    assert.equal(resident(), 0);
    ch.readahead(4, 6);
    assert.equal(settle(6 * BS), 6 * BS, 'the six blocks asked for');
    evict();
    ch.readahead(28, 100); // the window ends at block 32: four blocks, nothing past it
    assert.equal(settle(4 * BS), 4 * BS);
    assert.equal(ch.stats().reads, 0, 'a hint is not a read');
    ch.close();
  });

  it('discard punches a hole (space is released, data reads as zeros)', () => {
    const path = makeFile('holes.img', 64, 4);
    const ch = FileChannel.open(path, { blockSize: BS });
    const before = fs.statSync(path).blocks;
    ch.discard(8, 32);
    ch.zeroout(50, 2);
    ch.flush();
    const after = fs.statSync(path);
    assert.equal(after.size, 64 * BS, 'size unchanged');
    assert.ok(after.blocks <= before - (32 * BS) / 512, `allocated 512-byte blocks ${before} -> ${after.blocks}`);
    assert.ok(ch.read(8, 32).every((x) => x === 0));
    assert.ok(ch.read(50, 2).every((x) => x === 0));
    assert.notEqual(ch.read(7, 1)[BS - 1], 0);
    ch.close();
  });

  it('a second read-write opener gets EBUSY; readers are refused while a writer holds it', () => {
    const path = makeFile('locked.img', 4, 5);
    const first = FileChannel.open(path);
    assert.throws(() => FileChannel.open(path), (e: unknown) => e instanceof FsError && e.code === 'EBUSY' && /locked/.test(e.message));
    assert.throws(() => FileChannel.open(path, { readOnly: true }), (e: unknown) => e instanceof FsError && e.code === 'EBUSY');
    // Another process too (the lock is the kernel's, not ours).
    const child = spawnSync(
      process.execPath,
      ['--import', 'tsx', '-e', `import('${join(process.cwd(), 'src/io/file-channel.ts')}').then(m => { try { m.FileChannel.open(${JSON.stringify(path)}); console.log('opened') } catch (e) { console.log(e.code) } })`],
      { encoding: 'utf8' },
    );
    assert.equal(child.stdout.trim(), 'EBUSY', child.stderr);
    first.close();
    const second = FileChannel.open(path);
    second.close();
    const r1 = FileChannel.open(path, { readOnly: true });
    const r2 = FileChannel.open(path, { readOnly: true });
    assert.throws(() => FileChannel.open(path), (e: unknown) => e instanceof FsError && e.code === 'EBUSY');
    r1.close();
    r2.close();
  });

  it('gives clear errors for missing files and directories', () => {
    assert.throws(() => FileChannel.open(join(scratchDir(), 'nope.img')), (e: unknown) => e instanceof FsError && e.code === 'ENOENT' && /nope\.img/.test(e.message));
    assert.throws(() => FileChannel.open(scratchDir()), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
  });
});

describe('FileChannel on a block device', () => {
  let loop = '';
  let mountpoint = '';
  let image = '';
  before(() => {
    image = makeImage({ name: 'blockdev', size: '8M', mkfsArgs: ['-t', 'ext4'] });
    loop = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim();
  });
  after(() => {
    if (mountpoint !== '') {
      spawnSync('umount', [mountpoint]);
      fs.rmSync(mountpoint, { recursive: true, force: true });
    }
    if (loop !== '') spawnSync('losetup', ['-d', loop]);
  });

  it('sizes the device, reads it, and is refused read-write while the kernel has it mounted', () => {
    const ch = FileChannel.open(loop, { blockSize: 1024, readOnly: true });
    assert.equal(ch.isBlockDevice, true);
    assert.equal(ch.sizeBytes, 8 * 1024 * 1024);
    const sb = ch.read(1, 1);
    assert.equal(new DataView(sb.buffer, sb.byteOffset).getUint16(0x38, true), 0xef53, 'ext4 superblock magic through the device');
    ch.close();
    const rw = FileChannel.open(loop, { blockSize: 1024 });
    assert.throws(() => FileChannel.open(loop), (e: unknown) => e instanceof FsError && e.code === 'EBUSY', 'second exclusive opener');
    rw.close();
    mountpoint = fs.mkdtempSync(join(scratchDir(), 'mnt-'));
    execFileSync('mount', ['-o', 'ro', loop, mountpoint]);
    assert.throws(() => FileChannel.open(loop), (e: unknown) => e instanceof FsError && e.code === 'EBUSY' && /in use/.test(e.message));
    const reader = FileChannel.open(loop, { readOnly: true });
    reader.close();
    execFileSync('umount', [mountpoint]);
    const again = FileChannel.open(loop);
    again.close();
  });
});
