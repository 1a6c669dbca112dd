/**
 * `IoChannel`: the synchronous block-I/O interface every backend and the cache
 * implement; the TypeScript counterpart of libext2fs' io_channel (ext2_io.h).
 *
 * Units: `block` and `count` are in blocks of `blockSize` bytes, numbered from the
 * channel's origin (a `FileChannel` opened with an `offset` counts from there);
 * `offset` arguments of `writeBytes` are bytes from the same origin. Block numbers
 * are JavaScript numbers, exact up to 2^53.
 */
import { FsError } from '../errors.js';

/** Counters every channel keeps. All counts are cumulative since open. */
export interface IoStats {
  /** Read requests sent to the device (one per backing read call). */
  readonly readOps: number;
  /** Write requests sent to the device (one per backing write call). */
  readonly writeOps: number;
  /** Blocks read from the device. */
  readonly reads: number;
  /** Blocks written to the device. */
  readonly writes: number;
  /** Bytes read from the device. */
  readonly bytesRead: number;
  /** Bytes written to the device. */
  readonly bytesWritten: number;
  /** Durable flushes (fsync) performed. */
  readonly flushes: number;
}

/** An open file and the byte offset of a channel's block 0 in it (IoChannel.rawSource). */
export interface RawSource {
  readonly fd: number;
  readonly offset: number;
}

export interface IoChannel {
  /** Human-readable name (path of the image, "memory", ...) used in error messages. */
  readonly name: string;
  /** True when opened read-only: write, writeBytes, discard and zeroout throw EROFS. */
  readonly readOnly: boolean;
  /** Current block size in bytes (a power of two, 512..65536). */
  readonly blockSize: number;
  /** Size of the channel in bytes (from its origin). Reads past it are errors. */
  readonly sizeBytes: number;
  /** Change the block size; flushes pending writes first. */
  setBlockSize(size: number): void;
  /**
   * Read `count` blocks starting at `block`. With `into` (at least count*blockSize
   * bytes), the data is copied there and `into` is returned: no allocation.
   * Reading past the end of the channel throws EIO, never returns zeros.
   */
  read(block: number, count: number, into?: Uint8Array): Uint8Array;
  /** Write `count` blocks from `data` (at least count*blockSize bytes) at `block`. */
  write(block: number, count: number, data: Uint8Array): void;
  /** Write bytes at a byte offset; need not be block-aligned. */
  writeBytes(offset: number, data: Uint8Array): void;
  /**
   * Optional: several single-block writes in one call, the same as `write(blocks[i], 1,
   * datas[i])` for each i in order, but cheaper per block. If it throws, which blocks
   * were written is unknown (the caller may write them again one by one).
   */
  writeBlocks?(blocks: readonly number[], datas: readonly Uint8Array[]): void;
  /** Make every write so far durable: pending data reaches the device, then fsync. */
  flush(): void;
  /**
   * Tell the device the blocks are unused: punch holes in an image file (they then
   * read as zeros), BLKDISCARD on a block device (contents undefined afterwards).
   */
  discard(block: number, count: number): void;
  /** Make the blocks read as zeros. */
  zeroout(block: number, count: number): void;
  /** Hint that the blocks will be read soon. */
  readahead(block: number, count: number): void;
  /**
   * Optional: the open file behind a read-only channel and the byte offset of its block
   * 0, for a caller that reads file data on another thread (`ext4ts get`'s writer
   * threads, with pread). Undefined when there is none, or when the channel is
   * writable (written data may not have reached the file yet).
   */
  rawSource?(): RawSource | undefined;
  /** Drop any cached copy of the blocks (all of them when called with no range). */
  invalidate(block?: number, count?: number): void;
  /** Counters since open. */
  stats(): IoStats;
  /** Flush and release the channel. If the flush fails, the channel stays open and usable. */
  close(): void;
}

/** Mutable counters that channels keep and report as `IoStats`. */
export class IoCounters implements IoStats {
  readOps = 0;
  writeOps = 0;
  reads = 0;
  writes = 0;
  bytesRead = 0;
  bytesWritten = 0;
  flushes = 0;

  snapshot(): IoStats {
    return {
      readOps: this.readOps,
      writeOps: this.writeOps,
      reads: this.reads,
      writes: this.writes,
      bytesRead: this.bytesRead,
      bytesWritten: this.bytesWritten,
      flushes: this.flushes,
    };
  }
}

export const MIN_BLOCK_SIZE = 512;
export const MAX_BLOCK_SIZE = 65536;

/** Throws EINVAL unless `size` is a power of two in [512, 65536]. */
export function checkBlockSize(size: number, device: string): void {
  if (!Number.isInteger(size) || size < MIN_BLOCK_SIZE || size > MAX_BLOCK_SIZE || (size & (size - 1)) !== 0) {
    throw new FsError('EINVAL', `${device}: invalid block size ${size} (must be a power of two from 512 to 65536)`, { device });
  }
}

/** Throws EINVAL unless block/count describe a valid range (non-negative integers, end <= 2^53). */
export function checkRange(block: number, count: number, device: string): void {
  if (!Number.isSafeInteger(block) || block < 0 || !Number.isSafeInteger(count) || count < 0 || !Number.isSafeInteger(block + count)) {
    throw new FsError('EINVAL', `${device}: invalid block range ${block}+${count}`, { device, block, count });
  }
}

/** Throws EINVAL unless `buf` holds at least `bytes` bytes. */
export function checkBuffer(buf: Uint8Array, bytes: number, what: string, device: string, block: number, count: number): void {
  if (buf.length < bytes) {
    throw new FsError('EINVAL', `${device}: ${what} buffer of ${buf.length} bytes is smaller than ${count} block(s) (${bytes} bytes)`, { device, block, count });
  }
}

/** EROFS for a write to a read-only channel. */
export function readOnlyError(device: string, op: string, block?: number, count?: number): FsError {
  const ctx = block === undefined ? { device } : count === undefined ? { device, block } : { device, block, count };
  return new FsError('EROFS', `${device}: ${op} on a read-only channel`, ctx);
}

/** EIO for a read that extends past the end of the channel. */
export function pastEndError(device: string, block: number, count: number, blockSize: number, sizeBytes: number): FsError {
  return new FsError(
    'EIO',
    `${device}: read of blocks ${block}..${block + count - 1} (${blockSize}-byte blocks) extends past the end of the device (${sizeBytes} bytes)`,
    { device, block, count },
  );
}
