/**
 * node:crypto, loaded on first use: importing it at start-up (which initializes
 * OpenSSL) cost every read-only command ~66M instructions, a tenth of `ext4ts ls` on a
 * small directory. Only writes need random numbers (inode generations, the MMP
 * sequence) and only fscrypt no-key names of long names need SHA-256.
 */
import { createRequire } from 'node:module';
import type * as Crypto from 'node:crypto';

let crypto: typeof Crypto | undefined;

function nodeCrypto(): typeof Crypto {
  crypto ??= createRequire(import.meta.url)('node:crypto') as typeof Crypto;
  return crypto;
}

/** A uniformly random integer in [min, max). */
export function randomInt(min: number, max: number): number {
  return nodeCrypto().randomInt(min, max);
}

/** SHA-256 of `data`. */
export function sha256(data: Uint8Array): Uint8Array {
  return nodeCrypto().createHash('sha256').update(data).digest();
}
