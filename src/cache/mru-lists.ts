/**
 * Intrusive doubly-linked lists indexed by level: the MRU priority lists of the
 * block cache and the inode cache. A node carries its own links and the index of
 * the list it is on (-1 when on none), so moves are O(1) and allocate nothing.
 * Heads are the most recently used ends, tails the least.
 */
export interface ListNode<T> {
  prev: T | null;
  next: T | null;
  /** Index of the list the node is on, -1 when on none. */
  list: number;
}

export class MruLists<T extends ListNode<T>> {
  private readonly heads: (T | null)[];
  private readonly tails: (T | null)[];

  constructor(readonly count: number) {
    this.heads = new Array<T | null>(count).fill(null);
    this.tails = new Array<T | null>(count).fill(null);
  }

  head(list: number): T | null {
    return this.heads[list] ?? null;
  }

  tail(list: number): T | null {
    return this.tails[list] ?? null;
  }

  /** The least recently used node of the lowest non-empty list below `below`. */
  lowestTail(below = this.count): T | null {
    for (let l = 0; l < below; l++) {
      const t = this.tails[l];
      if (t !== null && t !== undefined) return t;
    }
    return null;
  }

  unlink(node: T): void {
    const l = node.list;
    if (node.prev !== null) node.prev.next = node.next;
    else this.heads[l] = node.next;
    if (node.next !== null) node.next.prev = node.prev;
    else this.tails[l] = node.prev;
    node.prev = null;
    node.next = null;
    node.list = -1;
  }

  pushHead(node: T, list: number): void {
    const h = this.heads[list] ?? null;
    node.prev = null;
    node.next = h;
    if (h !== null) h.prev = node;
    else this.tails[list] = node;
    this.heads[list] = node;
    node.list = list;
  }

  pushTail(node: T, list: number): void {
    const t = this.tails[list] ?? null;
    node.next = null;
    node.prev = t;
    if (t !== null) t.next = node;
    else this.heads[list] = node;
    this.tails[list] = node;
    node.list = list;
  }

  /** Move a node to the head of `list` (it must be on some list). */
  moveToHead(node: T, list: number): void {
    this.unlink(node);
    this.pushHead(node, list);
  }

  clear(): void {
    this.heads.fill(null);
    this.tails.fill(null);
  }
}
