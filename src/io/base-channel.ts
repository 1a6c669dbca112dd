/**
 * Shared bookkeeping for the device backends (MemoryChannel, FileChannel): block
 * size, range and buffer checks, read-only enforcement, counters. Subclasses
 * implement the byte-level primitives.
 */
import { FsError } from '../errors.js';
import {
  checkBlockSize,
  checkBuffer,
  checkRange,
  IoCounters,
  pastEndError,
  readOnlyError,
  type IoChannel,
  type IoStats,
} from './channel.js';

export abstract class BaseChannel implements IoChannel {
  readonly name: string;
  readonly readOnly: boolean;
  protected readonly counters = new IoCounters();
  private blockSizeBytes: number;
  private closed = false;

  protected constructor(name: string, readOnly: boolean, blockSize: number) {
    checkBlockSize(blockSize, name);
    this.name = name;
    this.readOnly = readOnly;
    this.blockSizeBytes = blockSize;
  }

  get blockSize(): number {
    return this.blockSizeBytes;
  }

  abstract get sizeBytes(): number;

  /** Read `length` bytes at byte `offset` into `into[at...]`; the range is known to be inside the device. */
  protected abstract readAt(offset: number, length: number, into: Uint8Array, at: number): void;
  /** Write `length` bytes from `data[at...]` at byte `offset`. */
  protected abstract writeAt(offset: number, length: number, data: Uint8Array, at: number): void;
  /** Make the byte range read as zeros, releasing storage where possible. */
  protected abstract discardAt(offset: number, length: number): void;
  /** Make the byte range read as zeros. */
  protected abstract zeroAt(offset: number, length: number): void;
  /** Durable flush of everything written. */
  protected abstract sync(): void;
  /** Release resources. */
  protected abstract release(): void;

  setBlockSize(size: number): void {
    this.assertOpen();
    checkBlockSize(size, this.name);
    this.flush();
    this.blockSizeBytes = size;
  }

  read(block: number, count: number, into?: Uint8Array): Uint8Array {
    this.assertOpen();
    checkRange(block, count, this.name);
    const bs = this.blockSizeBytes;
    const bytes = count * bs;
    const out = into ?? new Uint8Array(bytes);
    checkBuffer(out, bytes, 'read', this.name, block, count);
    if (count === 0) return out;
    const offset = block * bs;
    if (offset + bytes > this.sizeBytes) throw pastEndError(this.name, block, count, bs, this.sizeBytes);
    this.readAt(offset, bytes, out, 0);
    this.counters.readOps++;
    this.counters.reads += count;
    this.counters.bytesRead += bytes;
    return out;
  }

  write(block: number, count: number, data: Uint8Array): void {
    this.assertOpen();
    if (this.readOnly) throw readOnlyError(this.name, 'write', block, count);
    checkRange(block, count, this.name);
    const bs = this.blockSizeBytes;
    const bytes = count * bs;
    checkBuffer(data, bytes, 'write', this.name, block, count);
    if (count === 0) return;
    this.checkWritable(block * bs, bytes, block, count);
    this.writeAt(block * bs, bytes, data, 0);
    this.counters.writeOps++;
    this.counters.writes += count;
    this.counters.bytesWritten += bytes;
  }

  writeBlocks(blocks: readonly number[], datas: readonly Uint8Array[]): void {
    this.assertOpen();
    if (blocks.length !== datas.length) throw new FsError('EINVAL', `${this.name}: ${blocks.length} blocks but ${datas.length} buffers`);
    if (blocks.length === 0) return;
    if (this.readOnly) throw readOnlyError(this.name, 'write', blocks[0], 1);
    const bs = this.blockSizeBytes;
    const offsets = new Float64Array(blocks.length);
    for (let i = 0; i < blocks.length; i++) {
      const block = blocks[i] as number;
      checkRange(block, 1, this.name);
      checkBuffer(datas[i] as Uint8Array, bs, 'write', this.name, block, 1);
      this.checkWritable(block * bs, bs, block, 1);
      offsets[i] = block * bs;
    }
    this.writeManyAt(offsets, datas, bs);
    this.counters.writeOps += blocks.length;
    this.counters.writes += blocks.length;
    this.counters.bytesWritten += blocks.length * bs;
  }

  /** Write `length` bytes of each `datas[i]` at byte `offsets[i]`, in order; subclasses may do it in one call. */
  protected writeManyAt(offsets: Float64Array, datas: readonly Uint8Array[], length: number): void {
    for (let i = 0; i < datas.length; i++) this.writeAt(offsets[i] as number, length, datas[i] as Uint8Array, 0);
  }

  writeBytes(offset: number, data: Uint8Array): void {
    this.assertOpen();
    if (this.readOnly) throw readOnlyError(this.name, 'writeBytes');
    if (!Number.isSafeInteger(offset) || offset < 0) throw new FsError('EINVAL', `${this.name}: invalid byte offset ${offset}`, { device: this.name, offset });
    if (data.length === 0) return;
    this.checkWritable(offset, data.length, Math.floor(offset / this.blockSizeBytes), undefined);
    this.writeAt(offset, data.length, data, 0);
    this.counters.writeOps++;
    this.counters.writes += Math.ceil((offset + data.length) / this.blockSizeBytes) - Math.floor(offset / this.blockSizeBytes);
    this.counters.bytesWritten += data.length;
  }

  flush(): void {
    this.assertOpen();
    if (this.readOnly) return;
    this.sync();
    this.counters.flushes++;
  }

  discard(block: number, count: number): void {
    this.rangeOp('discard', block, count);
    this.discardAt(block * this.blockSizeBytes, count * this.blockSizeBytes);
  }

  zeroout(block: number, count: number): void {
    this.rangeOp('zeroout', block, count);
    this.zeroAt(block * this.blockSizeBytes, count * this.blockSizeBytes);
  }

  readahead(block: number, count: number): void {
    this.assertOpen();
    checkRange(block, count, this.name);
    const bs = this.blockSizeBytes;
    const end = Math.min((block + count) * bs, this.sizeBytes);
    if (block * bs < end) this.adviseAt(block * bs, end - block * bs);
  }

  /** readahead's hint for the bytes [offset, offset+length) of the device; by default nothing. */
  protected adviseAt(offset: number, length: number): void {
    void offset;
    void length;
  }

  invalidate(block?: number, count?: number): void {
    this.assertOpen();
    if (block !== undefined) checkRange(block, count ?? 1, this.name);
  }

  stats(): IoStats {
    return this.counters.snapshot();
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.release();
    this.closed = true;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  protected assertOpen(): void {
    if (this.closed) throw new FsError('EBADF', `${this.name}: channel is closed`, { device: this.name });
  }

  private rangeOp(op: string, block: number, count: number): void {
    this.assertOpen();
    if (this.readOnly) throw readOnlyError(this.name, op, block, count);
    checkRange(block, count, this.name);
    this.checkWritable(block * this.blockSizeBytes, count * this.blockSizeBytes, block, count);
  }

  private checkWritable(offset: number, length: number, block: number, count: number | undefined): void {
    if (offset + length > this.sizeBytes) {
      const ctx = count === undefined ? { device: this.name, block, offset } : { device: this.name, block, count };
      throw new FsError('ENOSPC', `${this.name}: write of ${length} bytes at byte ${offset} extends past the end of the device (${this.sizeBytes} bytes)`, ctx);
    }
  }
}
