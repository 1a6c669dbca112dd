/**
 * Directory mutation: add, remove and retarget entries of linear and hash-tree
 * (dir_index) directories, and build the first block of a new directory.
 *
 * The module is pure directory logic over a block store: it never allocates, maps or
 * frees filesystem blocks itself, and it never touches the directory's inode. The
 * caller provides a `DirStore` (the directory's logical blocks, and a way to grow it by
 * one block) and a `DirContext` (superblock and inode facts), and applies what the
 * calls return to the inode (INDEX_FL).
 *
 * API
 *
 *   addEntry(store, ctx, indexed, name, ino, fileType) -> { indexed }
 *       Adds name -> ino. EEXIST if the name is there (or is '.'/'..'), EINVAL for a
 *       name with '/' or NUL or (strict casefold) invalid UTF-8, ENAMETOOLONG past 255
 *       bytes, ENOSPC when an htree cannot grow (depth limit) or the directory would
 *       pass its size limit. The result says whether the directory is indexed now: the
 *       caller must make the inode's INDEX_FL equal to it (a 1-block linear directory
 *       that overflows is turned into an htree when `ctx.dirIndex` is true, as the kernel's
 *       make_indexed_dir does).
 *   removeEntry(store, ctx, indexed, name) -> ino
 *       Removes the entry and returns the inode it named; ENOENT if absent, EINVAL for
 *       '.' and '..'. The record is merged into the previous one in its block (the first
 *       record of a block gets inode 0). Htree leaves are never merged or freed.
 *   replaceEntry(store, ctx, indexed, name, newIno, newFileType) -> old ino
 *       Points an existing entry (or '..', e.g. when a directory moves) at another
 *       inode. ENOENT if absent, EINVAL for '.'.
 *   isEmptyDir(store, ctx, indexed) -> boolean
 *       True when nothing but '.' and '..' is live.
 *   newDirBlock(ctx, self, parent) -> bytes
 *       Block 0 of a new directory: '.' (rec_len 12) and '..' (the rest), with the
 *       checksum tail (and its checksum, seeded with `ctx.csumSeed`) under metadata_csum.
 *
 * `indexed` is what the reader uses: INDEX_FL set, dir_index on, not inline, not
 * encrypted. Inline-data directories are not handled here. Encrypted directories are
 * refused (EOPNOTSUPP): their names are ciphertext and their hashes need the key.
 *
 * Format rules followed (Documentation/filesystems/ext4/directory.rst):
 * - Linear directory: the new record goes into the first record with enough slack, in
 *   the first block that has one; otherwise a block is appended.
 * - Htree: the leaf is found by the name's hash (of the casefolded name in casefold
 *   directories) through dx_root/dx_nodes, exactly as the reader looks names up. A full
 *   leaf is first compacted if that makes room; otherwise its entries plus the new one
 *   are sorted by hash and split in two blocks at a boundary between different hashes
 *   when one fits (the balanced one preferred); only when a run of equal hashes must be
 *   cut is the new index entry's hash given bit 0 (DX_HASH_CONTINUED), which tells
 *   lookups to go on into that block. The new (hash, block) entry goes into the parent
 *   dx block; a full dx_node is split in half (avoiding a half that starts with a
 *   continued hash, which a lookup could not follow across dx_nodes); a full root gets a
 *   new level below it (its entries move to a new dx_node). The depth is limited to
 *   indirect_levels 1, or 2 with large_dir; past that addEntry throws ENOSPC, as the
 *   kernel does. Every new block is appended at the end of the directory.
 * - metadata_csum: leaf blocks keep their 12-byte tail and its crc32c, dx blocks their
 *   dx_tail checksum; both are seeded with `ctx.csumSeed`.
 * - Blocks of 64 KiB: rec_len values go through recLenToDisk (dirent.ts / htree.ts).
 *
 * Failure atomicity: every check that can refuse an add (name, duplicate, depth, size)
 * runs before anything is written. The blocks an add needs are appended first, each
 * written at once as an empty leaf, so an append that fails part way (allocator
 * ENOSPC) leaves at most some empty leaf blocks at the end of the directory: readable,
 * but in an htree not referenced by the index (e2fsck -D tidies that).
 *
 * Blocks read through the store are checked (records, dx limits/counts, and the
 * checksums unless `ctx.verifyChecksums` is false); a corrupt block gives EUCLEAN and
 * nothing is written.
 */
import { corrupted, FsError, quoteName } from '../errors.js';
import {
  buildDirBlock,
  decodeDirBlock,
  dirBlockSpace,
  dirRecLen,
  insertDirEntryAt,
  findDirSlot,
  removeDirEntry,
  setDirBlockChecksum,
  findInDirBlock,
  DIRENT_OFFSETS,
  FT,
  hasSlashOrNul,
  NAME_MAX,
  type DirBlock,
  type DirBlockOptions,
  type DirEntry,
  type DirEntryInput,
  type DirWriteOptions,
} from '../ondisk/dirent.js';
import {
  decodeDxNode,
  decodeDxRoot,
  dxLookup,
  dxNodeLimit,
  dxRootLimit,
  encodeDxNode,
  encodeDxRoot,
  isDxNodeBlock,
  setDxChecksum,
  DX_BLOCK_MASK,
  DX_HASH_CONTINUED,
  DX_ROOT_OFFSETS,
  HTREE_LEVEL,
  HTREE_LEVEL_COMPAT,
  type DxEntry,
  type DxNode,
  type DxRoot,
  type DxWriteOptions,
} from '../ondisk/htree.js';
import { dirHashName, effectiveHashVersion, DX_HASH, type DirHashSeed } from '../ondisk/dirhash.js';
import { casefoldNameOrNull, namesEqualCasefold } from '../ondisk/casefold.js';

/** The directory's blocks, by logical block number. */
export interface DirStore {
  readonly blockSize: number;
  /** Directory size in blocks (i_size / block size). */
  blockCount(): number;
  /** A private copy of logical block `lblk` (0 <= lblk < blockCount()). */
  read(lblk: number): Uint8Array;
  /**
   * Optional: logical block `lblk` without a copy, valid until the next call on the
   * store; never modified by the caller. Without it, `read` is used.
   */
  view?(lblk: number): Uint8Array;
  /** Replace logical block `lblk` (a whole block). */
  write(lblk: number, bytes: Uint8Array): void;
  /**
   * Optional: whether leaf `lblk`'s checksum is known good (verified, or written by
   * this code, since its block entered the directory); such a leaf is not verified
   * again. Without it every read verifies.
   */
  trusted?(lblk: number): boolean;
  /** Optional: record that leaf `lblk`'s content was verified or produced here. */
  trust?(lblk: number): void;
  /**
   * Optional: the decoded dx root (block 0) or dx node `lblk`, from a cache of earlier
   * decodes, or `decode()`'s result (then cached). Whoever writes a block must drop its
   * cached decode. Without them every index walk decodes (and verifies) again.
   */
  decodedRoot?(decode: () => DxRoot): DxRoot;
  decodedNode?(lblk: number, decode: () => DxNode): DxNode;
  /**
   * Optional: change logical block `lblk` in place (`change` gets the block's bytes and
   * must not throw); the same as read, change, write, without the two copies.
   */
  update?(lblk: number, change: (bytes: Uint8Array) => void): void;
  /**
   * Allocate and map a new block at logical block blockCount() (the directory, and its
   * i_size, grow by one block); returns its lblk. Its content is written by the caller
   * right after. May throw (ENOSPC).
   */
  append(): number;
}

/** Filesystem and inode facts the directory code needs. */
export interface DirContext {
  /** The directory's inode number (error messages). */
  readonly ino: number;
  /** Filesystem block size (must equal the store's). */
  readonly blockSize: number;
  /** metadata_csum: leaf blocks end in a checksum tail, dx blocks in a dx_tail. */
  readonly metadataCsum: boolean;
  /** The directory's per-inode checksum seed (inodeCsumSeed); used when metadataCsum. */
  readonly csumSeed: number;
  /** The filetype feature. */
  readonly hasFileType: boolean;
  /** s_hash_seed. */
  readonly hashSeed: DirHashSeed | null;
  /** s_def_hash_version (0-2): the hash of a root created by a linear -> htree conversion. */
  readonly defaultHashVersion: number;
  /** s_flags (signed/unsigned hash). */
  readonly sFlags: number;
  /** The directory is casefolded (casefold feature and CASEFOLD_FL). */
  readonly casefold: boolean;
  /** large_dir: 3-level htrees, directories above 4 GiB. */
  readonly largeDir: boolean;
  /** dir_index: an overflowing 1-block linear directory becomes an htree (default false). */
  readonly dirIndex?: boolean;
  /** ENCRYPT_FL on the directory: refused (EOPNOTSUPP). */
  readonly encrypted?: boolean;
  /** Verify block checksums on read (default true). */
  readonly verifyChecksums?: boolean;
  /** Tests only: replaces the name hash (the result must have bit 0 clear). */
  readonly hashOverride?: (name: Uint8Array) => number;
}

const DOT = new Uint8Array([0x2e]);
const DOTDOT = new Uint8Array([0x2e, 0x2e]);

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isDot(name: Uint8Array): boolean {
  return bytesEqual(name, DOT);
}

function isDotDot(name: Uint8Array): boolean {
  return bytesEqual(name, DOTDOT);
}

// ------------------------------------------------------------------ shared helpers

/** Everything derived from store + context, computed once per call. */
class Dir {
  readonly bs: number;
  readonly leafWrite: DirWriteOptions;
  readonly dxWrite: DxWriteOptions;
  readonly maxLevels: number;

  constructor(
    readonly store: DirStore,
    readonly ctx: DirContext,
  ) {
    if (ctx.encrypted === true) throw new FsError('EOPNOTSUPP', 'writing to encrypted directories is not supported', { inode: ctx.ino });
    this.bs = store.blockSize;
    if (ctx.blockSize !== this.bs) throw new FsError('EINVAL', `directory store block size ${this.bs} != context block size ${ctx.blockSize}`, { inode: ctx.ino });
    this.leafWrite = {
      blockSize: this.bs,
      hasFileType: ctx.hasFileType,
      hasChecksumTail: ctx.metadataCsum,
      csumSeed: ctx.metadataCsum ? ctx.csumSeed : undefined,
    };
    this.dxWrite = {
      blockSize: this.bs,
      hasChecksum: ctx.metadataCsum,
      hasFileType: ctx.hasFileType,
      csumSeed: ctx.metadataCsum ? ctx.csumSeed : undefined,
    };
    this.maxLevels = ctx.largeDir ? HTREE_LEVEL : HTREE_LEVEL_COMPAT;
  }

  /** The seed reads verify checksums with; undefined when they do not. */
  private get verifySeed(): number | undefined {
    return this.ctx.metadataCsum && this.ctx.verifyChecksums !== false ? this.ctx.csumSeed : undefined;
  }

  blocks(): number {
    const n = this.store.blockCount();
    if (!Number.isInteger(n) || n < 1) throw corrupted('directory', `directory has ${n} blocks`, { inode: this.ctx.ino });
    return n;
  }

  read(lblk: number): Uint8Array {
    const bytes = this.store.read(lblk);
    if (bytes.length !== this.bs) throw new FsError('EIO', `directory block ${lblk}: read ${bytes.length} bytes, block size ${this.bs}`, { inode: this.ctx.ino });
    return bytes;
  }

  /**
   * Change leaf `lblk` in place where the store can (`change` must not throw), else
   * read, change, write. `change` leaves the leaf's checksum right (leafWrite).
   */
  modify(lblk: number, change: (bytes: Uint8Array) => void): void {
    if (this.store.update !== undefined) {
      this.store.update(lblk, change);
    } else {
      const bytes = this.read(lblk);
      change(bytes);
      this.store.write(lblk, bytes);
    }
    this.store.trust?.(lblk);
  }

  /** Put `entry` at `slot` of leaf `lblk` (a slot `slotInLeaf` found in its current bytes). */
  insertAt(lblk: number, slot: number, entry: DirEntryInput): void {
    this.modify(lblk, (bytes) => insertDirEntryAt(bytes, slot, entry, this.leafWrite));
  }

  /** Block `lblk` for decoding only: valid until the next store call, never modified. */
  peek(lblk: number): Uint8Array {
    if (this.store.view === undefined) return this.read(lblk);
    const bytes = this.store.view(lblk);
    if (bytes.length !== this.bs) throw new FsError('EIO', `directory block ${lblk}: read ${bytes.length} bytes, block size ${this.bs}`, { inode: this.ctx.ino });
    return bytes;
  }

  /** How leaf `lblk` is read: layout, error context, checksum verification (not for a trusted leaf). */
  private leafRead(lblk: number): DirBlockOptions {
    return {
      blockSize: this.bs,
      hasFileType: this.ctx.hasFileType,
      hasChecksumTail: this.ctx.metadataCsum,
      inode: this.ctx.ino,
      block: lblk,
      csumSeed: this.store.trusted?.(lblk) === true ? undefined : this.verifySeed,
    };
  }

  /** `read` of leaf `lblk` with `leafRead`'s options; a leaf that passed is trusted from then on. */
  private readLeaf<T>(lblk: number, read: (options: DirBlockOptions) => T): T {
    const options = this.leafRead(lblk);
    const result = read(options);
    if (options.csumSeed !== undefined) this.store.trust?.(lblk);
    return result;
  }

  decodeLeaf(bytes: Uint8Array, lblk: number): DirBlock {
    return this.readLeaf(lblk, (options) => decodeDirBlock(bytes, options));
  }

  /** The dx root of an indexed directory, as the store has it (decoded or cached). */
  root(): DxRoot {
    const decode = (): DxRoot => this.decodeRoot(this.peek(0));
    return this.store.decodedRoot === undefined ? decode() : this.store.decodedRoot(decode);
  }

  /** The entries of dx node `lblk` (a copy the caller may change). */
  node(lblk: number): DxEntry[] {
    const decode = (): DxNode => decodeDxNode(this.peek(lblk), { blockSize: this.bs, hasChecksum: this.ctx.metadataCsum, inode: this.ctx.ino, block: lblk, csumSeed: this.verifySeed });
    return [...(this.store.decodedNode === undefined ? decode() : this.store.decodedNode(lblk, decode)).entries];
  }

  decodeRoot(bytes: Uint8Array): DxRoot {
    return decodeDxRoot(bytes, {
      blockSize: this.bs,
      hasChecksum: this.ctx.metadataCsum,
      largeDir: this.ctx.largeDir,
      hasFileType: this.ctx.hasFileType,
      inode: this.ctx.ino,
      block: 0,
      csumSeed: this.verifySeed,
    });
  }

  /** The live entry `name` names in leaf `bytes`, compared as the directory compares names. */
  findInLeaf(bytes: Uint8Array, lblk: number, name: Uint8Array): { readonly inode: number; readonly offset: number } | undefined {
    if (this.ctx.casefold) return this.decodeLeaf(bytes, lblk).entries.find((e) => this.matches(e.name, name));
    return this.readLeaf(lblk, (options) => findInDirBlock(bytes, options, name)) ?? undefined;
  }

  /**
   * For an add: whether `entry.name` is in leaf `bytes`, and where the new record would
   * go (-1: no room); one pass unless names compare casefolded.
   */
  slotInLeaf(bytes: Uint8Array, lblk: number, entry: DirEntryInput): { readonly exists: boolean; readonly slot: number } {
    const r = this.readLeaf(lblk, (options) => findDirSlot(bytes, options, entry));
    const exists = r.found !== null || (this.ctx.casefold && this.findInLeaf(bytes, lblk, entry.name) !== undefined);
    return { exists, slot: r.slot };
  }

  /** Name equality as the directory defines it. */
  matches(a: Uint8Array, b: Uint8Array): boolean {
    return this.ctx.casefold ? namesEqualCasefold(a, b) : bytesEqual(a, b);
  }

  hash(name: Uint8Array, version: number): number {
    if (this.ctx.hashOverride !== undefined) return this.ctx.hashOverride(name) >>> 0;
    return dirHashName(name, { version, seed: this.ctx.hashSeed, casefold: this.ctx.casefold }).hash;
  }

  /** Grow the directory by one block, written at once as an empty leaf. */
  append(): number {
    const before = this.store.blockCount();
    const lblk = this.store.append();
    if (lblk !== before) throw new FsError('EIO', `directory append returned block ${lblk}, expected ${before}`, { inode: this.ctx.ino });
    this.store.write(lblk, this.emptyLeaf());
    this.store.trust?.(lblk);
    return lblk;
  }

  /** ENOSPC unless `count` more blocks keep the directory within its size (and htree block-number) limits. */
  checkGrowth(count: number, indexed: boolean): void {
    const after = this.store.blockCount() + count;
    const limitBytes = this.ctx.largeDir ? Number.MAX_SAFE_INTEGER : 0xffffffff;
    if (after * this.bs > limitBytes || (indexed && after - 1 > DX_BLOCK_MASK)) {
      throw new FsError('ENOSPC', `directory cannot grow to ${after} blocks`, { inode: this.ctx.ino });
    }
  }

  emptyLeaf(): Uint8Array {
    return buildDirBlock([], this.leafWrite);
  }

  writeLeaf(lblk: number, entries: readonly DirEntryInput[]): void {
    this.store.write(lblk, buildDirBlock(entries, this.leafWrite));
    this.store.trust?.(lblk);
  }

  rootLimit(): number {
    return dxRootLimit(this.bs, this.ctx.metadataCsum);
  }

  nodeLimit(): number {
    return dxNodeLimit(this.bs, this.ctx.metadataCsum);
  }
}

function checkName(ctx: DirContext, name: Uint8Array): void {
  if (name.length === 0) throw new FsError('EINVAL', 'empty name', { inode: ctx.ino });
  if (name.length > NAME_MAX) throw new FsError('ENAMETOOLONG', `name of ${name.length} bytes is longer than ${NAME_MAX}`, { inode: ctx.ino });
  if (hasSlashOrNul(name)) throw new FsError('EINVAL', 'a name cannot contain "/" or NUL', { inode: ctx.ino });
}

/**
 * True for a dx_node block of an indexed directory (and for an empty leaf, which has no
 * live entries either): the first record spans the block and is unused. isDxNodeBlock
 * alone also matches, without metadata_csum, a leaf whose single live entry spans the
 * block.
 */
function isDxBlock(bytes: Uint8Array, blockSize: number): boolean {
  return isDxNodeBlock(bytes, blockSize) && new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(DIRENT_OFFSETS.inode, true) === 0;
}

function toInput(e: DirEntry): DirEntryInput {
  return { inode: e.inode, name: e.name, fileType: e.fileType };
}

// ------------------------------------------------------------------ finding entries

interface Found {
  readonly lblk: number;
  readonly entry: { readonly inode: number; readonly offset: number };
}

/** Scan every leaf block for `name` (dx blocks of an indexed directory skipped). */
function scanFind(dir: Dir, indexed: boolean, name: Uint8Array): Found | undefined {
  const n = dir.blocks();
  for (let lblk = indexed ? 1 : 0; lblk < n; lblk++) {
    const bytes = dir.peek(lblk);
    if (indexed && isDxBlock(bytes, dir.bs)) continue;
    const entry = dir.findInLeaf(bytes, lblk, name);
    if (entry !== undefined) return { lblk, entry };
  }
  return undefined;
}

/** One level of a walk down the index: the dx block, its entries, the entry followed. */
interface Frame {
  readonly lblk: number;
  entries: DxEntry[];
  index: number;
}

interface Probe {
  readonly root: DxRoot;
  readonly version: number;
  readonly hash: number;
  /** frames[0] is the root; frames[i] the dx_node at depth i. The leaf is frames[last].entries[index]. */
  readonly frames: Frame[];
}

/** Walk from the root to the leaf for `name`, as the reader's lookup does. */
function probe(dir: Dir, name: Uint8Array): Probe {
  const n = dir.blocks();
  const root = dir.root();
  const version = effectiveHashVersion(root.hashVersion, dir.ctx.sFlags);
  if (version === DX_HASH.SIPHASH && dir.ctx.hashOverride === undefined) {
    throw new FsError('EOPNOTSUPP', 'siphash (encrypted casefold) directories are not writable', { inode: dir.ctx.ino });
  }
  const hash = dir.hash(name, version);
  const frames: Frame[] = [{ lblk: 0, entries: [...root.entries], index: dxLookup(root.entries, hash) }];
  const seen = new Set<number>([0]);
  for (let level = 0; level < root.indirectLevels; level++) {
    const parent = frames[frames.length - 1] as Frame;
    const child = (parent.entries[parent.index] as DxEntry).block;
    if (child >= n || seen.has(child)) throw corrupted('htree', `index points at block ${child} (directory of ${n} blocks)`, { inode: dir.ctx.ino });
    seen.add(child);
    const entries = dir.node(child);
    frames.push({ lblk: child, entries, index: dxLookup(entries, hash) });
  }
  const last = frames[frames.length - 1] as Frame;
  for (const e of last.entries) {
    if (e.block === 0 || e.block >= n) throw corrupted('htree', `index points at leaf block ${e.block} (directory of ${n} blocks)`, { inode: dir.ctx.ino });
  }
  return { root, version, hash, frames };
}

/**
 * Look `name` up through the index: its leaf, then the leaves its hash run continues
 * into (index hashes with bit 0 set), as the reader does. `skip` leaves the first
 * `skip` leaves of that chain out (already searched by the caller).
 */
function htreeFind(dir: Dir, p: Probe, name: Uint8Array, skip = 0): Found | undefined {
  const frame = p.frames[p.frames.length - 1] as Frame;
  for (let i = frame.index + skip; i < frame.entries.length; i++) {
    const e = frame.entries[i] as DxEntry;
    if (i > frame.index && ((e.hash & DX_HASH_CONTINUED) === 0 || (e.hash & ~DX_HASH_CONTINUED) >>> 0 !== p.hash)) break;
    const bytes = dir.peek(e.block);
    const entry = dir.findInLeaf(bytes, e.block, name);
    if (entry !== undefined) return { lblk: e.block, entry };
  }
  return undefined;
}

function find(dir: Dir, indexed: boolean, name: Uint8Array): Found | undefined {
  if (!indexed) return scanFind(dir, false, name);
  const found = htreeFind(dir, probe(dir, name), name);
  // Like the reader: a casefolded name may sit where older folding rules hashed it.
  if (found === undefined && dir.ctx.casefold) return scanFind(dir, true, name);
  return found;
}

// ------------------------------------------------------------------ add

/** Add `name` -> `ino` (see the file header). */
export function addEntry(store: DirStore, ctx: DirContext, indexed: boolean, name: Uint8Array, ino: number, fileType: number): { indexed: boolean } {
  checkName(ctx, name);
  if (isDot(name) || isDotDot(name)) throw new FsError('EEXIST', `${quoteName(name)} always exists`, { inode: ctx.ino });
  if (!Number.isInteger(ino) || ino < 1 || ino > 0xffffffff) throw new FsError('EINVAL', `bad inode number ${ino}`, { inode: ctx.ino });
  if (!Number.isInteger(fileType) || fileType < 0 || fileType > 0xff) throw new FsError('EINVAL', `bad file type ${fileType}`, { inode: ctx.ino });
  // Names that do not fold (invalid UTF-8) are refused in every casefolded directory, not
  // only in strict mode as the kernel does: the kernel then hashes the raw bytes, but
  // e2fsprogs 1.47 hashes them differently and e2fsck reports the directory's index as
  // corrupt ("bad min hash"). Such a name would make the filesystem fail e2fsck.
  if (ctx.casefold && casefoldNameOrNull(name) === null) {
    throw new FsError('EINVAL', `${quoteName(name)} is not valid UTF-8, which a casefolded directory cannot hold consistently for both the kernel and e2fsck`, { inode: ctx.ino });
  }
  const dir = new Dir(store, ctx);
  const entry: DirEntryInput = { inode: ino, name, fileType: ctx.hasFileType ? fileType : FT.UNKNOWN };
  if (indexed) {
    htreeAdd(dir, entry);
    return { indexed: true };
  }
  return { indexed: linearAdd(dir, entry) };
}

function exists(name: Uint8Array): FsError {
  return new FsError('EEXIST', `${quoteName(name)} exists`);
}

/** Returns true if the directory became indexed. */
function linearAdd(dir: Dir, entry: DirEntryInput): boolean {
  const n = dir.blocks();
  let room: { lblk: number; slot: number } | undefined;
  for (let lblk = 0; lblk < n; lblk++) {
    const r = dir.slotInLeaf(dir.peek(lblk), lblk, entry);
    if (r.exists) throw exists(entry.name);
    if (room === undefined && r.slot >= 0) room = { lblk, slot: r.slot };
  }
  if (room !== undefined) {
    dir.insertAt(room.lblk, room.slot, entry);
    return false;
  }
  if (n === 1 && dir.ctx.dirIndex === true) {
    makeIndexed(dir, entry);
    return true;
  }
  dir.checkGrowth(1, false);
  const lblk = dir.append();
  dir.writeLeaf(lblk, [entry]);
  return false;
}

interface Item {
  readonly entry: DirEntryInput;
  readonly hash: number;
  readonly size: number;
}

function hashedItems(dir: Dir, entries: readonly DirEntryInput[], version: number): Item[] {
  const items = entries.map((entry) => ({ entry, hash: dir.hash(entry.name, version), size: dirRecLen(entry.name.length) }));
  // Stable: equal hashes keep their order.
  return items.sort((a, b) => a.hash - b.hash);
}

/**
 * Where to cut hash-sorted `items` into two blocks: the index k of the first item of
 * the upper block. Both halves must fit; a cut between different hashes is preferred,
 * then the most balanced. `continued` is true when the cut splits a run of equal hashes.
 */
function chooseSplit(items: readonly Item[], space: number, ino: number): { k: number; continued: boolean } {
  const total = items.reduce((s, it) => s + it.size, 0);
  let best: { k: number; continued: boolean; imbalance: number } | undefined;
  let left = 0;
  for (let k = 1; k < items.length; k++) {
    left += (items[k - 1] as Item).size;
    const right = total - left;
    if (left > space || right > space) continue;
    const continued = (items[k] as Item).hash === (items[k - 1] as Item).hash;
    const imbalance = Math.abs(left - right);
    if (best === undefined || (best.continued && !continued) || (best.continued === continued && imbalance < best.imbalance)) {
      best = { k, continued, imbalance };
    }
  }
  if (best === undefined) throw corrupted('directory', `cannot split ${items.length} entries (${total} bytes) into two blocks of ${space}`, { inode: ino });
  return { k: best.k, continued: best.continued };
}

/** make_indexed_dir: block 0 becomes a dx_root over two new leaves holding its entries and `entry`. */
function makeIndexed(dir: Dir, entry: DirEntryInput): void {
  const { ctx } = dir;
  const block0 = dir.decodeLeaf(dir.read(0), 0);
  const dot = block0.records[0];
  const dotdot = block0.records[1];
  if (dot === undefined || dotdot === undefined || !isDot(dot.name) || !isDotDot(dotdot.name) || dot.inode === 0 || dotdot.inode === 0) {
    throw corrupted('directory', "block 0 does not start with '.' and '..'", { inode: ctx.ino, block: 0 });
  }
  let stored = ctx.defaultHashVersion;
  if (stored >= DX_HASH.LEGACY_UNSIGNED && stored <= DX_HASH.TEA_UNSIGNED) stored -= 3;
  if (stored !== DX_HASH.LEGACY && stored !== DX_HASH.HALF_MD4 && stored !== DX_HASH.TEA) {
    throw new FsError('EINVAL', `default hash version ${ctx.defaultHashVersion} cannot index a directory`, { inode: ctx.ino });
  }
  const version = effectiveHashVersion(stored, ctx.sFlags);
  const items = hashedItems(dir, [...block0.entries.slice(2).map(toInput), entry], version);
  const space = dirBlockSpace(dir.bs, ctx.metadataCsum);
  const total = items.reduce((s, it) => s + it.size, 0);
  const split = items.length >= 2 ? chooseSplit(items, space, ctx.ino) : undefined;
  dir.checkGrowth(split === undefined ? 1 : 2, true);
  const rootEntries: DxEntry[] = [];
  if (split === undefined) {
    if (total > space) throw corrupted('directory', 'entry does not fit an empty block', { inode: ctx.ino });
    const leaf = dir.append();
    dir.writeLeaf(leaf, items.map((it) => it.entry));
    rootEntries.push({ hash: 0, block: leaf });
  } else {
    const low = dir.append();
    const high = dir.append();
    dir.writeLeaf(low, items.slice(0, split.k).map((it) => it.entry));
    dir.writeLeaf(high, items.slice(split.k).map((it) => it.entry));
    const hash2 = ((items[split.k] as Item).hash | (split.continued ? DX_HASH_CONTINUED : 0)) >>> 0;
    rootEntries.push({ hash: 0, block: low }, { hash: hash2, block: high });
  }
  const root = encodeDxRoot({ dotInode: dot.inode, dotdotInode: dotdot.inode, hashVersion: stored, indirectLevels: 0, entries: rootEntries }, dir.dxWrite);
  dir.store.write(0, root);
}

function htreeAdd(dir: Dir, entry: DirEntryInput): void {
  const { ctx } = dir;
  const p = probe(dir, entry.name);
  const frames = p.frames;
  const leafFrame = frames[frames.length - 1] as Frame;
  const leafBlk = (leafFrame.entries[leafFrame.index] as DxEntry).block;
  const r = dir.slotInLeaf(dir.peek(leafBlk), leafBlk, entry);
  if (r.exists) throw exists(entry.name);
  if (htreeFind(dir, p, entry.name, 1) !== undefined) throw exists(entry.name);
  if (r.slot >= 0) {
    dir.insertAt(leafBlk, r.slot, entry);
    return;
  }
  const leafBytes = dir.read(leafBlk);
  const leaf = dir.decodeLeaf(leafBytes, leafBlk);
  const space = dirBlockSpace(dir.bs, ctx.metadataCsum);
  const live = leaf.entries.map(toInput);
  const used = live.reduce((s, e) => s + dirRecLen(e.name.length), 0);
  if (used + dirRecLen(entry.name.length) <= space) {
    // Fragmented: pack the leaf instead of splitting it.
    dir.writeLeaf(leafBlk, [...live, entry]);
    return;
  }

  // The leaf splits: find how many dx blocks split with it, and refuse before writing.
  const limitAt = (level: number): number => (level === 0 ? dir.rootLimit() : dir.nodeLimit());
  let need = 1;
  let level = frames.length - 1;
  while (level >= 0 && (frames[level] as Frame).entries.length >= limitAt(level)) {
    if (level === 0) {
      if (p.root.indirectLevels + 1 >= dir.maxLevels) {
        throw new FsError('ENOSPC', `directory index full (htree depth ${p.root.indirectLevels + 1} is the limit${ctx.largeDir ? '' : ' without large_dir'})`, { inode: ctx.ino });
      }
      need++; // a new level below the root
    } else {
      need++; // the dx_node splits
    }
    level--;
  }
  dir.checkGrowth(need, true);
  const fresh: number[] = [];
  for (let i = 0; i < need; i++) fresh.push(dir.append());
  const take = (): number => {
    const b = fresh.shift();
    if (b === undefined) throw new Error('dir-write: block budget miscounted');
    return b;
  };

  // Split the leaf.
  const items = hashedItems(dir, [...live, entry], p.version);
  const split = chooseSplit(items, space, ctx.ino);
  const newLeaf = take();
  dir.writeLeaf(newLeaf, items.slice(split.k).map((it) => it.entry));
  dir.writeLeaf(leafBlk, items.slice(0, split.k).map((it) => it.entry));
  const hash2 = ((items[split.k] as Item).hash | (split.continued ? DX_HASH_CONTINUED : 0)) >>> 0;

  // Insert (hash2, newLeaf) after the followed entry, splitting dx blocks upwards.
  let root = p.root;
  let pending: DxEntry = { hash: hash2, block: newLeaf };
  for (let j = frames.length - 1; ; j--) {
    const frame = frames[j] as Frame;
    const entries = [...frame.entries];
    entries.splice(frame.index + 1, 0, pending);
    if (entries.length <= limitAt(j)) {
      frame.entries = entries;
      if (j === 0) writeRoot(dir, root, entries, root.indirectLevels);
      else dir.store.write(frame.lblk, encodeDxNode({ entries }, dir.dxWrite));
      return;
    }
    if (j === 0) {
      // Root full: its entries (with the new one) move to a new dx_node one level down.
      const node = take();
      dir.store.write(node, encodeDxNode({ entries }, dir.dxWrite));
      root = { ...root, indirectLevels: root.indirectLevels + 1 };
      writeRoot(dir, root, [{ hash: 0, block: node }], root.indirectLevels);
      return;
    }
    // A full dx_node splits in two; its parent gets an entry for the upper half.
    const cut = chooseNodeSplit(entries);
    const upper = entries.slice(cut);
    const node = take();
    dir.store.write(node, encodeDxNode({ entries: upper }, dir.dxWrite));
    dir.store.write(frame.lblk, encodeDxNode({ entries: entries.slice(0, cut) }, dir.dxWrite));
    pending = { hash: (upper[0] as DxEntry).hash, block: node };
  }
}

/**
 * Split point of an overfull dx_node: the middle, moved to the nearest entry whose hash
 * does not continue a run (a lookup cannot follow a run from one dx_node into the next).
 */
function chooseNodeSplit(entries: readonly DxEntry[]): number {
  const mid = entries.length >> 1;
  for (let d = 0; d < entries.length; d++) {
    for (const k of [mid - d, mid + d]) {
      if (k >= 1 && k < entries.length && ((entries[k] as DxEntry).hash & DX_HASH_CONTINUED) === 0) return k;
    }
  }
  return mid;
}

function writeRoot(dir: Dir, root: DxRoot, entries: readonly DxEntry[], indirectLevels: number): void {
  const bytes = encodeDxRoot(
    { dotInode: root.dotInode, dotdotInode: root.dotdotInode, hashVersion: root.hashVersion, indirectLevels, entries },
    dir.dxWrite,
  );
  dir.store.write(0, bytes);
}

// ------------------------------------------------------------------ remove, replace, empty

/** Remove `name`; returns the inode it named (see the file header). */
export function removeEntry(store: DirStore, ctx: DirContext, indexed: boolean, name: Uint8Array): number {
  checkName(ctx, name);
  if (isDot(name) || isDotDot(name)) throw new FsError('EINVAL', `cannot remove ${quoteName(name)}`, { inode: ctx.ino });
  const dir = new Dir(store, ctx);
  const found = find(dir, indexed, name);
  if (found === undefined) throw new FsError('ENOENT', `no entry ${quoteName(name)}`, { inode: ctx.ino });
  const { offset, inode } = found.entry;
  dir.modify(found.lblk, (bytes) => removeDirEntry(bytes, offset, dir.leafWrite));
  return inode;
}

/** Point `name` (or '..') at `newIno`; returns the inode it named before. */
export function replaceEntry(store: DirStore, ctx: DirContext, indexed: boolean, name: Uint8Array, newIno: number, newFileType: number): number {
  checkName(ctx, name);
  if (isDot(name)) throw new FsError('EINVAL', "cannot retarget '.'", { inode: ctx.ino });
  if (!Number.isInteger(newIno) || newIno < 1 || newIno > 0xffffffff) throw new FsError('EINVAL', `bad inode number ${newIno}`, { inode: ctx.ino });
  if (!Number.isInteger(newFileType) || newFileType < 0 || newFileType > 0xff) throw new FsError('EINVAL', `bad file type ${newFileType}`, { inode: ctx.ino });
  const dir = new Dir(store, ctx);
  if (isDotDot(name) && indexed) {
    const bytes = dir.read(0);
    const root = dir.decodeRoot(bytes);
    new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(DX_ROOT_OFFSETS.dotdotInode, newIno, true);
    if (ctx.metadataCsum) setDxChecksum(bytes, dir.bs, ctx.csumSeed);
    store.write(0, bytes);
    return root.dotdotInode;
  }
  let found: Found | undefined;
  if (isDotDot(name)) {
    const entry = dir.decodeLeaf(dir.peek(0), 0).records[1];
    if (entry === undefined || !isDotDot(entry.name) || entry.inode === 0) throw corrupted('directory', "no '..' entry in block 0", { inode: ctx.ino, block: 0 });
    found = { lblk: 0, entry };
  } else {
    found = find(dir, indexed, name);
  }
  if (found === undefined) throw new FsError('ENOENT', `no entry ${quoteName(name)}`, { inode: ctx.ino });
  const { offset, inode } = found.entry;
  const fileType = isDotDot(name) ? FT.DIR : newFileType;
  dir.modify(found.lblk, (bytes) => {
    new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(offset + DIRENT_OFFSETS.inode, newIno, true);
    if (ctx.hasFileType) bytes[offset + DIRENT_OFFSETS.fileType] = fileType;
    if (ctx.metadataCsum) setDirBlockChecksum(bytes, dir.bs, ctx.csumSeed);
  });
  return inode;
}

/** True when the directory holds nothing but '.' and '..'. */
export function isEmptyDir(store: DirStore, ctx: DirContext, indexed: boolean): boolean {
  const dir = new Dir(store, ctx);
  const n = dir.blocks();
  if (indexed) dir.root();
  for (let lblk = indexed ? 1 : 0; lblk < n; lblk++) {
    const bytes = dir.peek(lblk);
    if (indexed && isDxBlock(bytes, dir.bs)) continue;
    for (const e of dir.decodeLeaf(bytes, lblk).entries) {
      if (lblk === 0 && (isDot(e.name) || isDotDot(e.name))) continue;
      return false;
    }
  }
  return true;
}

/** Block 0 of a new directory: '.' -> self, '..' -> parent (with the tail under metadata_csum). */
export function newDirBlock(ctx: DirContext, self: number, parent: number): Uint8Array {
  const { blockSize } = ctx;
  return buildDirBlock(
    [
      { inode: self, name: DOT, fileType: FT.DIR },
      { inode: parent, name: DOTDOT, fileType: FT.DIR },
    ],
    { blockSize, hasFileType: ctx.hasFileType, hasChecksumTail: ctx.metadataCsum, csumSeed: ctx.metadataCsum ? ctx.csumSeed : undefined },
  );
}
