/**
 * The jbd2 journal (Documentation/filesystems/ext4/journal.rst), read side: what a
 * recovery would write. A filesystem whose journal needs recovery (needs_recovery) holds
 * committed transactions whose blocks may not have reached their places yet; the kernel
 * replays them at mount. `planReplay` finds, as the kernel's three recovery passes do
 * (scan for the end of the log, collect revokes, replay), the newest journal copy of
 * each block a replay would write, so that a reader can see the filesystem as the kernel
 * would after recovery without writing anything.
 *
 * Everything in the journal is big-endian. A log block starts with a 12-byte header:
 * magic 0xc03b3998, block type, transaction sequence. Descriptor blocks list tags (the
 * filesystem block each following log block belongs to); commit blocks end a
 * transaction; revoke blocks cancel earlier copies of the blocks they name.
 *
 * Not covered: fast commits (refused by `planReplay`), and the old v1 transaction
 * checksums (compat CHECKSUM without v2/v3: not verified, so a torn last transaction
 * the kernel would drop is replayed).
 */
import { corrupted, FsError } from '../errors.js';
import { crc32cRaw } from './crc.js';

export const JBD2_MAGIC = 0xc03b3998;
export const JBD2_BLOCK = { DESCRIPTOR: 1, COMMIT: 2, SUPERBLOCK_V1: 3, SUPERBLOCK_V2: 4, REVOKE: 5 } as const;
/** Descriptor tag flags. */
const TAG_ESCAPE = 1; // the block's first 4 bytes were the magic: restore them
const TAG_SAME_UUID = 2; // no 16-byte UUID follows the tag
const TAG_LAST = 8;
/** s_feature_compat. */
export const JBD2_COMPAT_CHECKSUM = 0x1;
/** s_feature_incompat. */
export const JBD2_INCOMPAT = { REVOKE: 0x1, BIT64: 0x2, ASYNC_COMMIT: 0x4, CSUM_V2: 0x8, CSUM_V3: 0x10, FAST_COMMIT: 0x20 } as const;
const INCOMPAT_KNOWN = 0x3f;
/** s_checksum_type for crc32c. */
const CHECKSUM_CRC32C = 4;
/** Bytes of the journal superblock the kernel reads and checksums. */
export const JOURNAL_SUPERBLOCK_SIZE = 1024;
/** Revoke records kept at most: a real log revokes far fewer; more is a hostile journal. */
export const MAX_REVOKES = 1 << 22;

export interface JournalSuperblock {
  readonly blockSize: number;
  /** Blocks in the journal (s_maxlen). */
  readonly maxLen: number;
  /** First log block (s_first). */
  readonly first: number;
  /** Sequence of the first transaction to recover (s_sequence). */
  readonly sequence: number;
  /** Log block of the first transaction; 0 when the journal needs no recovery (s_start). */
  readonly start: number;
  readonly featureCompat: number;
  readonly featureIncompat: number;
  readonly uuid: Uint8Array;
  /** crc32c of the UUID: the seed of every journal checksum (v2, v3). */
  readonly csumSeed: number;
}

const be32 = (b: Uint8Array, at: number): number => (((b[at] as number) << 24) | ((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number)) >>> 0;
const be16 = (b: Uint8Array, at: number): number => ((b[at] as number) << 8) | (b[at + 1] as number);

/** (int)(a - b) >= 0: transaction IDs compare modulo 2^32, as the kernel's tid_geq. */
const tidGeq = (a: number, b: number): boolean => ((a - b) | 0) >= 0;

/** A copy of the first `n` bytes (a Buffer's slice would be a view: zeroing a checksum field in it would change the block). */
const copyOf = (b: Uint8Array, n: number): Uint8Array => new Uint8Array(b.subarray(0, n));

const hasCsum = (j: JournalSuperblock): boolean => (j.featureIncompat & (JBD2_INCOMPAT.CSUM_V2 | JBD2_INCOMPAT.CSUM_V3)) !== 0;

/** Decode and check the journal superblock (the first block of the journal). */
export function decodeJournalSuperblock(bytes: Uint8Array, options: { readonly verifyChecksum: boolean }): JournalSuperblock {
  if (bytes.length < JOURNAL_SUPERBLOCK_SIZE) throw corrupted('journal superblock', `${bytes.length} bytes, need ${JOURNAL_SUPERBLOCK_SIZE}`);
  if (be32(bytes, 0) !== JBD2_MAGIC) throw corrupted('journal superblock', `bad magic 0x${be32(bytes, 0).toString(16)}`);
  const type = be32(bytes, 4);
  if (type !== JBD2_BLOCK.SUPERBLOCK_V1 && type !== JBD2_BLOCK.SUPERBLOCK_V2) throw corrupted('journal superblock', `block type ${type} is not a superblock`);
  const v2 = type === JBD2_BLOCK.SUPERBLOCK_V2;
  const blockSize = be32(bytes, 0x0c);
  const maxLen = be32(bytes, 0x10);
  const first = be32(bytes, 0x14);
  const start = be32(bytes, 0x1c);
  if (blockSize < 1024 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0) throw corrupted('journal superblock', `block size ${blockSize}`);
  if (first < 1 || first >= maxLen) throw corrupted('journal superblock', `first log block ${first} outside the journal's ${maxLen} blocks`);
  if (start !== 0 && (start < first || start >= maxLen)) throw corrupted('journal superblock', `log start ${start} outside blocks ${first}..${maxLen - 1}`);
  const featureCompat = v2 ? be32(bytes, 0x24) : 0;
  const featureIncompat = v2 ? be32(bytes, 0x28) : 0;
  if ((featureIncompat & ~INCOMPAT_KNOWN) !== 0) {
    throw new FsError('EOPNOTSUPP', `the journal has unknown incompatible features 0x${(featureIncompat & ~INCOMPAT_KNOWN).toString(16)}`);
  }
  if ((featureIncompat & JBD2_INCOMPAT.CSUM_V2) !== 0 && (featureIncompat & JBD2_INCOMPAT.CSUM_V3) !== 0) throw corrupted('journal superblock', 'both checksum v2 and v3 are set');
  const uuid = new Uint8Array(bytes.subarray(0x30, 0x40));
  const sb = { blockSize, maxLen, first, sequence: be32(bytes, 0x18), start, featureCompat, featureIncompat, uuid, csumSeed: crc32cRaw(0xffffffff, uuid) };
  if (hasCsum(sb) && options.verifyChecksum) {
    if (bytes[0x50] !== CHECKSUM_CRC32C) throw corrupted('journal superblock', `checksum type ${bytes[0x50]}, not crc32c`);
    const copy = copyOf(bytes, JOURNAL_SUPERBLOCK_SIZE);
    copy.fill(0, 0xfc, 0x100);
    const want = crc32cRaw(0xffffffff, copy);
    if (want !== be32(bytes, 0xfc)) throw corrupted('journal superblock', `checksum 0x${be32(bytes, 0xfc).toString(16)}, computed 0x${want.toString(16)}`);
  }
  return sb;
}

/** Where a replay would take a filesystem block from. */
export interface ReplayedBlock {
  /** Index of the log block (0 = the journal superblock) holding the block's newest copy. */
  readonly logBlock: number;
  /** The copy's first 4 bytes were the journal magic, escaped (zeroed) in the log. */
  readonly escaped: boolean;
}

export interface ReplayPlan {
  /** Filesystem block -> its newest committed, unrevoked copy in the log. */
  readonly blocks: ReadonlyMap<number, ReplayedBlock>;
  /** Transactions replayed: sequences [firstSequence, endSequence). */
  readonly firstSequence: number;
  readonly endSequence: number;
  /** Copies skipped because a later revoke cancelled them. */
  readonly revokedCopies: number;
}

export interface ReplayOptions {
  /** Verify descriptor, commit, revoke and data-block checksums (v2, v3). */
  readonly verifyChecksums: boolean;
}

/**
 * The blocks a recovery of this journal would write, read through `readLog(i)` (log block
 * i: a whole block of `jsb.blockSize` bytes that stays valid until the next call).
 * Follows the kernel's recovery (fs/jbd2/recovery.c): the log runs from s_start while
 * block headers carry the next expected sequence; a commit block whose checksum fails
 * ends it (an interrupted commit); revokes cancel copies from transactions up to
 * theirs; later copies win. A descriptor or data block whose checksum fails inside the
 * committed log is corruption (EUCLEAN), as the kernel refuses such a journal.
 */
export function planReplay(jsb: JournalSuperblock, readLog: (logBlock: number) => Uint8Array, options: ReplayOptions): ReplayPlan {
  const blocks = new Map<number, ReplayedBlock>();
  if (jsb.start === 0) return { blocks, firstSequence: jsb.sequence, endSequence: jsb.sequence, revokedCopies: 0 };
  if ((jsb.featureIncompat & JBD2_INCOMPAT.FAST_COMMIT) !== 0) {
    throw new FsError('EOPNOTSUPP', 'the journal has fast commits, which ext4ts cannot replay');
  }
  const bs = jsb.blockSize;
  const csum = hasCsum(jsb) && options.verifyChecksums;
  const v3 = (jsb.featureIncompat & JBD2_INCOMPAT.CSUM_V3) !== 0;
  const bit64 = (jsb.featureIncompat & JBD2_INCOMPAT.BIT64) !== 0;
  // journal_tag_bytes(): tag3 is 16 bytes; the older tag 8, +4 with 64bit, +2 with csum v2.
  const tagBytes = v3 ? 16 : 8 + (bit64 ? 4 : 0) + ((jsb.featureIncompat & JBD2_INCOMPAT.CSUM_V2) !== 0 ? 2 : 0);
  const tailBytes = hasCsum(jsb) ? 4 : 0;
  const last = jsb.maxLen;
  const wrap = (b: number): number => (b >= last ? b - (last - jsb.first) : b);

  const tailOk = (block: Uint8Array): boolean => {
    if (!csum) return true;
    const copy = copyOf(block, bs);
    copy.fill(0, bs - 4, bs);
    return crc32cRaw(jsb.csumSeed, copy) === be32(block, bs - 4);
  };
  const commitOk = (block: Uint8Array): boolean => {
    if (!csum) return true;
    const whole = copyOf(block, bs);
    whole.fill(0, 16, 20);
    if (crc32cRaw(jsb.csumSeed, whole) === be32(block, 16)) return true;
    // An incomplete commit block: only its header made it (the rest reads as zeros).
    const partial = new Uint8Array(bs);
    partial.set(whole.subarray(0, 60));
    return crc32cRaw(jsb.csumSeed, partial) === be32(block, 16);
  };
  /** The tags of a descriptor block, in order. */
  const tagsOf = (block: Uint8Array, sequence: number): { fsBlock: number; flags: number; checksum: number }[] => {
    const tags: { fsBlock: number; flags: number; checksum: number }[] = [];
    for (let at = 12; at + tagBytes <= bs - tailBytes; ) {
      const flags = be16(block, at + 6);
      const high = bit64 ? be32(block, at + 8) : 0;
      if (high >= 1 << 21) throw corrupted('journal', `descriptor of transaction ${sequence} names a block above 2^53`);
      tags.push({ fsBlock: high * 2 ** 32 + be32(block, at), flags, checksum: v3 ? be32(block, at + 12) : be16(block, at + 4) });
      at += tagBytes + ((flags & TAG_SAME_UUID) !== 0 ? 0 : 16);
      if ((flags & TAG_LAST) !== 0) break;
    }
    return tags;
  };

  let end: number | undefined;
  const revokes = new Map<number, number>();
  let revokedCopies = 0;
  for (const pass of ['scan', 'revoke', 'replay'] as const) {
    let next = jsb.sequence;
    let at = jsb.start;
    let visited = 0;
    let needCommitTime = false;
    let lastCommitTime = -1n;
    for (;;) {
      if (pass !== 'scan' && tidGeq(next, end as number)) break;
      if (++visited > jsb.maxLen) throw corrupted('journal', `the log runs in a circle from block ${jsb.start}`);
      const block = readLog(at);
      at = wrap(at + 1);
      if (be32(block, 0) !== JBD2_MAGIC || be32(block, 8) !== next) break;
      const type = be32(block, 4);
      if (type === JBD2_BLOCK.DESCRIPTOR) {
        if (!tailOk(block)) {
          if (pass !== 'scan') throw corrupted('journal', `descriptor block of transaction ${next} fails its checksum`);
          needCommitTime = true;
        }
        const tags = tagsOf(block, next);
        if (pass !== 'replay') {
          at = wrap(at + tags.length);
          continue;
        }
        for (const tag of tags) {
          const logBlock = at;
          at = wrap(at + 1);
          const revokedIn = revokes.get(tag.fsBlock);
          if (revokedIn !== undefined && tidGeq(revokedIn, next)) {
            revokedCopies++;
            continue;
          }
          if (csum) {
            const data = readLog(logBlock);
            const seq = new Uint8Array([next >>> 24, (next >>> 16) & 0xff, (next >>> 8) & 0xff, next & 0xff]);
            const sum = crc32cRaw(crc32cRaw(jsb.csumSeed, seq), data, 0, bs);
            if ((v3 ? sum : sum & 0xffff) !== tag.checksum) throw corrupted('journal', `copy of block ${tag.fsBlock} in transaction ${next} (log block ${logBlock}) fails its checksum`);
          }
          blocks.set(tag.fsBlock, { logBlock, escaped: (tag.flags & TAG_ESCAPE) !== 0 });
        }
        continue;
      }
      if (type === JBD2_BLOCK.COMMIT) {
        if (pass !== 'scan') {
          next = (next + 1) >>> 0;
          continue;
        }
        const commitTime = (BigInt(be32(block, 48)) << 32n) | BigInt(be32(block, 52));
        if (needCommitTime) {
          // A checksum failed in this transaction: a newer commit time means corruption
          // of the live log, an older one a stale block from an earlier lap.
          if (commitTime >= lastCommitTime) throw corrupted('journal', `transaction ${next} fails its checksums`);
          break;
        }
        if (!commitOk(block)) {
          if (commitTime < lastCommitTime) break;
          end = next;
          if ((jsb.featureIncompat & JBD2_INCOMPAT.ASYNC_COMMIT) === 0) break;
        }
        lastCommitTime = commitTime;
        next = (next + 1) >>> 0;
        continue;
      }
      if (type === JBD2_BLOCK.REVOKE) {
        const count = be32(block, 12);
        if (count > bs - tailBytes) throw corrupted('journal', `revoke block of transaction ${next} claims ${count} bytes`);
        if (pass === 'scan') {
          if (!tailOk(block)) needCommitTime = true;
          continue;
        }
        if (pass !== 'revoke') continue;
        const record = bit64 ? 8 : 4;
        for (let off = 16; off + record <= count; off += record) {
          const high = bit64 ? be32(block, off) : 0;
          const fsBlock = high * 2 ** 32 + be32(block, off + (bit64 ? 4 : 0));
          const had = revokes.get(fsBlock);
          if (had === undefined || !tidGeq(had, next)) revokes.set(fsBlock, next);
          if (revokes.size > MAX_REVOKES) throw corrupted('journal', `more than ${MAX_REVOKES} revoked blocks`);
        }
        continue;
      }
      break; // an unknown block type ends the log
    }
    if (pass === 'scan') end ??= next;
  }
  return { blocks, firstSequence: jsb.sequence, endSequence: end as number, revokedCopies };
}
