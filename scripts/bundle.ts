#!/usr/bin/env -S node --import tsx
/**
 * Bundles the compiled CLI into one file: DIST/cli/main.js and every module it imports
 * (commander included) become DIST/cli/ext4ts.js, which package.json's `bin` runs.
 * Run by `npm run build` after tsc; `node --import tsx scripts/bundle.ts --dist DIR`
 * bundles another tsc output (the benchmarks and test/cli-bundle.test.ts build their own).
 *
 * Why: Node 20 loads an ES module graph file by file (resolve, stat, read, compile,
 * link: ~60 modules for one command), which cost every command ~35 ms before it read a
 * byte of the image — `ext4ts ls` of an 8 MiB image took 110 ms against 22 ms for
 * `node -e 0`; bundled, 68-74 ms. A command over a whole tree (ls -R -l of 53,800
 * entries, ~0.37 s) pays that once, but it is a tenth of it.
 *
 * What stays outside: the FUSE worker (DIST/fuse/worker.js, started by `mount`, loads
 * its own modules once per mount), the native addons (loaded with createRequire
 * relative to the module: DIST/cli/ is as deep as DIST/io/, so the relative path to
 * native/ is the same), @node-rs/crc32 (it picks a platform package at run time) and
 * cli-progress (loaded on demand with createRequire). The library entry
 * (DIST/index.js) is not bundled: importers bundle it themselves if they wish.
 */
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { dist: { type: 'string' } } });
const dist = resolve(values.dist ?? join(root, 'dist'));
const outfile = join(dist, 'cli', 'ext4ts.js');

await build({
  entryPoints: [join(dist, 'cli', 'main.js')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['@node-rs/crc32'],
  // Packages come from the project's node_modules wherever DIST is.
  nodePaths: [join(root, 'node_modules')],
  // CommonJS dependencies (commander) call require() for Node's built-in modules.
  banner: { js: "import { createRequire as __ext4tsCreateRequire } from 'node:module'; const require = __ext4tsCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
chmodSync(outfile, 0o755);
