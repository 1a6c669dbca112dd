/**
 * bench:readdir — listing one large htree directory through `Ext4.readdirInode`.
 *
 * Makes an image with `mke2fs -d` over a directory of N empty files, indexes it with
 * `e2fsck -fyD` (mke2fs -d writes linear directories), and times in-process:
 *   full     one readdirInode pass over the whole directory (first pass cold, then warm)
 *   chunked  the directory read in pages of P entries, each page a new readdirInode
 *            call resumed from the previous page's last `next` cookie (what the FUSE
 *            session does per READDIR request)
 * Prints milliseconds per pass (median of the warm passes) and checks that every pass
 * saw every name exactly once.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Ext4, ROOT_INO } from '../src/fs/ext4.js';

const { values } = parseArgs({
  options: {
    entries: { type: 'string', default: '50000' },
    page: { type: 'string', default: '100' },
    passes: { type: 'string', default: '5' },
    'block-size': { type: 'string', default: '4096' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log('Usage: npm run bench:readdir -- [--entries N] [--page P] [--passes K] [--block-size B]');
  process.exit(0);
}
const entries = Number(values.entries);
const page = Number(values.page);
const passes = Number(values.passes);
const blockSize = Number(values['block-size']);

const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
const work = fs.mkdtempSync(path.join(base, 'ext4ts-readdir-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));
const src = path.join(work, 'src');
fs.mkdirSync(path.join(src, 'big'), { recursive: true });
for (let i = 0; i < entries; i++) fs.closeSync(fs.openSync(path.join(src, 'big', `file-${i}-${(i * 2654435761) % 1000003}`), 'w'));
const image = path.join(work, 'img');
execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', String(blockSize), '-N', String(entries + 1000), '-d', src, image, '512M'], { stdio: 'ignore' });
execFileSync('e2fsck', ['-fyD', image], { stdio: 'ignore' });

const e4 = Ext4.openFile(image);
const dir = e4.lookup(ROOT_INO, 'big');

function full(): number {
  let n = 0;
  for (const e of e4.readdirInode(dir)) if (e.name !== '.' && e.name !== '..') n++;
  return n;
}

function chunked(): number {
  const seen = new Set<string>();
  let cookie = 0;
  for (;;) {
    let last: number | undefined;
    let got = 0;
    for (const e of e4.readdirInode(dir, cookie)) {
      if (e.name !== '.' && e.name !== '..') {
        if (seen.has(e.name)) throw new Error(`duplicate ${e.name}`);
        seen.add(e.name);
      }
      last = e.next;
      if (++got === page) break;
    }
    if (last === undefined) return seen.size;
    cookie = last;
  }
}

function time(label: string, run: () => number): void {
  const t0 = performance.now();
  const n0 = run();
  const cold = performance.now() - t0;
  const warm: number[] = [];
  for (let i = 0; i < passes; i++) {
    const t = performance.now();
    const n = run();
    warm.push(performance.now() - t);
    if (n !== entries || n0 !== entries) throw new Error(`${label}: saw ${n0}/${n} of ${entries} entries`);
  }
  warm.sort((a, b) => a - b);
  console.log(`${label.padEnd(24)} first ${cold.toFixed(1).padStart(8)} ms   warm median ${(warm[Math.floor(warm.length / 2)] as number).toFixed(1).padStart(8)} ms`);
}

console.log(`${entries} entries, ${blockSize}-byte blocks, directory of ${Math.ceil(e4.getattr(dir).size / blockSize)} blocks`);
time('full readdirInode', full);
time(`chunked (${page} per call)`, chunked);
e4.close();
