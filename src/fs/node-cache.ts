/**
 * A bounded map of decoded metadata blocks by physical block number (extent tree
 * nodes, directory leaves): a block read again is not decoded, nor its checksum
 * computed, again. Least recently used entries go first. The bound is a total weight
 * (by default 1 per block; the filesystem weighs a block by the entries it decodes to,
 * so that the memory it holds is bounded, not just the number of blocks). The write side drops the
 * entry of every block it writes (`Ext4` wires that up), so an entry is always the
 * decoding of what the block holds.
 */
export class NodeCache<T> {
  private readonly map = new Map<number, { readonly value: T; readonly weight: number }>();
  private total = 0;
  /** The most recently used block (the map's last key), or -1. */
  private newest = -1;
  hits = 0;
  misses = 0;

  constructor(
    readonly capacity: number,
    private readonly weigh: (value: T) => number = () => 1,
  ) {}

  get(block: number): T | undefined {
    const slot = this.map.get(block);
    if (slot === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    // Refresh: Map iteration order is insertion order, so the oldest is first. A block
    // that is already the newest (a file's one leaf, read page after page) stays put: a
    // delete and set per hit left the Map deleted slots to rehash away.
    if (block !== this.newest) {
      this.map.delete(block);
      this.map.set(block, slot);
      this.newest = block;
    }
    return slot.value;
  }

  /** Whether `block` is cached (no statistics, no refresh). */
  has(block: number): boolean {
    return this.map.has(block);
  }

  /** The cached value of `block`, or `decode()`'s result, then cached. */
  getOrDecode(block: number, decode: () => T): T {
    const cached = this.get(block);
    if (cached !== undefined) return cached;
    const value = decode();
    this.set(block, value);
    return value;
  }

  set(block: number, value: T): void {
    const weight = Math.max(1, this.weigh(value));
    this.delete(block);
    if (weight > this.capacity) return;
    this.map.set(block, { value, weight });
    this.total += weight;
    this.newest = block;
    for (const [key, slot] of this.map) {
      if (this.total <= this.capacity) break;
      this.map.delete(key);
      this.total -= slot.weight;
    }
  }

  /** Forget blocks [block, block + count). */
  delete(block: number, count = 1): void {
    if (this.map.size === 0) return;
    if (count > this.map.size) {
      for (const key of this.map.keys()) if (key >= block && key < block + count) this.drop(key);
      return;
    }
    for (let b = block; b < block + count; b++) this.drop(b);
  }

  private drop(block: number): void {
    const slot = this.map.get(block);
    if (slot === undefined) return;
    this.map.delete(block);
    this.total -= slot.weight;
    if (block === this.newest) this.newest = -1;
  }

  clear(): void {
    this.map.clear();
    this.total = 0;
    this.newest = -1;
  }

  /** Total weight held. */
  get weight(): number {
    return this.total;
  }

  get size(): number {
    return this.map.size;
  }
}
