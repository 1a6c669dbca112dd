/**
 * `ext4ts stat IMAGE PATH...`: everything about an inode: type, mode, owner, size,
 * links, nanosecond times, flags, where its data lives (extents / block runs, inline
 * data, fast symlink) and its extended attributes.
 */
import type { Ext4 } from '../fs/ext4.js';
import { mapRun, type BlockRun } from '../fs/blockmap.js';
import type { Stat, Timestamp } from '../fs/types.js';
import { EXTENTS_FL, INLINE_DATA_FL, type Inode } from '../ondisk/inode.js';
import { about, Reporter } from './errors.js';
import { flagNames, formatTimestamp, hex, isoTimestamp, kindWords, modeString } from './format.js';
import { withImage } from './image.js';
import type { CommonOptions } from './options.js';
import { Output } from './output.js';

export interface StatOptions extends CommonOptions {
  readonly json?: boolean;
  readonly dereference?: boolean;
}

export interface Run {
  /** First logical block. */
  readonly logical: number;
  /** First physical block (0 for a hole). */
  readonly physical: number;
  readonly count: number;
  readonly kind: BlockRun['kind'];
}

export type DataLayout =
  | { readonly kind: 'extents' | 'blocks'; readonly runs: readonly Run[] }
  | { readonly kind: 'inline' | 'fast-symlink' | 'none' };

/** Where an inode's data lives, from its block map or extent tree (`mapRun`). */
export function dataLayout(fs: Ext4, ino: number, st: Stat, inode: Inode): DataLayout {
  if (st.kind !== 'file' && st.kind !== 'directory' && st.kind !== 'symlink') return { kind: 'none' };
  if ((inode.flags & INLINE_DATA_FL) !== 0) return { kind: 'inline' };
  if (st.kind === 'symlink' && fs.isFastSymlink(inode)) return { kind: 'fast-symlink' };
  const runs = [...blockRuns(fs, ino, inode, Math.ceil(st.size / fs.sb.blockSize))];
  return { kind: (inode.flags & EXTENTS_FL) !== 0 ? 'extents' : 'blocks', runs };
}

/** The runs of logical blocks [0, blocks) of an extent- or block-mapped inode, in order. */
export function* blockRuns(fs: Ext4, ino: number, inode: Inode, blocks: number): Generator<Run> {
  const ctx = fs.mapContext; // its checksum seeds follow the filesystem's `checksums` option
  for (let lblk = 0; lblk < blocks; ) {
    const run = mapRun(ctx, ino, inode, lblk, blocks - lblk);
    if (!(run.count >= 1)) throw new Error(`mapRun returned a run of ${run.count} blocks at block ${lblk} of inode ${ino}`);
    yield { logical: lblk, physical: run.physical, count: run.count, kind: run.kind };
    lblk += run.count;
  }
}

interface StatReport {
  readonly path: string;
  readonly stat: Stat;
  readonly target: Buffer | undefined;
  readonly layout: DataLayout;
  readonly xattrs: readonly { readonly name: string; readonly size: number }[];
  readonly inlineSize: number;
}

function collect(fs: Ext4, path: string, options: StatOptions): StatReport {
  const ino = about(path, () => fs.resolve(path, options.dereference === true));
  return about(path, () => {
    const st = fs.getattr(ino);
    const inode = fs.readInode(ino);
    const target = st.kind === 'symlink' ? Buffer.from(fs.readlinkInode(ino)) : undefined;
    const layout = dataLayout(fs, ino, st, inode);
    const xattrs = fs.listxattrInode(ino).map((name) => ({ name, size: fs.getxattrInode(ino, name).length }));
    return { path, stat: st, target, layout, xattrs, inlineSize: layout.kind === 'inline' ? st.size : 0 };
  });
}

function timeJson(t: Timestamp | undefined): unknown {
  return t === undefined ? null : { seconds: t.seconds, nanoseconds: t.nanoseconds, iso: isoTimestamp(t) };
}

function toJson(r: StatReport): unknown {
  const st = r.stat;
  return {
    path: r.path,
    ino: st.ino,
    type: st.kind,
    mode: st.mode,
    permissions: `0${(st.mode & 0o7777).toString(8).padStart(4, '0')}`,
    modeString: modeString(st.kind, st.mode),
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    nlink: st.nlink,
    blocks: st.blocks,
    blksize: st.blksize,
    rdev: st.kind === 'char-device' || st.kind === 'block-device' ? { major: st.rdevMajor, minor: st.rdevMinor } : null,
    flags: st.flags,
    flagNames: flagNames(st.flags),
    generation: st.generation,
    atime: timeJson(st.atime),
    mtime: timeJson(st.mtime),
    ctime: timeJson(st.ctime),
    crtime: timeJson(st.birthtime),
    target: r.target === undefined ? null : r.target.toString('utf8'),
    targetHex: r.target === undefined ? null : r.target.toString('hex'),
    data: r.layout,
    xattrs: r.xattrs,
  };
}

function runText(r: Run): string {
  const range = (a: number, n: number): string => (n === 1 ? String(a) : `${a}..${a + n - 1}`);
  const blocks = `(${r.count} block${r.count === 1 ? '' : 's'})`;
  if (r.kind === 'hole') return `${range(r.logical, r.count)}: hole ${blocks}`;
  return `${range(r.logical, r.count)} -> ${range(r.physical, r.count)} ${blocks}${r.kind === 'unwritten' ? ' unwritten' : ''}`;
}

function toText(r: StatReport): Buffer {
  const st = r.stat;
  const lines: (string | Buffer)[] = [];
  lines.push(r.target === undefined ? `  File: ${r.path}\n` : Buffer.concat([Buffer.from(`  File: ${r.path} -> `), r.target, Buffer.from('\n')]));
  lines.push(`  Type: ${kindWords(st.kind)}\n`);
  lines.push(`  Size: ${String(st.size).padEnd(14)}Blocks: ${String(st.blocks).padEnd(10)}IO Block: ${st.blksize}\n`);
  const dev = st.kind === 'char-device' || st.kind === 'block-device' ? `   Device type: ${st.rdevMajor},${st.rdevMinor}` : '';
  lines.push(` Inode: ${String(st.ino).padEnd(14)}Links: ${st.nlink}${dev}\n`);
  lines.push(`Access: (${(st.mode & 0o7777).toString(8).padStart(4, '0')}/${modeString(st.kind, st.mode)})  Uid: ${st.uid}  Gid: ${st.gid}\n`);
  lines.push(`Access: ${formatTimestamp(st.atime)}\n`);
  lines.push(`Modify: ${formatTimestamp(st.mtime)}\n`);
  lines.push(`Change: ${formatTimestamp(st.ctime)}\n`);
  lines.push(` Birth: ${st.birthtime === undefined ? '-' : formatTimestamp(st.birthtime)}\n`);
  const names = flagNames(st.flags);
  lines.push(` Flags: ${hex(st.flags, 8)}${names.length > 0 ? ` (${names.join(', ')})` : ''}\n`);
  lines.push(`Generation: ${st.generation}\n`);
  const layout = r.layout;
  switch (layout.kind) {
    case 'extents':
    case 'blocks': {
      const data = layout.runs.filter((x) => x.kind !== 'hole').length;
      const what = layout.kind === 'extents' ? 'Extents' : 'Block runs';
      lines.push(`${what}: ${data}${layout.runs.length > data ? ` (and ${layout.runs.length - data} hole${layout.runs.length - data === 1 ? '' : 's'})` : ''}\n`);
      for (const run of layout.runs) lines.push(`  ${runText(run)}\n`);
      break;
    }
    case 'inline':
      lines.push(`Data: inline data (${r.inlineSize} byte${r.inlineSize === 1 ? '' : 's'} in the inode)\n`);
      break;
    case 'fast-symlink':
      lines.push(`Data: fast symlink (target stored in the inode)\n`);
      break;
    case 'none':
      break;
  }
  lines.push(`Xattrs: ${r.xattrs.length}\n`);
  for (const x of r.xattrs) lines.push(`  ${x.name} (${x.size} byte${x.size === 1 ? '' : 's'})\n`);
  return Buffer.concat(lines.map((l) => (typeof l === 'string' ? Buffer.from(l) : l)));
}

/** Returns false when a PATH failed (exit status 1). */
export async function stat(image: string, paths: readonly string[], options: StatOptions): Promise<boolean> {
  return withImage(image, options, async (fs) => {
    const out = new Output();
    const reporter = new Reporter();
    let first = true;
    for (const path of paths) {
      let report: StatReport;
      try {
        report = collect(fs, path, options);
      } catch (error) {
        reporter.error(path, error);
        continue;
      }
      if (options.json === true) {
        await out.write(`${JSON.stringify(toJson(report))}\n`);
      } else {
        await out.write(first ? '' : '\n');
        await out.write(toText(report));
      }
      first = false;
    }
    await out.flush();
    return !reporter.failed;
  });
}
