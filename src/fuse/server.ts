/**
 * The serving process's main thread: opens /dev/fuse, starts the worker (which opens
 * the image), mounts, then handles signals, housekeeping wakeups and unmount, while
 * the worker serves requests.
 *
 * - The image is opened (and checked) before anything is mounted, so a bad image
 *   fails the mount with its own error. The worker decides read-write or read-only
 *   (see worker.ts) and the kernel mount follows (`ro` when the image is served read-only).
 * - Unmounting (umount, SIGTERM, the last user of a lazily detached mount leaving) ends
 *   the worker's loop; it then writes everything back and marks the filesystem clean. A
 *   failure there is logged and makes this process exit 1.
 * - A watchdog process lazily unmounts the mount point if this process dies without
 *   unmounting (so a crash leaves no dead "Transport endpoint is not connected" mount).
 * - SIGINT/SIGTERM/SIGHUP unmount (lazily if busy); the worker then sees ENODEV, closes
 *   the image and exits, and so does this process.
 * - Every 2 s the main thread sets the wakeup flag and pokes the mount with an
 *   asynchronous statfs(2), which wakes the worker from its blocking read so that
 *   it runs housekeeping (periodic flush, memory-pressure shrink).
 */
import { Worker } from 'node:worker_threads';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as v8 from 'node:v8';
import { FsError, type Errno } from '../errors.js';
import { WakeupFlag } from '../cache/housekeeper.js';
import { isRoot, mountFuse, mountFuseUnprivileged, raiseReadahead, unmount } from './kernel-mount.js';
import type { MountOptions } from './options.js';
import type { WorkerData, WorkerMessage } from './worker.js';

export interface ServeHooks {
  /** Called once the mount is live. */
  readonly onReady?: () => void;
  /** A warning for the user before the mount is live (e.g. served read-only). */
  readonly onWarning?: (line: string) => void;
  /** Diagnostics (bugs caught in the worker, unmount trouble). */
  readonly log?: (line: string) => void;
}

/** Where the pid of the server of a mount point (an absolute, resolved path) is recorded. */
export function pidFileFor(realMountpoint: string): string {
  const uid = process.getuid?.() ?? 0;
  const dir = uid === 0 && fs.existsSync('/run') ? '/run/ext4ts' : join(process.env.XDG_RUNTIME_DIR ?? tmpdir(), `ext4ts-${uid}`);
  return join(dir, `${encodeURIComponent(realMountpoint)}.pid`);
}

/**
 * The server thread's V8 heap, sized for a daemon whose memory should be its cache
 * budget plus a small constant. Measured on the mount benchmark's image (53,800 entries):
 * the worker's live heap is ~20-30 MiB, yet with V8's defaults its resident set peaked
 * near 230 MiB, all heap slack:
 * - the young generation: 2 x 16 MiB semi-spaces, committed once busy. A scavenge costs
 *   what survives it, and requests leave about the same survivors whatever the size
 *   (the caches' new entries), so 2 MiB semi-spaces cost more, cheaper scavenges for
 *   about the same total time, and save ~28 MiB;
 * - old-space growth: after each full GC V8 lets the old generation grow to up to 4x the
 *   live heap before the next one (its factor for large machines); the decoded inodes and
 *   blocks that pass through the caches reached ~90 MiB of old space before being
 *   collected. 25% growth bounds that to the live heap plus V8's minimum step
 *   (--heap-growing-percent; process-wide, so it also applies to the main thread, which
 *   allocates next to nothing).
 * GC time of the server over find + read every file + 512 MiB sequential + random reads
 * (--trace-gc): 413 ms with V8's defaults, 519 ms with these, of ~5 s of server CPU.
 */
const YOUNG_GENERATION_MB = 6;
const HEAP_GROWING_PERCENT = 25;

function startWorker(data: WorkerData): Worker {
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  const resourceLimits = { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB };
  // Relative to this module's directory as `../fuse/`, not `./`: the same from fuse/
  // (this file) and from cli/ (the bundled CLI, scripts/bundle.ts, holds this code).
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    // Running from source under tsx: workers do not inherit its loader; register it first.
    const script = new URL('../fuse/worker.ts', here).href;
    const tsx = import.meta.resolve('tsx/esm/api');
    return new Worker(`import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(script)}); })`, { eval: true, workerData: data, resourceLimits });
  }
  // The build's one-file worker (scripts/bundle.ts) when there is one: Node 20 loads the
  // ~50 modules of worker.js one by one, which took a third of a mount's start.
  const bundled = new URL('../fuse/worker.bundle.js', here);
  return new Worker(fs.existsSync(bundled) ? bundled : new URL('../fuse/worker.js', here), { workerData: data, resourceLimits });
}

/** How long the mount waits for the kernel's INIT before going on without it. */
const INIT_WAIT_MS = 10_000;

/** Resolves when the worker has answered INIT, has exited, or after `ms`. */
function initialized(worker: Worker, exited: Promise<number>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function onMessage(m: WorkerMessage): void {
      if (m.type === 'initialized') done();
    }
    function done(): void {
      clearTimeout(timer);
      worker.off('message', onMessage);
      resolve();
    }
    worker.on('message', onMessage);
    void exited.then(done);
  });
}

/** Mount `image` on `mountpoint` and serve it until unmounted. Resolves when the server is done. */
export async function serve(image: string, mountpoint: string, options: MountOptions, hooks: ServeHooks = {}): Promise<void> {
  const log = hooks.log ?? ((line: string) => process.stderr.write(`ext4ts: ${line}\n`));
  let st: fs.Stats;
  try {
    st = fs.statSync(mountpoint);
  } catch {
    throw new FsError('ENOENT', 'mount point does not exist', { path: mountpoint });
  }
  if (!st.isDirectory()) throw new FsError('ENOTDIR', 'mount point is not a directory', { path: mountpoint });
  // Resolve everything about the mount point now: once mounted, a synchronous access
  // to it from this thread before the worker serves would deadlock.
  const realMount = fs.realpathSync(mountpoint);
  const pidFile = pidFileFor(realMount);

  const root = isRoot();
  let fd = -1;
  if (root) {
    try {
      fd = fs.openSync('/dev/fuse', 'r+');
    } catch (error) {
      throw new FsError('EACCES', `cannot open /dev/fuse: ${(error as Error).message}`, { path: mountpoint });
    }
  }
  const flag = new WakeupFlag();
  const owner = options.fakeroot ? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 } : undefined;
  const worker = startWorker({ image, options, flag: flag.buffer, owner });
  let workerDone = false;
  const exited = new Promise<number>((resolve) => worker.once('exit', (code) => resolve(code)));
  void exited.then(() => (workerDone = true));
  let readOnly = true;

  try {
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: WorkerMessage) => {
        if (m.type === 'opened') {
          readOnly = !m.writable;
          if (m.warning !== undefined) (hooks.onWarning ?? ((line: string) => log(`warning: ${line}`)))(m.warning);
          resolve();
        } else if (m.type === 'error') reject(new FsError(m.code as Errno, m.message, { path: image }));
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
      void exited.then((code) => reject(new FsError('EIO', `the server thread exited (${code}) before the mount`, { path: image })));
    });
    const kernelOptions = { ...options, readOnly };
    if (root) mountFuse(fd, image, realMount, kernelOptions);
    else fd = mountFuseUnprivileged(image, realMount, kernelOptions);
    worker.postMessage({ fd });
  } catch (error) {
    await worker.terminate();
    if (fd >= 0) fs.closeSync(fd);
    throw error;
  }

  let writeBackFailed = false;
  worker.on('message', (m: WorkerMessage) => {
    if (m.type === 'bug') log(`internal error (request answered EIO): ${m.message}`);
    else if (m.type === 'writeback-error') {
      log(`write-back failed: ${m.message}`);
      if (m.message.startsWith('unmount:')) writeBackFailed = true;
    }
  });
  worker.on('error', (e) => log(`server thread failed: ${e.message}`));
  // Raise the readahead only once the INIT reply is in: the kernel sets the mount's
  // readahead to min(itself, max_readahead) when it gets that reply, and max_readahead
  // cannot pass its offer (128 KiB). Raised earlier, it was lost (the race was always
  // lost: 128 KiB READs, 4,096 of them for a 512 MiB file instead of 512).
  await initialized(worker, exited, INIT_WAIT_MS);
  raiseReadahead(realMount, Math.max(128, options.maxRead / 1024));

  // A watchdog that detaches the mount if this process dies without unmounting.
  const detach = root ? 'umount -l -- "$0"' : 'fusermount3 -u -z -- "$0"';
  const watchdog = spawn('sh', ['-c', `while read -r _; do :; done; ${detach} 2>/dev/null`, realMount], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  });
  watchdog.unref();

  try {
    fs.mkdirSync(join(pidFile, '..'), { recursive: true });
    fs.writeFileSync(pidFile, `${process.pid}\n`);
  } catch {
    // umount by pid is a convenience; the mount works without it
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping || workerDone) return;
    stopping = true;
    const err = unmount(realMount);
    if (err !== undefined) {
      log(`${signal}: ${mountpoint} is busy (${err}); detaching it lazily`);
      unmount(realMount, true);
    }
  };
  const handlers: [NodeJS.Signals, () => void][] = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, () => stop(s)]);
  for (const [s, h] of handlers) process.on(s, h);
  const timer = setInterval(() => {
    flag.request();
    fs.promises.statfs(realMount).catch(() => undefined);
  }, 2000);
  timer.unref();

  hooks.onReady?.();
  await exited;
  // The unmount could not write everything back: the image is not clean; say so by the exit status.
  if (writeBackFailed) process.exitCode = 1;
  clearInterval(timer);
  for (const [s, h] of handlers) process.off(s, h);
  watchdog.stdin?.end();
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
  try {
    if (fs.readFileSync(pidFile, 'utf8').trim() === String(process.pid)) fs.unlinkSync(pidFile);
  } catch {
    // no pid file
  }
}
