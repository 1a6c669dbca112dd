/**
 * `CachingChannel`: the caching I/O manager. A write-back buffer cache stacked on any
 * `IoChannel`, following the e2fsprogs iocache design (xfsprogs cache.c lineage) and
 * improving on it where it is weak (see ../shared/reference/iocache-series.md).
 *
 * Structure
 * - Buffers are indexed by block number in a Map and sit on one of 17 intrusive
 *   doubly-linked lists: MRU lists for priorities 0..15 (head = most recently used)
 *   and a "parked" list (16) for dirty buffers whose write-back failed.
 * - Invariant (from xfsprogs): a buffer is on a list if and only if nobody holds it
 *   (`refs === 0`). Held buffers (see `acquire`) are never reclaimed.
 * - A new buffer starts at priority 0. Every `bumpInterval` (50) accesses raise its
 *   priority by one, up to 15.
 * - Reclaim takes the least recently used buffer of the lowest non-empty priority
 *   list. A dirty victim triggers a batched write-back first (below).
 * - The cache holds at most `capacity = floor(cacheSize / blockSize)` buffers; only
 *   held buffers can push it past that. When no buffer can be reclaimed (all held or
 *   parked), reads and writes bypass the cache instead of growing it.
 *
 * Beyond the seed
 * 1. Coalesced reads: consecutive misses in one `read` are fetched with ONE backing
 *    read; `readahead` really prefetches (one backing read per run of missing blocks).
 * 2. Priority aging. The cache keeps a turnover clock: one tick per buffer that
 *    enters the cache (miss, prefetch, write of an uncached block). A buffer loses
 *    one priority level for every `ageTicks` ticks since its last access (default
 *    `ageTicks` = 4 x the capacity: four whole cache turnovers without a touch).
 *    Aging is applied lazily at reclaim time, from the LRU tail of each list, so
 *    hits pay nothing for it. A block that was hot long ago therefore sinks to
 *    priority 0 and can be reclaimed; a block that is still hot keeps its level,
 *    and a hot set at priority p survives cold scans of up to 4p cache-fuls.
 * 3. Access history survives eviction: when a buffer that was used (hit at least
 *    once, or promoted) is reclaimed, its access count and priority are remembered
 *    in a bounded FIFO "ghost" table (as many entries as the capacity). A block that
 *    comes back resumes where it was, so a hot block that a cold scan pushed out
 *    still reaches the next priority after 50 accesses in all, instead of needing
 *    50 within one stay. Blocks used once (scans) leave no ghost.
 * 4. Write-back is sorted and coalesced: dirty buffers are written in block order,
 *    adjacent blocks in one backing write (up to `writeRunBlocks` per write). When a
 *    coalesced write fails, its blocks are retried one by one so that exactly the
 *    failing blocks stay dirty.
 *
 * Nothing lost
 * - A failed write-back keeps the buffer dirty (parked: reclaim skips it), counts a
 *   write error and calls `onWriteError`. `flush()` and `close()` throw; `close()`
 *   then leaves the channel open so the caller can retry. A later successful flush
 *   writes the data and un-parks the buffer.
 * - Write-back triggered by reclaim writes all unheld dirty buffers that have not
 *   failed (one sorted, coalesced batch), then reclaims clean buffers.
 *
 * Coherence
 * - `writeBytes` patches cached blocks (reading partially covered blocks first), so
 *   it stays write-back and coherent.
 * - `discard`/`zeroout` run on the device first; only on success are cached copies
 *   dropped (discard) or zeroed and marked clean (zeroout).
 * - `invalidate` drops cached copies, dirty ones included: the caller declares their
 *   contents obsolete (freed blocks, or a device changed behind our back).
 * - `setBlockSize` flushes (failing if that fails) and empties the cache.
 * - Requests larger than `largeRequestBlocks` (file data) bypass the cache without
 *   evicting metadata: reads overlay the cached (authoritative) copies on what the
 *   device returned; writes go to the device and refresh cached copies.
 *
 * Hot path: a hit is a Map lookup, a list move and a copy into the caller's buffer
 * (`read(block, count, into)`) or no copy at all (`view`), with no allocation.
 */
import { FsError } from '../errors.js';
import {
  checkBlockSize,
  checkBuffer,
  checkRange,
  IoCounters,
  pastEndError,
  readOnlyError,
  type IoChannel,
  type IoStats,
  type RawSource,
} from '../io/channel.js';
import { totalmem } from 'node:os';
import { MruLists } from './mru-lists.js';

export const PRIORITY_LEVELS = 16;
export const MAX_PRIORITY = PRIORITY_LEVELS - 1;
/** Readahead up to this size goes through one reused buffer (larger, rarer ones get their own). */
const PREFETCH_SCRATCH_BYTES = 1 << 20;
/**
 * Direct (file data) reads that follow each other on the device are served from one
 * window of this many bytes read at once: copying a tree out reads its small files in
 * on-disk order, and a device read per file was a syscall per file.
 */
export const STREAM_WINDOW_BYTES = 128 * 1024;
const PARKED = PRIORITY_LEVELS; // list index of dirty buffers whose write-back failed
const LIST_COUNT = PRIORITY_LEVELS + 1;

/** fuse2fs's default: min(32 MiB, RAM / 20). */
export function defaultCacheSize(): number {
  return Math.min(32 * 1024 * 1024, Math.floor(totalmem() / 20));
}

export interface CachingChannelOptions {
  /** Cache budget in bytes (default `defaultCacheSize()`); 0 = pure passthrough. */
  readonly cacheSize?: number;
  /** Accesses per priority bump (default 50). */
  readonly bumpInterval?: number;
  /** Cache turnover (blocks entering the cache) per level of priority aging (default 4 x capacity). */
  readonly ageTicks?: number;
  /** Maximum blocks per coalesced backing write (default 256). */
  readonly writeRunBlocks?: number;
  /** Requests of more blocks than this bypass the cache (default: a quarter of the capacity). */
  readonly largeRequestBlocks?: number;
  /** Called for every block whose write-back failed. */
  readonly onWriteError?: (error: FsError, block: number, count: number) => void;
  /** Monotonic clock in milliseconds (default `performance.now`). */
  readonly clock?: () => number;
  /** Periodic flush interval in seconds for `tick()` (default 30; 0 = off). */
  readonly flushInterval?: number;
}

export interface CacheStats extends IoStats {
  /** Block accesses served from the cache. */
  readonly hits: number;
  /** Block accesses that had to go to the device. */
  readonly misses: number;
  /** Hits on blocks that `readahead` brought in (first hit only). */
  readonly readaheadHits: number;
  /** Blocks fetched by `readahead`. */
  readonly readaheadBlocks: number;
  /** Buffers reclaimed to make room. */
  readonly evictions: number;
  /** Buffers currently dirty. */
  readonly dirty: number;
  /** Buffers currently cached. */
  readonly buffers: number;
  /** Bytes currently cached. */
  readonly bytesCached: number;
  /** Current capacity in blocks. */
  readonly capacityBlocks: number;
  /** Block write-backs that failed. */
  readonly writeErrors: number;
  /** Requests that bypassed the cache because they were large or no buffer could be had. */
  readonly bypasses: number;
}

class Buf {
  block: number;
  readonly data: Uint8Array;
  dirty = false;
  failed = false;
  prefetched = false;
  refs = 0;
  prio = 0;
  access = 0;
  /** Turnover-clock tick of the last access (or of the last aging step). */
  stamp = 0;
  /** List index while on a list, -1 while held. */
  list = -1;
  prev: Buf | null = null;
  next: Buf | null = null;

  constructor(block: number, data: Uint8Array) {
    this.block = block;
    this.data = data;
  }
}

export class CachingChannel implements IoChannel {
  readonly inner: IoChannel;
  private readonly map = new Map<number, Buf>();
  private readonly lists = new MruLists<Buf>(LIST_COUNT);
  private readonly dirtySet = new Set<Buf>();
  /** Evicted blocks' access history: block -> prio * 65536 + access (insertion order = FIFO). */
  private readonly ghosts = new Map<number, number>();
  private readonly spare: Uint8Array[] = [];
  private scratch: Uint8Array | undefined;
  /** Where readahead lands before being copied into block buffers (reused: see prefetchRun). */
  private prefetchScratch: Uint8Array | undefined;
  /** The direct-read window (see STREAM_WINDOW_BYTES): device blocks [streamFirst, streamFirst + streamCount). */
  private stream: Uint8Array | undefined;
  private streamFirst = 0;
  private streamCount = 0;
  /** The block after the last direct read (-1: none yet), to tell sequential reads. */
  private directNext = -1;
  private readonly counters = new IoCounters();
  private readonly bumpInterval: number;
  private readonly ageTicksOption: number | undefined;
  private readonly writeRunBlocks: number;
  private readonly largeRequestOption: number | undefined;
  private readonly onWriteError: ((error: FsError, block: number, count: number) => void) | undefined;
  private readonly clock: () => number;
  private configuredBytes: number;
  private capacity = 0;
  private clockTicks = 0;
  private closed = false;
  private lastFlushAt: number;
  private lastTickFlushAttempt = Number.NEGATIVE_INFINITY;
  flushIntervalSeconds: number;

  private hits = 0;
  private misses = 0;
  private readaheadHits = 0;
  private readaheadBlocks = 0;
  private evictions = 0;
  private writeErrors = 0;
  private bypasses = 0;

  constructor(inner: IoChannel, options: CachingChannelOptions = {}) {
    this.inner = inner;
    const size = options.cacheSize ?? defaultCacheSize();
    if (!Number.isSafeInteger(size) || size < 0) throw new FsError('EINVAL', `invalid cache size ${size}`);
    this.configuredBytes = size;
    this.bumpInterval = positiveInt(options.bumpInterval ?? 50, 'bumpInterval');
    this.ageTicksOption = options.ageTicks === undefined ? undefined : positiveInt(options.ageTicks, 'ageTicks');
    this.writeRunBlocks = positiveInt(options.writeRunBlocks ?? 256, 'writeRunBlocks');
    this.largeRequestOption = options.largeRequestBlocks === undefined ? undefined : positiveInt(options.largeRequestBlocks, 'largeRequestBlocks');
    this.onWriteError = options.onWriteError;
    this.clock = options.clock ?? (() => performance.now());
    this.flushIntervalSeconds = options.flushInterval ?? 30;
    this.lastFlushAt = this.clock();
    this.capacity = Math.floor(size / inner.blockSize);
  }

  get name(): string {
    return this.inner.name;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  get blockSize(): number {
    return this.inner.blockSize;
  }
  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }
  /** Current capacity in blocks. */
  get capacityBlocks(): number {
    return this.capacity;
  }
  /** Configured budget in bytes (the ceiling that `grow` returns to). */
  get cacheSize(): number {
    return this.configuredBytes;
  }
  private get passthrough(): boolean {
    return this.configuredBytes === 0;
  }
  private get ageTicks(): number {
    return this.ageTicksOption ?? Math.max(4 * this.capacity, 64);
  }
  private get largeRequestBlocks(): number {
    return this.largeRequestOption ?? Math.max(Math.floor(this.capacity / 4), 1);
  }

  // ---------------------------------------------------------------- reads

  /** Validate a read request and return the buffer it fills. */
  private readTarget(block: number, count: number, into: Uint8Array | undefined): Uint8Array {
    checkRange(block, count, this.name);
    const bs = this.inner.blockSize;
    const out = into ?? new Uint8Array(count * bs);
    checkBuffer(out, count * bs, 'read', this.name, block, count);
    if ((block + count) * bs > this.inner.sizeBytes) throw pastEndError(this.name, block, count, bs, this.inner.sizeBytes);
    return out;
  }

  read(block: number, count: number, into?: Uint8Array): Uint8Array {
    this.assertOpen();
    if (this.passthrough) return this.innerRead(block, count, into);
    const out = this.readTarget(block, count, into);
    if (count === 0) return out;
    const bs = this.inner.blockSize;
    if (count > this.largeRequestBlocks) {
      this.readThrough(block, count, out);
      return out;
    }
    let runStart = -1;
    for (let i = 0; i < count; i++) {
      const b = block + i;
      const buf = this.map.get(b);
      if (buf === undefined) {
        if (runStart < 0) runStart = b;
        continue;
      }
      // Copy before fetching the pending run: the fetch may reclaim this buffer.
      out.set(buf.data, i * bs);
      this.hit(buf);
      if (runStart >= 0) {
        this.fetchRun(runStart, b - runStart, out, (runStart - block) * bs);
        runStart = -1;
      }
    }
    if (runStart >= 0) this.fetchRun(runStart, block + count - runStart, out, (runStart - block) * bs);
    return out;
  }

  /**
   * Read blocks without caching them (file data): one backing read, then the cached
   * copies of any of these blocks (which may be newer than the device) are copied
   * over the result. Metadata in the cache is neither evicted nor promoted.
   */
  readDirect(block: number, count: number, into?: Uint8Array): Uint8Array {
    return this.direct(block, count, into, false);
  }

  /**
   * `readDirect` into `into`, except that when the direct-read window serves the request
   * and holds the only copy of its blocks (none is cached), the result is a view of the
   * window itself: no copy. Valid until the next call on this channel; the caller must
   * not modify it. For a reader that hands the bytes on at once (copying files out).
   */
  readDirectView(block: number, count: number, into: Uint8Array): Uint8Array {
    return this.direct(block, count, into, true);
  }

  /**
   * readDirect (and with `view`, readDirectView): served from the direct-read window
   * when streamAt says it serves the request, the cached copies laid over it; else one
   * backing read (readThrough).
   */
  private direct(block: number, count: number, into: Uint8Array | undefined, view: boolean): Uint8Array {
    this.assertOpen();
    if (this.passthrough) return this.innerRead(block, count, into);
    const out = this.readTarget(block, count, into);
    if (count === 0) return out;
    const at = this.streamAt(block, count);
    if (at < 0) {
      this.readThrough(block, count, out);
      return out;
    }
    const window = (this.stream as Uint8Array).subarray(at, at + count * this.inner.blockSize);
    if (view && !this.anyCached(block, count)) {
      this.misses += count;
      return window;
    }
    out.set(window);
    this.overlay(block, count, out);
    return out;
  }

  /**
   * Where blocks [block, block + count) start in the direct-read window (bytes), or -1
   * when the window does not serve the request: large, or not sequential (a random
   * reader must not pay for a window it will not use). The window is refilled with one
   * device read when the request lies ahead of the previous one, close enough that the
   * reads are walking the device (copying files stored one after the other).
   */
  private streamAt(block: number, count: number): number {
    const bs = this.inner.blockSize;
    const windowBlocks = Math.floor(STREAM_WINDOW_BYTES / bs);
    const previous = this.directNext;
    this.directNext = block + count;
    if (count * 2 > windowBlocks) return -1;
    if (block < this.streamFirst || block + count > this.streamFirst + this.streamCount) {
      if (previous < 0 || block < previous || block - previous > windowBlocks) return -1;
      const deviceBlocks = Math.floor(this.inner.sizeBytes / bs);
      const n = Math.min(windowBlocks, deviceBlocks - block);
      const window = (this.stream ??= new Uint8Array(windowBlocks * bs));
      this.streamCount = 0; // stays empty if the read fails
      this.innerRead(block, n, window.subarray(0, n * bs));
      this.streamFirst = block;
      this.streamCount = n;
    }
    return (block - this.streamFirst) * bs;
  }

  /**
   * Whether cached copies may differ from the device, so that direct reads must be
   * overlaid with them: not on a read-only channel, where every cached block was read
   * from the device as the window was (looking each block up was 1% of `get`).
   */
  private overlays(): boolean {
    return this.map.size > 0 && !this.inner.readOnly;
  }

  /** Whether one of a few blocks (at most half a window) is cached with contents the device may not have. */
  private anyCached(block: number, count: number): boolean {
    if (!this.overlays()) return false;
    for (let b = block; b < block + count; b++) if (this.map.has(b)) return true;
    return false;
  }

  /**
   * Lays the cached copies of a few blocks (at most half a window: looked up one by one,
   * no forRange list) over `out` where they may differ (see `overlays`), and counts
   * hits (blocks overlaid) and misses.
   */
  private overlay(block: number, count: number, out: Uint8Array): void {
    const bs = this.inner.blockSize;
    let overlaid = 0;
    if (this.overlays()) {
      for (let b = block; b < block + count; b++) {
        const buf = this.map.get(b);
        if (buf === undefined) continue;
        out.set(buf.data, (b - block) * bs);
        overlaid++;
      }
    }
    this.hits += overlaid;
    this.misses += count - overlaid;
  }

  /** Forget the direct-read window: the device is about to change under it. */
  private dropStream(): void {
    this.streamCount = 0;
  }

  /**
   * The cached buffer of one block, without a copy. The view is valid until the next
   * call on this channel; the caller must not modify it (use `acquire` to modify).
   */
  view(block: number): Uint8Array {
    this.assertOpen();
    if (this.passthrough) return this.innerRead(block, 1);
    const buf = this.map.get(block);
    if (buf !== undefined) {
      this.hit(buf);
      return buf.data;
    }
    checkRange(block, 1, this.name);
    const bs = this.inner.blockSize;
    if ((block + 1) * bs > this.inner.sizeBytes) throw pastEndError(this.name, block, 1, bs, this.inner.sizeBytes);
    const fresh = this.allocate(block, false);
    if (fresh === null) {
      this.bypasses++;
      this.misses++;
      return this.innerRead(block, 1);
    }
    try {
      this.innerRead(block, 1, fresh.data);
    } catch (error) {
      this.recycle(fresh);
      throw error;
    }
    this.misses++;
    this.insert(fresh);
    return fresh.data;
  }

  /**
   * Hold a block's buffer for in-place modification: it is not reclaimed until
   * `release`. With `overwrite`, the block is not read from the device (the caller
   * will fill all of it). Held buffers may exceed the budget.
   */
  acquire(block: number, overwrite = false): Uint8Array {
    this.assertOpen();
    if (this.passthrough) throw new FsError('EINVAL', `${this.name}: acquire needs a cache (cache size is 0)`);
    let buf = this.map.get(block);
    if (buf !== undefined) {
      this.touch(buf);
      if (buf.prefetched) this.takePrefetch(buf);
      this.hits++;
    } else {
      checkRange(block, 1, this.name);
      const bs = this.inner.blockSize;
      if ((block + 1) * bs > this.inner.sizeBytes) throw pastEndError(this.name, block, 1, bs, this.inner.sizeBytes);
      buf = this.allocate(block, true) as Buf;
      if (!overwrite) {
        try {
          this.innerRead(block, 1, buf.data);
        } catch (error) {
          this.recycle(buf);
          throw error;
        }
        this.misses++;
      } else {
        buf.data.fill(0);
      }
      this.insert(buf);
    }
    if (buf.refs === 0) this.lists.unlink(buf);
    buf.refs++;
    return buf.data;
  }

  /** Give back a buffer taken with `acquire`; `dirty` marks it modified. */
  release(block: number, dirty: boolean): void {
    const buf = this.map.get(block);
    if (buf === undefined || buf.refs === 0) throw new FsError('EINVAL', `${this.name}: release of block ${block} that is not held`, { block });
    if (dirty) {
      if (this.inner.readOnly) throw readOnlyError(this.name, 'write', block, 1);
      this.markDirty(buf);
    }
    buf.refs--;
    if (buf.refs === 0) {
      this.lists.pushHead(buf, buf.failed ? PARKED : buf.prio);
      this.evictDown();
    }
  }

  /** The device's, when this channel is read-only (nothing cached here is newer than the file). */
  rawSource(): RawSource | undefined {
    return this.readOnly ? this.inner.rawSource?.() : undefined;
  }

  readahead(block: number, count: number): void {
    this.assertOpen();
    if (this.passthrough) {
      this.inner.readahead(block, count);
      return;
    }
    checkRange(block, count, this.name);
    this.uncachedRuns(block, Math.min(count, this.largeRequestBlocks), (first, n) => this.prefetchRun(first, n));
  }

  /** Each run of blocks in [block, block+count), clipped at the device's end, that the cache does not hold. */
  private uncachedRuns(block: number, count: number, visit: (first: number, count: number) => void): void {
    const end = Math.min(block + count, Math.floor(this.inner.sizeBytes / this.inner.blockSize));
    let b = block;
    while (b < end) {
      if (this.map.has(b)) {
        b++;
        continue;
      }
      let e = b + 1;
      while (e < end && !this.map.has(e)) e++;
      visit(b, e - b);
      b = e;
    }
  }

  /**
   * Ask the backing channel to start reading the blocks of [block, block+count) that
   * are not cached, without waiting (its readahead hint: posix_fadvise WILLNEED on a
   * file). Nothing enters this cache; a caller that knows what it reads next lets the
   * device fetch it meanwhile, so the later misses find the data in the page cache.
   */
  hint(block: number, count: number): void {
    this.assertOpen();
    checkRange(block, count, this.name);
    this.uncachedRuns(block, count, (first, n) => this.inner.readahead(first, n));
  }

  // ---------------------------------------------------------------- writes

  /**
   * True when a write of `count` blocks from `block` is to go ahead through the cache;
   * false when there is nothing more to do (passthrough, empty). Throws on a bad request.
   */
  private writeChecked(block: number, count: number, data: Uint8Array): boolean {
    this.assertOpen();
    if (this.passthrough) {
      this.innerWrite(block, count, data);
      return false;
    }
    if (this.inner.readOnly) throw readOnlyError(this.name, 'write', block, count);
    checkRange(block, count, this.name);
    const bs = this.inner.blockSize;
    checkBuffer(data, count * bs, 'write', this.name, block, count);
    if (count === 0) return false;
    this.checkInside(block * bs, count * bs, block, count);
    return true;
  }

  /**
   * Write file data straight to the device, whatever its size (the counterpart of
   * `readDirect`): cached copies of these blocks are refreshed and marked clean, nothing
   * is evicted for them. For runs of whole data blocks, which would otherwise push
   * metadata out of the cache and be copied twice.
   */
  writeDirect(block: number, count: number, data: Uint8Array): void {
    if (this.writeChecked(block, count, data)) this.writeThrough(block, count, data);
  }

  write(block: number, count: number, data: Uint8Array): void {
    if (!this.writeChecked(block, count, data)) return;
    const bs = this.inner.blockSize;
    if (count > this.largeRequestBlocks) {
      this.writeThrough(block, count, data);
      return;
    }
    for (let i = 0; i < count; i++) {
      const b = block + i;
      let buf = this.map.get(b);
      if (buf === undefined) {
        const fresh = this.allocate(b, false);
        if (fresh === null) {
          this.bypasses++;
          this.innerWrite(b, 1, data.subarray(i * bs, (i + 1) * bs));
          continue;
        }
        buf = fresh;
        this.insert(buf);
      } else {
        this.touch(buf);
      }
      buf.data.set(data.subarray(i * bs, (i + 1) * bs));
      this.markDirty(buf);
    }
  }

  writeBytes(offset: number, data: Uint8Array): void {
    this.assertOpen();
    if (this.passthrough) {
      this.innerWriteBytes(offset, data);
      return;
    }
    if (this.inner.readOnly) throw readOnlyError(this.name, 'writeBytes');
    if (!Number.isSafeInteger(offset) || offset < 0) throw new FsError('EINVAL', `${this.name}: invalid byte offset ${offset}`, { offset });
    if (data.length === 0) return;
    const bs = this.inner.blockSize;
    this.checkInside(offset, data.length, Math.floor(offset / bs), undefined);
    let pos = 0;
    while (pos < data.length) {
      const abs = offset + pos;
      const b = Math.floor(abs / bs);
      const inBlock = abs - b * bs;
      const n = Math.min(bs - inBlock, data.length - pos);
      let buf = this.map.get(b);
      if (buf === undefined) {
        const fresh = this.allocate(b, false);
        if (fresh === null) {
          this.bypasses++;
          this.innerWriteBytes(abs, data.subarray(pos, pos + n));
          pos += n;
          continue;
        }
        if (n < bs) {
          try {
            this.innerRead(b, 1, fresh.data);
          } catch (error) {
            this.recycle(fresh);
            throw error;
          }
          this.misses++;
        }
        buf = fresh;
        this.insert(buf);
      } else {
        this.touch(buf);
      }
      buf.data.set(data.subarray(pos, pos + n), inBlock);
      this.markDirty(buf);
      pos += n;
    }
  }

  /**
   * Write every dirty buffer back (sorted, coalesced), then make the device durable.
   * Throws EIO if any block could not be written; those stay dirty.
   */
  flush(): void {
    this.assertOpen();
    const failures = this.passthrough ? [] : this.writeBack(true);
    this.inner.flush();
    this.counters.flushes++;
    if (failures.length > 0) throw this.writeBackFailure(failures);
    this.lastFlushAt = this.clock();
  }

  /**
   * Write every dirty buffer back to the backing channel without making the device
   * durable (no fsync): the data then survives this process, not a power cut.
   * Throws EIO if any block could not be written; those stay dirty.
   */
  writeBackDirty(): void {
    this.assertOpen();
    if (this.passthrough) return;
    const failures = this.writeBack(true);
    if (failures.length > 0) throw this.writeBackFailure(failures);
  }

  discard(block: number, count: number): void {
    this.assertOpen();
    if (this.inner.readOnly) throw readOnlyError(this.name, 'discard', block, count);
    this.dropStream();
    this.inner.discard(block, count);
    if (!this.passthrough) this.forRange(block, count, (buf) => this.dropOrZero(buf, false));
  }

  zeroout(block: number, count: number): void {
    this.assertOpen();
    if (this.inner.readOnly) throw readOnlyError(this.name, 'zeroout', block, count);
    this.dropStream();
    this.inner.zeroout(block, count);
    if (!this.passthrough) this.forRange(block, count, (buf) => this.dropOrZero(buf, true));
  }

  invalidate(block?: number, count?: number): void {
    this.assertOpen();
    if (!this.passthrough) {
      if (block === undefined) {
        for (const buf of this.map.values()) this.checkNotHeld(buf, 'invalidate');
        for (const buf of [...this.map.values()]) this.drop(buf);
      } else {
        const n = count ?? 1;
        checkRange(block, n, this.name);
        this.forRange(block, n, (buf) => this.checkNotHeld(buf, 'invalidate'));
        this.forRange(block, n, (buf) => this.drop(buf));
      }
    }
    this.dropStream();
    this.inner.invalidate(block, count);
  }

  setBlockSize(size: number): void {
    this.assertOpen();
    checkBlockSize(size, this.name);
    if (size === this.inner.blockSize) return;
    if (this.passthrough) {
      this.inner.setBlockSize(size);
      return;
    }
    this.flush();
    for (const buf of this.map.values()) this.checkNotHeld(buf, 'setBlockSize');
    for (const buf of [...this.map.values()]) this.drop(buf);
    this.spare.length = 0;
    this.scratch = undefined;
    this.prefetchScratch = undefined;
    this.stream = undefined;
    this.streamCount = 0;
    this.directNext = -1;
    this.inner.setBlockSize(size);
    this.capacity = Math.floor(this.configuredBytes / size);
  }

  /** Flush, then close the backing channel. If the flush fails, the channel stays open. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.inner.close();
    for (const buf of [...this.map.values()]) {
      buf.refs = 0;
      this.drop(buf);
    }
    this.spare.length = 0;
    this.closed = true;
  }

  // ---------------------------------------------------------------- sizing, housekeeping

  /** Change the budget (bytes). Shrinking reclaims (writing back dirty buffers). */
  setCacheSize(bytes: number): void {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new FsError('EINVAL', `invalid cache size ${bytes} (passthrough is chosen at open)`);
    this.configuredBytes = bytes;
    this.capacity = Math.floor(bytes / this.inner.blockSize);
    this.evictDown();
  }

  /**
   * Shrink the current capacity by `factor` (default 0.9), never below `floorBlocks`
   * (default 64), and reclaim down to it. Returns the number of buffers freed.
   */
  shrink(factor = 0.9, floorBlocks = 64): number {
    if (this.passthrough) return 0;
    const target = Math.max(Math.min(floorBlocks, this.capacity), Math.floor(this.capacity * factor));
    this.capacity = target;
    const before = this.evictions;
    this.evictDown();
    this.spare.length = 0;
    return this.evictions - before;
  }

  /** Grow the capacity back toward the configured budget by `factor` (default 1.1). */
  grow(factor = 1.1): void {
    if (this.passthrough) return;
    const max = Math.floor(this.configuredBytes / this.inner.blockSize);
    this.capacity = Math.min(max, Math.max(this.capacity + 1, Math.floor(this.capacity * factor)));
  }

  /** True when the capacity is below the configured budget (after `shrink`). */
  get shrunk(): boolean {
    return this.capacity < Math.floor(this.configuredBytes / this.inner.blockSize);
  }

  /** Milliseconds (on the channel's clock) of the last successful flush. */
  get lastFlush(): number {
    return this.lastFlushAt;
  }

  /** Number of dirty buffers. */
  get dirtyCount(): number {
    return this.dirtySet.size;
  }

  /**
   * Periodic flush: if the interval is on, there is dirty data, and no flush (of any
   * cause) happened within the interval, flush now. A failed periodic flush is
   * reported through `onWriteError` and returned, and not retried before another
   * interval has passed. Returns 'flushed', 'idle' or the error.
   */
  flushIfDue(now = this.clock()): 'flushed' | 'idle' | FsError {
    if (this.closed || this.passthrough || this.flushIntervalSeconds <= 0 || this.dirtySet.size === 0) return 'idle';
    const interval = this.flushIntervalSeconds * 1000;
    if (now - this.lastFlushAt < interval || now - this.lastTickFlushAttempt < interval) return 'idle';
    this.lastTickFlushAttempt = now;
    try {
      this.flush();
      return 'flushed';
    } catch (error) {
      return error instanceof FsError ? error : new FsError('EIO', String(error));
    }
  }

  stats(): CacheStats {
    return {
      ...this.counters.snapshot(),
      hits: this.hits,
      misses: this.misses,
      readaheadHits: this.readaheadHits,
      readaheadBlocks: this.readaheadBlocks,
      evictions: this.evictions,
      dirty: this.dirtySet.size,
      buffers: this.map.size,
      bytesCached: this.map.size * this.inner.blockSize,
      capacityBlocks: this.capacity,
      writeErrors: this.writeErrors,
      bypasses: this.bypasses,
    };
  }

  /** Whether a block is cached (for tests and diagnostics; does not count as an access). */
  has(block: number): boolean {
    return this.map.has(block);
  }

  /** Priority of a cached block, or undefined (for tests and diagnostics). */
  priorityOf(block: number): number | undefined {
    return this.map.get(block)?.prio;
  }

  // ---------------------------------------------------------------- internals: backing I/O

  private innerRead(block: number, count: number, into?: Uint8Array): Uint8Array {
    const out = this.inner.read(block, count, into);
    this.counters.readOps++;
    this.counters.reads += count;
    this.counters.bytesRead += count * this.inner.blockSize;
    return out;
  }

  private innerWriteBytes(offset: number, data: Uint8Array): void {
    this.dropStream();
    this.inner.writeBytes(offset, data);
    this.counters.writeOps++;
    this.counters.bytesWritten += data.length;
  }

  private innerWrite(block: number, count: number, data: Uint8Array): void {
    this.dropStream();
    this.inner.write(block, count, data);
    this.counters.writeOps++;
    this.counters.writes += count;
    this.counters.bytesWritten += count * this.inner.blockSize;
  }

  /** Fetch `count` missing blocks with one backing read into `out[at...]`, then cache them. */
  private fetchRun(first: number, count: number, out: Uint8Array, at: number): void {
    const bs = this.inner.blockSize;
    this.innerRead(first, count, out.subarray(at, at + count * bs));
    this.misses += count;
    for (let i = 0; i < count; i++) {
      const b = first + i;
      if (this.map.has(b)) continue;
      const buf = this.allocate(b, false);
      if (buf === null) {
        this.bypasses++;
        continue;
      }
      buf.data.set(out.subarray(at + i * bs, at + (i + 1) * bs));
      this.insert(buf);
    }
  }

  private prefetchRun(first: number, count: number): void {
    const bs = this.inner.blockSize;
    // One buffer for every readahead of up to PREFETCH_SCRATCH_BYTES: a new one per call
    // was fresh memory for the kernel to fault in page by page (a tree walk's readaheads
    // spent more time in those faults than in reading).
    let tmp: Uint8Array;
    if (count * bs <= PREFETCH_SCRATCH_BYTES) {
      if (this.prefetchScratch === undefined || this.prefetchScratch.length < count * bs) this.prefetchScratch = new Uint8Array(count * bs);
      tmp = this.innerRead(first, count, this.prefetchScratch.subarray(0, count * bs));
    } else {
      tmp = this.innerRead(first, count);
    }
    this.readaheadBlocks += count;
    for (let i = 0; i < count; i++) {
      const b = first + i;
      if (this.map.has(b)) continue;
      const buf = this.allocate(b, false);
      if (buf === null) break;
      buf.data.set(tmp.subarray(i * bs, (i + 1) * bs));
      buf.prefetched = true;
      this.insertPrefetched(buf);
    }
  }

  /** Large read: straight from the device, then overlay cached (authoritative) copies. */
  private readThrough(block: number, count: number, out: Uint8Array): void {
    this.bypasses++;
    this.innerRead(block, count, out);
    const bs = this.inner.blockSize;
    let overlaid = 0;
    this.forRange(block, count, (buf) => {
      out.set(buf.data, (buf.block - block) * bs);
      overlaid++;
    });
    this.hits += overlaid;
    this.misses += count - overlaid;
  }

  /** Large write: straight to the device, then refresh cached copies (now clean). */
  private writeThrough(block: number, count: number, data: Uint8Array): void {
    this.bypasses++;
    this.innerWrite(block, count, data);
    const bs = this.inner.blockSize;
    this.forRange(block, count, (buf) => {
      const at = (buf.block - block) * bs;
      buf.data.set(data.subarray(at, at + bs));
      this.markClean(buf);
    });
  }

  /**
   * Write dirty buffers back in block order, coalescing adjacent blocks. With
   * `all`, held and previously failed buffers are included (flush); without, only
   * unheld buffers that have not failed (reclaim). Returns the failures.
   */
  private writeBack(all: boolean): { block: number; error: FsError }[] {
    const failures: { block: number; error: FsError }[] = [];
    if (this.dirtySet.size === 0) return failures;
    const list: Buf[] = [];
    for (const buf of this.dirtySet) if (all || (buf.refs === 0 && !buf.failed)) list.push(buf);
    list.sort((a, b) => a.block - b.block);
    const bs = this.inner.blockSize;
    // Lone dirty blocks (metadata, mostly) go to the device in one batched call where
    // it has one; runs of adjacent blocks are coalesced into one write each.
    const lone: Buf[] = [];
    let i = 0;
    while (i < list.length) {
      let j = i + 1;
      while (j < list.length && j - i < this.writeRunBlocks && (list[j] as Buf).block === (list[j - 1] as Buf).block + 1) j++;
      const first = list[i] as Buf;
      const n = j - i;
      if (n === 1 && this.inner.writeBlocks !== undefined) {
        lone.push(first);
        i = j;
        continue;
      }
      try {
        if (n === 1) {
          this.innerWrite(first.block, 1, first.data);
        } else {
          if (this.scratch === undefined || this.scratch.length < n * bs) this.scratch = new Uint8Array(Math.min(this.writeRunBlocks, Math.max(n, 16)) * bs);
          const scratch = this.scratch;
          for (let k = 0; k < n; k++) scratch.set((list[i + k] as Buf).data, k * bs);
          this.innerWrite(first.block, n, scratch);
        }
        for (let k = i; k < j; k++) this.markClean(list[k] as Buf);
      } catch (error) {
        if (n === 1) failures.push({ block: first.block, error: this.recordWriteError(first, error) });
        else this.writeEach(list.slice(i, j), failures); // isolate the failing blocks
      }
      i = j;
    }
    if (lone.length > 0) this.writeLone(lone, failures);
    return failures;
  }

  /** Write single dirty blocks with the device's batched write; on failure, one by one to find which fail. */
  private writeLone(bufs: readonly Buf[], failures: { block: number; error: FsError }[]): void {
    if (bufs.length > 1 && this.inner.writeBlocks !== undefined) {
      try {
        this.dropStream();
        this.inner.writeBlocks(
          bufs.map((b) => b.block),
          bufs.map((b) => b.data),
        );
        this.counters.writeOps += bufs.length;
        this.counters.writes += bufs.length;
        this.counters.bytesWritten += bufs.length * this.inner.blockSize;
        for (const buf of bufs) this.markClean(buf);
        return;
      } catch {
        // Fall through: the single writes say which blocks fail.
      }
    }
    this.writeEach(bufs, failures);
  }

  /** Write each buffer on its own; a failure is recorded for that block alone. */
  private writeEach(bufs: readonly Buf[], failures: { block: number; error: FsError }[]): void {
    for (const buf of bufs) {
      try {
        this.innerWrite(buf.block, 1, buf.data);
        this.markClean(buf);
      } catch (error) {
        failures.push({ block: buf.block, error: this.recordWriteError(buf, error) });
      }
    }
  }

  private recordWriteError(buf: Buf, error: unknown): FsError {
    const e =
      error instanceof FsError
        ? error
        : new FsError('EIO', `${this.name}: write-back of block ${buf.block} failed: ${String(error)}`, { block: buf.block, count: 1 });
    this.writeErrors++;
    if (!buf.failed) {
      buf.failed = true;
      if (buf.list >= 0) {
        this.lists.unlink(buf);
        this.lists.pushHead(buf, PARKED);
      }
    }
    this.onWriteError?.(e, buf.block, 1);
    return e;
  }

  private writeBackFailure(failures: { block: number; error: FsError }[]): FsError {
    const first = failures[0] as { block: number; error: FsError };
    const blocks = failures.map((f) => f.block);
    const shown = blocks.slice(0, 8).join(', ') + (blocks.length > 8 ? ', ...' : '');
    return new FsError(
      first.error.code === 'ENOSPC' ? 'ENOSPC' : 'EIO',
      `${this.name}: write-back of ${failures.length} block(s) failed (${shown}); the data stays cached and dirty: ${first.error.message}`,
      { device: this.name, block: first.block, count: failures.length },
      { cause: first.error },
    );
  }

  // ---------------------------------------------------------------- internals: buffers

  private hit(buf: Buf): void {
    this.hits++;
    if (buf.prefetched) this.takePrefetch(buf);
    this.touch(buf);
  }

  private takePrefetch(buf: Buf): void {
    buf.prefetched = false;
    this.readaheadHits++;
  }

  /** Count an access: bump the priority every `bumpInterval` accesses, move to the MRU head. */
  private touch(buf: Buf): void {
    buf.stamp = this.clockTicks;
    if (++buf.access >= this.bumpInterval) {
      buf.access = 0;
      if (buf.prio < MAX_PRIORITY) buf.prio++;
    }
    if (buf.list >= 0 && buf.list !== PARKED) {
      this.lists.unlink(buf);
      this.lists.pushHead(buf, buf.prio);
    }
  }

  private markDirty(buf: Buf): void {
    if (!buf.dirty) {
      buf.dirty = true;
      this.dirtySet.add(buf);
    }
  }

  private markClean(buf: Buf): void {
    if (buf.dirty) {
      buf.dirty = false;
      this.dirtySet.delete(buf);
    }
    if (buf.failed) {
      buf.failed = false;
      if (buf.list === PARKED) {
        this.lists.unlink(buf);
        this.lists.pushHead(buf, buf.prio);
      }
    }
  }

  /**
   * A buffer for `block` (not yet in the map): a new one while under capacity, else
   * a reclaimed one. Returns null when nothing can be reclaimed, unless `force`
   * (held buffers may exceed the budget).
   */
  private allocate(block: number, force: boolean): Buf | null {
    if (this.map.size < this.capacity) return this.newBuf(block);
    const victim = this.reclaim();
    if (victim !== null) {
      // Reuse the victim's object and memory: a miss allocates nothing.
      victim.block = block;
      victim.dirty = false;
      victim.failed = false;
      victim.prefetched = false;
      victim.refs = 0;
      victim.prio = 0;
      victim.access = 0;
      victim.stamp = 0;
      return victim;
    }
    return force ? this.newBuf(block) : null;
  }

  private newBuf(block: number): Buf {
    const data = this.spare.pop() ?? new Uint8Array(this.inner.blockSize);
    return new Buf(block, data);
  }

  /** Return an allocated-but-never-inserted buffer's memory. */
  private recycle(buf: Buf): void {
    if (this.spare.length < 64) this.spare.push(buf.data);
  }

  private insert(buf: Buf): void {
    buf.stamp = ++this.clockTicks;
    this.restoreHistory(buf);
    this.map.set(buf.block, buf);
    this.lists.pushHead(buf, buf.prio);
  }

  private restoreHistory(buf: Buf): void {
    if (this.ghosts.size === 0) return;
    const h = this.ghosts.get(buf.block);
    if (h === undefined) return;
    this.ghosts.delete(buf.block);
    buf.prio = Math.floor(h / 65536);
    buf.access = h % 65536;
  }

  private remember(victim: Buf): void {
    if (victim.access === 0 && victim.prio === 0) return;
    this.ghosts.set(victim.block, victim.prio * 65536 + victim.access);
    if (this.ghosts.size > this.capacity) {
      const oldest = this.ghosts.keys().next();
      if (oldest.done !== true) this.ghosts.delete(oldest.value);
    }
  }

  /** Prefetched buffers go to the LRU end of level 0: first to go if never used. */
  private insertPrefetched(buf: Buf): void {
    buf.stamp = ++this.clockTicks;
    this.restoreHistory(buf);
    this.map.set(buf.block, buf);
    this.lists.pushTail(buf, buf.prio);
  }

  /** Reclaim one unheld clean buffer (writing back dirty ones first); null if none. */
  private reclaim(): Buf | null {
    this.age();
    let victim = this.lowestTail();
    if (victim === null) return null;
    if (victim.dirty) {
      this.writeBack(false);
      victim = this.lowestTail();
      if (victim === null) return null;
    }
    this.lists.unlink(victim);
    this.map.delete(victim.block);
    this.evictions++;
    this.remember(victim);
    return victim;
  }

  private lowestTail(): Buf | null {
    return this.lists.lowestTail(PRIORITY_LEVELS);
  }

  /** Apply lazy aging to the LRU tails of levels 1..15 (see the header comment). */
  private age(): void {
    const period = this.ageTicks;
    const now = this.clockTicks;
    for (let level = 1; level < PRIORITY_LEVELS; level++) {
      let t = this.lists.tail(level);
      while (t !== null && now - t.stamp >= period) {
        const levels = Math.floor((now - t.stamp) / period);
        const prev: Buf | null = t.prev;
        this.lists.unlink(t);
        t.prio = Math.max(0, t.prio - levels);
        t.stamp += levels * period;
        t.access = 0;
        this.lists.pushTail(t, t.prio);
        t = prev;
      }
    }
  }

  private evictDown(): void {
    while (this.map.size > this.capacity) {
      const victim = this.reclaim();
      if (victim === null) return;
      this.recycle(victim);
    }
  }

  /** Drop (discard) or zero and clean (zeroout) one cached buffer after a device op. */
  private dropOrZero(buf: Buf, zero: boolean): void {
    if (zero || buf.refs > 0) {
      buf.data.fill(0);
      this.markClean(buf);
      return;
    }
    this.drop(buf);
  }

  private drop(buf: Buf): void {
    if (buf.list >= 0) this.lists.unlink(buf);
    this.map.delete(buf.block);
    if (buf.dirty) {
      buf.dirty = false;
      this.dirtySet.delete(buf);
    }
    buf.failed = false;
    this.recycle(buf);
  }

  private checkNotHeld(buf: Buf, op: string): void {
    if (buf.refs > 0) throw new FsError('EBUSY', `${this.name}: ${op} of block ${buf.block} while it is held`, { block: buf.block });
  }

  /** Call `fn` for each cached buffer in [block, block+count), whichever way is cheaper. */
  private forRange(block: number, count: number, fn: (buf: Buf) => void): void {
    if (this.map.size === 0) return;
    const found: Buf[] = [];
    if (count <= this.map.size) {
      for (let b = block; b < block + count; b++) {
        const buf = this.map.get(b);
        if (buf !== undefined) found.push(buf);
      }
    } else {
      for (const buf of this.map.values()) if (buf.block >= block && buf.block < block + count) found.push(buf);
    }
    for (const buf of found) fn(buf);
  }

  private checkInside(offset: number, length: number, block: number, count: number | undefined): void {
    if (offset + length > this.inner.sizeBytes) {
      const ctx = count === undefined ? { device: this.name, block, offset } : { device: this.name, block, count };
      throw new FsError('ENOSPC', `${this.name}: write of ${length} bytes at byte ${offset} extends past the end of the device (${this.inner.sizeBytes} bytes)`, ctx);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new FsError('EBADF', `${this.name}: channel is closed`, { device: this.name });
  }
}

function positiveInt(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new FsError('EINVAL', `invalid ${what} ${value}`);
  return value;
}
