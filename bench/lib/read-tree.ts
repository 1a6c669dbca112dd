/**
 * The read benchmark's source tree and ext4 image (bench/read.ts).
 *
 * The tree is generated once from a fixed seed and kept under `.bench/` with a
 * manifest; the image is made from it with `mke2fs -d` and kept beside it. Both are
 * remade when the manifest's spec differs (a new TREE_VERSION, another size).
 *
 * Shape of the tree (per top-level directory d00, d01, ...):
 *   950 regular files f0000..f0949, 0–8 KiB (5% empty, 20% under 256 bytes, the rest
 *       uniform in 256..8192 bytes);
 *   40 symlinks l00..l39 (most fast, i.e. under 60 bytes; every 8th a long, slow one);
 *   5 subdirectories s0..s4 of 10 files each, each holding one nested directory n of 5
 *       files.
 * With 50 top-level directories: 53,800 entries below the root (plus lost+found).
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Rng } from './rng.js';

/** Bump when the shape or content rules change: cached trees and images are remade. */
const TREE_VERSION = 1;

export interface TreeSpec {
  readonly topDirs: number;
  readonly filesPerDir: number;
  readonly symlinksPerDir: number;
  readonly subDirs: number;
  readonly filesPerSubDir: number;
  readonly nestedFiles: number;
  readonly seed: number;
}

export const FULL_TREE: TreeSpec = { topDirs: 50, filesPerDir: 950, symlinksPerDir: 40, subDirs: 5, filesPerSubDir: 10, nestedFiles: 5, seed: 1 };
export const QUICK_TREE: TreeSpec = { ...FULL_TREE, topDirs: 5 };

export interface Manifest {
  readonly version: number;
  readonly spec: TreeSpec;
  /** Directories relative to the root ('' for the root itself), parents before children. */
  readonly dirs: readonly string[];
  /** Entries below the root in the source tree (files + dirs + symlinks). */
  readonly entries: number;
  readonly files: number;
  readonly symlinks: number;
  /** Bytes of regular-file content. */
  readonly bytes: number;
  /** sha256 over "path\0size\0sha256(content)\n" of every file, sorted by path. */
  readonly digest: string;
}

export interface BenchTree {
  readonly name: string;
  readonly srcDir: string;
  readonly image: string;
  readonly manifest: Manifest;
  /** Seconds spent (re)generating the tree and the image in this run (0 when reused). */
  readonly generatedSeconds: number;
}

/** Content pool: file contents are slices of it at varying offsets (cheap, and not all zero). */
function contentPool(seed: number): Buffer {
  const rng = new Rng(seed ^ 0x5eed);
  const pool = Buffer.alloc(256 * 1024);
  for (let i = 0; i < pool.length; i += 4) pool.writeUInt32LE(rng.u32(), i);
  return pool;
}

function fileSize(rng: Rng): number {
  const u = rng.next();
  if (u < 0.05) return 0;
  if (u < 0.25) return 1 + rng.int(255);
  return 256 + rng.int(8192 - 256 + 1);
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** Write the tree under `root` (which must not exist) and return its manifest. */
function writeTree(root: string, spec: TreeSpec): Manifest {
  const rng = new Rng(spec.seed);
  const pool = contentPool(spec.seed);
  const dirs: string[] = [''];
  const fileDigests: string[] = [];
  let entries = 0;
  let files = 0;
  let symlinks = 0;
  let bytes = 0;
  fs.mkdirSync(root, { recursive: true });
  const writeFile = (rel: string): void => {
    const size = fileSize(rng);
    const at = rng.int(pool.length - size);
    const data = pool.subarray(at, at + size);
    fs.writeFileSync(path.join(root, rel), data, { mode: 0o644 });
    fileDigests.push(`${rel}\0${size}\0${crypto.createHash('sha256').update(data).digest('hex')}\n`);
    files++;
    entries++;
    bytes += size;
  };
  const mkdir = (rel: string): void => {
    fs.mkdirSync(path.join(root, rel), { mode: 0o755 });
    dirs.push(rel);
    entries++;
  };
  const topWidth = Math.max(2, String(spec.topDirs - 1).length);
  for (let d = 0; d < spec.topDirs; d++) {
    const top = `d${pad(d, topWidth)}`;
    mkdir(top);
    for (let f = 0; f < spec.filesPerDir; f++) writeFile(`${top}/f${pad(f, 4)}`);
    for (let l = 0; l < spec.symlinksPerDir; l++) {
      const other = `d${pad(rng.int(spec.topDirs), topWidth)}`;
      const target = l % 8 === 7 ? `../${other}/${'long-symlink-target-'.repeat(4)}${pad(l, 2)}` : `../${other}/f${pad(rng.int(spec.filesPerDir), 4)}`;
      fs.symlinkSync(target, path.join(root, top, `l${pad(l, 2)}`));
      symlinks++;
      entries++;
    }
    for (let s = 0; s < spec.subDirs; s++) {
      const sub = `${top}/s${s}`;
      mkdir(sub);
      for (let f = 0; f < spec.filesPerSubDir; f++) writeFile(`${sub}/f${pad(f, 2)}`);
      mkdir(`${sub}/n`);
      for (let f = 0; f < spec.nestedFiles; f++) writeFile(`${sub}/n/f${pad(f, 2)}`);
    }
  }
  fileDigests.sort();
  const digest = crypto.createHash('sha256').update(fileDigests.join('')).digest('hex');
  return { version: TREE_VERSION, spec, dirs, entries, files, symlinks, bytes, digest };
}

function readManifest(file: string): Manifest | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
}

function sameSpec(a: TreeSpec, b: TreeSpec): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Make sure the tree and the image for `spec` exist under `benchDir`; (re)generate
 * what is missing or stale. `log` gets one line per generation step.
 */
export function ensureTree(benchDir: string, name: string, spec: TreeSpec, log: (line: string) => void): BenchTree {
  const srcDir = path.join(benchDir, `read-${name}-src`);
  const image = path.join(benchDir, `read-${name}.img`);
  const manifestFile = path.join(benchDir, `read-${name}.json`);
  const started = performance.now();
  let manifest = readManifest(manifestFile);
  const fresh = manifest !== undefined && manifest.version === TREE_VERSION && sameSpec(manifest.spec, spec) && fs.existsSync(srcDir);
  if (!fresh || manifest === undefined) {
    log(`generating the ${name} source tree in ${srcDir} ...`);
    fs.rmSync(manifestFile, { force: true });
    fs.rmSync(image, { force: true });
    fs.rmSync(srcDir, { recursive: true, force: true });
    manifest = writeTree(srcDir, spec);
    fs.writeFileSync(manifestFile, JSON.stringify(manifest));
  }
  if (!fs.existsSync(image) || fs.statSync(image).mtimeMs < fs.statSync(manifestFile).mtimeMs) {
    log(`making ${image} (mke2fs -t ext4 -N 70000 -d ..., 1G) ...`);
    const tmp = `${image}.tmp`;
    fs.rmSync(tmp, { force: true });
    // A fixed UUID and hash seed keep the image the same from one generation to the next.
    const r = spawnSync(
      'mke2fs',
      ['-q', '-F', '-t', 'ext4', '-N', '70000', '-U', 'b3c0ffee-0000-4000-8000-000000000001', '-E', 'hash_seed=b3c0ffee-0000-4000-8000-000000000002', '-d', srcDir, tmp, '1G'],
      { encoding: 'utf8', env: { ...process.env, E2FSPROGS_FAKE_TIME: '1700000000' } },
    );
    if (r.error !== undefined) throw new Error(`cannot run mke2fs: ${r.error.message}`);
    if (r.status !== 0) throw new Error(`mke2fs failed (exit ${r.status}): ${r.stderr.trim()}`);
    fs.renameSync(tmp, image);
  }
  const generatedSeconds = fresh && manifest.version === TREE_VERSION ? 0 : (performance.now() - started) / 1000;
  return { name, srcDir, image, manifest, generatedSeconds };
}

export interface ExtractCheck {
  readonly ok: boolean;
  readonly files: number;
  readonly symlinks: number;
  readonly dirs: number;
  readonly bytes: number;
  /** What differs from the manifest ('' when ok). */
  readonly problem: string;
}

/** Compare an extracted tree with the manifest: counts, sizes and the content digest. */
export function checkExtract(dest: string, manifest: Manifest): ExtractCheck {
  const digests: string[] = [];
  let files = 0;
  let symlinks = 0;
  let dirs = 0;
  let bytes = 0;
  const visit = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(dest, rel), { withFileTypes: true })) {
      const child = rel === '' ? e.name : `${rel}/${e.name}`;
      if (child === 'lost+found') continue;
      if (e.isDirectory()) {
        dirs++;
        visit(child);
      } else if (e.isSymbolicLink()) {
        symlinks++;
      } else if (e.isFile()) {
        const data = fs.readFileSync(path.join(dest, child));
        files++;
        bytes += data.length;
        digests.push(`${child}\0${data.length}\0${crypto.createHash('sha256').update(data).digest('hex')}\n`);
      }
    }
  };
  visit('');
  digests.sort();
  const digest = crypto.createHash('sha256').update(digests.join('')).digest('hex');
  const problems: string[] = [];
  if (files !== manifest.files) problems.push(`${files} files, expected ${manifest.files}`);
  if (symlinks !== manifest.symlinks) problems.push(`${symlinks} symlinks, expected ${manifest.symlinks}`);
  if (dirs !== manifest.dirs.length - 1) problems.push(`${dirs} directories, expected ${manifest.dirs.length - 1}`);
  if (bytes !== manifest.bytes) problems.push(`${bytes} bytes of file data, expected ${manifest.bytes}`);
  if (problems.length === 0 && digest !== manifest.digest) problems.push('file contents differ from the source tree');
  return { ok: problems.length === 0, files, symlinks, dirs, bytes, problem: problems.join('; ') };
}
