/**
 * Inode checksums verified an inode-table block at a time, for a read-only filesystem.
 *
 * A tree walk reads every inode once, and verifying each record on its own cost a copy
 * of the record and a CRC call per inode (a twentieth of `ls -R -l`). Here, the first
 * inode read from a table block has the whole block's records checked in one call into
 * the native addon, and the records that matched are remembered (one bit per inode, per
 * group); later inodes of that block are then known good without a CRC. A record that
 * did not match is left to the caller's own check, every time (it may still be
 * acceptable: an all-zero, never-written record), so a bad record is never let through.
 *
 * Only sound while the records cannot change under us: the filesystem must be open
 * read-only (a writer rewrites records in place). Without the native addon (or with
 * one older than this code), `verified` always says false and the caller checks every
 * record as before.
 */
import { inodeChecksumsOk } from '../io/native.js';

export interface InodeCsumGeometry {
  readonly inodesCount: number;
  readonly inodesPerGroup: number;
  readonly inodeSize: number;
  readonly blockSize: number;
  /** The filesystem checksum seed (s_checksum_seed or crc32c of the UUID). */
  readonly csumSeed: number;
}

/**
 * Groups whose bits are kept at once: 1 MiB of bits with 8,192 inodes per group. Past
 * it the memo starts over (a walk of a 4 TiB filesystem would otherwise keep a bit for
 * each of its 134 million inodes: 16 MiB beside a 32 MiB cache).
 */
const MEMO_GROUPS = 1024;

export class InodeChecksumMemo {
  /** Per group, one bit per inode of the group: its record matched. */
  private good: (Uint8Array | undefined)[] = [];
  /** Groups with bits in `good`. */
  private groups = 0;
  /** Where the native call writes one flag per record of a block. */
  private readonly flags: Uint8Array;
  private disabled = false;

  constructor(private readonly geo: InodeCsumGeometry) {
    this.flags = new Uint8Array(Math.max(1, Math.floor(geo.blockSize / geo.inodeSize)));
  }

  /** Groups whose bits are held (at most MEMO_GROUPS; for tests). */
  get groupsKept(): number {
    return this.groups;
  }

  /** False once the native call proved unavailable: every record is then checked by its reader. */
  get working(): boolean {
    return !this.disabled;
  }

  /**
   * True when inode `ino`'s record (in `block`, the buffer of its inode-table block, at
   * `blockOffset`) is known to carry a matching checksum. False means "not known": the
   * caller must verify the record itself.
   */
  verified(ino: number, group: number, index: number, block: Uint8Array, blockOffset: number): boolean {
    if (this.disabled) return false;
    const ipg = this.geo.inodesPerGroup;
    let bits = this.good[group];
    if (bits !== undefined && ((bits[index >>> 3] as number) & (1 << (index & 7))) !== 0) return true;
    const size = this.geo.inodeSize;
    // The block's records that belong to this group (a last table block may hold padding).
    const first = index - Math.floor(blockOffset / size);
    const count = Math.min(Math.floor(block.length / size), ipg - first, this.geo.inodesCount - (group * ipg + first));
    if (first < 0 || count <= 0) return false;
    const matched = inodeChecksumsOk(block.subarray(0, count * size), size, this.geo.csumSeed, group * ipg + first + 1, this.flags);
    if (matched === undefined) {
      this.disabled = true;
      return false;
    }
    if (matched === 0) return false;
    if (bits === undefined) {
      if (this.groups >= MEMO_GROUPS) {
        this.good = [];
        this.groups = 0;
      }
      bits = new Uint8Array(Math.ceil(ipg / 8));
      this.good[group] = bits;
      this.groups++;
    }
    const flags = this.flags;
    for (let i = 0; i < count; i++) {
      if (flags[i] === 1) {
        const at = first + i;
        bits[at >>> 3] = (bits[at >>> 3] as number) | (1 << (at & 7));
      }
    }
    return ((bits[index >>> 3] as number) & (1 << (index & 7))) !== 0;
  }
}
