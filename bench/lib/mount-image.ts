/**
 * The mount benchmark's image (bench/mount.ts): the generated tree of bench:read
 * (bench/lib/read-tree.ts: ~53,800 entries of small files, directories and symlinks,
 * shared with bench:read's cache) plus one large file of pseudo-random content at
 * `/big.bin`, in one ext4 image kept under `.bench/`.
 *
 * The image is made with `mke2fs -d TREE` and the large file is added with
 * `debugfs -w -R "write ..."` (mke2fs -d takes one directory, and the tree is shared,
 * so it is not modified). The big file's content is an AES-256-CTR keystream with a
 * fixed key: the same bytes on every machine, generated at ~GB/s, incompressible. A
 * manifest beside the image records what it holds; the image is remade when the
 * manifest's spec differs or the tree changed.
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureTree, type BenchTree, type TreeSpec } from './read-tree.js';

/** Bump when the image layout changes: cached images are remade. */
const IMAGE_VERSION = 1;
export const BIG_NAME = 'big.bin';

export interface MountImageSpec {
  readonly tree: TreeSpec;
  /** Size of /big.bin in bytes (a multiple of 4096). */
  readonly bigBytes: number;
  /** Size of the filesystem (mke2fs's size argument). */
  readonly fsSize: string;
}

interface ImageManifest {
  readonly version: number;
  readonly spec: MountImageSpec;
  readonly treeDigest: string;
  readonly bigSha256: string;
}

export interface MountImage {
  readonly image: string;
  readonly tree: BenchTree;
  readonly spec: MountImageSpec;
  /** sha256 of /big.bin's content (hex). */
  readonly bigSha256: string;
  /** Entries below the root of the image: the tree, lost+found and big.bin. */
  readonly entries: number;
  /** Regular files of the tree (what the read-every-file workload reads; big.bin excluded). */
  readonly files: number;
  /** Seconds spent generating in this run (0 when everything was reused). */
  readonly generatedSeconds: number;
}

function readManifest(file: string): ImageManifest | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as ImageManifest;
  } catch {
    return undefined;
  }
}

/** Write `bytes` bytes of the fixed keystream to `file`; returns their sha256. */
function writeBigFile(file: string, bytes: number): string {
  const cipher = crypto.createCipheriv('aes-256-ctr', Buffer.alloc(32, 0x45), Buffer.alloc(16, 0));
  const hash = crypto.createHash('sha256');
  const zeros = Buffer.alloc(4 * 1024 * 1024);
  const fd = fs.openSync(file, 'w');
  try {
    for (let done = 0; done < bytes; ) {
      const n = Math.min(zeros.length, bytes - done);
      const chunk = cipher.update(zeros.subarray(0, n));
      hash.update(chunk);
      let written = 0;
      while (written < chunk.length) written += fs.writeSync(fd, chunk, written, chunk.length - written, done + written);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

function run(cmd: string, args: readonly string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, E2FSPROGS_FAKE_TIME: '1700000000' } });
  if (r.error !== undefined) throw new Error(`cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} failed (exit ${r.status}): ${(r.stderr || r.stdout).trim()}`);
}

/** Make sure the image for `spec` exists under `benchDir` (tree and image reused when up to date). */
export function ensureMountImage(benchDir: string, name: string, spec: MountImageSpec, log: (line: string) => void): MountImage {
  const started = performance.now();
  const tree = ensureTree(benchDir, name, spec.tree, log);
  const image = path.join(benchDir, `mount-${name}.img`);
  const manifestFile = path.join(benchDir, `mount-${name}.json`);
  let manifest = readManifest(manifestFile);
  const fresh =
    manifest !== undefined &&
    manifest.version === IMAGE_VERSION &&
    JSON.stringify(manifest.spec) === JSON.stringify(spec) &&
    manifest.treeDigest === tree.manifest.digest &&
    fs.existsSync(image);
  let generated = false;
  if (!fresh || manifest === undefined) {
    generated = true;
    fs.rmSync(manifestFile, { force: true });
    fs.rmSync(image, { force: true });
    const tmp = `${image}.tmp`;
    const big = path.join(benchDir, `mount-${name}-big.tmp`);
    try {
      log(`making ${image} (mke2fs -t ext4 -N 70000 -d ${path.basename(tree.srcDir)} ..., ${spec.fsSize}) ...`);
      fs.rmSync(tmp, { force: true });
      run('mke2fs', ['-q', '-F', '-t', 'ext4', '-N', '70000', '-U', 'b3c0ffee-0000-4000-8000-000000000011', '-E', 'hash_seed=b3c0ffee-0000-4000-8000-000000000012', '-d', tree.srcDir, tmp, spec.fsSize]);
      log(`adding /${BIG_NAME} (${spec.bigBytes / 1024 / 1024} MiB of pseudo-random bytes, debugfs write) ...`);
      const bigSha256 = writeBigFile(big, spec.bigBytes);
      run('debugfs', ['-w', '-R', `write ${big} ${BIG_NAME}`, tmp]);
      run('e2fsck', ['-fn', tmp]);
      fs.renameSync(tmp, image);
      manifest = { version: IMAGE_VERSION, spec, treeDigest: tree.manifest.digest, bigSha256 };
      fs.writeFileSync(manifestFile, JSON.stringify(manifest));
    } finally {
      fs.rmSync(big, { force: true });
      fs.rmSync(tmp, { force: true });
    }
  }
  const m = tree.manifest;
  return {
    image,
    tree,
    spec,
    bigSha256: manifest.bigSha256,
    entries: m.entries + 2,
    files: m.files,
    generatedSeconds: generated || tree.generatedSeconds > 0 ? (performance.now() - started) / 1000 : 0,
  };
}
