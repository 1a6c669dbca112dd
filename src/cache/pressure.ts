/**
 * Memory-pressure reclaim for the cache, driven by Linux PSI (pressure stall
 * information): /proc/pressure/memory (the host) and the cgroup's memory.pressure
 * (our container), whichever exist.
 *
 * fuse2fs polls PSI triggers for POLLPRI in a thread; Node cannot poll a file for
 * POLLPRI, and the FUSE worker blocks in read(2) most of the time anyway. So we
 * sample instead: each `check()` reads the cumulative "some" stall time (`total=`,
 * microseconds) of every source and compares its growth with the time elapsed.
 * If tasks stalled on memory for at least `stallFraction` of the interval (default
 * 10%: the "200 ms in every 2 s" fuse2fs aims at) in any source, that is pressure:
 * the cache shrinks by one step (x0.9). After `relaxMs` (default 60 s) without
 * pressure it grows back by x1.1 per check toward its configured budget.
 * The caller decides when `check()` runs (see `Housekeeper`); a test drives it
 * with a fake source and clock.
 */
import { readFileSync } from 'node:fs';

/** A cumulative stall counter: microseconds stalled since some origin, or undefined if unavailable. */
export interface PressureSource {
  readonly name: string;
  sample(): number | undefined;
}

/** Parse the `some ... total=N` line of a PSI file. */
export function parsePsiSomeTotal(text: string): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith('some ')) continue;
    const m = /\btotal=(\d+)/.exec(line);
    if (m?.[1] !== undefined) return Number(m[1]);
  }
  return undefined;
}

/** A PSI file read on every sample. */
export class PsiFileSource implements PressureSource {
  readonly name: string;
  constructor(private readonly path: string) {
    this.name = path;
  }
  sample(): number | undefined {
    try {
      return parsePsiSomeTotal(readFileSync(this.path, 'utf8'));
    } catch {
      return undefined;
    }
  }
}

/** The PSI files that exist here: the host's and our cgroup's (v2 or hybrid layout). */
export function systemPressureSources(): PressureSource[] {
  const candidates = ['/proc/pressure/memory'];
  try {
    const cgroup = readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    if (cgroup !== undefined) {
      const rel = cgroup.slice(3).trim();
      const dir = rel === '/' ? '' : rel;
      candidates.push(`/sys/fs/cgroup${dir}/memory.pressure`, `/sys/fs/cgroup/unified${dir}/memory.pressure`);
    }
  } catch {
    // not Linux, or no /proc
  }
  return candidates.map((p) => new PsiFileSource(p)).filter((s) => s.sample() !== undefined);
}

/** What a pressure monitor acts on: the CachingChannel's sizing calls. */
export interface Shrinkable {
  shrink(factor?: number): number;
  grow(factor?: number): void;
  readonly shrunk: boolean;
}

export interface PressureMonitorOptions {
  /** Fraction of elapsed time stalled that counts as pressure (default 0.1). */
  readonly stallFraction?: number;
  /** Quiet time before growing back, ms (default 60,000). */
  readonly relaxMs?: number;
  readonly shrinkFactor?: number;
  readonly growFactor?: number;
}

export type PressureAction = 'shrink' | 'grow' | 'none';

export class PressureMonitor {
  private readonly last: (number | undefined)[];
  private lastAt: number | undefined;
  private lastPressureAt = Number.NEGATIVE_INFINITY;
  private readonly stallFraction: number;
  private readonly relaxMs: number;
  private readonly shrinkFactor: number;
  private readonly growFactor: number;
  shrinks = 0;

  constructor(
    private readonly target: Shrinkable,
    private readonly sources: readonly PressureSource[],
    options: PressureMonitorOptions = {},
  ) {
    this.last = sources.map(() => undefined);
    this.stallFraction = options.stallFraction ?? 0.1;
    this.relaxMs = options.relaxMs ?? 60_000;
    this.shrinkFactor = options.shrinkFactor ?? 0.9;
    this.growFactor = options.growFactor ?? 1.1;
  }

  get active(): boolean {
    return this.sources.length > 0;
  }

  /** Sample every source at time `now` (ms) and shrink or grow the cache. */
  check(now: number): PressureAction {
    const elapsedMs = this.lastAt === undefined ? 0 : now - this.lastAt;
    let pressure = false;
    this.sources.forEach((source, i) => {
      const total = source.sample();
      const prev = this.last[i];
      if (total !== undefined && prev !== undefined && elapsedMs > 0) {
        const stalledUs = total - prev;
        if (stalledUs >= this.stallFraction * elapsedMs * 1000) pressure = true;
      }
      this.last[i] = total;
    });
    this.lastAt = now;
    if (pressure) {
      this.lastPressureAt = now;
      this.target.shrink(this.shrinkFactor);
      this.shrinks++;
      return 'shrink';
    }
    if (this.target.shrunk && now - this.lastPressureAt >= this.relaxMs) {
      this.target.grow(this.growFactor);
      return 'grow';
    }
    return 'none';
  }
}
