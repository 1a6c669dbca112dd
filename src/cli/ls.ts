/**
 * `ext4ts ls [-l] [-a] [-A] [-R] IMAGE [PATH]`: GNU `ls -n` layout (numeric owner and
 * group), names sorted by their bytes (as LC_ALL=C), names printed as raw bytes (as ls
 * does into a pipe).
 */
import { ROOT_INO, type Ext4 } from '../fs/ext4.js';
import type { FileKind, InodeListing } from '../fs/types.js';
import { about, Reporter } from './errors.js';
import { cachedModeString, LsTimes, now } from './format.js';
import { withImage } from './image.js';
import type { CommonOptions } from './options.js';
import { ByteSink, decimalDigits as digits } from './output.js';

export interface LsOptions extends CommonOptions {
  readonly long?: boolean;
  readonly all?: boolean;
  readonly almostAll?: boolean;
  readonly recursive?: boolean;
}

/*
 * Names and paths are handled as Latin-1 strings: one character per byte, so they
 * compare in byte order (as LC_ALL=C) with `<`, and go out byte for byte through the
 * sink's Latin-1 writes. A row goes into the sink's large buffer field by field.
 */

/**
 * One entry of a listing: filled in as the directory is read, then its inode described
 * into it (Ext4.describeInode; hasXattr: it has a POSIX ACL, marked '+'). One object per
 * entry and nothing else: a walk lists tens of thousands.
 */
interface Row extends InodeListing {
  /** The name's bytes as a Latin-1 string. */
  name: string;
  ino: number;
  /** From the entry's file type (used when the inode is not read). */
  dir: boolean;
  unknown: boolean;
  /** The inode was read into the row; else it is printed as `?`. */
  described: boolean;
}

function newRow(name: string, ino: number, dir: boolean, unknown: boolean): Row {
  return {
    name,
    ino,
    dir,
    unknown,
    described: false,
    kind: 'file',
    mode: 0,
    nlink: 0,
    uid: 0,
    gid: 0,
    size: 0,
    blocks: 0,
    rdevMajor: 0,
    rdevMinor: 0,
    mtimeSeconds: 0,
    mtimeNanoseconds: 0,
    target: undefined,
    hasXattr: false,
  };
}

interface Pending {
  /** Latin-1, like the names. */
  readonly path: string;
  readonly ino: number;
}

const ACL_NAMES = ['system.posix_acl_access', 'system.posix_acl_default'] as const;

/** `base/name` (one slash between them), as bytes. */
export function joinPath(base: Uint8Array, name: Uint8Array): Buffer {
  const sep = base.length > 0 && base[base.length - 1] === 0x2f ? 0 : 1;
  const out = Buffer.allocUnsafe(base.length + sep + name.length);
  out.set(base, 0);
  if (sep === 1) out[base.length] = 0x2f;
  out.set(name, base.length + sep);
  return out;
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/** The bytes of a Latin-1 string (for error messages). */
function bytesOf(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}

function joinLatin1(base: string, name: string): string {
  return base.endsWith('/') ? base + name : `${base}/${name}`;
}

/** Byte order of the names (Latin-1 strings compare as LC_ALL=C). */
function byName(a: Row, b: Row): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function isDevice(kind: FileKind): boolean {
  return kind === 'char-device' || kind === 'block-device';
}

class Lister {
  private readonly out = new ByteSink();
  private readonly reporter = new Reporter();
  private readonly times = new LsTimes(now());
  private readonly visited = new Set<number>();
  private readonly long: boolean;
  private readonly recursive: boolean;
  private first = true;

  constructor(
    private readonly fs: Ext4,
    private readonly options: LsOptions,
  ) {
    this.long = options.long === true;
    this.recursive = options.recursive === true;
  }

  get failed(): boolean {
    return this.reporter.failed;
  }

  async run(path: string): Promise<void> {
    const ino = about(path, () => this.fs.resolve(path, !this.long));
    const st = about(path, () => this.fs.getattr(ino));
    const name = latin1(Buffer.from(path));
    if (st.kind !== 'directory') {
      // A single file: its line, named as given.
      const row = newRow(name, ino, false, false);
      about(path, () => this.describe(row));
      this.printRows([row], false);
    } else {
      // A long recursive listing of the whole tree reads every inode in use: the device
      // fetches the tables now, in long reads.
      if (this.recursive && this.long && ino === ROOT_INO) this.fs.prefetchInodeTables();
      const stack: Pending[] = [{ path: name, ino }];
      for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
        const subdirs = this.listDir(dir.path, dir.ino);
        for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i] as Pending);
        await this.out.drain();
      }
    }
    await this.out.flush();
  }

  private hidden(name: string): boolean {
    if (this.options.all === true) return false;
    if (name === '.' || name === '..') return true;
    return this.options.almostAll !== true && name.charCodeAt(0) === 0x2e;
  }

  /** Reads the inode of `row` into it (without -l only its kind). */
  private describe(row: Row): void {
    if (this.long) this.fs.describeInode(row.ino, ACL_NAMES, row);
    else row.kind = this.fs.getattr(row.ino, { cache: false }).kind;
    row.described = true;
  }

  /** The rows of the directory being listed (`collect` adds to them). */
  private rows: Row[] = [];

  /**
   * forEachEntry's visitor, one function for the whole walk (not a closure per
   * directory): V8 optimizes it once, early, instead of each new closure anew.
   */
  private readonly collect = (rawName: Uint8Array, entryIno: number, kind: FileKind): void => {
    const name = this.nameOf(rawName);
    if (!this.hidden(name)) this.rows.push(newRow(name, entryIno, kind === 'directory', kind === 'unknown'));
  };

  /** A Buffer over the ArrayBuffer the last name was in (a directory block's names share one). */
  private namesBuffer: Buffer | undefined;

  /** `latin1(raw)` without a Buffer object per name. */
  private nameOf(raw: Uint8Array): string {
    let buf = this.namesBuffer;
    if (buf === undefined || buf.buffer !== raw.buffer) {
      buf = Buffer.from(raw.buffer, 0, raw.buffer.byteLength);
      this.namesBuffer = buf;
    }
    return buf.toString('latin1', raw.byteOffset, raw.byteOffset + raw.length);
  }

  /** Lists one directory; returns its subdirectories to visit (with -R), in order. */
  private listDir(path: string, ino: number): Pending[] {
    if (this.visited.has(ino)) {
      this.reporter.fail(bytesOf(path), `corrupted directory: inode ${ino} was already listed (a directory loop); skipped`);
      return [];
    }
    this.visited.add(ino);
    const rows: Row[] = [];
    this.rows = rows;
    try {
      this.fs.forEachEntry(ino, this.collect);
    } catch (error) {
      this.reporter.error(bytesOf(path), error);
      return [];
    }
    rows.sort(byName);
    const subdirs: Pending[] = [];
    for (const row of rows) {
      if (this.long || (this.recursive && row.unknown)) {
        try {
          this.describe(row);
        } catch (error) {
          // Nothing of a half-read inode is shown.
          row.described = false;
          this.reporter.error(bytesOf(joinLatin1(path, row.name)), error);
        }
      }
      const isDir = row.described ? row.kind === 'directory' : row.dir;
      if (this.recursive && isDir && row.name !== '.' && row.name !== '..') subdirs.push({ path: joinLatin1(path, row.name), ino: row.ino });
    }
    // The device fetches the subdirectories' blocks while this listing is printed and
    // the ones before them are listed: one synchronous miss each, cold, otherwise.
    for (const sub of subdirs) this.fs.prefetchBlocks(sub.ino);
    if (this.recursive) this.out.text(this.first ? `${path}:\n` : `\n${path}:\n`);
    this.first = false;
    this.printRows(rows, true);
    return subdirs;
  }

  private printRows(rows: readonly Row[], withTotal: boolean): void {
    const out = this.out;
    if (!this.long) {
      for (const r of rows) {
        out.latin1(r.name);
        out.byte(0x0a);
      }
      return;
    }
    let wLinks = 1;
    let wUid = 1;
    let wGid = 1;
    let wSize = 1;
    let wMajor = 0;
    let wMinor = 0;
    let blocks = 0;
    let anyAcl = false;
    for (const r of rows) {
      if (!r.described) continue;
      if (r.hasXattr) anyAcl = true;
      blocks += r.blocks;
      wLinks = Math.max(wLinks, digits(r.nlink));
      wUid = Math.max(wUid, digits(r.uid));
      wGid = Math.max(wGid, digits(r.gid));
      if (isDevice(r.kind)) {
        wMajor = Math.max(wMajor, digits(r.rdevMajor));
        wMinor = Math.max(wMinor, digits(r.rdevMinor));
        wSize = Math.max(wSize, wMajor + 2 + wMinor);
      } else {
        wSize = Math.max(wSize, digits(r.size));
      }
    }
    // Rows go into the sink field by field: no string per row (a walk's rows were a
    // fifth of what it allocated).
    if (withTotal) out.latin1(`total ${Math.ceil(blocks / 2)}\n`);
    // Like GNU ls: a tenth mode character ('+' for an ACL) only when some entry of the listing has one.
    const unknown = `??????????${anyAcl ? ' ' : ''} ${'?'.padStart(wLinks)} ${'?'.padStart(wUid)} ${'?'.padStart(wGid)} ${'?'.padStart(wSize)} ${'?'.padStart(12)} `;
    for (const r of rows) {
      if (!r.described) {
        out.latin1(unknown);
      } else {
        out.latin1(cachedModeString(r.kind, r.mode));
        if (anyAcl) out.byte(r.hasXattr ? 0x2b : 0x20);
        out.byte(0x20);
        out.padded(r.nlink, wLinks);
        out.byte(0x20);
        out.padded(r.uid, wUid);
        out.byte(0x20);
        out.padded(r.gid, wGid);
        out.byte(0x20);
        if (isDevice(r.kind)) {
          out.padded(r.rdevMajor, wMajor + Math.max(0, wSize - (wMajor + 2 + wMinor)));
          out.latin1(', ');
          out.padded(r.rdevMinor, wMinor);
        } else {
          out.padded(r.size, wSize);
        }
        out.byte(0x20);
        out.latin1(this.times.format(r.mtimeSeconds, r.mtimeNanoseconds));
        out.byte(0x20);
      }
      out.latin1(r.name);
      if (r.described && r.target !== undefined) {
        out.latin1(' -> ');
        out.bytes(r.target);
      }
      out.byte(0x0a);
    }
  }
}

/** Returns false when something could not be listed (exit status 1). */
export async function ls(image: string, path: string, options: LsOptions): Promise<boolean> {
  return withImage(image, options, async (fs) => {
    const lister = new Lister(fs, options);
    await lister.run(path);
    return !lister.failed;
  });
}
