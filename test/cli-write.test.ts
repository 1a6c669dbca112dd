/**
 * The CLI's write commands (put, mkdir, rm, mv, ln, chmod, chown, truncate), run as child
 * processes on images made by mke2fs (ext4 with 4 KiB and 1 KiB blocks, ext3).
 *
 * Oracles: `e2fsck -fn` must find nothing after every command; a read-only kernel loop
 * mount of the image must show exactly the host tree `put` copied (types, modes, owners,
 * contents, symlink targets, devices, hard links, atime and mtime to the nanosecond,
 * user.* xattrs and ACLs; trusted.* and security.* checked with getfattr), and for the
 * small commands the same tree as a host twin changed by coreutils. Runs as root.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { scratchDir } from './helpers/images.js';
import { REPO, runCli, runCliAsync, snapshot, walk, withMount, type CliResult, type EntrySnapshot } from './helpers/cli.js';
import { randomBytes } from './helpers/tree.js';


const BIN_NAME = Buffer.from([0x62, 0x69, 0x6e, 0xff, 0xfe, 0x2d, 0x6e, 0x61, 0x6d, 0x65]); // not UTF-8
const CAPABILITY = '0x0100000200200000000000000000000000000000'; // cap_net_raw+ep

function sh(cmd: string, ...args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** The host tree `put` copies: a bit of everything. */
function populate(dir: string): void {
  const p = (...parts: string[]): string => join(dir, ...parts);
  fs.mkdirSync(p('dir', 'sub', 'deeper'), { recursive: true });
  fs.mkdirSync(p('dir', 'many'));
  fs.mkdirSync(p('sticky'));
  fs.mkdirSync(p('sgid-dir'));
  fs.mkdirSync(p('locked'));
  fs.writeFileSync(p('empty'), '');
  fs.writeFileSync(p('tiny'), 'x');
  fs.writeFileSync(p('small.txt'), 'hello, world\n'.repeat(4));
  fs.writeFileSync(p('dir', 'medium.bin'), randomBytes(1, 5000));
  fs.writeFileSync(p('dir', 'big.bin'), randomBytes(2, 3 << 20));
  fs.writeFileSync(p('zeros-inside'), Buffer.concat([randomBytes(7, 10000), Buffer.alloc(64 << 10), randomBytes(8, 10000)]));
  // Sparse: data, a hole, data, and a trailing hole.
  const fd = fs.openSync(p('sparse.bin'), 'w');
  fs.writeSync(fd, randomBytes(3, 65536), 0, 65536, 0);
  fs.writeSync(fd, randomBytes(4, 4096), 0, 4096, 2 << 20);
  fs.ftruncateSync(fd, 8 << 20);
  fs.closeSync(fd);
  for (let i = 0; i < 300; i++) fs.writeFileSync(p('dir', 'many', `file-${String(i).padStart(4, '0')}-${'n'.repeat(i % 40)}`), `${i}\n`);
  fs.writeFileSync(Buffer.concat([Buffer.from(dir + '/'), BIN_NAME]), 'binary name\n');
  fs.writeFileSync(p('new\nline'), 'newline\n');
  fs.writeFileSync(p('n'.repeat(255)), 'long name\n');
  // modes and owners
  fs.writeFileSync(p('suid'), '#!/bin/sh\n');
  fs.chmodSync(p('suid'), 0o4755);
  fs.writeFileSync(p('sgid'), 'sgid\n');
  fs.chownSync(p('sgid'), 1000, 100);
  fs.chmodSync(p('sgid'), 0o2750);
  fs.writeFileSync(p('nothing'), 'mode 000\n');
  fs.chmodSync(p('nothing'), 0o000);
  fs.chmodSync(p('sticky'), 0o1777);
  fs.chownSync(p('sgid-dir'), 0, 4321);
  fs.chmodSync(p('sgid-dir'), 0o2775);
  fs.writeFileSync(p('sgid-dir', 'inside'), 'inherits?\n');
  fs.chownSync(p('sgid-dir', 'inside'), 0, 0);
  fs.writeFileSync(p('locked', 'secret'), 'in a 0555 directory\n');
  fs.chmodSync(p('locked'), 0o555);
  fs.writeFileSync(p('big-ids'), 'ids\n');
  fs.chownSync(p('big-ids'), 100000, 200000);
  fs.chownSync(p('dir'), 1234, 5678);
  fs.chmodSync(p('dir'), 0o750);
  // symlinks
  fs.symlinkSync('small.txt', p('link-short'));
  fs.symlinkSync('long/'.repeat(40) + 'end', p('link-long'));
  fs.symlinkSync('nowhere', p('link-dangling'));
  fs.symlinkSync('..', p('dir', 'link-up'));
  fs.lchownSync(p('link-dangling'), 77, 88);
  // hard links: three names for one inode, across directories
  fs.linkSync(p('suid'), p('dir', 'suid-link'));
  fs.linkSync(p('suid'), p('dir', 'sub', 'suid-link2'));
  fs.linkSync(p('small.txt'), p('small-link'));
  // special files
  sh('mkfifo', p('fifo'));
  sh('mknod', p('null'), 'c', '1', '3');
  sh('mknod', p('bigdev'), 'c', '300', '70000');
  sh('mknod', p('loopdev'), 'b', '7', '200');
  sh('python3', '-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', p('sock'));
  // xattrs and ACLs
  sh('setfattr', '-n', 'user.greeting', '-v', 'hello', p('small.txt'));
  sh('setfattr', '-n', 'user.empty', '-v', '""', p('empty'));
  sh('setfattr', '-n', 'user.dirattr', '-v', 'on a directory', p('dir'));
  sh('setfattr', '-n', 'user.big', '-v', `0x${randomBytes(5, 700).toString('hex')}`, p('dir', 'medium.bin'));
  // A name that is not UTF-8 cannot be an argument: python3 takes it as bytes.
  execFileSync('python3', ['-c', 'import os, sys; os.setxattr(sys.stdin.buffer.read(), "user.bin", bytes([0, 255, 127, 128]))'], { input: Buffer.concat([Buffer.from(dir + '/'), BIN_NAME]) });
  sh('setfattr', '-n', 'trusted.note', '-v', 'trusted', p('tiny'));
  sh('setfattr', '-h', '-n', 'trusted.onlink', '-v', 'link', p('link-short'));
  sh('setfattr', '-n', 'security.capability', '-v', CAPABILITY, p('suid'));
  sh('setfacl', '-m', 'u:1000:rw,g:50:r', p('small.txt'));
  sh('setfacl', '-m', 'u:1000:rwx', p('dir', 'sub'));
  sh('setfacl', '-d', '-m', 'u:1000:rx', p('dir', 'sub'));
  setTimes(dir);
}

/**
 * Nanosecond times on everything (symlinks too), before 1970 and after 2038 as well;
 * children before their directories. Deterministic: run again, it restores the times
 * reading the tree changed (atimes).
 */
function setTimes(dir: string): void {
  const times = `
import os, sys
root = sys.argv[1].encode()
paths = sys.stdin.buffer.read().split(b'\\0')[:-1]
for i, rel in enumerate(reversed(paths)):
    p = root + b'/' + rel if rel else root
    base = [1614834367123456789, -14182939500000000, 4133980799999999999, 1000000000000000001][i % 4]
    os.utime(p, ns=(base - 86400 * 10**9 * 3 + i * 7, base + i * 1000000007), follow_symlinks=False)
`;
  const rels = [Buffer.alloc(0), ...walk(dir)];
  execFileSync('python3', ['-c', times, dir], { input: Buffer.concat(rels.flatMap((r) => [r, Buffer.alloc(1)])), stdio: ['pipe', 'ignore', 'pipe'] });
}

const ALL_FIELDS = ['type', 'mode', 'uid', 'gid', 'size', 'sha256', 'target', 'rdev', 'linkOf', 'mtimeNs', 'atimeNs', 'xattrs'] as const;

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

function fsck(image: string, what: string): void {
  const r = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${what}: e2fsck -fn exit status ${r.status}\n${r.stdout}${r.stderr}`);
}

function mkfs(name: string, args: readonly string[], size = '64M'): string {
  const image = join(scratchDir(), `${name}.img`);
  fs.rmSync(image, { force: true });
  sh('mke2fs', '-q', '-F', ...args, image, size);
  return image;
}

function freshDir(name: string): string {
  const dir = join(scratchDir(), name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir);
  return dir;
}

function assertOk(r: CliResult, what: string): void {
  assert.equal(r.stderr, '', `${what}: stderr`);
  assert.equal(r.status, 0, `${what}: exit status`);
}

function assertOneLineError(r: CliResult, pattern: RegExp, what: string): void {
  assert.equal(r.status, 1, `${what}: exit status (stderr: ${r.stderr})`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `${what}: one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0] ?? '', pattern, what);
  assert.doesNotMatch(r.stderr, /\n\s+at |internal error/, `${what}: no stack trace nor internal error`);
}

/** trusted.* and security.* of one path, as getfattr shows them (name=hex). */
function privilegedXattrs(path: string): string[] {
  const out = execFileSync('getfattr', ['-h', '-d', '-m', '^(trusted|security)\\.', '-e', 'hex', '--absolute-names', path], { encoding: 'latin1' });
  return out
    .split('\n')
    .filter((l) => l.includes('='))
    .sort();
}

const IMAGES = [
  { name: 'put-ext4-4k', args: ['-t', 'ext4', '-b', '4096'] },
  { name: 'put-ext4-1k', args: ['-t', 'ext4', '-b', '1024', '-I', '256'] },
  { name: 'put-ext3', args: ['-t', 'ext3'] },
] as const;

describe('ext4ts CLI write commands', () => {
  let src = '';
  let srcSnap = new Map<string, EntrySnapshot>();

  before(() => {
    assert.equal(process.getuid?.(), 0, 'the write CLI tests need root (mknod, chown, loop mounts)');
    src = join(freshDir('put-src'), 'tree');
    fs.mkdirSync(src);
    populate(src);
    srcSnap = snapshot(src); // before anything reads the files: the atimes as set
    setTimes(src); // snapshot read the files and directories: their atimes again
  });

  it('put copies a tree like cp -a: the kernel mount shows the host tree, to the nanosecond; e2fsck is clean', () => {
    const images = IMAGES.map((spec) => mkfs(spec.name, spec.args));
    for (const image of images) {
      const r = runCli(['mkdir', image, '/dest']);
      assertOk(r, 'mkdir /dest');
    }
    // One at a time, the source's times restored before each: a put reads the files and
    // directories, which moves their atimes (relatime).
    const results = images.map((image) => {
      setTimes(src);
      return runCli(['put', image, src, '/dest'], { timeoutMs: 180_000 });
    });
    for (const [i, image] of images.entries()) {
      const what = IMAGES[i]?.name ?? '';
      assertOk(results[i] as CliResult, `${what}: put`);
      fsck(image, what);
      withMount(image, false, (mnt) => {
        const tree = join(mnt, 'dest', 'tree');
        compareSnapshots(snapshot(tree), srcSnap, ALL_FIELDS, `${what}: kernel mount vs host`);
        for (const rel of ['tiny', 'link-short', 'suid']) assert.deepEqual(privilegedXattrs(join(tree, rel)), privilegedXattrs(join(src, rel)), `${what}: ${rel} trusted/security xattrs`);
        assert.ok(privilegedXattrs(join(tree, 'suid')).some((l) => l.startsWith('security.capability=')), 'the capability is there');
        // Kept sparse: the 8 MiB file holds 68 KiB of data.
        const sparse = fs.statSync(join(tree, 'sparse.bin'));
        assert.equal(sparse.size, 8 << 20);
        assert.ok(sparse.blocks * 512 < 256 << 10, `${what}: sparse.bin uses ${sparse.blocks * 512} bytes`);
        const zeros = fs.statSync(join(tree, 'zeros-inside'));
        assert.ok(zeros.blocks * 512 < 60 << 10, `${what}: the all-zero blocks inside a file are holes`);
        assert.equal(fs.statSync(join(tree, 'dir', 'suid-link')).nlink, 3);
      });
    }
  });

  it('put: one file under a new name, several sources into a directory, "SRC/." fills DEST; files replaced, directories merged', () => {
    const image = mkfs('put-dest', ['-t', 'ext4']);
    assertOk(runCli(['put', image, join(src, 'small.txt'), '/renamed.txt']), 'put one file, new name');
    assertOk(runCli(['mkdir', image, '/multi']), 'mkdir');
    assertOk(runCli(['put', image, join(src, 'tiny'), join(src, 'dir'), join(src, 'link-long'), '/multi']), 'put several');
    assertOk(runCli(['put', image, `${join(src, 'dir')}/.`, '/']), 'put dir/. /');
    fsck(image, 'after the puts');
    // Change the host copy and put again: files replaced, the directory merged into.
    const host = join(freshDir('put-again'), 'dir');
    execFileSync('cp', ['-a', join(src, 'dir'), host]);
    fs.writeFileSync(join(host, 'medium.bin'), 'replaced\n');
    fs.writeFileSync(join(host, 'added'), 'new file\n');
    fs.rmSync(join(host, 'sub', 'suid-link2'));
    fs.mkdirSync(join(host, 'sub', 'suid-link2')); // a file replaced by a directory: an error for that entry only
    assertOk(runCli(['put', image, join(src, 'small.txt'), '/renamed.txt']), 'put over an existing file');
    const again = runCli(['put', image, host, '/multi']);
    assertOneLineError(again, /^ext4ts: \/multi\/dir\/sub\/suid-link2: cannot overwrite non-directory with directory$/, 'dir over file');
    fsck(image, 'after the second put');
    withMount(image, false, (mnt) => {
      assert.equal(fs.readFileSync(join(mnt, 'renamed.txt'), 'utf8'), 'hello, world\n'.repeat(4));
      assert.equal(fs.readFileSync(join(mnt, 'multi', 'tiny'), 'utf8'), 'x');
      assert.equal(fs.readlinkSync(join(mnt, 'multi', 'link-long')), 'long/'.repeat(40) + 'end');
      assert.equal(fs.readFileSync(join(mnt, 'multi', 'dir', 'medium.bin'), 'utf8'), 'replaced\n');
      assert.equal(fs.readFileSync(join(mnt, 'multi', 'dir', 'added'), 'utf8'), 'new file\n');
      assert.equal(fs.readdirSync(join(mnt, 'multi', 'dir', 'many')).length, 300);
      // "dir/." filled the root itself: its entries are at the top, and the root has dir's mode.
      assert.equal(fs.readdirSync(join(mnt, 'many')).length, 300);
      assert.equal(fs.statSync(mnt).mode & 0o7777, 0o750);
      assert.equal(fs.statSync(mnt).uid, 1234);
    });
  });

  it('mkdir, rm, mv, ln, chmod, chown, truncate: the kernel sees what coreutils make of a twin; e2fsck clean after each', () => {
    const image = mkfs('edit', ['-t', 'ext4', '-b', '1024']);
    const twin = freshDir('edit-twin');
    // Start both from the same tree.
    assertOk(runCli(['put', image, `${join(src, 'dir')}/.`, '/']), 'put');
    execFileSync('cp', ['-a', `${join(src, 'dir')}/.`, twin]);
    fs.rmSync(join(twin, 'lost+found'), { recursive: true, force: true });
    const steps: [string[], string, string[]][] = [
      [['mkdir', '-p', '/a/b/c'], 'mkdir', ['-p', 'a/b/c']],
      [['mkdir', '-m', '700', '/x', '/y'], 'mkdir', ['-m', '700', 'x', 'y']],
      [['mkdir', '-p', '-m', '1777', '/p/q'], 'mkdir', ['-p', '-m', '1777', 'p/q']],
      [['truncate', '-s', '1M', '/a/new-file'], 'truncate', ['-s', '1M', 'a/new-file']],
      [['truncate', '-s', '100', '/big.bin'], 'truncate', ['-s', '100', 'big.bin']],
      [['truncate', '-s', '+3K', '/medium.bin'], 'truncate', ['-s', '+3K', 'medium.bin']],
      [['chmod', '4711', '/a/new-file'], 'chmod', ['4711', 'a/new-file']],
      [['chmod', 'go-w,u+s', '/x'], 'chmod', ['go-w,u+s', 'x']],
      [['chmod', 'a=rX', '/medium.bin', '/y'], 'chmod', ['a=rX', 'medium.bin', 'y']],
      [['chown', '1000:100', '/a/new-file', '/a'], 'chown', ['1000:100', 'a/new-file', 'a']],
      [['chown', ':42', '/x'], 'chown', [':42', 'x']],
      [['chown', '--no-dereference', '5:6', '/link-up'], 'chown', ['--no-dereference', '5:6', 'link-up']],
      [['ln', '/medium.bin', '/a/b/hard'], 'ln', ['medium.bin', 'a/b/hard']],
      [['ln', '/big.bin', '/a'], 'ln', ['big.bin', 'a']],
      [['ln', '-s', '../medium.bin', '/a/soft'], 'ln', ['-s', '../medium.bin', 'a/soft']],
      [['ln', '-sf', 'elsewhere', '/a/soft'], 'ln', ['-sfn', 'elsewhere', 'a/soft']],
      [['mv', '/a/b/c', '/y'], 'mv', ['a/b/c', 'y']],
      [['mv', '/medium.bin', '/moved.bin'], 'mv', ['medium.bin', 'moved.bin']],
      [['mv', '/moved.bin', '/suid-link', '/p'], 'mv', ['moved.bin', 'suid-link', 'p']],
      [['mv', '/p/q', '/x/q2'], 'mv', ['p/q', 'x/q2']],
      [['rm', '/a/big.bin'], 'rm', ['a/big.bin']],
      [['rm', '-r', '/many', '/sub/deeper'], 'rm', ['-r', 'many', 'sub/deeper']],
      [['rm', '-rf', '/nope', '/link-up'], 'rm', ['-rf', 'nope', 'link-up']],
    ];
    for (const [args, tool, twinArgs] of steps) {
      const [command, ...rest] = args;
      const r = runCli([command ?? '', image, ...rest]);
      assertOk(r, args.join(' '));
      fsck(image, args.join(' '));
      execFileSync(tool, twinArgs, { cwd: twin, stdio: ['ignore', 'ignore', 'pipe'] });
    }
    withMount(image, false, (mnt) => {
      const skip = (k: string): boolean => k === '' || k.startsWith('lost+found');
      compareSnapshots(snapshot(mnt, { skip }), snapshot(twin, { skip }), ['type', 'mode', 'uid', 'gid', 'size', 'sha256', 'target', 'rdev', 'linkOf', 'xattrs'], 'kernel mount vs coreutils twin');
    });
  });

  it('chmod of a file or directory with an ACL updates the ACL as chmod(2) does', () => {
    const image = mkfs('acl-chmod', ['-t', 'ext4']);
    const twin = freshDir('acl-twin');
    assertOk(runCli(['put', image, join(src, 'small.txt'), join(src, 'dir', 'sub'), '/']), 'put');
    execFileSync('cp', ['-a', join(src, 'small.txt'), join(src, 'dir', 'sub'), twin]);
    assertOk(runCli(['chmod', image, '640', '/small.txt', '/sub']), 'chmod');
    execFileSync('chmod', ['640', 'small.txt', 'sub'], { cwd: twin });
    fsck(image, 'chmod with ACLs');
    withMount(image, false, (mnt) => {
      const skip = (k: string): boolean => k === '' || k.startsWith('lost+found');
      compareSnapshots(snapshot(mnt, { skip }), snapshot(twin, { skip }), ['type', 'mode', 'xattrs'], 'kernel mount vs coreutils twin');
    });
  });

  it('errors: one line "ext4ts: WHAT: reason", exit status 1, no stack trace; the rest is done and the image stays clean', () => {
    const image = mkfs('errors', ['-t', 'ext4']);
    assertOk(runCli(['mkdir', image, '/d']), 'mkdir');
    assertOk(runCli(['put', image, join(src, 'tiny'), '/d/file']), 'put');
    const missingSrc = runCli(['put', image, join(scratchDir(), 'no-such-file'), join(src, 'tiny'), '/d']);
    assertOneLineError(missingSrc, /^ext4ts: .*no-such-file: No such file or directory$/, 'put: missing source');
    // One at a time: each opens the image for writing.
    const notDir = runCli(['put', image, join(src, 'tiny'), join(src, 'empty'), '/d/file']);
    const noParent = runCli(['put', image, join(src, 'tiny'), '/nope/x']);
    const noDest = runCli(['put', image, join(src, 'tiny')]);
    assertOneLineError(notDir, /^ext4ts: \/d\/file: target is not a directory$/, 'put: several sources, DEST a file');
    assertOneLineError(noParent, /^ext4ts: \/nope\/x: No such file or directory$/, 'put: missing parent');
    assertOneLineError(noDest, /^ext4ts: put: missing DEST/, 'put: no DEST');
    const cases: [string[], RegExp, string][] = [
      [['rm', image, '/missing'], /^ext4ts: \/missing: No such file or directory$/, 'rm missing'],
      [['rm', image, '/d'], /^ext4ts: \/d: Is a directory/, 'rm a directory without -r'],
      [['rm', image, '/'], /^ext4ts: \/: refusing to remove the root directory$/, 'rm /'],
      [['mkdir', image, '/d'], /^ext4ts: \/d: File exists$/, 'mkdir existing'],
      [['mkdir', image, '/q/r'], /^ext4ts: \/q\/r: No such file or directory$/, 'mkdir without parent'],
      [['mv', image, '/missing', '/elsewhere'], /^ext4ts: \/missing: No such file or directory$/, 'mv missing'],
      [['ln', image, '/missing', '/l'], /^ext4ts: \/missing: No such file or directory$/, 'ln missing target'],
      [['ln', image, '/d', '/dlink'], /^ext4ts: \/dlink: .*(not allowed|not permitted)/i, 'hard link to a directory'],
      [['chmod', image, 'u+q', '/d'], /^ext4ts: .*"u\+q" is not a mode/, 'bad mode'],
      [['chmod', image, '755', '/missing'], /^ext4ts: \/missing: No such file or directory$/, 'chmod missing'],
      [['chown', image, 'root', '/d'], /^ext4ts: .*"root" is not UID\[:GID\]/, 'chown by name'],
      [['truncate', '-s', '1K', image, '/d'], /^ext4ts: \/d: Is a directory$/, 'truncate a directory'],
      [['truncate', '-s', 'lots', image, '/d/file'], /^ext4ts: .*"lots" is not a size/, 'bad size'],
      [['mkdir', join(scratchDir(), 'no-such.img'), '/x'], /^ext4ts: .*no-such\.img: No such file or directory$/, 'missing image'],
    ];
    for (const [args, pattern, what] of cases) assertOneLineError(runCli(args), pattern, what);
    // A failing PATH does not stop the others.
    const partial = runCli(['mkdir', image, '/d', '/e', '/f']);
    assertOneLineError(partial, /^ext4ts: \/d: File exists$/, 'mkdir: one of three fails');
    fsck(image, 'after the errors');
    withMount(image, false, (mnt) => {
      assert.deepEqual(fs.readdirSync(mnt).sort(), ['d', 'e', 'f', 'lost+found']);
      assert.deepEqual(fs.readdirSync(join(mnt, 'd')).sort(), ['file', 'tiny']);
    });
  });

  it('put out of space: stops with ENOSPC, removes the file it could not finish, the image stays clean and usable', () => {
    const image = mkfs('put-enospc', ['-t', 'ext4', '-b', '1024'], '4M');
    const dir = freshDir('put-enospc-src');
    const small = randomBytes(5, 3000);
    fs.writeFileSync(join(dir, 'a-small'), small);
    fs.writeFileSync(join(dir, 'big'), randomBytes(6, 8 << 20)); // twice the image
    fs.writeFileSync(join(dir, 'c-after'), small);
    const r = runCli(['put', image, dir, '/in']);
    assert.equal(r.status, 1, r.stderr);
    assert.deepEqual(
      r.stderr.split('\n').filter((l) => l !== ''),
      ['ext4ts: /in/big: no free blocks left on the filesystem', 'ext4ts: /in/big: the copy stops here'],
    );
    fsck(image, 'after ENOSPC');
    withMount(image, false, (mnt) => {
      // Copied before the failure; the failed file gone (not half-written); nothing after.
      assert.deepEqual(fs.readdirSync(join(mnt, 'in')).sort(), ['a-small']);
      assert.ok(fs.readFileSync(join(mnt, 'in', 'a-small')).equals(small));
    });
    // Its blocks were given back: the rest fits now.
    assertOk(runCli(['put', image, join(dir, 'c-after'), '/in']), 'put after ENOSPC');
    fsck(image, 'after the put that fits');
  });

  it('put shows a progress bar on a terminal; --help explains every write command', async () => {
    const image = mkfs('progress', ['-t', 'ext4']);
    const command = [process.execPath, '--import', 'tsx', join(REPO, 'src', 'cli', 'main.ts'), 'put', image, join(src, 'dir'), '/'].join(' ');
    const tty = execFileSync('script', ['-qec', command, '/dev/null'], { cwd: REPO, encoding: 'utf8' });
    assert.match(tty, /ext4ts put \|.*\| \d+% \| \d+\/\d+ entries/);
    fsck(image, 'after put with a progress bar');
    const commands = ['put', 'mkdir', 'rm', 'mv', 'ln', 'chmod', 'chown', 'truncate'];
    const helps = await Promise.all(commands.map((c) => runCliAsync([c, '--help'])));
    for (const [i, h] of helps.entries()) {
      assert.equal(h.status, 0, `${commands[i]} --help: ${h.stderr}`);
      const text = h.stdout.toString();
      assert.match(text, new RegExp(`^Usage: ext4ts ${commands[i]} `));
      assert.match(text, /Examples:/);
      for (const o of ['--cache-size', '--offset', '--no-checksums', '--stats']) assert.ok(text.includes(o), `${o} in ${commands[i]} --help`);
    }
  });
});
