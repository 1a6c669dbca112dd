/**
 * Directory blocks, htree blocks and inline directories, read straight from images
 * made by mke2fs -d (indexed by `e2fsck -fyD`), compared with debugfs (`ls -p`,
 * `htree`, `blocks`); plus round trips of the encoders and hostile-input properties.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { FsError } from '../src/errors.js';
import { crc32cRaw, crc32cRawU32 } from '../src/ondisk/crc.js';
import {
  DIRENT_TAIL_SIZE,
  FT,
  buildDirBlock,
  decodeDirBlock,
  decodeInlineDir,
  dirBlockChecksum,
  dirRecLen,
  fileTypeFromMode,
  insertDirEntry,
  insertDirEntryAt,
  findDirSlot,
  findInDirBlock,
  scanDirBlock,
  recLenFromDisk,
  recLenToDisk,
  removeDirEntry,
  setDirBlockChecksum,
  verifyDirBlockChecksum,
  type DirBlockOptions,
  type DirEntry,
  type DirEntryInput,
} from '../src/ondisk/dirent.js';
import {
  DX_HASH_CONTINUED,
  decodeDxNode,
  decodeDxRoot,
  dxLookup,
  dxNodeLimit,
  dxRootLimit,
  encodeDxNode,
  encodeDxRoot,
  isDxNodeBlock,
  setDxChecksum,
  verifyDxChecksum,
  type DxEntry,
  type DxNode,
  type DxRoot,
} from '../src/ondisk/htree.js';
import { dirHashName, effectiveHashVersion, hashSeedFromBytes } from '../src/ondisk/dirhash.js';
import { CASEFOLD_FL, namesEqualCasefold } from '../src/ondisk/casefold.js';
import { debugfs, makeImage, scratchDir, type ImageSpec } from './helpers/images.js';

const enc = new TextEncoder();
const bytesOf = (s: string): Uint8Array => enc.encode(s);
const nameKey = (name: Uint8Array): string => Buffer.from(name).toString('latin1');

// ---------------------------------------------------------------- image helpers

const INDEX_FL = 0x1000;
const INLINE_DATA_FL = 0x10000000;
const INCOMPAT_FILETYPE = 0x2;
const INCOMPAT_CSUM_SEED = 0x2000;
const INCOMPAT_LARGEDIR = 0x4000;
const RO_COMPAT_METADATA_CSUM = 0x400;

interface Super {
  readonly blockSize: number;
  readonly inodesCount: number;
  readonly inodeSize: number;
  readonly hasFileType: boolean;
  readonly largeDir: boolean;
  readonly metadataCsum: boolean;
  readonly fsCsumSeed: number;
  readonly hashSeed: [number, number, number, number];
  readonly sFlags: number;
}

function readSuper(image: string): Super {
  const sb = Buffer.alloc(1024);
  const fd = openSync(image, 'r');
  try {
    readSync(fd, sb, 0, 1024, 1024);
  } finally {
    closeSync(fd);
  }
  const incompat = sb.readUInt32LE(0x60);
  const roCompat = sb.readUInt32LE(0x64);
  const uuid = Uint8Array.from(sb.subarray(0x68, 0x78));
  return {
    blockSize: 1024 << sb.readUInt32LE(0x18),
    inodesCount: sb.readUInt32LE(0x0),
    inodeSize: sb.readUInt16LE(0x58),
    hasFileType: (incompat & INCOMPAT_FILETYPE) !== 0,
    largeDir: (incompat & INCOMPAT_LARGEDIR) !== 0,
    metadataCsum: (roCompat & RO_COMPAT_METADATA_CSUM) !== 0,
    fsCsumSeed: (incompat & INCOMPAT_CSUM_SEED) !== 0 ? sb.readUInt32LE(0x270) : crc32cRaw(0xffffffff, uuid),
    hashSeed: hashSeedFromBytes(Uint8Array.from(sb), 0xec),
    sFlags: sb.readUInt32LE(0x160),
  };
}

interface DirInode {
  readonly ino: number;
  readonly generation: number;
  readonly flags: number;
  /** Physical block of each logical block. */
  readonly blocks: readonly number[];
  readonly csumSeed: number;
}

function statDir(image: string, path: string, sb: Super): DirInode {
  const stat = debugfs(image, `stat ${path}`);
  const m = /Inode: (\d+)\s+Type: directory.*Flags: 0x([0-9a-f]+)\s+Generation: (\d+)/s.exec(stat);
  assert.ok(m !== null, `debugfs stat ${path}: ${stat.slice(0, 200)}`);
  const ino = Number(m[1]);
  const generation = Number(m[3]);
  return {
    ino,
    generation,
    flags: parseInt(m[2] as string, 16),
    blocks: blockMap(stat),
    csumSeed: crc32cRawU32(crc32cRawU32(sb.fsCsumSeed, ino), generation),
  };
}

/**
 * Physical block of each logical block, from debugfs stat's BLOCKS/EXTENTS list:
 * "(0-11):658-669, (IND):670, (12-41):671-700" or "(0-112):2328-2440"; mapping
 * blocks ((IND), (ETB0), ...) are skipped. (`debugfs blocks` would list them too.)
 */
function blockMap(stat: string): number[] {
  const section = /(?:BLOCKS|EXTENTS):\n([\s\S]*?)(?:\nTOTAL|\n\n|$)/.exec(stat);
  const map: number[] = [];
  if (section === null) return map;
  for (const m of (section[1] as string).matchAll(/\((\d+)(?:-(\d+))?\):(\d+)(?:-(\d+))?/g)) {
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    for (let l = first; l <= last; l++) map[l] = Number(m[3]) + (l - first);
  }
  return map;
}

function readBlock(image: string, blockSize: number, phys: number): Uint8Array {
  const buf = new Uint8Array(blockSize);
  const fd = openSync(image, 'r');
  try {
    assert.equal(readSync(fd, buf, 0, blockSize, phys * blockSize), blockSize);
  } finally {
    closeSync(fd);
  }
  return buf;
}

interface LsEntry {
  readonly ino: number;
  readonly mode: number;
}

/** `ls -p`: /ino/mode/uid/gid/name/size/ per entry; names are raw bytes (read as latin1). */
function lsDir(image: string, path: string): Map<string, LsEntry> {
  const out = execFileSync('debugfs', ['-R', `ls -p ${path}`, image], { encoding: 'latin1', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 28 });
  const map = new Map<string, LsEntry>();
  for (const line of out.split('\n')) {
    if (!line.startsWith('/')) continue;
    const parts = line.split('/');
    // ['', ino, mode, uid, gid, name..., size, '']
    const name = parts.slice(5, parts.length - 2).join('/');
    const ino = Number(parts[1]);
    if (ino === 0) continue; // unused records (e.g. dx_node fake entries) are listed too
    map.set(name, { ino, mode: parseInt(parts[2] as string, 8) });
  }
  return map;
}

interface DumpIntNode {
  count: number;
  limit: number;
  checksum: number | null;
  entries: DxEntry[];
}
interface DumpLeafEntry {
  readonly ino: number;
  readonly hash: number;
  readonly minorHash: number;
  readonly recLen: number;
  readonly name: string;
}
interface DumpLeaf {
  readonly block: number;
  text: string;
  entries: DumpLeafEntry[];
  checksum: number | null;
}
interface HtreeDump {
  hashVersion: number;
  levels: number;
  intNodes: DumpIntNode[];
  leaves: DumpLeaf[];
}

/** Parse debugfs `htree`: the root's and each dx_node's entry table, then each leaf's entries. */
function htreeDump(image: string, path: string): HtreeDump {
  const out = execFileSync('debugfs', ['-R', `htree ${path}`, image], { encoding: 'latin1', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 28 });
  const dump: HtreeDump = { hashVersion: -1, levels: -1, intNodes: [], leaves: [] };
  let node: DumpIntNode | null = null;
  let leaf: DumpLeaf | null = null;
  for (const line of out.split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^\s*Hash Version: (\d+)/.exec(line)) !== null) dump.hashVersion = Number(m[1]);
    else if ((m = /^\s*Indirect levels: (\d+)/.exec(line)) !== null) dump.levels = Number(m[1]);
    else if ((m = /^Number of entries \(count\): (\d+)/.exec(line)) !== null) {
      leaf = null;
      node = { count: Number(m[1]), limit: -1, checksum: null, entries: [] };
      dump.intNodes.push(node);
    } else if ((m = /^Number of entries \(limit\): (\d+)/.exec(line)) !== null && node !== null) node.limit = Number(m[1]);
    else if ((m = /^Checksum: 0x([0-9a-f]+)/.exec(line)) !== null && node !== null) node.checksum = parseInt(m[1] as string, 16);
    else if ((m = /^Entry #\d+: Hash 0x([0-9a-f]+), block (\d+)/.exec(line)) !== null) {
      leaf = null;
      if (node !== null) node.entries.push({ hash: parseInt(m[1] as string, 16), block: Number(m[2]) });
    } else if (line.trim() === '' && node !== null) node = null;
    else if ((m = /^Reading directory block (\d+), phys (\d+)/.exec(line)) !== null) {
      node = null;
      leaf = { block: Number(m[1]), text: '', entries: [], checksum: null };
      dump.leaves.push(leaf);
    } else if (leaf !== null) leaf.text += `${line}\n`;
  }
  for (const l of dump.leaves) {
    // The checksum line may follow the last entry on the same output line.
    const c = /leaf block checksum: 0x([0-9a-f]+)/.exec(l.text);
    if (c !== null) {
      l.checksum = parseInt(c[1] as string, 16);
      l.text = l.text.replace(c[0], '\n');
    }
    for (const m of l.text.matchAll(/(\d+) 0x([0-9a-f]+)-([0-9a-f]+) \((\d+)\) ([^ \n]+) {3}/g)) {
      l.entries.push({ ino: Number(m[1]), hash: parseInt(m[2] as string, 16), minorHash: parseInt(m[3] as string, 16), recLen: Number(m[4]), name: m[5] as string });
    }
  }
  return dump;
}

/** A copy of `image` with every directory re-indexed by e2fsck (mke2fs -d writes linear directories). */
function indexedCopy(image: string, tag: string): string {
  const copy = join(scratchDir(), `${tag}.indexed.img`);
  if (existsSync(copy)) return copy;
  copyFileSync(image, copy);
  const r = spawnSync('e2fsck', ['-fyD', copy], { encoding: 'utf8' });
  assert.ok(r.status === 0 || r.status === 1, `e2fsck -fyD: ${r.status} ${r.stdout} ${r.stderr}`);
  return copy;
}

function fsckClean(image: string): void {
  const r = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
  assert.equal(r.status, 0, `e2fsck -fn: ${r.stdout}`);
}

// ---------------------------------------------------------------- populations

function populateSmall(dir: string): void {
  mkdirSync(join(dir, 'small'));
  writeFileSync(join(dir, 'small', 'a'), 'x');
  writeFileSync(join(dir, 'small', 'bb'), '');
  mkdirSync(join(dir, 'small', 'sub'));
  symlinkSync('a', join(dir, 'small', 'link'));
  writeFileSync(join(dir, 'small', 'n'.repeat(255)), '');
  if (spawnSync('mkfifo', [join(dir, 'small', 'fifo')]).status !== 0) writeFileSync(join(dir, 'small', 'fifo'), '');
}

/** `count` empty files with names of lengths 1..~200 (deterministic). */
function populateMany(dir: string, sub: string, count: number): void {
  mkdirSync(join(dir, sub));
  for (let i = 0; i < count; i++) {
    const pad = 'abcdefghijklmnopqrstuvwxyz'.repeat(8).slice(0, (i * 37) % 190);
    writeFileSync(join(dir, sub, `${i.toString(36)}-${pad}`), '');
  }
}

const SPECS = {
  csum1k: {
    name: 'dir-csum1k',
    size: '96M',
    mkfsArgs: ['-t', 'ext4', '-b', '1024', '-N', '32768'],
    populate: (d: string) => {
      populateSmall(d);
      // 3,000 names of 3..200 bytes need ~140 leaves of 1 KiB: more than a dx_root
      // holds (123), so the index gets a level of dx_nodes. (mke2fs -d inserts into
      // linear directories, quadratic in their size: 20,000 names would take minutes.)
      populateMany(d, 'big', 3000);
    },
  },
  nocsum4k: {
    name: 'dir-nocsum4k',
    size: '64M',
    mkfsArgs: ['-t', 'ext4', '-b', '4096', '-O', '^metadata_csum'],
    populate: (d: string) => {
      populateSmall(d);
      populateMany(d, 'big', 3000);
    },
  },
  bs64k: {
    name: 'dir-bs64k',
    size: '128M',
    mkfsArgs: ['-t', 'ext4', '-b', '65536', '-N', '8192', '-O', '^metadata_csum'],
    populate: (d: string) => {
      populateSmall(d);
      populateMany(d, 'big', 3000);
    },
  },
  ext2: {
    name: 'dir-ext2',
    size: '32M',
    mkfsArgs: ['-t', 'ext2', '-b', '1024', '-O', '^dir_index'],
    populate: (d: string) => {
      populateSmall(d);
      populateMany(d, 'big', 400);
    },
  },
  ext2NoFiletype: {
    name: 'dir-ext2-nofiletype',
    size: '32M',
    mkfsArgs: ['-t', 'ext2', '-b', '1024', '-O', '^dir_index,^filetype'],
    populate: (d: string) => {
      populateSmall(d);
      populateMany(d, 'big', 400);
    },
  },
  casefold: {
    name: 'dir-casefold',
    size: '32M',
    mkfsArgs: ['-t', 'ext4', '-b', '1024', '-O', 'casefold', '-E', 'encoding=utf8'],
    populate: (d: string) => {
      mkdirSync(join(d, 'cf'));
      const stems = ['Straße', 'ÉCOLE', 'école', 'Ǆemal', 'ΣΊΣΥΦΟΣ', 'ﬃx', 'Ångström', 'résumé', 'İstanbul', 'Ꭰꭰ', 'Ⅻ', 'ǅ', 'Ωmega', 'ΐota', 'ᾈ', '한국어', 'a\u200bb'];
      for (let i = 0; i < 600; i++) {
        const stem = stems[i % stems.length] as string;
        const tail = i % 3 === 0 ? 'é' : i % 3 === 1 ? 'E\u0301' : 'e';
        writeFileSync(join(d, 'cf', `${stem}_${i}_${'X'.repeat(i % 17)}${tail}`), '');
      }
    },
  },
  inline: {
    name: 'dir-inline',
    size: '16M',
    mkfsArgs: ['-t', 'ext4', '-O', 'inline_data'],
    populate: (d: string) => {
      mkdirSync(join(d, 'tiny'));
      writeFileSync(join(d, 'tiny', 'a'), '');
      writeFileSync(join(d, 'tiny', 'b'), '');
      mkdirSync(join(d, 'spill'));
      writeFileSync(join(d, 'spill', 'first'), '');
    },
  },
} satisfies Record<string, ImageSpec>;

// ---------------------------------------------------------------- directory checks

interface Collected {
  readonly entries: DirEntry[];
  /** Sample blocks for the hostile-input properties. */
  readonly samples: { kind: 'leaf' | 'root' | 'node'; bytes: Uint8Array }[];
}

function checkAgainstLs(image: string, path: string, sb: Super, entries: readonly DirEntry[]): void {
  const ls = lsDir(image, path);
  const seen = new Map<string, DirEntry>();
  for (const e of entries) {
    const key = nameKey(e.name);
    assert.ok(!seen.has(key), `duplicate entry ${key}`);
    seen.set(key, e);
  }
  assert.equal(seen.size, ls.size, `${path}: ${seen.size} decoded entries vs ${ls.size} from debugfs ls`);
  for (const [name, want] of ls) {
    const got = seen.get(name);
    assert.ok(got !== undefined, `${path}: entry ${JSON.stringify(name)} missing`);
    assert.equal(got.inode, want.ino, `${path}/${name}: inode`);
    assert.equal(got.fileType, sb.hasFileType ? fileTypeFromMode(want.mode) : FT.UNKNOWN, `${path}/${name}: file type`);
  }
}

/** A non-indexed directory: every block is a leaf. */
/** scanDirBlock visits what decodeDirBlock decodes (live entries, in order), or fails as it does. */
function scanAgrees(b: Uint8Array, options: DirBlockOptions): void {
  let decoded: { inode: number; name: number[]; fileType: number }[] | undefined;
  let decodeError: unknown;
  try {
    decoded = decodeDirBlock(b, options).entries.map((e) => ({ inode: e.inode, name: [...e.name], fileType: e.fileType }));
  } catch (e) {
    decodeError = e;
  }
  const seen: { inode: number; name: number[]; fileType: number }[] = [];
  let scanError: unknown;
  try {
    scanDirBlock(b, options, (name, inode, fileType) => seen.push({ inode, name: [...name], fileType }));
  } catch (e) {
    scanError = e;
  }
  if (decodeError === undefined) {
    assert.equal(scanError, undefined);
    assert.deepEqual(seen, decoded);
  } else {
    assert.ok(scanError instanceof FsError && decodeError instanceof FsError, String(scanError));
    assert.equal(scanError.message, decodeError.message);
  }
}

function checkLinearDir(image: string, path: string): Collected {
  const sb = readSuper(image);
  const dir = statDir(image, path, sb);
  assert.equal(dir.flags & INDEX_FL, 0, `${path} is not indexed`);
  const entries: DirEntry[] = [];
  const samples: Collected['samples'] = [];
  dir.blocks.forEach((phys, logical) => {
    const bytes = readBlock(image, sb.blockSize, phys);
    const options = {
      blockSize: sb.blockSize,
      hasFileType: sb.hasFileType,
      hasChecksumTail: sb.metadataCsum,
      inodesCount: sb.inodesCount,
      block: logical,
      inode: dir.ino,
      ...(sb.metadataCsum ? { csumSeed: dir.csumSeed } : {}),
    };
    const block = decodeDirBlock(bytes, options);
    scanAgrees(bytes, options);
    if (sb.metadataCsum) {
      assert.ok(verifyDirBlockChecksum(bytes, sb.blockSize, dir.csumSeed), `${path} block ${logical} checksum`);
      assert.equal(block.tail?.checksum, dirBlockChecksum(bytes, sb.blockSize, dir.csumSeed));
    }
    if (logical === 0) {
      assert.deepEqual([...(block.entries[0]?.name ?? [])], [0x2e]);
      assert.deepEqual([...(block.entries[1]?.name ?? [])], [0x2e, 0x2e]);
      assert.equal(block.entries[0]?.inode, dir.ino);
    }
    // Records tile the space exactly.
    let next = 0;
    for (const r of block.records) {
      assert.equal(r.offset, next);
      next += r.recLen;
    }
    assert.equal(next, sb.blockSize - (sb.metadataCsum ? DIRENT_TAIL_SIZE : 0));
    entries.push(...block.entries);
    samples.push({ kind: 'leaf', bytes });
  });
  checkAgainstLs(image, path, sb, entries);
  return { entries, samples };
}

/** An indexed directory: root, nodes and leaves against debugfs htree, hashes and lookups. */
function checkIndexedDir(image: string, path: string, expectLevels?: number): Collected & { root: DxRoot } {
  const sb = readSuper(image);
  const dir = statDir(image, path, sb);
  assert.notEqual(dir.flags & INDEX_FL, 0, `${path} is indexed`);
  const casefold = (dir.flags & CASEFOLD_FL) !== 0;
  const dump = htreeDump(image, path);
  const csumOpt = sb.metadataCsum ? { csumSeed: dir.csumSeed } : {};
  const read = (logical: number): Uint8Array => {
    const phys = dir.blocks[logical];
    assert.ok(phys !== undefined, `${path}: logical block ${logical} exists`);
    return readBlock(image, sb.blockSize, phys);
  };
  const samples: Collected['samples'] = [];

  const rootBytes = read(0);
  samples.push({ kind: 'root', bytes: rootBytes });
  const root = decodeDxRoot(rootBytes, {
    blockSize: sb.blockSize,
    hasChecksum: sb.metadataCsum,
    largeDir: sb.largeDir,
    hasFileType: sb.hasFileType,
    hashInDirent: false,
    block: 0,
    inode: dir.ino,
    ...csumOpt,
  });
  assert.equal(root.hashVersion, dump.hashVersion);
  assert.equal(root.indirectLevels, dump.levels);
  if (expectLevels !== undefined) assert.equal(root.indirectLevels, expectLevels, `${path} levels`);
  assert.equal(root.dotInode, dir.ino);
  const dumpRoot = dump.intNodes[0] as DumpIntNode;
  assert.equal(root.count, dumpRoot.count);
  assert.equal(root.limit, dumpRoot.limit);
  assert.equal(root.limit, dxRootLimit(sb.blockSize, sb.metadataCsum));
  assert.deepEqual(root.entries, dumpRoot.entries);
  if (sb.metadataCsum) {
    assert.equal(root.tail?.checksum, dumpRoot.checksum);
    assert.ok(verifyDxChecksum(rootBytes, sb.blockSize, dir.csumSeed));
  } else {
    assert.equal(root.tail, null);
  }
  // Re-encoding the decoded root gives the same bytes (e2fsck zero-fills the rest).
  assert.deepEqual(
    encodeDxRoot(root, { blockSize: sb.blockSize, hasChecksum: sb.metadataCsum, hasFileType: sb.hasFileType, ...csumOpt }),
    rootBytes,
    `${path}: root re-encodes byte for byte`,
  );

  // Flatten the tree to leaves in hash order, with each leaf's lower bound.
  const leaves: { block: number; lower: number }[] = [];
  const nodes = new Map<number, DxNode>();
  if (root.indirectLevels === 0) {
    for (const e of root.entries) leaves.push({ block: e.block, lower: e.hash });
  } else {
    assert.equal(root.indirectLevels, 1, 'these images have at most one level of dx_nodes');
    root.entries.forEach((re, i) => {
      const bytes = read(re.block);
      assert.ok(isDxNodeBlock(bytes, sb.blockSize));
      samples.push({ kind: 'node', bytes });
      const node = decodeDxNode(bytes, { blockSize: sb.blockSize, hasChecksum: sb.metadataCsum, block: re.block, inode: dir.ino, ...csumOpt });
      const want = dump.intNodes[i + 1] as DumpIntNode;
      assert.equal(node.count, want.count);
      assert.equal(node.limit, want.limit);
      assert.equal(node.limit, dxNodeLimit(sb.blockSize, sb.metadataCsum));
      assert.deepEqual(node.entries, want.entries);
      if (sb.metadataCsum) {
        assert.equal(node.tail?.checksum, want.checksum);
        assert.ok(verifyDxChecksum(bytes, sb.blockSize, dir.csumSeed));
      }
      assert.deepEqual(encodeDxNode(node, { blockSize: sb.blockSize, hasChecksum: sb.metadataCsum, ...csumOpt }), bytes, 'node re-encodes');
      nodes.set(re.block, node);
      node.entries.forEach((ne, j) => leaves.push({ block: ne.block, lower: j === 0 ? re.hash : ne.hash }));
    });
  }
  assert.equal(leaves.length, dump.leaves.length);

  const version = effectiveHashVersion(root.hashVersion, sb.sFlags);
  const entries: DirEntry[] = [];
  const lookupLeaf = (hash: number): number => {
    const i = dxLookup(root.entries, hash);
    const child = (root.entries[i] as DxEntry).block;
    if (root.indirectLevels === 0) return child;
    const node = nodes.get(child) as DxNode;
    return (node.entries[dxLookup(node.entries, hash)] as DxEntry).block;
  };
  leaves.forEach((leaf, li) => {
    const bytes = read(leaf.block);
    if (li % 7 === 0) samples.push({ kind: 'leaf', bytes });
    const block = decodeDirBlock(bytes, {
      blockSize: sb.blockSize,
      hasFileType: sb.hasFileType,
      hasChecksumTail: sb.metadataCsum,
      inodesCount: sb.inodesCount,
      block: leaf.block,
      inode: dir.ino,
      ...csumOpt,
    });
    const want = dump.leaves[li] as DumpLeaf;
    assert.equal(want.block, leaf.block);
    if (sb.metadataCsum) assert.equal(block.tail?.checksum, want.checksum);
    const wantLive = want.entries.filter((e) => e.ino !== 0);
    assert.equal(block.entries.length, wantLive.length, `${path} leaf ${leaf.block}: entry count`);
    block.entries.forEach((e, k) => {
      const w = wantLive[k] as DumpLeafEntry;
      assert.equal(nameKey(e.name), w.name);
      assert.equal(e.inode, w.ino);
      assert.equal(e.recLen, w.recLen);
      const h = dirHashName(e.name, { version, seed: sb.hashSeed, casefold });
      assert.equal(h.hash, w.hash, `${path}/${w.name}: hash`);
      assert.equal(h.minorHash, w.minorHash, `${path}/${w.name}: minor hash`);
      // The name lies in this leaf's hash range, and a lookup finds this leaf
      // (or an earlier one whose collision run continues here).
      assert.ok(h.hash >= (leaf.lower & ~1) >>> 0, `${path}/${w.name}: hash below its leaf`);
      const next = leaves[li + 1];
      if (next !== undefined) {
        const bound = (next.lower & ~1) >>> 0;
        assert.ok(h.hash < bound || (h.hash === bound && (next.lower & DX_HASH_CONTINUED) !== 0), `${path}/${w.name}: hash above its leaf`);
      }
      const target = lookupLeaf(h.hash);
      let found = leaves.findIndex((l) => l.block === target);
      while (found < li && ((leaves[found + 1]?.lower ?? 0) & DX_HASH_CONTINUED) !== 0) found++;
      assert.equal(found, li, `${path}/${w.name}: dxLookup reaches the leaf`);
    });
    entries.push(...block.entries);
    // Leaves written by e2fsck's rehash are laid out exactly as buildDirBlock does.
    assert.deepEqual(
      buildDirBlock(block.entries, { blockSize: sb.blockSize, hasFileType: sb.hasFileType, hasChecksumTail: sb.metadataCsum, ...csumOpt }),
      bytes,
      `${path} leaf ${leaf.block}: rebuilds byte for byte`,
    );
  });
  // '.' and '..' live in the root block.
  const dotEntries: DirEntry[] = [
    { inode: root.dotInode, name: bytesOf('.'), fileType: sb.hasFileType ? FT.DIR : 0, offset: 0, recLen: 12 },
    { inode: root.dotdotInode, name: bytesOf('..'), fileType: sb.hasFileType ? FT.DIR : 0, offset: 12, recLen: sb.blockSize - 12 },
  ];
  checkAgainstLs(image, path, sb, [...dotEntries, ...entries]);
  return { entries, samples, root };
}

// ---------------------------------------------------------------- tests against images

const collected: Collected['samples'] = [];

describe('directory blocks of real images', () => {
  it('ext4, 1 KiB blocks, metadata_csum: linear small dir, indexed 3,000 entries with dx_nodes', () => {
    const image = makeImage(SPECS.csum1k);
    collected.push(...checkLinearDir(image, '/small').samples);
    collected.push(...checkLinearDir(image, '/big').samples); // mke2fs -d writes linear directories
    const indexed = indexedCopy(image, 'csum1k');
    fsckClean(indexed);
    collected.push(...checkLinearDir(indexed, '/small').samples);
    const big = checkIndexedDir(indexed, '/big', 1);
    assert.equal(big.entries.length, 3000);
    collected.push(...big.samples);
  });

  it('ext4, 4 KiB blocks, no metadata_csum: no tails, indexed big dir', () => {
    const image = makeImage(SPECS.nocsum4k);
    collected.push(...checkLinearDir(image, '/small').samples);
    const indexed = indexedCopy(image, 'nocsum4k');
    fsckClean(indexed);
    const big = checkIndexedDir(indexed, '/big');
    assert.equal(big.entries.length, 3000);
    collected.push(...big.samples);
  });

  it('ext4, 64 KiB blocks: rec_len encoding and root limits', () => {
    const image = makeImage(SPECS.bs64k);
    checkLinearDir(image, '/small');
    checkLinearDir(image, '/big');
    const indexed = indexedCopy(image, 'bs64k');
    const big = checkIndexedDir(indexed, '/big');
    assert.equal(big.root.limit, dxRootLimit(65536, false));
  });

  it('ext2 without dir_index: linear directories, also after e2fsck -D', () => {
    const image = makeImage(SPECS.ext2);
    checkLinearDir(image, '/small');
    const big = checkLinearDir(image, '/big');
    assert.equal(big.entries.length, 402);
    const rehashed = indexedCopy(image, 'ext2');
    checkLinearDir(rehashed, '/big'); // no dir_index: e2fsck -D compacts but never indexes
  });

  it('ext2 without filetype: the old 16-bit name_len records', () => {
    const image = makeImage(SPECS.ext2NoFiletype);
    const small = checkLinearDir(image, '/small');
    assert.ok(small.entries.every((e) => e.fileType === 0));
    checkLinearDir(image, '/big');
  });

  it('casefolded directory: htree hashes over casefolded names match debugfs and e2fsck', () => {
    const image = makeImage(SPECS.casefold);
    const copy = join(scratchDir(), 'casefold.flagged.img');
    if (!existsSync(copy)) {
      copyFileSync(image, copy);
      // mke2fs -d does not set +F; set it (extents | casefold) and let e2fsck -D rehash.
      execFileSync('debugfs', ['-w', '-R', `set_inode_field /cf flags 0x${(0x80000 | CASEFOLD_FL).toString(16)}`, copy], { stdio: 'ignore' });
    }
    const indexed = indexedCopy(copy, 'casefold');
    fsckClean(indexed);
    assert.notEqual(statDir(indexed, '/cf', readSuper(indexed)).flags & CASEFOLD_FL, 0, '/cf is casefolded');
    const cf = checkIndexedDir(indexed, '/cf');
    assert.equal(cf.entries.length, 600);
    // Names that differ only by case/normalization find each other.
    const first = cf.entries.find((e) => nameKey(e.name) === nameKey(bytesOf('Straße_0_é')));
    assert.ok(first !== undefined);
    assert.ok(namesEqualCasefold(first.name, bytesOf('STRASSE_0_E\u0301')));
    assert.ok(!namesEqualCasefold(first.name, bytesOf('STRASSE_0_E')));
  });

  it('inline-data directories (and, with a kernel mount, one spilling into system.data)', (t) => {
    const image = makeImage(SPECS.inline);
    const sb = readSuper(image);
    const inlineDir = (img: string, path: string): { parent: number; entries: DirEntry[] } => {
      const dir = statDir(img, path, sb);
      assert.notEqual(dir.flags & INLINE_DATA_FL, 0, `${path} is inline`);
      const imap = debugfs(img, `imap ${path}`);
      const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(imap);
      assert.ok(m !== null, imap);
      const table = readBlock(img, sb.blockSize, Number(m[1]));
      const at = parseInt(m[2] as string, 16);
      const iblock = table.slice(at + 0x28, at + 0x28 + 60);
      const valueFile = join(scratchDir(), `sd-${path.replace(/\//g, '_')}-${Math.random().toString(36).slice(2)}.bin`);
      execFileSync('debugfs', ['-R', `ea_get -f ${valueFile} ${path} system.data`, img], { stdio: 'ignore' });
      const value = existsSync(valueFile) ? Uint8Array.from(readFileSync(valueFile)) : null;
      const d = decodeInlineDir(iblock, value, { hasFileType: sb.hasFileType, inodesCount: sb.inodesCount, inode: dir.ino });
      const all: DirEntry[] = [
        { inode: dir.ino, name: bytesOf('.'), fileType: FT.DIR, offset: 0, recLen: 0 },
        { inode: d.parent, name: bytesOf('..'), fileType: FT.DIR, offset: 0, recLen: 0 },
        ...d.entries,
      ];
      checkAgainstLs(img, path, sb, all);
      return { parent: d.parent, entries: [...d.entries] };
    };
    const tiny = inlineDir(image, '/tiny');
    assert.equal(tiny.parent, 2);
    assert.deepEqual(tiny.entries.map((e) => nameKey(e.name)).sort(), ['a', 'b']);

    // Grow an inline directory with the kernel so that it spills into system.data.
    const spilled = join(scratchDir(), 'inline.spilled.img');
    if (!existsSync(spilled)) {
      copyFileSync(image, spilled);
      const mnt = mkdtempSync(join(tmpdir(), 'ext4ts-inline-mnt-'));
      const mounted = spawnSync('mount', ['-o', 'loop', spilled, mnt]).status === 0;
      try {
        if (!mounted) {
          t.skip('cannot loop-mount ext4 here');
          return;
        }
        for (let i = 1; i <= 5; i++) writeFileSync(join(mnt, 'spill', `c${i}`), '');
      } finally {
        if (mounted) execFileSync('umount', [mnt]);
        rmdirSync(mnt);
      }
    }
    fsckClean(spilled);
    const grown = inlineDir(spilled, '/spill');
    assert.deepEqual(grown.entries.map((e) => nameKey(e.name)).sort(), ['c1', 'c2', 'c3', 'c4', 'c5', 'first']);
    assert.ok(
      grown.entries.some((e) => (e as DirEntry & { region: string }).region === 'system.data'),
      'some entries live in the system.data value',
    );
  });
});

// ---------------------------------------------------------------- encoders, pure

const nameArb = fc.uint8Array({ minLength: 1, maxLength: 60 }).map((a) => a.map((b) => (b === 0 || b === 0x2f ? 0x41 : b)));

describe('dirent encoders', () => {
  it('rec_len encoding for 64 KiB blocks', () => {
    assert.equal(recLenToDisk(65536, 65536), 0xffff);
    assert.equal(recLenFromDisk(0xffff, 65536), 65536);
    assert.equal(recLenFromDisk(0, 65536), 65536);
    assert.equal(recLenToDisk(65532, 65536), 65532);
    assert.equal(recLenFromDisk(65532, 65536), 65532);
    assert.equal(recLenFromDisk(12, 65536), 12);
    assert.equal(recLenFromDisk(0xffff, 4096), 0xffff);
    for (const len of [4, 12, 4096, 65532]) assert.equal(recLenFromDisk(recLenToDisk(len, 65536), 65536), len);
    assert.throws(() => recLenToDisk(6, 4096), FsError);
    assert.throws(() => recLenToDisk(8192, 4096), FsError);
    // A 64 KiB block holding one unused record: rec_len 65536 on disk as 0xffff.
    const empty = buildDirBlock([], { blockSize: 65536, hasFileType: true, hasChecksumTail: false });
    assert.equal(new DataView(empty.buffer).getUint16(4, true), 0xffff);
    assert.equal(decodeDirBlock(empty, { blockSize: 65536, hasFileType: true, hasChecksumTail: false }).records[0]?.recLen, 65536);
  });

  it('build/decode round trip, every layout', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ inode: fc.integer({ min: 1, max: 0xffffffff }), name: nameArb, fileType: fc.integer({ min: 0, max: 7 }) }), { maxLength: 40 }),
        fc.constantFrom(1024, 4096),
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 0, max: 0xffffffff }),
        (raw, blockSize, hasFileType, hasChecksumTail, hashInDirent, seed) => {
          const inputs: DirEntryInput[] = raw.map((e, i) => ({ ...e, fileType: hasFileType ? e.fileType : 0, hash: (i * 0x9e3779b9) >>> 0, minorHash: i }));
          const opts = { blockSize, hasFileType, hasChecksumTail, hashInDirent, csumSeed: seed };
          const need = inputs.reduce((n, e) => n + dirRecLen(e.name.length, hashInDirent), 0);
          const space = blockSize - (hasChecksumTail ? 12 : 0);
          if (need > space) {
            assert.throws(() => buildDirBlock(inputs, opts), (e: unknown) => e instanceof FsError && e.code === 'ENOSPC');
            return;
          }
          const bytes = buildDirBlock(inputs, opts);
          const block = decodeDirBlock(bytes, opts);
          assert.equal(block.entries.length, inputs.length);
          block.entries.forEach((e, i) => {
            const want = inputs[i] as DirEntryInput;
            assert.equal(e.inode, want.inode);
            assert.deepEqual(e.name, want.name);
            assert.equal(e.fileType, want.fileType);
            if (hashInDirent && !(e.name.length <= 2 && e.name.every((b) => b === 0x2e))) {
              assert.equal(e.hash, want.hash);
              assert.equal(e.minorHash, want.minorHash);
            }
          });
          if (hasChecksumTail) assert.ok(verifyDirBlockChecksum(bytes, blockSize, seed));
        },
      ),
    );
  });

  it('insert/remove keep a valid block matching a model, as the kernel lays it out', () => {
    type Op = { kind: 'insert'; name: Uint8Array; inode: number } | { kind: 'remove'; pick: number };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constant('insert' as const), name: nameArb, inode: fc.integer({ min: 1, max: 1_000_000 }) }),
      fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 120 }), fc.boolean(), fc.boolean(), (ops, hasChecksumTail, hashInDirent) => {
        const opts = { blockSize: 1024, hasFileType: true, hasChecksumTail, hashInDirent, csumSeed: 0x12345678 };
        const bytes = buildDirBlock(
          [
            { inode: 11, name: bytesOf('.'), fileType: FT.DIR },
            { inode: 2, name: bytesOf('..'), fileType: FT.DIR },
          ],
          opts,
        );
        const model = new Map<number, { name: string; inode: number }>(); // offset -> entry
        model.set(0, { name: '.', inode: 11 });
        model.set(12, { name: '..', inode: 2 });
        for (const op of ops) {
          if (op.kind === 'insert') {
            const input = { inode: op.inode, name: op.name, fileType: FT.REG_FILE, hash: 7, minorHash: 9 };
            // findDirSlot, on a copy, picks the slot insertDirEntry fills and finds what findInDirBlock finds.
            const copy = bytes.slice();
            const probe = findDirSlot(copy, opts, input);
            const present = findInDirBlock(copy, opts, op.name);
            assert.deepEqual(probe.found, present);
            if (present === null) {
              const viaSlot = probe.slot < 0 ? null : insertDirEntryAt(copy, probe.slot, input, opts);
              const direct = insertDirEntry(bytes.slice(), input, opts);
              assert.equal(viaSlot, direct);
            } else {
              assert.equal(probe.slot, -1);
            }
            const at = insertDirEntry(bytes, input, opts);
            if (at === null) {
              // Full: no record has enough room.
              const block = decodeDirBlock(bytes, opts);
              const need = dirRecLen(op.name.length, hashInDirent);
              assert.ok(block.records.every((r) => r.recLen - (r.inode === 0 ? 0 : dirRecLen(r.name.length, hashInDirent && nameKey(r.name) !== '.' && nameKey(r.name) !== '..')) < need));
            } else {
              assert.ok(!model.has(at));
              model.set(at, { name: nameKey(op.name), inode: op.inode });
            }
          } else {
            const live = [...model.keys()].filter((o) => o >= 24).sort((a, b) => a - b);
            if (live.length === 0) continue;
            const at = live[op.pick % live.length] as number;
            removeDirEntry(bytes, at, opts);
            model.delete(at);
          }
          const block = decodeDirBlock(bytes, { ...opts, inodesCount: 1_000_000 });
          assert.deepEqual(
            block.entries.map((e) => [e.offset, nameKey(e.name), e.inode]),
            [...model.entries()].sort((a, b) => a[0] - b[0]).map(([o, e]) => [o, e.name, e.inode]),
          );
          if (hasChecksumTail) assert.ok(verifyDirBlockChecksum(bytes, 1024, 0x12345678));
        }
      }),
      { numRuns: 200 },
    );
  });

  it('removing the first record clears its inode and wipes it; later ones merge into the previous', () => {
    const opts = { blockSize: 1024, hasFileType: true, hasChecksumTail: false };
    const bytes = buildDirBlock(
      [
        { inode: 20, name: bytesOf('first'), fileType: FT.REG_FILE },
        { inode: 21, name: bytesOf('second'), fileType: FT.REG_FILE },
        { inode: 22, name: bytesOf('third'), fileType: FT.DIR },
      ],
      opts,
    );
    removeDirEntry(bytes, 16, opts);
    let block = decodeDirBlock(bytes, opts);
    assert.deepEqual(block.records.map((r) => [r.offset, r.recLen, r.inode]), [
      [0, 32, 20],
      [32, 992, 22],
    ]);
    assert.ok(bytes.subarray(16, 32).every((b) => b === 0));
    removeDirEntry(bytes, 0, opts);
    block = decodeDirBlock(bytes, opts);
    assert.deepEqual(block.records.map((r) => [r.offset, r.recLen, r.inode, r.name.length]), [
      [0, 32, 0, 0],
      [32, 992, 22, 5],
    ]);
    assert.throws(() => removeDirEntry(bytes, 0, opts), (e: unknown) => e instanceof FsError && e.code === 'ENOENT');
    // The freed first record is reused by the next insert of a fitting name.
    assert.equal(insertDirEntry(bytes, { inode: 30, name: bytesOf('reuse'), fileType: FT.REG_FILE }, opts), 0);
  });

  it('decoder rejections name the structure and the place', () => {
    const layout = { blockSize: 1024, hasFileType: true, hasChecksumTail: true, block: 77, inode: 12 } as const;
    const opts = { ...layout, csumSeed: 1 };
    const good = buildDirBlock([{ inode: 12, name: bytesOf('.'), fileType: FT.DIR }], opts);
    const expectCorrupt = (bytes: Uint8Array, re: RegExp, options: Parameters<typeof decodeDirBlock>[1] = opts): void => {
      assert.throws(
        () => decodeDirBlock(bytes, options),
        (e: unknown) => e instanceof FsError && e.code === 'EUCLEAN' && re.test(e.message) && e.context.block === 77 && e.context.inode === 12,
      );
    };
    let b = good.slice();
    b[100] = (b[100] as number) ^ 1;
    expectCorrupt(b, /checksum mismatch/);
    b = good.slice();
    b[1019] = 0; // the tail's file_type 0xDE
    expectCorrupt(b, /no checksum tail/);
    b = good.slice();
    new DataView(b.buffer).setUint16(4, 10, true);
    expectCorrupt(b, /smaller than minimal/, layout);
    b = good.slice();
    new DataView(b.buffer).setUint16(4, 14, true);
    expectCorrupt(b, /multiple of 4|too close/, layout);
    b = good.slice();
    new DataView(b.buffer).setUint16(4, 1016, true);
    expectCorrupt(b, /overruns/, layout);
    b = good.slice();
    new DataView(b.buffer).setUint16(4, 1008, true);
    expectCorrupt(b, /too close/, layout);
    b = good.slice();
    b[6] = 0;
    expectCorrupt(b, /empty name/, layout);
    b = good.slice();
    new DataView(b.buffer).setUint32(0, 5000, true);
    expectCorrupt(b, /out of bounds/, { ...layout, inodesCount: 4096 });
  });
});

describe('htree encoders and lookups', () => {
  it('dxLookup picks the last entry whose hash is <= the target', () => {
    const entries: DxEntry[] = [
      { hash: 0, block: 1 },
      { hash: 0x1000, block: 2 },
      { hash: 0x2001, block: 3 },
      { hash: 0x8000_0000, block: 4 },
      { hash: 0xffff_fff0, block: 5 },
    ];
    const cases: [number, number][] = [
      [0, 0],
      [0xfff, 0],
      [0x1000, 1],
      [0x2000, 1],
      [0x2001, 2],
      [0x7fff_ffff, 2],
      [0x8000_0000, 3],
      [0xffff_fffe, 4],
    ];
    for (const [hash, want] of cases) assert.equal(dxLookup(entries, hash), want, `0x${hash.toString(16)}`);
    assert.equal(dxLookup([{ hash: 0, block: 9 }], 0xffff_fffc), 0);
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 0xffffffff }), { minLength: 1, maxLength: 50 }), fc.nat({ max: 0xffffffff }), (hashes, target) => {
        const sorted = [0, ...[...hashes].sort((a, b) => a - b)].map((hash, block) => ({ hash, block }));
        let want = 0;
        sorted.forEach((e, k) => {
          if (k > 0 && e.hash <= target) want = k;
        });
        return dxLookup(sorted, target) === want;
      }),
    );
  });

  it('root/node encode-decode round trip with checksums', () => {
    for (const blockSize of [1024, 4096, 65536]) {
      for (const hasChecksum of [false, true]) {
        const entries = Array.from({ length: 50 }, (_, i) => ({ hash: i === 0 ? 0 : i * 0x1000 + (i % 2), block: i + 1 }));
        const seed = 0xdeadbeef;
        const root = encodeDxRoot({ dotInode: 12, dotdotInode: 2, hashVersion: 1, indirectLevels: 1, entries }, { blockSize, hasChecksum, csumSeed: seed });
        const r = decodeDxRoot(root, { blockSize, hasChecksum, largeDir: false, csumSeed: seed });
        assert.deepEqual(r.entries, entries);
        assert.equal(r.indirectLevels, 1);
        assert.equal(r.limit, dxRootLimit(blockSize, hasChecksum));
        const node = encodeDxNode({ entries }, { blockSize, hasChecksum, csumSeed: seed });
        const n = decodeDxNode(node, { blockSize, hasChecksum, csumSeed: seed });
        assert.deepEqual(n.entries, entries);
        if (hasChecksum) {
          assert.ok(verifyDxChecksum(root, blockSize, seed) && verifyDxChecksum(node, blockSize, seed));
          root[40] = (root[40] as number) ^ 0x10;
          assert.ok(!verifyDxChecksum(root, blockSize, seed));
          setDxChecksum(root, blockSize, seed);
          assert.ok(verifyDxChecksum(root, blockSize, seed));
          // Bytes past the live entries are outside the checksum.
          node[16 + 60 * 8] = (node[16 + 60 * 8] as number) ^ 0xff;
          assert.ok(verifyDxChecksum(node, blockSize, seed));
        }
      }
    }
  });

  it('depth, limit, count, order and hash-version checks', () => {
    const opts = { blockSize: 1024, hasChecksum: true } as const;
    const entries = [
      { hash: 0, block: 1 },
      { hash: 0x500, block: 2 },
      { hash: 0x900, block: 3 },
    ];
    const make = (levels: number, hashVersion = 1): Uint8Array =>
      encodeDxRoot({ dotInode: 12, dotdotInode: 2, hashVersion, indirectLevels: levels, entries }, { ...opts, csumSeed: 5 });
    const corrupt = (fn: () => unknown, re: RegExp): void =>
      void assert.throws(fn, (e: unknown) => e instanceof FsError && e.code === 'EUCLEAN' && re.test(e.message));
    assert.equal(decodeDxRoot(make(1), { ...opts, largeDir: false }).indirectLevels, 1);
    corrupt(() => decodeDxRoot(make(2), { ...opts, largeDir: false }), /depth 2/);
    assert.equal(decodeDxRoot(make(2), { ...opts, largeDir: true }).indirectLevels, 2);
    corrupt(() => decodeDxRoot(make(3), { ...opts, largeDir: true }), /depth 3/);
    corrupt(() => decodeDxRoot(make(0, 4), { ...opts, largeDir: false }), /hash version 4/);
    corrupt(() => decodeDxRoot(make(0, 6), { ...opts, largeDir: false, hashInDirent: false }), /siphash/);
    assert.equal(decodeDxRoot(make(0, 6), { ...opts, largeDir: false, hashInDirent: true }).hashVersion, 6);
    corrupt(() => decodeDxRoot(make(0, 1), { ...opts, largeDir: false, hashInDirent: true }), /not siphash/);
    corrupt(() => decodeDxRoot(make(0), { blockSize: 1024, hasChecksum: false, largeDir: false }), /limit/);
    corrupt(() => decodeDxRoot(make(0), { ...opts, largeDir: false, csumSeed: 6 }), /checksum mismatch/);
    let b = make(0);
    new DataView(b.buffer).setUint16(34, 0, true);
    corrupt(() => decodeDxRoot(b, { ...opts, largeDir: false }), /count 0/);
    b = make(0);
    new DataView(b.buffer).setUint16(34, 200, true);
    corrupt(() => decodeDxRoot(b, { ...opts, largeDir: false }), /count 200/);
    b = make(0);
    new DataView(b.buffer).setUint32(48, 0x400, true);
    corrupt(() => decodeDxRoot(b, { ...opts, largeDir: false }), /below previous/);
    b = make(0);
    b[31] = 1;
    corrupt(() => decodeDxRoot(b, { ...opts, largeDir: false }), /hash flags/);
    b = make(0);
    b[29] = 12;
    corrupt(() => decodeDxRoot(b, { ...opts, largeDir: false }), /info_length/);
    const node = encodeDxNode({ entries }, opts);
    node[0] = 1;
    corrupt(() => decodeDxNode(node, opts), /fake record/);
  });
});

// ---------------------------------------------------------------- hostile input

describe('hostile blocks: mutated real blocks decode or throw FsError, never anything else', () => {
  const mutation = (size: number): fc.Arbitrary<{ at: number; value: number }[]> =>
    fc.array(
      fc.record({
        // Half of the mutations hit the first 64 bytes or the last 16: headers, counts, tails.
        at: fc.oneof(fc.nat({ max: 63 }), fc.integer({ min: size - 16, max: size - 1 }), fc.nat({ max: size - 1 })),
        value: fc.oneof(fc.nat({ max: 255 }), fc.constantFrom(0, 0xff, 0x0c, 0x08, 0x04, 0x80)),
      }),
      { minLength: 1, maxLength: 12 },
    );
  const tolerate = (fn: () => unknown): void => {
    try {
      fn();
    } catch (e) {
      if (!(e instanceof FsError)) throw e;
    }
  };

  it('leaf, root and node blocks', () => {
    if (collected.length === 0) {
      // Run alone: make the samples from the small images.
      collected.push(...checkLinearDir(makeImage(SPECS.ext2), '/big').samples);
      collected.push(...checkIndexedDir(indexedCopy(makeImage(SPECS.csum1k), 'csum1k'), '/big').samples);
    }
    const kinds = new Set(collected.map((s) => s.kind));
    assert.ok(kinds.has('leaf') && kinds.has('root'), 'samples of each kind');
    const picks = [...collected.filter((s) => s.kind !== 'leaf'), ...collected.filter((s) => s.kind === 'leaf').slice(0, 30)];
    for (const sample of picks) {
      const size = sample.bytes.length;
      fc.assert(
        fc.property(mutation(size), fc.boolean(), fc.boolean(), (muts, csum, fileType) => {
          const b = sample.bytes.slice();
          for (const m of muts) b[m.at] = m.value;
          const base = { blockSize: size, hasFileType: fileType, hasChecksumTail: csum, inodesCount: 1 << 20 };
          tolerate(() => decodeDirBlock(b, { ...base, csumSeed: 0 }));
          scanAgrees(b, { ...base, csumSeed: 0 });
          tolerate(() => decodeDirBlock(b, { ...base, hashInDirent: true }));
          tolerate(() => decodeDxRoot(b, { blockSize: size, hasChecksum: csum, largeDir: fileType, csumSeed: 7 }));
          tolerate(() => decodeDxNode(b, { blockSize: size, hasChecksum: csum }));
          tolerate(() => verifyDxChecksum(b, size, 1));
          tolerate(() => setDxChecksum(b.slice(), size, 1));
          tolerate(() => insertDirEntry(b.slice(), { inode: 5, name: bytesOf('fuzz'), fileType: 1 }, { ...base, csumSeed: 3 }));
          tolerate(() => removeDirEntry(b.slice(), muts[0]?.at ?? 0, base));
          tolerate(() => setDirBlockChecksum(b.slice(), size, 3));
        }),
        { numRuns: size > 4096 ? 40 : 150 },
      );
    }
  });

  it('inline regions', () => {
    const iblock = new Uint8Array(60);
    const view = new DataView(iblock.buffer);
    view.setUint32(0, 2, true);
    const tail = buildDirBlock([{ inode: 13, name: bytesOf('hello'), fileType: 1 }], { blockSize: 1024, hasFileType: true, hasChecksumTail: false });
    iblock.set(tail.subarray(0, 56), 4);
    view.setUint16(8, 56, true);
    const value = new Uint8Array(68);
    new DataView(value.buffer).setUint32(0, 14, true);
    new DataView(value.buffer).setUint16(4, 68, true);
    value[6] = 3;
    value[7] = 1;
    value.set(bytesOf('abc'), 8);
    const ok = decodeInlineDir(iblock, value, { hasFileType: true });
    assert.deepEqual(ok.entries.map((e) => [nameKey(e.name), e.inode, e.region]), [
      ['hello', 13, 'i_block'],
      ['abc', 14, 'system.data'],
    ]);
    fc.assert(
      fc.property(mutation(60), mutation(68), fc.boolean(), (m1, m2, fileType) => {
        const a = iblock.slice();
        const v = value.slice();
        for (const m of m1) a[m.at] = m.value;
        for (const m of m2) v[m.at] = m.value;
        tolerate(() => decodeInlineDir(a, v, { hasFileType: fileType, inodesCount: 1000 }));
        tolerate(() => decodeInlineDir(a, v.subarray(0, m2[0]?.at ?? 0), { hasFileType: fileType }));
      }),
      { numRuns: 2000 },
    );
  });

  it('random bytes of any size', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1024, maxLength: 1024 }), (b) => {
        tolerate(() => decodeDirBlock(b, { blockSize: 1024, hasFileType: true, hasChecksumTail: true }));
        tolerate(() => decodeDirBlock(b, { blockSize: 1024, hasFileType: false, hasChecksumTail: false }));
        tolerate(() => decodeDxRoot(b, { blockSize: 1024, hasChecksum: true, largeDir: true }));
        tolerate(() => decodeDxNode(b, { blockSize: 1024, hasChecksum: false }));
      }),
      { numRuns: 500 },
    );
  });
});
