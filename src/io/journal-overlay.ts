/**
 * A read-only view of a device as a journal replay would leave it, without writing it:
 * reads of the blocks a replay would write (ondisk/jbd2.ts `planReplay`) return their
 * newest copies from the journal instead (the journal's magic restored where the log
 * escaped it). Everything else reads through. Used for filesystems whose journal needs
 * recovery, opened read-only (see Ext4.open).
 */
import { FsError } from '../errors.js';
import { readOnlyError, type IoChannel } from './channel.js';
import { ChannelDecorator } from './channel-decorator.js';

/** A replayed block: the device block holding its copy, and whether the copy's magic was escaped. */
export interface OverlayBlock {
  readonly from: number;
  readonly escaped: boolean;
}

const MAGIC = [0xc0, 0x3b, 0x39, 0x98]; // JBD2_MAGIC_NUMBER, big-endian

export class JournalOverlayChannel extends ChannelDecorator {
  /** Replayed blocks, sorted, for finding those inside a read's range. */
  private readonly sorted: Float64Array;

  constructor(
    inner: IoChannel,
    private readonly blocks: ReadonlyMap<number, OverlayBlock>,
    /** The filesystem block size the map is in. */
    private readonly fsBlockSize: number,
  ) {
    super(inner);
    this.sorted = Float64Array.from(blocks.keys()).sort();
  }

  override get readOnly(): boolean {
    return true;
  }

  override read(block: number, count: number, into?: Uint8Array): Uint8Array {
    const out = this.inner.read(block, count, into);
    if (this.sorted.length === 0 || count === 0) return out;
    const bs = this.inner.blockSize;
    if (bs !== this.fsBlockSize) throw new FsError('EINVAL', `${this.name}: journal replay view read in ${bs}-byte blocks, not the filesystem's ${this.fsBlockSize}`);
    // First replayed block >= `block`.
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.sorted[mid] as number) < block) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.sorted.length; i++) {
      const b = this.sorted[i] as number;
      if (b >= block + count) break;
      const copy = this.blocks.get(b) as OverlayBlock;
      const at = (b - block) * bs;
      this.inner.read(copy.from, 1, out.subarray(at, at + bs));
      if (copy.escaped) out.set(MAGIC, at);
    }
    return out;
  }

  override write(block: number, count: number): void {
    throw readOnlyError(this.name, 'write', block, count);
  }
  override writeBytes(): void {
    throw readOnlyError(this.name, 'writeBytes');
  }
  override flush(): void {
    // nothing is written through this view
  }
  override discard(block: number, count: number): void {
    throw readOnlyError(this.name, 'discard', block, count);
  }
  override zeroout(block: number, count: number): void {
    throw readOnlyError(this.name, 'zeroout', block, count);
  }
  /** None: a reader of the file itself would miss the replayed blocks. */
  override rawSource(): undefined {
    return undefined;
  }
}
