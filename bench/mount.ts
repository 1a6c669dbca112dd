/**
 * Mount benchmark: `npm run bench:mount [-- options]` (see `--help`). Needs root.
 *
 * One ext4 image (bench/lib/mount-image.ts: bench:read's generated tree of ~53,800
 * entries plus a 512 MiB file of random bytes), mounted read-only three ways
 * (bench/lib/mount-tools.ts): the kernel's ext4 on a loop device, Debian's fuse2fs
 * (libfuse2) and `ext4ts mount`. The same client workloads run against each
 * (bench/lib/mount-workloads.ts):
 *
 *   walk     find + lstat of every entry;
 *   readall  open, read and sha256 every small file;
 *   seq      sequential read of the 512 MiB file;
 *   random   20,000 random 4 KiB preads of the 512 MiB file (fixed seed).
 *
 * "cold" = unmount, `sync; echo 3 > /proc/sys/vm/drop_caches`, a fresh mount, one run;
 * "warm" = the same run again on that mount. FUSE servers and clients are pinned to
 * the same CPU (taskset; this VM punishes cross-CPU wakeups, see
 * ../shared/reference/fuse-from-node.md). Each (workload, tool) gets `--reps` fresh
 * mounts, the tools' order rotating; medians are reported, with the ratios to the
 * kernel and to fuse2fs, the goals of the issue, the ext4ts server's peak RSS against
 * its cache budget (also without its pages of files: most of a node process's RSS at
 * start is the node binary, shared with every other node process), output checks (every tool must produce the kernel's output), an
 * SVG chart (docs/bench-mount.svg) and, where ext4ts misses a goal, a CPU profile of
 * its server (node --cpu-prof, foreground mount) with the top self-time functions.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ProfileSummary } from './lib/cpuprofile.js';
import { renderChart, type ChartGroup } from './lib/mount-chart.js';
import { summarizeServerProfile } from './lib/mount-profile.js';
import { BIG_NAME, ensureMountImage, type MountImage } from './lib/mount-image.js';
import { alive, buildCli, cleanup, memoryOf, mountedType, mountTool, toolVersion, TOOLS, unmountTool, type Mounted, type ToolEnv, type ToolName } from './lib/mount-tools.js';
import { hashBig, runWorkload, WORKLOAD_SHORT, WORKLOAD_TITLES, WORKLOADS, type WorkloadKey, type WorkloadParams, type WorkloadResult } from './lib/mount-workloads.js';
import { CA_CERTS_NOTE, CA_CERTS_UNSET, dropCaches, pinningAvailable, processCpu } from './lib/proc.js';
import { FULL_TREE, QUICK_TREE } from './lib/read-tree.js';
import { fmtBytes, fmtInt, fmtNum, fmtRatio, parseBytes, renderTable, type Column } from './lib/table.js';
import { UsageError, commandLine, intOption, listOption } from './lib/options.js';

const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCH_DIR = path.join(PROJECT_ROOT, '.bench');
const DEFAULT_CHART = path.join(PROJECT_ROOT, 'docs', 'bench-mount.svg');
const STATES = ['cold', 'warm'] as const;
type State = (typeof STATES)[number];

/** Goals of the issue for ext4ts, as its time / the kernel's; and never slower than fuse2fs. */
const GOALS: Record<WorkloadKey, Record<State, number>> = {
  walk: { cold: 1.5, warm: 2 },
  readall: { cold: 1.3, warm: 1.3 },
  seq: { cold: 1.5, warm: 1.5 },
  random: { cold: 1.5, warm: 1.5 },
};

/** The issue's own measurements (53,500 entries, median s), for comparison with this run. */
const ISSUE: Record<WorkloadKey, { kernel: [number, number | undefined]; fuse2fs: [number, number | undefined] }> = {
  walk: { kernel: [0.83, 0.13], fuse2fs: [7.5, 6.8] },
  readall: { kernel: [5.9, 0.79], fuse2fs: [18.8, 15.4] },
  seq: { kernel: [0.48, 0.07], fuse2fs: [1.32, 0.1] },
  random: { kernel: [2.25, undefined], fuse2fs: [2.06, undefined] },
};

const COLORS: Record<ToolName, string> = { kernel: '#7f7f7f', fuse2fs: '#ff7f0e', ext4ts: '#1f77b4' };
const LABELS: Record<ToolName, string> = { kernel: 'kernel ext4 (loop)', fuse2fs: 'fuse2fs', ext4ts: 'ext4ts' };

const HELP = `Usage: npm run bench:mount -- [options]        (as root)

ext4ts mount vs Debian's fuse2fs vs the kernel's ext4 (loop mount), read-only, on one
image: bench:read's generated tree (~53,800 entries; 5,380 with --quick) plus a 512 MiB
file of random bytes (128 MiB with --quick). Workloads, each cold (caches dropped, fresh
mount) and warm (the same run again on that mount):
  walk      find MNT -printf ... : readdir + lstat of every entry
  readall   find | xargs sha256sum: open, read and hash every small file
  seq       dd if=MNT/big.bin of=/dev/null bs=1M
  random    N random 4 KiB preads of big.bin from a Node client (fixed seed; timed in-process)
Prints medians, the ratios to the kernel and to fuse2fs, the issue's goals, the ext4ts
server's peak RSS vs its cache budget and output checks; writes an SVG chart; CPU-profiles
the ext4ts server on the workloads where it misses a goal.

Options:
  --quick               small tree, 128 MiB big file, 5,000 random reads, 1 run (no chart
                        unless --chart is given)
  --reps <n>            fresh mounts per (workload, tool), median reported (default 3; 1 with --quick)
  --only <list>         workloads to run, comma-separated (default walk,readall,seq,random)
  --tools <list>        tools to run (default kernel,fuse2fs,ext4ts; ratios need the kernel)
  --cpu <n>             CPU that servers and clients are pinned to (default 0; --cpu=-1: no pinning)
  --random-count <n>    random 4 KiB reads per run (default 20000)
  --timeout <s>         cap of one client run, seconds (default 900)
  --cli <file>          the ext4ts CLI (default: src/ built like npm run build into .bench/mount-cli/,
                        rebuilt when src/ changed; e.g. --cli dist/cli/ext4ts.js)
  --ext4ts-options <o>  extra -o list for ext4ts mount, after ro (e.g. cache_size=64M)
  --chart <file>        where the SVG chart goes (default docs/bench-mount.svg; not written
                        by --quick runs unless given)
  --no-chart            write no chart
  --profile             CPU-profile the ext4ts server on every workload (one extra mount each)
  --no-profile          never profile (default: profile the workloads that miss a goal)
  --json                print one JSON object on stdout (the report goes to stderr)
  --replot <json>       only redraw the chart (--chart, default docs/bench-mount.svg) from a
                        report saved with --json; measures nothing
  -h, --help            show this help

The image (mke2fs -d + debugfs write) and the compiled CLI are cached under .bench/.
`;

interface Config {
  readonly quick: boolean;
  readonly reps: number;
  readonly workloads: readonly WorkloadKey[];
  readonly tools: readonly ToolName[];
  readonly cpu: number | undefined;
  readonly randomCount: number;
  readonly timeout: number;
  readonly cli: string | undefined;
  readonly ext4tsOptions: string;
  readonly chart: string | undefined;
  readonly profile: 'auto' | 'on' | 'off';
  readonly json: boolean;
  /** A saved --json report to draw the chart from, instead of measuring. */
  readonly replot: string | undefined;
}

class Interrupted extends Error {}



function parseConfig(argv: readonly string[]): Config | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: 'boolean', default: false },
        reps: { type: 'string' },
        only: { type: 'string', default: WORKLOADS.join(',') },
        tools: { type: 'string', default: TOOLS.join(',') },
        cpu: { type: 'string', default: '0' },
        'random-count': { type: 'string' },
        timeout: { type: 'string', default: '900' },
        cli: { type: 'string' },
        'ext4ts-options': { type: 'string', default: '' },
        chart: { type: 'string' },
        'no-chart': { type: 'boolean', default: false },
        replot: { type: 'string' },
        profile: { type: 'boolean', default: false },
        'no-profile': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(message.split(/\.\s/)[0] ?? message);
  }
  if (values.help) return 'help';
  const quick = values.quick;
  const cpu = intOption('--cpu', values.cpu, -1, os.cpus().length - 1);
  if (values.profile && values['no-profile']) throw new UsageError('--profile and --no-profile exclude each other');
  const cli = values.cli === undefined ? undefined : path.resolve(values.cli);
  if (cli !== undefined && !fs.existsSync(cli)) throw new UsageError(`--cli ${values.cli}: no such file`);
  return {
    quick,
    reps: values.reps === undefined ? (quick ? 1 : 3) : intOption('--reps', values.reps, 1, 100),
    workloads: listOption('--only', values.only, WORKLOADS),
    tools: listOption('--tools', values.tools, TOOLS),
    cpu: cpu < 0 ? undefined : cpu,
    randomCount: values['random-count'] === undefined ? (quick ? 5000 : 20000) : intOption('--random-count', values['random-count'], 1, 10_000_000),
    timeout: intOption('--timeout', values.timeout, 1, 86_400),
    cli,
    ext4tsOptions: values['ext4ts-options'],
    chart: values['no-chart'] ? undefined : values.chart !== undefined ? path.resolve(values.chart) : quick ? undefined : DEFAULT_CHART,
    profile: values.profile ? 'on' : values['no-profile'] ? 'off' : 'auto',
    json: values.json,
    replot: values.replot === undefined ? undefined : path.resolve(values.replot),
  };
}

// ------------------------------------------------------------------ measuring

interface Sample {
  readonly tool: ToolName;
  readonly workload: WorkloadKey;
  readonly state: State;
  readonly rep: number;
  /** Runs on the mount this sample is the median of (warm runs shorter than 1 s are repeated). */
  readonly runs: number;
  readonly ok: boolean;
  readonly error?: string;
  readonly seconds: number;
  readonly wall: number;
  readonly clientCpu?: number;
  /** CPU seconds the server process used during the run (fuse2fs, ext4ts). */
  readonly serverCpu?: number;
  readonly count: number;
  readonly digest: string;
}

interface MountRecord {
  readonly tool: ToolName;
  readonly workload: WorkloadKey;
  readonly rep: number;
  readonly mountSeconds: number;
  readonly affinity: string | undefined;
  readonly rssAtMountKiB: number | undefined;
  readonly fileAtMountKiB: number | undefined;
  /** VmHWM just before the unmount. */
  readonly peakKiB: number | undefined;
  /** VmHWM less the pages of files (RssFile) then: the peak of the server's own memory, near enough. */
  readonly peakOwnKiB: number | undefined;
  readonly problem: string | undefined;
}

interface Ctx {
  readonly cfg: Config;
  readonly img: MountImage;
  readonly env: ToolEnv;
  readonly params: WorkloadParams;
  readonly mountpoint: string;
  readonly log: (line: string) => void;
  /** Sorted output lines of the first run of each (tool, workload, state), for the checks. */
  readonly firstLines: Map<string, readonly string[]>;
  /** sha256 of big.bin read through each tool's mount. */
  readonly bigHashes: Map<ToolName, string | undefined>;
}

let interrupted: string | undefined;

/** Let pending signal events run; throw if one asked to stop. */
async function checkpoint(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 1));
  if (interrupted !== undefined) throw new Interrupted(`interrupted by ${interrupted}`);
}



function key(tool: ToolName, workload: WorkloadKey, state: State): string {
  return `${tool}/${workload}/${state}`;
}

/** Warm runs: repeated while they took less than this in total (seconds), up to WARM_MAX_RUNS. */
const WARM_BUDGET = 1;
const WARM_MAX_RUNS = 5;

/** Several runs of one workload on one mount as one result: median times, all must agree. */
function combine(runs: readonly WorkloadResult[]): WorkloadResult {
  const first = runs[0];
  if (first === undefined) throw new Error('combine: no runs');
  if (runs.length === 1) return first;
  const bad = runs.find((r) => !r.ok);
  const digests = new Set(runs.map((r) => r.digest));
  const error = bad?.error ?? (digests.size > 1 ? 'repeated runs on one mount gave different outputs' : undefined);
  const cpus = runs.flatMap((r) => (r.clientCpu === undefined ? [] : [r.clientCpu]));
  const clientCpu = median(cpus);
  return {
    ok: error === undefined,
    ...(error === undefined ? {} : { error }),
    seconds: median(runs.map((r) => r.seconds)) ?? NaN,
    wall: median(runs.map((r) => r.wall)) ?? NaN,
    ...(clientCpu === undefined ? {} : { clientCpu }),
    count: first.count,
    digest: first.digest,
    ...(first.lines === undefined ? {} : { lines: first.lines }),
  };
}

function toSample(tool: ToolName, workload: WorkloadKey, state: State, rep: number, r: WorkloadResult, serverCpu: number | undefined, runs: number): Sample {
  return {
    tool,
    workload,
    state,
    rep,
    runs,
    ok: r.ok,
    ...(r.error === undefined ? {} : { error: r.error }),
    seconds: r.seconds,
    wall: r.wall,
    ...(r.clientCpu === undefined ? {} : { clientCpu: r.clientCpu }),
    ...(serverCpu === undefined ? {} : { serverCpu }),
    count: r.count,
    digest: r.digest,
  };
}

/** One fresh mount: cold run, warm run, memory; always unmounted. */
async function measureMount(ctx: Ctx, tool: ToolName, workload: WorkloadKey, rep: number, samples: Sample[], mounts: MountRecord[]): Promise<void> {
  dropCaches();
  const m: Mounted = await mountTool(tool, ctx.img.image, ctx.mountpoint, ctx.env);
  let peakKiB: number | undefined;
  let peakOwnKiB: number | undefined;
  let problem: string | undefined;
  try {
    for (const state of STATES) {
      // Warm runs shorter than WARM_BUDGET are repeated (their median counts): a
      // 50 ms run is otherwise mostly scheduling noise on a loaded machine.
      const runs: WorkloadResult[] = [];
      let spent = 0;
      const cpu0 = processCpu(m.pid);
      do {
        const r = runWorkload(workload, ctx.mountpoint, ctx.params);
        runs.push(r);
        spent += r.wall;
        await checkpoint();
      } while (state === 'warm' && runs.every((r) => r.ok) && runs.length < WARM_MAX_RUNS && spent < WARM_BUDGET);
      const cpu1 = processCpu(m.pid);
      const serverCpu = cpu0 === undefined || cpu1 === undefined ? undefined : (cpu1 - cpu0) / runs.length;
      const r = combine(runs);
      samples.push(toSample(tool, workload, state, rep, r, serverCpu, runs.length));
      if (r.lines !== undefined && !ctx.firstLines.has(key(tool, workload, state))) ctx.firstLines.set(key(tool, workload, state), r.lines);
      ctx.log(`  ${tool.padEnd(7)} ${workload.padEnd(7)} ${state}: ${r.ok ? `${fmtNum(r.seconds, 3)} s` : `FAILED (${r.error ?? ''})`}${runs.length > 1 ? ` (median of ${runs.length})` : ''}`);
    }
    if (workload === 'seq' && !ctx.bigHashes.has(tool)) ctx.bigHashes.set(tool, hashBig(ctx.mountpoint, ctx.params));
    const mem = memoryOf(m.pid);
    peakKiB = mem?.hwmKiB;
    peakOwnKiB = mem === undefined ? undefined : mem.hwmKiB - mem.fileKiB;
  } finally {
    problem = await unmountTool(m, ctx.env);
    mounts.push({ tool, workload, rep, mountSeconds: m.mountSeconds, affinity: m.affinity, rssAtMountKiB: m.rssAtMountKiB, fileAtMountKiB: m.fileAtMountKiB, peakKiB, peakOwnKiB, problem });
  }
}

/** Fill `samples` and `mounts` (which keep what was measured if this throws). */
async function measure(ctx: Ctx, samples: Sample[], mounts: MountRecord[]): Promise<void> {
  for (let rep = 0; rep < ctx.cfg.reps; rep++) {
    ctx.log(`run ${rep + 1} of ${ctx.cfg.reps} (load average ${fmtNum(os.loadavg()[0] ?? 0, 2)}):`);
    for (const workload of ctx.cfg.workloads) {
      const n = ctx.cfg.tools.length;
      const order = ctx.cfg.tools.map((_, i) => ctx.cfg.tools[(i + rep) % n] as ToolName);
      for (const tool of order) {
        try {
          await measureMount(ctx, tool, workload, rep, samples, mounts);
        } catch (error) {
          if (error instanceof Interrupted) throw error;
          const message = error instanceof Error ? error.message : String(error);
          ctx.log(`  ${tool} ${workload}: FAILED (${message})`);
          for (const state of STATES) samples.push({ tool, workload, state, rep, runs: 0, ok: false, error: message, seconds: NaN, wall: NaN, count: 0, digest: '' });
        }
        await checkpoint();
      }
    }
  }
}

// ------------------------------------------------------------------ profiling

interface ProfileResult {
  readonly workload: WorkloadKey;
  readonly seconds: Partial<Record<State, number>>;
  /** utime + stime of the server during each run. */
  readonly serverCpu?: Partial<Record<State, number>>;
  readonly summary?: ProfileSummary;
  readonly error?: string;
}

/**
 * Serve one fresh mount in the foreground under `node --cpu-prof` (pinned like the
 * measured runs), run the workload cold and warm, unmount; the worker thread's
 * profile (the one with the most sampled time) is summarized.
 */
async function profileWorkload(ctx: Ctx, workload: WorkloadKey): Promise<ProfileResult> {
  const dir = path.join(BENCH_DIR, 'mount-prof', workload);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  dropCaches();
  const opts = ctx.cfg.ext4tsOptions === '' ? [] : ['-o', ctx.cfg.ext4tsOptions];
  const argv = [process.execPath, '--cpu-prof', '--cpu-prof-dir', dir, ctx.env.cli, 'mount', '-f', ctx.img.image, ctx.mountpoint, ...opts];
  const pinnedArgv = ctx.cfg.cpu === undefined ? argv : ['taskset', '-c', String(ctx.cfg.cpu), ...argv];
  const log = fs.openSync(ctx.env.logFile, 'a');
  const child = spawn(pinnedArgv[0] as string, pinnedArgv.slice(1), { detached: true, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const pid = child.pid;
  child.unref();
  if (pid === undefined) return { workload, seconds: {}, error: 'cannot start the server' };
  const seconds: Partial<Record<State, number>> = {};
  const serverCpu: Partial<Record<State, number>> = {};
  try {
    const limit = Date.now() + 30_000;
    while (!(mountedType(ctx.mountpoint) ?? '').startsWith('fuse')) {
      if (!alive(pid) || Date.now() > limit) return { workload, seconds, error: 'the profiled server did not mount' };
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    for (const state of STATES) {
      const cpu0 = processCpu(pid);
      const r = runWorkload(workload, ctx.mountpoint, ctx.params);
      const cpu1 = processCpu(pid);
      if (cpu0 !== undefined && cpu1 !== undefined) serverCpu[state] = cpu1 - cpu0;
      if (r.ok) seconds[state] = r.seconds;
      ctx.log(`  profiled ext4ts ${workload} ${state}: ${r.ok ? `${fmtNum(r.seconds, 3)} s` : `FAILED (${r.error ?? ''})`}`);
      await checkpoint();
    }
  } finally {
    if (mountedType(ctx.mountpoint) !== undefined) spawnSync('umount', [ctx.mountpoint], { stdio: 'ignore' });
    const limit = Date.now() + 60_000;
    while (alive(pid) && Date.now() < limit) await new Promise((resolve) => setTimeout(resolve, 20));
    if (alive(pid)) process.kill(pid, 'SIGTERM');
    cleanup(ctx.mountpoint);
  }
  let best: ProfileSummary | undefined;
  for (const name of fs.readdirSync(dir)) {
    if (!name.endsWith('.cpuprofile')) continue;
    const s = summarizeServerProfile(path.join(dir, name), PROJECT_ROOT, 20);
    if (best === undefined || s.totalMs > best.totalMs) best = s;
  }
  return best === undefined ? { workload, seconds, serverCpu, error: 'no profile was written' } : { workload, seconds, serverCpu, summary: best };
}

// ------------------------------------------------------------------ summary

interface Cell {
  readonly tool: ToolName;
  readonly workload: WorkloadKey;
  readonly state: State;
  readonly runs: number;
  readonly failures: number;
  readonly median: number | undefined;
  readonly min: number | undefined;
  readonly max: number | undefined;
  readonly clientCpu: number | undefined;
  readonly serverCpu: number | undefined;
  readonly error: string | undefined;
}

function median(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function summarize(cfg: Config, samples: readonly Sample[]): Cell[] {
  const cells: Cell[] = [];
  for (const workload of cfg.workloads) {
    for (const state of STATES) {
      for (const tool of cfg.tools) {
        const all = samples.filter((s) => s.tool === tool && s.workload === workload && s.state === state);
        const ok = all.filter((s) => s.ok);
        const secs = ok.map((s) => s.seconds);
        const cpus = ok.flatMap((s) => (s.clientCpu === undefined ? [] : [s.clientCpu]));
        const scpus = ok.flatMap((s) => (s.serverCpu === undefined ? [] : [s.serverCpu]));
        cells.push({
          tool,
          workload,
          state,
          runs: all.length,
          failures: all.length - ok.length,
          median: median(secs),
          min: secs.length === 0 ? undefined : Math.min(...secs),
          max: secs.length === 0 ? undefined : Math.max(...secs),
          clientCpu: median(cpus),
          serverCpu: median(scpus),
          error: all.find((s) => !s.ok)?.error,
        });
      }
    }
  }
  return cells;
}

function cellOf(cells: readonly Cell[], tool: ToolName, workload: WorkloadKey, state: State): Cell | undefined {
  return cells.find((c) => c.tool === tool && c.workload === workload && c.state === state);
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b <= 0 ? undefined : a / b;
}

interface Goal {
  readonly workload: WorkloadKey;
  readonly state: State;
  readonly ext4ts: number | undefined;
  readonly kernel: number | undefined;
  readonly fuse2fs: number | undefined;
  readonly vsKernel: number | undefined;
  readonly vsFuse2fs: number | undefined;
  readonly goalVsKernel: number;
  readonly kernelMet: boolean | undefined;
  readonly fuse2fsMet: boolean | undefined;
}

function goals(cfg: Config, cells: readonly Cell[]): Goal[] {
  const out: Goal[] = [];
  for (const workload of cfg.workloads) {
    for (const state of STATES) {
      const e = cellOf(cells, 'ext4ts', workload, state)?.median;
      const k = cellOf(cells, 'kernel', workload, state)?.median;
      const f = cellOf(cells, 'fuse2fs', workload, state)?.median;
      const vsKernel = ratio(e, k);
      const vsFuse2fs = ratio(e, f);
      const goalVsKernel = GOALS[workload][state];
      out.push({
        workload,
        state,
        ext4ts: e,
        kernel: k,
        fuse2fs: f,
        vsKernel,
        vsFuse2fs,
        goalVsKernel,
        kernelMet: vsKernel === undefined ? undefined : vsKernel <= goalVsKernel,
        fuse2fsMet: vsFuse2fs === undefined ? undefined : vsFuse2fs <= 1,
      });
    }
  }
  return out;
}

function secs(v: number | undefined): string {
  return v === undefined ? '-' : v >= 100 ? fmtNum(v, 1) : fmtNum(v, 3);
}

function renderResults(ctx: Ctx, cells: readonly Cell[]): string {
  const tools = ctx.cfg.tools;
  const columns: Column[] = [
    { title: 'workload', align: 'left' },
    { title: 'state', align: 'left' },
    ...tools.map((t) => ({ title: `${t} s` })),
    ...(tools.includes('fuse2fs') ? [{ title: 'fuse2fs/kernel' }] : []),
    ...(tools.includes('ext4ts') ? [{ title: 'ext4ts/kernel' }, { title: 'goal' }, { title: 'ext4ts/fuse2fs' }] : []),
  ];
  const rows: string[][] = [];
  for (const workload of ctx.cfg.workloads) {
    for (const state of STATES) {
      const med = (t: ToolName): number | undefined => cellOf(cells, t, workload, state)?.median;
      const row = [state === 'cold' ? WORKLOAD_TITLES[workload] : '', state];
      for (const t of tools) {
        const c = cellOf(cells, t, workload, state);
        row.push(c?.median === undefined ? 'failed' : `${secs(c.median)}${c.failures > 0 ? ` (${c.failures} failed)` : ''}`);
      }
      if (tools.includes('fuse2fs')) row.push(fmtRatio(ratio(med('fuse2fs'), med('kernel'))));
      if (tools.includes('ext4ts')) {
        const vk = ratio(med('ext4ts'), med('kernel'));
        const vf = ratio(med('ext4ts'), med('fuse2fs'));
        row.push(fmtRatio(vk), `<= ${GOALS[workload][state]}x ${vk === undefined ? '' : vk <= GOALS[workload][state] ? 'met' : 'MISSED'}`.trimEnd(), `${fmtRatio(vf)}${vf !== undefined && vf > 1 ? ' SLOWER' : ''}`);
      }
      rows.push(row);
    }
  }
  const spread: string[][] = [];
  for (const workload of ctx.cfg.workloads) {
    for (const state of STATES) {
      const row = [state === 'cold' ? WORKLOAD_SHORT[workload] : '', state];
      for (const t of tools) {
        const c = cellOf(cells, t, workload, state);
        row.push(c?.min === undefined ? '-' : `${secs(c.min)}..${secs(c.max)}`);
        row.push(c?.clientCpu === undefined ? '-' : fmtNum(c.clientCpu, 2));
        row.push(t === 'kernel' ? '' : c?.serverCpu === undefined ? '-' : fmtNum(c.serverCpu, 2));
      }
      spread.push(row);
    }
  }
  const spreadCols: Column[] = [{ title: 'workload', align: 'left' }, { title: 'state', align: 'left' }];
  for (const t of tools) spreadCols.push({ title: `${t} min..max s` }, { title: 'client CPU s' }, { title: t === 'kernel' ? '' : 'server CPU s' });
  return [
    'Results: median seconds; ratios are time / time (lower is better; ext4ts/fuse2fs > 1x = ext4ts slower than fuse2fs)',
    renderTable(columns, rows),
    '',
    'Spread and CPU: min..max of the runs; client CPU = user+sys of the client process tree; server CPU = the server process during the run (medians)',
    renderTable(spreadCols, spread),
  ].join('\n');
}

function renderGoals(list: readonly Goal[]): string {
  const out = ['Goals (issue): ext4ts within 1.5x of the kernel cold and 2x warm on the walk, 1.3x reading every file, 1.5x on sequential and random reads; never slower than fuse2fs'];
  for (const g of list) {
    const k = g.vsKernel === undefined ? 'vs kernel: -' : `${fmtRatio(g.vsKernel)} the kernel's time (goal <= ${g.goalVsKernel}x: ${g.kernelMet === true ? 'met' : 'MISSED'})`;
    const f = g.vsFuse2fs === undefined ? 'vs fuse2fs: -' : `${fmtRatio(g.vsFuse2fs)} fuse2fs's (${g.fuse2fsMet === true ? 'met' : 'MISSED'})`;
    out.push(`  ${WORKLOAD_SHORT[g.workload].padEnd(14)} ${g.state}: ext4ts ${secs(g.ext4ts)} s, kernel ${secs(g.kernel)} s, fuse2fs ${secs(g.fuse2fs)} s: ${k}; ${f}`);
  }
  const missed = list.filter((g) => g.kernelMet === false || g.fuse2fsMet === false).length;
  out.push(`  ${list.length - missed} of ${list.length} cells meet both goals`);
  return out.join('\n');
}

interface MemorySummary {
  readonly budgetBytes: number;
  readonly ext4tsAtMountKiB: number | undefined;
  /** RssFile right after the mount (median): the node binary and its libraries. */
  readonly ext4tsFileAtMountKiB: number | undefined;
  readonly ext4tsPeakKiB: number | undefined;
  /** The largest VmHWM less RssFile. */
  readonly ext4tsPeakOwnKiB: number | undefined;
  readonly ext4tsPeakByWorkload: Partial<Record<WorkloadKey, number>>;
  readonly fuse2fsPeakKiB: number | undefined;
  readonly fuse2fsPeakOwnKiB: number | undefined;
  readonly affinities: Partial<Record<ToolName, string[]>>;
}

function summarizeMemory(cfg: Config, mounts: readonly MountRecord[]): MemorySummary {
  const m = /(?:^|,)cache_size=([^,]+)/.exec(cfg.ext4tsOptions);
  const budgetBytes = (m === null ? undefined : parseBytes(m[1] ?? '')) ?? Math.min(32 * 1024 * 1024, Math.floor(os.totalmem() / 20));
  const e = mounts.filter((x) => x.tool === 'ext4ts');
  const byWorkload: Partial<Record<WorkloadKey, number>> = {};
  for (const x of e) if (x.peakKiB !== undefined) byWorkload[x.workload] = Math.max(byWorkload[x.workload] ?? 0, x.peakKiB);
  /** The largest `field` over `tool`'s mounts. */
  const maxOf = (tool: ToolName, field: 'peakKiB' | 'peakOwnKiB'): number | undefined => {
    const values = mounts.filter((x) => x.tool === tool).flatMap((x) => (x[field] === undefined ? [] : [x[field]]));
    return values.length === 0 ? undefined : Math.max(...values);
  };
  const affinities: Partial<Record<ToolName, string[]>> = {};
  for (const x of mounts) if (x.affinity !== undefined) affinities[x.tool] = [...new Set([...(affinities[x.tool] ?? []), x.affinity])];
  return {
    budgetBytes,
    ext4tsAtMountKiB: median(e.flatMap((x) => (x.rssAtMountKiB === undefined ? [] : [x.rssAtMountKiB]))),
    ext4tsFileAtMountKiB: median(e.flatMap((x) => (x.fileAtMountKiB === undefined ? [] : [x.fileAtMountKiB]))),
    ext4tsPeakKiB: maxOf('ext4ts', 'peakKiB'),
    ext4tsPeakOwnKiB: maxOf('ext4ts', 'peakOwnKiB'),
    ext4tsPeakByWorkload: byWorkload,
    fuse2fsPeakKiB: maxOf('fuse2fs', 'peakKiB'),
    fuse2fsPeakOwnKiB: maxOf('fuse2fs', 'peakOwnKiB'),
    affinities,
  };
}

function mib(kib: number | undefined): string {
  return kib === undefined ? '-' : `${fmtNum(kib / 1024, 1)} MiB`;
}

function renderMemory(mem: MemorySummary): string {
  if (mem.ext4tsPeakKiB === undefined) return '';
  const budgetKiB = mem.budgetBytes / 1024;
  const over = mem.ext4tsPeakKiB - budgetKiB;
  const growth = mem.ext4tsAtMountKiB === undefined ? undefined : mem.ext4tsPeakKiB - mem.ext4tsAtMountKiB;
  const file = mem.ext4tsFileAtMountKiB;
  const own = mem.ext4tsPeakOwnKiB;
  return [
    'Memory of the ext4ts server (one process: main thread + worker; /proc/PID/status)',
    `  cache budget ${fmtBytes(mem.budgetBytes)}; RSS right after the mount ${mib(mem.ext4tsAtMountKiB)} (median); peak RSS (VmHWM) ${mib(mem.ext4tsPeakKiB)} = budget + ${mib(over)}${growth === undefined ? '' : `; growth during the runs ${mib(growth)} (${fmtNum((growth / budgetKiB) * 100, 0)}% of the budget)`}`,
    ...(file === undefined || own === undefined || mem.ext4tsAtMountKiB === undefined
      ? []
      : [
          `  of the RSS, pages of files (RssFile: the node binary and its libraries, shared with every node process): ${mib(file)} after the mount; without them ${mib(mem.ext4tsAtMountKiB - file)} after the mount and ${mib(own)} at the peak`,
        ]),
    `  peak by workload: ${Object.entries(mem.ext4tsPeakByWorkload)
      .map(([w, k]) => `${w} ${mib(k)}`)
      .join(', ')}`,
    `  fuse2fs peak RSS for comparison: ${mib(mem.fuse2fsPeakKiB)}${mem.fuse2fsPeakOwnKiB === undefined ? '' : ` (without its pages of files ${mib(mem.fuse2fsPeakOwnKiB)})`}`,
  ].join('\n');
}

interface CheckLine {
  readonly workload: WorkloadKey;
  readonly state: State;
  readonly tool: ToolName;
  readonly ok: boolean;
  readonly text: string;
}

function firstDifference(a: readonly string[], b: readonly string[]): string {
  const setB = new Set(b);
  const setA = new Set(a);
  const onlyA = a.filter((l) => !setB.has(l));
  const onlyB = b.filter((l) => !setA.has(l));
  return `${onlyA.length} line(s) differ; first: kernel "${onlyA[0] ?? ''}" vs "${onlyB[0] ?? ''}"`;
}

function checks(ctx: Ctx, samples: readonly Sample[]): CheckLine[] {
  const out: CheckLine[] = [];
  const expectedCount: Record<WorkloadKey, number> = { walk: ctx.img.entries, readall: ctx.img.files, seq: ctx.img.spec.bigBytes, random: ctx.cfg.randomCount };
  for (const workload of ctx.cfg.workloads) {
    for (const state of STATES) {
      const ref = samples.find((s) => s.tool === 'kernel' && s.workload === workload && s.state === state && s.ok);
      for (const tool of ctx.cfg.tools) {
        const mine = samples.filter((s) => s.tool === tool && s.workload === workload && s.state === state && s.ok);
        if (mine.length === 0) continue;
        const badCount = mine.filter((s) => s.count !== expectedCount[workload]);
        const problems: string[] = [];
        if (badCount.length > 0) problems.push(`count ${badCount[0]?.count ?? 0}, expected ${expectedCount[workload]}`);
        if (ref !== undefined && tool !== 'kernel') {
          const differ = mine.filter((s) => s.digest !== ref.digest);
          if (differ.length > 0) {
            const a = ctx.firstLines.get(key('kernel', workload, state));
            const b = ctx.firstLines.get(key(tool, workload, state));
            problems.push(`output differs from the kernel's in ${differ.length} of ${mine.length} run(s)${a !== undefined && b !== undefined ? `: ${firstDifference(a, b)}` : ''}`);
          }
        }
        const consistent = new Set(mine.map((s) => s.digest)).size === 1;
        if (!consistent) problems.push('runs disagree with each other');
        out.push({ workload, state, tool, ok: problems.length === 0, text: problems.length === 0 ? `ok (${fmtInt(mine[0]?.count ?? 0)} ${workload === 'walk' ? 'entries' : workload === 'readall' ? 'files' : workload === 'seq' ? 'bytes' : 'reads'}${tool === 'kernel' ? '' : ', same output as the kernel'})` : problems.join('; ') });
      }
    }
  }
  return out;
}

function renderChecks(ctx: Ctx, list: readonly CheckLine[], mounts: readonly MountRecord[]): string {
  const out = ['Checks (every run\'s output digest vs the kernel\'s; counts vs the image)'];
  for (const c of list) out.push(`  ${WORKLOAD_SHORT[c.workload].padEnd(14)} ${c.state} ${c.tool.padEnd(7)}: ${c.ok ? c.text : `PROBLEM: ${c.text}`}`);
  for (const [tool, hash] of ctx.bigHashes) out.push(`  sha256 of big.bin through ${tool.padEnd(7)}: ${hash === ctx.img.bigSha256 ? 'ok' : `PROBLEM: ${hash ?? 'failed'} (expected ${ctx.img.bigSha256})`}`);
  for (const m of mounts) if (m.problem !== undefined) out.push(`  unmount ${m.tool} (${m.workload}, run ${m.rep + 1}): PROBLEM: ${m.problem}`);
  return out.join('\n');
}

function renderProfiles(profiles: readonly ProfileResult[]): string {
  const out: string[] = [
    'How to read the profiles: V8 samples wall time of the worker thread, including time blocked in native calls. Native',
    'calls are labelled by their JavaScript caller: "read [via serve]" (worker.ts) = blocked on /dev/fuse waiting for the next',
    'request (kernel + client time); "read [via readAt]" (file-channel.ts) = pread of the image (cold: includes the disk);',
    '"writeBuffers [via ...]" = the reply writev (on one CPU it may include running the woken client). Server CPU = utime+stime.',
    '',
  ];
  for (const p of profiles) {
    const times = STATES.map((s) => {
      const t = p.seconds[s];
      const c = p.serverCpu?.[s];
      return `${s} ${t === undefined ? '-' : `${fmtNum(t, 3)} s`}${c === undefined ? '' : ` (server CPU ${fmtNum(c, 2)} s)`}`;
    }).join(', ');
    if (p.summary === undefined) {
      out.push(`CPU profile of the ext4ts server, ${WORKLOAD_TITLES[p.workload]}: failed (${p.error ?? ''})`);
      continue;
    }
    const s = p.summary;
    out.push(`CPU profile of the ext4ts server (worker thread), ${WORKLOAD_TITLES[p.workload]}, one mount cold + warm (${times} under the profiler): ${fmtNum(s.totalMs, 0)} ms of CPU sampled (${path.relative(PROJECT_ROOT, s.file)})`);
    const columns: Column[] = [{ title: 'self ms' }, { title: 'self' }, { title: 'total' }, { title: 'function (source)', align: 'left' }];
    out.push(renderTable(columns, s.functions.map((f) => [fmtNum(f.selfMs, 0), `${(f.selfShare * 100).toFixed(1)}%`, `${(f.totalShare * 100).toFixed(1)}%`, f.where])));
    out.push(`  self time by file: ${s.byFile.slice(0, 10).map((f) => `${f.file} ${(f.selfShare * 100).toFixed(1)}%`).join(', ')}`);
    out.push('');
  }
  return out.join('\n').trimEnd();
}

/** What the chart shows: also what --replot reads back from a --json report. */
interface ChartInput {
  readonly reps: number;
  readonly randomCount: number;
  readonly tools: readonly ToolName[];
  readonly workloads: readonly WorkloadKey[];
  readonly entries: number;
  readonly bigBytes: number;
  readonly cpus: number;
  readonly loadAtStart: number;
  readonly loadAtEnd: number;
  /** YYYY-MM-DD. */
  readonly date: string;
  readonly cells: readonly Cell[];
}

function writeChart(file: string, c: ChartInput): void {
  const groups: ChartGroup[] = [];
  for (const workload of c.workloads) {
    for (const state of STATES) {
      groups.push({
        title: [WORKLOAD_SHORT[workload], state],
        reference: cellOf(c.cells, 'kernel', workload, state)?.median,
        goal: c.tools.includes('ext4ts') ? GOALS[workload][state] : undefined,
        bars: c.tools.map((t) => ({ label: LABELS[t], seconds: cellOf(c.cells, t, workload, state)?.median })),
      });
    }
  }
  const busy = Math.max(c.loadAtStart, c.loadAtEnd) > 1.2;
  const svg = renderChart({
    title: "ext4ts vs fuse2fs vs the kernel's ext4, read-only mounts",
    subtitle: [
      `Median time of ${c.reps} fresh mount${c.reps === 1 ? '' : 's'} divided by the kernel's (log scale; lower is better). Image: ${fmtInt(c.entries)}-entry tree + ${fmtBytes(c.bigBytes)} file;`,
      `${fmtInt(c.randomCount)} random 4 KiB reads. cold = caches dropped + fresh mount; warm = the same run repeated on that mount. Server and client on one CPU.`,
      `npm run bench:mount, ${c.date}, ${c.cpus} vCPUs, load average ${c.loadAtStart.toFixed(1)} to ${c.loadAtEnd.toFixed(1)}${busy ? ' (other jobs were running: noisy)' : ''}.`,
    ],
    colors: c.tools.map((t) => COLORS[t]),
    groups,
  });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, svg);
}

/** --replot: the chart of a saved --json report, without measuring. */
function replot(jsonFile: string, chart: string): void {
  const j = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as {
    benchmark?: string;
    date?: string;
    config: { reps: number; randomCount: number; tools: ToolName[]; workloads: WorkloadKey[] };
    image: { entries: number; bigBytes: number };
    machine: { cpus: number; loadAtStart: number[]; loadAtEnd: number[] };
    cells: Cell[];
  };
  if (j.benchmark !== 'mount') throw new UsageError(`--replot ${jsonFile}: not a bench:mount --json report`);
  writeChart(chart, {
    reps: j.config.reps,
    randomCount: j.config.randomCount,
    tools: j.config.tools,
    workloads: j.config.workloads,
    entries: j.image.entries,
    bigBytes: j.image.bigBytes,
    cpus: j.machine.cpus,
    loadAtStart: j.machine.loadAtStart[0] ?? 0,
    loadAtEnd: j.machine.loadAtEnd[0] ?? 0,
    date: j.date ?? fs.statSync(jsonFile).mtime.toISOString().slice(0, 10),
    cells: j.cells,
  });
}

// ------------------------------------------------------------------ main

async function main(): Promise<number> {
  const started = performance.now();
  const cfg = commandLine('bench:mount', HELP, parseConfig);
  if ('exit' in cfg) return cfg.exit;
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  if (cfg.replot !== undefined) {
    const chart = cfg.chart ?? DEFAULT_CHART;
    try {
      replot(cfg.replot, chart);
    } catch (error) {
      log(`bench:mount: --replot ${cfg.replot}: ${error instanceof Error ? error.message : String(error)}`);
      return 1;
    }
    log(`Chart: ${path.relative(PROJECT_ROOT, chart)} (from ${cfg.replot})`);
    return 0;
  }
  const report = cfg.json ? log : (s: string): void => void process.stdout.write(`${s}\n`);
  if (process.getuid?.() !== 0) {
    log('bench:mount: needs root (mounts, drop_caches)');
    return 1;
  }
  const fuse2fsVersion = toolVersion(['fuse2fs', '-V'], /^(fuse2fs|FUSE library)/);
  if (cfg.tools.includes('fuse2fs') && (fuse2fsVersion === undefined || !/fuse2fs/i.test(fuse2fsVersion))) {
    log('bench:mount: fuse2fs not found (apt-get install -y fuse2fs), or pass --tools kernel,ext4ts');
    return 1;
  }
  for (const cmd of ['mke2fs', 'debugfs', 'find', 'dd', 'sha256sum', 'bash', 'xargs']) {
    if (spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status !== 0) {
      log(`bench:mount: ${cmd} not found`);
      return 1;
    }
  }
  const loadAtStart = os.loadavg();

  fs.mkdirSync(BENCH_DIR, { recursive: true });
  const name = cfg.quick ? 'quick' : 'full';
  const img = ensureMountImage(BENCH_DIR, name, { tree: cfg.quick ? QUICK_TREE : FULL_TREE, bigBytes: (cfg.quick ? 128 : 512) * 1024 * 1024, fsSize: cfg.quick ? '1G' : '2G' }, log);
  let cli: { main: string; note: string };
  if (cfg.cli !== undefined) cli = { main: cfg.cli, note: `${path.relative(PROJECT_ROOT, cfg.cli)} (--cli)` };
  else cli = buildCli(PROJECT_ROOT, BENCH_DIR, log);

  const mountpoint = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ext4ts-bench-mount-')));
  const logFile = path.join(BENCH_DIR, 'mount-servers.log');
  fs.writeFileSync(logFile, '');
  const env: ToolEnv = { cpu: cfg.cpu, cli: cli.main, ext4tsOptions: cfg.ext4tsOptions, logFile };
  const params: WorkloadParams = { cpu: cfg.cpu, timeoutSeconds: cfg.timeout, bigName: BIG_NAME, bigBytes: img.spec.bigBytes, randomCount: cfg.randomCount, randomSeed: 20240601 };
  const ctx: Ctx = { cfg, img, env, params, mountpoint, log, firstLines: new Map(), bigHashes: new Map() };

  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted = signal;
  };
  const lastResort = (): void => cleanup(mountpoint);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', lastResort);

  const samples: Sample[] = [];
  const mounts: MountRecord[] = [];
  const profiles: ProfileResult[] = [];
  let cells: Cell[] = [];
  let goalList: Goal[] = [];
  let abort: string | undefined;
  try {
    log(`measuring ${cfg.workloads.join(', ')} with ${cfg.tools.join(', ')}, ${cfg.reps} run(s) each, mount point ${mountpoint} ...`);
    await measure(ctx, samples, mounts);
    cells = summarize(cfg, samples);
    goalList = goals(cfg, cells);
    const missed = goalList.filter((g) => g.kernelMet === false || g.fuse2fsMet === false).map((g) => g.workload);
    const toProfile = !cfg.tools.includes('ext4ts') ? [] : cfg.profile === 'on' ? cfg.workloads : cfg.profile === 'auto' ? cfg.workloads.filter((w) => missed.includes(w)) : [];
    if (toProfile.length > 0) log(`CPU-profiling the ext4ts server (${toProfile.join(', ')}) ...`);
    for (const w of toProfile) profiles.push(await profileWorkload(ctx, w));
  } catch (error) {
    if (!(error instanceof Interrupted)) throw error;
    abort = error.message;
    cells = summarize(cfg, samples);
    goalList = goals(cfg, cells);
  } finally {
    cleanup(mountpoint);
    try {
      fs.rmdirSync(mountpoint);
    } catch {
      // still busy: leave the empty directory
    }
    process.off('exit', lastResort);
  }

  const loadAtEnd = os.loadavg();
  const elapsed = (performance.now() - started) / 1000;
  const mem = summarizeMemory(cfg, mounts);
  const checkList = checks(ctx, samples);
  const m = img.tree.manifest;
  const cpus = os.cpus();
  const load = (l: number[]): string => l.map((x) => x.toFixed(2)).join(' ');
  const busy = Math.max(loadAtStart[0] ?? 0, loadAtEnd[0] ?? 0) > 1.2;
  const kernelRelease = os.release();
  const header = [
    `ext4ts mount benchmark (npm run bench:mount -- --help for options)${cfg.quick ? ' — QUICK' : ''}${abort === undefined ? '' : ` — ABORTED (${abort})`}`,
    `  image      ${path.relative(PROJECT_ROOT, img.image)}${img.generatedSeconds > 0 ? ` (generated in ${img.generatedSeconds.toFixed(1)} s)` : ' (reused)'}: ext4, 4 KiB blocks; ${fmtInt(img.entries)} entries below the root: ${fmtInt(m.files)} files of 0-8 KiB (${fmtBytes(m.bytes)}), ${fmtInt(m.dirs.length - 1)} directories, ${fmtInt(m.symlinks)} symlinks, lost+found, /${BIG_NAME} (${fmtBytes(img.spec.bigBytes)} random)`,
    `  kernel     Linux ${kernelRelease} ext4: mount -o loop,ro IMG MNT`,
    `  fuse2fs    ${fuse2fsVersion ?? '-'}: taskset fuse2fs IMG MNT -o ro -f (its default multithreaded loop and options)`,
    `  ext4ts     taskset node ${path.relative(PROJECT_ROOT, cli.main)} mount IMG MNT${cfg.ext4tsOptions === '' ? '' : ` -o ${cfg.ext4tsOptions}`} (${cli.note}); ext4ts umount waits for the server`,
    `  pinning    ${cfg.cpu === undefined || !pinningAvailable() ? 'none' : `servers and clients on CPU ${cfg.cpu} (taskset -c ${cfg.cpu}); server affinity seen: ${Object.entries(mem.affinities).map(([t, a]) => `${t} ${a.join('/')}`).join(', ') || '-'}`}`,
    ...(CA_CERTS_UNSET ? [`  env        ${CA_CERTS_NOTE}`] : []),
    `  runs       ${cfg.reps} fresh mount(s) per workload and tool (tools rotating), median; cold = umount, sync, drop_caches, fresh mount; warm = the same run again on that mount`,
    `             (a warm run shorter than ${WARM_BUDGET} s is repeated on the mount, up to ${WARM_MAX_RUNS} runs or ${WARM_BUDGET} s in all, and counts with the median of those runs)`,
    `  workloads  walk: find MNT -printf '%y %s %m %n %U %G %T@ %P\\n'; readall: find -type f -print0 | xargs -0 sha256sum; seq: dd bs=1M; random: ${fmtInt(cfg.randomCount)} x pread 4 KiB (Node client, timed in-process)`,
    `  machine    node ${process.version}, ${cpus.length} CPU(s) ${cpus[0]?.model.trim() ?? ''}; load average ${load(loadAtStart)} at start, ${load(loadAtEnd)} at end${busy ? ' (OTHER LOAD on the machine: timings are noisy)' : ''}`,
    `  elapsed    ${elapsed.toFixed(0)} s`,
  ].join('\n');
  const issueLines = [
    "The issue's measurements (53,500 entries, cold / warm s), for comparison:",
    ...cfg.workloads.map((w) => {
      const i = ISSUE[w];
      const pair = (p: [number, number | undefined]): string => `${p[0]}${p[1] === undefined ? '' : ` / ${p[1]}`}`;
      return `  ${WORKLOAD_SHORT[w].padEnd(14)} kernel ${pair(i.kernel)}, fuse2fs ${pair(i.fuse2fs)}`;
    }),
  ].join('\n');
  const sections = [header, renderResults(ctx, cells), cfg.tools.includes('ext4ts') ? renderGoals(goalList) : '', renderMemory(mem), renderChecks(ctx, checkList, mounts), issueLines];
  if (profiles.length > 0) sections.push(renderProfiles(profiles));

  let chartNote = '';
  if (cfg.chart !== undefined && cells.some((c) => c.median !== undefined)) {
    const input: ChartInput = {
      reps: cfg.reps,
      randomCount: cfg.randomCount,
      tools: cfg.tools,
      workloads: cfg.workloads,
      entries: img.entries,
      bigBytes: img.spec.bigBytes,
      cpus: cpus.length,
      loadAtStart: loadAtStart[0] ?? 0,
      loadAtEnd: loadAtEnd[0] ?? 0,
      date: new Date().toISOString().slice(0, 10),
      cells,
    };
    writeChart(cfg.chart, input);
    chartNote = `Chart: ${path.relative(PROJECT_ROOT, cfg.chart)}`;
  }
  if (chartNote !== '') sections.push(chartNote);
  report(sections.filter((s) => s !== '').join('\n\n'));

  if (cfg.json) {
    const json = {
      benchmark: 'mount',
      date: new Date().toISOString().slice(0, 10),
      quick: cfg.quick,
      aborted: abort ?? null,
      config: cfg,
      image: { path: img.image, entries: img.entries, files: m.files, dirs: m.dirs.length - 1, symlinks: m.symlinks, bytes: m.bytes, bigBytes: img.spec.bigBytes, bigSha256: img.bigSha256 },
      tools: { kernel: kernelRelease, fuse2fs: fuse2fsVersion ?? null, ext4ts: cli.main, ext4tsNote: cli.note, node: process.version },
      machine: { cpus: cpus.length, model: cpus[0]?.model.trim() ?? '', loadAtStart, loadAtEnd },
      elapsedSeconds: elapsed,
      cells,
      goals: goalList,
      memory: mem,
      checks: checkList,
      bigHashes: Object.fromEntries(ctx.bigHashes),
      profiles,
      mounts,
      samples,
      chart: cfg.chart ?? null,
    };
    process.stdout.write(`${JSON.stringify(json)}\n`);
  }
  if (abort !== undefined) return 130;
  const failed = cells.some((c) => c.median === undefined) || checkList.some((c) => !c.ok) || mounts.some((x) => x.problem !== undefined);
  return failed ? 1 : 0;
}

process.exitCode = await main();
