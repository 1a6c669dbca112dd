/**
 * ext2/ext3 block map mutation (inodes without EXTENTS_FL): i_block holds 12 direct
 * pointers, then the single-, double- and triple-indirect block (see ondisk/indirect.ts).
 *
 * API, shaped like ExtentTree (all block numbers are filesystem blocks):
 *   new IndirectTree(root, store)          root = the inode's i_block, mutated in place
 *   IndirectTree.initRoot(root)            all 15 pointers 0
 *   tree.find(lblk, len): Mapping[]        mappings overlapping [lblk, lblk+len), clipped,
 *                                          contiguous blocks coalesced, unwritten always false
 *   tree.insert(lblk, pblk, len, unwritten = false)
 *                                          map an unmapped range (EEXIST otherwise);
 *                                          unwritten = true is EOPNOTSUPP; past the last
 *                                          addressable block is EFBIG
 *   tree.remove(from, to): PhysicalRange[] unmap [from, to) (to up to 2^32); returns the
 *                                          data blocks unmapped, coalesced, in order
 *   tree.markWritten(lblk, len)            no-op (nothing is ever unwritten here)
 *   tree.nodeCount(): number               indirect blocks (reads every indirect block
 *                                          above the bottom level)
 *
 * Indirect blocks are allocated with `store.allocMeta` (goal: the data block being
 * mapped) and written zeroed before use; in `remove`, an indirect block left all zero is
 * freed with `store.freeMeta` and its pointer cleared. Every pointer read is validated
 * (inside the filesystem, else EUCLEAN); an indirect block reached twice in one walk is
 * EUCLEAN too (it would be freed twice).
 *
 * An operation reads each indirect block it touches once, works on that copy, and
 * writes the changed blocks (new ones first) and then i_block at the end. If an
 * allocation fails during `insert`, the blocks it got are freed and nothing is written.
 */
import { corrupted, FsError } from '../errors.js';
import { BLOCK_MAP_SIZE, BLOCK_MAP_SLOTS, blockMapLimits, DIRECT_BLOCKS, IND_SLOT, type BlockMapLimits } from '../ondisk/indirect.js';
import { LOGICAL_LIMIT, pushRange, type Mapping, type PhysicalRange, type TreeStore } from './extent-tree.js';

export type { Mapping, PhysicalRange, TreeStore } from './extent-tree.js';

function checkInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new FsError('EINVAL', `block map: ${name} ${value} outside ${min}..${max}`);
  }
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The pointer table of one operation: i_block or an indirect block, with its bytes. */
interface Table {
  /** Physical block; undefined for i_block. */
  readonly block: number | undefined;
  readonly view: DataView;
  readonly bytes: Uint8Array;
  dirty: boolean;
  /** Allocated during this operation. */
  readonly fresh: boolean;
}

export class IndirectTree {
  private readonly root: Uint8Array;
  private readonly store: TreeStore;
  /** Pointers per indirect block. */
  private readonly addr: number;
  private readonly limits: BlockMapLimits;

  constructor(root: Uint8Array, store: TreeStore) {
    if (root.length < BLOCK_MAP_SIZE) throw new FsError('EINVAL', `i_block needs ${BLOCK_MAP_SIZE} bytes, got ${root.length}`);
    if (!Number.isInteger(store.blockSize) || store.blockSize < 1024 || store.blockSize % 4 !== 0) {
      throw new FsError('EINVAL', `block size ${store.blockSize} invalid for a block map`);
    }
    this.root = root;
    this.store = store;
    this.addr = store.blockSize / 4;
    this.limits = blockMapLimits(this.addr);
  }

  /** Make `root` an empty block map (all 15 pointers 0). */
  static initRoot(root: Uint8Array): void {
    if (root.length < BLOCK_MAP_SIZE) throw new FsError('EINVAL', `i_block needs ${BLOCK_MAP_SIZE} bytes, got ${root.length}`);
    root.fill(0, 0, BLOCK_MAP_SIZE);
  }

  /** One past the last logical block this map can address. */
  get end(): number {
    return this.limits.end;
  }

  /* ---------------------------------------------------------------- walking */

  /** The slot's first logical block and the blocks one slot pointer covers, for slots 12..14. */
  private slotRange(slot: number): { start: number; span: number; levels: number } {
    const { singleStart, doubleStart, tripleStart } = this.limits;
    const a = this.addr;
    if (slot < DIRECT_BLOCKS) return { start: slot, span: 1, levels: 0 };
    if (slot === IND_SLOT) return { start: singleStart, span: a, levels: 1 };
    if (slot === IND_SLOT + 1) return { start: doubleStart, span: a * a, levels: 2 };
    return { start: tripleStart, span: a * a * a, levels: 3 };
  }

  private checkPointer(p: number, from: number | undefined): number {
    const { totalBlocks, firstDataBlock, ino } = this.store;
    if (p !== 0 && (p <= firstDataBlock || p >= totalBlocks)) {
      throw corrupted('block map', `pointer to block ${p} is outside the filesystem (${firstDataBlock + 1}..${totalBlocks - 1})`, from === undefined ? { inode: ino } : { inode: ino, block: from });
    }
    return p;
  }

  private rootTable(): Table {
    // A copy: i_block changes only when the operation commits.
    const bytes = this.root.slice(0, BLOCK_MAP_SIZE);
    return { block: undefined, bytes, view: viewOf(bytes), dirty: false, fresh: false };
  }

  /**
   * Visit the subtree under `ptr` (levels of indirection below it, covering logical
   * [start, start + span)) restricted to [from, to). `leaf(lblk, table, index)` is called
   * for each non-zero data pointer in order.
   */
  private walk(
    table: Table,
    index: number,
    levels: number,
    start: number,
    span: number,
    from: number,
    to: number,
    tables: Map<number, Table>,
    visit: (lblk: number, table: Table, index: number) => void,
    after?: (table: Table, index: number, child: Table) => void,
  ): void {
    const ptr = this.checkPointer(table.view.getUint32(index * 4, true), table.block);
    if (ptr === 0) return;
    if (levels === 0) {
      visit(start, table, index);
      return;
    }
    if (tables.has(ptr)) throw corrupted('block map', `indirect block ${ptr} is referenced twice`, { inode: this.store.ino, block: ptr });
    const child = this.load(ptr, tables);
    const sub = span / this.addr;
    const first = Math.max(0, Math.floor((from - start) / sub));
    const last = Math.min(this.addr - 1, Math.floor((to - 1 - start) / sub));
    for (let i = first; i <= last; i++) this.walk(child, i, levels - 1, start + i * sub, sub, from, to, tables, visit, after);
    after?.(table, index, child);
  }

  /** Read an indirect block into the operation's table set. */
  private load(block: number, tables: Map<number, Table>): Table {
    const bytes = this.store.read(block);
    if (bytes.length < this.store.blockSize) throw new FsError('EIO', `block map: short read of block ${block}`);
    const table: Table = { block, bytes, view: viewOf(bytes), dirty: false, fresh: false };
    tables.set(block, table);
    return table;
  }

  /** For each slot overlapping [from, to): walk it. */
  private walkAll(
    from: number,
    to: number,
    tables: Map<number, Table>,
    root: Table,
    visit: (lblk: number, table: Table, index: number) => void,
    after?: (table: Table, index: number, child: Table) => void,
  ): void {
    for (let slot = 0; slot < BLOCK_MAP_SLOTS; slot++) {
      const { start, span, levels } = this.slotRange(slot);
      const end = Math.min(start + span, this.limits.end);
      if (end <= from) continue;
      if (start >= to) break;
      this.walk(root, slot, levels, start, span, from, to, tables, visit, after);
    }
  }

  /* ---------------------------------------------------------------- queries */

  /** Mappings overlapping [lblk, lblk + len), clipped, contiguous blocks coalesced, in order. */
  find(lblk: number, len: number): Mapping[] {
    checkInt('logical block', lblk, 0, LOGICAL_LIMIT);
    checkInt('length', len, 0, LOGICAL_LIMIT);
    const to = Math.min(lblk + len, this.limits.end);
    const out: Mapping[] = [];
    if (to <= lblk) return out;
    const tables = new Map<number, Table>();
    let last: { lblk: number; pblk: number; len: number } | undefined;
    this.walkAll(lblk, to, tables, this.rootTable(), (l, table, index) => {
      if (l < lblk || l >= to) return;
      const p = table.view.getUint32(index * 4, true);
      if (last !== undefined && last.lblk + last.len === l && last.pblk + last.len === p) {
        last.len++;
        return;
      }
      if (last !== undefined) out.push({ ...last, unwritten: false });
      last = { lblk: l, pblk: p, len: 1 };
    });
    if (last !== undefined) out.push({ ...last, unwritten: false });
    return out;
  }

  /** Indirect blocks in the map (every indirect block above the bottom level is read). */
  nodeCount(): number {
    const root = this.rootTable();
    const seen = new Set<number>();
    const count = (table: Table, index: number, levels: number): number => {
      const ptr = this.checkPointer(table.view.getUint32(index * 4, true), table.block);
      if (ptr === 0 || levels === 0) return 0;
      if (seen.has(ptr)) throw corrupted('block map', `indirect block ${ptr} is referenced twice`, { inode: this.store.ino, block: ptr });
      seen.add(ptr);
      if (levels === 1) return 1;
      const bytes = this.store.read(ptr);
      const child: Table = { block: ptr, bytes, view: viewOf(bytes), dirty: false, fresh: false };
      let n = 1;
      for (let i = 0; i < this.addr; i++) n += count(child, i, levels - 1);
      return n;
    };
    return count(root, IND_SLOT, 1) + count(root, IND_SLOT + 1, 2) + count(root, IND_SLOT + 2, 3);
  }

  /* ---------------------------------------------------------------- insert */

  /** Map [lblk, lblk + len) to [pblk, pblk + len). The range must be unmapped (EEXIST). */
  insert(lblk: number, pblk: number, len: number, unwritten = false): void {
    if (unwritten) throw new FsError('EOPNOTSUPP', 'block-mapped files have no unwritten extents', { inode: this.store.ino });
    checkInt('length', len, 1, this.limits.end);
    checkInt('logical block', lblk, 0, LOGICAL_LIMIT);
    if (lblk + len > this.limits.end) {
      throw new FsError('EFBIG', `logical blocks ${lblk}..${lblk + len - 1} are beyond what a block map addresses (${this.limits.end} blocks)`, { inode: this.store.ino });
    }
    const { totalBlocks, firstDataBlock } = this.store;
    if (!Number.isSafeInteger(pblk) || pblk <= firstDataBlock || pblk + len > totalBlocks || pblk + len - 1 > 0xffff_ffff) {
      throw new FsError('EINVAL', `block map: physical blocks ${pblk}..${pblk + len - 1} outside the filesystem (${firstDataBlock + 1}..${totalBlocks - 1})`, { inode: this.store.ino });
    }
    const existing = this.find(lblk, len);
    const clash = existing[0];
    if (clash !== undefined) throw new FsError('EEXIST', `block map: logical block ${clash.lblk} is already mapped`, { inode: this.store.ino, block: clash.lblk });

    const tables = new Map<number, Table>();
    const root = this.rootTable();
    const allocated: number[] = [];
    try {
      let cursor = lblk;
      const end = lblk + len;
      while (cursor < end) {
        // Resolve the table holding `cursor`'s pointer, allocating indirect blocks on the way.
        const { table, index, run } = this.tableFor(cursor, root, tables, allocated, pblk + (cursor - lblk));
        const n = Math.min(run, end - cursor);
        for (let k = 0; k < n; k++) table.view.setUint32((index + k) * 4, pblk + (cursor - lblk) + k, true);
        table.dirty = true;
        cursor += n;
      }
    } catch (error) {
      for (const b of allocated) this.store.freeMeta(b);
      throw error;
    }
    this.commit(root, tables);
  }

  /**
   * The table (i_block or a bottom-level indirect block) holding the pointer of logical
   * block `lblk`, its index there, and how many consecutive pointers from it the table
   * holds. Missing indirect blocks are allocated (near `goal`) and start zeroed.
   */
  private tableFor(lblk: number, root: Table, tables: Map<number, Table>, allocated: number[], goal: number): { table: Table; index: number; run: number } {
    if (lblk < DIRECT_BLOCKS) return { table: root, index: lblk, run: DIRECT_BLOCKS - lblk };
    let slot = IND_SLOT + 2;
    while (slot > IND_SLOT && this.slotRange(slot).start > lblk) slot--;
    const { start, span, levels } = this.slotRange(slot);
    let table = root;
    let index = slot;
    let offset = lblk - start;
    let sub = span;
    for (let level = levels; level > 0; level--) {
      let ptr = this.checkPointer(table.view.getUint32(index * 4, true), table.block);
      let child = ptr === 0 ? undefined : tables.get(ptr);
      if (ptr === 0) {
        ptr = this.store.allocMeta(goal);
        allocated.push(ptr);
        if (!Number.isSafeInteger(ptr) || ptr <= this.store.firstDataBlock || ptr >= this.store.totalBlocks || ptr > 0xffff_ffff) {
          throw new FsError('EIO', `block map: allocator returned block ${ptr}, outside the filesystem`);
        }
        const bytes = new Uint8Array(this.store.blockSize);
        child = { block: ptr, bytes, view: viewOf(bytes), dirty: true, fresh: true };
        tables.set(ptr, child);
        table.view.setUint32(index * 4, ptr, true);
        table.dirty = true;
      } else if (child === undefined) {
        child = this.load(ptr, tables);
      }
      sub /= this.addr;
      index = Math.floor(offset / sub);
      offset -= index * sub;
      table = child;
    }
    return { table, index, run: this.addr - index };
  }

  /** Block maps have no unwritten blocks: validates the range and does nothing (same shape as ExtentTree). */
  markWritten(lblk: number, len: number): void {
    checkInt('logical block', lblk, 0, LOGICAL_LIMIT);
    checkInt('length', len, 0, LOGICAL_LIMIT);
  }

  /* ---------------------------------------------------------------- remove */

  /**
   * Unmap [from, to) (`to` up to 2^32). Returns the data blocks unmapped, coalesced, in
   * logical order. Indirect blocks left all zero are freed.
   */
  remove(from: number, to: number): PhysicalRange[] {
    checkInt('logical block', from, 0, LOGICAL_LIMIT);
    checkInt('end', to, 0, LOGICAL_LIMIT);
    const out: PhysicalRange[] = [];
    const end = Math.min(to, this.limits.end);
    if (end <= from) return out;
    const tables = new Map<number, Table>();
    const root = this.rootTable();
    const freed: number[] = [];
    this.walkAll(
      from,
      end,
      tables,
      root,
      (l, table, index) => {
        if (l < from || l >= end) return;
        pushRange(out, table.view.getUint32(index * 4, true), 1);
        table.view.setUint32(index * 4, 0, true);
        table.dirty = true;
      },
      (parent, index, child) => {
        if (!child.bytes.subarray(0, this.store.blockSize).every((b) => b === 0)) return;
        if (child.block !== undefined) freed.push(child.block);
        child.dirty = false;
        parent.view.setUint32(index * 4, 0, true);
        parent.dirty = true;
      },
    );
    for (const b of freed) tables.delete(b);
    this.commit(root, tables);
    for (const b of freed) this.store.freeMeta(b);
    return out;
  }

  /** Write the changed indirect blocks (new ones first), then i_block. */
  private commit(root: Table, tables: Map<number, Table>): void {
    const changed = [...tables.values()].filter((t) => t.dirty);
    changed.sort((a, b) => Number(b.fresh) - Number(a.fresh));
    for (const t of changed) {
      if (t.block !== undefined) this.store.write(t.block, t.bytes);
      t.dirty = false;
    }
    if (root.dirty) this.root.set(root.bytes, 0);
    root.dirty = false;
  }
}
