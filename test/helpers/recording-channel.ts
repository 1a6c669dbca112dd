/** A decorator that records every operation it forwards, for op-for-op comparisons. */
import { ChannelDecorator } from '../../src/io/channel-decorator.js';

export type RecordedOp = readonly [string, ...number[]];

export class RecordingChannel extends ChannelDecorator {
  readonly ops: RecordedOp[] = [];
  override setBlockSize(size: number): void {
    this.ops.push(['setBlockSize', size]);
    this.inner.setBlockSize(size);
  }
  override read(block: number, count: number, into?: Uint8Array): Uint8Array {
    this.ops.push(['read', block, count]);
    return this.inner.read(block, count, into);
  }
  override write(block: number, count: number, data: Uint8Array): void {
    this.ops.push(['write', block, count]);
    this.inner.write(block, count, data);
  }
  override writeBytes(offset: number, data: Uint8Array): void {
    this.ops.push(['writeBytes', offset, data.length]);
    this.inner.writeBytes(offset, data);
  }
  override flush(): void {
    this.ops.push(['flush']);
    this.inner.flush();
  }
  override discard(block: number, count: number): void {
    this.ops.push(['discard', block, count]);
    this.inner.discard(block, count);
  }
  override zeroout(block: number, count: number): void {
    this.ops.push(['zeroout', block, count]);
    this.inner.zeroout(block, count);
  }
  override readahead(block: number, count: number): void {
    this.ops.push(['readahead', block, count]);
    this.inner.readahead(block, count);
  }
  override invalidate(block?: number, count?: number): void {
    this.ops.push(block === undefined ? ['invalidate'] : ['invalidate', block, count ?? 1]);
    this.inner.invalidate(block, count);
  }
  /** None: every read goes through the recording. */
  override rawSource(): undefined {
    return undefined;
  }
  override close(): void {
    this.ops.push(['close']);
    this.inner.close();
  }
  /** Forget what was recorded so far. */
  reset(): void {
    this.ops.length = 0;
  }
}
