/**
 * The inode cache: decoded inodes by number, bounded, with the block cache's
 * replacement policy in miniature: 16 priority lists, +1 every 50 hits, reclaim
 * from the least recently used entry of the lowest list. An inode's checksum is
 * verified once, when it enters the cache (fuse2fs verifies on every access).
 */
import { MruLists, type ListNode } from '../cache/mru-lists.js';
import type { Inode } from '../ondisk/inode.js';

const LEVELS = 16;
const BUMP_EVERY = 50;

class Entry implements ListNode<Entry> {
  prev: Entry | null = null;
  next: Entry | null = null;
  list = -1;
  level = 0;
  hits = 0;
  constructor(
    readonly ino: number,
    public inode: Inode,
  ) {}
}

export class InodeCache {
  private readonly lists = new MruLists<Entry>(LEVELS);
  private readonly index = new Map<number, Entry>();
  hits = 0;
  misses = 0;
  evictions = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.index.size;
  }

  /** The one inode remembered outside the cache (`remember`); 0: none. */
  private recentIno = 0;
  private recent: Inode | undefined;

  /** Whether `ino` is cached (or remembered), without counting a hit or miss. */
  has(ino: number): boolean {
    return this.index.has(ino) || (ino === this.recentIno && this.recent !== undefined);
  }

  get(ino: number): Inode | undefined {
    const e = this.index.get(ino);
    if (e === undefined) {
      if (ino === this.recentIno && this.recent !== undefined) {
        this.hits++;
        return this.recent;
      }
      this.misses++;
      return undefined;
    }
    this.hits++;
    if (++e.hits >= BUMP_EVERY) {
      e.hits = 0;
      if (e.level < LEVELS - 1) e.level++;
    }
    this.lists.moveToHead(e, e.level);
    return e.inode;
  }

  /**
   * Keep `inode` outside the cache until the next call of `remember`: a one-off read
   * (a walk's, each inode once) is found again by the calls about it that follow (its
   * xattrs, its data), without entering the cache (pushing out inodes in use and
   * leaving long-lived garbage) or being decoded again. Not counted in `size`.
   */
  remember(ino: number, inode: Inode): void {
    this.recentIno = ino;
    this.recent = inode;
  }

  private forget(ino: number): void {
    if (ino === this.recentIno) {
      this.recentIno = 0;
      this.recent = undefined;
    }
  }

  set(ino: number, inode: Inode): void {
    this.forget(ino);
    if (this.capacity <= 0) return;
    const old = this.index.get(ino);
    if (old !== undefined) {
      old.inode = inode;
      this.lists.moveToHead(old, old.level);
      return;
    }
    if (this.index.size >= this.capacity) {
      const victim = this.lists.lowestTail();
      if (victim !== null) {
        this.lists.unlink(victim);
        this.index.delete(victim.ino);
        this.evictions++;
      }
    }
    const e = new Entry(ino, inode);
    this.index.set(ino, e);
    this.lists.pushHead(e, 0);
  }

  delete(ino: number): void {
    this.forget(ino);
    const e = this.index.get(ino);
    if (e === undefined) return;
    this.lists.unlink(e);
    this.index.delete(ino);
  }

  clear(): void {
    this.forget(this.recentIno);
    this.lists.clear();
    this.index.clear();
  }
}
