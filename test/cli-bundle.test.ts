/**
 * The CLI as installed: `npm run build` compiles src/ with tsc and bundles the CLI
 * (scripts/bundle.ts): dist/cli/ext4ts-main.cjs (the CLI as one script), dist/cli/ext4ts.js
 * (package.json's bin: runs that script with V8's code cache) and the cache the build
 * trained, dist/cli/ext4ts-main.cache. The other CLI tests run src/ under tsx; this one
 * builds the bundle from the current src/ into a scratch directory (not dist/, which may
 * be stale or in use) and checks that it does what the sources do: the same output for
 * reading commands, a full `get`, a mount (its FUSE worker is a separate file the bundle
 * must find: the build's one-file worker), the same one-line errors; and that the code
 * caches are used when they belong to the bundle, and ignored (same output) when absent,
 * made for another build or under other V8 flags, or cut short.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { makeImage, scratchDir } from './helpers/images.js';
import { REPO, runChild, runCli, snapshot } from './helpers/cli.js';
import { BUILD_LINE, CACHE_FILE, CACHE_MAGIC, HEADER_BYTES, MAIN_FILE, SERVER_CACHE_FILE, buildHashOf, encodeCache, readCache } from '../src/cli/code-cache.js';

let bundle: string;
let image: string;

/** Runs the bundled CLI (TZ=UTC, LC_ALL=C like runCli). */
function runBundle(args: readonly string[], extraEnv: NodeJS.ProcessEnv = {}): { status: number | null; stdout: Buffer; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, TZ: 'UTC', LC_ALL: 'C', ...extraEnv };
  delete env.NODE_OPTIONS;
  const r = spawnSync(process.execPath, [bundle, ...args], { env, maxBuffer: 64 << 20, timeout: 60_000 });
  if (r.error !== undefined) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

before(() => {
  const out = join(scratchDir(), 'bundle-build');
  const dist = join(out, 'dist');
  fs.mkdirSync(out, { recursive: true });
  // The addon is found relative to the modules (../../native from dist/cli and dist/io).
  fs.symlinkSync(join(REPO, 'native'), join(out, 'native'));
  execFileSync(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(REPO, 'tsconfig.build.json'), '--outDir', dist], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  execFileSync(process.execPath, ['--import', 'tsx', join(REPO, 'scripts', 'bundle.ts'), '--dist', dist], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  bundle = join(dist, 'cli', 'ext4ts.js');
  image = makeImage({
    name: 'bundle',
    size: '16M',
    mkfsArgs: ['-t', 'ext4'],
    populate: (dir) => {
      for (let d = 0; d < 3; d++) {
        fs.mkdirSync(join(dir, `d${d}`));
        for (let f = 0; f < 20; f++) fs.writeFileSync(join(dir, `d${d}`, `f${f}`), Buffer.alloc(100 + d * 3000 + f * 50, d * 20 + f + 1));
      }
      fs.symlinkSync('d0/f1', join(dir, 'link'));
      fs.linkSync(join(dir, 'd1', 'f2'), join(dir, 'hard'));
      fs.utimesSync(join(dir, 'd2'), 1_000_000, 2_000_000);
    },
  });
});

void describe('the bundled CLI (dist/cli/ext4ts.js, ext4ts-main.cjs, its code cache)', () => {
  void it('is a program that imports only Node\'s modules, and one script that requires no module of ours', () => {
    const text = fs.readFileSync(bundle, 'utf8');
    assert.ok(text.startsWith('#!/usr/bin/env node\n'), 'runs as a program');
    assert.equal(fs.statSync(bundle).mode & 0o111, 0o111, 'executable');
    const imports = [...text.matchAll(/^import .* from ['"]([^'"]+)['"]/gm)].map((m) => m[1]);
    assert.ok(imports.length > 0 && imports.every((m) => m?.startsWith('node:') === true), `static imports: ${imports.join(', ')}`);
    const main = fs.readFileSync(join(dirname(bundle), MAIN_FILE), 'utf8');
    assert.match(buildHashOf(main), /^[0-9a-f]{32}$/);
    const required = new Set([...main.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1]));
    assert.ok([...required].every((m) => m?.startsWith('node:') === true || m === '@node-rs/crc32'), `requires: ${[...required].join(', ')}`);
    assert.ok(!/\bimport\.meta\b/.test(main), 'no import.meta left in a classic script');
  });

  void it('runs with the code cache the build trained, and the same without it or with a wrong one', () => {
    const cache = join(dirname(bundle), CACHE_FILE);
    const good = fs.readFileSync(cache);
    const args = ['ls', '-R', '-l', image, '/'];
    const want = runCli(args).stdout;
    const outcome = (): string => {
      const r = runBundle(args, { EXT4TS_CODE_CACHE_DEBUG: '1' });
      assert.equal(r.status, 0, r.stderr);
      assert.ok(r.stdout.equals(want), 'same listing');
      return r.stderr;
    };
    const serverCache = join(dirname(bundle), SERVER_CACHE_FILE);
    const goodServer = fs.readFileSync(serverCache);
    const mountHelp = (): string => {
      const r = runBundle(['mount', '--help'], { EXT4TS_CODE_CACHE_DEBUG: '1' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout.toString(), /^Usage: ext4ts mount /);
      return r.stderr;
    };
    try {
      assert.equal(outcome(), 'ext4ts: code cache accepted\n');
      // mount runs under V8's default flags, with a cache of its own; V8 refuses the other one.
      assert.equal(mountHelp(), 'ext4ts: code cache accepted\n');
      fs.writeFileSync(serverCache, good);
      assert.equal(mountHelp(), 'ext4ts: code cache rejected\n');
      fs.rmSync(cache);
      assert.equal(outcome(), 'ext4ts: code cache absent\n');
      const hash = buildHashOf(fs.readFileSync(join(dirname(bundle), MAIN_FILE), 'utf8'));
      const other = `${hash.slice(0, -1)}${hash.endsWith('0') ? '1' : '0'}`;
      fs.writeFileSync(cache, encodeCache(other, good.subarray(HEADER_BYTES)));
      assert.equal(outcome(), 'ext4ts: code cache stale\n');
      fs.writeFileSync(cache, good.subarray(0, good.length - 1000));
      assert.equal(outcome(), 'ext4ts: code cache invalid\n');
      fs.writeFileSync(cache, Buffer.concat([good.subarray(0, HEADER_BYTES), Buffer.alloc(good.length - HEADER_BYTES, 0x5a)]));
      assert.equal(outcome(), 'ext4ts: code cache rejected\n');
    } finally {
      fs.writeFileSync(cache, good);
      fs.writeFileSync(serverCache, goodServer);
    }
  });

  void it('code cache files: header round trip; anything else is absent, invalid or stale', () => {
    const dir = join(scratchDir(), 'code-cache');
    fs.mkdirSync(dir, { recursive: true });
    const file = join(dir, 'c');
    const payload = Buffer.from('payload bytes');
    fs.writeFileSync(file, encodeCache('abc123', payload));
    assert.deepEqual(readCache(file, 'abc123'), payload);
    assert.equal(readCache(file, 'abc124'), 'stale');
    assert.equal(readCache(join(dir, 'none'), 'abc123'), 'absent');
    fs.writeFileSync(file, Buffer.from(CACHE_MAGIC));
    assert.equal(readCache(file, 'abc123'), 'invalid');
    fs.writeFileSync(file, Buffer.concat([encodeCache('abc123', payload), Buffer.from('x')]));
    assert.equal(readCache(file, 'abc123'), 'invalid');
    assert.throws(() => encodeCache('', payload), RangeError);
    assert.throws(() => encodeCache('not hex', payload), RangeError);
    assert.equal(buildHashOf(`${BUILD_LINE}ff00\nrest`), 'ff00');
    assert.equal(buildHashOf('"use strict";'), '');
  });

  void it('prints what the sources print: ls -R -l, stat, info, cat', () => {
    for (const args of [['ls', '-R', '-l', image, '/'], ['stat', image, '/d1/f2'], ['info', image], ['cat', image, '/d2/f19', '/link']]) {
      const fromSource = runCli(args);
      const fromBundle = runBundle(args);
      assert.equal(fromBundle.status, 0, fromBundle.stderr);
      assert.equal(fromSource.status, 0, fromSource.stderr);
      assert.ok(fromBundle.stdout.equals(fromSource.stdout), `${args[0] ?? ''}: same output`);
      assert.ok(fromBundle.stdout.length > 0);
    }
  });

  void it('get copies the whole tree (files, times, the symlink, the hard link)', () => {
    const dest = join(scratchDir(), 'bundle-get');
    const oracle = join(scratchDir(), 'bundle-get-from-source');
    const r = runBundle(['get', '--no-progress', image, '/', dest]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(runCli(['get', '--no-progress', image, '/', oracle]).status, 0);
    const want = snapshot(oracle);
    const got = snapshot(dest);
    assert.equal(got.size, 1 + 3 + 60 + 1 + 1 + 1, [...got.keys()].join(' ')); // root, dirs, files, link, hard, lost+found
    assert.deepEqual(got, want);
    assert.equal(got.get('d2')?.mtimeNs, '2000000000000000'); // 2,000,000 s
    assert.equal(fs.statSync(join(dest, 'hard')).ino, fs.statSync(join(dest, 'd1', 'f2')).ino);
  });

  void it('mounts (its FUSE worker the one-file build), serves a child process, and unmounts', async () => {
    const workerDir = join(dirname(bundle), '..', 'fuse');
    const worker = fs.readFileSync(join(workerDir, 'worker.bundle.js'), 'utf8');
    const imports = [...worker.matchAll(/^import .* from ['"]([^'"]+)['"]/gm)].map((m) => m[1]);
    assert.ok(imports.every((m) => m?.startsWith('node:') === true), `worker imports: ${imports.join(', ')}`);
    // Without the tsc output beside it, only the bundled worker can serve the mount.
    fs.renameSync(join(workerDir, 'worker.js'), join(workerDir, 'worker.js.off'));
    const mnt = join(scratchDir(), 'bundle-mnt');
    fs.mkdirSync(mnt);
    const r = runBundle(['mount', image, mnt, '-o', 'ro']);
    fs.renameSync(join(workerDir, 'worker.js.off'), join(workerDir, 'worker.js'));
    assert.equal(r.status, 0, r.stderr);
    try {
      const cat = await runChild('cat', [join(mnt, 'd2', 'f19')], REPO);
      assert.equal(cat.status, 0, cat.stderr);
      assert.ok(cat.stdout.equals(Buffer.alloc(100 + 2 * 3000 + 19 * 50, 2 * 20 + 19 + 1)));
    } finally {
      const u = runBundle(['umount', mnt]);
      assert.equal(u.status, 0, u.stderr);
    }
    assert.ok(!fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mnt} `), 'unmounted');
  });

  void it('fails like the sources: one line naming what, exit status 1', () => {
    const r = runBundle(['cat', image, '/nope']);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'ext4ts: /nope: No such file or directory\n');
    assert.equal(runBundle(['get', '--help']).status, 0);
  });
});
