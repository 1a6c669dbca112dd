import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryChannel } from '../src/io/memory-channel.js';
import { FaultChannel } from '../src/io/fault-channel.js';
import { CachingChannel, MAX_PRIORITY, STREAM_WINDOW_BYTES } from '../src/cache/caching-channel.js';
import { FsError } from '../src/errors.js';
import { RecordingChannel } from './helpers/recording-channel.js';

const BS = 1024;

function filled(blocks: number, seed = 1): Uint8Array {
  const a = new Uint8Array(blocks * BS);
  for (let i = 0; i < a.length; i++) a[i] = (i * 13 + seed * 31 + (i >> 10)) & 0xff;
  return a;
}

function block(value: number): Uint8Array {
  return new Uint8Array(BS).fill(value);
}

function setup(deviceBlocks: number, cacheBlocks: number, extra: ConstructorParameters<typeof CachingChannel>[1] = {}) {
  const mem = new MemoryChannel(filled(deviceBlocks), { blockSize: BS });
  const rec = new RecordingChannel(mem);
  const cache = new CachingChannel(rec, { cacheSize: cacheBlocks * BS, ...extra });
  return { mem, rec, cache };
}

describe('CachingChannel: passthrough (cache size 0)', () => {
  it('forwards every operation exactly once, in order, byte for byte', () => {
    const { mem, rec, cache } = setup(64, 0);
    const into = new Uint8Array(3 * BS);
    cache.read(5, 3, into);
    assert.deepEqual(into, mem.contents.subarray(5 * BS, 8 * BS));
    cache.write(9, 2, filled(2, 7));
    cache.writeBytes(100, new Uint8Array([1, 2, 3]));
    cache.readahead(20, 4);
    cache.discard(30, 2);
    cache.zeroout(40, 1);
    cache.invalidate(3, 2);
    cache.flush();
    cache.close();
    assert.deepEqual(rec.ops, [
      ['read', 5, 3],
      ['write', 9, 2],
      ['writeBytes', 100, 3],
      ['readahead', 20, 4],
      ['discard', 30, 2],
      ['zeroout', 40, 1],
      ['invalidate', 3, 2],
      ['flush'],
      ['flush'],
      ['close'],
    ]);
    assert.deepEqual(mem.contents.subarray(9 * BS, 11 * BS), filled(2, 7));
  });
});

describe('CachingChannel: reads', () => {
  it('serves repeated reads from the cache and counts hits and misses', () => {
    const { mem, rec, cache } = setup(64, 16);
    const first = cache.read(3, 1);
    const again = cache.read(3, 1);
    assert.deepEqual(first, mem.contents.subarray(3 * BS, 4 * BS));
    assert.deepEqual(again, first);
    assert.deepEqual(rec.ops, [['read', 3, 1]]);
    const s = cache.stats();
    assert.equal(s.hits, 1);
    assert.equal(s.misses, 1);
    assert.equal(s.reads, 1);
  });

  it('fetches consecutive misses of one read with ONE backing read', () => {
    const { mem, rec, cache } = setup(64, 64);
    cache.read(10, 1);
    cache.read(14, 1);
    rec.reset();
    const out = cache.read(8, 10); // 8,9 miss; 10 hit; 11..13 miss; 14 hit; 15..17 miss
    assert.deepEqual(out, mem.contents.subarray(8 * BS, 18 * BS));
    assert.deepEqual(rec.ops, [
      ['read', 8, 2],
      ['read', 11, 3],
      ['read', 15, 3],
    ]);
  });

  it('readahead really prefetches: one backing read, later reads hit', () => {
    const { rec, cache } = setup(64, 32);
    cache.read(2, 1);
    rec.reset();
    cache.readahead(0, 8);
    assert.deepEqual(rec.ops, [
      ['read', 0, 2],
      ['read', 3, 5],
    ]);
    rec.reset();
    cache.read(0, 8);
    assert.deepEqual(rec.ops, []);
    const s = cache.stats();
    assert.equal(s.readaheadBlocks, 7);
    assert.equal(s.readaheadHits, 7);
  });

  it('hint passes the uncached runs down as readahead hints, reads nothing and caches nothing', () => {
    const { rec, cache } = setup(64, 32);
    cache.read(2, 1);
    cache.read(5, 2);
    rec.reset();
    cache.hint(0, 10);
    cache.hint(60, 10); // clipped at the device's end
    assert.deepEqual(rec.ops, [
      ['readahead', 0, 2],
      ['readahead', 3, 2],
      ['readahead', 7, 3],
      ['readahead', 60, 4],
    ]);
    assert.equal(cache.has(0), false);
    assert.equal(cache.stats().readaheadBlocks, 0);
    rec.reset();
    cache.hint(2, 1);
    assert.deepEqual(rec.ops, [], 'a cached block is not hinted');
    assert.throws(() => cache.hint(-1, 2), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
  });

  it('large reads bypass the cache without evicting it, yet see dirty cached data', () => {
    const { mem, rec, cache } = setup(256, 16, { largeRequestBlocks: 8 });
    cache.read(0, 4);
    cache.write(100, 1, block(0xaa));
    rec.reset();
    const big = cache.read(96, 64);
    assert.deepEqual(rec.ops, [['read', 96, 64]]);
    assert.ok(big.subarray(4 * BS, 5 * BS).every((x) => x === 0xaa), 'the dirty cached block overlays the device copy');
    assert.deepEqual(big.subarray(0, 4 * BS), mem.contents.subarray(96 * BS, 100 * BS));
    for (let b = 0; b < 4; b++) assert.ok(cache.has(b), 'metadata blocks were not evicted');
  });

  it('a failed read gives an error, caches nothing, and later reads retry', () => {
    const mem = new MemoryChannel(filled(32), { blockSize: BS });
    const faulty = new FaultChannel(mem).fail({ op: 'read', first: 5, count: 1, times: 1 });
    const cache = new CachingChannel(faulty, { cacheSize: 8 * BS });
    assert.throws(() => cache.read(4, 3), (e: unknown) => e instanceof FsError && e.code === 'EIO');
    assert.equal(cache.has(5), false);
    assert.deepEqual(cache.read(4, 3), mem.contents.subarray(4 * BS, 7 * BS));
  });

  it('reading past the end is an error even when the cache could answer part of it', () => {
    const { cache } = setup(16, 8);
    cache.read(15, 1);
    assert.throws(() => cache.read(15, 2), (e: unknown) => e instanceof FsError && e.code === 'EIO');
  });
});

describe('CachingChannel: write-back', () => {
  it('keeps writes in the cache until flush, then writes them sorted and coalesced', () => {
    const { mem, rec, cache } = setup(64, 32);
    const before = mem.contents.slice();
    for (const b of [7, 3, 5, 4, 20, 6, 21]) cache.write(b, 1, block(b));
    assert.deepEqual(mem.contents, before, 'nothing reached the device before flush');
    assert.deepEqual(cache.read(5, 1), block(5), 'reads see the dirty data');
    rec.reset();
    cache.flush();
    assert.deepEqual(rec.ops, [['write', 3, 5], ['write', 20, 2], ['flush']]);
    for (const b of [7, 3, 5, 4, 20, 6, 21]) assert.deepEqual(mem.read(b, 1), block(b));
    assert.equal(cache.stats().dirty, 0);
  });

  it('writeDirect goes to the device at once, refreshes cached copies (dirty ones too) and evicts nothing', () => {
    const { mem, rec, cache } = setup(64, 8);
    for (let b = 0; b < 4; b++) cache.read(b, 1);
    cache.write(10, 1, block(0x11)); // cached and dirty
    cache.write(30, 1, block(0x33)); // cached and dirty, outside the direct run
    rec.reset();
    const data = filled(6, 9);
    cache.writeDirect(8, 6, data);
    assert.deepEqual(rec.ops, [['write', 8, 6]], 'one device write, nothing else');
    assert.deepEqual(mem.read(8, 6), data);
    assert.deepEqual(cache.read(10, 1), data.subarray(2 * BS, 3 * BS), 'the cached copy holds the new data');
    for (let b = 0; b < 4; b++) assert.ok(cache.has(b), `block ${b} was not evicted`);
    assert.equal(cache.stats().dirty, 1, 'block 10 is clean now; block 30 still dirty');
    rec.reset();
    cache.flush();
    assert.deepEqual(rec.ops, [['write', 30, 1], ['flush']]);
    // Past the end: the same error as a cached write.
    const code = (f: () => void): string | undefined => {
      try {
        f();
      } catch (e) {
        return e instanceof FsError ? e.code : String(e);
      }
      return undefined;
    };
    const direct = code(() => cache.writeDirect(62, 4, filled(4)));
    assert.ok(direct !== undefined);
    assert.equal(direct, code(() => cache.write(62, 4, filled(4))));
  });

  it('writes lone dirty blocks with the device\'s batched write, runs as one write each', () => {
    const mem = new MemoryChannel(filled(64), { blockSize: BS });
    const calls: (readonly number[])[] = [];
    const batching = Object.assign(Object.create(mem) as MemoryChannel, {
      writeBlocks(blocks: readonly number[], datas: readonly Uint8Array[]): void {
        calls.push([...blocks]);
        mem.writeBlocks(blocks, datas);
      },
    });
    const cache = new CachingChannel(batching, { cacheSize: 32 * BS });
    for (const b of [9, 3, 4, 30, 17]) cache.write(b, 1, block(b));
    cache.flush();
    assert.deepEqual(calls, [[9, 17, 30]], 'one batch of the lone blocks, in block order');
    for (const b of [9, 3, 4, 30, 17]) assert.deepEqual(mem.read(b, 1), block(b));
    assert.equal(cache.stats().dirty, 0);
    assert.equal(cache.stats().writes, 5);
  });

  it('a failed batched write is retried block by block: only the failing block stays dirty', () => {
    const mem = new MemoryChannel(filled(64), { blockSize: BS });
    const faulty = new FaultChannel(mem).fail({ op: 'write', first: 12, count: 1 });
    let batches = 0;
    const batching = Object.assign(Object.create(faulty) as FaultChannel, {
      writeBlocks(): void {
        batches++;
        throw new FsError('EIO', 'the batch failed');
      },
    });
    const reported: number[] = [];
    const cache = new CachingChannel(batching, { cacheSize: 32 * BS, onWriteError: (_e, b) => reported.push(b) });
    for (const b of [2, 12, 40]) cache.write(b, 1, block(0x60 + b));
    assert.throws(() => cache.flush(), (e: unknown) => e instanceof FsError && e.code === 'EIO' && /12/.test(e.message));
    assert.equal(batches, 1);
    assert.deepEqual(reported, [12]);
    assert.deepEqual(mem.read(2, 1), block(0x62));
    assert.deepEqual(mem.read(40, 1), block(0x60 + 40));
    assert.equal(cache.stats().dirty, 1);
    faulty.heal();
    cache.flush();
    assert.deepEqual(mem.read(12, 1), block(0x60 + 12), 'nothing lost');
  });

  it('writes dirty buffers back before evicting them', () => {
    const { mem, cache } = setup(64, 4);
    for (let b = 0; b < 4; b++) cache.write(b, 1, block(0x10 + b));
    cache.read(30, 1); // needs victims: dirty ones are written back first
    cache.read(31, 1);
    for (let b = 0; b < 4; b++) assert.deepEqual(mem.read(b, 1), block(0x10 + b));
    assert.ok(cache.stats().evictions >= 2);
    assert.ok(cache.stats().buffers <= 4);
  });

  it('writeBytes patches cached blocks and reads partially covered ones first', () => {
    const { mem, rec, cache } = setup(16, 8);
    const expect = mem.contents.slice();
    const data = new Uint8Array(2000).fill(0x5c);
    cache.writeBytes(BS + 500, data);
    expect.set(data, BS + 500);
    assert.deepEqual(rec.ops, [['read', 1, 1], ['read', 3, 1]], 'partial blocks are read, none written yet');
    assert.deepEqual(cache.read(0, 4), expect.subarray(0, 4 * BS));
    cache.flush();
    assert.deepEqual(mem.contents, expect);
  });

  it('a failed write-back keeps the data dirty, fails flush and close, and a later flush writes it', () => {
    const mem = new MemoryChannel(filled(32), { blockSize: BS });
    const faulty = new FaultChannel(mem);
    const reported: number[] = [];
    const cache = new CachingChannel(faulty, { cacheSize: 16 * BS, onWriteError: (_e, b) => reported.push(b) });
    cache.write(4, 3, new Uint8Array(3 * BS).fill(0x77));
    faulty.fail({ op: 'write', first: 5, count: 1 });
    assert.throws(() => cache.flush(), (e: unknown) => e instanceof FsError && e.code === 'EIO' && /5/.test(e.message) && /stays cached and dirty/.test(e.message));
    assert.deepEqual(reported, [5]);
    assert.deepEqual(mem.read(4, 1), block(0x77), 'the coalesced run was split: block 4 got written');
    assert.deepEqual(mem.read(6, 1), block(0x77));
    assert.notDeepEqual(mem.read(5, 1), block(0x77));
    assert.equal(cache.stats().dirty, 1);
    assert.equal(cache.stats().writeErrors, 1);
    assert.throws(() => cache.close(), (e: unknown) => e instanceof FsError && e.code === 'EIO');
    assert.deepEqual(cache.read(5, 1), block(0x77), 'still readable after a failed close');
    faulty.heal();
    cache.close();
    assert.deepEqual(mem.contents.subarray(5 * BS, 6 * BS), block(0x77), 'nothing lost');
  });

  it('a buffer whose write-back failed is not reclaimed; misses bypass instead of growing', () => {
    const mem = new MemoryChannel(filled(64), { blockSize: BS });
    const faulty = new FaultChannel(mem).fail({ op: 'write', first: 0, count: 64 });
    const cache = new CachingChannel(faulty, { cacheSize: 2 * BS });
    cache.write(1, 1, block(1));
    cache.write(2, 1, block(2));
    assert.deepEqual(cache.read(40, 1), mem.read(40, 1), 'read served around the stuck buffers');
    assert.equal(cache.stats().buffers, 2);
    assert.deepEqual(cache.read(1, 1), block(1));
    assert.deepEqual(cache.read(2, 1), block(2));
    faulty.heal();
    cache.flush();
    assert.deepEqual(mem.read(2, 1), block(2));
  });
});

describe('CachingChannel: coherence', () => {
  it('discard and zeroout hit the device first and fix the cache only on success', () => {
    const mem = new MemoryChannel(filled(32), { blockSize: BS });
    const faulty = new FaultChannel(mem).fail({ op: 'discard', times: 1 }).fail({ op: 'zeroout', times: 1 });
    const cache = new CachingChannel(faulty, { cacheSize: 16 * BS });
    cache.write(3, 1, block(3));
    cache.read(8, 1);
    assert.throws(() => cache.discard(3, 1));
    assert.deepEqual(cache.read(3, 1), block(3), 'a failed discard leaves the cached data');
    cache.discard(3, 1);
    assert.equal(cache.has(3), false);
    assert.ok(cache.read(3, 1).every((x) => x === 0));
    assert.throws(() => cache.zeroout(8, 1));
    assert.notDeepEqual(cache.read(8, 1), block(0));
    cache.zeroout(8, 1);
    assert.deepEqual(cache.read(8, 1), block(0));
    cache.flush();
    assert.deepEqual(mem.read(8, 1), block(0));
    assert.deepEqual(mem.read(3, 1), block(0));
  });

  it('invalidate drops cached copies so the device is read again', () => {
    const { mem, cache } = setup(32, 16);
    cache.read(2, 2);
    mem.write(2, 1, block(9)); // changed behind the cache's back
    assert.notDeepEqual(cache.read(2, 1), block(9));
    cache.invalidate(2, 1);
    assert.deepEqual(cache.read(2, 1), block(9));
    cache.invalidate();
    assert.equal(cache.stats().buffers, 0);
  });

  it('setBlockSize flushes and empties the cache', () => {
    const { mem, cache } = setup(32, 16);
    cache.write(1, 1, block(4));
    cache.setBlockSize(4096);
    assert.equal(cache.stats().buffers, 0);
    assert.deepEqual(mem.contents.subarray(BS, 2 * BS), block(4));
    assert.deepEqual(cache.read(0, 1), mem.contents.subarray(0, 4096));
    assert.equal(cache.capacityBlocks, 4);
  });

  it('held buffers are never reclaimed and may exceed the budget', () => {
    const { mem, cache } = setup(64, 2);
    const held = cache.acquire(10);
    held[0] = 0xee;
    for (let b = 20; b < 30; b++) cache.read(b, 1);
    assert.ok(cache.has(10));
    cache.release(10, true);
    assert.equal(cache.stats().dirty, 1);
    for (let b = 30; b < 40; b++) cache.read(b, 1);
    assert.equal(mem.read(10, 1)[0], 0xee, 'the released dirty buffer was written back when evicted');
    assert.throws(() => cache.release(10, false), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
    const a = cache.acquire(1);
    const b = cache.acquire(2);
    const c = cache.acquire(3);
    assert.equal(cache.stats().buffers, 3, 'three held buffers in a two-block cache');
    assert.throws(() => cache.invalidate(2, 1), (e: unknown) => e instanceof FsError && e.code === 'EBUSY');
    void a;
    void b;
    void c;
    cache.release(1, false);
    cache.release(2, false);
    cache.release(3, false);
    assert.ok(cache.stats().buffers <= 2);
  });
});

describe('CachingChannel: priorities', () => {
  it('raises a buffer one level every 50 accesses, up to 15', () => {
    const { cache } = setup(16, 8);
    cache.read(1, 1); // insert (not an access of a cached buffer)
    for (let i = 0; i < 49; i++) cache.read(1, 1);
    assert.equal(cache.priorityOf(1), 0);
    cache.read(1, 1);
    assert.equal(cache.priorityOf(1), 1);
    for (let i = 0; i < 50 * 30; i++) cache.read(1, 1);
    assert.equal(cache.priorityOf(1), MAX_PRIORITY);
  });

  it('reclaims the least recently used buffer of the lowest priority first', () => {
    const { cache } = setup(64, 3);
    cache.read(1, 1);
    for (let i = 0; i < 50; i++) cache.read(1, 1); // block 1 -> priority 1
    cache.read(2, 1);
    cache.read(3, 1);
    cache.read(2, 1); // 3 is now the LRU of level 0
    cache.read(4, 1);
    assert.equal(cache.has(3), false);
    assert.ok(cache.has(1) && cache.has(2) && cache.has(4));
  });

  it('ages priorities: a block hot long ago is demoted and reclaimed', () => {
    const { cache } = setup(256, 4, { ageTicks: 20 });
    cache.read(1, 1);
    for (let i = 0; i < 50 * 3; i++) cache.read(1, 1); // priority 3
    assert.equal(cache.priorityOf(1), 3);
    for (let b = 10; b < 40; b++) cache.read(b, 1); // 30 blocks enter: one level lost
    assert.equal(cache.has(1), true, 'still cached: the cold blocks go first');
    assert.equal(cache.priorityOf(1), 2);
    for (let b = 40; b < 80; b++) cache.read(b, 1); // 70 in all: three levels lost
    assert.equal(cache.has(1), false, 'demoted to priority 0 and reclaimed');
  });

  it('a hot set survives a cold scan larger than the cache (default aging)', () => {
    const { cache } = setup(4096, 64);
    for (let round = 0; round < 100; round++) for (let b = 0; b < 16; b++) cache.read(b, 1); // priority 1
    for (let b = 1000; b < 1200; b++) cache.read(b, 1); // a scan of 200 cold blocks (> 64)
    for (let b = 0; b < 16; b++) assert.ok(cache.has(b), `hot block ${b} survived the scan`);
  });
});

describe('CachingChannel: sequential direct reads', () => {
  it('serves reads that walk the device from one window read, with cached copies laid over', () => {
    const { mem, rec, cache } = setup(1024, 64);
    const window = STREAM_WINDOW_BYTES / BS;
    cache.write(12, 1, block(0xee)); // cached and dirty: newer than the device
    cache.readDirect(10, 1);
    rec.ops.length = 0;
    for (let b = 11; b < 40; b += 2) {
      const got = cache.readDirect(b, 2);
      const want = mem.contents.slice(b * BS, (b + 2) * BS);
      if (b <= 12 && 12 < b + 2) want.set(block(0xee), (12 - b) * BS);
      assert.deepEqual(got, want, `blocks ${b}..${b + 1}`);
    }
    assert.deepEqual(rec.ops, [['read', 11, window]]);
  });

  it('readDirectView: the window itself when no block of the request is cached, else a copy with the cached ones laid over', () => {
    const { mem, rec, cache } = setup(1024, 64);
    const window = STREAM_WINDOW_BYTES / BS;
    cache.write(12, 1, block(0xee)); // cached and dirty: newer than the device
    const into = new Uint8Array(2 * BS);
    cache.readDirectView(10, 1, into.subarray(0, BS)); // not sequential yet: read through
    rec.ops.length = 0;
    for (let b = 11; b < 40; b += 2) {
      const got = cache.readDirectView(b, 2, into);
      const want = mem.contents.slice(b * BS, (b + 2) * BS);
      const cached = b <= 12 && 12 < b + 2;
      if (cached) want.set(block(0xee), (12 - b) * BS);
      assert.deepEqual(got, want, `blocks ${b}..${b + 1}`);
      assert.equal(got.buffer === into.buffer, cached, `blocks ${b}..${b + 1}: a copy only where a block is cached`);
    }
    assert.deepEqual(rec.ops, [['read', 11, window]]);
    // A random request is read into \`into\`, as readDirect does.
    const far = cache.readDirectView(900, 1, into.subarray(0, BS));
    assert.equal(far.buffer, into.buffer);
    assert.deepEqual(far, mem.contents.slice(900 * BS, 901 * BS));
  });

  it('readDirectView on a read-only channel: cached blocks are the device\'s, so the window is handed out as it is', () => {
    const mem = new MemoryChannel(filled(1024), { blockSize: BS, readOnly: true });
    const cache = new CachingChannel(mem, { cacheSize: 64 * BS });
    cache.read(12, 1); // cached (clean: it cannot be written)
    const into = new Uint8Array(2 * BS);
    cache.readDirectView(10, 1, into.subarray(0, BS));
    for (let b = 11; b < 40; b += 2) {
      const got = cache.readDirectView(b, 2, into);
      assert.deepEqual(got, mem.contents.slice(b * BS, (b + 2) * BS), `blocks ${b}..${b + 1}`);
      assert.notEqual(got.buffer, into.buffer, `blocks ${b}..${b + 1}: no copy`);
    }
  });

  it('reads random and large requests as they come, and drops the window when the device changes', () => {
    const { mem, rec, cache } = setup(1024, 64);
    cache.readDirect(500, 1);
    cache.readDirect(100, 1); // backwards: not sequential
    cache.readDirect(101, 200); // large
    assert.deepEqual(rec.ops, [
      ['read', 500, 1],
      ['read', 100, 1],
      ['read', 101, 200],
    ]);
    cache.readDirect(302, 1); // just past the previous one: fills the window
    rec.ops.length = 0;
    cache.write(310, 300, filled(300, 5)); // large: straight to the device
    assert.deepEqual(cache.readDirect(311, 1), mem.contents.slice(311 * BS, 312 * BS));
    assert.deepEqual(rec.ops, [
      ['write', 310, 300],
      ['read', 311, STREAM_WINDOW_BYTES / BS], // read again (sequential: a new window), not the stale copy
    ]);
  });
});
