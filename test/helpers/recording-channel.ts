/** A decorator that records every operation it forwards, for op-for-op comparisons. */
import type { IoChannel, IoStats } from '../../src/io/channel.js';

export type RecordedOp = readonly [string, ...number[]];

export class RecordingChannel implements IoChannel {
  readonly ops: RecordedOp[] = [];
  constructor(readonly inner: IoChannel) {}
  get name(): string {
    return this.inner.name;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  get blockSize(): number {
    return this.inner.blockSize;
  }
  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }
  setBlockSize(size: number): void {
    this.ops.push(['setBlockSize', size]);
    this.inner.setBlockSize(size);
  }
  read(block: number, count: number, into?: Uint8Array): Uint8Array {
    this.ops.push(['read', block, count]);
    return this.inner.read(block, count, into);
  }
  write(block: number, count: number, data: Uint8Array): void {
    this.ops.push(['write', block, count]);
    this.inner.write(block, count, data);
  }
  writeBytes(offset: number, data: Uint8Array): void {
    this.ops.push(['writeBytes', offset, data.length]);
    this.inner.writeBytes(offset, data);
  }
  flush(): void {
    this.ops.push(['flush']);
    this.inner.flush();
  }
  discard(block: number, count: number): void {
    this.ops.push(['discard', block, count]);
    this.inner.discard(block, count);
  }
  zeroout(block: number, count: number): void {
    this.ops.push(['zeroout', block, count]);
    this.inner.zeroout(block, count);
  }
  readahead(block: number, count: number): void {
    this.ops.push(['readahead', block, count]);
    this.inner.readahead(block, count);
  }
  invalidate(block?: number, count?: number): void {
    this.ops.push(block === undefined ? ['invalidate'] : ['invalidate', block, count ?? 1]);
    this.inner.invalidate(block, count);
  }
  stats(): IoStats {
    return this.inner.stats();
  }
  close(): void {
    this.ops.push(['close']);
    this.inner.close();
  }
  /** Forget what was recorded so far. */
  reset(): void {
    this.ops.length = 0;
  }
}
