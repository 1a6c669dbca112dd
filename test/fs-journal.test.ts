/**
 * A journal that needs recovery, replayed in memory by a read-only open, against the
 * kernel's own recovery. The kernel writes two rounds of changes through a read-write
 * mount (creates, deletes that revoke journaled blocks, renames, links, xattrs, chmod),
 * and the image file is copied after each `sync`: round A, then round B, whose journal
 * still holds both rounds' transactions. The crash image takes B and puts back round
 * A's contents of every block B's journal holds (debugfs `logdump -a` names them): the
 * transactions committed, their blocks not yet in place. The kernel mounts a copy and
 * recovers it; ext4ts must read the crash image as that recovered tree (GNU ls byte for
 * byte, and `get` against the kernel mount: modes, owners, ns times, xattrs, contents,
 * links), without writing to it; with --no-journal, as the stale device shows it.
 * Damaged journals are EUCLEAN errors that say how to read without them.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Ext4 } from '../src/fs/ext4.js';
import { FsError } from '../src/errors.js';
import { MemoryChannel } from '../src/io/memory-channel.js';
import { debugfs, scratchDir } from './helpers/images.js';
import { unmountLeftovers, withMount } from './helpers/kernel.js';
import { runCliAsync, snapshot } from './helpers/cli.js';
import { Rng } from './helpers/fuzz.js';
import { cleanupMounts, freshMountpoint, mountExt4ts, umountOk } from './helpers/mount.js';

after(() => {
  unmountLeftovers();
  cleanupMounts();
});

let serial = 0;
const mountpoint = (): string => join(scratchDir(), `mnt-journal-${process.pid}-${serial++}`);
const sha = (path: string): string => createHash('sha256').update(fs.readFileSync(path)).digest('hex');

interface CrashImage {
  readonly image: string;
  readonly blockSize: number;
  /** The journal as `debugfs logdump -a` prints it. */
  readonly logdump: string;
  /** Device blocks of the journal's log (journal inode, logical order). */
  readonly logBlocks: readonly number[];
}

function bytesOf(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Build the crash image described above (mkfs `args`, block size `bs`). */
function crashImage(name: string, args: readonly string[], bs: number): CrashImage {
  const dir = scratchDir();
  const live = join(dir, `${name}.live.img`);
  const roundA = join(dir, `${name}.a.img`);
  const roundB = join(dir, `${name}.b.img`);
  execFileSync('mke2fs', ['-q', '-F', ...args, '-b', String(bs), live, '64M'], { stdio: ['ignore', 'ignore', 'pipe'] });
  withMount(live, mountpoint(), { readOnly: false }, (mnt) => {
    fs.mkdirSync(join(mnt, 'a', 'sub'), { recursive: true });
    for (let i = 0; i < 200; i++) fs.writeFileSync(join(mnt, 'a', 'sub', `file-with-a-longer-name-${i}`), `s ${i}\n`);
    for (let i = 0; i < 30; i++) fs.writeFileSync(join(mnt, 'a', `f${i}`), `a ${i}\n`);
    execFileSync('sync');
    fs.copyFileSync(live, roundA);
    fs.rmSync(join(mnt, 'a', 'sub'), { recursive: true }); // frees journaled blocks: revokes
    fs.mkdirSync(join(mnt, 'b', 'c'), { recursive: true });
    for (let i = 0; i < 40; i++) fs.writeFileSync(join(mnt, 'b', `g${i}`), bytesOf(i * 300, i + 1));
    fs.rmSync(join(mnt, 'a', 'f1'));
    fs.renameSync(join(mnt, 'a', 'f3'), join(mnt, 'b', 'moved'));
    fs.symlinkSync('/a/target', join(mnt, 'b', 'link'));
    fs.linkSync(join(mnt, 'a', 'f5'), join(mnt, 'b', 'hard'));
    execFileSync('setfattr', ['-n', 'user.key', '-v', 'value', join(mnt, 'a', 'f6')]);
    fs.chmodSync(join(mnt, 'a'), 0o700);
    fs.appendFileSync(join(mnt, 'a', 'f4'), 'more\n');
    execFileSync('sync');
    fs.copyFileSync(live, roundB);
  });
  const logdump = debugfs(roundB, 'logdump -a');
  const journaled = new Set([...logdump.matchAll(/FS block (\d+) logged/g)].map((m) => Number(m[1])));
  const bytes = fs.readFileSync(roundB);
  const old = fs.readFileSync(roundA);
  for (const block of journaled) if (block !== 0) old.copy(bytes, block * bs, block * bs, (block + 1) * bs); // block 0: keep B's superblock
  const image = join(dir, `${name}.crash.img`);
  fs.writeFileSync(image, bytes);
  const size = Number(/Size: (\d+)/.exec(debugfs(image, 'stat <8>'))?.[1]);
  const logBlocks = debugfs(image, `bmap -a <8> 0`).trim() === '' ? [] : Array.from({ length: Math.min(64, size / bs) }, (_, i) => Number(debugfs(image, `bmap <8> ${i}`).trim()));
  return { image, blockSize: bs, logdump, logBlocks };
}

/** The kernel's recovery of a copy of `image`, then a read-only mount of it: `body(mnt)`. */
function kernelRecovered<T>(image: string, body: (mnt: string) => T): T {
  const copy = `${image}.kernel.img`;
  fs.copyFileSync(image, copy);
  withMount(copy, mountpoint(), { readOnly: false }, () => undefined); // replays the journal
  return withMount(copy, mountpoint(), { readOnly: true }, body);
}

const gnuLs = (mnt: string): string =>
  execFileSync('ls', ['-lRAn', '--quoting-style=literal', '.'], { cwd: mnt, env: { ...process.env, LC_ALL: 'C', TZ: 'UTC' }, maxBuffer: 16 << 20 })
    .toString('latin1')
    .replace(/^\.:$/m, '/:')
    .replace(/^\.\/(.*):$/gm, '/$1:');

describe('a journal that needs recovery reads as the kernel recovers it', () => {
  const variants: { name: string; args: string[]; bs: number }[] = [
    { name: 'ext4-4k', args: ['-t', 'ext4'], bs: 4096 }, // 64bit, checksum v3 tags
    { name: 'ext3-1k', args: ['-t', 'ext3'], bs: 1024 }, // 32-bit tags, no journal checksums
  ];
  const built = new Map<string, CrashImage>();
  before(() => {
    for (const v of variants) built.set(v.name, crashImage(v.name, v.args, v.bs));
  });

  for (const v of variants) {
    it(`${v.name}: ls -lRA and get equal the kernel's recovered tree; nothing written; --no-journal shows the device`, async () => {
      const crash = built.get(v.name) as CrashImage;
      assert.match(crash.logdump, /revoke/i, 'the journal holds revoke records');
      const before = sha(crash.image);
      const fsys = Ext4.openFile(crash.image);
      try {
        assert.ok(fsys.replayedBlocks > 0, 'blocks taken from the journal');
      } finally {
        fsys.close();
      }
      const dest = join(scratchDir(), `${v.name}-get`);
      const [ls, stale, got, info] = await Promise.all([
        runCliAsync(['ls', '-lRA', crash.image, '/']),
        runCliAsync(['ls', '-lRA', '--no-journal', crash.image, '/']),
        runCliAsync(['get', crash.image, '/', dest]),
        runCliAsync(['info', crash.image]),
      ]);
      for (const r of [ls, stale, got, info]) assert.equal(r.status, 0, r.stderr);
      assert.match(info.stdout.toString(), /^Journal recovery: +\d+ blocks replayed from the journal, in memory \(nothing is written\)$/m);
      const [kernelLs, kernelSnap] = kernelRecovered(crash.image, (mnt) => [gnuLs(mnt), snapshot(mnt)] as const);
      assert.equal(ls.stdout.toString('latin1'), kernelLs, 'byte for byte');
      assert.deepEqual(snapshot(dest), kernelSnap, 'get: every path, mode, owner, ns time, xattr, content and link');
      assert.notEqual(stale.stdout.toString('latin1'), kernelLs, 'the device alone is stale');
      assert.doesNotMatch(stale.stdout.toString('latin1'), /^\/b:$/m, 'without the journal, round B is not there');
      assert.equal(sha(crash.image), before, 'the image is not written');
    });
  }

  it('the FUSE mount serves the recovered tree (read-only, saying why); -o noload the device as it is', async () => {
    const crash = built.get('ext4-4k') as CrashImage;
    const before = sha(crash.image);
    const kernelLs = kernelRecovered(crash.image, gnuLs);
    const recovered = await mountExt4ts(crash.image, freshMountpoint(join(scratchDir(), 'fuse-journal')), ['rw']);
    try {
      assert.equal(gnuLs(recovered.mnt), kernelLs);
    } finally {
      await umountOk(recovered);
    }
    const noload = await mountExt4ts(crash.image, freshMountpoint(join(scratchDir(), 'fuse-noload')), ['noload']);
    let stale = '';
    try {
      stale = gnuLs(noload.mnt);
    } finally {
      await umountOk(noload);
    }
    const cli = await runCliAsync(['ls', '-lRA', '--no-journal', crash.image, '/']);
    assert.equal(stale, cli.stdout.toString('latin1'), 'the mount with noload and ls --no-journal agree');
    assert.notEqual(stale, kernelLs);
    assert.equal(sha(crash.image), before, 'neither mount wrote to the image');
  });

  it('a damaged log is EUCLEAN naming the journal and the way around it; --no-journal reads the device', async () => {
    const crash = built.get('ext4-4k') as CrashImage;
    const bytes = fs.readFileSync(crash.image);
    // The first descriptor block after the journal superblock: flip a byte of its tags.
    const descriptor = crash.logBlocks[1] as number;
    const at = descriptor * crash.blockSize + 20;
    bytes[at] = (bytes[at] as number) ^ 0x40;
    const damaged = join(scratchDir(), 'damaged-journal.img');
    fs.writeFileSync(damaged, bytes);
    assert.throws(
      () => Ext4.openFile(damaged),
      (e: unknown) => e instanceof FsError && e.code === 'EUCLEAN' && /the journal needs recovery and cannot be replayed: corrupted journal.*--no-journal/.test(e.message),
    );
    const plain = Ext4.openFile(damaged, { journal: false });
    try {
      assert.equal(plain.replayedBlocks, 0);
      assert.ok(plain.readdir('/a').length > 0);
    } finally {
      plain.close();
    }
    const [ls, noload, info] = await Promise.all([runCliAsync(['ls', damaged, '/']), runCliAsync(['ls', '--no-journal', damaged, '/']), runCliAsync(['info', damaged])]);
    assert.equal(info.status, 0, 'info still shows the superblock');
    assert.match(info.stdout.toString(), /^Journal recovery: +.*the journal needs recovery and cannot be replayed: corrupted journal/m);
    assert.equal(ls.status, 1);
    assert.match(ls.stderr, /^ext4ts: .*damaged-journal\.img: .*the journal needs recovery and cannot be replayed: .*\n$/);
    assert.equal(noload.status, 0, noload.stderr);
  });

  it('hostile bytes in the log: a replay or an FsError, never another exception (seeded)', () => {
    for (const name of ['ext4-4k', 'ext3-1k']) {
      const crash = built.get(name) as CrashImage;
      const base = fs.readFileSync(crash.image);
      const bs = crash.blockSize;
      const rng = new Rng(name === 'ext4-4k' ? 41 : 42);
      let refused = 0;
      for (let i = 0; i < 150; i++) {
        const bytes = Uint8Array.from(base);
        const logBlock = crash.logBlocks[rng.int(Math.min(crash.logBlocks.length, 40))] as number;
        for (let n = 1 + rng.int(3); n > 0; n--) {
          // Mostly the headers and tags at the start of a block, where the structure is.
          const at = logBlock * bs + (rng.chance(0.7) ? rng.int(64) : rng.int(bs));
          bytes[at] = rng.chance(0.5) ? rng.int(256) : (bytes[at] as number) ^ (1 << rng.int(8));
        }
        for (const checksums of [true, false]) {
          let fsys: Ext4 | undefined;
          try {
            fsys = Ext4.open(new MemoryChannel(bytes, { readOnly: true }), { checksums });
            fsys.readdir('/');
            fsys.readdir('/a');
          } catch (error) {
            if (!(error instanceof FsError)) throw new Error(`${name} case ${i}: ${String(error)}`, { cause: error });
            refused++;
          } finally {
            fsys?.close();
          }
        }
      }
      assert.ok(refused > 0, `${name}: some mutations were refused`);
    }
  });
});
