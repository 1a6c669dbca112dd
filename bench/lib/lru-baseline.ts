/**
 * The baseline block cache for bench/cache.ts: the least a block cache built on the
 * `lru-cache` package needs, over any `IoChannel`.
 *
 * - `LRUCache<number, Uint8Array>` with `max = budget / blockSize` entries: the same
 *   byte budget as `CachingChannel`.
 * - Hits are copied into the caller's buffer (`read(block, count, into)`), like
 *   `CachingChannel.read`; evicted buffers are recycled, so a steady state allocates
 *   nothing.
 * - Misses are fetched one block per backing read, or (with `coalesce`) one backing
 *   read per run of consecutive missing blocks, like `CachingChannel`.
 * - Write-back: writes only dirty the cached copy; a dirty block is written when
 *   lru-cache evicts it (the `dispose` hook) or on `flush`, which writes the dirty
 *   blocks in block order (one backing write per block) and then flushes the device.
 * - No argument checking beyond what the backing channel does.
 */
import { LRUCache } from 'lru-cache';
import type { IoChannel } from '../../src/io/channel.js';

export interface LruBlockCacheOptions {
  /** Fetch each run of consecutive missing blocks with one backing read (default false). */
  readonly coalesce?: boolean;
}

export class LruBlockCache {
  readonly inner: IoChannel;
  readonly capacityBlocks: number;
  private readonly blockSize: number;
  private readonly coalesce: boolean;
  private readonly lru: LRUCache<number, Uint8Array>;
  private readonly dirty = new Set<number>();
  private readonly spare: Uint8Array[] = [];

  /** Block reads served from the cache. */
  hits = 0;
  /** Block reads that went to the device. */
  misses = 0;
  /** Blocks read from the device, and the backing read calls that read them. */
  deviceReads = 0;
  deviceReadOps = 0;
  /** Blocks written to the device, and the backing write calls that wrote them. */
  deviceWrites = 0;
  deviceWriteOps = 0;

  constructor(inner: IoChannel, budgetBytes: number, options: LruBlockCacheOptions = {}) {
    this.inner = inner;
    this.blockSize = inner.blockSize;
    this.capacityBlocks = Math.floor(budgetBytes / inner.blockSize);
    if (this.capacityBlocks < 1) throw new RangeError(`cache budget ${budgetBytes} is smaller than one block`);
    this.coalesce = options.coalesce ?? false;
    this.lru = new LRUCache<number, Uint8Array>({
      max: this.capacityBlocks,
      dispose: (data, block, reason) => this.disposed(data, block, reason),
    });
  }

  read(block: number, count: number, into: Uint8Array): Uint8Array {
    const bs = this.blockSize;
    if (this.coalesce) {
      let runStart = -1;
      for (let i = 0; i < count; i++) {
        const data = this.lru.get(block + i);
        if (data === undefined) {
          if (runStart < 0) runStart = i;
          continue;
        }
        into.set(data, i * bs);
        this.hits++;
        if (runStart >= 0) {
          this.fetch(block + runStart, i - runStart, into, runStart * bs);
          runStart = -1;
        }
      }
      if (runStart >= 0) this.fetch(block + runStart, count - runStart, into, runStart * bs);
      return into;
    }
    for (let i = 0; i < count; i++) {
      const b = block + i;
      const data = this.lru.get(b);
      if (data !== undefined) {
        into.set(data, i * bs);
        this.hits++;
        continue;
      }
      this.fetch(b, 1, into, i * bs);
    }
    return into;
  }

  write(block: number, count: number, data: Uint8Array): void {
    const bs = this.blockSize;
    for (let i = 0; i < count; i++) {
      const b = block + i;
      const src = count === 1 && data.length === bs ? data : data.subarray(i * bs, (i + 1) * bs);
      const cached = this.lru.get(b);
      if (cached !== undefined) cached.set(src);
      else this.insert(b, src);
      this.dirty.add(b);
    }
  }

  flush(): void {
    if (this.dirty.size > 0) {
      const blocks = [...this.dirty].sort((x, y) => x - y);
      for (const b of blocks) {
        const data = this.lru.peek(b);
        if (data === undefined) continue; // cannot happen: eviction writes and forgets
        this.inner.write(b, 1, data);
        this.deviceWrites++;
        this.deviceWriteOps++;
      }
      this.dirty.clear();
    }
    this.inner.flush();
  }

  /** Whether a block is cached; not an access (does not change the LRU order). */
  has(block: number): boolean {
    return this.lru.has(block);
  }

  close(): void {
    this.flush();
    this.inner.close();
    this.lru.clear();
  }

  /** Read `count` missing blocks with one backing read into `into[at...]` and cache them. */
  private fetch(first: number, count: number, into: Uint8Array, at: number): void {
    const bs = this.blockSize;
    const whole = at === 0 && into.length === count * bs;
    const dst = whole ? into : into.subarray(at, at + count * bs);
    this.inner.read(first, count, dst);
    this.misses += count;
    this.deviceReads += count;
    this.deviceReadOps++;
    if (count === 1) {
      this.insert(first, dst);
      return;
    }
    for (let i = 0; i < count; i++) this.insert(first + i, dst.subarray(i * bs, (i + 1) * bs));
  }

  private insert(block: number, src: Uint8Array): void {
    const buf = this.spare.pop() ?? new Uint8Array(this.blockSize);
    buf.set(src);
    this.lru.set(block, buf);
  }

  private disposed(data: Uint8Array, block: number, reason: LRUCache.DisposeReason): void {
    if (reason !== 'evict') return;
    if (this.dirty.has(block)) {
      this.inner.write(block, 1, data);
      this.deviceWrites++;
      this.deviceWriteOps++;
      this.dirty.delete(block);
    }
    this.spare.push(data);
  }
}
