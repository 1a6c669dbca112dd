/**
 * Read-write FUSE mounts (`ext4ts mount -o rw`), end to end: what users do on a fresh
 * image, then `ext4ts umount`, `e2fsck -fn` clean, and the image as the kernel reads it
 * (a read-only loop mount) equal to a reference tree that got the same commands on the
 * host filesystem.
 *
 * - Workload (ext4 1 KiB blocks, ext3, ext2): `cp -a` of a tree (this repository's src
 *   and test, thousands of small files, big random and sparse files, symlinks, hard
 *   links, a fifo, a device node, xattrs, ACLs incl. a default ACL, owners, setuid/setgid/
 *   sticky modes, ns mtimes), then mkdir -p, mv, rm -rf, truncate, ln, chmod, chown,
 *   touch -d, tar x, >>, dd conv=notrunc, fallocate -l / -p, setfattr, setfacl, rename
 *   over a file, new files under a default ACL. The same script runs on a reference
 *   directory on the host; mtimes the script set to "now" are normalized afterwards in
 *   both (find -newer STAMP | touch -d), everything else is compared exactly: types,
 *   modes, owners, sizes, contents, symlink targets, hard-link identity, rdev, ns mtimes,
 *   user xattrs and ACLs (helpers/cli.ts snapshot, atime left out). It is compared twice:
 *   through the live FUSE mount (the kernel's cached view) and after the unmount.
 * - `cp -a` of a real tree (this project's node_modules) plus 20,000 small files into a
 *   fresh image: e2fsck clean, and the kernel's read-only mount has every entry, byte and
 *   attribute of the source.
 * - 4 parallel clients create, write, rename, exchange (renameat2), link and unlink in
 *   overlapping directories.
 * - A file removed while open stays readable and writable until closed, then its inode
 *   and blocks are free (also when the last close comes after a lazy unmount).
 * - ENOSPC reaches dd (and file creation when inodes run out); after rm the space is reusable.
 * - fsync'ed and closed data survive a SIGKILL of the server.
 * - On an ea_inode filesystem a 40 KB xattr value goes to an EA inode, survives cp -a
 *   and the removal of the original, and the kernel reads it back.
 * - `-o ro` never writes; a filesystem ext4ts cannot write is served read-only with a warning.
 *
 * The server is a separate process (`ext4ts mount`), so this process may use the mounts;
 * the commands users run are child processes. Needs root, /dev/fuse, loop devices,
 * e2fsprogs, attr, acl, python3, GNU coreutils/tar/util-linux.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, linkSync, writeFileSync, existsSync, statfsSync } from 'node:fs';
import { join } from 'node:path';

import { Ext4 } from '../src/fs/ext4.js';
import { scratchDir } from './helpers/images.js';
import { randomBytes, writeSparse } from './helpers/tree.js';
import { REPO, runChild, snapshot, type EntrySnapshot } from './helpers/cli.js';
import { alive, cleanupMounts, freshMountpoint, isMounted, loopMount, loopUnmount, mountAt, mountExt4ts, mountProcesses, umountExt4ts, umountOk, waitUntil, ext4ts } from './helpers/mount.js';
import { RENAMEAT2_PERL } from './helpers/twin.js';

const VERBOSE = process.env.FUSE_WRITE_VERBOSE !== undefined;
function log(line: string): void {
  if (VERBOSE) console.log(`# ${line}`);
}

let seq = 0;
function mountpoint(name: string): string {
  return freshMountpoint(join(scratchDir(), 'mnt', `${name}-${process.pid}-${++seq}`));
}

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A child process (LC_ALL=C, TZ=UTC, umask 022) that does not block this one. */
async function run(cmd: string, args: readonly string[], cwd: string, timeoutMs = 120_000): Promise<Run> {
  const r = await runChild(cmd, args, cwd, { timeoutMs });
  return { ...r, stdout: r.stdout.toString('utf8') };
}

/** `sh -ec SCRIPT` in `cwd`; throws unless it exits 0. */
async function sh(script: string, cwd: string, timeoutMs = 120_000): Promise<string> {
  const r = await run('sh', ['-ec', `umask 022\n${script}`], cwd, timeoutMs);
  if (r.status !== 0) throw new Error(`sh in ${cwd} exited ${r.status}: ${r.stderr}${r.stdout}\n--- script:\n${script}`);
  return r.stdout;
}

function syncRun(cmd: string, args: readonly string[]): Run {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error !== undefined) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function mkfs(name: string, args: readonly string[], size: string): string {
  const img = join(scratchDir(), `${name}.img`);
  const r = syncRun('mke2fs', ['-q', '-F', ...args, img, size]);
  assert.equal(r.status, 0, r.stderr);
  return img;
}

/** e2fsck -fn: exit 0 and no complaint. */
function assertFsck(img: string): void {
  const r = syncRun('e2fsck', ['-fn', img]);
  assert.equal(r.status, 0, `e2fsck -fn ${img} exited ${r.status}:\n${r.stdout}${r.stderr}`);
}

/** Differences between two snapshots (atime left out), at most `max` lines. */
function diffSnapshots(want: Map<string, EntrySnapshot>, got: Map<string, EntrySnapshot>, max = 30): string[] {
  const out: string[] = [];
  const strip = (e: EntrySnapshot): Omit<EntrySnapshot, 'atimeNs'> => {
    const { atimeNs: _atime, ...rest } = e;
    return rest;
  };
  for (const [k, w] of want) {
    const g = got.get(k);
    if (g === undefined) out.push(`missing: ${k}`);
    else if (JSON.stringify(strip(w)) !== JSON.stringify(strip(g))) out.push(`${k}:\n  want ${JSON.stringify(strip(w)).slice(0, 400)}\n  got  ${JSON.stringify(strip(g)).slice(0, 400)}`);
  }
  for (const k of got.keys()) if (!want.has(k)) out.push(`extra: ${k}`);
  return out.slice(0, max);
}

/** Run `fn` with `img` loop-mounted read-only. */
async function withLoop<T>(img: string, fn: (mnt: string) => Promise<T> | T): Promise<T> {
  const k = mountpoint('loop');
  loopMount(img, k);
  try {
    return await fn(k);
  } finally {
    loopUnmount(k);
  }
}

// ------------------------------------------------------------------ the source tree

interface SourceShape {
  /** Directories of small files under many/ (>= 6: the workload uses d00..d05). */
  readonly manyDirs: number;
  readonly perDir: number;
}

/** The tree `cp -a` copies into the mount (built once per shape, on the host filesystem). */
function makeSource(name: string, shape: SourceShape): string {
  const dir = join(scratchDir(), `${name}.src`);
  mkdirSync(dir);
  assert.equal(syncRun('cp', ['-a', join(REPO, 'src'), join(REPO, 'test'), dir]).status, 0);
  for (let d = 0; d < shape.manyDirs; d++) {
    const sub = join(dir, 'many', `d${String(d).padStart(2, '0')}`);
    mkdirSync(sub, { recursive: true });
    for (let f = 0; f < shape.perDir; f++) {
      const n = d * shape.perDir + f;
      writeFileSync(join(sub, `f${String(n).padStart(4, '0')}`), n % 7 === 0 ? randomBytes(n, 100 + ((n * 37) % 5000)) : `file ${n}\n`.repeat(n % 13));
    }
  }
  writeFileSync(join(dir, 'big1'), randomBytes(1, 6 * 1024 * 1024 + 123));
  writeFileSync(join(dir, 'big2'), randomBytes(2, 1024 * 1024));
  writeFileSync(join(dir, 'big3'), randomBytes(3, 2 * 1024 * 1024));
  writeSparse(join(dir, 'sparse'), 20 * 1024 * 1024, [
    [0, randomBytes(4, 5000)],
    [8 * 1024 * 1024 + 17, randomBytes(5, 70_000)],
    [20 * 1024 * 1024 - 10, randomBytes(6, 10)],
  ]);
  writeFileSync(join(dir, 'empty'), '');
  symlinkSync('src/index.ts', join(dir, 'link-rel'));
  symlinkSync('/etc/passwd', join(dir, 'link-abs'));
  symlinkSync('no/such/target', join(dir, 'link-dangling'));
  symlinkSync(`${'long-target/'.repeat(20)}end`, join(dir, 'link-long'));
  linkSync(join(dir, 'big2'), join(dir, 'big2-hardlink'));
  linkSync(join(dir, 'src', 'errors.ts'), join(dir, 'test', 'errors-hardlink.ts'));
  writeFileSync(join(dir, 'owned'), 'owned by 1234:5678\n');
  chownSync(join(dir, 'owned'), 1234, 5678);
  writeFileSync(join(dir, 'suid'), '#!/bin/sh\n');
  chmodSync(join(dir, 'suid'), 0o4755);
  mkdirSync(join(dir, 'setgid'));
  chownSync(join(dir, 'setgid'), 0, 4242);
  chmodSync(join(dir, 'setgid'), 0o2775);
  mkdirSync(join(dir, 'sticky'));
  chmodSync(join(dir, 'sticky'), 0o1777);
  mkdirSync(join(dir, 'defacl'));
  const script = `
    mkfifo fifo
    mknod chardev c 1 3
    setfattr -n user.small -v hello owned
    setfattr -n user.dir -v "a directory" many
    setfattr -n user.big -v "$(head -c 700 /dev/zero | tr '\\0' x)" big2
    setfacl -m u:1234:rwx,g:99:r owned
    setfacl -d -m u:1234:rx,g::rwx defacl
    touch -h -d '2001-02-03 04:05:06.123456789' link-rel
    touch -d '1999-12-31 23:59:59.999999999' owned
    touch -d '2038-01-19 03:14:08.5' big3
  `;
  const r = spawnSync('sh', ['-ec', script], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return dir;
}

/** A tar archive for `tar x` (of the repository's src/fs, owners and times kept). */
function makeArchive(): string {
  const tar = join(scratchDir(), 'archive.tar');
  if (!existsSync(tar)) assert.equal(syncRun('tar', ['-cf', tar, '-C', REPO, 'src/fs', 'src/ondisk']).status, 0);
  return tar;
}

/**
 * What users do after the copy; runs in the tree's root, on the mount and on the
 * reference alike. Ends by setting every mtime the script made "now" to a fixed time.
 */
function workload(archive: string, stamp: string): string {
  return `
    touch ${stamp}
    sleep 0.05 # past the host's timestamp granularity: what follows is newer than the stamp
    mkdir -p new/a/b/c new/x/y new/empty-dir
    echo one > new/a/b/c/f
    mv many/d00 moved-d00
    mv big2 new/x/big2-moved
    mv many/d01/$(ls many/d01 | head -n 1) many/d02/
    rm -rf many/d03
    rm -rf test/helpers
    truncate -s 5000 big1
    truncate -s 30M sparse
    truncate -s 100 empty # (to its own size, filesystems differ: ext4 updates mtime, tmpfs does not)
    ln new/a/b/c/f new/hardlink
    ln -s ../a/b/c/f new/x/symlink
    chmod 640 src/index.ts
    chmod 2755 new/x
    chmod 0 many/d02
    chmod 755 many/d02
    chown 4321:8765 new/a/b/c/f
    chown 1:1 suid
    chown -h 99:99 link-dangling
    touch -d '2010-10-10 10:10:10.123456789' new/a
    tar -xf ${archive} -C new
    echo appended >> src/errors.ts
    echo line1 > new/appended; echo line2 >> new/appended; printf 'line3' >> new/appended
    printf 'XYZ' | dd of=big3 bs=1 seek=100000 conv=notrunc status=none
    dd if=src/index.ts of=big3 bs=4096 seek=100 conv=notrunc status=none
    fallocate -l 2M falloc
    fallocate -l 100000 -o 50000 falloc-offset
    fallocate -p -o 4096 -l 65536 big3
    printf 'overwritten' | dd of=many/d04/$(ls many/d04 | head -n 1) conv=notrunc status=none
    cp src/fs/ext4.ts new/copy.ts
    a=$(ls many/d05 | head -n 1); b=$(ls many/d05 | tail -n 1); mv many/d05/$a many/d05/$b
    rmdir new/empty-dir
    mkfifo new/fifo2
    setfattr -n user.new -v value new/a/b/c/f
    setfattr -x user.small owned
    setfattr -n user.replaced -v 1 new/appended; setfattr -n user.replaced -v 22222 new/appended
    setfacl -m g:777:r new/x/big2-moved
    setfacl -b owned
    chmod 700 new/x/big2-moved
    echo inherits > defacl/file
    mkdir defacl/dir
    mkdir setgid/child; echo x > setgid/child-file
    find . -newer ${stamp} -exec touch -h -d '2020-02-02 02:02:02.202020202' {} +
  `;
}

// ------------------------------------------------------------------ the suites

describe('ext4ts mount -o rw', { concurrency: true }, () => {
  after(() => {
    cleanupMounts();
  });

  const variants = [
    { name: 'ext4-1k', mkfs: ['-t', 'ext4', '-b', '1024'], size: '64M', shape: { manyDirs: 20, perDir: 120 } },
    // Without the kernel's writeback cache: every write(2) is a WRITE, times come from the server.
    { name: 'ext3', mkfs: ['-t', 'ext3', '-b', '1024'], size: '64M', shape: { manyDirs: 6, perDir: 40 }, options: 'rw,no_writeback_cache' },
    { name: 'ext2', mkfs: ['-t', 'ext2', '-b', '4096'], size: '96M', shape: { manyDirs: 6, perDir: 40 } },
    // 16 KiB clusters of 4 KiB blocks: every file and directory takes whole clusters.
    { name: 'bigalloc', mkfs: ['-t', 'ext4', '-O', 'bigalloc', '-C', '16384'], size: '256M', shape: { manyDirs: 6, perDir: 40 } },
  ];
  for (const v of variants) {
    it(`${v.name}${v.options === undefined ? '' : ` (-o ${v.options})`}: cp -a, then what users do; e2fsck clean; the kernel reads what the reference has`, async () => {
      let t = Date.now();
      const lap = (what: string): void => {
        log(`${v.name}: ${what}: ${Date.now() - t} ms`);
        t = Date.now();
      };
      const img = mkfs(v.name, v.mkfs, v.size);
      const source = makeSource(v.name, v.shape);
      const archive = makeArchive();
      const ref = join(scratchDir(), `${v.name}.ref`);
      mkdirSync(join(ref, 'tree'), { recursive: true });
      lap('source');
      const m = await mountExt4ts(img, mountpoint(v.name), [v.options ?? 'rw']);
      assert.match(mountAt(m.mnt)?.options ?? '', /^rw\b/);
      let mounted = true;
      try {
        await sh(`mkdir tree\ncp -a ${source}/. tree/`, m.mnt);
        lap('cp -a');
        await sh(`cp -a ${source}/. tree/`, ref);
        await sh(workload(archive, join(scratchDir(), `${v.name}.stamp-mnt`)), join(m.mnt, 'tree'));
        lap('workload');
        await sh(workload(archive, join(scratchDir(), `${v.name}.stamp-ref`)), join(ref, 'tree'));
        const want = snapshot(join(ref, 'tree'));
        const live = snapshot(join(m.mnt, 'tree'));
        assert.ok(want.size > v.shape.manyDirs * v.shape.perDir * 0.5, `the reference tree has ${want.size} entries`);
        assert.deepEqual(diffSnapshots(want, live), [], 'through the live mount');
        const df = statfsSync(m.mnt);
        assert.ok(df.bfree < df.blocks && df.ffree < df.files, 'statfs counts what was written');
        lap('snapshots');
        await umountOk(m);
        mounted = false;
        lap('umount');
        assertFsck(img);
        await withLoop(img, (k) => {
          assert.deepEqual(diffSnapshots(want, snapshot(join(k, 'tree'))), [], 'the kernel read-only mount of the image');
          const r = spawnSync('diff', ['-r', '--no-dereference', '-x', 'fifo', '-x', 'fifo2', '-x', 'chardev', join(ref, 'tree'), join(k, 'tree')], { encoding: 'utf8' });
          assert.equal(r.status, 0, `diff -r: ${r.stdout}${r.stderr}`);
        });
        lap('fsck and compare');
      } finally {
        if (mounted) await umountExt4ts(m.mnt);
      }
    });
  }

  it('cp -a of a real tree (this project\'s node_modules) and 20,000 more files in; the kernel reads back every byte and attribute', async () => {
    const img = mkfs('real-tree', ['-t', 'ext4', '-N', '40000'], '512M');
    // A real tree: the installed dependencies (packages, nested directories, symlinks in
    // .bin, executables); beside it 20,000 small files of 0-6 KiB in 20 directories.
    const source = join(scratchDir(), 'real-tree.src');
    mkdirSync(join(source, 'generated'), { recursive: true });
    const cpModules = spawnSync('cp', ['-a', join(REPO, 'node_modules'), join(source, 'node_modules')], { encoding: 'utf8' });
    assert.equal(cpModules.status, 0, cpModules.stderr);
    const pool = randomBytes(77, 1 << 16);
    for (let d = 0; d < 20; d++) {
      const dir = join(source, 'generated', `d${String(d).padStart(2, '0')}`);
      mkdirSync(dir);
      for (let f = 0; f < 1000; f++) {
        const size = (d * 1000 + f) % 6145;
        const at = (f * 7919) % (pool.length - size);
        writeFileSync(join(dir, `f${String(f).padStart(4, '0')}`), pool.subarray(at, at + size));
      }
    }
    const want = snapshot(source);
    assert.ok(want.size > 23_000, `the source has ${want.size} entries`);
    const m = await mountExt4ts(img, mountpoint('real-tree'), ['rw']);
    let mounted = true;
    try {
      await sh(`cp -a ${source}/. .`, m.mnt, 600_000);
      await umountOk(m);
      mounted = false;
    } finally {
      if (mounted) await umountExt4ts(m.mnt);
    }
    assertFsck(img);
    await withLoop(img, (k) => {
      const got = snapshot(k, { skip: (rel) => rel === 'lost+found' || rel.startsWith('lost+found/') });
      assert.deepEqual(diffSnapshots(want, got), [], 'the kernel read-only mount of the image');
    });
  });

  // renameat2(RENAME_EXCHANGE) for the shell, FROM TO following (twin.ts's perl program;
  // off x86_64 the clients do without the exchanges).
  const EXCHANGE = RENAMEAT2_PERL === undefined ? undefined : `perl -e '${RENAMEAT2_PERL}' 2>/dev/null`;

  it('4 parallel clients in overlapping directories (renames, exchanges of a file and a directory, links, rm -r): e2fsck clean, every file intact', async () => {
    const img = mkfs('parallel', ['-t', 'ext4', '-b', '1024'], '64M');
    const m = await mountExt4ts(img, mountpoint('parallel'), ['rw']);
    let mounted = true;
    try {
      await sh('mkdir -p shared/d0 shared/d1 shared/d2 shared/d3', m.mnt);
      const client = (i: number): string => `
        j=0
        while [ $j -lt 150 ]; do
          j=$((j + 1))
          d=shared/d$((j % 4))
          f=$d/w${i}-$j
          yes "w${i}-$j" | head -n $((j % 50 + 1)) > $f
          if [ $((j % 3)) -eq 0 ]; then mv $f shared/d$(((j + 1) % 4))/m${i}-$j; fi
          if [ $((j % 5)) -eq 0 ]; then rm -f shared/d$(((j + 2) % 4))/w$(((${i} + 1) % 4))-$((j - 5)); fi
          if [ $((j % 7)) -eq 0 ]; then mkdir -p $d/sub${i}-$j/deeper; echo x > $d/sub${i}-$j/deeper/x; fi
          if [ $((j % 14)) -eq 0 ]; then rm -rf shared/d$(((j + 3) % 4))/sub$(((${i} + 3) % 4))-$((j - 7)); fi
          if [ $((j % 11)) -eq 0 ] && [ -e $f ]; then ln $f shared/d$(((j + 2) % 4))/l${i}-$j; fi
          if [ $((j % 13)) -eq 0 ]; then mv shared/d$(((j + 1) % 4))/m$(((${i} + 1) % 4))-$((j - 1)) shared/d$((j % 4))/x${i}-$j 2>/dev/null || true; fi
          ${EXCHANGE === undefined ? ':' : `if [ $((j % 4)) -eq 1 ]; then k=$((j - j % 7)); ${EXCHANGE} $f shared/d$((k % 4))/sub$(((${i} + 1) % 4))-$k/deeper 2 && echo exchanged; fi`}
        done`;
      const results = await Promise.all([0, 1, 2, 3].map((i) => run('sh', ['-c', client(i)], m.mnt, 120_000)));
      for (const r of results) assert.equal(r.status, 0, r.stderr);
      // Some exchanges of a new file with another client's directory took place.
      if (EXCHANGE !== undefined) assert.ok(results.reduce((n, r) => n + (r.stdout.match(/^exchanged$/gm)?.length ?? 0), 0) > 0, 'no exchange happened');
      // Every file holds only its own tag, as many lines as it was written with.
      const check = `
        for f in $(find shared -type f ! -name x); do
          tag=$(head -n 1 $f); j=\${tag#*-}
          n=$(wc -l < $f); u=$(sort -u $f | wc -l)
          [ "$u" = 1 ] && [ "$n" = $((j % 50 + 1)) ] || echo "bad: $f ($tag, $n lines, $u distinct)"
        done
        find shared | wc -l`;
      const live = await sh(check, m.mnt);
      assert.doesNotMatch(live, /bad:/);
      const liveSnap = snapshot(m.mnt, { skip: (rel) => rel.startsWith('lost+found') });
      await umountOk(m);
      mounted = false;
      assertFsck(img);
      await withLoop(img, async (k) => {
        assert.equal(await sh(check, k), live, 'the image after umount');
        assert.deepEqual(diffSnapshots(liveSnap, snapshot(k, { skip: (rel) => rel.startsWith('lost+found') })), []);
      });
    } finally {
      if (mounted) await umountExt4ts(m.mnt);
    }
  });

  it('listings of an htree directory while other clients create and remove in it: every lasting name exactly once', async () => {
    const img = mkfs('listing', ['-t', 'ext4', '-b', '1024'], '64M');
    const m = await mountExt4ts(img, mountpoint('listing'), ['rw']);
    let mounted = true;
    try {
      await sh('mkdir big\ni=0\nwhile [ $i -lt 3000 ]; do : > big/stable-$i; i=$((i + 1)); done\nlsattr -d big', m.mnt).then((out) => {
        // ext4ts indexed the directory as it grew: the listing walks the hash order.
        assert.match(out.split(/\s+/)[0] ?? '', /I/, `lsattr -d big: ${out}`);
      });
      // Creates split leaves and grow the index between the READDIRPLUS requests of
      // each listing (one 4 KiB reply each); removals empty other slots.
      const churn = (k: number): string => `
        i=0
        while [ $i -lt 1500 ]; do
          : > big/churn-${k}-$i
          if [ $((i % 2)) -eq 0 ]; then rm -f big/churn-${k}-$((i / 2)); fi
          i=$((i + 1))
        done`;
      const lister = `
        const fs = require('node:fs');
        const bad = [];
        let lists = 0;
        const until = Date.now() + 60_000;
        while (lists < 6 || (!fs.existsSync('big/churn-1-1499') && Date.now() < until)) {
          const stable = fs.readdirSync('big').filter((n) => n.startsWith('stable-'));
          if (stable.length !== 3000 || new Set(stable).size !== 3000) bad.push(stable.length + ' names, ' + new Set(stable).size + ' distinct');
          lists++;
        }
        process.stdout.write(JSON.stringify({ lists, bad }));`;
      const [a, b, l1, l2] = await Promise.all([
        run('sh', ['-c', churn(0)], m.mnt),
        run('sh', ['-c', churn(1)], m.mnt),
        run(process.execPath, ['-e', lister], m.mnt),
        run(process.execPath, ['-e', lister], m.mnt),
      ]);
      for (const r of [a, b, l1, l2]) assert.equal(r.status, 0, r.stderr);
      for (const l of [l1, l2]) {
        const { lists, bad } = JSON.parse(l.stdout) as { lists: number; bad: string[] };
        assert.ok(lists >= 6, `${lists} listings`);
        assert.deepEqual(bad, [], `${bad.length} of ${lists} listings were wrong`);
      }
      const names = (await sh('ls -f big | grep -c churn', m.mnt)).trim();
      assert.equal(names, String(2 * 750), 'churn files left');
      await umountOk(m);
      mounted = false;
      assertFsck(img);
    } finally {
      if (mounted) await umountExt4ts(m.mnt);
    }
  });

  it('a file removed while open: readable and writable until closed, then freed (also after a lazy unmount)', async () => {
    const img = mkfs('unlink-open', ['-t', 'ext4', '-b', '1024'], '32M');
    const m = await mountExt4ts(img, mountpoint('unlink-open'), ['rw']);
    let mounted = true;
    const holder = spawn('sh', ['-c', 'exec 3<>held; rm held; head -c 300000 /dev/zero >&3; echo ready; exec sleep 60'], { cwd: m.mnt, stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const script = `
import os, subprocess, sys, json
p = 'victim'
free0 = os.statvfs('.').f_bfree
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b'a' * 1000000)
os.fsync(fd)
ino = os.fstat(fd).st_ino
free1 = os.statvfs('.').f_bfree
subprocess.run(['rm', p], check=True)
assert not os.path.exists(p)
os.lseek(fd, 0, os.SEEK_END)
os.write(fd, b'b' * 2000000)
os.fsync(fd)
os.lseek(fd, 0, os.SEEK_SET)
data = b''
while True:
    chunk = os.read(fd, 1 << 20)
    if not chunk:
        break
    data += chunk
assert data == b'a' * 1000000 + b'b' * 2000000, len(data)
st = os.fstat(fd)
assert st.st_nlink == 0 and st.st_size == 3000000, (st.st_nlink, st.st_size)
free2 = os.statvfs('.').f_bfree
os.close(fd)
free3 = os.statvfs('.').f_bfree
print(json.dumps({'ino': ino, 'free0': free0, 'free1': free1, 'free2': free2, 'free3': free3}))
`;
      const r = await run('python3', ['-c', script], m.mnt);
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { ino: number; free0: number; free1: number; free2: number; free3: number };
      assert.ok(out.free1 < out.free0 - 900 && out.free2 < out.free1 - 1900, `blocks in use while open: ${r.stdout}`);
      assert.ok(out.free3 >= out.free0 - 2, `the blocks come back at close: ${r.stdout}`);
      // The holder keeps its removed file open across a lazy unmount.
      const ready = await new Promise<boolean>((resolve) => {
        holder.stdout.on('data', (b: Buffer) => {
          if (b.toString().includes('ready')) resolve(true);
        });
        holder.on('close', () => resolve(false));
      });
      assert.ok(ready, 'the holder did not start');
      const heldIno = Number(syncRun('stat', ['-L', '-c', '%i', `/proc/${holder.pid}/fd/3`]).stdout.trim());
      const lazy = umountExt4ts(m.mnt, true);
      assert.ok(await waitUntil(() => !isMounted(m.mnt), 30_000), 'umount --lazy did not detach');
      assert.ok(alive(m.pid), 'the server must serve the open file until it is closed');
      assert.equal(syncRun('wc', ['-c', `/proc/${holder.pid}/fd/3`]).stdout.trim().split(' ')[0], '300000');
      holder.kill('SIGKILL');
      assert.equal((await lazy).status, 0);
      mounted = false;
      assert.ok(await waitUntil(() => !alive(m.pid), 10_000), 'the server did not exit after the last close');
      assertFsck(img);
      for (const ino of [out.ino, heldIno]) {
        const testi = syncRun('debugfs', ['-R', `testi <${ino}>`, img]);
        assert.match(testi.stdout + testi.stderr, /is not in use/, `inode ${ino}: ${testi.stdout}${testi.stderr}`);
      }
    } finally {
      holder.kill('SIGKILL');
      if (mounted) await umountExt4ts(m.mnt, true);
    }
  });

  it('ENOSPC reaches dd and file creation; after rm the space is reusable; e2fsck clean', async () => {
    const img = mkfs('enospc', ['-t', 'ext4', '-b', '1024', '-N', '128'], '8M');
    const m = await mountExt4ts(img, mountpoint('enospc'), ['rw']);
    let mounted = true;
    try {
      const full = await run('dd', ['if=/dev/zero', 'of=fill', 'bs=64k', 'count=200', 'conv=fsync', 'status=none'], m.mnt);
      assert.notEqual(full.status, 0, 'dd of 12.5 MiB into an 8 MiB filesystem succeeded');
      assert.match(full.stderr, /No space left on device/);
      assert.ok(statfsSync(m.mnt).bavail < 64, 'the filesystem is not full');
      await sh('rm fill', m.mnt);
      const free = statfsSync(m.mnt);
      assert.ok(free.bavail * free.bsize > 4 * 1024 * 1024, `after rm: ${free.bavail} blocks available`);
      await sh('head -c 3000000 /dev/urandom > again; cmp again again; sync again', m.mnt);
      // Inodes: create files until there are none left.
      const inodes = await run('python3', ['-c', `
import os, errno
n = 0
try:
    while True:
        open('f%d' % n, 'w').close()
        n += 1
except OSError as e:
    assert e.errno == errno.ENOSPC, e
    print(n)
`], m.mnt);
      assert.equal(inodes.status, 0, inodes.stderr);
      assert.ok(Number(inodes.stdout) > 50 && Number(inodes.stdout) < 128, inodes.stdout);
      await sh('rm f*; touch after-rm', m.mnt);
      await umountOk(m);
      mounted = false;
      assertFsck(img);
      await withLoop(img, (k) => {
        assert.deepEqual(readdirSync(k).sort(), ['after-rm', 'again', 'lost+found']);
        assert.equal(statSync(join(k, 'again')).size, 3_000_000);
      });
    } finally {
      if (mounted) await umountExt4ts(m.mnt);
    }
  });

  it('fsync\'ed and closed data survive a SIGKILL of the server', async () => {
    const img = mkfs('crash', ['-t', 'ext4', '-b', '1024'], '32M');
    const m = await mountExt4ts(img, mountpoint('crash'), ['rw']);
    const synced = randomBytes(11, 500_000);
    const closed = randomBytes(12, 300_000);
    writeFileSync(join(scratchDir(), 'synced.bin'), synced);
    writeFileSync(join(scratchDir(), 'closed.bin'), closed);
    await sh(`mkdir dir; cp ${join(scratchDir(), 'synced.bin')} dir/synced; sync dir/synced; cp ${join(scratchDir(), 'closed.bin')} dir/closed`, m.mnt);
    process.kill(m.pid, 'SIGKILL');
    assert.ok(await waitUntil(() => !isMounted(m.mnt) && mountProcesses(m.mnt).length === 0, 10_000), 'the watchdog did not detach the mount');
    for (const [name, bytes] of [['synced', synced], ['closed', closed]] as const) {
      const r = spawnSync('debugfs', ['-R', `cat /dir/${name}`, img], { maxBuffer: 16 << 20 });
      assert.ok(Buffer.from(r.stdout).equals(bytes), `${name}: ${r.stdout.length} bytes read back`);
    }
  });

  it('a written file\'s mtime and ctime on disk are the ones the clients were shown (the kernel keeps them under the writeback cache)', async () => {
    const img = mkfs('times', ['-t', 'ext4', '-b', '1024'], '16M');
    const m = await mountExt4ts(img, mountpoint('times'), ['rw']);
    let shown: string;
    try {
      // Each file: created and written at once (the kernel stamps the write; the data
      // stays in its page cache), closed 30 ms (several clock ticks) later, when the WRITE
      // reaches the server. Then the times as the mount shows them.
      const script = `const fs = require('fs');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  for (let i = 0; i < 12; i++) {
    const fd = fs.openSync('f' + i, 'w');
    fs.writeSync(fd, 'data ' + i);
    await sleep(30);
    fs.closeSync(fd);
  }
  for (let i = 0; i < 12; i++) {
    const st = fs.statSync('f' + i, { bigint: true });
    console.log('f' + i, String(st.mtimeNs), String(st.ctimeNs));
  }
})();`;
      const r = await run(process.execPath, ['-e', script], m.mnt);
      assert.equal(r.status, 0, r.stderr);
      shown = r.stdout;
    } finally {
      await umountOk(m);
    }
    assertFsck(img);
    const fsys = Ext4.openFile(img);
    try {
      const onDisk = Array.from({ length: 12 }, (_, i) => {
        const { mtime, ctime } = fsys.stat(`/f${i}`);
        const ns = (t: { seconds: number; nanoseconds: number }): bigint => BigInt(t.seconds) * 1_000_000_000n + BigInt(t.nanoseconds);
        return `f${i} ${ns(mtime)} ${ns(ctime)}\n`;
      }).join('');
      assert.equal(onDisk, shown);
    } finally {
      fsys.close();
    }
  });

  it('atime: relatime updates it on a read and the kernel sees it at once; noatime never; it reaches the image', async () => {
    const img = mkfs('atime', ['-t', 'ext4', '-b', '1024'], '16M');
    const old = '2000-01-01 00:00:00';
    const oldSeconds = String(Date.UTC(2000, 0, 1) / 1000);
    let m = await mountExt4ts(img, mountpoint('atime'), ['rw']);
    await sh(`echo data > f; echo data > g; touch -a -d '${old}' f g`, m.mnt);
    await umountOk(m);
    // A fresh mount: the data is not in the kernel's page cache, so the reads reach the server.
    m = await mountExt4ts(img, mountpoint('atime'), ['rw']);
    try {
      assert.equal(await sh('stat -c %X f', m.mnt), `${oldSeconds}\n`);
      const after = await sh('cat f > /dev/null; stat -c %X f', m.mnt);
      assert.ok(Math.abs(Number(after) - Date.now() / 1000) < 60, `atime after a read: ${after}`);
    } finally {
      await umountOk(m);
    }
    assert.match(syncRun('debugfs', ['-R', 'stat /f', img]).stdout, new RegExp(`atime: [^\\n]*${new Date().getUTCFullYear()}`));
    m = await mountExt4ts(img, mountpoint('atime'), ['rw,noatime']);
    try {
      assert.equal(await sh('cat g > /dev/null; stat -c %X g', m.mnt), `${oldSeconds}\n`);
    } finally {
      await umountOk(m);
    }
    assertFsck(img);
  });

  it('ea_inode: setfattr of a 40 KB value, cp -a of the file, rm of the original; e2fsck clean, the kernel reads the copy', async () => {
    const img = mkfs('ea', ['-t', 'ext4', '-b', '4096', '-O', 'ea_inode'], '32M');
    const m = await mountExt4ts(img, mountpoint('ea'), ['rw']);
    assert.match(mountAt(m.mnt)?.options ?? '', /^rw\b/, 'ea_inode filesystems are written');
    const value = Buffer.alloc(40_000);
    for (let i = 0; i < value.length; i++) value[i] = (i * 7 + (i >> 9)) & 0xff;
    const hex = `0x${value.toString('hex')}`;
    try {
      writeFileSync(join(scratchDir(), 'ea-value.hex'), hex);
      for (const step of [
        `echo data > f && setfattr -n user.big -v "$(cat ${join(scratchDir(), 'ea-value.hex')})" f`,
        'cp -a f g',
        'rm f',
      ]) {
        const r = await run('sh', ['-c', step], m.mnt);
        assert.equal(r.status, 0, `${step}: ${r.stderr}`);
      }
      const back = await run('getfattr', ['--only-values', '-n', 'user.big', 'g'], m.mnt);
      assert.equal(back.status, 0, back.stderr);
    } finally {
      await umountOk(m);
    }
    assertFsck(img);
    await withLoop(img, (k) => {
      const got = spawnSync('getfattr', ['--only-values', '-n', 'user.big', join(k, 'g')]);
      assert.equal(got.status, 0, String(got.stderr));
      assert.ok(Buffer.from(got.stdout).equals(value), 'the kernel reads the value ext4ts stored (and checks its hash)');
    });
  });

  it('-o ro never writes (EROFS); a filesystem ext4ts cannot write is mounted read-only with a warning', async () => {
    const img = mkfs('ro', ['-t', 'ext4', '-b', '1024'], '16M');
    const before = readFileSync(img);
    const m = await mountExt4ts(img, mountpoint('ro'), ['ro']);
    try {
      assert.match(mountAt(m.mnt)?.options ?? '', /^ro\b/);
      const r = await run('touch', ['x'], m.mnt);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /Read-only file system/);
    } finally {
      await umountOk(m);
    }
    assert.ok(readFileSync(img).equals(before), 'a read-only mount changed the image');

    const quota = mkfs('quota', ['-t', 'ext4', '-b', '1024', '-O', 'quota'], '16M');
    const qm = mountpoint('quota');
    const r = await ext4ts(['mount', quota, qm]);
    try {
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /^ext4ts: warning: .*quota.*read-only/m);
      assert.match(mountAt(qm)?.options ?? '', /^ro\b/);
    } finally {
      await umountExt4ts(qm);
    }
  });
});

describe('afterwards', () => {
  it('no mount, server or watchdog of this test file remains', () => {
    assert.deepEqual(cleanupMounts(), []);
  });
});
