/**
 * The small write commands: `mkdir`, `rm`, `mv`, `ln`, `chmod`, `chown`, `truncate`, and
 * opening an image for writing (shared with `put`).
 *
 * Each opens the image read-write, works path by path (a failing PATH prints one line,
 * `ext4ts: PATH: reason`, and the others are still done; the exit status is then 1),
 * and closes it: everything is written back and the filesystem is marked clean. A
 * failure to close is reported too (exit status 1).
 *
 * New inodes belong to the user running the command (as fuse2fs makes them), with the
 * process umask applied as mkdir(1) and truncate(1) would.
 */
import { InvalidArgumentError } from 'commander';
import { Ext4 } from '../fs/ext4.js';
import { FsError } from '../errors.js';
import { about, CliError, Failure, Reporter } from './errors.js';
import { printStats } from './image.js';
import { parseSize, type CommonOptions } from './options.js';
export { parseOctalMode } from './options.js';

/* ------------------------------------------------------------------ opening */

/** Opens IMAGE read-write with the common options. */
export function openWritable(image: string, options: CommonOptions): Ext4 {
  return Ext4.openFile(image, {
    write: true,
    checksums: options.checksums,
    ...(options.cacheSize === undefined ? {} : { cacheSize: options.cacheSize }),
    ...(options.offset === undefined ? {} : { offset: options.offset }),
  });
}

/**
 * Opens the image for writing, runs `body`, then closes it (write back, mark clean)
 * whatever `body` did. An error from `body` is rethrown after the close; an error from
 * the close is a Failure about the image (printed after `body`'s, if both failed).
 */
export async function withWritableImage<T>(image: string, options: CommonOptions, body: (fs: Ext4) => T | Promise<T>): Promise<T> {
  let fs: Ext4;
  try {
    fs = openWritable(image, options);
  } catch (error) {
    throw new Failure(image, error);
  }
  let result: T | undefined;
  let failure: { error: unknown } | undefined;
  try {
    result = await body(fs);
  } catch (error) {
    failure = { error };
  }
  if (options.stats === true) printStats(fs);
  try {
    fs.close();
  } catch (error) {
    if (failure === undefined) throw new Failure(image, error);
    new Reporter().error(image, error);
  }
  if (failure !== undefined) throw failure.error;
  return result as T;
}

/* ------------------------------------------------------------------ helpers */

/** The user's ids (0 where the platform has none), owners of what the commands create. */
export function creator(): { uid: number; gid: number } {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

function umask(): number {
  // process.umask() without an argument is deprecated for its race; read and restore.
  const mask = process.umask(0o022);
  process.umask(mask);
  return mask;
}

/** An image path split into its directory and last component ('' for "/"); trailing slashes ignored. */
export function splitImagePath(path: string): { dir: string; base: string } {
  const trimmed = path.replace(/\/+$/, '');
  const slash = trimmed.lastIndexOf('/');
  if (slash < 0) return { dir: '/', base: trimmed };
  return { dir: trimmed.slice(0, slash) === '' ? '/' : trimmed.slice(0, slash), base: trimmed.slice(slash + 1) };
}

/** Joins an image directory path and a name. */
export function joinImagePath(dir: string, name: string): string {
  return dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`;
}

/** The inode at `path` (following a last symlink when `follow`), or undefined when nothing is there. */
export function existing(fs: Ext4, path: string, follow: boolean): number | undefined {
  try {
    return fs.resolve(path, follow);
  } catch (error) {
    if (error instanceof FsError && error.code === 'ENOENT') return undefined;
    throw error;
  }
}

function isDirIno(fs: Ext4, ino: number | undefined): boolean {
  return ino !== undefined && fs.getattr(ino).kind === 'directory';
}

/** Runs `body` for every path; a failure is reported and the next path is done. Returns false if any failed. */
function eachPath(paths: readonly string[], body: (path: string) => void): boolean {
  const reporter = new Reporter();
  for (const path of paths) {
    try {
      about(path, () => body(path));
    } catch (error) {
      reporter.error(path, error);
    }
  }
  return !reporter.failed;
}

/** Parses an argument inside an action: a bad one is a CliError (commander only prints its own). */
function argument<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw new CliError(error.message);
    throw error;
  }
}

/* ------------------------------------------------------------------ mkdir */

export interface MkdirOptions extends CommonOptions {
  readonly parents?: boolean;
  readonly mode?: number;
}

/** A mode argument: octal digits (up to 07777). */
export async function mkdir(image: string, paths: readonly string[], options: MkdirOptions): Promise<boolean> {
  const who = creator();
  const defaultMode = 0o777 & ~umask();
  // mkdir -p: parents get the default mode, with u+wx so that the rest can be made in them.
  const parentMode = defaultMode | 0o300;
  return withWritableImage(image, options, (fs) =>
    eachPath(paths, (path) => {
      const mode = options.mode ?? defaultMode;
      if (options.parents !== true) {
        fs.mkdir(path, { mode, ...who });
        return;
      }
      const { dir, base } = splitImagePath(path);
      if (base === '' || base === '.' || base === '..') {
        if (!isDirIno(fs, existing(fs, path, true))) throw new FsError('ENOTDIR', 'Not a directory');
        return;
      }
      fs.mkdir(dir, { recursive: true, mode: parentMode, ...who });
      const there = existing(fs, path, true);
      if (there === undefined) fs.mkdir(path, { mode, ...who });
      else if (!isDirIno(fs, there)) throw new FsError('EEXIST', 'File exists (not a directory)');
    }),
  );
}

/* ------------------------------------------------------------------ rm */

export interface RmOptions extends CommonOptions {
  readonly recursive?: boolean;
  readonly force?: boolean;
}

export async function rm(image: string, paths: readonly string[], options: RmOptions): Promise<boolean> {
  return withWritableImage(image, options, (fs) =>
    eachPath(paths, (path) => {
      const { base } = splitImagePath(path);
      if (base === '') throw new CliError('refusing to remove the root directory');
      if (base === '.' || base === '..') throw new CliError('refusing to remove "." or ".."');
      const ino = existing(fs, path, false);
      if (ino === undefined) {
        if (options.force === true) return;
        throw new FsError('ENOENT', 'No such file or directory');
      }
      if (options.recursive !== true && isDirIno(fs, ino)) throw new CliError('Is a directory (use -r to remove it and its contents)');
      fs.rm(path, { recursive: options.recursive === true });
    }),
  );
}

/* ------------------------------------------------------------------ mv */

export interface MvOptions extends CommonOptions {
  /** false with -n/--no-clobber: an existing DEST is an error (EEXIST). */
  readonly clobber?: boolean;
}

const RENAME_NOREPLACE = 1;

export async function mv(image: string, args: readonly string[], options: MvOptions): Promise<boolean> {
  const sources = args.slice(0, -1);
  const dest = args[args.length - 1] ?? '';
  return withWritableImage(image, options, (fs) => {
    const destIsDir = about(dest, () => isDirIno(fs, existing(fs, dest, true)));
    if (sources.length > 1 && !destIsDir) throw new Failure(dest, new CliError('target is not a directory'));
    const flags = options.clobber === false ? RENAME_NOREPLACE : 0;
    return eachPath(sources, (src) => {
      const { base } = splitImagePath(src);
      if (base === '' || base === '.' || base === '..') throw new CliError('cannot move the root directory, "." or ".."');
      fs.rename(src, destIsDir ? joinImagePath(dest, base) : dest, flags);
    });
  });
}

/* ------------------------------------------------------------------ ln */

export interface LnOptions extends CommonOptions {
  readonly symbolic?: boolean;
  readonly force?: boolean;
}

export async function ln(image: string, target: string, linkName: string, options: LnOptions): Promise<boolean> {
  return withWritableImage(image, options, (fs) =>
    eachPath([linkName], () => {
      let where = linkName;
      if (isDirIno(fs, existing(fs, linkName, true))) {
        const { base } = splitImagePath(target);
        if (base === '' || base === '.' || base === '..') throw new FsError('EEXIST', 'File exists');
        where = joinImagePath(linkName, base);
      }
      if (options.force === true) {
        const there = existing(fs, where, false);
        if (there !== undefined) {
          if (isDirIno(fs, there)) throw new CliError('Is a directory: not replaced by a link');
          fs.rm(where);
        }
      }
      if (options.symbolic === true) {
        fs.symlink(target, where, creator());
        return;
      }
      about(target, () => fs.resolve(target, false)); // a missing TARGET is named as such
      fs.link(target, where);
    }),
  );
}

/* ------------------------------------------------------------------ chmod */

/**
 * A chmod(1) mode: octal, or symbolic clauses separated by commas, each
 * `[ugoa]*([-+=][rwxXst]*|[-+=][ugo])+`. Returns the new permission bits given the old
 * mode (type bits included, for X) and the umask (applied when no who letter is given).
 */
export function parseChmod(text: string): (oldMode: number, isDir: boolean) => number {
  if (/^[0-7]{1,5}$/.test(text) && parseInt(text, 8) <= 0o7777) {
    const value = parseInt(text, 8);
    // Like GNU chmod: fewer than 5 digits keep a directory's setuid/setgid bits.
    return (old, isDir) => (isDir && text.length < 5 ? value | (old & 0o6000) : value);
  }
  const clauses = text.split(',');
  const parsed = clauses.map((clause) => {
    const m = /^([ugoa]*)((?:[-+=](?:[rwxXst]*|[ugo]))+)$/.exec(clause);
    if (m === null) throw new InvalidArgumentError(`"${text}" is not a mode (octal like 755, or symbolic like u+x,go-w)`);
    const ops = [...(m[2] ?? '').matchAll(/([-+=])([rwxXst]*|[ugo])/g)].map((o) => ({ op: o[1] ?? '=', perms: o[2] ?? '' }));
    return { who: m[1] ?? '', ops };
  });
  const mask = umask();
  return (oldMode, isDir) => {
    let mode = oldMode & 0o7777;
    for (const { who, ops } of parsed) {
      const all = who === '' || who.includes('a');
      let whoMask = 0;
      if (all || who.includes('u')) whoMask |= 0o4700;
      if (all || who.includes('g')) whoMask |= 0o2070;
      if (all || who.includes('o')) whoMask |= 0o1007;
      for (const { op, perms } of ops) {
        let bits = 0;
        if (perms === 'u' || perms === 'g' || perms === 'o') {
          const shift = perms === 'u' ? 6 : perms === 'g' ? 3 : 0;
          const p = (mode >> shift) & 7;
          bits = p * 0o111;
        } else {
          for (const c of perms) {
            if (c === 'r') bits |= 0o444;
            else if (c === 'w') bits |= 0o222;
            else if (c === 'x') bits |= 0o111;
            else if (c === 'X' && (isDir || (mode & 0o111) !== 0)) bits |= 0o111;
            else if (c === 's') bits |= 0o6000;
            else if (c === 't') bits |= 0o1000;
          }
        }
        let affected = bits & whoMask;
        if (who === '') affected &= ~mask | 0o7000; // no who letter: the umask limits r/w/x
        if (op === '+') mode |= affected;
        else if (op === '-') mode &= ~affected;
        else {
          // '=': clear the who's bits (but a directory keeps setuid/setgid unless named), then set.
          const clear = whoMask & (isDir ? ~0o6000 | (bits & 0o6000) : ~0);
          mode = (mode & ~clear) | affected;
        }
      }
    }
    return mode;
  };
}

export async function chmod(image: string, modeText: string, paths: readonly string[], options: CommonOptions): Promise<boolean> {
  const compute = argument(() => parseChmod(modeText));
  return withWritableImage(image, options, (fs) =>
    eachPath(paths, (path) => {
      const ino = fs.resolve(path, true);
      const st = fs.getattr(ino);
      fs.setattr(ino, { mode: compute(st.mode, st.kind === 'directory') });
    }),
  );
}

/* ------------------------------------------------------------------ chown */

export interface ChownOptions extends CommonOptions {
  /** false with --no-dereference: a symlink itself changes owner. */
  readonly dereference?: boolean;
}

/** UID[:GID], UID:, :GID (numeric; UID: means the group is left alone, as numeric ids have no login group). */
export function parseOwner(text: string): { uid?: number; gid?: number } {
  const m = /^(\d*)(?:[:.](\d*))?$/.exec(text);
  const id = (s: string | undefined): number | undefined => {
    if (s === undefined || s === '') return undefined;
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n > 0xffff_fffe) throw new InvalidArgumentError(`"${s}" is not a valid numeric id`);
    return n;
  };
  if (m === null) throw new InvalidArgumentError(`"${text}" is not UID[:GID] (numeric ids)`);
  const uid = id(m[1]);
  const gid = id(m[2]);
  if (uid === undefined && gid === undefined) throw new InvalidArgumentError(`"${text}" names neither a user nor a group`);
  return { ...(uid === undefined ? {} : { uid }), ...(gid === undefined ? {} : { gid }) };
}

export async function chown(image: string, ownerText: string, paths: readonly string[], options: ChownOptions): Promise<boolean> {
  const owner = argument(() => parseOwner(ownerText));
  return withWritableImage(image, options, (fs) =>
    eachPath(paths, (path) => {
      fs.setattr(fs.resolve(path, options.dereference !== false), owner);
    }),
  );
}

/* ------------------------------------------------------------------ truncate */

export interface TruncateOptions extends CommonOptions {
  readonly size: string;
  /** false with -c/--no-create: a missing PATH is left missing (not an error). */
  readonly create?: boolean;
}

/** truncate(1)'s SIZE: [+-<>]NUMBER[KMGT]. */
export function parseTruncateSize(text: string): (old: number) => number {
  const m = /^([-+<>]?)(.*)$/.exec(text.trim());
  const op = m?.[1] ?? '';
  const n = parseSize(m?.[2] ?? '');
  switch (op) {
    case '+':
      return (old) => old + n;
    case '-':
      return (old) => Math.max(0, old - n);
    case '<':
      return (old) => Math.min(old, n);
    case '>':
      return (old) => Math.max(old, n);
    default:
      return () => n;
  }
}

export async function truncate(image: string, paths: readonly string[], options: TruncateOptions): Promise<boolean> {
  const size = argument(() => parseTruncateSize(options.size));
  const mode = 0o666 & ~umask();
  return withWritableImage(image, options, (fs) =>
    eachPath(paths, (path) => {
      let ino = existing(fs, path, true);
      if (ino === undefined) {
        if (options.create === false) return;
        fs.writeFile(path, new Uint8Array(0), { mode, ...creator() });
        ino = fs.resolve(path, true);
      }
      const st = fs.getattr(ino);
      if (st.kind === 'directory') throw new FsError('EISDIR', 'Is a directory');
      if (st.kind !== 'file') throw new FsError('EINVAL', `not a regular file (${st.kind})`);
      fs.setattr(ino, { size: size(st.size) });
    }),
  );
}
