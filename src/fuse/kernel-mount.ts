/**
 * Talking to the kernel about mounts: mount(8) with an inherited /dev/fuse fd (as
 * root), umount, the mount's readahead, and mountinfo lookups.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { FsError } from '../errors.js';
import { isNativeAvailable, recvFd, socketpair } from '../io/native.js';

/** Mounting through mount(8) needs root; anyone else goes through fusermount3. */
export function isRoot(): boolean {
  return (process.geteuid?.() ?? 0) === 0;
}

export interface KernelMountOptions {
  readonly readOnly: boolean;
  readonly allowOther: boolean;
  /** Largest READ the kernel may send, bytes. */
  readonly maxRead: number;
}

/**
 * Mount `mountpoint` as a FUSE filesystem served through `fd` (an open /dev/fuse).
 * `mount -i` skips the mount.fuse helper (which would treat the source as a command);
 * the fd reaches mount(8) as its fd 3.
 */
export function mountFuse(fd: number, source: string, mountpoint: string, options: KernelMountOptions): void {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  // default_permissions always: the server checks no permissions itself (and the kernel
  // turns it on anyway once INIT agrees to FUSE_POSIX_ACL).
  const opts = [`fd=3`, 'rootmode=40000', `user_id=${uid}`, `group_id=${gid}`, 'nosuid', 'nodev', 'default_permissions', `max_read=${options.maxRead}`];
  if (options.readOnly) opts.push('ro');
  if (options.allowOther) opts.push('allow_other');
  const result = spawnSync('mount', ['-i', '-t', 'fuse.ext4ts', '-o', opts.join(','), source.replace(/[,\s]/g, '_'), mountpoint], {
    stdio: ['ignore', 'pipe', 'pipe', fd],
    encoding: 'utf8',
  });
  if (result.error !== undefined) throw new FsError('EIO', `cannot run mount(8): ${result.error.message}`, { path: mountpoint });
  if (result.status !== 0) {
    const why = (result.stderr || result.stdout || `exit status ${result.status}`).trim().replace(/\s+/g, ' ');
    const code = /permission|not permitted/i.test(why) ? 'EPERM' : /busy/i.test(why) ? 'EBUSY' : /does not exist|no such/i.test(why) ? 'ENOENT' : 'EIO';
    throw new FsError(code, `mount failed: ${why}`, { path: mountpoint });
  }
}

/**
 * Mount as an ordinary user: fusermount3 (setuid root) opens /dev/fuse, mounts, and
 * passes the fd back over a unix socket (SCM_RIGHTS) named by _FUSE_COMMFD. Node
 * cannot receive a passed fd, so our native addon does (recvmsg). Returns the fd.
 */
export function mountFuseUnprivileged(source: string, mountpoint: string, options: KernelMountOptions): number {
  if (!isNativeAvailable()) {
    throw new FsError('EOPNOTSUPP', 'mounting as an ordinary user needs the native helper (npm rebuild) to receive the /dev/fuse descriptor', { path: mountpoint });
  }
  const opts = ['nosuid', 'nodev', 'default_permissions', `fsname=${source.replace(/[,\\]/g, '_')}`, 'subtype=ext4ts', `max_read=${options.maxRead}`];
  if (options.readOnly) opts.push('ro');
  if (options.allowOther) opts.push('allow_other');
  const [ours, theirs] = socketpair();
  let theirsOpen = true;
  try {
    const result = spawnSync('fusermount3', ['-o', opts.join(','), '--', mountpoint], {
      stdio: ['ignore', 'pipe', 'pipe', theirs],
      env: { ...process.env, _FUSE_COMMFD: '3' },
      encoding: 'utf8',
    });
    if (result.error !== undefined) {
      throw new FsError('EOPNOTSUPP', `cannot run fusermount3 (install the fuse3 package): ${result.error.message}`, { path: mountpoint });
    }
    if (result.status !== 0) {
      const why = (result.stderr || `exit status ${result.status}`).trim().replace(/\s+/g, ' ');
      throw new FsError(/permission|not permitted/i.test(why) ? 'EPERM' : 'EIO', `fusermount3 failed: ${why}`, { path: mountpoint });
    }
    fs.closeSync(theirs);
    theirsOpen = false;
    return recvFd(ours);
  } finally {
    // (The received fd may reuse `theirs`'s number: close only what is still ours.)
    if (theirsOpen) fs.closeSync(theirs);
    fs.closeSync(ours);
  }
}

/** umount(8) (root) or fusermount3 -u; with `lazy`, detach now and clean up when no longer busy. Returns the error text or undefined. */
export function unmount(mountpoint: string, lazy = false): string | undefined {
  const result = isRoot()
    ? spawnSync('umount', lazy ? ['-l', mountpoint] : [mountpoint], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' })
    : spawnSync('fusermount3', lazy ? ['-u', '-z', '--', mountpoint] : ['-u', '--', mountpoint], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (result.status === 0) return undefined;
  return (result.stderr || `exit status ${result.status}`).trim();
}

/**
 * The mountinfo fields of a mount point, if mounted. `target` must be absolute and
 * resolved: this never touches the mount point itself (a stat of a FUSE mount whose
 * server is this thread would deadlock).
 */
export function findMount(target: string): { readonly fsType: string; readonly majorMinor: string; readonly source: string } | undefined {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
  let found: { fsType: string; majorMinor: string; source: string } | undefined;
  for (const line of text.split('\n')) {
    const parts = line.split(' ');
    const sep = parts.indexOf('-');
    if (sep < 0 || parts.length < sep + 3) continue;
    const mnt = (parts[4] ?? '').replace(/\\040/g, ' ');
    if (mnt === target) found = { fsType: parts[sep + 1] ?? '', majorMinor: parts[2] ?? '', source: parts[sep + 2] ?? '' };
  }
  return found;
}

/** Raise the mount's readahead (the kernel caps FUSE's at 128 KiB) so it sends large READs. */
export function raiseReadahead(mountpoint: string, kib: number): boolean {
  const m = findMount(mountpoint);
  if (m === undefined) return false;
  try {
    fs.writeFileSync(`/sys/class/bdi/${m.majorMinor}/read_ahead_kb`, String(kib));
    return true;
  } catch {
    return false;
  }
}
