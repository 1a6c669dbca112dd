/**
 * The FUSE worker: owns the filesystem and serves /dev/fuse requests one at a time
 * with blocking reads (see ../shared/DESIGN.md, "The core is synchronous"). Between
 * requests it does housekeeping when the main thread's wakeup flag asks for it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as fs from 'node:fs';
import { Ext4 } from '../fs/ext4.js';
import { isFsError } from '../errors.js';
import { Housekeeper, WakeupFlag } from '../cache/housekeeper.js';
import { PressureMonitor, systemPressureSources } from '../cache/pressure.js';
import { FuseSession } from './session.js';
import type { MountOptions } from './options.js';

export interface WorkerData {
  readonly image: string;
  readonly options: MountOptions;
  readonly flag: SharedArrayBuffer;
  readonly owner: { readonly uid: number; readonly gid: number } | undefined;
}

export type WorkerMessage =
  | { readonly type: 'opened' }
  | { readonly type: 'error'; readonly code: string; readonly message: string }
  | { readonly type: 'bug'; readonly message: string }
  | { readonly type: 'done'; readonly requests: number };

const data = workerData as WorkerData;
const port = parentPort;
if (port === null) throw new Error('worker.ts must run as a worker thread');

function post(message: WorkerMessage): void {
  port?.postMessage(message);
}

let ext4: Ext4;
try {
  ext4 = Ext4.openFile(data.image, {
    offset: data.options.offset,
    checksums: !data.options.noChecksums,
    ...(data.options.cacheSize === undefined ? {} : { cacheSize: data.options.cacheSize }),
  });
  post({ type: 'opened' });
} catch (error) {
  post({ type: 'error', code: isFsError(error) ? error.code : 'EIO', message: error instanceof Error ? error.message : String(error) });
  process.exit(1);
}

/** The main thread sends the /dev/fuse descriptor once the mount is live. */
port.once('message', (m: { fd: number }) => serve(m.fd));

function serve(fd: number): void {
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
    },
  );
  const flag = new WakeupFlag(data.flag);
  const housekeeper = new Housekeeper(ext4.channel, { pressure: new PressureMonitor(ext4.channel, systemPressureSources()) });
  const buffer = Buffer.alloc(options.maxRead + 4096);
  let requests = 0;
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(fd, buffer, 0, buffer.length, null);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === 'ENODEV') break; // unmounted
      if (code === 'EINTR' || code === 'EAGAIN' || code === 'ENOENT') continue;
      throw error;
    }
    requests++;
    session.handle(buffer.subarray(0, n));
    if (flag.take()) housekeeper.run();
  }
  try {
    ext4.close();
  } catch {
    // read-only: nothing pending
  }
  post({ type: 'done', requests });
}
