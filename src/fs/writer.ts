/**
 * The write side of `Ext4`: everything that changes the filesystem.
 *
 * `Ext4` owns the read paths and the caches; it hands this module an `FsCore` (its
 * internals, as closures) and delegates each mutating call here. Every operation
 * leaves the filesystem consistent before it returns (the FUSE worker serves one
 * request at a time), with all metadata changed through the CachingChannel and
 * written back in batches: at `sync`, on eviction, periodically and at close.
 *
 * Pieces:
 * - `Allocator` (alloc.ts): bitmaps, group descriptors, free counts;
 * - `ExtentTree` / `IndirectTree` (extent-tree.ts, indirect-tree.ts): block maps;
 * - dir-write.ts: directory entries in linear and htree directories.
 * Inline-data files and directories are converted to block-mapped ones the first time
 * they change (what the kernel does once they outgrow the inode).
 *
 * Superblock: a read-write open clears the clean flag and bumps the mount count at
 * once (a crash leaves "not clean", so e2fsck runs); `close` writes the free counts,
 * s_kbytes_written and the clean state back after everything else reached the device.
 */
import { randomInt } from '../lazy-crypto.js';
import { FsError, corrupted, quoteText } from '../errors.js';
import type { CachingChannel } from '../cache/caching-channel.js';
import { clockCoarse } from '../io/native.js';
import { changedSuperblock, encodeSuperblock, STATE_VALID, SUPERBLOCK_OFFSET, type Superblock } from '../ondisk/superblock.js';
import { RO_COMPAT_DIR_NLINK, RO_COMPAT_HUGE_FILE, RO_COMPAT_LARGE_FILE, INCOMPAT_CASEFOLD, INCOMPAT_EA_INODE, INCOMPAT_EXTENTS, INCOMPAT_FILETYPE, INCOMPAT_LARGEDIR, COMPAT_DIR_INDEX } from '../ondisk/features.js';
import {
  blankInode,
  decodeInode,
  encodeInode,
  INODE_OFFSETS,
  CASEFOLD_FL,
  encodeInodeBlocks,
  inodeBlocksBytes,
  inodeCsumSeed,
  inodeFileAcl,
  setInodeChecksum,
  isDir,
  isReg,
  isSymlink,
  isChr,
  isBlk,
  APPEND_FL,
  EA_INODE_FL,
  EXTENTS_FL,
  HUGE_FILE_FL,
  IMMUTABLE_FL,
  INDEX_FL,
  INLINE_DATA_FL,
  S_IFDIR,
  S_IFMT,
  S_IFREG,
  RecordSlab,
  S_ISGID,
  type Inode,
} from '../ondisk/inode.js';
import { inodeLocation } from '../ondisk/layout.js';
import { readU16 } from '../ondisk/bytes.js';
import { clampTime, type Timestamp } from '../ondisk/time.js';
import {
  decodeXattrBlock,
  encodeInodeXattrs,
  encodeXattrBlock,
  compareXattrEntries,
  splitXattrName,
  xattrEaInodeEntryHash,
  xattrEaInodeValueHash,
  XATTR_INDEX,
  type XattrEntry,
} from '../ondisk/xattr.js';
import { isInlineDataXattr } from '../ondisk/inline-data.js';
import type { DxNode, DxRoot } from '../ondisk/htree.js';
import { decodeVfsAcl, encodeExt4Acl, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_USER_OBJ, type AclEntry } from '../ondisk/acl.js';
import { fileTypeFromMode, hasSlashOrNul, NAME_MAX } from '../ondisk/dirent.js';
import { Allocator } from './alloc.js';
import { ExtentTree, type TreeStore, type Mapping } from './extent-tree.js';
import { IndirectTree } from './indirect-tree.js';
import { addEntry, removeEntry, replaceEntry, isEmptyDir, newDirBlock, type DirStore, type DirContext } from './dir-write.js';
import type { BlockRun } from './blockmap.js';

/** A decoded inode being changed: the same fields, writable. */
export type MutableInode = { -readonly [K in keyof Inode]: Inode[K] };

/** What the writer needs from `Ext4`. */
export interface FsCore {
  readonly sb: Superblock;
  readonly channel: CachingChannel;
  setSuperblock(sb: Superblock): void;
  readInode(ino: number): Inode;
  liveInode(ino: number): Inode;
  /** Name -> inode in a directory (ENOENT when absent). */
  lookup(dirIno: number, name: Uint8Array): number;
  /** Name -> inode in a directory, undefined when absent (no error built). */
  find(dirIno: number, name: Uint8Array): number | undefined;
  /** Keep a directory's cached name index in step with an added entry. */
  dirIndexAdd(dirIno: number, name: Uint8Array, ino: number): void;
  /** Keep a directory's cached name index in step with a removed entry. */
  dirIndexRemove(dirIno: number, name: Uint8Array): void;
  /** The reader's block mapping (decoded tree nodes cached and verified once). */
  mapRun(ino: number, inode: Inode, lblk: number, max: number): BlockRun;
  /** A symlink (not inline data) keeps its target in i_block, as the reader decides it. */
  isFastSymlink(inode: Inode): boolean;
  inodeXattrs(ino: number, inode: Inode): readonly XattrEntry[];
  blockXattrs(ino: number, inode: Inode): readonly XattrEntry[];
  /** Content of an inline-data file. */
  inlineData(ino: number, inode: Inode): Uint8Array;
  /** Entries of an inline-data directory (without '.' and '..') and its parent. */
  inlineDirEntries(ino: number, inode: Inode): { readonly parent: number; readonly entries: readonly { readonly inode: number; readonly name: Uint8Array; readonly fileType: number }[] };
  /** Replace the cached decoded inode. */
  storeInode(ino: number, inode: Inode): void;
  /** Forget derived caches of a directory (its name index). */
  invalidateDir(ino: number): void;
  /** Forget cached statfs numbers. */
  invalidateStatfs(): void;
  /** Forget decoded copies (extent nodes, directory leaves, htree blocks) of blocks just written. */
  invalidateBlocks(block: number, count: number): void;
  /** The cached decode of htree root block `physical`, or `decode()`'s result, cached. */
  dxRoot(physical: number, decode: () => DxRoot): DxRoot;
  /** The same for an htree node block. */
  dxNode(physical: number, decode: () => DxNode): DxNode;
}

/** Attribute changes for `setattr` (what FUSE SETATTR carries). */
export interface SetAttr {
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly size?: number;
  readonly atime?: Timestamp | 'now';
  readonly mtime?: Timestamp | 'now';
  readonly ctime?: Timestamp;
}

/** Who is creating a file: the owner of new inodes. */
export interface Creator {
  readonly uid: number;
  readonly gid: number;
}

export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;

export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;

/** Link count above which a directory's i_links_count is 1 (dir_nlink). */
const LINK_MAX = 65000;
/** Largest logical block + 1 (32-bit logical block numbers). */
const LOGICAL_END = 2 ** 32;
/** Blocks allocated per request when writing file data. */
const ALLOC_CHUNK = 2048;
/** Largest xattr value the VFS passes. */
const XATTR_SIZE_MAX = 65536;
/** Flags a new inode inherits from its directory (the kernel's EXT4_FL_INHERITED, those we honour). */
const INHERITED_FLAGS = 0x0000_0008 /* SYNC */ | 0x0000_0040 /* NODUMP */ | 0x0000_0080 /* NOATIME */ | 0x0001_0000 /* DIRSYNC */ | 0x2000_0000 /* PROJINHERIT */ | CASEFOLD_FL;
const DIR_ONLY_FLAGS = 0x0001_0000 | 0x0002_0000 | CASEFOLD_FL; /* DIRSYNC | TOPDIR | CASEFOLD */

const coarse = new Float64Array(2);

/**
 * Now, for the times an operation stamps: the kernel's clock for inode times
 * (CLOCK_REALTIME_COARSE, as current_time() reads it) when the addon is there. Through
 * the mount with the writeback cache the kernel stamps a written file itself and sends
 * the times in a SETATTR at close unless they equal what is there: a file created and
 * written within one tick then costs no SETATTR.
 */
function now(): Timestamp {
  if (clockCoarse(coarse)) return { seconds: coarse[0]!, nanoseconds: coarse[1]! };
  const ms = Date.now();
  const ns = process.hrtime.bigint() % 1_000_000n;
  return { seconds: Math.floor(ms / 1000), nanoseconds: (ms % 1000) * 1_000_000 + Number(ns) };
}

/**
 * Records of inodes being changed: they live for one operation (putInode stores a copy,
 * never these), so their slabs die young.
 */
const changing = new RecordSlab();

function cloneInode(inode: Inode): MutableInode {
  return withRaw(inode, changing.copy(inode.raw, 0, inode.raw.length), inode.checksumLo, inode.checksumHi);
}

/**
 * `inode` over the record `raw` (i_block a view into it), with these checksum fields.
 * Field for field in decodeInode's order, so inodes keep one object shape (a spread
 * copy is several times slower, and the inode cache's lookups would see two shapes).
 */
function withRaw(inode: Inode, raw: Uint8Array, checksumLo: number, checksumHi: number | undefined): MutableInode {
  return {
    mode: inode.mode,
    uid: inode.uid,
    gid: inode.gid,
    size: inode.size,
    linksCount: inode.linksCount,
    blocksLo: inode.blocksLo,
    blocksHi: inode.blocksHi,
    flags: inode.flags,
    block: raw.subarray(INODE_OFFSETS.block, INODE_OFFSETS.block + 60),
    generation: inode.generation,
    fileAclLo: inode.fileAclLo,
    fileAclHi: inode.fileAclHi,
    atime: inode.atime,
    ctime: inode.ctime,
    mtime: inode.mtime,
    crtime: inode.crtime,
    dtime: inode.dtime,
    extraIsize: inode.extraIsize,
    checksumLo,
    checksumHi,
    versionLo: inode.versionLo,
    versionHi: inode.versionHi,
    projid: inode.projid,
    raw,
  };
}

/** Runs of file data at least this many blocks long are written straight to the device. */
const DIRECT_DATA_BLOCKS = 16;

/** Bound of Writer.trustedLeaves (a set of block numbers; past it, it starts over). */
const TRUSTED_LEAVES = 8192;

/** i_extra_isize that covers every field of the extra part (up to i_projid). */
const FULL_EXTRA_ISIZE = 0x20;

/**
 * What decodeInode would return for `bytes`, the encoding of `inode` (checksum set),
 * without decoding it again, or undefined when that is not certain. It is when the
 * record holds every extra field and `inode` has them all: encodeInode range-checks
 * every field, and timestamps with their _extra words round-trip exactly. Only the
 * checksum changed; it is read back from the bytes.
 */
function storedInode(inode: MutableInode, bytes: Uint8Array): Inode | undefined {
  if (inode.extraIsize < FULL_EXTRA_ISIZE || inode.crtime === undefined || inode.checksumHi === undefined || inode.versionHi === undefined || inode.projid === undefined) {
    return undefined;
  }
  return withRaw(inode, bytes, readU16(bytes, INODE_OFFSETS.checksumLo), readU16(bytes, INODE_OFFSETS.checksumHi));
}

export class Writer {
  readonly alloc: Allocator;
  private readonly bs: number;
  /** Blocks per cluster (bigalloc; 1 otherwise). */
  private readonly ratio: number;
  private readonly hugeFile: boolean;
  private readonly extents: boolean;
  private readonly hasFileType: boolean;
  /** The casefold feature: directories with CASEFOLD_FL fold names. */
  private readonly casefold: boolean;
  /** The ea_inode feature: xattr values too large for the inode and its block go to EA inodes. */
  private readonly eaInodes: boolean;
  private kbytesWritten = 0;
  private readonly wasClean: boolean;
  private closed = false;

  constructor(
    private readonly core: FsCore,
    loadDesc: (g: number) => import('../ondisk/group-desc.js').GroupDesc,
  ) {
    const sb = core.sb;
    this.alloc = new Allocator(sb, core.channel, loadDesc);
    this.alloc.onFree = (start, count) => {
      const trusted = this.trustedLeaves;
      if (trusted.size === 0) return;
      if (count < trusted.size) for (let b = start; b < start + count; b++) trusted.delete(b);
      else for (const b of trusted) if (b >= start && b < start + count) trusted.delete(b);
    };
    this.bs = sb.blockSize;
    this.ratio = sb.clusterRatio;
    this.casefold = (sb.featureIncompat & INCOMPAT_CASEFOLD) !== 0;
    this.hugeFile = (sb.featureRoCompat & RO_COMPAT_HUGE_FILE) !== 0;
    this.extents = (sb.featureIncompat & INCOMPAT_EXTENTS) !== 0;
    this.hasFileType = (sb.featureIncompat & INCOMPAT_FILETYPE) !== 0;
    this.eaInodes = (sb.featureIncompat & INCOMPAT_EA_INODE) !== 0;
    this.wasClean = (sb.state & STATE_VALID) !== 0;
  }

  private get sb(): Superblock {
    return this.core.sb;
  }

  // ---------------------------------------------------------------- superblock

  /** Mark the filesystem mounted read-write (not clean) and make that durable. */
  markMounted(): void {
    this.processOrphans();
    const t = Math.floor(Date.now() / 1000);
    const maxCount = this.sb.mntCount + 1;
    this.writeSuperblock(changedSuperblock(this.sb, { state: this.sb.state & ~STATE_VALID, mntCount: Math.min(0xffff, maxCount), mtime: t, wtime: t }));
    this.core.channel.flush();
  }

  private writeSuperblock(sb: Superblock): void {
    const bytes = encodeSuperblock(sb);
    this.core.channel.writeBytes(SUPERBLOCK_OFFSET, bytes);
    this.core.setSuperblock(changedSuperblock(sb, { raw: bytes, checksum: sb.hasMetadataCsum ? (bytes[0x3fc]! | (bytes[0x3fd]! << 8) | (bytes[0x3fe]! << 16) | (bytes[0x3ff]! << 24)) >>> 0 : sb.checksum }));
  }

  /**
   * Put every metadata change into the cache (descriptors, superblock counts); with
   * `durable`, write the cache back and flush the device.
   */
  sync(durable: boolean, clean = false): void {
    const counts = this.alloc.sync();
    const kb = Math.floor(this.kbytesWritten / 1024);
    this.kbytesWritten -= kb * 1024;
    const state = clean && this.wasClean ? this.sb.state | STATE_VALID : this.sb.state;
    const next = changedSuperblock(this.sb, {
      freeBlocksCount: counts.freeBlocks * this.sb.clusterRatio,
      freeInodesCount: counts.freeInodes,
      kbytesWritten: this.sb.kbytesWritten + kb,
      wtime: Math.floor(Date.now() / 1000),
      state,
    });
    if (clean) {
      // The clean state goes last: everything else must be on the device first.
      this.core.channel.flush();
    }
    this.writeSuperblock(next);
    this.core.invalidateStatfs();
    if (durable || clean) this.core.channel.flush();
  }

  /** Write everything back and mark the filesystem clean. */
  close(): void {
    if (this.closed) return;
    // Files unlinked while open and never released: their last close is now.
    this.processOrphans();
    this.sync(true, true);
    this.closed = true;
  }

  // ---------------------------------------------------------------- inodes

  /** Write blocks through the cache, dropping any decoded copy the reader keeps of them. */
  private put(block: number, count: number, data: Uint8Array): void {
    this.core.channel.write(block, count, data);
    this.core.invalidateBlocks(block, count);
  }

  /**
   * Write whole blocks of file data: a run of DIRECT_DATA_BLOCKS or more goes straight to
   * the device (it would evict that much metadata from the cache and be copied twice);
   * shorter ones (small files, tails) stay in the cache until the next write-back.
   */
  private putData(block: number, count: number, data: Uint8Array): void {
    if (count < DIRECT_DATA_BLOCKS) this.core.channel.write(block, count, data);
    else this.core.channel.writeDirect(block, count, data);
    this.core.invalidateBlocks(block, count);
  }

  private mutable(ino: number): MutableInode {
    return cloneInode(this.core.liveInode(ino));
  }

  /** Write an inode record into its inode table block (through the cache). */
  putInode(ino: number, inode: MutableInode): void {
    const sb = this.sb;
    const bytes = encodeInode(inode);
    if (sb.hasMetadataCsum) setInodeChecksum(bytes, { inodeNo: ino, fsCsumSeed: sb.csumSeed });
    const loc = inodeLocation(sb, ino);
    const block = this.alloc.desc(loc.group).inodeTable + loc.tableBlock;
    const buf = this.core.channel.acquire(block);
    try {
      buf.set(bytes, loc.blockOffset);
    } finally {
      this.core.channel.release(block, true);
    }
    this.core.storeInode(ino, storedInode(inode, bytes) ?? decodeInode(bytes, { inodeNo: ino, inodeSize: sb.inodeSize, block }));
  }

  private extended(inode: Pick<MutableInode, 'extraIsize'>): boolean {
    // i_ctime_extra, i_mtime_extra and i_atime_extra sit at 0x84..0x90.
    return inode.extraIsize >= 0x10;
  }

  private stamp(inode: MutableInode, which: { a?: boolean; m?: boolean; c?: boolean }, t: Timestamp = now()): void {
    const ext = this.extended(inode);
    const time = clampTime(t, ext);
    if (which.a === true) inode.atime = time;
    if (which.m === true) inode.mtime = time;
    if (which.c === true) inode.ctime = time;
  }

  private blocksBytes(inode: MutableInode): number {
    return inodeBlocksBytes(inode, this.bs, this.hugeFile);
  }

  private addBlocks(inode: MutableInode, blocks: number): void {
    const bytes = Math.max(0, this.blocksBytes(inode) + blocks * this.bs);
    const enc = encodeInodeBlocks(bytes, this.bs, this.hugeFile);
    inode.blocksLo = enc.blocksLo;
    inode.blocksHi = enc.blocksHi;
    inode.flags = enc.hugeFileFlag ? inode.flags | HUGE_FILE_FL : inode.flags & ~HUGE_FILE_FL;
  }

  private blank: Inode | undefined;

  /** A zeroed inode record of this filesystem's size and i_extra_isize (decoded once). */
  private blankRecord(): Inode {
    if (this.blank === undefined) {
      const sb = this.sb;
      const extra = sb.inodeSize > 128 ? Math.max(32, sb.wantExtraIsize) : 0;
      this.blank = blankInode(sb.inodeSize, Math.min(extra, sb.inodeSize - 128));
    }
    return this.blank;
  }

  /** A fresh inode record for `mode`, owned by `who`, in directory `parent`. */
  private newInode(parentIno: number, parent: MutableInode, mode: number, who: Creator): { ino: number; inode: MutableInode } {
    const dir = (mode & S_IFMT) === S_IFDIR;
    const ino = this.alloc.allocInode(parentIno, dir);
    let gid = who.gid;
    let m = mode;
    if ((parent.mode & S_ISGID) !== 0) {
      gid = parent.gid;
      if (dir) m |= S_ISGID;
    }
    let flags = parent.flags & INHERITED_FLAGS;
    if (!dir) flags &= ~DIR_ONLY_FLAGS;
    return { ino, inode: this.freshRecord(m, who.uid, gid, dir ? 2 : 1, flags) };
  }

  /** A new inode's record: mode, owner, links and flags as given, a random generation, every time (crtime too) now. */
  private freshRecord(mode: number, uid: number, gid: number, links: number, flags: number): MutableInode {
    const inode = cloneInode(this.blankRecord());
    inode.mode = mode;
    inode.uid = uid;
    inode.gid = gid;
    inode.linksCount = links;
    inode.generation = randomInt(0, 0xffff_ffff);
    inode.flags = flags;
    const t = now();
    this.stamp(inode, { a: true, m: true, c: true }, t);
    // i_crtime and i_crtime_extra sit at 0x90..0x98.
    if (inode.extraIsize >= 0x18) inode.crtime = clampTime(t, true);
    return inode;
  }

  // ---------------------------------------------------------------- block maps

  private treeStore(ino: number, inode: MutableInode): TreeStore {
    const sb = this.sb;
    const channel = this.core.channel;
    return {
      blockSize: this.bs,
      read: (block) => channel.read(block, 1),
      write: (block, bytes) => this.put(block, 1, bytes),
      // A tree block takes a whole cluster (bigalloc): the allocator hands one out.
      allocMeta: (goal) => {
        const got = this.alloc.allocBlocks(goal, 1);
        this.addBlocks(inode, got.count);
        return got.start;
      },
      freeMeta: (block) => {
        this.alloc.freeBlocks(block, 1);
        this.addBlocks(inode, -this.ratio);
      },
      csumSeed: sb.hasMetadataCsum ? inodeCsumSeed(sb.csumSeed, ino, inode.generation) : undefined,
      ino,
      totalBlocks: sb.blocksCount,
      firstDataBlock: sb.firstDataBlock,
    };
  }

  private tree(ino: number, inode: MutableInode): ExtentTree | IndirectTree {
    const store = this.treeStore(ino, inode);
    return (inode.flags & EXTENTS_FL) !== 0 ? new ExtentTree(inode.block, store) : new IndirectTree(inode.block, store);
  }

  /** Empty block map for a new inode (extents when the filesystem has them). */
  private initMap(inode: MutableInode): void {
    inode.block.fill(0);
    if (this.extents) {
      inode.flags |= EXTENTS_FL;
      ExtentTree.initRoot(inode.block);
    } else {
      inode.flags &= ~EXTENTS_FL;
    }
  }

  /** Goal for a new data block of `inode` at `lblk`: after its previous block, else its group. */
  private goalFor(ino: number, tree: ExtentTree | IndirectTree, lblk: number): number {
    if (lblk > 0) {
      const before = tree.find(Math.max(0, lblk - 16), Math.min(lblk, 16));
      const last = before[before.length - 1];
      if (last !== undefined) return last.pblk + (lblk - last.lblk);
    }
    const sb = this.sb;
    const g = Math.floor((ino - 1) / sb.inodesPerGroup);
    return sb.firstDataBlock + g * sb.blocksPerGroup;
  }

  /**
   * Unmap [from, to) and free the data blocks. With bigalloc a physical cluster is
   * freed only when no block of its logical cluster stays mapped (the blocks of a
   * logical cluster all live in one physical cluster).
   */
  private punch(ino: number, inode: MutableInode, from: number, to: number): void {
    if (to <= from) return;
    const tree = this.tree(ino, inode);
    const ratio = this.ratio;
    if (ratio === 1) {
      for (const r of tree.remove(from, to)) {
        this.alloc.freeBlocks(r.pblk, r.len);
        this.addBlocks(inode, -r.len);
      }
      return;
    }
    // remove() merges what it frees by physical block: the mappings, by logical block, come first.
    const mapped = tree.find(from, to - from);
    tree.remove(from, to);
    const done = new Set<number>();
    for (const r of mapped) {
      // Each physical cluster the range touches, with the logical cluster it backs.
      for (let l = r.lblk; l < r.lblk + r.len; l = (Math.floor(l / ratio) + 1) * ratio) {
        const cluster = Math.floor((r.pblk + (l - r.lblk)) / ratio);
        if (done.has(cluster)) continue;
        done.add(cluster);
        const logical = Math.floor(l / ratio) * ratio;
        // Only a logical cluster the range cuts (its first or last) can keep blocks mapped.
        if ((logical < from || logical + ratio > to) && tree.find(logical, ratio).length > 0) continue;
        this.alloc.freeBlocks(cluster * ratio, ratio);
        this.addBlocks(inode, -ratio);
      }
    }
  }

  /**
   * Map the start of the hole [lblk, holeEnd) of `tree` to new blocks (unwritten
   * extents with `unwritten`), charge them to the inode and return the run mapped: up
   * to ALLOC_CHUNK blocks, fewer when the free space is fragmented. ENOSPC when
   * nothing is free.
   *
   * Bigalloc (the kernel's rule, which e2fsck checks): logical block l lies at offset
   * l % ratio of its physical cluster, and all the blocks of one logical cluster share a
   * physical cluster. A hole in a logical cluster that has a block mapped already is
   * mapped into that block's cluster, allocating nothing; otherwise whole clusters are
   * allocated (and charged), the run starting at the hole's offset in the first.
   */
  private mapHole(ino: number, inode: MutableInode, tree: ExtentTree | IndirectTree, lblk: number, holeEnd: number, unwritten: boolean): Mapping {
    const ratio = this.ratio;
    let want = Math.min(holeEnd - lblk, ALLOC_CHUNK);
    let pblk: number;
    let count: number;
    let charge: number;
    let allocated: { start: number; count: number } | undefined;
    const offset = lblk % ratio;
    const logical = lblk - offset;
    const neighbour = ratio === 1 ? undefined : tree.find(logical, ratio)[0];
    if (neighbour !== undefined) {
      // The logical cluster has a physical one: fill the hole's part of it.
      const base = neighbour.pblk - (neighbour.lblk % ratio);
      if (base % ratio !== 0) throw corrupted('extent tree', `logical block ${neighbour.lblk} is mapped to block ${neighbour.pblk}, out of step with its cluster`, { inode: ino });
      pblk = base + offset;
      count = Math.min(holeEnd, logical + ratio) - lblk;
      charge = 0;
    } else {
      if (ratio > 1) {
        // A last logical cluster cut by a mapping past the hole is that mapping's cluster: leave it to the next call.
        const last = lblk + want;
        const lastLogical = last - (last % ratio);
        if (last % ratio !== 0 && lastLogical > logical && tree.find(last, ratio - (last % ratio)).length > 0) want = lastLogical - lblk;
      }
      allocated = this.alloc.allocBlocks(this.goalFor(ino, tree, lblk) - offset, offset + want);
      pblk = allocated.start + offset;
      count = Math.min(want, allocated.count - offset);
      charge = allocated.count;
    }
    try {
      tree.insert(lblk, pblk, count, unwritten);
    } catch (error) {
      if (allocated !== undefined) this.alloc.freeBlocks(allocated.start, allocated.count);
      throw error;
    }
    this.addBlocks(inode, charge);
    return { lblk, pblk, len: count, unwritten };
  }

  /**
   * Free the xattr block reference of an inode being deleted (or cleared); `decoded`:
   * the block, when the caller has it decoded already.
   */
  private dropXattrBlock(ino: number, inode: MutableInode, decoded?: ReturnType<typeof decodeXattrBlock>): void {
    const block = inodeFileAcl(inode, this.sb.has64bit);
    if (block === 0) return;
    const sb = this.sb;
    decoded ??= this.readXattrBlock(ino, block);
    if (decoded.header.refcount > 1) {
      const next = encodeXattrBlock(decoded.entries, { blockSize: this.bs, blockNo: block, refcount: decoded.header.refcount - 1, csumSeed: sb.hasMetadataCsum ? sb.csumSeed : undefined }, { hashes: 'keep' });
      this.put(block, 1, next);
    } else {
      this.alloc.freeBlocks(block, 1);
      // The block held one reference to each EA inode its entries name.
      this.releaseEaRefs(decoded.entries);
    }
    inode.fileAclLo = 0;
    inode.fileAclHi = 0;
    this.addBlocks(inode, -this.ratio);
  }

  /** An inode's xattr block, decoded (EA inode entries allowed with the feature). */
  private readXattrBlock(ino: number, block: number): ReturnType<typeof decodeXattrBlock> {
    const sb = this.sb;
    return decodeXattrBlock(this.core.channel.read(block, 1), {
      blockNo: block,
      inode: ino,
      csumSeed: sb.hasMetadataCsum ? sb.csumSeed : undefined,
      eaInode: this.eaInodes,
      inodesCount: sb.inodesCount,
      firstIno: sb.firstIno,
    });
  }

  // ---------------------------------------------------------------- EA inodes

  /**
   * The reference count of an EA inode, kept as the kernel keeps it: the high 32 bits in
   * i_ctime's seconds, the low 32 in l_i_version.
   */
  private static eaRefs(inode: Inode): number {
    const hi = ((inode.ctime.seconds % 2 ** 32) + 2 ** 32) % 2 ** 32;
    return hi * 2 ** 32 + inode.versionLo;
  }

  /**
   * Add `delta` to the references of EA inode `eaIno`; the last one going frees it. An
   * entry naming something that is not an EA inode in use is corruption (EUCLEAN), and
   * nothing is changed.
   */
  private eaRef(eaIno: number, delta: number): void {
    const inode = this.mutable(eaIno);
    const refs = Writer.eaRefs(inode) + delta;
    if ((inode.flags & EA_INODE_FL) === 0 || !isReg(inode.mode) || inode.linksCount === 0 || refs < 0) {
      throw corrupted('xattr', `inode ${eaIno}, named as holding an xattr value, is not an EA inode in use (flags 0x${inode.flags.toString(16)}, ${Writer.eaRefs(inode)} references)`, { inode: eaIno });
    }
    if (refs === 0) {
      this.freeInode(eaIno, inode);
      return;
    }
    inode.ctime = { seconds: Math.floor(refs / 2 ** 32), nanoseconds: 0 };
    inode.versionLo = refs % 2 ** 32;
    this.putInode(eaIno, inode);
  }

  /** eaRef(·, `delta`) for each entry of `entries` whose value is in an EA inode. */
  private eaRefEach(entries: readonly XattrEntry[], delta: number): void {
    for (const e of entries) if (e.value.kind === 'inode') this.eaRef(e.value.inode, delta);
  }

  /**
   * Give up the references `entries` hold on EA inodes, for entries that go away with
   * their inode or block. One naming something that is not an EA inode in use was a
   * broken reference before this deletion, which does not make it worse: it is skipped.
   */
  private releaseEaRefs(entries: readonly XattrEntry[]): void {
    for (const e of entries) {
      if (e.value.kind !== 'inode') continue;
      try {
        this.eaRef(e.value.inode, -1);
      } catch (error) {
        if (!(error instanceof FsError) || error.code !== 'EUCLEAN') throw error;
      }
    }
  }

  /**
   * A new EA inode holding `value` for an xattr of `ownerIno` (owned like it, placed near
   * it), with one reference, and the entry that names it. Its i_atime holds the value's
   * hash (CRC32C with the filesystem seed), which the kernel checks when it reads the
   * value, and which the entry's e_hash is computed from.
   */
  private createEaInode(ownerIno: number, owner: MutableInode, index: number, name: Uint8Array, value: Uint8Array): XattrEntry {
    const ino = this.alloc.allocInode(ownerIno, false);
    const inode = this.freshRecord(S_IFREG | 0o600, owner.uid, owner.gid, 1, 0);
    this.initMap(inode);
    inode.flags |= EA_INODE_FL;
    try {
      if (this.writeBlocks(ino, inode, 0, value) < value.length) throw new FsError('ENOSPC', 'no room left for the extended attribute value', { inode: ownerIno });
    } catch (error) {
      this.abandonInode(ino, inode);
      throw error;
    }
    inode.size = value.length;
    const hash = xattrEaInodeValueHash(this.sb.csumSeed, value);
    // i_atime and i_ctime carry the hash and the reference count, not times.
    // As a signed 32-bit number: the raw i_atime bits are the hash whatever the inode size.
    inode.atime = { seconds: hash | 0, nanoseconds: 0 };
    inode.ctime = { seconds: 0, nanoseconds: 0 };
    inode.versionLo = 1;
    this.putInode(ino, inode);
    return { index, name, value: { kind: 'inode', inode: ino, size: value.length }, hash: xattrEaInodeEntryHash(name, hash) };
  }

  // ---------------------------------------------------------------- inline data

  /** Convert an inline-data file to a block-mapped one (content preserved). */
  private uninlineFile(ino: number, inode: MutableInode): void {
    if ((inode.flags & INLINE_DATA_FL) === 0) return;
    const content = this.core.inlineData(ino, inode).slice();
    this.removeInlineXattr(ino, inode);
    inode.flags &= ~INLINE_DATA_FL;
    this.initMap(inode);
    const size = inode.size;
    if (content.length > 0 && this.writeBlocks(ino, inode, 0, content) < content.length) throw new FsError('ENOSPC', 'no room to move the inline data out of the inode', { inode: ino });
    inode.size = size;
  }

  private removeInlineXattr(ino: number, inode: MutableInode): void {
    const others = this.core.inodeXattrs(ino, inode).filter((e) => !isInlineDataXattr(e));
    encodeInodeXattrs(inode.raw, others, { inodeSize: this.sb.inodeSize, extraIsize: inode.extraIsize });
  }

  /** Convert an inline-data directory to a one-block directory. */
  private uninlineDir(ino: number, inode: MutableInode): void {
    if ((inode.flags & INLINE_DATA_FL) === 0) return;
    const { parent, entries } = this.core.inlineDirEntries(ino, inode);
    this.removeInlineXattr(ino, inode);
    inode.flags &= ~INLINE_DATA_FL;
    this.initMap(inode);
    inode.size = 0;
    const store = this.dirStore(ino, inode);
    const ctx = this.dirContext(ino, inode);
    const lblk = store.append();
    store.write(lblk, newDirBlock(ctx, ino, parent));
    let indexed = false;
    for (const e of entries) indexed = addEntry(store, ctx, indexed, e.name, e.inode, e.fileType).indexed;
    inode.flags = indexed ? inode.flags | INDEX_FL : inode.flags & ~INDEX_FL;
    this.core.invalidateDir(ino);
  }

  // ---------------------------------------------------------------- file data

  /**
   * Write `data` at `offset` into mapped or new blocks (no size or time change).
   * Returns the bytes written: fewer than asked when the filesystem filled up part
   * way (ENOSPC is thrown only when nothing could be written).
   */
  private writeBlocks(ino: number, inode: MutableInode, offset: number, data: Uint8Array): number {
    const bs = this.bs;
    const channel = this.core.channel;
    const tree = this.tree(ino, inode);
    const end = offset + data.length;
    let lblk = Math.floor(offset / bs);
    const lastBlock = Math.ceil(end / bs);
    if (lastBlock > LOGICAL_END) throw new FsError('EFBIG', `write past the largest file offset`, { inode: ino });
    let scratch: Uint8Array | undefined;
    while (lblk < lastBlock) {
      const want = lastBlock - lblk;
      const found = tree.find(lblk, want);
      const first = found[0];
      let pblk: number;
      let count: number;
      let fresh: boolean;
      let unwritten = false;
      if (first !== undefined && first.lblk <= lblk) {
        // Mapped: write over it.
        pblk = first.pblk + (lblk - first.lblk);
        count = Math.min(first.lblk + first.len - lblk, want);
        fresh = first.unwritten;
        unwritten = first.unwritten;
      } else {
        // A hole up to the next mapping (or the end): allocate.
        const holeEnd = first === undefined ? lastBlock : Math.min(lastBlock, first.lblk);
        let got;
        try {
          got = this.mapHole(ino, inode, tree, lblk, holeEnd, false);
        } catch (error) {
          const done = Math.min(end, lblk * bs) - offset;
          if (error instanceof FsError && error.code === 'ENOSPC' && done > 0) return done;
          throw error;
        }
        pblk = got.pblk;
        count = got.len;
        fresh = true;
      }
      // Bytes of this run covered by the write.
      const runStart = lblk * bs;
      const runEnd = runStart + count * bs;
      const from = Math.max(runStart, offset);
      const to = Math.min(runEnd, end);
      if (from === runStart && to === runEnd) {
        this.putData(pblk, count, data.subarray(from - offset, to - offset));
      } else if (count === 1 && channel.cacheSize > 0) {
        // One partial block (a small file, a file's tail): change it in its cache
        // buffer, zeroed first if it is new or unwritten; no bounce buffer, one copy.
        const buf = channel.acquire(pblk, fresh);
        try {
          if (fresh) buf.fill(0);
          buf.set(data.subarray(from - offset, to - offset), from - runStart);
        } finally {
          channel.release(pblk, true);
        }
        this.core.invalidateBlocks(pblk, 1);
      } else {
        // Partial blocks at the edges: read-modify-write (new or unwritten blocks read as zeros).
        if (scratch === undefined || scratch.length < count * bs) scratch = new Uint8Array(count * bs);
        const buf = scratch.subarray(0, count * bs);
        if (fresh) buf.fill(0);
        else channel.readDirect(pblk, count, buf);
        buf.set(data.subarray(from - offset, to - offset), from - runStart);
        this.putData(pblk, count, buf);
      }
      if (unwritten) tree.markWritten(lblk, count);
      this.kbytesWritten += count * bs;
      lblk += count;
    }
    return data.length;
  }

  private checkWritable(ino: number, inode: Inode, append = false): void {
    if ((inode.flags & IMMUTABLE_FL) !== 0) throw new FsError('EPERM', 'the file is immutable', { inode: ino });
    if (!append && (inode.flags & APPEND_FL) !== 0) throw new FsError('EPERM', 'the file is append-only', { inode: ino });
  }

  private maxFileSize(): number {
    const largeFile = (this.sb.featureRoCompat & RO_COMPAT_LARGE_FILE) !== 0 || this.extents;
    return largeFile ? Math.min(Number.MAX_SAFE_INTEGER, (LOGICAL_END - 1) * this.bs) : 0x7fff_ffff;
  }

  /**
   * Write `data` at `offset` of a regular file; returns the bytes written. `stampTimes`
   * false leaves mtime and ctime alone (the FUSE writeback cache: the kernel keeps them).
   */
  write(ino: number, offset: number, data: Uint8Array, stampTimes = true): number {
    const inode = this.mutable(ino);
    if (isDir(inode.mode)) throw new FsError('EISDIR', `inode ${ino} is a directory`, { inode: ino });
    if (!isReg(inode.mode)) throw new FsError('EINVAL', `inode ${ino} is not a regular file`, { inode: ino });
    if (!Number.isSafeInteger(offset) || offset < 0) throw new FsError('EINVAL', `invalid offset ${offset}`, { inode: ino });
    this.checkWritable(ino, inode, (inode.flags & APPEND_FL) !== 0 && offset >= inode.size);
    if (data.length === 0) return 0;
    if (offset + data.length > this.maxFileSize()) throw new FsError('EFBIG', `write past the largest file size`, { inode: ino });
    const oldSize = inode.size;
    let written: number;
    try {
      this.uninlineFile(ino, inode);
      written = this.writeBlocks(ino, inode, offset, data);
    } catch (error) {
      // Keep the block map and the bitmaps in step: what was mapped stays (inside the
      // file), blocks mapped past its end are given back.
      this.salvage(ino, inode, oldSize);
      throw error;
    }
    if (offset + written > inode.size) inode.size = offset + written;
    if (stampTimes) this.stamp(inode, { m: true, c: true });
    this.putInode(ino, inode);
    return written;
  }

  /** After a failed change: free blocks mapped past the end of the file and write the inode. */
  private salvage(ino: number, inode: MutableInode, size: number): void {
    try {
      if ((inode.flags & INLINE_DATA_FL) === 0 && isReg(inode.mode)) this.punch(ino, inode, Math.ceil(size / this.bs), LOGICAL_END);
      inode.size = size;
      this.putInode(ino, inode);
    } catch {
      // the original error is the one to report
    }
  }

  /**
   * Zero file bytes [from, to), which lie within one block, in place when that block
   * is mapped and written (holes and unwritten extents already read as zeros).
   */
  private zeroInBlock(ino: number, inode: MutableInode, from: number, to: number): void {
    if (to <= from) return;
    const bs = this.bs;
    const lblk = Math.floor(from / bs);
    const m = this.tree(ino, inode).find(lblk, 1)[0];
    if (m === undefined || m.lblk > lblk || m.unwritten) return;
    const pblk = m.pblk + (lblk - m.lblk);
    const buf = this.core.channel.readDirect(pblk, 1);
    buf.fill(0, from - lblk * bs, to - lblk * bs);
    this.put(pblk, 1, buf);
  }

  /** Zero the bytes from `size` to the end of its block. */
  private zeroTail(ino: number, inode: MutableInode, size: number): void {
    if (size % this.bs !== 0) this.zeroInBlock(ino, inode, size, (Math.floor(size / this.bs) + 1) * this.bs);
  }

  /** Change a file's size (truncate(2)): blocks past the end are freed. */
  private resize(ino: number, inode: MutableInode, size: number): void {
    if (!Number.isSafeInteger(size) || size < 0) throw new FsError('EINVAL', `invalid size ${size}`, { inode: ino });
    if (size > this.maxFileSize()) throw new FsError('EFBIG', `size ${size} is larger than the largest file`, { inode: ino });
    if (size === inode.size) return;
    this.uninlineFile(ino, inode);
    if (size < inode.size) {
      this.punch(ino, inode, Math.ceil(size / this.bs), LOGICAL_END);
      this.zeroTail(ino, inode, size);
    } else {
      this.zeroTail(ino, inode, inode.size);
    }
    inode.size = size;
  }

  truncate(ino: number, size: number): void {
    const inode = this.mutable(ino);
    if (isDir(inode.mode)) throw new FsError('EISDIR', `inode ${ino} is a directory`, { inode: ino });
    if (!isReg(inode.mode)) throw new FsError('EINVAL', `inode ${ino} is not a regular file`, { inode: ino });
    this.checkWritable(ino, inode);
    this.resize(ino, inode, size);
    this.stamp(inode, { m: true, c: true });
    this.putInode(ino, inode);
  }

  /** fallocate(2): allocate (unwritten extents), punch holes, or zero a range. */
  fallocate(ino: number, mode: number, offset: number, length: number): void {
    const inode = this.mutable(ino);
    if (!isReg(inode.mode)) throw new FsError(isDir(inode.mode) ? 'EISDIR' : 'ENODEV', `inode ${ino} is not a regular file`, { inode: ino });
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length <= 0) throw new FsError('EINVAL', `invalid range ${offset}+${length}`, { inode: ino });
    const known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
    if ((mode & ~known) !== 0) throw new FsError('EOPNOTSUPP', `fallocate mode 0x${mode.toString(16)} is not supported`, { inode: ino });
    this.checkWritable(ino, inode);
    const end = offset + length;
    if (end > this.maxFileSize()) throw new FsError('EFBIG', 'range past the largest file size', { inode: ino });
    const oldSize = inode.size;
    try {
      this.allocateRange(ino, inode, mode, offset, end);
    } catch (error) {
      this.salvage(ino, inode, oldSize);
      throw error;
    }
    this.stamp(inode, { m: true, c: true });
    this.putInode(ino, inode);
  }

  private allocateRange(ino: number, inode: MutableInode, mode: number, offset: number, end: number): void {
    this.uninlineFile(ino, inode);
    const bs = this.bs;
    const allocates = (mode & FALLOC_FL_PUNCH_HOLE) === 0;
    if (allocates && (mode & FALLOC_FL_KEEP_SIZE) !== 0 && end > inode.size && (inode.flags & EXTENTS_FL) === 0) {
      // A block map (ext2/ext3) has no unwritten blocks: what it maps lies inside the
      // file (e2fsck: "i_size is ..., should be ..."). Blocks reserved past the end
      // cannot be expressed; the kernel refuses every preallocation on such files.
      throw new FsError('EOPNOTSUPP', `cannot preallocate past the end of a file without extents (inode ${ino})`, { inode: ino });
    }
    if ((mode & FALLOC_FL_PUNCH_HOLE) !== 0 || (mode & FALLOC_FL_ZERO_RANGE) !== 0) {
      if ((mode & FALLOC_FL_PUNCH_HOLE) !== 0 && (mode & FALLOC_FL_KEEP_SIZE) === 0) throw new FsError('EOPNOTSUPP', 'PUNCH_HOLE needs KEEP_SIZE', { inode: ino });
      const limit = (mode & FALLOC_FL_PUNCH_HOLE) !== 0 ? Math.min(end, inode.size) : end;
      // Whole blocks inside the range are unmapped; partial edges are zeroed in place.
      const firstWhole = Math.ceil(offset / bs);
      const lastWhole = Math.floor(limit / bs);
      if (firstWhole < lastWhole) this.punch(ino, inode, firstWhole, lastWhole);
      const zeroEdge = (from: number, to: number): void => this.zeroInBlock(ino, inode, from, to);
      if (firstWhole > lastWhole) zeroEdge(offset, limit);
      else {
        zeroEdge(offset, Math.min(limit, firstWhole * bs));
        zeroEdge(Math.max(offset, lastWhole * bs), limit);
      }
      if ((mode & FALLOC_FL_ZERO_RANGE) !== 0) {
        if (firstWhole < lastWhole) this.preallocate(ino, inode, firstWhole, lastWhole);
        if ((mode & FALLOC_FL_KEEP_SIZE) === 0 && end > inode.size) inode.size = end;
      }
    } else {
      this.preallocate(ino, inode, Math.floor(offset / bs), Math.ceil(end / bs));
      if ((mode & FALLOC_FL_KEEP_SIZE) === 0 && end > inode.size) inode.size = end;
    }
  }

  /** Map every hole in [from, to) with unwritten extents (zeroed blocks without extents). */
  private preallocate(ino: number, inode: MutableInode, from: number, to: number): void {
    const tree = this.tree(ino, inode);
    let lblk = from;
    while (lblk < to) {
      const found = tree.find(lblk, to - lblk);
      const first = found[0];
      if (first !== undefined && first.lblk <= lblk) {
        lblk = first.lblk + first.len;
        continue;
      }
      const holeEnd = first === undefined ? to : Math.min(to, first.lblk);
      const extents = (inode.flags & EXTENTS_FL) !== 0;
      const got = this.mapHole(ino, inode, tree, lblk, holeEnd, extents);
      if (!extents) {
        // A block map has no unwritten state: its new blocks are zeroed (after the map
        // holds them, so nothing is zeroed that a failed insert gives back).
        this.core.channel.zeroout(got.pblk, got.len);
        this.core.invalidateBlocks(got.pblk, got.len);
      }
      lblk += got.len;
    }
  }

  // ---------------------------------------------------------------- attributes

  setattr(ino: number, attr: SetAttr): void {
    const current = this.core.liveInode(ino);
    // A freed inode (no links, not kept open): the kernel still holds it until FORGET
    // and, with its writeback cache, sends the ctime of the unlink here. Nothing on the
    // device is left to change (a freed slot keeps only its dtime).
    if (this.isFreed(ino, current)) return;
    const inode = cloneInode(current);
    const t = now();
    const onlyTimes = attr.mode === undefined && attr.uid === undefined && attr.gid === undefined && attr.size === undefined;
    if ((inode.flags & IMMUTABLE_FL) !== 0 || ((inode.flags & APPEND_FL) !== 0 && !onlyTimes)) {
      throw new FsError('EPERM', `the file is ${(inode.flags & IMMUTABLE_FL) !== 0 ? 'immutable' : 'append-only'}`, { inode: ino });
    }
    if (attr.size !== undefined) {
      if (isDir(inode.mode)) throw new FsError('EISDIR', `inode ${ino} is a directory`, { inode: ino });
      if (!isReg(inode.mode)) throw new FsError('EINVAL', `inode ${ino} is not a regular file`, { inode: ino });
      if (attr.size !== inode.size) {
        this.resize(ino, inode, attr.size);
        this.stamp(inode, { m: true }, t);
      }
    }
    if (attr.mode !== undefined) inode.mode = (inode.mode & S_IFMT) | (attr.mode & 0o7777);
    else if (!isDir(inode.mode) && ((attr.uid !== undefined && attr.uid !== inode.uid) || (attr.gid !== undefined && attr.gid !== inode.gid))) {
      // A change of owner drops setuid, and setgid on a group-executable file (as chown(2) does).
      inode.mode &= ~(0o4000 | ((inode.mode & 0o010) !== 0 ? S_ISGID : 0));
    }
    if (attr.uid !== undefined) inode.uid = attr.uid;
    if (attr.gid !== undefined) inode.gid = attr.gid;
    const ext = this.extended(inode);
    if (attr.atime !== undefined) inode.atime = clampTime(attr.atime === 'now' ? t : attr.atime, ext);
    if (attr.mtime !== undefined) inode.mtime = clampTime(attr.mtime === 'now' ? t : attr.mtime, ext);
    inode.ctime = clampTime(attr.ctime ?? t, ext);
    this.putInode(ino, inode);
  }

  /** Set inode flags (FS_IOC_SETFLAGS): only the user-changeable ones. */
  setFlags(ino: number, flags: number): void {
    const inode = this.mutable(ino);
    const changeable = 0x0000_0001 | 0x0000_0002 | 0x0000_0008 | IMMUTABLE_FL | APPEND_FL | 0x0000_0040 | 0x0000_0080 | 0x0000_4000 | 0x0000_8000 | 0x0001_0000 | 0x0002_0000 | 0x0080_0000 | 0x2000_0000 | CASEFOLD_FL;
    if (((inode.flags ^ flags) & CASEFOLD_FL) !== 0) {
      // As ext4_ioctl_setflags: only with the feature, only on directories, only while empty.
      if (!this.casefold) throw new FsError('EOPNOTSUPP', 'the filesystem has no casefold feature', { inode: ino });
      if (!isDir(inode.mode)) throw new FsError('ENOTDIR', 'only directories can be casefolded', { inode: ino });
      if (!this.dirIsEmpty(ino, inode)) throw new FsError('ENOTEMPTY', 'a directory can change casefolding only while empty', { inode: ino });
    }
    inode.flags = (inode.flags & ~changeable) | (flags & changeable);
    this.stamp(inode, { c: true });
    this.putInode(ino, inode);
  }

  /**
   * Update atime (reads), as the caller's atime policy decided. Returns false, writing
   * nothing, when atime already is now (the clock has not ticked since: the kernel's
   * atime_needs_update skips that case too).
   */
  touchAtime(ino: number): boolean {
    const current = this.core.readInode(ino);
    const t = clampTime(now(), this.extended(current));
    if (t.seconds === current.atime.seconds && t.nanoseconds === current.atime.nanoseconds) return false;
    const inode = this.mutable(ino);
    this.stamp(inode, { a: true }, t);
    this.putInode(ino, inode);
    return true;
  }

  // ---------------------------------------------------------------- xattrs

  private xattrLayout(inode: MutableInode): { inodeSize: number; extraIsize: number } {
    return { inodeSize: this.sb.inodeSize, extraIsize: inode.extraIsize };
  }

  /**
   * Set (value) or remove (null) one xattr, by its full name. In-inode space is used
   * first, the xattr block for what does not fit. A shared block is copied before it
   * changes. POSIX ACLs arrive in the VFS format; an access ACL equivalent to the mode
   * just sets the mode, and a richer one updates the mode's group bits from its mask.
   */
  setxattr(ino: number, name: string, value: Uint8Array | null, flags = 0): void {
    const split = splitXattrName(name);
    if (split === null) throw new FsError('EOPNOTSUPP', `extended attribute namespace of ${quoteText(name)} is not supported`, { inode: ino });
    if (split.name.length > 255) throw new FsError('ERANGE', 'xattr name too long', { inode: ino });
    if (value !== null && value.length > XATTR_SIZE_MAX) throw new FsError('E2BIG', 'xattr value too large', { inode: ino });
    const inode = this.mutable(ino);
    if ((inode.flags & (IMMUTABLE_FL | APPEND_FL)) !== 0) throw new FsError('EPERM', 'the file is immutable or append-only', { inode: ino });
    // As the kernel's VFS (xattr_permission): user.* attributes belong to regular files
    // and directories only; on a symlink, device, fifo or socket they cannot be set or
    // removed.
    if (split.index === XATTR_INDEX.USER && !isReg(inode.mode) && !isDir(inode.mode)) {
      throw new FsError('EPERM', `user.* attributes are for regular files and directories only (${name})`, { inode: ino });
    }
    let stored = value;
    if (value !== null && (name === 'system.posix_acl_access' || name === 'system.posix_acl_default')) {
      const acl = decodeVfsAcl(value);
      if (name === 'system.posix_acl_default' && !isDir(inode.mode)) throw new FsError('EACCES', 'default ACLs are for directories', { inode: ino });
      if (name === 'system.posix_acl_access') {
        const { mode, equivalent } = aclMode(acl);
        inode.mode = (inode.mode & ~0o777) | mode;
        stored = equivalent ? null : encodeExt4Acl(acl);
        if (equivalent) flags &= ~XATTR_REPLACE;
      } else {
        stored = acl.length === 0 ? null : encodeExt4Acl(acl);
      }
    }
    const inodeEntries = [...this.core.inodeXattrs(ino, inode)];
    const blockNo = inodeFileAcl(inode, this.sb.has64bit);
    const blockEntries = [...this.core.blockXattrs(ino, inode)];
    const key = { index: split.index, name: split.name };
    const same = (e: XattrEntry): boolean => compareXattrEntries(e, key) === 0;
    const existed = inodeEntries.some(same) || blockEntries.some(same);
    if ((flags & XATTR_CREATE) !== 0 && existed && value !== null) throw new FsError('EEXIST', `extended attribute ${quoteText(name)} exists`, { inode: ino });
    if ((flags & XATTR_REPLACE) !== 0 && !existed) throw new FsError('ENODATA', `no extended attribute ${quoteText(name)}`, { inode: ino });
    if (value === null && !existed) throw new FsError('ENODATA', `no extended attribute ${quoteText(name)}`, { inode: ino });
    const newInode = inodeEntries.filter((e) => !same(e));
    let newBlock = blockEntries.filter((e) => !same(e));
    let eaEntry: XattrEntry | undefined;
    if (stored !== null) {
      const entry: XattrEntry = { index: split.index, name: split.name, value: { kind: 'bytes', bytes: stored }, hash: 0 };
      if (this.fits((buf) => encodeInodeXattrs(buf, [...newInode, entry], this.xattrLayout(inode)), inode.raw.length)) {
        newInode.push(entry);
      } else if (!this.eaInodes || this.fits((buf) => encodeXattrBlock([...newBlock, entry], { blockSize: buf.length, blockNo: 0 }), this.bs)) {
        newBlock = [...newBlock, entry];
      } else {
        // Neither in the inode nor in the block: the value gets an EA inode of its own,
        // and the entry (naming it) goes where entries without a value fit.
        eaEntry = this.createEaInode(ino, inode, split.index, split.name, stored);
        if (this.fits((buf) => encodeInodeXattrs(buf, [...newInode, eaEntry as XattrEntry], this.xattrLayout(inode)), inode.raw.length)) newInode.push(eaEntry);
        else newBlock = [...newBlock, eaEntry];
      }
    }
    try {
      encodeInodeXattrs(inode.raw, newInode, this.xattrLayout(inode));
      this.writeXattrBlock(ino, inode, blockNo, blockEntries, newBlock);
      // The inode is charged (i_blocks) for the EA inode values it names, as the kernel
      // charges it (and e2fsck counts): each value rounded up to whole blocks.
      this.addBlocks(inode, this.eaCharge(newInode) + this.eaCharge(newBlock) - this.eaCharge(inodeEntries) - this.eaCharge(blockEntries));
    } catch (error) {
      if (eaEntry?.value.kind === 'inode') this.eaRef(eaEntry.value.inode, -1);
      throw error;
    }
    this.stamp(inode, { c: true });
    this.putInode(ino, inode);
    // The replaced or removed value's EA inode, once nothing names it from this inode.
    // (One in a block: writeXattrBlock settled it with the block.)
    this.eaRefEach(inodeEntries.filter(same), -1);
  }

  /** Blocks the EA inode values named by `entries` take, each rounded up to whole blocks. */
  private eaCharge(entries: readonly XattrEntry[]): number {
    let blocks = 0;
    // Charged in whole clusters, as the kernel rounds each value up to one (bigalloc).
    const cluster = this.bs * this.ratio;
    for (const e of entries) if (e.value.kind === 'inode') blocks += Math.ceil(e.value.size / cluster) * this.ratio;
    return blocks;
  }

  /** Whether `encode` succeeds into a scratch buffer of `size` bytes (false on ENOSPC). */
  private fits(encode: (buf: Uint8Array) => void, size: number): boolean {
    try {
      encode(new Uint8Array(size));
      return true;
    } catch (error) {
      if (error instanceof FsError && error.code === 'ENOSPC') return false;
      throw error;
    }
  }

  private writeXattrBlock(ino: number, inode: MutableInode, oldBlock: number, oldEntries: readonly XattrEntry[], entries: readonly XattrEntry[]): void {
    const sb = this.sb;
    const unchanged = oldEntries.length === entries.length && oldEntries.every((e, i) => e === entries[i]);
    if (unchanged) return;
    if (entries.length === 0) {
      if (oldBlock !== 0) this.dropXattrBlock(ino, inode);
      return;
    }
    const seed = sb.hasMetadataCsum ? sb.csumSeed : undefined;
    let released: readonly XattrEntry[] = [];
    // Check that the entries fit before any block changes hands.
    try {
      encodeXattrBlock(entries, { blockSize: this.bs, blockNo: 0 });
    } catch (error) {
      if (error instanceof FsError && error.code === 'ENOSPC') throw new FsError('ENOSPC', `no room left for extended attributes of this inode (${error.message})`, { inode: ino });
      throw error;
    }
    let target = oldBlock;
    if (oldBlock !== 0) {
      const old = this.readXattrBlock(ino, oldBlock);
      if (old.header.refcount > 1) {
        // The shared block stays as it is for the others, EA references included; this
        // inode's copy holds references of its own to the EA inodes it keeps.
        this.dropXattrBlock(ino, inode, old);
        target = 0;
        this.eaRefEach(entries.filter((e) => oldEntries.includes(e)), 1);
      } else {
        // Rewritten in place: the entries that leave it release their EA inodes (after).
        released = oldEntries.filter((e) => !entries.includes(e));
      }
    }
    if (target === 0) {
      const g = Math.floor((ino - 1) / sb.inodesPerGroup);
      const got = this.alloc.allocBlocks(sb.firstDataBlock + g * sb.blocksPerGroup, 1);
      target = got.start;
      this.addBlocks(inode, got.count);
      inode.fileAclLo = target % 2 ** 32;
      inode.fileAclHi = Math.floor(target / 2 ** 32);
    }
    const bytes = encodeXattrBlock(entries, { blockSize: this.bs, blockNo: target, csumSeed: seed });
    this.put(target, 1, bytes);
    this.eaRefEach(released, -1);
  }

  // ---------------------------------------------------------------- directories

  private dirContext(ino: number, dir: MutableInode): DirContext {
    const sb = this.sb;
    return {
      ino,
      blockSize: this.bs,
      metadataCsum: sb.hasMetadataCsum,
      csumSeed: sb.hasMetadataCsum ? inodeCsumSeed(sb.csumSeed, ino, dir.generation) : 0,
      hasFileType: this.hasFileType,
      hashSeed: sb.hashSeed,
      defaultHashVersion: sb.defHashVersion,
      sFlags: sb.flags,
      casefold: this.folds(dir),
      largeDir: (sb.featureIncompat & INCOMPAT_LARGEDIR) !== 0,
      dirIndex: (sb.featureCompat & COMPAT_DIR_INDEX) !== 0,
    };
  }

  /**
   * Directory leaf blocks (physical) whose checksum is known good: verified once, or
   * written by the directory code since. Nothing else writes them while the image is
   * ours; a freed block leaves the set (it may come back as anything).
   */
  private readonly trustedLeaves = new Set<number>();

  private dirStore(ino: number, dir: MutableInode): DirStore {
    const bs = this.bs;
    const channel = this.core.channel;
    // One directory operation maps the same few blocks several times (read, then write).
    const mapped = new Map<number, number>();
    const physical = (lblk: number): number => {
      const known = mapped.get(lblk);
      if (known !== undefined) return known;
      const run = this.core.mapRun(ino, dir, lblk, 1);
      if (run.kind !== 'data') throw corrupted('directory', `block ${lblk} is ${run.kind === 'hole' ? 'a hole' : 'unwritten'}`, { inode: ino });
      mapped.set(lblk, run.physical);
      return run.physical;
    };
    const trusted = this.trustedLeaves;
    return {
      blockSize: bs,
      blockCount: () => Math.ceil(dir.size / bs),
      read: (lblk) => channel.read(physical(lblk), 1),
      view: (lblk) => channel.view(physical(lblk)),
      write: (lblk, bytes) => {
        const block = physical(lblk);
        trusted.delete(block);
        this.put(block, 1, bytes);
      },
      trusted: (lblk) => trusted.has(physical(lblk)),
      trust: (lblk) => {
        if (trusted.size >= TRUSTED_LEAVES) trusted.clear();
        trusted.add(physical(lblk));
      },
      decodedRoot: (decode) => this.core.dxRoot(physical(0), decode),
      decodedNode: (lblk, decode) => this.core.dxNode(physical(lblk), decode),
      update: (lblk, change) => {
        const block = physical(lblk);
        const bytes = channel.acquire(block);
        try {
          change(bytes);
        } finally {
          channel.release(block, true);
          this.core.invalidateBlocks(block, 1);
        }
      },
      append: () => {
        const lblk = Math.ceil(dir.size / bs);
        const got = this.mapHole(ino, dir, this.tree(ino, dir), lblk, lblk + 1, false);
        dir.size = (lblk + 1) * bs;
        this.put(got.pblk, 1, new Uint8Array(bs));
        return lblk;
      },
    };
  }

  /** The directory compares and hashes names casefolded (the feature and CASEFOLD_FL). */
  private folds(dir: MutableInode): boolean {
    return this.casefold && (dir.flags & CASEFOLD_FL) !== 0;
  }

  private indexed(dir: MutableInode): boolean {
    return (dir.flags & INDEX_FL) !== 0 && (this.sb.featureCompat & COMPAT_DIR_INDEX) !== 0;
  }

  private checkName(name: Uint8Array): void {
    if (name.length === 0) throw new FsError('ENOENT', 'empty name');
    if (name.length > NAME_MAX) throw new FsError('ENAMETOOLONG', `name of ${name.length} bytes is longer than ${NAME_MAX}`);
    if (hasSlashOrNul(name)) throw new FsError('EINVAL', 'a name cannot contain "/" or NUL');
    if ((name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e)) throw new FsError('EEXIST', `"${name.length === 1 ? '.' : '..'}" always exists`);
  }

  private dirForChange(dirIno: number): MutableInode {
    const dir = this.mutable(dirIno);
    if (!isDir(dir.mode)) throw new FsError('ENOTDIR', `inode ${dirIno} is not a directory`, { inode: dirIno });
    if ((dir.flags & (IMMUTABLE_FL | APPEND_FL)) !== 0) throw new FsError('EPERM', 'the directory is immutable or append-only', { inode: dirIno });
    if (dir.linksCount === 0) throw new FsError('ENOENT', 'the directory was removed', { inode: dirIno });
    return dir;
  }

  /** Add `name` -> `ino` to directory `dir` (already checked absent). */
  private link(dirIno: number, dir: MutableInode, name: Uint8Array, ino: number, mode: number): void {
    try {
      this.uninlineDir(dirIno, dir);
      const result = addEntry(this.dirStore(dirIno, dir), this.dirContext(dirIno, dir), this.indexed(dir), name, ino, this.hasFileType ? fileTypeFromMode(mode) : 0);
      dir.flags = result.indexed ? dir.flags | INDEX_FL : dir.flags & ~INDEX_FL;
      this.core.dirIndexAdd(dirIno, name, ino);
    } catch (error) {
      // The directory may have grown before the entry failed to fit (ENOSPC): its
      // inode must still describe the blocks it now owns.
      try {
        this.putInode(dirIno, dir);
      } catch {
        // the original error is the one to report
      }
      throw error;
    }
  }

  private unlinkName(dirIno: number, dir: MutableInode, name: Uint8Array): number {
    this.uninlineDir(dirIno, dir);
    const ino = removeEntry(this.dirStore(dirIno, dir), this.dirContext(dirIno, dir), this.indexed(dir), name);
    this.core.dirIndexRemove(dirIno, name);
    return ino;
  }

  private incLinks(dir: MutableInode): void {
    if (dir.linksCount >= LINK_MAX || dir.linksCount === 1) {
      if ((this.sb.featureRoCompat & RO_COMPAT_DIR_NLINK) === 0) throw new FsError('EMLINK', 'too many subdirectories');
      dir.linksCount = 1;
    } else dir.linksCount++;
  }

  private decLinks(dir: MutableInode): void {
    if (dir.linksCount > 2) dir.linksCount--;
    // A dir_nlink directory (count 1) stays at 1; a directory never drops below 2.
  }

  /**
   * Create a non-directory inode: a regular file, fifo, socket or device (`rdev`
   * as major/minor), or a symlink (`target`). Returns the new inode number.
   */
  create(parentIno: number, name: Uint8Array, mode: number, who: Creator, options: { readonly rdev?: readonly [number, number]; readonly target?: Uint8Array } = {}): number {
    this.checkName(name);
    const parent = this.dirForChange(parentIno);
    // No lookup first: adding the entry finds a duplicate (EEXIST, the inode is given
    // back), and callers have usually just looked the name up themselves.
    const type = mode & S_IFMT;
    if (type === S_IFDIR) throw new FsError('EINVAL', 'use mkdir for directories');
    const { ino, inode } = this.newInode(parentIno, parent, type === 0 ? mode | S_IFREG : mode, who);
    try {
      if (isReg(inode.mode)) this.initMap(inode);
      else if (isSymlink(inode.mode)) this.fillSymlink(ino, inode, options.target ?? new Uint8Array(0));
      else if (isChr(inode.mode) || isBlk(inode.mode)) encodeDevice(inode.block, options.rdev ?? [0, 0]);
      this.putInode(ino, inode);
      this.link(parentIno, parent, name, ino, inode.mode);
    } catch (error) {
      this.abandonInode(ino, inode);
      throw error;
    }
    this.stamp(parent, { m: true, c: true });
    this.putInode(parentIno, parent);
    return ino;
  }

  private fillSymlink(ino: number, inode: MutableInode, target: Uint8Array): void {
    if (target.length === 0) throw new FsError('ENOENT', 'empty symlink target');
    if (target.length >= this.bs || target.length >= 4096) throw new FsError('ENAMETOOLONG', 'symlink target too long');
    inode.size = target.length;
    if (target.length < 60) {
      inode.block.fill(0);
      inode.block.set(target);
      inode.flags &= ~EXTENTS_FL;
    } else {
      this.initMap(inode);
      const padded = new Uint8Array(this.bs);
      padded.set(target);
      if (this.writeBlocks(ino, inode, 0, padded) < padded.length) throw new FsError('ENOSPC', 'no room for the symlink target', { inode: ino });
      inode.size = target.length;
    }
  }

  /** Release an inode whose creation failed half-way. */
  private abandonInode(ino: number, inode: MutableInode): void {
    try {
      if (!isSymlink(inode.mode) || inode.size >= 60) this.punch(ino, inode, 0, LOGICAL_END);
    } catch {
      // the creation error is the one to report
    }
    inode.linksCount = 0;
    inode.dtime = Math.floor(Date.now() / 1000);
    try {
      this.putInode(ino, inode);
      this.alloc.freeInode(ino, isDir(inode.mode));
    } catch {
      // as above
    }
  }

  mkdir(parentIno: number, name: Uint8Array, mode: number, who: Creator): number {
    this.checkName(name);
    const parent = this.dirForChange(parentIno);
    const { ino, inode } = this.newInode(parentIno, parent, S_IFDIR | (mode & 0o7777), who);
    try {
      this.initMap(inode);
      const store = this.dirStore(ino, inode);
      const lblk = store.append();
      store.write(lblk, newDirBlock(this.dirContext(ino, inode), ino, parentIno));
      this.putInode(ino, inode);
      this.link(parentIno, parent, name, ino, inode.mode);
      this.incLinks(parent);
    } catch (error) {
      this.abandonInode(ino, inode);
      throw error;
    }
    this.stamp(parent, { m: true, c: true });
    this.putInode(parentIno, parent);
    return ino;
  }

  /** A hard link: `name` in `parentIno` -> existing `ino`. */
  hardlink(ino: number, parentIno: number, name: Uint8Array): void {
    this.checkName(name);
    // The kernel's order (do_linkat): the new name first (its directory, EEXIST), then
    // what may be linked (EPERM for a directory, immutable, append-only; ENOENT; EMLINK).
    const parent = this.dirForChange(parentIno);
    if (this.core.find(parentIno, name) !== undefined) throw new FsError('EEXIST', 'file exists', { inode: parentIno });
    const inode = this.mutable(ino);
    if (isDir(inode.mode)) throw new FsError('EPERM', 'hard links to directories are not allowed', { inode: ino });
    if ((inode.flags & (IMMUTABLE_FL | APPEND_FL)) !== 0) throw new FsError('EPERM', 'the file is immutable or append-only', { inode: ino });
    if (inode.linksCount >= LINK_MAX) throw new FsError('EMLINK', 'too many links', { inode: ino });
    if (inode.linksCount === 0) throw new FsError('ENOENT', 'the file was removed', { inode: ino });
    this.link(parentIno, parent, name, ino, inode.mode);
    inode.linksCount++;
    this.stamp(inode, { c: true });
    this.putInode(ino, inode);
    this.stamp(parent, { m: true, c: true });
    this.putInode(parentIno, parent);
  }

  /**
   * Remove a name of a non-directory. Returns the inode and whether its last link
   * went; `keep` (the caller still has it open) defers freeing it to `release`.
   */
  unlink(parentIno: number, name: Uint8Array, keep: (ino: number) => boolean = () => false): { ino: number; freed: boolean } {
    const parent = this.dirForChange(parentIno);
    const ino = this.core.lookup(parentIno, name);
    const inode = this.mutable(ino);
    if (isDir(inode.mode)) throw new FsError('EISDIR', 'is a directory', { inode: ino });
    if ((inode.flags & (IMMUTABLE_FL | APPEND_FL)) !== 0) throw new FsError('EPERM', 'the file is immutable or append-only', { inode: ino });
    this.unlinkName(parentIno, parent, name);
    this.stamp(parent, { m: true, c: true });
    this.putInode(parentIno, parent);
    return this.dropLink(ino, inode, keep);
  }

  private dropLink(ino: number, inode: MutableInode, keep: (ino: number) => boolean): { ino: number; freed: boolean } {
    inode.linksCount = Math.max(0, inode.linksCount - 1);
    this.stamp(inode, { c: true });
    if (inode.linksCount > 0) {
      this.putInode(ino, inode);
      return { ino, freed: false };
    }
    if (keep(ino)) {
      // Still open: on the orphan list until its last close (a crash meanwhile leaves
      // it for the next read-write open, or e2fsck, to free).
      this.addOrphan(ino, inode);
      this.putInode(ino, inode);
      return { ino, freed: false };
    }
    this.freeInode(ino, inode);
    return { ino, freed: true };
  }

  /** An inode freed by this writer or before: no links, a deletion time, not an open orphan. */
  private isFreed(ino: number, inode: Inode): boolean {
    return inode.linksCount === 0 && inode.dtime !== 0 && !this.orphans.has(ino);
  }

  /** Free an inode with no links left (its blocks, xattr block and number). */
  freeInode(ino: number, inode: MutableInode = this.mutable(ino)): void {
    const fast = isSymlink(inode.mode) && (inode.flags & INLINE_DATA_FL) === 0 && this.core.isFastSymlink(inode);
    const hasMap = (isReg(inode.mode) || isDir(inode.mode) || isSymlink(inode.mode)) && !fast && (inode.flags & INLINE_DATA_FL) === 0;
    if (hasMap) this.punch(ino, inode, 0, LOGICAL_END);
    if (this.eaInodes && (inode.flags & EA_INODE_FL) === 0) this.releaseEaRefs(this.core.inodeXattrs(ino, inode));
    this.dropXattrBlock(ino, inode);
    inode.linksCount = 0;
    inode.dtime = Math.max(1, Math.floor(Date.now() / 1000));
    inode.size = 0;
    this.putInode(ino, inode);
    this.alloc.freeInode(ino, isDir(inode.mode));
  }

  /** Release an unlinked inode kept open (last close). */
  releaseOrphan(ino: number): void {
    if (!this.orphans.has(ino)) return;
    const inode = cloneInode(this.core.readInode(ino));
    this.unchainOrphan(ino, inode);
    if (inode.linksCount === 0) this.freeInode(ino, inode);
    else this.putInode(ino, inode);
  }

  /** Inodes on the orphan list that this writer put there (unlinked while open). */
  private readonly orphans = new Set<number>();

  /** Push an inode on the superblock's orphan list (i_dtime links the list). */
  private addOrphan(ino: number, inode: MutableInode): void {
    inode.dtime = this.sb.lastOrphan;
    this.core.setSuperblock(changedSuperblock(this.sb, { lastOrphan: ino }));
    this.orphans.add(ino);
  }

  /** Take an inode off the orphan list. */
  private unchainOrphan(ino: number, inode: MutableInode): void {
    const next = inode.dtime;
    inode.dtime = 0;
    this.orphans.delete(ino);
    if (this.sb.lastOrphan === ino) {
      this.core.setSuperblock(changedSuperblock(this.sb, { lastOrphan: next }));
      return;
    }
    let cur = this.sb.lastOrphan;
    for (let steps = 0; cur !== 0 && steps <= this.sb.inodesCount; steps++) {
      const prev = this.core.readInode(cur);
      if (prev.dtime === ino) {
        const fixed = cloneInode(prev);
        fixed.dtime = next;
        this.putInode(cur, fixed);
        return;
      }
      cur = prev.dtime;
    }
    throw corrupted('orphan list', `inode ${ino} is not on the orphan list`, { inode: ino });
  }

  /**
   * Process the orphan list left by a crash (or by another driver): inodes with no
   * links are freed, others (truncations cut short) are cut to their size. Run when
   * the filesystem is opened for writing, and before it is closed.
   */
  processOrphans(): number {
    let cur = this.sb.lastOrphan;
    const seen = new Set<number>();
    let done = 0;
    while (cur !== 0) {
      if (seen.has(cur) || cur < this.sb.firstIno || cur > this.sb.inodesCount) throw corrupted('orphan list', `orphan list loops or names inode ${cur}`, { inode: cur });
      seen.add(cur);
      const inode = cloneInode(this.core.readInode(cur));
      const next = inode.dtime;
      inode.dtime = 0;
      this.core.setSuperblock(changedSuperblock(this.sb, { lastOrphan: next }));
      this.orphans.delete(cur);
      if (inode.linksCount === 0) {
        this.freeInode(cur, inode);
      } else {
        if (isReg(inode.mode) && (inode.flags & INLINE_DATA_FL) === 0) this.punch(cur, inode, Math.ceil(inode.size / this.bs), LOGICAL_END);
        this.putInode(cur, inode);
      }
      done++;
      cur = next;
    }
    return done;
  }

  rmdir(parentIno: number, name: Uint8Array): number {
    if (name.length === 1 && name[0] === 0x2e) throw new FsError('EINVAL', 'cannot remove "."');
    if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) throw new FsError('ENOTEMPTY', 'cannot remove ".."');
    const parent = this.dirForChange(parentIno);
    const ino = this.core.lookup(parentIno, name);
    const dir = this.mutable(ino);
    if (!isDir(dir.mode)) throw new FsError('ENOTDIR', 'not a directory', { inode: ino });
    if ((dir.flags & (IMMUTABLE_FL | APPEND_FL)) !== 0) throw new FsError('EPERM', 'the directory is immutable or append-only', { inode: ino });
    if (!this.dirIsEmpty(ino, dir)) throw new FsError('ENOTEMPTY', 'directory not empty', { inode: ino });
    this.unlinkName(parentIno, parent, name);
    this.decLinks(parent);
    this.stamp(parent, { m: true, c: true });
    this.putInode(parentIno, parent);
    this.freeInode(ino, dir);
    this.core.invalidateDir(ino);
    return ino;
  }

  private dirIsEmpty(ino: number, dir: MutableInode): boolean {
    if ((dir.flags & INLINE_DATA_FL) !== 0) return this.core.inlineDirEntries(ino, dir).entries.length === 0;
    return isEmptyDir(this.dirStore(ino, dir), this.dirContext(ino, dir), this.indexed(dir));
  }

  /** True when `ancestor` is `ino` or one of its ancestors (walking '..'). */
  private isAncestor(ancestor: number, ino: number): boolean {
    let cur = ino;
    for (let depth = 0; depth < 65536; depth++) {
      if (cur === ancestor) return true;
      if (cur === 2) return false;
      const up = this.core.lookup(cur, new Uint8Array([0x2e, 0x2e]));
      if (up === cur) return false;
      cur = up;
    }
    throw corrupted('directory', 'directory loop while walking up to the root', { inode: ino });
  }

  rename(oldDirIno: number, oldName: Uint8Array, newDirIno: number, newName: Uint8Array, flags = 0, keep: (ino: number) => boolean = () => false): void {
    if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) !== 0 || flags === (RENAME_NOREPLACE | RENAME_EXCHANGE)) throw new FsError('EINVAL', 'invalid rename flags');
    this.checkName(newName);
    const dots = (n: Uint8Array): boolean => (n.length === 1 && n[0] === 0x2e) || (n.length === 2 && n[0] === 0x2e && n[1] === 0x2e);
    if (dots(oldName)) throw new FsError('EBUSY', 'cannot rename "." or ".."');
    const oldDir = this.dirForChange(oldDirIno);
    const newDir = oldDirIno === newDirIno ? oldDir : this.dirForChange(newDirIno);
    const srcIno = this.core.lookup(oldDirIno, oldName);
    const src = this.mutable(srcIno);
    const srcIsDir = isDir(src.mode);
    const dstIno = this.core.find(newDirIno, newName);
    // The checks in the order of the kernel's do_renameat2 and vfs_rename, so that each
    // case fails with the errno it gets there.
    if ((flags & RENAME_NOREPLACE) !== 0 && dstIno !== undefined) throw new FsError('EEXIST', 'file exists', { inode: newDirIno });
    if ((flags & RENAME_EXCHANGE) !== 0 && dstIno === undefined) throw new FsError('ENOENT', 'no such file to exchange with', { inode: newDirIno });
    if (newDirIno !== oldDirIno) {
      // lock_rename's traps: the source may not be an ancestor of the target's directory,
      // nor the target an ancestor of the source's (whatever the types involved).
      if (srcIsDir && this.isAncestor(srcIno, newDirIno)) throw new FsError('EINVAL', 'cannot move a directory into itself', { inode: srcIno });
      if (dstIno !== undefined && isDir(this.core.liveInode(dstIno).mode) && this.isAncestor(dstIno, oldDirIno)) {
        throw new FsError((flags & RENAME_EXCHANGE) !== 0 ? 'EINVAL' : 'ENOTEMPTY', 'the target is an ancestor of the source', { inode: dstIno });
      }
    }
    if (dstIno === srcIno) {
      // Two names of the same inode (or the same name): nothing to do (POSIX).
      return;
    }
    if ((src.flags & (IMMUTABLE_FL | APPEND_FL)) !== 0) throw new FsError('EPERM', 'the file is immutable or append-only', { inode: srcIno });
    const t = now();
    if ((flags & RENAME_EXCHANGE) !== 0) {
      if (dstIno === undefined) throw new FsError('ENOENT', 'no such file to exchange with', { inode: newDirIno });
      const dst = this.mutable(dstIno);
      const dstIsDir = isDir(dst.mode);
      if ((dst.flags & (IMMUTABLE_FL | APPEND_FL)) !== 0) throw new FsError('EPERM', 'the target is immutable or append-only', { inode: dstIno });
      this.uninlineDir(oldDirIno, oldDir);
      if (newDir !== oldDir) this.uninlineDir(newDirIno, newDir);
      replaceEntry(this.dirStore(newDirIno, newDir), this.dirContext(newDirIno, newDir), this.indexed(newDir), newName, srcIno, this.fileType(src.mode));
      replaceEntry(this.dirStore(oldDirIno, oldDir), this.dirContext(oldDirIno, oldDir), this.indexed(oldDir), oldName, dstIno, this.fileType(dst.mode));
      this.core.dirIndexAdd(newDirIno, newName, srcIno);
      this.core.dirIndexAdd(oldDirIno, oldName, dstIno);
      if (oldDirIno !== newDirIno) {
        if (srcIsDir) this.setDotdot(srcIno, src, newDirIno);
        if (dstIsDir) this.setDotdot(dstIno, dst, oldDirIno);
        if (srcIsDir !== dstIsDir) {
          if (srcIsDir) {
            this.incLinks(newDir);
            this.decLinks(oldDir);
          } else {
            this.incLinks(oldDir);
            this.decLinks(newDir);
          }
        }
      }
      this.stamp(src, { c: true }, t);
      this.stamp(dst, { c: true }, t);
      this.putInode(srcIno, src);
      this.putInode(dstIno, dst);
      this.finishDirs(oldDirIno, oldDir, newDirIno, newDir, t);
      return;
    }
    if (dstIno !== undefined) {
      const dst = this.mutable(dstIno);
      const dstIsDir = isDir(dst.mode);
      if ((dst.flags & (IMMUTABLE_FL | APPEND_FL)) !== 0) throw new FsError('EPERM', 'the target is immutable or append-only', { inode: dstIno });
      if (srcIsDir && !dstIsDir) throw new FsError('ENOTDIR', 'cannot replace a non-directory with a directory', { inode: dstIno });
      if (!srcIsDir && dstIsDir) throw new FsError('EISDIR', 'cannot replace a directory with a non-directory', { inode: dstIno });
      if (dstIsDir && !this.dirIsEmpty(dstIno, dst)) throw new FsError('ENOTEMPTY', 'directory not empty', { inode: dstIno });
      this.uninlineDir(newDirIno, newDir);
      replaceEntry(this.dirStore(newDirIno, newDir), this.dirContext(newDirIno, newDir), this.indexed(newDir), newName, srcIno, this.fileType(src.mode));
      this.core.dirIndexAdd(newDirIno, newName, srcIno);
      this.unlinkName(oldDirIno, oldDir, oldName);
      if (srcIsDir) {
        if (oldDirIno !== newDirIno) {
          this.setDotdot(srcIno, src, newDirIno);
          this.decLinks(oldDir);
        }
        // The replaced directory's '..' link to newDir goes with it.
        this.decLinks(newDir);
        if (oldDirIno !== newDirIno) this.incLinks(newDir);
        this.stamp(src, { c: true }, t);
        this.putInode(srcIno, src);
        this.finishDirs(oldDirIno, oldDir, newDirIno, newDir, t);
        this.freeInode(dstIno, dst);
        this.core.invalidateDir(dstIno);
        return;
      }
      this.stamp(src, { c: true }, t);
      this.putInode(srcIno, src);
      this.finishDirs(oldDirIno, oldDir, newDirIno, newDir, t);
      this.dropLink(dstIno, dst, keep);
      return;
    }
    this.link(newDirIno, newDir, newName, srcIno, src.mode);
    this.unlinkName(oldDirIno, oldDir, oldName);
    if (srcIsDir && oldDirIno !== newDirIno) {
      this.setDotdot(srcIno, src, newDirIno);
      this.incLinks(newDir);
      this.decLinks(oldDir);
    }
    this.stamp(src, { c: true }, t);
    this.putInode(srcIno, src);
    this.finishDirs(oldDirIno, oldDir, newDirIno, newDir, t);
  }

  private fileType(mode: number): number {
    return this.hasFileType ? fileTypeFromMode(mode) : 0;
  }

  private finishDirs(oldDirIno: number, oldDir: MutableInode, newDirIno: number, newDir: MutableInode, t: Timestamp): void {
    this.stamp(oldDir, { m: true, c: true }, t);
    this.putInode(oldDirIno, oldDir);
    if (newDir !== oldDir) {
      this.stamp(newDir, { m: true, c: true }, t);
      this.putInode(newDirIno, newDir);
    }
  }

  /** Point a directory's '..' at `parent`. */
  private setDotdot(ino: number, dir: MutableInode, parent: number): void {
    if ((dir.flags & INLINE_DATA_FL) !== 0) {
      // Inline directories keep their parent in the first four bytes of i_block.
      dir.block[0] = parent & 0xff;
      dir.block[1] = (parent >>> 8) & 0xff;
      dir.block[2] = (parent >>> 16) & 0xff;
      dir.block[3] = (parent >>> 24) & 0xff;
    } else {
      replaceEntry(this.dirStore(ino, dir), this.dirContext(ino, dir), this.indexed(dir), new Uint8Array([0x2e, 0x2e]), parent, this.fileType(S_IFDIR));
    }
    this.core.dirIndexAdd(ino, new Uint8Array([0x2e, 0x2e]), parent);
  }
}

/** i_block device encoding: old 16-bit form when it fits, else the new 32-bit form. */
function encodeDevice(block: Uint8Array, [major, minor]: readonly [number, number]): void {
  block.fill(0);
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  if (major < 256 && minor < 256) {
    view.setUint32(0, (major << 8) | minor, true);
  } else {
    view.setUint32(4, ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0, true);
  }
}

/**
 * The permission bits an access ACL implies, and whether the ACL says no more than
 * they do (then it is not stored: posix_acl_equiv_mode).
 */
function aclMode(acl: readonly AclEntry[]): { mode: number; equivalent: boolean } {
  let user = 0;
  let group = 0;
  let other = 0;
  let mask: number | undefined;
  let equivalent = true;
  for (const e of acl) {
    if (e.tag === ACL_USER_OBJ) user = e.perm & 7;
    else if (e.tag === ACL_GROUP_OBJ) group = e.perm & 7;
    else if (e.tag === ACL_OTHER) other = e.perm & 7;
    else if (e.tag === ACL_MASK) {
      mask = e.perm & 7;
      equivalent = false;
    } else equivalent = false;
  }
  return { mode: (user << 6) | ((mask ?? group) << 3) | other, equivalent };
}

export type { Mapping };
