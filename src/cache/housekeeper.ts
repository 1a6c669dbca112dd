/**
 * Housekeeping for a cache whose owner is blocked most of the time.
 *
 * The FUSE worker serves requests one at a time and otherwise sits in a blocking
 * read of /dev/fuse, so timers in that thread never fire. The design:
 * - The worker owns the cache and a `Housekeeper`. `Housekeeper.run(now)` does the
 *   periodic flush (`CachingChannel.flushIfDue`) and the pressure check.
 * - Another thread (the main thread, which only mounts and handles signals) owns a
 *   timer. Each period it calls `WakeupFlag.request()` (an Atomics store on shared
 *   memory, visible to the worker at once) and then wakes the worker: for FUSE, by
 *   an asynchronous statfs(2) on the mount point, which makes the kernel send the
 *   worker a STATFS request and so ends its blocking read.
 * - The worker checks `WakeupFlag.take()` after every request it serves (one
 *   Atomics exchange: nanoseconds) and calls `run()` when it was set. A busy worker
 *   therefore does housekeeping between requests; an idle one is woken for it.
 * Owners that are not blocked (CLI, library use) can simply call `start()`, which
 * runs `run()` from a timer in their own thread.
 */
import type { FsError } from '../errors.js';
import type { CachingChannel } from './caching-channel.js';
import type { PressureAction, PressureMonitor } from './pressure.js';

/** A one-bit mailbox between threads over a SharedArrayBuffer. */
export class WakeupFlag {
  readonly buffer: SharedArrayBuffer;
  private readonly cell: Int32Array;

  /** Create a new flag, or attach to one created in another thread. */
  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(4);
    this.cell = new Int32Array(this.buffer, 0, 1);
  }

  /** Ask the owner to do housekeeping (any thread). */
  request(): void {
    Atomics.store(this.cell, 0, 1);
    Atomics.notify(this.cell, 0);
  }

  /** Consume a pending request (owner thread): true if one was pending. */
  take(): boolean {
    return Atomics.exchange(this.cell, 0, 0) === 1;
  }

  /** Block up to `ms` for a request (for owners with nothing else to wait on). */
  wait(ms: number): boolean {
    if (Atomics.load(this.cell, 0) === 1) return true;
    return Atomics.wait(this.cell, 0, 0, ms) !== 'timed-out' || Atomics.load(this.cell, 0) === 1;
  }
}

export interface HousekeepingReport {
  readonly flush: 'flushed' | 'idle' | FsError;
  readonly pressure: PressureAction;
}

export interface HousekeeperOptions {
  readonly pressure?: PressureMonitor;
  /** Monotonic clock in ms (default `performance.now`). */
  readonly clock?: () => number;
  /** Period of `start()`'s timer in ms (default 1000). */
  readonly periodMs?: number;
}

export class Housekeeper {
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly clock: () => number;
  private readonly periodMs: number;
  runs = 0;

  constructor(
    private readonly cache: CachingChannel,
    private readonly options: HousekeeperOptions = {},
  ) {
    this.clock = options.clock ?? (() => performance.now());
    this.periodMs = options.periodMs ?? 1000;
  }

  /** One round: periodic flush if due, then the memory-pressure check. */
  run(now = this.clock()): HousekeepingReport {
    this.runs++;
    const flush = this.cache.flushIfDue(now);
    const pressure = this.options.pressure?.check(now) ?? 'none';
    return { flush, pressure };
  }

  /** Run from a timer in this thread (for owners that are not blocked). */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.run(), this.periodMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
