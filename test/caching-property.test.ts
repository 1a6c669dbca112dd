/**
 * Property tests: random sequences of every operation through
 * CachingChannel(MemoryChannel) with random small caches, against a plain
 * MemoryChannel model. Reads must agree at every step; after flush, the devices
 * must be byte-identical; the budget is never exceeded except by held buffers.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemoryChannel } from '../src/io/memory-channel.js';
import { FaultChannel } from '../src/io/fault-channel.js';
import { CachingChannel } from '../src/cache/caching-channel.js';
import { FsError } from '../src/errors.js';

const BS = 512;
const DEVICE_BLOCKS = 48;

type Op =
  | { kind: 'read'; block: number; count: number }
  | { kind: 'view'; block: number }
  | { kind: 'write'; block: number; count: number; seed: number }
  | { kind: 'writeBytes'; offset: number; length: number; seed: number }
  | { kind: 'discard'; block: number; count: number }
  | { kind: 'zeroout'; block: number; count: number }
  | { kind: 'readahead'; block: number; count: number }
  | { kind: 'invalidate'; block: number; count: number }
  | { kind: 'flush' }
  | { kind: 'acquire'; block: number; seed: number }
  | { kind: 'shrink' }
  | { kind: 'grow' };

const range = (max: number) =>
  fc.integer({ min: 0, max: DEVICE_BLOCKS - 1 }).chain((block) => fc.record({ block: fc.constant(block), count: fc.integer({ min: 1, max: Math.min(max, DEVICE_BLOCKS - block) }) }));

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: range(12).map((r) => ({ kind: 'read' as const, ...r })) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: DEVICE_BLOCKS - 1 }).map((block) => ({ kind: 'view' as const, block })) },
  { weight: 5, arbitrary: fc.tuple(range(12), fc.integer({ min: 1, max: 255 })).map(([r, seed]) => ({ kind: 'write' as const, ...r, seed })) },
  {
    weight: 3,
    arbitrary: fc
      .integer({ min: 0, max: DEVICE_BLOCKS * BS - 1 })
      .chain((offset) => fc.record({ offset: fc.constant(offset), length: fc.integer({ min: 1, max: Math.min(3 * BS, DEVICE_BLOCKS * BS - offset) }), seed: fc.integer({ min: 1, max: 255 }) }))
      .map((r) => ({ kind: 'writeBytes' as const, ...r })),
  },
  { weight: 1, arbitrary: range(6).map((r) => ({ kind: 'discard' as const, ...r })) },
  { weight: 1, arbitrary: range(6).map((r) => ({ kind: 'zeroout' as const, ...r })) },
  { weight: 1, arbitrary: range(16).map((r) => ({ kind: 'readahead' as const, ...r })) },
  { weight: 1, arbitrary: range(6).map((r) => ({ kind: 'invalidate' as const, ...r })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'flush' as const }) },
  { weight: 2, arbitrary: fc.record({ block: fc.integer({ min: 0, max: DEVICE_BLOCKS - 1 }), seed: fc.integer({ min: 1, max: 255 }) }).map((r) => ({ kind: 'acquire' as const, ...r })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'shrink' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'grow' as const }) },
);

function bytes(n: number, seed: number): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = (seed * 17 + i * 5) & 0xff;
  return a;
}

function initial(): Uint8Array {
  return bytes(DEVICE_BLOCKS * BS, 3);
}

describe('CachingChannel model test', () => {
  it('agrees with a plain MemoryChannel on every read, and after flush the devices are identical', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 8 }), fc.array(opArb, { minLength: 1, maxLength: 80 }), (cacheBlocks, largeRequestBlocks, ops) => {
        const model = new MemoryChannel(initial(), { blockSize: BS });
        const device = new MemoryChannel(initial(), { blockSize: BS });
        const cache = new CachingChannel(device, { cacheSize: cacheBlocks * BS, largeRequestBlocks, ageTicks: 7, bumpInterval: 3 });
        for (const op of ops) {
          switch (op.kind) {
            case 'read':
              assert.deepEqual(cache.read(op.block, op.count), model.read(op.block, op.count));
              break;
            case 'view':
              assert.deepEqual(cache.view(op.block), model.read(op.block, 1));
              break;
            case 'write': {
              const data = bytes(op.count * BS, op.seed);
              cache.write(op.block, op.count, data);
              model.write(op.block, op.count, data);
              break;
            }
            case 'writeBytes': {
              const data = bytes(op.length, op.seed);
              cache.writeBytes(op.offset, data);
              model.writeBytes(op.offset, data);
              break;
            }
            case 'discard':
              cache.discard(op.block, op.count);
              model.discard(op.block, op.count);
              break;
            case 'zeroout':
              cache.zeroout(op.block, op.count);
              model.zeroout(op.block, op.count);
              break;
            case 'readahead':
              cache.readahead(op.block, op.count);
              break;
            case 'invalidate':
              // Invalidate declares cached contents obsolete; make it so for the model by
              // flushing first (the filesystem only invalidates blocks it no longer needs).
              cache.flush();
              cache.invalidate(op.block, op.count);
              break;
            case 'flush':
              cache.flush();
              assert.deepEqual(device.contents, model.contents);
              break;
            case 'acquire': {
              const held = cache.acquire(op.block);
              assert.deepEqual(held, model.read(op.block, 1));
              // While held, traffic must not reclaim it.
              cache.read((op.block + 7) % DEVICE_BLOCKS, 1);
              held.set(bytes(BS, op.seed));
              model.write(op.block, 1, bytes(BS, op.seed));
              cache.release(op.block, true);
              break;
            }
            case 'shrink':
              cache.shrink(0.5, 1);
              break;
            case 'grow':
              cache.grow(2);
              break;
          }
          const s = cache.stats();
          assert.ok(s.buffers <= Math.max(cacheBlocks, s.capacityBlocks), `budget exceeded: ${s.buffers} buffers > ${s.capacityBlocks}`);
        }
        cache.flush();
        assert.deepEqual(device.contents, model.contents);
        cache.close();
      }),
      { numRuns: 400, seed: 20261126 },
    );
  });

  it('never loses acknowledged data under random write-back failures', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.tuple(range(4), fc.integer({ min: 1, max: 255 }), fc.boolean()), { minLength: 1, maxLength: 40 }),
        (cacheBlocks, writes) => {
          const model = new MemoryChannel(initial(), { blockSize: BS });
          const device = new MemoryChannel(initial(), { blockSize: BS });
          const faulty = new FaultChannel(device);
          const cache = new CachingChannel(faulty, { cacheSize: cacheBlocks * BS, largeRequestBlocks: 64 });
          for (const [r, seed, breakDevice] of writes) {
            if (breakDevice) faulty.fail({ op: 'write', first: r.block, count: 2, times: 2 });
            const data = bytes(r.count * BS, seed);
            try {
              cache.write(r.block, r.count, data);
              model.write(r.block, r.count, data);
            } catch (error) {
              // A write that bypassed the cache (no reclaimable buffer) fails synchronously;
              // the caller knows it was not done. Only EIO from the injected faults is allowed.
              assert.ok(error instanceof FsError && error.code === 'EIO');
              // Blocks of the request before the failing one may have been written; make the
              // model agree by reading back what the cache now says for the whole range.
              model.write(r.block, r.count, cache.read(r.block, r.count));
            }
            assert.deepEqual(cache.read(r.block, r.count), model.read(r.block, r.count));
          }
          faulty.heal();
          cache.flush();
          assert.deepEqual(device.contents, model.contents);
        },
      ),
      { numRuns: 300, seed: 7 },
    );
  });
});

describe('CachingChannel budget and scan resistance', () => {
  it('never holds more buffers than the budget allows, whatever the traffic', () => {
    const device = new MemoryChannel(4096 * BS, { blockSize: BS });
    const cache = new CachingChannel(device, { cacheSize: 100 * BS + 300 });
    let rng = 12345;
    const next = () => (rng = (Math.imul(rng, 1103515245) + 12345) >>> 0);
    let maxBuffers = 0;
    for (let i = 0; i < 20000; i++) {
      const b = next() % 4000;
      const n = 1 + (next() % 20);
      if (next() % 3 === 0) cache.write(b, n, new Uint8Array(n * BS).fill(i & 0xff));
      else cache.read(b, n);
      maxBuffers = Math.max(maxBuffers, cache.stats().buffers);
    }
    assert.equal(cache.capacityBlocks, 100);
    assert.ok(maxBuffers <= 100, `max ${maxBuffers} buffers`);
    assert.equal(maxBuffers, 100, 'the cache is used up to its budget');
  });

  it('keeps a hot set through cold scans larger than the cache (hit ratio with a fixed seed)', () => {
    const device = new MemoryChannel(100_000 * BS, { blockSize: BS });
    const cache = new CachingChannel(device, { cacheSize: 1000 * BS });
    let rng = 99;
    const next = () => (rng = (Math.imul(rng, 1103515245) + 12345) >>> 0);
    const hot = 400; // hot set: 40% of the cache
    let scanBlock = 10_000;
    let hotHits = 0;
    let hotReads = 0;
    for (let round = 0; round < 60; round++) {
      for (let i = 0; i < 2000; i++) {
        const before = cache.stats().hits;
        cache.read(next() % hot, 1);
        if (round >= 10) {
          hotReads++;
          hotHits += cache.stats().hits - before;
        }
      }
      // A cold scan of 1,500 blocks: 1.5x the cache.
      for (let i = 0; i < 1500; i++) cache.read(scanBlock++, 1);
    }
    const ratio = hotHits / hotReads;
    // A plain LRU loses the whole hot set to every scan; the MRU priorities keep it.
    assert.ok(ratio > 0.97, `hot-set hit ratio ${ratio.toFixed(4)}`);
  });
});
