/**
 * Test images made by the real tool: `mke2fs -d SRC` over a populated directory.
 * Images are cached per test process in one temporary directory, keyed by name.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let workDir: string | undefined;

/** A per-process scratch directory, removed at exit. */
export function scratchDir(): string {
  if (workDir === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'ext4ts-test-'));
    workDir = dir;
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return workDir;
}

export interface ImageSpec {
  /** Unique name within the test file; also the cache key. */
  readonly name: string;
  /** Size of the image, e.g. "64M". */
  readonly size: string;
  /** Extra mke2fs arguments, e.g. ['-t', 'ext4', '-b', '1024', '-O', '^metadata_csum']. */
  readonly mkfsArgs: readonly string[];
  /** Fills the source directory given to `mke2fs -d`; omitted = empty filesystem. */
  readonly populate?: (dir: string) => void;
}

/** Make (once per process) an image with mke2fs and return its path. */
export function makeImage(spec: ImageSpec): string {
  const dir = scratchDir();
  const image = join(dir, `${spec.name}.img`);
  if (existsSync(image)) return image;
  const args = ['-q', '-F', ...spec.mkfsArgs];
  if (spec.populate !== undefined) {
    const src = join(dir, `${spec.name}.src`);
    mkdirSync(src, { recursive: true });
    spec.populate(src);
    args.push('-d', src);
  }
  args.push(image, spec.size);
  execFileSync('mke2fs', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  return image;
}

/** Run debugfs read-only with one request and return its stdout. */
export function debugfs(image: string, request: string): string {
  return execFileSync('debugfs', ['-R', request, image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 256 * 1024 * 1024 });
}

/** `dumpe2fs -h` output as a map of field name to value. */
export function dumpe2fsHeader(image: string): Map<string, string> {
  const out = execFileSync('dumpe2fs', ['-h', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const fields = new Map<string, string>();
  for (const line of out.split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (m !== null && m[1] !== undefined && m[2] !== undefined) fields.set(m[1].trim(), m[2].trim());
  }
  return fields;
}
