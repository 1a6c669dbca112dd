/**
 * Mounting and unmounting the three filesystems the mount benchmark compares
 * (bench/mount.ts), all read-only, each server pinned to the benchmark's CPU:
 *
 *   kernel   `mount -o loop,ro IMG MNT` (the in-kernel ext4 driver on a loop device);
 *   fuse2fs  `taskset -c N fuse2fs IMG MNT -o ro -f`, started here in the background
 *            (detached, so a Ctrl-C of the benchmark does not kill it under its mount);
 *            live once its mount shows up in /proc/self/mountinfo;
 *   ext4ts   `taskset -c N node CLI mount IMG MNT [-o ...]`, which returns once the
 *            mount is live; its detached server inherits the affinity. `ext4ts umount`
 *            waits for the server to exit.
 *
 * Every server process started here is remembered, and only those are ever signalled.
 * Also: compiling the ext4ts CLI into .bench/ (so that a concurrent `npm run build`
 * cannot change it under a run) and reading a server's memory from /proc.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export type ToolName = 'kernel' | 'fuse2fs' | 'ext4ts';
export const TOOLS: readonly ToolName[] = ['kernel', 'fuse2fs', 'ext4ts'];

export interface ToolEnv {
  /** CPU the servers (and the clients) are pinned to; undefined = no pinning. */
  readonly cpu: number | undefined;
  /** The ext4ts CLI (the bundle npm run build makes: dist/cli/ext4ts.js). */
  readonly cli: string;
  /** Extra `-o` list for ext4ts mount ('' for none). */
  readonly ext4tsOptions: string;
  /** Where fuse2fs's and ext4ts's stderr go (a log file). */
  readonly logFile: string;
}

export interface Mounted {
  readonly tool: ToolName;
  readonly mountpoint: string;
  /** The serving process (fuse2fs, the ext4ts server); undefined for the kernel. */
  readonly pid: number | undefined;
  /** Seconds from starting the mount command until the mount was live. */
  readonly mountSeconds: number;
  /** The server's CPU affinity (Cpus_allowed_list), if there is a server. */
  readonly affinity: string | undefined;
  /** The server's resident set right after the mount, KiB. */
  readonly rssAtMountKiB: number | undefined;
  /** Of that, pages of files (RssFile: the program and its libraries, shared with other processes running them), KiB. */
  readonly fileAtMountKiB: number | undefined;
}

export interface Memory {
  /** Current resident set, KiB. */
  readonly rssKiB: number;
  /** Peak resident set (VmHWM), KiB. */
  readonly hwmKiB: number;
  /** Resident pages of files (RssFile): for a node server mostly the node binary, shared with every node process; KiB. */
  readonly fileKiB: number;
}

/** Server processes started by this module and not yet seen exiting. */
const started = new Set<number>();

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function pinned(argv: readonly string[], cpu: number | undefined): string[] {
  return cpu === undefined ? [...argv] : ['taskset', '-c', String(cpu), ...argv];
}

/** The filesystem type mounted on `mountpoint` (absolute, resolved), or undefined. */
export function mountedType(mountpoint: string): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
  let found: string | undefined;
  for (const line of text.split('\n')) {
    const parts = line.split(' ');
    const sep = parts.indexOf('-');
    if (sep < 0) continue;
    if ((parts[4] ?? '').replace(/\\040/g, ' ') === mountpoint) found = parts[sep + 1];
  }
  return found;
}

/** Whether `pid` runs (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

function statusField(pid: number, field: string): string | undefined {
  try {
    const m = new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1]?.trim();
  } catch {
    return undefined;
  }
}

/** The server's resident set and its peak (VmHWM), from /proc/PID/status. */
export function memoryOf(pid: number | undefined): Memory | undefined {
  if (pid === undefined) return undefined;
  const kib = (field: string): number | undefined => {
    const v = statusField(pid, field);
    const m = v === undefined ? null : /^(\d+)\s*kB$/.exec(v);
    return m === null ? undefined : Number(m[1]);
  };
  const rssKiB = kib('VmRSS');
  const hwmKiB = kib('VmHWM');
  return rssKiB === undefined || hwmKiB === undefined ? undefined : { rssKiB, hwmKiB, fileKiB: kib('RssFile') ?? 0 };
}

function cmdline(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** The ext4ts server of `mountpoint`: a process running `CLI mount IMAGE MNT -f ...`. */
export function findExt4tsServer(cli: string, mountpoint: string): number | undefined {
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const argv = cmdline(pid);
    const at = argv.indexOf(cli);
    if (at < 0 || argv[at + 1] !== 'mount' || !argv.includes('-f')) continue;
    if (!argv.slice(at + 2).some((a) => a === mountpoint || path.resolve(a) === mountpoint)) continue;
    return pid;
  }
  return undefined;
}

async function waitMounted(mountpoint: string, prefix: string, timeoutMs: number, gone: () => boolean): Promise<boolean> {
  const limit = Date.now() + timeoutMs;
  while (Date.now() < limit) {
    if ((mountedType(mountpoint) ?? '').startsWith(prefix)) return true;
    if (gone()) return false;
    await sleep(10);
  }
  return false;
}

function tail(file: string): string {
  try {
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
    return lines.slice(-3).join(' | ');
  } catch {
    return '';
  }
}

/** Mount `image` read-only on `mountpoint` (absolute, resolved, not mounted) with `tool`. */
export async function mountTool(tool: ToolName, image: string, mountpoint: string, env: ToolEnv): Promise<Mounted> {
  if (mountedType(mountpoint) !== undefined) throw new Error(`${mountpoint} is already mounted`);
  const t0 = performance.now();
  const done = (pid: number | undefined): Mounted => {
    const mem = memoryOf(pid);
    return {
      tool,
      mountpoint,
      pid,
      mountSeconds: (performance.now() - t0) / 1000,
      affinity: pid === undefined ? undefined : statusField(pid, 'Cpus_allowed_list'),
      rssAtMountKiB: mem?.rssKiB,
      fileAtMountKiB: mem?.fileKiB,
    };
  };
  if (tool === 'kernel') {
    const r = spawnSync('mount', ['-o', 'loop,ro', image, mountpoint], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mount -o loop,ro failed: ${(r.stderr || r.error?.message || '').trim()}`);
    return done(undefined);
  }
  const log = fs.openSync(env.logFile, 'a');
  try {
    if (tool === 'fuse2fs') {
      const argv = pinned(['fuse2fs', image, mountpoint, '-o', 'ro', '-f'], env.cpu);
      const child = spawn(argv[0] as string, argv.slice(1), { detached: true, stdio: ['ignore', log, log] });
      const pid = child.pid;
      if (pid === undefined) throw new Error('cannot start fuse2fs');
      started.add(pid);
      child.unref();
      if (!(await waitMounted(mountpoint, 'fuse', 15_000, () => !alive(pid)))) {
        if (alive(pid)) process.kill(pid, 'SIGTERM');
        throw new Error(`fuse2fs did not mount within 15 s: ${tail(env.logFile)}`);
      }
      return done(pid);
    }
    // Read-only, like the kernel's and fuse2fs's mounts here (a writable image would
    // otherwise be mounted read-write, with opens, flushes and atime updates to serve).
    const opts = ['-o', env.ext4tsOptions === '' ? 'ro' : `ro,${env.ext4tsOptions}`];
    const argv = pinned([process.execPath, env.cli, 'mount', image, mountpoint, ...opts], env.cpu);
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

async function waitExit(pid: number, timeoutMs: number): Promise<boolean> {
  const limit = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() > limit) return false;
    await sleep(10);
  }
  started.delete(pid);
  return true;
}

/** Unmount and wait for the server to exit. Returns a problem description, or undefined. */
export async function unmountTool(m: Mounted, env: ToolEnv): Promise<string | undefined> {
  let problem: string | undefined;
  if (m.tool === 'ext4ts') {
    const r = spawnSync(process.execPath, [env.cli, 'umount', m.mountpoint], { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) problem = `ext4ts umount failed (exit ${r.status ?? r.signal}): ${r.stderr.trim()}`;
  } else {
    const r = spawnSync('umount', [m.mountpoint], { encoding: 'utf8' });
    if (r.status !== 0) problem = `umount failed: ${r.stderr.trim()}`;
  }
  if (mountedType(m.mountpoint) !== undefined) {
    spawnSync('umount', ['-l', m.mountpoint], { stdio: 'ignore' });
    problem ??= 'still mounted after umount; detached it lazily';
  }
  if (m.pid !== undefined && !(await waitExit(m.pid, 60_000))) {
    problem = `${problem === undefined ? '' : `${problem}; `}the ${m.tool} server (pid ${m.pid}) did not exit within 60 s after the unmount; sent SIGTERM`;
    process.kill(m.pid, 'SIGTERM');
    await waitExit(m.pid, 10_000);
  }
  return problem;
}

/**
 * Last resort (errors, interrupts): unmount whatever is mounted on `mountpoint` (lazily
 * if busy) and stop the servers this module started that still run.
 */
export function cleanup(mountpoint: string): void {
  forceUnmount(mountpoint);
  stopAll(started);
}

/** Unmount whatever is mounted on `mountpoint`, lazily if it stays busy. */
export function forceUnmount(mountpoint: string): void {
  for (let i = 0; i < 5 && mountedType(mountpoint) !== undefined; i++) {
    const r = spawnSync('umount', [mountpoint], { stdio: 'ignore' });
    if (r.status !== 0) spawnSync('umount', ['-l', mountpoint], { stdio: 'ignore' });
  }
}

/** SIGTERM the processes of `pids` still running, and forget them all. */
export function stopAll(pids: Set<number>): void {
  for (const pid of pids) {
    if (alive(pid)) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone meanwhile
      }
    }
    pids.delete(pid);
  }
}

// ------------------------------------------------------------------ the ext4ts CLI

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    newest = Math.max(newest, fs.statSync(path.join(e.parentPath, e.name)).mtimeMs);
  }
  return newest;
}

/**
 * The CLI as `npm run build` makes it, from the current src/: compiled by tsc into
 * .bench/NAME/dist (not dist/, which others may be using during a run) and bundled
 * (scripts/bundle.ts: dist/cli/ext4ts.js, what package.json's bin runs), with a
 * `native` link beside it so that the addon is found. Reused while src/ is unchanged.
 * Returns the bundle and a note, or throws.
 */
export function buildCli(projectRoot: string, benchDir: string, log: (line: string) => void, name = 'mount-cli'): { main: string; note: string } {
  const base = path.join(benchDir, name);
  const outDir = path.join(base, 'dist');
  const main = path.join(outDir, 'cli', 'ext4ts.js');
  const stamp = path.join(base, 'stamp');
  const sources = Math.max(newestMtime(path.join(projectRoot, 'src')), fs.statSync(path.join(projectRoot, 'tsconfig.json')).mtimeMs, fs.statSync(path.join(projectRoot, 'scripts', 'bundle.ts')).mtimeMs);
  if (fs.existsSync(main) && fs.existsSync(stamp) && fs.statSync(stamp).mtimeMs >= sources) {
    return { main, note: `src/ compiled by tsc and bundled into .bench/${name}/ (up to date)` };
  }
  log(`compiling src/ with tsc into .bench/${name}/ and bundling it ...`);
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(base, { recursive: true });
  const link = path.join(base, 'native');
  if (!fs.existsSync(link)) fs.symlinkSync(path.join('..', '..', 'native'), link);
  const buildStarted = Date.now();
  const tsc = path.join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(projectRoot, 'tsconfig.build.json'), '--outDir', outDir], { encoding: 'utf8', cwd: projectRoot });
  const compiled = path.join(outDir, 'cli', 'main.js');
  if (!fs.existsSync(compiled)) throw new Error(`tsc produced no ${path.relative(projectRoot, compiled)}: ${(r.stdout + r.stderr).trim().split('\n')[0] ?? ''}`);
  const b = spawnSync(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'scripts', 'bundle.ts'), '--dist', outDir], { encoding: 'utf8', cwd: projectRoot });
  if (b.status !== 0 || !fs.existsSync(main)) throw new Error(`scripts/bundle.ts failed: ${(b.stdout + b.stderr).trim().split('\n')[0] ?? ''}`);
  fs.writeFileSync(stamp, '');
  fs.utimesSync(stamp, new Date(buildStarted), new Date(buildStarted));
  const errors = (r.stdout + r.stderr).split('\n').filter((l) => / error TS\d+/.test(l));
  const note = `src/ compiled by tsc and bundled into .bench/${name}/${errors.length > 0 ? ` (tsc reported ${errors.length} type error(s) in src/, first: ${errors[0]?.trim() ?? ''}; JavaScript emitted anyway)` : ''}`;
  return { main, note };
}

/** The lines of a version output (stdout and stderr) that match `pattern`, joined with "; ". */
export function toolVersion(argv: readonly string[], pattern: RegExp): string | undefined {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
  if (r.error !== undefined) return undefined;
  const lines = `${r.stdout}\n${r.stderr}`
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => pattern.test(l));
  return lines.length === 0 ? undefined : lines.join('; ');
}
