/**
 * The multi-mount protection block (incompat feature `mmp`): one filesystem block,
 * s_mmp_block, whose first 1024 bytes hold struct mmp_struct
 * (Documentation/filesystems/ext4/mmp.rst; the kernel's fs/ext4/ext4.h, e2fsprogs'
 * lib/ext2fs/ext2_fs.h):
 *
 * | offset | size | field              |                                                  |
 * |--------|------|--------------------|--------------------------------------------------|
 * | 0x00   | 4    | mmp_magic          | 0x004D4D50 ("PMM\0" on disk)                     |
 * | 0x04   | 4    | mmp_seq            | sequence: CLEAN, FSCK, or a live counter <= MAX |
 * | 0x08   | 8    | mmp_time           | seconds since the epoch of the last update      |
 * | 0x10   | 64   | mmp_nodename       | host that last wrote it (not NUL-terminated when full) |
 * | 0x50   | 32   | mmp_bdevname       | its device name (likewise)                       |
 * | 0x70   | 2    | mmp_check_interval | seconds an opener must watch the block           |
 * | 0x72   | 2    | mmp_pad1           |                                                  |
 * | 0x74   | 904  | mmp_pad2[226]      |                                                  |
 * | 0x3fc  | 4    | mmp_checksum       | metadata_csum: crc32c(csumSeed, bytes [0, 0x3fc)) |
 *
 * The checksum is only defined (and only checked) with metadata_csum; without it the
 * field is left as it is. Encoding keeps every byte outside the named fields (the
 * padding, and the rest of the block past 1024 bytes) as it was in the buffer.
 *
 * mmp_time is a 64-bit value read as lo + hi * 2^32; above 2^53 it cannot be a time and
 * the block is reported corrupted.
 */
import { corrupted, FsError } from '../errors.js';
import { readU16, readU32, writeU16, writeU32 } from './bytes.js';
import { crc32cRaw } from './crc.js';
import type { Superblock } from './superblock.js';

/** Byte offsets of the mmp_struct fields. */
export const MMP = {
  magic: 0x00,
  seq: 0x04,
  timeLo: 0x08,
  timeHi: 0x0c,
  nodename: 0x10,
  bdevname: 0x50,
  checkInterval: 0x70,
  pad1: 0x72,
  pad2: 0x74,
  checksum: 0x3fc,
} as const;

/** Size of struct mmp_struct; the MMP block is at least this big (block size >= 1024). */
export const MMP_STRUCT_SIZE = 1024;
export const MMP_NODENAME_SIZE = 64;
export const MMP_BDEVNAME_SIZE = 32;

/** mmp_magic. */
export const EXT4_MMP_MAGIC = 0x004d4d50;
/** mmp_seq of a filesystem nobody has open read-write (clean unmount, fresh mkfs). */
export const EXT4_MMP_SEQ_CLEAN = 0xff4d4d50;
/** mmp_seq while e2fsck (or another e2fsprogs tool) has the filesystem open read-write. */
export const EXT4_MMP_SEQ_FSCK = 0xe24d4d50;
/** The largest sequence number a live heartbeat uses; anything above, other than CLEAN and FSCK, is invalid. */
export const EXT4_MMP_SEQ_MAX = 0xe24d4d4f;

/** Default s_mmp_update_interval (seconds) when the superblock says 0. */
export const EXT4_MMP_UPDATE_INTERVAL = 5;
/** Largest s_mmp_update_interval e2fsprogs accepts (seconds). */
export const EXT4_MMP_MAX_UPDATE_INTERVAL = 300;
/** Bounds of mmp_check_interval (seconds). */
export const EXT4_MMP_MIN_CHECK_INTERVAL = 5;
export const EXT4_MMP_MAX_CHECK_INTERVAL = 300;
/** mmp_check_interval is this many times the time one heartbeat took. */
export const EXT4_MMP_CHECK_MULT = 2;

/** The fields of an MMP block that ext4ts reads and writes. */
export interface MmpFields {
  /** mmp_seq. */
  readonly seq: number;
  /** mmp_time, seconds since the epoch. */
  readonly time: number;
  /** mmp_nodename, up to its first NUL (UTF-8, invalid bytes replaced). */
  readonly nodename: string;
  /** mmp_bdevname, up to its first NUL. */
  readonly bdevname: string;
  /** mmp_check_interval, seconds. */
  readonly checkInterval: number;
}

/** A decoded MMP block. */
export interface Mmp extends MmpFields {
  readonly magic: number;
  /** mmp_checksum as stored (meaningful only with metadata_csum). */
  readonly checksum: number;
}

/** What the checksum depends on (a `Superblock` fits). */
export type MmpChecksumContext = Pick<Superblock, 'hasMetadataCsum' | 'csumSeed'>;

export interface DecodeMmpOptions {
  /** Verify mmp_checksum when the filesystem has metadata_csum (default true). */
  readonly verifyChecksum?: boolean;
  /** Block number, for error messages. */
  readonly block?: number;
}

const STRUCTURE = 'MMP block';
const utf8 = new TextDecoder('utf-8', { fatal: false });
const utf8Encoder = new TextEncoder();

/** crc32c of the struct up to the checksum field, seeded with the filesystem's csum seed. */
export function mmpChecksum(bytes: Uint8Array, csumSeed: number): number {
  return crc32cRaw(csumSeed, bytes, 0, MMP.checksum);
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

/** A NUL-padded char array as a string (all `size` bytes when there is no NUL). */
function readName(bytes: Uint8Array, offset: number, size: number): string {
  let end = offset;
  while (end < offset + size && bytes[end] !== 0) end++;
  return utf8.decode(bytes.subarray(offset, end));
}

/** Store `name` NUL-padded into `size` bytes; longer names are cut at `size` bytes (strncpy). */
function writeName(into: Uint8Array, offset: number, size: number, name: string): void {
  const encoded = utf8Encoder.encode(name);
  into.fill(0, offset, offset + size);
  into.set(encoded.subarray(0, size), offset);
}

/**
 * Decode the MMP block. Throws EUCLEAN (corrupted MMP block) when it is shorter than
 * 1024 bytes, the magic is wrong, mmp_time is past 2^53, or (metadata_csum) the
 * checksum does not match.
 */
export function decodeMmp(bytes: Uint8Array, sb: MmpChecksumContext, options: DecodeMmpOptions = {}): Mmp {
  const where = options.block === undefined ? {} : { block: options.block };
  if (bytes.length < MMP_STRUCT_SIZE) throw corrupted(STRUCTURE, `${bytes.length} bytes, need ${MMP_STRUCT_SIZE}`, where);
  const magic = readU32(bytes, MMP.magic);
  if (magic !== EXT4_MMP_MAGIC) throw corrupted(STRUCTURE, `bad magic ${hex(magic)} (expected ${hex(EXT4_MMP_MAGIC)})`, where);
  const checksum = readU32(bytes, MMP.checksum);
  if (sb.hasMetadataCsum && (options.verifyChecksum ?? true)) {
    const computed = mmpChecksum(bytes, sb.csumSeed);
    if (computed !== checksum) throw corrupted(STRUCTURE, `checksum mismatch: stored ${hex(checksum)}, computed ${hex(computed)}`, where);
  }
  const timeHi = readU32(bytes, MMP.timeHi);
  if (timeHi >= 0x20_0000) throw corrupted(STRUCTURE, `mmp_time above 2^53 (high word ${hex(timeHi)})`, where);
  return {
    magic,
    seq: readU32(bytes, MMP.seq),
    time: readU32(bytes, MMP.timeLo) + timeHi * 0x1_0000_0000,
    nodename: readName(bytes, MMP.nodename, MMP_NODENAME_SIZE),
    bdevname: readName(bytes, MMP.bdevname, MMP_BDEVNAME_SIZE),
    checkInterval: readU16(bytes, MMP.checkInterval),
    checksum,
  };
}

function checkField(ok: boolean, what: string, value: number): void {
  if (!ok) throw new FsError('EINVAL', `MMP block: ${what} ${value} out of range`, { structure: STRUCTURE });
}

/**
 * Encode `mmp` into `into` (default: a zeroed 1024-byte buffer) and return `into`:
 * magic, the fields, then, with metadata_csum, the checksum. Bytes outside the fields
 * are kept. Names longer than their field are cut (64 / 32 bytes, no NUL then).
 */
export function encodeMmp(mmp: MmpFields, sb: MmpChecksumContext, into: Uint8Array = new Uint8Array(MMP_STRUCT_SIZE)): Uint8Array {
  if (into.length < MMP_STRUCT_SIZE) throw new FsError('EINVAL', `MMP block: buffer of ${into.length} bytes, need ${MMP_STRUCT_SIZE}`, { structure: STRUCTURE });
  checkField(Number.isInteger(mmp.seq) && mmp.seq >= 0 && mmp.seq <= 0xffffffff, 'mmp_seq', mmp.seq);
  checkField(Number.isSafeInteger(mmp.time) && mmp.time >= 0, 'mmp_time', mmp.time);
  checkField(Number.isInteger(mmp.checkInterval) && mmp.checkInterval >= 0 && mmp.checkInterval <= 0xffff, 'mmp_check_interval', mmp.checkInterval);
  writeU32(into, MMP.magic, EXT4_MMP_MAGIC);
  writeU32(into, MMP.seq, mmp.seq);
  writeU32(into, MMP.timeLo, mmp.time % 0x1_0000_0000);
  writeU32(into, MMP.timeHi, Math.floor(mmp.time / 0x1_0000_0000));
  writeName(into, MMP.nodename, MMP_NODENAME_SIZE, mmp.nodename);
  writeName(into, MMP.bdevname, MMP_BDEVNAME_SIZE, mmp.bdevname);
  writeU16(into, MMP.checkInterval, mmp.checkInterval);
  if (sb.hasMetadataCsum) writeU32(into, MMP.checksum, mmpChecksum(into, sb.csumSeed));
  return into;
}

/** A sequence number in words, for messages: "clean", "fsck", or the number in hex. */
export function describeMmpSeq(seq: number): string {
  if (seq === EXT4_MMP_SEQ_CLEAN) return 'clean';
  if (seq === EXT4_MMP_SEQ_FSCK) return 'fsck';
  return hex(seq);
}
