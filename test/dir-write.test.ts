/**
 * Directory mutation (src/fs/dir-write.ts).
 *
 * In memory: a DirStore over an array of blocks, checked after every sequence by a
 * test-side walker that validates the whole structure (records, dx count/limit,
 * checksums, every block referenced once, every leaf's hashes inside its index range
 * with bit 0 marking continued runs) and by a lookup that walks the htree by hash the
 * way the reader does. Random add/remove sequences are compared with a model.
 *
 * On real images (mke2fs + debugfs + e2fsck): the directory's blocks are read from the
 * image, mutated in memory, then written back after `debugfs expand_dir` has mapped as
 * many blocks as the directory grew by; `e2fsck -fn` must be clean, and both the read
 * side (Ext4.openFile) and, as root, the kernel (loop mount) must see exactly the model.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, existsSync, linkSync, mkdirSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { FsError } from '../src/errors.js';
import { addEntry, isEmptyDir, newDirBlock, removeEntry, replaceEntry, type DirContext, type DirStore } from '../src/fs/dir-write.js';
import { decodeDirBlock, recLenFromDisk, FT, type DirEntry } from '../src/ondisk/dirent.js';
import {
  decodeDxNode,
  decodeDxRoot,
  dxLookup,
  dxNodeLimit,
  dxRootLimit,
  isDxNodeBlock,
  verifyDxChecksum,
  DX_HASH_CONTINUED,
  type DxEntry,
} from '../src/ondisk/htree.js';
import { dirHashName, effectiveHashVersion, DX_HASH } from '../src/ondisk/dirhash.js';
import { namesEqualCasefold } from '../src/ondisk/casefold.js';
import { decodeSuperblock } from '../src/ondisk/superblock.js';
import { INDEX_FL, inodeCsumSeed as inodeSeed } from '../src/ondisk/inode.js';
import { Ext4 } from '../src/fs/ext4.js';
import { kernelSupportsCasefold, withMount } from './helpers/kernel.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const b = (s: string): Uint8Array => enc.encode(s);
const key = (name: Uint8Array): string => Buffer.from(name).toString('latin1');

// ------------------------------------------------------------------ in-memory store

class MemStore implements DirStore {
  readonly blocks: Uint8Array[] = [];
  appends = 0;
  /** Writes and appends so far. */
  changes = 0;
  /** Appends allowed before append() throws ENOSPC (Infinity = no limit). */
  budget = Infinity;

  constructor(readonly blockSize: number) {}

  blockCount(): number {
    return this.blocks.length;
  }

  read(lblk: number): Uint8Array {
    const block = this.blocks[lblk];
    if (block === undefined) throw new Error(`read past the end: ${lblk}`);
    return block.slice();
  }

  write(lblk: number, bytes: Uint8Array): void {
    if (lblk < 0 || lblk >= this.blocks.length) throw new Error(`write past the end: ${lblk}`);
    assert.equal(bytes.length, this.blockSize);
    this.blocks[lblk] = bytes.slice();
    this.changes++;
  }

  append(): number {
    if (this.budget <= 0) throw new FsError('ENOSPC', 'test store is full');
    this.budget--;
    this.appends++;
    this.changes++;
    // Garbage: the writer must overwrite what it appends.
    this.blocks.push(new Uint8Array(this.blockSize).fill(0xa5));
    return this.blocks.length - 1;
  }
}

interface CtxOptions {
  readonly blockSize?: number;
  readonly csum?: boolean;
  readonly largeDir?: boolean;
  readonly dirIndex?: boolean;
  readonly casefold?: boolean;
  readonly hashVersion?: number;
  readonly sFlags?: number;
  readonly hashOverride?: (name: Uint8Array) => number;
  readonly hasFileType?: boolean;
}

const DIR_INO = 12;

function makeCtx(o: CtxOptions = {}): DirContext {
  return {
    ino: DIR_INO,
    blockSize: o.blockSize ?? 1024,
    metadataCsum: o.csum ?? true,
    csumSeed: 0x1234abcd,
    hasFileType: o.hasFileType ?? true,
    hashSeed: [0x11111111, 0x22222222, 0x33333333, 0x44444444],
    defaultHashVersion: o.hashVersion ?? DX_HASH.HALF_MD4,
    sFlags: o.sFlags ?? 1,
    casefold: o.casefold ?? false,
    largeDir: o.largeDir ?? false,
    dirIndex: o.dirIndex ?? true,
    ...(o.hashOverride === undefined ? {} : { hashOverride: o.hashOverride }),
  };
}

/** A new directory: one block with '.' and '..'. */
function newDir(ctx: DirContext): MemStore {
  const store = new MemStore(ctx.blockSize);
  store.append();
  store.write(0, newDirBlock(ctx, DIR_INO, 2));
  return store;
}

// ------------------------------------------------------------------ test-side walker

function leafOptions(ctx: DirContext, lblk: number): Parameters<typeof decodeDirBlock>[1] {
  return {
    blockSize: ctx.blockSize,
    hasFileType: ctx.hasFileType,
    hasChecksumTail: ctx.metadataCsum,
    block: lblk,
    ...(ctx.metadataCsum ? { csumSeed: ctx.csumSeed } : {}),
  };
}

function dxOptions(ctx: DirContext, lblk: number): { blockSize: number; hasChecksum: boolean; block: number; csumSeed?: number } {
  return { blockSize: ctx.blockSize, hasChecksum: ctx.metadataCsum, block: lblk, ...(ctx.metadataCsum ? { csumSeed: ctx.csumSeed } : {}) };
}

function hashOf(ctx: DirContext, name: Uint8Array, rootVersion: number): number {
  if (ctx.hashOverride !== undefined) return ctx.hashOverride(name);
  return dirHashName(name, { version: effectiveHashVersion(rootVersion, ctx.sFlags), seed: ctx.hashSeed, casefold: ctx.casefold }).hash;
}

interface Walk {
  /** Live entries other than '.' and '..', by latin1 name. */
  readonly entries: Map<string, number>;
  readonly dot: number;
  readonly dotdot: number;
  readonly levels: number;
  readonly leaves: number;
  readonly continued: number;
}

/** Validate the whole directory and list it. */
function walk(store: MemStore, ctx: DirContext, indexed: boolean): Walk {
  const bs = ctx.blockSize;
  const entries = new Map<string, number>();
  const add = (e: DirEntry): void => {
    const k = key(e.name);
    assert.ok(!entries.has(k), `duplicate entry ${k}`);
    entries.set(k, e.inode);
  };
  if (!indexed) {
    let dot = 0;
    let dotdot = 0;
    store.blocks.forEach((bytes, lblk) => {
      const block = decodeDirBlock(bytes, leafOptions(ctx, lblk));
      block.entries.forEach((e, i) => {
        if (lblk === 0 && i === 0) {
          assert.equal(key(e.name), '.');
          dot = e.inode;
        } else if (lblk === 0 && i === 1) {
          assert.equal(key(e.name), '..');
          dotdot = e.inode;
        } else add(e);
      });
    });
    return { entries, dot, dotdot, levels: -1, leaves: store.blocks.length, continued: 0 };
  }
  const root = decodeDxRoot(store.blocks[0] as Uint8Array, { ...dxOptions(ctx, 0), largeDir: ctx.largeDir, hasFileType: ctx.hasFileType });
  assert.equal(root.limit, dxRootLimit(bs, ctx.metadataCsum));
  if (ctx.metadataCsum) assert.equal(verifyDxChecksum(store.blocks[0] as Uint8Array, bs, ctx.csumSeed), true, 'root checksum');
  const referenced = new Set<number>([0]);
  let leaves = 0;
  let continued = 0;
  const visit = (entries0: readonly DxEntry[], depth: number, lo: number, hi: number, hiInclusive: boolean): void => {
    entries0.forEach((e, i) => {
      const clo = i === 0 ? lo : (e.hash & ~DX_HASH_CONTINUED) >>> 0;
      if (i > 0) assert.ok(clo >= lo, `index hash 0x${clo.toString(16)} below range 0x${lo.toString(16)}`);
      if (i > 0 && (e.hash & DX_HASH_CONTINUED) !== 0) continued++;
      const next = entries0[i + 1];
      const chi = next === undefined ? hi : (next.hash & ~DX_HASH_CONTINUED) >>> 0;
      const chiInclusive = next === undefined ? hiInclusive : (next.hash & DX_HASH_CONTINUED) !== 0;
      assert.ok(e.block > 0 && e.block < store.blocks.length, `index points at ${e.block}`);
      assert.ok(!referenced.has(e.block), `block ${e.block} referenced twice`);
      referenced.add(e.block);
      const bytes = store.blocks[e.block] as Uint8Array;
      if (depth < root.indirectLevels) {
        const node = decodeDxNode(bytes, dxOptions(ctx, e.block));
        assert.equal(node.limit, dxNodeLimit(bs, ctx.metadataCsum));
        visit(node.entries, depth + 1, clo, chi, chiInclusive);
        return;
      }
      leaves++;
      if (ctx.metadataCsum) assert.equal(isDxNodeBlock(bytes, bs), false, `leaf ${e.block} looks like a dx block`);
      for (const x of decodeDirBlock(bytes, leafOptions(ctx, e.block)).entries) {
        const h = hashOf(ctx, x.name, root.hashVersion);
        assert.ok(h >= clo, `leaf ${e.block}: hash 0x${h.toString(16)} below 0x${clo.toString(16)}`);
        assert.ok(h < chi || (h === chi && chiInclusive) || (chi === 0xffffffff && h === chi), `leaf ${e.block}: hash 0x${h.toString(16)} above 0x${chi.toString(16)}`);
        add(x);
      }
    });
  };
  visit(root.entries, 0, 0, 0xffffffff, true);
  assert.equal(referenced.size, store.blocks.length, 'every block is referenced by the index');
  return { entries, dot: root.dotInode, dotdot: root.dotdotInode, levels: root.indirectLevels, leaves, continued };
}

/** Look a name up the way the reader does (dx_probe, then the leaf and its continuations). */
function lookup(store: MemStore, ctx: DirContext, indexed: boolean, name: Uint8Array): number | undefined {
  const eq = (a: Uint8Array): boolean => (ctx.casefold ? namesEqualCasefold(a, name) : Buffer.compare(a, name) === 0);
  if (!indexed) {
    for (let l = 0; l < store.blocks.length; l++) {
      const e = decodeDirBlock(store.blocks[l] as Uint8Array, leafOptions(ctx, l)).entries.find((x) => eq(x.name));
      if (e !== undefined) return e.inode;
    }
    return undefined;
  }
  const root = decodeDxRoot(store.blocks[0] as Uint8Array, { ...dxOptions(ctx, 0), largeDir: ctx.largeDir, hasFileType: ctx.hasFileType });
  const hash = hashOf(ctx, name, root.hashVersion);
  let entries = root.entries;
  for (let level = 0; level < root.indirectLevels; level++) {
    const child = (entries[dxLookup(entries, hash)] as DxEntry).block;
    entries = decodeDxNode(store.blocks[child] as Uint8Array, dxOptions(ctx, child)).entries;
  }
  for (let i = dxLookup(entries, hash); ; i++) {
    const leaf = (entries[i] as DxEntry).block;
    const e = decodeDirBlock(store.blocks[leaf] as Uint8Array, leafOptions(ctx, leaf)).entries.find((x) => eq(x.name));
    if (e !== undefined) return e.inode;
    const next = entries[i + 1];
    if (next === undefined || (next.hash & 1) === 0 || (next.hash & ~1) >>> 0 !== hash) return undefined;
  }
}

/** Check store against the model: structure, listing and lookups of present and absent names. */
function checkModel(store: MemStore, ctx: DirContext, indexed: boolean, model: Map<string, number>, absent: readonly string[] = []): Walk {
  const w = walk(store, ctx, indexed);
  assert.equal(w.dot, DIR_INO);
  assert.equal(w.dotdot, 2);
  assert.deepEqual(new Map([...w.entries].sort()), new Map([...model].sort()));
  for (const [name, ino] of model) assert.equal(lookup(store, ctx, indexed, Buffer.from(name, 'latin1')), ino, `lookup ${name}`);
  for (const name of absent) if (!model.has(name)) assert.equal(lookup(store, ctx, indexed, Buffer.from(name, 'latin1')), undefined);
  return w;
}

function throwsCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof FsError && e.code === code);
}

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-';

function randomName(r: () => number, i: number, maxLen = 255): string {
  const suffix = `~${i.toString(36)}`;
  const len = 1 + Math.floor(r() * (maxLen - suffix.length));
  let s = '';
  for (let k = 0; k < len; k++) s += ALPHABET[Math.floor(r() * ALPHABET.length)];
  return s + suffix;
}

/** Add `name` and record it in the model; returns the new indexed state. */
function add(store: MemStore, ctx: DirContext, indexed: boolean, model: Map<string, number>, name: string, ino: number): boolean {
  const res = addEntry(store, ctx, indexed, Buffer.from(name, 'latin1'), ino, FT.REG_FILE);
  model.set(name, ino);
  assert.ok(res.indexed || !indexed, 'an indexed directory stays indexed');
  return res.indexed;
}

// ------------------------------------------------------------------ unit tests

describe('dir-write: basics', () => {
  it('newDirBlock holds . and .. (with a valid tail under metadata_csum)', () => {
    for (const csum of [false, true]) {
      for (const blockSize of [1024, 4096, 65536]) {
        const ctx = makeCtx({ csum, blockSize });
        const block = decodeDirBlock(newDirBlock(ctx, 12, 2), leafOptions(ctx, 0));
        assert.deepEqual(
          block.records.map((r) => [dec.decode(r.name), r.inode, r.fileType, r.recLen]),
          [
            ['.', 12, FT.DIR, 12],
            ['..', 2, FT.DIR, blockSize - 12 - (csum ? 12 : 0)],
          ],
        );
        assert.equal(block.tail !== null, csum);
      }
    }
  });

  it('linear directory: add, EEXIST, lookup, replace, remove, empty', () => {
    const ctx = makeCtx({ dirIndex: false });
    const store = newDir(ctx);
    assert.equal(isEmptyDir(store, ctx, false), true);
    assert.equal(addEntry(store, ctx, false, b('a'), 20, FT.REG_FILE).indexed, false);
    assert.equal(isEmptyDir(store, ctx, false), false);
    throwsCode(() => addEntry(store, ctx, false, b('a'), 21, FT.REG_FILE), 'EEXIST');
    throwsCode(() => addEntry(store, ctx, false, b('.'), 21, FT.REG_FILE), 'EEXIST');
    throwsCode(() => addEntry(store, ctx, false, b('..'), 21, FT.REG_FILE), 'EEXIST');
    throwsCode(() => addEntry(store, ctx, false, b('x/y'), 21, FT.REG_FILE), 'EINVAL');
    throwsCode(() => addEntry(store, ctx, false, new Uint8Array(0), 21, FT.REG_FILE), 'EINVAL');
    throwsCode(() => addEntry(store, ctx, false, new Uint8Array(256).fill(0x61), 21, FT.REG_FILE), 'ENAMETOOLONG');
    addEntry(store, ctx, false, new Uint8Array(255).fill(0x62), 22, FT.DIR);
    assert.equal(lookup(store, ctx, false, new Uint8Array(255).fill(0x62)), 22);
    assert.equal(replaceEntry(store, ctx, false, b('a'), 30, FT.SYMLINK), 20);
    assert.equal(lookup(store, ctx, false, b('a')), 30);
    assert.equal(replaceEntry(store, ctx, false, b('..'), 40, FT.DIR), 2);
    assert.equal(walk(store, ctx, false).dotdot, 40);
    throwsCode(() => replaceEntry(store, ctx, false, b('.'), 40, FT.DIR), 'EINVAL');
    throwsCode(() => replaceEntry(store, ctx, false, b('zz'), 40, FT.DIR), 'ENOENT');
    throwsCode(() => removeEntry(store, ctx, false, b('.')), 'EINVAL');
    throwsCode(() => removeEntry(store, ctx, false, b('..')), 'EINVAL');
    throwsCode(() => removeEntry(store, ctx, false, b('zz')), 'ENOENT');
    assert.equal(removeEntry(store, ctx, false, b('a')), 30);
    assert.equal(removeEntry(store, ctx, false, new Uint8Array(255).fill(0x62)), 22);
    assert.equal(isEmptyDir(store, ctx, false), true);
    assert.equal(store.blocks.length, 1);
  });

  it('a linear directory without dir_index grows by appending blocks', () => {
    const ctx = makeCtx({ dirIndex: false });
    const store = newDir(ctx);
    const model = new Map<string, number>();
    for (let i = 0; i < 300; i++) assert.equal(add(store, ctx, false, model, `file-${i}`, 100 + i), false);
    assert.ok(store.blocks.length >= 5, `${store.blocks.length} blocks`);
    checkModel(store, ctx, false, model, ['file-300', 'nope']);
    // Freed room is reused before the directory grows again.
    for (let i = 0; i < 300; i += 2) {
      removeEntry(store, ctx, false, b(`file-${i}`));
      model.delete(`file-${i}`);
    }
    const blocks = store.blocks.length;
    for (let i = 0; i < 100; i++) add(store, ctx, false, model, `again-${i}`, 1000 + i);
    assert.equal(store.blocks.length, blocks);
    checkModel(store, ctx, false, model, ['file-0']);
    assert.equal(isEmptyDir(store, ctx, false), false);
  });

  it('a full 1-block linear directory becomes an htree (make_indexed_dir)', () => {
    for (const csum of [false, true]) {
      const ctx = makeCtx({ csum });
      const store = newDir(ctx);
      const model = new Map<string, number>();
      let indexed = false;
      let i = 0;
      while (!indexed) indexed = add(store, ctx, indexed, model, `entry-number-${i++}`, 100 + i);
      assert.equal(store.blocks.length, 3);
      const w = checkModel(store, ctx, true, model, ['entry-number-9999']);
      assert.equal(w.levels, 0);
      assert.equal(w.leaves, 2);
      assert.equal(decodeDxRoot(store.blocks[0] as Uint8Array, { ...dxOptions(ctx, 0), largeDir: false, hasFileType: true }).hashVersion, DX_HASH.HALF_MD4);
    }
  });

  it('htree: grows to two levels, removes, retargets, empties', () => {
    for (const csum of [false, true]) {
      const ctx = makeCtx({ csum });
      const store = newDir(ctx);
      const model = new Map<string, number>();
      const r = rng(csum ? 7 : 8);
      let indexed = false;
      const names: string[] = [];
      for (let i = 0; i < 3000; i++) {
        const name = randomName(r, i, 120);
        names.push(name);
        indexed = add(store, ctx, indexed, model, name, 100 + (i % 5000));
      }
      const w = checkModel(store, ctx, indexed, model, ['absent']);
      assert.equal(w.levels, 1, 'the root filled up and a level was added');
      for (let i = 0; i < names.length; i += 3) {
        const name = names[i] as string;
        assert.equal(removeEntry(store, ctx, true, Buffer.from(name, 'latin1')), model.get(name));
        model.delete(name);
      }
      for (let i = 1; i < names.length; i += 7) {
        const name = names[i] as string;
        if (!model.has(name)) continue;
        assert.equal(replaceEntry(store, ctx, true, Buffer.from(name, 'latin1'), 77, FT.FIFO), model.get(name));
        model.set(name, 77);
      }
      assert.equal(replaceEntry(store, ctx, true, b('..'), 99, FT.DIR), 2);
      assert.equal(walk(store, ctx, true).dotdot, 99);
      replaceEntry(store, ctx, true, b('..'), 2, FT.DIR);
      checkModel(store, ctx, true, model, names.filter((_, i) => i % 3 === 0));
      assert.equal(isEmptyDir(store, ctx, true), false);
      for (const name of [...model.keys()]) {
        removeEntry(store, ctx, true, Buffer.from(name, 'latin1'));
        model.delete(name);
      }
      assert.equal(isEmptyDir(store, ctx, true), true);
      checkModel(store, ctx, true, model, names.slice(0, 50));
    }
  });

  it('htree: equal hashes split with the continuation bit and stay findable', () => {
    // 24 distinct hash values: runs of equal hashes span several leaves.
    const hashOverride = (name: Uint8Array): number => ((Buffer.from(name).reduce((h, c) => (h * 31 + c) >>> 0, 7) % 24) * 0x08000000 + 0x100) >>> 0;
    for (const csum of [false, true]) {
      const ctx = makeCtx({ csum, hashOverride });
      const store = newDir(ctx);
      const model = new Map<string, number>();
      let indexed = false;
      const r = rng(99);
      for (let i = 0; i < 1500; i++) indexed = add(store, ctx, indexed, model, randomName(r, i, 40), 100 + i);
      const w = checkModel(store, ctx, indexed, model, ['nope', 'nah']);
      assert.ok(w.continued > 10, `continued index entries: ${w.continued}`);
      for (const name of [...model.keys()].filter((_, i) => i % 2 === 0)) {
        removeEntry(store, ctx, true, Buffer.from(name, 'latin1'));
        model.delete(name);
      }
      checkModel(store, ctx, true, model);
    }
  });

  it('htree: ENOSPC when the index cannot grow deeper; large_dir allows a third level', () => {
    // 255-byte names: 3 per 1 KiB leaf, so few entries fill the index.
    const r = rng(5);
    for (const largeDir of [false, true]) {
      const ctx = makeCtx({ csum: true, largeDir });
      const store = newDir(ctx);
      const model = new Map<string, number>();
      let indexed = false;
      let full = false;
      for (let i = 0; i < 200_000 && !full; i++) {
        const name = randomName(r, i, 255).padEnd(255, 'x');
        const before = store.changes;
        try {
          indexed = add(store, ctx, indexed, model, name, 100);
        } catch (error) {
          if (!(error instanceof FsError) || error.code !== 'ENOSPC') throw error;
          assert.equal(store.changes, before, 'a refused add changes nothing');
          full = true;
        }
        if (largeDir && i > 40_000) break;
      }
      const w = checkModel(store, ctx, true, model);
      if (largeDir) {
        assert.equal(full, false);
        assert.equal(w.levels, 2);
      } else {
        assert.equal(full, true);
        assert.equal(w.levels, 1);
      }
    }
  });

  it('64 KiB blocks: rec_len encoding through conversion and splits', () => {
    const ctx = makeCtx({ blockSize: 65536, csum: true });
    const store = newDir(ctx);
    const model = new Map<string, number>();
    let indexed = false;
    const r = rng(64);
    for (let i = 0; i < 700; i++) indexed = add(store, ctx, indexed, model, randomName(r, i, 255), 100 + i);
    assert.equal(indexed, true);
    checkModel(store, ctx, true, model);
    for (const name of [...model.keys()]) {
      removeEntry(store, ctx, true, Buffer.from(name, 'latin1'));
      model.delete(name);
    }
    assert.equal(isEmptyDir(store, ctx, true), true);
  });

  it('an append that fails leaves a readable directory with every old name', () => {
    const ctx = makeCtx({ csum: true });
    const store = newDir(ctx);
    const model = new Map<string, number>();
    let indexed = false;
    const r = rng(3);
    for (let i = 0; i < 400; i++) indexed = add(store, ctx, indexed, model, randomName(r, i, 60), 100 + i);
    store.budget = 0;
    let failed = 0;
    for (let i = 400; i < 800; i++) {
      const name = randomName(r, i, 60);
      try {
        indexed = add(store, ctx, indexed, model, name, 100 + i);
      } catch (error) {
        if (!(error instanceof FsError) || error.code !== 'ENOSPC') throw error;
        failed++;
      }
    }
    assert.ok(failed > 0, 'some adds failed');
    checkModel(store, ctx, true, model);
  });

  it('casefold: names match and hash folded; invalid UTF-8 is refused, strict or not', () => {
    const ctx = makeCtx({ casefold: true });
    const store = newDir(ctx);
    const model = new Map<string, number>();
    let indexed = false;
    for (let i = 0; i < 600; i++) indexed = add(store, ctx, indexed, model, Buffer.from(`Straße-Ünïcode-${i}`).toString('latin1'), 100 + i);
    assert.equal(indexed, true);
    throwsCode(() => addEntry(store, ctx, true, b('STRASSE-üNÏCODE-5'), 1, FT.REG_FILE), 'EEXIST');
    throwsCode(() => addEntry(store, ctx, true, new Uint8Array([0x61, 0xff]), 1, FT.REG_FILE), 'EINVAL');
    checkModel(store, ctx, true, model);
    assert.equal(removeEntry(store, ctx, true, b('strasse-ünïcode-7')), 107);
    model.delete(Buffer.from('Straße-Ünïcode-7').toString('latin1'));
    assert.equal(replaceEntry(store, ctx, true, b('STRASSE-ÜNÏCODE-8'), 5, FT.REG_FILE), 108);
    model.set(Buffer.from('Straße-Ünïcode-8').toString('latin1'), 5);
    checkModel(store, ctx, true, model);
    // Whatever the superblock's strict flag (the directory code has no non-strict mode):
    // e2fsprogs 1.47 would hash such a name differently from the kernel.
    const loose = makeCtx({ casefold: true });
    throwsCode(() => addEntry(store, loose, true, new Uint8Array([0x61, 0xff]), 9, FT.REG_FILE), 'EINVAL');
    checkModel(store, loose, true, model);
  });

  it('refuses encrypted directories and corrupt blocks', () => {
    const ctx = makeCtx({ csum: true });
    const store = newDir(ctx);
    throwsCode(() => addEntry(store, { ...ctx, encrypted: true }, false, b('x'), 5, FT.REG_FILE), 'EOPNOTSUPP');
    const block0 = store.blocks[0] as Uint8Array;
    block0[20] = (block0[20] as number) ^ 1;
    throwsCode(() => addEntry(store, ctx, false, b('x'), 5, FT.REG_FILE), 'EUCLEAN');
    throwsCode(() => addEntry(newDir(ctx), ctx, true, b('x'), 5, FT.REG_FILE), 'EUCLEAN');
  });

  it('without the filetype feature', () => {
    const ctx = makeCtx({ hasFileType: false, csum: false });
    const store = newDir(ctx);
    const model = new Map<string, number>();
    let indexed = false;
    for (let i = 0; i < 500; i++) indexed = add(store, ctx, indexed, model, `n${i}`, 100 + i);
    checkModel(store, ctx, indexed, model);
  });
});

describe('dir-write: random add/remove sequences against a model', () => {
  it('property', () => {
    const config = fc.record({
      csum: fc.boolean(),
      blockSize: fc.constantFrom(1024, 1024, 4096),
      dirIndex: fc.boolean(),
      collide: fc.boolean(),
      hashVersion: fc.constantFrom(DX_HASH.LEGACY, DX_HASH.HALF_MD4, DX_HASH.TEA),
      sFlags: fc.constantFrom(1, 2),
    });
    const op = fc.record({ add: fc.nat(9), pick: fc.nat(), len: fc.integer({ min: 1, max: 255 }) });
    fc.assert(
      fc.property(config, fc.array(op, { minLength: 50, maxLength: 800, size: 'max' }), (cfg, ops) => {
        const hashOverride = cfg.collide ? (name: Uint8Array): number => ((name.length % 6) * 0x20000000 + 0x1000) >>> 0 : undefined;
        const ctx = makeCtx({ ...cfg, ...(hashOverride === undefined ? {} : { hashOverride }) });
        const store = newDir(ctx);
        const model = new Map<string, number>();
        const gone: string[] = [];
        let indexed = false;
        let serial = 0;
        for (const o of ops) {
          const names = [...model.keys()];
          if (o.add < 7 || names.length === 0) {
            const name = `${'q'.repeat(Math.max(0, o.len - 6))}${(serial++).toString(36).padStart(5, '0')}`.slice(-o.len);
            if (model.has(name)) {
              throwsCode(() => addEntry(store, ctx, indexed, Buffer.from(name, 'latin1'), 5, FT.REG_FILE), 'EEXIST');
              continue;
            }
            indexed = add(store, ctx, indexed, model, name, 11 + (o.pick % 1000));
          } else {
            const name = names[o.pick % names.length] as string;
            assert.equal(removeEntry(store, ctx, indexed, Buffer.from(name, 'latin1')), model.get(name));
            model.delete(name);
            gone.push(name);
          }
        }
        checkModel(store, ctx, indexed, model, gone);
        assert.equal(isEmptyDir(store, ctx, indexed), model.size === 0);
      }),
      { numRuns: 40 },
    );
  });
});

// ------------------------------------------------------------------ real images

function haveTools(): boolean {
  return ['mke2fs', 'debugfs', 'e2fsck'].every((t) => spawnSync(t, ['-V'], { stdio: 'ignore' }).error === undefined);
}

const canMount = process.getuid?.() === 0 && existsSync('/dev/loop-control');
const work = mkdtempSync(join(tmpdir(), 'ext4ts-dirwrite-'));
after(() => rmSync(work, { recursive: true, force: true }));

function debugfsOut(image: string, request: string): string {
  return execFileSync('debugfs', ['-R', request, image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

function blocksOf(image: string, path: string): number[] {
  return debugfsOut(image, `blocks ${path}`)
    .trim()
    .split(/\s+/)
    .filter((s) => s !== '')
    .map(Number);
}

/** A DirStore over the image's directory: blocks read once, kept in memory, written back by `commit`. */
class ImageDir {
  readonly store: MemStore;
  readonly initialBlocks: number;

  constructor(
    readonly image: string,
    readonly path: string,
    readonly blockSize: number,
  ) {
    this.store = new MemStore(blockSize);
    const fd = openSync(image, 'r');
    try {
      for (const phys of blocksOf(image, path)) {
        const buf = new Uint8Array(blockSize);
        readSync(fd, buf, 0, blockSize, phys * blockSize);
        this.store.blocks.push(buf);
      }
    } finally {
      closeSync(fd);
    }
    this.initialBlocks = this.store.blocks.length;
  }

  /** Map the blocks the directory grew by (debugfs expand_dir), then write every block back. */
  commit(extraCommands: readonly string[]): void {
    const grow = this.store.blocks.length - this.initialBlocks;
    const cmds = [...Array.from({ length: grow }, () => `expand_dir ${this.path}`), ...extraCommands];
    const file = join(work, `cmds-${process.pid}-${Math.random().toString(36).slice(2)}`);
    writeFileSync(file, cmds.join('\n') + '\n');
    execFileSync('debugfs', ['-w', '-f', file, this.image], { stdio: 'ignore' });
    const phys = blocksOf(this.image, this.path);
    assert.equal(phys.length, this.store.blocks.length, 'expand_dir mapped the blocks the directory grew by');
    const fd = openSync(this.image, 'r+');
    try {
      phys.forEach((p, i) => writeSync(fd, this.store.blocks[i] as Uint8Array, 0, this.blockSize, p * this.blockSize));
    } finally {
      closeSync(fd);
    }
  }
}

interface Scenario {
  readonly name: string;
  readonly mkfs: readonly string[];
  /** Entries made by mke2fs -d before the test (hard links to /f); > 1 block then indexed by e2fsck -D. */
  readonly pre: number;
  readonly adds: number;
  readonly casefold?: boolean;
  /** debugfs commands run on the new image (e.g. superblock tweaks). */
  readonly setup?: readonly string[];
  /** Every third added name starts with a non-ASCII character. */
  readonly highBytes?: boolean;
  readonly seed: number;
  /** Mutations run before the random adds/removes; returns the indexed state. */
  readonly mutate?: (env: MutateEnv) => boolean;
}

interface MutateEnv {
  readonly store: MemStore;
  readonly ctx: DirContext;
  readonly indexed: boolean;
  readonly model: Map<string, number>;
  readonly gone: string[];
  readonly fIno: number;
}

/**
 * Leaves of an indexed directory whose first record is live and spans the whole block
 * (possible without metadata_csum): they look like dx nodes but for the live inode, so
 * the reader must not take them for one (isDxNodeBlock checks the inode).
 */
function spanningLeaves(store: MemStore, ctx: DirContext, indexed: boolean): number {
  if (!indexed || ctx.metadataCsum) return 0;
  return store.blocks.filter((bytes, lblk) => {
    if (lblk === 0) return false;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return view.getUint32(0, true) !== 0 && recLenFromDisk(view.getUint16(4, true), ctx.blockSize) === ctx.blockSize && !isDxNodeBlock(bytes, ctx.blockSize);
  }).length;
}

function runScenario(s: Scenario): string {
  const dir = join(work, s.name);
  mkdirSync(join(dir, 'src', 'd'), { recursive: true });
  writeFileSync(join(dir, 'src', 'f'), 'hello\n');
  const r = rng(s.seed);
  const model = new Map<string, number>();
  const pre: string[] = [];
  for (let i = 0; i < s.pre; i++) {
    const name = `pre-${randomName(r, i, 60)}`;
    linkSync(join(dir, 'src', 'f'), join(dir, 'src', 'd', name));
    pre.push(name);
  }
  const image = join(dir, 'img');
  execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '1024', ...s.mkfs, '-d', join(dir, 'src'), image, '32M'], { stdio: 'ignore' });
  if (s.casefold === true) execFileSync('debugfs', ['-w', '-R', 'sif d flags 0x40080000', image], { stdio: 'ignore' });
  for (const cmd of s.setup ?? []) execFileSync('debugfs', ['-w', '-R', cmd, image], { stdio: 'ignore' });
  if (s.pre > 0) {
    const fsck = spawnSync('e2fsck', ['-fyD', image], { encoding: 'utf8' });
    assert.ok(fsck.status === 0 || fsck.status === 1, fsck.stdout);
  }
  const sbBytes = new Uint8Array(1024);
  const fd = openSync(image, 'r');
  readSync(fd, sbBytes, 0, 1024, 1024);
  closeSync(fd);
  const sb = decodeSuperblock(sbBytes);
  const fsBefore = Ext4.openFile(image);
  const dIno = fsBefore.lookup(2, 'd');
  const fIno = fsBefore.lookup(2, 'f');
  const dInode = fsBefore.readInode(dIno);
  fsBefore.close();
  for (const name of pre) model.set(Buffer.from(name).toString('latin1'), fIno);
  const ctx: DirContext = {
    ino: dIno,
    blockSize: sb.blockSize,
    metadataCsum: sb.hasMetadataCsum,
    csumSeed: sb.hasMetadataCsum ? inodeSeed(sb.csumSeed, dIno, dInode.generation) : 0,
    hasFileType: true,
    hashSeed: sb.hashSeed,
    defaultHashVersion: sb.defHashVersion,
    sFlags: sb.flags,
    casefold: s.casefold === true,
    largeDir: s.mkfs.join(' ').includes('large_dir'),
    dirIndex: true,
  };
  const idir = new ImageDir(image, 'd', sb.blockSize);
  const wasIndexed = (dInode.flags & INDEX_FL) !== 0;
  let indexed = wasIndexed;
  const gone: string[] = [];
  const newNames: string[] = [];
  if (s.mutate !== undefined) {
    indexed = s.mutate({ store: idir.store, ctx, indexed, model, gone, fIno });
  }
  for (let i = 0; i < s.adds; i++) {
    const base = randomName(r, 100_000 + i, 200);
    const name = (s.casefold === true || s.highBytes === true) && i % 3 === 0 ? `Ä-é-${base}` : base;
    const bytes = b(name);
    indexed = addEntry(idir.store, ctx, indexed, bytes, fIno, FT.REG_FILE).indexed;
    model.set(Buffer.from(bytes).toString('latin1'), fIno);
    newNames.push(name);
    if (i % 5 === 4) {
      // Remove an earlier name now and then: a pre-existing one or one of ours.
      const victim = (i % 10 === 4 && pre.length > 0 ? pre.pop() : newNames.splice(Math.floor(r() * newNames.length), 1)[0]) as string;
      const victimBytes = b(victim);
      assert.equal(removeEntry(idir.store, ctx, indexed, victimBytes), fIno);
      model.delete(Buffer.from(victimBytes).toString('latin1'));
      gone.push(victim);
    }
  }
  const w = checkModel(idir.store, ctx, indexed, model);
  const spanning = spanningLeaves(idir.store, ctx, indexed);
  const extra = [`sif f links_count ${1 + model.size}`];
  if (indexed && !wasIndexed) extra.push(`sif d flags 0x${(dInode.flags | INDEX_FL).toString(16)}`);
  idir.commit(extra);

  const fsck = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
  assert.equal(fsck.status, 0, `e2fsck -fn:\n${fsck.stdout}\n${fsck.stderr}`);

  const expected = [...model.keys()].map((k) => Buffer.from(k, 'latin1').toString('utf8')).sort();
  {
    const fs = Ext4.openFile(image);
    try {
      assert.deepEqual(fs.readdir('/d').filter((n) => n !== '.' && n !== '..').sort(), expected);
      for (const name of expected) assert.equal(fs.lookup(dIno, name), fIno, `reader lookup ${name}`);
      for (const name of gone) throwsCode(() => fs.lookup(dIno, name), 'ENOENT');
    } finally {
      fs.close();
    }
  }
  if (canMount && (s.casefold !== true || kernelSupportsCasefold())) {
    withMount(image, join(dir, 'mnt'), { readOnly: true }, (mnt) => {
      assert.deepEqual(readdirSync(join(mnt, 'd')).sort(), expected);
      for (const name of expected) assert.equal(statSync(join(mnt, 'd', name)).ino, fIno, `kernel lookup ${name}`);
      for (const name of gone) assert.equal(existsSync(join(mnt, 'd', name)), false, `kernel: ${name} is gone`);
    });
  }
  return `${model.size} entries, ${idir.store.blocks.length} blocks (${idir.initialBlocks} before), indexed ${indexed}, levels ${w.levels}, leaves ${w.leaves}, kernel ${canMount && (s.casefold !== true || kernelSupportsCasefold()) ? 'checked' : 'skipped'}${spanning > 0 ? `, ${spanning} single-entry leaves` : ''}`;
}


describe('dir-write: real images, e2fsck and the kernel as oracles', { skip: !haveTools() }, () => {
  const scenarios: Scenario[] = [
    { name: 'csum-from-empty', mkfs: ['-O', 'metadata_csum'], pre: 0, adds: 3000, seed: 1 },
    { name: 'nocsum-from-empty', mkfs: ['-O', '^metadata_csum'], pre: 0, adds: 3000, seed: 2 },
    { name: 'csum-preindexed', mkfs: ['-O', 'metadata_csum'], pre: 800, adds: 2500, seed: 3 },
    { name: 'nocsum-preindexed', mkfs: ['-O', '^metadata_csum'], pre: 800, adds: 2500, seed: 4 },
    { name: 'largedir', mkfs: ['-O', 'metadata_csum,large_dir'], pre: 300, adds: 3000, seed: 5 },
    { name: 'tea-unsigned', mkfs: ['-O', '^metadata_csum'], setup: ['ssv def_hash_version tea', 'ssv flags 2'], pre: 0, adds: 1500, highBytes: true, seed: 6 },
    { name: 'legacy-signed', mkfs: ['-O', 'metadata_csum'], setup: ['ssv def_hash_version legacy', 'ssv flags 1'], pre: 0, adds: 1500, highBytes: true, seed: 8 },
    { name: 'casefold', mkfs: ['-O', 'metadata_csum,casefold'], pre: 0, adds: 2000, casefold: true, seed: 7 },
  ];
  for (const s of scenarios) it(s.name, (t) => t.diagnostic(runScenario(s)));

  // Without metadata_csum a leaf whose only live entry is its first record spans the
  // block, like a dx_node's fake record: e2fsck and the kernel are fine with it.
  const singleEntryLeaf = (env: MutateEnv): boolean => {
    let indexed = env.indexed;
    for (let i = 0; i < 40; i++) {
      const name = `${'L'.repeat(240)}-${i}`;
      indexed = addEntry(env.store, env.ctx, indexed, b(name), env.fIno, FT.REG_FILE).indexed;
      env.model.set(name, env.fIno);
    }
    // Keep only the first record of leaf 1; remove everything else there.
    const leaf = decodeDirBlock(env.store.blocks[1] as Uint8Array, leafOptions(env.ctx, 1)).entries;
    for (const e of leaf.slice(1)) {
      removeEntry(env.store, env.ctx, indexed, e.name);
      env.model.delete(key(e.name));
      env.gone.push(key(e.name));
    }
    assert.equal(spanningLeaves(env.store, env.ctx, indexed), 1);
    assert.equal(isEmptyDir(env.store, env.ctx, indexed), false);
    return indexed;
  };
  it('single-entry leaf without metadata_csum: e2fsck and the kernel', (t) => {
    t.diagnostic(runScenario({ name: 'single-leaf', mkfs: ['-O', '^metadata_csum'], pre: 0, adds: 0, seed: 9, mutate: singleEntryLeaf }));
  });
  it('single-entry leaf without metadata_csum: the reader', () => {
    runScenario({ name: 'single-leaf-readdir', mkfs: ['-O', '^metadata_csum'], pre: 0, adds: 0, seed: 9, mutate: singleEntryLeaf });
  });
});
