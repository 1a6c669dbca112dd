/** `ext4ts mount` and `ext4ts umount`. */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { resolve } from 'node:path';
import { FsError } from '../errors.js';
import { parseMountOptions } from '../fuse/options.js';
import { pidFileFor, serve } from '../fuse/server.js';
import { findMount, unmount } from '../fuse/kernel-mount.js';
import { Failure } from './errors.js';

export interface MountCliOptions {
  readonly options?: string[];
  readonly foreground?: boolean;
  /** Internal: the fd on which a background server reports readiness. */
  readonly readyFd?: string;
}

/**
 * Mount IMAGE on MOUNTPOINT: read-write unless `-o ro` (a filesystem ext4ts cannot
 * write is served read-only, with a warning). In the foreground (-f) this process serves until the
 * mount goes away. Otherwise a detached copy of this command serves (`-f`), and
 * this one returns once the mount is live (or prints the server's error).
 */
export async function mount(image: string, mountpoint: string, cli: MountCliOptions): Promise<void> {
  const lists = cli.options ?? [];
  const options = parseMountOptions(lists);
  if (cli.foreground === true) {
    const readyFd = cli.readyFd === undefined ? undefined : Number(cli.readyFd);
    try {
      await serve(image, mountpoint, options, {
        ...(readyFd === undefined ? {} : { onWarning: (line: string) => fs.writeSync(readyFd, `warning ${line.replace(/\n/g, ' ')}\n`) }),
        onReady: () => {
          if (readyFd !== undefined) {
            fs.writeSync(readyFd, 'ready\n');
            fs.closeSync(readyFd);
          }
        },
      });
    } catch (error) {
      if (readyFd !== undefined) {
        const message = error instanceof Error ? error.message : String(error);
        const code = error instanceof FsError ? error.code : 'EIO';
        const what = error instanceof FsError && error.context.path === image ? image : mountpoint;
        fs.writeSync(readyFd, `error ${code} ${encodeURIComponent(what)} ${message.replace(/\n/g, ' ')}\n`);
        fs.closeSync(readyFd);
        process.exitCode = 1;
        return;
      }
      throw new Failure(error instanceof FsError && error.context.path === image ? image : mountpoint, error);
    }
    return;
  }
  // Background: run the same command in the foreground, detached, and wait for its word.
  const script = process.argv[1] ?? '';
  const args = [...process.execArgv, script, 'mount', image, mountpoint, '-f', '--ready-fd', '3', ...lists.flatMap((o) => ['-o', o])];
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', 'ignore', options.debug ? 'inherit' : 'ignore', 'pipe'],
    env: serverEnv(process.env),
  });
  const pipe = child.stdio[3];
  if (pipe === null || pipe === undefined || !('on' in pipe)) throw new Failure(mountpoint, new FsError('EIO', 'cannot talk to the server process'));
  const word = await new Promise<string>((resolve) => {
    let text = '';
    pipe.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      // Warnings come first, one per line; then "ready" or "error ...".
      if (/^(ready|error)\b.*\n/m.test(text)) resolve(text);
    });
    pipe.on('end', () => resolve(text));
    child.once('exit', () => resolve(text));
  });
  child.unref();
  pipe.destroy();
  for (const line of word.split('\n')) if (line.startsWith('warning ')) process.stderr.write(`ext4ts: warning: ${line.slice(8)}\n`);
  if (/^ready\b/m.test(word)) return;
  // The server's word: "error CODE WHAT MESSAGE" (WHAT: the image or the mount point).
  const m = /^error (\S+) (\S+) (.*)$/m.exec(word);
  const code = (m?.[1] ?? 'EIO') as FsError['code'];
  const what = m?.[2] === undefined ? mountpoint : decodeURIComponent(m[2]);
  throw new Failure(what, new FsError(code, m?.[3] ?? 'the server exited before the mount was live'));
}

/**
 * The environment of a background server: glibc's malloc limited to one arena (unless
 * the user chose otherwise). By default each thread that allocates gets an arena of its
 * own: the worker's (which holds the block cache's buffers) and one per V8 platform
 * thread (GC helpers), each keeping its freed memory. Measured with a 32 MiB cache
 * budget (malloc_stats): 51.7 MB in arenas for 43.1 MB in use after the small-files
 * workload, five helper arenas of ~0.9 MB holding ~30 KB each. With one arena the peak
 * RSS of `cp -a` of the 53,800-entry tree was 126 MiB against 128-130 MiB, and of
 * creating and removing 20,000 small files 123 against 124-125 MiB. The worker serves
 * one request at a time, so a shared arena costs no lock contention worth measuring.
 */
export function serverEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return env.MALLOC_ARENA_MAX === undefined ? { ...env, MALLOC_ARENA_MAX: '1' } : env;
}

/** How long `ext4ts umount` retries a busy mount point before reporting EBUSY. */
const BUSY_RETRY_MS = 1000;

/** Unmount and wait for the server to flush, close the image and exit. */
export async function umount(mountpoint: string, options: { lazy?: boolean; timeout?: string }): Promise<void> {
  // This process serves no mount, so resolving the path through it is safe.
  const real = fs.existsSync(mountpoint) ? fs.realpathSync(mountpoint) : resolve(mountpoint);
  const mounted = findMount(real);
  if (mounted === undefined) throw new Failure(mountpoint, new FsError('EINVAL', 'not mounted'));
  if (mounted.fsType !== 'fuse.ext4ts') throw new Failure(mountpoint, new FsError('EINVAL', `not an ext4ts mount (${mounted.fsType})`));
  const pidFile = pidFileFor(real);
  let pid: number | undefined;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  } catch {
    pid = undefined;
  }
  // Busy can be momentary: a program that has just exited may still be closing its
  // files on the mount. Try again for up to BUSY_RETRY_MS before saying so.
  const busyUntil = Date.now() + BUSY_RETRY_MS;
  for (;;) {
    const err = unmount(real, options.lazy === true);
    if (err === undefined) break;
    const busy = /busy/i.test(err);
    if (busy && Date.now() < busyUntil) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    throw new Failure(mountpoint, new FsError(busy ? 'EBUSY' : 'EIO', busy ? 'target is busy (files are open on it; try --lazy)' : err));
  }
  if (pid === undefined || !Number.isInteger(pid) || pid <= 0) return;
  const limit = Date.now() + 1000 * Number(options.timeout ?? 60);
  // Checked every 5 ms: a server exits within ~25 ms of the unmount after a small job,
  // and a coarser poll added its own wait to every `ext4ts umount`.
  while (alive(pid)) {
    if (Date.now() > limit) throw new Failure(mountpoint, new FsError('EBUSY', `unmounted, but the server (pid ${pid}) has not exited yet`));
    await new Promise((r) => setTimeout(r, 5));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (exited, not yet reaped by its parent) has finished its work.
  try {
    return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}
