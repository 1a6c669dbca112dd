/**
 * `ext4ts get IMAGE PATH DEST`: copy a file or a tree out of the image, like `cp -a`.
 *
 * Reproduced: type; content (streamed run by run, holes and unwritten extents left as
 * holes); permission bits with setuid/setgid/sticky; owner and group (when run as root);
 * atime and mtime to the nanosecond (see sysops.ts), directories' set after they are
 * filled; symlinks with their exact target bytes; hard links as hard links (inode ->
 * first extracted path); device nodes, fifos and sockets; xattrs: user.*, POSIX ACLs,
 * and as root trusted.* and security.capability. Names are bytes (Buffer paths).
 *
 * Order: the walk creates everything with private modes (files 0600, directories
 * 0700) and queues each inode's metadata; batches of finished files get, per file,
 * chown, xattrs, chmod, times; directories get theirs last, when nothing more will be
 * created in them. A directory inode met twice is a loop in a corrupted image: reported
 * and skipped. Errors are reported per file (`ext4ts: PATH: reason`) and the copy goes on;
 * the exit status is then 1.
 */
import * as nodefs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CopyProgress } from './progress.js';
import { ROOT_INO, type Ext4 } from '../fs/ext4.js';
import { FsError } from '../errors.js';
import type { Stat } from '../fs/types.js';
import { about, Failure, isSystemError, printable, Reporter, strerror } from './errors.js';
import { withImage } from './image.js';
import type { CommonOptions } from './options.js';
import { joinPath } from './ls.js';
import { isDotName } from '../ondisk/dirent.js';
import { chooseSysOps, type MetaRecord, type OpFailure, type SysOps } from './sysops.js';
import type { BackgroundFileWriter } from '../io/native.js';
import type { RawSource } from '../io/channel.js';
import { CHUNK } from './cat.js';

export interface GetOptions extends CommonOptions {
  readonly force?: boolean;
  /** false with --no-progress; the bar is only ever shown when stderr is a terminal. */
  readonly progress?: boolean;
}

/** Destination errors after which nothing more can be copied: the copy stops. */
const DEST_FATAL = new Set(['ENOSPC', 'EDQUOT', 'EROFS']);

/** Files per metadata batch (one helper process each with the python3 backend). */
const BATCH_FILES = 2048;
const BATCH_BYTES = 16 << 20;

/** The xattrs of a file that has none (shared: never changed). */
const NO_XATTRS: readonly (readonly [string, Uint8Array])[] = [];

/** A Node-style system error about the destination. */
function destError(code: string, detail?: string): Error {
  return Object.assign(new Error(detail ?? strerror(code)), { code });
}



interface PendingDir {
  readonly src: Buffer;
  readonly dest: Buffer;
  readonly ino: number;
  /** We made `dest` in this run: it is empty, so its entries need no lstat before being created. */
  readonly fresh: boolean;
  /** What is created in `dest` gets our effective ids as owner (see `ownGroup`). */
  readonly ownGroup: boolean;
  /** A file created in `dest` gets exactly the mode it is created with (see `plain`). */
  readonly plain: boolean;
}

/** Removes a file `get` created and could not finish; best effort (the write's error is the one reported). */
function unlinkQuietly(path: Buffer): void {
  try {
    nodefs.unlinkSync(path);
  } catch {
    // gone already, or the destination refuses: the write's error says what happened
  }
}

/** A regular file being created by `get`: opened on first need (O_EXCL, mode 0600), written at offsets, closed once. */
class NewFile {
  fd = -1;
  created = false;

  constructor(private readonly path: Buffer) {}

  /** Creates the file unless done already. */
  create(): void {
    if (this.created) return;
    this.fd = nodefs.openSync(this.path, nodefs.constants.O_WRONLY | nodefs.constants.O_CREAT | nodefs.constants.O_EXCL, 0o600);
    this.created = true;
  }

  /** All of `data` at `pos` (creating the file first if needed). */
  write(pos: number, data: Uint8Array): void {
    this.create();
    this.changing(() => {
      for (let done = 0; done < data.length; ) done += nodefs.writeSync(this.fd, data, done, data.length - done, pos + done);
    });
  }

  /** Gives the file its size (it ends in a hole). */
  truncate(size: number): void {
    this.changing(() => nodefs.ftruncateSync(this.fd, size));
  }

  /**
   * Runs a change of the file's data; if it fails, the file is closed and removed (we
   * created it: O_EXCL) so that it does not stay behind looking copied, and the error
   * is thrown naming the destination (not the image).
   */
  private changing(change: () => void): void {
    try {
      change();
    } catch (error) {
      try {
        this.abandon();
      } catch {
        // closing after a failed write may fail too
      }
      unlinkQuietly(this.path);
      throw new Failure(this.path, error);
    }
  }

  /** Closes the descriptor (its error is thrown). */
  close(): void {
    const fd = this.fd;
    this.fd = -1;
    nodefs.closeSync(fd);
  }

  /** Closes the descriptor if it is still open (after a failure). */
  abandon(): void {
    if (this.fd >= 0) this.close();
  }
}

class Extractor {
  private readonly linkMap = new Map<number, Buffer>();
  private readonly visited = new Set<number>();
  private readonly dirRecords: MetaRecord[] = [];
  private readonly stack: PendingDir[] = [];
  private batch: MetaRecord[] = [];
  private batchBytes = 0;
  private readonly isRoot = process.getuid?.() === 0;
  private readonly myUid = process.getuid?.() ?? -1;
  private readonly myGid = process.getgid?.() ?? -1;
  private readonly myEuid = process.geteuid?.() ?? -1;
  private readonly myEgid = process.getegid?.() ?? -1;
  private readonly ops: SysOps;
  /** Where files written in one call go (threads of their own), when the system calls are native. */
  private readonly writer: BackgroundFileWriter | undefined;
  /** The image file and the offset of its block 0, for the writer threads' reads. */
  private readonly rawSource: RawSource | undefined;
  private progress: CopyProgress = new CopyProgress('get', undefined);
  private scratch: string | undefined;
  private xattrWarned = false;
  /** True once the destination is full or read-only: nothing more is tried. */
  private stopped = false;
  /** Whether files created directly in `destRoot` get exactly the mode they are created with. */
  private readonly rootPlain: boolean;
  /** Whether what is created directly in `destRoot` gets our ids (see `entry`). */
  private readonly rootOwnGroup: boolean;

  constructor(
    private readonly fs: Ext4,
    private readonly reporter: Reporter,
    private readonly options: GetOptions,
    private readonly destRoot: string,
  ) {
    this.ops = chooseSysOps(() => (this.scratch = mkdtempSync(join(this.destRoot, '.ext4ts-tmp-'))));
    this.writer = this.ops.backgroundWriter?.();
    this.rawSource = this.writer === undefined ? undefined : fs.channel.rawSource();
    this.rootPlain = this.plainIn(this.destRoot);
    this.rootOwnGroup = this.ownGroupIn(nodefs.statSync(destRoot, { throwIfNoEntry: false }));
  }

  /**
   * Whether what is created in an existing directory (`st`, its stat) gets our
   * effective ids (so that a chown to them would change nothing): it is of our group and
   * not setgid. The new entry's group then comes out as ours whether the system takes it
   * from our egid or from the directory (setgid parents, grpid mounts).
   */
  private ownGroupIn(st: nodefs.Stats | undefined): boolean {
    return st !== undefined && st.gid === this.myEgid && (st.mode & 0o2000) === 0;
  }

  /**
   * Whether a file created in `dir` gets the mode it is created with: with our umask 0
   * (see run), unless `dir` has a default ACL. Only asked where files can be written in
   * one call (ops.writeNewFile): that is what it is for.
   */
  private plainIn(dir: string | Buffer): boolean {
    if (this.ops.writeNewFile === undefined || this.ops.plainCreation === undefined) return false;
    return this.ops.plainCreation(dir);
  }

  run(src: string, srcIno: number, target: Buffer): void {
    if (this.options.progress !== false && process.stderr.isTTY) {
      this.progress = new CopyProgress('get', this.prescan(srcIno));
      this.reporter.beforeWrite = () => this.progress.clearLine();
    }
    // Files written in one call get their mode at creation: exactly, with umask 0 (every
    // other creation passes an explicit private mode, or is followed by a chmod).
    const umask = this.ops.writeNewFile !== undefined ? process.umask(0) : undefined;
    try {
      // Copying the whole tree reads every inode in use: the device fetches the tables now.
      if (srcIno === ROOT_INO) this.fs.prefetchInodeTables();
      this.entry(Buffer.from(src), target, srcIno);
      for (let dir = this.stack.pop(); dir !== undefined; dir = this.stack.pop()) this.fillDir(dir);
      this.settleWriter(true);
      this.flush();
      this.removeScratch(); // before the directories' times: it lives in one of them
      // Directories last, deepest first: nothing will be created in them any more.
      const dirs = this.dirRecords.reverse();
      for (let i = 0; i < dirs.length; i += BATCH_FILES) this.report(this.ops.apply(dirs.slice(i, i + BATCH_FILES), this.isRoot));
    } finally {
      // Before the umask changes back: the files still queued are created under it.
      this.settleWriter(true);
      if (umask !== undefined) process.umask(umask);
      this.progress.stop();
      this.reporter.beforeWrite = undefined;
      this.removeScratch();
    }
  }

  private removeScratch(): void {
    if (this.scratch !== undefined) rmSync(this.scratch, { recursive: true, force: true });
    this.scratch = undefined;
  }

  /** Counts entries and bytes for the progress bar (errors are left to the real walk). */
  private prescan(ino: number): { entries: number; bytes: number } {
    let entries = 0;
    let bytes = 0;
    const seen = new Set<number>();
    const counted = new Set<number>();
    const stack = [ino];
    try {
      const st = this.fs.getattr(ino);
      entries = 1;
      if (st.kind === 'file') return { entries, bytes: st.size };
      if (st.kind !== 'directory') return { entries, bytes };
      for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
        if (seen.has(dir)) continue;
        seen.add(dir);
        try {
          for (const e of this.fs.readdirInode(dir)) {
            if (isDotName(e.rawName)) continue;
            entries++;
            if (e.kind === 'directory') stack.push(e.ino);
            else if (e.kind === 'file' && !counted.has(e.ino)) {
              counted.add(e.ino);
              try {
                bytes += this.fs.getattr(e.ino).size;
              } catch {
                // reported by the walk
              }
            }
          }
        } catch {
          // reported by the walk
        }
      }
    } catch {
      // reported by the walk
    }
    return { entries, bytes };
  }

  private fillDir(dir: PendingDir): void {
    if (this.stopped) return;
    let names: { name: Uint8Array; ino: number }[];
    try {
      const found: { name: Uint8Array; ino: number }[] = [];
      this.fs.forEachEntry(dir.ino, (name, ino) => {
        if (!isDotName(name)) found.push({ name, ino });
      });
      names = found;
    } catch (error) {
      this.fail(dir.src, dir.dest, error);
      return;
    }
    for (const { name, ino } of names) {
      if (this.stopped) return;
      this.entry(joinPath(dir.src, name), joinPath(dir.dest, name), ino, dir.fresh, dir.ownGroup, dir.plain);
    }
  }

  private fail(src: Buffer, dest: Buffer, error: unknown): void {
    if (error instanceof Failure) this.reporter.error(error.what, error.error);
    else if (isSystemError(error)) this.reporter.error(dest, error);
    else this.reporter.error(src, error);
    const cause = error instanceof Failure ? error.error : error;
    if (isSystemError(cause)) this.checkFatal(dest, cause.code);
  }

  /** After ENOSPC, EDQUOT or EROFS from the destination, the copy stops (saying so once). */
  private checkFatal(dest: Buffer, code: string | undefined): void {
    if (code !== undefined && DEST_FATAL.has(code) && !this.stopped) {
      this.stopped = true;
      this.reporter.fail(dest, 'the copy stops here');
    }
  }

  /**
   * Makes room for `dest`: 'absent' to create it, or the stat of the directory it is,
   * to fill.
   * In a directory this run created (`fresh`) nothing can be in the way: no lstat. (Two
   * entries of one name, in a corrupted image, then fail with EEXIST when created.)
   */
  private prepare(dest: Buffer, isDir: boolean, fresh: boolean): 'absent' | nodefs.Stats {
    if (fresh) return 'absent';
    const existing = nodefs.lstatSync(dest, { throwIfNoEntry: false });
    if (existing === undefined) return 'absent';
    if (isDir && existing.isDirectory()) return existing;
    if (this.options.force !== true) throw destError('EEXIST', 'File exists (use --force to replace it)');
    if (existing.isDirectory()) throw destError('EISDIR', 'cannot replace a directory with a non-directory');
    nodefs.unlinkSync(dest);
    return 'absent';
  }

  private wantedXattr(name: string): boolean {
    if (name.startsWith('user.') || name === 'system.posix_acl_access' || name === 'system.posix_acl_default') return true;
    return this.isRoot && (name.startsWith('trusted.') || name === 'security.capability');
  }

  private xattrs(src: Buffer, ino: number): readonly (readonly [string, Uint8Array])[] {
    try {
      const names = this.fs.listxattrInode(ino);
      if (names.length === 0) return NO_XATTRS; // most files: no arrays, no closures
      return names.filter((n) => this.wantedXattr(n)).map((n) => [n, this.fs.getxattrInode(ino, n)] as const);
    } catch (error) {
      this.reporter.error(src, error);
      return NO_XATTRS;
    }
  }

  private record(dest: Buffer, st: Stat, xattrs: readonly (readonly [string, Uint8Array])[]): MetaRecord {
    let mode = st.mode & 0o7777;
    // Like cp: without the original owner, setuid/setgid would grant our own ids.
    if (!this.isRoot && (st.uid !== this.myUid || st.gid !== this.myGid)) mode &= ~0o6000;
    return { path: dest, kind: st.kind, mode, uid: st.uid, gid: st.gid, atime: st.atime, mtime: st.mtime, xattrs };
  }

  /**
   * `ownGroup`: a file created in `dest`'s directory gets our effective uid and gid (so
   * a chown to those ids would change nothing). True for a directory we made whose
   * parent had the property, starting from a destination directory of our group without
   * the setgid bit: whether the group comes from our egid, a setgid parent or the
   * parent's group (grpid mounts), it is then ours. A pre-existing directory merged
   * into is judged the same way as the destination (`ownGroupIn`).
   */
  private entry(src: Buffer, dest: Buffer, ino: number, fresh = false, ownGroup = this.rootOwnGroup, plain = this.rootPlain): void {
    try {
      // Each inode is copied once: read without entering the inode cache (the calls
      // about it that follow find it remembered).
      const st = about(src, () => this.fs.getattr(ino, { cache: false }));
      if (st.kind !== 'directory' && st.nlink > 1) {
        const first = this.linkMap.get(ino);
        if (first !== undefined) {
          this.prepare(dest, false, fresh);
          if (this.writer?.busy === true) this.settleWriter(true); // `first` may still be queued
          nodefs.linkSync(first, dest);
          this.progress.entry();
          return;
        }
      }
      let metadataDone = false;
      switch (st.kind) {
        case 'directory': {
          if (this.visited.has(ino)) {
            this.reporter.fail(src, `corrupted directory: directory inode ${ino} is met a second time (a directory loop); skipped`);
            return;
          }
          this.visited.add(ino);
          const existing = this.prepare(dest, true, fresh);
          const made = existing === 'absent';
          if (made) nodefs.mkdirSync(dest, { mode: 0o700 });
          // A directory we make inherits its parent's default ACL (none when `plain`).
          // A directory merged into (the destination itself, for `get IMG / DIR`) is
          // judged by what it is now.
          this.stack.push({ src, dest, ino, fresh: made, ownGroup: existing === 'absent' ? ownGroup : this.ownGroupIn(existing), plain: made ? plain : this.plainIn(dest) });
          this.fs.prefetchBlocks(ino); // read side by side with the directories before it
          const record = this.record(dest, st, this.xattrs(src, ino));
          this.checkPrecision(record);
          this.dirRecords.push(record);
          this.progress.entry();
          return;
        }
        case 'file':
          this.prepare(dest, false, fresh);
          metadataDone = this.writeFile(src, dest, ino, st, ownGroup, fresh && plain);
          break;
        case 'symlink': {
          const target = about(src, () => this.fs.readlinkInode(ino));
          this.prepare(dest, false, fresh);
          nodefs.symlinkSync(Buffer.from(target), dest);
          break;
        }
        case 'char-device':
        case 'block-device':
        case 'fifo':
        case 'socket': {
          this.prepare(dest, false, fresh);
          const failures = this.ops.makeSpecial({ path: dest, kind: st.kind, mode: st.mode & 0o7777, major: st.rdevMajor, minor: st.rdevMinor });
          if (failures.length > 0) {
            this.report(failures);
            return;
          }
          break;
        }
        case 'unknown':
          throw new FsError('EUCLEAN', `unknown file type in mode 0${st.mode.toString(8)}`, { inode: ino });
      }
      if (st.nlink > 1) this.linkMap.set(ino, dest);
      if (!metadataDone) this.queue(this.record(dest, st, this.xattrs(src, ino)));
      this.progress.entry();
    } catch (error) {
      this.fail(src, dest, error);
    }
  }

  /** Where file data passes through on its way out (one buffer for the whole run). */
  private dataBuffer: Uint8Array | undefined;

  /**
   * Creates `dest` (O_EXCL: a new, empty file) and writes the data runs, leaving holes.
   * Syscalls: open, one pwrite per run (up to CHUNK bytes), ftruncate only when the file
   * ends in a hole (to give it its size), close. Where the system calls can (native
   * calls: `applyOpenFile`), the metadata goes on before the close too: fchown, xattrs,
   * fchmod, close, then the times; returns true then (nothing left to queue).
   *
   * A file whose data is one run (most are) and that needs nothing more (see
   * `quickRecord`) is written in one call instead (`ops.writeNewFile`: open with its
   * final mode, write, futimens, close); such a file is created when its data has been
   * read, so an unreadable one is not left behind empty.
   */
  private writeFile(src: Buffer, dest: Buffer, ino: number, st: Stat, ownGroup: boolean, plain: boolean): boolean {
    // A new file already has our ids: when they are the wanted owner, no fchown (one
    // syscall per file saved when root extracts root's files).
    const chown = this.isRoot && !(ownGroup && st.uid === this.myEuid && st.gid === this.myEgid);
    const record = this.quickRecord(src, dest, ino, st, plain, chown);
    const quick = record !== undefined && record.xattrs.length === 0 && (this.isRoot || (record.mode & 0o6000) === 0) ? record : undefined;
    if (quick !== undefined && this.writeFromImage(src, ino, quick)) return true;
    const file = new NewFile(dest);
    try {
      if (quick === undefined) file.create();
      let whole = false; // written by writeNewFile
      let end = 0; // the file's size so far
      this.dataBuffer ??= new Uint8Array(CHUNK);
      about(src, () =>
        this.fs.readDataRuns(ino, this.dataBuffer as Uint8Array, (pos, data) => {
          if (quick !== undefined && !whole && !file.created && pos === 0 && data.length === st.size) {
            this.writeNew(quick, data);
            whole = true;
          } else {
            file.write(pos, data);
          }
          end = pos + data.length;
          this.progress.data(data.length);
        }),
      );
      if (!whole && quick !== undefined && !file.created && st.size === 0) {
        this.writeNew(quick, new Uint8Array(0));
        whole = true;
      }
      if (whole) return true;
      file.create();
      if (end !== st.size) file.truncate(st.size);
      const applyOpenFile = this.ops.applyOpenFile;
      if (applyOpenFile === undefined) return false;
      this.report(applyOpenFile(file.fd, record ?? this.record(dest, st, this.xattrs(src, ino)), chown, () => file.close()));
      return true;
    } finally {
      file.abandon();
    }
  }

  /**
   * A file to write in one call whose data is one run of the image (most small files)
   * goes to the writer threads as that run's place: they read it from the image
   * themselves, so that neither the reading (a cold image: waiting on the disk) nor the
   * copying happens on this thread. False when that cannot be done (no writer, no file
   * descriptor to read from, or data in several runs): the caller goes on as before.
   */
  private writeFromImage(src: Buffer, ino: number, record: MetaRecord): boolean {
    const writer = this.writer;
    const raw = this.rawSource;
    if (writer === undefined || raw === undefined) return false;
    // (The record is a quick one: at most CHUNK bytes. An empty file has no run.)
    const run = about(src, () => this.fs.singleRun(ino));
    if (run === undefined) return false;
    const r = record;
    if (writer.addFromFd(r.path, raw.fd, raw.offset + run.offset, run.length, src, r.mode & 0o7777, r.atime.seconds, r.atime.nanoseconds, r.mtime.seconds, r.mtime.nanoseconds) > 0) this.settleWriter(false);
    this.progress.data(run.length);
    return true;
  }

  /**
   * The metadata of a file that may be written in one call (`ops.writeNewFile`): one
   * that needs no chown, small enough for one run, and created in a directory where it
   * gets exactly the mode it is created with (`plain`: umask 0, no default ACL; see
   * `plainIn`). Undefined otherwise. The caller still checks the record: a file with
   * xattrs, or one whose setuid/setgid bits writing would clear (without CAP_FSETID),
   * takes the long way.
   */
  private quickRecord(src: Buffer, dest: Buffer, ino: number, st: Stat, plain: boolean, chown: boolean): MetaRecord | undefined {
    if (this.ops.writeNewFile === undefined || !plain || chown || st.size > CHUNK) return undefined;
    return this.record(dest, st, this.xattrs(src, ino));
  }

  /**
   * `ops.writeNewFile`; a failure to create or write names the destination, as
   * openSync's would. With the background writer, the file is queued and its failures
   * are reported when they come back (`settleWriter`).
   */
  private writeNew(record: MetaRecord, data: Uint8Array): void {
    const writer = this.writer;
    if (writer !== undefined) {
      const r = record;
      if (writer.add(r.path, data, r.mode & 0o7777, r.atime.seconds, r.atime.nanoseconds, r.mtime.seconds, r.mtime.nanoseconds) > 0) this.settleWriter(false);
      return;
    }
    try {
      // A file not fully written is removed again by writeNewFile: not left behind looking copied.
      this.report((this.ops.writeNewFile as NonNullable<SysOps['writeNewFile']>)(record, data));
    } catch (error) {
      throw new Failure(record.path, error);
    }
  }

  /**
   * Reports what the background writer could not write: all of it once every queued
   * file is written (`drain`), or what failed so far. A file not created or not fully
   * written is an error about it (a partly written one is removed by the writer); times
   * not set, a failure like the other metadata's. Once the copy has stopped (the
   * destination is full or read-only), files queued before that fail the same way: not
   * reported again.
   */
  private settleWriter(drain: boolean): void {
    const writer = this.writer;
    if (writer === undefined) return;
    for (const { path, error, source } of drain ? writer.drain() : writer.take()) {
      if (source !== undefined) this.reporter.error(source, error); // reading the image
      else if (error.syscall === 'futimens') this.report([{ path, op: 'set times', code: error.code, message: strerror(error.code) }]);
      else if (!(this.stopped && DEST_FATAL.has(error.code))) this.fail(path, path, new Failure(path, error));
    }
  }

  private queue(record: MetaRecord): void {
    this.checkPrecision(record);
    this.batch.push(record);
    this.batchBytes += record.path.length + 64;
    for (const [name, value] of record.xattrs) this.batchBytes += name.length + value.length * 2;
    if (this.batch.length >= BATCH_FILES || this.batchBytes >= BATCH_BYTES) this.flush();
  }

  private timesWarned = false;

  /** Says once when the times cannot be copied exactly (no python3). */
  private checkPrecision(record: MetaRecord): void {
    if (this.ops.exactTimes || this.timesWarned) return;
    if (record.atime.nanoseconds % 1000 === 0 && record.mtime.nanoseconds % 1000 === 0) return;
    this.timesWarned = true;
    this.reporter.warn('python3 not found (see EXT4TS_PYTHON): times are copied to the microsecond only');
  }

  private flush(): void {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    this.report(this.ops.apply(batch, this.isRoot));
  }

  private report(failures: readonly OpFailure[]): void {
    for (const f of failures) {
      if (f.op.startsWith('setxattr') && (f.code === 'ENOTSUP' || f.code === 'EOPNOTSUPP')) {
        if (!this.xattrWarned) this.reporter.warn(`${printable(f.path)}: the destination does not support extended attributes; they are not copied`);
        this.xattrWarned = true;
        continue;
      }
      this.reporter.fail(f.path, `cannot ${f.op}: ${f.message}`);
      this.checkFatal(f.path, f.code);
    }
  }
}

/** The last component of an image path ('' for the root, '.' or '..'). */
function baseName(path: string): string {
  const parts = path.split('/').filter((p) => p !== '');
  const last = parts[parts.length - 1] ?? '';
  return last === '.' || last === '..' ? '' : last;
}

/** Returns false when something could not be copied (exit status 1). */
export async function get(image: string, path: string, dest: string, options: GetOptions): Promise<boolean> {
  return withImage(image, options, (fs) => {
    const reporter = new Reporter();
    const srcIno = about(path, () => fs.resolve(path, false));
    const destStat = nodefs.statSync(dest, { throwIfNoEntry: false });
    const base = baseName(path);
    const target = destStat?.isDirectory() === true && base !== '' ? joinPath(Buffer.from(dest), Buffer.from(base)) : Buffer.from(dest);
    // Scratch space for the fallback's mknod: on the destination filesystem, so rename works.
    const destRoot = destStat?.isDirectory() === true ? dest : join(dest, '..');
    const extractor = new Extractor(fs, reporter, options, destRoot);
    extractor.run(path, srcIno, target);
    return !reporter.failed;
  });
}
