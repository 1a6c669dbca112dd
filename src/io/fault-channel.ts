/**
 * `FaultChannel`: a decorator that fails chosen operations of the channel it wraps,
 * for tests of error paths (write-back failures, failed reads, failed flushes).
 * A failing request does nothing on the inner channel: a multi-block write that
 * touches a faulty block writes none of its blocks.
 */
import { FsError, type Errno } from '../errors.js';
import { ChannelDecorator } from './channel-decorator.js';

export type FaultOp = 'read' | 'write' | 'flush' | 'discard' | 'zeroout';

export interface FaultRule {
  /** Which operation fails. `write` covers write and writeBytes. */
  readonly op: FaultOp;
  /** Fail only requests that touch blocks in [first, first+count); omitted = any request. */
  readonly first?: number;
  readonly count?: number;
  /** How many times the rule fires before it is used up (default: forever). */
  readonly times?: number;
  /** Error code to fail with (default EIO). */
  readonly code?: Errno;
}

interface LiveRule {
  readonly rule: FaultRule;
  remaining: number;
}

export class FaultChannel extends ChannelDecorator {
  private rules: LiveRule[] = [];
  /** Number of faults injected so far. */
  injected = 0;

  /** Add a rule; returns this for chaining. */
  fail(rule: FaultRule): this {
    this.rules.push({ rule, remaining: rule.times ?? Number.POSITIVE_INFINITY });
    return this;
  }

  /** Remove every rule: the channel behaves like the inner one again. */
  heal(): void {
    this.rules = [];
  }

  override read(block: number, count: number, into?: Uint8Array): Uint8Array {
    this.check('read', block, count);
    return this.inner.read(block, count, into);
  }

  override write(block: number, count: number, data: Uint8Array): void {
    this.check('write', block, count);
    this.inner.write(block, count, data);
  }

  override writeBytes(offset: number, data: Uint8Array): void {
    const bs = this.inner.blockSize;
    const first = Math.floor(offset / bs);
    const last = Math.floor((offset + Math.max(data.length, 1) - 1) / bs);
    this.check('write', first, last - first + 1);
    this.inner.writeBytes(offset, data);
  }

  override flush(): void {
    this.check('flush', undefined, undefined);
    this.inner.flush();
  }

  override discard(block: number, count: number): void {
    this.check('discard', block, count);
    this.inner.discard(block, count);
  }

  override zeroout(block: number, count: number): void {
    this.check('zeroout', block, count);
    this.inner.zeroout(block, count);
  }

  /** None: reads through it must meet its faults. */
  override rawSource(): undefined {
    return undefined;
  }

  override close(): void {
    this.check('flush', undefined, undefined);
    this.inner.close();
  }

  private check(op: FaultOp, block: number | undefined, count: number | undefined): void {
    for (const live of this.rules) {
      const { rule } = live;
      if (rule.op !== op || live.remaining <= 0) continue;
      if (rule.first !== undefined && block !== undefined && count !== undefined) {
        const end = rule.first + (rule.count ?? 1);
        if (block + count <= rule.first || block >= end) continue;
      }
      live.remaining--;
      this.injected++;
      const code = rule.code ?? 'EIO';
      const where = block === undefined ? '' : ` of blocks ${block}..${block + (count ?? 1) - 1}`;
      const ctx = block === undefined ? { device: this.name } : { device: this.name, block, count: count ?? 1 };
      throw new FsError(code, `${this.name}: injected ${op} failure${where}`, ctx);
    }
  }
}
