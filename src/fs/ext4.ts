/**
 * `Ext4`: an ext2/ext3/ext4 filesystem on a channel, read side.
 *
 * Inode-level calls (lookup, getattr, readdirInode, read, readlinkInode, getxattrInode,
 * listxattrInode, statfs) are what the FUSE layer uses; path-level calls shaped like
 * `node:fs/promises` (stat, lstat, readdir, readFile, readlink, createReadStream,
 * getxattr, listxattr, realpath, exists), but synchronous, are for library users
 * and the CLI. Every error is an `FsError` with an errno code.
 *
 * All metadata goes through the CachingChannel (`view` of cached blocks); file data is
 * read in whole extent runs with `readDirect`, which neither evicts nor promotes the
 * metadata in the cache. Decoded inodes live in a bounded InodeCache; an inode's
 * checksum is verified once, when it enters that cache.
 */
import { Readable } from 'node:stream';
import { FsError, corrupted, quoteName, quoteText } from '../errors.js';
import type { IoChannel } from '../io/channel.js';
import { FileChannel, type FileChannelOptions } from '../io/file-channel.js';
import { JournalOverlayChannel, type OverlayBlock } from '../io/journal-overlay.js';
import { decodeJournalSuperblock, planReplay } from '../ondisk/jbd2.js';
import { CachingChannel, type CacheStats } from '../cache/caching-channel.js';
import { decodeSuperblock, STATE_ERROR, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, type Superblock } from '../ondisk/superblock.js';
import { checkFeatures, INCOMPAT_MMP, INCOMPAT_RECOVER, COMPAT_HAS_JOURNAL, INCOMPAT_EXTENTS, INCOMPAT_FILETYPE, INCOMPAT_LARGEDIR, INCOMPAT_CASEFOLD, INCOMPAT_EA_INODE, RO_COMPAT_HUGE_FILE, COMPAT_DIR_INDEX, ENCODING_FLAG_STRICT, type FeatureCheck } from '../ondisk/features.js';
import { decodeGroupDesc, BG_INODE_UNINIT, type GroupDesc } from '../ondisk/group-desc.js';
import { descriptorBlockFor, groupLayout, inodeLocation } from '../ondisk/layout.js';
import {
  decodeInode,
  emptyInodeSummary,
  summarizeDecoded,
  summarizeInode,
  inodeBlocksBytes,
  inodeCsumSeed,
  inodeFileAcl,
  verifyInodeChecksum,
  isDir,
  isSymlink,
  isReg,
  isChr,
  isBlk,
  CASEFOLD_FL,
  ENCRYPT_FL,
  INDEX_FL,
  INLINE_DATA_FL,
  S_IFREG,
  type Inode,
  type InodeSummary,
} from '../ondisk/inode.js';
import { decodeInodeXattrs, decodeXattrBlock, hasInodeXattrMagic, xattrNameString, splitXattrName, XATTR_INDEX, type XattrEntry } from '../ondisk/xattr.js';
import { assembleInlineData, inlineDataCapacity, isInlineDataXattr } from '../ondisk/inline-data.js';
import { aclChmod, decodeVfsAcl, encodeVfsAcl, ext4AclToVfs } from '../ondisk/acl.js';
import { decodeDirBlock, findInDirBlock, scanDirBlock, decodeInlineDir, hasSlashOrNul, isDotName, DIRENT_HEADER_SIZE, DIRENT_MIN_REC_LEN, FT, NAME_MAX, type DirBlockOptions, type DirEntry } from '../ondisk/dirent.js';
import { decodeDxRoot, decodeDxNode, dxLookup, isDxNodeBlock, DX_HASH_CONTINUED, type DxEntry, type DxNode, type DxRoot } from '../ondisk/htree.js';
import { dirHashName, effectiveHashVersion, isKeylessHashVersion, DX_HASH, type DirHash } from '../ondisk/dirhash.js';
import { noKeyName, noKeySymlinkTarget } from '../ondisk/fscrypt.js';
import { COOKIE_AFTER_DOT, COOKIE_AFTER_DOTDOT, HASH_KEYS, cookieAfterKey, firstKeyOfMajor, hashKey, isHashCookie, majorOfKey, resumeKey } from './readdir-cookie.js';
import { casefoldNameOrNull } from '../ondisk/casefold.js';
import { InodeCache } from './inode-cache.js';
import { InodeChecksumMemo } from './inode-csum.js';
import { NodeCache } from './node-cache.js';
import type { ExtentNode } from '../ondisk/extent.js';
import { Writer, type Creator, type FsCore, type SetAttr } from './writer.js';
import type { Timestamp } from '../ondisk/time.js';
import { mapRun, residentRuns, type MapContext } from './blockmap.js';
import { MultiMountProtection, type MmpOptions } from './mmp.js';
import { kindOfFileType, kindOfMode, type DirEntryInfo, type FileKind, type InodeListing, type Stat, type StatFs } from './types.js';

export const ROOT_INO = 2;
/** Symlinks followed while resolving one path before ELOOP (the kernel's limit). */
export const MAX_SYMLINKS = 40;
export const PATH_MAX = 4096;
/** Paths of at most this many UTF-16 units are under PATH_MAX bytes in UTF-8 (3 bytes a unit at most). */
const MEMO_PATH_MAX = Math.floor((PATH_MAX - 1) / 3);
/** Directory paths kept by Ext4.dirPaths. */
const DIR_PATHS = 256;
/** The largest single read the API serves (a bound on memory per call). */
export const MAX_READ = 1 << 30;
/** Largest run of blocks read with one request. */
const MAX_RUN_BLOCKS = 256;
/**
 * Heap the per-directory name indexes may hold in all (estimated, see nameIndexCost).
 * It was a count of 200,000 names, enforced only when an index was built: names a
 * write added to an indexed directory were never checked, so a directory receiving
 * creates grew its index without limit: 130,000 creates of 32-byte names in one
 * directory through the mount peaked at 134 MiB RSS, 126 MiB with this bound. Past it,
 * lookups in that directory read its htree instead (measured through the library:
 * ~150 instead of ~80 us of CPU per lookup + create in a 100,000-name directory).
 */
const DIR_INDEX_BYTES = 4 << 20;
/**
 * Heap bytes of one indexed name beyond its length: measured 47 + length for Maps of
 * 1,000 latin1 keys (the Map entry and the string), plus room for the Map's table,
 * which doubles as it grows.
 */
const NAME_INDEX_ENTRY_BYTES = 64;
/** Directories whose lookups are counted towards a name index (see busyHtreeIndex). */
const HTREE_LOOKUP_COUNTERS = 4096;
/** Lookups in an indexed directory before it gets a name index (at least; see busyHtreeIndex). */
const HTREE_INDEX_AFTER = 16;

/** A name's bytes as a Map key (one char per byte); a Buffer (a name from a path) is not wrapped in another. */
function latin1Key(name: Uint8Array): string {
  return (Buffer.isBuffer(name) ? name : Buffer.from(name.buffer, name.byteOffset, name.length)).toString('latin1');
}

/** `error` to throw for an operation on `path`: an FsError that names no path gets it (with the error as its cause). */
function withPath(error: unknown, path: string | Uint8Array): unknown {
  if (error instanceof FsError && error.context.path === undefined) {
    return new FsError(error.code, error.message, { ...error.context, path: typeof path === 'string' ? path : utf8.decode(path) }, { cause: error });
  }
  return error;
}

/** A name's bytes (an ASCII name given as a string: its characters). */
function nameBytes(name: Uint8Array | string): Uint8Array {
  return typeof name === 'string' ? Buffer.from(name, 'latin1') : name;
}

/** A name's name-index key (an ASCII name given as a string is its own). */
function nameKey(name: Uint8Array | string): string {
  return typeof name === 'string' ? name : latin1Key(name);
}

/** Whether every character of `text` is ASCII. */
function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Estimated heap bytes of one name of `length` bytes in a name index. */
function nameIndexCost(length: number): number {
  return NAME_INDEX_ENTRY_BYTES + length;
}

/** The names of one directory (latin1Key -> inode) and their estimated heap bytes. */
interface NameIndex {
  readonly names: Map<string, number>;
  bytes: number;
}
/**
 * Decoded extent-tree and directory blocks kept, weighed by the entries they decode to,
 * where 4,096 blocks of either could hold over 100 MiB. An extent entry is an object of
 * some 100 bytes: about 6 MiB of extents at most.
 */
const NODE_CACHE_ENTRIES = 65_536;
/**
 * A directory entry costs about 130 bytes of heap (the entry and its name, a view into
 * one copy of its block): about 0.5 MiB of decoded directory blocks at most, some 40
 * blocks, which covers the directory being listed (READDIRPLUS comes back for each
 * ~4 KiB of reply). A listing fills them once and rarely looks again (the kernel caches
 * what READDIRPLUS returned), so more would mostly hold garbage-to-be: 16,384 entries
 * cost 2-3 MiB more peak RSS over the mount benchmark's walk and read-every-file passes.
 */
const DIR_LEAF_CACHE_ENTRIES = 4_096;
/**
 * Entries of the decoded htree roots and nodes kept (each kind; an entry is an object
 * of ~40 bytes, so ~0.6 MiB at most each): 32 full 4 KiB index blocks, the roots and
 * nodes of the directories in use. Without them every lookup and create in an htree
 * directory that has no name index decoded and checksummed its root and node again.
 */
const DX_CACHE_ENTRIES = 16_384;
/** Inode-table blocks fetched together when one misses the cache. */
const INODE_TABLE_READAHEAD = 64;
/** Most inode-table bytes prefetchInodeTables asks for (a walk of a huge filesystem does not flood the page cache). */
const PREFETCH_TABLES_BYTES = 64 << 20;
/** Most blocks one prefetchBlocks hint asks for (256 KiB with 4 KiB blocks). */
const PREFETCH_HINT_BLOCKS = 64;
/** The xattr list of an inode that has none (shared: nothing to allocate per inode). */
const NO_XATTRS: readonly XattrEntry[] = Object.freeze([]);
/** Largest xattr value (the VFS limit). */
const XATTR_SIZE_MAX = 65536;
const ACL_ACCESS = 'system.posix_acl_access';

export interface Ext4Options {
  /** Verify metadata checksums (default true); false lets recovery work read damaged images. */
  readonly checksums?: boolean;
  /** Decoded inodes kept in memory (default 8192). */
  readonly inodeCacheSize?: number;
  /** Cache budget in bytes when `open` wraps a plain channel (default: the CachingChannel default). */
  readonly cacheSize?: number;
  /**
   * Open for writing (default false). EROFS when the channel is read-only or the
   * filesystem has a feature ext4ts cannot keep consistent (the message names it).
   */
  readonly write?: boolean;
  /** Multi-mount protection of a writable `mmp` filesystem (see ./mmp.ts): waits, node name, clock. */
  readonly mmp?: MmpOptions;
  /**
   * A read-only open of a filesystem whose journal needs recovery reads it as the
   * kernel's recovery would leave it: the journal's committed transactions replayed in
   * memory, nothing written (default true). False reads the device as it is, like the
   * kernel's `noload`: for a journal too damaged to replay.
   */
  readonly journal?: boolean;
}

export interface OpenFileOptions extends Ext4Options, Omit<FileChannelOptions, 'readOnly' | 'blockSize'> {}

const utf8 = new TextDecoder('utf-8', { fatal: false });
const utf8Encoder = new TextEncoder();

/** A name or path as UTF-8 bytes (Buffer.from: a third of TextEncoder's time for short strings, same bytes). */
function toBytes(name: string | Uint8Array): Uint8Array {
  return typeof name === 'string' ? Buffer.from(name, 'utf8') : name;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const DOT = new Uint8Array([0x2e]);
const DOTDOT = new Uint8Array([0x2e, 0x2e]);

/** The index of a hash-ordered directory, as Ext4.htree reads it. */
interface Htree {
  readonly root: DxRoot;
  /** Effective hash version (effectiveHashVersion). */
  readonly version: number;
  /** Physical block of logical block `lblk` (EUCLEAN past the end or in a hole). */
  physicalOf(lblk: number): number;
  /** Entries of the dx_node at logical block `lblk`. */
  node(lblk: number): readonly DxEntry[];
  /** The hash the directory files `name` under. */
  hash(name: Uint8Array): DirHash;
}

/** One leaf of an index walk: its index hash (bit 0: continues the previous leaf's run) and logical block. */
interface HtreeLeaf {
  readonly hash: number;
  readonly block: number;
}

export class Ext4 {
  readonly channel: CachingChannel;
  private superblock: Superblock;
  readonly features: FeatureCheck;
  /** The write side; undefined on a read-only filesystem. */
  private readonly writer: Writer | undefined;
  private readonly verify: boolean;
  private readonly groups: (GroupDesc | undefined)[];
  private readonly inodes: InodeCache;
  private readonly hugeFile: boolean;
  private readonly hasFileType: boolean;
  private readonly casefoldFs: boolean;
  private readonly strictCasefold: boolean;
  private readonly eaInode: boolean;
  private closed = false;
  /** The MMP heartbeat of a writable filesystem with the mmp feature. */
  private mmp: MultiMountProtection | undefined;
  /** Inode-table blocks' checksums verified in one native call each (read-only; see inode-csum.ts). */
  private readonly inodeCsums: InodeChecksumMemo | undefined;

  private constructor(channel: CachingChannel, sb: Superblock, features: FeatureCheck, options: Ext4Options) {
    this.channel = channel;
    this.superblock = sb;
    this.features = features;
    this.verify = options.checksums ?? true;
    this.groups = new Array<GroupDesc | undefined>(sb.groupCount);
    this.inodes = new InodeCache(options.inodeCacheSize ?? 8192);
    this.hugeFile = (sb.featureRoCompat & RO_COMPAT_HUGE_FILE) !== 0;
    this.hasFileType = (sb.featureIncompat & INCOMPAT_FILETYPE) !== 0;
    this.casefoldFs = (sb.featureIncompat & INCOMPAT_CASEFOLD) !== 0;
    this.strictCasefold = this.casefoldFs && (sb.encodingFlags & ENCODING_FLAG_STRICT) !== 0;
    this.eaInode = (sb.featureIncompat & INCOMPAT_EA_INODE) !== 0;
    this.writer = options.write === true ? new Writer(this.core(), (g) => this.loadGroupDesc(g)) : undefined;
    // Records are checked a table block at a time where they cannot change (read-only).
    this.inodeCsums = this.writer === undefined && this.verify && sb.hasMetadataCsum ? new InodeChecksumMemo(sb) : undefined;
    const fs = this; // eslint-disable-line @typescript-eslint/no-this-alias
    this.mapCtx = {
      get sb() {
        return fs.superblock; // as currently written
      },
      cache: channel,
      extentSeed: (ino, inode) => fs.checksumSeed(ino, inode),
      nodes: this.extentNodes,
    };
  }

  /** The superblock as currently written (free counts and state change on a writable filesystem). */
  get sb(): Superblock {
    return this.superblock;
  }

  /** True when the filesystem was opened for writing. */
  get writable(): boolean {
    return this.writer !== undefined;
  }

  /** The internals the write side works with. */
  private core(): FsCore {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const fs = this;
    return {
      get sb() {
        return fs.superblock;
      },
      channel: this.channel,
      setSuperblock: (sb) => {
        this.superblock = sb;
      },
      readInode: (ino) => this.readInode(ino),
      liveInode: (ino) => this.liveInode(ino),
      lookup: (dir, name) => this.lookup(dir, name),
      find: (dir, name) => this.findEntry(dir, name),
      dirIndexAdd: (dir, name, ino) => {
        const index = this.dirIndexes.get(dir);
        if (index === undefined) return;
        const key = latin1Key(name);
        if (!index.names.has(key)) {
          index.bytes += nameIndexCost(key.length);
          this.dirIndexBytes += nameIndexCost(key.length);
        }
        index.names.set(key, ino);
        if (this.dirIndexBytes > DIR_INDEX_BYTES) this.trimDirIndexes(dir);
      },
      dirIndexRemove: (dir, name) => {
        const index = this.dirIndexes.get(dir);
        const key = latin1Key(name);
        if (index?.names.delete(key) === true) {
          index.bytes -= nameIndexCost(key.length);
          this.dirIndexBytes -= nameIndexCost(key.length);
        }
      },
      mapRun: (ino, inode, lblk, max) => mapRun(this.mapCtx, ino, inode, lblk, max),
      isFastSymlink: (inode) => this.isFastSymlink(inode),
      inodeXattrs: (ino, inode) => this.inodeXattrs(ino, inode),
      blockXattrs: (ino, inode) => this.blockXattrs(ino, inode),
      inlineData: (ino, inode) => this.inlineData(ino, inode),
      inlineDirEntries: (ino, inode) => {
        const d = this.inlineDir(ino, inode);
        return { parent: d.parent, entries: d.entries };
      },
      storeInode: (ino, inode) => this.inodes.set(ino, inode),
      invalidateDir: (ino) => {
        this.dropDirIndex(ino);
      },
      invalidateStatfs: () => {
        this.statfsCache = undefined;
      },
      invalidateBlocks: (block, count) => {
        this.extentNodes.delete(block, count);
        this.dirLeaves.delete(block, count);
        this.dxRoots.delete(block, count);
        this.dxNodes.delete(block, count);
      },
      dxRoot: (physical, decode) => this.dxRoots.getOrDecode(physical, decode),
      dxNode: (physical, decode) => this.dxNodes.getOrDecode(physical, decode),
    };
  }

  private w(): Writer {
    if (this.writer === undefined) throw new FsError('EROFS', `${this.channel.name}: the filesystem is open read-only`);
    if (this.mmp?.lost !== undefined) throw new FsError('EROFS', `${this.channel.name}: writes stopped: ${this.mmp.lost.message}`);
    return this.writer;
  }

  /**
   * Open the filesystem on `channel` (read-only). A channel that is not already a
   * CachingChannel is wrapped in one.
   */
  static open(channel: IoChannel, options: Ext4Options = {}): Ext4 {
    const cache =
      channel instanceof CachingChannel
        ? channel
        : new CachingChannel(channel, options.cacheSize === undefined ? {} : { cacheSize: options.cacheSize });
    cache.setBlockSize(1024);
    if (cache.sizeBytes < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) {
      throw new FsError('EINVAL', `${cache.name}: too small to hold an ext2/3/4 filesystem (${cache.sizeBytes} bytes)`, { device: cache.name });
    }
    const raw = cache.read(SUPERBLOCK_OFFSET / 1024, 1);
    let sb: Superblock;
    try {
      sb = decodeSuperblock(raw, { verifyChecksum: options.checksums ?? true });
    } catch (error) {
      if (error instanceof FsError && error.code === 'EUCLEAN' && /magic/i.test(error.message)) {
        throw new FsError('EINVAL', `${cache.name}: not an ext2/ext3/ext4 filesystem (bad superblock magic)`, { device: cache.name }, { cause: error });
      }
      throw error;
    }
    const wantWrite = options.write === true;
    const features = checkFeatures(sb, wantWrite);
    if (wantWrite) {
      if (cache.readOnly) throw new FsError('EROFS', `${cache.name}: the device is open read-only`, { device: cache.name });
      if (!features.canWrite) throw new FsError('EROFS', `${cache.name}: cannot be written: ${features.reasons.join('; ')}`, { device: cache.name });
      if (sb.state & STATE_ERROR) throw new FsError('EROFS', `${cache.name}: the filesystem has errors recorded; run e2fsck before writing`, { device: cache.name });
    }
    if (sb.blocksCount * sb.blockSize > cache.sizeBytes) {
      throw corrupted('superblock', `the filesystem claims ${sb.blocksCount} blocks of ${sb.blockSize} bytes, but the device holds only ${cache.sizeBytes} bytes`);
    }
    cache.setBlockSize(sb.blockSize);
    // Multi-mount protection goes first, before anything is written (as in the kernel).
    const mmp = wantWrite && (sb.featureIncompat & INCOMPAT_MMP) !== 0 ? MultiMountProtection.start(cache.inner, sb, { verifyChecksum: options.checksums ?? true, ...options.mmp }) : undefined;
    let fs: Ext4;
    try {
      fs = new Ext4(cache, sb, features, options);
      fs.mmp = mmp;
      fs.writer?.markMounted();
    } catch (error) {
      try {
        mmp?.stop();
      } catch {
        // the open's own error is the one to report
      }
      throw error;
    }
    if (!wantWrite && options.journal !== false && (sb.featureIncompat & INCOMPAT_RECOVER) !== 0 && (sb.featureCompat & COMPAT_HAS_JOURNAL) !== 0) {
      // Reopened on a view of the device with the journal replayed (the superblock stays
      // the device's, as the kernel keeps its own copy through recovery).
      const replayed = fs.journalReplay();
      if (replayed !== undefined) {
        const view = new CachingChannel(new JournalOverlayChannel(cache.inner, replayed, sb.blockSize), options.cacheSize === undefined ? {} : { cacheSize: options.cacheSize });
        view.setBlockSize(sb.blockSize);
        fs = new Ext4(view, sb, features, options);
        fs.replayedBlocks = replayed.size;
      }
    }
    return fs;
  }

  /** Blocks a read-only open took from the journal (a replay in memory; see `journal` in Ext4Options). */
  replayedBlocks = 0;

  /**
   * Where the blocks a recovery of the journal (inode s_journal_inum) would write are
   * in it, as device blocks; undefined when it has nothing to replay. Errors name the
   * journal and say how to read without it.
   */
  private journalReplay(): Map<number, OverlayBlock> | undefined {
    const device = this.channel.name;
    try {
      const ino = this.sb.journalInum;
      if (ino === 0) throw new FsError('EOPNOTSUPP', 'it is on an external journal device', { device });
      const inode = this.readInode(ino);
      const bs = this.sb.blockSize;
      const logBlocks = Math.floor(inode.size / bs);
      const physical = (i: number): number => {
        if (i >= logBlocks) throw corrupted('journal', `log block ${i} past the journal inode's ${logBlocks} blocks`, { inode: ino });
        const run = mapRun(this.mapCtx, ino, inode, i, 1);
        if (run.kind !== 'data') throw corrupted('journal', `log block ${i} is not mapped`, { inode: ino });
        return run.physical;
      };
      const jsb = decodeJournalSuperblock(this.channel.read(physical(0), 1), { verifyChecksum: this.verify });
      if (jsb.blockSize !== bs) throw corrupted('journal superblock', `block size ${jsb.blockSize}, the filesystem's is ${bs}`);
      if (jsb.maxLen > logBlocks) throw corrupted('journal superblock', `${jsb.maxLen} blocks in a journal inode of ${logBlocks}`);
      const plan = planReplay(jsb, (i) => this.channel.read(physical(i), 1), { verifyChecksums: this.verify });
      if (plan.blocks.size === 0) return undefined;
      const out = new Map<number, OverlayBlock>();
      for (const [block, copy] of plan.blocks) {
        if (block >= this.sb.blocksCount) throw corrupted('journal', `transaction copies block ${block}, outside the filesystem's ${this.sb.blocksCount}`);
        out.set(block, { from: physical(copy.logBlock), escaped: copy.escaped });
      }
      return out;
    } catch (error) {
      if (!(error instanceof FsError)) throw error;
      throw new FsError(error.code, `${device}: the journal needs recovery and cannot be replayed: ${error.message} (--no-journal, or -o noload for a mount, reads the filesystem as it is on the device)`, { ...error.context, device }, { cause: error });
    }
  }

  /** Open an image file or block device (read-only unless `write`). */
  static openFile(path: string, options: OpenFileOptions = {}): Ext4 {
    const fileOptions: FileChannelOptions = { readOnly: options.write !== true };
    const channel = FileChannel.open(path, {
      ...fileOptions,
      ...(options.offset === undefined ? {} : { offset: options.offset }),
      ...(options.size === undefined ? {} : { size: options.size }),
      ...(options.lock === undefined ? {} : { lock: options.lock }),
    });
    try {
      return Ext4.open(channel, options);
    } catch (error) {
      channel.close();
      throw error;
    }
  }

  /**
   * Close the filesystem. A writable one is written back first and marked clean; if
   * that fails the error is thrown and the filesystem stays open (retry, or give up
   * with `abandon`).
   */
  close(): void {
    if (this.closed) return;
    this.writer?.close();
    this.mmp?.stop(); // seq CLEAN, once everything else is on the device
    this.channel.close();
    this.inodes.clear();
    this.closed = true;
  }

  /**
   * The multi-mount protection heartbeat (./mmp.ts `tick`) of a writable filesystem
   * with the mmp feature; a no-op otherwise. Call it about once a second (the FUSE
   * worker's housekeeping does); it rewrites the MMP block once per
   * s_mmp_update_interval. Throws EBUSY once if another node took the filesystem
   * over; writes are refused (EROFS) from then on.
   */
  mmpHeartbeat(now?: number): boolean {
    return this.mmp?.tick(now) ?? false;
  }

  /** Cache statistics (block cache, inode cache, directory name indexes). */
  stats(): CacheStats & {
    readonly inodeHits: number;
    readonly inodeMisses: number;
    readonly inodesCached: number;
    /** Names held by the directory name indexes, and their estimated heap bytes. */
    readonly namesIndexed: number;
    readonly nameIndexBytes: number;
  } {
    let namesIndexed = 0;
    for (const index of this.dirIndexes.values()) namesIndexed += index.names.size;
    return {
      ...this.channel.stats(),
      inodeHits: this.inodes.hits,
      inodeMisses: this.inodes.misses,
      inodesCached: this.inodes.size,
      namesIndexed,
      nameIndexBytes: this.dirIndexBytes,
    };
  }

  // ------------------------------------------------------------------ metadata

  /** Group descriptor `g`, decoded (and checksum-verified) once; on a writable filesystem, the current one. */
  groupDesc(g: number): GroupDesc {
    if (this.writer !== undefined) return this.writer.alloc.desc(g);
    return this.loadGroupDesc(g);
  }

  private loadGroupDesc(g: number): GroupDesc {
    const cached = this.groups[g];
    if (cached !== undefined) return cached;
    if (!Number.isInteger(g) || g < 0 || g >= this.sb.groupCount) throw new FsError('EINVAL', `group ${g} out of range`);
    const loc = descriptorBlockFor(this.sb, g);
    const view = this.channel.view(loc.block);
    const gd = decodeGroupDesc(view, loc.offset, this.sb, g, { verifyChecksum: this.verify, block: loc.block });
    const tableEnd = gd.inodeTable + this.sb.inodeTableBlocks;
    if (gd.inodeTable <= this.sb.firstDataBlock || tableEnd > this.sb.blocksCount) {
      throw corrupted('group descriptor', `group ${g}'s inode table (blocks ${gd.inodeTable}..${tableEnd - 1}) lies outside the filesystem`, { block: loc.block });
    }
    this.groups[g] = gd;
    return gd;
  }

  /**
   * Read an inode (through the inode cache). `cache: false` does not add an inode read
   * from the table to the cache (a scan's one-off reads, which would only push out the
   * inodes in use and leave long-lived garbage behind): it is remembered only until the
   * next such read (InodeCache.remember), for the calls about it that follow.
   */
  readInode(ino: number, cache = true): Inode {
    return this.loadInode(ino, cache, false);
  }

  /**
   * readInode; `transient` (with `cache` false) decodes the record in place in the block
   * cache's buffer: for callers that are done with the inode before the next call on the
   * channel (see decodeInode's `transient`).
   */
  private loadInode(ino: number, cache: boolean, transient: boolean): Inode {
    const cached = this.inodes.get(ino);
    if (cached !== undefined) return cached;
    const inode = this.decodeRecord(ino, transient && !cache);
    if (cache) this.inodes.set(ino, inode);
    else if (!transient) this.inodes.remember(ino, inode);
    return inode;
  }

  /** Decode inode `ino` from its table record (not the inode cache); `transient` as for loadInode. */
  private decodeRecord(ino: number, transient: boolean): Inode {
    const rec = this.inodeRecord(ino);
    return decodeInode(rec.view, { inodeNo: ino, inodeSize: this.sb.inodeSize, block: rec.block, offset: rec.offset, transient });
  }

  /** What inodeRecord found last (one object, overwritten by each call). */
  private readonly record: InodeRecordRef = { view: new Uint8Array(0), offset: 0, block: 0 };

  /**
   * Inode `ino`'s record in the inode table as the block cache holds it, its checksum
   * verified: the table block's view, the record's offset in it and the block number.
   * The answer is valid until the next call on the channel (which may recycle the
   * buffer) or to this method (which overwrites it). Not the inode cache's copy.
   */
  private inodeRecord(ino: number): InodeRecordRef {
    const loc = inodeLocation(this.sb, ino);
    const gd = this.groupDesc(loc.group);
    if ((gd.flags & BG_INODE_UNINIT) !== 0 && this.sb.hasGroupDescCsum) {
      throw corrupted('inode', `inode ${ino} is in group ${loc.group}, whose inode table is uninitialized (a reference to an unused inode)`, { inode: ino });
    }
    const block = gd.inodeTable + loc.tableBlock;
    // (Without a cache nothing is kept: no run to fetch, and no hint per inode read.)
    if (this.channel.cacheSize > 0 && !this.channel.has(block)) {
      // Neighbouring inodes are usually wanted soon (a directory's files): fetch a run
      // of the inode table with one read.
      const count = Math.min(INODE_TABLE_READAHEAD, this.sb.inodeTableBlocks - loc.tableBlock);
      this.channel.readahead(block, count);
      // A miss at most a run away from where the last run ended: a walk going through
      // the table about in order (inodes are numbered in the order a tree was filled).
      // Have the device fetch the next run meanwhile.
      const position = loc.group * this.sb.inodeTableBlocks + loc.tableBlock;
      if (Math.abs(position - this.nextTableRun) <= INODE_TABLE_READAHEAD) this.hintInodeTable(loc.group, loc.tableBlock + count);
      this.nextTableRun = position + count;
    }
    const view = this.channel.view(block);
    const at = loc.blockOffset;
    if (
      this.verify &&
      this.sb.hasMetadataCsum &&
      this.inodeCsums?.verified(ino, loc.group, loc.index, view, at) !== true &&
      !verifyInodeChecksum(view.subarray(at, at + this.sb.inodeSize), { inodeNo: ino, fsCsumSeed: this.sb.csumSeed })
    ) {
      throw corrupted('inode', 'checksum mismatch', { inode: ino, block });
    }
    const rec = this.record;
    rec.view = view;
    rec.offset = at;
    rec.block = block;
    return rec;
  }

  /** Position (group * table blocks + table block) just past the last inode-table run read; see loadInode. */
  private nextTableRun = Number.NEGATIVE_INFINITY;

  /**
   * Hint (CachingChannel.hint) the run of the inode table that starts at `tableBlock`
   * of `group`'s table, or at the next group's start when this table ends there; only
   * blocks that hold inodes in use (not past itable_unused, not an uninitialized table).
   * Never fails: a group whose descriptor cannot be read gets no hint.
   */
  private hintInodeTable(group: number, tableBlock: number): void {
    const sb = this.sb;
    if (tableBlock >= sb.inodeTableBlocks) {
      group++;
      tableBlock = 0;
    }
    if (group >= sb.groupCount) return;
    // Two runs: the next miss may start a few blocks past this run's end.
    this.hintTableRun(group, tableBlock, 2 * INODE_TABLE_READAHEAD);
  }

  /**
   * Hint up to `max` blocks of `group`'s inode table from `tableBlock`, only blocks that
   * hold inodes in use; returns how many were hinted. Never fails: a hint into a group
   * whose descriptor cannot be read gives 0 (the damage is reported when something in
   * that group is read, not by whatever led here).
   */
  private hintTableRun(group: number, tableBlock: number, max: number): number {
    try {
      const count = Math.min(max, this.usedTableBlocks(group) - tableBlock);
      if (count <= 0) return 0;
      this.channel.hint(this.groupDesc(group).inodeTable + tableBlock, count);
      return count;
    } catch (error) {
      if (!(error instanceof FsError)) throw error;
      return 0;
    }
  }

  /**
   * Blocks at the start of `group`'s inode table that hold inodes in use: up to the last
   * one not covered by bg_itable_unused, none in an uninitialized table (without group
   * descriptor checksums, the whole table).
   */
  private usedTableBlocks(group: number): number {
    const sb = this.sb;
    if (!sb.hasGroupDescCsum) return sb.inodeTableBlocks;
    const gd = this.groupDesc(group);
    if ((gd.flags & BG_INODE_UNINIT) !== 0) return 0;
    return Math.ceil(((sb.inodesPerGroup - gd.itableUnused) * sb.inodeSize) / sb.blockSize);
  }

  /**
   * Hint (CachingChannel.hint) every inode-table block that holds inodes in use, group
   * by group, up to `maxBytes` in all: for a walk of the whole tree, which reads them all,
   * so the device fetches them in a few long sequential reads at the start instead of a
   * run at a time as the walk gets to them. Returns at once; a group whose descriptor
   * cannot be read is skipped.
   */
  prefetchInodeTables(maxBytes = PREFETCH_TABLES_BYTES): void {
    const sb = this.sb;
    let left = Math.floor(maxBytes / sb.blockSize);
    for (let g = 0; g < sb.groupCount && left > 0; g++) left -= this.hintTableRun(g, 0, left);
  }

  /** The checksum seed (metadata_csum) of `ino`'s blocks, or undefined when checksums are not verified. */
  private checksumSeed(ino: number, inode: Inode): number | undefined {
    return this.verify && this.sb.hasMetadataCsum ? inodeCsumSeed(this.sb.csumSeed, ino, inode.generation) : undefined;
  }

  /** A live inode: one with a valid mode and links (a directory entry must not name a freed inode). */
  private liveInode(ino: number, cache = true, transient = false): Inode {
    const inode = this.loadInode(ino, cache, transient);
    checkLive(ino, inode.mode, inode.linksCount);
    return inode;
  }

  /** Bounce buffer of readData for runs a read covers in part (at most MAX_RUN_BLOCKS blocks). */
  private readScratch = new Uint8Array(0);
  /** Decoded extent tree blocks (verified once), by physical block. */
  private readonly extentNodes = new NodeCache<ExtentNode>(NODE_CACHE_ENTRIES, (node) => node.entries.length);
  /** What block mapping needs: one context for every inode (see MapContext); set by the constructor. */
  private readonly mapCtx: MapContext;

  /** What blockmap.ts's mapRun needs to map this filesystem's inodes: checksum seeds as it verifies them, its extent-node cache. */
  get mapContext(): MapContext {
    return this.mapCtx;
  }
  /**
   * Name hashes of decoded leaves (by the dirLeaves array they belong to), so a listing
   * resumed in the middle of a leaf does not hash it again. A rewritten leaf is decoded
   * into a new array, which drops its hashes with it; a leaf belongs to one directory,
   * and a directory's hash settings do not change.
   */
  private readonly leafHashes = new WeakMap<readonly DirEntry[], readonly DirHash[]>();
  /** Decoded directory leaf blocks (verified once), by physical block. */
  private readonly dirLeaves = new NodeCache<readonly DirEntry[]>(DIR_LEAF_CACHE_ENTRIES, (entries) => entries.length);
  /** Decoded htree roots and nodes (verified once), by physical block. */
  private readonly dxRoots = new NodeCache<DxRoot>(DX_CACHE_ENTRIES, (root) => root.entries.length);
  private readonly dxNodes = new NodeCache<DxNode>(DX_CACHE_ENTRIES, (node) => node.entries.length);


  // ------------------------------------------------------------------ inode-level API

  /**
   * An inode's attributes; `cache: false` as for `readInode` (a copy, remembered for the
   * calls about the inode that follow). Otherwise, on a read-only filesystem, an inode
   * not in the inode cache is decoded where the block cache holds its record and is not
   * added: reading it again costs no checksum there (see rereadIsCheap), and a walk that
   * stats every inode once would otherwise copy each into the cache only to push out the
   * ones in use (and leave the copies to the garbage collector: a third of a readdir and
   * stat walk of 54,000 entries). Reading its data, links or xattrs caches it.
   */
  getattr(ino: number, options: { readonly cache?: boolean } = {}): Stat {
    if (options.cache === false) return this.statOf(ino, this.liveInode(ino, false));
    const inode = this.glance(ino);
    // An encrypted symlink's size is its listed target's, read through the cache, which
    // may recycle the buffer an in-place record is in: that one is read as a copy.
    if (!isSymlink(inode.mode) || (inode.flags & ENCRYPT_FL) === 0) return this.statOf(ino, inode);
    return this.statOf(ino, this.liveInode(ino));
  }

  /**
   * Inode `ino` for a look that is over before the next call on the channel: the cached
   * inode, else (when rereadIsCheap) its record decoded in place and not cached;
   * otherwise liveInode's (cached).
   */
  private glance(ino: number): Inode {
    return this.rereadIsCheap ? this.liveInode(ino, false, true) : this.liveInode(ino);
  }

  /**
   * The mode of live inode `ino`: read from its record where rereadIsCheap and it is not
   * cached (no Inode decoded), else from liveInode.
   */
  private liveMode(ino: number): number {
    if (!this.rereadIsCheap || this.inodes.has(ino)) return this.liveInode(ino).mode;
    const rec = this.inodeRecord(ino);
    const s = summarizeInode(rec.view, rec.offset, this.sb.inodeSize, ino, rec.block, this.summary);
    checkLive(ino, s.mode, s.linksCount);
    return s.mode;
  }

  /**
   * Whether decoding an inode again from its table block is cheap: read-only, the block
   * held by the block cache (not read from the device again), and no checksum computed
   * again (memoized per table block, see inode-csum.ts, or not verified at all). A
   * writable filesystem, or one without a block cache, keeps its inodes in the inode
   * cache, checked once as they enter it.
   */
  private get rereadIsCheap(): boolean {
    return this.writer === undefined && this.channel.cacheSize > 0 && (this.inodeCsums === undefined || this.inodeCsums.working);
  }

  /**
   * Start reading, in the background, the blocks of inode `ino` that the inode alone
   * locates (see residentRuns: a small directory's blocks, a deeper tree's index
   * blocks), at most `maxBlocks`. For walks: the directories a listing found are
   * hinted before they are visited, so the device fetches them side by side instead of
   * one synchronous miss after another. Returns at once and changes nothing; an inode
   * that cannot be read or mapped is skipped (reading it later reports the damage).
   */
  prefetchBlocks(ino: number, maxBlocks = PREFETCH_HINT_BLOCKS): void {
    try {
      const inode = this.liveInode(ino, false, true);
      if ((inode.flags & INLINE_DATA_FL) !== 0 || (isSymlink(inode.mode) && this.isFastSymlink(inode))) return;
      if (!isDir(inode.mode) && !isSymlink(inode.mode) && !isReg(inode.mode)) return;
      residentRuns(this.mapCtx, ino, inode, maxBlocks, (physical, count) => this.channel.hint(physical, count));
    } catch (error) {
      if (!(error instanceof FsError)) throw error;
    }
  }

  /**
   * What a long listing (`ls -l`) shows of an inode, from one read of it that does not
   * enter the inode cache: a tree walk reads each inode once, and caching them all would
   * only push out the directories. `getattr`, `readlinkInode` (for a symlink) and
   * `hasXattrInode(ino, xattrNames)` in one call, with their errors. Filled into `into`
   * when given (and returned): a listing that reuses its objects allocates nothing for
   * most inodes.
   */
  describeInode(ino: number, xattrNames: readonly string[], into: InodeListing = emptyListing()): InodeListing {
    const s = this.summary;
    let inode = this.inodes.get(ino);
    if (inode === undefined) {
      // Most inodes (a file or directory without xattrs) are read straight from the table
      // block: no Inode, Stat or Timestamp objects.
      const rec = this.inodeRecord(ino);
      summarizeInode(rec.view, rec.offset, this.sb.inodeSize, ino, rec.block, s);
      const kind = checkLive(ino, s.mode, s.linksCount);
      const xattrBlock = inodeFileAcl(s, this.sb.has64bit) !== 0;
      if ((kind === 'file' || kind === 'directory' || kind === 'fifo' || kind === 'socket') && !xattrBlock && !this.hasInodeXattrRegion(rec.view, rec.offset, s.extraIsize)) {
        return this.fillListing(s, kind, into);
      }
      // Decoded in place (no copy of the record) when nothing below reads through the
      // cache, which could recycle the buffer the record is in: no xattr block, no
      // symlink target in a data block. Otherwise decoded as a copy.
      const inPlace = !xattrBlock && !(kind === 'symlink' && (s.flags & INLINE_DATA_FL) === 0 && !this.isFastSymlink(s));
      inode = decodeInode(rec.view, { inodeNo: ino, inodeSize: this.sb.inodeSize, block: rec.block, offset: rec.offset, transient: inPlace });
    }
    this.fillListing(summarizeDecoded(inode, s), checkLive(ino, inode.mode, inode.linksCount), into);
    if (isChr(inode.mode) || isBlk(inode.mode)) [into.rdevMajor, into.rdevMinor] = decodeDevice(inode.block);
    into.target = into.kind === 'symlink' ? this.readlinkOf(ino, inode) : undefined;
    if (into.target !== undefined && (inode.flags & ENCRYPT_FL) !== 0) into.size = into.target.length; // as getattr says
    into.hasXattr = this.hasXattrOf(ino, inode, xattrNames);
    return into;
  }

  /** Scratch summary of describeInode. */
  private readonly summary = emptyInodeSummary();

  /** `into` with what `s` (of `kind`) says (no device numbers, target or xattr mark: describeInode adds those). */
  private fillListing(s: InodeSummary, kind: FileKind, into: InodeListing): InodeListing {
    into.kind = kind;
    into.mode = s.mode;
    into.nlink = statNlink(s.mode, s.linksCount);
    into.uid = s.uid;
    into.gid = s.gid;
    into.size = s.size;
    into.blocks = this.statBlocks(s);
    into.rdevMajor = 0;
    into.rdevMinor = 0;
    into.mtimeSeconds = s.mtimeSeconds;
    into.mtimeNanoseconds = s.mtimeNanoseconds;
    into.target = undefined;
    into.hasXattr = false;
    return into;
  }

  /** st_blocks: 512-byte units; like the kernel, an inline-data regular file is charged for its bytes. */
  private statBlocks(inode: Pick<Inode, 'mode' | 'flags' | 'size' | 'blocksLo' | 'blocksHi'>): number {
    return Math.floor(inodeBlocksBytes(inode, this.sb.blockSize, this.hugeFile) / 512) + (isReg(inode.mode) && (inode.flags & INLINE_DATA_FL) !== 0 ? Math.ceil(inode.size / 512) : 0);
  }

  private statOf(ino: number, inode: Inode): Stat {
    const kind = kindOfMode(inode.mode);
    let major = 0;
    let minor = 0;
    if (isChr(inode.mode) || isBlk(inode.mode)) [major, minor] = decodeDevice(inode.block);
    return {
      ino,
      kind,
      mode: inode.mode,
      nlink: statNlink(inode.mode, inode.linksCount),
      uid: inode.uid,
      gid: inode.gid,
      size: isSymlink(inode.mode) && (inode.flags & ENCRYPT_FL) !== 0 ? this.noKeyTarget(ino, inode).length : inode.size,
      blocks: this.statBlocks(inode),
      blksize: this.sb.blockSize,
      rdev: makedev(major, minor),
      rdevMajor: major,
      rdevMinor: minor,
      atime: inode.atime,
      mtime: inode.mtime,
      ctime: inode.ctime,
      birthtime: inode.crtime,
      flags: inode.flags,
      generation: inode.generation,
    };
  }

  /**
   * Read up to `length` bytes of a regular file (or symlink) at `offset`; short at end of
   * file. With `into` (at least `length` bytes), the bytes go to its start and the result
   * is a view of it: a server that answers one read at a time reuses one buffer instead
   * of leaving a new one per read to the garbage collector.
   */
  read(ino: number, offset: number, length: number, into?: Uint8Array): Uint8Array {
    const inode = this.liveInode(ino);
    if (isDir(inode.mode)) throw new FsError('EISDIR', `inode ${ino} is a directory`, { inode: ino });
    if (!isReg(inode.mode) && !isSymlink(inode.mode)) throw new FsError('EINVAL', `inode ${ino} is not a regular file`, { inode: ino });
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new FsError('EINVAL', `invalid read range ${offset}+${length}`, { inode: ino });
    }
    if (length > MAX_READ) throw new FsError('EINVAL', `read of ${length} bytes is larger than the ${MAX_READ}-byte limit per call`, { inode: ino });
    if ((inode.flags & ENCRYPT_FL) !== 0) throw new FsError('ENOKEY', `inode ${ino} is encrypted (fscrypt) and no key is available`, { inode: ino });
    if (into !== undefined && into.length < length) throw new FsError('EINVAL', `read buffer of ${into.length} bytes for ${length}`, { inode: ino });
    return this.readData(ino, inode, offset, length, into);
  }

  /**
   * Where a regular file's data lies when it is all one run of written blocks from its
   * first byte (most small files): the byte offset of that run on the device and the
   * file's size; undefined for an empty, inline, encrypted or sparse file, one with
   * unwritten extents, or one in several runs. The mapping is checked as for
   * `readDataRuns` (errors are thrown the same way).
   */
  singleRun(ino: number): { readonly offset: number; readonly length: number } | undefined {
    const inode = this.liveInode(ino);
    if (!isReg(inode.mode) || inode.size === 0 || (inode.flags & (INLINE_DATA_FL | ENCRYPT_FL)) !== 0) return undefined;
    const bs = this.sb.blockSize;
    const last = Math.ceil(inode.size / bs);
    const run = mapRun(this.mapCtx, ino, inode, 0, last);
    return run.kind === 'data' && run.count >= last ? { offset: run.physical * bs, length: inode.size } : undefined;
  }

  /**
   * The written data of a regular file (or symlink), in order, for copying it out with
   * its holes: `visit(offset, bytes)` per stretch of data, `bytes` being a view of `into`,
   * or of the block cache's read window (no copy: see CachingChannel.readDirectView),
   * that the next stretch or the next call on the filesystem overwrites. Holes and
   * unwritten extents (which read as zeros) are skipped; inline data is one stretch of
   * the whole size. A stretch is at most `into.length` bytes, which must hold a block.
   * One mapping pass, no allocation per call: what `get` does for every file, where
   * mapping runs first and reading them after cost two passes and a buffer per file.
   */
  readDataRuns(ino: number, into: Uint8Array, visit: (offset: number, data: Uint8Array) => void): void {
    const inode = this.liveInode(ino);
    if (isDir(inode.mode)) throw new FsError('EISDIR', `inode ${ino} is a directory`, { inode: ino });
    if (!isReg(inode.mode) && !isSymlink(inode.mode)) throw new FsError('EINVAL', `inode ${ino} is not a regular file`, { inode: ino });
    if ((inode.flags & ENCRYPT_FL) !== 0) throw new FsError('ENOKEY', `inode ${ino} is encrypted (fscrypt) and no key is available`, { inode: ino });
    const bs = this.sb.blockSize;
    const maxBlocks = Math.min(MAX_RUN_BLOCKS, Math.floor(into.length / bs));
    if (maxBlocks < 1) throw new FsError('EINVAL', `read buffer of ${into.length} bytes is smaller than a block`, { inode: ino });
    const size = inode.size;
    if ((inode.flags & INLINE_DATA_FL) !== 0) {
      for (let pos = 0; pos < size; ) {
        const data = this.readData(ino, inode, pos, Math.min(into.length, size - pos), into);
        visit(pos, data);
        pos += data.length;
      }
      return;
    }
    const ctx = this.mapCtx;
    const last = Math.ceil(size / bs);
    for (let lblk = 0; lblk < last; ) {
      const run = mapRun(ctx, ino, inode, lblk, last - lblk);
      if (run.kind === 'data') {
        for (let done = 0; done < run.count; ) {
          const count = Math.min(run.count - done, maxBlocks);
          const from = (lblk + done) * bs;
          const bytes = this.channel.readDirectView(run.physical + done, count, into.subarray(0, count * bs));
          visit(from, bytes.subarray(0, Math.min(count * bs, size - from)));
          done += count;
        }
      }
      lblk += run.count;
    }
  }

  private readData(ino: number, inode: Inode, offset: number, length: number, into?: Uint8Array): Uint8Array {
    const end = Math.min(inode.size, offset + length);
    if (end <= offset) return new Uint8Array(0);
    // A reused buffer holds old bytes: holes are zeroed explicitly below.
    const out = into === undefined ? new Uint8Array(end - offset) : into.subarray(0, end - offset);
    if ((inode.flags & INLINE_DATA_FL) !== 0) {
      const stored = this.inlineData(ino, inode);
      const copied = offset < stored.length ? Math.min(end, stored.length) - offset : 0;
      if (copied > 0) out.set(stored.subarray(offset, offset + copied));
      if (into !== undefined) out.fill(0, copied);
      return out;
    }
    const bs = this.sb.blockSize;
    const ctx = this.mapCtx;
    let lblk = Math.floor(offset / bs);
    const lastBlock = Math.ceil(end / bs); // exclusive
    while (lblk < lastBlock) {
      const run = mapRun(ctx, ino, inode, lblk, Math.min(lastBlock - lblk, MAX_RUN_BLOCKS));
      if (run.kind === 'data') {
        const runStart = lblk * bs; // file offset of the run
        const runEnd = runStart + run.count * bs;
        const from = Math.max(runStart, offset);
        const to = Math.min(runEnd, end);
        if (from === runStart && to === runEnd) {
          this.channel.readDirect(run.physical, run.count, out.subarray(from - offset, to - offset));
        } else {
          // A run the read covers only in part (a file's last block, most often) goes
          // through one buffer kept for that: a new one per read was 64 KiB of garbage
          // per small file.
          if (this.readScratch.length < run.count * bs) this.readScratch = new Uint8Array(Math.min(MAX_RUN_BLOCKS, Math.max(run.count, 16)) * bs);
          const scratch = this.readScratch;
          this.channel.readDirect(run.physical, run.count, scratch);
          out.set(scratch.subarray(from - runStart, to - runStart), from - offset);
        }
      } else if (into !== undefined) {
        // A hole or an unwritten extent reads as zeros.
        out.fill(0, Math.max(lblk * bs, offset) - offset, Math.min((lblk + run.count) * bs, end) - offset);
      }
      lblk += run.count;
    }
    return out;
  }

  /**
   * lseek(2)'s SEEK_DATA / SEEK_HOLE: the first offset >= `offset` that is data (or a
   * hole). Unwritten extents count as holes. ENXIO at or past the end of the file for
   * SEEK_DATA; the end of the file is the implicit hole.
   */
  seek(ino: number, offset: number, what: 'data' | 'hole'): number {
    const inode = this.liveInode(ino);
    if (!Number.isSafeInteger(offset) || offset < 0) throw new FsError('EINVAL', `invalid offset ${offset}`, { inode: ino });
    if (offset >= inode.size) throw new FsError('ENXIO', `offset ${offset} is at or past the end of the file`, { inode: ino });
    if ((inode.flags & INLINE_DATA_FL) !== 0 || !isReg(inode.mode)) return what === 'data' ? offset : inode.size;
    const bs = this.sb.blockSize;
    const ctx = this.mapCtx;
    const last = Math.ceil(inode.size / bs);
    let lblk = Math.floor(offset / bs);
    // A file cannot hold more data blocks than the filesystem has: past that, its map
    // reuses blocks (corruption), and scanning on would take practically forever.
    let dataBlocks = 0;
    while (lblk < last) {
      // Uncapped: a hole is one run up to the next mapping (a hole of 2^38 blocks in a
      // damaged i_size would otherwise take 2^38 / blocksCount steps).
      const run = mapRun(ctx, ino, inode, lblk, last - lblk);
      const isData = run.kind === 'data';
      if (isData === (what === 'data')) return Math.max(offset, lblk * bs);
      if (isData && (dataBlocks += run.count) > this.sb.blocksCount) {
        throw corrupted('block map', 'maps more data blocks than the filesystem has', { inode: ino });
      }
      lblk += run.count;
    }
    if (what === 'hole') return inode.size;
    throw new FsError('ENXIO', `no data after offset ${offset}`, { inode: ino });
  }

  /** Whether the record at `at` in `bytes` (with a valid i_extra_isize) holds in-inode xattrs. */
  private hasInodeXattrRegion(bytes: Uint8Array, at: number, extraIsize: number): boolean {
    return this.sb.inodeSize > 128 && extraIsize !== 0 && hasInodeXattrMagic(bytes, this.sb.inodeSize, extraIsize, at);
  }

  private inodeXattrs(ino: number, inode: Inode): readonly XattrEntry[] {
    if (!this.hasInodeXattrRegion(inode.raw, 0, inode.extraIsize)) return NO_XATTRS;
    const region = decodeInodeXattrs(inode.raw, { inodeSize: this.sb.inodeSize, extraIsize: inode.extraIsize }, { inode: ino, eaInode: this.eaInode, inodesCount: this.sb.inodesCount, firstIno: this.sb.firstIno });
    return region.entries;
  }

  private blockXattrs(ino: number, inode: Inode): readonly XattrEntry[] {
    const block = inodeFileAcl(inode, this.sb.has64bit);
    if (block === 0) return NO_XATTRS;
    if (block <= this.sb.firstDataBlock || block >= this.sb.blocksCount) throw corrupted('inode', `xattr block ${block} is outside the filesystem`, { inode: ino });
    const view = this.channel.view(block);
    const decoded = decodeXattrBlock(view, {
      blockNo: block,
      inode: ino,
      eaInode: this.eaInode,
      inodesCount: this.sb.inodesCount,
      firstIno: this.sb.firstIno,
      csumSeed: this.verify && this.sb.hasMetadataCsum ? this.sb.csumSeed : undefined,
    });
    return decoded.entries;
  }

  /**
   * The bytes stored inline. i_size may exceed them (mke2fs -d makes such inodes for
   * all-zero files): the rest reads as zeros, as in the kernel.
   */
  private inlineData(ino: number, inode: Inode): Uint8Array {
    const entries = this.inodeXattrs(ino, inode);
    const data = entries.find(isInlineDataXattr);
    const stored = data !== undefined && data.value.kind === 'bytes' ? inlineDataCapacity(data.value.bytes.length) : 60;
    return assembleInlineData(inode.block, entries, Math.min(inode.size, stored), { inode: ino });
  }

  /** The value of an xattr entry (reading an EA inode if needed), as stored on disk. */
  private xattrValue(ino: number, entry: XattrEntry): Uint8Array {
    if (entry.value.kind === 'bytes') return entry.value.bytes;
    const { inode: eaIno, size } = entry.value;
    if (size > XATTR_SIZE_MAX) throw corrupted('xattr', `EA inode value of ${size} bytes exceeds ${XATTR_SIZE_MAX}`, { inode: ino });
    const eaInode = this.readInode(eaIno);
    if (!isReg(eaInode.mode) || eaInode.size !== size) throw corrupted('xattr', `EA inode ${eaIno} does not hold a ${size}-byte value`, { inode: ino });
    return this.readData(eaIno, eaInode, 0, size);
  }

  /** Every xattr of an inode, in-inode first, then the block's: name -> on-disk entry. */
  private allXattrs(ino: number, inode: Inode): Map<string, XattrEntry> {
    const out = new Map<string, XattrEntry>();
    for (const list of [this.inodeXattrs(ino, inode), this.blockXattrs(ino, inode)]) {
      for (const e of list) {
        if (isInlineDataXattr(e)) continue;
        const name = xattrNameString(e.index, e.name);
        if (name !== null && !out.has(name)) out.set(name, e);
      }
    }
    return out;
  }

  /**
   * One xattr's on-disk entry, in-inode first (as `allXattrs` orders them), without
   * building the whole table: the kernel probes security.capability and ACLs often,
   * and the answer is usually "none".
   */
  private findXattr(ino: number, inode: Inode, index: number, name: Uint8Array): XattrEntry | undefined {
    const matches = (e: XattrEntry): boolean => e.index === index && bytesEqual(e.name, name) && !isInlineDataXattr(e);
    const inInode = this.inodeXattrs(ino, inode).find(matches);
    if (inInode !== undefined) return inInode;
    if (inodeFileAcl(inode, this.sb.has64bit) === 0) return undefined;
    return this.blockXattrs(ino, inode).find(matches);
  }

  /** Names of the extended attributes of an inode (system.data of inline data is hidden). */
  listxattrInode(ino: number): string[] {
    const inode = this.liveInode(ino);
    // Most inodes have no xattrs (no in-inode entries, no block): no table to build.
    if (!this.hasInodeXattrRegion(inode.raw, 0, inode.extraIsize) && inodeFileAcl(inode, this.sb.has64bit) === 0) return [];
    return [...this.allXattrs(ino, inode).keys()];
  }

  /**
   * Whether `listxattrInode(ino)` would include one of `names` (same decoding, same
   * errors), without building the list: `ls -l` asks this of every file for its ACL
   * mark, and the answer is almost always no.
   */
  hasXattrInode(ino: number, names: readonly string[]): boolean {
    return this.hasXattrOf(ino, this.liveInode(ino), names);
  }

  private hasXattrOf(ino: number, inode: Inode, names: readonly string[]): boolean {
    // Both lists are decoded first, as allXattrs does, so a corrupt block fails here too.
    const inInode = this.inodeXattrs(ino, inode);
    const inBlock = this.blockXattrs(ino, inode);
    if (inInode === NO_XATTRS && inBlock === NO_XATTRS) return false; // most inodes: no lists, no closures
    const lists = [inInode, inBlock];
    return lists.some((list) => list.some((e) => !isInlineDataXattr(e) && names.includes(xattrNameString(e.index, e.name) ?? '')));
  }

  /** The value of one xattr (POSIX ACLs in the VFS format getfattr shows); ENODATA if absent. */
  getxattrInode(ino: number, name: string): Uint8Array {
    const value = this.tryGetxattrInode(ino, name);
    if (value === undefined) throw new FsError('ENODATA', `no extended attribute ${quoteText(name)}`, { inode: ino });
    return value;
  }

  /**
   * `getxattrInode` that answers undefined for a missing attribute (cheaper: no error is
   * built; the kernel asks for security.capability before every write to a file).
   */
  tryGetxattrInode(ino: number, name: string): Uint8Array | undefined {
    const split = splitXattrName(name);
    if (split === null) throw new FsError('EOPNOTSUPP', `extended attribute namespace of ${quoteText(name)} is not supported`, { inode: ino });
    const entry = this.findXattr(ino, this.liveInode(ino), split.index, split.name);
    if (entry === undefined) return undefined;
    const value = this.xattrValue(ino, entry);
    if (name === 'system.posix_acl_access' || name === 'system.posix_acl_default') return ext4AclToVfs(value, { inode: ino }) ?? undefined;
    return value;
  }

  readlinkInode(ino: number): Uint8Array {
    return this.readlinkOf(ino, this.liveInode(ino));
  }

  private readlinkOf(ino: number, inode: Inode): Uint8Array {
    if (!isSymlink(inode.mode)) throw new FsError('EINVAL', `inode ${ino} is not a symbolic link`, { inode: ino });
    if ((inode.flags & ENCRYPT_FL) !== 0) return this.noKeyTarget(ino, inode);
    if (inode.size >= PATH_MAX) throw corrupted('inode', `symlink target of ${inode.size} bytes is longer than PATH_MAX`, { inode: ino });
    if ((inode.flags & INLINE_DATA_FL) !== 0) return this.inlineData(ino, inode);
    if (this.isFastSymlink(inode)) {
      if (inode.size > 60) throw corrupted('inode', `fast symlink of ${inode.size} bytes does not fit in i_block`, { inode: ino });
      return inode.block.slice(0, inode.size);
    }
    return this.readData(ino, inode, 0, inode.size);
  }

  /**
   * An encrypted symlink's target as the kernel shows it without the key (a no-key name
   * of the stored ciphertext: see ondisk/fscrypt.ts). The stored form is in i_block (at
   * most 60 bytes), inline data or the first data block.
   */
  private noKeyTarget(ino: number, inode: Inode): Uint8Array {
    if ((inode.flags & INLINE_DATA_FL) !== 0) {
      const stored = this.inlineData(ino, inode);
      return noKeySymlinkTarget(stored, stored.length, { inode: ino });
    }
    if (this.isFastSymlink(inode)) return noKeySymlinkTarget(inode.block, inode.block.length, { inode: ino });
    return noKeySymlinkTarget(this.readData(ino, inode, 0, Math.min(inode.size, this.sb.blockSize)), this.sb.blockSize, { inode: ino });
  }

  /**
   * A symlink's target is in i_block (the kernel's ext4_inode_is_fast_symlink): under 60
   * bytes, and i_blocks counts nothing but its xattr block, which takes a whole cluster
   * with bigalloc. For a symlink that is not inline data.
   */
  isFastSymlink(inode: Pick<Inode, 'size' | 'fileAclLo' | 'fileAclHi' | 'blocksLo' | 'blocksHi' | 'flags'>): boolean {
    if (inode.size >= 60) return false;
    const xattrBlock = inodeFileAcl(inode, this.sb.has64bit) !== 0 ? this.sb.blockSize * this.sb.clusterRatio : 0;
    return inodeBlocksBytes(inode, this.sb.blockSize, this.hugeFile) - xattrBlock === 0;
  }

  /**
   * statfs(2) as the kernel answers it: the block count excludes the metadata
   * overhead (superblock copies, descriptor tables, bitmaps, inode tables, the
   * journal; or s_overhead_clusters when mkfs recorded it), and the available count
   * also excludes the kernel's reserve of 2% of clusters (at most 4096) on extent
   * filesystems.
   */
  statfs(): StatFs {
    // Sum the groups once until a write changes them (the FUSE server is asked for
    // statfs every 2 s by its housekeeping poke).
    if (this.statfsCache !== undefined && this.writer === undefined) return this.statfsCache;
    let freeBlocks = 0;
    let freeInodes = 0;
    if (this.writer !== undefined) {
      // The allocator keeps the totals as it goes.
      freeBlocks = this.writer.alloc.freeBlockCount * this.sb.clusterRatio;
      freeInodes = this.writer.alloc.freeInodeCount;
    } else {
      for (let g = 0; g < this.sb.groupCount; g++) {
        const gd = this.groupDesc(g);
        freeBlocks += gd.freeBlocksCount * this.sb.clusterRatio;
        freeInodes += gd.freeInodesCount;
      }
    }
    freeBlocks = Math.min(freeBlocks, this.sb.blocksCount);
    const clusters = Math.floor(this.sb.blocksCount / this.sb.clusterRatio);
    const reserve = (this.sb.featureIncompat & INCOMPAT_EXTENTS) !== 0 ? Math.min(Math.floor(clusters / 50), 4096) * this.sb.clusterRatio : 0;
    this.statfsCache = {
      blockSize: this.sb.blockSize,
      fragmentSize: this.sb.clusterSize,
      blocks: Math.max(0, this.sb.blocksCount - this.overheadBlocks()),
      freeBlocks,
      availableBlocks: Math.max(0, freeBlocks - this.sb.rBlocksCount - reserve),
      files: this.sb.inodesCount,
      freeFiles: Math.min(freeInodes, this.sb.inodesCount),
      nameMax: NAME_MAX,
    };
    return this.statfsCache;
  }

  private statfsCache: StatFs | undefined;
  private overhead: number | undefined;

  /** Blocks the filesystem's own metadata takes (computed once). */
  private overheadBlocks(): number {
    if (this.overhead !== undefined) return this.overhead;
    const sb = this.sb;
    let blocks: number;
    if (sb.overheadClusters > 0) {
      blocks = sb.overheadClusters * sb.clusterRatio;
    } else {
      blocks = sb.firstDataBlock;
      for (let g = 0; g < sb.groupCount; g++) {
        const l = groupLayout(sb, g);
        blocks += (l.superblock === null ? 0 : 1) + (l.descriptors?.count ?? 0) + (l.reservedGdt?.count ?? 0) + (l.metaBgDescriptor === null ? 0 : 1);
        blocks += 2 + sb.inodeTableBlocks;
      }
      if (sb.journalInum !== 0 && (sb.featureCompat & COMPAT_HAS_JOURNAL) !== 0) {
        try {
          blocks += Math.ceil(this.readInode(sb.journalInum).size / sb.blockSize);
        } catch {
          // an unreadable journal inode only makes df approximate
        }
      }
    }
    this.overhead = blocks;
    return blocks;
  }

  // ------------------------------------------------------------------ directories

  private dirInode(ino: number): Inode {
    const inode = this.liveInode(ino);
    if (!isDir(inode.mode)) throw new FsError('ENOTDIR', `inode ${ino} is not a directory`, { inode: ino });
    return inode;
  }

  private isEncryptedDir(inode: Inode): boolean {
    return (inode.flags & ENCRYPT_FL) !== 0;
  }

  /**
   * True when directory `ino` compares names casefolded (the casefold feature and
   * CASEFOLD_FL): then several spellings name one entry.
   */
  foldsNames(ino: number): boolean {
    return this.casefoldFs && this.isCasefoldDir(this.readInode(ino));
  }

  private isCasefoldDir(inode: Inode): boolean {
    return this.casefoldFs && (inode.flags & CASEFOLD_FL) !== 0;
  }

  /**
   * How the entries of encrypted directory `ino` are named without the key: the kernel's
   * no-key names (ondisk/fscrypt.ts), whose first 8 bytes are the hash the kernel's
   * readdir files the entry under. That is the hash stored in the entry (casefolded
   * directories), the directory hash of the ciphertext where the kernel lists in hash
   * order (dir_index, and an index, inline data or a single block: its is_dx_dir), else 0.
   */
  private noKeyNamer(ino: number, dir: Inode): (e: DirEntry) => Uint8Array {
    const context = { inode: ino };
    if (this.isCasefoldDir(dir)) return (e) => noKeyName(e.name, e.hash ?? 0, e.minorHash ?? 0, 'directory entry', context);
    const hashed = (this.sb.featureCompat & COMPAT_DIR_INDEX) !== 0 && ((dir.flags & (INDEX_FL | INLINE_DATA_FL)) !== 0 || Math.floor(dir.size / this.sb.blockSize) === 1);
    if (!hashed) return (e) => noKeyName(e.name, 0, 0, 'directory entry', context);
    const version = (dir.flags & INDEX_FL) !== 0 && (dir.flags & INLINE_DATA_FL) === 0 ? this.htree(ino, dir).version : effectiveHashVersion(this.sb.defHashVersion, this.sb.flags);
    if (!isKeylessHashVersion(version)) throw corrupted('directory', `encrypted directory hashed with unsupported hash version ${version}`, context);
    const options = { version, seed: this.sb.hashSeed };
    return (e) => {
      if (isDotName(e.name)) return e.name;
      const h = dirHashName(e.name, options);
      return noKeyName(e.name, h.hash, h.minorHash, 'directory entry', context);
    };
  }

  /**
   * Entries of a directory from cookie `cookie` on ('.' and '..' first), each with the
   * cookie that resumes after it (see ./readdir-cookie.ts). An htree directory lists in
   * hash order, as the kernel does, with cookies made from the hash: a leaf split moves
   * entries to another block but not to another place in that order, so a listing resumed
   * while the directory changes returns every entry that was there all along exactly once.
   * Other directories list in record order with position cookies (their records do not
   * move while they live).
   */
  *readdirInode(ino: number, cookie = 0): Generator<DirEntryInfo> {
    const dir = this.dirInode(ino);
    if (this.isIndexedDir(dir)) {
      const tree = this.htree(ino, dir);
      if (tree.version !== DX_HASH.SIPHASH) {
        yield* this.readdirHashed(ino, dir, tree, cookie);
        return;
      }
    }
    yield* this.readdirRecords(ino, dir, cookie);
  }

  /**
   * Every entry of directory `ino`, in `readdirInode`'s order and with its errors, handed
   * to `visit(rawName, ino, kind)` as they are read: no generator, no entry object and no
   * UTF-8 name per entry, for walkers over tens of thousands of entries (ls -R, get).
   * `rawName` must not be modified. Directories listed in hash order (htree), inline or
   * encrypted ones go through `readdirInode`.
   */
  forEachEntry(ino: number, visit: (rawName: Uint8Array, ino: number, kind: FileKind) => void): void {
    const dir = this.dirInode(ino);
    if ((this.isIndexedDir(dir) && this.htree(ino, dir).version !== DX_HASH.SIPHASH) || (dir.flags & INLINE_DATA_FL) !== 0 || this.isEncryptedDir(dir)) {
      for (const e of this.readdirInode(ino)) visit(e.rawName, e.ino, e.kind);
      return;
    }
    const fileTypes = this.hasFileType;
    // (Indexed here: an index the filesystem does not use. Its blocks are skipped.)
    const indexed = (dir.flags & INDEX_FL) !== 0;
    const entry = (name: Uint8Array, inode: number, fileType: number): void => visit(name, inode, kindOfFileType(fileTypes ? fileType : 0));
    for (const { lblk, physical } of this.dirDataRuns(ino, dir, 0)) {
      if (indexed || this.dirLeaves.has(physical)) {
        for (const e of this.dirBlockEntries(ino, dir, lblk, physical, indexed)) entry(e.name, e.inode, e.fileType);
      } else {
        // A leaf not decoded yet is scanned and not kept: a walk reads each once, and a
        // cache of its leaves would only be garbage for the collector.
        scanDirBlock(this.channel.view(physical), this.leafOptions(ino, dir, physical, false), entry);
      }
    }
  }

  /**
   * The data blocks of directory `ino` from logical block `from` on, each with its
   * decoded records (holes skipped; each mapped run fetched with one read: all of it is
   * wanted, in order). One step per block, not per entry.
   */
  private *dirDataBlocks(ino: number, dir: Inode, from: number): Generator<{ readonly lblk: number; readonly entries: readonly DirEntry[] }> {
    const indexed = (dir.flags & INDEX_FL) !== 0;
    for (const { lblk, physical } of this.dirDataRuns(ino, dir, from)) yield { lblk, entries: this.dirBlockEntries(ino, dir, lblk, physical, indexed) };
  }

  /** dirDataBlocks' blocks, not decoded: logical and physical number of each, its run read ahead. */
  private *dirDataRuns(ino: number, dir: Inode, from: number): Generator<{ readonly lblk: number; readonly physical: number }> {
    const blocks = this.dirBlocks(ino, dir);
    const ctx = this.mapCtx;
    let lblk = from;
    while (lblk < blocks) {
      const run = mapRun(ctx, ino, dir, lblk, blocks - lblk);
      if (run.kind !== 'data') {
        lblk += run.count;
        continue;
      }
      if (run.count > 1 && !this.channel.has(run.physical)) this.channel.readahead(run.physical, run.count);
      for (let i = 0; i < run.count; i++, lblk++) yield { lblk, physical: run.physical + i };
    }
  }

  /** Entries in record order (every directory's blocks, index blocks skipped) from position cookie `cookie` on. */
  private *readdirRecords(ino: number, dir: Inode, cookie: number): Generator<DirEntryInfo> {
    // A hash cookie here (the directory lost its index during the listing) starts over
    // after '..': names may come twice, none is skipped.
    const fromHash = isHashCookie(cookie);
    const from = fromHash ? 0 : cookie;
    const present = this.isEncryptedDir(dir) ? this.noKeyNamer(ino, dir) : undefined;
    const emit = (e: DirEntry, pos: number): DirEntryInfo | undefined => {
      if (pos < from) return undefined;
      if (fromHash && pos < this.sb.blockSize && isDotName(e.name)) return undefined;
      const rawName = present === undefined ? e.name : present(e);
      return { name: utf8.decode(rawName), rawName, ino: e.inode, kind: kindOfFileType(this.hasFileType ? e.fileType : 0), next: pos + 1 };
    };
    if ((dir.flags & INLINE_DATA_FL) !== 0) {
      const inline = this.inlineDir(ino, dir);
      const dot = { inode: ino, name: DOT, fileType: 2, offset: 0, recLen: 0 };
      const dotdot = { inode: inline.parent, name: DOTDOT, fileType: 2, offset: 1, recLen: 0 };
      for (const [e, pos] of [
        [dot, 0],
        [dotdot, 1],
      ] as const) {
        const out = emit(e, pos);
        if (out !== undefined) yield out;
      }
      for (const e of inline.entries) {
        const out = emit(e, 2 + (e.region === 'i_block' ? 0 : 60) + e.offset);
        if (out !== undefined) yield out;
      }
      return;
    }
    const bs = this.sb.blockSize;
    for (const { lblk, entries } of this.dirDataBlocks(ino, dir, Math.floor(Math.max(0, from - 1) / bs))) {
      for (const e of entries) {
        const out = emit(e, lblk * bs + e.offset);
        if (out !== undefined) yield out;
      }
    }
  }

  /**
   * An htree directory the reader walks by its index (for lookups and hash-ordered
   * listings): INDEX_FL with the dir_index feature, not inline, not encrypted.
   */
  private isIndexedDir(dir: Inode): boolean {
    return (dir.flags & INDEX_FL) !== 0 && (dir.flags & INLINE_DATA_FL) === 0 && (this.sb.featureCompat & COMPAT_DIR_INDEX) !== 0 && !this.isEncryptedDir(dir);
  }

  /**
   * An htree directory in hash order (ext4_dx_readdir's order): '.' and '..', then the
   * index's leaves from the one that holds the cookie's hash on, a group at a time (a leaf
   * and the leaves that continue its run of equal hashes), each group's entries sorted by
   * hash key, then minor hash, then name. Keys below the cookie's are skipped.
   *
   * An entry's key is clamped into its group's range (from the group's index hash up to
   * the next group's): an entry filed under a hash other than the one computed here
   * (casefolding rules changed since, or damage) then still lists in index order, so
   * resuming never skips the rest of a leaf. Work is bounded: a resumed listing descends
   * the index by the cookie's hash (one block per level), the walk visits each block at
   * most once (a block referenced twice is EUCLEAN), and cookies only grow, so a caller
   * that keeps resuming from `next` finishes.
   */
  private *readdirHashed(ino: number, dir: Inode, tree: Htree, cookie: number): Generator<DirEntryInfo> {
    const kind = kindOfFileType(this.hasFileType ? FT.DIR : 0);
    if (cookie < COOKIE_AFTER_DOT) yield { name: '.', rawName: DOT, ino: tree.root.dotInode, kind, next: COOKIE_AFTER_DOT };
    if (cookie < COOKIE_AFTER_DOTDOT) yield { name: '..', rawName: DOTDOT, ino: tree.root.dotdotInode, kind, next: COOKIE_AFTER_DOTDOT };
    const start = resumeKey(cookie);
    if (start >= HASH_KEYS) return;
    let group: HtreeLeaf[] = [];
    for (const leaf of this.htreeLeaves(ino, tree, majorOfKey(start))) {
      if ((leaf.hash & DX_HASH_CONTINUED) === 0 && group.length > 0) {
        yield* this.hashedGroup(ino, dir, tree, group, firstKeyOfMajor(leaf.hash), start);
        group = [];
      }
      group.push(leaf);
    }
    if (group.length > 0) yield* this.hashedGroup(ino, dir, tree, group, HASH_KEYS, start);
  }

  /** The entries of a group of leaves with key >= `start`, sorted (see readdirHashed); keys stay below `end`. */
  private *hashedGroup(ino: number, dir: Inode, tree: Htree, group: readonly HtreeLeaf[], end: number, start: number): Generator<DirEntryInfo> {
    const lo = firstKeyOfMajor((group[0] as HtreeLeaf).hash);
    const hi = Math.max(lo, end - 1);
    const items: { key: number; minor: number; e: DirEntry }[] = [];
    for (const leaf of group) {
      const entries = this.dirBlockEntries(ino, dir, leaf.block, tree.physicalOf(leaf.block), true);
      let hashes = this.leafHashes.get(entries);
      if (hashes === undefined) {
        hashes = entries.map((e) => tree.hash(e.name));
        this.leafHashes.set(entries, hashes);
      }
      entries.forEach((e, i) => {
        const h = hashes[i] as DirHash;
        const key = Math.min(hi, Math.max(lo, hashKey(h.hash, h.minorHash)));
        if (key >= start) items.push({ key, minor: h.minorHash, e });
      });
    }
    items.sort((a, b) => a.key - b.key || a.minor - b.minor || Buffer.compare(a.e.name, b.e.name));
    for (const { key, e } of items) {
      yield { name: utf8.decode(e.name), rawName: e.name, ino: e.inode, kind: kindOfFileType(this.hasFileType ? e.fileType : 0), next: cookieAfterKey(key) };
    }
  }

  /**
   * The leaves of an htree in index order, from the one a lookup of `major` reaches (the
   * first that can hold it: a run continued into the next leaf starts in the earlier one).
   * Every index node and leaf is visited at most once per walk, and none is block 0.
   */
  private *htreeLeaves(ino: number, tree: Htree, major: number): Generator<HtreeLeaf> {
    const levels = tree.root.indirectLevels;
    const seen = new Set<number>();
    const visit = (lblk: number, what: string): void => {
      if (lblk === 0) throw corrupted('htree', `an index entry points ${what} at block 0, the root`, { inode: ino });
      if (seen.has(lblk)) throw corrupted('htree', `block ${lblk} is referenced twice by the index (as ${what})`, { inode: ino });
      seen.add(lblk);
    };
    // One frame per level: the entries of a dx block, where the walk is, and the hash
    // that entry 0 stands for (its slot on disk holds count and limit).
    interface Frame {
      readonly entries: readonly DxEntry[];
      i: number;
      readonly low: number;
    }
    const frames: Frame[] = [{ entries: tree.root.entries, i: dxLookup(tree.root.entries, major), low: 0 }];
    const at = (level: number): Frame => frames[level] as Frame;
    const hashAt = (f: Frame): number => (f.i === 0 ? f.low : (f.entries[f.i] as DxEntry).hash);
    const descend = (first: boolean): void => {
      while (frames.length <= levels) {
        const top = at(frames.length - 1);
        const block = (top.entries[top.i] as DxEntry).block;
        visit(block, 'a node');
        const entries = tree.node(block);
        frames.push({ entries, i: first ? dxLookup(entries, major) : 0, low: hashAt(top) });
      }
    };
    descend(true);
    for (;;) {
      const top = at(levels);
      const block = (top.entries[top.i] as DxEntry).block;
      visit(block, 'a leaf');
      yield { hash: hashAt(top), block };
      let level = levels;
      while (level >= 0 && at(level).i + 1 >= at(level).entries.length) level--;
      if (level < 0) return;
      at(level).i++;
      frames.length = level + 1;
      descend(false);
    }
  }

  /**
   * Blocks in a directory. A directory cannot be larger than the filesystem (its
   * blocks are not shared), so a larger i_size is corruption: without this bound a
   * hostile tree that maps the same blocks over and over would be read for hours.
   */
  private dirBlocks(ino: number, dir: Inode): number {
    const blocks = Math.ceil(dir.size / this.sb.blockSize);
    if (blocks > this.sb.blocksCount) throw corrupted('directory', `i_size ${dir.size} is larger than the filesystem`, { inode: ino });
    return blocks;
  }

  /** The htree root of directory `ino` in block `physical`, decoded (and verified with `seed`) once. */
  private dxRootOf(ino: number, physical: number, seed: number | undefined): DxRoot {
    return this.dxRoots.getOrDecode(physical, () =>
      decodeDxRoot(this.channel.view(physical), {
        blockSize: this.sb.blockSize,
        hasChecksum: this.sb.hasMetadataCsum,
        largeDir: (this.sb.featureIncompat & INCOMPAT_LARGEDIR) !== 0,
        hasFileType: this.hasFileType,
        block: physical,
        inode: ino,
        csumSeed: seed,
      }),
    );
  }

  /** Live entries of one directory block (the dx root yields '.' and '..'; dx nodes nothing). */
  private dirBlockEntries(ino: number, dir: Inode, lblk: number, physical: number, indexed: boolean): readonly DirEntry[] {
    const bs = this.sb.blockSize;
    const view = this.channel.view(physical);
    if (indexed && lblk === 0) {
      const root = this.dxRootOf(ino, physical, this.checksumSeed(ino, dir));
      return [
        { inode: root.dotInode, name: DOT, fileType: 2, offset: 0, recLen: 12 },
        { inode: root.dotdotInode, name: DOTDOT, fileType: 2, offset: 12, recLen: bs - 12 },
      ];
    }
    if (indexed && isDxNodeBlock(view, bs)) return [];
    const hashInDirent = this.isEncryptedDir(dir) && this.isCasefoldDir(dir);
    if (!hashInDirent) {
      const cached = this.dirLeaves.get(physical);
      if (cached !== undefined) return cached;
    }
    const decoded = decodeDirBlock(view, this.leafOptions(ino, dir, physical, hashInDirent));
    if (!hashInDirent) this.dirLeaves.set(physical, decoded.entries);
    return decoded.entries;
  }

  /** How leaf `physical` of directory `ino` is decoded (its checksum seed computed here). */
  private leafOptions(ino: number, dir: Inode, physical: number, hashInDirent: boolean): DirBlockOptions {
    return {
      blockSize: this.sb.blockSize,
      hasFileType: this.hasFileType,
      hasChecksumTail: this.sb.hasMetadataCsum,
      inodesCount: this.sb.inodesCount,
      inode: ino,
      block: physical,
      hashInDirent,
      csumSeed: this.checksumSeed(ino, dir),
    };
  }

  /**
   * The inode `name` names in one leaf of an indexed (not casefolded, not encrypted)
   * directory: from the decoded leaf when it is cached, else by a scan of the raw block
   * that builds nothing (a read-write mount rewrites leaves, and so drops their decoded
   * copies, at every create).
   */
  private findInLeaf(ino: number, dir: Inode, lblk: number, physical: number, name: Uint8Array): number | undefined {
    const cached = this.dirLeaves.get(physical);
    if (cached !== undefined) {
      for (const e of cached) if (bytesEqual(e.name, name)) return e.inode;
      return undefined;
    }
    const view = this.channel.view(physical);
    if (isDxNodeBlock(view, this.sb.blockSize)) return undefined;
    const found = findInDirBlock(view, this.leafOptions(ino, dir, physical, false), name);
    return found === null ? undefined : found.inode;
  }

  private inlineDir(ino: number, dir: Inode) {
    const data = this.inodeXattrs(ino, dir).find(isInlineDataXattr);
    const systemData = data !== undefined && data.value.kind === 'bytes' ? data.value.bytes : null;
    return decodeInlineDir(dir.block, systemData, { hasFileType: this.hasFileType, inodesCount: this.sb.inodesCount, inode: ino });
  }

  /** Look a name up in a directory; returns the inode number or throws ENOENT. */
  lookup(dirIno: number, name: string | Uint8Array): number {
    return this.lookupEntry(dirIno, toBytes(name));
  }

  /** lookup of a name as findEntry takes it (bytes, or an ASCII name as a string). */
  private lookupEntry(dirIno: number, name: Uint8Array | string): number {
    const found = this.findEntry(dirIno, name);
    if (found === undefined) throw new FsError('ENOENT', `no entry ${quoteName(nameBytes(name))}`, { inode: dirIno });
    return found;
  }

  /** `lookup` that answers undefined for a missing name (cheaper: no error is built). */
  tryLookup(dirIno: number, name: string | Uint8Array): number | undefined {
    return this.findEntry(dirIno, toBytes(name));
  }

  /**
   * The entry `name` in directory `dirIno`: its bytes, or an ASCII name as a string (its
   * characters are its bytes, and its own name-index key: no bytes are made for it unless
   * the directory compares bytes).
   */
  private findEntry(dirIno: number, name: Uint8Array | string): number | undefined {
    if (name.length === 0) throw new FsError('ENOENT', 'empty name', { inode: dirIno });
    if (name.length > NAME_MAX) throw new FsError('ENAMETOOLONG', `name of ${name.length} bytes is longer than ${NAME_MAX}`, { inode: dirIno });
    if (typeof name === 'string' ? name.includes('/') || name.includes('\0') : hasSlashOrNul(name)) throw new FsError('EINVAL', 'a name cannot contain "/" or NUL', { inode: dirIno });
    const dir = this.dirInode(dirIno);
    const indexed = this.isIndexedDir(dir);
    const names = indexed && !this.isCasefoldDir(dir) ? this.busyHtreeIndex(dirIno, dir) : undefined;
    let found = names !== undefined ? names.get(nameKey(name)) : indexed ? this.htreeLookup(dirIno, dir, nameBytes(name)) : this.linearLookup(dirIno, dir, name);
    // As the kernel does since 2025: a casefolded name may have been hashed under older
    // folding rules, so an indexed miss in a casefold directory falls back to a scan.
    if (found === undefined && indexed && this.isCasefoldDir(dir)) found = this.linearLookup(dirIno, dir, name);
    if (found === undefined) return undefined;
    if (found < 1 || found > this.sb.inodesCount) throw corrupted('directory entry', `entry names inode ${found}, outside 1..${this.sb.inodesCount}`, { inode: dirIno });
    return found;
  }

  /** Compares entry names with `name` the way this (not encrypted) directory does: casefolded or exact. */
  private matcher(dir: Inode, name: Uint8Array): (candidate: Uint8Array) => boolean {
    if (this.isCasefoldDir(dir)) {
      const folded = casefoldNameOrNull(name);
      if (folded !== null) {
        return (c) => {
          if (bytesEqual(c, name)) return true;
          const fc = casefoldNameOrNull(c);
          return fc !== null && bytesEqual(fc, folded);
        };
      }
      if (this.strictCasefold) return () => false;
    }
    return (c) => bytesEqual(c, name);
  }

  /**
   * Find `name` by the directory's entries: through its name index when names compare
   * exactly (an encrypted directory's in their listed, no-key form: it is never
   * written), else by a scan comparing casefolded names. `name` as for findEntry.
   */
  private linearLookup(ino: number, dir: Inode, name: Uint8Array | string): number | undefined {
    if (!this.isCasefoldDir(dir) || this.isEncryptedDir(dir)) return this.nameIndex(ino).get(nameKey(name));
    const matches = this.matcher(dir, nameBytes(name));
    for (const e of this.readdirRecords(ino, dir, 0)) if (matches(e.rawName)) return e.ino;
    return undefined;
  }

  /**
   * Name -> inode of a directory, built by one scan on its first lookup and kept (the
   * write side keeps it in step). Without it every LOOKUP in an unindexed directory
   * (mke2fs -d makes only those) rescans it: a walk of a 1,000-entry directory cost a
   * million entry decodes. Bounded: DIR_INDEX_BYTES in all (see trimDirIndexes).
   */
  private nameIndex(ino: number): Map<string, number> {
    const cached = this.dirIndexes.get(ino);
    if (cached !== undefined) return cached.names;
    const names = new Map<string, number>();
    let bytes = 0;
    for (const e of this.readdirRecords(ino, this.dirInode(ino), 0)) {
      const key = latin1Key(e.rawName);
      if (names.has(key)) continue;
      names.set(key, e.ino);
      bytes += nameIndexCost(key.length);
    }
    this.dirIndexes.set(ino, { names, bytes });
    this.dirIndexBytes += bytes;
    if (this.dirIndexBytes > DIR_INDEX_BYTES) this.trimDirIndexes(ino);
    return names;
  }

  /**
   * Bring the name indexes back within DIR_INDEX_BYTES: drop other directories' whole
   * indexes, oldest first; then, if the index of `ino` alone is too big, drop it too
   * unless the directory is linear (an htree lookup reads one leaf; a linear directory
   * without its index is rescanned for every name, so the index of the one in use stays:
   * its size is that of the directory on the image).
   */
  private trimDirIndexes(ino: number): void {
    for (const [victim, index] of this.dirIndexes) {
      if (this.dirIndexBytes <= DIR_INDEX_BYTES) return;
      if (victim === ino) continue;
      this.dirIndexes.delete(victim);
      this.dirIndexBytes -= index.bytes;
    }
    if (this.dirIndexBytes > DIR_INDEX_BYTES && this.isIndexedDir(this.dirInode(ino))) this.dropDirIndex(ino);
  }

  private dropDirIndex(ino: number): void {
    const index = this.dirIndexes.get(ino);
    if (index === undefined) return;
    this.dirIndexes.delete(ino);
    this.dirIndexBytes -= index.bytes;
  }

  /**
   * The name index of an indexed directory, once lookups in it have cost about as much
   * as building the index (one scan): an htree lookup decodes one leaf, the index answers
   * hits and misses without reading anything, and the write side keeps it in step.
   */
  private busyHtreeIndex(ino: number, dir: Inode): Map<string, number> | undefined {
    const index = this.dirIndexes.get(ino);
    if (index !== undefined) return index.names;
    const blocks = this.dirBlocks(ino, dir);
    // A directory that may hold more names than all the indexes together keeps using
    // its htree (at most one leaf per lookup) instead of evicting every other index.
    const minRecLenCost = nameIndexCost(DIRENT_MIN_REC_LEN - DIRENT_HEADER_SIZE);
    if (blocks * Math.floor(this.sb.blockSize / DIRENT_MIN_REC_LEN) * minRecLenCost > DIR_INDEX_BYTES) return undefined;
    const count = (this.htreeLookups.get(ino) ?? 0) + 1;
    if (count < Math.max(HTREE_INDEX_AFTER, blocks)) {
      if (this.htreeLookups.size >= HTREE_LOOKUP_COUNTERS) this.htreeLookups.clear();
      this.htreeLookups.set(ino, count);
      return undefined;
    }
    this.htreeLookups.delete(ino);
    return this.nameIndex(ino);
  }

  /** Lookups so far in indexed directories without a name index (see busyHtreeIndex). */
  private readonly htreeLookups = new Map<number, number>();
  private readonly dirIndexes = new Map<number, NameIndex>();
  private dirIndexBytes = 0;

  /**
   * Read access to the index of a hash-ordered directory: its decoded root, the hash
   * version in effect, and how to reach and decode its other blocks, each checked (a block
   * number past the directory or in a hole is EUCLEAN, as are bad dx blocks).
   */
  private htree(ino: number, dir: Inode): Htree {
    const bs = this.sb.blockSize;
    const csum = this.sb.hasMetadataCsum;
    const seed = this.checksumSeed(ino, dir);
    const ctx = this.mapCtx;
    const blocks = this.dirBlocks(ino, dir);
    const physicalOf = (lblk: number): number => {
      if (lblk >= blocks) throw corrupted('htree', `index points at block ${lblk}, past the directory's ${blocks} blocks`, { inode: ino });
      const run = mapRun(ctx, ino, dir, lblk, 1);
      if (run.kind !== 'data') throw corrupted('htree', `index points at block ${lblk}, a hole in the directory`, { inode: ino });
      return run.physical;
    };
    const rootPhys = physicalOf(0);
    const root = this.dxRootOf(ino, rootPhys, seed);
    const version = effectiveHashVersion(root.hashVersion, this.sb.flags);
    const hashOptions = { version, seed: this.sb.hashSeed, casefold: this.isCasefoldDir(dir) };
    return {
      root,
      version,
      physicalOf,
      node: (lblk) => {
        const phys = physicalOf(lblk);
        return this.dxNodes.getOrDecode(phys, () => decodeDxNode(this.channel.view(phys), { blockSize: bs, hasChecksum: csum, inode: ino, csumSeed: seed, block: phys })).entries;
      },
      // The hash the index files a name under (casefolded in casefold directories), as
      // the writer (dir-write.ts) computes it.
      hash: (name) => dirHashName(name, hashOptions),
    };
  }

  private htreeLookup(ino: number, dir: Inode, name: Uint8Array): number | undefined {
    if (isDotName(name)) return this.linearLookup(ino, dir, name);
    const tree = this.htree(ino, dir);
    if (tree.version === DX_HASH.SIPHASH) return this.linearLookup(ino, dir, name);
    const hash = tree.hash(name).hash;
    let entries: readonly DxEntry[] = tree.root.entries;
    for (let level = 0; level < tree.root.indirectLevels; level++) entries = tree.node((entries[dxLookup(entries, hash)] as DxEntry).block);
    const matches = this.matcher(dir, name);
    const exact = !this.isCasefoldDir(dir);
    let i = dxLookup(entries, hash);
    for (;;) {
      const leaf = (entries[i] as DxEntry).block;
      const physical = tree.physicalOf(leaf);
      const found = exact ? this.findInLeaf(ino, dir, leaf, physical, name) : this.dirBlockEntries(ino, dir, leaf, physical, true).find((e) => matches(e.name))?.inode;
      if (found !== undefined) return found;
      // A hash collision may continue into the next leaf (its index hash has the low bit set).
      const next = entries[i + 1];
      if (next === undefined || (next.hash & 1) === 0 || (next.hash & ~1) >>> 0 !== hash) return undefined;
      i++;
    }
  }

  // ------------------------------------------------------------------ paths

  /**
   * Resolve a path to an inode. Absolute and relative paths are both taken from the
   * root. Symlinks in the middle are followed; the last component's only with
   * `followLast`. ELOOP after 40 symlinks, ENAMETOOLONG past 4096 bytes.
   */
  resolve(path: string | Uint8Array, followLast = true): number {
    return this.resolvePath(path, followLast, false, false);
  }

  /**
   * resolve; `remember`: a directory's path is kept in dirPaths (see there); `statsLast`
   * (with followLast false): the caller reads the inode found itself, which checks it.
   */
  private resolvePath(path: string | Uint8Array, followLast: boolean, remember: boolean, statsLast: boolean): number {
    let start: number;
    let stack: number[];
    let symlinks: number;
    let parts: Uint8Array[];
    let trailingSlash = false;
    const known = typeof path === 'string' ? this.knownDirOf(path) : undefined;
    if (known !== undefined) {
      // `path` is a known directory's path, a slash and one name (see knownDirOf).
      const name = (path as string).slice((path as string).lastIndexOf('/') + 1);
      // lstat of an ASCII name there: one lookup, by the name itself (its UTF-8 bytes are
      // its characters, as a name index's Latin-1 keys are), nothing else to follow.
      if (statsLast && !followLast && name !== '.' && name !== '..' && isAscii(name)) {
        try {
          return this.lookupEntry(known.ino, name);
        } catch (error) {
          throw withPath(error, path);
        }
      }
      start = known.ino;
      stack = known.stack.slice();
      symlinks = known.symlinksLeft;
      parts = [toBytes(name)];
    } else {
      const bytes = toBytes(path);
      if (bytes.length > PATH_MAX) throw new FsError('ENAMETOOLONG', `path of ${bytes.length} bytes is longer than ${PATH_MAX}`, { path: utf8.decode(bytes) });
      // A trailing slash (as in "dir/") follows a final symlink and requires a directory.
      trailingSlash = bytes.length > 1 && bytes[bytes.length - 1] === 0x2f;
      start = ROOT_INO;
      stack = [];
      symlinks = MAX_SYMLINKS;
      parts = splitPath(bytes);
    }
    const budget = { symlinks };
    try {
      const ino = this.walk(start, parts, followLast || trailingSlash, budget, stack, statsLast && !trailingSlash);
      if (trailingSlash && !isDir(this.liveInode(ino).mode)) throw new FsError('ENOTDIR', 'not a directory', { inode: ino });
      if (remember && typeof path === 'string' && this.writer === undefined && path.length <= MEMO_PATH_MAX && isDir(this.liveInode(ino).mode)) {
        if (this.dirPaths.size >= DIR_PATHS) {
          this.dirPaths.clear();
          this.lastKnownPath = undefined;
        }
        this.dirPaths.set(path, { ino, stack, symlinksLeft: budget.symlinks });
      }
      return ino;
    } catch (error) {
      throw withPath(error, path);
    }
  }

  /**
   * Directories `readdir` listed on a read-only filesystem (where nothing changes), by
   * their path as given: what resolving it as the start of a longer path leaves (its
   * inode, the ancestors '..' goes back through, symlinks left to follow). A walk that
   * lists `dir` and then stats `dir/name` for each name (readdir + lstat) then looks up
   * only `name`, instead of the whole path again. Paths of at most MEMO_PATH_MAX UTF-16
   * units (their UTF-8 cannot pass PATH_MAX with a name added); at most DIR_PATHS, cleared
   * when full.
   */
  private readonly dirPaths = new Map<string, KnownDir>();

  /** The known directory `path` is in, when `path` is its path, a slash and one name. */
  private knownDirOf(path: string): KnownDir | undefined {
    if (this.dirPaths.size === 0 || path.length > MEMO_PATH_MAX) return undefined;
    const slash = path.lastIndexOf('/');
    if (slash < 0 || slash === path.length - 1) return undefined;
    // A walk asks about one directory's names in a row: the last one found is compared
    // in place (no prefix string to cut and hash).
    const last = this.lastKnownPath;
    if (last !== undefined && (slash === 0 ? last === '/' : slash === last.length && path.startsWith(last))) return this.lastKnown;
    const prefix = slash === 0 ? '/' : path.slice(0, slash);
    const found = this.dirPaths.get(prefix);
    if (found !== undefined) {
      this.lastKnownPath = prefix;
      this.lastKnown = found;
    }
    return found;
  }

  /** The dirPaths entry knownDirOf found last, and its path. */
  private lastKnownPath: string | undefined;
  private lastKnown: KnownDir | undefined;

  /**
   * Follows `parts` from `start`; `stack` (the caller's, changed): the directories '..'
   * goes back to. `unreadLast` (with followLast false): the last name's inode is not read
   * here (the caller reads it).
   */
  private walk(start: number, parts: Uint8Array[], followLast: boolean, budget: { symlinks: number }, stack: number[], unreadLast = false): number {
    let cur = start;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i] as Uint8Array;
      if (bytesEqual(part, DOT)) continue;
      if (bytesEqual(part, DOTDOT)) {
        cur = stack.pop() ?? ROOT_INO;
        continue;
      }
      const next = this.lookup(cur, part);
      const last = i === parts.length - 1;
      if (last && unreadLast && !followLast) return next;
      // Of the last name only the type is wanted here (the caller reads what it needs of
      // it); the directories on the way are read again for the next lookup.
      const mode = last ? this.liveMode(next) : this.liveInode(next).mode;
      if (isSymlink(mode) && (!last || followLast)) {
        if (--budget.symlinks < 0) throw new FsError('ELOOP', 'too many levels of symbolic links');
        const target = this.readlinkInode(next);
        const absolute = target[0] === 0x2f;
        const base = absolute ? ROOT_INO : cur;
        cur = this.walk(base, splitPath(target), true, budget, absolute ? [] : stack.slice());
        // The resolved directory's ancestors are not tracked through symlinks; '..' after
        // a symlink goes through the directory's own '..' entry.
        stack.length = 0;
        if (cur !== ROOT_INO) stack.push(this.parentOf(cur));
        continue;
      }
      if (!last && !isDir(mode)) throw new FsError('ENOTDIR', `${quoteName(part)} is not a directory`, { inode: next });
      stack.push(cur);
      cur = next;
    }
    return cur;
  }

  private parentOf(dirIno: number): number {
    const inode = this.readInode(dirIno);
    if (!isDir(inode.mode)) return ROOT_INO;
    return this.lookup(dirIno, DOTDOT);
  }

  stat(path: string | Uint8Array): Stat {
    return this.getattr(this.resolve(path, true));
  }

  lstat(path: string | Uint8Array): Stat {
    return this.getattr(this.resolvePath(path, false, false, true));
  }

  exists(path: string | Uint8Array): boolean {
    try {
      this.resolve(path, false);
      return true;
    } catch (error) {
      if (error instanceof FsError && (error.code === 'ENOENT' || error.code === 'ENOTDIR')) return false;
      throw error;
    }
  }

  /** Names in a directory (without '.' and '..'), or entries with `withFileTypes`. */
  readdir(path: string | Uint8Array): string[];
  readdir(path: string | Uint8Array, options: { withFileTypes: true }): DirEntryInfo[];
  readdir(path: string | Uint8Array, options?: { withFileTypes?: boolean }): string[] | DirEntryInfo[] {
    const ino = this.resolvePath(path, true, true, false);
    const entries: DirEntryInfo[] = [];
    for (const e of this.readdirInode(ino)) {
      if (bytesEqual(e.rawName, DOT) || bytesEqual(e.rawName, DOTDOT)) continue;
      entries.push(e);
    }
    return options?.withFileTypes === true ? entries : entries.map((e) => e.name);
  }

  readFile(path: string | Uint8Array): Uint8Array {
    const ino = this.resolve(path, true);
    const st = this.getattr(ino);
    if (st.kind === 'directory') throw new FsError('EISDIR', 'is a directory', { inode: ino, path: String(path) });
    if (st.size > MAX_READ) throw new FsError('EFBIG', `file of ${st.size} bytes is too large to read at once; use createReadStream`, { inode: ino });
    return this.read(ino, 0, st.size);
  }

  readlink(path: string | Uint8Array): string {
    return utf8.decode(this.readlinkInode(this.resolve(path, false)));
  }

  listxattr(path: string | Uint8Array): string[] {
    return this.listxattrInode(this.resolve(path, false));
  }

  getxattr(path: string | Uint8Array, name: string): Uint8Array {
    return this.getxattrInode(this.resolve(path, false), name);
  }

  /** The canonical absolute path of `path` (symlinks resolved). */
  realpath(path: string | Uint8Array): string {
    let ino = this.resolve(path, true);
    const parts: string[] = [];
    const seen = new Set<number>();
    while (ino !== ROOT_INO) {
      if (seen.has(ino)) throw corrupted('directory', 'directory loop while walking up to the root', { inode: ino });
      seen.add(ino);
      const parent = this.parentOf(ino);
      let name: string | undefined;
      for (const e of this.readdirInode(parent)) {
        if (e.ino === ino && !bytesEqual(e.rawName, DOT) && !bytesEqual(e.rawName, DOTDOT)) {
          name = e.name;
          break;
        }
      }
      if (name === undefined) throw corrupted('directory', `inode ${ino} is not listed in its parent ${parent}`, { inode: ino });
      parts.unshift(name);
      ino = parent;
    }
    return '/' + parts.join('/');
  }

  /** A Readable of a file's content, read in chunks (default 1 MiB) as it is consumed. */
  createReadStream(path: string | Uint8Array, options: { start?: number; end?: number; highWaterMark?: number } = {}): Readable {
    const ino = this.resolve(path, true);
    const st = this.getattr(ino);
    if (st.kind === 'directory') throw new FsError('EISDIR', 'is a directory', { inode: ino });
    let pos = options.start ?? 0;
    const end = Math.min(st.size, options.end === undefined ? st.size : options.end + 1);
    const chunk = options.highWaterMark ?? 1 << 20;
    const readable: Readable = new Readable({
      highWaterMark: chunk,
      read: (): void => {
        try {
          const data = pos >= end ? new Uint8Array(0) : this.read(ino, pos, Math.min(chunk, end - pos));
          pos += data.length;
          readable.push(data.length === 0 ? null : Buffer.from(data.buffer, data.byteOffset, data.length));
        } catch (error) {
          readable.destroy(error instanceof Error ? error : new Error(String(error)));
        }
      },
    });
    return readable;
  }

  // ------------------------------------------------------------------ writing (inode level)

  /**
   * Write `data` at `offset` of a regular file; returns the bytes written. Sets mtime and
   * ctime to now unless `stampTimes` is false (for a FUSE server with the writeback
   * cache, where the kernel owns a written file's times and sends them in a SETATTR).
   */
  write(ino: number, offset: number, data: Uint8Array, stampTimes = true): number {
    return this.w().write(ino, offset, data, stampTimes);
  }

  /** Set a regular file's size. */
  truncate(ino: number, size: number): void {
    this.w().truncate(ino, size);
  }

  /** fallocate(2) modes: 0, FALLOC_FL_KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE. */
  fallocate(ino: number, mode: number, offset: number, length: number): void {
    this.w().fallocate(ino, mode, offset, length);
  }

  /** chmod/chown/utimens/truncate in one call (FUSE SETATTR); returns the new attributes. */
  setattr(ino: number, attr: SetAttr): Stat {
    const writer = this.w();
    if (attr.mode !== undefined) {
      // posix_acl_chmod: an access ACL follows the new mode.
      const entry = this.findXattr(ino, this.liveInode(ino), XATTR_INDEX.POSIX_ACL_ACCESS, new Uint8Array(0));
      if (entry !== undefined) {
        const vfs = ext4AclToVfs(this.xattrValue(ino, entry), { inode: ino });
        if (vfs !== null) writer.setxattr(ino, ACL_ACCESS, encodeVfsAcl(aclChmod(decodeVfsAcl(vfs), attr.mode)));
      }
    }
    writer.setattr(ino, attr);
    return this.getattr(ino);
  }

  /** FS_IOC_SETFLAGS (chattr): the user-settable inode flags. */
  setFlags(ino: number, flags: number): void {
    this.w().setFlags(ino, flags);
  }

  /**
   * Set atime to now (the caller's atime policy decides when); false when it already
   * was now (nothing written).
   */
  touchAtime(ino: number): boolean {
    return this.w().touchAtime(ino);
  }

  /** Create a regular file, fifo, socket or device node in a directory; returns its inode. */
  mknodInode(parent: number, name: string | Uint8Array, mode: number, who: Creator, rdev: readonly [number, number] = [0, 0]): number {
    return this.w().create(parent, toBytes(name), mode, who, { rdev });
  }

  mkdirInode(parent: number, name: string | Uint8Array, mode: number, who: Creator): number {
    return this.w().mkdir(parent, toBytes(name), mode, who);
  }

  symlinkInode(parent: number, name: string | Uint8Array, target: string | Uint8Array, who: Creator): number {
    return this.w().create(parent, toBytes(name), 0o120777, who, { target: toBytes(target) });
  }

  /** A new hard link `name` in `parent` to inode `ino`. */
  linkInode(ino: number, parent: number, name: string | Uint8Array): void {
    this.w().hardlink(ino, parent, toBytes(name));
  }

  /**
   * Remove a non-directory name. An inode whose last link goes is freed at once,
   * unless `isOpen(ino)` says it is still open: then `releaseInode` frees it later.
   */
  unlinkInode(parent: number, name: string | Uint8Array, isOpen?: (ino: number) => boolean): { ino: number; freed: boolean } {
    return this.w().unlink(parent, toBytes(name), isOpen);
  }

  rmdirInode(parent: number, name: string | Uint8Array): number {
    return this.w().rmdir(parent, toBytes(name));
  }

  /** rename(2)/renameat2: `flags` RENAME_NOREPLACE or RENAME_EXCHANGE. */
  renameInode(oldParent: number, oldName: string | Uint8Array, newParent: number, newName: string | Uint8Array, flags = 0, isOpen?: (ino: number) => boolean): void {
    this.w().rename(oldParent, toBytes(oldName), newParent, toBytes(newName), flags, isOpen);
  }

  /** Free an unlinked inode that was kept because it was open (its last close). */
  releaseInode(ino: number): void {
    this.w().releaseOrphan(ino);
  }

  /** setxattr(2) (flags XATTR_CREATE / XATTR_REPLACE); POSIX ACLs in the VFS format. */
  setxattrInode(ino: number, name: string, value: Uint8Array, flags = 0): void {
    this.w().setxattr(ino, name, value, flags);
  }

  removexattrInode(ino: number, name: string): void {
    this.w().setxattr(ino, name, null);
  }

  /**
   * Make every change durable: metadata written back and the device flushed (fsync,
   * syncfs). On a read-only filesystem, nothing to do.
   */
  sync(): void {
    this.writer?.sync(true);
  }

  /**
   * Write every change back to the device without waiting for it to be durable (what
   * close(2) gets: the data survives this process, as the kernel's page cache would
   * keep it). Durability is `sync`.
   */
  writeBack(): void {
    if (this.writer === undefined) return;
    // Descriptors and bitmaps go with the blocks they describe; the superblock's free
    // counts wait for the next sync (while mounted it says "not clean", so after a
    // crash e2fsck recounts them, as it would for the kernel's lazy counters).
    this.writer.alloc.sync();
    this.channel.writeBackDirty();
  }

  // ------------------------------------------------------------------ writing (paths)

  /** The parent directory of a path and the last component's name. */
  private parentAndName(path: string | Uint8Array): { parent: number; name: Uint8Array } {
    const bytes = toBytes(path);
    const parts = splitPath(bytes);
    const name = parts.pop();
    if (name === undefined) throw new FsError('EEXIST', 'the root directory always exists', { path: utf8.decode(bytes) });
    const parentPath = new Uint8Array(Buffer.concat(parts.flatMap((p) => [Buffer.from('/'), Buffer.from(p)])));
    const parent = this.resolve(parentPath.length === 0 ? '/' : parentPath, true);
    if (!isDir(this.liveInode(parent).mode)) throw new FsError('ENOTDIR', 'not a directory', { inode: parent, path: utf8.decode(bytes) });
    return { parent, name };
  }

  private pathError<T>(path: string | Uint8Array, fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      throw withPath(error, path);
    }
  }

  /**
   * Create or replace a file's whole content (like fs.writeFileSync): a symlink as
   * the last component is followed, and a dangling one creates its target.
   */
  writeFile(path: string | Uint8Array, data: Uint8Array | string, options: { mode?: number; uid?: number; gid?: number } = {}): void {
    this.pathError(path, () => {
      const bytes = typeof data === 'string' ? utf8Encoder.encode(data) : data;
      let target = toBytes(path);
      let ino: number | undefined;
      for (let hops = 0; ino === undefined; hops++) {
        if (hops > MAX_SYMLINKS) throw new FsError('ELOOP', 'too many levels of symbolic links');
        const { parent, name } = this.parentAndName(target);
        let found: number;
        try {
          found = this.lookup(parent, name);
        } catch (error) {
          if (!(error instanceof FsError) || error.code !== 'ENOENT') throw error;
          ino = this.mknodInode(parent, name, S_IFREG | ((options.mode ?? 0o644) & 0o7777), { uid: options.uid ?? 0, gid: options.gid ?? 0 });
          break;
        }
        const inode = this.liveInode(found);
        if (!isSymlink(inode.mode)) {
          if (isDir(inode.mode)) throw new FsError('EISDIR', 'is a directory', { inode: found });
          this.truncate(found, 0);
          ino = found;
          break;
        }
        const link = this.readlinkInode(found);
        const slash = target.lastIndexOf(0x2f);
        target = link[0] === 0x2f || slash < 0 ? link : new Uint8Array(Buffer.concat([Buffer.from(target.subarray(0, slash + 1)), Buffer.from(link)]));
      }
      let pos = 0;
      while (pos < bytes.length) {
        const n = Math.min(bytes.length - pos, 8 << 20);
        pos += this.write(ino, pos, bytes.subarray(pos, pos + n));
      }
    });
  }

  /** mkdir; with `recursive`, missing parents too and no error when it exists. Returns the inode. */
  mkdir(path: string | Uint8Array, options: { recursive?: boolean; mode?: number; uid?: number; gid?: number } = {}): number {
    return this.pathError(path, () => {
      const who = { uid: options.uid ?? 0, gid: options.gid ?? 0 };
      const mode = options.mode ?? 0o755;
      if (options.recursive !== true) {
        const { parent, name } = this.parentAndName(path);
        return this.mkdirInode(parent, name, mode, who);
      }
      let cur = ROOT_INO;
      for (const part of splitPath(toBytes(path))) {
        if (bytesEqual(part, DOT)) continue;
        if (bytesEqual(part, DOTDOT)) {
          cur = this.parentOf(cur);
          continue;
        }
        let next: number;
        try {
          next = this.lookup(cur, part);
          const inode = this.liveInode(next);
          if (isSymlink(inode.mode)) next = this.walk(cur, [part], true, { symlinks: MAX_SYMLINKS }, []);
          if (!isDir(this.liveInode(next).mode)) throw new FsError('ENOTDIR', `${quoteName(part)} is not a directory`, { inode: next });
        } catch (error) {
          if (!(error instanceof FsError) || error.code !== 'ENOENT') throw error;
          next = this.mkdirInode(cur, part, mode, who);
        }
        cur = next;
      }
      return cur;
    });
  }

  /** Remove a file or (empty) directory; `recursive` removes a whole tree; `force` ignores a missing path. */
  rm(path: string | Uint8Array, options: { recursive?: boolean; force?: boolean } = {}): void {
    this.pathError(path, () => {
      let target: { parent: number; name: Uint8Array; ino: number };
      try {
        const { parent, name } = this.parentAndName(path);
        target = { parent, name, ino: this.lookup(parent, name) };
      } catch (error) {
        if (options.force === true && error instanceof FsError && error.code === 'ENOENT') return;
        throw error;
      }
      this.removeEntryTree(target.parent, target.name, target.ino, options.recursive === true);
    });
  }

  private removeEntryTree(parent: number, name: Uint8Array, ino: number, recursive: boolean): void {
    if (!isDir(this.liveInode(ino).mode)) {
      this.unlinkInode(parent, name);
      return;
    }
    if (!recursive) {
      this.rmdirInode(parent, name);
      return;
    }
    // Depth first, without recursion on the JS stack for deep trees. A directory met
    // twice (an entry naming an ancestor, itself or another directory's inode: only a
    // damaged image has one) would make this loop forever: EUCLEAN instead.
    const stack: { parent: number; name: Uint8Array; ino: number; listed: boolean }[] = [{ parent, name, ino, listed: false }];
    const seen = new Set<number>([ino, parent]);
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as (typeof stack)[number];
      if (!top.listed) {
        top.listed = true;
        // Record order: a removal needs no hash-ordered listing (nor its hashing).
        for (const e of this.readdirRecords(top.ino, this.dirInode(top.ino), 0)) {
          if (isDotName(e.rawName)) continue;
          if (e.kind === 'directory' || (e.kind === 'unknown' && isDir(this.liveInode(e.ino).mode))) {
            if (seen.has(e.ino)) {
              throw corrupted('directory', `entry ${quoteName(e.rawName)} names directory ${e.ino}, already met in the tree being removed (a directory cycle)`, { inode: top.ino });
            }
            seen.add(e.ino);
            stack.push({ parent: top.ino, name: e.rawName.slice(), ino: e.ino, listed: false });
          } else {
            this.unlinkInode(top.ino, e.rawName);
          }
        }
        continue;
      }
      stack.pop();
      this.rmdirInode(top.parent, top.name);
    }
  }

  /** unlink(2) by path: a non-directory (EISDIR for a directory). */
  unlink(path: string | Uint8Array): void {
    this.pathError(path, () => {
      const { parent, name } = this.parentAndName(path);
      this.unlinkInode(parent, name);
    });
  }

  /** rmdir(2) by path: an empty directory (ENOTDIR for anything else). */
  rmdir(path: string | Uint8Array): void {
    this.pathError(path, () => {
      const { parent, name } = this.parentAndName(path);
      this.rmdirInode(parent, name);
    });
  }

  /** rename(2) by path. */
  rename(oldPath: string | Uint8Array, newPath: string | Uint8Array, flags = 0): void {
    this.pathError(oldPath, () => {
      const from = this.parentAndName(oldPath);
      const to = this.parentAndName(newPath);
      this.renameInode(from.parent, from.name, to.parent, to.name, flags);
    });
  }

  symlink(target: string | Uint8Array, path: string | Uint8Array, who: Creator = { uid: 0, gid: 0 }): number {
    return this.pathError(path, () => {
      const { parent, name } = this.parentAndName(path);
      return this.symlinkInode(parent, name, target, who);
    });
  }

  link(existingPath: string | Uint8Array, newPath: string | Uint8Array): void {
    this.pathError(newPath, () => {
      const ino = this.resolve(existingPath, false);
      const { parent, name } = this.parentAndName(newPath);
      this.linkInode(ino, parent, name);
    });
  }

  chmod(path: string | Uint8Array, mode: number): void {
    this.pathError(path, () => this.setattr(this.resolve(path, true), { mode }));
  }

  chown(path: string | Uint8Array, uid: number, gid: number): void {
    this.pathError(path, () => this.setattr(this.resolve(path, true), { uid, gid }));
  }

  lchown(path: string | Uint8Array, uid: number, gid: number): void {
    this.pathError(path, () => this.setattr(this.resolve(path, false), { uid, gid }));
  }

  utimes(path: string | Uint8Array, atime: Timestamp, mtime: Timestamp, follow = true): void {
    this.pathError(path, () => this.setattr(this.resolve(path, follow), { atime, mtime }));
  }

  truncateFile(path: string | Uint8Array, size: number): void {
    this.pathError(path, () => this.truncate(this.resolve(path, true), size));
  }

  setxattr(path: string | Uint8Array, name: string, value: Uint8Array, flags = 0): void {
    this.pathError(path, () => this.setxattrInode(this.resolve(path, false), name, value, flags));
  }

  removexattr(path: string | Uint8Array, name: string): void {
    this.pathError(path, () => this.removexattrInode(this.resolve(path, false), name));
  }
}

/** A name for an error message: quoted, on one line, control bytes escaped (names come from the image). */
function splitPath(bytes: Uint8Array): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x2f) {
      if (i > start) parts.push(bytes.subarray(start, i));
      start = i + 1;
    }
  }
  return parts;
}

/** How a directory's path resolves as the start of a longer one (Ext4.dirPaths). */
interface KnownDir {
  readonly ino: number;
  /** The directories '..' goes back to from it, nearest last. */
  readonly stack: readonly number[];
  readonly symlinksLeft: number;
}

/** An inode's record where the block cache holds it (Ext4.inodeRecord). */
interface InodeRecordRef {
  /** The inode-table block. */
  view: Uint8Array;
  /** The record's first byte in `view`. */
  offset: number;
  block: number;
}

/** The kind of a live inode; EUCLEAN for an invalid file type or a freed inode (a directory entry must not name one). */
function checkLive(ino: number, mode: number, linksCount: number): FileKind {
  if (linksCount === 0 && mode === 0) throw corrupted('inode', 'a directory entry refers to a free inode', { inode: ino });
  const kind = kindOfMode(mode);
  if (kind === 'unknown') throw corrupted('inode', `invalid file type in mode 0${mode.toString(8)}`, { inode: ino });
  return kind;
}

/** st_nlink: a directory with i_links_count 1 (dir_nlink: too many subdirectories to count) reports 1. */
function statNlink(mode: number, linksCount: number): number {
  return isDir(mode) && linksCount === 1 ? 1 : linksCount;
}

/** A listing to fill (describeInode). */
function emptyListing(): InodeListing {
  return { kind: 'file', mode: 0, nlink: 0, uid: 0, gid: 0, size: 0, blocks: 0, rdevMajor: 0, rdevMinor: 0, mtimeSeconds: 0, mtimeNanoseconds: 0, target: undefined, hasXattr: false };
}

/** Device number from i_block: old 16-bit encoding in word 0, else the new 32-bit one in word 1. */
function decodeDevice(block: Uint8Array): [number, number] {
  const w0 = (block[0] as number) | ((block[1] as number) << 8) | ((block[2] as number) << 16) | (((block[3] as number) << 24) >>> 0);
  if (w0 !== 0) return [(w0 >>> 8) & 0xff, w0 & 0xff];
  const w1 = ((block[4] as number) | ((block[5] as number) << 8) | ((block[6] as number) << 16) | ((block[7] as number) << 24)) >>> 0;
  return [(w1 >>> 8) & 0xfff, (w1 & 0xff) | ((w1 >>> 12) & 0xfff00)];
}

/** glibc's makedev for majors below 4096 (what Node reports as st_rdev). */
function makedev(major: number, minor: number): number {
  return (((major & 0xfff) << 8) | (minor & 0xff) | ((minor & 0xfff00) << 12)) >>> 0;
}
