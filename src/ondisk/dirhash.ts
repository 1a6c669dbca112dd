/**
 * Directory-index hashes (fs/ext4/hash.c, e2fsprogs lib/ext2fs/dirhash.c,
 * Documentation/filesystems/ext4/directory.rst "Hash Tree Directories").
 *
 * An htree directory orders its leaf blocks by a 32-bit hash of each name (plus a
 * 32-bit "minor" hash used for readdir cookies). Seven versions exist:
 *
 *   0 legacy, 1 half_md4, 2 tea          name bytes read as *signed* char
 *   3 legacy, 4 half_md4, 5 tea          the same, bytes read as *unsigned* char
 *   6 siphash-2-4                         casefolded + encrypted directories only
 *
 * The dx_root stores 0, 1, 2 or 6; the superblock's s_flags decides whether 0-2 mean
 * the signed or the unsigned variant (`effectiveHashVersion`).
 *
 * The seed is the superblock's s_hash_seed read as four little-endian 32-bit words;
 * an all-zero (or absent) seed selects the MD4 initial constants. Every result has
 * bit 0 of `hash` cleared (bit 0 marks hash collisions in index entries), and the
 * value 0xfffffffe is reserved for end-of-directory (EXT4_HTREE_EOF_32BIT << 1), so a
 * name hashing to it gets 0xfffffffc instead.
 *
 * All arithmetic is 32-bit: `| 0` keeps int32 intermediates, `>>> 0` turns them
 * into the unsigned values the kernel stores.
 */
import { FsError } from '../errors.js';
import { casefoldNameOrNull } from './casefold.js';

/** Hash versions (DX_HASH_* in ext4.h, dx_root_info.hash_version). */
export const DX_HASH = {
  LEGACY: 0,
  HALF_MD4: 1,
  TEA: 2,
  LEGACY_UNSIGNED: 3,
  HALF_MD4_UNSIGNED: 4,
  TEA_UNSIGNED: 5,
  SIPHASH: 6,
} as const;

export type DxHashVersion = (typeof DX_HASH)[keyof typeof DX_HASH];

/** s_flags bits that pick the signedness of hash versions 0-2 (EXT2_FLAGS_*). */
export const SB_FLAGS_SIGNED_HASH = 0x0001;
export const SB_FLAGS_UNSIGNED_HASH = 0x0002;

/** EXT4_HTREE_EOF_32BIT: readdir's end-of-directory cookie; no name may hash to it << 1. */
export const HTREE_EOF_32BIT = 0x7fffffff;

/** Result of hashing one name. */
export interface DirHash {
  /** Major hash, bit 0 clear: what index entries are keyed by. */
  readonly hash: number;
  /** Minor hash: second half of the 64-bit readdir cookie (0 for legacy). */
  readonly minorHash: number;
}

/** Four 32-bit seed words (s_hash_seed as little-endian u32s). */
export type DirHashSeed = readonly [number, number, number, number] | readonly number[] | Uint32Array;

const MD4_INIT: readonly [number, number, number, number] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

/** Read s_hash_seed (16 bytes at `offset`) as the four little-endian words the hash uses. */
export function hashSeedFromBytes(bytes: Uint8Array, offset = 0): [number, number, number, number] {
  if (offset < 0 || offset + 16 > bytes.length) throw new RangeError(`hash seed at ${offset} outside ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return [view.getUint32(offset, true), view.getUint32(offset + 4, true), view.getUint32(offset + 8, true), view.getUint32(offset + 12, true)];
}

/** Parse a UUID-formatted seed (as dumpe2fs prints "Directory Hash Seed") into the four words. */
export function hashSeedFromUuid(uuid: string): [number, number, number, number] {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`not a UUID: ${uuid}`);
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return hashSeedFromBytes(bytes);
}

/**
 * The hash version the kernel actually uses for a directory whose dx_root says
 * `rootVersion`: versions 0-2 become 3-5 when s_flags has EXT2_FLAGS_UNSIGNED_HASH.
 * (With neither flag set the kernel picks by the CPU's char signedness and records it;
 * on x86/arm64-Linux-as-built that is signed, which is what this returns.)
 */
export function effectiveHashVersion(rootVersion: number, sFlags: number): number {
  if (rootVersion <= DX_HASH.TEA && (sFlags & SB_FLAGS_UNSIGNED_HASH) !== 0) return rootVersion + 3;
  return rootVersion;
}

/** True for the versions `dirHash` can compute without a key (0-5). */
export function isKeylessHashVersion(version: number): boolean {
  return Number.isInteger(version) && version >= 0 && version <= 5;
}

/** Load the hash's initial state into `buf`: the seed words, or the MD4 constants for no (or an all-zero) seed. */
function loadSeed(buf: Int32Array, seed: DirHashSeed | null | undefined): void {
  if (seed !== null && seed !== undefined) {
    if (seed.length !== 4) throw new RangeError(`hash seed must have 4 words, got ${seed.length}`);
    const s0 = seed[0] ?? 0;
    const s1 = seed[1] ?? 0;
    const s2 = seed[2] ?? 0;
    const s3 = seed[3] ?? 0;
    if ((s0 | s1 | s2 | s3) !== 0) {
      buf[0] = s0;
      buf[1] = s1;
      buf[2] = s2;
      buf[3] = s3;
      return;
    }
  }
  buf[0] = MD4_INIT[0];
  buf[1] = MD4_INIT[1];
  buf[2] = MD4_INIT[2];
  buf[3] = MD4_INIT[3];
}

/**
 * Scratch state and input words of one hash computation, reused by every call: a
 * listing hashes each of its names, and two small typed arrays per name cost more than
 * the hash itself. (Hashing is synchronous and does not re-enter.)
 */
const SCRATCH_BUF = new Int32Array(4);
const SCRATCH_INPUT = new Int32Array(8);

/** A name byte as the C code sees it: signed char (-128..127) or unsigned char. */
function charAt(name: Uint8Array, i: number, unsigned: boolean): number {
  const b = name[i] as number;
  return unsigned || b < 0x80 ? b : b - 0x100;
}

/** dx_hack_hash: the original ext3 hash. Returns the already-shifted value. */
function legacyHash(name: Uint8Array, unsigned: boolean): number {
  let hash0 = 0x12a3fe2d;
  let hash1 = 0x37abe8f9;
  for (let i = 0; i < name.length; i++) {
    // (int) c * 7152373 stays within int32 for c in -128..255.
    let hash = (hash1 + ((hash0 ^ (charAt(name, i, unsigned) * 7152373)) >>> 0)) >>> 0;
    if (hash & 0x80000000) hash = (hash - 0x7fffffff) >>> 0;
    hash1 = hash0;
    hash0 = hash;
  }
  return (hash0 << 1) >>> 0;
}

/**
 * str2hashbuf: pack up to `num * 4` bytes of `name[start..start+len)` big-endian into
 * `out[0..num)`, padding with a word built from the remaining length.
 */
function str2hashbuf(name: Uint8Array, start: number, len: number, out: Int32Array, num: number, unsigned: boolean): void {
  let pad = (len | (len << 8)) >>> 0;
  pad = (pad | (pad << 16)) | 0;
  let val = pad;
  const take = Math.min(len, num * 4);
  let w = 0;
  for (let i = 0; i < take; i++) {
    if (i % 4 === 0) val = pad;
    val = (charAt(name, start + i, unsigned) + (val << 8)) | 0;
    if (i % 4 === 3) {
      out[w++] = val;
      val = pad;
      num--;
    }
  }
  if (--num >= 0) out[w++] = val;
  while (--num >= 0) out[w++] = pad;
}

function rol32(x: number, s: number): number {
  return (x << s) | (x >>> (32 - s));
}

const MD4_K2 = 0x5a827999; // 013240474631
const MD4_K3 = 0x6ed9eba1; // 015666365641

// The MD4 round functions (module level: closures made per call cost more than the hash).
function F(p: number, q: number, r: number): number {
  return r ^ (p & (q ^ r));
}
function G(p: number, q: number, r: number): number {
  return ((p & q) + ((p ^ q) & r)) | 0;
}
function H(p: number, q: number, r: number): number {
  return p ^ q ^ r;
}

/** half_md4_transform: three MD4 rounds over eight words, added into buf. */
function halfMd4Transform(buf: Int32Array, input: Int32Array): void {
  let a = buf[0] as number;
  let b = buf[1] as number;
  let c = buf[2] as number;
  let d = buf[3] as number;
  const x0 = input[0] as number;
  const x1 = input[1] as number;
  const x2 = input[2] as number;
  const x3 = input[3] as number;
  const x4 = input[4] as number;
  const x5 = input[5] as number;
  const x6 = input[6] as number;
  const x7 = input[7] as number;

  // Round 1: F, no constant.
  a = rol32((a + F(b, c, d) + x0) | 0, 3);
  d = rol32((d + F(a, b, c) + x1) | 0, 7);
  c = rol32((c + F(d, a, b) + x2) | 0, 11);
  b = rol32((b + F(c, d, a) + x3) | 0, 19);
  a = rol32((a + F(b, c, d) + x4) | 0, 3);
  d = rol32((d + F(a, b, c) + x5) | 0, 7);
  c = rol32((c + F(d, a, b) + x6) | 0, 11);
  b = rol32((b + F(c, d, a) + x7) | 0, 19);

  // Round 2: G, K2.
  a = rol32((a + G(b, c, d) + ((x1 + MD4_K2) | 0)) | 0, 3);
  d = rol32((d + G(a, b, c) + ((x3 + MD4_K2) | 0)) | 0, 5);
  c = rol32((c + G(d, a, b) + ((x5 + MD4_K2) | 0)) | 0, 9);
  b = rol32((b + G(c, d, a) + ((x7 + MD4_K2) | 0)) | 0, 13);
  a = rol32((a + G(b, c, d) + ((x0 + MD4_K2) | 0)) | 0, 3);
  d = rol32((d + G(a, b, c) + ((x2 + MD4_K2) | 0)) | 0, 5);
  c = rol32((c + G(d, a, b) + ((x4 + MD4_K2) | 0)) | 0, 9);
  b = rol32((b + G(c, d, a) + ((x6 + MD4_K2) | 0)) | 0, 13);

  // Round 3: H, K3.
  a = rol32((a + H(b, c, d) + ((x3 + MD4_K3) | 0)) | 0, 3);
  d = rol32((d + H(a, b, c) + ((x7 + MD4_K3) | 0)) | 0, 9);
  c = rol32((c + H(d, a, b) + ((x2 + MD4_K3) | 0)) | 0, 11);
  b = rol32((b + H(c, d, a) + ((x6 + MD4_K3) | 0)) | 0, 15);
  a = rol32((a + H(b, c, d) + ((x1 + MD4_K3) | 0)) | 0, 3);
  d = rol32((d + H(a, b, c) + ((x5 + MD4_K3) | 0)) | 0, 9);
  c = rol32((c + H(d, a, b) + ((x0 + MD4_K3) | 0)) | 0, 11);
  b = rol32((b + H(c, d, a) + ((x4 + MD4_K3) | 0)) | 0, 15);

  buf[0] = ((buf[0] as number) + a) | 0;
  buf[1] = ((buf[1] as number) + b) | 0;
  buf[2] = ((buf[2] as number) + c) | 0;
  buf[3] = ((buf[3] as number) + d) | 0;
}

const TEA_DELTA = 0x9e3779b9 | 0;

/** TEA_transform: 16 TEA rounds keyed by four words, added into buf[0..1]. */
function teaTransform(buf: Int32Array, input: Int32Array): void {
  let sum = 0;
  let b0 = buf[0] as number;
  let b1 = buf[1] as number;
  const a = input[0] as number;
  const b = input[1] as number;
  const c = input[2] as number;
  const d = input[3] as number;
  for (let n = 0; n < 16; n++) {
    sum = (sum + TEA_DELTA) | 0;
    b0 = (b0 + ((((b1 << 4) + a) | 0) ^ ((b1 + sum) | 0) ^ (((b1 >>> 5) + b) | 0))) | 0;
    b1 = (b1 + ((((b0 << 4) + c) | 0) ^ ((b0 + sum) | 0) ^ (((b0 >>> 5) + d) | 0))) | 0;
  }
  buf[0] = ((buf[0] as number) + b0) | 0;
  buf[1] = ((buf[1] as number) + b1) | 0;
}

function finish(hash: number, minorHash: number): DirHash {
  let h = (hash & ~1) >>> 0;
  if (h === (HTREE_EOF_32BIT * 2) >>> 0) h = ((HTREE_EOF_32BIT - 1) * 2) >>> 0;
  return { hash: h, minorHash: minorHash >>> 0 };
}

/**
 * Hash a name (raw bytes) with hash version 0-5, as __ext4fs_dirhash does.
 * `seed`: s_hash_seed words; null/undefined or all zero = default constants.
 * Version 6 (siphash) needs a key: use `dirHashSiphash`. Other versions throw EINVAL.
 */
export function dirHash(name: Uint8Array, version: number, seed?: DirHashSeed | null): DirHash {
  const buf = SCRATCH_BUF;
  const input = SCRATCH_INPUT;
  switch (version) {
    case DX_HASH.LEGACY:
    case DX_HASH.LEGACY_UNSIGNED:
      return finish(legacyHash(name, version === DX_HASH.LEGACY_UNSIGNED), 0);
    case DX_HASH.HALF_MD4:
    case DX_HASH.HALF_MD4_UNSIGNED: {
      const unsigned = version === DX_HASH.HALF_MD4_UNSIGNED;
      loadSeed(buf, seed);
      for (let p = 0, len = name.length; len > 0; p += 32, len -= 32) {
        str2hashbuf(name, p, len, input, 8, unsigned);
        halfMd4Transform(buf, input);
      }
      return finish(buf[1] as number, buf[2] as number);
    }
    case DX_HASH.TEA:
    case DX_HASH.TEA_UNSIGNED: {
      const unsigned = version === DX_HASH.TEA_UNSIGNED;
      loadSeed(buf, seed);
      for (let p = 0, len = name.length; len > 0; p += 16, len -= 16) {
        str2hashbuf(name, p, len, input, 4, unsigned);
        teaTransform(buf, input);
      }
      return finish(buf[0] as number, buf[1] as number);
    }
    case DX_HASH.SIPHASH:
      throw new FsError('EINVAL', 'siphash directory hash needs the directory key (use dirHashSiphash)');
    default:
      throw new FsError('EINVAL', `unsupported directory hash version ${version}`);
  }
}

const MASK64 = (1n << 64n) - 1n;
const rotl64 = (x: bigint, s: bigint): bigint => ((x << s) | (x >> (64n - s))) & MASK64;

function readU64le(bytes: Uint8Array, offset: number): bigint {
  let v = 0n;
  for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(bytes[offset + i] ?? 0);
  return v;
}

/**
 * SipHash-2-4 with a 128-bit key (16 bytes, read as two little-endian u64 as the
 * kernel's siphash_key_t holds them), returning the 64-bit result.
 */
export function siphash24(key: Uint8Array, data: Uint8Array): bigint {
  if (key.length !== 16) throw new RangeError(`siphash key must be 16 bytes, got ${key.length}`);
  const k0 = readU64le(key, 0);
  const k1 = readU64le(key, 8);
  let v0 = k0 ^ 0x736f6d6570736575n;
  let v1 = k1 ^ 0x646f72616e646f6dn;
  let v2 = k0 ^ 0x6c7967656e657261n;
  let v3 = k1 ^ 0x7465646279746573n;
  const round = (): void => {
    v0 = (v0 + v1) & MASK64;
    v1 = rotl64(v1, 13n) ^ v0;
    v0 = rotl64(v0, 32n);
    v2 = (v2 + v3) & MASK64;
    v3 = rotl64(v3, 16n) ^ v2;
    v0 = (v0 + v3) & MASK64;
    v3 = rotl64(v3, 21n) ^ v0;
    v2 = (v2 + v1) & MASK64;
    v1 = rotl64(v1, 17n) ^ v2;
    v2 = rotl64(v2, 32n);
  };
  const whole = data.length - (data.length % 8);
  for (let i = 0; i < whole; i += 8) {
    const m = readU64le(data, i);
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  // Last block: remaining bytes little-endian, length (mod 256) in the top byte.
  let last = BigInt(data.length & 0xff) << 56n;
  for (let i = data.length - 1; i >= whole; i--) last |= BigInt(data[i] as number) << BigInt(8 * (i - whole));
  v3 ^= last;
  round();
  round();
  v0 ^= last;
  v2 ^= 0xffn;
  round();
  round();
  round();
  round();
  return (v0 ^ v1 ^ v2 ^ v3) & MASK64;
}

/**
 * Hash version 6: SipHash-2-4 of the (casefolded) name under the directory's 16-byte
 * dirhash key; hash = high 32 bits, minor = low 32 bits, then the usual bit-0 and EOF rules.
 * (The key is derived by fscrypt from the encryption master key; ext4 also stores
 * this hash in each dirent of such directories, so readers rarely need to compute it.)
 */
export function dirHashSiphash(name: Uint8Array, key: Uint8Array): DirHash {
  const h = siphash24(key, name);
  return finish(Number(h >> 32n), Number(h & 0xffffffffn));
}

/** How a directory hashes its names: what `ext4fs_dirhash` gets from the inode and superblock. */
export interface DirHashOptions {
  /** Effective hash version (see `effectiveHashVersion`). */
  readonly version: number;
  /** s_hash_seed words; null/undefined/all-zero = default constants. */
  readonly seed?: DirHashSeed | null;
  /** The directory has EXT4_CASEFOLD_FL and the filesystem the casefold feature (utf8 encoding). */
  readonly casefold?: boolean;
  /** Key for version 6 (siphash). */
  readonly siphashKey?: Uint8Array;
}

/**
 * Hash a directory entry name as ext4fs_dirhash does: in a casefolded directory a
 * non-empty name is first casefolded (utf8 NFD + full case fold); a name that is not
 * valid UTF-8 is hashed as its raw bytes (the kernel's "opaque sequence" fallback,
 * whatever the strict-mode flag says).
 */
export function dirHashName(name: Uint8Array, options: DirHashOptions): DirHash {
  let bytes = name;
  if (options.casefold === true && name.length > 0) {
    const folded = casefoldNameOrNull(name);
    if (folded !== null) bytes = folded;
  }
  if (options.version === DX_HASH.SIPHASH) {
    if (options.siphashKey === undefined) throw new FsError('ENOKEY', 'siphash directory hash needs the directory key');
    return dirHashSiphash(bytes, options.siphashKey);
  }
  return dirHash(bytes, options.version, options.seed);
}
