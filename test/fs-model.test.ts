/**
 * Model-based write test: random sequences of operations (fast-check) applied to an
 * image through ext4ts and to a host directory. Each operation must have the same
 * outcome on both (success or the same errno); after each sequence e2fsck -fn must
 * find the image clean and a kernel mount of it must equal the host tree. Besides the
 * namespace, data, mode, owner and xattr operations, sequences hold fallocate in each
 * mode ext4ts supports, renameat2 with RENAME_NOREPLACE or RENAME_EXCHANGE, and utimens
 * to explicit times (whose mtimes the comparison then checks, see Twin.verify). On an
 * ea_inode filesystem xattr values go up to 3,000 bytes: EA inodes, created, replaced,
 * released by unlink, rename over and rm -r.
 *
 * CI runs 25 sequences per variant with a fixed seed. A longer campaign by hand:
 *   EXT4TS_MODEL_RUNS=500 EXT4TS_MODEL_SEED=$RANDOM EXT4TS_MODEL_VARIANTS=all \
 *     node --import tsx --test test/fs-model.test.ts
 * (all: also ext4 with 4 KiB blocks, bigalloc with 64 KiB clusters of 4 KiB blocks, ext3,
 * and ext4 without metadata_csum and 64bit).
 * A failure prints the seed and the shrunk sequence to replay it.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { Ext4 } from '../src/fs/ext4.js';
import { makeImage, scratchDir } from './helpers/images.js';
import { unmountLeftovers, withMount } from './helpers/kernel.js';
import { Twin, copyImage, EXPLICIT_TIMES } from './helpers/twin.js';
import { randomBytes } from './helpers/tree.js';
import type { Timestamp } from '../src/ondisk/time.js';

process.umask(0o022);
after(() => unmountLeftovers());

const NAMES = ['a', 'b', 'c', 'd/x', 'd/y', 'a/b', 'a/c', 'b/a', 'long-name-'.repeat(20)];
const path = fc.constantFrom(...NAMES).map((n) => `/${n}`);
/**
 * Most random paths name nothing, so an operation on an existing entry is rare. A target
 * is either such a path, or `{ existing: i }`: the i-th (modulo their count) entry of the
 * host tree as it stands when the operation runs, of the kind the operation wants
 * ('/a' when there is none). The twin's report names the path it resolved to.
 */
type Target = string | { existing: number };
const target = fc.oneof({ weight: 1, arbitrary: path }, { weight: 3, arbitrary: fc.record({ existing: fc.nat({ max: 63 }) }) });

type Op =
  | { kind: 'mkdir'; path: string }
  | { kind: 'write'; path: string; size: number; seed: number }
  | { kind: 'writeAt'; path: string; offset: number; size: number; seed: number }
  | { kind: 'truncate'; path: string; size: number }
  | { kind: 'unlink'; path: string }
  | { kind: 'rmdir'; path: string }
  | { kind: 'rename'; from: string; to: string }
  | { kind: 'rename2'; from: Target; to: Target; flags: number }
  | { kind: 'fallocate'; path: Target; mode: number; offset: number; length: number }
  | { kind: 'utimens'; path: Target; atime: Timestamp; mtime: Timestamp }
  | { kind: 'link'; from: string; to: string }
  | { kind: 'symlink'; target: string; path: string }
  | { kind: 'chmod'; path: string; mode: number }
  | { kind: 'setxattr'; path: Target; name: string; size: number; seed: number }
  | { kind: 'removexattr'; path: string; name: string }
  | { kind: 'chown'; path: string; uid: number; gid: number }
  | { kind: 'rmTree'; path: string };

const size = fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 200_000 }));
const seed = fc.integer({ min: 1, max: 1_000_000 });
const xname = fc.constantFrom('user.one', 'user.two', 'user.three');
// fallocate ranges: small and block-unaligned, whole 1 KiB or 4 KiB blocks, or anywhere up
// to ~300 KB (so extents split and merge on both block sizes); a zero length is EINVAL.
const falloc = fc.oneof(
  fc.integer({ min: 0, max: 5000 }),
  fc.integer({ min: 0, max: 300 }).map((n) => n * 1024),
  fc.integer({ min: 0, max: 75 }).map((n) => n * 4096),
  fc.integer({ min: 0, max: 300_000 }),
);
// 0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE, ZERO_RANGE|KEEP_SIZE.
const fallocMode = fc.constantFrom(0, 0x01, 0x03, 0x10, 0x11);
// RENAME_NOREPLACE, RENAME_EXCHANGE.
const renameFlags = fc.constantFrom(1, 2);
// Only times verify() recognises as explicit (it compares those mtimes).
const explicitTime = fc.constantFrom(...EXPLICIT_TIMES);

/**
 * The operations, with xattr values of up to `maxXattr` bytes; `xattrWeight` for setxattr
 * (on a target: most of the random paths name nothing).
 */
const opArbOf = (maxXattr: number, xattrWeight: number): fc.Arbitrary<Op> => fc.oneof(
  { weight: 3, arbitrary: path.map((p) => ({ kind: 'mkdir' as const, path: p })) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('write' as const), path, size, seed }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('writeAt' as const), path, offset: fc.integer({ min: 0, max: 300_000 }), size, seed }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), path, size }) },
  { weight: 2, arbitrary: path.map((p) => ({ kind: 'unlink' as const, path: p })) },
  { weight: 2, arbitrary: path.map((p) => ({ kind: 'rmdir' as const, path: p })) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('rename' as const), from: path, to: path }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('rename2' as const), from: target, to: target, flags: renameFlags }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('fallocate' as const), path: target, mode: fallocMode, offset: falloc, length: falloc }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('utimens' as const), path: target, atime: explicitTime, mtime: explicitTime }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('link' as const), from: path, to: path }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('symlink' as const), target: fc.constantFrom('a', 'd/y', 'x'.repeat(80)), path }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('chmod' as const), path, mode: fc.constantFrom(0o600, 0o755, 0o4711, 0o1777) }) },
  { weight: xattrWeight, arbitrary: fc.record({ kind: fc.constant('setxattr' as const), path: target, name: xname, size: fc.integer({ min: 0, max: maxXattr }), seed }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('removexattr' as const), path, name: xname }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('chown' as const), path, uid: fc.constantFrom(0, 1000, 65534), gid: fc.constantFrom(0, 100, 65534) }) },
  { weight: 1, arbitrary: path.map((p) => ({ kind: 'rmTree' as const, path: p })) },
);

/** Paths ('/a/b') of the entries under `dir` (`rel` below the host root), depth first, sorted. */
function hostEntries(dir: string, rel = ''): { path: string; file: boolean }[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0))
    // (A host directory that is a mount of an image has one; so has the image: not a target.)
    .filter((e) => !(rel === '' && e.name === 'lost+found'))
    .flatMap((e) => {
      const p = `${rel}/${e.name}`;
      return [{ path: p, file: e.isFile() }, ...(e.isDirectory() ? hostEntries(join(dir, e.name), p) : [])];
    });
}

function resolveTarget(t: Twin, x: Target, filesOnly: boolean): string {
  if (typeof x === 'string') return x;
  const entries = hostEntries(t.host).filter((e) => !filesOnly || e.file);
  return entries[x.existing % entries.length]?.path ?? '/a';
}

function apply(t: Twin, op: Op): void {
  switch (op.kind) {
    case 'mkdir':
      t.mkdir(op.path);
      return;
    case 'write':
      t.writeFile(op.path, randomBytes(op.seed, op.size));
      return;
    case 'writeAt':
      t.writeAt(op.path, op.offset, randomBytes(op.seed, op.size));
      return;
    case 'truncate':
      t.truncate(op.path, op.size);
      return;
    case 'unlink':
      t.unlink(op.path);
      return;
    case 'rmdir':
      t.rmdir(op.path);
      return;
    case 'rename':
      t.rename(op.from, op.to);
      return;
    case 'rename2':
      t.rename2(resolveTarget(t, op.from, false), resolveTarget(t, op.to, false), op.flags);
      return;
    case 'fallocate':
      t.fallocate(resolveTarget(t, op.path, true), op.mode, op.offset, op.length);
      return;
    case 'utimens':
      t.utimens(resolveTarget(t, op.path, false), op.atime, op.mtime);
      return;
    case 'link':
      t.link(op.from, op.to);
      return;
    case 'symlink':
      t.symlink(op.target, op.path);
      return;
    case 'chmod':
      t.chmod(op.path, op.mode);
      return;
    case 'setxattr':
      t.setxattr(resolveTarget(t, op.path, false), op.name, randomBytes(op.seed, op.size));
      return;
    case 'removexattr':
      t.removexattr(op.path, op.name);
      return;
    case 'chown':
      t.chown(op.path, op.uid, op.gid);
      return;
    case 'rmTree':
      t.rmTree(op.path);
      return;
  }
}

/** A positive integer from the environment, or `fallback`. */
function envInt(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name}=${text}: not a positive integer`);
  return n;
}

const RUNS = envInt('EXT4TS_MODEL_RUNS', 25);
const SEED = envInt('EXT4TS_MODEL_SEED', 20261126);
interface Variant {
  readonly name: string;
  readonly args: readonly string[];
  /**
   * Xattr values up to 3,000 bytes (most of them EA inodes with 1 KiB blocks), against a
   * host directory that is a kernel mount of a copy of the same empty image: a host
   * directory on this machine's ext4 holds no more than a block of xattrs per file.
   */
  readonly bigXattrs?: boolean;
}

const VARIANTS: readonly Variant[] = [
  { name: 'ext4-1k', args: ['-t', 'ext4', '-b', '1024'] },
  { name: 'ext2', args: ['-t', 'ext2', '-b', '1024'] },
  { name: 'ea-inode', args: ['-t', 'ext4', '-b', '1024', '-O', 'ea_inode'], bigXattrs: true },
  // Clusters of 4 blocks: writes, truncates and fallocate ranges start and end inside clusters.
  { name: 'bigalloc-1k', args: ['-t', 'ext4', '-b', '1024', '-O', 'bigalloc', '-C', '4096'] },
  ...(process.env.EXT4TS_MODEL_VARIANTS === 'all'
    ? [
        { name: 'bigalloc-4k', args: ['-t', 'ext4', '-b', '4096', '-O', 'bigalloc', '-C', '65536'] },
        { name: 'ext4-4k', args: ['-t', 'ext4', '-b', '4096'] },
        { name: 'ext3', args: ['-t', 'ext3', '-b', '1024'] },
        { name: 'ext4-nocsum', args: ['-t', 'ext4', '-b', '4096', '-O', '^metadata_csum,^64bit'] },
      ]
    : []),
];

for (const variant of VARIANTS) {
  describe(`random operation sequences on ${variant.name}`, () => {
    let base = '';
    before(() => {
      base = makeImage({ name: `model-${variant.name}`, size: '24M', mkfsArgs: variant.args });
    });

    it(`match a host directory${variant.bigXattrs === true ? ' (a kernel mount of the same image)' : ''}, and e2fsck finds the image clean`, () => {
      let run = 0;
      const opArb = variant.bigXattrs === true ? opArbOf(3000, 5) : opArbOf(300, 1);
      fc.assert(
        fc.property(fc.array(opArb, { minLength: 5, maxLength: 40 }), (ops) => {
          const dir = join(scratchDir(), `model-${variant.name}-${run++}`);
          fs.mkdirSync(dir);
          try {
            const image = copyImage(base, join(dir, 'image'));
            const sequence = (host: string): void => {
              const t = new Twin(Ext4.openFile(image, { write: true }), host);
              for (const op of ops) apply(t, op);
              assert.deepEqual(t.verify(image, join(dir, 'mnt')), []);
            };
            if (variant.bigXattrs === true) {
              withMount(copyImage(base, join(dir, 'host.img')), join(dir, 'host'), { readOnly: false }, sequence);
            } else {
              fs.mkdirSync(join(dir, 'host'));
              sequence(join(dir, 'host'));
            }
          } finally {
            fs.rmSync(dir, { recursive: true, force: true });
          }
        }),
        { numRuns: RUNS, seed: SEED, endOnFailure: true, includeErrorInReport: true },
      );
    });
  });
}
