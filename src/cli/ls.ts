/**
 * `ext4ts ls [-l] [-a] [-A] [-R] IMAGE [PATH]`: GNU `ls -n` layout (numeric owner and
 * group), names sorted by their bytes (as LC_ALL=C), names printed as raw bytes (as ls
 * does into a pipe).
 */
import type { Ext4 } from '../fs/ext4.js';
import type { DirEntryInfo, Stat, Timestamp } from '../fs/types.js';
import { about, Reporter } from './errors.js';
import { lsTime, modeString, now } from './format.js';
import { withImage, type CommonOptions } from './options.js';
import { Output } from './output.js';

export interface LsOptions extends CommonOptions {
  readonly long?: boolean;
  readonly all?: boolean;
  readonly almostAll?: boolean;
  readonly recursive?: boolean;
}

interface Row {
  readonly name: Buffer;
  readonly ino: number;
  /** Undefined when the inode could not be read (printed as `?`). */
  readonly stat: Stat | undefined;
  readonly target: Buffer | undefined;
  /** Has a POSIX ACL (ls -l marks it with '+'). */
  readonly acl: boolean;
}

const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

export function joinPath(base: Buffer, name: Uint8Array): Buffer {
  const sep = base.length > 0 && base[base.length - 1] === 0x2f ? [] : [Buffer.from('/')];
  return Buffer.concat([base, ...sep, name]);
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

class Lister {
  private readonly out = new Output();
  private readonly reporter = new Reporter();
  private readonly time: Timestamp = now();
  private readonly visited = new Set<number>();
  private first = true;

  constructor(
    private readonly fs: Ext4,
    private readonly options: LsOptions,
  ) {}

  get failed(): boolean {
    return this.reporter.failed;
  }

  async run(path: string): Promise<void> {
    const long = this.options.long === true;
    const ino = about(path, () => this.fs.resolve(path, !long));
    const st = about(path, () => this.fs.getattr(ino));
    if (st.kind !== 'directory') {
      // A single file: its line, named as given.
      await this.printRows([about(path, () => this.row(Buffer.from(path), ino, st))], false);
    } else {
      const stack: { path: Buffer; ino: number }[] = [{ path: Buffer.from(path), ino }];
      while (stack.length > 0) {
        const dir = stack.pop() as { path: Buffer; ino: number };
        const subdirs = await this.listDir(dir.path, dir.ino);
        for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i] as { path: Buffer; ino: number });
      }
    }
    await this.out.flush();
  }

  private hidden(name: Buffer): boolean {
    if (this.options.all === true) return false;
    if (name.equals(DOT) || name.equals(DOTDOT)) return true;
    return this.options.almostAll !== true && name[0] === 0x2e;
  }

  private row(name: Buffer, ino: number, known?: Stat): Row {
    const st = known ?? this.fs.getattr(ino);
    const long = this.options.long === true;
    const target = long && st.kind === 'symlink' ? toBuffer(this.fs.readlinkInode(ino)) : undefined;
    const acl = long && this.fs.listxattrInode(ino).some((n) => n === 'system.posix_acl_access' || n === 'system.posix_acl_default');
    return { name, ino, stat: st, target, acl };
  }

  /** Lists one directory; returns its subdirectories to visit (with -R), in order. */
  private async listDir(path: Buffer, ino: number): Promise<{ path: Buffer; ino: number }[]> {
    const recursive = this.options.recursive === true;
    if (this.visited.has(ino)) {
      this.reporter.fail(path, `corrupted directory: inode ${ino} was already listed (a directory loop); skipped`);
      return [];
    }
    this.visited.add(ino);
    let entries: DirEntryInfo[];
    try {
      entries = [...this.fs.readdirInode(ino)];
    } catch (error) {
      this.reporter.error(path, error);
      return [];
    }
    const rows: Row[] = [];
    const subdirs: { path: Buffer; ino: number }[] = [];
    const names = entries.map((e) => ({ e, name: toBuffer(e.rawName) })).filter(({ name }) => !this.hidden(name));
    names.sort((a, b) => Buffer.compare(a.name, b.name));
    for (const { e, name } of names) {
      const needStat = this.options.long === true || (recursive && e.kind === 'unknown');
      let row: Row = { name, ino: e.ino, stat: undefined, target: undefined, acl: false };
      if (needStat) {
        try {
          row = this.row(name, e.ino);
        } catch (error) {
          this.reporter.error(joinPath(path, name), error);
        }
      }
      rows.push(row);
      const isDir = row.stat !== undefined ? row.stat.kind === 'directory' : e.kind === 'directory';
      if (recursive && isDir && !name.equals(DOT) && !name.equals(DOTDOT)) subdirs.push({ path: joinPath(path, name), ino: e.ino });
    }
    if (recursive) {
      await this.out.write(this.first ? '' : '\n');
      await this.out.write(Buffer.concat([path, Buffer.from(':\n')]));
    }
    this.first = false;
    await this.printRows(rows, true);
    return subdirs;
  }

  private async printRows(rows: readonly Row[], withTotal: boolean): Promise<void> {
    if (this.options.long !== true) {
      for (const r of rows) await this.out.write(Buffer.concat([r.name, Buffer.from('\n')]));
      return;
    }
    let wLinks = 1;
    let wUid = 1;
    let wGid = 1;
    let wSize = 1;
    let wMajor = 0;
    let wMinor = 0;
    let blocks = 0;
    for (const { stat: st } of rows) {
      if (st === undefined) continue;
      blocks += st.blocks;
      wLinks = Math.max(wLinks, String(st.nlink).length);
      wUid = Math.max(wUid, String(st.uid).length);
      wGid = Math.max(wGid, String(st.gid).length);
      if (st.kind === 'char-device' || st.kind === 'block-device') {
        wMajor = Math.max(wMajor, String(st.rdevMajor).length);
        wMinor = Math.max(wMinor, String(st.rdevMinor).length);
        wSize = Math.max(wSize, wMajor + 2 + wMinor);
      } else {
        wSize = Math.max(wSize, String(st.size).length);
      }
    }
    if (withTotal) await this.out.write(`total ${Math.ceil(blocks / 2)}\n`);
    // Like GNU ls: a tenth mode character ('+' for an ACL) only when some entry of the listing has one.
    const anyAcl = rows.some((r) => r.acl);
    for (const r of rows) {
      const st = r.stat;
      let head: string;
      if (st === undefined) {
        head = `??????????${anyAcl ? ' ' : ''} ${'?'.padStart(wLinks)} ${'?'.padStart(wUid)} ${'?'.padStart(wGid)} ${'?'.padStart(wSize)} ${'?'.padStart(12)} `;
      } else {
        let size: string;
        if (st.kind === 'char-device' || st.kind === 'block-device') {
          const blanks = Math.max(0, wSize - (wMajor + 2 + wMinor));
          size = `${String(st.rdevMajor).padStart(wMajor + blanks)}, ${String(st.rdevMinor).padStart(wMinor)}`;
        } else {
          size = String(st.size).padStart(wSize);
        }
        head = `${modeString(st.kind, st.mode)}${anyAcl ? (r.acl ? '+' : ' ') : ''} ${String(st.nlink).padStart(wLinks)} ${String(st.uid).padStart(wUid)} ${String(st.gid).padStart(wGid)} ${size} ${lsTime(st.mtime, this.time)} `;
      }
      const tail = r.target === undefined ? [Buffer.from('\n')] : [Buffer.from(' -> '), r.target, Buffer.from('\n')];
      await this.out.write(Buffer.concat([Buffer.from(head), r.name, ...tail]));
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
