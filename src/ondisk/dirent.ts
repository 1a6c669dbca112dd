/**
 * Linear directory blocks (Documentation/filesystems/ext4/directory.rst, fs/ext4/dir.c
 * __ext4_check_dir_entry, fs/ext4/namei.c) and the inline-data directory layout
 * (inlinedata.rst).
 *
 * A directory block is a chain of variable-length records that exactly tiles the
 * block:
 *
 *   0  inode      u32   0 = unused record (deleted entry or free space)
 *   4  rec_len    u16   length of this record, a multiple of 4, >= 8 + name_len rounded up
 *   6  name_len   u8    (u16 in the old ext4_dir_entry used without the filetype feature)
 *   7  file_type  u8    EXT4_FT_* when the filetype feature is on
 *   8  name       name_len bytes, not NUL-terminated
 *
 * With blocks of 64 KiB or more, rec_len cannot hold the block size: the on-disk
 * value 65535 (or 0) means "the whole block" and the low two bits carry bits 16-17.
 *
 * With metadata_csum every leaf block ends with a 12-byte fake record (inode 0,
 * rec_len 12, name_len 0, file_type 0xDE) whose last 4 bytes are a raw crc32c over the
 * block up to that tail, seeded with the directory's per-inode seed
 * (crc32c(crc32c(fsSeed, le32 ino), le32 generation)).
 *
 * Directories that are both encrypted and casefolded store the name's 64-bit dx hash
 * (hash, minor_hash) right after the name, at the next 4-byte boundary ("hash in
 * dirent"); their records are 8 bytes longer.
 *
 * Inline-data directories keep the parent's inode number in the first 4 bytes of the
 * inode's 60-byte i_block, records in its other 56 bytes and, if larger, more records in
 * the value of the "system.data" extended attribute. '.' is implicit.
 */
import { corrupted, FsError } from '../errors.js';
import { crc32cRaw } from './crc.js';

/** Byte offsets inside a directory record (struct ext4_dir_entry_2). */
export const DIRENT_OFFSETS = {
  inode: 0,
  recLen: 4,
  nameLen: 6,
  fileType: 7,
  name: 8,
} as const;

/** Byte offsets inside the checksum tail (struct ext4_dir_entry_tail). */
export const DIRENT_TAIL_OFFSETS = {
  reservedZero1: 0,
  recLen: 4,
  reservedZero2: 6,
  reservedFt: 7,
  checksum: 8,
} as const;

/** Header bytes before the name. */
export const DIRENT_HEADER_SIZE = 8;
/** sizeof(struct ext4_dir_entry_tail). */
export const DIRENT_TAIL_SIZE = 12;
/** sizeof(struct ext4_dir_entry_hash): the hash stored after the name in encrypted+casefolded directories. */
export const DIRENT_HASH_SIZE = 8;
/** EXT4_NAME_LEN. */
export const NAME_MAX = 255;

/** Whether a name holds a '/' or a NUL, which no entry name may (a loop: Buffer.includes costs more than the scan of a short name). */
export function hasSlashOrNul(name: Uint8Array): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name[i];
    if (c === 0x2f || c === 0) return true;
  }
  return false;
}
/** Smallest record: EXT4_DIR_REC_LEN(1). */
export const DIRENT_MIN_REC_LEN = 12;
/** file_type of the checksum tail (EXT4_FT_DIR_CSUM). */
export const FT_DIR_CSUM = 0xde;

/** file_type values (EXT4_FT_*). Values >= FT_MAX are read by the kernel as "unknown". */
export const FT = {
  UNKNOWN: 0,
  REG_FILE: 1,
  DIR: 2,
  CHRDEV: 3,
  BLKDEV: 4,
  FIFO: 5,
  SOCK: 6,
  SYMLINK: 7,
} as const;
export const FT_MAX = 8;

/** Bytes of i_block, and of its part that holds records in an inline-data directory. */
export const INLINE_IBLOCK_SIZE = 60;
export const INLINE_DOTDOT_SIZE = 4;

/** The file_type for an inode's i_mode (S_IFMT bits), as ext4_set_de_type does. */
export function fileTypeFromMode(mode: number): number {
  switch (mode & 0xf000) {
    case 0x8000:
      return FT.REG_FILE;
    case 0x4000:
      return FT.DIR;
    case 0x2000:
      return FT.CHRDEV;
    case 0x6000:
      return FT.BLKDEV;
    case 0x1000:
      return FT.FIFO;
    case 0xc000:
      return FT.SOCK;
    case 0xa000:
      return FT.SYMLINK;
    default:
      return FT.UNKNOWN;
  }
}

/** EXT4_DIR_REC_LEN: the smallest record holding a name of `nameLen` bytes (+ the stored hash). */
export function dirRecLen(nameLen: number, hashInDirent = false): number {
  return ((DIRENT_HEADER_SIZE + nameLen + 3) & ~3) + (hashInDirent ? DIRENT_HASH_SIZE : 0);
}

/** Decode an on-disk rec_len (ext4_rec_len_from_disk / ext2fs_get_rec_len). */
export function recLenFromDisk(raw: number, blockSize: number): number {
  if (blockSize < 65536) return raw;
  if (raw === 0xffff || raw === 0) return blockSize;
  return (raw & 0xfffc) | ((raw & 3) << 16);
}

/** Encode a rec_len for disk (ext4_rec_len_to_disk). */
export function recLenToDisk(len: number, blockSize: number): number {
  if (len < 0 || len > blockSize || len % 4 !== 0 || blockSize > 1 << 18) {
    throw new FsError('EINVAL', `rec_len ${len} cannot be encoded for block size ${blockSize}`);
  }
  if (len < 65536) return len;
  if (len === blockSize) return blockSize === 65536 ? 0xffff : 0;
  return (len & 0xfffc) | ((len >> 16) & 3);
}

function checkBlockSize(blockSize: number): void {
  if (!Number.isInteger(blockSize) || blockSize < 1024 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0) {
    throw new FsError('EINVAL', `unsupported directory block size ${blockSize}`);
  }
}

/** One record of a directory block. */
export interface DirEntry {
  /** Inode number; 0 for an unused record (only in `records`, never in `entries`). */
  readonly inode: number;
  /** The name's bytes (a copy; not NUL-terminated, any bytes but '/' and NUL in a sane fs). */
  readonly name: Uint8Array;
  /** file_type (EXT4_FT_*) with the filetype feature, else 0. */
  readonly fileType: number;
  /** Byte offset of the record in its block (or region). */
  readonly offset: number;
  /** Decoded rec_len. */
  readonly recLen: number;
  /** Hash stored after the name (encrypted+casefolded directories), when present. */
  readonly hash?: number;
  readonly minorHash?: number;
}

/** The checksum tail of a leaf block. */
export interface DirTail {
  /** Stored crc32c. */
  readonly checksum: number;
}

/** A decoded directory block. */
export interface DirBlock {
  /** Live entries (inode != 0), in on-disk order. */
  readonly entries: readonly DirEntry[];
  /** Every record, unused ones included (inode 0), in on-disk order (not the tail). */
  readonly records: readonly DirEntry[];
  /** The checksum tail, when the options say there is one. */
  readonly tail: DirTail | null;
}

export interface DirFormatOptions {
  /** The filetype feature (incompat 0x2): file_type byte present, name_len is 8 bits. */
  readonly hasFileType: boolean;
  /** The directory stores hashes in its entries (encrypted and casefolded). */
  readonly hashInDirent?: boolean;
  /** s_inodes_count: entries naming a larger inode are corrupt. */
  readonly inodesCount?: number;
  /** For error context: the directory's inode number. */
  readonly inode?: number;
}

export interface DirBlockOptions extends DirFormatOptions {
  readonly blockSize: number;
  /** metadata_csum: the block ends with a 12-byte checksum tail. */
  readonly hasChecksumTail: boolean;
  /** For error context: the block number (physical or logical, the caller's choice). */
  readonly block?: number;
  /** When given, the tail checksum is verified with this per-inode seed (mismatch = EUCLEAN). */
  readonly csumSeed?: number | undefined;
}

/** Always all four keys (one object shape for the walkers; undefined = not known). */
interface RegionContext {
  readonly structure: string;
  readonly block: number | undefined;
  readonly inode: number | undefined;
  /** Offset of the region's first byte in whatever the caller reports offsets against. */
  readonly base: number;
}

function errorContext(ctx: RegionContext, offset: number): { block?: number; inode?: number; offset: number } {
  const c: { block?: number; inode?: number; offset: number } = { offset: ctx.base + offset };
  if (ctx.block !== undefined) c.block = ctx.block;
  if (ctx.inode !== undefined) c.inode = ctx.inode;
  return c;
}

/** True for the records the kernel calls fake: '.' and '..' (exempt from the stored-hash length). */
function isDotOrDotDot(bytes: Uint8Array, at: number, nameLen: number): boolean {
  if (nameLen === 1) return bytes[at + DIRENT_OFFSETS.name] === 0x2e;
  if (nameLen === 2) return bytes[at + DIRENT_OFFSETS.name] === 0x2e && bytes[at + DIRENT_OFFSETS.name + 1] === 0x2e;
  return false;
}

/**
 * Called for each record of a region, after it has been validated: `at` is its byte
 * index in `bytes`, `off` its offset relative to the region. Return true to stop.
 */
type RecordVisitor = (at: number, off: number, inode: number, recLen: number, nameLen: number, fileType: number) => boolean;

/**
 * Walk and validate the records tiling bytes[start, end), calling `visit` for each
 * until it returns true. rec_len decoding uses `blockSize` (0 = raw 16-bit values, as
 * for inline data). Allocates nothing per record, so a lookup can scan a block cheaply.
 */
function scanRegion(
  bytes: Uint8Array,
  start: number,
  end: number,
  blockSize: number,
  format: DirFormatOptions,
  ctx: RegionContext,
  visit: RecordVisitor,
): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = end - start;
  const hashInDirent = format.hashInDirent === true;
  let off = 0;
  // One closure for the whole walk (not one per record): it reads `off` when called.
  const fail = (what: string): FsError => corrupted(ctx.structure, what, errorContext(ctx, off));
  while (off < size) {
    const at = start + off;
    if (size - off < DIRENT_HEADER_SIZE) throw fail(`record header overruns the end (${size - off} bytes left)`);
    const inode = view.getUint32(at + DIRENT_OFFSETS.inode, true);
    const rawRecLen = view.getUint16(at + DIRENT_OFFSETS.recLen, true);
    const recLen = blockSize > 0 ? recLenFromDisk(rawRecLen, blockSize) : rawRecLen;
    let nameLen: number;
    let fileType: number;
    if (format.hasFileType) {
      nameLen = bytes[at + DIRENT_OFFSETS.nameLen] as number;
      fileType = bytes[at + DIRENT_OFFSETS.fileType] as number;
    } else {
      nameLen = view.getUint16(at + DIRENT_OFFSETS.nameLen, true);
      fileType = FT.UNKNOWN;
    }
    const withHash = hashInDirent && !isDotOrDotDot(bytes, at, nameLen);
    if (recLen < dirRecLen(1, withHash)) throw fail(`rec_len ${recLen} is smaller than minimal`);
    if (recLen % 4 !== 0) throw fail(`rec_len ${recLen} is not a multiple of 4`);
    if (nameLen > NAME_MAX) throw fail(`name_len ${nameLen} exceeds ${NAME_MAX}`);
    if (recLen < dirRecLen(nameLen, withHash)) throw fail(`rec_len ${recLen} is too small for name_len ${nameLen}`);
    const next = off + recLen;
    if (next > size) throw fail(`record overruns the end (rec_len ${recLen}, ${size - off} bytes left)`);
    if (next !== size && next > size - DIRENT_MIN_REC_LEN) throw fail(`record ends too close to the end (rec_len ${recLen})`);
    if (inode !== 0) {
      if (nameLen === 0) throw fail(`live entry (inode ${inode}) has an empty name`);
      if (format.inodesCount !== undefined && inode > format.inodesCount) {
        throw fail(`inode ${inode} out of bounds (s_inodes_count ${format.inodesCount})`);
      }
    }
    if (visit(at, off, inode, recLen, nameLen, fileType)) return;
    off = next;
  }
}

/** Every record of bytes[start, end), validated (see scanRegion); offsets relative to `start`. */
function walkRegion(
  bytes: Uint8Array,
  start: number,
  end: number,
  blockSize: number,
  format: DirFormatOptions,
  ctx: RegionContext,
): DirEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: DirEntry[] = [];
  const hashInDirent = format.hashInDirent === true;
  // The names are views into one copy of the region, not one copy (and ArrayBuffer,
  // with its native backing store) each: ~150 bytes less per entry, live as long as
  // a decoded block is cached. A name kept alone keeps its region's copy alive.
  let copy: Uint8Array | undefined;
  scanRegion(bytes, start, end, blockSize, format, ctx, (at, off, inode, recLen, nameLen, fileType) => {
    copy ??= bytes.slice(start, end);
    const nameStart = at + DIRENT_OFFSETS.name - start;
    const entry: {
      inode: number;
      name: Uint8Array;
      fileType: number;
      offset: number;
      recLen: number;
      hash?: number;
      minorHash?: number;
    } = { inode, name: copy.subarray(nameStart, nameStart + nameLen), fileType, offset: off, recLen };
    if (hashInDirent && inode !== 0 && !isDotOrDotDot(bytes, at, nameLen)) {
      const hashAt = at + ((DIRENT_HEADER_SIZE + nameLen + 3) & ~3);
      entry.hash = view.getUint32(hashAt, true);
      entry.minorHash = view.getUint32(hashAt + 4, true);
    }
    records.push(entry);
    return false;
  });
  return records;
}

/** True if the last 12 bytes of the block are a well-formed checksum tail (get_dirent_tail). */
export function hasDirBlockTail(bytes: Uint8Array, blockSize: number): boolean {
  if (bytes.length < blockSize || blockSize < DIRENT_TAIL_SIZE) return false;
  const t = blockSize - DIRENT_TAIL_SIZE;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return (
    view.getUint32(t + DIRENT_TAIL_OFFSETS.reservedZero1, true) === 0 &&
    recLenFromDisk(view.getUint16(t + DIRENT_TAIL_OFFSETS.recLen, true), blockSize) === DIRENT_TAIL_SIZE &&
    bytes[t + DIRENT_TAIL_OFFSETS.reservedZero2] === 0 &&
    bytes[t + DIRENT_TAIL_OFFSETS.reservedFt] === FT_DIR_CSUM
  );
}

/** The crc32c a leaf block's tail should hold: raw crc32c(seed) over the block up to the tail. */
export function dirBlockChecksum(bytes: Uint8Array, blockSize: number, csumSeed: number): number {
  checkBlockSize(blockSize);
  if (bytes.length < blockSize) throw new FsError('EINVAL', `directory block buffer of ${bytes.length} bytes < block size ${blockSize}`);
  return crc32cRaw(csumSeed, bytes, 0, blockSize - DIRENT_TAIL_SIZE);
}

/** True if the block has a tail and its checksum matches (ext4_dirblock_csum_verify). */
export function verifyDirBlockChecksum(bytes: Uint8Array, blockSize: number, csumSeed: number): boolean {
  if (!hasDirBlockTail(bytes, blockSize)) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stored = view.getUint32(blockSize - DIRENT_TAIL_SIZE + DIRENT_TAIL_OFFSETS.checksum, true);
  return stored === dirBlockChecksum(bytes, blockSize, csumSeed);
}

/** Write an empty checksum tail (checksum 0) into the last 12 bytes of the block. */
export function setDirBlockTail(bytes: Uint8Array, blockSize: number): void {
  checkBlockSize(blockSize);
  if (bytes.length < blockSize) throw new FsError('EINVAL', `directory block buffer of ${bytes.length} bytes < block size ${blockSize}`);
  const t = blockSize - DIRENT_TAIL_SIZE;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setUint32(t + DIRENT_TAIL_OFFSETS.reservedZero1, 0, true);
  view.setUint16(t + DIRENT_TAIL_OFFSETS.recLen, DIRENT_TAIL_SIZE, true);
  bytes[t + DIRENT_TAIL_OFFSETS.reservedZero2] = 0;
  bytes[t + DIRENT_TAIL_OFFSETS.reservedFt] = FT_DIR_CSUM;
  view.setUint32(t + DIRENT_TAIL_OFFSETS.checksum, 0, true);
}

/** Compute and store the tail checksum (the tail must already be there). */
export function setDirBlockChecksum(bytes: Uint8Array, blockSize: number, csumSeed: number): void {
  if (!hasDirBlockTail(bytes, blockSize)) throw new FsError('EINVAL', 'directory block has no checksum tail');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setUint32(blockSize - DIRENT_TAIL_SIZE + DIRENT_TAIL_OFFSETS.checksum, dirBlockChecksum(bytes, blockSize, csumSeed), true);
}

/** Bytes of a block available to records (all of it, or all but the checksum tail). */
export function dirBlockSpace(blockSize: number, hasChecksumTail: boolean): number {
  return hasChecksumTail ? blockSize - DIRENT_TAIL_SIZE : blockSize;
}

/**
 * Decode and validate a linear directory leaf block (also the first block of a
 * non-indexed directory). Each record is checked as __ext4_check_dir_entry does
 * (rec_len >= 12, a multiple of 4, >= 8 + name_len rounded up, inside the block, not
 * ending within 12 bytes of the end) plus: name_len <= 255, a live entry has a
 * non-empty name and (with `inodesCount`) an inode in range. With `hasChecksumTail`
 * the tail must be present (and with `csumSeed` its checksum must match).
 *
 * The dx_root block of an indexed directory also decodes (as '.' and a '..' covering
 * the rest) when `hasChecksumTail` is false; dx_node blocks decode as one unused record.
 * With metadata_csum those blocks have a dx tail instead: read them with htree.ts.
 */
export function decodeDirBlock(bytes: Uint8Array, options: DirBlockOptions): DirBlock {
  const { ctx, tail } = checkLeafBlock(bytes, options);
  const records = walkRegion(bytes, 0, dirBlockSpace(options.blockSize, options.hasChecksumTail), options.blockSize, options, ctx);
  return { entries: records.filter((r) => r.inode !== 0), records, tail };
}

/**
 * The live entries of a leaf block handed to `visit(name, inode, fileType)` in record
 * order, with decodeDirBlock's checks (size, tail, checksum, every record) but no entry
 * objects and nothing to keep: for listings that read each block once. The names are
 * views of one copy of the block's records (valid after the call; not to be modified),
 * and `visit` may read through the cache `bytes` came from.
 * A damaged record throws after the entries before it were visited.
 */
export function scanDirBlock(bytes: Uint8Array, options: DirBlockOptions, visit: (name: Uint8Array, inode: number, fileType: number) => void): void {
  const { ctx } = checkLeafBlock(bytes, options);
  const end = dirBlockSpace(options.blockSize, options.hasChecksumTail);
  // The scan reads its own copy: `bytes` may be a cache buffer that `visit`, reading
  // through the cache, gets recycled.
  const copy = bytes.slice(0, end);
  scanRegion(copy, 0, end, options.blockSize, options, ctx, (at, _off, inode, _recLen, nameLen, fileType) => {
    if (inode === 0) return false;
    const nameStart = at + DIRENT_OFFSETS.name;
    visit(copy.subarray(nameStart, nameStart + nameLen), inode, fileType);
    return false;
  });
}

/** A live entry found by `findInDirBlock`. */
export interface FoundDirEntry {
  readonly inode: number;
  readonly fileType: number;
  /** Byte offset of the record in the block. */
  readonly offset: number;
  readonly recLen: number;
}

/**
 * The live entry named exactly `name` in a leaf block, or null: the lookup path of
 * `decodeDirBlock` (the same validation of every record up to the match, the same tail
 * and checksum checks) without building an entry per record. Not for directories that
 * store hashes in their entries or compare names casefolded: decode those.
 */
export function findInDirBlock(bytes: Uint8Array, options: DirBlockOptions, name: Uint8Array): FoundDirEntry | null {
  const { ctx } = checkLeafBlock(bytes, options);
  let found: FoundDirEntry | null = null;
  scanRegion(bytes, 0, dirBlockSpace(options.blockSize, options.hasChecksumTail), options.blockSize, options, ctx, (at, offset, inode, recLen, nameLen, fileType) => {
    if (inode === 0 || !namedAt(bytes, at, nameLen, name)) return false;
    found = { inode, fileType, offset, recLen };
    return true;
  });
  return found;
}

/** True when the record at `at` (with `nameLen`) holds exactly `name`. */
function namedAt(bytes: Uint8Array, at: number, nameLen: number, name: Uint8Array): boolean {
  if (nameLen !== name.length) return false;
  const n = at + DIRENT_OFFSETS.name;
  for (let i = 0; i < nameLen; i++) if (bytes[n + i] !== name[i]) return false;
  return true;
}

/** Size, tail and checksum checks shared by the leaf decoders. */
function checkLeafBlock(bytes: Uint8Array, options: DirBlockOptions): { ctx: RegionContext; tail: DirTail | null } {
  const { blockSize } = options;
  checkBlockSize(blockSize);
  if (bytes.length !== blockSize) throw new FsError('EINVAL', `directory block buffer of ${bytes.length} bytes, block size ${blockSize}`);
  const ctx: RegionContext = { structure: 'directory block', block: options.block, inode: options.inode, base: 0 };
  let tail: DirTail | null = null;
  if (options.hasChecksumTail) {
    if (!hasDirBlockTail(bytes, blockSize)) {
      throw corrupted('directory block', 'no checksum tail (metadata_csum)', errorContext(ctx, blockSize - DIRENT_TAIL_SIZE));
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    tail = { checksum: view.getUint32(blockSize - DIRENT_TAIL_SIZE + DIRENT_TAIL_OFFSETS.checksum, true) };
    if (options.csumSeed !== undefined) {
      const want = dirBlockChecksum(bytes, blockSize, options.csumSeed);
      if (want !== tail.checksum) {
        throw corrupted(
          'directory block',
          `checksum mismatch (stored 0x${tail.checksum.toString(16)}, computed 0x${want.toString(16)})`,
          errorContext(ctx, blockSize - DIRENT_TAIL_SIZE),
        );
      }
    }
  }
  return { ctx, tail };
}

function optionalContext(options: { readonly block?: number; readonly inode?: number }): { block?: number; inode?: number } {
  const c: { block?: number; inode?: number } = {};
  if (options.block !== undefined) c.block = options.block;
  if (options.inode !== undefined) c.inode = options.inode;
  return c;
}

/** A record to write. */
export interface DirEntryInput {
  readonly inode: number;
  readonly name: Uint8Array;
  /** EXT4_FT_*; written only with the filetype feature. */
  readonly fileType: number;
  /** Stored hash, for directories with `hashInDirent`. */
  readonly hash?: number;
  readonly minorHash?: number;
}

export interface DirWriteOptions {
  readonly blockSize: number;
  readonly hasFileType: boolean;
  readonly hasChecksumTail: boolean;
  readonly hashInDirent?: boolean;
  /** When given (with `hasChecksumTail`), the tail checksum is filled in. */
  readonly csumSeed?: number | undefined;
}

function checkInput(entry: DirEntryInput): void {
  if (!Number.isInteger(entry.inode) || entry.inode < 1 || entry.inode > 0xffffffff) {
    throw new FsError('EINVAL', `bad inode number ${entry.inode} for a directory entry`);
  }
  if (entry.name.length < 1 || entry.name.length > NAME_MAX) {
    throw new FsError(entry.name.length > NAME_MAX ? 'ENAMETOOLONG' : 'EINVAL', `bad name length ${entry.name.length}`);
  }
  if (!Number.isInteger(entry.fileType) || entry.fileType < 0 || entry.fileType > 0xff) {
    throw new FsError('EINVAL', `bad file type ${entry.fileType}`);
  }
}

function entryRecLen(entry: DirEntryInput, hashInDirent: boolean): number {
  return dirRecLen(entry.name.length, hashInDirent && !isDotName(entry.name));
}

/** True for the names '.' and '..'. */
export function isDotName(name: Uint8Array): boolean {
  return (name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e);
}

/** Write one record at `at` with the given rec_len, zeroing the unused rest of it. */
function writeRecord(bytes: Uint8Array, at: number, recLen: number, entry: DirEntryInput | null, options: DirWriteOptions): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  bytes.fill(0, at, at + recLen);
  view.setUint16(at + DIRENT_OFFSETS.recLen, recLenToDisk(recLen, options.blockSize), true);
  if (entry === null) return;
  view.setUint32(at + DIRENT_OFFSETS.inode, entry.inode, true);
  if (options.hasFileType) {
    bytes[at + DIRENT_OFFSETS.nameLen] = entry.name.length;
    bytes[at + DIRENT_OFFSETS.fileType] = entry.fileType;
  } else {
    view.setUint16(at + DIRENT_OFFSETS.nameLen, entry.name.length, true);
  }
  bytes.set(entry.name, at + DIRENT_OFFSETS.name);
  if (options.hashInDirent === true && !isDotName(entry.name)) {
    const hashAt = at + ((DIRENT_HEADER_SIZE + entry.name.length + 3) & ~3);
    view.setUint32(hashAt, (entry.hash ?? 0) >>> 0, true);
    view.setUint32(hashAt + 4, (entry.minorHash ?? 0) >>> 0, true);
  }
}

/** Decode options for the write helpers: the layout only (no checksum check, the block may be stale). */
function layoutOnly(options: DirWriteOptions): DirBlockOptions {
  return {
    blockSize: options.blockSize,
    hasFileType: options.hasFileType,
    hasChecksumTail: options.hasChecksumTail,
    hashInDirent: options.hashInDirent === true,
  };
}

function finishBlock(bytes: Uint8Array, options: DirWriteOptions): void {
  if (!options.hasChecksumTail) return;
  setDirBlockTail(bytes, options.blockSize);
  if (options.csumSeed !== undefined) setDirBlockChecksum(bytes, options.blockSize, options.csumSeed);
}

/**
 * Build a leaf block holding `entries` in order, each record minimal except the last,
 * which extends to the end of the space (an empty list gives one unused record covering
 * it). Adds the checksum tail with `hasChecksumTail`. Throws ENOSPC if they do not fit.
 */
export function buildDirBlock(entries: readonly DirEntryInput[], options: DirWriteOptions): Uint8Array {
  checkBlockSize(options.blockSize);
  const space = dirBlockSpace(options.blockSize, options.hasChecksumTail);
  const hashInDirent = options.hashInDirent === true;
  let need = 0;
  for (const e of entries) {
    checkInput(e);
    need += entryRecLen(e, hashInDirent);
  }
  if (need > space) throw new FsError('ENOSPC', `directory entries need ${need} bytes, block has ${space}`);
  const bytes = new Uint8Array(options.blockSize);
  if (entries.length === 0) {
    writeRecord(bytes, 0, space, null, options);
  } else {
    let at = 0;
    entries.forEach((e, i) => {
      const len = i === entries.length - 1 ? space - at : entryRecLen(e, hashInDirent);
      writeRecord(bytes, at, len, e, options);
      at += len;
    });
  }
  finishBlock(bytes, options);
  return bytes;
}

/**
 * Add `entry` to a leaf block in place, as ext4_find_dest_de + ext4_insert_dentry do:
 * the first unused record big enough, or the first live record whose slack after its
 * own minimal length is big enough (split in two). Returns the new record's offset, or
 * null if no record has room. Refreshes the tail (and its checksum with `csumSeed`).
 * Does not look for an existing entry of the same name: that is the caller's job
 * (the match rule depends on casefolding).
 */
export function insertDirEntry(bytes: Uint8Array, entry: DirEntryInput, options: DirWriteOptions): number | null {
  checkInput(entry);
  const layout = layoutOnly(options);
  const { ctx } = checkLeafBlock(bytes, layout);
  const need = entryRecLen(entry, options.hashInDirent === true);
  let slot = -1;
  scanRegion(bytes, 0, dirBlockSpace(options.blockSize, options.hasChecksumTail), options.blockSize, layout, ctx, (at, _off, inode, recLen, nameLen) => {
    if (recLen - ownRecLen(bytes, at, inode, nameLen, layout) < need) return false;
    slot = at;
    return true;
  });
  return slot < 0 ? null : insertDirEntryAt(bytes, slot, entry, options);
}

/** The bytes a record needs for itself (0 for an unused one). */
function ownRecLen(bytes: Uint8Array, at: number, inode: number, nameLen: number, format: DirFormatOptions): number {
  return inode === 0 ? 0 : dirRecLen(nameLen, format.hashInDirent === true && !isDotOrDotDot(bytes, at, nameLen));
}

/**
 * Write `entry` into the record at `at` (its slack, or all of it if unused) and refresh
 * the tail: `at` is a slot `findDirSlot` returned for this block, unchanged since.
 * Returns the new record's offset.
 */
export function insertDirEntryAt(bytes: Uint8Array, at: number, entry: DirEntryInput, options: DirWriteOptions): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nameLen = options.hasFileType ? (bytes[at + DIRENT_OFFSETS.nameLen] as number) : view.getUint16(at + DIRENT_OFFSETS.nameLen, true);
  const len = recLenFromDisk(view.getUint16(at + DIRENT_OFFSETS.recLen, true), options.blockSize);
  const own = ownRecLen(bytes, at, view.getUint32(at + DIRENT_OFFSETS.inode, true), nameLen, options);
  if (own > 0) view.setUint16(at + DIRENT_OFFSETS.recLen, recLenToDisk(own, options.blockSize), true);
  writeRecord(bytes, at + own, len - own, entry, options);
  finishBlock(bytes, options);
  return at + own;
}

/** What `findDirSlot` saw in a leaf: the live entry of that name, or where a new record fits. */
export interface DirSlot {
  /** The live entry with exactly that name (then `slot` is -1). */
  readonly found: FoundDirEntry | null;
  /** Offset of the first record with room for the new record, or -1. */
  readonly slot: number;
}

/**
 * One validating pass over a leaf for an add: whether a live entry is named exactly
 * `entry.name`, and where `entry` would go (the record `insertDirEntry` would pick).
 * Checks the tail and checksum as `findInDirBlock` does. Not for directories that
 * store hashes in their entries or compare names casefolded.
 */
export function findDirSlot(bytes: Uint8Array, options: DirBlockOptions, entry: DirEntryInput): DirSlot {
  checkInput(entry);
  const { ctx } = checkLeafBlock(bytes, options);
  const need = entryRecLen(entry, options.hashInDirent === true);
  let slot = -1;
  let found: FoundDirEntry | null = null;
  scanRegion(bytes, 0, dirBlockSpace(options.blockSize, options.hasChecksumTail), options.blockSize, options, ctx, (at, offset, inode, recLen, nameLen, fileType) => {
    if (slot < 0 && recLen - ownRecLen(bytes, at, inode, nameLen, options) >= need) slot = at;
    if (inode === 0 || !namedAt(bytes, at, nameLen, entry.name)) return false;
    found = { inode, fileType, offset, recLen };
    return true;
  });
  return found === null ? { found, slot } : { found, slot: -1 };
}

/**
 * Remove the live record at `offset` in place, as ext4_generic_delete_entry does: it is
 * merged into the previous record (and wiped), or, if it is the first record, its inode
 * is cleared and everything after rec_len wiped. Throws ENOENT if no live record starts
 * at `offset`. Refreshes the tail (and its checksum with `csumSeed`).
 */
export function removeDirEntry(bytes: Uint8Array, offset: number, options: DirWriteOptions): void {
  const layout = layoutOnly(options);
  const { ctx } = checkLeafBlock(bytes, layout);
  // One pass for the record at `offset` and the one before it; nothing is built per record.
  let prevAt = -1;
  let prevLen = 0;
  let at = -1;
  let recLen = 0;
  scanRegion(bytes, 0, dirBlockSpace(options.blockSize, options.hasChecksumTail), options.blockSize, layout, ctx, (recAt, off, inode, len) => {
    if (off === offset) {
      if (inode !== 0) {
        at = recAt;
        recLen = len;
      }
      return true;
    }
    if (off > offset) return true;
    prevAt = recAt;
    prevLen = len;
    return false;
  });
  if (at < 0) throw new FsError('ENOENT', `no directory entry at offset ${offset}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (prevAt >= 0) {
    view.setUint16(prevAt + DIRENT_OFFSETS.recLen, recLenToDisk(prevLen + recLen, options.blockSize), true);
    bytes.fill(0, at, at + recLen);
  } else {
    view.setUint32(at + DIRENT_OFFSETS.inode, 0, true);
    bytes.fill(0, at + DIRENT_OFFSETS.nameLen, at + recLen);
  }
  finishBlock(bytes, options);
}

/** Options for an inline-data directory. */
export interface InlineDirOptions extends DirFormatOptions {
  /** For error context: the inode holding the directory. */
  readonly inode?: number;
}

/** Which part of an inline directory a record lives in. */
export type InlineDirRegion = 'i_block' | 'system.data';

export interface InlineDirEntry extends DirEntry {
  readonly region: InlineDirRegion;
}

export interface InlineDir {
  /** Inode number of the parent ('..'), from the first 4 bytes of i_block. */
  readonly parent: number;
  /** Live entries: those in i_block first, then those in the system.data value. */
  readonly entries: readonly InlineDirEntry[];
  /** Every record of both regions, unused ones included. */
  readonly records: readonly InlineDirEntry[];
}

/**
 * Decode an inline-data directory from the inode's 60-byte i_block and the value of
 * its "system.data" xattr (null or empty when the directory fits in i_block). Record
 * offsets are relative to each region: i_block records start at offset 4 of i_block
 * and are reported from 0 (add 4 for the i_block offset); `region` tells which.
 */
export function decodeInlineDir(iblock: Uint8Array, systemData: Uint8Array | null, options: InlineDirOptions): InlineDir {
  if (iblock.length !== INLINE_IBLOCK_SIZE) throw new FsError('EINVAL', `i_block must be ${INLINE_IBLOCK_SIZE} bytes, got ${iblock.length}`);
  const extra = optionalContext(options);
  const view = new DataView(iblock.buffer, iblock.byteOffset, iblock.byteLength);
  const parent = view.getUint32(0, true);
  if (parent === 0 || (options.inodesCount !== undefined && parent > options.inodesCount)) {
    throw corrupted('inline directory', `parent inode ${parent} out of range`, { ...extra, offset: 0 });
  }
  const first = walkRegion(iblock, INLINE_DOTDOT_SIZE, INLINE_IBLOCK_SIZE, 0, options, {
    structure: 'inline directory (i_block)',
    block: undefined,
    inode: options.inode,
    base: INLINE_DOTDOT_SIZE,
  }).map((r): InlineDirEntry => ({ ...r, region: 'i_block' }));
  const second =
    systemData === null || systemData.length === 0
      ? []
      : walkRegion(systemData, 0, systemData.length, 0, options, { structure: 'inline directory (system.data)', block: undefined, inode: options.inode, base: 0 }).map(
          (r): InlineDirEntry => ({ ...r, region: 'system.data' }),
        );
  const records = [...first, ...second];
  return { parent, entries: records.filter((r) => r.inode !== 0), records };
}
