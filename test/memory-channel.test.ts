import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryChannel } from '../src/io/memory-channel.js';
import { FaultChannel } from '../src/io/fault-channel.js';
import { FsError } from '../src/errors.js';

function pattern(n: number, seed: number): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = (i * 7 + seed) & 0xff;
  return a;
}

describe('MemoryChannel', () => {
  it('reads back what was written, in blocks and bytes', () => {
    const ch = new MemoryChannel(16 * 1024, { blockSize: 1024 });
    ch.write(3, 2, pattern(2048, 1));
    assert.deepEqual(ch.read(3, 2), pattern(2048, 1));
    ch.writeBytes(3 * 1024 + 100, new Uint8Array([9, 9, 9]));
    const b = ch.read(3, 1);
    assert.deepEqual([...b.subarray(99, 104)], [(99 * 7 + 1) & 0xff, 9, 9, 9, (103 * 7 + 1) & 0xff]);
    const into = new Uint8Array(4096);
    assert.equal(ch.read(2, 2, into), into, 'read into the given buffer without allocating');
    const s = ch.stats();
    assert.equal(s.writeOps, 2);
    assert.equal(s.reads, 1 + 2 + 2);
  });

  it('refuses reads past the end with EIO, never zeros', () => {
    const ch = new MemoryChannel(8 * 1024, { blockSize: 1024 });
    assert.throws(() => ch.read(7, 2), (e: unknown) => e instanceof FsError && e.code === 'EIO' && /past the end/.test(e.message) && e.context.block === 7 && e.context.count === 2);
    assert.throws(() => ch.read(-1, 1), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
    assert.throws(() => ch.write(8, 1, new Uint8Array(1024)), (e: unknown) => e instanceof FsError && e.code === 'ENOSPC');
  });

  it('enforces read-only, buffer sizes and closed state', () => {
    const ro = new MemoryChannel(4096, { readOnly: true });
    assert.throws(() => ro.write(0, 1, new Uint8Array(1024)), (e: unknown) => e instanceof FsError && e.code === 'EROFS');
    assert.throws(() => ro.discard(0, 1), (e: unknown) => e instanceof FsError && e.code === 'EROFS');
    const ch = new MemoryChannel(4096);
    assert.throws(() => ch.write(0, 2, new Uint8Array(1024)), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
    assert.throws(() => ch.setBlockSize(1000), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
    ch.close();
    assert.throws(() => ch.read(0, 1), (e: unknown) => e instanceof FsError && e.code === 'EBADF');
  });

  it('discard and zeroout make blocks read as zeros; block size changes', () => {
    const ch = new MemoryChannel(pattern(8192, 3), { blockSize: 1024 });
    ch.discard(1, 2);
    ch.zeroout(5, 1);
    const all = ch.read(0, 8);
    for (const b of [1, 2, 5]) assert.ok(all.subarray(b * 1024, (b + 1) * 1024).every((x) => x === 0));
    assert.equal(all[0], 3);
    ch.setBlockSize(4096);
    assert.equal(ch.blockSize, 4096);
    assert.equal(ch.read(1, 1)[0], pattern(8192, 3)[4096]);
  });
});

describe('FaultChannel', () => {
  it('fails the chosen operations, a chosen number of times, touching nothing', () => {
    const mem = new MemoryChannel(8192, { blockSize: 1024 });
    const ch = new FaultChannel(mem).fail({ op: 'write', first: 4, count: 1, times: 1 });
    assert.throws(() => ch.write(3, 2, pattern(2048, 5)), (e: unknown) => e instanceof FsError && e.code === 'EIO' && e.context.block === 3);
    assert.ok(mem.contents.subarray(3072, 5120).every((x) => x === 0), 'a failed write writes nothing');
    ch.write(3, 2, pattern(2048, 5));
    assert.deepEqual(mem.read(3, 2), pattern(2048, 5));
    ch.write(0, 2, pattern(2048, 6)); // outside the rule's range
    ch.fail({ op: 'flush', code: 'ENOSPC' });
    assert.throws(() => ch.flush(), (e: unknown) => e instanceof FsError && e.code === 'ENOSPC');
    ch.fail({ op: 'read' });
    assert.throws(() => ch.read(0, 1));
    ch.heal();
    ch.flush();
    assert.equal(ch.injected, 3);
  });
});
