/**
 * Inode flags through FUSE_IOCTL: lsattr/chattr on an ext4ts mount.
 *
 * Since Linux 5.13 the VFS's fileattr_get/fileattr_set reach a FUSE filesystem as
 * FUSE_IOCTL with FS_IOC_GETFLAGS/FS_IOC_SETFLAGS (a 4-byte int) or FS_IOC_FSGETXATTR/
 * FS_IOC_FSSETXATTR (struct fsxattr). The kernel never enforces immutable/append-only on a
 * FUSE inode: the server does (open for writing, write, truncate, chmod, unlink, rename, link).
 *
 * - The session alone (no mount): request bytes in, reply bytes out; the server's own
 *   checks (owner, CAP_LINUX_IMMUTABLE as uid 0, flags ext4 refuses, EROFS, ENOTTY).
 * - A real mount (`ext4ts mount -o rw`) driven by chattr/lsattr/sh in child processes;
 *   then the image: debugfs shows the flags, e2fsck -fn is clean, the kernel's lsattr
 *   agrees; a read-only mount lists flags and refuses chattr with EROFS.
 *
 * Needs root, /dev/fuse, loop devices, e2fsprogs, util-linux (setpriv), python3.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { Ext4 } from '../src/fs/ext4.js';
import { IoctlCmd, IoctlFlag, Opcode, FsXflag, NotifyCode } from '../src/fuse/abi.js';
import { SessionClient, struct } from './helpers/fuse-client.js';
import { scratchDir } from './helpers/images.js';
import { cleanupMounts, freshMountpoint, loopMount, loopUnmount, mountExt4ts, umountExt4ts, umountOk } from './helpers/mount.js';

// ------------------------------------------------------------------ helpers

let seq = 0;
function mountpoint(name: string): string {
  return freshMountpoint(join(scratchDir(), 'mnt', `ioctl-${name}-${process.pid}-${++seq}`));
}

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A child process (LC_ALL=C); the server is another process, so waiting here is fine. */
function run(cmd: string, args: readonly string[], cwd: string): Run {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' }, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(cmd: string, args: readonly string[], cwd: string): string {
  const r = run(cmd, args, cwd);
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function fails(cmd: string, args: readonly string[], cwd: string, message: RegExp): void {
  const r = run(cmd, args, cwd);
  assert.notEqual(r.status, 0, `${cmd} ${args.join(' ')} should fail`);
  assert.match(r.stderr, message, `${cmd} ${args.join(' ')}`);
}

/** `sh -c SCRIPT`. */
function sh(script: string, cwd: string): Run {
  return run('sh', ['-c', script], cwd);
}

/** The attribute letters lsattr prints for one path (`-d` for directories). */
function lsattr(path: string, cwd: string, dir = false): string {
  const out = ok('lsattr', [...(dir ? ['-d'] : []), path], cwd);
  const attrs = out.trim().split(/\s+/)[0];
  assert.ok(attrs !== undefined && /^[-a-zA-Z]+$/.test(attrs), `lsattr output: ${out}`);
  return attrs;
}

function has(attrs: string, letters: string): boolean {
  return [...letters].every((l) => attrs.includes(l));
}

const PEEK_XATTR = `
import fcntl, struct, sys
b = bytearray(28)
fcntl.ioctl(open(sys.argv[1]), 0x801c581f, b)
print(' '.join(str(v) for v in struct.unpack('<5I', b[:20])))
`;
const POKE_XATTR = `
import fcntl, struct, sys
fcntl.ioctl(open(sys.argv[1]), 0x401c5820, struct.pack('<5I8x', int(sys.argv[2]), 0, 0, 0, 0))
`;
const OTHER_IOCTL = `
import fcntl, sys
try:
    fcntl.ioctl(open(sys.argv[1]), 0x80087601, bytearray(8))  # FS_IOC_GETVERSION
    print('ok')
except OSError as e:
    print(e.errno)
`;

function readText(path: string): string {
  return readFileSync(path, 'utf8');
}

function mkfs(name: string, features: readonly string[] = []): string {
  const img = join(scratchDir(), `ioctl-${name}.img`);
  execOk('mke2fs', ['-q', '-t', 'ext4', ...features, '-F', img, '32M']);
  return img;
}

function execOk(cmd: string, args: readonly string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

function assertFsck(img: string): void {
  const r = spawnSync('e2fsck', ['-fn', img], { encoding: 'utf8' });
  assert.equal(r.status, 0, `e2fsck -fn: ${r.stdout}${r.stderr}`);
}

// ------------------------------------------------------------------ the session alone

const FL_IMMUTABLE = 0x10;
const FL_APPEND = 0x20;
const FL_NODUMP = 0x40;
const FL_NOATIME = 0x80;
const FL_SYNC = 0x08;
const FL_DIRSYNC = 0x1_0000;
const FL_EXTENTS = 0x8_0000;
const FL_NOCOW = 0x80_0000;
const FL_INDEX = 0x1000;

const ERR = { EPERM: -1, EINVAL: -22, ENOTTY: -25, EROFS: -30, EOPNOTSUPP: -95 } as const;

interface Answer {
  readonly error: number;
  readonly result?: number;
  readonly data?: Uint8Array;
}

/** A FuseSession over an image, fed IOCTL requests as the kernel writes them. */
class Harness {
  readonly fs: Ext4;
  readonly client: SessionClient;

  constructor(image: string, write: boolean) {
    this.fs = Ext4.openFile(image, { write });
    this.client = new SessionClient(this.fs);
  }

  /** Notifications sent so far (a position for `invalidated`). */
  get sent(): number {
    return this.client.notifications.length;
  }

  ioctl(ino: number, uid: number, cmd: number, input: Uint8Array, outSize: number, flags = 0): Answer {
    this.client.uid = uid;
    this.client.gid = uid;
    // fuse_ioctl_in: fh, flags, cmd, arg, in_size, out_size
    const r = this.client.request(Opcode.IOCTL, ino === 2 ? 1 : ino, struct(32, (v) => (v.setUint32(8, flags, true), v.setUint32(12, cmd, true), v.setUint32(24, input.length, true), v.setUint32(28, outSize, true)), input));
    if (r.errno !== 0) return { error: -r.errno };
    // fuse_ioctl_out: result, flags, in_iovs, out_iovs; then the data
    assert.ok(r.body.length >= 16);
    assert.equal(r.body.readUInt32LE(4), 0, 'no RETRY');
    return { error: 0, result: r.body.readInt32LE(0), data: r.body.subarray(16) };
  }

  getflags(ino: number, uid = 0): number {
    const a = this.ioctl(ino, uid, IoctlCmd.FS_IOC_GETFLAGS, new Uint8Array(0), 4);
    assert.equal(a.error, 0);
    assert.equal(a.result, 0);
    assert.equal(a.data?.length, 4, 'exactly out_size bytes (fuse_priv_ioctl wants them all)');
    const data = a.data;
    return new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
  }

  setflags(ino: number, flags: number, uid = 0, cmd: number = IoctlCmd.FS_IOC_SETFLAGS): number {
    const input = new Uint8Array(4);
    new DataView(input.buffer).setUint32(0, flags >>> 0, true);
    const a = this.ioctl(ino, uid, cmd, input, 0);
    if (a.error === 0) assert.equal(a.data?.length, 0, 'SETFLAGS returns no data');
    return a.error;
  }

  /** NOTIFY_INVAL_INODE messages sent since `from` (a `sent` position), by node id. */
  invalidated(from: number): bigint[] {
    return this.client.notifications
      .slice(from)
      .filter((m) => m.readInt32LE(4) === NotifyCode.INVAL_INODE)
      .map((m) => m.readBigUInt64LE(16));
  }
}

describe('FUSE_IOCTL in the session', () => {
  const img = mkfs('session');
  {
    const fs = Ext4.openFile(img, { write: true });
    fs.writeFile('/f', 'hello\n', { uid: 1000, gid: 1000 });
    fs.mkdir('/d', { uid: 1000, gid: 1000 });
    fs.writeFile('/root-owned', 'x');
    fs.close();
  }
  const ino = (fs: Ext4, path: string): number => fs.stat(path).ino;

  it('GETFLAGS: EXT4_FL_USER_VISIBLE bits as a 4-byte int; 32-bit command too; needs 4 bytes of room', () => {
    const h = new Harness(img, true);
    try {
      const f = ino(h.fs, '/f');
      assert.equal(h.getflags(f), FL_EXTENTS);
      assert.equal(h.getflags(2) & FL_EXTENTS, FL_EXTENTS, 'the root directory');
      const a = h.ioctl(f, 1000, IoctlCmd.FS_IOC32_GETFLAGS, new Uint8Array(0), 4, IoctlFlag.BIT32);
      assert.deepEqual([...(a.data ?? [])], [0, 0, 8, 0]);
      assert.equal(h.ioctl(f, 0, IoctlCmd.FS_IOC_GETFLAGS, new Uint8Array(0), 2).error, ERR.EINVAL);
    } finally {
      h.fs.close();
    }
  });

  it('SETFLAGS: the owner may set d/A/S, not i/a; others get EPERM; root may do both; ctime goes stale in the kernel', () => {
    const h = new Harness(img, true);
    try {
      const f = ino(h.fs, '/f');
      const ctime = h.fs.getattr(f).ctime;
      const from = h.sent;
      assert.equal(h.setflags(f, FL_EXTENTS | FL_NODUMP | FL_NOATIME | FL_SYNC, 1000), 0);
      assert.equal(h.getflags(f), FL_EXTENTS | FL_NODUMP | FL_NOATIME | FL_SYNC);
      assert.deepEqual(h.invalidated(from), [BigInt(f)], 'NOTIFY_INVAL_INODE for the new ctime');
      const after = h.fs.getattr(f).ctime;
      assert.ok(after.seconds > ctime.seconds || (after.seconds === ctime.seconds && after.nanoseconds >= ctime.nanoseconds));
      assert.equal(h.setflags(f, FL_EXTENTS | FL_IMMUTABLE, 1000), ERR.EPERM, 'immutable needs CAP_LINUX_IMMUTABLE');
      assert.equal(h.setflags(f, FL_EXTENTS | FL_APPEND, 1000), ERR.EPERM, 'append-only needs CAP_LINUX_IMMUTABLE');
      assert.equal(h.setflags(f, FL_EXTENTS, 1001), ERR.EPERM, 'not the owner');
      assert.equal(h.setflags(ino(h.fs, '/root-owned'), FL_EXTENTS | FL_NODUMP, 1000), ERR.EPERM, 'not the owner');
      assert.equal(h.setflags(f, FL_EXTENTS | FL_IMMUTABLE, 0), 0);
      assert.equal(h.getflags(f, 1000), FL_EXTENTS | FL_IMMUTABLE);
      // ext4_ioctl_check_immutable: nothing else changes while it stays immutable.
      assert.equal(h.setflags(f, FL_EXTENTS | FL_IMMUTABLE | FL_NODUMP, 0), ERR.EPERM);
      assert.equal(h.setflags(f, FL_EXTENTS | FL_IMMUTABLE, 0, IoctlCmd.FS_IOC32_SETFLAGS), 0, 'no change is fine');
      assert.equal(h.setflags(f, FL_EXTENTS, 1000), ERR.EPERM, 'the owner cannot clear immutable');
      assert.equal(h.setflags(f, FL_EXTENTS, 0), 0);
      assert.equal(h.getflags(f), FL_EXTENTS);
    } finally {
      h.fs.close();
    }
  });

  it('SETFLAGS refuses what ext4 refuses: flags that are not user-visible, directory flags on files, changes ext4ts cannot make', () => {
    const h = new Harness(img, true);
    try {
      const f = ino(h.fs, '/f');
      const d = ino(h.fs, '/d');
      assert.equal(h.setflags(f, FL_EXTENTS | FL_NOCOW, 0), ERR.EOPNOTSUPP, 'chattr +C: not an ext4 flag');
      assert.equal(h.setflags(f, FL_EXTENTS | FL_DIRSYNC, 0), ERR.EOPNOTSUPP, 'chattr +D on a file');
      assert.equal(h.setflags(f, 0, 0), ERR.EOPNOTSUPP, 'chattr -e: no migration to block maps');
      assert.equal(h.setflags(f, FL_EXTENTS | 0x4, 0), ERR.EOPNOTSUPP, 'chattr +c: ext4ts does not store COMPR');
      assert.equal(h.setflags(d, FL_EXTENTS | FL_DIRSYNC, 1000), 0, 'chattr +D on a directory');
      assert.equal(h.getflags(d) & FL_DIRSYNC, FL_DIRSYNC);
      // Visible but not modifiable bits are ignored (ext4 masks them): INDEX stays as it is.
      assert.equal(h.setflags(d, FL_EXTENTS | FL_DIRSYNC | FL_INDEX, 1000), 0);
      assert.equal(h.getflags(d) & FL_INDEX, 0);
      assert.equal(h.ioctl(f, 0, IoctlCmd.FS_IOC_SETFLAGS, Uint8Array.of(1, 2), 0).error, ERR.EINVAL, 'short input');
    } finally {
      h.fs.close();
    }
  });

  it('FSGETXATTR/FSSETXATTR: xflags from the common flags, projid 0; other commands ENOTTY', () => {
    const h = new Harness(img, true);
    try {
      const f = ino(h.fs, '/f');
      assert.equal(h.setflags(f, FL_EXTENTS | FL_NODUMP | FL_APPEND, 0), 0);
      const a = h.ioctl(f, 1000, IoctlCmd.FS_IOC_FSGETXATTR, new Uint8Array(0), 28);
      assert.equal(a.error, 0);
      assert.equal(a.data?.length, 28);
      const data = a.data;
      const v = new DataView(data.buffer, data.byteOffset, 28);
      assert.equal(v.getUint32(0, true), FsXflag.NODUMP | FsXflag.APPEND);
      assert.equal(v.getUint32(12, true), 0, 'projid');
      const fsx = (xflags: number, projid = 0): Uint8Array => {
        const b = new Uint8Array(28);
        new DataView(b.buffer).setUint32(0, xflags, true);
        new DataView(b.buffer).setUint32(12, projid, true);
        return b;
      };
      assert.equal(h.ioctl(f, 0, IoctlCmd.FS_IOC_FSSETXATTR, fsx(FsXflag.NOATIME | FsXflag.SYNC), 0).error, 0);
      assert.equal(h.getflags(f), FL_EXTENTS | FL_NOATIME | FL_SYNC, 'the common flags replaced, EXTENTS kept');
      assert.equal(h.ioctl(f, 1000, IoctlCmd.FS_IOC_FSSETXATTR, fsx(FsXflag.IMMUTABLE), 0).error, ERR.EPERM);
      assert.equal(h.ioctl(f, 0, IoctlCmd.FS_IOC_FSSETXATTR, fsx(0, 7), 0).error, ERR.EOPNOTSUPP, 'project ids');
      assert.equal(h.ioctl(f, 0, IoctlCmd.FS_IOC_FSSETXATTR, fsx(0).subarray(0, 20), 0).error, ERR.EINVAL, 'short fsxattr');
      assert.equal(h.ioctl(f, 0, 0x8008_7601, new Uint8Array(0), 8).error, ERR.ENOTTY, 'FS_IOC_GETVERSION');
      assert.equal(h.ioctl(f, 0, 0xc020_660b, new Uint8Array(32), 32).error, ERR.ENOTTY, 'FS_IOC_FIEMAP');
      assert.equal(h.setflags(f, FL_EXTENTS, 0), 0);
    } finally {
      h.fs.close();
    }
  });

  it('read-only: GETFLAGS and FSGETXATTR work, SETFLAGS and FSSETXATTR are EROFS', () => {
    const h = new Harness(img, false);
    try {
      const f = ino(h.fs, '/f');
      assert.equal(h.getflags(f), FL_EXTENTS);
      assert.equal(h.ioctl(f, 0, IoctlCmd.FS_IOC_FSGETXATTR, new Uint8Array(0), 28).error, 0);
      assert.equal(h.setflags(f, FL_EXTENTS | FL_NODUMP, 0), ERR.EROFS);
      assert.equal(h.ioctl(f, 0, IoctlCmd.FS_IOC_FSSETXATTR, new Uint8Array(28), 0).error, ERR.EROFS);
    } finally {
      h.fs.close();
    }
    assertFsck(img);
  });
});

// ------------------------------------------------------------------ through a mount

describe('lsattr/chattr on an ext4ts mount', { concurrency: false }, () => {
  after(() => {
    cleanupMounts();
  });

  const img = mkfs('mount');
  /** What lsattr printed through ext4ts, to compare with the kernel's reading of the image. */
  const seen = new Map<string, string>();

  it('-o rw: immutable and append-only are honoured (EPERM); d/A/S round-trip; directories; FS(GET|SET)XATTR; other ioctls ENOTTY', async () => {
    const m = await mountExt4ts(img, mountpoint('rw'), ['rw,allow_other']);
    let mounted = true;
    try {
      const mnt = m.mnt;
      ok('sh', ['-c', 'echo hello > f && mkdir d && echo in-d > d/g && echo mine > u && chown 1000:1000 u'], mnt);
      assert.equal(lsattr('f', mnt), '--------------e-------');

      // immutable
      ok('chattr', ['+i', 'f'], mnt);
      assert.ok(has(lsattr('f', mnt), 'i'));
      const EPERM = /Operation not permitted/;
      const w = sh('echo x >> f', mnt);
      assert.notEqual(w.status, 0);
      assert.match(w.stderr, EPERM);
      assert.match(sh(': > f', mnt).stderr, EPERM, 'truncation');
      fails('rm', ['f'], mnt, EPERM);
      fails('mv', ['f', 'g'], mnt, EPERM);
      fails('chmod', ['600', 'f'], mnt, EPERM);
      fails('chown', ['1000', 'f'], mnt, EPERM);
      fails('ln', ['f', 'f2'], mnt, EPERM);
      fails('touch', ['f'], mnt, EPERM);
      fails('setfattr', ['-n', 'user.x', '-v', '1', 'f'], mnt, EPERM);
      assert.equal(ok('cat', ['f'], mnt), 'hello\n', 'still readable');
      ok('chattr', ['-i', 'f'], mnt);
      assert.ok(!has(lsattr('f', mnt), 'i'));
      ok('sh', ['-c', 'echo x >> f && chmod 600 f && mv f g && mv g f && ln f f2 && rm f2 && chmod 644 f'], mnt);
      assert.equal(readText(join(mnt, 'f')), 'hello\nx\n');

      // append-only
      ok('chattr', ['+a', 'f'], mnt);
      assert.ok(has(lsattr('f', mnt), 'a'));
      ok('sh', ['-c', 'echo y >> f'], mnt);
      assert.match(sh('echo z > f', mnt).stderr, EPERM, 'overwrite');
      fails('rm', ['f'], mnt, EPERM);
      fails('mv', ['f', 'g'], mnt, EPERM);
      fails('truncate', ['-s', '0', 'f'], mnt, EPERM);
      assert.equal(readText(join(mnt, 'f')), 'hello\nx\ny\n');
      ok('chattr', ['-a', 'f'], mnt);

      // an immutable directory: no entries added or removed
      ok('chattr', ['+i', 'd'], mnt);
      assert.ok(has(lsattr('d', mnt, true), 'i'));
      assert.match(sh('echo n > d/new', mnt).stderr, EPERM);
      fails('rm', ['d/g'], mnt, EPERM);
      ok('chattr', ['-i', 'd'], mnt);

      // d, A, S on a file; D and T on a directory; lsattr of a directory's contents
      ok('chattr', ['+dAS', 'f'], mnt);
      assert.ok(has(lsattr('f', mnt), 'dAS'));
      // chattr changes ctime and the kernel is told (regular files excepted: under the
      // writeback cache the kernel keeps their ctime itself and ignores the server's).
      const ctimeBefore = ok('stat', ['-c', '%z', 'd'], mnt);
      ok('chattr', ['+DT', 'd'], mnt);
      assert.ok(has(lsattr('d', mnt, true), 'DT'));
      assert.notEqual(ok('stat', ['-c', '%z', 'd'], mnt), ctimeBefore, 'the kernel sees the new ctime of d');
      assert.match(ok('lsattr', ['d'], mnt), /^-+e-+ d\/g$/m);
      fails('chattr', ['+T', 'f'], mnt, /Operation not supported/); // a directory flag (chattr itself drops D on files)

      // ownership and CAP_LINUX_IMMUTABLE (the kernel checks first; the server again)
      const asUser = (args: string[]): Run => run('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', ...args], mnt);
      assert.equal(asUser(['chattr', '+d', 'u']).status, 0, 'the owner may set d');
      assert.match(asUser(['chattr', '+i', 'u']).stderr, EPERM);
      assert.match(asUser(['chattr', '+d', 'f']).stderr, EPERM, 'not the owner');
      assert.equal(asUser(['lsattr', 'f']).status, 0, 'anyone may list');

      // FS_IOC_FSGETXATTR / FS_IOC_FSSETXATTR (fuse_fileattr_get/set without flags_valid)
      assert.equal(ok('python3', ['-c', PEEK_XATTR, 'f'], mnt).trim(), `${FsXflag.SYNC | FsXflag.NOATIME | FsXflag.NODUMP} 0 0 0 0`);
      ok('python3', ['-c', POKE_XATTR, 'f', String(FsXflag.NODUMP | FsXflag.SYNC)], mnt);
      assert.equal(lsattr('f', mnt), '--S---d-------e-------');
      // an ioctl the filesystem does not serve: ENOTTY (25)
      assert.equal(ok('python3', ['-c', OTHER_IOCTL, 'f'], mnt).trim(), '25');

      for (const [name, dir] of [['f', false], ['d', true], ['u', false], ['d/g', false]] as const) seen.set(name, lsattr(name, mnt, dir));
      await umountOk(m);
      mounted = false;
    } finally {
      if (mounted) await umountExt4ts(m.mnt);
    }

    assert.match(execOk('debugfs', ['-R', 'stat f', img]), /Flags: 0x80048\b/, 'debugfs: EXTENTS | NODUMP | SYNC');
    assert.match(execOk('debugfs', ['-R', 'stat d', img]), /Flags: 0xb0000\b/, 'debugfs: EXTENTS | DIRSYNC | TOPDIR');
    assertFsck(img);
    const k = mountpoint('loop');
    loopMount(img, k);
    try {
      for (const [name, attrs] of seen) assert.equal(lsattr(name, k, name === 'd'), attrs, `the kernel's lsattr of ${name}`);
    } finally {
      loopUnmount(k);
    }
  });

  it('-o ro: lsattr works, chattr fails with EROFS and the image is unchanged', async () => {
    const before = readFileSync(img);
    const m = await mountExt4ts(img, mountpoint('ro'), ['ro']);
    try {
      assert.equal(lsattr('f', m.mnt), seen.get('f'));
      assert.equal(lsattr('d', m.mnt, true), seen.get('d'));
      fails('chattr', ['+i', 'f'], m.mnt, /Read-only file system/);
      fails('chattr', ['-d', 'f'], m.mnt, /Read-only file system/);
    } finally {
      await umountOk(m);
    }
    assert.ok(readFileSync(img).equals(before), 'a read-only mount changed the image');
  });
});

describe('casefolded directories on an ext4ts mount', { concurrency: false }, () => {
  after(() => {
    cleanupMounts();
  });

  it('chattr +F on an empty directory; names in any spelling; no stale name after a change made through another spelling', async () => {
    const img = mkfs('casefold', ['-O', 'casefold']);
    const m = await mountExt4ts(img, mountpoint('cf'), ['rw']);
    let mounted = true;
    try {
      const mnt = m.mnt;
      ok('sh', ['-c', 'mkdir cf full && touch full/x'], mnt);
      fails('chattr', ['+F', 'full'], mnt, /Directory not empty/);
      ok('chattr', ['+F', 'cf'], mnt);
      assert.match(lsattr('cf', mnt, true), /F/);
      // A negative lookup first: the kernel must not keep it once another spelling is created.
      assert.notEqual(sh('test -e cf/readme.TXT', mnt).status, 0);
      ok('sh', ['-c', 'echo hello > cf/README.txt && mkdir cf/Sub && touch cf/Sub/Inner'], mnt);
      assert.equal(ok('cat', ['cf/readme.TXT'], mnt), 'hello\n');
      assert.equal(ok('sh', ['-c', 'ls cf'], mnt), 'README.txt\nSub\n');
      ok('test', ['-f', 'cf/sub/INNER'], mnt);
      assert.match(lsattr('cf/Sub', mnt, true), /F/, 'new directories inherit +F');
      fails('sh', ['-c', 'set -C; echo x > cf/ReadMe.Txt'], mnt, /exists/);
      // Removed through one spelling: gone under every spelling the kernel saw.
      ok('rm', ['cf/readme.txt'], mnt);
      for (const name of ['README.txt', 'readme.TXT', 'readme.txt']) assert.notEqual(sh(`test -e cf/${name}`, mnt).status, 0, `${name} still there`);
      ok('mv', ['cf/SUB', 'cf/Other'], mnt);
      assert.notEqual(sh('test -e cf/Sub', mnt).status, 0);
      ok('test', ['-f', 'cf/OTHER/inner'], mnt);
      await umountOk(m);
      mounted = false;
    } finally {
      if (mounted) await umountExt4ts(m.mnt);
    }
    assertFsck(img);
    assert.match(execOk('debugfs', ['-R', 'ls -p /cf', img]), /\/Other\//);
  });
});

describe('afterwards', () => {
  it('no mount, server or watchdog of this test file remains', () => {
    assert.deepEqual(cleanupMounts(), []);
  });
});
