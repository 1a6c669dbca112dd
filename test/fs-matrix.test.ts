/**
 * The read side's main oracle: images built with `mke2fs -d` (then written to
 * through a read-write kernel mount) across a matrix of feature sets, read twice —
 * by a read-only kernel loop mount and by ext4ts — into one record per path (type,
 * mode, owner, size, links, times in ns, st_blocks, rdev, symlink target, content
 * digest, xattrs and ACLs) and compared path by path. Lookups by name (htree
 * directories of 30,000+ entries, a three-level large_dir htree, casefolded
 * directories) and errno codes are compared too.
 *
 * Without CONFIG_UNICODE the kernel cannot mount a casefold filesystem: it then reads
 * a copy with the feature and the +F flags cleared, and ext4ts' casefolded lookups are
 * checked against the names written (see prepare()).
 *
 * Needs root (loop mounts, mknod, chown), e2fsprogs, attr and acl. Knobs for
 * debugging: FS_MATRIX_ONLY=ext2,casefold (variants to run), FS_MATRIX_VERBOSE=1
 * (step timings), FS_MATRIX_MAX_DIFFS=N (differences shown), FS_MATRIX_DUMP=DIR
 * (both views as JSON).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { Ext4 } from '../src/fs/ext4.js';
import { FsError } from '../src/errors.js';
import type { Stat } from '../src/fs/types.js';
import { debugfs, dumpe2fsHeader, scratchDir } from './helpers/images.js';
import { CASEFOLD_NAMES, HUGE_SIZE, bigDirName, htreeName, kernelBigDir, kernelWrites, longName, populate, type TreeManifest, type TreeOptions } from './helpers/tree.js';
import {
  CHUNK,
  ContentDigest,
  WHOLE_LIMIT,
  displayName,
  joinBytes,
  kernelProbe,
  kernelSupportsCasefold,
  sortedXattrs,
  timeFromParts,
  unmountLeftovers,
  walkKernel,
  withMount,
  type PathRecord,
} from './helpers/kernel.js';

const enc = new TextEncoder();
const bytes = (s: string): Uint8Array => enc.encode(s);

// ------------------------------------------------------------------ the matrix

interface Variant {
  readonly name: string;
  readonly size: string;
  readonly mkfsArgs: readonly string[];
  readonly tree: TreeOptions;
  /** The kernel writes /kw through a read-write mount (needs rw support for the features). */
  readonly kernelWrites: boolean;
  readonly extents: boolean;
  /** Entries the kernel creates in /kw/htree. */
  readonly htreeEntries?: number;
  /** The kernel sets xattr values larger than a block (ea_inode). */
  readonly largeXattrs?: boolean;
  /** Long-named files the kernel creates in /ld (a deep large_dir htree). */
  readonly largeDirEntries?: number;
  /** Files the kernel creates in /bigdir. */
  readonly bigDirEntries?: number;
  /** Directory hash settings applied before the kernel writes: s_def_hash_version, and signed (vs unsigned) char hashing. */
  readonly hash?: { readonly alg: 'legacy' | 'half_md4' | 'tea'; readonly signed: boolean };
  /** Run `e2fsck -fyD` after building (indexes every directory, e.g. /bigdir). */
  readonly indexDirs?: boolean;
  /** Directories that must be htree-indexed, with their minimum `Indirect levels`. */
  readonly htrees?: readonly (readonly [string, number])[];
}

const MATRIX: readonly Variant[] = [
  {
    name: 'ext2',
    size: '160M',
    mkfsArgs: ['-t', 'ext2'],
    tree: { blockSize: 1024, inodeSize: 256, tripleIndirect: true },
    kernelWrites: true,
    extents: false,
    htreeEntries: 300,
  },
  {
    name: 'ext3',
    size: '160M',
    mkfsArgs: ['-t', 'ext3'],
    tree: { blockSize: 4096, inodeSize: 256, tripleIndirect: true, hugeSparse: true },
    kernelWrites: true,
    extents: false,
    htreeEntries: 1000,
    htrees: [['/kw/htree', 0]],
  },
  {
    name: 'ext4-4k',
    size: '160M',
    mkfsArgs: ['-t', 'ext4'],
    tree: { blockSize: 4096, inodeSize: 256, tripleIndirect: true, hugeSparse: true },
    kernelWrites: true,
    extents: true,
    htreeEntries: 1000,
    htrees: [['/kw/htree', 0]],
  },
  {
    name: 'ext4-1k',
    size: '160M',
    mkfsArgs: ['-t', 'ext4', '-N', '8192'],
    tree: { blockSize: 1024, inodeSize: 256, tripleIndirect: true },
    kernelWrites: true,
    extents: true,
    htreeEntries: 2000,
    htrees: [['/kw/htree', 1]],
  },
  {
    name: 'no-csum-no-64bit',
    size: '128M',
    mkfsArgs: ['-t', 'ext4', '-O', '^metadata_csum,^64bit'],
    tree: { blockSize: 4096, inodeSize: 256 },
    kernelWrites: true,
    extents: true,
    htreeEntries: 500,
  },
  {
    name: 'inline-data',
    size: '128M',
    mkfsArgs: ['-t', 'ext4', '-O', 'inline_data'],
    tree: { blockSize: 4096, inodeSize: 256 },
    kernelWrites: true,
    extents: true,
    htreeEntries: 500,
  },
  {
    name: 'meta-bg',
    size: '256M',
    // 1 KiB blocks: 32 groups of 8 MiB, 16 descriptors per block, so two meta groups;
    // few inodes per group, so the tree spreads over the groups of both.
    mkfsArgs: ['-t', 'ext4', '-O', 'meta_bg,^resize_inode', '-N', '1024'],
    tree: { blockSize: 1024, inodeSize: 256 },
    kernelWrites: true,
    extents: true,
    htreeEntries: 200,
  },
  {
    name: 'bigalloc',
    size: '256M',
    mkfsArgs: ['-t', 'ext4', '-O', 'bigalloc', '-C', '16384'],
    tree: { blockSize: 4096, inodeSize: 256, tripleIndirect: true },
    kernelWrites: true,
    extents: true,
    htreeEntries: 500,
  },
  {
    name: 'inode-128',
    size: '128M',
    mkfsArgs: ['-t', 'ext4'],
    tree: { blockSize: 4096, inodeSize: 128 },
    kernelWrites: true,
    extents: true,
    htreeEntries: 500,
  },
  {
    name: 'ea-inode',
    size: '128M',
    mkfsArgs: ['-t', 'ext4', '-O', 'ea_inode'],
    tree: { blockSize: 4096, inodeSize: 256 },
    kernelWrites: true,
    extents: true,
    htreeEntries: 300,
    largeXattrs: true,
  },
  {
    name: 'hash-tea-signed',
    size: '128M',
    mkfsArgs: ['-t', 'ext4'],
    tree: { blockSize: 1024, inodeSize: 256 },
    kernelWrites: true,
    extents: true,
    htreeEntries: 2000,
    hash: { alg: 'tea', signed: true },
    // e2fsck -D then re-indexes the mke2fs-made directories with the same settings.
    indexDirs: true,
    htrees: [
      ['/kw/htree', 1],
      ['/names', 0], // names with bytes >= 0x80: signed hashing matters
    ],
  },
  {
    name: 'hash-legacy',
    size: '128M',
    mkfsArgs: ['-t', 'ext4'],
    tree: { blockSize: 1024, inodeSize: 256 },
    kernelWrites: true,
    extents: true,
    htreeEntries: 2000,
    hash: { alg: 'legacy', signed: false },
    htrees: [['/kw/htree', 1]],
  },
  {
    name: 'casefold',
    size: '128M',
    mkfsArgs: ['-t', 'ext4', '-O', 'casefold'],
    tree: { blockSize: 4096, inodeSize: 256, casefold: true },
    // Without CONFIG_UNICODE the kernel mounts no casefold filesystem at all (see prepare()).
    kernelWrites: kernelSupportsCasefold(),
    extents: true,
    htreeEntries: 300,
    htrees: [['/cfbig', 0]],
  },
  {
    name: 'htree-30k',
    size: '256M',
    mkfsArgs: ['-t', 'ext4', '-N', '65536'],
    tree: { blockSize: 4096, inodeSize: 256 },
    kernelWrites: true,
    extents: true,
    bigDirEntries: 30000,
    // Then e2fsck -D rebuilds every index: /bigdir's htree as e2fsprogs lays it out.
    indexDirs: true,
    htrees: [['/bigdir', 0]],
  },
  {
    name: 'large-dir',
    size: '200M',
    mkfsArgs: ['-t', 'ext4', '-O', 'large_dir', '-N', '65536'],
    tree: { blockSize: 1024, inodeSize: 256 },
    kernelWrites: true,
    extents: true,
    htreeEntries: 2000,
    largeDirEntries: 40000,
    htrees: [
      ['/ld', 2],
      ['/kw/htree', 1],
    ],
  },
];

// ------------------------------------------------------------------ building and the kernel's view

/** A path probed by name on both sides: lstat (or stat with follow) -> "ino N" or an errno code. */
interface Probe {
  readonly path: Uint8Array;
  readonly follow: boolean;
}

interface Prepared {
  readonly image: string;
  readonly manifest: TreeManifest;
  readonly kernel: Map<string, PathRecord>;
  readonly prune: ReadonlySet<string>;
  readonly probes: readonly Probe[];
  readonly kernelProbes: readonly string[];
  /** Names the kernel created in /ld. */
  readonly largeDirNames: readonly string[];
  /** Casefold lookups answered by the kernel (null when it cannot mount casefold). */
  readonly kernelCasefold: ReadonlyMap<string, string> | null;
}

const VERBOSE = process.env.FS_MATRIX_VERBOSE !== undefined;
/** Run a step; with FS_MATRIX_VERBOSE set, print how long it took. */
function step<T>(variant: string, what: string, fn: () => T): T {
  const t0 = process.hrtime.bigint();
  const result = fn();
  if (VERBOSE) console.log(`# ${variant}: ${what}: ${Number(process.hrtime.bigint() - t0) / 1e6} ms`);
  return result;
}

let mountSeq = 0;
function mountPoint(name: string): string {
  return join(scratchDir(), `mnt-${name}-${process.pid}-${++mountSeq}`);
}

function sh(cmd: string, args: readonly string[], okStatus: readonly number[] = [0]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.error !== undefined) throw new Error(`${cmd} not runnable (install e2fsprogs/attr/acl): ${r.error.message}`);
  if (r.status === null || !okStatus.includes(r.status)) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

function inodeFlags(image: string, path: string): number {
  const m = /Flags: (0x[0-9a-f]+)/.exec(debugfs(image, `stat ${path}`));
  if (m === null) throw new Error(`debugfs stat ${path}: no Flags line`);
  return Number(m[1]);
}

const CASEFOLD_FL = 0x40000000;

/** Case variants of a name that a casefolded directory must resolve to the same entry. */
function caseVariants(name: string): string[] {
  const out = new Set([name.toUpperCase(), name.toLowerCase(), name.normalize('NFD'), name.toUpperCase().normalize('NFD')]);
  out.delete(name);
  return [...out];
}

function probesFor(v: Variant, manifest: TreeManifest, largeDirNames: readonly string[]): Probe[] {
  const p = (path: string | Uint8Array, follow = false): Probe => ({ path: typeof path === 'string' ? bytes(path) : path, follow });
  const out: Probe[] = [
    p('/nonexistent'),
    p('/small.txt/child'),
    p('/empty/'), // a trailing slash demands a directory
    p('/deep/'),
    p('//deep//a///b'),
    p('/links/to-dir/'), // lstat with a trailing slash follows the link
    p('/links/short/'),
    p('/links/dangling/'),
    p('/deep/a/b/c/d/e/f/g/h/leaf'),
    p('/deep/a/./b/../b/c'),
    p('/deep/a/b/c/nonexistent/x'),
    p('/links/short', true),
    p('/links/to-dir', true),
    p('/links/to-dir/c/d/e', true),
    p('/links/through-link/e/f', true),
    p('/links/dangling', true),
    p('/links/dangling/x', true),
    p('/links/loop-a', true),
    p('/links/loop-a/x', true),
    p('/links/not-a-dir', true),
    p('/links/to-dir/..', true),
    p('/names/CASE'),
    p('/names/Case'),
    p('/names/cASE'),
    p(`/names/${'x'.repeat(255)}`),
    p(`/names/${'x'.repeat(256)}`),
    p(`/names/${'x'.repeat(254)}`),
    p(Buffer.from([0x2f, 0x6e, 0x61, 0x6d, 0x65, 0x73, 0x2f, 0x62, 0x61, 0x64, 0xff, 0xfe, 0x2e, 0x62, 0x69, 0x6e])),
    p('/names/café'),
    p('/names/cafe\u0301'), // NFD: a different name outside casefolded directories
    p('/lost+found'),
    p('/special/socket'),
    p('/hard/sub/c'),
  ];
  if (v.kernelWrites) {
    out.push(p('/kw/holey-dir/f0'), p('/kw/holey-dir/f1'), p('/kw/holey-dir/f119'), p('/kw/holey-dir/f120'));
    for (let i = 0; i < (v.htreeEntries ?? 0); i += 97) out.push(p(`/kw/htree/${htreeName(i)}`), p(`/kw/htree/${htreeName(i).slice(0, -1)}`));
  }
  // A sample of the big directory, by name, plus near misses (same hash bucket neighbours are likely).
  const names = manifest.bigDirNames;
  for (let i = 0; i < names.length; i += Math.max(1, Math.floor(names.length / 400))) {
    const name = names[i] as string;
    out.push(p(`/bigdir/${name}`), p(`/bigdir/${name}x`), p(`/bigdir/${name.slice(0, -1)}`));
  }
  for (let i = 0; i < largeDirNames.length; i += Math.max(1, Math.floor(largeDirNames.length / 300))) {
    const name = largeDirNames[i] as string;
    out.push(p(`/ld/${name}`), p(`/ld/${name.slice(0, -1)}y`));
  }
  for (const name of manifest.casefoldNames) out.push(p(`/cf/${name}`));
  return out;
}

/** mke2fs arguments: the variant's, with the block and inode sizes always explicit (mke2fs.conf differs between machines). */
function mkfsArgs(v: Variant): string[] {
  return ['-b', String(v.tree.blockSize), '-I', String(v.tree.inodeSize), ...v.mkfsArgs];
}

/** Source trees by their options: variants with the same options share one. */
const sources = new Map<string, Promise<{ dir: string; manifest: TreeManifest }>>();

function sourceTree(options: TreeOptions): Promise<{ dir: string; manifest: TreeManifest }> {
  const key = JSON.stringify(options);
  let tree = sources.get(key);
  if (tree === undefined) {
    const dir = join(scratchDir(), `src-${sources.size}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const t0 = process.hrtime.bigint();
    tree = populate(dir, options).then((manifest) => {
      if (VERBOSE) console.log(`# populate ${key}: ${Number(process.hrtime.bigint() - t0) / 1e6} ms`);
      return { dir, manifest };
    });
    sources.set(key, tree);
  }
  return tree;
}

/** Build the variant's image (mke2fs -d, kernel writes, post-processing), then walk it through the kernel. */
async function prepare(v: Variant): Promise<Prepared> {
  const dir = join(scratchDir(), v.name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const { dir: src, manifest } = await sourceTree(v.tree);
  const image = join(dir, 'image.img');
  step(v.name, 'mke2fs -d', () => sh('mke2fs', ['-q', '-F', ...mkfsArgs(v), '-d', src, image, v.size]));

  if (v.tree.casefold === true) {
    // mke2fs -d does not set +F: set it on the (still linear) directories, then let
    // e2fsck -D index /cfbig with casefolded hashes. (Before the kernel writes, so that
    // the kernel's own casefolded directory /cfk keeps the htree the kernel built.)
    for (const d of ['/cf', '/cfbig']) sh('debugfs', ['-w', '-R', `set_inode_field ${d} flags 0x${(inodeFlags(image, d) | CASEFOLD_FL).toString(16)}`, image]);
    step(v.name, 'e2fsck -fyD', () => sh('e2fsck', ['-fyD', image], [0, 1]));
  }

  if (v.hash !== undefined) {
    sh('tune2fs', ['-E', `hash_alg=${v.hash.alg}`, image]);
    // s_flags: 1 = signed directory hash, 2 = unsigned (what mke2fs sets on x86).
    sh('debugfs', ['-w', '-R', `ssv flags ${v.hash.signed ? 1 : 2}`, image]);
  }

  let largeDirNames: string[] = [];
  let bigDirNames: string[] = [];
  if (v.kernelWrites) {
    withMount(image, mountPoint(v.name), { readOnly: false }, (mnt) => {
      step(v.name, 'kernel writes', () => kernelWrites(mnt, { extents: v.extents, htreeEntries: v.htreeEntries ?? 0, largeXattrs: v.largeXattrs === true }));
      if (v.largeDirEntries !== undefined) {
        const count = v.largeDirEntries;
        largeDirNames = step(v.name, `kernel creates ${count} long names`, () => kernelBigDir(join(mnt, 'ld'), count, longName));
      }
      if (v.bigDirEntries !== undefined) {
        const count = v.bigDirEntries;
        bigDirNames = step(v.name, `kernel creates ${count} names`, () => kernelBigDir(join(mnt, 'bigdir'), count, bigDirName));
      }
      if (v.tree.casefold === true) {
        // A directory made casefolded by the kernel itself, filled by it.
        mkdirSync(join(mnt, 'cfk'));
        sh('chattr', ['+F', join(mnt, 'cfk')]);
        for (const name of CASEFOLD_NAMES) closeSync(openSync(join(mnt, 'cfk', name), 'w'));
        for (let i = 0; i < 300; i++) closeSync(openSync(join(mnt, 'cfk', `Kernel-Made-${i}-ÑAME`), 'w'));
      }
    });
  }
  if (v.indexDirs === true) step(v.name, 'e2fsck -fyD', () => sh('e2fsck', ['-fyD', image], [0, 1]));
  // The image must be consistent before it can be an oracle for anything.
  step(v.name, 'e2fsck -fn', () => sh('e2fsck', ['-fn', image]));

  // Without kernel casefold support, the kernel reads a copy with the feature and the
  // +F flags cleared: the same bytes otherwise. /cfbig's htree is hashed over casefolded
  // names, which the kernel would then look up with plain hashes, so it is not walked
  // there (ext4ts' view of it is checked against the names written instead).
  const casefoldInKernel = v.tree.casefold !== true || kernelSupportsCasefold();
  let oracle = image;
  const prune = new Set<string>();
  if (!casefoldInKernel) {
    oracle = join(dir, 'oracle.img');
    copyFileSync(image, oracle);
    const cmds = ['feature -casefold', ...['/cf', '/cfbig'].map((d) => `set_inode_field ${d} flags 0x${(inodeFlags(image, d) & ~CASEFOLD_FL).toString(16)}`)];
    for (const c of cmds) sh('debugfs', ['-w', '-R', c, oracle]);
    prune.add('/cfbig');
  }
  const manifestAll: TreeManifest = { ...manifest, bigDirNames };

  const probes = probesFor(v, manifestAll, largeDirNames);
  let kernel = new Map<string, PathRecord>();
  let kernelProbes: string[] = [];
  let kernelCasefold: Map<string, string> | null = null;
  withMount(oracle, mountPoint(v.name), { readOnly: true }, (mnt) => {
    kernel = step(v.name, 'kernel walk', () => walkKernel(mnt, { prune }));
    kernelProbes = step(v.name, 'kernel probes', () => probes.map((pr) => kernelProbe(mnt, pr.path, pr.follow)));
    if (v.tree.casefold === true && casefoldInKernel) {
      kernelCasefold = new Map();
      for (const d of ['cf', 'cfk']) {
        for (const name of CASEFOLD_NAMES) {
          for (const variant of caseVariants(name)) kernelCasefold.set(`/${d}/${variant}`, kernelProbe(mnt, bytes(`/${d}/${variant}`), false));
        }
      }
    }
  });
  if (oracle !== image) rmSync(oracle, { force: true });
  return { image, manifest: manifestAll, kernel, prune, probes, kernelProbes, largeDirNames, kernelCasefold };
}

// ------------------------------------------------------------------ the ext4ts view

function codeOf(error: unknown): string {
  if (error instanceof FsError) return `${error.code} (${error.message})`;
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

function ext4Probe(fs: Ext4, path: Uint8Array, follow: boolean): string {
  try {
    return `ino ${(follow ? fs.stat(path) : fs.lstat(path)).ino}`;
  } catch (error) {
    if (error instanceof FsError) return error.code;
    throw error;
  }
}

/**
 * Reads of huge sparse files: below glibc's 128 KiB mmap threshold, so each fresh
 * zero-filled buffer comes from recycled heap memory instead of new pages that
 * fault in one by one when the digest scans a hole (3x faster on 5 GiB).
 */
const SPARSE_READ = 120 * 1024;

/** Content digest through ext4ts: readFile for small files, a stream for medium ones, read() chunks for big ones. */
async function ext4Digest(fs: Ext4, path: Uint8Array, st: Stat): Promise<string> {
  const digest = new ContentDigest(st.size);
  if (st.size === 0) {
    // No lookup again for the thousands of empty files of the big directories.
    digest.update(fs.read(st.ino, 0, 1));
  } else if (st.size <= WHOLE_LIMIT) {
    digest.update(fs.readFile(path));
  } else if (st.size <= 256 * CHUNK) {
    for await (const chunk of fs.createReadStream(path, { highWaterMark: CHUNK })) digest.update(chunk as Buffer);
  } else {
    // Streaming by inode, holes zero-filled by ext4ts: never the whole file in memory.
    for (let off = 0; off < st.size; off += SPARSE_READ) {
      const data = fs.read(st.ino, off, Math.min(SPARSE_READ, st.size - off));
      if (data.length === 0) break;
      digest.update(data);
    }
  }
  return digest.digest();
}

/**
 * Xattrs by inode (no second lookup per path); where there are any, the path API
 * must list and return the same.
 */
function ext4Xattrs(fs: Ext4, path: Uint8Array, ino: number): Record<string, string> {
  const out: Record<string, string> = {};
  const names = fs.listxattrInode(ino);
  for (const name of names) out[name] = Buffer.from(fs.getxattrInode(ino, name)).toString('hex');
  if (names.length > 0) {
    const byPath: Record<string, string> = {};
    for (const name of fs.listxattr(path)) byPath[name] = Buffer.from(fs.getxattr(path, name)).toString('hex');
    assert.deepEqual(sortedXattrs(byPath), sortedXattrs(out), `${displayName(path)}: xattrs by path differ from xattrs by inode`);
  }
  return sortedXattrs(out);
}

interface Ext4Walk {
  readonly records: Map<string, PathRecord>;
  /** ext4ts disagreeing with itself (entry inode vs lookup, readdir failures). */
  readonly problems: string[];
  /** Paths looked up by name (the others, in huge directories, by their entry's inode). */
  lookups: number;
}

/** In a directory with more entries than this, only every LOOKUP_STRIDE-th entry is looked up by name. */
const HUGE_DIR = 5000;
const LOOKUP_STRIDE = 8;

/**
 * The same walk as walkKernel, through ext4ts: readdir + lstat by full path (so every
 * path is looked up by name), readlink, content, xattrs. Huge directories are
 * looked up by name in a sample (see HUGE_DIR). A path that fails to read
 * becomes a record with `error`, and the walk goes on. Inconsistencies between
 * ext4ts' own answers (entry inode vs lstat inode) are returned as `problems`.
 */
async function walkExt4(fs: Ext4, prune: ReadonlySet<string>): Promise<Ext4Walk> {
  const walk: Ext4Walk = { records: new Map(), problems: [], lookups: 0 };
  const { records, problems } = walk;
  const stack: { path: Uint8Array; direntKind: string | null; direntIno: number | null; byName: boolean }[] = [
    { path: bytes('/'), direntKind: null, direntIno: null, byName: true },
  ];
  while (stack.length > 0) {
    const { path, direntKind, direntIno, byName } = stack.pop() as (typeof stack)[number];
    const key = displayName(path);
    const started = VERBOSE ? process.hrtime.bigint() : 0n;
    let st: Stat;
    try {
      // Every path by name (a full lookup from the root), except most entries of huge
      // directories: their inode from the entry (lookups there are sampled, and probed).
      st = byName || direntIno === null ? fs.lstat(path) : fs.getattr(direntIno);
      if (byName) walk.lookups++;
    } catch (error) {
      records.set(key, errorRecord(key, direntKind, `lstat: ${codeOf(error)}`));
      continue;
    }
    if (direntIno !== null && direntIno !== st.ino) problems.push(`${key}: directory entry names inode ${direntIno}, lstat by name finds ${st.ino}`);
    let target: string | null = null;
    let follows: string | null = null;
    let content: string | null = null;
    let xattrs: Record<string, string> = {};
    const errors: string[] = [];
    if (st.kind === 'symlink') {
      try {
        const t = fs.readlinkInode(st.ino);
        target = displayName(t);
        const text = fs.readlink(path);
        if (text !== new TextDecoder().decode(t)) problems.push(`${key}: readlink by path ${JSON.stringify(text)} differs from the inode's target`);
        if (t[0] !== 0x2f) follows = ext4Probe(fs, path, true);
      } catch (error) {
        errors.push(`readlink: ${codeOf(error)}`);
      }
    }
    if (st.kind === 'file') {
      try {
        content = await ext4Digest(fs, path, st);
      } catch (error) {
        errors.push(`read: ${codeOf(error)}`);
      }
    }
    try {
      xattrs = ext4Xattrs(fs, path, st.ino);
    } catch (error) {
      errors.push(`xattrs: ${codeOf(error)}`);
    }
    records.set(key, {
      path: key,
      kind: st.kind,
      direntKind,
      ino: st.ino,
      mode: st.mode.toString(8),
      nlink: st.nlink,
      uid: st.uid,
      gid: st.gid,
      size: st.size,
      blocks: st.blocks,
      blksize: st.blksize,
      rdev: `${st.rdevMajor}:${st.rdevMinor} (${st.rdev})`,
      atime: timeFromParts(st.atime.seconds, st.atime.nanoseconds),
      mtime: timeFromParts(st.mtime.seconds, st.mtime.nanoseconds),
      ctime: timeFromParts(st.ctime.seconds, st.ctime.nanoseconds),
      birthtime: st.birthtime === undefined ? null : timeFromParts(st.birthtime.seconds, st.birthtime.nanoseconds),
      target,
      follows,
      content,
      xattrs,
      ...(errors.length === 0 ? {} : { error: errors.join('; ') }),
    });
    if (VERBOSE) {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (ms > 100) console.log(`# ext4ts: ${key}: ${ms} ms`);
    }
    if (st.kind === 'directory' && !prune.has(key)) {
      try {
        const entries = fs.readdir(path, { withFileTypes: true });
        const stride = entries.length > HUGE_DIR ? LOOKUP_STRIDE : 1;
        entries.forEach((e, i) => stack.push({ path: joinBytes(path, e.rawName), direntKind: e.kind, direntIno: e.ino, byName: i % stride === 0 }));
      } catch (error) {
        problems.push(`${key}: readdir: ${codeOf(error)}`);
      }
    }
  }
  return walk;
}

function errorRecord(path: string, direntKind: string | null, error: string): PathRecord {
  return {
    path,
    kind: '?',
    direntKind,
    ino: -1,
    mode: '?',
    nlink: -1,
    uid: -1,
    gid: -1,
    size: -1,
    blocks: -1,
    blksize: -1,
    rdev: '?',
    atime: '?',
    mtime: '?',
    ctime: '?',
    birthtime: null,
    target: null,
    follows: null,
    content: null,
    xattrs: {},
    error,
  };
}

// ------------------------------------------------------------------ comparison

const FIELDS = ['kind', 'direntKind', 'ino', 'mode', 'nlink', 'uid', 'gid', 'size', 'blocks', 'blksize', 'rdev', 'atime', 'mtime', 'ctime', 'birthtime', 'target', 'follows', 'content', 'xattrs', 'error'] as const;
const MAX_REPORTED = Number(process.env.FS_MATRIX_MAX_DIFFS ?? 40);

function show(value: unknown): string {
  const s = JSON.stringify(value) ?? 'undefined';
  return s.length > 160 ? `${s.slice(0, 157)}...` : s;
}

/** Differences between the kernel's and ext4ts' records, path by path, in path order. */
function diffRecords(kernel: ReadonlyMap<string, PathRecord>, ours: ReadonlyMap<string, PathRecord>): string[] {
  const out: string[] = [];
  const keys = [...new Set([...kernel.keys(), ...ours.keys()])].sort();
  for (const key of keys) {
    const k = kernel.get(key);
    const o = ours.get(key);
    if (k === undefined) {
      out.push(`${key}: only ext4ts lists it (${o?.kind})`);
      continue;
    }
    if (o === undefined) {
      out.push(`${key}: only the kernel lists it (${k.kind})`);
      continue;
    }
    for (const f of FIELDS) {
      // A block device node's st_blksize is the block size of that device when the
      // host has it (bdev_statx), not anything stored in the filesystem.
      if (f === 'blksize' && k.kind === 'block-device') continue;
      const kv = f === 'xattrs' ? show(k.xattrs) : show(k[f]);
      const ov = f === 'xattrs' ? show(o.xattrs) : show(o[f]);
      if (kv !== ov) out.push(`${key}: ${f}: kernel ${kv}, ext4ts ${ov}`);
    }
    // Name by name, so a single differing xattr is named in the report.
    if (show(k.xattrs) !== show(o.xattrs)) {
      for (const name of new Set([...Object.keys(k.xattrs), ...Object.keys(o.xattrs)])) {
        if (k.xattrs[name] !== o.xattrs[name]) out.push(`${key}: xattr ${name}: kernel ${show(k.xattrs[name])}, ext4ts ${show(o.xattrs[name])}`);
      }
    }
  }
  return out;
}

function report(title: string, diffs: readonly string[]): string {
  const shown = diffs.slice(0, MAX_REPORTED).map((d) => `  ${d}`);
  const more = diffs.length > MAX_REPORTED ? [`  ... and ${diffs.length - MAX_REPORTED} more`] : [];
  return [`${title}: ${diffs.length} difference(s)`, ...shown, ...more].join('\n');
}

function htreeLevels(image: string, path: string): number | null {
  const out = debugfs(image, `htree ${path}`);
  const m = /Indirect levels: (\d+)/.exec(out);
  return m === null ? null : Number(m[1]);
}

// ------------------------------------------------------------------ the tests

after(() => unmountLeftovers());

/** FS_MATRIX_ONLY=ext2,inline-data runs only those variants (the hooks of the others would still build images). */
const only = process.env.FS_MATRIX_ONLY?.split(',');

for (const v of MATRIX.filter((m) => only === undefined || only.includes(m.name))) {
  describe(`fs matrix: ${v.name} (mke2fs ${mkfsArgs(v).join(' ')})`, () => {
    let prepared: Prepared | undefined;
    let fs: Ext4 | undefined;
    let ours: Ext4Walk | undefined;

    const ctx = (): { p: Prepared; fs: Ext4 } => {
      if (prepared === undefined || fs === undefined) throw new Error('the image was not prepared (see the before hook failure)');
      return { p: prepared, fs };
    };

    before(async () => {
      prepared = await prepare(v);
      fs = Ext4.openFile(prepared.image);
      const t0 = process.hrtime.bigint();
      ours = await walkExt4(fs, prepared.prune);
      if (VERBOSE) console.log(`# ${v.name}: ext4ts walk (${ours.records.size} paths, ${ours.lookups} by name): ${Number(process.hrtime.bigint() - t0) / 1e6} ms`);
      const dump = process.env.FS_MATRIX_DUMP;
      if (dump !== undefined) {
        // Both views as JSON, for looking at what is compared.
        mkdirSync(dump, { recursive: true });
        writeFileSync(join(dump, `${v.name}.kernel.json`), JSON.stringify([...prepared.kernel.values()], null, 1));
        writeFileSync(join(dump, `${v.name}.ext4ts.json`), JSON.stringify([...ours.records.values()], null, 1));
      }
    });

    after(() => {
      fs?.close();
      unmountLeftovers();
      if (prepared !== undefined) rmSync(prepared.image, { force: true });
    });

    it('every path reads the same as through the kernel (type, mode, owner, size, links, ns times, st_blocks, rdev, target, content, xattrs)', () => {
      const { p } = ctx();
      assert.ok(p.kernel.size > 100, `the kernel walk saw only ${p.kernel.size} paths`);
      const diffs = diffRecords(p.kernel, ours?.records ?? new Map());
      assert.equal(diffs.length, 0, report(`${v.name}: kernel vs ext4ts`, diffs));
    });

    it("ext4ts' directory entries agree with lookups by name", () => {
      const problems = ours?.problems ?? ['no ext4ts walk'];
      assert.equal(problems.length, 0, report(`${v.name}: readdir vs lstat`, problems));
    });

    it('lookups by name and their errno codes match the kernel', () => {
      const { p, fs } = ctx();
      const diffs: string[] = [];
      p.probes.forEach((pr, i) => {
        const k = p.kernelProbes[i] as string;
        const o = ext4Probe(fs, pr.path, pr.follow);
        if (k !== o) diffs.push(`${pr.follow ? 'stat' : 'lstat'} ${displayName(pr.path)}: kernel ${k}, ext4ts ${o}`);
      });
      assert.ok(p.probes.some((pr, i) => p.kernelProbes[i] === 'ENOENT' && displayName(pr.path) === '/nonexistent'), 'the kernel finds no /nonexistent');
      assert.equal(diffs.length, 0, report(`${v.name}: probes`, diffs));
    });

    it('the image holds the structures this variant is meant to cover (debugfs, dumpe2fs)', () => {
      const { p } = ctx();
      const header = dumpe2fsHeader(p.image);
      const features = new Set((header.get('Filesystem features') ?? '').split(/\s+/));
      const args = v.mkfsArgs.join(' ');
      const stat = (path: string): string => debugfs(p.image, `stat ${path}`);
      assert.equal(header.get('Block size'), String(v.tree.blockSize));
      assert.equal(header.get('Inode size'), String(v.tree.inodeSize));
      for (const f of ['inline_data', 'meta_bg', 'bigalloc', 'ea_inode', 'casefold', 'large_dir']) {
        assert.equal(features.has(f), args.includes(f), `feature ${f}: ${[...features].join(' ')}`);
      }
      if (args.includes('^metadata_csum')) assert.ok(!features.has('metadata_csum') && !features.has('64bit'), [...features].join(' '));
      if (args.includes('bigalloc')) assert.equal(header.get('Cluster size'), '16384');
      if (v.extents) {
        // 1024 extents: depth 1 with 4 KiB blocks (340 per leaf), depth 2 with 1 KiB blocks (84 per leaf, 4 in the inode).
        const want = v.tree.blockSize === 1024 ? 2 : 1;
        const depth = /^\s*0\/\s*(\d+)/m.exec(debugfs(p.image, 'ex /holes/many-extents'));
        assert.ok(depth !== null && Number(depth[1]) >= want, `/holes/many-extents has an extent tree of depth >= ${want}`);
      } else {
        assert.match(stat(v.tree.blockSize === 1024 ? '/holes/triple-indirect' : '/holes/huge-5g'), /\(TIND\)/, 'a file reaches the triple-indirect block');
      }
      if (v.tree.inodeSize > 128) {
        const inInode = stat('/xattr/in-inode');
        assert.match(inInode, /File ACL: 0\b/, '/xattr/in-inode: its xattr is in the inode, no xattr block');
        assert.match(inInode, /user\.a \(3\)/);
      }
      assert.doesNotMatch(stat('/xattr/many'), /File ACL: 0\b/, '/xattr/many has an xattr block');
      if (args.includes('inline_data')) {
        for (const path of ['/tiny-inline', '/medium-inline', '/deep/a/b']) {
          assert.match(stat(path), /Flags: 0x1[0-9a-f]{7}\b/, `${path} is inline data`);
        }
      }
      if (args.includes('meta_bg')) {
        // Inodes in the second meta group: its group descriptors are read from there.
        const perGroup = Number(header.get('Inodes per group'));
        const descPerBlock = v.tree.blockSize / (features.has('64bit') ? 64 : 32);
        const maxIno = Math.max(...[...p.kernel.values()].map((r) => r.ino));
        assert.ok(maxIno > descPerBlock * perGroup, `highest inode ${maxIno} is not past meta group 0 (${descPerBlock} groups of ${perGroup})`);
      }
      if (v.tree.casefold === true) {
        for (const d of ['/cf', '/cfbig']) assert.notEqual(inodeFlags(p.image, d) & CASEFOLD_FL, 0, `${d} has +F`);
      }
      if (v.hash !== undefined) {
        assert.equal(header.get('Default directory hash'), v.hash.alg);
        assert.match(header.get('Filesystem flags') ?? '', v.hash.signed ? /^signed_directory_hash/ : /^unsigned_directory_hash/);
        for (const [dir] of v.htrees ?? []) assert.match(debugfs(p.image, `htree ${dir}`), new RegExp(`Hash Version: ${{ legacy: 0, half_md4: 1, tea: 2 }[v.hash.alg]}\\b`), `${dir} is hashed with ${v.hash.alg}`);
      }
    });

    if (v.htrees !== undefined) {
      it(`indexed directories are htrees as expected (${v.htrees.map(([d, l]) => `${d} >= ${l}`).join(', ')}), listed in full`, () => {
        const { p, fs } = ctx();
        for (const [dir, minLevels] of v.htrees ?? []) {
          const levels = htreeLevels(p.image, dir);
          assert.notEqual(levels, null, `${dir} is not hash-indexed`);
          assert.ok((levels ?? -1) >= minLevels, `${dir}: ${levels} indirect levels, wanted >= ${minLevels}`);
          assert.notEqual(fs.lstat(dir).flags & 0x1000, 0, `${dir}: INDEX_FL not set`);
        }
        if (p.manifest.bigDirNames.length > 0) {
          const listed = new Set(fs.readdir('/bigdir'));
          assert.equal(listed.size, p.manifest.bigDirNames.length);
          const missing = p.manifest.bigDirNames.filter((n) => !listed.has(n));
          assert.deepEqual(missing.slice(0, 10), [], 'names written but not listed by ext4ts');
          assert.throws(() => fs.lstat('/bigdir/entry-999999-0'), (e: unknown) => e instanceof FsError && e.code === 'ENOENT');
        }
        if (p.largeDirNames.length > 0) {
          // (Lookups by name there: the walk's sample and the probes.)
          const listed = new Set(fs.readdir('/ld'));
          assert.equal(listed.size, p.largeDirNames.length);
          assert.deepEqual(p.largeDirNames.filter((n) => !listed.has(n)).slice(0, 10), [], 'names written but not listed by ext4ts');
        }
      });
    }

    if (v.tree.hugeSparse === true) {
      it('the 5 GiB sparse file reads its written bytes at high offsets and zeros elsewhere', () => {
        const { fs } = ctx();
        const st = fs.lstat('/holes/huge-5g');
        assert.equal(st.size, HUGE_SIZE);
        const at = (off: number, len: number): string => Buffer.from(fs.read(st.ino, off, len)).toString('latin1');
        assert.equal(at(123, 5), 'start');
        assert.equal(at(4 * 1024 * 1024 * 1024 + 12345, 11), 'above 4 GiB');
        assert.equal(at(4 * 1024 * 1024 * 1024 + 12340, 5), '\0'.repeat(5));
        assert.equal(fs.read(st.ino, HUGE_SIZE - 100, 1000).length, 100);
        assert.equal(fs.read(st.ino, HUGE_SIZE, 10).length, 0);
      });
    }

    if (v.tree.casefold === true) {
      it('casefolded directories: lookups in any case find the entry, listings keep the stored names', () => {
        const { p, fs } = ctx();
        const diffs: string[] = [];
        for (const d of ['/cf', ...(v.kernelWrites ? ['/cfk'] : [])]) {
          assert.notEqual(fs.lstat(d).flags & CASEFOLD_FL, 0, `${d} is not casefolded`);
          const listed = fs.readdir(d).sort();
          assert.deepEqual(listed, [...CASEFOLD_NAMES].concat(d === '/cfk' ? Array.from({ length: 300 }, (_, i) => `Kernel-Made-${i}-ÑAME`) : []).sort());
          for (const name of CASEFOLD_NAMES) {
            const ino = fs.lstat(`${d}/${name}`).ino;
            for (const variant of caseVariants(name)) {
              const got = ext4Probe(fs, bytes(`${d}/${variant}`), false);
              if (got !== `ino ${ino}`) diffs.push(`lstat ${d}/${variant}: ext4ts ${got}, want ino ${ino} (${name})`);
              const k = p.kernelCasefold?.get(`${d}/${variant}`);
              if (k !== undefined && k !== got) diffs.push(`lstat ${d}/${variant}: kernel ${k}, ext4ts ${got}`);
            }
          }
        }
        assert.equal(ext4Probe(fs, bytes('/cf/README.TXT'), false), `ino ${fs.lstat('/cf/readme.txt').ino}`);
        assert.equal(ext4Probe(fs, bytes('/cf/readme.txt.no'), false), 'ENOENT');
        // Outside casefolded directories case still matters.
        assert.equal(ext4Probe(fs, bytes('/SMALL.TXT'), false), 'ENOENT');
        // /cfbig: an htree over casefolded hashes (e2fsck -D): every written name listed,
        // and found by lookup in its stored, upper and lower case.
        const big = fs.readdir('/cfbig', { withFileTypes: true });
        assert.deepEqual(big.map((e) => e.name).sort(), [...p.manifest.casefoldBigNames].sort());
        for (const e of big) {
          for (const name of [e.name, e.name.toUpperCase(), e.name.toLowerCase()]) {
            const got = ext4Probe(fs, bytes(`/cfbig/${name}`), false);
            if (got !== `ino ${e.ino}`) diffs.push(`lstat /cfbig/${name}: ext4ts ${got}, want ino ${e.ino}`);
          }
        }
        assert.equal(ext4Probe(fs, bytes('/cfbig/File-0001-MIXED-not'), false), 'ENOENT');
        assert.equal(diffs.length, 0, report(`${v.name}: casefold lookups`, diffs));
      });
    }
  });
}
