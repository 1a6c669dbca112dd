/**
 * Block-cache benchmark: `npm run bench:cache [-- options]` (see `--help`).
 *
 * Compares, on an image-sized file and with the same cache budget:
 *   (a) FileChannel alone: one positional read per request, no cache;
 *   (b) CachingChannel over a FileChannel (src/cache/caching-channel.ts);
 *   (c) a baseline built on the lru-cache package (bench/lib/lru-baseline.ts), one
 *       backing read per missing block; (c') the same with coalesced misses (only for
 *       multi-block requests, where it makes a difference).
 * Workloads (fixed-seed PRNG, so every run replays the same requests):
 *   zipf   Zipf-skewed random single-block reads over the whole image;
 *   seq1   a sequential scan of the image in single-block reads;
 *   seq32  the same scan in 32-block reads;
 *   scan   scan resistance: a hot set (metadata) read often, between cold
 *          sequential scans larger than the cache;
 *   mixed  metadata-like read/write mix with periodic flushes (write-back).
 * Every case runs on a fresh cache: a warm-up run first (not measured), then
 * `--repeat` measured runs, rotating the order of the strategies. The headline numbers
 * and ratios are of the best (fastest) run, the least disturbed by other load on the
 * machine; the median is shown too. A checksum of the data read must agree between
 * all strategies. (Run node with --expose-gc to collect garbage before every run.)
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CachingChannel } from '../src/cache/caching-channel.js';
import { FileChannel } from '../src/io/file-channel.js';
import { dropPageCache, ensureImage, preloadPageCache, readBlocks, type ImageInfo } from './lib/image.js';
import { LruBlockCache } from './lib/lru-baseline.js';
import { permutation, Rng, Zipf } from './lib/rng.js';
import { fmtBytes, fmtInt, fmtNum, fmtPct, fmtPp, fmtRatio, parseBytes, renderTable, type Column } from './lib/table.js';
import { UsageError, commandLine } from './lib/options.js';

// ------------------------------------------------------------------ options

const WORKLOADS = ['zipf', 'seq1', 'seq32', 'scan', 'mixed'] as const;
type WorkloadKey = (typeof WORKLOADS)[number];

/** Scan-resistance shape: hot set size and scan length relative to the cache capacity. */
const HOT_SET_FRACTION = 0.2;
const SCAN_FACTOR = 1.5;
/** During a scan, one hot-set read after every this many scanned blocks. */
const HOT_READ_EVERY = 16;
/** Mixed workload: share of writes, flush period. */
const WRITE_SHARE = 0.3;
const FLUSH_EVERY = 10_000;
/** Requests per warm-up run. */
const WARMUP_OPS = 20_000;
const SEQ_CHUNK = 32;

const HELP = `Usage: npm run bench:cache -- [options]

Block-cache benchmark: (a) FileChannel alone, (b) CachingChannel and (c) an
lru-cache baseline with the same budget, on an image-sized file. Prints a table of
ops/s, hit ratios, device reads and the ratios (b)/(a), (b)/(c).

Options:
  --size <bytes>        image size (default 256M; suffixes K, M, G)
  --cache-size <bytes>  cache budget of (b) and (c) (default 32M)
  --block-size <n>      block size, a power of two 512..65536 (default 4096)
  --ops <n>             requests in the zipf and mixed workloads (default 200000)
  --zipf <s>            Zipf exponent (default 1.1)
  --rounds <n>          scan-resistance rounds, each hot reads + one cold scan (default 8)
  --hot-dist <d>        scan-resistance hot-set reads: uniform or zipf (default uniform)
  --hot-reads <n>       scan-resistance hot-set reads per hot block between two scans
                        (default 16)
  --repeat <n>          measured runs per case; best and median are reported (default 3)
  --seed <n>            PRNG seed of the workloads (default 1)
  --only <list>         comma-separated subset of: ${WORKLOADS.join(', ')}
  --strategies <list>   comma-separated subset of: a, b, c, c2 (default all; handy for
                        profiling one strategy with node --cpu-prof)
  --file <path>         image file (default .bench/cache-bench-<size>-<bs>.img in the
                        project); created if missing, reused if it is a bench image
  --drop-caches         drop the OS page cache (echo 1 > /proc/sys/vm/drop_caches, needs
                        root) before every measured run: (a) then measures the disk; slow
  --json                print one JSON object on stdout (the table goes to stderr)
  -h, --help            show this help

By default the OS page cache is warm (the image is read once before measuring), so
(a) measures system-call and copy cost, not the disk.
`;

interface Config {
  readonly sizeBytes: number;
  readonly cacheBytes: number;
  readonly blockSize: number;
  readonly ops: number;
  readonly zipfS: number;
  readonly rounds: number;
  readonly hotDist: 'uniform' | 'zipf';
  readonly hotReads: number;
  readonly repeat: number;
  readonly seed: number;
  readonly workloads: readonly WorkloadKey[];
  readonly strategies: readonly ContenderId[];
  readonly file: string;
  readonly defaultFile: boolean;
  readonly dropCaches: boolean;
  readonly json: boolean;
}


const OPTIONS = {
  size: { type: 'string', default: '256M' },
  'cache-size': { type: 'string', default: '32M' },
  'block-size': { type: 'string', default: '4096' },
  ops: { type: 'string', default: '200000' },
  zipf: { type: 'string', default: '1.1' },
  rounds: { type: 'string', default: '8' },
  'hot-dist': { type: 'string', default: 'uniform' },
  'hot-reads': { type: 'string', default: '16' },
  repeat: { type: 'string', default: '3' },
  seed: { type: 'string', default: '1' },
  only: { type: 'string' },
  strategies: { type: 'string' },
  file: { type: 'string' },
  'drop-caches': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

function parseOptions(argv: readonly string[]) {
  try {
    return parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (error) {
    // parseArgs messages go on with advice about positionals; the first sentence says it.
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(message.split(/\.\s/)[0] ?? message);
  }
}

function parseConfig(argv: readonly string[]): Config | 'help' {
  const values = parseOptions(argv);
  if (values.help) return 'help';

  const blockSize = intOption('--block-size', values['block-size'], 512, 65536);
  if ((blockSize & (blockSize - 1)) !== 0) throw new UsageError(`--block-size ${blockSize} is not a power of two`);
  const sizeBytes = bytesOption('--size', values.size);
  const cacheBytes = bytesOption('--cache-size', values['cache-size']);
  if (sizeBytes % blockSize !== 0) throw new UsageError(`--size ${values.size} is not a multiple of the block size ${blockSize}`);
  const blocks = sizeBytes / blockSize;
  if (blocks > 0x7fffffff) throw new UsageError(`--size ${values.size} has too many blocks (${blocks}; at most 2^31-1)`);
  const capacity = Math.floor(cacheBytes / blockSize);
  if (capacity < 16) throw new UsageError(`--cache-size ${values['cache-size']} holds fewer than 16 blocks of ${blockSize} bytes`);
  if (blocks < 2 * capacity) throw new UsageError(`--size ${values.size} must be at least twice --cache-size ${values['cache-size']} (the scans must not fit in the cache)`);
  if (blocks < SEQ_CHUNK) throw new UsageError(`--size ${values.size} is smaller than ${SEQ_CHUNK} blocks`);

  const zipfS = Number(values.zipf);
  if (!Number.isFinite(zipfS) || zipfS <= 0 || zipfS > 5) throw new UsageError(`--zipf ${values.zipf} is not a number in (0, 5]`);
  const hotDist = values['hot-dist'];
  if (hotDist !== 'uniform' && hotDist !== 'zipf') throw new UsageError(`--hot-dist ${hotDist} is neither uniform nor zipf`);

  const workloads = listOption('--only', values.only, WORKLOADS);
  const strategies = listOption('--strategies', values.strategies, CONTENDERS);

  const projectRoot = fileURLToPath(new URL('..', import.meta.url));
  const defaultFile = values.file === undefined;
  const file = values.file ?? path.join(projectRoot, '.bench', `cache-bench-${fmtBytes(sizeBytes).replace(' ', '')}-${blockSize}.img`);

  return {
    sizeBytes,
    cacheBytes,
    blockSize,
    ops: intOption('--ops', values.ops, 1, 100_000_000),
    zipfS,
    rounds: intOption('--rounds', values.rounds, 2, 10_000),
    hotDist,
    hotReads: intOption('--hot-reads', values['hot-reads'], 1, 1000),
    repeat: intOption('--repeat', values.repeat, 1, 100),
    seed: intOption('--seed', values.seed, 0, 0xffffffff),
    workloads,
    strategies,
    file: path.resolve(file),
    defaultFile,
    dropCaches: values['drop-caches'],
    json: values.json,
  };
}

/** A comma-separated subset of `known` (all of it when the option is absent), in the order of `known`. */
function listOption<T extends string>(name: string, text: string | undefined, known: readonly T[]): T[] {
  if (text === undefined) return [...known];
  const chosen = new Set<T>();
  for (const word of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const item = known.find((k) => k === word);
    if (item === undefined) throw new UsageError(`${name}: unknown name '${word}' (known: ${known.join(', ')})`);
    chosen.add(item);
  }
  if (chosen.size === 0) throw new UsageError(`${name}: empty list`);
  return known.filter((k) => chosen.has(k));
}

function intOption(name: string, text: string, min: number, max: number): number {
  const n = /^\d+$/.test(text.replaceAll('_', '')) ? Number(text.replaceAll('_', '')) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`${name} ${text} is not an integer in [${min}, ${max}]`);
  return n;
}

function bytesOption(name: string, text: string): number {
  const n = parseBytes(text);
  if (n === undefined || n <= 0) throw new UsageError(`${name} ${text} is not a size (e.g. 4096, 64K, 256M, 1G)`);
  return n;
}

// ------------------------------------------------------------------ strategies

const CONTENDERS = ['a', 'b', 'c', 'c2'] as const;
type ContenderId = (typeof CONTENDERS)[number];

/** The part of the channel interface that the workloads use. */
interface BlockIo {
  read(block: number, count: number, into: Uint8Array): Uint8Array;
  write(block: number, count: number, data: Uint8Array): void;
  flush(): void;
}

interface Counts {
  /** Block reads served from / missed by the cache (undefined without a cache). */
  readonly hits: number | undefined;
  readonly misses: number | undefined;
  /** Blocks read from the file, and the read calls that read them. */
  readonly deviceReads: number;
  readonly deviceReadOps: number;
  /** Blocks written to the file, and the write calls that wrote them. */
  readonly deviceWrites: number;
  readonly deviceWriteOps: number;
}

interface Instance {
  readonly io: BlockIo;
  /** Whether the block is cached right now; not an access. */
  has(block: number): boolean;
  counts(): Counts;
  close(): void;
}

interface Contender {
  readonly id: ContenderId;
  readonly tag: string;
  readonly label: string;
  open(writable: boolean): Instance;
}

function contenders(cfg: Config): Record<ContenderId, Contender> {
  // No flock: the bench must not depend on the native addon; nothing else opens the file.
  const file = (writable: boolean): FileChannel => FileChannel.open(cfg.file, { blockSize: cfg.blockSize, readOnly: !writable, lock: false });
  const lru = (id: 'c' | 'c2', tag: string, label: string, coalesce: boolean): Contender => ({
    id,
    tag,
    label,
    open(writable) {
      const cache = new LruBlockCache(file(writable), cfg.cacheBytes, { coalesce });
      return {
        io: cache,
        has: (block) => cache.has(block),
        counts: () => ({
          hits: cache.hits,
          misses: cache.misses,
          deviceReads: cache.deviceReads,
          deviceReadOps: cache.deviceReadOps,
          deviceWrites: cache.deviceWrites,
          deviceWriteOps: cache.deviceWriteOps,
        }),
        close: () => cache.close(),
      };
    },
  });
  return {
    a: {
      id: 'a',
      tag: '(a)',
      label: 'FileChannel',
      open(writable) {
        const ch = file(writable);
        return {
          io: ch,
          has: () => false,
          counts: () => {
            const s = ch.stats();
            return { hits: undefined, misses: undefined, deviceReads: s.reads, deviceReadOps: s.readOps, deviceWrites: s.writes, deviceWriteOps: s.writeOps };
          },
          close: () => ch.close(),
        };
      },
    },
    b: {
      id: 'b',
      tag: '(b)',
      label: 'CachingChannel',
      open(writable) {
        const cache = new CachingChannel(file(writable), { cacheSize: cfg.cacheBytes });
        return {
          io: cache,
          has: (block) => cache.has(block),
          counts: () => {
            const s = cache.stats();
            return { hits: s.hits, misses: s.misses, deviceReads: s.reads, deviceReadOps: s.readOps, deviceWrites: s.writes, deviceWriteOps: s.writeOps };
          },
          close: () => cache.close(),
        };
      },
    },
    c: lru('c', '(c)', 'lru-cache', false),
    c2: lru('c2', "(c')", 'lru-cache, coalesced', true),
  };
}

// ------------------------------------------------------------------ workloads

interface HotTally {
  /** Hot-set reads and hits in the first half of the rounds (warming up) ... */
  readonly warmReads: number;
  readonly warmHits: number;
  /** ... and in the second half (steady state). */
  readonly steadyReads: number;
  readonly steadyHits: number;
}

interface Tally {
  /** Order-sensitive hash of one byte of every request's data. */
  readonly checksum: number;
  readonly readOps: number;
  readonly writeOps: number;
  readonly hot?: HotTally;
}

interface Workload {
  readonly key: WorkloadKey;
  readonly title: string;
  readonly detail: string;
  /** Requests per run. */
  readonly ops: number;
  readonly blocksPerOp: number;
  readonly writable: boolean;
  readonly contenders: readonly ContenderId[];
  /** Run the first `n` requests on `inst`, reading into `into` (blocksPerOp blocks). */
  run(inst: Instance, n: number, into: Uint8Array): Tally;
}

function readLoop(io: BlockIo, blocks: Int32Array, n: number, count: number, into: Uint8Array): Tally {
  const last = into.length - 1;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    io.read(blocks[i] as number, count, into);
    sum = (Math.imul(sum, 31) + (into[last] as number)) | 0;
  }
  return { checksum: sum, readOps: n, writeOps: 0 };
}

const HOT_WARM = 0;
const HOT_STEADY = 1;
const SCAN = 2;

function scanLoop(inst: Instance, blocks: Int32Array, kinds: Uint8Array, n: number, into: Uint8Array): Tally {
  const io = inst.io;
  const last = into.length - 1;
  let sum = 0;
  let warmReads = 0;
  let warmHits = 0;
  let steadyReads = 0;
  let steadyHits = 0;
  for (let i = 0; i < n; i++) {
    const b = blocks[i] as number;
    const kind = kinds[i];
    if (kind === HOT_WARM) {
      warmReads++;
      if (inst.has(b)) warmHits++;
    } else if (kind === HOT_STEADY) {
      steadyReads++;
      if (inst.has(b)) steadyHits++;
    }
    io.read(b, 1, into);
    sum = (Math.imul(sum, 31) + (into[last] as number)) | 0;
  }
  return { checksum: sum, readOps: n, writeOps: 0, hot: { warmReads, warmHits, steadyReads, steadyHits } };
}

const READ = 0;
const WRITE = 1;

function mixedLoop(io: BlockIo, blocks: Int32Array, kinds: Uint8Array, slots: Int32Array, pool: readonly Uint8Array[], n: number, into: Uint8Array): Tally {
  const last = into.length - 1;
  let sum = 0;
  let writes = 0;
  for (let i = 0; i < n; i++) {
    const b = blocks[i] as number;
    if (kinds[i] === WRITE) {
      io.write(b, 1, pool[slots[i] as number] as Uint8Array);
      writes++;
    } else {
      io.read(b, 1, into);
      sum = (Math.imul(sum, 31) + (into[last] as number)) | 0;
    }
    if ((i + 1) % FLUSH_EVERY === 0) io.flush();
  }
  io.flush();
  return { checksum: sum, readOps: n - writes, writeOps: writes };
}

function buildWorkloads(cfg: Config): Workload[] {
  const bs = cfg.blockSize;
  const nBlocks = cfg.sizeBytes / bs;
  const capacity = Math.floor(cfg.cacheBytes / bs);
  const hotN = Math.max(1, Math.round(capacity * HOT_SET_FRACTION));
  // Popularity rank -> block: the popular blocks are scattered over the image, like metadata.
  const rankToBlock = permutation(nBlocks, new Rng(cfg.seed ^ 0x5eed0001));
  let zipf: Zipf | undefined;
  const getZipf = (): Zipf => (zipf ??= new Zipf(nBlocks, cfg.zipfS));
  const out: Workload[] = [];

  for (const key of cfg.workloads) {
    switch (key) {
      case 'zipf': {
        const z = getZipf();
        const rng = new Rng(cfg.seed ^ 0x5eed0002);
        const blocks = new Int32Array(cfg.ops);
        for (let i = 0; i < cfg.ops; i++) blocks[i] = rankToBlock[z.sample(rng)] as number;
        out.push({
          key,
          title: 'Zipf random reads',
          detail:
            `${fmtInt(cfg.ops)} single-block reads, Zipf s=${cfg.zipfS} over all ${fmtInt(nBlocks)} blocks (popular blocks scattered); ` +
            `the ${fmtInt(capacity)} most popular blocks (one cache-ful) get ${fmtPct(z.massOfTop(capacity))} of the reads`,
          ops: cfg.ops,
          blocksPerOp: 1,
          writable: false,
          contenders: ['a', 'b', 'c'],
          run: (inst, n, into) => readLoop(inst.io, blocks, n, 1, into),
        });
        break;
      }
      case 'seq1':
      case 'seq32': {
        const count = key === 'seq1' ? 1 : SEQ_CHUNK;
        const ops = Math.floor(nBlocks / count);
        const blocks = new Int32Array(ops);
        for (let i = 0; i < ops; i++) blocks[i] = i * count;
        out.push({
          key,
          title: `Sequential scan, ${count}-block reads`,
          detail: `the whole image (${fmtBytes(ops * count * bs)}) once from start to end in ${fmtInt(ops)} reads of ${count} block(s); it is ${fmtNum(nBlocks / capacity, 1)}x the cache`,
          ops,
          blocksPerOp: count,
          writable: false,
          contenders: count > 1 ? ['a', 'b', 'c', 'c2'] : ['a', 'b', 'c'],
          run: (inst, n, into) => readLoop(inst.io, blocks, n, count, into),
        });
        break;
      }
      case 'scan': {
        const rng = new Rng(cfg.seed ^ 0x5eed0003);
        const hotBlocks = permutation(nBlocks, new Rng(cfg.seed ^ 0x5eed0004)).subarray(0, hotN);
        const hotZipf = cfg.hotDist === 'zipf' ? new Zipf(hotN, cfg.zipfS) : undefined;
        const pickHot = (): number => hotBlocks[hotZipf === undefined ? rng.int(hotN) : hotZipf.sample(rng)] as number;
        const scanLen = Math.ceil(capacity * SCAN_FACTOR);
        const hotPerRound = cfg.hotReads * hotN;
        const perRound = hotPerRound + scanLen + Math.floor(scanLen / HOT_READ_EVERY);
        const ops = cfg.rounds * perRound;
        const blocks = new Int32Array(ops);
        const kinds = new Uint8Array(ops);
        let i = 0;
        for (let r = 0; r < cfg.rounds; r++) {
          const hotKind = r < cfg.rounds / 2 ? HOT_WARM : HOT_STEADY;
          for (let j = 0; j < hotPerRound; j++, i++) {
            blocks[i] = pickHot();
            kinds[i] = hotKind;
          }
          // Each scan continues where the previous one stopped (wrapping), so it is cold.
          const start = (r * scanLen) % (nBlocks - scanLen + 1);
          for (let j = 0; j < scanLen; j++) {
            blocks[i] = start + j;
            kinds[i++] = SCAN;
            if ((j + 1) % HOT_READ_EVERY === 0) {
              blocks[i] = pickHot();
              kinds[i++] = hotKind;
            }
          }
        }
        out.push({
          key,
          title: 'Scan resistance: hot set + cold scans',
          detail:
            `${cfg.rounds} rounds of: ${fmtInt(hotPerRound)} reads of a hot set of ${fmtInt(hotN)} scattered blocks ` +
            `(${HOT_SET_FRACTION * 100}% of the cache, ${cfg.hotDist}, ~${cfg.hotReads} reads per hot block), then a cold sequential scan of ` +
            `${fmtInt(scanLen)} blocks (${SCAN_FACTOR}x the cache) in single-block reads with one hot-set read every ${HOT_READ_EVERY} blocks; ` +
            `${fmtInt(ops)} reads in all. "steady" = rounds ${Math.ceil(cfg.rounds / 2) + 1}..${cfg.rounds}`,
          ops,
          blocksPerOp: 1,
          writable: false,
          contenders: ['a', 'b', 'c'],
          run: (inst, n, into) => scanLoop(inst, blocks, kinds, n, into),
        });
        break;
      }
      case 'mixed': {
        const z = getZipf();
        const rng = new Rng(cfg.seed ^ 0x5eed0005);
        // Writes go to the hot region (the hotN most read blocks) and write back the
        // bytes that are already there, so the image never changes.
        const hotRegion = rankToBlock.subarray(0, hotN);
        const original = readBlocks(cfg.file, hotRegion, bs);
        const pool: Uint8Array[] = [];
        for (let k = 0; k < hotN; k++) pool.push(original.subarray(k * bs, (k + 1) * bs));
        const blocks = new Int32Array(cfg.ops);
        const kinds = new Uint8Array(cfg.ops);
        const slots = new Int32Array(cfg.ops);
        for (let i = 0; i < cfg.ops; i++) {
          if (rng.next() < WRITE_SHARE) {
            const rank = z.sample(rng, hotN);
            blocks[i] = rankToBlock[rank] as number;
            kinds[i] = WRITE;
            slots[i] = rank;
          } else {
            blocks[i] = rankToBlock[z.sample(rng)] as number;
            kinds[i] = READ;
          }
        }
        out.push({
          key,
          title: 'Mixed metadata-like read/write',
          detail:
            `${fmtInt(cfg.ops)} single-block requests: ${100 - WRITE_SHARE * 100}% Zipf reads as in zipf, ${WRITE_SHARE * 100}% writes ` +
            `(Zipf) to the hot region (${fmtInt(hotN)} most read blocks), flush (write-back + fsync) every ${fmtInt(FLUSH_EVERY)} requests and at the end; ` +
            `(a) writes through; hit ratio of reads`,
          ops: cfg.ops,
          blocksPerOp: 1,
          writable: true,
          contenders: ['a', 'b', 'c'],
          run: (inst, n, into) => mixedLoop(inst.io, blocks, kinds, slots, pool, n, into),
        });
        break;
      }
    }
  }
  return out;
}

// ------------------------------------------------------------------ measuring

interface Result {
  readonly id: ContenderId;
  readonly strategy: string;
  /** Wall time of every measured run. */
  readonly seconds: readonly number[];
  readonly bestSeconds: number;
  readonly medianSeconds: number;
  /** Requests per second, microseconds per request, MiB/s read: of the best (fastest) run. */
  readonly opsPerSec: number;
  readonly usPerOp: number;
  readonly mibPerSec: number;
  /** Microseconds per request of the median run. */
  readonly medianUsPerOp: number;
  /** CPU time (user + system) of the process per request in the run with the least, in microseconds. */
  readonly cpuUsPerOp: number;
  readonly hitRatio: number | undefined;
  readonly hotHitRatio?: number;
  readonly hotHitRatioSteady?: number;
  readonly hotMisses?: number;
  readonly deviceReads: number;
  readonly deviceReadOps: number;
  readonly deviceWrites: number;
  readonly deviceWriteOps: number;
  readonly checksum: number;
}

interface Ratios {
  readonly bOverAOps: number | undefined;
  readonly bOverCOps: number | undefined;
  readonly bOverC2Ops?: number;
  readonly hitRatioBMinusC: number | undefined;
  /** The same speed ratios from CPU time per request (robust to other load; excludes I/O waits such as fsync). */
  readonly bOverACpu: number | undefined;
  readonly bOverCCpu: number | undefined;
  readonly hotHitRatioBMinusC?: number;
  readonly hotHitRatioSteadyBMinusC?: number;
}

interface WorkloadResult {
  readonly key: WorkloadKey;
  readonly title: string;
  readonly detail: string;
  readonly ops: number;
  readonly blocksPerOp: number;
  readonly results: readonly Result[];
  readonly ratios: Ratios;
  readonly checksumsAgree: boolean;
}

const maybeGc = (globalThis as { gc?: () => void }).gc;

function measure(cfg: Config, w: Workload, all: Record<ContenderId, Contender>, log: (s: string) => void): WorkloadResult {
  const into = new Uint8Array(w.blocksPerOp * cfg.blockSize);
  const list = w.contenders.filter((id) => cfg.strategies.includes(id)).map((id) => all[id]);
  const started = performance.now();

  // Warm-up: JIT the code paths on a prefix of the requests, on throwaway caches.
  for (const c of list) {
    const inst = c.open(w.writable);
    w.run(inst, Math.min(w.ops, WARMUP_OPS), into);
    inst.close();
  }

  const seconds = new Map<ContenderId, number[]>(list.map((c) => [c.id, []]));
  const cpuSeconds = new Map<ContenderId, number[]>(list.map((c) => [c.id, []]));
  const last = new Map<ContenderId, { counts: Counts; tally: Tally }>();
  const checksums = new Set<number>();
  for (let rep = 0; rep < cfg.repeat; rep++) {
    for (let k = 0; k < list.length; k++) {
      const c = list[(k + rep) % list.length] as Contender;
      const inst = c.open(w.writable);
      if (cfg.dropCaches) dropPageCache(cfg.file);
      maybeGc?.();
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const tally = w.run(inst, w.ops, into);
      const t1 = performance.now();
      const cpu = process.cpuUsage(cpu0);
      cpuSeconds.get(c.id)?.push((cpu.user + cpu.system) / 1e6);
      const counts = inst.counts();
      inst.close();
      seconds.get(c.id)?.push((t1 - t0) / 1000);
      last.set(c.id, { counts, tally });
      checksums.add(tally.checksum);
    }
  }

  const results: Result[] = list.map((c) => {
    const secs = seconds.get(c.id) ?? [];
    const run = last.get(c.id);
    if (run === undefined || secs.length === 0) throw new Error(`internal: no run of ${c.id}`);
    const med = median(secs);
    const best = Math.min(...secs);
    const { counts, tally } = run;
    const hitRatio = counts.hits === undefined || counts.misses === undefined ? undefined : counts.hits / Math.max(1, counts.hits + counts.misses);
    const base = {
      id: c.id,
      strategy: `${c.tag} ${c.label}`,
      seconds: secs,
      bestSeconds: best,
      medianSeconds: med,
      opsPerSec: w.ops / best,
      usPerOp: (best * 1e6) / w.ops,
      mibPerSec: (tally.readOps * w.blocksPerOp * cfg.blockSize) / (1024 * 1024) / best,
      medianUsPerOp: (med * 1e6) / w.ops,
      cpuUsPerOp: (Math.min(...(cpuSeconds.get(c.id) ?? [])) * 1e6) / w.ops,
      hitRatio,
      deviceReads: counts.deviceReads,
      deviceReadOps: counts.deviceReadOps,
      deviceWrites: counts.deviceWrites,
      deviceWriteOps: counts.deviceWriteOps,
      checksum: tally.checksum,
    };
    const hot = tally.hot;
    if (hot === undefined) return base;
    const reads = hot.warmReads + hot.steadyReads;
    const hits = hot.warmHits + hot.steadyHits;
    return { ...base, hotHitRatio: hits / Math.max(1, reads), hotHitRatioSteady: hot.steadyHits / Math.max(1, hot.steadyReads), hotMisses: reads - hits };
  });

  const byId = (id: ContenderId): Result | undefined => results.find((r) => r.id === id);
  const a = byId('a');
  const b = byId('b');
  const c = byId('c');
  const c2 = byId('c2');
  const diff = (x: number | undefined, y: number | undefined): number | undefined => (x === undefined || y === undefined ? undefined : x - y);
  let ratios: Ratios = {
    bOverAOps: b && a ? b.opsPerSec / a.opsPerSec : undefined,
    bOverCOps: b && c ? b.opsPerSec / c.opsPerSec : undefined,
    hitRatioBMinusC: diff(b?.hitRatio, c?.hitRatio),
    bOverACpu: b && a ? a.cpuUsPerOp / b.cpuUsPerOp : undefined,
    bOverCCpu: b && c ? c.cpuUsPerOp / b.cpuUsPerOp : undefined,
  };
  if (b && c2) ratios = { ...ratios, bOverC2Ops: b.opsPerSec / c2.opsPerSec };
  const hotDiff = diff(b?.hotHitRatio, c?.hotHitRatio);
  const hotSteadyDiff = diff(b?.hotHitRatioSteady, c?.hotHitRatioSteady);
  if (hotDiff !== undefined && hotSteadyDiff !== undefined) ratios = { ...ratios, hotHitRatioBMinusC: hotDiff, hotHitRatioSteadyBMinusC: hotSteadyDiff };

  log(`  ${w.key}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return { key: w.key, title: w.title, detail: w.detail, ops: w.ops, blocksPerOp: w.blocksPerOp, results, ratios, checksumsAgree: checksums.size === 1 };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

// ------------------------------------------------------------------ report

function renderWorkload(wr: WorkloadResult): string {
  const hot = wr.results.some((r) => r.hotHitRatio !== undefined);
  const writes = wr.results.some((r) => r.deviceWrites > 0);
  const columns: Column[] = [
    { title: 'strategy', align: 'left' },
    { title: 'ops/s' },
    { title: 'us/op' },
    { title: 'median us/op' },
    { title: 'cpu us/op' },
    { title: 'MiB/s' },
    { title: hot ? 'hit (all)' : 'hit ratio' },
    ...(hot ? [{ title: 'hot hit' }, { title: 'hot steady' }, { title: 'hot misses' }] : []),
    { title: 'dev blocks read' },
    { title: 'read calls' },
    ...(writes ? [{ title: 'dev blocks written' }, { title: 'write calls' }] : []),
  ];
  const rows = wr.results.map((r) => [
    r.strategy,
    fmtInt(r.opsPerSec),
    r.usPerOp.toFixed(2),
    r.medianUsPerOp.toFixed(2),
    r.cpuUsPerOp.toFixed(2),
    fmtInt(r.mibPerSec),
    fmtPct(r.hitRatio),
    ...(hot ? [fmtPct(r.hotHitRatio), fmtPct(r.hotHitRatioSteady), r.hotMisses === undefined ? '-' : fmtInt(r.hotMisses)] : []),
    fmtInt(r.deviceReads),
    fmtInt(r.deviceReadOps),
    ...(writes ? [fmtInt(r.deviceWrites), fmtInt(r.deviceWriteOps)] : []),
  ]);
  const q = wr.ratios;
  const speed = [`ops/s (b)/(a) ${fmtRatio(q.bOverAOps)}`, `(b)/(c) ${fmtRatio(q.bOverCOps)}`];
  if (q.bOverC2Ops !== undefined) speed.push(`(b)/(c') ${fmtRatio(q.bOverC2Ops)}`);
  speed.push(`  by CPU time (b)/(a) ${fmtRatio(q.bOverACpu)}`, `(b)/(c) ${fmtRatio(q.bOverCCpu)}`);
  const hits = [`hit ratio (b)-(c) ${fmtPp(q.hitRatioBMinusC)}`];
  if (q.hotHitRatioBMinusC !== undefined) hits.push(`  hot-set hit ratio (b)-(c) ${fmtPp(q.hotHitRatioBMinusC)}, steady ${fmtPp(q.hotHitRatioSteadyBMinusC)}`);
  const lines = [
    `[${wr.key}] ${wr.title}`,
    ...wrap(wr.detail, 100, '  '),
    '',
    renderTable(columns, rows),
    `  ratios: ${speed.join('  ')}`,
    `          ${hits.join('  ')}`,
  ];
  if (!wr.checksumsAgree) lines.push('  !! CHECKSUM MISMATCH: the strategies did not read the same data');
  return lines.join('\n');
}

function renderSummary(wrs: readonly WorkloadResult[]): string {
  const columns: Column[] = [
    { title: 'workload', align: 'left' },
    { title: '(b)/(a) ops/s' },
    { title: '(b)/(c) ops/s' },
    { title: "(b)/(c') ops/s" },
    { title: '(b)/(a) cpu' },
    { title: '(b)/(c) cpu' },
    { title: 'hit ratio (b)-(c)' },
    { title: 'hot-set hit (b)-(c)' },
    { title: 'hot steady (b)-(c)' },
  ];
  const rows = wrs.map((w) => [
    w.key,
    fmtRatio(w.ratios.bOverAOps),
    fmtRatio(w.ratios.bOverCOps),
    fmtRatio(w.ratios.bOverC2Ops),
    fmtRatio(w.ratios.bOverACpu),
    fmtRatio(w.ratios.bOverCCpu),
    fmtPp(w.ratios.hitRatioBMinusC),
    fmtPp(w.ratios.hotHitRatioBMinusC),
    fmtPp(w.ratios.hotHitRatioSteadyBMinusC),
  ]);
  return ['Summary (speed ratios of the best runs by wall time (ops/s) and by CPU time per request (cpu); >1x = CachingChannel faster;\n         pp = percentage points)', '', renderTable(columns, rows)].join('\n');
}

function wrap(text: string, width: number, indent: string): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(indent + line);
  return lines;
}

function header(cfg: Config, image: ImageInfo, loadAtStart: number): string {
  const bs = cfg.blockSize;
  const nBlocks = cfg.sizeBytes / bs;
  const capacity = Math.floor(cfg.cacheBytes / bs);
  const rel = path.relative(process.cwd(), image.path);
  const shown = rel.startsWith('..') ? image.path : rel;
  const cpus = os.cpus();
  return [
    'ext4ts block-cache benchmark (npm run bench:cache -- --help for options)',
    `  image        ${shown}: ${fmtBytes(cfg.sizeBytes)} = ${fmtInt(nBlocks)} blocks of ${fmtBytes(bs)} (${image.generated ? `generated in ${image.seconds.toFixed(1)} s` : 'reused'})`,
    `  cache        ${fmtBytes(cfg.cacheBytes)} = ${fmtInt(capacity)} blocks for (b) and (c); the image is ${fmtNum(nBlocks / capacity, 1)}x the cache`,
    cfg.dropCaches
      ? '  page cache   DROPPED before every measured run (--drop-caches): (a) and all misses include the disk'
      : '  page cache   WARM: the OS caches the whole image (read once beforehand), so (a) measures system-call + copy cost, not the disk',
    '  strategies   (a) FileChannel alone: one pread per request, no cache',
    '               (b) CachingChannel: 16 MRU priority levels (+1 every 50 accesses), aging, ghost history, coalesced misses',
    "               (c) lru-cache LRUCache<number, Uint8Array>, same budget, one pread per missing block; (c') same, coalesced misses",
    `  timing       ${cfg.repeat} run(s) per case after a warm-up, each on a fresh (empty) cache, strategies interleaved; ops/s, us/op, MiB/s`,
    '               and all ratios are of the best run (least disturbed by other load); cpu = least process CPU time (user+sys)',
    `  machine      node ${process.version}, ${os.platform()} ${os.arch()}, ${cpus.length} CPU(s) ${cpus[0]?.model.trim() ?? ''}; load average ${loadAtStart.toFixed(2)} at start`,
    `  seed         ${cfg.seed}`,
  ].join('\n');
}

// ------------------------------------------------------------------ main

function main(): number {
  const started = performance.now();
  const loadAtStart = os.loadavg()[0] ?? 0;
  const cfg = commandLine('bench:cache', HELP, parseConfig);
  if ('exit' in cfg) return cfg.exit;

  const log = (s: string): void => {
    process.stderr.write(`${s}\n`);
  };
  const report = cfg.json ? log : (s: string): void => void process.stdout.write(`${s}\n`);

  let image: ImageInfo;
  try {
    image = ensureImage(cfg.file, cfg.sizeBytes, cfg.blockSize, cfg.defaultFile, log);
    if (cfg.dropCaches) dropPageCache(cfg.file);
    else preloadPageCache(cfg.file);
  } catch (error) {
    process.stderr.write(`bench:cache: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }

  const workloads = buildWorkloads(cfg).filter((w) => w.contenders.some((id) => cfg.strategies.includes(id)));
  if (workloads.length === 0) {
    process.stderr.write(`bench:cache: none of --strategies ${cfg.strategies.join(',')} runs in --only ${cfg.workloads.join(',')} (c2 only runs in seq32)\n`);
    return 2;
  }
  const all = contenders(cfg);
  log(`running ${workloads.map((w) => w.key).join(', ')} ...`);
  const results: WorkloadResult[] = [];
  for (const w of workloads) results.push(measure(cfg, w, all, log));
  const elapsed = (performance.now() - started) / 1000;

  report(header(cfg, image, loadAtStart));
  for (const wr of results) report(`\n${renderWorkload(wr)}`);
  report(`\n${renderSummary(results)}`);
  report(`\nelapsed ${elapsed.toFixed(1)} s in all${image.generated ? ` (of which ${image.seconds.toFixed(1)} s generating the image)` : ''}`);

  const ok = results.every((r) => r.checksumsAgree);
  if (cfg.json) {
    const json = {
      benchmark: 'ext4ts cache',
      config: {
        imageBytes: cfg.sizeBytes,
        cacheBytes: cfg.cacheBytes,
        blockSize: cfg.blockSize,
        ops: cfg.ops,
        zipf: cfg.zipfS,
        rounds: cfg.rounds,
        hotDist: cfg.hotDist,
        hotReads: cfg.hotReads,
        repeat: cfg.repeat,
        seed: cfg.seed,
        file: image.path,
        pageCache: cfg.dropCaches ? 'dropped' : 'warm',
      },
      environment: {
        node: process.version,
        platform: os.platform(),
        arch: os.arch(),
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model.trim() ?? '',
        loadAverageAtStart: loadAtStart,
      },
      workloads: results,
      checksumsAgree: ok,
      elapsedSeconds: elapsed,
    };
    process.stdout.write(`${JSON.stringify(json)}\n`);
  }
  if (!ok) {
    process.stderr.write('bench:cache: checksum mismatch: some strategy returned wrong data\n');
    return 1;
  }
  return 0;
}

process.exitCode = main();
