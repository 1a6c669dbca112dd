/**
 * The ext4ts command line, run as a child process on images made by `mke2fs -d` over a
 * populated tree (files, holes, many names, odd names, symlinks short and long, hard
 * links, a fifo, devices, a socket, setuid/setgid/sticky, odd owners, user.* xattrs,
 * ACLs, nanosecond times). mke2fs 1.47 drops nanoseconds and truncates times to 32 bits,
 * so the times are put into the image afterwards through a read-write kernel mount.
 *
 * Oracles: the source tree, a read-only kernel loop mount of the image (`get` must
 * reproduce what the kernel shows; `ls -lRA` must print what GNU ls prints there),
 * `dumpe2fs -h` for `info`. Runs as root (mknod, chown, loop mounts).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dumpe2fsHeader, makeImage, scratchDir } from './helpers/images.js';
import { copyTimes, REPO, runCli, runCliAsync, snapshot, walk, withMount, type CliResult, type EntrySnapshot } from './helpers/cli.js';

/** Deterministic pseudo-random bytes. */
function pseudo(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const BIN_NAME = Buffer.from([0x62, 0x69, 0x6e, 0xff, 0xfe, 0x2d, 0x6e, 0x61, 0x6d, 0x65]); // "bin\xff\xfe-name", not UTF-8
const LONG_TARGET = 'long/'.repeat(40) + 'end'; // 203 bytes: a slow symlink

const TIMES: readonly (readonly [string, string])[] = [
  ['hello.txt', '2021-03-04 05:06:07.123456789'],
  ['link-short', '2019-01-01 00:00:00.000000001'],
  ['old.txt', '1969-07-20 20:17:40.500000000'],
  ['future.txt', '2100-12-31 23:59:59.999999999'],
  ['dir/sub', '2022-02-02 02:02:02.222222222'],
  ['dir', '2040-03-04 05:06:07.987654321'],
];

function populate(dir: string): void {
  const p = (...parts: string[]): string => join(dir, ...parts);
  const sh = (cmd: string, ...args: string[]): void => {
    execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  };
  fs.mkdirSync(p('dir', 'sub'), { recursive: true });
  fs.mkdirSync(p('dir', 'many'));
  fs.mkdirSync(p('dir', 'acldir'));
  fs.writeFileSync(p('empty'), '');
  fs.writeFileSync(p('hello.txt'), 'hello, world\n');
  fs.writeFileSync(p('tiny'), 'x');
  fs.writeFileSync(p('old.txt'), 'from 1969\n');
  fs.writeFileSync(p('future.txt'), 'from 2100\n');
  fs.writeFileSync(p('dir', 'medium.bin'), pseudo(5000, 1));
  fs.writeFileSync(p('dir', 'big.bin'), pseudo(3 << 20, 2));
  const fd = fs.openSync(p('sparse.bin'), 'w');
  fs.writeSync(fd, pseudo(65536, 3), 0, 65536, 0);
  fs.writeSync(fd, pseudo(4096, 4), 0, 4096, 2 << 20);
  fs.closeSync(fd);
  for (let i = 0; i < 300; i++) fs.writeFileSync(p('dir', 'many', `file-${String(i).padStart(4, '0')}-${'n'.repeat(i % 40)}`), `${i}\n`);
  fs.writeFileSync(p('with space'), 'space\n');
  fs.writeFileSync(p('new\nline'), 'newline\n');
  fs.writeFileSync(Buffer.concat([Buffer.from(dir + '/'), BIN_NAME]), 'binary name\n');
  fs.writeFileSync(p('ünïcödé'), 'utf-8\n');
  fs.writeFileSync(p('n'.repeat(255)), 'long name\n');
  // modes and owners
  fs.writeFileSync(p('suid'), '#!/bin/sh\n');
  fs.chmodSync(p('suid'), 0o4755);
  fs.writeFileSync(p('sgid'), 'sgid\n');
  fs.chownSync(p('sgid'), 1000, 100);
  fs.chmodSync(p('sgid'), 0o2750);
  fs.chmodSync(p('dir', 'sub'), 0o1777);
  fs.writeFileSync(p('ro.txt'), 'read only\n');
  fs.chmodSync(p('ro.txt'), 0o444);
  fs.writeFileSync(p('odd-owner'), 'nobody\n');
  fs.chownSync(p('odd-owner'), 65534, 65533);
  fs.writeFileSync(p('big-ids'), 'ids\n');
  fs.chownSync(p('big-ids'), 100000, 200000);
  fs.chownSync(p('dir'), 1234, 5678);
  fs.chmodSync(p('dir'), 0o750);
  // symlinks
  fs.symlinkSync('hello.txt', p('link-short'));
  fs.symlinkSync(LONG_TARGET, p('link-long'));
  fs.symlinkSync('nowhere', p('link-dangling'));
  fs.symlinkSync('/etc/passwd', p('link-abs'));
  fs.symlinkSync('..', p('dir', 'link-up'));
  // hard links: three names for one inode, across directories
  fs.linkSync(p('suid'), p('dir', 'suid-link'));
  fs.linkSync(p('suid'), p('dir', 'sub', 'suid-link2'));
  // special files
  sh('mkfifo', p('fifo'));
  sh('mknod', p('null'), 'c', '1', '3');
  sh('mknod', p('loopdev'), 'b', '7', '200');
  sh('python3', '-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', p('sock'));
  // xattrs and ACLs
  sh('setfattr', '-n', 'user.greeting', '-v', 'hello', p('hello.txt'));
  sh('setfattr', '-n', 'user.bin', '-v', '0x00ff7f80', p('ro.txt'));
  sh('setfattr', '-n', 'user.empty', '-v', '""', p('empty'));
  sh('setfattr', '-n', 'user.dirattr', '-v', 'on a directory', p('dir'));
  sh('setfattr', '-n', 'user.big', '-v', `0x${pseudo(700, 5).toString('hex')}`, p('dir', 'medium.bin'));
  sh('setfacl', '-m', 'u:1000:rw', p('hello.txt'));
  sh('setfacl', '-d', '-m', 'u:1000:rx', p('dir', 'acldir'));
  // nanosecond times, directories last
  for (const [rel, when] of TIMES) sh('touch', '-h', '-d', when, p(rel));
}

/** A few of everything, for the fuzzed copies. */
function populateSmall(dir: string): void {
  fs.mkdirSync(join(dir, 'a', 'b'), { recursive: true });
  for (let i = 0; i < 8; i++) fs.writeFileSync(join(dir, 'a', `f${i}`), pseudo(100 + i * 3000, i + 10));
  fs.writeFileSync(join(dir, 'a', 'b', 'deep'), 'deep\n');
  fs.symlinkSync('a/f1', join(dir, 'sl'));
  fs.symlinkSync('x'.repeat(100), join(dir, 'slow'));
  fs.linkSync(join(dir, 'a', 'f0'), join(dir, 'hard'));
  execFileSync('setfattr', ['-n', 'user.k', '-v', 'v', join(dir, 'a', 'f2')]);
}

const IMAGES = {
  ext4: { name: 'cli-ext4', size: '64M', mkfsArgs: ['-t', 'ext4', '-b', '1024', '-O', 'inline_data', '-I', '256'], populate },
  ext2: { name: 'cli-ext2', size: '64M', mkfsArgs: ['-t', 'ext2', '-b', '4096'], populate },
} as const;

/** Makes the image and puts the source's nanosecond (and post-2038) times into it through a kernel mount. */
function buildImage(spec: (typeof IMAGES)[keyof typeof IMAGES]): { image: string; src: string } {
  const image = makeImage(spec);
  const src = join(scratchDir(), `${spec.name}.src`);
  withMount(image, true, (mnt) => copyTimes(src, mnt, walk(src)));
  return { image, src };
}

function assertOneLineError(r: CliResult, pattern: RegExp, what: string): void {
  assert.equal(r.status, 1, `${what}: exit status (stderr: ${r.stderr})`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `${what}: one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0] ?? '', pattern, what);
  assert.doesNotMatch(r.stderr, /\n\s+at |internal error/, `${what}: no stack trace nor internal error`);
}

function assertNoCrash(r: CliResult, what: string): void {
  assert.ok(r.status === 0 || r.status === 1, `${what}: exit status ${r.status}\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at |internal error/, `${what}: no stack trace nor internal error:\n${r.stderr}`);
  for (const line of r.stderr.split('\n').filter((l) => l !== '')) assert.match(line, /^ext4ts: /, `${what}: every stderr line is an ext4ts message: ${line}`);
}

/** Compares two snapshots entry by entry; `fields` limits what is compared. */
function compareSnapshots(actual: Map<string, EntrySnapshot>, expected: Map<string, EntrySnapshot>, fields: readonly (keyof EntrySnapshot)[], what: string): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: the same paths`);
  for (const [k, e] of expected) {
    const a = actual.get(k) as EntrySnapshot;
    for (const f of fields) {
      if (f === 'size' && e.type === 'dir') continue;
      assert.deepEqual(a[f], e[f], `${what}: ${JSON.stringify(k)} ${f}`);
    }
  }
}

const ALL_FIELDS = ['type', 'mode', 'uid', 'gid', 'size', 'sha256', 'target', 'rdev', 'linkOf', 'mtimeNs', 'atimeNs', 'xattrs'] as const;

function freshDir(name: string): string {
  const dir = join(scratchDir(), name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir);
  return dir;
}

describe('ext4ts CLI', () => {
  let ext4 = { image: '', src: '' };
  let ext2 = { image: '', src: '' };
  let mountSnap4 = new Map<string, EntrySnapshot>();

  before(() => {
    assert.equal(process.getuid?.(), 0, 'the CLI tests need root (mknod, chown, loop mounts)');
    ext4 = buildImage(IMAGES.ext4);
    ext2 = buildImage(IMAGES.ext2);
    mountSnap4 = withMount(ext4.image, false, (mnt) => snapshot(mnt));
  });

  it('get / reproduces the tree the kernel mounts: types, modes, owners, contents, links, ns times, xattrs', async () => {
    const out4 = join(freshDir('get4'), 'root');
    const out2 = join(freshDir('get2'), 'root');
    const [r4, r2] = await Promise.all([runCliAsync(['get', ext4.image, '/', out4]), runCliAsync(['get', ext2.image, '/', out2])]);
    assert.equal(r4.stderr, '');
    assert.equal(r4.status, 0);
    assert.equal(r2.stderr, '');
    assert.equal(r2.status, 0);
    const got4 = snapshot(out4);
    compareSnapshots(got4, mountSnap4, ALL_FIELDS, 'ext4 get vs kernel mount');
    // And against the source tree (lost+found and the root itself are mke2fs's).
    const skip = (k: string): boolean => k === '' || k.startsWith('lost+found');
    const srcSnap = snapshot(ext4.src, { skip });
    compareSnapshots(snapshot(out4, { skip }), srcSnap, ['type', 'mode', 'uid', 'gid', 'size', 'sha256', 'target', 'rdev', 'linkOf', 'mtimeNs', 'xattrs'], 'ext4 get vs source');
    // The interesting cases really are there.
    const e = (k: string): EntrySnapshot => got4.get(k) as EntrySnapshot;
    assert.equal(e('hello.txt').mtimeNs, '1614834367123456789');
    assert.equal(e('dir').mtimeNs, '2214450367987654321');
    assert.equal(e('old.txt').mtimeNs, '-14182939500000000');
    assert.equal(e('dir/sub').mode & 0o7777, 0o1777);
    assert.equal(e('suid').mode & 0o7777, 0o4755);
    assert.equal(e('dir/suid-link').linkOf, 'dir/sub/suid-link2'); // the walk visits dir/sub before dir/suid-link
    assert.equal(e('suid').linkOf, 'dir/sub/suid-link2');
    assert.equal(e('sock').type, 'socket');
    assert.equal(e('loopdev').type, 'blk');
    assert.equal(e('link-long').target, Buffer.from(LONG_TARGET).toString('hex'));
    assert.ok('system.posix_acl_access' in e('hello.txt').xattrs);
    assert.ok(got4.has(BIN_NAME.toString('latin1')));
    // Holes stay holes.
    assert.ok(fs.statSync(join(out4, 'sparse.bin')).blocks * 512 < 1 << 20, 'sparse.bin is sparse');
    withMount(ext2.image, false, (mnt) => compareSnapshots(snapshot(out2), snapshot(mnt), ALL_FIELDS, 'ext2 get vs kernel mount'));
  });

  it('get without python3: mknod/setfattr fallbacks, times to the microsecond', () => {
    const out = join(freshDir('get-tools'), 'root');
    const r = runCli(['get', ext4.image, '/', out], { env: { EXT4TS_PYTHON: '' } });
    assert.equal(r.status, 1, 'the socket cannot be made without python3');
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 2, r.stderr);
    assert.match(r.stderr, /warning: python3 not found.*microsecond/);
    assert.match(r.stderr, /sock: cannot mknod: cannot create sockets without python3/);
    const got = snapshot(out);
    const micro = (ns: string): string => (BigInt(ns) - (((BigInt(ns) % 1000n) + 1000n) % 1000n)).toString();
    for (const [k, e] of mountSnap4) {
      if (k === 'sock') continue;
      if (k === 'old.txt') assert.equal(got.get(k)?.mtimeNs, e.mtimeNs, 'a time before 1970, exact through touch(1)');
      const a = got.get(k) as EntrySnapshot;
      assert.ok(a !== undefined, k);
      for (const f of ['type', 'mode', 'uid', 'gid', 'sha256', 'target', 'rdev', 'linkOf', 'xattrs'] as const) assert.deepEqual(a[f], e[f], `${k} ${f}`);
      // Microseconds through Node's utimes; exact through touch(1) for times before 1970.
      assert.ok(a.mtimeNs === micro(e.mtimeNs) || a.mtimeNs === e.mtimeNs, `${k} mtime ${a.mtimeNs} vs ${e.mtimeNs}`);
      assert.ok(a.atimeNs === micro(e.atimeNs) || a.atimeNs === e.atimeNs, `${k} atime ${a.atimeNs} vs ${e.atimeNs}`);
    }
  });

  it('get of one file, of a subtree into an existing directory, and refusing to overwrite without --force', async () => {
    const dest = freshDir('get-parts');
    const [file, sub, link] = await Promise.all([
      runCliAsync(['get', ext4.image, '/hello.txt', join(dest, 'copy.txt')]),
      runCliAsync(['get', ext4.image, '/dir', dest]),
      runCliAsync(['get', ext4.image, '/link-short', join(dest, 'a-link')]),
    ]);
    for (const r of [file, sub, link]) assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.readFileSync(join(dest, 'copy.txt'), 'utf8'), 'hello, world\n');
    assert.equal(fs.lstatSync(join(dest, 'copy.txt'), { bigint: true }).mtimeNs, 1614834367123456789n);
    assert.equal(fs.readlinkSync(join(dest, 'a-link')), 'hello.txt');
    assert.equal(fs.lstatSync(join(dest, 'dir'), { bigint: true }).mtimeNs, 2214450367987654321n);
    assert.equal(fs.readdirSync(join(dest, 'dir', 'many')).length, 300);
    const again = runCli(['get', ext4.image, '/hello.txt', join(dest, 'copy.txt')]);
    assertOneLineError(again, /^ext4ts: .*copy\.txt: File exists/, 'get onto an existing file');
    fs.writeFileSync(join(dest, 'copy.txt'), 'overwritten');
    const forced = runCli(['get', '--force', ext4.image, '/hello.txt', join(dest, 'copy.txt')]);
    assert.equal(forced.status, 0, forced.stderr);
    assert.equal(fs.readFileSync(join(dest, 'copy.txt'), 'utf8'), 'hello, world\n');
  });

  it('get sets exact owners whatever group the destination hands out (setgid, foreign group, merged directories)', async () => {
    // The mount's owners of /dir and below, keyed relative to /dir.
    const expected = new Map<string, { uid: number; gid: number }>();
    for (const [k, e] of mountSnap4) if (k === 'dir' || k.startsWith('dir/')) expected.set(k, { uid: e.uid, gid: e.gid });
    const setgid = freshDir('get-owner-setgid');
    fs.chownSync(setgid, 0, 4242);
    fs.chmodSync(setgid, 0o2775);
    const foreign = freshDir('get-owner-foreign');
    fs.chownSync(foreign, 0, 4242);
    const merged = freshDir('get-owner-merged');
    fs.mkdirSync(join(merged, 'dir'));
    fs.chownSync(join(merged, 'dir'), 0, 4242);
    fs.chmodSync(join(merged, 'dir'), 0o2775);
    // Merged into without the setgid bit: of a foreign group (new files get ours: chown
    // needed), and of our own (new files get exactly ours: a chown may be left out).
    const mergedForeign = freshDir('get-owner-merged-foreign');
    fs.mkdirSync(join(mergedForeign, 'dir'));
    fs.chownSync(join(mergedForeign, 'dir'), 0, 4242);
    const mergedOwn = freshDir('get-owner-merged-own');
    fs.mkdirSync(join(mergedOwn, 'dir'));
    const dests = [setgid, foreign, merged, mergedForeign, mergedOwn];
    const runs = await Promise.all(dests.map((dest) => runCliAsync(['get', ext4.image, '/dir', dest])));
    for (const r of runs) assert.equal(r.status, 0, r.stderr);
    for (const dest of dests) {
      const got = snapshot(join(dest, 'dir'));
      assert.equal(got.size, expected.size, dest);
      for (const [k, e] of got) {
        const want = expected.get(k === '' ? 'dir' : `dir/${k}`);
        assert.ok(want !== undefined, `${dest}: ${k} expected`);
        assert.deepEqual({ uid: e.uid, gid: e.gid }, want, `${dest}: owner of ${JSON.stringify(k)}`);
      }
    }
  });

  it('get into a destination that fills up: stops at ENOSPC, leaves no partly written file', () => {
    const image = makeImage({
      name: 'cli-get-full',
      size: '8M',
      mkfsArgs: ['-t', 'ext4'],
      populate: (dir) => {
        fs.mkdirSync(join(dir, 'd'));
        // Written in one call (one run) and in several (holes, several runs), past the tmpfs.
        for (let i = 0; i < 40; i++) fs.writeFileSync(join(dir, 'd', `f${String(i).padStart(2, '0')}`), pseudo(8192 + i * 100, i + 1));
        const sparse = Buffer.alloc(300 * 1024);
        for (let at = 0; at < sparse.length; at += 64 * 1024) pseudo(4096, at + 7).copy(sparse, at);
        fs.writeFileSync(join(dir, 'd', 'g-sparse'), sparse);
      },
    });
    const dest = freshDir('get-full');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=160k', 'tmpfs', dest]);
    try {
      const r = runCli(['get', '--no-progress', image, '/d', dest]);
      assert.equal(r.status, 1, r.stderr);
      const lines = r.stderr.split('\n').filter((l) => l !== '');
      assert.equal(lines.length, 2, r.stderr);
      assert.match(lines[0] ?? '', /^ext4ts: .*\/d\/\S+: No space left on device$/);
      assert.match(lines[1] ?? '', /^ext4ts: .*\/d\/\S+: the copy stops here$/);
      // What is there is whole; the file that did not fit is not.
      const got = fs.readdirSync(join(dest, 'd'));
      assert.ok(got.length > 0 && got.length < 41, `${got.length} files copied`);
      const src = join(scratchDir(), 'cli-get-full.src', 'd');
      for (const name of got) assert.ok(fs.readFileSync(join(dest, 'd', name)).equals(fs.readFileSync(join(src, name))), `${name} is whole`);
    } finally {
      execFileSync('umount', [dest]);
    }
  });

  it('get gives exact modes where the destination has a default ACL, and in directories merged into', async () => {
    // Files are created with their final mode under umask 0 where nothing else decides
    // it; a default ACL decides it instead (and is inherited by the directories made
    // below), so there the mode must still come out exact.
    const expected = new Map<string, number>();
    for (const [k, e] of mountSnap4) if (k === 'dir' || k.startsWith('dir/')) expected.set(k, e.mode);
    const acl = freshDir('get-mode-acl');
    execFileSync('setfacl', ['-d', '-m', 'u::rwx,g::---,o::---,u:4242:r-x,m::r-x', acl]);
    const merged = freshDir('get-mode-merged');
    fs.mkdirSync(join(merged, 'dir'));
    execFileSync('setfacl', ['-d', '-m', 'u::r-x,g::---,o::---', join(merged, 'dir')]);
    const runs = await Promise.all([acl, merged].map((dest) => runCliAsync(['get', ext4.image, '/dir', dest])));
    for (const r of runs) assert.equal(r.status, 0, r.stderr);
    for (const dest of [acl, merged]) {
      const got = snapshot(join(dest, 'dir'));
      assert.equal(got.size, expected.size, dest);
      for (const [k, e] of got) {
        if (k === '' && dest === merged) continue; // a merged directory keeps its own mode until the end
        assert.equal((e.mode & 0o7777).toString(8), ((expected.get(k === '' ? 'dir' : `dir/${k}`) ?? 0) & 0o7777).toString(8), `${dest}: mode of ${JSON.stringify(k)}`);
      }
    }
  });

  /** GNU ls's -lRAn output on a read-only kernel mount, headers rewritten to ext4ts's ("/:", "/dir:"). */
  const gnuLs = (image: string, args: readonly string[]): string =>
    withMount(image, false, (mnt) =>
      execFileSync('ls', [...args, '--quoting-style=literal', '--show-control-chars'], { cwd: mnt, env: { ...process.env, LC_ALL: 'C', TZ: 'UTC' }, maxBuffer: 64 << 20 })
        .toString('latin1')
        .replace(/^\.:$/m, '/:')
        .replace(/^\.\/(.*):$/gm, '/$1:'),
    );

  it('ls -lRA prints what GNU ls prints on the kernel mount; -a adds . and ..; plain ls -R lists every name', async () => {
    const [long4, long2, all, plain, one] = await Promise.all([
      runCliAsync(['ls', '-lRA', ext4.image]),
      runCliAsync(['ls', '-lRA', ext2.image, '/']),
      runCliAsync(['ls', '-la', ext4.image, '/dir/sub']),
      runCliAsync(['ls', '-R', '-a', ext4.image, '/']),
      runCliAsync(['ls', '-l', ext4.image, '/link-short']),
    ]);
    for (const r of [long4, long2, all, plain, one]) assert.equal(r.status, 0, r.stderr);
    assert.equal(long2.stdout.toString('latin1'), gnuLs(ext2.image, ['-lRAn', '.']), 'ext2: byte for byte');
    assert.equal(long4.stdout.toString('latin1'), gnuLs(ext4.image, ['-lRAn', '.']), 'ext4 (inline data): byte for byte, totals included');
    assert.equal(all.stdout.toString('latin1'), gnuLs(ext4.image, ['-lan', 'dir/sub']));
    const lines = plain.stdout.toString('latin1').split('\n');
    assert.ok(lines.includes('/:') && lines.includes('/dir/many:') && lines.includes('.') && lines.includes('..'));
    for (const k of mountSnap4.keys()) {
      const name = k.split('/').pop() as string;
      if (k !== '' && !name.includes('\n')) assert.ok(lines.includes(name), `ls -R lists ${JSON.stringify(k)}`);
    }
    assert.match(one.stdout.toString(), /^lrwxrwxrwx 1 0 0 9 Jan {2}1 {2}2019 \/link-short -> hello\.txt\n$/);
  });

  it('cat prints exact bytes, follows symlinks, and goes on after an error', async () => {
    const [big, two, nocache] = await Promise.all([
      runCliAsync(['cat', ext4.image, '/dir/big.bin']),
      runCliAsync(['cat', ext4.image, '/link-short', '/nope', '/sparse.bin']),
      runCliAsync(['cat', '--cache-size', '0', ext2.image, '/dir/medium.bin', '/tiny']),
    ]);
    assert.equal(big.status, 0, big.stderr);
    assert.ok(big.stdout.equals(fs.readFileSync(join(ext4.src, 'dir', 'big.bin'))), 'big.bin');
    assert.equal(two.status, 1);
    assertOneLineError(two, /^ext4ts: \/nope: No such file or directory$/, 'cat of a missing file among others');
    assert.ok(two.stdout.equals(Buffer.concat([Buffer.from('hello, world\n'), fs.readFileSync(join(ext4.src, 'sparse.bin'))])));
    assert.equal(nocache.status, 0, nocache.stderr);
    assert.ok(nocache.stdout.equals(Buffer.concat([pseudo(5000, 1), Buffer.from('x')])));
  });

  it('stat: type, modes, owners, ns times, extents and holes, inline data, xattrs; --json agrees with the kernel', async () => {
    const [text, json, inline] = await Promise.all([
      runCliAsync(['stat', ext4.image, '/hello.txt', '/sparse.bin']),
      runCliAsync(['stat', '--json', ext4.image, '/dir', '/sparse.bin', '/null', '/link-long']),
      runCliAsync(['stat', ext4.image, '/tiny']),
    ]);
    for (const r of [text, json, inline]) assert.equal(r.status, 0, r.stderr);
    const t = text.stdout.toString();
    assert.match(t, /Access: \(0664\/-rw-rw-r--\) {2}Uid: 0 {2}Gid: 0/); // setfacl made the group bits the ACL mask
    assert.match(t, /Modify: 2021-03-04 05:06:07\.123456789 \+0000/);
    assert.match(t, /user\.greeting \(5 bytes\)/);
    assert.match(t, /system\.posix_acl_access/);
    assert.match(t, /Extents: 2 \(and 1 hole\)/);
    assert.match(t, /: hole \(/);
    assert.match(inline.stdout.toString(), /Data: inline data \(1 byte in the inode\)/);
    const objs = json.stdout
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(objs.length, 4);
    withMount(ext4.image, false, (mnt) => {
      for (const o of objs) {
        const st = fs.lstatSync(join(mnt, o.path as string), { bigint: true });
        assert.equal(o.mode, Number(st.mode), `${String(o.path)} mode`);
        assert.equal(o.uid, Number(st.uid));
        assert.equal(o.gid, Number(st.gid));
        assert.equal(o.size, Number(st.size));
        assert.equal(o.nlink, Number(st.nlink));
        assert.equal(o.blocks, Number(st.blocks));
        assert.equal(o.ino, Number(st.ino));
        const mtime = o.mtime as { seconds: number; nanoseconds: number };
        assert.equal(BigInt(mtime.seconds) * 1_000_000_000n + BigInt(mtime.nanoseconds), st.mtimeNs, `${String(o.path)} mtime`);
      }
    });
    const [dir, sparse, dev, link] = objs as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>, Record<string, unknown>];
    assert.equal(dir.type, 'directory');
    assert.deepEqual(dir.xattrs, [{ name: 'user.dirattr', size: 14 }]);
    assert.deepEqual(dev.rdev, { major: 1, minor: 3 });
    assert.equal(link.target, LONG_TARGET);
    const data = sparse.data as { kind: string; runs: { kind: string; count: number }[] };
    assert.equal(data.kind, 'extents');
    assert.deepEqual(
      data.runs.map((r) => r.kind),
      ['data', 'hole', 'data'],
    );
  });

  it('info prints the superblock like dumpe2fs -h, and --json', async () => {
    const [text, json, ext2text] = await Promise.all([runCliAsync(['info', ext4.image]), runCliAsync(['info', '--json', ext4.image]), runCliAsync(['info', ext2.image])]);
    for (const r of [text, json, ext2text]) assert.equal(r.status, 0, r.stderr);
    for (const [r, image] of [
      [text, ext4.image],
      [ext2text, ext2.image],
    ] as const) {
      const ours = new Map<string, string>();
      for (const line of r.stdout.toString().split('\n')) {
        const m = /^([^:]+):\s*(.*)$/.exec(line);
        if (m?.[1] !== undefined && m[2] !== undefined) ours.set(m[1].trim(), m[2].trim());
      }
      const theirs = withUtc(() => dumpe2fsHeader(image));
      for (const field of ['Filesystem UUID', 'Filesystem magic number', 'Filesystem features', 'Filesystem flags', 'Default mount options', 'Filesystem state', 'Inode count', 'Block count', 'Reserved block count', 'Free blocks', 'Free inodes', 'First block', 'Block size', 'Blocks per group', 'Inodes per group', 'Inode size', 'Filesystem created', 'Last mount time', 'Last write time', 'Mount count', 'Directory Hash Seed', 'Journal inode', 'Checksum', 'Flex block group size']) {
        assert.equal(ours.get(field), theirs.get(field), `${image}: ${field}`);
      }
      assert.match(ours.get('ext4ts support') ?? '', /^read/);
    }
    // --offset: the same filesystem 1 MiB into a bigger file.
    const small = makeImage({ name: 'cli-small', size: '4M', mkfsArgs: ['-t', 'ext4', '-L', 'inner'] });
    const disk = join(scratchDir(), 'cli-disk.img');
    fs.writeFileSync(disk, Buffer.concat([Buffer.alloc(1 << 20), fs.readFileSync(small)]));
    const [inner, lsInner, noOffset] = await Promise.all([runCliAsync(['info', '--json', '--offset', '1M', disk]), runCliAsync(['ls', '--offset', '1048576', disk]), runCliAsync(['info', disk])]);
    assert.equal(inner.status, 0, inner.stderr);
    assert.equal((JSON.parse(inner.stdout.toString()) as { volumeName: string }).volumeName, 'inner');
    assert.equal(lsInner.stdout.toString(), 'lost+found\n');
    assertOneLineError(noOffset, /not an ext2\/ext3\/ext4 filesystem/, 'info without --offset');
    const obj = JSON.parse(json.stdout.toString()) as Record<string, unknown>;
    const header = withUtc(() => dumpe2fsHeader(ext4.image));
    assert.deepEqual(obj.features, header.get('Filesystem features')?.split(' '));
    assert.equal(obj.blockSize, 1024);
    assert.equal(obj.uuid, header.get('Filesystem UUID'));
    assert.equal((obj.support as { canRead: boolean }).canRead, true);
  });

  it('errors: one line "ext4ts: WHAT: reason", exit status 1, never a stack trace', async () => {
    const notImage = join(scratchDir(), 'not-an-image.bin');
    fs.writeFileSync(notImage, Buffer.alloc(1 << 20, 0x5a));
    const [missing, notDir, noImage, garbage, badOption, badSize] = await Promise.all([
      runCliAsync(['stat', ext4.image, '/nope']),
      runCliAsync(['ls', ext4.image, '/hello.txt/x']),
      runCliAsync(['ls', join(scratchDir(), 'no-such.img')]),
      runCliAsync(['info', notImage]),
      runCliAsync(['ls', '--bogus', ext4.image]),
      runCliAsync(['cat', '--cache-size', '12Q', ext4.image, '/tiny']),
    ]);
    assertOneLineError(missing, /^ext4ts: \/nope: No such file or directory$/, 'missing path');
    assertOneLineError(notDir, /^ext4ts: \/hello\.txt\/x: Not a directory$/, 'file used as a directory');
    assertOneLineError(noImage, /^ext4ts: .*no-such\.img: No such file or directory$/, 'missing image');
    assertOneLineError(garbage, /^ext4ts: .*not-an-image\.bin: not an ext2\/ext3\/ext4 filesystem/, 'not an image');
    assertOneLineError(badOption, /^ext4ts: unknown option '--bogus'/, 'unknown option');
    assertOneLineError(badSize, /^ext4ts: .*12Q.* is not a size/, 'bad --cache-size');
  });

  it('corrupted images: one line per damaged object, exit status 1, no stack trace, no hang', async () => {
    // Flip bytes of hello.txt's inode record (metadata_csum catches it) and of the root
    // directory's inode on a copy without checksum verification (the decoders see garbage).
    const imap = execFileSync('debugfs', ['-R', 'imap /hello.txt', ext4.image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(imap);
    assert.ok(m?.[1] !== undefined && m[2] !== undefined, imap);
    const at = Number(m[1]) * 1024 + parseInt(m[2], 16);
    const bad = join(scratchDir(), 'corrupt-inode.img');
    fs.copyFileSync(ext4.image, bad);
    const fd = fs.openSync(bad, 'r+');
    fs.writeSync(fd, Buffer.from([0xde, 0xad, 0xbe, 0xef]), 0, 4, at + 0x28); // i_block
    fs.closeSync(fd);
    const [cat, stat, get] = await Promise.all([
      runCliAsync(['cat', bad, '/hello.txt']),
      runCliAsync(['stat', bad, '/hello.txt']),
      runCliAsync(['get', bad, '/hello.txt', join(freshDir('get-corrupt'), 'x')]),
    ]);
    for (const [r, what] of [
      [cat, 'cat'],
      [stat, 'stat'],
      [get, 'get'],
    ] as const) {
      assertOneLineError(r, /^ext4ts: \/hello\.txt: corrupted inode.*checksum/, `${what} of a file whose inode checksum fails`);
    }
    const noCsum = await runCliAsync(['cat', '--no-checksums', bad, '/hello.txt']);
    assertNoCrash(noCsum, 'cat --no-checksums of a damaged inode');

    // Seeded garbage over the inode table of a small ext2 image (no checksums there).
    const fuzzBase = makeImage({ name: 'cli-fuzz', size: '4M', mkfsArgs: ['-t', 'ext2', '-b', '1024', '-I', '128'], populate: populateSmall });
    const gd = execFileSync('dumpe2fs', [fuzzBase], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const table = /Inode table at (\d+)-/.exec(gd);
    assert.ok(table?.[1] !== undefined);
    const runs: Promise<[CliResult, string]>[] = [];
    for (let seed = 1; seed <= 3; seed++) {
      const img = join(scratchDir(), `fuzz-${seed}.img`);
      fs.copyFileSync(fuzzBase, img);
      const f = fs.openSync(img, 'r+');
      const noise = pseudo(64, seed * 7919);
      for (let i = 0; i < 12; i++) {
        // Inodes 2..24 (128 bytes each): the root, lost+found and the populated ones.
        const off = Number(table[1]) * 1024 + (1 + (noise.readUInt32LE(i * 4) % 23)) * 128 + ((noise[i + 48] ?? 0) % 128);
        fs.writeSync(f, pseudo(4, seed * 100 + i), 0, 4, off);
      }
      fs.closeSync(f);
      runs.push(runCliAsync(['ls', '-lRa', img], { timeoutMs: 30_000 }).then((r) => [r, `ls -lRa fuzz-${seed}`] as [CliResult, string]));
      runs.push(runCliAsync(['get', img, '/', join(freshDir(`fuzz-get-${seed}`), 'out')], { timeoutMs: 30_000 }).then((r) => [r, `get fuzz-${seed}`] as [CliResult, string]));
    }
    // A directory linked into its own subtree (debugfs ln): reported once per command, no endless walk.
    const loop = join(scratchDir(), 'cli-loop.img');
    fs.copyFileSync(fuzzBase, loop);
    execFileSync('debugfs', ['-w', '-R', 'ln /a /a/b/loop', loop], { stdio: 'ignore' });
    runs.push(runCliAsync(['ls', '-R', loop], { timeoutMs: 30_000 }).then((r) => [r, 'ls -R of a directory loop'] as [CliResult, string]));
    runs.push(runCliAsync(['get', loop, '/', join(freshDir('loop-get'), 'out')], { timeoutMs: 30_000 }).then((r) => [r, 'get of a directory loop'] as [CliResult, string]));
    const results = await Promise.all(runs);
    for (const [r, what] of results) assertNoCrash(r, what);
    for (const [r, what] of results.slice(-2)) assertOneLineError(r, /^ext4ts: \/a\/b\/loop: corrupted directory: .*directory loop/, what);
  });

  it('--stats prints one JSON line of cache statistics; a progress bar on a terminal; --help works for every command', async () => {
    const stats = await runCliAsync(['ls', '--stats', '--cache-size', '1M', ext4.image, '/dir']);
    assert.equal(stats.status, 0, stats.stderr);
    const lines = stats.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, stats.stderr);
    const s = JSON.parse(lines[0] ?? '') as Record<string, number>;
    for (const k of ['hits', 'misses', 'reads', 'writes', 'evictions', 'inodeHits', 'inodeMisses']) assert.equal(typeof s[k], 'number', k);
    assert.ok((s.hits ?? 0) + (s.misses ?? 0) > 0);
    assert.equal(s.capacityBlocks, 1024);
    // The progress bar, on a terminal (script(1) gives the command a pty).
    const dest = join(freshDir('get-progress'), 'out');
    const command = [process.execPath, '--import', 'tsx', join(REPO, 'src', 'cli', 'main.ts'), 'get', ext2.image, '/dir', dest].join(' ');
    const tty = execFileSync('script', ['-qec', command, '/dev/null'], { cwd: REPO, encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
    assert.match(tty, /ext4ts get \|.*\| \d+% \| \d+\/\d+ entries/);
    assert.equal(fs.readdirSync(join(dest, 'many')).length, 300);
    const helps = await Promise.all([[], ['info'], ['ls'], ['stat'], ['cat'], ['get']].map((c) => runCliAsync([...c, '--help'])));
    for (const [i, h] of helps.entries()) {
      assert.equal(h.status, 0, `help ${i}: ${h.stderr}`);
      const text = h.stdout.toString();
      assert.match(text, /^Usage: ext4ts/);
      if (i > 0) {
        assert.match(text, /Examples:/);
        for (const o of ['--cache-size', '--offset', '--no-checksums', '--stats']) assert.ok(text.includes(o), `${o} in help ${i}`);
      }
    }
  });
});

/** Runs `body` with TZ=UTC (dumpe2fs prints local times). */
function withUtc<T>(body: () => T): T {
  const old = process.env.TZ;
  process.env.TZ = 'UTC';
  try {
    return body();
  } finally {
    if (old === undefined) delete process.env.TZ;
    else process.env.TZ = old;
  }
}

describe('ext4ts mount: the background server', () => {
  it('runs with one malloc arena unless MALLOC_ARENA_MAX is set', async () => {
    const { serverEnv } = await import('../src/cli/mount.js');
    assert.equal(serverEnv({ PATH: '/bin' }).MALLOC_ARENA_MAX, '1');
    assert.equal(serverEnv({ PATH: '/bin' }).PATH, '/bin');
    assert.equal(serverEnv({ MALLOC_ARENA_MAX: '4' }).MALLOC_ARENA_MAX, '4');
  });
});
