/**
 * `ext4ts put IMAGE SRC... DEST`: copy host files and trees into the image, like `cp -a`.
 *
 * Reproduced: type (files, directories, symlinks, fifos, sockets, character and block
 * devices); content, streamed CHUNK bytes at a time, with all-zero blocks left as holes
 * (Node has no SEEK_DATA/SEEK_HOLE, so a sparse source is read through its holes, but
 * the copy is sparse); permission bits with setuid/setgid/sticky; numeric owner and
 * group; atime and mtime to the nanosecond (a directory's after its contents are in);
 * hard links as hard links (host dev:ino -> image inode); xattrs of every namespace the
 * host shows (user.*, trusted.*, security.*, and POSIX ACLs in the VFS format).
 *
 * Host xattrs are listed with `getfattr -R -P -h -d -m - -e hex` (package attr), one
 * process per SRC: Node has no llistxattr/lgetxattr and the native addon does not offer
 * them. Without getfattr the copy goes on without xattrs, with a warning.
 *
 * Destination: DEST an existing directory of the image -> each SRC goes inside it (a SRC
 * ending in "." fills DEST itself); otherwise, with one SRC, DEST is its new name.
 * Existing non-directories are replaced; existing directories are merged into.
 *
 * Errors about one entry print one line (`ext4ts: PATH: reason`: the host path for a
 * failure to read it, the image path for a failure to write it) and the copy goes on;
 * ENOSPC, EIO and EROFS stop it (nothing more would fit or be written); a file whose
 * data could not all be copied is removed, not left half-written. Exit status 1
 * when anything failed. The image is closed (written back, marked clean) in every case.
 */
import { spawnSync } from 'node:child_process';
import * as nodefs from 'node:fs';
import { resolve as resolveHostPath } from 'node:path';
import { CopyProgress } from './progress.js';
import type { Ext4 } from '../fs/ext4.js';
import type { SetAttr } from '../fs/writer.js';
import type { Timestamp } from '../fs/types.js';
import { FsError } from '../errors.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from '../ondisk/inode.js';
import { CHUNK } from './cat.js';
import { about, CliError, Failure, isSystemError, reasonOf, Reporter } from './errors.js';
import { joinPath } from './ls.js';
import type { CommonOptions } from './options.js';
import { existing, splitImagePath, withWritableImage } from './edit.js';

export interface PutOptions extends CommonOptions {
  /** false with --no-progress; the bar is only ever shown when stderr is a terminal. */
  readonly progress?: boolean;
}


/** Errors after which nothing more can be written to the image. */
const FATAL = new Set(['ENOSPC', 'EIO', 'EROFS', 'EDQUOT']);

type Xattrs = readonly (readonly [string, Uint8Array])[];

/** Where an entry goes: a name in a directory, or an existing directory itself (SRC ending in "."). */
type Target = { readonly parent: number; readonly name: Uint8Array } | { readonly ino: number };

/** A directory being filled: its entries are copied one by one, then its metadata is set. */
interface Frame {
  readonly src: Buffer;
  readonly rel: Buffer;
  readonly dest: Buffer;
  readonly ino: number;
  readonly names: readonly Buffer[];
  next: number;
  /** Made in this run: empty, so its entries need no lookup before being created. */
  readonly fresh: boolean;
  readonly attr: SetAttr;
}

/** Seconds and nanoseconds of a bigint nanosecond time (may be before 1970). */
function timestamp(ns: bigint): Timestamp {
  let seconds = ns / 1_000_000_000n;
  let nanoseconds = ns % 1_000_000_000n;
  if (nanoseconds < 0n) {
    nanoseconds += 1_000_000_000n;
    seconds -= 1n;
  }
  return { seconds: Number(seconds), nanoseconds: Number(nanoseconds) };
}

/** glibc's gnu_dev_major/gnu_dev_minor. */
function splitRdev(rdev: bigint): [number, number] {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return [Number(major), Number(minor)];
}



/* ------------------------------------------------------------------ host xattrs */

/** getfattr's quoting: \ooo for special bytes (a backslash is \134). */
function unquote(text: string): Buffer {
  const raw = Buffer.from(text, 'latin1');
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i] as number;
    const digits = raw.subarray(i + 1, i + 4).toString('latin1');
    if (b === 0x5c && /^[0-3][0-7]{2}$/.test(digits)) {
      out.push(parseInt(digits, 8));
      i += 3;
    } else out.push(b);
  }
  return Buffer.from(out);
}

/**
 * The xattrs of every path under (and including) host path `root`, keyed by the path
 * relative to it (latin1 of the bytes; '' for the root). Undefined when getfattr is
 * missing. Paths getfattr could not read are left out: the walk reports them.
 */
function hostXattrs(root: string): Map<string, [string, Uint8Array][]> | undefined {
  const abs = resolveHostPath(root);
  const r = spawnSync('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', '--', abs], {
    maxBuffer: 1 << 30,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.error !== undefined) return undefined;
  const map = new Map<string, [string, Uint8Array][]>();
  const rootBytes = Buffer.from(abs);
  const prefix = abs.endsWith('/') ? rootBytes : Buffer.concat([rootBytes, Buffer.from('/')]);
  let current: [string, Uint8Array][] | undefined;
  for (const line of r.stdout.toString('latin1').split('\n')) {
    if (line.startsWith('# file: ')) {
      const path = unquote(line.slice(8));
      let rel: Buffer | undefined;
      if (path.equals(rootBytes)) rel = Buffer.alloc(0);
      else if (path.subarray(0, prefix.length).equals(prefix)) rel = path.subarray(prefix.length);
      current = rel === undefined ? undefined : [];
      if (rel !== undefined && current !== undefined) map.set(rel.toString('latin1'), current);
      continue;
    }
    if (current === undefined || line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    const name = unquote(eq < 0 ? line : line.slice(0, eq)).toString('utf8');
    const hex = eq < 0 ? '' : line.slice(eq + 1).replace(/^0x/, '');
    current.push([name, Buffer.from(hex, 'hex')]);
  }
  return map;
}

/* ------------------------------------------------------------------ the copy */

class Putter {
  /** Host "dev:ino" of files with several links -> their image inode. */
  private readonly links = new Map<string, number>();
  private readonly stack: Frame[] = [];
  private readonly zero: Buffer;
  private readonly buffer = Buffer.allocUnsafe(CHUNK);
  private progress: CopyProgress | undefined;
  private xattrs: Map<string, [string, Uint8Array][]> | undefined;
  private xattrsWarned = false;
  private dirAtimes = new Map<string, bigint>();
  /** The image file itself, never copied into itself. */
  private readonly imageId: string | undefined;
  /** Set by an error after which nothing more can be written. */
  stopped = false;

  constructor(
    private readonly fs: Ext4,
    private readonly reporter: Reporter,
    private readonly options: PutOptions,
    image: string,
  ) {
    this.zero = Buffer.alloc(fs.sb.blockSize);
    const st = nodefs.statSync(image, { bigint: true, throwIfNoEntry: false });
    this.imageId = st?.isFile() === true ? `${st.dev}:${st.ino}` : undefined;
  }

  /** Copies host path `src` to `target` (`dest` names it in messages). */
  copy(src: string, target: Target, dest: Buffer): void {
    if (this.stopped) return;
    const progress = this.options.progress !== false && process.stderr.isTTY;
    const scan = prescan(src, progress);
    this.dirAtimes = scan.dirAtimes;
    this.xattrs = hostXattrs(src);
    if (this.xattrs === undefined && !this.xattrsWarned) {
      this.xattrsWarned = true;
      this.reporter.warn('getfattr not found (install the attr package): extended attributes and ACLs are not copied');
    }
    if (progress) {
      const bar = new CopyProgress('put', scan);
      this.progress = bar;
      this.reporter.beforeWrite = () => bar.clearLine();
    }
    try {
      this.entry(Buffer.from(src), Buffer.alloc(0), dest, target, false);
      while (this.stack.length > 0 && !this.stopped) {
        const top = this.stack[this.stack.length - 1] as Frame;
        const name = top.names[top.next++];
        if (name === undefined) {
          this.stack.pop();
          this.finishDir(top);
          continue;
        }
        const rel = top.rel.length === 0 ? name : joinPath(top.rel, name);
        this.entry(joinPath(top.src, name), rel, joinPath(top.dest, name), { parent: top.ino, name }, top.fresh);
      }
      // Stopped early: the directories made so far still get their metadata.
      for (let top = this.stack.pop(); top !== undefined; top = this.stack.pop()) this.finishDir(top);
    } finally {
      this.progress?.stop();
      this.progress = undefined;
      this.reporter.beforeWrite = undefined;
    }
  }

  private fail(src: Buffer, dest: Buffer, error: unknown): void {
    if (error instanceof Failure) this.reporter.error(error.what, error.error);
    else if (isSystemError(error)) this.reporter.error(src, error);
    else this.reporter.error(dest, error);
    this.checkFatal(dest, error instanceof Failure ? error.error : error);
  }

  /** After ENOSPC, EIO or EROFS from the image, nothing more is tried. */
  private checkFatal(dest: Buffer, error: unknown): void {
    if (error instanceof FsError && FATAL.has(error.code) && !this.stopped) {
      this.stopped = true;
      this.reporter.fail(dest, 'the copy stops here');
    }
  }

  /** Copies one host entry. Directories are only begun: their frame is pushed. */
  private entry(src: Buffer, rel: Buffer, dest: Buffer, target: Target, fresh: boolean): void {
    try {
      const st = nodefs.lstatSync(src, { bigint: true });
      if (this.imageId !== undefined && `${st.dev}:${st.ino}` === this.imageId) {
        this.reporter.fail(src, 'skipped: it is the image being written');
        return;
      }
      const type = Number(st.mode) & S_IFMT;
      const perm = Number(st.mode) & 0o7777;
      const who = { uid: Number(st.uid), gid: Number(st.gid) };
      // A directory's atime as it was before prescan and getfattr read it.
      const atimeNs = type === S_IFDIR ? (this.dirAtimes.get(rel.toString('latin1')) ?? st.atimeNs) : st.atimeNs;
      const attr: SetAttr = { mode: perm, uid: who.uid, gid: who.gid, atime: timestamp(atimeNs), mtime: timestamp(st.mtimeNs) };
      const xattrs = this.xattrs?.get(rel.toString('latin1')) ?? [];
      const isDir = type === S_IFDIR;

      // What is at the destination already: a directory is merged into, anything else replaced.
      let there: number | undefined;
      if ('ino' in target) there = target.ino;
      else if (!fresh) there = this.lookup(target.parent, target.name);
      if (there !== undefined) {
        const kind = this.fs.getattr(there).kind;
        if (isDir && kind !== 'directory') throw new CliError('cannot overwrite non-directory with directory');
        if (!isDir && kind === 'directory') throw new CliError('cannot overwrite directory with non-directory');
        if (!isDir && 'name' in target) this.fs.unlinkInode(target.parent, target.name);
      }

      if (isDir) {
        let ino = there;
        if (ino === undefined && 'name' in target) ino = this.fs.mkdirInode(target.parent, target.name, perm, who);
        if (ino === undefined) return;
        this.setXattrs(dest, ino, xattrs);
        let names: Buffer[] = [];
        try {
          names = (nodefs.readdirSync(src, { encoding: 'buffer' }) as Buffer[]).sort((a, b) => Buffer.compare(a, b));
        } catch (error) {
          this.fail(src, dest, error);
        }
        this.stack.push({ src, rel, dest, ino, names, next: 0, fresh: there === undefined, attr });
        this.progress?.entry();
        return;
      }
      if (!('name' in target)) throw new FsError('ENOTDIR', 'Not a directory');
      const { parent, name } = target;

      const linkKey = st.nlink > 1n ? `${st.dev}:${st.ino}` : undefined;
      const linked = linkKey === undefined ? undefined : this.links.get(linkKey);
      if (linked !== undefined) {
        this.fs.linkInode(linked, parent, name);
        this.progress?.entry();
        return;
      }

      let ino: number;
      switch (type) {
        case S_IFREG:
          ino = this.fs.mknodInode(parent, name, S_IFREG | perm, who);
          try {
            this.copyData(src, ino);
          } catch (error) {
            // A file whose data did not all get in does not stay behind looking copied
            // (out of space, the freed blocks also go back). The first error is reported.
            try {
              this.fs.unlinkInode(parent, name);
            } catch {
              // the image is failing (EIO): the error below says so
            }
            throw error;
          }
          break;
        case S_IFLNK: {
          const linkTarget = nodefs.readlinkSync(src, { encoding: 'buffer' });
          ino = this.fs.symlinkInode(parent, name, linkTarget, who);
          break;
        }
        case S_IFCHR:
        case S_IFBLK:
        case S_IFIFO:
        case S_IFSOCK:
          ino = this.fs.mknodInode(parent, name, type | perm, who, type === S_IFCHR || type === S_IFBLK ? splitRdev(st.rdev) : [0, 0]);
          break;
        default:
          throw new FsError('EINVAL', `unknown file type (mode 0${Number(st.mode).toString(8)})`);
      }
      this.setXattrs(dest, ino, xattrs);
      // A symlink's permission bits are always 0777.
      this.fs.setattr(ino, type === S_IFLNK ? { uid: who.uid, gid: who.gid, atime: timestamp(st.atimeNs), mtime: timestamp(st.mtimeNs) } : attr);
      if (linkKey !== undefined) this.links.set(linkKey, ino);
      this.progress?.entry();
    } catch (error) {
      this.fail(src, dest, error);
    }
  }

  /** The inode named `name` in `parent`, or undefined. */
  private lookup(parent: number, name: Uint8Array): number | undefined {
    try {
      return this.fs.lookup(parent, name);
    } catch (error) {
      if (error instanceof FsError && error.code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /** Sets each xattr; a failure is reported and the others are still set. */
  private setXattrs(dest: Buffer, ino: number, xattrs: Xattrs): void {
    for (const [name, value] of xattrs) {
      try {
        this.fs.setxattrInode(ino, name, value);
      } catch (error) {
        this.reporter.fail(dest, `cannot set xattr ${name}: ${reasonOf(error)}`);
        this.checkFatal(dest, error);
      }
    }
  }

  /** A directory's owner, mode and times, once nothing more will be made in it. */
  private finishDir(frame: Frame): void {
    try {
      this.fs.setattr(frame.ino, frame.attr);
    } catch (error) {
      this.fail(frame.src, frame.dest, error);
    }
  }

  /**
   * Streams the host file into image inode `ino`, CHUNK bytes at a time; blocks that are
   * all zeros are not written (they stay holes). The size is set at the end when the
   * file ends in zeros.
   */
  private copyData(src: Buffer, ino: number): void {
    const fd = nodefs.openSync(src, nodefs.constants.O_RDONLY | nodefs.constants.O_NOFOLLOW);
    try {
      const bs = this.zero.length;
      const buf = this.buffer;
      let pos = 0;
      let end = 0;
      const put = (offset: number, data: Buffer): void => {
        for (let done = 0; done < data.length; ) {
          const n = this.fs.write(ino, offset + done, data.subarray(done));
          if (n <= 0) throw new FsError('EIO', `short write at offset ${offset + done}`, { inode: ino });
          done += n;
        }
        end = offset + data.length;
      };
      for (;;) {
        const n = nodefs.readSync(fd, buf, 0, buf.length, pos);
        if (n === 0) break;
        let run = -1; // start of the current run of non-zero blocks in buf
        for (let off = 0; off < n; off += bs) {
          const stop = Math.min(off + bs, n);
          const zero = buf.compare(this.zero, 0, stop - off, off, stop) === 0;
          if (!zero && run < 0) run = off;
          else if (zero && run >= 0) {
            put(pos + run, buf.subarray(run, off));
            run = -1;
          }
        }
        if (run >= 0) put(pos + run, buf.subarray(run, n));
        pos += n;
        this.progress?.data(n);
      }
      if (end < pos) this.fs.truncate(ino, pos);
    } finally {
      nodefs.closeSync(fd);
    }
  }
}

/** What a walk of the source finds before the copy reads anything. */
interface Prescan {
  /** atime of every directory, by path relative to the source (latin1), taken before anything read it. */
  readonly dirAtimes: Map<string, bigint>;
  /** Entries and file bytes, for the progress bar (when asked for). */
  readonly entries: number;
  readonly bytes: number;
}

/**
 * Walks the source's directories before getfattr (and the progress count) read them: a
 * directory read updates its atime (relatime), so the atime to copy is taken here, by an
 * lstat before its readdir. With `count`, every entry is counted and files lstat'ed for
 * their sizes. Errors are left to the copy.
 */
function prescan(src: string, count: boolean): Prescan {
  const dirAtimes = new Map<string, bigint>();
  let entries = 0;
  let bytes = 0;
  const stack: [Buffer, Buffer][] = [[Buffer.from(src), Buffer.alloc(0)]];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [path, rel] = next;
    try {
      const st = nodefs.lstatSync(path, { bigint: true });
      entries++;
      if (st.isFile()) bytes += Number(st.size);
      if (!st.isDirectory()) continue;
      dirAtimes.set(rel.toString('latin1'), st.atimeNs);
      for (const e of nodefs.readdirSync(path, { encoding: 'buffer', withFileTypes: true })) {
        const child = joinPath(path, e.name);
        const childRel = rel.length === 0 ? e.name : joinPath(rel, e.name);
        if (e.isDirectory() || count) stack.push([child, childRel]);
      }
    } catch {
      // reported by the copy
    }
  }
  return { dirAtimes, entries, bytes };
}

/** The last component of a host path; '' when it is ".", ".." or "/" (the contents go into DEST itself). */
function hostBase(path: string): string {
  const parts = path.split('/').filter((p) => p !== '');
  const last = parts[parts.length - 1] ?? '';
  return last === '.' || last === '..' ? '' : last;
}

/** Returns false when something could not be copied (exit status 1). */
export async function put(image: string, args: readonly string[], options: PutOptions): Promise<boolean> {
  const sources = args.slice(0, -1);
  const dest = args[args.length - 1] ?? '';
  return withWritableImage(image, options, (fs) => {
    const reporter = new Reporter();
    const destIno = about(dest, () => existing(fs, dest, true));
    const destIsDir = destIno !== undefined && about(dest, () => fs.getattr(destIno)).kind === 'directory';
    if (sources.length > 1 && !destIsDir) throw new Failure(dest, destIno === undefined ? new FsError('ENOENT', 'No such file or directory') : new CliError('target is not a directory'));
    const putter = new Putter(fs, reporter, options, image);
    for (const src of sources) {
      if (putter.stopped) break;
      let target: Target;
      let destPath: Buffer;
      if (destIsDir) {
        const base = hostBase(src);
        target = base === '' ? { ino: destIno } : { parent: destIno, name: Buffer.from(base) };
        destPath = base === '' ? Buffer.from(dest) : joinPath(Buffer.from(dest), Buffer.from(base));
      } else {
        const { dir, base } = splitImagePath(dest);
        const parent = about(dest, () => fs.resolve(dir, true));
        target = { parent, name: Buffer.from(base) };
        destPath = Buffer.from(dest);
      }
      putter.copy(src, target, destPath);
    }
    return !reporter.failed;
  });
}
