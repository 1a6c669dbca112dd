#!/usr/bin/env -S node --import tsx
/**
 * Bundles the compiled CLI and trains its code cache. Run by `npm run build` after tsc;
 * `node --import tsx scripts/bundle.ts --dist DIR` bundles another tsc output (the
 * benchmarks and test/cli-bundle.test.ts build their own). It writes, in DIST/cli/:
 *
 *   ext4ts-main.cjs    DIST/cli/main.js and every module it imports (commander included)
 *                      as one classic script, its first line `// ext4ts build HASH`
 *                      (the first 32 hex digits of its SHA-256);
 *   ext4ts.js          the program package.json's `bin` runs (src/cli/launcher.ts): it
 *                      compiles ext4ts-main.cjs with V8's code cache and runs it;
 *   ext4ts-main.cache  that cache (src/cli/code-cache.ts), made by running the CLI as
 *                      users do: --help, and where mke2fs is installed, info, ls -R -l,
 *                      stat, cat, get, put, mkdir, mv and rm on a small image made with
 *                      `mke2fs -d` (each run starts from the last run's cache and adds
 *                      the functions it compiled);
 *   ext4ts-main.mount.cache  mount's (it runs under other V8 flags), from `mount --help`;
 *
 * and in DIST/fuse/, worker.bundle.js: the FUSE worker (worker.js and what it imports)
 * as one ES module, which `mount` starts when it is there (a mount took ~210 ms to come
 * up here, ~35 ms of it the worker loading ~50 modules one by one).
 *
 * Why: Node 20 loads an ES module graph file by file (resolve, stat, read, compile, link:
 * ~60 modules for one command), which cost every command ~35 ms before it read a byte of
 * the image — `ext4ts ls` of an 8 MiB image took 110 ms against 22 ms for `node -e 0`;
 * one bundled file, 68-74 ms. Compiling that file and then each function on its first
 * call was most of the rest: with the code cache, 60 ms.
 *
 * What stays outside the CLI: the FUSE worker (above), the native addons (loaded with
 * createRequire relative to the bundle: DIST/cli/ is as deep as DIST/io/, so the
 * relative path to native/ is the same), @node-rs/crc32 (it picks a platform package at
 * run time) and cli-progress (loaded on demand). The library entry (DIST/index.js) is
 * not bundled: importers bundle it themselves if they wish.
 */
import { build, type BuildOptions } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BUILD_LINE, CACHE_FILE, MAIN_FILE, SERVER_CACHE_FILE } from '../src/cli/code-cache.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { dist: { type: 'string' } } });
const dist = resolve(values.dist ?? join(root, 'dist'));
const cliDir = join(dist, 'cli');
const program = join(cliDir, 'ext4ts.js');
const mainFile = join(cliDir, MAIN_FILE);
const cacheFile = join(cliDir, CACHE_FILE);
const serverCacheFile = join(cliDir, SERVER_CACHE_FILE);

/** What every bundle here shares. */
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  external: ['@node-rs/crc32'],
  // Packages come from the project's node_modules wherever DIST is.
  nodePaths: [join(root, 'node_modules')],
  logLevel: 'warning',
} satisfies BuildOptions;

// 1. The CLI as one classic script. The launcher hands it what import.meta would give.
const bundled = await build({
  ...common,
  entryPoints: [join(cliDir, 'main.js')],
  write: false,
  format: 'cjs',
  define: { 'import.meta.url': '__ext4tsUrl', 'import.meta.resolve': '__ext4tsResolve' },
});
const text = (bundled.outputFiles[0]?.text ?? '').replace(/^#![^\n]*\n/, '');
const hash = createHash('sha256').update(text).digest('hex').slice(0, 32);
writeFileSync(mainFile, `${BUILD_LINE}${hash}\n${text}`);

// 2. The program: the launcher (node: imports only).
await build({
  ...common,
  entryPoints: [join(cliDir, 'launcher.js')],
  outfile: program,
  format: 'esm',
  banner: { js: '#!/usr/bin/env node' },
});
chmodSync(program, 0o755);

// 3. The FUSE worker as one module (src/fuse/server.ts prefers it to worker.js).
await build({
  ...common,
  entryPoints: [join(dist, 'fuse', 'worker.js')],
  outfile: join(dist, 'fuse', 'worker.bundle.js'),
  format: 'esm',
});

// 4. The code cache, trained by running the program.
rmSync(cacheFile, { force: true });
rmSync(serverCacheFile, { force: true });
const work = mkdtempSync(join(tmpdir(), 'ext4ts-bundle-'));
try {
  const env: NodeJS.ProcessEnv = { ...process.env, EXT4TS_CODE_CACHE_WRITE: '1', LC_ALL: 'C' };
  delete env.NODE_OPTIONS;
  const run = (args: readonly string[]): void => {
    const r = spawnSync(process.execPath, [program, ...args], { env, cwd: work, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) process.stderr.write(`bundle: training run \`ext4ts ${args.join(' ')}\` exited ${r.status}: ${r.stderr.trim().split('\n')[0] ?? ''}\n`);
  };
  run(['--help']);
  // mount's own cache (other V8 flags): what a build can run without mounting anything.
  run(['mount', '--help']);
  const image = trainingImage(work);
  if (image !== undefined) {
    run(['info', image]);
    run(['ls', '-R', '-l', image, '/']);
    run(['stat', image, '/dir/file-1', '/link']);
    run(['cat', image, '/dir/file-1']);
    run(['get', image, '/', join(work, 'out')]);
    copyFileSync(image, join(work, 'rw.img'));
    run(['put', join(work, 'rw.img'), join(work, 'src'), '/copy']);
    run(['mkdir', '-p', join(work, 'rw.img'), '/new/deeper']);
    run(['mv', join(work, 'rw.img'), '/copy', '/new/moved']);
    run(['rm', '-r', join(work, 'rw.img'), '/new']);
  }
  if (!existsSync(cacheFile)) process.stderr.write('bundle: no code cache was written; the CLI works without it, only starts slower\n');
} finally {
  rmSync(work, { recursive: true, force: true });
}

/** A small image of a few files made with `mke2fs -d` in `work`, or undefined without mke2fs. */
function trainingImage(work: string): string | undefined {
  const src = join(work, 'src');
  mkdirSync(join(src, 'dir'), { recursive: true });
  for (let i = 0; i < 20; i++) writeFileSync(join(src, 'dir', `file-${i}`), `file ${i}\n`.repeat(i * 50 + 1));
  writeFileSync(join(src, 'big'), Buffer.alloc(300_000, 7));
  symlinkSync('dir/file-1', join(src, 'link'));
  const image = join(work, 'train.img');
  const r = spawnSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', src, image, '8M'], { stdio: 'ignore' });
  return r.status === 0 ? image : undefined;
}
