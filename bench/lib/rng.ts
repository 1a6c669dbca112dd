/**
 * Deterministic randomness for the benchmarks: a small fast PRNG (sfc32), a Zipf
 * sampler and a seeded permutation. Same seed, same sequence, on every machine.
 */

/** sfc32 (Chris Doty-Humphrey's Small Fast Counting generator), 32-bit output. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.u32();
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** Zipf(s) over ranks 0..n-1 (rank 0 most popular): P(rank k) ∝ 1/(k+1)^s. */
export class Zipf {
  readonly n: number;
  readonly s: number;
  private readonly cdf: Float64Array;

  constructor(n: number, s: number) {
    if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`Zipf: invalid n ${n}`);
    this.n = n;
    this.s = s;
    this.cdf = new Float64Array(n);
    let sum = 0;
    for (let k = 0; k < n; k++) {
      sum += 1 / Math.pow(k + 1, s);
      this.cdf[k] = sum;
    }
  }

  /** Probability mass of the `k` most popular ranks. */
  massOfTop(k: number): number {
    if (k <= 0) return 0;
    return (this.cdf[Math.min(k, this.n) - 1] as number) / (this.cdf[this.n - 1] as number);
  }

  /** A rank in [0, limit): the distribution restricted to the `limit` most popular ranks. */
  sample(rng: Rng, limit = this.n): number {
    const top = Math.min(Math.max(limit, 1), this.n);
    const u = rng.next() * (this.cdf[top - 1] as number);
    let lo = 0;
    let hi = top - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.cdf[mid] as number) > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

/** A seeded random permutation of 0..n-1 (Fisher–Yates). */
export function permutation(n: number, rng: Rng): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i] as number;
    p[i] = p[j] as number;
    p[j] = t;
  }
  return p;
}
