/**
 * Readdir cookies: the numbers `Ext4.readdirInode` hands out as `next` and takes back to
 * resume a listing (the FUSE session passes them to the kernel as READDIR offsets).
 * Every cookie is a nonzero safe integer; 0 means "from the start".
 *
 * Two kinds, told apart by their range:
 *
 *   1, 2                 after '.', after '..' (hash-ordered directories)
 *   3 .. 2^52 - 1        a position: byte offset of a record + 1 (linear, inline-data and
 *                        encrypted directories, whose records never move while they live)
 *   2^52 + key           hash-ordered (htree) directories: resume at the first entry whose
 *                        hash key is >= key
 *   2^52 + 2^51          end of a hash-ordered directory
 *
 * A hash key is 51 bits: the 31 significant bits of the major hash (bit 0 is always
 * clear), then the top 20 bits of the minor hash: ordering by key is ordering by
 * (major, minor), as the kernel's ext4_dx_readdir lists, with 2^20 times fewer ties
 * than the major hash alone. An entry's `next` is the cookie of key + 1, so all entries
 * that share a key share a `next`: a listing resumed from it continues after the whole
 * run of equal keys (see the FUSE session for how a reply keeps such a run together).
 *
 * A cookie of the other kind (a directory turned from linear into an htree while it was
 * being listed, or back) is not misread as a place further on: it resumes at the first
 * name after '..', so names may come twice but none is skipped.
 */

/** After '.' (both kinds of directory: '.' is the record at offset 0). */
export const COOKIE_AFTER_DOT = 1;
/** After '..' in a hash-ordered directory: every hashed entry is still to come. */
export const COOKIE_AFTER_DOTDOT = 2;
/** Hash cookies start here (2^52: above any byte position of a real directory). */
export const HASH_COOKIE_BASE = 2 ** 52;
/** Bits of the minor hash kept in a key. */
const MINOR_BITS = 20;
const MINOR_SCALE = 2 ** MINOR_BITS;
/** Number of hash keys (2^51): 31 bits of major hash, 20 of minor. */
export const HASH_KEYS = 2 ** 51;
/** The `next` of the last possible key: nothing follows. */
export const HASH_COOKIE_EOF = HASH_COOKIE_BASE + HASH_KEYS;

/** The key of a name's (major, minor) hash pair (32-bit unsigned values). */
export function hashKey(major: number, minor: number): number {
  return (major >>> 1) * MINOR_SCALE + Math.floor((minor >>> 0) / 2 ** (32 - MINOR_BITS));
}

/** The smallest key with major hash `major` (bit 0, the index's continuation bit, is ignored). */
export function firstKeyOfMajor(major: number): number {
  return (major >>> 1) * MINOR_SCALE;
}

/** The major hash (bit 0 clear) a key belongs to: where an index walk for it starts. */
export function majorOfKey(key: number): number {
  return Math.floor(key / MINOR_SCALE) * 2;
}

/** The cookie that resumes after every entry of key `key`. */
export function cookieAfterKey(key: number): number {
  return HASH_COOKIE_BASE + key + 1;
}

/** True for a cookie a hash-ordered listing made (past '..'). */
export function isHashCookie(cookie: number): boolean {
  return cookie >= HASH_COOKIE_BASE;
}

/**
 * The first key a hash-ordered listing resumed at `cookie` still lists (HASH_KEYS: none).
 * Cookies 0..2 and position cookies (not made by a hash-ordered listing) list from key 0.
 */
export function resumeKey(cookie: number): number {
  if (!isHashCookie(cookie)) return 0;
  return Math.min(cookie - HASH_COOKIE_BASE, HASH_KEYS);
}
