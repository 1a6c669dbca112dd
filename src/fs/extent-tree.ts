/**
 * Extent tree mutation (ext4 files with EXTENTS_FL): map, unmap and convert ranges of
 * logical blocks in the tree rooted in an inode's 60-byte i_block.
 *
 * API (all block numbers are filesystem blocks; logical blocks are 32-bit):
 *   new ExtentTree(root, store)            root = the inode's i_block, mutated in place
 *   ExtentTree.initRoot(root)              an empty depth-0 tree (eh_max 4)
 *   tree.depth                             eh_depth of the root
 *   tree.find(lblk, len): Mapping[]        mappings overlapping [lblk, lblk+len), clipped
 *                                          to the range, in logical order
 *   tree.insert(lblk, pblk, len, unwritten = false)
 *                                          map an unmapped range (EEXIST otherwise)
 *   tree.remove(from, to): PhysicalRange[] unmap [from, to) (to up to 2^32); returns the
 *                                          data blocks unmapped, coalesced, in order
 *   tree.markWritten(lblk, len)            unwritten -> written inside the range
 *   tree.nodeCount(): number               tree blocks (not counting the root)
 *
 * Tree blocks come from `store.allocMeta` and go back through `store.freeMeta`; a caller
 * keeping i_blocks can count those calls instead of calling `nodeCount` (which reads
 * every index node).
 *
 * Shape rules kept (what the kernel's ext4_ext_check and e2fsck expect): entries sorted
 * and non-overlapping; an index entry's key equals the first logical block of its child
 * (keys are fixed up the path whenever a node's first entry changes); eh_max is what the
 * node's space holds (4 in the root, (blockSize - 12) / 12 in a block — the tail checksum
 * always fits after that, see ondisk/extent.ts); no empty non-root node (an emptied node
 * is freed and its index entry dropped); depths consistent. Every tree block written
 * carries its tail checksum when `store.csumSeed` is defined.
 *
 * Algorithm: an operation reads the path it needs (root to leaf, each node validated by
 * decodeExtentNode against its parent's key and depth), mutates decoded copies, then
 * writes the changed nodes, children before parents, the root last. Insertion merges
 * with the contiguous neighbour extents of the same leaf (same written-ness, within the
 * length limit); a full node splits — at the new entry when it was appended at the end
 * (so sequential appends leave full nodes behind), in the middle otherwise — and a full
 * root moves its entries into a new block and grows one level. Removal walks only the
 * subtrees overlapping the range; afterwards, while the root's children fit in the root
 * they are pulled up (the tree shrinks). A sequential append touches one path: O(depth).
 *
 * Failure atomicity: an insert of one extent allocates its new nodes before writing
 * anything; if allocation fails the blocks it got are freed and the tree is unchanged.
 * A long insert is split into extents of at most 32768 (32767 unwritten) blocks, each
 * done separately: ENOSPC can leave a prefix of the range mapped. `markWritten` is
 * remove + insert per unwritten piece; a failure between the two leaves that piece a
 * hole (reads as zeros, as the unwritten extent did) with its data blocks unreferenced.
 */
import { corrupted, FsError } from '../errors.js';
import {
  decodeExtentNode,
  encodeExtentHeader,
  encodeExtentNode,
  EXTENT_ENTRY_SIZE,
  EXTENT_HEADER_SIZE,
  EXTENT_INIT_MAX_LEN,
  EXTENT_OFFSETS,
  EXTENT_MAGIC,
  EXTENT_MAX_DEPTH,
  EXTENT_MAX_LOGICAL_END,
  EXTENT_ROOT_SIZE,
  EXTENT_UNINIT_MAX_LEN,
  extentNodeSpace,
  findExtent,
  setExtentTail,
  type ExtentNode,
  type ExtentNodeOptions,
} from '../ondisk/extent.js';

/** What a tree needs from the filesystem. All blocks are filesystem blocks. */
export interface TreeStore {
  readonly blockSize: number;
  /** A private copy of a metadata block's bytes (the caller may mutate it). */
  read(block: number): Uint8Array;
  /** Write a whole metadata block. */
  write(block: number, bytes: Uint8Array): void;
  /** Allocate one block for a tree node / indirect block near `goal` (throws FsError ENOSPC). */
  allocMeta(goal: number): number;
  /** Release a tree node / indirect block the tree no longer needs. */
  freeMeta(block: number): void;
  /** Per-inode metadata_csum seed for extent tails; undefined when the fs has no metadata_csum. */
  readonly csumSeed: number | undefined;
  /** Inode number (error messages). */
  readonly ino: number;
  /** s_blocks_count: node and data blocks must lie below it. */
  readonly totalBlocks: number;
  /** s_first_data_block: node and data blocks must lie above it. */
  readonly firstDataBlock: number;
}

/** `len` logical blocks from `lblk` map to physical blocks from `pblk`. */
export interface Mapping {
  readonly lblk: number;
  readonly pblk: number;
  readonly len: number;
  readonly unwritten: boolean;
}

/** A run of physical blocks. */
export interface PhysicalRange {
  readonly pblk: number;
  readonly len: number;
}

/** One past the last logical block a range may name (logical blocks are 32-bit). */
export const LOGICAL_LIMIT = 0x1_0000_0000;

/** A decoded entry, mutable. Leaves: an extent. Index nodes: `start` is the child block, len/uninit unused. */
interface Entry {
  block: number;
  start: number;
  len: number;
  uninit: boolean;
}

/** A decoded node being worked on. */
interface Node {
  /** Physical block; undefined for the root in i_block. */
  readonly block: number | undefined;
  depth: number;
  readonly max: number;
  readonly generation: number;
  entries: Entry[];
  /** During a descent: the entry followed to the next level. */
  pos: number;
  dirty: boolean;
}

function internal(what: string): FsError {
  return new FsError('EIO', `extent tree internal error: ${what}`);
}

function at<T>(items: readonly T[], i: number): T {
  const item = items[i];
  if (item === undefined) throw internal(`entry ${i} of ${items.length} missing`);
  return item;
}

function checkInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new FsError('EINVAL', `extent tree: ${name} ${value} outside ${min}..${max}`);
  }
}

export class ExtentTree {
  private readonly root: Uint8Array;
  private readonly store: TreeStore;
  /** eh_max of a tree block. */
  private readonly blockMax: number;
  /** New nodes (splits) of the operation under way, written with the path. */
  private pending: Node[] = [];
  /** Blocks allocated by the operation under way (freed again if it fails before writing). */
  private allocated: number[] = [];

  constructor(root: Uint8Array, store: TreeStore) {
    if (root.length < EXTENT_ROOT_SIZE) throw new FsError('EINVAL', `extent root needs ${EXTENT_ROOT_SIZE} bytes, got ${root.length}`);
    if (!Number.isInteger(store.blockSize) || store.blockSize < 1024) throw new FsError('EINVAL', `block size ${store.blockSize} too small for extent blocks`);
    this.root = root;
    this.store = store;
    this.blockMax = extentNodeSpace(store.blockSize);
  }

  /** Make `root` (an inode's i_block) an empty depth-0 tree: header with eh_max 4, no entries. */
  static initRoot(root: Uint8Array): void {
    if (root.length < EXTENT_ROOT_SIZE) throw new FsError('EINVAL', `extent root needs ${EXTENT_ROOT_SIZE} bytes, got ${root.length}`);
    root.fill(0, 0, EXTENT_ROOT_SIZE);
    encodeExtentNode(
      { kind: 'leaf', header: { magic: EXTENT_MAGIC, entries: 0, max: extentNodeSpace(EXTENT_ROOT_SIZE), depth: 0, generation: 0 }, entries: [] },
      root.subarray(0, EXTENT_ROOT_SIZE),
    );
  }

  /** The tree's depth (0: the extents are in the root). */
  get depth(): number {
    return this.readRoot().depth;
  }

  /* ---------------------------------------------------------------- queries */

  /** Mappings overlapping [lblk, lblk + len), clipped to the range, in logical order. */
  find(lblk: number, len: number): Mapping[] {
    checkInt('logical block', lblk, 0, LOGICAL_LIMIT);
    checkInt('length', len, 0, LOGICAL_LIMIT);
    const to = Math.min(lblk + len, LOGICAL_LIMIT);
    const out: Mapping[] = [];
    if (to <= lblk) return out;
    this.findIn(this.readRoot(), lblk, to, out, new Set());
    return out;
  }

  private findIn(node: Node, from: number, to: number, out: Mapping[], seen: Set<number>): void {
    const { entries } = node;
    // First entry that may overlap: the last one starting at or before `from`.
    const first = Math.max(0, findExtent(entries, from));
    for (let i = first; i < entries.length; i++) {
      const e = at(entries, i);
      if (e.block >= to) break;
      if (node.depth === 0) {
        const a = Math.max(from, e.block);
        const b = Math.min(to, e.block + e.len);
        if (a < b) out.push({ lblk: a, pblk: e.start + (a - e.block), len: b - a, unwritten: e.uninit });
      } else {
        const child = this.readChild(node, e, seen);
        this.findIn(child, from, to, out, seen);
      }
    }
  }

  /** Tree blocks below the root (for i_blocks accounting). Reads every index node, not the leaves. */
  nodeCount(): number {
    const count = (node: Node, seen: Set<number>): number => {
      if (node.depth === 0) return 0;
      let n = node.entries.length;
      if (node.depth > 1) for (const e of node.entries) n += count(this.readChild(node, e, seen), seen);
      return n;
    };
    return count(this.readRoot(), new Set());
  }

  /* ---------------------------------------------------------------- insert */

  /**
   * Map [lblk, lblk + len) to [pblk, pblk + len). The logical range must be unmapped
   * (EEXIST otherwise) and end at or before 2^32 - 1; the physical range must lie inside
   * the filesystem (EINVAL). Lengths over the extent limit become several extents.
   */
  insert(lblk: number, pblk: number, len: number, unwritten = false): void {
    checkInt('length', len, 1, EXTENT_MAX_LOGICAL_END);
    checkInt('logical block', lblk, 0, EXTENT_MAX_LOGICAL_END - len);
    const { totalBlocks, firstDataBlock } = this.store;
    if (!Number.isSafeInteger(pblk) || pblk <= firstDataBlock || pblk + len > totalBlocks) {
      throw new FsError('EINVAL', `extent tree: physical blocks ${pblk}..${pblk + len - 1} outside the filesystem (${firstDataBlock + 1}..${totalBlocks - 1})`, { inode: this.store.ino });
    }
    const maxLen = unwritten ? EXTENT_UNINIT_MAX_LEN : EXTENT_INIT_MAX_LEN;
    // Refuse an overlap before changing anything (one extent: insertOne checks its neighbours itself).
    if (len > maxLen) {
      const existing = this.find(lblk, len);
      if (existing.length > 0) {
        const m = at(existing, 0);
        throw new FsError('EEXIST', `extent tree: logical block ${m.lblk} is already mapped`, { inode: this.store.ino, block: m.lblk });
      }
    }
    for (let done = 0; done < len; ) {
      const n = Math.min(maxLen, len - done);
      this.insertOne(lblk + done, pblk + done, n, unwritten);
      done += n;
    }
  }

  /** Insert one extent (len within the limit) into an unmapped range. */
  private insertOne(lblk: number, pblk: number, len: number, uninit: boolean): void {
    this.begin();
    try {
      const { path, limit } = this.descend(lblk);
      const level = path.length - 1;
      const leaf = at(path, level);
      const i = findExtent(leaf.entries, lblk);
      const left = leaf.entries[i];
      const right = leaf.entries[i + 1];
      if ((left !== undefined && left.block + left.len > lblk) || lblk + len > (right?.block ?? limit)) {
        throw new FsError('EEXIST', `extent tree: logical blocks ${lblk}..${lblk + len - 1} overlap a mapping`, { inode: this.store.ino });
      }
      const maxLen = uninit ? EXTENT_UNINIT_MAX_LEN : EXTENT_INIT_MAX_LEN;
      const joins = (a: Entry, b: Entry): boolean =>
        a.uninit === b.uninit && a.block + a.len === b.block && a.start + a.len === b.start && a.len + b.len <= maxLen;
      const fresh: Entry = { block: lblk, start: pblk, len, uninit };
      if (left !== undefined && joins(left, fresh)) {
        left.len += len;
        if (right !== undefined && joins(left, right)) {
          left.len += right.len;
          leaf.entries.splice(i + 1, 1);
        }
        leaf.dirty = true;
      } else if (right !== undefined && joins(fresh, right)) {
        right.block = lblk;
        right.start = pblk;
        right.len += len;
        leaf.dirty = true;
        if (i + 1 === 0) this.fixKeys(path, level);
      } else {
        this.insertEntry(path, level, i + 1, fresh, pblk);
      }
      this.commit(path);
    } catch (error) {
      this.rollback();
      throw error;
    }
  }

  /**
   * Put `entry` at `pos` of path[level]; split the node (or grow the root) when it
   * overflows, inserting the new sibling's index entry one level up.
   */
  private insertEntry(path: Node[], level: number, pos: number, entry: Entry, goal: number): void {
    const node = at(path, level);
    node.entries.splice(pos, 0, entry);
    node.dirty = true;
    if (pos === 0) this.fixKeys(path, level);
    if (node.entries.length <= node.max) return;
    if (level === 0) {
      this.growRoot(path, goal);
      return;
    }
    if (this.shiftToSibling(path, level)) return;
    const n = node.entries.length;
    // Appended at the end: the new node starts with just the new entry (sequential writes keep full nodes).
    const cut = pos === n - 1 ? n - 1 : n >> 1;
    const block = this.allocate(goal);
    const sibling: Node = { block, depth: node.depth, max: this.blockMax, generation: 0, entries: node.entries.splice(cut), pos: 0, dirty: true };
    this.pending.push(sibling);
    const parent = at(path, level - 1);
    this.insertEntry(path, level - 1, parent.pos + 1, { block: at(sibling.entries, 0).block, start: block, len: 0, uninit: false }, goal);
  }

  /**
   * path[level] (not the root) holds one entry too many: move its first entry to the
   * previous sibling or its last entry to the next sibling (same parent) when that one
   * has room. Keeps nodes packed under random inserts (e2fsck flags a level whose spare
   * room exceeds a block as "could be narrower"). Costs a sibling read on overflow only.
   */
  private shiftToSibling(path: Node[], level: number): boolean {
    const node = at(path, level);
    const parent = at(path, level - 1);
    const leftEntry = parent.entries[parent.pos - 1];
    if (leftEntry !== undefined) {
      const left = this.readChild(parent, leftEntry);
      if (left.entries.length < left.max) {
        left.entries.push(at(node.entries, 0));
        node.entries.shift();
        left.dirty = true;
        this.pending.push(left);
        at(parent.entries, parent.pos).block = at(node.entries, 0).block;
        parent.dirty = true;
        return true;
      }
    }
    const rightEntry = parent.entries[parent.pos + 1];
    if (rightEntry !== undefined) {
      const right = this.readChild(parent, rightEntry);
      if (right.entries.length < right.max) {
        const moved = node.entries.pop();
        if (moved === undefined) throw internal('empty node overflowed');
        right.entries.unshift(moved);
        right.dirty = true;
        this.pending.push(right);
        rightEntry.block = moved.block;
        parent.dirty = true;
        return true;
      }
    }
    return false;
  }

  /** The root overflowed: move its entries into a new block and make the root an index over it. */
  private growRoot(path: Node[], goal: number): void {
    const root = at(path, 0);
    if (root.depth + 1 > EXTENT_MAX_DEPTH) throw new FsError('EFBIG', `extent tree would exceed depth ${EXTENT_MAX_DEPTH}`, { inode: this.store.ino });
    const block = this.allocate(goal);
    const child: Node = { block, depth: root.depth, max: this.blockMax, generation: 0, entries: root.entries, pos: root.pos, dirty: true };
    root.entries = [{ block: at(child.entries, 0).block, start: block, len: 0, uninit: false }];
    root.depth += 1;
    root.pos = 0;
    root.dirty = true;
    path.splice(1, 0, child);
  }

  /** path[level]'s first entry changed: carry its key up while the node is its parent's first child. */
  private fixKeys(path: Node[], level: number): void {
    for (let l = level; l > 0; l--) {
      const child = at(path, l);
      const parent = at(path, l - 1);
      const key = at(child.entries, 0).block;
      const entry = at(parent.entries, parent.pos);
      if (entry.block === key) return;
      entry.block = key;
      parent.dirty = true;
      if (parent.pos !== 0) return;
    }
  }

  /* ---------------------------------------------------------------- remove */

  /**
   * Unmap [from, to) (`to` up to 2^32 for "to the end"), trimming or splitting the
   * extents at the edges. Returns the physical ranges unmapped (for the caller to free),
   * in logical order, adjacent ones coalesced. Emptied tree blocks are freed; the tree
   * gets shallower when the root's children fit in the root.
   */
  remove(from: number, to: number): PhysicalRange[] {
    checkInt('logical block', from, 0, LOGICAL_LIMIT);
    checkInt('end', to, 0, LOGICAL_LIMIT);
    const out: PhysicalRange[] = [];
    if (to <= from) return out;

    // A range strictly inside one extent splits it in two: the only case that adds an entry.
    this.begin();
    try {
      const { path } = this.descend(from);
      const level = path.length - 1;
      const leaf = at(path, level);
      const i = findExtent(leaf.entries, from);
      const e = leaf.entries[i];
      if (e !== undefined && e.block < from && e.block + e.len > to) {
        const right: Entry = { block: to, start: e.start + (to - e.block), len: e.block + e.len - to, uninit: e.uninit };
        out.push({ pblk: e.start + (from - e.block), len: to - from });
        e.len = from - e.block;
        leaf.dirty = true;
        this.insertEntry(path, level, i + 1, right, right.start);
        this.commit(path);
        return out;
      }
    } catch (error) {
      this.rollback();
      throw error;
    }

    const root = this.readRoot();
    this.removeIn(root, from, to, LOGICAL_LIMIT, out, new Set());
    if (root.depth > 0 && root.entries.length === 0) {
      root.depth = 0;
      root.dirty = true;
    }
    const freed = this.shrink(root);
    if (root.dirty) this.writeNode(root);
    for (const block of freed) this.store.freeMeta(block);
    return out;
  }

  /** Remove [from, to) below `node`, whose keys cover [.., end). Writes changed children, frees emptied ones. */
  private removeIn(node: Node, from: number, to: number, end: number, out: PhysicalRange[], seen: Set<number>): void {
    const kept: Entry[] = [];
    const touched = new Map<Entry, Node>();
    const { entries } = node;
    for (let i = 0; i < entries.length; i++) {
      const e = at(entries, i);
      if (node.depth === 0) {
        const eEnd = e.block + e.len;
        if (eEnd <= from || e.block >= to) {
          kept.push(e);
          continue;
        }
        const a = Math.max(from, e.block);
        const b = Math.min(to, eEnd);
        pushRange(out, e.start + (a - e.block), b - a);
        // Not both sides: a range strictly inside one extent was handled by the caller.
        if (e.block < a) kept.push({ ...e, len: a - e.block });
        else if (eEnd > b) kept.push({ block: b, start: e.start + (b - e.block), len: eEnd - b, uninit: e.uninit });
        node.dirty = true;
        continue;
      }
      const childEnd = entries[i + 1]?.block ?? end;
      if (childEnd <= from || e.block >= to) {
        kept.push(e);
        continue;
      }
      const child = this.readChild(node, e, seen);
      this.removeIn(child, from, to, childEnd, out, seen);
      const first = child.entries[0];
      if (first === undefined) {
        this.store.freeMeta(e.start);
        node.dirty = true;
        continue;
      }
      if (first.block !== e.block) {
        e.block = first.block;
        node.dirty = true;
      }
      kept.push(e);
      touched.set(e, child);
    }
    node.entries = kept;
    if (node.depth > 0) this.mergeChildren(node, touched, seen);
  }

  /**
   * After a removal below `node`: merge each changed child with its neighbours when
   * their entries fit in one node (freeing the emptied block), then write the changed
   * children. Only changed children and their direct neighbours are read.
   */
  private mergeChildren(node: Node, touched: Map<Entry, Node>, seen: Set<number>): void {
    const entries = node.entries;
    const loaded = new Map<Entry, Node>(touched);
    const load = (e: Entry): Node => {
      let child = loaded.get(e);
      if (child === undefined) {
        child = this.readChild(node, e, seen);
        loaded.set(e, child);
      }
      return child;
    };
    for (let k = 0; k + 1 < entries.length; ) {
      const a = at(entries, k);
      const b = at(entries, k + 1);
      if (!touched.has(a) && !touched.has(b)) {
        k++;
        continue;
      }
      const an = load(a);
      const bn = load(b);
      if (an.entries.length + bn.entries.length <= an.max) {
        an.entries.push(...bn.entries);
        an.dirty = true;
        touched.set(a, an);
        touched.delete(b);
        loaded.delete(b);
        entries.splice(k + 1, 1);
        node.dirty = true;
        if (bn.block !== undefined) this.store.freeMeta(bn.block);
      } else {
        k++;
      }
    }
    for (const child of loaded.values()) if (child.dirty) this.writeNode(child);
  }

  /**
   * While the root is an index whose children's entries all fit in the root, pull them
   * up (one level less). Returns the blocks to free once the root is written.
   */
  private shrink(root: Node): number[] {
    const freed: number[] = [];
    while (root.depth > 0 && root.entries.length > 0) {
      const seen = new Set<number>();
      const children = root.entries.map((e) => this.readChild(root, e, seen));
      const total = children.reduce((sum, c) => sum + c.entries.length, 0);
      if (total > root.max) break;
      root.entries = children.flatMap((c) => c.entries);
      root.depth -= 1;
      root.dirty = true;
      for (const c of children) if (c.block !== undefined) freed.push(c.block);
      if (root.entries.length === 0) root.depth = 0; // cannot happen for valid trees; stay safe
    }
    return freed;
  }

  /* ---------------------------------------------------------------- unwritten -> written */

  /** Convert the unwritten mappings in [lblk, lblk + len) to written, splitting extents at the edges. */
  markWritten(lblk: number, len: number): void {
    const pieces = this.find(lblk, len).filter((m) => m.unwritten);
    for (const p of pieces) {
      this.remove(p.lblk, p.lblk + p.len);
      this.insert(p.lblk, p.pblk, p.len, false);
    }
  }

  /* ---------------------------------------------------------------- nodes */

  private readRoot(): Node {
    const { ino, totalBlocks, firstDataBlock } = this.store;
    const decoded = decodeExtentNode(this.root, { capacity: EXTENT_ROOT_SIZE, inode: ino, totalBlocks, firstDataBlock });
    return toNode(decoded, undefined);
  }

  /** Read and validate the child `e` of `parent`; `seen` catches a block reached twice (a corrupted DAG). */
  private readChild(parent: Node, e: Entry, seen?: Set<number>): Node {
    const block = e.start;
    const { ino, totalBlocks, firstDataBlock, csumSeed } = this.store;
    if (seen !== undefined) {
      if (seen.has(block)) throw corrupted('extent tree', `block ${block} is referenced twice`, { inode: ino, block });
      seen.add(block);
    }
    const bytes = this.store.read(block);
    const options: ExtentNodeOptions = {
      capacity: this.store.blockSize,
      inode: ino,
      block,
      expectedDepth: parent.depth - 1,
      firstLogical: e.block,
      totalBlocks,
      firstDataBlock,
      csumSeed,
    };
    return toNode(decodeExtentNode(bytes, options), block);
  }

  /** Root to leaf towards `lblk`; `limit` is the first logical block of the next subtree (or 2^32). */
  private descend(lblk: number): { path: Node[]; limit: number } {
    const path: Node[] = [];
    let node = this.readRoot();
    let limit = LOGICAL_LIMIT;
    for (;;) {
      path.push(node);
      if (node.depth === 0) return { path, limit };
      const i = Math.max(0, findExtent(node.entries, lblk));
      node.pos = i;
      const next = node.entries[i + 1];
      if (next !== undefined) limit = Math.min(limit, next.block);
      node = this.readChild(node, at(node.entries, i));
    }
  }

  private begin(): void {
    this.pending = [];
    this.allocated = [];
  }

  private allocate(goal: number): number {
    const block = this.store.allocMeta(goal);
    this.allocated.push(block);
    const { totalBlocks, firstDataBlock } = this.store;
    if (!Number.isSafeInteger(block) || block <= firstDataBlock || block >= totalBlocks) {
      throw new FsError('EIO', `extent tree: allocator returned block ${block}, outside the filesystem`);
    }
    return block;
  }

  private rollback(): void {
    const blocks = this.allocated;
    this.begin();
    for (const b of blocks) this.store.freeMeta(b);
  }

  /** Write the new nodes, then the changed path nodes from the leaf up (the root last). */
  private commit(path: Node[]): void {
    for (const n of this.pending) this.writeNode(n);
    for (let l = path.length - 1; l >= 0; l--) {
      const n = at(path, l);
      if (n.dirty) this.writeNode(n);
    }
    this.begin();
  }

  private writeNode(node: Node): void {
    if (node.block === undefined) {
      const target = this.root.subarray(0, EXTENT_ROOT_SIZE);
      target.fill(0);
      encodeNode(node, target);
    } else {
      const target = new Uint8Array(this.store.blockSize);
      encodeNode(node, target);
      if (this.store.csumSeed !== undefined) setExtentTail(target, this.store.csumSeed);
      this.store.write(node.block, target);
    }
    node.dirty = false;
  }
}

/**
 * Encode a node over `target` (zeroed by the caller) with one DataView: the per-entry
 * codec functions of ondisk/extent.ts make a view per entry, which dominates the cost of
 * rewriting a full leaf on every append. Same layout (EXTENT_OFFSETS), same range checks.
 */
function encodeNode(node: Node, target: Uint8Array): void {
  const count = node.entries.length;
  if (count > node.max || EXTENT_HEADER_SIZE + node.max * EXTENT_ENTRY_SIZE > target.length) {
    throw internal(`${count} entries / eh_max ${node.max} do not fit in ${target.length} bytes`);
  }
  encodeExtentHeader({ magic: EXTENT_MAGIC, entries: count, max: node.max, depth: node.depth, generation: node.generation }, target, 0);
  const view = new DataView(target.buffer, target.byteOffset, target.byteLength);
  const o = EXTENT_OFFSETS;
  for (let i = 0; i < count; i++) {
    const e = at(node.entries, i);
    const off = EXTENT_HEADER_SIZE + i * EXTENT_ENTRY_SIZE;
    const maxLen = e.uninit ? EXTENT_UNINIT_MAX_LEN : EXTENT_INIT_MAX_LEN;
    if (!(e.block >= 0 && e.block <= 0xffff_ffff && e.start >= 0 && e.start < TWO_48)) throw internal(`entry ${i} out of range`);
    view.setUint32(off + o.extBlock, e.block, true);
    if (node.depth === 0) {
      if (!(e.len >= 1 && e.len <= maxLen)) throw internal(`extent length ${e.len}`);
      view.setUint16(off + o.extLen, e.uninit ? e.len + EXTENT_INIT_MAX_LEN : e.len, true);
      view.setUint16(off + o.extStartHi, Math.floor(e.start / TWO_32), true);
      view.setUint32(off + o.extStartLo, e.start % TWO_32, true);
    } else {
      view.setUint32(off + o.idxLeafLo, e.start % TWO_32, true);
      view.setUint16(off + o.idxLeafHi, Math.floor(e.start / TWO_32), true);
    }
  }
}

const TWO_32 = 0x1_0000_0000;
const TWO_48 = 2 ** 48;

function toNode(decoded: ExtentNode, block: number | undefined): Node {
  const entries: Entry[] =
    decoded.kind === 'leaf'
      ? decoded.entries.map((e) => ({ block: e.block, start: e.start, len: e.len, uninit: e.uninit }))
      : decoded.entries.map((e) => ({ block: e.block, start: e.leaf, len: 0, uninit: false }));
  const { header } = decoded;
  return { block, depth: header.depth, max: header.max, generation: header.generation, entries, pos: 0, dirty: false };
}

/** Append a physical range, merging it into the previous one when contiguous. */
export function pushRange(out: PhysicalRange[], pblk: number, len: number): void {
  const last = out[out.length - 1];
  if (last !== undefined && last.pblk + last.len === pblk) out[out.length - 1] = { pblk: last.pblk, len: last.len + len };
  else out.push({ pblk, len });
}
