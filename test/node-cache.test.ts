/**
 * NodeCache (src/fs/node-cache.ts): least recently used entries go first, whether the
 * entry used last was the newest already (kept in place) or not (moved to the end).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NodeCache } from '../src/fs/node-cache.js';

/** The blocks a cache still holds, of those given. */
function held(cache: NodeCache<string>, blocks: readonly number[]): number[] {
  const hits = cache.hits;
  const misses = cache.misses;
  const out = blocks.filter((b) => cache.get(b) !== undefined);
  // (the probing gets above refreshed entries: only use this at the end of a case)
  assert.equal(cache.hits + cache.misses, hits + misses + blocks.length);
  return out;
}

describe('NodeCache', () => {
  it('evicts the least recently used block', () => {
    const c = new NodeCache<string>(3);
    c.set(1, 'a');
    c.set(2, 'b');
    c.set(3, 'c');
    assert.equal(c.get(1), 'a'); // 1 becomes the newest: 2 is now the oldest
    c.set(4, 'd');
    assert.deepEqual(held(c, [1, 2, 3, 4]), [1, 3, 4]);
  });

  it('keeps the order when the newest block is used again', () => {
    const c = new NodeCache<string>(3);
    c.set(1, 'a');
    c.set(2, 'b');
    c.set(3, 'c');
    for (let i = 0; i < 5; i++) assert.equal(c.get(3), 'c');
    c.set(4, 'd'); // 1 is the oldest
    assert.deepEqual(held(c, [1, 2, 3, 4]), [2, 3, 4]);
    assert.equal(c.weight, 3);
  });

  it('tracks the newest block across deletes and re-inserts', () => {
    const c = new NodeCache<string>(3);
    c.set(1, 'a');
    c.set(2, 'b');
    c.set(3, 'c');
    c.delete(3); // the newest is gone: 2 is the newest now, 1 the oldest
    assert.equal(c.get(1), 'a'); // 1 moves to the end: order 2, 1
    c.set(5, 'e');
    c.set(6, 'f'); // over capacity: 2 goes
    assert.deepEqual(held(c, [1, 2, 5, 6]), [1, 5, 6]);
    c.clear();
    assert.equal(c.get(6), undefined);
    c.set(7, 'g');
    c.set(8, 'h');
    assert.equal(c.get(7), 'g'); // after clear, 7 is not mistaken for the newest
    c.set(9, 'i');
    c.set(10, 'j'); // 8 goes, not 7
    assert.deepEqual(held(c, [7, 8, 9, 10]), [7, 9, 10]);
  });

  it('weighs entries and keeps the total within the capacity', () => {
    const c = new NodeCache<string>(10, (v) => v.length);
    c.set(1, 'aaaa');
    c.set(2, 'bbbb');
    assert.equal(c.get(2), 'bbbb');
    c.set(3, 'cccc'); // 12 > 10: 1 goes
    assert.equal(c.weight, 8);
    assert.equal(c.get(1), undefined);
    c.set(4, 'x'.repeat(11)); // heavier than the whole cache: not kept
    assert.equal(c.get(4), undefined);
    assert.equal(c.size, 2);
  });
});
