/**
 * A twin for write tests: every operation is applied to an ext4ts filesystem (path
 * API) and to a host directory (node:fs), so the image, read back through a kernel
 * loop mount, can be compared with the host tree. e2fsck -fn is the other oracle.
 */
import * as fs from 'node:fs';
import { constants as osConstants } from 'node:os';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Ext4 } from '../../src/fs/ext4.js';
import { MemoryChannel } from '../../src/io/memory-channel.js';
import { FsError } from '../../src/errors.js';
import { fallocate as nativeFallocate, lutimens, isNativeAvailable } from '../../src/io/native.js';
import type { Timestamp } from '../../src/ondisk/time.js';
import { EXTENTS_FL, INLINE_DATA_FL } from '../../src/ondisk/inode.js';
import { snapshot, type EntrySnapshot } from './cli.js';
import { withMount } from './kernel.js';

/** e2fsck -fn: returns its output; throws with the output unless the filesystem is clean. */
export function fsckClean(image: string): string {
  const r = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`;
  if (r.status !== 0) throw new Error(`e2fsck -fn ${image} exited ${r.status}:\n${out}`);
  return out;
}

/**
 * Append `chunkSize`-byte writes to regular file `ino` until the filesystem is full (a
 * short write or ENOSPC); returns the file's size then.
 */
export function fillFile(fsys: Ext4, ino: number, chunkSize: number): number {
  const chunk = new Uint8Array(chunkSize).fill(0x66);
  let size = 0;
  for (;;) {
    try {
      if (fsys.write(ino, size, chunk) < chunk.length) return size;
    } catch (error) {
      if (error instanceof FsError && error.code === 'ENOSPC') return size;
      throw error;
    }
    size += chunk.length;
  }
}

/** The errno code of what `fn` throws ('ok' when it returns). */
export function outcome(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (error) {
    if (error instanceof FsError) return error.code;
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
    throw error;
  }
}

export class Twin {
  /** Operations whose outcomes differed between the two sides. */
  readonly mismatches: string[] = [];
  constructor(
    readonly fsys: Ext4,
    readonly host: string,
  ) {}

  private h(path: string): string {
    return join(this.host, path);
  }

  private both(what: string, ours: () => unknown, theirs: () => unknown): string {
    const a = outcome(ours);
    const b = outcome(theirs);
    if (a !== b) this.mismatches.push(`${what}: ext4ts ${a}, host ${b}`);
    return a;
  }

  mkdir(path: string, mode = 0o755): string {
    return this.both(`mkdir ${path}`, () => this.fsys.mkdir(path, { mode }), () => fs.mkdirSync(this.h(path), { mode }));
  }

  writeFile(path: string, data: Uint8Array, mode = 0o644): string {
    return this.both(
      `writeFile ${path}`,
      () => this.fsys.writeFile(path, data, { mode }),
      () => fs.writeFileSync(this.h(path), data, { mode }),
    );
  }

  /** pwrite at an offset into an existing file. */
  writeAt(path: string, offset: number, data: Uint8Array): string {
    return this.both(
      `writeAt ${path} ${offset}+${data.length}`,
      () => {
        const ino = this.fsys.resolve(path);
        this.fsys.write(ino, offset, data);
      },
      () => {
        const fd = fs.openSync(this.h(path), 'r+');
        try {
          fs.writeSync(fd, data, 0, data.length, offset);
        } finally {
          fs.closeSync(fd);
        }
      },
    );
  }

  truncate(path: string, size: number): string {
    return this.both(`truncate ${path} ${size}`, () => this.fsys.truncateFile(path, size), () => fs.truncateSync(this.h(path), size));
  }

  symlink(target: string, path: string): string {
    return this.both(`symlink ${path}`, () => this.fsys.symlink(target, path), () => fs.symlinkSync(target, this.h(path)));
  }

  link(existing: string, path: string): string {
    return this.both(`link ${path}`, () => this.fsys.link(existing, path), () => fs.linkSync(this.h(existing), this.h(path)));
  }

  unlink(path: string): string {
    return this.both(`unlink ${path}`, () => this.fsys.unlink(path), () => fs.unlinkSync(this.h(path)));
  }

  rmdir(path: string): string {
    return this.both(`rmdir ${path}`, () => this.fsys.rmdir(path), () => fs.rmdirSync(this.h(path)));
  }

  rmTree(path: string): string {
    return this.both(`rm -r ${path}`, () => this.fsys.rm(path, { recursive: true }), () => fs.rmSync(this.h(path), { recursive: true }));
  }

  rename(from: string, to: string): string {
    return this.both(`rename ${from} ${to}`, () => this.fsys.rename(from, to), () => fs.renameSync(this.h(from), this.h(to)));
  }

  /**
   * renameat2(2) with flags (RENAME_NOREPLACE 1, RENAME_EXCHANGE 2). Node has no
   * renameat2, so the host side is one perl process making the raw syscall.
   */
  rename2(from: string, to: string, flags: number): string {
    return this.both(`rename2 ${from} ${to} flags=${flags}`, () => this.fsys.rename(from, to, flags), () => hostRenameat2(this.h(from), this.h(to), flags));
  }

  /**
   * fallocate(2) on an existing file (the last symlink followed, as open(2) does). The
   * host opens the file read-write first, so a directory fails there with EISDIR, which
   * is also what fallocate(2) itself answers for a directory.
   *
   * One expected difference: a file without extents (ext2/ext3 images) has a block map,
   * which cannot hold blocks reserved past the end of the file, so ext4ts refuses a
   * KEEP_SIZE allocation (also ZERO_RANGE|KEEP_SIZE) reaching past i_size with
   * EOPNOTSUPP and changes nothing (the kernel refuses every preallocation on such a
   * file). The host's files have extents and would succeed, so there ext4ts must answer
   * EOPNOTSUPP and the host is left alone; the final comparison then checks that the
   * image did not change either.
   */
  fallocate(path: string, mode: number, offset: number, length: number): string {
    const what = `fallocate ${path} mode=0x${mode.toString(16)} ${offset}+${length}`;
    const ours = (): void => this.fsys.fallocate(this.fsys.resolve(path), mode, offset, length);
    if (this.blockMapCannotReserve(path, mode, offset, length)) {
      const a = outcome(ours);
      if (a !== 'EOPNOTSUPP') this.mismatches.push(`${what}: ext4ts ${a}, expected EOPNOTSUPP (KEEP_SIZE past the end of a file without extents)`);
      return a;
    }
    return this.both(what, ours, () => {
      requireNative();
      const fd = fs.openSync(this.h(path), 'r+');
      try {
        nativeFallocate(fd, mode, offset, length);
      } finally {
        fs.closeSync(fd);
      }
    });
  }

  /** True when `fallocate(path, mode, offset, length)` asks a block-mapped file for blocks past its end (see {@link fallocate}). */
  private blockMapCannotReserve(path: string, mode: number, offset: number, length: number): boolean {
    const KEEP_SIZE = 0x01;
    const PUNCH_HOLE = 0x02;
    if ((mode & KEEP_SIZE) === 0 || (mode & PUNCH_HOLE) !== 0 || offset < 0 || length <= 0) return false;
    let inode;
    try {
      inode = this.fsys.readInode(this.fsys.resolve(path));
    } catch {
      return false; // the path fails as it does on the host
    }
    const regular = (inode.mode & 0o170000) === 0o100000;
    return regular && (inode.flags & (EXTENTS_FL | INLINE_DATA_FL)) === 0 && offset + length > inode.size;
  }

  /**
   * utimensat(AT_SYMLINK_NOFOLLOW) with explicit times, to the nanosecond. Pass times
   * from {@link EXPLICIT_TIMES} so {@link verify} compares them (see there).
   */
  utimens(path: string, atime: Timestamp, mtime: Timestamp): string {
    return this.both(
      `utimens ${path}`,
      () => this.fsys.utimes(path, atime, mtime, false),
      () => {
        requireNative();
        lutimens(this.h(path), atime.seconds, atime.nanoseconds, mtime.seconds, mtime.nanoseconds);
      },
    );
  }

  chmod(path: string, mode: number): string {
    return this.both(`chmod ${path}`, () => this.fsys.chmod(path, mode), () => fs.chmodSync(this.h(path), mode));
  }

  chown(path: string, uid: number, gid: number): string {
    return this.both(`chown ${path}`, () => this.fsys.lchown(path, uid, gid), () => fs.lchownSync(this.h(path), uid, gid));
  }

  setxattr(path: string, name: string, value: Uint8Array): string {
    return this.both(
      `setxattr ${path} ${name}`,
      () => this.fsys.setxattr(path, name, value),
      () => {
        const r = spawnSync('setfattr', ['-h', '-n', name, '-v', value.length === 0 ? '' : `0x${Buffer.from(value).toString('hex')}`, this.h(path)], { encoding: 'utf8' });
        if (r.status !== 0) throw Object.assign(new Error(r.stderr), { code: setfattrCode(r.stderr) });
      },
    );
  }

  removexattr(path: string, name: string): string {
    return this.both(
      `removexattr ${path} ${name}`,
      () => this.fsys.removexattr(path, name),
      () => {
        const r = spawnSync('setfattr', ['-h', '-x', name, this.h(path)], { encoding: 'utf8' });
        if (r.status !== 0) throw Object.assign(new Error(r.stderr), { code: setfattrCode(r.stderr) });
      },
    );
  }

  mkfifo(path: string): string {
    return this.both(
      `mkfifo ${path}`,
      () => this.fsys.mknodInode(this.fsys.resolve(parentOf(path)), baseOf(path), 0o010644, { uid: 0, gid: 0 }),
      () => execFileSync('mkfifo', ['-m', '644', this.h(path)]),
    );
  }

  /**
   * Inodes whose cached (decoded) form differs from what a fresh read of the image
   * decodes, after the changes are written back: the writer stores what it wrote in the
   * inode cache without decoding it again, and this checks it is the same thing.
   */
  private staleCachedInodes(image: string): string[] {
    this.fsys.writeBack();
    const disk = Ext4.open(new MemoryChannel(new Uint8Array(fs.readFileSync(image))), { write: false });
    try {
      const stale: string[] = [];
      const seen = new Set<number>();
      const visit = (ino: number, path: string): void => {
        if (seen.has(ino)) return;
        seen.add(ino);
        const cached = this.fsys.readInode(ino);
        if (!isDeepStrictEqual(cached, disk.readInode(ino))) stale.push(`cached inode ${ino} (${path}) differs from the image`);
        if ((cached.mode & 0o170000) !== 0o040000) return;
        for (const e of this.fsys.readdirInode(ino)) {
          if (e.name !== '.' && e.name !== '..') visit(e.ino, `${path}/${e.name}`);
        }
      };
      visit(2, '');
      return stale;
    } finally {
      disk.close();
    }
  }

  /**
   * Close the image, check it with e2fsck, and compare it (kernel mount) with the host tree.
   *
   * Times: most operations stamp mtime/atime from the clock, which differs between the two
   * sides, so times are not compared in general. An mtime equal to one of
   * {@link EXPLICIT_TIMES} on either side, though, can only have been set by an explicit
   * utimens with nothing having stamped that inode's mtime since (no clock reads such
   * values), so there the two sides must agree to the nanosecond. atime is not compared:
   * the host's relatime updates it on reads (rm -r reads directories) where ext4ts does not.
   */
  verify(image: string, mnt: string): string[] {
    const stale = this.staleCachedInodes(image);
    this.fsys.close();
    fsckClean(image);
    const explicit = new Set(EXPLICIT_TIMES.map((t) => (BigInt(t.seconds) * 1_000_000_000n + BigInt(t.nanoseconds)).toString()));
    const strip = (m: Map<string, EntrySnapshot>): Map<string, Omit<EntrySnapshot, 'atimeNs'>> =>
      new Map([...m].filter(([k]) => k !== '' && k !== 'lost+found').map(([k, { atimeNs: _a, ...rest }]) => [k, rest]));
    const expected = strip(snapshot(this.host));
    const actual = withMount(image, mnt, { readOnly: true }, (root) => strip(snapshot(root)));
    const diffs: string[] = [...this.mismatches, ...stale];
    for (const [k, e] of expected) {
      const a = actual.get(k);
      if (a === undefined) diffs.push(`missing in image: ${k}`);
      else {
        for (const field of new Set([...Object.keys(a), ...Object.keys(e)]) as Set<keyof typeof a>) {
          if (field === 'mtimeNs' && !explicit.has(a.mtimeNs) && !explicit.has(e.mtimeNs)) continue;
          if (JSON.stringify(a[field]) !== JSON.stringify(e[field])) diffs.push(`${k}: ${field} image ${JSON.stringify(a[field])} != host ${JSON.stringify(e[field])}`.slice(0, 300));
        }
      }
    }
    for (const k of actual.keys()) if (!expected.has(k)) diffs.push(`extra in image: ${k}`);
    return diffs;
  }
}

/**
 * Times for explicit utimens in tests, none of which a clock can produce now: before
 * 1970, in 1901 (the smallest 32-bit time), before 2038 with odd nanoseconds, and after
 * 2038 (the inode's extra epoch bits). They need 256-byte inodes (nanoseconds and the
 * range beyond 1901..2038).
 */
export const EXPLICIT_TIMES: readonly Timestamp[] = [
  { seconds: -2_147_483_648, nanoseconds: 0 },
  { seconds: -1_000_000_000, nanoseconds: 123_456_789 },
  { seconds: 1_000_000_000, nanoseconds: 1 },
  { seconds: 2_147_483_647, nanoseconds: 999_999_999 },
  { seconds: 5_000_000_000, nanoseconds: 500_000_000 },
];

function requireNative(): void {
  if (!isNativeAvailable()) throw new Error('the native addon is not built (npm run build:native): the host side of fallocate/utimens needs it');
}

const ERRNO_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(osConstants.errno)) if (!ERRNO_NAMES.has(n)) ERRNO_NAMES.set(n, name);

/**
 * renameat2(AT_FDCWD, from, AT_FDCWD, to, flags) on the host through perl's syscall().
 * Throws an error with the errno's name as `code` when the syscall fails, and a plain
 * error (no code: outcome() rethrows it) when perl cannot run it at all.
 */
/**
 * renameat2(AT_FDCWD, FROM, AT_FDCWD, TO, FLAGS) as a perl program (`perl -e SCRIPT FROM TO
 * FLAGS`): Node has no renameat2 and this coreutils' mv no --exchange, and perl is in
 * every Debian. Exit 0, or 1 with the errno number on stderr. Undefined off x86_64
 * (SYS_renameat2 is 316 there; other architectures number it otherwise).
 */
export const RENAMEAT2_PERL: string | undefined =
  process.arch === 'x64'
    ? // Numeric arguments go to syscall() as integers, strings as pointers: the flags need +0.
      'syscall(316, -100, $ARGV[0], -100, $ARGV[1], $ARGV[2] + 0) == 0 or do { print STDERR ($! + 0); exit 1 }'
    : undefined;

function hostRenameat2(from: string, to: string, flags: number): void {
  const script = RENAMEAT2_PERL;
  if (script === undefined) throw new Error(`hostRenameat2: SYS_renameat2 is 316 on x86_64 only; add the number for ${process.arch}`);
  const r = spawnSync('perl', ['-e', script, from, to, String(flags)], { encoding: 'utf8' });
  if (r.error !== undefined) throw new Error(`perl for renameat2 could not run: ${r.error.message}`);
  if (r.status === 0) return;
  const errno = Number(r.stderr.trim());
  const code = r.status === 1 && Number.isInteger(errno) && errno > 0 ? ERRNO_NAMES.get(errno) : undefined;
  if (code === undefined) throw new Error(`perl for renameat2 exited ${r.status}: ${r.stderr}`);
  throw Object.assign(new Error(`renameat2 ${from} ${to} ${flags}: ${code}`), { code });
}

/** The errno behind setfattr's message (it prints strerror). */
function setfattrCode(stderr: string): string {
  const known: [RegExp, string][] = [
    [/No such attribute/, 'ENODATA'],
    [/No such file or directory/, 'ENOENT'],
    [/Not a directory/, 'ENOTDIR'],
    [/No space left/, 'ENOSPC'],
    [/Argument list too long/, 'E2BIG'],
    [/Operation not permitted/, 'EPERM'],
    [/Too many levels of symbolic links/, 'ELOOP'],
  ];
  return known.find(([re]) => re.test(stderr))?.[1] ?? `setfattr: ${stderr.trim()}`;
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}
function baseOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Copy `src` to a new path (a fresh image per scenario from one mke2fs run). */
export function copyImage(src: string, dst: string): string {
  fs.copyFileSync(src, dst);
  return dst;
}
