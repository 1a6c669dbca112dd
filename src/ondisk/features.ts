/**
 * Feature support as data: every compat / incompat / ro_compat bit of the ext4
 * superblock, with what ext4ts does when it is set.
 *
 * The three words (Documentation/filesystems/ext4/super.rst):
 * - compat: a driver that does not know the feature may still read and write;
 * - incompat: a driver that does not know the feature must not touch the filesystem;
 * - ro_compat: a driver that does not know the feature may read but must not write.
 *
 * Names are e2fsprogs' (lib/e2p/feature.c), so `featureNames()` prints what
 * `dumpe2fs -h` prints on its "Filesystem features" line: compat, then incompat, then
 * ro_compat bits, each in increasing bit order; a bit without a name prints as
 * `FEATURE_C<bit>` / `FEATURE_I<bit>` / `FEATURE_R<bit>`. Kernel-style names
 * (`recover`, `gdt_csum`, `csum_seed`, `largedir`, `readonly`, `exclude_bitmap`) are
 * accepted as aliases by `featureByName`.
 *
 * Policy for unknown bits: unknown incompat refuses (EOPNOTSUPP), unknown ro_compat
 * makes the filesystem read-only, unknown compat is allowed (as the kernel does) and
 * reported.
 */
import { FsError } from '../errors.js';

/** Which of the three superblock feature words a bit lives in. */
export type FeatureWord = 'compat' | 'incompat' | 'ro_compat';

/** What ext4ts does for reading when the feature is set. */
export type ReadSupport =
  /** Read fully. */
  | 'supported'
  /** Read, with the limitation given in `note` (e.g. encrypted names and contents stay ciphertext). */
  | 'limited'
  /** Refuse to open the filesystem (EOPNOTSUPP). */
  | 'refuse';

/** What ext4ts does for writing when the feature is set. */
export type WriteSupport =
  /** Writes keep the feature's on-disk structures consistent. */
  | 'supported'
  /** Open read-only: writing would leave the feature's structures inconsistent. */
  | 'read-only';

export interface FeatureInfo {
  readonly word: FeatureWord;
  /** Bit number within the word (0..31). */
  readonly bit: number;
  /** Mask within the word (`2 ** bit`, as an unsigned 32-bit number). */
  readonly mask: number;
  /** e2fsprogs' name (what `mke2fs -O` and `dumpe2fs` use). */
  readonly name: string;
  /** Other spellings: e2fsprogs aliases and the kernel's macro names. */
  readonly aliases: readonly string[];
  readonly read: ReadSupport;
  readonly write: WriteSupport;
  /** Why, for anything not plainly supported; what the feature is, otherwise. */
  readonly note: string;
  /** False for the few bits e2fsprogs knows but prints as `FEATURE_<C|I|R><bit>`. */
  readonly namedByE2fsprogs: boolean;
}

/* ---- bit masks, named like the kernel's EXT4_FEATURE_* macros ---- */

export const COMPAT_DIR_PREALLOC = 0x0001;
export const COMPAT_IMAGIC_INODES = 0x0002;
export const COMPAT_HAS_JOURNAL = 0x0004;
export const COMPAT_EXT_ATTR = 0x0008;
export const COMPAT_RESIZE_INODE = 0x0010;
export const COMPAT_DIR_INDEX = 0x0020;
export const COMPAT_LAZY_BG = 0x0040;
export const COMPAT_EXCLUDE_INODE = 0x0080;
export const COMPAT_EXCLUDE_BITMAP = 0x0100;
export const COMPAT_SPARSE_SUPER2 = 0x0200;
export const COMPAT_FAST_COMMIT = 0x0400;
export const COMPAT_STABLE_INODES = 0x0800;
export const COMPAT_ORPHAN_FILE = 0x1000;

export const INCOMPAT_COMPRESSION = 0x0001;
export const INCOMPAT_FILETYPE = 0x0002;
export const INCOMPAT_RECOVER = 0x0004;
export const INCOMPAT_JOURNAL_DEV = 0x0008;
export const INCOMPAT_META_BG = 0x0010;
export const INCOMPAT_EXTENTS = 0x0040;
export const INCOMPAT_64BIT = 0x0080;
export const INCOMPAT_MMP = 0x0100;
export const INCOMPAT_FLEX_BG = 0x0200;
export const INCOMPAT_EA_INODE = 0x0400;
export const INCOMPAT_DIRDATA = 0x1000;
export const INCOMPAT_CSUM_SEED = 0x2000;
export const INCOMPAT_LARGEDIR = 0x4000;
export const INCOMPAT_INLINE_DATA = 0x8000;
export const INCOMPAT_ENCRYPT = 0x10000;
export const INCOMPAT_CASEFOLD = 0x20000;

export const RO_COMPAT_SPARSE_SUPER = 0x0001;
export const RO_COMPAT_LARGE_FILE = 0x0002;
export const RO_COMPAT_HUGE_FILE = 0x0008;
export const RO_COMPAT_GDT_CSUM = 0x0010;
export const RO_COMPAT_DIR_NLINK = 0x0020;
export const RO_COMPAT_EXTRA_ISIZE = 0x0040;
export const RO_COMPAT_HAS_SNAPSHOT = 0x0080;
export const RO_COMPAT_QUOTA = 0x0100;
export const RO_COMPAT_BIGALLOC = 0x0200;
export const RO_COMPAT_METADATA_CSUM = 0x0400;
export const RO_COMPAT_REPLICA = 0x0800;
export const RO_COMPAT_READONLY = 0x1000;
export const RO_COMPAT_PROJECT = 0x2000;
export const RO_COMPAT_SHARED_BLOCKS = 0x4000;
export const RO_COMPAT_VERITY = 0x8000;
export const RO_COMPAT_ORPHAN_PRESENT = 0x10000;

/** s_encoding value for UTF-8 with Unicode 12.1 casefolding, the only one the kernel knows. */
export const ENCODING_UTF8_12_1 = 1;
/** s_encoding_flags bit: reject names that are not valid UTF-8. */
export const ENCODING_FLAG_STRICT = 0x0001;
/** All s_encoding_flags bits the kernel knows. */
export const ENCODING_FLAGS_KNOWN = ENCODING_FLAG_STRICT;

function feature(
  word: FeatureWord,
  mask: number,
  name: string,
  read: ReadSupport,
  write: WriteSupport,
  note: string,
  aliases: readonly string[] = [],
  namedByE2fsprogs = true,
): FeatureInfo {
  return { word, bit: Math.log2(mask), mask, name, aliases, read, write, note, namedByE2fsprogs };
}

/** Every feature bit known to the kernel or to e2fsprogs, and what ext4ts does with it. */
export const FEATURES: readonly FeatureInfo[] = [
  // ---- compat ----
  feature('compat', COMPAT_DIR_PREALLOC, 'dir_prealloc', 'supported', 'supported', 'directory preallocation hint (s_prealloc_dir_blocks); ignored'),
  feature('compat', COMPAT_IMAGIC_INODES, 'imagic_inodes', 'supported', 'supported', 'AFS magic inodes; no on-disk structure to maintain'),
  feature('compat', COMPAT_HAS_JOURNAL, 'has_journal', 'supported', 'supported', 'jbd2 journal in an inode (s_journal_inum) or on a device (s_journal_uuid/dev)'),
  feature('compat', COMPAT_EXT_ATTR, 'ext_attr', 'supported', 'supported', 'extended attributes in inodes and xattr blocks'),
  feature('compat', COMPAT_RESIZE_INODE, 'resize_inode', 'supported', 'supported', 'reserved GDT blocks owned by inode 7; never allocated to files'),
  feature('compat', COMPAT_DIR_INDEX, 'dir_index', 'supported', 'supported', 'htree-indexed directories'),
  feature('compat', COMPAT_LAZY_BG, 'lazy_bg', 'supported', 'read-only', 'obsolete e2fsprogs-only uninitialized groups without checksums; the kernel never knew it'),
  feature('compat', COMPAT_EXCLUDE_INODE, 'exclude_inode', 'supported', 'read-only', 'legacy next3 snapshot exclude inode (e2fsprogs prints FEATURE_C7)', [], false),
  feature('compat', COMPAT_EXCLUDE_BITMAP, 'snapshot_bitmap', 'supported', 'read-only', 'next3 snapshot exclude bitmaps (bg_exclude_bitmap); not maintained by ext4ts', ['exclude_bitmap']),
  feature('compat', COMPAT_SPARSE_SUPER2, 'sparse_super2', 'supported', 'supported', 'at most two backup superblocks, in groups s_backup_bgs[0..1]'),
  feature('compat', COMPAT_FAST_COMMIT, 'fast_commit', 'supported', 'supported', 'fast-commit area after the journal; only matters for journal replay'),
  feature('compat', COMPAT_STABLE_INODES, 'stable_inodes', 'supported', 'supported', 'inode numbers must never change; ext4ts never renumbers'),
  feature('compat', COMPAT_ORPHAN_FILE, 'orphan_file', 'supported', 'supported', 'orphan inodes tracked in a file (s_orphan_file_inum)'),
  // ---- incompat ----
  feature('incompat', INCOMPAT_COMPRESSION, 'compression', 'refuse', 'read-only', 'e2compr compression was never merged; compressed data cannot be read'),
  feature('incompat', INCOMPAT_FILETYPE, 'filetype', 'supported', 'supported', 'file type in directory entries'),
  feature('incompat', INCOMPAT_RECOVER, 'needs_recovery', 'limited', 'read-only', 'the journal needs recovery: reads see its committed transactions replayed (in memory; nothing is written), writes are refused until the kernel or e2fsck replays it', ['recover']),
  feature('incompat', INCOMPAT_JOURNAL_DEV, 'journal_dev', 'refuse', 'read-only', 'this is an external journal device, not a filesystem'),
  feature('incompat', INCOMPAT_META_BG, 'meta_bg', 'supported', 'supported', 'group descriptors spread over meta block groups'),
  feature('incompat', INCOMPAT_EXTENTS, 'extent', 'supported', 'supported', 'extent-mapped files', ['extents']),
  feature('incompat', INCOMPAT_64BIT, '64bit', 'supported', 'supported', 'block numbers above 2^32 and 64-byte group descriptors'),
  feature('incompat', INCOMPAT_MMP, 'mmp', 'supported', 'supported', 'multi-mount protection: a read-write open runs the MMP start protocol and heartbeat, and marks the MMP block clean on close (src/fs/mmp.ts)'),
  feature('incompat', INCOMPAT_FLEX_BG, 'flex_bg', 'supported', 'supported', 'bitmaps and inode tables may live outside their group'),
  feature('incompat', INCOMPAT_EA_INODE, 'ea_inode', 'supported', 'supported', 'xattr values too large for the inode and its block in inodes of their own (EA inodes, reference-counted, shared)'),
  feature('incompat', INCOMPAT_DIRDATA, 'dirdata', 'refuse', 'read-only', 'Lustre data in directory entries; not upstream, entries cannot be parsed safely'),
  feature('incompat', INCOMPAT_CSUM_SEED, 'metadata_csum_seed', 'supported', 'supported', 'checksum seed stored in s_checksum_seed', ['csum_seed']),
  feature('incompat', INCOMPAT_LARGEDIR, 'large_dir', 'supported', 'supported', 'directories above 2 GiB and 3-level htrees', ['largedir']),
  feature('incompat', INCOMPAT_INLINE_DATA, 'inline_data', 'supported', 'supported', 'small files and directories stored in the inode'),
  feature('incompat', INCOMPAT_ENCRYPT, 'encrypt', 'limited', 'read-only', 'fscrypt without keys: encrypted directories list the names a kernel shows without the key, symlinks their no-key targets; file contents are refused (ENOKEY)'),
  feature('incompat', INCOMPAT_CASEFOLD, 'casefold', 'supported', 'supported', 'case-insensitive directories (UTF-8 12.1, folded as the kernel folds; src/ondisk/casefold.ts)', ['fname_encoding']),
  // ---- ro_compat ----
  feature('ro_compat', RO_COMPAT_SPARSE_SUPER, 'sparse_super', 'supported', 'supported', 'backup superblocks only in groups 0, 1 and powers of 3, 5, 7'),
  feature('ro_compat', RO_COMPAT_LARGE_FILE, 'large_file', 'supported', 'supported', 'files above 2 GiB'),
  feature('ro_compat', RO_COMPAT_HUGE_FILE, 'huge_file', 'supported', 'supported', 'i_blocks in filesystem blocks (EXT4_HUGE_FILE_FL) and 48-bit i_blocks'),
  feature('ro_compat', RO_COMPAT_GDT_CSUM, 'uninit_bg', 'supported', 'supported', 'crc16 group descriptor checksums and uninitialized groups', ['uninit_groups', 'gdt_csum']),
  feature('ro_compat', RO_COMPAT_DIR_NLINK, 'dir_nlink', 'supported', 'supported', 'directories with more than 65000 subdirectories have i_links_count 1'),
  feature('ro_compat', RO_COMPAT_EXTRA_ISIZE, 'extra_isize', 'supported', 'supported', 'inodes reserve s_min_extra_isize bytes beyond 128'),
  feature('ro_compat', RO_COMPAT_HAS_SNAPSHOT, 'has_snapshot', 'supported', 'read-only', 'next3 snapshots; not upstream (e2fsprogs prints FEATURE_R7)', [], false),
  feature('ro_compat', RO_COMPAT_QUOTA, 'quota', 'supported', 'read-only', 'quota files in hidden inodes; ext4ts does not update usage, so it never writes'),
  feature('ro_compat', RO_COMPAT_BIGALLOC, 'bigalloc', 'supported', 'supported', 'allocation in clusters of several blocks: a logical cluster of a file lives in one physical cluster, tree and xattr blocks take a cluster each'),
  feature('ro_compat', RO_COMPAT_METADATA_CSUM, 'metadata_csum', 'supported', 'supported', 'crc32c checksums on all metadata'),
  feature('ro_compat', RO_COMPAT_REPLICA, 'replica', 'supported', 'read-only', 'replica feature, never upstream'),
  feature('ro_compat', RO_COMPAT_READONLY, 'read-only', 'supported', 'read-only', 'the filesystem is marked read-only', ['readonly']),
  feature('ro_compat', RO_COMPAT_PROJECT, 'project', 'supported', 'read-only', 'project quota (i_projid and a quota inode); ext4ts does not update usage, so it never writes'),
  feature('ro_compat', RO_COMPAT_SHARED_BLOCKS, 'shared_blocks', 'supported', 'read-only', 'blocks shared between files (deduplicated images); writing would need copy-on-write'),
  feature('ro_compat', RO_COMPAT_VERITY, 'verity', 'supported', 'supported', 'fs-verity files: contents readable, Merkle trees not checked; verity files themselves stay immutable'),
  feature('ro_compat', RO_COMPAT_ORPHAN_PRESENT, 'orphan_present', 'supported', 'read-only', 'the orphan file holds inodes not yet cleaned up; run e2fsck (or mount with the kernel) before writing'),
];

const WORD_LETTER: Readonly<Record<FeatureWord, string>> = { compat: 'C', incompat: 'I', ro_compat: 'R' };
const WORD_ORDER: readonly FeatureWord[] = ['compat', 'incompat', 'ro_compat'];

const BY_BIT = new Map<string, FeatureInfo>(FEATURES.map((f) => [`${f.word}:${f.bit}`, f]));
const BY_NAME = new Map<string, FeatureInfo>();
for (const f of FEATURES) {
  BY_NAME.set(f.name.toLowerCase(), f);
  for (const alias of f.aliases) BY_NAME.set(alias.toLowerCase(), f);
}

/** The feature words of a superblock (a `Superblock` fits this shape). */
export interface FeatureWords {
  readonly featureCompat: number;
  readonly featureIncompat: number;
  readonly featureRoCompat: number;
}

/** The superblock fields `checkFeatures` looks at besides the three words. */
export interface FeatureContext extends FeatureWords {
  readonly encoding: number;
  readonly encodingFlags: number;
}

/** The known feature at `bit` of `word`, if any. */
export function featureAt(word: FeatureWord, bit: number): FeatureInfo | undefined {
  return BY_BIT.get(`${word}:${bit}`);
}

/** A feature by name: e2fsprogs names and aliases, kernel-style names, or `FEATURE_<C|I|R><bit>`. */
export function featureByName(name: string): { readonly word: FeatureWord; readonly bit: number; readonly mask: number; readonly info: FeatureInfo | undefined } | undefined {
  const known = BY_NAME.get(name.toLowerCase());
  if (known !== undefined) return { word: known.word, bit: known.bit, mask: known.mask, info: known };
  const m = /^FEATURE_([CIR])(\d{1,2})$/i.exec(name);
  if (m === null || m[1] === undefined || m[2] === undefined) return undefined;
  const bit = Number(m[2]);
  if (bit > 31) return undefined;
  const letter = m[1].toUpperCase();
  const word: FeatureWord = letter === 'C' ? 'compat' : letter === 'I' ? 'incompat' : 'ro_compat';
  return { word, bit, mask: 2 ** bit, info: featureAt(word, bit) };
}

/** The name ext4ts (and e2fsprogs) gives to a bit: the feature's name or `FEATURE_<C|I|R><bit>`. */
export function featureName(word: FeatureWord, bit: number): string {
  const known = featureAt(word, bit);
  if (known?.namedByE2fsprogs === true) return known.name;
  return `FEATURE_${WORD_LETTER[word]}${bit}`;
}

function wordValue(words: FeatureWords, word: FeatureWord): number {
  switch (word) {
    case 'compat':
      return words.featureCompat;
    case 'incompat':
      return words.featureIncompat;
    case 'ro_compat':
      return words.featureRoCompat;
  }
}

/** The bits set in a 32-bit word, lowest first. */
function setBits(value: number): number[] {
  const bits: number[] = [];
  const v = value >>> 0;
  for (let bit = 0; bit < 32; bit++) if ((v >>> bit) & 1) bits.push(bit);
  return bits;
}

/**
 * Names of every set feature bit, in `dumpe2fs` order (compat, incompat, ro_compat; low
 * bits first). Bits e2fsprogs has no name for come out as `FEATURE_<C|I|R><bit>`, like
 * e2fsprogs prints them.
 */
export function featureNames(words: FeatureWords): string[] {
  const names: string[] = [];
  for (const word of WORD_ORDER) for (const bit of setBits(wordValue(words, word))) names.push(featureName(word, bit));
  return names;
}

/** True when the named feature (any name `featureByName` accepts) is set. */
export function hasFeatureNamed(words: FeatureWords, name: string): boolean {
  const f = featureByName(name);
  if (f === undefined) throw new RangeError(`unknown feature name: ${name}`);
  return ((wordValue(words, f.word) >>> f.bit) & 1) === 1;
}

/** The outcome of checking a superblock's features against what ext4ts supports. */
export interface FeatureCheck {
  readonly canRead: boolean;
  readonly canWrite: boolean;
  /** Human-readable reasons for every limitation found (empty when fully supported). */
  readonly reasons: readonly string[];
  /** Names of the set bits ext4ts does not know. */
  readonly unknown: readonly string[];
}

interface Assessment {
  readonly canRead: boolean;
  readonly canWrite: boolean;
  /** Reasons that matter to any access (refusals, limited reading, notes). */
  readonly readReasons: readonly string[];
  /** Reasons that only matter to writing. */
  readonly writeReasons: readonly string[];
  readonly unknown: readonly string[];
}

function assess(sb: FeatureContext): Assessment {
  let canRead = true;
  let canWrite = true;
  const readReasons: string[] = [];
  const writeReasons: string[] = [];
  const unknown: string[] = [];
  for (const word of WORD_ORDER) {
    for (const bit of setBits(wordValue(sb, word))) {
      const info = featureAt(word, bit);
      const name = featureName(word, bit);
      if (info === undefined) {
        unknown.push(name);
        if (word === 'incompat') {
          canRead = false;
          canWrite = false;
          readReasons.push(`unsupported incompat feature: ${name}`);
        } else if (word === 'ro_compat') {
          canWrite = false;
          writeReasons.push(`unknown ro_compat feature ${name}: read-only`);
        } else {
          readReasons.push(`unknown compat feature ${name}: ignored`);
        }
        continue;
      }
      if (info.read === 'refuse') {
        canRead = false;
        canWrite = false;
        readReasons.push(`unsupported ${info.word} feature: ${info.name} (${info.note})`);
        continue;
      }
      if (info.read === 'limited') readReasons.push(`${info.name}: ${info.note}`);
      if (info.write === 'read-only') {
        canWrite = false;
        // (A limited feature's note is among the read reasons already.)
        writeReasons.push(info.read === 'limited' ? `${info.name}: read-only` : `${info.name}: read-only (${info.note})`);
      }
    }
  }
  if ((sb.featureIncompat & INCOMPAT_CASEFOLD) !== 0) {
    if (sb.encoding !== ENCODING_UTF8_12_1) {
      canRead = false;
      canWrite = false;
      readReasons.push(`unsupported casefold encoding ${sb.encoding} (the only one defined is 1, UTF-8 12.1)`);
    } else if ((sb.encodingFlags & ~ENCODING_FLAGS_KNOWN & 0xffff) !== 0) {
      canRead = false;
      canWrite = false;
      readReasons.push(`unsupported casefold encoding flags 0x${sb.encodingFlags.toString(16)}`);
    }
  }
  if ((sb.featureRoCompat & RO_COMPAT_METADATA_CSUM) !== 0 && (sb.featureRoCompat & RO_COMPAT_GDT_CSUM) !== 0) {
    readReasons.push('metadata_csum and uninit_bg are both set: metadata_csum takes precedence (e2fsck clears uninit_bg)');
  }
  return { canRead, canWrite, readReasons, writeReasons, unknown };
}

/**
 * What ext4ts can do with a filesystem with these features, without throwing. Reading is
 * refused for unknown incompat bits, the features whose `read` is 'refuse' (compression,
 * journal_dev, dirdata) and a casefold encoding other than UTF-8 12.1; writing is refused
 * (read-only) for unknown ro_compat bits and the features whose `write` is 'read-only'.
 */
export function assessFeatures(sb: FeatureContext): FeatureCheck {
  const a = assess(sb);
  return { canRead: a.canRead, canWrite: a.canWrite, reasons: [...a.readReasons, ...a.writeReasons], unknown: a.unknown };
}

/**
 * Check a filesystem's features before opening it. Throws
 * `FsError('EOPNOTSUPP', 'unsupported incompat feature: X')` (or the refusing feature's
 * reason) when ext4ts cannot read it; otherwise returns whether it can also be written.
 * `reasons` lists the limitations that matter to the access asked for: reading ones
 * always (e.g. a journal that needs recovery), writing ones only when `wantWrite`.
 */
export function checkFeatures(sb: FeatureContext, wantWrite: boolean): FeatureCheck {
  const a = assess(sb);
  if (!a.canRead) {
    const first = a.readReasons.find((r) => r.startsWith('unsupported')) ?? 'unsupported feature';
    throw new FsError('EOPNOTSUPP', first, { structure: 'superblock' });
  }
  const reasons = wantWrite ? [...a.readReasons, ...a.writeReasons] : [...a.readReasons];
  return { canRead: true, canWrite: a.canWrite, reasons, unknown: a.unknown };
}
