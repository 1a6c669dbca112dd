/**
 * Extended attributes: the in-inode xattr region and the external xattr block.
 *
 * On disk (Documentation/filesystems/ext4/attributes.rst, fs/ext4/xattr.h):
 *
 * - In-inode: after the 128-byte base inode and its `i_extra_isize` extra bytes comes a
 *   4-byte magic (0xEA020000), then the entry table; values live at the end of the inode.
 *   An entry's `e_value_offs` is relative to the first entry (just after the magic).
 * - External block (`i_file_acl`): a 32-byte header, the entry table from offset 32, and
 *   values at `e_value_offs` from the start of the block. With metadata_csum the header
 *   holds a CRC32C of the block.
 * - Entry: 16 fixed bytes + the name, padded to 4 bytes. The table ends with 4 zero bytes.
 *   A value lives either in the region (padded to 4 bytes) or, with the ea_inode feature,
 *   in a separate inode (`e_value_inum`), which this module reports as a reference.
 *
 * Everything read is bounds-checked; malformed input throws `FsError` EUCLEAN naming
 * "in-inode xattrs" or "xattr block" and the inode/block (`offset` in the error context
 * is the byte offset inside the inode or block, not on the device).
 *
 * Encoding follows e2fsprogs' layout (lib/ext2fs/ext_attr.c, write_xattrs_to_buffer):
 * entries in table order, values packed from the end of the region downwards in that same
 * order. Block entries are sorted as the kernel keeps them: by name index, then name
 * length, then name bytes.
 */
import { FsError, corrupted } from '../errors.js';
import { crc32cRaw, crc32cRawU32 } from './crc.js';
import { readU16, readU32, writeU16, writeU32 } from './bytes.js';

// ---------------------------------------------------------------------------------------
// Layout constants

/** h_magic of an xattr block, and the 4-byte header of the in-inode region. */
export const XATTR_MAGIC = 0xea020000;

/** Size of the external block header (magic, refcount, blocks, hash, checksum, reserved[3]). */
export const XATTR_BLOCK_HEADER_SIZE = 32;
/** Size of the in-inode header (the magic). */
export const XATTR_IBODY_HEADER_SIZE = 4;
/** Size of an entry without its name. */
export const XATTR_ENTRY_SIZE = 16;
/** Names and values are padded to this many bytes (EXT4_XATTR_PAD). */
export const XATTR_PAD = 4;
/** Largest value the kernel accepts (EXT4_XATTR_SIZE_MAX). */
export const XATTR_SIZE_MAX = 1 << 24;
/** Longest name suffix (e_name_len is one byte). */
export const XATTR_NAME_MAX = 255;
/** Size of the base inode before the extra fields (EXT4_GOOD_OLD_INODE_SIZE). */
const GOOD_OLD_INODE_SIZE = 128;
/** The root directory's inode number: never an EA inode. */
const ROOT_INO = 2;
/** First non-reserved inode of a revision-0 filesystem (s_first_ino default). */
const DEFAULT_FIRST_INO = 11;

/** Header field offsets of the xattr block. */
const H_MAGIC = 0;
const H_REFCOUNT = 4;
const H_BLOCKS = 8;
const H_HASH = 12;
const H_CHECKSUM = 16;
const H_RESERVED = 20;

/** Entry field offsets. */
const E_NAME_LEN = 0;
const E_NAME_INDEX = 1;
const E_VALUE_OFFS = 2;
const E_VALUE_INUM = 4;
const E_VALUE_SIZE = 8;
const E_HASH = 12;
const E_NAME = 16;

/** Hash shifts of ext4_xattr_hash_entry / ext4_xattr_rehash. */
const NAME_HASH_SHIFT = 5;
const VALUE_HASH_SHIFT = 16;
const BLOCK_HASH_SHIFT = 16;

const TWO_32 = 0x1_0000_0000;

// ---------------------------------------------------------------------------------------
// Name indexes and prefixes

/** e_name_index values (fs/ext4/xattr.h). */
export const XATTR_INDEX = {
  USER: 1,
  POSIX_ACL_ACCESS: 2,
  POSIX_ACL_DEFAULT: 3,
  TRUSTED: 4,
  LUSTRE: 5,
  SECURITY: 6,
  SYSTEM: 7,
  RICHACL: 8,
  ENCRYPTION: 9,
  HURD: 10,
} as const;

/**
 * Full-name prefix of each name index the kernel lists. The POSIX ACL and richacl
 * indexes name a whole attribute (their stored suffix is empty); the others are prefixes.
 * Index 5 (Lustre) and 9 (encryption context) have no VFS name.
 */
export const XATTR_PREFIXES: ReadonlyMap<number, string> = new Map([
  [XATTR_INDEX.USER, 'user.'],
  [XATTR_INDEX.POSIX_ACL_ACCESS, 'system.posix_acl_access'],
  [XATTR_INDEX.POSIX_ACL_DEFAULT, 'system.posix_acl_default'],
  [XATTR_INDEX.TRUSTED, 'trusted.'],
  [XATTR_INDEX.SECURITY, 'security.'],
  [XATTR_INDEX.SYSTEM, 'system.'],
  [XATTR_INDEX.RICHACL, 'system.richacl'],
  [XATTR_INDEX.HURD, 'gnu.'],
]);

/** Indexes whose full name is the prefix itself (exact match, empty stored suffix). */
const WHOLE_NAME_INDEXES: ReadonlySet<number> = new Set([XATTR_INDEX.POSIX_ACL_ACCESS, XATTR_INDEX.POSIX_ACL_DEFAULT, XATTR_INDEX.RICHACL]);

/** Match order: whole names first, then prefixes (none is a prefix of another). */
const MATCH_ORDER: readonly (readonly [number, Uint8Array])[] = [
  XATTR_INDEX.POSIX_ACL_DEFAULT,
  XATTR_INDEX.POSIX_ACL_ACCESS,
  XATTR_INDEX.RICHACL,
  XATTR_INDEX.SECURITY,
  XATTR_INDEX.TRUSTED,
  XATTR_INDEX.SYSTEM,
  XATTR_INDEX.USER,
  XATTR_INDEX.HURD,
].map((index) => [index, new TextEncoder().encode(XATTR_PREFIXES.get(index))] as const);

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8');

/** A stored name: the index and the suffix bytes after the index's prefix. */
export interface XattrName {
  readonly index: number;
  readonly name: Uint8Array;
}

/**
 * Split a full VFS name ("user.foo", "system.posix_acl_access") into its name index and
 * stored suffix. Returns null when ext4 cannot store the name: unknown prefix, an empty
 * suffix after a prefix ("user."), or a suffix longer than 255 bytes. Strings are UTF-8.
 */
export function splitXattrName(fullName: string | Uint8Array): XattrName | null {
  if (typeof fullName !== 'string') return splitXattrBytes(fullName);
  // The same few names come again and again (security.capability before every write,
  // the ACL names at every create): remember their split (callers never modify it).
  const known = splitByString.get(fullName);
  if (known !== undefined) return known;
  const split = splitXattrBytes(utf8.encode(fullName));
  if (splitByString.size >= SPLIT_MEMO_ENTRIES) splitByString.clear();
  splitByString.set(fullName, split);
  return split;
}

const SPLIT_MEMO_ENTRIES = 256;
const splitByString = new Map<string, XattrName | null>();

function splitXattrBytes(bytes: Uint8Array): XattrName | null {
  for (const [index, prefix] of MATCH_ORDER) {
    if (WHOLE_NAME_INDEXES.has(index)) {
      if (bytesEqual(bytes, prefix)) return { index, name: new Uint8Array(0) };
      continue;
    }
    if (!startsWith(bytes, prefix)) continue;
    const name = bytes.slice(prefix.length);
    if (name.length === 0 || name.length > XATTR_NAME_MAX || name.includes(0)) return null;
    return { index, name };
  }
  return null;
}

/** The full VFS name of a stored (index, suffix), as bytes; null for an index without a name. */
export function joinXattrName(index: number, name: Uint8Array): Uint8Array | null {
  const prefix = XATTR_PREFIXES.get(index);
  if (prefix === undefined) return null;
  const p = utf8.encode(prefix);
  const out = new Uint8Array(p.length + name.length);
  out.set(p, 0);
  out.set(name, p.length);
  return out;
}

/** The full VFS name as a string (UTF-8, lossy for invalid bytes); null for an index without a name. */
export function xattrNameString(index: number, name: Uint8Array): string | null {
  const full = joinXattrName(index, name);
  return full === null ? null : utf8Decoder.decode(full);
}

// ---------------------------------------------------------------------------------------
// Entries

/** Where an attribute's value is. */
export type XattrValue =
  /** Value bytes stored in the region itself. */
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  /** ea_inode: the value is the content of inode `inode`, `size` bytes long; the caller reads it. */
  | { readonly kind: 'inode'; readonly inode: number; readonly size: number };

/** One extended attribute as stored. */
export interface XattrEntry {
  /** e_name_index (see XATTR_INDEX). */
  readonly index: number;
  /** e_name: the suffix after the index's prefix, raw bytes (empty for ACLs). */
  readonly name: Uint8Array;
  readonly value: XattrValue;
  /**
   * e_hash. Decoders report the stored value. Encoders recompute it for 'bytes' values
   * (unless told to keep it) and always write it as given for 'inode' values, whose hash
   * depends on the EA inode (see xattrEaInodeEntryHash).
   */
  readonly hash: number;
}

/** An entry as decoded, with where it was found. */
export interface DecodedXattrEntry extends XattrEntry {
  /** Byte offset of the entry inside the inode or block. */
  readonly entryOffset: number;
  /** e_value_offs as stored (relative to the first entry in an inode, to the block start in a block). */
  readonly valueOffset: number;
}

/** Entries of one region and the space left in it. */
export interface XattrRegion {
  readonly entries: readonly DecodedXattrEntry[];
  /** Bytes between the entry table's terminator and the lowest value: room for new entries and values. */
  readonly freeBytes: number;
}

/** Bytes an entry with a name of `nameLen` bytes takes in the table (EXT4_XATTR_LEN). */
export function xattrEntryLength(nameLen: number): number {
  return roundUp4(XATTR_ENTRY_SIZE + nameLen);
}

/** Bytes a value of `size` bytes takes in the value area (EXT4_XATTR_SIZE). */
export function xattrValueLength(size: number): number {
  return roundUp4(size);
}

/** Region bytes one attribute needs: its entry plus its value when the value is stored in the region. */
export function xattrSpaceNeeded(entry: Pick<XattrEntry, 'name' | 'value'>): number {
  const valueBytes = entry.value.kind === 'bytes' ? xattrValueLength(entry.value.bytes.length) : 0;
  return xattrEntryLength(entry.name.length) + valueBytes;
}

/** The length of a value, wherever it is stored. */
export function xattrValueSize(value: XattrValue): number {
  return value.kind === 'bytes' ? value.bytes.length : value.size;
}

// ---------------------------------------------------------------------------------------
// Hashes

/**
 * Entry hash (ext4_xattr_hash_entry): the name bytes folded with a 5-bit rotate, then the
 * value as little-endian 32-bit words (zero-padded to 4 bytes) with a 16-bit rotate.
 * `signed` reproduces the variant some older kernels and e2fsprogs computed, which treated
 * name bytes >= 0x80 as negative (`char` signed on x86); both are accepted on read.
 */
export function xattrEntryHash(name: Uint8Array, value: Uint8Array, signed = false): number {
  let hash = nameHash(name, signed);
  const fullWords = Math.floor(value.length / 4);
  for (let w = 0; w < fullWords; w++) {
    const i = w * 4;
    hash = mixValueWord(hash, readU32(value, i));
  }
  const rest = value.length - fullWords * 4;
  if (rest > 0) {
    let word = 0;
    for (let k = 0; k < rest; k++) word += (value[fullWords * 4 + k] as number) * 2 ** (8 * k);
    hash = mixValueWord(hash, word);
  }
  return hash;
}

/**
 * Entry hash of an attribute whose value lives in an EA inode: the name hash folded with the
 * EA inode's value hash (stored in that inode's i_atime, see xattrEaInodeValueHash).
 */
export function xattrEaInodeEntryHash(name: Uint8Array, eaInodeHash: number, signed = false): number {
  return mixValueWord(nameHash(name, signed), eaInodeHash >>> 0);
}

/**
 * Hash of an EA inode's value (ext4_xattr_inode_hash): raw CRC32C of the value seeded with
 * the filesystem checksum seed (s_checksum_seed, or crc32c(~0, uuid)). The kernel keeps it
 * in the EA inode's i_atime.
 */
export function xattrEaInodeValueHash(csumSeed: number, value: Uint8Array): number {
  return crc32cRaw(csumSeed >>> 0, value);
}

/**
 * Block hash (ext4_xattr_rehash): the entry hashes in table order folded with a 16-bit
 * rotate; 0 as soon as one entry hash is 0 (such a block is never shared).
 */
export function xattrBlockHash(entryHashes: readonly number[]): number {
  let hash = 0;
  for (const h of entryHashes) {
    if (h === 0) return 0;
    hash = (((hash << BLOCK_HASH_SHIFT) | (hash >>> (32 - BLOCK_HASH_SHIFT))) ^ h) >>> 0;
  }
  return hash;
}

function nameHash(name: Uint8Array, signed: boolean): number {
  let hash = 0;
  for (const b of name) {
    const c = signed && b >= 0x80 ? b - 0x100 : b;
    hash = (((hash << NAME_HASH_SHIFT) | (hash >>> (32 - NAME_HASH_SHIFT))) ^ c) >>> 0;
  }
  return hash;
}

function mixValueWord(hash: number, word: number): number {
  return (((hash << VALUE_HASH_SHIFT) | (hash >>> (32 - VALUE_HASH_SHIFT))) ^ word) >>> 0;
}

// ---------------------------------------------------------------------------------------
// Block checksum

/**
 * metadata_csum checksum of an xattr block (ext4_xattr_block_csum): raw CRC32C seeded with
 * the filesystem seed, over the block number as le64, then the whole block with h_checksum
 * taken as zero. `blockNo` is split into lo/hi 32-bit halves for the le64.
 */
export function xattrBlockChecksum(block: Uint8Array, blockNo: number, csumSeed: number): number {
  if (!Number.isSafeInteger(blockNo) || blockNo < 0) throw new RangeError(`xattr block number ${blockNo} is not a valid block number`);
  if (block.length < XATTR_BLOCK_HEADER_SIZE) throw new RangeError(`xattr block of ${block.length} bytes is shorter than its header`);
  let crc = crc32cRawU32(csumSeed >>> 0, blockNo % TWO_32);
  crc = crc32cRawU32(crc, Math.floor(blockNo / TWO_32));
  crc = crc32cRaw(crc, block, 0, H_CHECKSUM);
  crc = crc32cRawU32(crc, 0);
  return crc32cRaw(crc, block, H_CHECKSUM + 4, block.length);
}

/** True when the stored h_checksum matches the block's contents and number. */
export function verifyXattrBlockChecksum(block: Uint8Array, blockNo: number, csumSeed: number): boolean {
  return readU32(block, H_CHECKSUM) === xattrBlockChecksum(block, blockNo, csumSeed);
}

/** Store the metadata_csum checksum in h_checksum (the block is modified in place). */
export function setXattrBlockChecksum(block: Uint8Array, blockNo: number, csumSeed: number): void {
  writeU32(block, H_CHECKSUM, xattrBlockChecksum(block, blockNo, csumSeed));
}

// ---------------------------------------------------------------------------------------
// Decoding

/** What a decoder needs to know about the filesystem and where the bytes came from. */
export interface XattrDecodeOptions {
  /** Inode number, for error messages. */
  readonly inode?: number;
  /** The ea_inode feature is on: entries may name an EA inode. Otherwise such an entry is corruption. */
  readonly eaInode?: boolean;
  /** s_inodes_count: EA inode numbers must not exceed it (unchecked when absent). */
  readonly inodesCount?: number;
  /** s_first_ino: EA inode numbers must be at least this (default 11). */
  readonly firstIno?: number;
  /**
   * Check e_hash of every value stored in the region (as e2fsck does): a block entry's hash
   * must match; an in-inode entry's hash may also be 0 (e2fsprogs leaves it 0). Entries
   * whose value is in an EA inode are not checked here (see xattrEaInodeEntryHash).
   */
  readonly verifyHashes?: boolean;
}

/** Layout of an inode's xattr region, from the inode size and i_extra_isize. */
export interface InodeXattrLayout {
  /** s_inode_size: bytes of one on-disk inode. */
  readonly inodeSize: number;
  /** i_extra_isize of this inode. */
  readonly extraIsize: number;
}

/** The in-inode xattrs of one inode. */
export interface InodeXattrs extends XattrRegion {
  /** The in-inode magic is present (the kernel's EXT4_STATE_XATTR). */
  readonly present: boolean;
}

const IBODY = 'in-inode xattrs';
const BLOCK = 'xattr block';

/**
 * Decode the in-inode xattrs from the raw bytes of an inode (at least `inodeSize` bytes).
 * An inode without room for xattrs, or without the magic, has none (`present` false).
 */
export function decodeInodeXattrs(inodeBytes: Uint8Array, layout: InodeXattrLayout, options: XattrDecodeOptions = {}): InodeXattrs {
  const ctx = contextOf(options.inode, undefined);
  const start = ibodyStart(layout, ctx);
  if (inodeBytes.length < layout.inodeSize) throw new RangeError(`inode buffer of ${inodeBytes.length} bytes is shorter than the inode size ${layout.inodeSize}`);
  if (start === null || readU32(inodeBytes, start) !== XATTR_MAGIC) return { present: false, entries: [], freeBytes: 0 };
  const first = start + XATTR_IBODY_HEADER_SIZE;
  const region = parseRegion(inodeBytes, first, layout.inodeSize, first, IBODY, ctx, options, false);
  return { present: true, entries: region.entries, freeBytes: region.freeBytes };
}

/**
 * Whether an inode record's in-inode xattr region starts with the magic: without it,
 * `decodeInodeXattrs` finds nothing, so callers can skip decoding (most inodes have no
 * xattrs). `extraIsize` must be valid (as `decodeInode` checks it). The record starts at
 * `recordAt` in `inodeBytes` (an inode-table block, read in place).
 */
export function hasInodeXattrMagic(inodeBytes: Uint8Array, inodeSize: number, extraIsize: number, recordAt = 0): boolean {
  const start = GOOD_OLD_INODE_SIZE + extraIsize;
  if (inodeSize <= GOOD_OLD_INODE_SIZE || start + XATTR_IBODY_HEADER_SIZE + 4 > inodeSize || recordAt + start + 4 > inodeBytes.length) return false;
  return readU32(inodeBytes, recordAt + start) === XATTR_MAGIC;
}

/** The 32-byte header of an xattr block. */
export interface XattrBlockHeader {
  readonly magic: number;
  /** h_refcount: number of inodes sharing the block. */
  readonly refcount: number;
  /** h_blocks: always 1. */
  readonly blocks: number;
  /** h_hash: xattrBlockHash of the entry hashes (0 = not shareable). */
  readonly hash: number;
  /** h_checksum (metadata_csum). */
  readonly checksum: number;
  /** h_reserved: 12 bytes, zero so far; kept as read. */
  readonly reserved: Uint8Array;
}

/** A decoded xattr block. */
export interface XattrBlock extends XattrRegion {
  readonly header: XattrBlockHeader;
}

export interface XattrBlockDecodeOptions extends XattrDecodeOptions {
  /** Block number of the block (error messages and checksum). */
  readonly blockNo: number;
  /** Filesystem checksum seed; when given (metadata_csum), h_checksum is verified. */
  readonly csumSeed?: number | undefined;
}

/** Decode and validate an external xattr block (the whole block: its length is the block size). */
export function decodeXattrBlock(block: Uint8Array, options: XattrBlockDecodeOptions): XattrBlock {
  const ctx = contextOf(options.inode, options.blockNo);
  if (block.length < XATTR_BLOCK_HEADER_SIZE + 4) throw corrupted(BLOCK, `block of ${block.length} bytes is too small`, ctx);
  if (block.length > 0x10000) throw corrupted(BLOCK, `block of ${block.length} bytes is larger than 64 KiB`, ctx);
  const header: XattrBlockHeader = {
    magic: readU32(block, H_MAGIC),
    refcount: readU32(block, H_REFCOUNT),
    blocks: readU32(block, H_BLOCKS),
    hash: readU32(block, H_HASH),
    checksum: readU32(block, H_CHECKSUM),
    reserved: block.slice(H_RESERVED, XATTR_BLOCK_HEADER_SIZE),
  };
  if (header.magic !== XATTR_MAGIC) throw corrupted(BLOCK, `bad magic 0x${hex32(header.magic)}`, { ...ctx, offset: H_MAGIC });
  if (header.blocks !== 1) throw corrupted(BLOCK, `h_blocks is ${header.blocks}, expected 1`, { ...ctx, offset: H_BLOCKS });
  if (options.csumSeed !== undefined && !verifyXattrBlockChecksum(block, options.blockNo, options.csumSeed)) {
    throw corrupted(BLOCK, `checksum mismatch (stored 0x${hex32(header.checksum)}, computed 0x${hex32(xattrBlockChecksum(block, options.blockNo, options.csumSeed))})`, { ...ctx, offset: H_CHECKSUM });
  }
  const region = parseRegion(block, XATTR_BLOCK_HEADER_SIZE, block.length, 0, BLOCK, ctx, options, true);
  return { header, entries: region.entries, freeBytes: region.freeBytes };
}

interface RawEntry {
  readonly offset: number;
  readonly nameLen: number;
  readonly index: number;
  readonly valueOffs: number;
  readonly valueInum: number;
  readonly valueSize: number;
  readonly hash: number;
}

/**
 * Walk and validate the entry table at [first, end) of `buf`; values are at valueBase + e_value_offs.
 * The rules are the kernel's check_xattrs plus e2fsck's (no two values overlap).
 */
function parseRegion(
  buf: Uint8Array,
  first: number,
  end: number,
  valueBase: number,
  structure: string,
  ctx: Ctx,
  options: XattrDecodeOptions,
  isBlock: boolean,
): XattrRegion {
  const raw: RawEntry[] = [];
  let pos = first;
  // Each step advances at least 16 bytes and stays below `end`: the walk terminates.
  for (;;) {
    if (pos + 4 > end) throw corrupted(structure, 'entry table has no terminator', { ...ctx, offset: pos });
    if (readU32(buf, pos) === 0) break;
    if (pos + XATTR_ENTRY_SIZE > end) throw corrupted(structure, 'entry header out of bounds', { ...ctx, offset: pos });
    const nameLen = buf[pos + E_NAME_LEN] as number;
    const index = buf[pos + E_NAME_INDEX] as number;
    const next = pos + xattrEntryLength(nameLen);
    if (next + 4 > end) throw corrupted(structure, 'entry name out of bounds', { ...ctx, offset: pos });
    for (let i = 0; i < nameLen; i++) {
      if (buf[pos + E_NAME + i] === 0) throw corrupted(structure, 'NUL byte inside an entry name', { ...ctx, offset: pos });
    }
    if (nameLen === 0 && !WHOLE_NAME_INDEXES.has(index)) throw corrupted(structure, `empty name with name index ${index}`, { ...ctx, offset: pos });
    raw.push({
      offset: pos,
      nameLen,
      index,
      valueOffs: readU16(buf, pos + E_VALUE_OFFS),
      valueInum: readU32(buf, pos + E_VALUE_INUM),
      valueSize: readU32(buf, pos + E_VALUE_SIZE),
      hash: readU32(buf, pos + E_HASH),
    });
    pos = next;
  }
  const tableEnd = pos + 4;

  const used: (readonly [number, number, number])[] = [];
  const entries: DecodedXattrEntry[] = [];
  for (const e of raw) {
    // Built only for an error (a spread per entry cost ~1 us on every decode).
    const where = (): Ctx => ({ ...ctx, offset: e.offset });
    if (e.valueSize > XATTR_SIZE_MAX) throw corrupted(structure, `value size ${e.valueSize} too large`, where());
    const name = buf.slice(e.offset + E_NAME, e.offset + E_NAME + e.nameLen);
    let value: XattrValue;
    if (e.valueInum !== 0) {
      if (options.eaInode !== true) throw corrupted(structure, `value in inode ${e.valueInum} without the ea_inode feature`, where());
      const firstIno = options.firstIno ?? DEFAULT_FIRST_INO;
      if (e.valueInum === ROOT_INO || e.valueInum < firstIno || (options.inodesCount !== undefined && e.valueInum > options.inodesCount)) {
        throw corrupted(structure, `invalid EA inode number ${e.valueInum}`, where());
      }
      if (options.inode !== undefined && e.valueInum === options.inode) throw corrupted(structure, 'value inode is the inode itself', where());
      if (e.valueSize === 0) throw corrupted(structure, `empty value in EA inode ${e.valueInum}`, where());
      value = { kind: 'inode', inode: e.valueInum, size: e.valueSize };
    } else if (e.valueSize === 0) {
      value = { kind: 'bytes', bytes: new Uint8Array(0) };
    } else {
      const start = valueBase + e.valueOffs;
      const paddedEnd = start + xattrValueLength(e.valueSize);
      if (start < tableEnd) throw corrupted(structure, `value at ${e.valueOffs} overlaps the entry table`, where());
      if (paddedEnd > end) throw corrupted(structure, `value at ${e.valueOffs} (${e.valueSize} bytes) out of bounds`, where());
      used.push([start, paddedEnd, e.offset]);
      if (options.verifyHashes === true) checkHash(buf, e, name, start, paddedEnd, isBlock, structure, where);
      value = { kind: 'bytes', bytes: buf.slice(start, start + e.valueSize) };
    }
    entries.push({ index: e.index, name, value, hash: e.hash, entryOffset: e.offset, valueOffset: e.valueOffs });
  }

  used.sort((a, b) => a[0] - b[0]);
  let lowest = end;
  for (let i = 0; i < used.length; i++) {
    const cur = used[i] as readonly [number, number, number];
    if (i === 0) lowest = cur[0];
    const prev = used[i - 1];
    if (prev !== undefined && cur[0] < prev[1]) throw corrupted(structure, 'two values overlap', { ...ctx, offset: cur[2] });
  }
  return { entries, freeBytes: lowest - tableEnd };
}

function checkHash(buf: Uint8Array, e: RawEntry, name: Uint8Array, start: number, paddedEnd: number, isBlock: boolean, structure: string, where: () => Ctx): void {
  if (!isBlock && e.hash === 0) return;
  // The kernel and e2fsck hash the value as stored, padding included.
  const stored = buf.subarray(start, paddedEnd);
  if (xattrEntryHash(name, stored) === e.hash || xattrEntryHash(name, stored, true) === e.hash) return;
  throw corrupted(structure, `entry hash mismatch (stored 0x${hex32(e.hash)}, computed 0x${hex32(xattrEntryHash(name, stored))})`, where());
}

// ---------------------------------------------------------------------------------------
// Encoding

/** How an encoder fills e_hash of entries whose value is stored in the region. */
export type XattrHashMode =
  /** Compute it (what the kernel and e2fsprogs write in blocks). */
  | 'compute'
  /** Write 0 (what the kernel and e2fsprogs write in inodes; not allowed in a block). */
  | 'zero'
  /** Write entry.hash as given. */
  | 'keep';

export interface XattrEncodeOptions {
  /**
   * Default 'zero' in an inode, 'compute' in a block, as the kernel writes them
   * (ext4_xattr_set_entry hashes only block entries). Entries whose value is in an EA inode
   * always keep entry.hash.
   */
  readonly hashes?: XattrHashMode;
  /**
   * In-inode only: write the magic even when there are no entries (what e2fsprogs does
   * once an inode has had xattrs). Default false: the kernel clears it.
   */
  readonly magicWhenEmpty?: boolean;
}

/**
 * Write `entries` as the in-inode xattrs of `inodeBytes` (modified in place): the magic,
 * the entries in the given order and their values packed from the end of the inode.
 * With no entries the magic is cleared, as the kernel does (see magicWhenEmpty). Bytes of
 * the region not used are zeroed. Throws ENOSPC when the entries do not fit, EINVAL on an unstorable entry.
 */
export function encodeInodeXattrs(inodeBytes: Uint8Array, entries: readonly XattrEntry[], layout: InodeXattrLayout, options: XattrEncodeOptions = {}): void {
  if (inodeBytes.length < layout.inodeSize) throw new RangeError(`inode buffer of ${inodeBytes.length} bytes is shorter than the inode size ${layout.inodeSize}`);
  const start = ibodyStart(layout, {});
  if (start === null) {
    if (entries.length === 0) return;
    throw new FsError('ENOSPC', 'inode has no room for extended attributes');
  }
  inodeBytes.fill(0, start, layout.inodeSize);
  if (entries.length === 0 && options.magicWhenEmpty !== true) return;
  writeU32(inodeBytes, start, XATTR_MAGIC);
  const first = start + XATTR_IBODY_HEADER_SIZE;
  layoutRegion(inodeBytes, first, layout.inodeSize, first, entries, options.hashes ?? 'zero');
}

/** Bytes available for entries, values and the terminator in an inode's xattr region (0 when none). */
export function inodeXattrCapacity(layout: InodeXattrLayout): number {
  const start = ibodyStart(layout, {});
  return start === null ? 0 : layout.inodeSize - start - XATTR_IBODY_HEADER_SIZE;
}

/** Bytes available for entries, values and the terminator in an xattr block of `blockSize` bytes. */
export function blockXattrCapacity(blockSize: number): number {
  return blockSize - XATTR_BLOCK_HEADER_SIZE;
}

/** Kernel order of block entries (xattr_find_entry, sorted): name index, name length, name bytes. */
export function compareXattrEntries(a: XattrName, b: XattrName): number {
  if (a.index !== b.index) return a.index - b.index;
  if (a.name.length !== b.name.length) return a.name.length - b.name.length;
  for (let i = 0; i < a.name.length; i++) {
    const d = (a.name[i] as number) - (b.name[i] as number);
    if (d !== 0) return d;
  }
  return 0;
}

export interface XattrBlockEncodeParams {
  /** Bytes per block. */
  readonly blockSize: number;
  /** Block number the block will be written to (checksum). */
  readonly blockNo: number;
  /** Filesystem checksum seed: with metadata_csum, h_checksum is set; without, it is 0. */
  readonly csumSeed?: number | undefined;
  /** h_refcount, default 1. */
  readonly refcount?: number;
  /** h_reserved to write back (12 bytes), default zeros. */
  readonly reserved?: Uint8Array;
  /** Write h_hash (the kernel does; e2fsprogs 1.47 leaves it 0). Default true. */
  readonly blockHash?: boolean;
}

/**
 * Build an xattr block: entries sorted in kernel order, values packed from the end of the
 * block in that order, h_hash and (with a seed) h_checksum set. Throws ENOSPC when the
 * entries do not fit, EINVAL on an unstorable entry or a duplicate name.
 */
export function encodeXattrBlock(entries: readonly XattrEntry[], params: XattrBlockEncodeParams, options: XattrEncodeOptions = {}): Uint8Array {
  const { blockSize } = params;
  if (!Number.isInteger(blockSize) || blockSize < XATTR_BLOCK_HEADER_SIZE + 4 || blockSize > 0x10000) throw new RangeError(`invalid block size ${blockSize}`);
  const hashes = options.hashes ?? 'compute';
  if (hashes === 'zero') throw new FsError('EINVAL', 'xattr block entries must carry their hash');
  const sorted = [...entries].sort(compareXattrEntries);
  for (let i = 1; i < sorted.length; i++) {
    if (compareXattrEntries(sorted[i - 1] as XattrEntry, sorted[i] as XattrEntry) === 0) throw new FsError('EINVAL', 'duplicate extended attribute name');
  }
  const block = new Uint8Array(blockSize);
  const entryHashes = layoutRegion(block, XATTR_BLOCK_HEADER_SIZE, blockSize, 0, sorted, hashes);
  writeU32(block, H_MAGIC, XATTR_MAGIC);
  const refcount = params.refcount ?? 1;
  if (!Number.isInteger(refcount) || refcount < 0 || refcount >= TWO_32) throw new RangeError(`invalid refcount ${refcount}`);
  writeU32(block, H_REFCOUNT, refcount);
  writeU32(block, H_BLOCKS, 1);
  writeU32(block, H_HASH, params.blockHash === false ? 0 : xattrBlockHash(entryHashes));
  if (params.reserved !== undefined) {
    if (params.reserved.length !== XATTR_BLOCK_HEADER_SIZE - H_RESERVED) throw new RangeError('h_reserved must be 12 bytes');
    block.set(params.reserved, H_RESERVED);
  }
  if (params.csumSeed !== undefined) setXattrBlockChecksum(block, params.blockNo, params.csumSeed);
  return block;
}

/** Lay out entries at [first, end) of buf (already zero); returns the entry hashes written. */
function layoutRegion(buf: Uint8Array, first: number, end: number, valueBase: number, entries: readonly XattrEntry[], hashes: XattrHashMode): number[] {
  let need = 4;
  for (const e of entries) {
    checkStorable(e);
    need += xattrSpaceNeeded(e);
  }
  if (need > end - first) throw new FsError('ENOSPC', `extended attributes need ${need} bytes, ${end - first} available`);
  const written: number[] = [];
  let pos = first;
  let valueEnd = end;
  for (const e of entries) {
    buf[pos + E_NAME_LEN] = e.name.length;
    buf[pos + E_NAME_INDEX] = e.index;
    buf.set(e.name, pos + E_NAME);
    let hash: number;
    if (e.value.kind === 'inode') {
      writeU32(buf, pos + E_VALUE_INUM, e.value.inode);
      writeU32(buf, pos + E_VALUE_SIZE, e.value.size);
      hash = e.hash >>> 0;
    } else {
      const bytes = e.value.bytes;
      valueEnd -= xattrValueLength(bytes.length);
      buf.set(bytes, valueEnd);
      writeU16(buf, pos + E_VALUE_OFFS, valueEnd - valueBase);
      writeU32(buf, pos + E_VALUE_SIZE, bytes.length);
      hash = hashes === 'compute' ? xattrEntryHash(e.name, bytes) : hashes === 'zero' ? 0 : e.hash >>> 0;
    }
    writeU32(buf, pos + E_HASH, hash);
    written.push(hash);
    pos += xattrEntryLength(e.name.length);
  }
  return written;
}

function checkStorable(e: XattrEntry): void {
  if (!Number.isInteger(e.index) || e.index < 1 || e.index > 255) throw new FsError('EINVAL', `invalid xattr name index ${e.index}`);
  if (e.name.length > XATTR_NAME_MAX) throw new FsError('ERANGE', `xattr name of ${e.name.length} bytes is too long`);
  if (e.name.includes(0)) throw new FsError('EINVAL', 'xattr name contains a NUL byte');
  if (e.name.length === 0 && !WHOLE_NAME_INDEXES.has(e.index)) throw new FsError('EINVAL', `empty xattr name with name index ${e.index}`);
  if (e.value.kind === 'inode') {
    const { inode, size } = e.value;
    if (!Number.isInteger(inode) || inode <= 0 || inode >= TWO_32) throw new FsError('EINVAL', `invalid EA inode number ${inode}`);
    if (!Number.isInteger(size) || size <= 0 || size > XATTR_SIZE_MAX) throw new FsError('EINVAL', `invalid EA inode value size ${size}`);
  } else if (e.value.bytes.length > XATTR_SIZE_MAX) {
    throw new FsError('E2BIG', `xattr value of ${e.value.bytes.length} bytes is too large`);
  }
}

// ---------------------------------------------------------------------------------------
// Helpers

type Ctx = { readonly inode?: number; readonly block?: number; readonly offset?: number };

function contextOf(inode: number | undefined, block: number | undefined): Ctx {
  const ctx: { inode?: number; block?: number } = {};
  if (inode !== undefined) ctx.inode = inode;
  if (block !== undefined) ctx.block = block;
  return ctx;
}

/** Offset of the in-inode magic, or null when the inode has no room for xattrs. */
function ibodyStart(layout: InodeXattrLayout, ctx: Ctx): number | null {
  const { inodeSize, extraIsize } = layout;
  if (!Number.isInteger(inodeSize) || inodeSize < GOOD_OLD_INODE_SIZE) throw new RangeError(`invalid inode size ${inodeSize}`);
  if (inodeSize === GOOD_OLD_INODE_SIZE) return null;
  if (!Number.isInteger(extraIsize) || extraIsize < 0 || extraIsize % 4 !== 0 || GOOD_OLD_INODE_SIZE + extraIsize > inodeSize) {
    throw corrupted('inode', `bad i_extra_isize ${extraIsize} for ${inodeSize}-byte inodes`, ctx);
  }
  const start = GOOD_OLD_INODE_SIZE + extraIsize;
  // The magic and at least the terminator must fit (EXT4_INODE_HAS_XATTR_SPACE and check_xattrs).
  return start + XATTR_IBODY_HEADER_SIZE + 4 <= inodeSize ? start : null;
}

function roundUp4(n: number): number {
  return Math.ceil(n / XATTR_PAD) * XATTR_PAD;
}






function hex32(v: number): string {
  return (v >>> 0).toString(16).padStart(8, '0');
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function startsWith(a: Uint8Array, prefix: Uint8Array): boolean {
  if (a.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (a[i] !== prefix[i]) return false;
  return true;
}
