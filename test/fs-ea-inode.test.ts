/**
 * Writing on ea_inode filesystems: xattr values too large for the inode and its xattr
 * block go to EA inodes of their own, reference-counted (the count in i_ctime/i_version,
 * the value's hash in i_atime) and shared, as the kernel keeps them. After every
 * scenario e2fsck -fn finds the image clean (it recounts every EA inode's references
 * and checks every entry's hash against its EA inode), and a kernel loop mount reads
 * the values back (the kernel checks the value's CRC32C against the EA inode's hash).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Ext4 } from '../src/fs/ext4.js';
import { FsError } from '../src/errors.js';
import { dumpe2fsHeader, scratchDir } from './helpers/images.js';
import { fillFile, fsckClean } from './helpers/twin.js';
import { unmountLeftovers, withMount } from './helpers/kernel.js';

after(() => unmountLeftovers());

/** Deterministic bytes, different per seed. */
function value(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed * 2654435761;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** A fresh ea_inode image with /a, /b and /c (empty files); `inodeSize` 128 leaves no room in the inodes. */
function eaImage(name: string, inodeSize = 256): string {
  const src = join(scratchDir(), `${name}.src`);
  fs.rmSync(src, { recursive: true, force: true });
  fs.mkdirSync(src);
  for (const f of ['a', 'b', 'c']) fs.writeFileSync(join(src, f), f);
  const image = join(scratchDir(), `${name}.img`);
  fs.rmSync(image, { force: true });
  execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-I', String(inodeSize), '-O', 'ea_inode,metadata_csum', '-d', src, image, '64M'], { stdio: 'ignore' });
  return image;
}

/** The value of `name` on `path` as the kernel reads it (getfattr on a read-only loop mount). */
function kernelValue(image: string, path: string, name: string): Buffer | undefined {
  return withMount(image, join(scratchDir(), `mnt-${process.pid}-${Math.random().toString(36).slice(2)}`), { readOnly: true }, (mnt) => {
    try {
      const out = execFileSync('getfattr', ['--only-values', '--absolute-names', '-n', name, join(mnt, path)], { stdio: ['ignore', 'pipe', 'pipe'] });
      return out;
    } catch {
      return undefined;
    }
  });
}

/** EA inodes in use: inodes flagged EA_INODE_FL (0x200000), by debugfs. */
function eaInodes(image: string): number[] {
  const used: number[] = [];
  const count = Number(dumpe2fsHeader(image).get('Inode count'));
  const fsys = Ext4.openFile(image);
  try {
    for (let ino = 12; ino <= count; ino++) {
      const inode = fsys.readInode(ino);
      if (inode.linksCount > 0 && (inode.flags & 0x20_0000) !== 0) used.push(ino);
    }
  } finally {
    fsys.close();
  }
  return used;
}

function freeInodes(image: string): number {
  return Number(dumpe2fsHeader(image).get('Free inodes'));
}

describe('ea_inode: large xattr values in inodes of their own', () => {
  it('a value too large for the inode and the block gets an EA inode; replacing and removing it frees it', () => {
    const image = eaImage('ea-basic');
    const free0 = freeInodes(image);
    const big = value(20_000, 1);
    let fsys = Ext4.openFile(image, { write: true });
    fsys.setxattr('/a', 'user.big', big);
    fsys.setxattr('/a', 'user.small', new Uint8Array([1, 2, 3]));
    assert.deepEqual(fsys.getxattr('/a', 'user.big'), big);
    fsys.close();
    fsckClean(image);
    assert.equal(eaInodes(image).length, 1);
    assert.equal(freeInodes(image), free0 - 1);
    assert.deepEqual(kernelValue(image, 'a', 'user.big'), Buffer.from(big));
    assert.deepEqual(kernelValue(image, 'a', 'user.small'), Buffer.from([1, 2, 3]));

    // Replaced by another large value: a new EA inode, the old one freed.
    const bigger = value(65_536, 2); // XATTR_SIZE_MAX
    const before = eaInodes(image);
    fsys = Ext4.openFile(image, { write: true });
    fsys.setxattr('/a', 'user.big', bigger);
    fsys.close();
    fsckClean(image);
    const after1 = eaInodes(image);
    assert.equal(after1.length, 1);
    assert.notDeepEqual(after1, before);
    assert.equal(freeInodes(image), free0 - 1);
    assert.deepEqual(kernelValue(image, 'a', 'user.big'), Buffer.from(bigger));

    // Replaced by a small value (fits in the inode): no EA inode left.
    fsys = Ext4.openFile(image, { write: true });
    fsys.setxattr('/a', 'user.big', new Uint8Array([9]));
    fsys.close();
    fsckClean(image);
    assert.deepEqual(eaInodes(image), []);
    assert.equal(freeInodes(image), free0);

    // Large again, then removed.
    fsys = Ext4.openFile(image, { write: true });
    fsys.setxattr('/b', 'user.big', big);
    fsys.removexattr('/b', 'user.big');
    fsys.close();
    fsckClean(image);
    assert.deepEqual(eaInodes(image), []);
    assert.equal(freeInodes(image), free0);
  });

  it('deleting a file gives its EA inodes back, from the inode and from its xattr block', () => {
    const image = eaImage('ea-delete', 128); // no in-inode room: every entry is in the block
    const free0 = freeInodes(image);
    const fsys = Ext4.openFile(image, { write: true });
    fsys.setxattr('/a', 'user.one', value(10_000, 3));
    fsys.setxattr('/a', 'user.two', value(12_000, 4));
    fsys.setxattr('/a', 'user.tiny', new Uint8Array([7]));
    fsys.close();
    fsckClean(image);
    assert.equal(eaInodes(image).length, 2);
    assert.deepEqual(kernelValue(image, 'a', 'user.two'), Buffer.from(value(12_000, 4)));
    const again = Ext4.openFile(image, { write: true });
    again.unlink('/a');
    again.close();
    fsckClean(image);
    assert.deepEqual(eaInodes(image), []);
    assert.equal(freeInodes(image), free0 + 1, 'the file and both EA inodes are free');
  });

  it('EA inodes and xattr blocks the kernel shared stay counted right through copies, replacements and deletions', () => {
    const image = eaImage('ea-shared', 128);
    const big = value(30_000, 5);
    // The kernel shares one EA inode for equal values, and one block for equal xattr sets.
    withMount(image, join(scratchDir(), 'mnt-ea-shared'), { readOnly: false }, (mnt) => {
      for (const f of ['a', 'b', 'c']) {
        execFileSync('setfattr', ['-n', 'user.big', '-v', `0x${Buffer.from(big).toString('hex')}`, join(mnt, f)]);
        execFileSync('setfattr', ['-n', 'user.tag', '-v', 'same', join(mnt, f)]);
      }
    });
    fsckClean(image);
    const shared = eaInodes(image);
    assert.equal(shared.length, 1, 'the kernel stored the value once');
    let fsys = Ext4.openFile(image, { write: true });
    // /a's block is shared: changing /a copies it, and the copy holds its own reference.
    fsys.setxattr('/a', 'user.tag', new TextEncoder().encode('mine'));
    fsys.close();
    fsckClean(image);
    assert.deepEqual(eaInodes(image), shared);
    assert.deepEqual(kernelValue(image, 'a', 'user.big'), Buffer.from(big));
    assert.deepEqual(kernelValue(image, 'a', 'user.tag'), Buffer.from('mine'));
    assert.deepEqual(kernelValue(image, 'b', 'user.tag'), Buffer.from('same'));
    // /b replaces the value: its (shared) block is copied without the old reference.
    fsys = Ext4.openFile(image, { write: true });
    fsys.setxattr('/b', 'user.big', value(25_000, 6));
    fsys.unlink('/c');
    fsys.close();
    fsckClean(image);
    assert.equal(eaInodes(image).length, 2);
    assert.deepEqual(kernelValue(image, 'b', 'user.big'), Buffer.from(value(25_000, 6)));
    assert.deepEqual(kernelValue(image, 'a', 'user.big'), Buffer.from(big));
    fsys = Ext4.openFile(image, { write: true });
    fsys.unlink('/a');
    fsys.unlink('/b');
    fsys.close();
    fsckClean(image);
    assert.deepEqual(eaInodes(image), []);
  });

  it('a value that cannot be stored leaves nothing behind (ENOSPC)', () => {
    const image = eaImage('ea-full');
    const free0 = freeInodes(image);
    const fsys = Ext4.openFile(image, { write: true });
    // Fill the data blocks, then ask for a value that needs more than is left.
    fillFile(fsys, fsys.stat('/c').ino, 1 << 20);
    assert.throws(() => fsys.setxattr('/a', 'user.big', value(60_000, 7)), (e: unknown) => e instanceof FsError && e.code === 'ENOSPC');
    assert.throws(() => fsys.getxattr('/a', 'user.big'), (e: unknown) => e instanceof FsError && e.code === 'ENODATA');
    fsys.close();
    fsckClean(image);
    assert.deepEqual(eaInodes(image), []);
    assert.equal(freeInodes(image), free0);
  });
});
