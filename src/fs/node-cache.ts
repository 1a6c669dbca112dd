/**
 * A bounded map of decoded metadata blocks by physical block number (extent tree
 * nodes, directory leaves): a block read again is not decoded, nor its checksum
 * computed, again. Least recently used entries go first. The write side drops the
 * entry of every block it writes (`Ext4` wires that up), so an entry is always the
 * decoding of what the block holds.
 */
export class NodeCache<T> {
  private readonly map = new Map<number, T>();
  hits = 0;
  misses = 0;

  constructor(readonly capacity: number) {}

  get(block: number): T | undefined {
    const value = this.map.get(block);
    if (value === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    // Refresh: Map iteration order is insertion order, so the oldest is first.
    this.map.delete(block);
    this.map.set(block, value);
    return value;
  }

  set(block: number, value: T): void {
    if (this.capacity <= 0) return;
    this.map.delete(block);
    this.map.set(block, value);
    if (this.map.size > this.capacity) {
      const oldest = this.map.keys().next();
      if (oldest.done !== true) this.map.delete(oldest.value);
    }
  }

  /** Forget blocks [block, block + count). */
  delete(block: number, count = 1): void {
    if (this.map.size === 0) return;
    if (count > this.map.size) {
      for (const key of this.map.keys()) if (key >= block && key < block + count) this.map.delete(key);
      return;
    }
    for (let b = block; b < block + count; b++) this.map.delete(b);
  }

  clear(): void {
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}
