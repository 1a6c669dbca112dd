/**
 * `crypto.randomInt`, with node:crypto loaded on first use: only writes need random
 * numbers (inode generations, the MMP sequence), and importing node:crypto at start-up
 * (which initializes OpenSSL) cost every read-only command ~66M instructions, a tenth
 * of `ext4ts ls` on a small directory.
 */
import { createRequire } from 'node:module';
import type * as Crypto from 'node:crypto';

let crypto: typeof Crypto | undefined;

/** A uniformly random integer in [min, max). */
export function randomInt(min: number, max: number): number {
  crypto ??= createRequire(import.meta.url)('node:crypto') as typeof Crypto;
  return crypto.randomInt(min, max);
}
