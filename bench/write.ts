/**
 * Write benchmark: `npm run bench:write [-- options]` (see `--help`). Needs root.
 *
 * The same write workloads on the three filesystems of bench:mount, each mounted
 * read-write on a FRESH image (same mke2fs options for all) for every run
 * (bench/lib/write-tools.ts): the kernel's ext4 on a loop device, Debian's fuse2fs and
 * `ext4ts mount -o rw`. Workloads (clients are child processes, pinned like the servers):
 *
 *   cp     `cp -a SRC MNT/` of bench:read's generated tree (~53,800 entries, 0-8 KiB files,
 *          directories, symlinks; bench/lib/read-tree.ts);
 *   seq    `dd if=RANDOM of=MNT/big.bin bs=1M conv=fsync` (1 GiB of incompressible bytes
 *          from a file in tmpfs);
 *   small  a Node child creates 20,000 files of 1-4 KiB (20 directories), then `rm -rf`;
 *   untar  `tar xf ARCHIVE -C MNT` of a tar of the same tree.
 *
 * Timed from the start of the workload to the end of the unmount (the server has
 * exited; ext4ts umount waits for it, fuse2fs is waited for) plus `sync IMG` (fsync of
 * the image file). Then `e2fsck -fn IMG` must be clean, and the result is checked
 * through a kernel read-only mount (-o loop,ro,noload): the copied trees against the
 * source (entries, types, permission bits, owners, sizes, mtimes, symlink targets,
 * contents — cp -a sets the final mode through a POSIX ACL xattr, which fuse2fs does
 * not turn into i_mode), the big file's sha256, the small files all gone.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ProfileSummary } from './lib/cpuprofile.js';
import { summarizeServerProfile } from './lib/mount-profile.js';
import { buildCli, toolVersion, TOOLS, type ToolEnv, type ToolName } from './lib/mount-tools.js';
import { CA_CERTS_NOTE, CA_CERTS_UNSET, pinningAvailable, runMeasured } from './lib/proc.js';
import { ensureTree, FULL_TREE, QUICK_TREE, type BenchTree, type TreeSpec } from './lib/read-tree.js';
import { fmtBytes, fmtInt, fmtNum, fmtRatio, parseBytes, renderTable, type Column } from './lib/table.js';
import { compareTrees, DIFF_KINDS, fsck, sha256File, SMALL_SCRIPT, writeRandomFile, type FsckResult, type TreeDiff } from './lib/write-check.js';
import { cleanupRw, mountProfiledExt4ts, mountRw, unmountRw } from './lib/write-tools.js';
import { UsageError, commandLine, intOption, listOption } from './lib/options.js';

const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCH_DIR = path.join(PROJECT_ROOT, '.bench');

type WorkloadKey = 'cp' | 'seq' | 'small' | 'untar';
const WORKLOADS: readonly WorkloadKey[] = ['cp', 'seq', 'small', 'untar'];

/** Entries per top-level directory of bench:read's tree (FULL_TREE's shape). */
const ENTRIES_PER_TOP = 1 + FULL_TREE.filesPerDir + FULL_TREE.symlinksPerDir + FULL_TREE.subDirs * (2 + FULL_TREE.filesPerSubDir + FULL_TREE.nestedFiles);

/** The issue's goals: ext4ts within 2x of the kernel, and faster than fuse2fs on every workload. */
const GOAL_KERNEL = 2;
const GOAL_FUSE2FS = 1;

const HELP = `Usage: npm run bench:write -- [options]        (as root)

ext4ts mount -o rw vs Debian's fuse2fs vs the kernel's ext4 (loop mount), each on a
fresh image (mke2fs -t ext4, the same options for all) for every run:
  cp      cp -a SRC MNT/ of bench:read's generated tree (~53,800 entries)
  seq     dd if=RANDOM of=MNT/big.bin bs=1M conv=fsync (1 GiB, incompressible, from tmpfs)
  small   create 20,000 files of 1-4 KiB (a Node child, writeFileSync), then rm -rf them
  untar   tar xf ARCHIVE -C MNT (a tar of the same tree)
Time = start of the workload to the end of the unmount (server exited) + fsync of the
image. Then e2fsck -fn must be clean, and the result is checked through a kernel ro
mount: trees vs the source (entries, permission bits, owners, sizes, mtimes, content),
big.bin's sha256, the small files gone.

Options:
  --only <list>         workloads, comma-separated (default cp,seq,small,untar)
  --tools <list>        tools (default kernel,fuse2fs,ext4ts; ratios need kernel and fuse2fs)
  --reps <n>            fresh images per (workload, tool), tools rotating; median (default 1)
  --files <n>           entries of the source tree, rounded to a multiple of ${ENTRIES_PER_TOP}
                        (default 53,800; at most 64,560)
  --small <n>           files of the small-files workload (default 20000)
  --seq-size <size>     size of the sequential file (default 1G)
  --quick               --files 5380 --small 2000 --seq-size 128M (a smoke run)
  --fs-size <size>      mke2fs size of each fresh image (default 2G, more if --seq-size needs it)
  --dir <dir>           where the images, the archive and the random file go
                        (default /dev/shm/ext4ts-bench-write: tmpfs, so no disk in the timings)
  --cpu <n>             CPU the servers and clients are pinned to (default 0; --cpu=-1: no pinning)
  --cli <file>          the ext4ts CLI (default: src/ built like npm run build into .bench/mount-cli/,
                        shared with bench:mount; e.g. --cli dist/cli/ext4ts.js)
  --ext4ts-options <o>  extra -o options for ext4ts mount (after rw)
  --timeout <s>         cap of one workload step and of one unmount, seconds (default 900)
  --no-content          do not compare file contents (counts, modes, sizes, mtimes only)
  --keep-failed         keep the images that e2fsck or the checks reject, in .bench/
  --profile             after the measured runs, one more ext4ts run per workload with its server
                        under node --cpu-prof (foreground mount); prints the top self-time functions
  -h, --help            show this help
`;

interface Config {
  readonly workloads: readonly WorkloadKey[];
  readonly tools: readonly ToolName[];
  readonly reps: number;
  readonly topDirs: number;
  readonly small: number;
  readonly seqBytes: number;
  readonly fsSize: string;
  readonly dir: string;
  readonly cpu: number | undefined;
  readonly cli: string | undefined;
  readonly ext4tsOptions: string;
  readonly timeout: number;
  readonly content: boolean;
  readonly keepFailed: boolean;
  readonly profile: boolean;
}




function parseConfig(argv: readonly string[]): Config | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        only: { type: 'string', default: WORKLOADS.join(',') },
        tools: { type: 'string', default: TOOLS.join(',') },
        reps: { type: 'string', default: '1' },
        files: { type: 'string' },
        small: { type: 'string' },
        'seq-size': { type: 'string' },
        quick: { type: 'boolean', default: false },
        'fs-size': { type: 'string' },
        dir: { type: 'string', default: '/dev/shm/ext4ts-bench-write' },
        cpu: { type: 'string', default: '0' },
        cli: { type: 'string' },
        'ext4ts-options': { type: 'string', default: '' },
        timeout: { type: 'string', default: '900' },
        'no-content': { type: 'boolean', default: false },
        'keep-failed': { type: 'boolean', default: false },
        profile: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(message.split(/\.\s/)[0] ?? message);
  }
  if (values.help) return 'help';
  const quick = values.quick;
  const files = values.files === undefined ? (quick ? QUICK_TREE.topDirs : FULL_TREE.topDirs) * ENTRIES_PER_TOP : intOption('--files', values.files, 1, 64_560);
  const seqText = values['seq-size'] ?? (quick ? '128M' : '1G');
  const seqBytes = parseBytes(seqText);
  if (seqBytes === undefined || seqBytes <= 0 || seqBytes % (1 << 20) !== 0) throw new UsageError(`--seq-size ${seqText}: not a positive multiple of 1M`);
  const minFs = Math.max(2 << 30, seqBytes + (512 << 20));
  const fsSize = values['fs-size'] ?? `${Math.ceil(minFs / (1 << 30))}G`;
  if (parseBytes(fsSize) === undefined) throw new UsageError(`--fs-size ${fsSize}: not a size`);
  const cpu = intOption('--cpu', values.cpu, -1, os.cpus().length - 1);
  const cli = values.cli === undefined ? undefined : path.resolve(values.cli);
  if (cli !== undefined && !fs.existsSync(cli)) throw new UsageError(`--cli ${values.cli}: no such file`);
  return {
    workloads: listOption('--only', values.only, WORKLOADS),
    tools: listOption('--tools', values.tools, TOOLS),
    reps: intOption('--reps', values.reps, 1, 100),
    topDirs: Math.min(60, Math.max(1, Math.round(files / ENTRIES_PER_TOP))),
    small: values.small === undefined ? (quick ? 2000 : 20000) : intOption('--small', values.small, 1, 1_000_000),
    seqBytes,
    fsSize,
    dir: path.resolve(values.dir),
    cpu: cpu < 0 ? undefined : cpu,
    cli,
    ext4tsOptions: values['ext4ts-options'],
    timeout: intOption('--timeout', values.timeout, 1, 86_400),
    content: !values['no-content'],
    keepFailed: values['keep-failed'],
    profile: values.profile,
  };
}

// ------------------------------------------------------------------ measuring

interface Step {
  readonly name: string;
  readonly seconds: number;
  /** User + system CPU of the client (GNU time). */
  readonly clientCpu: number | undefined;
}

interface Run {
  readonly workload: WorkloadKey;
  readonly tool: ToolName;
  readonly rep: number;
  /** 1-minute load average when the run started. */
  readonly load: number;
  readonly mountSeconds: number;
  /** Workload steps, in order (cp | dd | create, delete | tar). */
  readonly steps: readonly Step[];
  /** Unmount until the server exited. */
  readonly unmountSeconds: number;
  /** `sync IMG` after the unmount. */
  readonly fsyncSeconds: number;
  /** From the start of the workload to the end of the fsync. */
  readonly total: number;
  readonly peakKiB: number | undefined;
  /** peakKiB less the server's pages of files (RssFile: for a node server mostly the node binary, shared). */
  readonly peakOwnKiB: number | undefined;
  readonly serverCpu: number | undefined;
  /** What went wrong while running (a failed step, the unmount); undefined if nothing. */
  readonly error: string | undefined;
  readonly fsck: FsckResult | undefined;
  readonly diff: TreeDiff | undefined;
  /** Problems found by the checks (empty: all good). */
  readonly checkProblems: readonly string[];
  /** Where the image was kept (--keep-failed). */
  readonly kept: string | undefined;
}

interface Inputs {
  readonly tree: BenchTree;
  readonly archive: string | undefined;
  readonly archiveBytes: number;
  readonly random: { file: string; sha256: string } | undefined;
  readonly smallScript: string;
}

interface Ctx {
  readonly cfg: Config;
  readonly env: ToolEnv;
  readonly inputs: Inputs;
  readonly mountpoint: string;
  readonly checkpoint: string;
  readonly log: (line: string) => void;
}

let interrupted: string | undefined;

function run(cmd: string, args: readonly string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error !== undefined) throw new Error(`cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal}): ${(r.stderr || r.stdout).trim().split('\n')[0] ?? ''}`);
}

function mkfs(cfg: Config, image: string): void {
  fs.rmSync(image, { force: true });
  // Fixed UUID and hash seed; inode tables and journal zeroed now, so that no lazy init
  // runs in the background of the kernel's mount.
  run('mke2fs', ['-q', '-F', '-t', 'ext4', '-U', 'b3c0ffee-0000-4000-8000-000000000021', '-E', 'lazy_itable_init=0,lazy_journal_init=0,hash_seed=b3c0ffee-0000-4000-8000-000000000022', image, cfg.fsSize]);
}

/** Read every file of the tree once, so that the source is in the page cache for every tool. */
function warmTree(root: string): void {
  const buf = Buffer.allocUnsafe(1 << 20);
  const visit = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) visit(p);
      else if (e.isFile()) {
        const fd = fs.openSync(p, 'r');
        while (fs.readSync(fd, buf, 0, buf.length, null) > 0);
        fs.closeSync(fd);
      } else fs.lstatSync(p);
    }
  };
  visit(root);
}

function stepsOf(ctx: Ctx, workload: WorkloadKey): { name: string; argv: string[] }[] {
  const mnt = ctx.mountpoint;
  const src = ctx.inputs.tree.srcDir;
  switch (workload) {
    case 'cp':
      return [{ name: 'cp -a', argv: ['cp', '-a', src, `${mnt}/`] }];
    case 'seq':
      return [{ name: 'dd', argv: ['dd', `if=${ctx.inputs.random?.file ?? ''}`, `of=${mnt}/big.bin`, 'bs=1M', 'conv=fsync', 'status=none'] }];
    case 'small':
      return [
        { name: 'create', argv: [process.execPath, ctx.inputs.smallScript, `${mnt}/small`, String(ctx.cfg.small)] },
        { name: 'rm -rf', argv: ['rm', '-rf', `${mnt}/small`] },
      ];
    case 'untar':
      return [{ name: 'tar xf', argv: ['tar', 'xf', ctx.inputs.archive ?? '', '-C', mnt] }];
  }
}

/** Check the result through a kernel read-only mount of the image. */
function verify(ctx: Ctx, workload: WorkloadKey, image: string): { diff: TreeDiff | undefined; problems: string[] } {
  const problems: string[] = [];
  const vm = ctx.checkpoint;
  const r = spawnSync('mount', ['-o', 'loop,ro,noload', image, vm], { encoding: 'utf8' });
  if (r.status !== 0) return { diff: undefined, problems: [`kernel ro mount of the result failed: ${(r.stderr || '').trim()}`] };
  let diff: TreeDiff | undefined;
  try {
    if (workload === 'cp' || workload === 'untar') {
      const copy = path.join(vm, path.basename(ctx.inputs.tree.srcDir));
      if (!fs.existsSync(copy)) problems.push(`${path.basename(copy)} is missing from the image`);
      else {
        diff = compareTrees(ctx.inputs.tree.srcDir, copy, { mtime: workload === 'cp' ? 'ns' : 's', content: ctx.cfg.content });
        if (diff.copyEntries !== diff.sourceEntries) problems.push(`${fmtInt(diff.copyEntries)} entries, expected ${fmtInt(diff.sourceEntries)}`);
        for (const k of DIFF_KINDS) if (diff.counts[k] > 0) problems.push(`${fmtInt(diff.counts[k])} ${k}`);
      }
      const others = fs.readdirSync(vm).filter((n) => n !== 'lost+found' && n !== path.basename(ctx.inputs.tree.srcDir));
      if (others.length > 0) problems.push(`unexpected entries in the root: ${others.slice(0, 5).join(', ')}`);
    } else if (workload === 'seq') {
      const big = path.join(vm, 'big.bin');
      const st = fs.statSync(big, { throwIfNoEntry: false });
      if (st === undefined) problems.push('big.bin is missing');
      else if (st.size !== ctx.cfg.seqBytes) problems.push(`big.bin has ${st.size} bytes, expected ${ctx.cfg.seqBytes}`);
      else if (sha256File(big) !== ctx.inputs.random?.sha256) problems.push('big.bin content differs (sha256)');
    } else {
      const left = fs.readdirSync(vm).filter((n) => n !== 'lost+found');
      if (left.length > 0) problems.push(`left in the root after rm -rf: ${left.slice(0, 5).join(', ')}`);
    }
  } catch (error) {
    problems.push(`check failed: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    const u = spawnSync('umount', [vm], { encoding: 'utf8' });
    if (u.status !== 0) spawnSync('umount', ['-l', vm], { stdio: 'ignore' });
  }
  return { diff, problems };
}

async function measureRun(ctx: Ctx, workload: WorkloadKey, tool: ToolName, rep: number): Promise<Run> {
  const { cfg, env } = ctx;
  const image = path.join(cfg.dir, `write-${workload}-${tool}.img`);
  mkfs(cfg, image);
  if (workload === 'cp') warmTree(ctx.inputs.tree.srcDir);
  spawnSync('sync', [], { stdio: 'ignore' });
  const load = os.loadavg()[0] ?? 0;
  const m = await mountRw(tool, image, ctx.mountpoint, env);
  const steps: Step[] = [];
  let error: string | undefined;
  const t0 = performance.now();
  try {
    for (const s of stepsOf(ctx, workload)) {
      const r = runMeasured(s.argv, { cpu: cfg.cpu, stdout: 'ignore', timeoutSeconds: cfg.timeout });
      steps.push({ name: s.name, seconds: r.wall, clientCpu: r.user === undefined || r.sys === undefined ? undefined : r.user + r.sys });
      if (r.status !== 0) {
        const first = r.stderr.trim().split('\n');
        error = `${s.name} ${r.timedOut ? `timed out after ${cfg.timeout} s` : `exited ${r.status}`}: ${first.slice(0, 2).join(' | ')}${first.length > 2 ? ` (+${first.length - 2} lines)` : ''}`;
        break;
      }
    }
  } catch (e) {
    error = `cannot run the workload: ${e instanceof Error ? e.message : String(e)}`;
  }
  // Always unmounted, also after a failed step.
  const u = await unmountRw(m, env, cfg.timeout);
  const f0 = performance.now();
  spawnSync('sync', [image], { stdio: 'ignore' });
  const t1 = performance.now();
  if (u.problem !== undefined) error = error === undefined ? u.problem : `${error}; ${u.problem}`;
  const fsckResult = fsck(image);
  const { diff, problems } = verify(ctx, workload, image);
  let kept: string | undefined;
  if (cfg.keepFailed && (!fsckResult.clean || problems.length > 0 || error !== undefined)) {
    kept = path.join(BENCH_DIR, `write-failed-${workload}-${tool}.img`);
    run('cp', ['--sparse=always', image, kept]);
  }
  fs.rmSync(image, { force: true });
  return {
    workload,
    tool,
    rep,
    load,
    mountSeconds: m.mountSeconds,
    steps,
    unmountSeconds: u.seconds,
    fsyncSeconds: (t1 - f0) / 1000,
    total: (t1 - t0) / 1000,
    peakKiB: u.peakKiB,
    peakOwnKiB: u.peakOwnKiB,
    serverCpu: u.serverCpu,
    error,
    fsck: fsckResult,
    diff,
    checkProblems: problems,
    kept,
  };
}

function failedRun(workload: WorkloadKey, tool: ToolName, rep: number, message: string): Run {
  return { workload, tool, rep, load: os.loadavg()[0] ?? 0, mountSeconds: NaN, steps: [], unmountSeconds: NaN, fsyncSeconds: NaN, total: NaN, peakKiB: undefined, peakOwnKiB: undefined, serverCpu: undefined, error: message, fsck: undefined, diff: undefined, checkProblems: [], kept: undefined };
}

function runOk(r: Run): boolean {
  return r.error === undefined && r.fsck?.clean === true && r.checkProblems.length === 0;
}

function fsckText(r: Run): string {
  if (r.fsck === undefined) return '-';
  if (r.fsck.clean) return 'clean';
  return `NOT CLEAN (exit ${r.fsck.status ?? '?'})`;
}

function shortRun(r: Run): string {
  const steps = r.steps.map((s) => `${s.name} ${fmtNum(s.seconds, 2)}`).join(' + ');
  return `${fmtNum(r.total, 2)} s (${steps}; umount ${fmtNum(r.unmountSeconds, 2)}) e2fsck ${fsckText(r)}${r.checkProblems.length > 0 ? `, check: ${r.checkProblems.join(', ')}` : ''}${r.error !== undefined ? `, ERROR: ${r.error}` : ''}`;
}

async function measure(ctx: Ctx, runs: Run[]): Promise<void> {
  for (const workload of ctx.cfg.workloads) {
    for (let rep = 0; rep < ctx.cfg.reps; rep++) {
      const n = ctx.cfg.tools.length;
      const order = ctx.cfg.tools.map((_, i) => ctx.cfg.tools[(i + rep) % n] as ToolName);
      for (const tool of order) {
        if (interrupted !== undefined) return;
        ctx.log(`  ${workload.padEnd(5)} ${tool.padEnd(7)} run ${rep + 1}/${ctx.cfg.reps} (load ${fmtNum(os.loadavg()[0] ?? 0, 2)}) ...`);
        let r: Run;
        try {
          r = await measureRun(ctx, workload, tool, rep);
        } catch (error) {
          r = failedRun(workload, tool, rep, error instanceof Error ? error.message : String(error));
          cleanupRw([ctx.mountpoint, ctx.checkpoint]);
        }
        runs.push(r);
        ctx.log(`    -> ${shortRun(r)}`);
      }
    }
  }
}

// ------------------------------------------------------------------ profiling

interface ProfileResult {
  readonly workload: WorkloadKey;
  readonly seconds: number | undefined;
  readonly serverCpu: number | undefined;
  readonly summary?: ProfileSummary;
  readonly error?: string;
}

/** One more ext4ts run of `workload` on a fresh image, its server under node --cpu-prof. */
async function profileWorkload(ctx: Ctx, workload: WorkloadKey): Promise<ProfileResult> {
  const { cfg, env } = ctx;
  const dir = path.join(BENCH_DIR, 'write-prof', workload);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const image = path.join(cfg.dir, `write-${workload}-profile.img`);
  mkfs(cfg, image);
  if (workload === 'cp') warmTree(ctx.inputs.tree.srcDir);
  let seconds: number | undefined;
  let failure: string | undefined;
  try {
    const m = await mountProfiledExt4ts(image, ctx.mountpoint, env, dir);
    const t0 = performance.now();
    for (const s of stepsOf(ctx, workload)) {
      const r = runMeasured(s.argv, { cpu: cfg.cpu, stdout: 'ignore', timeoutSeconds: cfg.timeout });
      if (r.status !== 0) {
        failure = `${s.name} exited ${r.status}: ${r.stderr.trim().split('\n')[0] ?? ''}`;
        break;
      }
    }
    const u = await unmountRw(m, env, cfg.timeout, true);
    seconds = (performance.now() - t0) / 1000;
    ctx.log(`  profiled ext4ts ${workload}: ${fmtNum(seconds, 2)} s${failure === undefined ? '' : ` (FAILED: ${failure})`}`);
    let best: ProfileSummary | undefined;
    for (const name of fs.readdirSync(dir)) {
      if (!name.endsWith('.cpuprofile')) continue;
      const sum = summarizeServerProfile(path.join(dir, name), PROJECT_ROOT, 15);
      if (best === undefined || sum.totalMs > best.totalMs) best = sum;
    }
    if (best === undefined) return { workload, seconds, serverCpu: u.serverCpu, error: 'no profile was written' };
    return { workload, seconds, serverCpu: u.serverCpu, summary: best, ...(failure === undefined ? {} : { error: failure }) };
  } catch (error) {
    cleanupRw([ctx.mountpoint]);
    return { workload, seconds, serverCpu: undefined, error: error instanceof Error ? error.message : String(error) };
  } finally {
    fs.rmSync(image, { force: true });
  }
}

function renderProfiles(profiles: readonly ProfileResult[]): string {
  const out: string[] = ['CPU profiles of the ext4ts server (worker thread; native calls labelled by their JavaScript caller, see bench/lib/mount-profile.ts)'];
  for (const p of profiles) {
    const head = `${p.workload}: ${p.seconds === undefined ? '-' : `${fmtNum(p.seconds, 2)} s`} under the profiler${p.serverCpu === undefined ? '' : `, server CPU ${fmtNum(p.serverCpu, 2)} s`}`;
    if (p.summary === undefined) {
      out.push(`  ${head}: no profile (${p.error ?? ''})`);
      continue;
    }
    const s = p.summary;
    out.push(`  ${head}, ${fmtNum(s.totalMs, 0)} ms sampled (${path.relative(PROJECT_ROOT, s.file)})${p.error === undefined ? '' : ` — ${p.error}`}`);
    const columns: Column[] = [{ title: 'self ms' }, { title: 'self' }, { title: 'total' }, { title: 'function (source)', align: 'left' }];
    out.push(renderTable(columns, s.functions.map((f) => [fmtNum(f.selfMs, 0), `${(f.selfShare * 100).toFixed(1)}%`, `${(f.totalShare * 100).toFixed(1)}%`, f.where]), '    '));
    out.push(`    self time by file: ${s.byFile.slice(0, 8).map((f) => `${f.file} ${(f.selfShare * 100).toFixed(1)}%`).join(', ')}`);
  }
  return out.join('\n');
}

// ------------------------------------------------------------------ report

function median(xs: readonly number[]): number | undefined {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Median total of the runs of (workload, tool) that completed (checks aside). */
function medianTotal(runs: readonly Run[], workload: WorkloadKey, tool: ToolName): number | undefined {
  return median(runs.filter((r) => r.workload === workload && r.tool === tool && r.error === undefined).map((r) => r.total));
}

const TITLES: Record<WorkloadKey, (cfg: Config, inputs: Inputs) => string> = {
  cp: (_, i) => `cp -a of a ${fmtInt(i.tree.manifest.entries)}-entry tree (${fmtInt(i.tree.manifest.files)} files, ${fmtBytes(i.tree.manifest.bytes)})`,
  seq: (cfg) => `sequential write of ${fmtBytes(cfg.seqBytes)} (dd bs=1M conv=fsync, random bytes)`,
  small: (cfg) => `create ${fmtInt(cfg.small)} files of 1-4 KiB, then rm -rf them`,
  untar: (_, i) => `tar xf of the same tree (${fmtBytes(i.archiveBytes)} archive)`,
};

function renderWorkload(cfg: Config, inputs: Inputs, workload: WorkloadKey, runs: readonly Run[]): string {
  const mine = runs.filter((r) => r.workload === workload);
  const stepNames = [...new Set(mine.flatMap((r) => r.steps.map((s) => s.name)))];
  const columns: Column[] = [
    { title: 'tool', align: 'left' },
    ...(cfg.reps > 1 ? [{ title: 'run' }] : []),
    { title: 'load' },
    { title: 'total s' },
    ...stepNames.map((n) => ({ title: `${n} s` })),
    { title: 'umount s' },
    { title: 'client CPU s' },
    { title: 'server CPU s' },
    { title: 'peak RSS' },
    { title: 'of it own' },
    { title: 'e2fsck -fn', align: 'left' },
    { title: 'entries' },
    { title: 'perm bits differ' },
    { title: 'other problems', align: 'left' },
  ];
  const rows = mine.map((r) => {
    const clientCpu = r.steps.reduce((a, s) => a + (s.clientCpu ?? NaN), 0);
    const others = r.checkProblems.filter((p) => !/ perm$/.test(p) && !/ entries, expected /.test(p));
    return [
      r.tool,
      ...(cfg.reps > 1 ? [String(r.rep + 1)] : []),
      fmtNum(r.load, 1),
      r.error === undefined ? fmtNum(r.total, 2) : `FAILED`,
      ...stepNames.map((n) => {
        const s = r.steps.find((x) => x.name === n);
        return s === undefined ? '-' : fmtNum(s.seconds, 2);
      }),
      Number.isFinite(r.unmountSeconds) ? fmtNum(r.unmountSeconds + r.fsyncSeconds, 2) : '-',
      Number.isFinite(clientCpu) ? fmtNum(clientCpu, 2) : '-',
      r.serverCpu === undefined ? '-' : fmtNum(r.serverCpu, 2),
      r.peakKiB === undefined ? '-' : fmtBytes(r.peakKiB * 1024),
      r.peakOwnKiB === undefined ? '-' : fmtBytes(r.peakOwnKiB * 1024),
      fsckText(r),
      r.diff === undefined ? '-' : fmtInt(r.diff.copyEntries),
      r.diff === undefined ? '-' : fmtInt(r.diff.counts.perm),
      others.length === 0 ? (r.fsck === undefined ? '-' : 'none') : others.join(', '),
    ];
  });
  const out = [`${workload}: ${TITLES[workload](cfg, inputs)}`, renderTable(columns, rows)];
  const k = medianTotal(runs, workload, 'kernel');
  const f = medianTotal(runs, workload, 'fuse2fs');
  const e = medianTotal(runs, workload, 'ext4ts');
  const ratio = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined || b === undefined ? undefined : a / b);
  out.push(`  ratios${cfg.reps > 1 ? ' (medians)' : ''}: ext4ts/kernel ${fmtRatio(ratio(e, k))} (goal <= ${GOAL_KERNEL}x), fuse2fs/ext4ts ${fmtRatio(ratio(f, e))} (goal > ${GOAL_FUSE2FS}x; ext4ts faster when above 1), fuse2fs/kernel ${fmtRatio(ratio(f, k))}`);
  for (const r of mine) {
    const notes: string[] = [];
    if (r.error !== undefined) notes.push(`error: ${r.error}`);
    if (r.fsck !== undefined && !r.fsck.clean) notes.push(`e2fsck: ${r.fsck.complaints.slice(0, 6).join(' | ')}${r.fsck.complaints.length > 6 ? ` (+${r.fsck.complaints.length - 6} lines)` : ''}`);
    if (r.diff !== undefined && r.diff.permPairs.length > 0) notes.push(`perm bits (source->copy): ${r.diff.permPairs.join(', ')}`);
    if (r.diff !== undefined && r.diff.examples.length > 0) notes.push(`first differences: ${r.diff.examples.slice(0, 4).join('; ')}`);
    if (r.kept !== undefined) notes.push(`image kept: ${path.relative(PROJECT_ROOT, r.kept)}`);
    for (const n of notes) out.push(`  ${r.tool}${cfg.reps > 1 ? ` run ${r.rep + 1}` : ''}: ${n}`);
  }
  return out.join('\n');
}

function renderSummary(cfg: Config, runs: readonly Run[]): string {
  const columns: Column[] = [
    { title: 'workload', align: 'left' },
    ...cfg.tools.map((t) => ({ title: `${t} s` })),
    { title: 'ext4ts/kernel' },
    { title: 'fuse2fs/ext4ts' },
    { title: 'goals (<=2x kernel, beats fuse2fs)', align: 'left' },
    { title: 'e2fsck clean (k/f/e)', align: 'left' },
    { title: 'perm bits differ (k/f/e)', align: 'left' },
    { title: 'all checks ok (k/f/e)', align: 'left' },
  ];
  const rows = cfg.workloads.map((w) => {
    const t = (tool: ToolName): number | undefined => medianTotal(runs, w, tool);
    const k = t('kernel');
    const f = t('fuse2fs');
    const e = t('ext4ts');
    const rk = k === undefined || e === undefined ? undefined : e / k;
    const rf = f === undefined || e === undefined ? undefined : f / e;
    const goals = [rk === undefined ? '-' : rk <= GOAL_KERNEL ? 'kernel: met' : 'kernel: MISSED', rf === undefined ? '-' : rf > GOAL_FUSE2FS ? 'fuse2fs: met' : 'fuse2fs: MISSED'].join(', ');
    const per = (fn: (r: Run[]) => string): string => TOOLS.map((tool) => fn(runs.filter((r) => r.workload === w && r.tool === tool))).join(' / ');
    return [
      w,
      ...cfg.tools.map((tool) => {
        const v = t(tool);
        return v === undefined ? 'FAILED' : fmtNum(v, 2);
      }),
      fmtRatio(rk),
      fmtRatio(rf),
      goals,
      per((rs) => (rs.length === 0 ? '-' : rs.every((r) => r.fsck?.clean === true) ? 'yes' : 'NO')),
      per((rs) => (rs.length === 0 || rs.every((r) => r.diff === undefined) ? '-' : fmtInt(Math.max(...rs.map((r) => r.diff?.counts.perm ?? 0))))),
      per((rs) => (rs.length === 0 ? '-' : rs.every(runOk) ? 'yes' : 'NO')),
    ];
  });
  return [`Summary (seconds: workload + unmount + fsync of the image${cfg.reps > 1 ? `, median of ${cfg.reps}` : ''}; lower is better)`, renderTable(columns, rows)].join('\n');
}

// ------------------------------------------------------------------ main

function prepareInputs(cfg: Config, log: (line: string) => void): Inputs {
  const spec: TreeSpec = { ...FULL_TREE, topDirs: cfg.topDirs };
  const name = cfg.topDirs === FULL_TREE.topDirs ? 'full' : cfg.topDirs === QUICK_TREE.topDirs ? 'quick' : `t${cfg.topDirs}`;
  const tree = ensureTree(BENCH_DIR, name, spec, log);
  fs.mkdirSync(cfg.dir, { recursive: true });
  let archive: string | undefined;
  if (cfg.workloads.includes('untar')) {
    archive = path.join(cfg.dir, `tree-${name}.tar`);
    log(`making ${archive} (tar cf of ${path.relative(PROJECT_ROOT, tree.srcDir)}) ...`);
    run('tar', ['cf', archive, '-C', path.dirname(tree.srcDir), path.basename(tree.srcDir)]);
  }
  let random: Inputs['random'];
  if (cfg.workloads.includes('seq')) {
    const file = path.join(cfg.dir, 'random.bin');
    log(`writing ${fmtBytes(cfg.seqBytes)} of random bytes to ${file} ...`);
    random = { file, sha256: writeRandomFile(file, cfg.seqBytes) };
  }
  const smallScript = path.join(cfg.dir, 'small.mjs');
  fs.writeFileSync(smallScript, SMALL_SCRIPT);
  return { tree, archive, archiveBytes: archive === undefined ? 0 : fs.statSync(archive).size, random, smallScript };
}

async function main(): Promise<number> {
  const started = performance.now();
  const cfg = commandLine('bench:write', HELP, parseConfig);
  if ('exit' in cfg) return cfg.exit;
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  if (process.getuid?.() !== 0) {
    log('bench:write: needs root (loop and FUSE mounts)');
    return 1;
  }
  const fuse2fsVersion = toolVersion(['fuse2fs', '-V'], /^(fuse2fs|FUSE library)/);
  if (cfg.tools.includes('fuse2fs') && (fuse2fsVersion === undefined || !/fuse2fs/i.test(fuse2fsVersion))) {
    log('bench:write: fuse2fs not found (apt-get install -y fuse2fs), or pass --tools kernel,ext4ts');
    return 1;
  }
  for (const cmd of ['mke2fs', 'e2fsck', 'cp', 'dd', 'tar', 'rm', 'sync', 'mount', 'umount']) {
    if (spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status !== 0) {
      log(`bench:write: ${cmd} not found`);
      return 1;
    }
  }
  const loadAtStart = os.loadavg();
  fs.mkdirSync(BENCH_DIR, { recursive: true });
  const cli = cfg.cli !== undefined ? { main: cfg.cli, note: `${path.relative(PROJECT_ROOT, cfg.cli)} (--cli)` } : buildCli(PROJECT_ROOT, BENCH_DIR, log);
  const inputs = prepareInputs(cfg, log);
  const mountpoint = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ext4ts-bench-write-')));
  const checkpoint = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ext4ts-bench-write-check-')));
  const logFile = path.join(BENCH_DIR, 'write-servers.log');
  fs.writeFileSync(logFile, '');
  const env: ToolEnv = { cpu: cfg.cpu, cli: cli.main, ext4tsOptions: cfg.ext4tsOptions, logFile };
  const ctx: Ctx = { cfg, env, inputs, mountpoint, checkpoint, log };

  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted = signal;
    log(`bench:write: ${signal}: stopping after this run`);
  };
  const lastResort = (): void => cleanupRw([mountpoint, checkpoint]);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', lastResort);

  const runs: Run[] = [];
  const profiles: ProfileResult[] = [];
  try {
    log(`measuring ${cfg.workloads.join(', ')} with ${cfg.tools.join(', ')}, ${cfg.reps} run(s) each, mount point ${mountpoint} ...`);
    await measure(ctx, runs);
    if (cfg.profile && cfg.tools.includes('ext4ts')) {
      log('CPU-profiling the ext4ts server ...');
      for (const w of cfg.workloads) if (interrupted === undefined) profiles.push(await profileWorkload(ctx, w));
    }
  } finally {
    cleanupRw([mountpoint, checkpoint]);
    for (const dir of [mountpoint, checkpoint]) {
      try {
        fs.rmdirSync(dir);
      } catch {
        // still busy: leave the empty directory
      }
    }
    for (const f of [inputs.archive, inputs.random?.file, inputs.smallScript]) if (f !== undefined) fs.rmSync(f, { force: true });
    try {
      fs.rmdirSync(cfg.dir);
    } catch {
      // not empty (someone else's files): leave it
    }
    process.off('exit', lastResort);
  }

  const loadAtEnd = os.loadavg();
  const load = (l: number[]): string => l.map((x) => x.toFixed(2)).join(' ');
  const busy = Math.max(loadAtStart[0] ?? 0, loadAtEnd[0] ?? 0) > 1.2;
  const cpus = os.cpus();
  const m = inputs.tree.manifest;
  const header = [
    `ext4ts write benchmark (npm run bench:write -- --help for options)${interrupted === undefined ? '' : ` — INTERRUPTED (${interrupted})`}`,
    `  images     a fresh one per run: mke2fs -t ext4 -E lazy_itable_init=0,lazy_journal_init=0 IMG ${cfg.fsSize}, in ${cfg.dir}`,
    `  source     ${path.relative(PROJECT_ROOT, inputs.tree.srcDir)}: ${fmtInt(m.entries)} entries (${fmtInt(m.files)} files of 0-8 KiB, ${fmtBytes(m.bytes)}; ${fmtInt(m.dirs.length - 1)} directories; ${fmtInt(m.symlinks)} symlinks), read into the page cache before each cp`,
    `  kernel     Linux ${os.release()} ext4: mount -o loop IMG MNT; umount MNT`,
    `  fuse2fs    ${fuse2fsVersion ?? '-'}: fuse2fs IMG MNT -o rw -f (background); umount MNT, then wait for fuse2fs to exit`,
    `  ext4ts     node ${path.relative(PROJECT_ROOT, cli.main)} mount -o rw${cfg.ext4tsOptions === '' ? '' : `,${cfg.ext4tsOptions}`} IMG MNT (${cli.note}); ext4ts umount MNT (waits for the server)`,
    `  pinning    ${cfg.cpu === undefined || !pinningAvailable() ? 'none' : `servers and clients on CPU ${cfg.cpu} (taskset -c ${cfg.cpu}); the kernel's own threads are not pinned`}`,
    ...(CA_CERTS_UNSET ? [`  env        ${CA_CERTS_NOTE}`] : []),
    `  timing     start of the workload to the end of the unmount (server exited), plus sync IMG; mount not included`,
    `  memory     peak RSS = the server's VmHWM; "of it own" = less its pages of files (RssFile: the program and its libraries, for ext4ts ~39 MiB of node's binary shared with every node process)`,
    `  checks     e2fsck -fn IMG; then through mount -o loop,ro,noload: trees vs the source (mtime: cp to the ns, untar to the s${cfg.content ? '; every file\'s content' : '; contents not compared'}), big.bin's sha256, the small files gone`,
    `  machine    node ${process.version}, ${cpus.length} CPU(s) ${cpus[0]?.model.trim() ?? ''}; load average ${load(loadAtStart)} at start, ${load(loadAtEnd)} at end${busy ? ' (OTHER LOAD on the machine: timings are noisy)' : ''}`,
    `  elapsed    ${((performance.now() - started) / 1000).toFixed(0)} s`,
  ].join('\n');
  const sections = [header, ...cfg.workloads.map((w) => renderWorkload(cfg, inputs, w, runs)), renderSummary(cfg, runs)];
  if (profiles.length > 0) sections.push(renderProfiles(profiles));
  sections.push(
    "The issue's measurement (cp -a of a 53,500-entry tree + umount + sync): kernel 3.6 s, fuse2fs 37 s, and fuse2fs left 49,764 entries\nwith wrong permission bits (cp -a sets the final mode through a POSIX ACL xattr; fuse2fs stores it without updating i_mode).",
  );
  process.stdout.write(`${sections.join('\n\n')}\n`);
  if (interrupted !== undefined) return 130;
  const ext4tsBad = runs.some((r) => r.tool === 'ext4ts' && !runOk(r));
  return ext4tsBad ? 1 : 0;
}

process.exitCode = await main();
