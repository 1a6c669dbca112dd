/**
 * Hash-tree (dir_index) interior blocks (Documentation/filesystems/ext4/directory.rst
 * "Hash Tree Directories", fs/ext4/namei.c dx_probe / ext4_dx_csum).
 *
 * Logical block 0 of an indexed directory is the dx_root; deeper interior blocks are
 * dx_nodes. Both disguise themselves as directory records so old code sees them as
 * '.', '..' and free space:
 *
 *   dx_root                                   dx_node
 *   0   '.'  record, rec_len 12                0  fake record: inode 0, rec_len = block size,
 *   12  '..' record, rec_len = bs - 12                         name_len 0, file_type 0
 *   24  dx_root_info: reserved_zero u32        8  limit u16, count u16, block u32
 *       hash_version u8, info_length u8 (8),  16 entries...
 *       indirect_levels u8, unused_flags u8
 *   32  limit u16, count u16, block u32
 *   40  entries: { hash u32, block u32 } ...
 *
 * The first entry's hash field holds limit and count: it covers hashes below
 * entries[1].hash. `count` counts that first entry. Block numbers are logical blocks
 * of the directory (the kernel masks them to 28 bits). An entry's hash with bit 0 set
 * says that the hash collision run continues from the previous leaf.
 *
 * With metadata_csum `limit` shrinks by one entry to leave room for a dx_tail
 * { reserved u32, checksum u32 } right after the `limit` entries. Its checksum is a raw
 * crc32c, seeded with the per-inode seed, over the block's first
 * count_offset + count * 8 bytes (the live entries; count_offset is 32 or 8), continued
 * over the whole dx_tail with its checksum field taken as zero (ext4_dx_csum: `count`,
 * not `limit`, and reserved + a zero dummy checksum; checked against e2fsprogs images).
 *
 * Depth: indirect_levels is 0 or 1 (a root and at most one level of dx_nodes), or up to
 * 2 with the large_dir feature.
 */
import { corrupted, FsError } from '../errors.js';
import { crc32cRaw } from './crc.js';
import { DX_HASH } from './dirhash.js';
import { recLenFromDisk, recLenToDisk, FT } from './dirent.js';

/** Byte offsets inside a dx_root block. */
export const DX_ROOT_OFFSETS = {
  dotInode: 0,
  dotRecLen: 4,
  dotNameLen: 6,
  dotFileType: 7,
  dotName: 8,
  dotdotInode: 12,
  dotdotRecLen: 16,
  dotdotNameLen: 18,
  dotdotFileType: 19,
  dotdotName: 20,
  reservedZero: 24,
  hashVersion: 28,
  infoLength: 29,
  indirectLevels: 30,
  unusedFlags: 31,
  /** dx_countlimit: limit u16, count u16, then the first entry's block. */
  countLimit: 32,
} as const;

/** Byte offsets inside a dx_node block. */
export const DX_NODE_OFFSETS = {
  fakeInode: 0,
  fakeRecLen: 4,
  fakeNameLen: 6,
  fakeFileType: 7,
  countLimit: 8,
} as const;

/** Inside dx_countlimit (which overlays entry 0's hash field) and a dx_entry. */
export const DX_ENTRY_OFFSETS = { limit: 0, count: 2, hash: 0, block: 4 } as const;

/** sizeof(struct dx_entry). */
export const DX_ENTRY_SIZE = 8;
/** sizeof(struct dx_tail). */
export const DX_TAIL_SIZE = 8;
/** dx_root_info.info_length. */
export const DX_ROOT_INFO_LENGTH = 8;
/** Depth limits (EXT4_HTREE_LEVEL_COMPAT without large_dir, EXT4_HTREE_LEVEL with). */
export const HTREE_LEVEL_COMPAT = 2;
export const HTREE_LEVEL = 3;
/** dx_get_block keeps the low 28 bits. */
export const DX_BLOCK_MASK = 0x0fffffff;
/** Bit 0 of an index hash: the previous leaf's hash collision run continues here. */
export const DX_HASH_CONTINUED = 1;

/** One index entry. entries[0] has hash 0: it covers everything below entries[1].hash. */
export interface DxEntry {
  readonly hash: number;
  /** Logical block within the directory (masked to 28 bits). */
  readonly block: number;
}

export interface DxTail {
  readonly reserved: number;
  readonly checksum: number;
}

export interface DxRoot {
  readonly dotInode: number;
  readonly dotdotInode: number;
  /** dx_root_info.hash_version: 0, 1, 2 or 6 (see dirhash.ts effectiveHashVersion). */
  readonly hashVersion: number;
  readonly infoLength: number;
  /** 0 = the root points at leaves; n = n levels of dx_nodes below the root. */
  readonly indirectLevels: number;
  readonly unusedFlags: number;
  readonly limit: number;
  readonly count: number;
  readonly entries: readonly DxEntry[];
  readonly tail: DxTail | null;
}

export interface DxNode {
  readonly limit: number;
  readonly count: number;
  readonly entries: readonly DxEntry[];
  readonly tail: DxTail | null;
}

export interface DxBlockOptions {
  readonly blockSize: number;
  /** metadata_csum: limits leave room for a dx_tail. */
  readonly hasChecksum: boolean;
  /** When given (with `hasChecksum`), the dx_tail checksum is verified (mismatch = EUCLEAN). */
  readonly csumSeed?: number | undefined;
  /** For error context. */
  readonly block?: number;
  readonly inode?: number;
}

export interface DxRootOptions extends DxBlockOptions {
  /** The large_dir feature: up to 3 levels instead of 2. */
  readonly largeDir: boolean;
  /** The directory stores hashes in its entries (encrypted+casefolded): must use siphash, and only then. */
  readonly hashInDirent?: boolean;
  /** The filetype feature: '.'/'..' name_len is 8 bits (else the old 16-bit name_len). */
  readonly hasFileType?: boolean;
}

/** Entries that fit in a dx_root (dx_root_limit). */
export function dxRootLimit(blockSize: number, hasChecksum: boolean): number {
  return Math.floor((blockSize - DX_ROOT_OFFSETS.countLimit - (hasChecksum ? DX_TAIL_SIZE : 0)) / DX_ENTRY_SIZE);
}

/** Entries that fit in a dx_node (dx_node_limit). */
export function dxNodeLimit(blockSize: number, hasChecksum: boolean): number {
  return Math.floor((blockSize - DX_NODE_OFFSETS.countLimit - (hasChecksum ? DX_TAIL_SIZE : 0)) / DX_ENTRY_SIZE);
}

function checkBlock(bytes: Uint8Array, blockSize: number): void {
  if (!Number.isInteger(blockSize) || blockSize < 1024 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0) {
    throw new FsError('EINVAL', `unsupported directory block size ${blockSize}`);
  }
  if (bytes.length !== blockSize) throw new FsError('EINVAL', `dx block buffer of ${bytes.length} bytes, block size ${blockSize}`);
}

function context(options: DxBlockOptions, offset: number): { block?: number; inode?: number; offset: number } {
  const c: { block?: number; inode?: number; offset: number } = { offset };
  if (options.block !== undefined) c.block = options.block;
  if (options.inode !== undefined) c.inode = options.inode;
  return c;
}

/** Decode limit/count/entries/tail starting at `countOffset`, with the checks dx_probe makes. */
function decodeEntries(
  bytes: Uint8Array,
  countOffset: number,
  expectedLimit: number,
  structure: string,
  options: DxBlockOptions,
): { limit: number; count: number; entries: DxEntry[]; tail: DxTail | null } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const limit = view.getUint16(countOffset + DX_ENTRY_OFFSETS.limit, true);
  const count = view.getUint16(countOffset + DX_ENTRY_OFFSETS.count, true);
  if (limit !== expectedLimit) throw corrupted(structure, `limit ${limit} != expected ${expectedLimit}`, context(options, countOffset));
  if (count === 0 || count > limit) throw corrupted(structure, `count ${count} not in 1..limit ${limit}`, context(options, countOffset + 2));
  const entries: DxEntry[] = [];
  let prev = 0;
  for (let i = 0; i < count; i++) {
    const at = countOffset + i * DX_ENTRY_SIZE;
    const hash = i === 0 ? 0 : view.getUint32(at + DX_ENTRY_OFFSETS.hash, true);
    const block = view.getUint32(at + DX_ENTRY_OFFSETS.block, true) & DX_BLOCK_MASK;
    if (i > 1 && hash < prev) throw corrupted(structure, `entry ${i} hash 0x${hash.toString(16)} below previous 0x${prev.toString(16)}`, context(options, at));
    prev = hash;
    entries.push({ hash, block });
  }
  let tail: DxTail | null = null;
  if (options.hasChecksum) {
    const t = countOffset + limit * DX_ENTRY_SIZE;
    tail = { reserved: view.getUint32(t, true), checksum: view.getUint32(t + 4, true) };
    if (options.csumSeed !== undefined) {
      const want = dxChecksumAt(bytes, countOffset, count, t, options.csumSeed);
      if (want !== tail.checksum) {
        throw corrupted(structure, `checksum mismatch (stored 0x${tail.checksum.toString(16)}, computed 0x${want.toString(16)})`, context(options, t));
      }
    }
  }
  return { limit, count, entries, tail };
}

/**
 * Decode and validate a dx_root block: '.' (rec_len 12) and '..' (rec_len bs - 12)
 * records, reserved_zero 0, info_length 8, hash_version 0/1/2/6, unused_flags bit 0
 * clear, indirect_levels below the depth limit, limit exactly what the block holds,
 * 1 <= count <= limit, hashes in ascending order, and (with `csumSeed`) the dx_tail.
 */
export function decodeDxRoot(bytes: Uint8Array, options: DxRootOptions): DxRoot {
  const { blockSize } = options;
  checkBlock(bytes, blockSize);
  const S = 'htree root';
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const O = DX_ROOT_OFFSETS;
  const hasFileType = options.hasFileType !== false;
  const nameLenAt = (at: number): number => (hasFileType ? (bytes[at] as number) : view.getUint16(at, true));
  const dotRecLen = recLenFromDisk(view.getUint16(O.dotRecLen, true), blockSize);
  if (dotRecLen !== 12 || nameLenAt(O.dotNameLen) !== 1 || bytes[O.dotName] !== 0x2e) {
    throw corrupted(S, `bad '.' record (rec_len ${dotRecLen})`, context(options, 0));
  }
  const dotdotRecLen = recLenFromDisk(view.getUint16(O.dotdotRecLen, true), blockSize);
  if (dotdotRecLen !== blockSize - 12 || nameLenAt(O.dotdotNameLen) !== 2 || bytes[O.dotdotName] !== 0x2e || bytes[O.dotdotName + 1] !== 0x2e) {
    throw corrupted(S, `bad '..' record (rec_len ${dotdotRecLen})`, context(options, 12));
  }
  const reservedZero = view.getUint32(O.reservedZero, true);
  const hashVersion = bytes[O.hashVersion] as number;
  const infoLength = bytes[O.infoLength] as number;
  const indirectLevels = bytes[O.indirectLevels] as number;
  const unusedFlags = bytes[O.unusedFlags] as number;
  if (reservedZero !== 0) throw corrupted(S, `dx_root_info.reserved_zero is 0x${reservedZero.toString(16)}`, context(options, O.reservedZero));
  if (infoLength !== DX_ROOT_INFO_LENGTH) throw corrupted(S, `info_length ${infoLength} != 8`, context(options, O.infoLength));
  if (hashVersion !== DX_HASH.LEGACY && hashVersion !== DX_HASH.HALF_MD4 && hashVersion !== DX_HASH.TEA && hashVersion !== DX_HASH.SIPHASH) {
    throw corrupted(S, `unrecognised hash version ${hashVersion}`, context(options, O.hashVersion));
  }
  if (options.hashInDirent !== undefined && options.hashInDirent !== (hashVersion === DX_HASH.SIPHASH)) {
    throw corrupted(
      S,
      options.hashInDirent ? 'hash in dirent, but hash is not siphash' : 'hash is siphash, but hash not in dirent',
      context(options, O.hashVersion),
    );
  }
  if ((unusedFlags & 1) !== 0) throw corrupted(S, `unimplemented hash flags 0x${unusedFlags.toString(16)}`, context(options, O.unusedFlags));
  const maxLevels = options.largeDir ? HTREE_LEVEL : HTREE_LEVEL_COMPAT;
  if (indirectLevels >= maxLevels) {
    throw corrupted(S, `htree depth ${indirectLevels} exceeds ${maxLevels - 1}${options.largeDir ? '' : ' (without large_dir)'}`, context(options, O.indirectLevels));
  }
  const e = decodeEntries(bytes, O.countLimit, dxRootLimit(blockSize, options.hasChecksum), S, options);
  return {
    dotInode: view.getUint32(O.dotInode, true),
    dotdotInode: view.getUint32(O.dotdotInode, true),
    hashVersion,
    infoLength,
    indirectLevels,
    unusedFlags,
    ...e,
  };
}

/**
 * Decode and validate a dx_node block: fake record with inode 0 and rec_len = block
 * size, limit exactly what the block holds, 1 <= count <= limit, ascending hashes and
 * (with `csumSeed`) the dx_tail.
 */
export function decodeDxNode(bytes: Uint8Array, options: DxBlockOptions): DxNode {
  const { blockSize } = options;
  checkBlock(bytes, blockSize);
  const S = 'htree node';
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fakeInode = view.getUint32(DX_NODE_OFFSETS.fakeInode, true);
  const fakeRecLen = recLenFromDisk(view.getUint16(DX_NODE_OFFSETS.fakeRecLen, true), blockSize);
  if (fakeInode !== 0 || fakeRecLen !== blockSize) {
    throw corrupted(S, `bad fake record (inode ${fakeInode}, rec_len ${fakeRecLen})`, context(options, 0));
  }
  return decodeEntries(bytes, DX_NODE_OFFSETS.countLimit, dxNodeLimit(blockSize, options.hasChecksum), S, options);
}

/**
 * True if a block of an indexed directory is an interior (dx) block by the kernel's
 * rule for blocks other than 0: its first record is unused and spans the whole block. (Only
 * meaningful with metadata_csum, where leaves end in a tail; otherwise an empty leaf
 * looks the same and the tree must be walked from the root.)
 */
export function isDxNodeBlock(bytes: Uint8Array, blockSize: number): boolean {
  if (bytes.length < 8) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // The fake record of a dx node names no inode; a leaf whose one live entry spans
  // the block (possible without metadata_csum) does.
  return view.getUint32(0, true) === 0 && recLenFromDisk(view.getUint16(DX_NODE_OFFSETS.fakeRecLen, true), blockSize) === blockSize;
}

/**
 * Where dx_countlimit is in a dx block, by the kernel's get_dx_countlimit rule: 8 if the
 * first record spans the block (dx_node), 32 if it is a 12-byte '.' followed by a '..'
 * spanning the rest with a sane dx_root_info (dx_root); null otherwise.
 */
export function dxCountOffset(bytes: Uint8Array, blockSize: number): number | null {
  if (bytes.length < blockSize || blockSize < 64) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const first = recLenFromDisk(view.getUint16(DX_ROOT_OFFSETS.dotRecLen, true), blockSize);
  if (first === blockSize) return DX_NODE_OFFSETS.countLimit;
  if (first !== 12) return null;
  if (recLenFromDisk(view.getUint16(DX_ROOT_OFFSETS.dotdotRecLen, true), blockSize) !== blockSize - 12) return null;
  if (view.getUint32(DX_ROOT_OFFSETS.reservedZero, true) !== 0 || bytes[DX_ROOT_OFFSETS.infoLength] !== DX_ROOT_INFO_LENGTH) return null;
  return DX_ROOT_OFFSETS.countLimit;
}

const ZERO_CHECKSUM = new Uint8Array(4);

function dxChecksumAt(bytes: Uint8Array, countOffset: number, count: number, tailOffset: number, seed: number): number {
  let crc = crc32cRaw(seed, bytes, 0, countOffset + count * DX_ENTRY_SIZE);
  crc = crc32cRaw(crc, bytes, tailOffset, tailOffset + 4);
  return crc32cRaw(crc, ZERO_CHECKSUM);
}

/** Locate count/limit/tail of a dx block, or throw: used by the checksum helpers. */
function locateTail(bytes: Uint8Array, blockSize: number): { countOffset: number; count: number; tailOffset: number } {
  checkBlock(bytes, blockSize);
  const countOffset = dxCountOffset(bytes, blockSize);
  if (countOffset === null) throw corrupted('htree block', 'not a dx_root or dx_node');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const limit = view.getUint16(countOffset + DX_ENTRY_OFFSETS.limit, true);
  const count = view.getUint16(countOffset + DX_ENTRY_OFFSETS.count, true);
  const tailOffset = countOffset + limit * DX_ENTRY_SIZE;
  if (tailOffset + DX_TAIL_SIZE > blockSize) throw corrupted('htree block', `no space for dx_tail (limit ${limit})`, { offset: countOffset });
  if (count > limit) throw corrupted('htree block', `count ${count} > limit ${limit}`, { offset: countOffset + 2 });
  return { countOffset, count, tailOffset };
}

/** The crc32c a dx block's tail should hold (ext4_dx_csum). */
export function dxChecksum(bytes: Uint8Array, blockSize: number, csumSeed: number): number {
  const { countOffset, count, tailOffset } = locateTail(bytes, blockSize);
  return dxChecksumAt(bytes, countOffset, count, tailOffset, csumSeed);
}

/** True if the dx block's tail checksum matches (ext4_dx_csum_verify); false also when there is no room for a tail. */
export function verifyDxChecksum(bytes: Uint8Array, blockSize: number, csumSeed: number): boolean {
  try {
    const { countOffset, count, tailOffset } = locateTail(bytes, blockSize);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return view.getUint32(tailOffset + 4, true) === dxChecksumAt(bytes, countOffset, count, tailOffset, csumSeed);
  } catch (error) {
    if (error instanceof FsError) return false;
    throw error;
  }
}

/** Compute and store a dx block's tail checksum. */
export function setDxChecksum(bytes: Uint8Array, blockSize: number, csumSeed: number): void {
  const { countOffset, count, tailOffset } = locateTail(bytes, blockSize);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setUint32(tailOffset + 4, dxChecksumAt(bytes, countOffset, count, tailOffset, csumSeed), true);
}

/**
 * The index of the entry to descend into for `hash` (dx_probe's binary search): the
 * last entry whose hash is <= `hash`; entry 0 covers everything below entries[1].
 */
export function dxLookup(entries: readonly DxEntry[], hash: number): number {
  if (entries.length === 0) throw new FsError('EINVAL', 'dxLookup on an empty index');
  const target = hash >>> 0;
  let lo = 1;
  let hi = entries.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if ((entries[mid] as DxEntry).hash > target) hi = mid - 1;
    else lo = mid + 1;
  }
  return lo - 1;
}

/** What to write into a dx block. */
export interface DxEntriesInput {
  /** entries[0].hash is ignored (its slot holds limit and count). */
  readonly entries: readonly DxEntry[];
}

export interface DxRootInput extends DxEntriesInput {
  readonly dotInode: number;
  readonly dotdotInode: number;
  readonly hashVersion: number;
  readonly indirectLevels: number;
}

export interface DxWriteOptions {
  readonly blockSize: number;
  readonly hasChecksum: boolean;
  /** The filetype feature (default true): '.'/'..' get file_type DIR. */
  readonly hasFileType?: boolean;
  /** With `hasChecksum`: fill in the dx_tail checksum. */
  readonly csumSeed?: number | undefined;
}

function writeEntries(bytes: Uint8Array, countOffset: number, limit: number, entries: readonly DxEntry[], options: DxWriteOptions): void {
  if (entries.length === 0 || entries.length > limit) throw new FsError('EINVAL', `${entries.length} dx entries, limit ${limit}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  entries.forEach((e, i) => {
    const at = countOffset + i * DX_ENTRY_SIZE;
    if (i > 0) view.setUint32(at + DX_ENTRY_OFFSETS.hash, e.hash >>> 0, true);
    view.setUint32(at + DX_ENTRY_OFFSETS.block, e.block >>> 0, true);
  });
  view.setUint16(countOffset + DX_ENTRY_OFFSETS.limit, limit, true);
  view.setUint16(countOffset + DX_ENTRY_OFFSETS.count, entries.length, true);
  if (options.hasChecksum && options.csumSeed !== undefined) setDxChecksum(bytes, options.blockSize, options.csumSeed);
}

/** Build a dx_root block. */
export function encodeDxRoot(root: DxRootInput, options: DxWriteOptions): Uint8Array {
  const { blockSize } = options;
  const bytes = new Uint8Array(blockSize);
  checkBlock(bytes, blockSize);
  const view = new DataView(bytes.buffer);
  const O = DX_ROOT_OFFSETS;
  const hasFileType = options.hasFileType !== false;
  const setNameLen = (at: number, len: number): void => {
    if (hasFileType) {
      bytes[at] = len;
      bytes[at + 1] = FT.DIR;
    } else {
      view.setUint16(at, len, true);
    }
  };
  view.setUint32(O.dotInode, root.dotInode >>> 0, true);
  view.setUint16(O.dotRecLen, recLenToDisk(12, blockSize), true);
  setNameLen(O.dotNameLen, 1);
  bytes[O.dotName] = 0x2e;
  view.setUint32(O.dotdotInode, root.dotdotInode >>> 0, true);
  view.setUint16(O.dotdotRecLen, recLenToDisk(blockSize - 12, blockSize), true);
  setNameLen(O.dotdotNameLen, 2);
  bytes[O.dotdotName] = 0x2e;
  bytes[O.dotdotName + 1] = 0x2e;
  bytes[O.hashVersion] = root.hashVersion;
  bytes[O.infoLength] = DX_ROOT_INFO_LENGTH;
  bytes[O.indirectLevels] = root.indirectLevels;
  writeEntries(bytes, O.countLimit, dxRootLimit(blockSize, options.hasChecksum), root.entries, options);
  return bytes;
}

/** Build a dx_node block. */
export function encodeDxNode(node: DxEntriesInput, options: DxWriteOptions): Uint8Array {
  const { blockSize } = options;
  const bytes = new Uint8Array(blockSize);
  checkBlock(bytes, blockSize);
  const view = new DataView(bytes.buffer);
  view.setUint16(DX_NODE_OFFSETS.fakeRecLen, recLenToDisk(blockSize, blockSize), true);
  writeEntries(bytes, DX_NODE_OFFSETS.countLimit, dxNodeLimit(blockSize, options.hasChecksum), node.entries, options);
  return bytes;
}
