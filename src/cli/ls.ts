/**
 * `ext4ts ls [-l] [-a] [-A] [-R] IMAGE [PATH]`: GNU `ls -n` layout (numeric owner and
 * group), names sorted by their bytes (as LC_ALL=C), names printed as raw bytes (as ls
 * does into a pipe).
 */
import { ROOT_INO, type Ext4 } from '../fs/ext4.js';
import type { Stat } from '../fs/types.js';
import { about, Reporter } from './errors.js';
import { cachedModeString, LsTimes, now } from './format.js';
import { withImage } from './image.js';
import type { CommonOptions } from './options.js';
import { ByteSink } from './output.js';

export interface LsOptions extends CommonOptions {
  readonly long?: boolean;
  readonly all?: boolean;
  readonly almostAll?: boolean;
  readonly recursive?: boolean;
}

/*
 * Names and paths are handled as Latin-1 strings: one character per byte, so they
 * compare in byte order (as LC_ALL=C) with `<`, and go out byte for byte through the
 * sink's Latin-1 writes. A row is then one string, appended to a large buffer.
 */

/** One entry of a listing: filled in as the directory is read, then stat'ed (one object per entry). */
interface Row {
  /** The name's bytes as a Latin-1 string. */
  name: string;
  ino: number;
  /** From the entry's file type (used when the inode is not read). */
  dir: boolean;
  unknown: boolean;
  /** Undefined when the inode was not or could not be read (printed as `?`). */
  stat: Stat | undefined;
  /** The symlink target's bytes as a Latin-1 string. */
  target: string | undefined;
  /** Has a POSIX ACL (ls -l marks it with '+'). */
  acl: boolean;
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

/** Decimal digits of a non-negative integer (String(n).length without the string). */
function digits(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

function isDevice(st: Stat): boolean {
  return st.kind === 'char-device' || st.kind === 'block-device';
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
      const row: Row = { name, ino, dir: false, unknown: false, stat: undefined, target: undefined, acl: false };
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

  /** Reads the inode of `row` into it (stat; with -l the symlink target and the ACL mark). */
  private describe(row: Row): void {
    if (!this.long) {
      row.stat = this.fs.getattr(row.ino, { cache: false });
      return;
    }
    const d = this.fs.describeInode(row.ino, ACL_NAMES);
    row.stat = d.stat;
    row.target = d.target === undefined ? undefined : latin1(d.target);
    row.acl = d.hasXattr;
  }

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
    try {
      this.fs.forEachEntry(ino, (rawName, entryIno, kind) => {
        const name = this.nameOf(rawName);
        if (!this.hidden(name)) rows.push({ name, ino: entryIno, dir: kind === 'directory', unknown: kind === 'unknown', stat: undefined, target: undefined, acl: false });
      });
    } catch (error) {
      this.reporter.error(bytesOf(path), error);
      return [];
    }
    rows.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const subdirs: Pending[] = [];
    for (const row of rows) {
      if (this.long || (this.recursive && row.unknown)) {
        try {
          this.describe(row);
        } catch (error) {
          // Nothing of a half-read inode is shown.
          row.stat = undefined;
          row.target = undefined;
          row.acl = false;
          this.reporter.error(bytesOf(joinLatin1(path, row.name)), error);
        }
      }
      const isDir = row.stat !== undefined ? row.stat.kind === 'directory' : row.dir;
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
      let names = '';
      for (const r of rows) names += `${r.name}\n`;
      out.text(names);
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
    for (const { stat: st, acl } of rows) {
      if (acl) anyAcl = true;
      if (st === undefined) continue;
      blocks += st.blocks;
      wLinks = Math.max(wLinks, digits(st.nlink));
      wUid = Math.max(wUid, digits(st.uid));
      wGid = Math.max(wGid, digits(st.gid));
      if (isDevice(st)) {
        wMajor = Math.max(wMajor, digits(st.rdevMajor));
        wMinor = Math.max(wMinor, digits(st.rdevMinor));
        wSize = Math.max(wSize, wMajor + 2 + wMinor);
      } else {
        wSize = Math.max(wSize, digits(st.size));
      }
    }
    // The listing is built as one string and appended once: a write into the sink per row
    // cost a call into the runtime each.
    let text = withTotal ? `total ${Math.ceil(blocks / 2)}\n` : '';
    // Like GNU ls: a tenth mode character ('+' for an ACL) only when some entry of the listing has one.
    const unknown = `??????????${anyAcl ? ' ' : ''} ${'?'.padStart(wLinks)} ${'?'.padStart(wUid)} ${'?'.padStart(wGid)} ${'?'.padStart(wSize)} ${'?'.padStart(12)} `;
    for (const r of rows) {
      const st = r.stat;
      let head: string;
      if (st === undefined) {
        head = unknown;
      } else {
        let size: string;
        if (isDevice(st)) {
          const blanks = Math.max(0, wSize - (wMajor + 2 + wMinor));
          size = `${String(st.rdevMajor).padStart(wMajor + blanks)}, ${String(st.rdevMinor).padStart(wMinor)}`;
        } else {
          size = String(st.size).padStart(wSize);
        }
        const mark = anyAcl ? (r.acl ? '+' : ' ') : '';
        head = `${cachedModeString(st.kind, st.mode)}${mark} ${String(st.nlink).padStart(wLinks)} ${String(st.uid).padStart(wUid)} ${String(st.gid).padStart(wGid)} ${size} ${this.times.format(st.mtime)} `;
      }
      text += r.target === undefined ? `${head}${r.name}\n` : `${head}${r.name} -> ${r.target}\n`;
    }
    out.text(text);
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
