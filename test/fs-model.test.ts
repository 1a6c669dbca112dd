/**
 * Model-based write test: random sequences of operations (fast-check) applied to an
 * image through ext4ts and to a host directory. Each operation must have the same
 * outcome on both (success or the same errno); after each sequence e2fsck -fn must
 * find the image clean and a kernel mount of it must equal the host tree.
 *
 * CI runs 25 sequences per variant with a fixed seed. A longer campaign by hand:
 *   EXT4TS_MODEL_RUNS=500 EXT4TS_MODEL_SEED=$RANDOM EXT4TS_MODEL_VARIANTS=all \
 *     node --import tsx --test test/fs-model.test.ts
 * (all: also ext4 with 4 KiB blocks, ext3, and ext4 without metadata_csum and 64bit).
 * A failure prints the seed and the shrunk sequence to replay it.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { Ext4 } from '../src/fs/ext4.js';
import { makeImage, scratchDir } from './helpers/images.js';
import { unmountLeftovers } from './helpers/kernel.js';
import { Twin, copyImage } from './helpers/twin.js';
import { randomBytes } from './helpers/tree.js';

process.umask(0o022);
after(() => unmountLeftovers());

const NAMES = ['a', 'b', 'c', 'd/x', 'd/y', 'a/b', 'a/c', 'b/a', 'long-name-'.repeat(20)];
const path = fc.constantFrom(...NAMES).map((n) => `/${n}`);

type Op =
  | { kind: 'mkdir'; path: string }
  | { kind: 'write'; path: string; size: number; seed: number }
  | { kind: 'writeAt'; path: string; offset: number; size: number; seed: number }
  | { kind: 'truncate'; path: string; size: number }
  | { kind: 'unlink'; path: string }
  | { kind: 'rmdir'; path: string }
  | { kind: 'rename'; from: string; to: string }
  | { kind: 'link'; from: string; to: string }
  | { kind: 'symlink'; target: string; path: string }
  | { kind: 'chmod'; path: string; mode: number }
  | { kind: 'setxattr'; path: string; name: string; size: number; seed: number }
  | { kind: 'removexattr'; path: string; name: string }
  | { kind: 'chown'; path: string; uid: number; gid: number }
  | { kind: 'rmTree'; path: string };

const size = fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 200_000 }));
const seed = fc.integer({ min: 1, max: 1_000_000 });
const xname = fc.constantFrom('user.one', 'user.two', 'user.three');

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: path.map((p) => ({ kind: 'mkdir' as const, path: p })) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('write' as const), path, size, seed }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('writeAt' as const), path, offset: fc.integer({ min: 0, max: 300_000 }), size, seed }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), path, size }) },
  { weight: 2, arbitrary: path.map((p) => ({ kind: 'unlink' as const, path: p })) },
  { weight: 2, arbitrary: path.map((p) => ({ kind: 'rmdir' as const, path: p })) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('rename' as const), from: path, to: path }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('link' as const), from: path, to: path }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('symlink' as const), target: fc.constantFrom('a', 'd/y', 'x'.repeat(80)), path }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('chmod' as const), path, mode: fc.constantFrom(0o600, 0o755, 0o4711, 0o1777) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('setxattr' as const), path, name: xname, size: fc.integer({ min: 0, max: 300 }), seed }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('removexattr' as const), path, name: xname }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('chown' as const), path, uid: fc.constantFrom(0, 1000, 65534), gid: fc.constantFrom(0, 100, 65534) }) },
  { weight: 1, arbitrary: path.map((p) => ({ kind: 'rmTree' as const, path: p })) },
);

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
      t.setxattr(op.path, op.name, randomBytes(op.seed, op.size));
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
const VARIANTS = [
  { name: 'ext4-1k', args: ['-t', 'ext4', '-b', '1024'] },
  { name: 'ext2', args: ['-t', 'ext2', '-b', '1024'] },
  ...(process.env.EXT4TS_MODEL_VARIANTS === 'all'
    ? [
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

    it('match a host directory, and e2fsck finds the image clean', () => {
      let run = 0;
      fc.assert(
        fc.property(fc.array(opArb, { minLength: 5, maxLength: 40 }), (ops) => {
          const dir = join(scratchDir(), `model-${variant.name}-${run++}`);
          fs.mkdirSync(dir);
          try {
            const image = copyImage(base, join(dir, 'image'));
            const host = join(dir, 'host');
            fs.mkdirSync(host);
            const t = new Twin(Ext4.openFile(image, { write: true }), host);
            for (const op of ops) apply(t, op);
            assert.deepEqual(t.verify(image, join(dir, 'mnt')), []);
          } finally {
            fs.rmSync(dir, { recursive: true, force: true });
          }
        }),
        { numRuns: RUNS, seed: SEED, endOnFailure: true, includeErrorInReport: true },
      );
    });
  });
}
