/**
 * `FileChannel`: an image file or a block device, read and written with positional
 * synchronous calls.
 *
 * Exclusive access (a second read-write opener gets a clear error):
 * - every open takes a BSD `flock` on the image (exclusive for read-write, shared for
 *   read-only, never waiting), through our small native addon (Node has no flock).
 *   flock is what fuse2fs and e2fsprogs' unix_io use on image files, so ext4ts also
 *   excludes them; unlike a lock file it cannot go stale: the kernel drops it when
 *   the process dies.
 * - a block device opened read-write is also opened with O_EXCL, which the kernel
 *   refuses (EBUSY) while the device is mounted or claimed by another exclusive opener.
 */
import * as fs from 'node:fs';
import { FsError, fromSystemError } from '../errors.js';
import { BaseChannel } from './base-channel.js';
import type { RawSource } from './channel.js';
import * as native from './native.js';

export interface FileChannelOptions {
  readonly readOnly?: boolean;
  /** Byte offset of the filesystem inside the file/device (default 0). */
  readonly offset?: number;
  /** Limit the channel to this many bytes after `offset` (default: to the end). */
  readonly size?: number;
  /** Initial block size (default 1024). */
  readonly blockSize?: number;
  /** Take the flock/O_EXCL exclusion described above (default true). */
  readonly lock?: boolean;
}

export class FileChannel extends BaseChannel {
  private fd: number;
  private readonly offset: number;
  private readonly size: number;
  private readonly blockDevice: boolean;
  private unsynced = false;
  private holePunching = true;

  private constructor(path: string, fd: number, readOnly: boolean, offset: number, size: number, blockDevice: boolean, blockSize: number) {
    super(path, readOnly, blockSize);
    this.fd = fd;
    this.offset = offset;
    this.size = size;
    this.blockDevice = blockDevice;
  }

  static open(path: string, options: FileChannelOptions = {}): FileChannel {
    const readOnly = options.readOnly ?? false;
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new FsError('EINVAL', `${path}: invalid offset ${offset}`, { device: path });
    let st: fs.Stats;
    try {
      st = fs.statSync(path);
    } catch (error) {
      throw fromSystemError(error, `${path}: cannot open`, { device: path });
    }
    const blockDevice = st.isBlockDevice();
    if (!blockDevice && !st.isFile()) throw new FsError('EINVAL', `${path}: not a regular file or block device`, { device: path });
    const lock = options.lock ?? true;
    const { O_RDONLY, O_RDWR, O_EXCL, O_CLOEXEC } = fs.constants as typeof fs.constants & { O_CLOEXEC?: number };
    let flags = readOnly ? O_RDONLY : O_RDWR;
    if (blockDevice && !readOnly && lock) flags |= O_EXCL;
    if (O_CLOEXEC !== undefined) flags |= O_CLOEXEC;
    let fd: number;
    try {
      fd = fs.openSync(path, flags);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === 'EBUSY') {
        throw new FsError('EBUSY', `${path}: device is in use (mounted, or opened exclusively by another program)`, { device: path }, { cause: error });
      }
      throw fromSystemError(error, `${path}: cannot open ${readOnly ? 'read-only' : 'read-write'}`, { device: path });
    }
    try {
      if (lock) takeLock(path, fd, readOnly);
      const total = blockDevice ? deviceSize(path, fd, st) : st.size;
      if (offset > total) throw new FsError('EINVAL', `${path}: offset ${offset} is past the end (${total} bytes)`, { device: path, offset });
      let size = total - offset;
      if (options.size !== undefined) {
        if (!Number.isSafeInteger(options.size) || options.size < 0) throw new FsError('EINVAL', `${path}: invalid size ${options.size}`, { device: path });
        if (options.size > size) throw new FsError('EINVAL', `${path}: size ${options.size} at offset ${offset} is past the end (${total} bytes)`, { device: path });
        size = options.size;
      }
      return new FileChannel(path, fd, readOnly, offset, size, blockDevice, options.blockSize ?? 1024);
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
  }

  get sizeBytes(): number {
    return this.size;
  }

  get isBlockDevice(): boolean {
    return this.blockDevice;
  }

  rawSource(): RawSource | undefined {
    return this.fd >= 0 && this.readOnly ? { fd: this.fd, offset: this.offset } : undefined;
  }

  /**
   * posix_fadvise(WILLNEED): the kernel starts reading the range in the background. A
   * hint only: where it cannot be given (no addon, a failing fadvise) nothing happens.
   */
  protected override adviseAt(offset: number, length: number): void {
    try {
      native.adviseWillNeed(this.fd, this.offset + offset, length);
    } catch {
      // The reads that follow work without it.
    }
  }

  protected readAt(offset: number, length: number, into: Uint8Array, at: number): void {
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = fs.readSync(this.fd, into, at + done, length - done, this.offset + offset + done);
      } catch (error) {
        throw this.ioError(error, 'read', offset + done, length - done);
      }
      if (n === 0) {
        const block = Math.floor((offset + done) / this.blockSize);
        throw new FsError('EIO', `${this.name}: unexpected end of device reading block ${block} (the image shrank?)`, { device: this.name, block });
      }
      done += n;
    }
  }

  protected writeAt(offset: number, length: number, data: Uint8Array, at: number): void {
    let done = 0;
    this.unsynced = true;
    while (done < length) {
      try {
        done += fs.writeSync(this.fd, data, at + done, length - done, this.offset + offset + done);
      } catch (error) {
        throw this.ioError(error, 'write', offset + done, length - done);
      }
    }
  }

  protected override writeManyAt(offsets: Float64Array, datas: readonly Uint8Array[], length: number): void {
    if (!native.isNativeAvailable()) {
      super.writeManyAt(offsets, datas, length);
      return;
    }
    this.unsynced = true;
    const views = datas.map((d) => (d.length === length ? d : d.subarray(0, length)));
    const base = this.offset;
    try {
      native.pwriteBatch(this.fd, views, base === 0 ? offsets : offsets.map((o) => o + base));
    } catch (error) {
      throw this.ioError(error, 'write', offsets[0] as number, length);
    }
  }

  protected discardAt(offset: number, length: number): void {
    this.unsynced = true;
    try {
      if (this.blockDevice) {
        native.blockDiscard(this.fd, this.offset + offset, length);
        return;
      }
      if (this.holePunching) {
        native.fallocate(this.fd, native.FALLOC_FL_PUNCH_HOLE | native.FALLOC_FL_KEEP_SIZE, this.offset + offset, length);
        return;
      }
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code !== 'EOPNOTSUPP' && code !== 'ENOTSUP') throw this.ioError(error, 'discard', offset, length);
      this.holePunching = false;
    }
    // No hole punching on this filesystem (or no native helper): write zeros instead.
    if (!this.blockDevice) this.writeZeros(offset, length);
  }

  protected zeroAt(offset: number, length: number): void {
    this.unsynced = true;
    try {
      if (this.blockDevice) {
        native.blockZeroout(this.fd, this.offset + offset, length);
        return;
      }
      if (this.holePunching) {
        native.fallocate(this.fd, native.FALLOC_FL_ZERO_RANGE | native.FALLOC_FL_KEEP_SIZE, this.offset + offset, length);
        return;
      }
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code !== 'EOPNOTSUPP' && code !== 'ENOTSUP') throw this.ioError(error, 'zeroout', offset, length);
      this.holePunching = false;
    }
    this.writeZeros(offset, length);
  }

  protected sync(): void {
    if (!this.unsynced) return;
    try {
      fs.fsyncSync(this.fd);
    } catch (error) {
      throw this.ioError(error, 'flush', 0, 0);
    }
    this.unsynced = false;
  }

  protected release(): void {
    const fd = this.fd;
    this.fd = -1;
    fs.closeSync(fd);
  }

  private writeZeros(offset: number, length: number): void {
    const chunk = new Uint8Array(Math.min(length, 1 << 20));
    for (let done = 0; done < length; done += chunk.length) {
      const n = Math.min(chunk.length, length - done);
      this.writeAt(offset + done, n, chunk, 0);
    }
  }

  private ioError(error: unknown, op: string, offset: number, length: number): FsError {
    const bs = this.blockSize;
    const block = Math.floor(offset / bs);
    const count = Math.max(1, Math.ceil((offset + length) / bs) - block);
    const e = fromSystemError(error, `${this.name}: ${op} of blocks ${block}..${block + count - 1} failed`, { device: this.name, block, count });
    return e.code === 'EIO' || e.code === 'ENOSPC' || e.code === 'EROFS' ? e : new FsError('EIO', e.message, e.context, { cause: error });
  }
}

function takeLock(path: string, fd: number, readOnly: boolean): void {
  try {
    native.flock(fd, readOnly ? 'shared' : 'exclusive', true);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK') {
      const why = readOnly ? 'it is open read-write by another program' : 'it is already open by another program';
      throw new FsError('EBUSY', `${path}: image is locked: ${why}`, { device: path }, { cause: error });
    }
    throw error;
  }
}

function deviceSize(path: string, fd: number, st: fs.Stats): number {
  try {
    return native.blockDeviceSize(fd);
  } catch {
    // Without the native helper: the kernel publishes the size in 512-byte sectors.
    const major = Math.floor(st.rdev / 256) & 0xfff;
    const minor = (st.rdev & 0xff) | (Math.floor(st.rdev / 4096) & 0xfff00);
    try {
      const sectors = Number(fs.readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8').trim());
      if (Number.isSafeInteger(sectors)) return sectors * 512;
    } catch {
      // fall through
    }
    throw new FsError('EIO', `${path}: cannot determine the size of the block device`, { device: path });
  }
}
