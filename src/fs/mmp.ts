/**
 * Multi-mount protection (incompat feature `mmp`) for a read-write open: the protocol
 * of the kernel's fs/ext4/mmp.c (ext4_multi_mount_protect, kmmpd), which e2fsprogs'
 * lib/ext2fs/mmp.c (ext2fs_mmp_start/update/stop) also speaks. Read-only opens do not
 * touch the MMP block (the kernel only runs MMP for read-write mounts either).
 *
 * Start (`MultiMountProtection.start`), as the kernel does it:
 * 1. Read the MMP block from the device (never from the buffer cache).
 * 2. interval = max(s_mmp_update_interval, mmp_check_interval, 5) seconds; we also cap
 *    it at 300 (the largest check interval a kernel ever writes) so that a hostile
 *    block cannot make an open sleep for hours.
 * 3. mmp_seq CLEAN: nobody has it open; go on without waiting (the kernel's wait_time
 *    stays 0). FSCK: e2fsck or another e2fsprogs tool has it open: EBUSY. Above
 *    EXT4_MMP_SEQ_MAX: not a sequence anyone writes: EUCLEAN. Anything else: a node may
 *    be running a heartbeat (or crashed): wait min(2 * interval + 1, interval + 60)
 *    seconds and read again; a changed seq means it is alive: EBUSY naming its node.
 * 4. Write a new random seq (1..MAX) with our node name (os.hostname()), device name
 *    (the image's basename) and the time, and make it durable.
 * 5. Wait the same time as in 3 (so: not at all when the block was CLEAN) and read
 *    again: if the seq is no longer ours, another node started at the same moment:
 *    EBUSY. This is the kernel's rule; e2fsprogs instead always waits here, even on a
 *    clean filesystem, which ext4ts does not copy.
 *
 * While open (`tick`, called by the FUSE worker's housekeeping, or by library users):
 * at most once per s_mmp_update_interval seconds, re-read the block and check that it
 * still holds our seq and node name (else another node has taken the filesystem: EBUSY,
 * reported once, after which the heartbeat stops and `lost` is set), then write
 * seq + 1 (wrapping from MAX to 1), the time, and mmp_check_interval =
 * clamp(2 * seconds since the previous write, 5, 300), as kmmpd does, so that a
 * heartbeat that falls behind tells other nodes to watch longer. The kernel re-reads
 * only when a heartbeat was late; ext4ts re-reads on every one (one block read).
 *
 * Stop (`stop`, on close, after everything else is written back): check the block is
 * still ours (e2fsprogs' ext2fs_mmp_stop does; the kernel does not) and write seq CLEAN.
 * If it is not ours, CLEAN is not written (it would tell a live node's peers that
 * nobody has the filesystem) and EBUSY is thrown.
 *
 * The waits go through `MmpOptions.wait` so that tests (and callers with their own
 * scheduling) need not sleep; the default blocks the thread (`Atomics.wait`), which is
 * what the synchronous core does everywhere (DESIGN.md).
 */
import { hostname } from 'node:os';
import { basename } from 'node:path';
import { randomInt } from '../lazy-crypto.js';
import { corrupted, FsError } from '../errors.js';
import type { IoChannel } from '../io/channel.js';
import type { Superblock } from '../ondisk/superblock.js';
import {
  decodeMmp,
  describeMmpSeq,
  encodeMmp,
  EXT4_MMP_CHECK_MULT,
  EXT4_MMP_MAX_CHECK_INTERVAL,
  EXT4_MMP_MIN_CHECK_INTERVAL,
  EXT4_MMP_SEQ_CLEAN,
  EXT4_MMP_SEQ_FSCK,
  EXT4_MMP_SEQ_MAX,
  EXT4_MMP_UPDATE_INTERVAL,
  MMP_NODENAME_SIZE,
  type Mmp,
} from '../ondisk/mmp.js';

/** Which wait of the start protocol: watching a non-clean block (step 3), or confirming our own seq (step 5). */
export type MmpWaitPhase = 'check' | 'confirm';

export interface MmpOptions {
  /**
   * Sleep `seconds` (blocking). Never called with 0: a clean filesystem opens without
   * waiting. Default: block the thread. Tests pass one that returns at once, and may
   * rewrite the block meanwhile, as another node would.
   */
  readonly wait?: (seconds: number, phase: MmpWaitPhase) => void;
  /** Written to mmp_nodename (default `os.hostname()`, cut to 64 bytes). */
  readonly nodename?: string;
  /** Written to mmp_bdevname (default the device name's basename, cut to 32 bytes). */
  readonly bdevname?: string;
  /** Monotonic clock in ms for the heartbeat (default `performance.now`). */
  readonly clock?: () => number;
  /** Verify the block's checksum on metadata_csum filesystems (default true). */
  readonly verifyChecksum?: boolean;
}

/** The superblock fields MMP uses (a `Superblock` fits). */
export type MmpSuperblock = Pick<Superblock, 'mmpBlock' | 'mmpUpdateInterval' | 'firstDataBlock' | 'blocksCount' | 'blockSize' | 'hasMetadataCsum' | 'csumSeed'>;

function sleepSeconds(seconds: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, seconds * 1000);
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(Math.max(value, low), high);
}

/** "node X, device Y, updated <date>": what the block says about its last writer. */
function lastWriter(mmp: Mmp): string {
  const when = Number.isFinite(mmp.time) && mmp.time * 1000 <= 8.64e15 ? new Date(mmp.time * 1000).toISOString() : String(mmp.time);
  return `node '${mmp.nodename}', device '${mmp.bdevname}', updated ${when}`;
}

export class MultiMountProtection {
  /** The MMP block (s_mmp_block). */
  readonly block: number;
  /** Seconds between heartbeats (s_mmp_update_interval, or 5 when it is 0). */
  readonly updateInterval: number;
  private readonly device: IoChannel;
  private readonly sb: MmpSuperblock;
  private readonly nodename: string;
  private readonly bdevname: string;
  private readonly clock: () => number;
  private readonly verifyChecksum: boolean;
  /** The block as last read or written: the bytes past the named fields are kept. */
  private raw: Uint8Array;
  private ourSeq = 0;
  private lastWrite = 0;
  private lostError: FsError | undefined;
  private stopped = false;

  private constructor(device: IoChannel, sb: MmpSuperblock, options: MmpOptions) {
    this.device = device;
    this.sb = sb;
    this.block = sb.mmpBlock;
    this.updateInterval = sb.mmpUpdateInterval > 0 ? sb.mmpUpdateInterval : EXT4_MMP_UPDATE_INTERVAL;
    this.nodename = options.nodename ?? hostname();
    this.bdevname = options.bdevname ?? basename(device.name);
    this.clock = options.clock ?? (() => performance.now());
    this.verifyChecksum = options.verifyChecksum ?? true;
    this.raw = new Uint8Array(sb.blockSize);
  }

  /**
   * Run the start protocol on `device` (the raw channel, not the cache; its block size
   * must be the filesystem's). Returns the running protection, or throws: EBUSY when
   * e2fsck or another node has the filesystem, EUCLEAN for a bad MMP block or an MMP
   * block number outside the filesystem, EIO from the device.
   */
  static start(device: IoChannel, sb: MmpSuperblock, options: MmpOptions = {}): MultiMountProtection {
    const mmp = new MultiMountProtection(device, sb, options);
    mmp.begin(options.wait ?? sleepSeconds);
    return mmp;
  }

  /** Our current sequence number (as written to the block). */
  get seq(): number {
    return this.ourSeq;
  }

  /** Set once the heartbeat found that another node took the filesystem over. */
  get lost(): FsError | undefined {
    return this.lostError;
  }

  private begin(wait: (seconds: number, phase: MmpWaitPhase) => void): void {
    const { sb, block } = this;
    if (!Number.isSafeInteger(block) || block <= sb.firstDataBlock || block >= sb.blocksCount) {
      throw corrupted('superblock', `MMP block ${block} is outside the filesystem (blocks ${sb.firstDataBlock + 1}..${sb.blocksCount - 1})`);
    }
    if (this.device.blockSize !== sb.blockSize) {
      throw new FsError('EINVAL', `${this.device.name}: MMP needs the device in ${sb.blockSize}-byte blocks, it is in ${this.device.blockSize}`, { device: this.device.name });
    }
    let mmp = this.read();
    const interval = clamp(Math.max(sb.mmpUpdateInterval, mmp.checkInterval), EXT4_MMP_MIN_CHECK_INTERVAL, EXT4_MMP_MAX_CHECK_INTERVAL);
    let waitSeconds = 0;
    const seen = mmp.seq;
    if (seen === EXT4_MMP_SEQ_FSCK) {
      throw this.busy(`e2fsck is running on this filesystem (MMP block ${block}: ${lastWriter(mmp)})`);
    } else if (seen !== EXT4_MMP_SEQ_CLEAN) {
      if (seen > EXT4_MMP_SEQ_MAX) throw corrupted('MMP block', `unknown sequence number ${describeMmpSeq(seen)}`, { block });
      // Someone may be running a heartbeat: watch the block for longer than its check interval.
      waitSeconds = Math.min(2 * interval + 1, interval + 60);
      wait(waitSeconds, 'check');
      mmp = this.read();
      if (mmp.seq !== seen) throw this.busy(`the filesystem is in use on another node: MMP block ${block} changed while we watched it (${lastWriter(mmp)})`);
    }
    let seq = randomInt(1, EXT4_MMP_SEQ_MAX + 1);
    while (seq === seen) seq = randomInt(1, EXT4_MMP_SEQ_MAX + 1);
    const checkInterval = clamp(EXT4_MMP_CHECK_MULT * this.updateInterval, EXT4_MMP_MIN_CHECK_INTERVAL, EXT4_MMP_MAX_CHECK_INTERVAL);
    this.write(seq, checkInterval);
    if (waitSeconds > 0) wait(waitSeconds, 'confirm');
    mmp = this.read();
    if (!this.isOurs(mmp)) throw this.busy(`the filesystem is in use on another node: it overwrote MMP block ${block} as we started (${lastWriter(mmp)})`);
    this.lastWrite = this.clock();
  }

  /**
   * The heartbeat: when s_mmp_update_interval seconds have passed since our last write
   * (`now` in ms of the `clock`), check that the block is still ours and write the next
   * seq. Returns true when it wrote. Throws EBUSY (once; then `lost` is set and the
   * heartbeat stops) when another node changed the block, the read error when it
   * cannot be read; a failed write is thrown and retried at the next tick.
   */
  tick(now: number = this.clock()): boolean {
    if (this.stopped || this.lostError !== undefined) return false;
    const elapsedMs = now - this.lastWrite;
    if (elapsedMs < this.updateInterval * 1000) return false;
    let mmp: Mmp;
    try {
      mmp = this.read();
    } catch (error) {
      this.lostError = error instanceof FsError ? error : new FsError('EIO', `${this.device.name}: reading MMP block ${this.block} failed: ${String(error)}`);
      throw this.lostError;
    }
    if (!this.isOurs(mmp)) {
      this.lostError = this.busy(
        `MMP block ${this.block} was rewritten by another node (seq ${describeMmpSeq(mmp.seq)}, ours ${describeMmpSeq(this.ourSeq)}; ${lastWriter(mmp)}): the filesystem seems to be open on two nodes at once`,
      );
      throw this.lostError;
    }
    const next = this.ourSeq >= EXT4_MMP_SEQ_MAX ? 1 : this.ourSeq + 1;
    const checkInterval = clamp(Math.ceil((EXT4_MMP_CHECK_MULT * elapsedMs) / 1000), EXT4_MMP_MIN_CHECK_INTERVAL, EXT4_MMP_MAX_CHECK_INTERVAL);
    this.write(next, checkInterval);
    this.lastWrite = now;
    return true;
  }

  /**
   * Release the filesystem: write seq CLEAN, durably. Throws EBUSY without writing
   * CLEAN when the block is no longer ours (or the heartbeat already found that);
   * either way the protection is then stopped. An I/O error is thrown and leaves it
   * running, so the call can be retried.
   */
  stop(): void {
    if (this.stopped) return;
    if (this.lostError !== undefined) {
      this.stopped = true;
      throw this.lostError;
    }
    const mmp = this.read();
    if (!this.isOurs(mmp)) {
      this.stopped = true;
      this.lostError = this.busy(`MMP block ${this.block} was rewritten by another node (${lastWriter(mmp)}); not marking it clean`);
      throw this.lostError;
    }
    this.write(EXT4_MMP_SEQ_CLEAN, mmp.checkInterval);
    this.stopped = true;
  }

  private isOurs(mmp: Mmp): boolean {
    return mmp.seq === this.ourSeq && mmp.nodename === this.truncatedNodename();
  }

  /** Our node name as it reads back from the 64-byte field. */
  private truncatedNodename(): string {
    const bytes = new TextEncoder().encode(this.nodename);
    return bytes.length <= MMP_NODENAME_SIZE ? this.nodename : new TextDecoder('utf-8', { fatal: false }).decode(bytes.subarray(0, MMP_NODENAME_SIZE));
  }

  private busy(message: string): FsError {
    return new FsError('EBUSY', `${this.device.name}: ${message}`, { device: this.device.name, structure: 'MMP block', block: this.block });
  }

  private read(): Mmp {
    const raw = this.device.read(this.block, 1);
    const mmp = decodeMmp(raw, this.sb, { block: this.block, verifyChecksum: this.verifyChecksum });
    this.raw = raw;
    return mmp;
  }

  private write(seq: number, checkInterval: number): void {
    const raw = this.raw.slice();
    encodeMmp({ seq, time: Math.floor(Date.now() / 1000), nodename: this.nodename, bdevname: this.bdevname, checkInterval }, this.sb, raw);
    this.device.write(this.block, 1, raw);
    this.device.flush();
    this.raw = raw;
    if (seq !== EXT4_MMP_SEQ_CLEAN) this.ourSeq = seq;
  }
}
