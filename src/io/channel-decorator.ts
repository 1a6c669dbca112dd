/**
 * `ChannelDecorator`: a channel that forwards every call to the channel it wraps. The
 * decorators (FaultChannel, JournalOverlayChannel) extend it and override only what
 * they change. It has no `writeBlocks`: a caller then writes block by block through
 * `write`, which a decorator sees.
 */
import type { IoChannel, IoStats, RawSource } from './channel.js';

export class ChannelDecorator implements IoChannel {
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
    this.inner.setBlockSize(size);
  }
  read(block: number, count: number, into?: Uint8Array): Uint8Array {
    return this.inner.read(block, count, into);
  }
  write(block: number, count: number, data: Uint8Array): void {
    this.inner.write(block, count, data);
  }
  writeBytes(offset: number, data: Uint8Array): void {
    this.inner.writeBytes(offset, data);
  }
  flush(): void {
    this.inner.flush();
  }
  discard(block: number, count: number): void {
    this.inner.discard(block, count);
  }
  zeroout(block: number, count: number): void {
    this.inner.zeroout(block, count);
  }
  readahead(block: number, count: number): void {
    this.inner.readahead(block, count);
  }
  rawSource(): RawSource | undefined {
    return this.inner.rawSource?.();
  }
  invalidate(block?: number, count?: number): void {
    this.inner.invalidate(block, count);
  }
  stats(): IoStats {
    return this.inner.stats();
  }
  close(): void {
    this.inner.close();
  }
}
