/**
 * Hash-ordered listings of htree directories (Ext4.readdirInode with hash cookies).
 *
 * Images: `mke2fs -d` over a directory of many files, then `e2fsck -fyD` to index it
 * (mke2fs -d writes linear directories). Oracles: debugfs `htree` (e2fsprogs' own hashes
 * of every entry, for the order) and `e2fsck -fn` after writes. The point of hash cookies
 * is that a listing resumed chunk by chunk while the directory changes (creates that
 * split leaves and grow the index, removals) returns every entry present throughout
 * exactly once, and nothing twice.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { Ext4 } from '../src/fs/ext4.js';
import { FsError } from '../src/errors.js';
import { MemoryChannel } from '../src/io/memory-channel.js';
import { FuseSession } from '../src/fuse/session.js';
import { Opcode } from '../src/fuse/abi.js';
import { DX_ROOT_OFFSETS } from '../src/ondisk/htree.js';
import { HASH_COOKIE_BASE, HASH_COOKIE_EOF } from '../src/fs/readdir-cookie.js';
import type { DirEntryInfo } from '../src/fs/types.js';
import { debugfs, makeImage, scratchDir } from './helpers/images.js';
import { fsckClean } from './helpers/twin.js';

const ROOT = 2;
const who = { uid: 0, gid: 0 };

/** Names long enough that a few hundred need many leaves on 1 KiB blocks. */
function nameOf(i: number): string {
  return `orig-${i}-${(i * 2654435761) % 1000003}`.padEnd(40, 'x');
}

const indexed = new Set<string>();

/** An image whose /big holds `count` files, indexed by e2fsck -D. */
function htreeImage(name: string, mkfsArgs: readonly string[], count: number): string {
  const image = makeImage({
    name,
    size: '32M',
    mkfsArgs,
    populate: (d) => {
      fs.mkdirSync(join(d, 'big'));
      for (let i = 0; i < count; i++) fs.closeSync(fs.openSync(join(d, 'big', nameOf(i)), 'w'));
      fs.mkdirSync(join(d, 'small'));
      fs.closeSync(fs.openSync(join(d, 'small', 'one'), 'w'));
    },
  });
  if (!indexed.has(image)) {
    const r = spawnSync('e2fsck', ['-fyD', image], { encoding: 'utf8' });
    assert.ok(r.status === 0 || r.status === 1, `e2fsck -fyD: ${r.status} ${r.stdout}`);
    indexed.add(image);
  }
  return image;
}

let copies = 0;
function fresh(base: string): string {
  const copy = join(scratchDir(), `readdir-htree-${copies++}.img`);
  fs.copyFileSync(base, copy);
  return copy;
}

/** The entries of an htree directory in e2fsprogs' hash order (debugfs htree: hash, minor, name). */
function debugfsHashOrder(image: string, path: string): string[] {
  const out = debugfs(image, `htree ${path}`);
  const items: { hash: number; minor: number; name: string }[] = [];
  for (const m of out.matchAll(/\d+ 0x([0-9a-f]+)-([0-9a-f]+) \(\d+\) (\S+)/g)) {
    items.push({ hash: parseInt(m[1] as string, 16), minor: parseInt(m[2] as string, 16), name: m[3] as string });
  }
  items.sort((a, b) => a.hash - b.hash || a.minor - b.minor || Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  return items.map((x) => x.name);
}

function indirectLevels(image: string, path: string): number {
  const m = /Indirect levels: (\d+)/.exec(debugfs(image, `htree ${path}`));
  assert.ok(m !== null, `${path} is an htree`);
  return Number(m[1]);
}

/** Up to `n` entries from `cookie` on (what one READDIR reply does), and the cookie after them. */
function chunk(fsys: Ext4, dir: number, cookie: number, n: number): { names: string[]; next: number } {
  const names: string[] = [];
  let next = cookie;
  for (const e of fsys.readdirInode(dir, cookie)) {
    names.push(e.name);
    next = e.next;
    if (names.length === n) break;
  }
  return { names, next };
}

/** Every name of `expected` came exactly once, and no name came twice. */
function assertOnce(listed: readonly string[], expected: Iterable<string>): void {
  const counts = new Map<string, number>();
  for (const n of listed) counts.set(n, (counts.get(n) ?? 0) + 1);
  const twice = [...counts].filter(([, c]) => c > 1).map(([n]) => n);
  assert.deepEqual(twice, [], 'no entry listed twice');
  const missing = [...expected].filter((n) => !counts.has(n));
  assert.deepEqual(missing, [], 'every entry present throughout is listed');
}

for (const variant of [
  { name: '1k', args: ['-t', 'ext4', '-b', '1024', '-N', '8192'] },
  { name: '4k-nocsum', args: ['-t', 'ext4', '-O', '^metadata_csum', '-N', '8192'] },
]) {
  describe(`hash-ordered readdir of htree directories (${variant.name})`, () => {
    const count = 400;
    const base = (): string => htreeImage(`htree-${variant.name}`, variant.args, count);

    it('lists in the hash order e2fsprogs computes, with safe, growing cookies', () => {
      const image = base();
      const fsys = Ext4.openFile(image);
      const dir = fsys.resolve('/big');
      const all = [...fsys.readdirInode(dir)];
      assert.deepEqual(
        all.slice(0, 2).map((e) => [e.name, e.next]),
        [
          ['.', 1],
          ['..', 2],
        ],
      );
      assert.deepEqual(
        all.slice(2).map((e) => e.name),
        debugfsHashOrder(image, '/big'),
      );
      let prev = 0;
      for (const e of all) {
        assert.ok(Number.isSafeInteger(e.next) && e.next > 0 && e.next >= prev, `cookie ${e.next} after ${prev}`);
        prev = e.next;
      }
      assert.ok(prev > HASH_COOKIE_BASE && prev <= HASH_COOKIE_EOF);
      // Resuming from any entry's cookie gives the rest of the listing.
      for (const at of [0, 1, 2, 3, 57, all.length - 2, all.length - 1]) {
        const cookie = at === 0 ? 0 : (all[at - 1] as DirEntryInfo).next;
        assert.deepEqual(
          [...fsys.readdirInode(dir, cookie)].map((e) => e.name),
          all.slice(at).map((e) => e.name),
          `resumed at entry ${at}`,
        );
      }
      assert.deepEqual([...fsys.readdirInode(dir, HASH_COOKIE_EOF)], []);
      // A position cookie (the directory was linear when it was handed out) starts over
      // after '..' rather than skipping anything.
      assert.deepEqual(
        [...fsys.readdirInode(dir, 13)].map((e) => e.name),
        all.slice(2).map((e) => e.name),
      );
      // The path-level readdir still lists everything (once).
      assert.equal(fsys.readdir('/big').length, count);
      assert.deepEqual(
        fsys.readdir('/small'),
        ['one'],
        'a linear directory is unchanged',
      );
      fsys.close();
    });

    it('creates between chunks (leaf splits, a new index level): old entries once, nothing twice', () => {
      const image = fresh(base());
      assert.equal(indirectLevels(image, '/big'), 0);
      const fsys = Ext4.openFile(image, { write: true });
      const dir = fsys.resolve('/big');
      const listed: string[] = [];
      let cookie = 0;
      let made = 0;
      for (;;) {
        const { names, next } = chunk(fsys, dir, cookie, 23);
        if (names.length === 0) break;
        listed.push(...names);
        cookie = next;
        for (let k = 0; k < 60; k++) fsys.mknodInode(dir, `new-${made++}`.padEnd(60, 'n'), 0o100644, who);
      }
      assertOnce(listed, ['.', '..', ...Array.from({ length: count }, (_, i) => nameOf(i))]);
      fsys.close();
      assert.ok(indirectLevels(image, '/big') >= (variant.name === '1k' ? 1 : 0), 'the index grew a level');
      fsckClean(image);
      // And a fresh listing after it all has every name once.
      const after = Ext4.openFile(image);
      const names = after.readdir('/big');
      assert.equal(new Set(names).size, names.length);
      assert.equal(names.length, count + made);
      after.close();
    });

    it('removals (and creates) between chunks: entries never removed come once', () => {
      const image = fresh(base());
      const fsys = Ext4.openFile(image, { write: true });
      const dir = fsys.resolve('/big');
      const removed = new Set<string>();
      const listed: string[] = [];
      let cookie = 0;
      let victim = 0;
      let made = 0;
      for (;;) {
        const { names, next } = chunk(fsys, dir, cookie, 17);
        if (names.length === 0) break;
        listed.push(...names);
        cookie = next;
        for (let k = 0; k < 9 && victim < count; k++, victim += 3) {
          fsys.unlink(`/big/${nameOf(victim)}`);
          removed.add(nameOf(victim));
        }
        for (let k = 0; k < 20; k++) fsys.mknodInode(dir, `fresh-${made++}`.padEnd(50, 'f'), 0o100644, who);
      }
      const kept = Array.from({ length: count }, (_, i) => nameOf(i)).filter((n) => !removed.has(n));
      assertOnce(listed, ['.', '..', ...kept]);
      fsys.close();
      fsckClean(image);
    });

    it('property: any interleaving of chunked reads, creates and removes lists survivors exactly once', () => {
      const ops = fc.array(
        fc.oneof(
          fc.record({ kind: fc.constant('read' as const), n: fc.integer({ min: 1, max: 40 }) }),
          fc.record({ kind: fc.constant('create' as const), n: fc.integer({ min: 1, max: 80 }), len: fc.integer({ min: 8, max: 200 }) }),
          fc.record({ kind: fc.constant('remove' as const), n: fc.integer({ min: 1, max: 30 }), seed: fc.nat() }),
        ),
        { minLength: 1, maxLength: 40 },
      );
      fc.assert(
        fc.property(ops, (steps) => {
          const image = fresh(base());
          const fsys = Ext4.open(new MemoryChannel(new Uint8Array(fs.readFileSync(image))), { write: true });
          const dir = fsys.resolve('/big');
          const present = new Set(Array.from({ length: count }, (_, i) => nameOf(i)));
          const touched = new Set<string>();
          const listed: string[] = [];
          let cookie = 0;
          let made = 0;
          let done = false;
          const read = (n: number): void => {
            if (done) return;
            const got = chunk(fsys, dir, cookie, n);
            if (got.names.length === 0) done = true;
            listed.push(...got.names);
            cookie = got.next;
          };
          for (const step of steps) {
            if (step.kind === 'read') read(step.n);
            else if (step.kind === 'create') {
              for (let k = 0; k < step.n; k++) {
                const name = `p${made++}-`.padEnd(step.len, 'z');
                fsys.mknodInode(dir, name, 0o100644, who);
                present.add(name);
                touched.add(name);
              }
            } else {
              const names = [...present];
              for (let k = 0; k < step.n && names.length > 0; k++) {
                const name = names.splice((step.seed + k * 7919) % names.length, 1)[0] as string;
                fsys.unlinkInode(dir, name);
                present.delete(name);
                touched.add(name);
              }
            }
          }
          while (!done) read(50);
          assertOnce(listed, ['.', '..', ...[...present].filter((n) => !touched.has(n))]);
          for (const n of listed) assert.ok(n === '.' || n === '..' || present.has(n) || touched.has(n), `listed ${n} was there at some point`);
          fsys.close();
        }),
        { numRuns: 25 },
      );
    });
  });
}

describe('hash-ordered readdir of damaged indexes', () => {
  const base = (): string => htreeImage('htree-hostile', ['-t', 'ext4', '-b', '1024', '-O', '^metadata_csum'], 400);

  /** The image with the dx_root entry `i` of /big pointing at logical block `block`. */
  function withRootEntry(i: number, block: number): { fsys: Ext4; dir: number } {
    const bytes = new Uint8Array(fs.readFileSync(base()));
    const probe = Ext4.open(new MemoryChannel(bytes.slice()));
    const dir = probe.resolve('/big');
    probe.close();
    const rootPhys = Number(debugfs(base(), 'blocks /big').trim().split(/\s+/)[0]);
    assert.ok(rootPhys > 0);
    const at = rootPhys * 1024 + DX_ROOT_OFFSETS.countLimit + i * 8 + 4;
    new DataView(bytes.buffer).setUint32(at, block, true);
    return { fsys: Ext4.open(new MemoryChannel(bytes)), dir };
  }

  it('a leaf referenced twice is EUCLEAN, not a listing with duplicates', () => {
    const { fsys, dir } = withRootEntry(2, 1);
    assert.throws(
      () => [...fsys.readdirInode(dir)],
      (e: unknown) => e instanceof FsError && e.code === 'EUCLEAN' && /referenced twice/.test(e.message),
    );
    fsys.close();
  });

  it('an index entry pointing at the root, or past the directory, is EUCLEAN', () => {
    for (const [block, pattern] of [
      [0, /block 0, the root/],
      [100000, /past the directory/],
    ] as const) {
      const { fsys, dir } = withRootEntry(3, block);
      assert.throws(
        () => [...fsys.readdirInode(dir)],
        (e: unknown) => e instanceof FsError && e.code === 'EUCLEAN' && pattern.test(e.message),
        `block ${block}`,
      );
      fsys.close();
    }
  });
});

describe('FUSE READDIR replies keep runs of equal cookies together', () => {
  /** READDIR request bytes: fuse_in_header + fuse_read_in. */
  function readdirRequest(nodeid: number, offset: number, size: number, unique: bigint): Uint8Array {
    const bytes = new Uint8Array(40 + 40);
    const v = new DataView(bytes.buffer);
    v.setUint32(0, bytes.length, true);
    v.setUint32(4, Opcode.READDIR, true);
    v.setBigUint64(8, unique, true);
    v.setBigUint64(16, BigInt(nodeid), true);
    v.setBigUint64(48, BigInt(offset), true);
    v.setUint32(56, size, true);
    return bytes;
  }

  function parseDirents(reply: Uint8Array): { name: string; off: number }[] {
    const v = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
    assert.equal(v.getInt32(4, true), 0, 'no error');
    const out: { name: string; off: number }[] = [];
    for (let at = 16; at < reply.length; ) {
      const off = Number(v.getBigUint64(at + 8, true));
      const len = v.getUint32(at + 16, true);
      out.push({ name: Buffer.from(reply.subarray(at + 24, at + 24 + len)).toString(), off });
      at += (24 + len + 7) & ~7;
    }
    return out;
  }

  it('a run that does not fit goes to the next reply; one larger than a reply is cut, not repeated', () => {
    const image = makeImage({ name: 'session-runs', size: '8M', mkfsArgs: ['-t', 'ext4'] });
    const fsys = Ext4.open(new MemoryChannel(new Uint8Array(fs.readFileSync(image))));
    // Synthetic listing: runs of entries sharing a cookie (as equal hash keys do).
    const runs = [1, 3, 2, 5, 1, 40, 2];
    const entries: DirEntryInfo[] = [];
    let next = 10;
    runs.forEach((len, r) => {
      next += 10;
      for (let k = 0; k < len; k++) entries.push({ name: `r${r}-${k}`, rawName: Buffer.from(`r${r}-${k}`), ino: ROOT, kind: 'file', next });
    });
    fsys.readdirInode = function* (_ino: number, cookie = 0) {
      for (const e of entries) if (e.next > cookie) yield e;
    };
    const replies: Uint8Array[] = [];
    const session = new FuseSession(fsys, (buffers) => replies.push(Buffer.concat(buffers)), { attrTimeout: 1, entryTimeout: 1, maxRead: 131072 });
    const init = new Uint8Array(104);
    const iv = new DataView(init.buffer);
    iv.setUint32(0, 104, true);
    iv.setUint32(4, Opcode.INIT, true);
    iv.setBigUint64(8, 2n, true);
    iv.setUint32(40, 7, true);
    iv.setUint32(44, 45, true);
    iv.setUint32(48, 131072, true);
    session.handle(init);
    // 32 bytes per dirent ("rN-K" names): 4 fit in 128 bytes.
    const pages: string[][] = [];
    let off = 0;
    for (let unique = 4n; pages.length < 20; unique += 2n) {
      session.handle(readdirRequest(1, off, 128, unique));
      const got = parseDirents(replies[replies.length - 1] as Uint8Array);
      if (got.length === 0) break;
      pages.push(got.map((d) => d.name));
      off = (got[got.length - 1] as { off: number }).off;
    }
    assert.deepEqual(pages, [
      ['r0-0', 'r1-0', 'r1-1', 'r1-2'],
      ['r2-0', 'r2-1'],
      ['r3-0', 'r3-1', 'r3-2', 'r3-3'],
      ['r4-0'],
      ['r5-0', 'r5-1', 'r5-2', 'r5-3'],
      ['r6-0', 'r6-1'],
    ]);
    fsys.close();
  });
});
