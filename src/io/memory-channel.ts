/** `MemoryChannel`: a device held in memory, for tests and (later) the browser. */
import { FsError } from '../errors.js';
import { BaseChannel } from './base-channel.js';

export interface MemoryChannelOptions {
  /** Block size in bytes (default 1024, like unix_io before the superblock is read). */
  readonly blockSize?: number;
  readonly readOnly?: boolean;
  readonly name?: string;
}

export class MemoryChannel extends BaseChannel {
  private readonly bytes: Uint8Array;

  /**
   * `source` is either the device size in bytes (zero-filled) or the device's
   * contents, which the channel uses directly (no copy): the caller can inspect
   * the "device" through it.
   */
  constructor(source: number | Uint8Array, options: MemoryChannelOptions = {}) {
    super(options.name ?? 'memory', options.readOnly ?? false, options.blockSize ?? 1024);
    if (typeof source === 'number') {
      if (!Number.isSafeInteger(source) || source < 0) throw new FsError('EINVAL', `memory channel size ${source} is invalid`);
      this.bytes = new Uint8Array(source);
    } else {
      this.bytes = source;
    }
  }

  get sizeBytes(): number {
    return this.bytes.length;
  }

  /** The device contents (live, not a copy). */
  get contents(): Uint8Array {
    return this.bytes;
  }

  protected readAt(offset: number, length: number, into: Uint8Array, at: number): void {
    into.set(this.bytes.subarray(offset, offset + length), at);
  }

  protected writeAt(offset: number, length: number, data: Uint8Array, at: number): void {
    this.bytes.set(data.subarray(at, at + length), offset);
  }

  protected discardAt(offset: number, length: number): void {
    this.bytes.fill(0, offset, offset + length);
  }

  protected zeroAt(offset: number, length: number): void {
    this.bytes.fill(0, offset, offset + length);
  }

  protected sync(): void {
    // Memory is as durable as it gets.
  }

  protected release(): void {
    // Nothing to release; the contents stay readable through `contents`.
  }
}
