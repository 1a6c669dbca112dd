/**
 * The installed `ext4ts` program (scripts/bundle.ts bundles this module, with
 * ./code-cache.ts, into dist/cli/ext4ts.js, package.json's bin): it runs the bundled
 * CLI, ext4ts-main.cjs beside it, as one classic script compiled with V8's code cache,
 * ext4ts-main.cache, which the build trains by running the CLI (scripts/bundle.ts).
 *
 * Why: compiling the 750 KB bundle, then each function the first time it runs, was a
 * fifth of a small command's time (`ext4ts ls IMG /`: 72 -> 60 ms with the cache;
 * `node -e 0` is 24 ms here). Node 20 caches no compiled code for ES modules; a
 * vm.Script takes a cache.
 *
 * The cache is used only when it was made from this very bundle: its header names the
 * bundle's build hash (the bundle's first line states it) and the payload's length. V8
 * checks its own version and flags, and rejects the cache otherwise (a different node,
 * NODE_OPTIONS): the script is then compiled as usual. A cache holds the V8 flags it was
 * made under, so `mount` (a long-lived server: V8's default flags) has one of its own,
 * ext4ts-main.mount.cache. Nothing is written at run time except by the build's training
 * runs (EXT4TS_CODE_CACHE_WRITE=1: at exit, the cache this run used, with every function
 * compiled so far). EXT4TS_CODE_CACHE_DEBUG=1 says on stderr what became of the cache.
 */
import { renameSync, writeFileSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { Script } from 'node:vm';
import { CACHE_FILE, MAIN_FILE, SERVER_CACHE_FILE, buildHashOf, encodeCache, readCache, type CacheOutcome } from './code-cache.js';

function launch(): void {
  // The CLI's one-shot V8 setting (see main.ts), here before anything is compiled so
  // that the cache is made and used under the same flags.
  const server = process.argv[2] === 'mount';
  if (!server) setFlagsFromString('--max-inlined-bytecode-size-cumulative=230');
  const dir = dirname(fileURLToPath(import.meta.url));
  const mainPath = join(dir, MAIN_FILE);
  const cachePath = join(dir, server ? SERVER_CACHE_FILE : CACHE_FILE);
  const source = readFileSync(mainPath, 'utf8');
  const hash = buildHashOf(source);
  const cached = hash === '' ? 'stale' : readCache(cachePath, hash);
  // One function taking what a CommonJS module and import.meta would give the bundle.
  const script = new Script(`(function (require, __ext4tsUrl, __ext4tsResolve) {${source}\n})`, {
    filename: mainPath,
    ...(typeof cached === 'string' ? {} : { cachedData: cached }),
  });
  const outcome: CacheOutcome = typeof cached === 'string' ? cached : script.cachedDataRejected === true ? 'rejected' : 'accepted';
  if (process.env.EXT4TS_CODE_CACHE_DEBUG === '1') process.stderr.write(`ext4ts: code cache ${outcome}\n`);
  if (process.env.EXT4TS_CODE_CACHE_WRITE === '1' && hash !== '') {
    // Training (scripts/bundle.ts): at exit, the cache with every function compiled so far.
    process.on('exit', () => {
      const tmp = `${cachePath}.${process.pid}.tmp`;
      writeFileSync(tmp, encodeCache(hash, script.createCachedData()));
      renameSync(tmp, cachePath);
    });
  }
  const run = script.runInThisContext() as (require: NodeRequire, url: string, resolve: (specifier: string) => string) => void;
  run(createRequire(mainPath), pathToFileURL(mainPath).href, (specifier) => import.meta.resolve(specifier));
}

launch();
