/**
 * The long hostile-input fuzz, run by hand:
 *
 *   node --import tsx scripts/fuzz.ts --iterations 20000 --seed 7
 *   node --import tsx scripts/fuzz.ts --duration 600            # ten minutes, random seed
 *   node --import tsx scripts/fuzz.ts --replay ext4-1k/nocsum/123456789
 *
 * Mutates metadata of small base images (test/helpers/fuzz.ts), walks each mutated image
 * (the library API), changes a copy of it, and serves another copy through a FuseSession
 * driven with FUSE requests, in a child process under a time and memory limit, prints a
 * summary of outcomes by errno
 * and EUCLEAN structure, and saves every BUG's image and description to --out.
 *
 * Options:
 *   --iterations N   cases to run (default 2000; with --duration, an upper bound)
 *   --duration S     stop after S seconds
 *   --seed S         campaign seed (default: random, printed)
 *   --start I        first case index (default 0)
 *   --bases a,b      base images (default: all of them)
 *   --mode M         csum | nocsum | both (default both)
 *   --workers J      child processes (default: available parallelism)
 *   --timeout MS     wall-clock limit per image (default 5000)
 *   --out DIR        where BUG reproducers go (default ./fuzz-bugs)
 *   --scenarios      also run the hand-written hostile scenarios
 *   --replay ID,...  run only these cases (ids as printed: base/csum|nocsum/seed)
 *   --samples        print one sample message per errno/structure
 *   --verbose        print every case's outcome and time
 */
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

import {
  BASE_SPECS,
  FuzzPool,
  SCENARIOS,
  bugSignature,
  buildBases,
  caseId,
  caseSeed,
  describeBug,
  formatSummary,
  makeCase,
  parseCaseId,
  runCases,
  saveReproducer,
  scenarioCase,
  scenarioSlug,
  summarize,
  type BaseImage,
  type CaseOutcome,
  type FuzzCase,
} from '../test/helpers/fuzz.js';

const { values } = parseArgs({
  options: {
    iterations: { type: 'string' },
    duration: { type: 'string' },
    seed: { type: 'string' },
    start: { type: 'string', default: '0' },
    bases: { type: 'string' },
    mode: { type: 'string', default: 'both' },
    workers: { type: 'string' },
    timeout: { type: 'string', default: '5000' },
    out: { type: 'string', default: 'fuzz-bugs' },
    scenarios: { type: 'boolean', default: false },
    replay: { type: 'string' },
    samples: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

function int(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} wants a non-negative integer, not "${text}"`);
  return n;
}

if (values.help) {
  console.log('usage: node --import tsx scripts/fuzz.ts [--iterations N] [--duration S] [--seed S] [--bases a,b] [--mode csum|nocsum|both] [--workers J] [--timeout MS] [--out DIR] [--scenarios] [--replay ID,...] [--samples]');
  console.log(`base images: ${BASE_SPECS.map((b) => b.name).join(', ')}`);
  process.exit(0);
}

const durationMs = values.duration === undefined ? Infinity : int('duration', values.duration, 0) * 1000;
const iterations = int('iterations', values.iterations, values.duration === undefined ? 2000 : Number.MAX_SAFE_INTEGER);
const seed = int('seed', values.seed, Math.floor(Math.random() * 2 ** 32));
const start = int('start', values.start, 0);
const workers = int('workers', values.workers, Math.max(1, availableParallelism()));
const timeoutMs = int('timeout', values.timeout, 5000);
const outDir = resolve(values.out);
const mode = values.mode;
if (mode !== 'csum' && mode !== 'nocsum' && mode !== 'both') throw new Error(`--mode is csum, nocsum or both, not "${mode}"`);
const modes = mode === 'both' ? [true, false] : [mode === 'csum'];

const replay = values.replay?.split(',').filter((s) => s !== '').map(parseCaseId);
const baseNames = replay !== undefined ? [...new Set(replay.map((r) => r.base))] : values.bases?.split(',').filter((s) => s !== '');

const t0 = performance.now();
console.log(`building base images${baseNames === undefined ? '' : ` (${baseNames.join(', ')})`} ...`);
const bases = buildBases(baseNames);
console.log(`built ${bases.length} base images in ${Math.round(performance.now() - t0)} ms`);
for (const b of bases) {
  const kinds = [...b.byKind.entries()].map(([k, v]) => `${k} ${v.length}`).join(', ');
  console.log(`  ${b.name.padEnd(12)} ${b.description}; targets: ${kinds}`);
}

function* campaign(): Generator<FuzzCase> {
  if (replay !== undefined) {
    for (const r of replay) {
      const base = bases.find((b) => b.name === r.base) as BaseImage;
      if (typeof r.seed === 'number') {
        yield makeCase(base, r.checksums, r.seed);
        continue;
      }
      const s = SCENARIOS.find((x) => `scenario:${scenarioSlug(x)}` === r.seed);
      const c = s === undefined ? undefined : scenarioCase(s, base, r.checksums);
      if (c === undefined) throw new Error(`no scenario ${r.seed} for ${r.base}`);
      yield c;
    }
    return;
  }
  if (values.scenarios) {
    for (const s of SCENARIOS) {
      const base = bases.find((b) => b.name === s.base);
      if (base === undefined) continue;
      for (const checksums of modes) {
        const c = scenarioCase(s, base, checksums);
        if (c !== undefined) yield c;
      }
    }
  }
  const deadline = performance.now() + durationMs;
  for (let i = start; i < start + iterations; i++) {
    if (performance.now() > deadline) return;
    const base = bases[i % bases.length] as BaseImage;
    const checksums = modes[Math.floor(i / bases.length) % modes.length] as boolean;
    yield makeCase(base, checksums, caseSeed(seed, i));
  }
}

console.log(replay !== undefined ? `replaying ${replay.length} case(s)` : `campaign seed ${seed}, cases ${start}..${iterations === Number.MAX_SAFE_INTEGER ? '' : start + iterations - 1}${Number.isFinite(durationMs) ? `, for at most ${durationMs / 1000} s` : ''}, ${workers} workers, ${timeoutMs} ms per image`);

const pool = new FuzzPool({ workers, timeoutMs });
const signatures = new Map<string, CaseOutcome[]>();
let done = 0;
let lastReport = performance.now();
const runStart = performance.now();
const onOutcome = (o: CaseOutcome): void => {
  done++;
  if (o.verdict === 'bug') {
    const sig = bugSignature(o);
    const list = signatures.get(sig) ?? [];
    list.push(o);
    signatures.set(sig, list);
    const img = list.length <= 20 ? saveReproducer(outDir, o) : '(not saved: 20 of this kind already)';
    if (list.length === 1) console.log(`\n${describeBug(o)}\n  saved: ${img}\n`);
  }
  if (values.verbose && replay === undefined) console.log(`  ${caseId(o.fuzzCase)}: ${o.verdict} in ${o.ms} ms${o.result === undefined ? '' : `, ${o.result.ops} calls, slowest ${o.result.slowestMs} ms (${o.result.slowestOp})`}`);
  if (replay !== undefined) {
    const r = o.result;
    console.log(`${caseId(o.fuzzCase)}: ${o.verdict} in ${o.ms} ms`);
    for (const step of o.fuzzCase.mutation.steps) console.log(`  mutation: ${step}`);
    if (r !== undefined) {
      console.log(`  opened: ${r.openError === undefined ? 'yes' : `no (${r.openError})`}, ${r.ops} calls, errors ${JSON.stringify(r.codes)}`);
      for (const [k, v] of Object.entries(r.samples)) console.log(`    [${k}] ${v}`);
    }
  }
  const now = performance.now();
  if (now - lastReport > 10_000) {
    lastReport = now;
    const rate = done / ((now - runStart) / 1000);
    const bugs = [...signatures.values()].reduce((n, l) => n + l.length, 0);
    console.log(`  ${done} cases, ${rate.toFixed(1)}/s, ${bugs} BUG (${signatures.size} distinct)`);
  }
};

let outcomes: CaseOutcome[] = [];
const stop = (): void => {
  pool.close();
  process.exit(130);
};
process.once('SIGINT', stop);
try {
  outcomes = await runCases(pool, campaign(), onOutcome);
} finally {
  pool.close();
}

const summary = summarize(outcomes);
const elapsed = (performance.now() - runStart) / 1000;
console.log(`\n==== summary: ${outcomes.length} cases in ${elapsed.toFixed(1)} s (${(outcomes.length / elapsed).toFixed(1)}/s), campaign seed ${seed}`);
console.log(formatSummary(summary, { samples: values.samples }));
if (signatures.size > 0) {
  console.log(`\n==== ${summary.bugs.length} BUG outcomes, ${signatures.size} distinct (reproducers in ${outDir}):`);
  for (const [sig, list] of signatures) {
    const first = list[0] as CaseOutcome;
    console.log(`\n[${list.length}x] ${sig}\n${describeBug(first)}`);
    if (list.length > 1) console.log(`  also: ${list.slice(1, 6).map((o) => caseId(o.fuzzCase)).join(', ')}${list.length > 6 ? ', ...' : ''}`);
  }
}
process.exitCode = signatures.size > 0 ? 1 : 0;
