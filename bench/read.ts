/**
 * Read benchmark: `npm run bench:read [-- options]` (see `--help`).
 *
 * On one ext4 image made from a generated tree of ~53,800 entries (bench/lib/read-tree.ts),
 * compares end to end:
 *   walk     `ext4ts ls -R -l IMG /` (the CLI) | `debugfs -f CMDS IMG` with one
 *            `ls -l DIR` per directory (debugfs has no recursive ls) | the ext2fs npm
 *            package (balena's libext2fs in WASM): readdir + lstat of every entry;
 *   extract  `ext4ts get IMG / DEST` | `debugfs -R 'rdump / DEST' IMG` | the ext2fs
 *            package reading every file (open/read/close) and writing it to DEST;
 * plus the ext4ts library in-process (readdirInode + getattr, and read of every file;
 * for the walk also readdir + lstat by path, the package's calls, timed as the package
 * is: in-process), and ext4ts with its block cache on (default size) and off
 * (`--cache-size 0`): wall time and blocks read from the device (`--stats`).
 *
 * Measured commands get the whole machine by default (`--cpu N` pins them to one CPU
 * with `taskset -c`): `ext4ts get` writes the destination on a second thread, which
 * pinning would serialize; debugfs is single-threaded either way. "cold" runs start with
 * the OS page cache dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`, root only),
 * "warm" ones with the image read into it. The CLI rows run under a private copy of
 * this Node binary (.bench/node-runtime; see privateNode): the harness keeps its own
 * binary mapped, so a child run from it would start cold with Node still in memory. Each cell (tool x operation x cold/warm)
 * runs `--reps` times, tools interleaved, stopping early once a cell has used
 * `--cell-budget` seconds; the median is reported. The ext2fs package is slow: it runs
 * `--ext2fs-reps` times, cold only unless `--ext2fs-warm`, capped at `--ext2fs-timeout`
 * seconds per run (a capped run is extrapolated from its entries/s, and labelled so).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { newestProfile, summarizeProfile, type ProfileSummary } from './lib/cpuprofile.js';
import { CA_CERTS_NOTE, CA_CERTS_UNSET, dropCaches, evictFromPageCache, fillPageCache, pinningAvailable, privateNode, runMeasured, versionLine, type RunResult } from './lib/proc.js';
import { buildCli } from './lib/mount-tools.js';
import { checkExtract, ensureTree, FULL_TREE, QUICK_TREE, type BenchTree, type ExtractCheck } from './lib/read-tree.js';
import type { DeviceStats, Ext2fsDone, Ext2fsJob, Ext2fsProgress, Job, LibResult } from './lib/read-worker.js';
import { fmtBytes, fmtInt, fmtNum, fmtRatio, renderTable, type Column } from './lib/table.js';
import { UsageError, commandLine, intOption } from './lib/options.js';

const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCH_DIR = path.join(PROJECT_ROOT, '.bench');
const WORKER = fileURLToPath(new URL('./lib/read-worker.ts', import.meta.url));

const HELP = `Usage: npm run bench:read -- [options]

ext4ts against debugfs and the ext2fs npm package (WASM libext2fs) on one ext4 image
of a generated tree (~53,800 entries; 5,380 with --quick): a recursive long listing
(walk) and a full extraction (extract), cold and warm page cache, ext4ts with its
block cache on and off, and the ext4ts library in-process (the walk twice: by inode,
and by path with readdir + lstat, the package's calls, judged against it like for
like). Prints medians, entries/s, device block reads and the ratios.

Options:
  --quick               small tree (5,380 entries) for a smoke run
  --reps <n>            runs per cell (tool x operation x cold/warm), median reported (default 3)
  --cell-budget <s>     stop repeating a cell once its runs took this long, at least 1 run (default 20)
  --only <ops>          walk, extract or walk,extract (default both)
  --no-cold             skip the cold runs (they need root to drop the page cache)
  --no-warm             skip the warm runs
  --image-cold          also runs with only the image evicted from the page cache
                        (posix_fadvise DONTNEED; the tools' binaries and Node stay cached):
                        what the filesystem code costs cold, without the runtime's own
                        cold start, which a cold run of the ext4ts CLI pays (~0.1 s here)
  --no-ext2fs           skip the ext2fs package
  --ext2fs-reps <n>     runs of the ext2fs package per cell (default 1)
  --ext2fs-timeout <s>  cap of one ext2fs package run; a capped run is extrapolated (default 120)
  --ext2fs-warm         also run the ext2fs package warm (default: cold only; it is CPU-bound)
  --cli <file>          the ext4ts CLI to run (default: src/ built like npm run build
                        (tsc, then scripts/bundle.ts) into .bench/read-cli/, rebuilt
                        when src/ changed; e.g. --cli dist/cli/ext4ts.js)
  --cpu <n>             pin every measured command to CPU n (default -1: no pinning; ext4ts
                        get writes the destination on a second thread, which pinning
                        serializes; the cpu column is user + system time either way)
  --dest <dir>          where extractions go (default /dev/shm: tmpfs, so the destination's
                        disk does not weigh in; each extraction is removed after it)
  --profile             CPU-profile (node --cpu-prof) the ext4ts walk and extract once (warm)
                        and print the top self-time functions; by default this is done when
                        ext4ts is slower than debugfs
  --no-profile          never profile
  --json                print one JSON object on stdout (the report goes to stderr)
  -h, --help            show this help

The source tree, the image (mke2fs -t ext4 -N 70000 -d SRC IMG 1G) and the compiled CLI
are cached under .bench/. Times of the CLI and debugfs are wall times of the whole
process; "in-process" rows (library, ext2fs package) exclude Node start-up.
`;

type Op = 'walk' | 'extract';
/** cold: every cache dropped; image-cold: only the image's pages evicted (the tools' own binaries stay cached); warm. */
type State = 'cold' | 'image-cold' | 'warm';
type Family = 'cli' | 'lib' | 'debugfs' | 'ext2fs';

interface Tool {
  readonly key: string;
  readonly family: Family;
  /** Block cache of ext4ts: the library default or off (--cache-size 0). */
  readonly cache?: 'default' | 'off';
  /** A library walk through the path API (readdir + lstat), as the ext2fs row walks. */
  readonly paths?: boolean;
}

interface Config {
  readonly quick: boolean;
  readonly reps: number;
  readonly cellBudget: number;
  readonly ops: readonly Op[];
  readonly states: readonly State[];
  readonly ext2fs: boolean;
  readonly ext2fsReps: number;
  readonly ext2fsTimeout: number;
  readonly ext2fsWarm: boolean;
  readonly cli: string | undefined;
  readonly cpu: number | undefined;
  readonly dest: string;
  readonly profile: 'auto' | 'on' | 'off';
  readonly json: boolean;
}



function parseConfig(argv: readonly string[]): Config | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: 'boolean', default: false },
        reps: { type: 'string', default: '3' },
        'cell-budget': { type: 'string', default: '20' },
        only: { type: 'string', default: 'walk,extract' },
        'no-cold': { type: 'boolean', default: false },
        'no-warm': { type: 'boolean', default: false },
        'image-cold': { type: 'boolean', default: false },
        'no-ext2fs': { type: 'boolean', default: false },
        'ext2fs-reps': { type: 'string', default: '1' },
        'ext2fs-timeout': { type: 'string', default: '120' },
        'ext2fs-warm': { type: 'boolean', default: false },
        cli: { type: 'string' },
        cpu: { type: 'string', default: '-1' },
        dest: { type: 'string' },
        profile: { type: 'boolean' },
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
  const ops: Op[] = [];
  for (const word of values.only.split(',').map((s) => s.trim())) {
    if (word !== 'walk' && word !== 'extract') throw new UsageError(`--only: unknown operation '${word}' (walk, extract)`);
    if (!ops.includes(word)) ops.push(word);
  }
  const states: State[] = [];
  if (!values['no-cold']) states.push('cold');
  if (values['image-cold']) states.push('image-cold');
  if (!values['no-warm']) states.push('warm');
  if (states.length === 0) throw new UsageError('--no-cold and --no-warm leave nothing to run');
  const cpu = intOption('--cpu', values.cpu, -1, os.cpus().length - 1);
  if (values.profile === true && values['no-profile']) throw new UsageError('--profile and --no-profile contradict each other');
  const defaultDest = fs.existsSync('/dev/shm') ? '/dev/shm' : BENCH_DIR;
  const cli = values.cli === undefined ? undefined : path.resolve(values.cli);
  if (cli !== undefined && !fs.existsSync(cli)) throw new UsageError(`--cli ${values.cli}: no such file`);
  return {
    quick: values.quick,
    reps: intOption('--reps', values.reps, 1, 100),
    cellBudget: intOption('--cell-budget', values['cell-budget'], 1, 3600),
    ops,
    states,
    ext2fs: !values['no-ext2fs'],
    ext2fsReps: intOption('--ext2fs-reps', values['ext2fs-reps'], 1, 100),
    ext2fsTimeout: intOption('--ext2fs-timeout', values['ext2fs-timeout'], 1, 3600),
    ext2fsWarm: values['ext2fs-warm'],
    cli,
    cpu: cpu < 0 ? undefined : cpu,
    dest: path.resolve(values.dest ?? defaultDest),
    profile: values['no-profile'] ? 'off' : values.profile === true ? 'on' : 'auto',
    json: values.json,
  };
}

// ------------------------------------------------------------------ the CLI under test

interface CliInfo {
  /** main.js to run, or undefined when there is no working CLI. */
  readonly main: string | undefined;
  /** How it was obtained, or why it is not used. */
  readonly note: string;
  readonly hasLs: boolean;
  readonly hasGet: boolean;
  /** The Node binary the CLI rows run under: a private copy of this one (privateNode). */
  readonly node: string;
}

function probeCli(cfg: Config, log: (line: string) => void): CliInfo {
  let built: { main: string; note: string } | { main: undefined; note: string };
  try {
    built = cfg.cli === undefined ? buildCli(PROJECT_ROOT, BENCH_DIR, log, 'read-cli') : { main: cfg.cli, note: `${path.relative(PROJECT_ROOT, cfg.cli)} (--cli)` };
  } catch (error) {
    built = { main: undefined, note: error instanceof Error ? error.message : String(error) };
  }
  const node = privateNode(BENCH_DIR);
  if (built.main === undefined) return { main: undefined, note: built.note, hasLs: false, hasGet: false, node };
  const help = (cmd: string): boolean => spawnSync(node, [built.main, cmd, '--help'], { stdio: 'ignore' }).status === 0;
  const hasLs = help('ls');
  const hasGet = help('get');
  return { main: built.main, note: built.note, hasLs, hasGet, node };
}

// ------------------------------------------------------------------ samples

interface Sample {
  readonly tool: string;
  readonly op: Op;
  readonly state: State;
  readonly rep: number;
  readonly ok: boolean;
  readonly error?: string;
  /** The reported time: wall time of the process, or in-process time (library, ext2fs). */
  readonly seconds: number;
  readonly wall: number;
  /** User + system CPU seconds of the process tree (GNU time). */
  readonly cpu?: number;
  readonly entries?: number;
  readonly device?: DeviceStats;
  /** ext2fs: false when the time cap stopped it; `seconds` is then extrapolated. */
  readonly complete: boolean;
  readonly measuredSeconds?: number;
  readonly measuredEntries?: number;
  /** ext2fs: processes started again after one died. */
  readonly restarts?: number;
  readonly check?: ExtractCheck;
}

interface Ctx {
  readonly cfg: Config;
  readonly tree: BenchTree;
  readonly cli: CliInfo;
  readonly cmdFile: string;
  /** Entries below the root of the image (the tree plus lost+found). */
  readonly entries: number;
  readonly log: (line: string) => void;
}

function cpuOf(r: RunResult): number | undefined {
  return r.user === undefined || r.sys === undefined ? undefined : r.user + r.sys;
}

function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '') ?? ''
  );
}

/** The `--stats` JSON line the CLI prints on stderr. */
function statsLine(stderr: string): DeviceStats | undefined {
  for (const line of stderr.split('\n').reverse()) {
    if (!line.startsWith('{')) continue;
    try {
      const v = JSON.parse(line) as { reads?: unknown; readOps?: unknown };
      if (typeof v.reads === 'number' && typeof v.readOps === 'number') return { reads: v.reads, readOps: v.readOps };
    } catch {
      // not the stats line
    }
  }
  return undefined;
}

function withoutStatsLine(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => !l.startsWith('{') && l.trim() !== '')
    .join('\n');
}

function runCli(ctx: Ctx, tool: Tool, op: Op, dest: string): Omit<Sample, 'tool' | 'op' | 'state' | 'rep'> {
  const main = ctx.cli.main as string;
  const cache = tool.cache === 'off' ? ['--cache-size', '0'] : [];
  const argv =
    op === 'walk'
      ? [ctx.cli.node, main, 'ls', '-R', '-l', '--stats', ...cache, ctx.tree.image, '/']
      : [ctx.cli.node, main, 'get', '--no-progress', '--stats', ...cache, ctx.tree.image, '/', dest];
  const r = runMeasured(argv, { cpu: ctx.cfg.cpu, stdout: 'ignore' });
  const device = statsLine(r.stderr);
  const cpu = cpuOf(r);
  const ok = r.status === 0;
  return {
    ok,
    ...(ok ? {} : { error: `exit ${r.status}: ${firstLine(withoutStatsLine(r.stderr))}` }),
    seconds: r.wall,
    wall: r.wall,
    ...(cpu === undefined ? {} : { cpu }),
    entries: ctx.entries,
    ...(device === undefined ? {} : { device }),
    complete: true,
  };
}

const DEBUGFS_ENV = { ...process.env, PAGER: '__none__', DEBUGFS_PAGER: '__none__' };

function debugfsErrors(stderr: string): string {
  // debugfs prints its version banner on stderr.
  return stderr
    .split('\n')
    .filter((l) => l.trim() !== '' && !/^debugfs \d/.test(l))
    .join('\n');
}

function runDebugfs(ctx: Ctx, op: Op, dest: string): Omit<Sample, 'tool' | 'op' | 'state' | 'rep'> {
  const argv = op === 'walk' ? ['debugfs', '-f', ctx.cmdFile, ctx.tree.image] : ['debugfs', '-R', `rdump / ${dest}`, ctx.tree.image];
  const r = runMeasured(argv, { cpu: ctx.cfg.cpu, stdout: 'ignore', env: DEBUGFS_ENV });
  const errors = debugfsErrors(r.stderr);
  const ok = r.status === 0 && errors === '';
  const cpu = cpuOf(r);
  return { ok, ...(ok ? {} : { error: `exit ${r.status}: ${firstLine(errors)}` }), seconds: r.wall, wall: r.wall, ...(cpu === undefined ? {} : { cpu }), entries: ctx.entries, complete: true };
}

function workerArgv(job: Job): string[] {
  return [process.execPath, '--import', 'tsx', WORKER, JSON.stringify(job)];
}

function runLib(ctx: Ctx, tool: Tool, op: Op, dest: string): Omit<Sample, 'tool' | 'op' | 'state' | 'rep'> {
  const job: Job = {
    kind: op === 'walk' ? (tool.paths === true ? 'lib-paths-walk' : 'lib-walk') : 'lib-extract',
    image: ctx.tree.image,
    ...(op === 'extract' ? { dest } : {}),
    ...(tool.cache === 'off' ? { cacheSize: 0 } : {}),
  };
  const r = runMeasured(workerArgv(job), { cpu: ctx.cfg.cpu, stdout: 'pipe', cwd: PROJECT_ROOT });
  const cpu = cpuOf(r);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let result: LibResult | undefined;
  try {
    result = JSON.parse(last) as LibResult;
  } catch {
    result = undefined;
  }
  if (r.status !== 0 || result?.type !== 'result') {
    return { ok: false, error: `exit ${r.status}: ${firstLine(r.stderr)}`, seconds: r.wall, wall: r.wall, complete: true };
  }
  return { ok: true, seconds: result.seconds, wall: r.wall, ...(cpu === undefined ? {} : { cpu }), entries: result.entries, device: result.device, complete: true };
}

/**
 * The ext2fs package, in as many processes as it takes: when one dies (its WASM heap
 * aborts on long runs), a fresh one goes on with the directories not yet finished.
 */
function runExt2fs(ctx: Ctx, op: Op, dest: string): Omit<Sample, 'tool' | 'op' | 'state' | 'rep'> {
  const budget = ctx.cfg.ext2fsTimeout;
  const pending = new Set<string>(['/']);
  let entries = 0;
  let seconds = 0;
  let wall = 0;
  let cpu: number | undefined = 0;
  let reads = 0;
  let readOps = 0;
  let restarts = 0;
  let complete = false;
  let lastError = '';
  let fruitless = 0;
  while (pending.size > 0 && seconds < budget) {
    const job: Ext2fsJob = {
      kind: op === 'walk' ? 'ext2fs-walk' : 'ext2fs-extract',
      image: ctx.tree.image,
      ...(op === 'extract' ? { dest } : {}),
      dirs: [...pending].reverse(),
      budgetSeconds: budget - seconds,
    };
    const r = runMeasured(workerArgv(job), { cpu: ctx.cfg.cpu, stdout: 'pipe', cwd: PROJECT_ROOT, timeoutSeconds: budget - seconds + 60 });
    wall += r.wall;
    const c = cpuOf(r);
    cpu = cpu === undefined || c === undefined ? undefined : cpu + c;
    let t = 0;
    let device: DeviceStats = { reads: 0, readOps: 0 };
    let done: Ext2fsDone | undefined;
    let progressed = false;
    for (const line of r.stdout.split('\n')) {
      if (!line.startsWith('{')) continue;
      const msg = JSON.parse(line) as Ext2fsProgress | Ext2fsDone;
      if (msg.type === 'dir') {
        pending.delete(msg.dir);
        for (const s of msg.subdirs) pending.add(s);
        entries += msg.entries;
        t = msg.t;
        device = msg.device;
        progressed = true;
      } else {
        done = msg;
        t = msg.seconds;
        device = msg.device;
      }
    }
    seconds += t;
    reads += device.reads;
    readOps += device.readOps;
    if (done !== undefined) {
      complete = done.complete && pending.size === 0;
      break;
    }
    // The process died: note why and go on in a fresh one.
    const tail = r.stderr
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('Command terminated by signal'))
      .slice(-2)
      .join(' ');
    lastError = r.timedOut ? 'killed at the time cap' : `exit ${r.status}${r.status !== null && r.status > 128 ? ` (signal ${r.status - 128})` : ''}${tail === '' ? '' : `: ${tail}`}`;
    restarts++;
    fruitless = progressed ? 0 : fruitless + 1;
    if (fruitless >= 2) {
      return { ok: false, error: `the ext2fs package made no progress in two fresh processes (${lastError})`, seconds, wall, entries, complete: false, restarts };
    }
  }
  const device = { reads, readOps };
  const common = { wall, ...(cpu === undefined ? {} : { cpu }), device, restarts, ...(restarts > 0 ? { error: `restarted ${restarts} time(s); last: ${lastError}` } : {}) };
  if (complete) return { ok: true, seconds, entries, complete: true, ...common };
  if (entries === 0) return { ok: false, seconds, entries, complete: false, ...common, error: `no entry read in ${seconds.toFixed(1)} s` };
  // Capped: extrapolate from the rate so far.
  return { ok: true, seconds: (seconds * ctx.entries) / entries, measuredSeconds: seconds, measuredEntries: entries, entries: ctx.entries, complete: false, ...common };
}

// ------------------------------------------------------------------ validation (not timed)

/** Entries listed by `ext4ts ls -R -l` (headers, "total N" and blank lines left out). */
function countCliLsEntries(output: string): number {
  let n = 0;
  for (const line of output.split('\n')) {
    if (line === '' || /^total \d+$/.test(line) || line.endsWith(':')) continue;
    n++;
  }
  return n;
}

/** Entries listed by debugfs `ls -l` (without . and ..). */
function countDebugfsEntries(output: string): number {
  let n = 0;
  for (const line of output.split('\n')) {
    const m = /^\s*\d+\s+\d+\s+\(\d+\)\s.*\s(\S+)$/.exec(line);
    if (m !== null && m[1] !== '.' && m[1] !== '..') n++;
  }
  return n;
}

interface WalkCheck {
  readonly tool: string;
  readonly listed: number | undefined;
  readonly note: string;
}

function validateWalks(ctx: Ctx): WalkCheck[] {
  const out: WalkCheck[] = [];
  const d = spawnSync('debugfs', ['-f', ctx.cmdFile, ctx.tree.image], { encoding: 'utf8', env: DEBUGFS_ENV, maxBuffer: 256 << 20 });
  const dErr = debugfsErrors(d.stderr);
  out.push({ tool: 'debugfs', listed: countDebugfsEntries(d.stdout), note: d.status === 0 && dErr === '' ? '' : `exit ${d.status}: ${firstLine(dErr)}` });
  if (ctx.cli.main !== undefined && ctx.cli.hasLs) {
    const c = spawnSync(ctx.cli.node, [ctx.cli.main, 'ls', '-R', '-l', ctx.tree.image, '/'], { encoding: 'utf8', maxBuffer: 256 << 20 });
    out.push({ tool: 'ext4ts ls -R -l', listed: c.status === 0 ? countCliLsEntries(c.stdout) : undefined, note: c.status === 0 ? '' : `exit ${c.status}: ${firstLine(c.stderr)}` });
  }
  return out;
}

// ------------------------------------------------------------------ measuring

interface Startup {
  /** Median wall seconds of `node -e 0`, pinned. */
  readonly node: number | undefined;
  /** Median wall seconds of `node CLI --version` (loading the CLI's modules), pinned. */
  readonly cli: number | undefined;
}

/** The fixed cost in every CLI row: Node start-up, and loading the CLI. */
function measureStartup(ctx: Ctx): Startup {
  const times = (argv: string[]): number | undefined =>
    median(
      [0, 1, 2, 3, 4]
        .map(() => runMeasured(argv, { cpu: ctx.cfg.cpu, stdout: 'ignore' }))
        .filter((r) => r.status === 0)
        .map((r) => r.wall),
    );
  return { node: times([ctx.cli.node, '-e', '0']), cli: ctx.cli.main === undefined ? undefined : times([ctx.cli.node, ctx.cli.main, '--version']) };
}

function toolsFor(ctx: Ctx, op: Op): Tool[] {
  const cliOk = ctx.cli.main !== undefined && (op === 'walk' ? ctx.cli.hasLs : ctx.cli.hasGet);
  const tools: Tool[] = [];
  if (cliOk) tools.push({ key: 'ext4ts-cli', family: 'cli', cache: 'default' }, { key: 'ext4ts-cli-nocache', family: 'cli', cache: 'off' });
  tools.push({ key: 'ext4ts-lib', family: 'lib', cache: 'default' });
  if (op === 'walk') tools.push({ key: 'ext4ts-lib-paths', family: 'lib', cache: 'default', paths: true });
  // Without the CLI, the cache on/off comparison falls back to the library.
  if (!cliOk) tools.push({ key: 'ext4ts-lib-nocache', family: 'lib', cache: 'off' });
  tools.push({ key: 'debugfs', family: 'debugfs' });
  if (ctx.cfg.ext2fs) tools.push({ key: 'ext2fs', family: 'ext2fs' });
  return tools;
}

function label(tool: string, op: Op): string {
  const walk = op === 'walk';
  switch (tool) {
    case 'ext4ts-cli':
      return walk ? 'ext4ts ls -R -l' : 'ext4ts get';
    case 'ext4ts-cli-nocache':
      return walk ? 'ext4ts ls -R -l --cache-size 0' : 'ext4ts get --cache-size 0';
    case 'ext4ts-lib':
      return walk ? 'ext4ts library, in-process' : 'ext4ts library extract, in-process';
    case 'ext4ts-lib-paths':
      return 'ext4ts library readdir+lstat, in-process';
    case 'ext4ts-lib-nocache':
      return walk ? 'ext4ts library, cacheSize 0, in-process' : 'ext4ts library extract, cacheSize 0, in-process';
    case 'debugfs':
      return walk ? 'debugfs ls -l (every dir)' : "debugfs rdump";
    case 'ext2fs':
      return walk ? 'ext2fs package readdir+lstat' : 'ext2fs package read every file';
    default:
      return tool;
  }
}

function clearDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

function measure(ctx: Ctx): Sample[] {
  const { cfg, log } = ctx;
  const samples: Sample[] = [];
  const dest = path.join(cfg.dest, `ext4ts-bench-read-${process.pid}`);
  const checked = new Set<string>();
  const failedCli = new Set<string>();
  try {
    for (const state of cfg.states) {
      for (const op of cfg.ops) {
        const tools = toolsFor(ctx, op);
        const spent = new Map<string, number>();
        for (let rep = 0; rep < cfg.reps; rep++) {
          // Rotate the order so that slow drift (other load, the disk) spreads evenly.
          const order = tools.map((_, i) => tools[(i + rep) % tools.length] as Tool);
          for (const tool of order) {
            if (tool.family === 'ext2fs' && (rep >= cfg.ext2fsReps || (state !== 'cold' && !cfg.ext2fsWarm))) continue;
            if (tool.family === 'cli' && failedCli.has(`${op}`)) continue;
            const used = spent.get(tool.key) ?? 0;
            if (rep > 0 && used >= cfg.cellBudget) continue;
            if (op === 'extract') {
              clearDir(dest);
              fs.mkdirSync(dest, { recursive: true });
            }
            if (state === 'cold') dropCaches();
            else if (state === 'image-cold') evictFromPageCache(ctx.tree.image);
            else fillPageCache(ctx.tree.image);
            let s: Omit<Sample, 'tool' | 'op' | 'state' | 'rep'>;
            switch (tool.family) {
              case 'cli':
                s = runCli(ctx, tool, op, dest);
                break;
              case 'lib':
                s = runLib(ctx, tool, op, dest);
                break;
              case 'debugfs':
                s = runDebugfs(ctx, op, dest);
                break;
              case 'ext2fs':
                s = runExt2fs(ctx, op, dest);
                break;
            }
            spent.set(tool.key, used + s.wall);
            let check: ExtractCheck | undefined;
            const checkKey = `${tool.key}/${op}`;
            if (op === 'extract' && s.ok && s.complete && !checked.has(checkKey)) {
              checked.add(checkKey);
              check = checkExtract(dest, ctx.tree.manifest);
            }
            const sample: Sample = { tool: tool.key, op, state, rep, ...s, ...(check === undefined ? {} : { check }) };
            samples.push(sample);
            if (tool.family === 'cli' && !s.ok) failedCli.add(op);
            const extra = s.ok ? (s.complete ? '' : ` (capped after ${fmtNum(s.measuredSeconds ?? 0, 1)} s, extrapolated)`) : ` FAILED: ${s.error ?? ''}`;
            log(`  ${state} ${op} #${rep + 1} ${label(tool.key, op)}: ${s.seconds.toFixed(3)} s${extra}${check !== undefined && !check.ok ? ` — extraction differs: ${check.problem}` : ''}`);
          }
        }
      }
    }
  } finally {
    clearDir(dest);
  }
  return samples;
}

// ------------------------------------------------------------------ profiling

interface ProfileResult {
  readonly what: string;
  readonly summary?: ProfileSummary;
  readonly error?: string;
}

function profileRuns(ctx: Ctx, ops: readonly Op[]): ProfileResult[] {
  const dir = path.join(BENCH_DIR, 'read-prof');
  const dest = path.join(ctx.cfg.dest, `ext4ts-bench-read-prof-${process.pid}`);
  const out: ProfileResult[] = [];
  const useCli = (op: Op): boolean => ctx.cli.main !== undefined && (op === 'walk' ? ctx.cli.hasLs : ctx.cli.hasGet);
  try {
    for (const op of ops) {
      clearDir(dir);
      fs.mkdirSync(dir, { recursive: true });
      clearDir(dest);
      fs.mkdirSync(dest, { recursive: true });
      fillPageCache(ctx.tree.image);
      const prof = ['--cpu-prof', '--cpu-prof-dir', dir];
      let argv: string[];
      let what: string;
      if (useCli(op)) {
        const main = ctx.cli.main as string;
        argv = op === 'walk' ? [ctx.cli.node, ...prof, main, 'ls', '-R', '-l', ctx.tree.image, '/'] : [ctx.cli.node, ...prof, main, 'get', '--no-progress', ctx.tree.image, '/', dest];
        what = `${label('ext4ts-cli', op)} (warm, one run)`;
      } else {
        const job: Job = { kind: op === 'walk' ? 'lib-walk' : 'lib-extract', image: ctx.tree.image, ...(op === 'extract' ? { dest } : {}) };
        argv = [process.execPath, ...prof, '--import', 'tsx', WORKER, JSON.stringify(job)];
        what = `${label('ext4ts-lib', op)} (warm, one run; includes tsx start-up)`;
      }
      const r = runMeasured(argv, { cpu: ctx.cfg.cpu, stdout: 'ignore', cwd: PROJECT_ROOT });
      const file = newestProfile(dir);
      if (r.status !== 0 || file === undefined) {
        out.push({ what, error: `exit ${r.status}: ${firstLine(r.stderr)}` });
        continue;
      }
      out.push({ what, summary: summarizeProfile(file, PROJECT_ROOT, 15) });
    }
  } finally {
    clearDir(dest);
  }
  return out;
}

// ------------------------------------------------------------------ summary

interface Cell {
  readonly tool: string;
  readonly op: Op;
  readonly state: State;
  readonly runs: number;
  readonly failures: number;
  readonly median: number | undefined;
  readonly min: number | undefined;
  readonly cpu: number | undefined;
  readonly entriesPerSecond: number | undefined;
  readonly reads: number | undefined;
  readonly readOps: number | undefined;
  /** false when the median comes from capped, extrapolated runs. */
  readonly complete: boolean;
  readonly error: string | undefined;
  readonly check: ExtractCheck | undefined;
}

function median(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function summarize(ctx: Ctx, samples: readonly Sample[]): Cell[] {
  const cells: Cell[] = [];
  for (const state of ctx.cfg.states) {
    for (const op of ctx.cfg.ops) {
      for (const tool of toolsFor(ctx, op)) {
        const all = samples.filter((s) => s.tool === tool.key && s.op === op && s.state === state);
        if (all.length === 0) continue;
        const ok = all.filter((s) => s.ok);
        const m = median(ok.map((s) => s.seconds));
        const cpus = ok.map((s) => s.cpu).filter((c): c is number => c !== undefined);
        const devs = ok.map((s) => s.device).filter((d): d is DeviceStats => d !== undefined);
        cells.push({
          tool: tool.key,
          op,
          state,
          runs: all.length,
          failures: all.length - ok.length,
          median: m,
          min: ok.length === 0 ? undefined : Math.min(...ok.map((s) => s.seconds)),
          cpu: median(cpus),
          entriesPerSecond: m === undefined || m === 0 ? undefined : ctx.entries / m,
          reads: median(devs.map((d) => d.reads)),
          readOps: median(devs.map((d) => d.readOps)),
          complete: ok.every((s) => s.complete),
          error: all.find((s) => s.error !== undefined)?.error,
          check: all.find((s) => s.check !== undefined)?.check,
        });
      }
    }
  }
  return cells;
}

function cellOf(cells: readonly Cell[], tool: string, op: Op, state: State): Cell | undefined {
  return cells.find((c) => c.tool === tool && c.op === op && c.state === state);
}

/** The ext4ts row the goals are judged on: the CLI when it ran, else the library. */
function mainTool(cells: readonly Cell[], op: Op, state: State): Cell | undefined {
  const cli = cellOf(cells, 'ext4ts-cli', op, state);
  if (cli?.median !== undefined) return cli;
  return cellOf(cells, 'ext4ts-lib', op, state);
}

/** The ext2fs cell of the same state, when it was measured. */
function ext2fsCell(cells: readonly Cell[], op: Op, state: State): Cell | undefined {
  const same = cellOf(cells, 'ext2fs', op, state);
  return same?.median !== undefined ? same : undefined;
}

function speedup(reference: number | undefined, mine: number | undefined): number | undefined {
  return reference === undefined || mine === undefined || mine === 0 ? undefined : reference / mine;
}

function secondsText(c: Cell): string {
  if (c.median === undefined) return 'failed';
  return `${c.complete ? '' : '~'}${fmtNum(c.median, 3)}`;
}

function opTitle(op: Op): string {
  return op === 'walk'
    ? 'Walk: every entry listed with its attributes (ls -R -l; readdir + lstat)'
    : 'Extract: every file, directory and symlink copied out (get / rdump)';
}

function renderOp(ctx: Ctx, cells: readonly Cell[], op: Op): string {
  const columns: Column[] = [
    { title: 'tool', align: 'left' },
    { title: 'state', align: 'left' },
    { title: 'timing', align: 'left' },
    { title: 'runs' },
    { title: 'median s' },
    { title: 'min s' },
    { title: 'CPU s' },
    { title: 'entries/s' },
    { title: 'dev blocks' },
    { title: 'dev reqs' },
    { title: 'vs debugfs' },
    { title: 'vs ext2fs' },
  ];
  const rows: string[][] = [];
  for (const state of ctx.cfg.states) {
    const dbg = cellOf(cells, 'debugfs', op, state);
    const e2 = ext2fsCell(cells, op, state);
    for (const c of cells.filter((x) => x.op === op && x.state === state)) {
      const timing = c.tool.startsWith('ext4ts-lib') || c.tool === 'ext2fs' ? 'in-process' : 'process';
      rows.push([
        label(c.tool, op),
        state,
        timing,
        `${c.runs}${c.failures > 0 ? ` (${c.failures} failed)` : ''}`,
        secondsText(c),
        c.min === undefined ? '-' : `${c.complete ? '' : '~'}${fmtNum(c.min, 3)}`,
        c.cpu === undefined ? '-' : fmtNum(c.cpu, 2),
        c.entriesPerSecond === undefined ? '-' : fmtInt(c.entriesPerSecond),
        c.reads === undefined ? '-' : fmtInt(c.reads),
        c.readOps === undefined ? '-' : fmtInt(c.readOps),
        c.tool === 'debugfs' ? '1x' : fmtRatio(speedup(dbg?.median, c.median)),
        c.tool === 'ext2fs' ? '1x' : fmtRatio(speedup(e2?.median, c.median)),
      ]);
    }
  }
  return [opTitle(op), renderTable(columns, rows)].join('\n');
}

function renderCache(ctx: Ctx, cells: readonly Cell[]): string {
  const columns: Column[] = [
    { title: 'operation', align: 'left' },
    { title: 'state', align: 'left' },
    { title: 'via', align: 'left' },
    { title: 'time on s' },
    { title: 'time off s' },
    { title: 'off/on time' },
    { title: 'blocks on' },
    { title: 'blocks off' },
    { title: 'off/on blocks' },
    { title: 'reqs on' },
    { title: 'reqs off' },
    { title: 'off/on reqs' },
  ];
  const rows: string[][] = [];
  for (const op of ctx.cfg.ops) {
    for (const state of ctx.cfg.states) {
      let on = cellOf(cells, 'ext4ts-cli', op, state);
      let off = cellOf(cells, 'ext4ts-cli-nocache', op, state);
      let via = 'CLI';
      if (on?.median === undefined || off?.median === undefined) {
        on = cellOf(cells, 'ext4ts-lib', op, state);
        off = cellOf(cells, 'ext4ts-lib-nocache', op, state);
        via = 'library';
      }
      if (on === undefined || off === undefined) continue;
      rows.push([
        op,
        state,
        via,
        on.median === undefined ? '-' : fmtNum(on.median, 3),
        off.median === undefined ? '-' : fmtNum(off.median, 3),
        fmtRatio(speedup(off.median, on.median)),
        on.reads === undefined ? '-' : fmtInt(on.reads),
        off.reads === undefined ? '-' : fmtInt(off.reads),
        fmtRatio(speedup(off.reads, on.reads)),
        on.readOps === undefined ? '-' : fmtInt(on.readOps),
        off.readOps === undefined ? '-' : fmtInt(off.readOps),
        fmtRatio(speedup(off.readOps, on.readOps)),
      ]);
    }
  }
  if (rows.length === 0) return '';
  return ['Block cache on (default size) vs off (--cache-size 0): ratios > 1x = the cache saves that much', renderTable(columns, rows)].join('\n');
}

interface GoalLine {
  readonly op: Op;
  readonly state: State;
  readonly ext4ts: string;
  readonly seconds: number | undefined;
  readonly vsDebugfs: number | undefined;
  readonly debugfsMet: boolean | undefined;
  readonly vsExt2fs: number | undefined;
  readonly ext2fsMet: boolean | undefined;
  readonly ext2fsExtrapolated: boolean;
  /** The library by path against the package, both timed in-process (no debugfs ratio: it is a process). */
  readonly inProcess: boolean;
}

function goals(ctx: Ctx, cells: readonly Cell[]): GoalLine[] {
  const out: GoalLine[] = [];
  for (const op of ctx.cfg.ops) {
    for (const state of ctx.cfg.states) {
      const mine = mainTool(cells, op, state);
      if (mine === undefined) continue;
      const dbg = cellOf(cells, 'debugfs', op, state);
      const e2 = ext2fsCell(cells, op, state);
      const vsDebugfs = speedup(dbg?.median, mine.median);
      const vsExt2fs = speedup(e2?.median, mine.median);
      out.push({
        op,
        state,
        ext4ts: label(mine.tool, op),
        seconds: mine.median,
        vsDebugfs,
        debugfsMet: vsDebugfs === undefined ? undefined : vsDebugfs >= 1,
        vsExt2fs,
        ext2fsMet: vsExt2fs === undefined ? undefined : vsExt2fs >= 50,
        ext2fsExtrapolated: e2 !== undefined && !e2.complete,
        inProcess: false,
      });
      // Like for like with the package: the same calls, timed the same way.
      const paths = cellOf(cells, 'ext4ts-lib-paths', op, state);
      const vsPackage = speedup(e2?.median, paths?.median);
      if (paths?.median !== undefined && e2 !== undefined) {
        out.push({
          op,
          state,
          ext4ts: label(paths.tool, op),
          seconds: paths.median,
          vsDebugfs: undefined,
          debugfsMet: undefined,
          vsExt2fs: vsPackage,
          ext2fsMet: vsPackage === undefined ? undefined : vsPackage >= 50,
          ext2fsExtrapolated: !e2.complete,
          inProcess: true,
        });
      }
    }
  }
  return out;
}

function renderGoals(lines: readonly GoalLine[]): string {
  const out = ['Goals (from the issue): at least as fast as debugfs, and 50x faster than the ext2fs package'];
  for (const g of lines) {
    const dbg = g.inProcess
      ? 'both in-process, the same calls'
      : g.vsDebugfs === undefined
        ? 'debugfs: -'
        : `${fmtRatio(g.vsDebugfs)} debugfs's speed (${g.debugfsMet === true ? 'met' : 'NOT met'})`;
    const e2 = g.vsExt2fs === undefined ? 'ext2fs: not measured' : `${fmtRatio(g.vsExt2fs)} the ext2fs package's${g.ext2fsExtrapolated ? ' (extrapolated)' : ''} (${g.ext2fsMet === true ? 'met' : 'NOT met'}, goal 50x)`;
    out.push(`  ${g.op.padEnd(7)} ${g.state}: ${g.ext4ts} ${g.seconds === undefined ? 'failed' : `${fmtNum(g.seconds, 3)} s`}: ${dbg}; ${e2}`);
  }
  return out.join('\n');
}

function renderProfiles(profiles: readonly ProfileResult[]): string {
  const out: string[] = [];
  for (const p of profiles) {
    if (p.summary === undefined) {
      out.push(`CPU profile of ${p.what}: failed (${p.error ?? ''})`);
      continue;
    }
    const s = p.summary;
    out.push(`CPU profile of ${p.what}: ${fmtNum(s.totalMs, 0)} ms sampled (${path.relative(PROJECT_ROOT, s.file)})`);
    const columns: Column[] = [{ title: 'self ms' }, { title: 'self' }, { title: 'total' }, { title: 'function (source)', align: 'left' }];
    out.push(
      renderTable(
        columns,
        s.functions.map((f) => [fmtNum(f.selfMs, 0), `${(f.selfShare * 100).toFixed(1)}%`, `${(f.totalShare * 100).toFixed(1)}%`, f.where]),
      ),
    );
    out.push(`  self time by file: ${s.byFile.slice(0, 8).map((f) => `${f.file} ${(f.selfShare * 100).toFixed(1)}%`).join(', ')}`);
    out.push('');
  }
  return out.join('\n').trimEnd();
}

function renderChecks(ctx: Ctx, walkChecks: readonly WalkCheck[], cells: readonly Cell[], samples: readonly Sample[]): string {
  const out = [`Checks (not timed): ${fmtInt(ctx.entries)} entries expected in each walk`];
  for (const w of walkChecks) out.push(`  walk ${w.tool}: ${w.listed === undefined ? '-' : fmtInt(w.listed)} entries listed${w.listed === ctx.entries ? ' (ok)' : ''}${w.note === '' ? '' : ` — ${w.note}`}`);
  const e2walk = samples.find((s) => s.tool === 'ext2fs' && s.op === 'walk' && s.complete && s.ok);
  if (e2walk !== undefined) out.push(`  walk ext2fs package: ${fmtInt(e2walk.entries ?? 0)} entries lstat'ed${e2walk.entries === ctx.entries ? ' (ok)' : ''}`);
  for (const tool of ['ext4ts-lib', 'ext4ts-lib-paths']) {
    const libwalk = samples.find((s) => s.tool === tool && s.op === 'walk' && s.ok);
    if (libwalk !== undefined) out.push(`  walk ${label(tool, 'walk')}: ${fmtInt(libwalk.entries ?? 0)} entries${libwalk.entries === ctx.entries ? ' (ok)' : ''}`);
  }
  for (const c of cells) {
    if (c.op !== 'extract' || c.check === undefined) continue;
    const k = c.check;
    out.push(
      `  extract ${label(c.tool, 'extract')}: ${k.ok ? 'identical to the source tree' : `DIFFERS: ${k.problem}`} (${fmtInt(k.files)} files, ${fmtInt(k.dirs)} dirs, ${fmtInt(k.symlinks)} symlinks, ${fmtBytes(k.bytes)})`,
    );
  }
  for (const s of samples) {
    if (s.tool !== 'ext2fs' || s.complete || !s.ok) continue;
    const done = s.measuredEntries ?? 0;
    const secs = s.measuredSeconds ?? 0;
    out.push(
      `  ${s.state} ${s.op} ext2fs package: capped at ${fmtNum(secs, 1)} s after ${fmtInt(done)} of ${fmtInt(ctx.entries)} entries (${fmtInt(done / secs)} entries/s): ${fmtNum(s.seconds, 1)} s EXTRAPOLATED`,
    );
  }
  for (const c of cells) if (c.error !== undefined) out.push(`  ${c.state} ${c.op} ${label(c.tool, c.op)}: ${c.error}`);
  return out.join('\n');
}

// ------------------------------------------------------------------ main

function main(): number {
  const started = performance.now();
  const cfg = commandLine('bench:read', HELP, parseConfig);
  if ('exit' in cfg) return cfg.exit;
  const log = (s: string): void => {
    process.stderr.write(`${s}\n`);
  };
  const report = cfg.json ? log : (s: string): void => void process.stdout.write(`${s}\n`);
  const loadAtStart = os.loadavg()[0] ?? 0;

  const debugfsVersion = versionLine(['debugfs', '-V']);
  if (debugfsVersion === undefined) {
    process.stderr.write('bench:read: debugfs not found (apt-get install e2fsprogs)\n');
    return 1;
  }
  if (cfg.states.includes('cold')) {
    try {
      dropCaches();
    } catch (error) {
      process.stderr.write(`bench:read: ${error instanceof Error ? error.message : String(error)}\n`);
      return 1;
    }
  }
  let ext2fsVersion: string | undefined;
  if (cfg.ext2fs) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'node_modules', 'ext2fs', 'package.json'), 'utf8')) as { version?: string };
      ext2fsVersion = pkg.version;
    } catch {
      process.stderr.write('bench:read: the ext2fs package is not installed (npm install), or pass --no-ext2fs\n');
      return 1;
    }
  }

  fs.mkdirSync(BENCH_DIR, { recursive: true });
  const name = cfg.quick ? 'quick' : 'full';
  const tree = ensureTree(BENCH_DIR, name, cfg.quick ? QUICK_TREE : FULL_TREE, log);
  const cmdFile = path.join(BENCH_DIR, `read-${name}.debugfs`);
  fs.writeFileSync(cmdFile, tree.manifest.dirs.map((d) => `ls -l /${d}\n`).join(''));
  const cli = probeCli(cfg, log);
  const ctx: Ctx = { cfg, tree, cli, cmdFile, entries: tree.manifest.entries + 1, log };

  const startup = measureStartup(ctx);
  log('checking the listings (not timed) ...');
  const walkChecks = cfg.ops.includes('walk') ? validateWalks(ctx) : [];
  log(`measuring (${cfg.states.join(' + ')}; ${cfg.ops.join(' + ')}) ...`);
  const samples = measure(ctx);
  const cells = summarize(ctx, samples);
  const goalLines = goals(ctx, cells);
  const slower = goalLines.filter((g) => g.debugfsMet === false).map((g) => g.op);
  const profileOps = cfg.profile === 'on' ? cfg.ops : cfg.profile === 'auto' ? cfg.ops.filter((op) => slower.includes(op)) : [];
  if (profileOps.length > 0) log(`CPU-profiling ext4ts (${profileOps.join(', ')}) ...`);
  const profiles = profileOps.length > 0 ? profileRuns(ctx, profileOps) : [];
  const loadAtEnd = os.loadavg()[0] ?? 0;
  const elapsed = (performance.now() - started) / 1000;

  const m = tree.manifest;
  const cpus = os.cpus();
  const destFs = cfg.dest.startsWith('/dev/shm') ? ' (tmpfs)' : '';
  const headerLines = [
    `ext4ts read benchmark (npm run bench:read -- --help for options)${cfg.quick ? ' — QUICK tree' : ''}`,
    `  image        ${path.relative(PROJECT_ROOT, tree.image)}: ext4, 4 KiB blocks, made by mke2fs -d from ${path.relative(PROJECT_ROOT, tree.srcDir)}${tree.generatedSeconds > 0 ? ` (generated in ${tree.generatedSeconds.toFixed(1)} s)` : ' (reused)'}`,
    `  tree         ${fmtInt(ctx.entries)} entries: ${fmtInt(m.files)} files (${fmtBytes(m.bytes)}, 0-8 KiB), ${fmtInt(m.dirs.length)} directories, ${fmtInt(m.symlinks)} symlinks, lost+found`,
    `  ext4ts       ${cli.main === undefined ? `CLI not available (${cli.note}): library rows only` : `CLI ${path.relative(PROJECT_ROOT, cli.main)}: ${cli.note}${cli.hasLs ? '' : '; no ls command'}${cli.hasGet ? '' : '; no get command'}`}`,
    `  debugfs      ${debugfsVersion}; walk = one "ls -l DIR" per directory in a -f command file; extract = rdump / DEST`,
    `  ext2fs       ${cfg.ext2fs ? `npm ext2fs ${ext2fsVersion ?? '?'} (libext2fs in WASM), ${cfg.ext2fsReps} run(s) per cell, ${cfg.ext2fsWarm ? 'cold and warm' : 'cold only'}, capped at ${cfg.ext2fsTimeout} s per run (~ = extrapolated from a capped run)` : 'skipped (--no-ext2fs)'}`,
    `  runs         up to ${cfg.reps} per cell (stopping once a cell used ${cfg.cellBudget} s), tools interleaved; medians; pinned: ${cfg.cpu === undefined || !pinningAvailable() ? 'no' : `taskset -c ${cfg.cpu}`}${CA_CERTS_UNSET ? `; ${CA_CERTS_NOTE}` : ''}`,
    `  cold/warm    cold = page cache dropped (sync; echo 3 > drop_caches) before every run, Node's binary included (the CLI rows run a private copy of node, ${path.relative(PROJECT_ROOT, ctx.cli.node)}, which this harness does not hold mapped); warm = image read into the page cache before every run${cfg.states.includes('image-cold') ? '; image-cold = only the image evicted (posix_fadvise DONTNEED), the tools themselves cached' : ''}`,
    `  timing       "process" = wall time of the whole command (Node start-up included); "in-process" = inside the Node process, start-up excluded;`,
    `               CPU s = user + system CPU of the whole process tree (for in-process rows, Node and tsx start-up included)`,
    `  start-up     node -e 0: ${startup.node === undefined ? '-' : `${fmtNum(startup.node, 3)} s`}; ext4ts --version (Node + loading the CLI): ${startup.cli === undefined ? '-' : `${fmtNum(startup.cli, 3)} s`} (pinned, median of 5)`,
    `  extract to   ${cfg.dest}${destFs}, emptied between runs; device blocks/reqs = blocks read from the image and read requests (--stats; for get, not the data of the files its writer threads read themselves), 4 KiB blocks`,
    `  machine      node ${process.version}, ${cpus.length} CPU(s) ${cpus[0]?.model.trim() ?? ''}; load average ${loadAtStart.toFixed(2)} at start, ${loadAtEnd.toFixed(2)} at end${Math.max(loadAtStart, loadAtEnd) > 1.5 ? ' (OTHER LOAD: wall times are noisy; CPU s is steadier)' : ''}`,
    `  elapsed      ${elapsed.toFixed(0)} s`,
  ];
  const sections = [headerLines.join('\n'), ...cfg.ops.map((op) => renderOp(ctx, cells, op)), renderCache(ctx, cells), renderGoals(goalLines), renderChecks(ctx, walkChecks, cells, samples)];
  if (profiles.length > 0) sections.push(renderProfiles(profiles));
  sections.push(
    [
      'Notes',
      '  vs debugfs / vs ext2fs = that tool\'s median time / this row\'s: > 1x means this row is faster.',
      '  ext4ts ls -l also reads every symlink target (it prints "-> target"); debugfs ls -l does not.',
      '  ext4ts get also sets owners, modes, atime/mtime (ns) and xattrs like cp -a; rdump sets owner, mode and times.',
      '  The library and ext2fs rows set modes and times on the files they write, and symlinks; no owners or xattrs.',
    ].join('\n'),
  );
  report(sections.filter((s) => s !== '').join('\n\n'));

  if (cfg.json) {
    const json = {
      benchmark: 'read',
      quick: cfg.quick,
      config: cfg,
      image: tree.image,
      tree: { entries: ctx.entries, files: m.files, dirs: m.dirs.length, symlinks: m.symlinks, bytes: m.bytes },
      tools: { debugfs: debugfsVersion, ext2fs: ext2fsVersion ?? null, cli: cli.main ?? null, cliNote: cli.note, node: process.version },
      machine: { cpus: cpus.length, model: cpus[0]?.model.trim() ?? '', loadAtStart, loadAtEnd },
      elapsedSeconds: elapsed,
      startup,
      cells,
      goals: goalLines,
      walkChecks,
      profiles,
      samples,
    };
    process.stdout.write(`${JSON.stringify(json)}\n`);
  }
  const failed = cells.some((c) => c.median === undefined) || cells.some((c) => c.check !== undefined && !c.check.ok);
  return failed ? 1 : 0;
}

process.exitCode = main();
