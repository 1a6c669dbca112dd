/**
 * Writing casefolded directories (the casefold feature, +F directories) through the
 * library. The oracle is e2fsprogs: e2fsck -fn re-hashes every entry of an indexed
 * directory with its own copy of the kernel's Unicode tables and checks the htree
 * order, so a name we folded or hashed differently from the kernel makes it complain;
 * debugfs lists what is on disk. (This kernel may lack CONFIG_UNICODE, so no loop mount.)
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Ext4 } from '../src/fs/ext4.js';
import { CASEFOLD_FL, INDEX_FL } from '../src/ondisk/inode.js';
import { debugfs, makeImage, scratchDir } from './helpers/images.js';
import { copyImage, fsckClean, outcome as code } from './helpers/twin.js';

const ROOT = 2;
const who = { uid: 0, gid: 0 };

/** Names whose folding is not ASCII lowercasing: sharp s, final sigma, Kelvin sign, NFD vs NFC, ignorables. */
const TRICKY: readonly (readonly [string, string])[] = [
  ['Straße', 'STRASSE'],
  ['ΣΊΣΥΦΟΣ', 'σίσυφος'],
  ['\u212Aelvin', 'kelvin'],
  ['Café', 'cafe\u0301'],
  ['zero\u200Bwidth', 'ZEROWIDTH'],
  ['İstanbul', 'i\u0307stanbul'],
];

function fresh(base: string, tag: string): string {
  const dir = fs.mkdtempSync(join(scratchDir(), `cf-${tag}-`));
  return copyImage(base, join(dir, 'image'));
}

for (const variant of [
  { name: '4k', size: '32M', args: ['-t', 'ext4', '-O', 'casefold'] },
  { name: '1k-strict', size: '24M', args: ['-t', 'ext4', '-b', '1024', '-O', 'casefold', '-E', 'encoding_flags=strict'] },
  { name: '1k-nocsum', size: '24M', args: ['-t', 'ext4', '-b', '1024', '-O', 'casefold,^metadata_csum'] },
]) {
  describe(`casefolded directories on ext4 ${variant.name}`, () => {
    let base = '';
    const strict = variant.name.includes('strict');
    before(() => {
      base = makeImage({ name: `cf-${variant.name}`, size: variant.size, mkfsArgs: variant.args, populate: (d) => fs.mkdirSync(join(d, 'plain')) });
    });

    it('adds, finds, renames and removes names in any case; e2fsck finds the htree hashes right', () => {
      const image = fresh(base, variant.name);
      const fsys = Ext4.openFile(image, { write: true });
      const cf = fsys.mkdirInode(ROOT, 'cf', 0o755, who);
      fsys.setFlags(cf, fsys.readInode(cf).flags | CASEFOLD_FL);
      assert.equal(fsys.foldsNames(cf), true);
      assert.equal(fsys.foldsNames(ROOT), false);

      // Enough names to index the directory (and split leaves), in mixed case.
      const inos = new Map<string, number>();
      for (let i = 0; i < 600; i++) {
        const name = `File-${i}-${i % 2 === 0 ? 'MiXeD' : 'ünïcödé'}`;
        inos.set(name, fsys.mknodInode(cf, name, 0o100644, who));
      }
      for (const [stored] of TRICKY) inos.set(stored, fsys.mknodInode(cf, stored, 0o100644, who));
      assert.notEqual(fsys.readInode(cf).flags & INDEX_FL, 0, 'the directory became an htree');

      // Any spelling finds the entry; a second spelling cannot be created.
      for (const [stored, other] of TRICKY) {
        assert.equal(fsys.lookup(cf, other), inos.get(stored), `${other} -> ${stored}`);
        assert.equal(code(() => fsys.mknodInode(cf, other, 0o100644, who)), 'EEXIST', other);
      }
      assert.equal(fsys.lookup(cf, 'file-10-mixed'), inos.get('File-10-MiXeD'));
      assert.equal(fsys.lookup(cf, 'FILE-11-ÜNÏCÖDÉ'), inos.get('File-11-ünïcödé'));
      // Listings keep the names as they were created.
      const listed = new Set([...fsys.readdirInode(cf)].map((e) => e.name));
      for (const name of inos.keys()) assert.ok(listed.has(name), name);

      // New directories inherit +F; files do not carry it.
      const sub = fsys.mkdirInode(cf, 'Sub', 0o755, who);
      assert.notEqual(fsys.readInode(sub).flags & CASEFOLD_FL, 0);
      assert.equal(fsys.readInode(inos.get('Straße') as number).flags & CASEFOLD_FL, 0);
      fsys.mknodInode(sub, 'Inner', 0o100644, who);
      assert.equal(typeof fsys.lookup(sub, 'INNER'), 'number');

      // Remove and rename through other spellings.
      for (let i = 0; i < 600; i += 3) fsys.unlinkInode(cf, `FILE-${i}-${i % 2 === 0 ? 'mixed' : 'ÜNÏCÖDÉ'}`);
      assert.equal(code(() => fsys.lookup(cf, 'File-0-MiXeD')), 'ENOENT');
      fsys.renameInode(cf, 'strasse', cf, 'Renamed');
      assert.equal(fsys.lookup(cf, 'RENAMED'), inos.get('Straße'));
      assert.equal(code(() => fsys.lookup(cf, 'Straße')), 'ENOENT');
      fsys.renameInode(cf, 'KELVIN', ROOT, 'moved-out');
      assert.equal(fsys.lookup(ROOT, 'moved-out'), inos.get('\u212Aelvin'));
      assert.equal(code(() => fsys.lookup(ROOT, 'MOVED-OUT')), 'ENOENT', 'outside +F directories case matters');
      fsys.renameInode(ROOT, 'moved-out', sub, 'BACK-IN');
      assert.equal(fsys.lookup(sub, 'back-in'), inos.get('\u212Aelvin'));

      // Names that are not valid UTF-8: refused in strict mode as the kernel does, and
      // otherwise too (e2fsprogs 1.47 hashes them unlike the kernel: e2fsck would flag the
      // index); outside casefolded directories they are fine.
      const invalid = new Uint8Array([0x62, 0x61, 0x64, 0xff, 0x41]);
      assert.equal(code(() => fsys.mknodInode(cf, invalid, 0o100644, who)), 'EINVAL');
      assert.equal(code(() => fsys.mknodInode(sub, invalid, 0o100644, who)), 'EINVAL');
      if (!strict) assert.equal(typeof fsys.mknodInode(ROOT, invalid, 0o100644, who), 'number');
      fsys.close();

      fsckClean(image);
      const ls = debugfs(image, 'ls -p /cf');
      for (const name of ['Renamed', 'Café', 'ΣΊΣΥΦΟΣ', 'File-1-ünïcödé', 'Sub']) assert.ok(ls.includes(`/${name}/`), `debugfs lists ${name}`);
      assert.ok(!ls.includes('/File-0-MiXeD/'));
      assert.match(debugfs(image, 'htree /cf'), /Root node dump/);
    });

    it('changes casefolding only on empty directories, as the kernel does', () => {
      const image = fresh(base, `${variant.name}-flags`);
      const fsys = Ext4.openFile(image, { write: true });
      const d = fsys.mkdirInode(ROOT, 'd', 0o755, who);
      const f = fsys.mknodInode(d, 'f', 0o100644, who);
      assert.equal(code(() => fsys.setFlags(f, CASEFOLD_FL)), 'ENOTDIR');
      assert.equal(code(() => fsys.setFlags(d, CASEFOLD_FL)), 'ENOTEMPTY');
      fsys.unlinkInode(d, 'f');
      fsys.setFlags(d, CASEFOLD_FL);
      fsys.mknodInode(d, 'X', 0o100644, who);
      assert.equal(code(() => fsys.setFlags(d, 0)), 'ENOTEMPTY');
      fsys.close();
      fsckClean(image);
    });
  });
}

describe('casefolding without the feature', () => {
  it('refuses +F with EOPNOTSUPP', () => {
    const base = makeImage({ name: 'cf-none', size: '16M', mkfsArgs: ['-t', 'ext4'] });
    const image = fresh(base, 'none');
    const fsys = Ext4.openFile(image, { write: true });
    const d = fsys.mkdirInode(ROOT, 'd', 0o755, who);
    assert.equal(code(() => fsys.setFlags(d, CASEFOLD_FL)), 'EOPNOTSUPP');
    assert.equal(fsys.foldsNames(d), false);
    fsys.close();
    fsckClean(image);
  });
});
