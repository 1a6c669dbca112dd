/**
 * Read-write mounts for the write benchmark (bench/write.ts): the three filesystems of
 * bench/lib/mount-tools.ts (whose helpers are reused here), mounted read-write on a
 * fresh image, each server pinned to the benchmark's CPU:
 *
 *   kernel   `mount -o loop IMG MNT`; `umount MNT` (the loop device is detached and
 *            flushed into the image file by the unmount: ext4 flushes the device, and
 *            the loop driver fsyncs its backing file on a flush);
 *   fuse2fs  `taskset -c N fuse2fs IMG MNT -o rw -f` in the background (detached);
 *            `umount MNT`, then wait for fuse2fs to write back, close the image and exit;
 *   ext4ts   `taskset -c N node CLI mount -o rw[,...] IMG MNT` (returns once live);
 *            `node CLI umount --timeout S MNT`, which returns after its server has exited.
 *
 * While the unmount runs, the server's /proc entry is polled so that its peak resident
 * set (VmHWM) and CPU time are known up to its exit. Only processes started here are
 * ever signalled.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { processCpu } from './proc.js';
import { alive, findExt4tsServer, forceUnmount, stopAll, memoryOf, mountedType, type Mounted, type ToolEnv, type ToolName } from './mount-tools.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Server processes started by this module and not yet seen exiting. */
const started = new Set<number>();



function pinned(argv: readonly string[], cpu: number | undefined): string[] {
  return cpu === undefined ? [...argv] : ['taskset', '-c', String(cpu), ...argv];
}



function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch {
    return '';
  }
}

/** Mount `image` read-write on `mountpoint` (absolute, resolved, not mounted) with `tool`. */
export async function mountRw(tool: ToolName, image: string, mountpoint: string, env: ToolEnv): Promise<Mounted> {
  if (mountedType(mountpoint) !== undefined) throw new Error(`${mountpoint} is already mounted`);
  const t0 = performance.now();
  const done = (pid: number | undefined): Mounted => {
    const mem = memoryOf(pid);
    return { tool, mountpoint, pid, mountSeconds: (performance.now() - t0) / 1000, affinity: undefined, rssAtMountKiB: mem?.rssKiB, fileAtMountKiB: mem?.fileKiB };
  };
  if (tool === 'kernel') {
    const r = spawnSync('mount', ['-o', 'loop', image, mountpoint], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mount -o loop failed: ${(r.stderr || r.error?.message || '').trim()}`);
    return done(undefined);
  }
  const log = fs.openSync(env.logFile, 'a');
  try {
    if (tool === 'fuse2fs') {
      const argv = pinned(['fuse2fs', image, mountpoint, '-o', 'rw', '-f'], env.cpu);
      const child = spawn(argv[0] as string, argv.slice(1), { detached: true, stdio: ['ignore', log, log] });
      const pid = child.pid;
      if (pid === undefined) throw new Error('cannot start fuse2fs');
      started.add(pid);
      child.unref();
      const limit = Date.now() + 15_000;
      while (!(mountedType(mountpoint) ?? '').startsWith('fuse')) {
        if (!alive(pid) || Date.now() > limit) {
          if (alive(pid)) process.kill(pid, 'SIGTERM');
          throw new Error(`fuse2fs did not mount within 15 s: ${tail(env.logFile)}`);
        }
        await sleep(10);
      }
      return done(pid);
    }
    const opts = ['-o', env.ext4tsOptions === '' ? 'rw' : `rw,${env.ext4tsOptions}`];
    const argv = pinned([process.execPath, env.cli, 'mount', ...opts, image, mountpoint], env.cpu);
    const r = spawnSync(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', log], timeout: 120_000 });
    if (r.status !== 0) throw new Error(`ext4ts mount failed (exit ${r.status ?? r.signal}): ${tail(env.logFile)}`);
    const pid = findExt4tsServer(env.cli, mountpoint);
    if (pid !== undefined) started.add(pid);
    if (!(mountedType(mountpoint) ?? '').startsWith('fuse')) throw new Error('ext4ts mount returned, but nothing is mounted');
    return done(pid);
  } finally {
    fs.closeSync(log);
  }
}

/**
 * Serve `image` read-write on `mountpoint` in a foreground ext4ts server under
 * `node --cpu-prof` (profiles of the main thread and the FUSE worker go to `profDir`
 * when it exits), pinned like the measured runs. Unmount it with `unmountRw(m, env, s, true)`.
 */
export async function mountProfiledExt4ts(image: string, mountpoint: string, env: ToolEnv, profDir: string): Promise<Mounted> {
  if (mountedType(mountpoint) !== undefined) throw new Error(`${mountpoint} is already mounted`);
  const t0 = performance.now();
  const opts = ['-o', env.ext4tsOptions === '' ? 'rw' : `rw,${env.ext4tsOptions}`];
  const argv = pinned([process.execPath, '--cpu-prof', '--cpu-prof-dir', profDir, env.cli, 'mount', '-f', ...opts, image, mountpoint], env.cpu);
  const log = fs.openSync(env.logFile, 'a');
  const child = spawn(argv[0] as string, argv.slice(1), { detached: true, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new Error('cannot start the profiled ext4ts server');
  started.add(pid);
  child.unref();
  const limit = Date.now() + 30_000;
  while (!(mountedType(mountpoint) ?? '').startsWith('fuse')) {
    if (!alive(pid) || Date.now() > limit) {
      if (alive(pid)) process.kill(pid, 'SIGTERM');
      throw new Error(`the profiled ext4ts server did not mount: ${tail(env.logFile)}`);
    }
    await sleep(10);
  }
  const mem = memoryOf(pid);
  return { tool: 'ext4ts', mountpoint, pid, mountSeconds: (performance.now() - t0) / 1000, affinity: undefined, rssAtMountKiB: mem?.rssKiB, fileAtMountKiB: mem?.fileKiB };
}

export interface Unmounted {
  /** Seconds from starting the unmount until it returned and the server had exited. */
  readonly seconds: number;
  /** The server's peak resident set (VmHWM, last seen before it exited), KiB. */
  readonly peakKiB: number | undefined;
  /** That less its pages of files then (RssFile: the program and libraries, shared with other processes), KiB. */
  readonly peakOwnKiB: number | undefined;
  /** The server's CPU time (utime + stime, last seen before it exited), seconds. */
  readonly serverCpu: number | undefined;
  readonly problem: string | undefined;
}

/**
 * Unmount `m` and wait (up to `timeoutSeconds`) for its server to exit, polling the
 * server's memory and CPU time meanwhile. A server still running after that is sent SIGTERM.
 */
export async function unmountRw(m: Mounted, env: ToolEnv, timeoutSeconds: number, plainUmount = false): Promise<Unmounted> {
  const t0 = performance.now();
  let peakKiB: number | undefined;
  let peakOwnKiB: number | undefined;
  let serverCpu = processCpu(m.pid);
  const poll = (): void => {
    const mem = memoryOf(m.pid);
    if (mem !== undefined) {
      peakKiB = mem.hwmKiB;
      peakOwnKiB = mem.hwmKiB - mem.fileKiB;
    }
    serverCpu = processCpu(m.pid) ?? serverCpu;
  };
  poll();
  const argv = m.tool === 'ext4ts' && !plainUmount ? [process.execPath, env.cli, 'umount', '--timeout', String(timeoutSeconds), m.mountpoint] : ['umount', m.mountpoint];
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => (stderr += s));
  let status: number | null | undefined;
  let spawnError: string | undefined;
  child.on('error', (e) => (spawnError = e.message));
  child.on('close', (code) => (status = code));
  const limit = Date.now() + timeoutSeconds * 1000;
  while (status === undefined && spawnError === undefined && Date.now() < limit) {
    poll();
    await sleep(5);
  }
  let problem: string | undefined;
  if (spawnError !== undefined) problem = `${argv[0] === 'umount' ? 'umount' : 'ext4ts umount'}: ${spawnError}`;
  else if (status === undefined) {
    child.kill('SIGKILL');
    problem = `the unmount did not return within ${timeoutSeconds} s`;
  } else if (status !== 0) problem = `${m.tool === 'ext4ts' ? 'ext4ts umount' : 'umount'} failed (exit ${status}): ${stderr.trim()}`;
  if (m.pid !== undefined) {
    while (alive(m.pid) && Date.now() < limit) {
      poll();
      await sleep(5);
    }
    if (alive(m.pid)) {
      problem = `${problem === undefined ? '' : `${problem}; `}the ${m.tool} server (pid ${m.pid}) did not exit within ${timeoutSeconds} s of the unmount; sent SIGTERM`;
      process.kill(m.pid, 'SIGTERM');
    } else started.delete(m.pid);
  }
  const seconds = (performance.now() - t0) / 1000;
  if (mountedType(m.mountpoint) !== undefined) {
    spawnSync('umount', ['-l', m.mountpoint], { stdio: 'ignore' });
    problem ??= 'still mounted after the unmount; detached it lazily';
  }
  return { seconds, peakKiB, peakOwnKiB, serverCpu, problem };
}

/**
 * Last resort (errors, interrupts): unmount whatever is mounted on each of `mountpoints`
 * (lazily if busy) and stop the servers this module started that still run.
 */
export function cleanupRw(mountpoints: readonly string[]): void {
  for (const mountpoint of mountpoints) forceUnmount(mountpoint);
  stopAll(started);
}
