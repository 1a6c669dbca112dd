/**
 * The code cache of the bundled CLI (see ./launcher.ts): its file format and the build
 * hash that ties it to one bundle. scripts/bundle.ts writes both; the launcher reads them.
 */
import { readFileSync } from 'node:fs';

/** The bundled CLI and its code cache, beside this file. */
export const MAIN_FILE = 'ext4ts-main.cjs';
export const CACHE_FILE = 'ext4ts-main.cache';
/** The cache for `mount`, which runs under V8's default flags (a cache holds its flags). */
export const SERVER_CACHE_FILE = 'ext4ts-main.mount.cache';
/** The bundle's first line: `// ext4ts build HASH`. */
export const BUILD_LINE = '// ext4ts build ';
/** Cache file header: magic, then the build hash (ASCII, NUL-padded), then the payload length (u32 LE). */
export const CACHE_MAGIC = 'ext4ts-code-cache-1\n';
export const HASH_BYTES = 32;
export const HEADER_BYTES = CACHE_MAGIC.length + HASH_BYTES + 4;

/** What became of the cache: used, absent, made for another bundle, or refused by V8. */
export type CacheOutcome = 'accepted' | 'absent' | 'stale' | 'invalid' | 'rejected';

/** The cache file's payload for `hash`, or why there is none. */
export function readCache(file: string, hash: string): Buffer | Exclude<CacheOutcome, 'accepted' | 'rejected'> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch {
    return 'absent';
  }
  if (bytes.length < HEADER_BYTES || bytes.toString('latin1', 0, CACHE_MAGIC.length) !== CACHE_MAGIC) return 'invalid';
  const stated = bytes.toString('latin1', CACHE_MAGIC.length, CACHE_MAGIC.length + HASH_BYTES).replace(/\0+$/, '');
  if (stated !== hash) return 'stale';
  if (bytes.readUInt32LE(CACHE_MAGIC.length + HASH_BYTES) !== bytes.length - HEADER_BYTES) return 'invalid';
  return bytes.subarray(HEADER_BYTES);
}

/** A cache file's bytes: the header for `hash`, then V8's payload. */
export function encodeCache(hash: string, payload: Uint8Array): Buffer {
  if (hash.length === 0 || hash.length > HASH_BYTES || !/^[0-9a-f]+$/.test(hash)) throw new RangeError(`bad build hash ${JSON.stringify(hash)}`);
  const header = Buffer.alloc(HEADER_BYTES);
  header.write(CACHE_MAGIC, 0, 'latin1');
  header.write(hash, CACHE_MAGIC.length, 'latin1');
  header.writeUInt32LE(payload.length, CACHE_MAGIC.length + HASH_BYTES);
  return Buffer.concat([header, payload]);
}

/** The build hash a bundle states on its first line ('' when it states none). */
export function buildHashOf(source: string): string {
  if (!source.startsWith(BUILD_LINE)) return '';
  const end = source.indexOf('\n');
  return source.slice(BUILD_LINE.length, end < 0 ? undefined : end).trim();
}
