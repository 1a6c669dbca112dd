/**
 * `ext4ts mount` / `ext4ts umount` end to end: read-only FUSE mounts compared with
 * read-only kernel loop mounts of the same images.
 *
 * - A matrix of images (a representative subset of fs-matrix.test.ts' variants, built
 *   the same way from helpers/tree.ts: mke2fs -d, then kernel writes) is walked through
 *   both mounts at once by the same function (helpers/mount.ts walkMounted, in two child
 *   processes: lstat with ns times, d_type, readlink, content digests, getfattr -d -m -)
 *   and compared path by path; the image's sha256 is the same before the ext4ts mount
 *   and after its umount, and the server holds the image open read-only.
 * - The things a user runs (ls, find, du, stat, cat, tar, cp -a, getfattr, getfacl,
 *   df) and 8 concurrent readers give the kernel mount's answers.
 * - Unmounting: busy (EBUSY, --lazy), SIGTERM, SIGKILL (the watchdog detaches the mount).
 * - Corruption on a metadata_csum image fails only the damaged file or directory.
 * - Mount errors: one line, exit 1, nothing left mounted or running.
 *
 * The suites run concurrently (each on its own mount points; the matrix two variants at
 * a time), which keeps the file's run time down on a small machine. The mounts are read
 * only from this process (the server is another, detached process) and from child
 * processes. Needs root, /dev/fuse, loop devices, e2fsprogs, attr, acl, GNU tar/coreutils.
 * FUSE_MOUNT_ONLY=ext2,ext4-1k limits the matrix; FUSE_MOUNT_VERBOSE=1 prints timings.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, closeSync, createReadStream, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import { debugfs, scratchDir } from './helpers/images.js';
import { bigDirName, kernelBigDir, kernelWrites, populate, randomBytes, writeSparse, type TreeOptions } from './helpers/tree.js';
import { withMount } from './helpers/kernel.js';
import { REPO, runChild, snapshot, type CliResult } from './helpers/cli.js';
import {
  alive,
  bigFileRanges,
  cleanupMounts,
  diffWalks,
  ext4ts,
  freshMountpoint,
  isMounted,
  loopMount,
  loopUnmount,
  mountAt,
  mountExt4ts,
  mountProcesses,
  pidFileExists,
  removeStalePidFile,
  report,
  umountExt4ts,
  waitUntil,
  walkMountedInChild,
  type Ext4tsMount,
  type WalkResult,
} from './helpers/mount.js';

const VERBOSE = process.env.FUSE_MOUNT_VERBOSE !== undefined;
const only = process.env.FUSE_MOUNT_ONLY?.split(',');

function log(line: string): void {
  if (VERBOSE) console.log(`# ${line}`);
}

let seq = 0;
/** A unique, registered mount point under the scratch directory. */
function mountpoint(name: string): string {
  return freshMountpoint(join(scratchDir(), 'mnt', `${name}-${process.pid}-${++seq}`));
}

function sh(cmd: string, args: readonly string[], okStatus: readonly number[] = [0]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.error !== undefined) throw new Error(`${cmd} not runnable: ${r.error.message}`);
  if (r.status === null || !okStatus.includes(r.status)) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** sha256 of a file, streamed (OpenSSL's sha256 is several times faster than sha256sum here). */
async function sha256Of(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Size, mtime and ctime of a file, in ns: any write(2) to it changes them. */
function fileTimes(path: string): string {
  const st = statSync(path, { bigint: true });
  return `size ${st.size} mtime ${st.mtimeNs} ctime ${st.ctimeNs}`;
}

type Run = CliResult;

/** Run a command as a child process (cwd given, LC_ALL=C, TZ=UTC) without blocking this one. */
function run(cmd: string, args: readonly string[], cwd: string, timeoutMs = 120_000): Promise<Run> {
  return runChild(cmd, args, cwd, { timeoutMs });
}

/** `sh -c SCRIPT` in `cwd`. */
function shell(script: string, cwd: string): Promise<Run> {
  return run('sh', ['-c', script], cwd);
}

/**
 * Exit status and stderr, the mount point replaced and the lines sorted, so the two
 * mounts' messages compare: tree walkers (getfattr -R, du, find) report in directory
 * order, and that order is not the same (see the readdir order note below).
 */
function normalized(r: Run, mnt: string): string {
  const lines = r.stderr.split(mnt).join('MNT').split('\n').filter((l) => l !== '');
  return `exit ${r.status}\n${lines.sort().join('\n')}`;
}

function readLink(path: string): string | undefined {
  const r = spawnSync('readlink', [path], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

// ------------------------------------------------------------------ images

interface Variant {
  readonly name: string;
  readonly size: string;
  readonly mkfsArgs: readonly string[];
  readonly tree: TreeOptions;
  readonly extents: boolean;
  /** Entries the kernel creates in /kw/htree. */
  readonly htreeEntries: number;
  /** The kernel sets xattr values larger than a block (ea_inode). */
  readonly largeXattrs?: boolean;
  /** Files the kernel creates in /bigdir. */
  readonly bigDirEntries?: number;
  /** e2fsck -fyD after the kernel writes (indexes every directory). */
  readonly indexDirs?: boolean;
  /** Also compare sha256 of the whole image before the mount and after the umount (else size and times). */
  readonly sha?: boolean;
}

/** Source trees shared between variants (one populate per distinct TreeOptions). */
const TREE_1K: TreeOptions = { blockSize: 1024, inodeSize: 256, tripleIndirect: true };
const TREE_4K_HUGE: TreeOptions = { blockSize: 4096, inodeSize: 256, tripleIndirect: true, hugeSparse: true };
const TREE_4K: TreeOptions = { blockSize: 4096, inodeSize: 256 };
const TREE_4K_128: TreeOptions = { blockSize: 4096, inodeSize: 128 };

/**
 * A subset of fs-matrix.test.ts' MATRIX, same recipes. Every tree has xattrs in the
 * inode and in blocks, ACLs, devices, fifos, a socket, symlinks of every length class,
 * hard links, holes, odd names and ns times; ext3 and ext4-4k hold a 5 GiB sparse file.
 */
const VARIANTS: readonly Variant[] = [
  { name: 'ext2', size: '160M', mkfsArgs: ['-t', 'ext2'], tree: TREE_1K, extents: false, htreeEntries: 300, sha: true },
  { name: 'ext3', size: '160M', mkfsArgs: ['-t', 'ext3'], tree: TREE_4K_HUGE, extents: false, htreeEntries: 1000, sha: true },
  { name: 'ext4-4k', size: '160M', mkfsArgs: ['-t', 'ext4'], tree: TREE_4K_HUGE, extents: true, htreeEntries: 1000, sha: true },
  { name: 'ext4-1k', size: '160M', mkfsArgs: ['-t', 'ext4', '-N', '8192'], tree: TREE_1K, extents: true, htreeEntries: 2000, sha: true },
  // ea_inode too: xattr values of 20 and 64 KiB through FUSE getxattr.
  { name: 'inline-data', size: '128M', mkfsArgs: ['-t', 'ext4', '-O', 'inline_data,ea_inode'], tree: TREE_4K, extents: true, htreeEntries: 500, largeXattrs: true },
  { name: 'bigalloc', size: '256M', mkfsArgs: ['-t', 'ext4', '-O', 'bigalloc', '-C', '16384'], tree: TREE_4K, extents: true, htreeEntries: 500 },
  { name: 'inode-128', size: '128M', mkfsArgs: ['-t', 'ext4'], tree: TREE_4K_128, extents: true, htreeEntries: 500 },
  { name: 'htree-30k', size: '256M', mkfsArgs: ['-t', 'ext4', '-N', '65536'], tree: TREE_4K, extents: true, htreeEntries: 0, bigDirEntries: 30000, indexDirs: true },
];

const sources = new Map<string, Promise<string>>();

function sourceTree(options: TreeOptions): Promise<string> {
  const key = JSON.stringify(options);
  let tree = sources.get(key);
  if (tree === undefined) {
    const dir = join(scratchDir(), `src-${sources.size}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    tree = populate(dir, options).then(() => dir);
    sources.set(key, tree);
  }
  return tree;
}

const images = new Map<string, Promise<string>>();

/** The variant's image (built once): mke2fs -d, kernel writes through a rw loop mount, e2fsck. */
function image(v: Variant): Promise<string> {
  let p = images.get(v.name);
  if (p === undefined) {
    p = (async () => {
      const src = await sourceTree(v.tree);
      const dir = join(scratchDir(), v.name);
      mkdirSync(dir, { recursive: true });
      const img = join(dir, 'image.img');
      sh('mke2fs', ['-q', '-F', '-b', String(v.tree.blockSize), '-I', String(v.tree.inodeSize), ...v.mkfsArgs, '-d', src, img, v.size]);
      withMount(img, join(scratchDir(), 'mnt', `${v.name}-rw`), { readOnly: false }, (mnt) => {
        kernelWrites(mnt, { extents: v.extents, htreeEntries: v.htreeEntries, largeXattrs: v.largeXattrs === true });
        if (v.bigDirEntries !== undefined) kernelBigDir(join(mnt, 'bigdir'), v.bigDirEntries, bigDirName);
      });
      if (v.indexDirs === true) sh('e2fsck', ['-fyD', img], [0, 1]);
      sh('e2fsck', ['-fn', img]);
      return img;
    })();
    images.set(v.name, p);
  }
  return p;
}

let small: string | undefined;

/** A small image for the unmount and error scenarios (built once). */
function smallImage(): string {
  if (small !== undefined) return small;
  const dir = join(scratchDir(), 'small');
  const img = join(dir, 'small.img');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'src', 'sub'), { recursive: true });
  writeFileSync(join(dir, 'src', 'file.txt'), 'hello from the small image\n');
  writeFileSync(join(dir, 'src', 'sub', 'data'), randomBytes(42, 300_000));
  writeFileSync(join(dir, 'src', 'owned'), 'owned by 1234:5678\n');
  chownSync(join(dir, 'src', 'owned'), 1234, 5678);
  sh('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', join(dir, 'src'), img, '16M']);
  small = img;
  return img;
}

// ------------------------------------------------------------------ checks shared by the suites

/** Assert that nothing of the ext4ts mount `m` remains: not mounted, no server, no watchdog, no pid file. */
async function assertGone(m: Ext4tsMount): Promise<void> {
  await waitUntil(() => !isMounted(m.mnt) && !alive(m.pid) && mountProcesses(m.mnt).length === 0, 10_000);
  assert.ok(!isMounted(m.mnt), `${m.mnt} is still mounted: ${JSON.stringify(mountAt(m.mnt))}`);
  assert.ok(!alive(m.pid), `the server (pid ${m.pid}) still runs`);
  assert.deepEqual(
    mountProcesses(m.mnt).map((p) => `${p.pid}: ${p.argv.join(' ')}`),
    [],
    'processes of the mount remain',
  );
  assert.ok(!pidFileExists(m.mnt), `the pid file of ${m.mnt} was not removed`);
}

/** The open-file flags (octal, from /proc/PID/fdinfo) of every fd of `pid` open on `path`. */
function openFlags(pid: number, path: string): string[] {
  const out: string[] = [];
  const r = spawnSync('ls', [`/proc/${pid}/fd`], { encoding: 'utf8' });
  for (const fd of r.stdout.split('\n').filter((x) => x !== '')) {
    if (readLink(`/proc/${pid}/fd/${fd}`) !== path) continue;
    const m = /^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
    out.push(m?.[1] ?? '?');
  }
  return out;
}

/** Files read whole through the mount, as a user would (atimes would change on a read-write mount). */
const ATIME_READS = ['small.txt', 'tiny-inline', 'medium-inline', 'one-block', 'random-1m', 'holes/hole-middle', 'hard/a', 'xattr/many', 'kw/written', 'kw/appended'];

// ------------------------------------------------------------------ the matrix

interface VariantResult {
  readonly kernel: WalkResult;
  readonly ours: WalkResult;
  readonly liveRoot: string;
  /** Access flags of the server's fds on the image (octal). */
  readonly imageFlags: readonly string[];
  /** sha256 (or size and times) of the image before the ext4ts mount and after its umount. */
  readonly before: string;
  readonly after: string;
  readonly umount: { readonly status: number | null; readonly stderr: string };
  /** The server still ran when umount returned. */
  readonly serverAliveAfterUmount: boolean;
  readonly mount: Ext4tsMount;
}

/**
 * One variant, end to end: build the image, fingerprint it, mount it read-only through
 * the kernel and through ext4ts, walk both at once (two child processes), read more
 * through ext4ts, unmount both, fingerprint it again.
 */
async function runVariant(v: Variant): Promise<VariantResult> {
  let tl = Date.now();
  const lap = (what: string): void => {
    log(`${v.name}: ${what}: ${Date.now() - tl} ms`);
    tl = Date.now();
  };
  const img = await image(v);
  lap('image');
  const fingerprint = async (): Promise<string> => `${fileTimes(img)}${v.sha === true ? ` sha256 ${await sha256Of(img)}` : ''}`;
  const beforeMount = await fingerprint();
  const kmnt = mountpoint(`${v.name}-kernel`);
  loopMount(img, kmnt);
  try {
    const mnt = mountpoint(`${v.name}-ext4ts`);
    const m = await mountExt4ts(img, mnt);
    lap('mounts');
    let umount: VariantResult['umount'] | undefined;
    try {
      // Live as soon as mount returned: a child process sees the root (inode 2).
      const liveRoot = (await run('stat', ['-c', '%i %F', mnt], '/')).stdout.toString().trim();
      const imageFlags = openFlags(m.pid, img);
      const [kernel, ours] = await Promise.all([walkMountedInChild(kmnt), walkMountedInChild(mnt, bigFileRanges(kmnt))]);
      lap(`walks (${kernel.records.size} paths)`);
      await shell(`cat ${ATIME_READS.join(' ')} > /dev/null 2>&1; ls -laR > /dev/null; find . -type f -newer small.txt > /dev/null`, mnt);
      umount = await umountExt4ts(mnt);
      const serverAliveAfterUmount = alive(m.pid);
      lap('umount');
      const afterUmount = await fingerprint();
      return { kernel, ours, liveRoot, imageFlags, before: beforeMount, after: afterUmount, umount, serverAliveAfterUmount, mount: m };
    } finally {
      if (umount === undefined) await umountExt4ts(mnt);
    }
  } finally {
    loopUnmount(kmnt);
  }
}

const MATRIX = VARIANTS.filter((x) => only === undefined || only.includes(x.name));
/** Variants in flight at a time: one builds its image in this process while the other's walkers run. */
const PIPELINES = 2;
let results: Map<string, Promise<VariantResult>> | undefined;

function startMatrix(): Map<string, Promise<VariantResult>> {
  if (results !== undefined) return results;
  const map = new Map<string, Promise<VariantResult>>();
  const slots: Promise<unknown>[] = Array.from({ length: PIPELINES }, () => Promise.resolve());
  MATRIX.forEach((v, i) => {
    const slot = i % PIPELINES;
    const p = (slots[slot] as Promise<unknown>).then(() => runVariant(v));
    slots[slot] = p.catch(() => undefined);
    p.catch(() => undefined); // reported by the variant's before hook
    map.set(v.name, p);
  });
  results = map;
  return map;
}

/** getfattr -d -m - of every path, in name order (getfattr -R would go in directory order). */
const GETFATTR_ALL = 'find . -print0 | sort -z | xargs -0 getfattr -h -d -m - -e hex';

after(() => {
  const leftovers = cleanupMounts();
  if (leftovers.length > 0) console.log(`# cleaned up after the tests:\n# ${leftovers.join('\n# ')}`);
});

describe('ext4ts mount (FUSE), compared with kernel mounts', { concurrency: true }, () => {
  for (const v of MATRIX) {
    describe(`matrix: ${v.name} (mke2fs ${v.mkfsArgs.join(' ')}, ${v.tree.blockSize}-byte blocks, ${v.tree.inodeSize}-byte inodes)`, () => {
      let r: VariantResult | undefined;
      const result = (): VariantResult => {
        if (r === undefined) throw new Error('no result (see the before hook)');
        return r;
      };

      before(async () => {
        r = await startMatrix().get(v.name);
      });

      it('returns once the mount is live; the server has the image open read-only', () => {
        assert.equal(result().liveRoot, '2 directory');
        const flags = result().imageFlags;
        assert.ok(flags.length > 0, 'the server has no fd on the image');
        for (const f of flags) assert.equal(parseInt(f, 8) & 3, 0, `the server has the image open with flags ${f} (not O_RDONLY)`);
      });

      it('every path reads the same as through the kernel mount (lstat with ns times, links, content, readlink, getfattr)', () => {
        const { kernel, ours } = result();
        assert.ok(kernel.records.size > 100, `the kernel walk saw only ${kernel.records.size} paths`);
        if (v.bigDirEntries !== undefined) assert.ok(kernel.records.size > v.bigDirEntries);
        const diffs = diffWalks(kernel.records, ours.records);
        assert.equal(diffs.length, 0, report(`${v.name}: kernel mount vs ext4ts mount`, diffs));
      });

      it('the comparison covers what the tree holds (links, xattrs, ACLs, devices, ns times, birth times, big sparse files)', () => {
        const { ours } = result();
        const rec = (path: string) => {
          const x = ours.records.get(path);
          assert.ok(x !== undefined, `the ext4ts walk has no ${path}`);
          assert.equal(x.error, undefined, `${path}: ${x.error}`);
          return x;
        };
        assert.equal(rec('/hard/a').nlink, 3);
        assert.equal(rec('/hard/a').ino, rec('/hard/sub/c').ino);
        assert.deepEqual(Object.keys(rec('/xattr/many').xattrs), Array.from({ length: 15 }, (_, i) => `user.k${String(i).padStart(2, '0')}`));
        assert.deepEqual(Object.keys(rec('/xattr/namespaces').xattrs), ['security.s', 'trusted.t', 'user.u']);
        assert.ok('system.posix_acl_access' in rec('/acl/file').xattrs);
        assert.ok('system.posix_acl_default' in rec('/acl/dir-default').xattrs);
        assert.ok('trusted.link' in rec('/xattr/symlink-with-xattr').xattrs);
        assert.equal(rec('/special/big-char').rdev.split(' ')[0], '300:70000');
        assert.equal(rec('/special/big-block').rdev.split(' ')[0], '4095:1048575');
        assert.deepEqual(['/special/fifo', '/special/socket', '/links/very-long'].map((p) => rec(p).kind), ['fifo', 'socket', 'symlink']);
        // (mke2fs -d keeps whole seconds; the kernel wrote /kw's nanoseconds, which 128-byte inodes cannot hold.)
        assert.equal(rec('/kw/time-ns').mtime, v.tree.inodeSize === 128 ? '1700000001.000000000' : '1700000001.999999999');
        if (v.tree.inodeSize > 128) assert.equal(rec('/kw/time-2038').mtime, '2147483648.000000001');
        assert.equal(rec('/small.txt').birthtime === null, v.tree.inodeSize === 128, 'birth time present exactly with large inodes');
        assert.match(rec('/random-5m').content ?? '', /^chunked-sha256:/);
        if (v.htreeEntries > 0) assert.equal(rec('/kw/htree').kind, 'directory');
        if (v.bigDirEntries !== undefined) assert.equal(rec('/bigdir').nlink, 2);
        if (v.tree.hugeSparse === true) {
          assert.equal(rec('/holes/huge-5g').size, 5 * 1024 ** 3);
          assert.ok(ours.ranges.has('/holes/huge-5g'), 'the 5 GiB file was not read by its data ranges');
        }
        if (v.largeXattrs === true) assert.equal(rec('/kw/ea-1').xattrs['user.max']?.length, 2 * 65536);
      });

      it(`umount succeeds, waits for the server, leaves nothing behind; the image is unchanged (${v.sha === true ? 'sha256, ' : ''}size, mtime, ctime)`, async () => {
        const { umount, mount, serverAliveAfterUmount } = result();
        assert.equal(umount.status, 0, umount.stderr);
        assert.equal(umount.stderr, '');
        assert.ok(!serverAliveAfterUmount, 'umount returned before the server exited');
        await assertGone(mount);
        assert.equal(result().after, result().before, 'the read-only mount changed the image');
      });
    });
  }

  // ---------------------------------------------------------------- both mounts at once: users and concurrency

  /*
   * Readdir order: the kernel lists the directories of a dir_index filesystem in hash
   * order, even the linear (unindexed) single-block and inline ones (ext4's is_dx_dir);
   * ext4ts lists linear directories in on-disk order. Both are valid (POSIX leaves the
   * order open), so outputs that follow directory order are sorted before comparing.
   */
  describe('what users run, on the inline-data image, compared with the kernel mount', () => {
    const v = VARIANTS.find((x) => x.name === 'inline-data') as Variant;
    let kmnt = '';
    let m: Ext4tsMount | undefined;
    const emnt = (): string => {
      if (m === undefined) throw new Error('not mounted (see the before hook)');
      return m.mnt;
    };

    before(async () => {
      const img = await image(v);
      // Both mount points in the same directory: ".." of either root is the same directory.
      kmnt = mountpoint('users-kernel');
      loopMount(img, kmnt);
      m = await mountExt4ts(img, mountpoint('users-ext4ts'));
    });

    after(async () => {
      if (m !== undefined) {
        const r = await umountExt4ts(m.mnt);
        assert.equal(r.status, 0, r.stderr);
      }
      if (kmnt !== '') loopUnmount(kmnt);
    });

    /** Run the same command in both mounts; their outputs and exit status must be equal. */
    async function same(script: string): Promise<Run> {
      const [k, o] = await Promise.all([shell(script, kmnt), shell(script, emnt())]);
      assert.equal(normalized(o, emnt()), normalized(k, kmnt), `${script}: exit status / stderr`);
      if (!o.stdout.equals(k.stdout)) {
        const kl = k.stdout.toString('latin1').split('\n');
        const ol = o.stdout.toString('latin1').split('\n');
        const diffs: string[] = [];
        for (let i = 0; i < Math.max(kl.length, ol.length); i++) if (kl[i] !== ol[i]) diffs.push(`line ${i + 1}: kernel ${JSON.stringify(kl[i])}, ext4ts ${JSON.stringify(ol[i])}`);
        assert.fail(report(`${script}: output differs`, diffs, 20));
      }
      return o;
    }

    // First, while the mount's page cache is cold: the reads reach the server.
    it('8 concurrent readers (the same and different files, find, ls -lR, getfattr) get what the kernel mount gives', async () => {
      const files = 'random-5m random-1m holes/hole-middle holes/many-extents kw/written kw/appended one-block medium-inline tiny-inline hard/sparse';
      const reversed = files.split(' ').reverse().join(' ');
      const scripts = [
        `sha256sum ${files}`,
        `sha256sum ${files}`,
        `sha256sum ${reversed}`,
        'for i in 1 2 3; do cat random-5m holes/many-extents; done | sha256sum',
        "find . -printf '%p %i %s %n %T@\\n' | sort | sha256sum",
        'ls -lR --time-style=full-iso | sha256sum',
        `${GETFATTR_ALL} | sha256sum`,
        'sha256sum kw/htree/* | sha256sum; sha256sum deep/sibling-* names/* | sha256sum',
      ];
      const t0 = Date.now();
      const ext = await Promise.all(scripts.map((s) => shell(s, emnt())));
      log(`8 concurrent readers: ${Date.now() - t0} ms`);
      const ker = await Promise.all(scripts.map((s) => shell(s, kmnt)));
      scripts.forEach((s, i) => {
        const o = ext[i] as Run;
        const k = ker[i] as Run;
        assert.equal(normalized(o, emnt()), normalized(k, kmnt), s);
        assert.equal(o.stdout.toString(), k.stdout.toString(), s);
      });
      assert.ok(alive((m as Ext4tsMount).pid), 'the server died under concurrent readers');
    });

    it('ls -la and ls -laR (full-iso times)', async () => {
      await same('ls -la --time-style=full-iso');
      const r = await same('ls -laR --time-style=full-iso');
      assert.ok(r.stdout.length > 10_000);
    });

    it('find -printf with inode, mode, links, owner, size, blocks, ns times, type and link target', async () => {
      const r = await same("find . -printf '%p\\t%y\\t%Y\\t%i\\t%m\\t%n\\t%U\\t%G\\t%s\\t%b\\t%A@\\t%T@\\t%C@\\t%l\\n' | sort");
      assert.ok(r.stdout.toString().split('\n').length > 500);
    });

    it('du -s, du -s --apparent-size, du -sb, du per file and directory', async () => {
      // Per path with -l: without it du counts a multiply-linked file at the first of its
      // names it meets, which depends on the directory order (see the readdir order note).
      await same('du -s .; du -s --apparent-size .; du -sb .; du -alb . | sort -k2; du -al . | sort -k2');
    });

    it('stat(1) of files, directories, links, devices, fifos, sockets (device number aside)', async () => {
      const paths =
        '. small.txt empty tiny-inline medium-inline random-5m zeros holes/hole-middle holes/all-hole hard/a hard/b hard/sub/c links/short links/very-long links/dangling special/fifo special/null special/loop0 special/big-char special/big-block special/socket modes/all-bits modes/sticky owners/u-large times/y2038 times/pre-1970 times/y2400 kw/written kw/htree kw/ea-1 acl/file xattr/many lost+found';
      await same(`stat -c '%n|%i|%f|%A|%h|%u|%g|%s|%b|%B|%o|%t|%T|%x|%y|%z|%w|%F|%N' ${paths}`);
      await same("stat -L -c '%n|%i|%F|%s' links/short links/to-dir links/through-link 2>&1; stat links/loop-a/x 2>&1; true");
    });

    it('cat of inline, small, large, sparse and unwritten-extent files, and its errors', async () => {
      const r = await same(
        'cat tiny-inline medium-inline small.txt one-block block-plus-one random-1m random-5m zeros holes/hole-start holes/hole-middle holes/unaligned-pieces holes/many-extents kw/written kw/appended kw/truncated kw/unwritten kw/unwritten-partly kw/sparse-kernel',
      );
      assert.ok(r.stdout.length > 15 * 1024 * 1024);
      await same('cat nonexistent; cat deep; cat links/dangling; cat links/loop-a; true');
    });

    it('getfattr -d -m - of every path (user.*, trusted.*, security.*, ACLs, 64 KiB values) and getfacl', async () => {
      const r = await same(GETFATTR_ALL);
      assert.match(r.stdout.toString(), /system\.posix_acl_default/);
      assert.match(r.stdout.toString(), /trusted\.t=/);
      assert.match(r.stdout.toString(), /user\.max=0x[0-9a-f]{131072}\n/);
      await same('find . ! -type l -print0 | sort -z | xargs -0 getfacl -n');
    });

    it('tar c: the same archive (sorted, xattrs and ACLs, deterministic pax headers) and the same tar tv listing', async () => {
      const tar = "tar --sort=name --numeric-owner --format=posix --xattrs --xattrs-include='*' --acls --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -cf - .";
      const r = await same(`${tar} | sha256sum`);
      assert.match(r.stdout.toString(), /^[0-9a-f]{64}/);
      await same(`${tar} | tar -tvf - --full-time --numeric-owner`);
    });

    it('cp -a out of both mounts: the copies are the same trees (modes, owners, ns times, links, xattrs, contents)', async () => {
      const out = join(scratchDir(), `cp-${process.pid}`);
      rmSync(out, { recursive: true, force: true });
      mkdirSync(join(out, 'kernel'), { recursive: true });
      mkdirSync(join(out, 'ext4ts'), { recursive: true });
      try {
        const [k, o] = await Promise.all([run('cp', ['-a', '.', join(out, 'kernel')], kmnt), run('cp', ['-a', '.', join(out, 'ext4ts')], emnt())]);
        assert.equal(normalized(o, emnt()), normalized(k, kmnt));
        const ks = snapshot(join(out, 'kernel'));
        const os = snapshot(join(out, 'ext4ts'));
        assert.ok(ks.size > 500);
        const diffs: string[] = [];
        for (const key of new Set([...ks.keys(), ...os.keys()])) {
          const a = JSON.stringify(ks.get(key));
          const b = JSON.stringify(os.get(key));
          if (a !== b) diffs.push(`${JSON.stringify(key)}: kernel copy ${a}, ext4ts copy ${b}`);
        }
        assert.equal(diffs.length, 0, report('cp -a copies', diffs, 20));
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    });

    it('stat -f and df: size, free, available, inodes, block sizes equal to the kernel statfs', async () => {
      const fmt = "stat -f -c 'blocks=%b free=%f avail=%a files=%c ffree=%d bsize=%s frsize=%S namelen=%l' .";
      const [k, o] = await Promise.all([shell(fmt, kmnt), shell(fmt, emnt())]);
      assert.equal(o.stdout.toString(), k.stdout.toString(), 'stat -f: kernel statfs vs ext4ts statfs');
      await same('df -k --output=size,used,avail,pcent,itotal,iused,iavail,ipcent . | tail -n 1');
    });
  });

  // ---------------------------------------------------------------- unmounting

  describe('umount: busy mounts, --lazy, signals, a killed server', { concurrency: true }, () => {
    it('a busy mount (open file, cwd inside): umount fails with one EBUSY line, --lazy detaches, the server exits when the users are gone', async () => {
      const m = await mountExt4ts(smallImage(), mountpoint('busy'));
      const holder = spawn('sh', ['-c', 'exec 3< file.txt; cd sub && exec sleep 60 3<&3'], { cwd: m.mnt, stdio: 'ignore' });
      const cwdUser = spawn('sleep', ['60'], { cwd: join(m.mnt, 'sub'), stdio: 'ignore' });
      try {
        assert.ok(await waitUntil(() => holder.pid !== undefined && readLink(`/proc/${holder.pid}/cwd`) === join(m.mnt, 'sub'), 10_000), 'the holder did not start');
        const busy = await umountExt4ts(m.mnt);
        assert.equal(busy.status, 1);
        assert.match(busy.stderr, /^ext4ts: [^\n]*busy[^\n]*\n$/i, `one line: ${busy.stderr}`);
        assert.ok(busy.stderr.includes(m.mnt), busy.stderr);
        assert.ok(isMounted(m.mnt) && alive(m.pid), 'a failed umount must leave the mount alone');

        const lazy = umountExt4ts(m.mnt, true);
        // Detached at once, while the server goes on serving the processes still inside.
        assert.ok(await waitUntil(() => !isMounted(m.mnt), 10_000), 'umount --lazy did not detach the mount');
        assert.ok(alive(m.pid), 'the server exited while the mount was still in use');
        const cat = spawnSync('cat', [`/proc/${holder.pid}/fd/3`], { encoding: 'utf8' });
        assert.equal(cat.stdout, 'hello from the small image\n', 'an open file still reads after the lazy unmount');
        holder.kill('SIGKILL');
        cwdUser.kill('SIGKILL');
        const r = await lazy;
        assert.equal(r.status, 0, r.stderr);
        await assertGone(m);
      } finally {
        holder.kill('SIGKILL');
        cwdUser.kill('SIGKILL');
      }
    });

    it('SIGTERM to the server unmounts cleanly and it exits', async () => {
      const m = await mountExt4ts(smallImage(), mountpoint('sigterm'));
      assert.equal(readFileSync(join(m.mnt, 'file.txt'), 'utf8'), 'hello from the small image\n');
      process.kill(m.pid, 'SIGTERM');
      assert.ok(await waitUntil(() => !isMounted(m.mnt) && !alive(m.pid), 10_000), 'SIGTERM did not unmount and stop the server');
      await assertGone(m);
    });

    it('SIGTERM while busy: the mount is detached lazily, the server exits after the user leaves', async () => {
      const m = await mountExt4ts(smallImage(), mountpoint('sigterm-busy'));
      const user = spawn('sleep', ['60'], { cwd: join(m.mnt, 'sub'), stdio: 'ignore' });
      try {
        assert.ok(await waitUntil(() => user.pid !== undefined && readLink(`/proc/${user.pid}/cwd`) === join(m.mnt, 'sub'), 10_000));
        process.kill(m.pid, 'SIGTERM');
        assert.ok(await waitUntil(() => !isMounted(m.mnt), 10_000), 'SIGTERM did not detach a busy mount');
        user.kill('SIGKILL');
        assert.ok(await waitUntil(() => !alive(m.pid), 10_000), 'the server did not exit after the user left');
        await assertGone(m);
      } finally {
        user.kill('SIGKILL');
      }
    });

    it('SIGKILL to the server leaves no dead mount behind (the watchdog detaches it within seconds)', async () => {
      const m = await mountExt4ts(smallImage(), mountpoint('sigkill'));
      process.kill(m.pid, 'SIGKILL');
      const t0 = Date.now();
      assert.ok(await waitUntil(() => !isMounted(m.mnt), 10_000), `${m.mnt} is still mounted 10 s after the server was killed`);
      log(`SIGKILL: detached after ${Date.now() - t0} ms`);
      assert.ok(await waitUntil(() => mountProcesses(m.mnt).length === 0, 10_000), 'the watchdog did not exit');
      // The mount point is an ordinary empty directory again (no "Transport endpoint is not connected").
      const ls = spawnSync('ls', ['-A', m.mnt], { encoding: 'utf8' });
      assert.equal(`${ls.status} ${ls.stdout}${ls.stderr}`, '0 ');
      // A killed server cannot remove its pid file, and the watchdog leaves it: remove the stale file.
      if (pidFileExists(m.mnt) && !alive(m.pid)) removeStalePidFile(m.mnt);
    });

    it('umount of something that is not an ext4ts mount: refused, nothing unmounted', async () => {
      const plain = mountpoint('not-mounted');
      const r = await umountExt4ts(plain);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /^ext4ts: [^\n]*not mounted\n$/);
      const k = mountpoint('kernel-mounted');
      loopMount(smallImage(), k);
      try {
        const r2 = await umountExt4ts(k);
        assert.equal(r2.status, 1);
        assert.match(r2.stderr, /^ext4ts: [^\n]*not an ext4ts mount[^\n]*\n$/);
        assert.ok(isMounted(k), 'ext4ts umount unmounted a kernel mount');
      } finally {
        loopUnmount(k);
      }
    });
  });

  // ---------------------------------------------------------------- corruption

  describe('a corrupted file or directory fails alone (metadata_csum image)', () => {
    let m: Ext4tsMount | undefined;
    const mnt = (): string => {
      if (m === undefined) throw new Error('not mounted (see the before hook)');
      return m.mnt;
    };

    before(async () => {
      const dir = join(scratchDir(), 'corrupt');
      rmSync(dir, { recursive: true, force: true });
      const src = join(dir, 'src');
      mkdirSync(join(src, 'bad-dir'), { recursive: true });
      mkdirSync(join(src, 'good-dir'), { recursive: true });
      writeFileSync(join(src, 'good.txt'), 'still fine\n');
      writeFileSync(join(src, 'bad-inode.txt'), 'the inode of this file gets damaged\n');
      // 1024 extents: an extent tree of depth 1, whose first leaf block gets damaged.
      const pieces: [number, Uint8Array][] = [];
      for (let off = 0; off < 8 * 1024 * 1024; off += 8192) pieces.push([off, randomBytes(off + 1, 4096)]);
      writeSparse(join(src, 'bad-extents'), 8 * 1024 * 1024, pieces);
      writeFileSync(join(src, 'good-big'), randomBytes(77, 2 * 1024 * 1024));
      // Enough entries for more than one directory block.
      for (let i = 0; i < 300; i++) writeFileSync(join(src, 'bad-dir', `entry-${i}-${'x'.repeat(20)}`), `${i}`);
      for (let i = 0; i < 50; i++) writeFileSync(join(src, 'good-dir', `entry-${i}`), `${i}`);
      const img = join(dir, 'corrupt.img');
      sh('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-O', 'metadata_csum', '-d', src, img, '64M']);

      const flip = (offset: number, count = 4): void => {
        const fd = openSync(img, 'r+');
        try {
          const b = Buffer.alloc(count);
          readSync(fd, b, 0, count, offset);
          for (let i = 0; i < count; i++) b[i] = (b[i] ?? 0) ^ 0x5a;
          writeSync(fd, b, 0, count, offset);
        } finally {
          closeSync(fd);
        }
      };
      // The inode: its i_mtime (offset 0x10), so that only the checksum tells.
      const imap = /located at block (\d+), offset (0x[0-9a-f]+)/.exec(debugfs(img, 'imap /bad-inode.txt'));
      assert.ok(imap !== null, 'debugfs imap');
      flip(Number(imap[1]) * 4096 + Number(imap[2]) + 0x10);
      // An extent leaf block (the level-0 index entry names it): an entry in its middle.
      const leaf = /^\s*0\/\s*1\s+\d+\/\s*\d+\s+\d+\s*-\s*\d+\s+(\d+)/m.exec(debugfs(img, 'ex /bad-extents'));
      assert.ok(leaf !== null, `debugfs ex: ${debugfs(img, 'ex /bad-extents')}`);
      flip(Number(leaf[1]) * 4096 + 12 * 100 + 4);
      // The directory's first block: inside an entry's name.
      const blocks = debugfs(img, 'blocks /bad-dir').trim().split(/\s+/).map(Number);
      assert.ok(blocks.length >= 2 && (blocks[0] ?? 0) > 0, `bad-dir blocks: ${blocks.join(' ')}`);
      flip((blocks[0] ?? 0) * 4096 + 100);
      m = await mountExt4ts(img, mountpoint('corrupt'));
    });

    after(async () => {
      if (m !== undefined) await umountExt4ts(m.mnt);
    });

    const structureError = /Structure needs cleaning|Input\/output error|Bad message/;

    it('cat of a file with a damaged inode fails (EUCLEAN/EIO); the directory holding it lists', async () => {
      const bad = await run('cat', ['bad-inode.txt'], mnt());
      assert.notEqual(bad.status, 0);
      assert.match(bad.stderr, structureError);
      const good = await run('cat', ['good.txt'], mnt());
      assert.equal(good.stdout.toString(), 'still fine\n');
      const ls = await run('ls', ['-1'], mnt());
      assert.equal(ls.stdout.toString(), 'bad-dir\nbad-extents\nbad-inode.txt\ngood-big\ngood-dir\ngood.txt\nlost+found\n', `ls of the parent: ${ls.stderr}`);
    });

    it('cat of a file with a damaged extent block fails; stat of it works; other files read', async () => {
      const bad = await run('cat', ['bad-extents'], mnt());
      assert.notEqual(bad.status, 0);
      assert.match(bad.stderr, structureError);
      const st = await run('stat', ['-c', '%s', 'bad-extents'], mnt());
      assert.equal(st.stdout.toString(), `${8 * 1024 * 1024}\n`);
      const good = await run('sha256sum', ['good-big'], mnt());
      assert.equal(good.stdout.toString().split(' ')[0], createHash('sha256').update(randomBytes(77, 2 * 1024 * 1024)).digest('hex'));
    });

    it('a damaged directory fails to list; other directories list', async () => {
      const bad = await run('ls', ['bad-dir'], mnt());
      assert.notEqual(bad.status, 0);
      assert.match(bad.stderr, structureError);
      const good = await run('ls', ['good-dir'], mnt());
      assert.equal(good.status, 0, good.stderr);
      assert.equal(good.stdout.toString().trim().split('\n').length, 50);
    });

    it('the server is still alive and serving after the errors', async () => {
      assert.ok(m !== undefined && alive(m.pid) && isMounted(m.mnt));
      const r = await run('find', ['.', '-name', 'entry-4*'], mnt());
      assert.match(r.stdout.toString(), /good-dir\/entry-4\b/);
      assert.equal((await run('cat', ['good.txt'], mnt())).stdout.toString(), 'still fine\n');
    });

    it('-o no_checksums: the file whose inode only fails its checksum reads', async () => {
      assert.ok(m !== undefined);
      const m2 = await mountExt4ts(m.image, mountpoint('corrupt-nocsum'), ['no_checksums']);
      try {
        const r = await run('cat', ['bad-inode.txt'], m2.mnt);
        assert.equal(r.stdout.toString(), 'the inode of this file gets damaged\n', r.stderr);
      } finally {
        const u = await umountExt4ts(m2.mnt);
        assert.equal(u.status, 0, u.stderr);
      }
    });
  });

  // ---------------------------------------------------------------- options and the foreground

  describe('mount options and -f', { concurrency: true }, () => {
    const dataSha = (): string => createHash('sha256').update(randomBytes(42, 300_000)).digest('hex');

    it('-f serves in the foreground until unmounted; -o debug traces the requests on stderr', async () => {
      const mnt = mountpoint('foreground');
      const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'src', 'cli', 'main.ts'), 'mount', '-f', '-o', 'ro,debug', smallImage(), mnt], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
      const err: Buffer[] = [];
      child.stderr.on('data', (b: Buffer) => err.push(b));
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      try {
        assert.ok(await waitUntil(() => isMounted(mnt), 30_000), 'the foreground mount did not come up');
        assert.equal((await run('cat', ['file.txt'], mnt)).stdout.toString(), 'hello from the small image\n');
        const u = await umountExt4ts(mnt);
        assert.equal(u.status, 0, u.stderr);
        assert.equal(await exited, 0, Buffer.concat(err).toString());
        assert.match(Buffer.concat(err).toString(), /LOOKUP/, 'no request trace on stderr');
      } finally {
        child.kill('SIGKILL');
      }
    });

    it('-f: Ctrl-C (SIGINT) unmounts and exits', async () => {
      const mnt = mountpoint('foreground-int');
      const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'src', 'cli', 'main.ts'), 'mount', '-f', '-o', 'ro', smallImage(), mnt], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
      const err: Buffer[] = [];
      child.stderr.on('data', (b: Buffer) => err.push(b));
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      try {
        assert.ok(await waitUntil(() => isMounted(mnt), 30_000), 'the foreground mount did not come up');
        child.kill('SIGINT');
        assert.equal(await exited, 0, Buffer.concat(err).toString());
        assert.ok(!isMounted(mnt), 'still mounted after SIGINT');
        assert.ok(await waitUntil(() => mountProcesses(mnt).length === 0, 10_000), 'processes left after SIGINT');
      } finally {
        child.kill('SIGKILL');
      }
    });

    it('-o offset=: a filesystem 1 MiB into a file', async () => {
      const embedded = join(scratchDir(), 'embedded.img');
      writeFileSync(embedded, Buffer.concat([randomBytes(5, 1024 * 1024), readFileSync(smallImage())]));
      const m = await mountExt4ts(embedded, mountpoint('offset'), ['offset=1M']);
      try {
        assert.equal((await run('cat', ['file.txt'], m.mnt)).stdout.toString(), 'hello from the small image\n');
        assert.equal((await run('sha256sum', ['sub/data'], m.mnt)).stdout.toString().split(' ')[0], dataSha());
      } finally {
        assert.equal((await umountExt4ts(m.mnt)).status, 0);
      }
    });

    it('-o fakeroot,attr_timeout=0,entry_timeout=0,max_read=128K,cache_size=1M: owners are the mounter, data the same', async () => {
      const m = await mountExt4ts(smallImage(), mountpoint('options'), ['fakeroot,attr_timeout=0,entry_timeout=0', 'max_read=128K,cache_size=1M']);
      try {
        assert.match(mountAt(m.mnt)?.options ?? '', /\bro\b/);
        const st = await run('stat', ['-c', '%n %u %g', 'owned', 'file.txt', '.'], m.mnt);
        assert.equal(st.stdout.toString(), 'owned 0 0\nfile.txt 0 0\n. 0 0\n');
        assert.equal((await run('sha256sum', ['sub/data'], m.mnt)).stdout.toString().split(' ')[0], dataSha());
        const plain = mountpoint('options-kernel');
        loopMount(smallImage(), plain);
        try {
          assert.equal((await run('stat', ['-c', '%u %g', 'owned'], plain)).stdout.toString(), '1234 5678\n');
        } finally {
          loopUnmount(plain);
        }
      } finally {
        assert.equal((await umountExt4ts(m.mnt)).status, 0);
      }
    });
  });

  // ---------------------------------------------------------------- mount errors

  describe('mount errors: one line, exit 1, nothing left mounted or running', { concurrency: true }, () => {
    async function failing(args: string[], mnt: string, message: RegExp): Promise<string> {
      const r = await ext4ts(['mount', ...args]);
      assert.equal(r.status, 1, `ext4ts mount ${args.join(' ')}: exit ${r.status}, ${r.stderr}`);
      assert.equal(r.stdout.length, 0);
      assert.match(r.stderr, /^ext4ts: [^\n]+\n$/, `one line: ${JSON.stringify(r.stderr)}`);
      assert.match(r.stderr, message);
      assert.ok(!isMounted(mnt), `${mnt} is mounted after a failed mount`);
      assert.ok(await waitUntil(() => mountProcesses(mnt).length === 0, 5000), `processes left: ${JSON.stringify(mountProcesses(mnt))}`);
      return r.stderr;
    }

    it('a file that is not an ext2/3/4 image', async () => {
      const notImage = join(scratchDir(), 'not-an-image.bin');
      writeFileSync(notImage, randomBytes(9, 4 * 1024 * 1024));
      const mnt = mountpoint('err-not-image');
      await failing([notImage, mnt], mnt, /not-an-image\.bin: .*(magic|superblock|not an ext)/i);
    });

    it('a missing image: the error names the image, not the mount point', async () => {
      const mnt = mountpoint('err-no-image');
      const missing = join(scratchDir(), 'no-such.img');
      const stderr = await failing([missing, mnt], mnt, /No such file or directory/);
      assert.equal(stderr, `ext4ts: ${missing}: No such file or directory\n`);
    });

    it('a missing mount point, or one that is not a directory', async () => {
      const missing = join(scratchDir(), 'mnt', 'no-such-dir');
      await failing([smallImage(), missing], missing, new RegExp(`^ext4ts: ${missing}: No such file or directory\\n$`));
      const file = join(scratchDir(), 'a-file');
      writeFileSync(file, 'x');
      await failing([smallImage(), file], file, new RegExp(`^ext4ts: ${file}: Not a directory\\n$`));
    });

    it('an unknown -o option, and a bad option value', async () => {
      const mnt = mountpoint('err-opt');
      await failing(['-o', 'ro,frobnicate', smallImage(), mnt], mnt, /unknown mount option "frobnicate"/);
      await failing(['-o', 'max_read=5000', smallImage(), mnt], mnt, /max_read/);
    });

    it('mount --help lists the options', async () => {
      const r = await ext4ts(['mount', '--help']);
      assert.equal(r.status, 0);
      for (const o of ['ro', 'allow_other', 'fakeroot', 'cache_size', 'attr_timeout', 'max_read', 'no_checksums', 'writeback_cache', 'no_writeback_cache', 'debug']) assert.match(r.stdout.toString(), new RegExp(`\\b${o}\\b`));
    });
  });
});

describe('afterwards', () => {
  it('no mount, server or watchdog of this test file remains', () => {
    assert.deepEqual(cleanupMounts(), []);
  });
});
