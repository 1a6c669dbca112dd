/**
 * A twin for write tests: every operation is applied to an ext4ts filesystem (path
 * API) and to a host directory (node:fs), so the image, read back through a kernel
 * loop mount, can be compared with the host tree. e2fsck -fn is the other oracle.
 */
import * as fs from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Ext4 } from '../../src/fs/ext4.js';
import { MemoryChannel } from '../../src/io/memory-channel.js';
import { FsError } from '../../src/errors.js';
import { snapshot, type EntrySnapshot } from './cli.js';
import { withMount } from './kernel.js';

/** e2fsck -fn: returns its output; throws with the output unless the filesystem is clean. */
export function fsckClean(image: string): string {
  const r = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`;
  if (r.status !== 0) throw new Error(`e2fsck -fn ${image} exited ${r.status}:\n${out}`);
  return out;
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

  /** Close the image, check it with e2fsck, and compare it (kernel mount) with the host tree. */
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

  verify(image: string, mnt: string): string[] {
    const stale = this.staleCachedInodes(image);
    this.fsys.close();
    fsckClean(image);
    const strip = (m: Map<string, EntrySnapshot>): Map<string, Omit<EntrySnapshot, 'mtimeNs' | 'atimeNs'>> =>
      new Map([...m].filter(([k]) => k !== '' && k !== 'lost+found').map(([k, { mtimeNs: _m, atimeNs: _a, ...rest }]) => [k, rest]));
    const expected = strip(snapshot(this.host));
    const actual = withMount(image, mnt, { readOnly: true }, (root) => strip(snapshot(root)));
    const diffs: string[] = [...this.mismatches, ...stale];
    for (const [k, e] of expected) {
      const a = actual.get(k);
      if (a === undefined) diffs.push(`missing in image: ${k}`);
      else {
        for (const field of new Set([...Object.keys(a), ...Object.keys(e)]) as Set<keyof typeof a>) {
          if (JSON.stringify(a[field]) !== JSON.stringify(e[field])) diffs.push(`${k}: ${field} image ${JSON.stringify(a[field])} != host ${JSON.stringify(e[field])}`.slice(0, 300));
        }
      }
    }
    for (const k of actual.keys()) if (!expected.has(k)) diffs.push(`extra in image: ${k}`);
    return diffs;
  }
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
