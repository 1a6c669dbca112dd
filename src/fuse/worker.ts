/**
 * The FUSE worker: owns the filesystem and serves /dev/fuse requests one at a time
 * with blocking reads (see ../shared/DESIGN.md, "The core is synchronous"), which look
 * for the next request for `spin=` microseconds before they sleep (the addon's
 * readSpin; waking a sleeping thread from another CPU costs more than most requests,
 * on a virtual machine most of all). Between
 * requests it does housekeeping when the main thread's wakeup flag asks for it, and
 * then lets its event loop turn once (for V8's memory reducer).
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as fs from 'node:fs';
import { Ext4 } from '../fs/ext4.js';
import { isFsError } from '../errors.js';
import { spinningReader } from '../io/native.js';
import { Housekeeper, WakeupFlag } from '../cache/housekeeper.js';
import { PressureMonitor, systemPressureSources } from '../cache/pressure.js';
import { FuseSession } from './session.js';
import { IN_HEADER, Opcode, StructSize } from './abi.js';
import type { MountOptions } from './options.js';

export interface WorkerData {
  readonly image: string;
  readonly options: MountOptions;
  readonly flag: SharedArrayBuffer;
  readonly owner: { readonly uid: number; readonly gid: number } | undefined;
}

export type WorkerMessage =
  /** The image is open; `warning` says why a read-write mount became read-only. */
  | { readonly type: 'opened'; readonly writable: boolean; readonly warning?: string }
  /** The INIT reply has been written: the kernel has set up the connection (see server.ts). */
  | { readonly type: 'initialized' }
  /** A write-back no request waited for failed (periodic flush, unmount). */
  | { readonly type: 'writeback-error'; readonly message: string }
  | { readonly type: 'error'; readonly code: string; readonly message: string }
  | { readonly type: 'bug'; readonly message: string }
  | { readonly type: 'done'; readonly requests: number };

const data = workerData as WorkerData;
const port = parentPort;
if (port === null) throw new Error('worker.ts must run as a worker thread');

function post(message: WorkerMessage): void {
  port?.postMessage(message);
}

/**
 * Decoded inodes the server keeps. The kernel caches attributes and entries itself, so
 * the server's inode cache mostly serves the files being read; the library's default
 * (8,192) held ~6.5 MiB of decoded inodes that reading every file of a 53,800-entry tree
 * cycled through, all promoted to old space before being dropped. Measured over the
 * mount benchmark's read-every-file pass: peak RSS 117 -> 110 MiB, no slower.
 */
const SERVER_INODE_CACHE = 1024;

function open(write: boolean): Ext4 {
  return Ext4.openFile(data.image, {
    offset: data.options.offset,
    checksums: !data.options.noChecksums,
    journal: !data.options.noLoad,
    write,
    inodeCacheSize: SERVER_INODE_CACHE,
    ...(data.options.cacheSize === undefined ? {} : { cacheSize: data.options.cacheSize }),
  });
}

/**
 * Read-write unless `ro` was asked for. A filesystem that cannot be written (EROFS: a
 * feature ext4ts cannot keep consistent, errors recorded, a read-only device) or an
 * image we may not write (EACCES, EPERM) is served read-only, with a warning. Without an
 * explicit `rw`, an image another program has open (EBUSY: its lock) is served
 * read-only too if that program only reads it.
 */
let ext4: Ext4;
try {
  if (data.options.readOnly === true) {
    ext4 = open(false);
    post({ type: 'opened', writable: false });
  } else {
    try {
      ext4 = open(true);
      post({ type: 'opened', writable: true });
    } catch (error) {
      const fallback = isFsError(error) && (error.code === 'EROFS' || error.code === 'EACCES' || error.code === 'EPERM' || (error.code === 'EBUSY' && data.options.readOnly === undefined));
      if (!fallback) throw error;
      ext4 = open(false);
      post({ type: 'opened', writable: false, warning: `${error.message}; mounting read-only` });
    }
  }
} catch (error) {
  post({ type: 'error', code: isFsError(error) ? error.code : 'EIO', message: error instanceof Error ? error.message : String(error) });
  process.exit(1);
}

/** The main thread sends the /dev/fuse descriptor once the mount is live. */
port.once('message', (m: { fd: number }) => void serve(m.fd));

async function serve(fd: number): Promise<void> {
  const { options } = data;
  const trace = options.debug ? (line: string) => process.stderr.write(`ext4ts: ${line}\n`) : undefined;
  const session = new FuseSession(
    ext4,
    (buffers) => {
      try {
        fs.writevSync(fd, buffers);
      } catch (error) {
        // ENOENT: the request was interrupted and is gone; nothing to do.
        if ((error as { code?: unknown }).code !== 'ENOENT') throw error;
      }
    },
    {
      attrTimeout: options.attrTimeout,
      entryTimeout: options.entryTimeout,
      maxRead: options.maxRead,
      ...(data.owner === undefined ? {} : { owner: data.owner }),
      ...(trace === undefined ? {} : { trace }),
      onBug: (error, request) => post({ type: 'bug', message: `${request}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}` }),
      onWriteBackError: (error, when) => post({ type: 'writeback-error', message: `${when}: ${error instanceof Error ? error.message : String(error)}` }),
      atime: options.atime,
      lazytime: options.lazytime,
      flushInterval: options.flushInterval,
      writebackCache: options.writebackCache,
    },
  );
  const flag = new WakeupFlag(data.flag);
  const housekeeper = new Housekeeper(ext4.channel, { pressure: new PressureMonitor(ext4.channel, systemPressureSources()) });
  // Multi-mount protection (mmp filesystems open read-write): rewrite the MMP block once
  // per update interval; if another node took the filesystem over, say so (once; the
  // filesystem then refuses writes).
  const heartbeat = (): void => {
    try {
      ext4.mmpHeartbeat();
    } catch (error) {
      post({ type: 'writeback-error', message: `MMP heartbeat: ${error instanceof Error ? error.message : String(error)}` });
    }
  };
  const buffer = Buffer.alloc(options.maxRead + 4096);
  // Look for the next request a while before sleeping (options.spinMicros); without
  // the addon's readSpin, plain blocking reads.
  const spinRead = options.spinMicros > 0 ? spinningReader(fd, options.spinMicros) : undefined;
  let requests = 0;
  let initialized = false;
  for (;;) {
    let n: number;
    try {
      n = spinRead !== undefined ? spinRead(buffer) : fs.readSync(fd, buffer, 0, buffer.length, null);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === 'ENODEV') break; // unmounted
      if (code === 'EINTR' || code === 'EAGAIN' || code === 'ENOENT') continue;
      throw error;
    }
    requests++;
    const init = !initialized && n >= StructSize.IN_HEADER && buffer.readUInt32LE(IN_HEADER.opcode) === Opcode.INIT;
    session.handle(buffer.subarray(0, n));
    if (init) {
      // The kernel applied our INIT reply while we wrote it (process_init_reply runs in
      // that write), capping the mount's readahead at max_readahead: only from now on
      // may the main thread raise it.
      initialized = true;
      post({ type: 'initialized' });
    }
    if (flag.take()) {
      heartbeat();
      session.housekeeping();
      housekeeper.run();
      // Let the event loop turn once per housekeeping tick: V8's memory reducer (the GC
      // that gives an idle heap back) runs as a task on it, and the loop never turns
      // while this thread is blocked reading /dev/fuse. Measured after walk + read every
      // file of the bench tree, then idle: RSS stayed at 106.7 MiB; with the turn it
      // drops to 94.1 MiB within ~15 s (worker heap 22.0 -> 11.5 MiB).
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
  // Unmounted: write everything back and mark the filesystem clean. If that fails, try
  // once more, then report it (the main thread exits non-zero) instead of hiding it.
  let closeError: string | undefined;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      session.shutdown();
      closeError = undefined;
      break;
    } catch (error) {
      closeError = error instanceof Error ? error.message : String(error);
    }
  }
  if (closeError !== undefined) post({ type: 'writeback-error', message: `unmount: ${closeError}` });
  post({ type: 'done', requests });
}
