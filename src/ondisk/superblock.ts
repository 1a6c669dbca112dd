/**
 * The ext2/3/4 superblock: 1024 bytes at byte 1024 of the device (backups at the start
 * of some groups, see layout.ts). Layout: struct ext4_super_block in the kernel's
 * fs/ext4/ext4.h and e2fsprogs' lib/ext2fs/ext2_fs.h; Documentation/filesystems/ext4/super.rst.
 *
 * `decodeSuperblock` validates the geometry the rest of ext4ts relies on (block and
 * cluster size, group sizes, group count against the inode count, descriptor size, inode
 * size, first data block) and the checksum, and throws `corrupted('superblock', ...)`
 * (EUCLEAN) for anything inconsistent. The decoded object keeps a copy of the raw bytes;
 * `encodeSuperblock` writes the known fields over that copy, so reserved and unknown
 * bytes go back unchanged and encode(decode(raw)) === raw byte for byte.
 *
 * 64-bit values: `lo + hi * 2^32` (never bit operators), and an EUCLEAN error when the
 * result is above Number.MAX_SAFE_INTEGER. The block counts only use their `_hi` halves
 * when the 64bit feature is set, as the kernel does. Superblock times are unsigned:
 * `lo + hi_byte * 2^32` seconds.
 */
import { corrupted, FsError, type ErrorContext } from '../errors.js';
import { crc32cRaw } from './crc.js';
import {
  INCOMPAT_64BIT,
  INCOMPAT_CSUM_SEED,
  INCOMPAT_FLEX_BG,
  INCOMPAT_JOURNAL_DEV,
  INCOMPAT_META_BG,
  RO_COMPAT_BIGALLOC,
  RO_COMPAT_EXTRA_ISIZE,
  RO_COMPAT_GDT_CSUM,
  RO_COMPAT_METADATA_CSUM,
} from './features.js';

/** Size of the superblock in bytes. */
export const SUPERBLOCK_SIZE = 1024;
/** Byte offset of the primary superblock on the device. */
export const SUPERBLOCK_OFFSET = 1024;
/** s_magic. */
export const EXT4_MAGIC = 0xef53;

/** Byte offsets of every field of struct ext4_super_block. */
export const SB = {
  inodesCount: 0x00,
  blocksCountLo: 0x04,
  rBlocksCountLo: 0x08,
  freeBlocksCountLo: 0x0c,
  freeInodesCount: 0x10,
  firstDataBlock: 0x14,
  logBlockSize: 0x18,
  logClusterSize: 0x1c,
  blocksPerGroup: 0x20,
  clustersPerGroup: 0x24,
  inodesPerGroup: 0x28,
  mtime: 0x2c,
  wtime: 0x30,
  mntCount: 0x34,
  maxMntCount: 0x36,
  magic: 0x38,
  state: 0x3a,
  errors: 0x3c,
  minorRevLevel: 0x3e,
  lastcheck: 0x40,
  checkinterval: 0x44,
  creatorOs: 0x48,
  revLevel: 0x4c,
  defResuid: 0x50,
  defResgid: 0x52,
  firstIno: 0x54,
  inodeSize: 0x58,
  blockGroupNr: 0x5a,
  featureCompat: 0x5c,
  featureIncompat: 0x60,
  featureRoCompat: 0x64,
  uuid: 0x68,
  volumeName: 0x78,
  lastMounted: 0x88,
  algorithmUsageBitmap: 0xc8,
  preallocBlocks: 0xcc,
  preallocDirBlocks: 0xcd,
  reservedGdtBlocks: 0xce,
  journalUuid: 0xd0,
  journalInum: 0xe0,
  journalDev: 0xe4,
  lastOrphan: 0xe8,
  hashSeed: 0xec,
  defHashVersion: 0xfc,
  jnlBackupType: 0xfd,
  descSize: 0xfe,
  defaultMountOpts: 0x100,
  firstMetaBg: 0x104,
  mkfsTime: 0x108,
  jnlBlocks: 0x10c,
  blocksCountHi: 0x150,
  rBlocksCountHi: 0x154,
  freeBlocksCountHi: 0x158,
  minExtraIsize: 0x15c,
  wantExtraIsize: 0x15e,
  flags: 0x160,
  raidStride: 0x164,
  mmpUpdateInterval: 0x166,
  mmpBlock: 0x168,
  raidStripeWidth: 0x170,
  logGroupsPerFlex: 0x174,
  checksumType: 0x175,
  encryptionLevel: 0x176,
  reservedPad: 0x177,
  kbytesWritten: 0x178,
  snapshotInum: 0x180,
  snapshotId: 0x184,
  snapshotRBlocksCount: 0x188,
  snapshotList: 0x190,
  errorCount: 0x194,
  firstErrorTime: 0x198,
  firstErrorIno: 0x19c,
  firstErrorBlock: 0x1a0,
  firstErrorFunc: 0x1a8,
  firstErrorLine: 0x1c8,
  lastErrorTime: 0x1cc,
  lastErrorIno: 0x1d0,
  lastErrorLine: 0x1d4,
  lastErrorBlock: 0x1d8,
  lastErrorFunc: 0x1e0,
  mountOpts: 0x200,
  usrQuotaInum: 0x240,
  grpQuotaInum: 0x244,
  overheadClusters: 0x248,
  backupBgs: 0x24c,
  encryptAlgos: 0x254,
  encryptPwSalt: 0x258,
  lpfIno: 0x268,
  prjQuotaInum: 0x26c,
  checksumSeed: 0x270,
  wtimeHi: 0x274,
  mtimeHi: 0x275,
  mkfsTimeHi: 0x276,
  lastcheckHi: 0x277,
  firstErrorTimeHi: 0x278,
  lastErrorTimeHi: 0x279,
  firstErrorErrcode: 0x27a,
  lastErrorErrcode: 0x27b,
  encoding: 0x27c,
  encodingFlags: 0x27e,
  orphanFileInum: 0x280,
  reserved: 0x284,
  checksum: 0x3fc,
} as const;

/** Lengths of the byte-array and string fields. */
const LEN = {
  uuid: 16,
  volumeName: 16,
  lastMounted: 64,
  journalUuid: 16,
  errorFunc: 32,
  mountOpts: 64,
  encryptAlgos: 4,
  encryptPwSalt: 16,
} as const;
/** Number of u32 words in s_jnl_blocks (i_block[15], i_size_high, i_size). */
export const JNL_BLOCKS_COUNT = 17;

/** s_rev_level values. */
export const REV_GOOD_OLD = 0;
export const REV_DYNAMIC = 1;
/** Inode size and first non-reserved inode of revision 0 filesystems. */
export const GOOD_OLD_INODE_SIZE = 128;
export const GOOD_OLD_FIRST_INO = 11;

/** s_state bits. */
export const STATE_VALID = 0x0001;
export const STATE_ERROR = 0x0002;
export const STATE_ORPHAN = 0x0004;

/** s_errors values. */
export const ERRORS_CONTINUE = 1;
export const ERRORS_RO = 2;
export const ERRORS_PANIC = 3;

/** s_flags bits. */
export const FLAG_SIGNED_HASH = 0x0001;
export const FLAG_UNSIGNED_HASH = 0x0002;
export const FLAG_TEST_FILESYS = 0x0004;

/** s_def_hash_version values (the *_UNSIGNED ones are chosen from s_flags at run time). */
export const HASH_LEGACY = 0;
export const HASH_HALF_MD4 = 1;
export const HASH_TEA = 2;
export const HASH_LEGACY_UNSIGNED = 3;
export const HASH_HALF_MD4_UNSIGNED = 4;
export const HASH_TEA_UNSIGNED = 5;
export const HASH_SIPHASH = 6;

/** s_checksum_type: the only algorithm defined. */
export const CHECKSUM_TYPE_CRC32C = 1;

/** s_creator_os values. */
export const OS_LINUX = 0;
export const OS_HURD = 1;
export const OS_MASIX = 2;
export const OS_FREEBSD = 3;
export const OS_LITES = 4;

const MIN_LOG_BLOCK_SIZE = 10;
const MAX_LOG_BLOCK_SIZE = 16;
/** Largest cluster: 2^29 bytes (EXT2_MAX_CLUSTER_LOG_SIZE). */
const MAX_LOG_CLUSTER_SIZE = 29;
const MIN_DESC_SIZE = 32;
const MIN_DESC_SIZE_64BIT = 64;
const MAX_DESC_SIZE = 1024;
const TWO_32 = 0x1_0000_0000;

/** The decoded superblock: every on-disk field, plus derived geometry. */
export interface Superblock {
  // ---- on-disk fields (names follow struct ext4_super_block without the s_ prefix) ----
  readonly inodesCount: number;
  /** s_blocks_count_lo + s_blocks_count_hi * 2^32 (hi only with 64bit). */
  readonly blocksCount: number;
  /** s_r_blocks_count_lo + hi (hi only with 64bit). */
  readonly rBlocksCount: number;
  /** s_free_blocks_count_lo + hi (hi only with 64bit). */
  readonly freeBlocksCount: number;
  readonly freeInodesCount: number;
  readonly firstDataBlock: number;
  readonly logBlockSize: number;
  readonly logClusterSize: number;
  readonly blocksPerGroup: number;
  /** s_clusters_per_group (s_frags_per_group before bigalloc; equal to blocksPerGroup then). */
  readonly clustersPerGroup: number;
  readonly inodesPerGroup: number;
  /** Seconds: s_mtime + s_mtime_hi * 2^32. */
  readonly mtime: number;
  readonly wtime: number;
  readonly mntCount: number;
  /** Signed 16-bit; -1 disables the mount-count check. */
  readonly maxMntCount: number;
  readonly magic: number;
  readonly state: number;
  readonly errors: number;
  readonly minorRevLevel: number;
  readonly lastcheck: number;
  readonly checkinterval: number;
  readonly creatorOs: number;
  readonly revLevel: number;
  readonly defResuid: number;
  readonly defResgid: number;
  /** s_first_ino as stored (meaningless for revision 0; see `firstIno`). */
  readonly firstInoField: number;
  /** s_inode_size as stored (meaningless for revision 0; see `inodeSize`). */
  readonly inodeSizeField: number;
  readonly blockGroupNr: number;
  readonly featureCompat: number;
  readonly featureIncompat: number;
  readonly featureRoCompat: number;
  readonly uuid: Uint8Array;
  /** Up to the first NUL, decoded as UTF-8. */
  readonly volumeName: string;
  readonly lastMounted: string;
  readonly algorithmUsageBitmap: number;
  readonly preallocBlocks: number;
  readonly preallocDirBlocks: number;
  readonly reservedGdtBlocks: number;
  readonly journalUuid: Uint8Array;
  readonly journalInum: number;
  readonly journalDev: number;
  readonly lastOrphan: number;
  /** The four u32 words of the htree hash seed. */
  readonly hashSeed: readonly [number, number, number, number];
  readonly defHashVersion: number;
  readonly jnlBackupType: number;
  /** s_desc_size as stored (only meaningful with 64bit; see `descSize`). */
  readonly descSizeField: number;
  readonly defaultMountOpts: number;
  readonly firstMetaBg: number;
  readonly mkfsTime: number;
  /** Backup of the journal inode's i_block[0..14], i_size_high, i_size. */
  readonly jnlBlocks: readonly number[];
  readonly minExtraIsize: number;
  readonly wantExtraIsize: number;
  readonly flags: number;
  readonly raidStride: number;
  readonly mmpUpdateInterval: number;
  readonly mmpBlock: number;
  readonly raidStripeWidth: number;
  readonly logGroupsPerFlex: number;
  readonly checksumType: number;
  readonly encryptionLevel: number;
  readonly kbytesWritten: number;
  readonly snapshotInum: number;
  readonly snapshotId: number;
  readonly snapshotRBlocksCount: number;
  readonly snapshotList: number;
  readonly errorCount: number;
  readonly firstErrorTime: number;
  readonly firstErrorIno: number;
  readonly firstErrorBlock: number;
  readonly firstErrorFunc: string;
  readonly firstErrorLine: number;
  readonly lastErrorTime: number;
  readonly lastErrorIno: number;
  readonly lastErrorLine: number;
  readonly lastErrorBlock: number;
  readonly lastErrorFunc: string;
  readonly mountOpts: string;
  readonly usrQuotaInum: number;
  readonly grpQuotaInum: number;
  readonly overheadClusters: number;
  /** Groups holding the backups with sparse_super2 (0 = none). */
  readonly backupBgs: readonly [number, number];
  readonly encryptAlgos: Uint8Array;
  readonly encryptPwSalt: Uint8Array;
  readonly lpfIno: number;
  readonly prjQuotaInum: number;
  readonly checksumSeed: number;
  readonly firstErrorErrcode: number;
  readonly lastErrorErrcode: number;
  /** Filename encoding with casefold (1 = UTF-8 12.1). */
  readonly encoding: number;
  readonly encodingFlags: number;
  readonly orphanFileInum: number;
  /** s_checksum as stored. */
  readonly checksum: number;

  /** A copy of the 1024 bytes decoded; encode writes the fields over it. Do not mutate. */
  readonly raw: Uint8Array;

  // ---- derived geometry (recomputed by decode; encode ignores them) ----
  /** Bytes per block: 1024 << logBlockSize. */
  readonly blockSize: number;
  /** Bytes per allocation cluster (= blockSize without bigalloc). */
  readonly clusterSize: number;
  /** Blocks per cluster. */
  readonly clusterRatio: number;
  /** log2(clusterRatio). */
  readonly clusterBits: number;
  /** Number of block groups (0 for an external journal device). */
  readonly groupCount: number;
  /** Group descriptor size in bytes: s_desc_size with 64bit, else 32. */
  readonly descSize: number;
  readonly descPerBlock: number;
  /** Blocks holding the whole descriptor table: ceil(groupCount / descPerBlock). */
  readonly descBlocks: number;
  /** Inode record size (128 for revision 0). */
  readonly inodeSize: number;
  /** First non-reserved inode (11 for revision 0). */
  readonly firstIno: number;
  readonly inodesPerBlock: number;
  /** Blocks of inode table per group. */
  readonly inodeTableBlocks: number;
  /** Groups per flex group (1 without flex_bg). */
  readonly groupsPerFlex: number;
  /** Seed of every metadata checksum: s_checksum_seed with csum_seed, else crc32cRaw(~0, uuid). */
  readonly csumSeed: number;
  readonly has64bit: boolean;
  readonly hasMetaBg: boolean;
  readonly hasFlexBg: boolean;
  readonly hasBigalloc: boolean;
  readonly hasMetadataCsum: boolean;
  /** Group descriptors carry a checksum: metadata_csum (crc32c) or uninit_bg (crc16). */
  readonly hasGroupDescCsum: boolean;
}

export interface DecodeSuperblockOptions {
  /** Check s_checksum when metadata_csum is set (default true). */
  readonly verifyChecksum?: boolean;
  /** Device byte offset the bytes came from, for error messages (default 1024). */
  readonly offset?: number;
}

export interface EncodeSuperblockOptions {
  /**
   * Recompute s_checksum when metadata_csum is set (default true). With false the
   * object's `checksum` is written as is.
   */
  readonly updateChecksum?: boolean;
}

/* ---------------------------------------------------------------- helpers */

/** lo + hi * 2^32, or the error from `overflow()` when above 2^53 - 1. */
export function combineU64(lo: number, hi: number, overflow: () => FsError): number {
  const value = lo + hi * TWO_32;
  if (value > Number.MAX_SAFE_INTEGER) throw overflow();
  return value;
}

/** [lo, hi] halves of a non-negative safe integer; EINVAL for anything else. */
export function splitU64(value: number, what: string): [number, number] {
  if (!Number.isSafeInteger(value) || value < 0) throw new FsError('EINVAL', `${what}: ${value} is not a non-negative integer below 2^53`);
  const lo = value % TWO_32;
  return [lo, (value - lo) / TWO_32];
}

function checkUint(value: number, max: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new FsError('EINVAL', `${what}: ${value} does not fit its on-disk field (0..${max})`);
  return value;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });
const utf8Encoder = new TextEncoder();

/** Bytes up to the first NUL (or the whole field), as UTF-8. */
function readCString(bytes: Uint8Array, start: number, length: number): string {
  let end = start;
  while (end < start + length && bytes[end] !== 0) end++;
  return utf8.decode(bytes.subarray(start, end));
}

/** Writes `value` into a NUL-padded field, unless the field already decodes to it (keeps bytes after the NUL). */
function writeCString(into: Uint8Array, start: number, length: number, value: string, what: string): void {
  if (readCString(into, start, length) === value) return;
  const encoded = utf8Encoder.encode(value);
  if (encoded.length > length || encoded.includes(0)) throw new FsError('EINVAL', `${what}: "${value}" does not fit ${length} bytes without NUL`);
  into.fill(0, start, start + length);
  into.set(encoded, start);
}

function writeBytes(into: Uint8Array, start: number, length: number, value: Uint8Array, what: string): void {
  if (value.length !== length) throw new FsError('EINVAL', `${what}: expected ${length} bytes, got ${value.length}`);
  into.set(value, start);
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Stored-checksum computation: crc32c(~0, bytes[0, 0x3fc)) without final inversion. */
export function superblockChecksum(raw: Uint8Array): number {
  if (raw.length < SUPERBLOCK_SIZE) throw new RangeError(`superblock needs ${SUPERBLOCK_SIZE} bytes, got ${raw.length}`);
  return crc32cRaw(0xffffffff, raw, 0, SB.checksum);
}

/**
 * True when the bytes' s_checksum matches, or when metadata_csum is not set (no checksum
 * to check). False for a short buffer.
 */
export function verifySuperblockChecksum(raw: Uint8Array): boolean {
  if (raw.length < SUPERBLOCK_SIZE) return false;
  const view = new DataView(raw.buffer, raw.byteOffset, SUPERBLOCK_SIZE);
  if ((view.getUint32(SB.featureRoCompat, true) & RO_COMPAT_METADATA_CSUM) === 0) return true;
  return view.getUint32(SB.checksum, true) === superblockChecksum(raw);
}

/* ---------------------------------------------------------------- decode */

/**
 * `sb` with `change` applied, built field by field in the decoder's order: one object
 * shape for every superblock. A spread copy of this ~110-field object (`{ ...sb, x }`)
 * takes V8's slow path, ~5-10 us each, and the write side made two per sync (fsync,
 * syncfs, the periodic sync).
 */
export function changedSuperblock(sb: Superblock, change: Partial<Superblock>): Superblock {
  return {
    inodesCount: change.inodesCount ?? sb.inodesCount,
    blocksCount: change.blocksCount ?? sb.blocksCount,
    rBlocksCount: change.rBlocksCount ?? sb.rBlocksCount,
    freeBlocksCount: change.freeBlocksCount ?? sb.freeBlocksCount,
    freeInodesCount: change.freeInodesCount ?? sb.freeInodesCount,
    firstDataBlock: change.firstDataBlock ?? sb.firstDataBlock,
    logBlockSize: change.logBlockSize ?? sb.logBlockSize,
    logClusterSize: change.logClusterSize ?? sb.logClusterSize,
    blocksPerGroup: change.blocksPerGroup ?? sb.blocksPerGroup,
    clustersPerGroup: change.clustersPerGroup ?? sb.clustersPerGroup,
    inodesPerGroup: change.inodesPerGroup ?? sb.inodesPerGroup,
    mtime: change.mtime ?? sb.mtime,
    wtime: change.wtime ?? sb.wtime,
    mntCount: change.mntCount ?? sb.mntCount,
    maxMntCount: change.maxMntCount ?? sb.maxMntCount,
    magic: change.magic ?? sb.magic,
    state: change.state ?? sb.state,
    errors: change.errors ?? sb.errors,
    minorRevLevel: change.minorRevLevel ?? sb.minorRevLevel,
    lastcheck: change.lastcheck ?? sb.lastcheck,
    checkinterval: change.checkinterval ?? sb.checkinterval,
    creatorOs: change.creatorOs ?? sb.creatorOs,
    revLevel: change.revLevel ?? sb.revLevel,
    defResuid: change.defResuid ?? sb.defResuid,
    defResgid: change.defResgid ?? sb.defResgid,
    firstInoField: change.firstInoField ?? sb.firstInoField,
    inodeSizeField: change.inodeSizeField ?? sb.inodeSizeField,
    blockGroupNr: change.blockGroupNr ?? sb.blockGroupNr,
    featureCompat: change.featureCompat ?? sb.featureCompat,
    featureIncompat: change.featureIncompat ?? sb.featureIncompat,
    featureRoCompat: change.featureRoCompat ?? sb.featureRoCompat,
    uuid: change.uuid ?? sb.uuid,
    volumeName: change.volumeName ?? sb.volumeName,
    lastMounted: change.lastMounted ?? sb.lastMounted,
    algorithmUsageBitmap: change.algorithmUsageBitmap ?? sb.algorithmUsageBitmap,
    preallocBlocks: change.preallocBlocks ?? sb.preallocBlocks,
    preallocDirBlocks: change.preallocDirBlocks ?? sb.preallocDirBlocks,
    reservedGdtBlocks: change.reservedGdtBlocks ?? sb.reservedGdtBlocks,
    journalUuid: change.journalUuid ?? sb.journalUuid,
    journalInum: change.journalInum ?? sb.journalInum,
    journalDev: change.journalDev ?? sb.journalDev,
    lastOrphan: change.lastOrphan ?? sb.lastOrphan,
    hashSeed: change.hashSeed ?? sb.hashSeed,
    defHashVersion: change.defHashVersion ?? sb.defHashVersion,
    jnlBackupType: change.jnlBackupType ?? sb.jnlBackupType,
    descSizeField: change.descSizeField ?? sb.descSizeField,
    defaultMountOpts: change.defaultMountOpts ?? sb.defaultMountOpts,
    firstMetaBg: change.firstMetaBg ?? sb.firstMetaBg,
    mkfsTime: change.mkfsTime ?? sb.mkfsTime,
    jnlBlocks: change.jnlBlocks ?? sb.jnlBlocks,
    minExtraIsize: change.minExtraIsize ?? sb.minExtraIsize,
    wantExtraIsize: change.wantExtraIsize ?? sb.wantExtraIsize,
    flags: change.flags ?? sb.flags,
    raidStride: change.raidStride ?? sb.raidStride,
    mmpUpdateInterval: change.mmpUpdateInterval ?? sb.mmpUpdateInterval,
    mmpBlock: change.mmpBlock ?? sb.mmpBlock,
    raidStripeWidth: change.raidStripeWidth ?? sb.raidStripeWidth,
    logGroupsPerFlex: change.logGroupsPerFlex ?? sb.logGroupsPerFlex,
    checksumType: change.checksumType ?? sb.checksumType,
    encryptionLevel: change.encryptionLevel ?? sb.encryptionLevel,
    kbytesWritten: change.kbytesWritten ?? sb.kbytesWritten,
    snapshotInum: change.snapshotInum ?? sb.snapshotInum,
    snapshotId: change.snapshotId ?? sb.snapshotId,
    snapshotRBlocksCount: change.snapshotRBlocksCount ?? sb.snapshotRBlocksCount,
    snapshotList: change.snapshotList ?? sb.snapshotList,
    errorCount: change.errorCount ?? sb.errorCount,
    firstErrorTime: change.firstErrorTime ?? sb.firstErrorTime,
    firstErrorIno: change.firstErrorIno ?? sb.firstErrorIno,
    firstErrorBlock: change.firstErrorBlock ?? sb.firstErrorBlock,
    firstErrorFunc: change.firstErrorFunc ?? sb.firstErrorFunc,
    firstErrorLine: change.firstErrorLine ?? sb.firstErrorLine,
    lastErrorTime: change.lastErrorTime ?? sb.lastErrorTime,
    lastErrorIno: change.lastErrorIno ?? sb.lastErrorIno,
    lastErrorLine: change.lastErrorLine ?? sb.lastErrorLine,
    lastErrorBlock: change.lastErrorBlock ?? sb.lastErrorBlock,
    lastErrorFunc: change.lastErrorFunc ?? sb.lastErrorFunc,
    mountOpts: change.mountOpts ?? sb.mountOpts,
    usrQuotaInum: change.usrQuotaInum ?? sb.usrQuotaInum,
    grpQuotaInum: change.grpQuotaInum ?? sb.grpQuotaInum,
    overheadClusters: change.overheadClusters ?? sb.overheadClusters,
    backupBgs: change.backupBgs ?? sb.backupBgs,
    encryptAlgos: change.encryptAlgos ?? sb.encryptAlgos,
    encryptPwSalt: change.encryptPwSalt ?? sb.encryptPwSalt,
    lpfIno: change.lpfIno ?? sb.lpfIno,
    prjQuotaInum: change.prjQuotaInum ?? sb.prjQuotaInum,
    checksumSeed: change.checksumSeed ?? sb.checksumSeed,
    firstErrorErrcode: change.firstErrorErrcode ?? sb.firstErrorErrcode,
    lastErrorErrcode: change.lastErrorErrcode ?? sb.lastErrorErrcode,
    encoding: change.encoding ?? sb.encoding,
    encodingFlags: change.encodingFlags ?? sb.encodingFlags,
    orphanFileInum: change.orphanFileInum ?? sb.orphanFileInum,
    checksum: change.checksum ?? sb.checksum,
    raw: change.raw ?? sb.raw,
    blockSize: change.blockSize ?? sb.blockSize,
    clusterSize: change.clusterSize ?? sb.clusterSize,
    clusterRatio: change.clusterRatio ?? sb.clusterRatio,
    clusterBits: change.clusterBits ?? sb.clusterBits,
    groupCount: change.groupCount ?? sb.groupCount,
    descSize: change.descSize ?? sb.descSize,
    descPerBlock: change.descPerBlock ?? sb.descPerBlock,
    descBlocks: change.descBlocks ?? sb.descBlocks,
    inodeSize: change.inodeSize ?? sb.inodeSize,
    firstIno: change.firstIno ?? sb.firstIno,
    inodesPerBlock: change.inodesPerBlock ?? sb.inodesPerBlock,
    inodeTableBlocks: change.inodeTableBlocks ?? sb.inodeTableBlocks,
    groupsPerFlex: change.groupsPerFlex ?? sb.groupsPerFlex,
    csumSeed: change.csumSeed ?? sb.csumSeed,
    has64bit: change.has64bit ?? sb.has64bit,
    hasMetaBg: change.hasMetaBg ?? sb.hasMetaBg,
    hasFlexBg: change.hasFlexBg ?? sb.hasFlexBg,
    hasBigalloc: change.hasBigalloc ?? sb.hasBigalloc,
    hasMetadataCsum: change.hasMetadataCsum ?? sb.hasMetadataCsum,
    hasGroupDescCsum: change.hasGroupDescCsum ?? sb.hasGroupDescCsum,
  };
}

/**
 * Decode and validate a superblock from `bytes[0, 1024)`. Throws EUCLEAN (`corrupted`)
 * for a bad magic, checksum or geometry, EOPNOTSUPP for a revision above 1, EFBIG for a
 * filesystem whose byte size passes 2^53.
 */
export function decodeSuperblock(bytes: Uint8Array, options: DecodeSuperblockOptions = {}): Superblock {
  const where: Omit<ErrorContext, 'structure'> = { offset: options.offset ?? SUPERBLOCK_OFFSET };
  const bad = (what: string): FsError => corrupted('superblock', what, where);
  if (bytes.length < SUPERBLOCK_SIZE) throw bad(`only ${bytes.length} bytes, need ${SUPERBLOCK_SIZE}`);
  // A copy (new Uint8Array, not slice: Buffer.slice would share the caller's memory).
  const raw = new Uint8Array(bytes.subarray(0, SUPERBLOCK_SIZE));
  const v = new DataView(raw.buffer, raw.byteOffset, SUPERBLOCK_SIZE);
  const u8 = (o: number): number => v.getUint8(o);
  const u16 = (o: number): number => v.getUint16(o, true);
  const u32 = (o: number): number => v.getUint32(o, true);
  const u64 = (o: number, name: string): number => combineU64(u32(o), u32(o + 4), () => bad(`${name} is above 2^53`));
  const time = (lo: number, hi: number): number => u32(lo) + u8(hi) * TWO_32;

  const magic = u16(SB.magic);
  if (magic !== EXT4_MAGIC) throw bad(`bad magic 0x${magic.toString(16)} (expected 0xef53)`);

  const featureCompat = u32(SB.featureCompat);
  const featureIncompat = u32(SB.featureIncompat);
  const featureRoCompat = u32(SB.featureRoCompat);
  const hasMetadataCsum = (featureRoCompat & RO_COMPAT_METADATA_CSUM) !== 0;
  const checksumType = u8(SB.checksumType);
  const checksum = u32(SB.checksum);
  if (hasMetadataCsum) {
    if (checksumType !== CHECKSUM_TYPE_CRC32C) throw bad(`unknown checksum type ${checksumType} (only 1, crc32c, exists)`);
    if (options.verifyChecksum !== false) {
      const computed = superblockChecksum(raw);
      if (computed !== checksum) throw bad(`checksum mismatch: stored 0x${hex32(checksum)}, computed 0x${hex32(computed)}`);
    }
  }

  const revLevel = u32(SB.revLevel);
  if (revLevel > REV_DYNAMIC) throw new FsError('EOPNOTSUPP', `unsupported superblock revision level ${revLevel}`, { ...where, structure: 'superblock' });

  const logBlockSize = u32(SB.logBlockSize);
  if (logBlockSize > MAX_LOG_BLOCK_SIZE - MIN_LOG_BLOCK_SIZE) throw bad(`block size 2^(10+${logBlockSize}) out of range 1 KiB..64 KiB`);
  const blockSize = 1024 * 2 ** logBlockSize;
  const logClusterSize = u32(SB.logClusterSize);
  const hasBigalloc = (featureRoCompat & RO_COMPAT_BIGALLOC) !== 0;
  if (hasBigalloc) {
    if (logClusterSize < logBlockSize || logClusterSize > MAX_LOG_CLUSTER_SIZE - MIN_LOG_BLOCK_SIZE) {
      throw bad(`cluster size 2^(10+${logClusterSize}) out of range ${blockSize}..2^${MAX_LOG_CLUSTER_SIZE}`);
    }
  } else if (logClusterSize !== logBlockSize) {
    throw bad(`cluster size 2^(10+${logClusterSize}) differs from block size ${blockSize} without bigalloc`);
  }
  const clusterSize = 1024 * 2 ** logClusterSize;
  const clusterBits = logClusterSize - logBlockSize;
  const clusterRatio = 2 ** clusterBits;

  const inodeSizeField = u16(SB.inodeSize);
  const firstInoField = u32(SB.firstIno);
  const inodeSize = revLevel === REV_GOOD_OLD ? GOOD_OLD_INODE_SIZE : inodeSizeField;
  const firstIno = revLevel === REV_GOOD_OLD ? GOOD_OLD_FIRST_INO : firstInoField;
  if (inodeSize < GOOD_OLD_INODE_SIZE || inodeSize > blockSize || !isPowerOfTwo(inodeSize)) {
    throw bad(`inode size ${inodeSize} is not a power of two between ${GOOD_OLD_INODE_SIZE} and the block size ${blockSize}`);
  }
  if (firstIno < GOOD_OLD_FIRST_INO) throw bad(`first non-reserved inode ${firstIno} below ${GOOD_OLD_FIRST_INO}`);

  const has64bit = (featureIncompat & INCOMPAT_64BIT) !== 0;
  const descSizeField = u16(SB.descSize);
  const descSize = has64bit ? descSizeField : MIN_DESC_SIZE;
  if (has64bit && (descSize < MIN_DESC_SIZE_64BIT || descSize > MAX_DESC_SIZE || !isPowerOfTwo(descSize))) {
    throw bad(`group descriptor size ${descSize} is not a power of two between ${MIN_DESC_SIZE_64BIT} and ${MAX_DESC_SIZE}`);
  }
  const descPerBlock = blockSize / descSize;

  const logGroupsPerFlex = u8(SB.logGroupsPerFlex);
  if (logGroupsPerFlex > 31) throw bad(`log groups per flex ${logGroupsPerFlex} above 31`);
  const hasFlexBg = (featureIncompat & INCOMPAT_FLEX_BG) !== 0;
  const groupsPerFlex = hasFlexBg ? 2 ** logGroupsPerFlex : 1;

  const hi = (o: number): number => (has64bit ? u32(o) : 0);
  const blocksCount = combineU64(u32(SB.blocksCountLo), hi(SB.blocksCountHi), () => bad('block count is above 2^53'));
  const rBlocksCount = combineU64(u32(SB.rBlocksCountLo), hi(SB.rBlocksCountHi), () => bad('reserved block count is above 2^53'));
  const freeBlocksCount = combineU64(u32(SB.freeBlocksCountLo), hi(SB.freeBlocksCountHi), () => bad('free block count is above 2^53'));
  if (blocksCount * blockSize > Number.MAX_SAFE_INTEGER) {
    throw new FsError('EFBIG', `filesystem of ${blocksCount} blocks of ${blockSize} bytes is beyond the 2^53-byte limit of ext4ts`, { ...where, structure: 'superblock' });
  }

  const inodesCount = u32(SB.inodesCount);
  const firstDataBlock = u32(SB.firstDataBlock);
  const blocksPerGroup = u32(SB.blocksPerGroup);
  const clustersPerGroup = u32(SB.clustersPerGroup);
  const inodesPerGroup = u32(SB.inodesPerGroup);
  const reservedGdtBlocks = u16(SB.reservedGdtBlocks);
  const firstMetaBg = u32(SB.firstMetaBg);
  const hasMetaBg = (featureIncompat & INCOMPAT_META_BG) !== 0;
  const inodesPerBlock = blockSize / inodeSize;
  const inodeTableBlocks = Math.ceil((inodesPerGroup * inodeSize) / blockSize);
  const bitsPerBlock = blockSize * 8;

  let groupCount = 0;
  let descBlocks = 0;
  if ((featureIncompat & INCOMPAT_JOURNAL_DEV) === 0) {
    // An external journal device has a superblock but no groups; only a real filesystem
    // gets the geometry checks.
    if (clustersPerGroup === 0 || clustersPerGroup > bitsPerBlock) throw bad(`clusters per group ${clustersPerGroup} out of range 1..${bitsPerBlock}`);
    if (blocksPerGroup !== clustersPerGroup * clusterRatio) {
      throw bad(`blocks per group ${blocksPerGroup} is not clusters per group ${clustersPerGroup} x ${clusterRatio}`);
    }
    if (blocksPerGroup < 8) throw bad(`blocks per group ${blocksPerGroup} below 8`);
    if (inodesPerGroup < inodesPerBlock || inodesPerGroup > bitsPerBlock) {
      throw bad(`inodes per group ${inodesPerGroup} out of range ${inodesPerBlock}..${bitsPerBlock}`);
    }
    const expectedFirst = blockSize === 1024 && !hasBigalloc ? 1 : 0;
    if (firstDataBlock !== expectedFirst) throw bad(`first data block ${firstDataBlock}, expected ${expectedFirst} for ${blockSize}-byte blocks${hasBigalloc ? ' with bigalloc' : ''}`);
    if (blocksCount <= firstDataBlock) throw bad(`block count ${blocksCount} leaves no block after the first data block ${firstDataBlock}`);
    groupCount = Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup);
    if (groupCount >= TWO_32) throw bad(`${groupCount} groups, more than 2^32 - 1`);
    if (groupCount * inodesPerGroup !== inodesCount) {
      throw bad(`inode count ${inodesCount} is not ${groupCount} groups x ${inodesPerGroup} inodes per group`);
    }
    if (firstIno > inodesCount) throw bad(`first non-reserved inode ${firstIno} above the inode count ${inodesCount}`);
    descBlocks = Math.ceil(groupCount / descPerBlock);
    if (reservedGdtBlocks > blockSize / 4) throw bad(`${reservedGdtBlocks} reserved GDT blocks, more than ${blockSize / 4}`);
    if (hasMetaBg && firstMetaBg > descBlocks) throw bad(`first meta block group ${firstMetaBg} beyond the ${descBlocks} descriptor blocks`);
    // The primary superblock and the descriptor table (the part before meta_bg, plus the
    // reserved GDT blocks) must fit in group 0.
    const gdtStart = blockSize === 1024 ? 2 : 1;
    const gdtEnd = gdtStart + (hasMetaBg ? firstMetaBg : descBlocks) + reservedGdtBlocks;
    const group0End = firstDataBlock + Math.min(blocksPerGroup, blocksCount - firstDataBlock);
    if (gdtEnd > group0End) throw bad(`descriptor table (blocks ${gdtStart}..${gdtEnd - 1}) does not fit in group 0 (ending at block ${group0End - 1})`);
  }

  const minExtraIsize = u16(SB.minExtraIsize);
  const wantExtraIsize = u16(SB.wantExtraIsize);
  if (inodeSize > GOOD_OLD_INODE_SIZE && (featureRoCompat & RO_COMPAT_EXTRA_ISIZE) !== 0) {
    const max = inodeSize - GOOD_OLD_INODE_SIZE;
    if (minExtraIsize > max) throw bad(`min extra isize ${minExtraIsize} above ${max}`);
    if (wantExtraIsize > max) throw bad(`want extra isize ${wantExtraIsize} above ${max}`);
  }

  const uuid = raw.slice(SB.uuid, SB.uuid + LEN.uuid);
  const checksumSeed = u32(SB.checksumSeed);
  const csumSeed = (featureIncompat & INCOMPAT_CSUM_SEED) !== 0 ? checksumSeed : crc32cRaw(0xffffffff, uuid);

  const jnlBlocks: number[] = [];
  for (let i = 0; i < JNL_BLOCKS_COUNT; i++) jnlBlocks.push(u32(SB.jnlBlocks + 4 * i));

  return {
    inodesCount,
    blocksCount,
    rBlocksCount,
    freeBlocksCount,
    freeInodesCount: u32(SB.freeInodesCount),
    firstDataBlock,
    logBlockSize,
    logClusterSize,
    blocksPerGroup,
    clustersPerGroup,
    inodesPerGroup,
    mtime: time(SB.mtime, SB.mtimeHi),
    wtime: time(SB.wtime, SB.wtimeHi),
    mntCount: u16(SB.mntCount),
    maxMntCount: v.getInt16(SB.maxMntCount, true),
    magic,
    state: u16(SB.state),
    errors: u16(SB.errors),
    minorRevLevel: u16(SB.minorRevLevel),
    lastcheck: time(SB.lastcheck, SB.lastcheckHi),
    checkinterval: u32(SB.checkinterval),
    creatorOs: u32(SB.creatorOs),
    revLevel,
    defResuid: u16(SB.defResuid),
    defResgid: u16(SB.defResgid),
    firstInoField,
    inodeSizeField,
    blockGroupNr: u16(SB.blockGroupNr),
    featureCompat,
    featureIncompat,
    featureRoCompat,
    uuid,
    volumeName: readCString(raw, SB.volumeName, LEN.volumeName),
    lastMounted: readCString(raw, SB.lastMounted, LEN.lastMounted),
    algorithmUsageBitmap: u32(SB.algorithmUsageBitmap),
    preallocBlocks: u8(SB.preallocBlocks),
    preallocDirBlocks: u8(SB.preallocDirBlocks),
    reservedGdtBlocks,
    journalUuid: raw.slice(SB.journalUuid, SB.journalUuid + LEN.journalUuid),
    journalInum: u32(SB.journalInum),
    journalDev: u32(SB.journalDev),
    lastOrphan: u32(SB.lastOrphan),
    hashSeed: [u32(SB.hashSeed), u32(SB.hashSeed + 4), u32(SB.hashSeed + 8), u32(SB.hashSeed + 12)],
    defHashVersion: u8(SB.defHashVersion),
    jnlBackupType: u8(SB.jnlBackupType),
    descSizeField,
    defaultMountOpts: u32(SB.defaultMountOpts),
    firstMetaBg,
    mkfsTime: time(SB.mkfsTime, SB.mkfsTimeHi),
    jnlBlocks,
    minExtraIsize,
    wantExtraIsize,
    flags: u32(SB.flags),
    raidStride: u16(SB.raidStride),
    mmpUpdateInterval: u16(SB.mmpUpdateInterval),
    mmpBlock: u64(SB.mmpBlock, 'MMP block'),
    raidStripeWidth: u32(SB.raidStripeWidth),
    logGroupsPerFlex,
    checksumType,
    encryptionLevel: u8(SB.encryptionLevel),
    kbytesWritten: u64(SB.kbytesWritten, 'kbytes written'),
    snapshotInum: u32(SB.snapshotInum),
    snapshotId: u32(SB.snapshotId),
    snapshotRBlocksCount: u64(SB.snapshotRBlocksCount, 'snapshot reserved blocks'),
    snapshotList: u32(SB.snapshotList),
    errorCount: u32(SB.errorCount),
    firstErrorTime: time(SB.firstErrorTime, SB.firstErrorTimeHi),
    firstErrorIno: u32(SB.firstErrorIno),
    firstErrorBlock: u64(SB.firstErrorBlock, 'first error block'),
    firstErrorFunc: readCString(raw, SB.firstErrorFunc, LEN.errorFunc),
    firstErrorLine: u32(SB.firstErrorLine),
    lastErrorTime: time(SB.lastErrorTime, SB.lastErrorTimeHi),
    lastErrorIno: u32(SB.lastErrorIno),
    lastErrorLine: u32(SB.lastErrorLine),
    lastErrorBlock: u64(SB.lastErrorBlock, 'last error block'),
    lastErrorFunc: readCString(raw, SB.lastErrorFunc, LEN.errorFunc),
    mountOpts: readCString(raw, SB.mountOpts, LEN.mountOpts),
    usrQuotaInum: u32(SB.usrQuotaInum),
    grpQuotaInum: u32(SB.grpQuotaInum),
    overheadClusters: u32(SB.overheadClusters),
    backupBgs: [u32(SB.backupBgs), u32(SB.backupBgs + 4)],
    encryptAlgos: raw.slice(SB.encryptAlgos, SB.encryptAlgos + LEN.encryptAlgos),
    encryptPwSalt: raw.slice(SB.encryptPwSalt, SB.encryptPwSalt + LEN.encryptPwSalt),
    lpfIno: u32(SB.lpfIno),
    prjQuotaInum: u32(SB.prjQuotaInum),
    checksumSeed,
    firstErrorErrcode: u8(SB.firstErrorErrcode),
    lastErrorErrcode: u8(SB.lastErrorErrcode),
    encoding: u16(SB.encoding),
    encodingFlags: u16(SB.encodingFlags),
    orphanFileInum: u32(SB.orphanFileInum),
    checksum,
    raw,
    blockSize,
    clusterSize,
    clusterRatio,
    clusterBits,
    groupCount,
    descSize,
    descPerBlock,
    descBlocks,
    inodeSize,
    firstIno,
    inodesPerBlock,
    inodeTableBlocks,
    groupsPerFlex,
    csumSeed,
    has64bit,
    hasMetaBg,
    hasFlexBg,
    hasBigalloc,
    hasMetadataCsum,
    hasGroupDescCsum: hasMetadataCsum || (featureRoCompat & RO_COMPAT_GDT_CSUM) !== 0,
  };
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/* ---------------------------------------------------------------- encode */

/**
 * Write `sb` as 1024 bytes into `into[0, 1024)` (a new buffer by default) and return it:
 * `sb.raw` first, then every on-disk field over it. The `_hi` halves of the block counts
 * are written only with 64bit (a value above 2^32 - 1 without 64bit is EINVAL), so bytes
 * the decoder ignored stay as they were. Derived fields are not read. The checksum is
 * recomputed when metadata_csum is set, unless `updateChecksum` is false.
 */
export function encodeSuperblock(sb: Superblock, into: Uint8Array = new Uint8Array(SUPERBLOCK_SIZE), options: EncodeSuperblockOptions = {}): Uint8Array {
  if (into.length < SUPERBLOCK_SIZE) throw new RangeError(`superblock needs ${SUPERBLOCK_SIZE} bytes, got ${into.length}`);
  if (sb.raw.length !== SUPERBLOCK_SIZE) throw new RangeError(`superblock raw copy has ${sb.raw.length} bytes`);
  into.set(sb.raw, 0);
  const v = new DataView(into.buffer, into.byteOffset, SUPERBLOCK_SIZE);
  const u8 = (o: number, x: number, what: string): void => v.setUint8(o, checkUint(x, 0xff, what));
  const u16 = (o: number, x: number, what: string): void => v.setUint16(o, checkUint(x, 0xffff, what), true);
  const u32 = (o: number, x: number, what: string): void => v.setUint32(o, checkUint(x, 0xffffffff, what), true);
  const u64 = (o: number, x: number, what: string): void => {
    const [lo, hi] = splitU64(x, what);
    v.setUint32(o, lo, true);
    v.setUint32(o + 4, hi, true);
  };
  const has64bit = (sb.featureIncompat & INCOMPAT_64BIT) !== 0;
  const count = (loOff: number, hiOff: number, x: number, what: string): void => {
    const [lo, hi] = splitU64(x, what);
    v.setUint32(loOff, lo, true);
    if (has64bit) v.setUint32(hiOff, hi, true);
    else if (hi !== 0) throw new FsError('EINVAL', `${what}: ${x} needs the 64bit feature`);
  };
  const time = (loOff: number, hiOff: number, x: number, what: string): void => {
    const [lo, hi] = splitU64(x, what);
    v.setUint32(loOff, lo, true);
    v.setUint8(hiOff, checkUint(hi, 0xff, `${what} (high byte)`));
  };

  u32(SB.inodesCount, sb.inodesCount, 'inodes count');
  count(SB.blocksCountLo, SB.blocksCountHi, sb.blocksCount, 'blocks count');
  count(SB.rBlocksCountLo, SB.rBlocksCountHi, sb.rBlocksCount, 'reserved blocks count');
  count(SB.freeBlocksCountLo, SB.freeBlocksCountHi, sb.freeBlocksCount, 'free blocks count');
  u32(SB.freeInodesCount, sb.freeInodesCount, 'free inodes count');
  u32(SB.firstDataBlock, sb.firstDataBlock, 'first data block');
  u32(SB.logBlockSize, sb.logBlockSize, 'log block size');
  u32(SB.logClusterSize, sb.logClusterSize, 'log cluster size');
  u32(SB.blocksPerGroup, sb.blocksPerGroup, 'blocks per group');
  u32(SB.clustersPerGroup, sb.clustersPerGroup, 'clusters per group');
  u32(SB.inodesPerGroup, sb.inodesPerGroup, 'inodes per group');
  time(SB.mtime, SB.mtimeHi, sb.mtime, 'mount time');
  time(SB.wtime, SB.wtimeHi, sb.wtime, 'write time');
  u16(SB.mntCount, sb.mntCount, 'mount count');
  if (!Number.isInteger(sb.maxMntCount) || sb.maxMntCount < -0x8000 || sb.maxMntCount > 0x7fff) throw new FsError('EINVAL', `max mount count ${sb.maxMntCount} is not a signed 16-bit value`);
  v.setInt16(SB.maxMntCount, sb.maxMntCount, true);
  u16(SB.magic, sb.magic, 'magic');
  u16(SB.state, sb.state, 'state');
  u16(SB.errors, sb.errors, 'errors behaviour');
  u16(SB.minorRevLevel, sb.minorRevLevel, 'minor revision level');
  time(SB.lastcheck, SB.lastcheckHi, sb.lastcheck, 'last check time');
  u32(SB.checkinterval, sb.checkinterval, 'check interval');
  u32(SB.creatorOs, sb.creatorOs, 'creator OS');
  u32(SB.revLevel, sb.revLevel, 'revision level');
  u16(SB.defResuid, sb.defResuid, 'default reserved uid');
  u16(SB.defResgid, sb.defResgid, 'default reserved gid');
  u32(SB.firstIno, sb.firstInoField, 'first inode');
  u16(SB.inodeSize, sb.inodeSizeField, 'inode size');
  u16(SB.blockGroupNr, sb.blockGroupNr, 'block group number');
  u32(SB.featureCompat, sb.featureCompat, 'compat features');
  u32(SB.featureIncompat, sb.featureIncompat, 'incompat features');
  u32(SB.featureRoCompat, sb.featureRoCompat, 'ro_compat features');
  writeBytes(into, SB.uuid, LEN.uuid, sb.uuid, 'uuid');
  writeCString(into, SB.volumeName, LEN.volumeName, sb.volumeName, 'volume name');
  writeCString(into, SB.lastMounted, LEN.lastMounted, sb.lastMounted, 'last mounted');
  u32(SB.algorithmUsageBitmap, sb.algorithmUsageBitmap, 'algorithm usage bitmap');
  u8(SB.preallocBlocks, sb.preallocBlocks, 'prealloc blocks');
  u8(SB.preallocDirBlocks, sb.preallocDirBlocks, 'prealloc dir blocks');
  u16(SB.reservedGdtBlocks, sb.reservedGdtBlocks, 'reserved GDT blocks');
  writeBytes(into, SB.journalUuid, LEN.journalUuid, sb.journalUuid, 'journal uuid');
  u32(SB.journalInum, sb.journalInum, 'journal inode');
  u32(SB.journalDev, sb.journalDev, 'journal device');
  u32(SB.lastOrphan, sb.lastOrphan, 'last orphan');
  sb.hashSeed.forEach((word, i) => u32(SB.hashSeed + 4 * i, word, 'hash seed'));
  u8(SB.defHashVersion, sb.defHashVersion, 'default hash version');
  u8(SB.jnlBackupType, sb.jnlBackupType, 'journal backup type');
  u16(SB.descSize, sb.descSizeField, 'descriptor size');
  u32(SB.defaultMountOpts, sb.defaultMountOpts, 'default mount options');
  u32(SB.firstMetaBg, sb.firstMetaBg, 'first meta bg');
  time(SB.mkfsTime, SB.mkfsTimeHi, sb.mkfsTime, 'mkfs time');
  if (sb.jnlBlocks.length !== JNL_BLOCKS_COUNT) throw new FsError('EINVAL', `journal blocks backup needs ${JNL_BLOCKS_COUNT} words, got ${sb.jnlBlocks.length}`);
  sb.jnlBlocks.forEach((word, i) => u32(SB.jnlBlocks + 4 * i, word, 'journal blocks backup'));
  u16(SB.minExtraIsize, sb.minExtraIsize, 'min extra isize');
  u16(SB.wantExtraIsize, sb.wantExtraIsize, 'want extra isize');
  u32(SB.flags, sb.flags, 'flags');
  u16(SB.raidStride, sb.raidStride, 'RAID stride');
  u16(SB.mmpUpdateInterval, sb.mmpUpdateInterval, 'MMP update interval');
  u64(SB.mmpBlock, sb.mmpBlock, 'MMP block');
  u32(SB.raidStripeWidth, sb.raidStripeWidth, 'RAID stripe width');
  u8(SB.logGroupsPerFlex, sb.logGroupsPerFlex, 'log groups per flex');
  u8(SB.checksumType, sb.checksumType, 'checksum type');
  u8(SB.encryptionLevel, sb.encryptionLevel, 'encryption level');
  u64(SB.kbytesWritten, sb.kbytesWritten, 'kbytes written');
  u32(SB.snapshotInum, sb.snapshotInum, 'snapshot inode');
  u32(SB.snapshotId, sb.snapshotId, 'snapshot id');
  u64(SB.snapshotRBlocksCount, sb.snapshotRBlocksCount, 'snapshot reserved blocks');
  u32(SB.snapshotList, sb.snapshotList, 'snapshot list');
  u32(SB.errorCount, sb.errorCount, 'error count');
  time(SB.firstErrorTime, SB.firstErrorTimeHi, sb.firstErrorTime, 'first error time');
  u32(SB.firstErrorIno, sb.firstErrorIno, 'first error inode');
  u64(SB.firstErrorBlock, sb.firstErrorBlock, 'first error block');
  writeCString(into, SB.firstErrorFunc, LEN.errorFunc, sb.firstErrorFunc, 'first error function');
  u32(SB.firstErrorLine, sb.firstErrorLine, 'first error line');
  time(SB.lastErrorTime, SB.lastErrorTimeHi, sb.lastErrorTime, 'last error time');
  u32(SB.lastErrorIno, sb.lastErrorIno, 'last error inode');
  u32(SB.lastErrorLine, sb.lastErrorLine, 'last error line');
  u64(SB.lastErrorBlock, sb.lastErrorBlock, 'last error block');
  writeCString(into, SB.lastErrorFunc, LEN.errorFunc, sb.lastErrorFunc, 'last error function');
  writeCString(into, SB.mountOpts, LEN.mountOpts, sb.mountOpts, 'mount options');
  u32(SB.usrQuotaInum, sb.usrQuotaInum, 'user quota inode');
  u32(SB.grpQuotaInum, sb.grpQuotaInum, 'group quota inode');
  u32(SB.overheadClusters, sb.overheadClusters, 'overhead clusters');
  u32(SB.backupBgs, sb.backupBgs[0], 'backup group 0');
  u32(SB.backupBgs + 4, sb.backupBgs[1], 'backup group 1');
  writeBytes(into, SB.encryptAlgos, LEN.encryptAlgos, sb.encryptAlgos, 'encryption algorithms');
  writeBytes(into, SB.encryptPwSalt, LEN.encryptPwSalt, sb.encryptPwSalt, 'encryption salt');
  u32(SB.lpfIno, sb.lpfIno, 'lost+found inode');
  u32(SB.prjQuotaInum, sb.prjQuotaInum, 'project quota inode');
  u32(SB.checksumSeed, sb.checksumSeed, 'checksum seed');
  u8(SB.firstErrorErrcode, sb.firstErrorErrcode, 'first error code');
  u8(SB.lastErrorErrcode, sb.lastErrorErrcode, 'last error code');
  u16(SB.encoding, sb.encoding, 'encoding');
  u16(SB.encodingFlags, sb.encodingFlags, 'encoding flags');
  u32(SB.orphanFileInum, sb.orphanFileInum, 'orphan file inode');
  const recompute = options.updateChecksum !== false && (sb.featureRoCompat & RO_COMPAT_METADATA_CSUM) !== 0;
  u32(SB.checksum, recompute ? superblockChecksum(into) : sb.checksum, 'checksum');
  return into;
}

/* ---------------------------------------------------------------- feature helpers */

/** True when every bit of `mask` is set in s_feature_compat. */
export function hasCompatFeature(sb: Pick<Superblock, 'featureCompat'>, mask: number): boolean {
  return (sb.featureCompat & mask) >>> 0 === mask >>> 0;
}

/** True when every bit of `mask` is set in s_feature_incompat. */
export function hasIncompatFeature(sb: Pick<Superblock, 'featureIncompat'>, mask: number): boolean {
  return (sb.featureIncompat & mask) >>> 0 === mask >>> 0;
}

/** True when every bit of `mask` is set in s_feature_ro_compat. */
export function hasRoCompatFeature(sb: Pick<Superblock, 'featureRoCompat'>, mask: number): boolean {
  return (sb.featureRoCompat & mask) >>> 0 === mask >>> 0;
}

/** The 16-byte UUID in its usual text form (8-4-4-4-12 lowercase hex). */
export function formatUuid(uuid: Uint8Array): string {
  const hex = Array.from(uuid, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
