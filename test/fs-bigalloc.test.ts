/**
 * Writing on bigalloc filesystems: space is allocated in clusters of several blocks.
 * The kernel's rules, which e2fsck checks: logical block l of a file sits at offset
 * l % ratio of its physical cluster; all the blocks of one logical cluster share a
 * physical cluster; a cluster is free again only when no block of it is mapped; tree
 * and xattr blocks take a whole cluster each; i_blocks counts whole clusters. Each
 * scenario checks the free count (dumpe2fs) after every step, then e2fsck -fn, and a
 * kernel loop mount reads the files back.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Ext4 } from '../src/fs/ext4.js';
import { dataLayout } from '../src/cli/stat.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE } from '../src/fs/writer.js';
import { debugfs, dumpe2fsHeader, scratchDir } from './helpers/images.js';
import { fillFile, fsckClean } from './helpers/twin.js';
import { unmountLeftovers, withMount } from './helpers/kernel.js';
import { randomBytes } from './helpers/tree.js';

after(() => unmountLeftovers());

/** A fresh bigalloc image holding an empty file /f. */
function bigallocImage(name: string, blockSize: number, clusterSize: number, extra: readonly string[] = [], size = '64M'): string {
  const src = join(scratchDir(), `${name}.src`);
  fs.rmSync(src, { recursive: true, force: true });
  fs.mkdirSync(src);
  fs.writeFileSync(join(src, 'f'), '');
  const image = join(scratchDir(), `${name}.img`);
  fs.rmSync(image, { force: true });
  execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', String(blockSize), '-O', ['bigalloc', ...extra].join(','), '-C', String(clusterSize), '-d', src, image, size], { stdio: 'ignore' });
  return image;
}

/** The leaf extents of `path` as debugfs lists them (`ex`). */
function leafExtents(image: string, path: string): { lblk: number; pblk: number; len: number }[] {
  const out: { lblk: number; pblk: number; len: number }[] = [];
  for (const line of debugfs(image, `ex ${path}`).split('\n')) {
    // " 0/ 0   1/  1     0 -  2929   5824 -   8753   2930 [Uninit]": a leaf has a physical range.
    const m = /^\s*\d+\/\s*\d+\s+\d+\/\s*\d+\s+(\d+)\s*-\s*\d+\s+(\d+)\s*-\s*\d+\s+(\d+)/.exec(line);
    if (m !== null) out.push({ lblk: Number(m[1]), pblk: Number(m[2]), len: Number(m[3]) });
  }
  return out;
}

function freeBlocks(image: string): number {
  return Number(dumpe2fsHeader(image).get('Free blocks'));
}

/** Deterministic bytes, different per seed. */
const bytes = (size: number, seed: number): Uint8Array => randomBytes(seed, size);

/** Run `body` on the image opened for writing, close it (written back), check e2fsck. */
function step(image: string, body: (fsys: Ext4) => void): void {
  const fsys = Ext4.openFile(image, { write: true });
  try {
    body(fsys);
  } finally {
    fsys.close();
  }
  fsckClean(image);
}

/** What a kernel read-only mount sees at `path`: content hash and st_blocks (512-byte units). */
function kernelView(image: string, path: string): { sha: string; blocks: number; size: number } {
  return withMount(image, join(scratchDir(), `mnt-${process.pid}-${Math.random().toString(36).slice(2)}`), { readOnly: true }, (mnt) => {
    const p = join(mnt, path);
    const st = fs.statSync(p);
    return { sha: createHash('sha256').update(fs.readFileSync(p)).digest('hex'), blocks: st.blocks, size: st.size };
  });
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('bigalloc: writes in clusters', () => {
  it('blocks keep their offset in the cluster; a hole in a logical cluster already backed takes no new cluster', () => {
    // 1 KiB blocks, 4 KiB clusters: a cluster is 4 blocks.
    const image = bigallocImage('ba-offsets', 1024, 4096);
    const free0 = freeBlocks(image);
    const expect = new Uint8Array(10 * 1024);
    const put = (fsys: Ext4, lblk: number, n: number, seed: number): void => {
      const data = bytes(n * 1024, seed);
      fsys.write(fsys.resolve('/f'), lblk * 1024, data);
      expect.set(data, lblk * 1024);
    };
    step(image, (fsys) => put(fsys, 1, 1, 1));
    assert.equal(freeBlocks(image), free0 - 4, 'block 1 takes a whole cluster');
    step(image, (fsys) => {
      put(fsys, 3, 1, 2);
      put(fsys, 0, 1, 3);
    });
    assert.equal(freeBlocks(image), free0 - 4, 'blocks 0 and 3 go into the cluster block 1 holds');
    step(image, (fsys) => {
      put(fsys, 2, 1, 4);
      put(fsys, 6, 4, 5);
    });
    assert.equal(freeBlocks(image), free0 - 12, 'blocks 6..9 take the clusters of logical clusters 1 and 2');
    step(image, (fsys) => put(fsys, 4, 1, 6));
    assert.equal(freeBlocks(image), free0 - 12);
    const k = kernelView(image, 'f');
    assert.equal(k.sha, sha(expect));
    assert.equal(k.blocks, 3 * 8, 'i_blocks counts three whole clusters');
    // Each extent's blocks sit at their logical offset within the cluster (debugfs's view).
    const extents = leafExtents(image, '/f');
    assert.ok(extents.length >= 1);
    for (const e of extents) assert.equal(e.pblk % 4, e.lblk % 4, `extent at ${e.lblk}`);
    assert.equal(
      extents.reduce((n, e) => n + e.len, 0),
      9,
      'blocks 0-4 and 6-9',
    );
  });

  it('punch and truncate free a cluster only once no block of it is mapped', () => {
    const image = bigallocImage('ba-punch', 1024, 4096);
    const free0 = freeBlocks(image);
    const data = bytes(10 * 1024, 7);
    step(image, (fsys) => fsys.write(fsys.resolve('/f'), 0, data));
    assert.equal(freeBlocks(image), free0 - 12);
    step(image, (fsys) => fsys.fallocate(fsys.resolve('/f'), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1024, 1024));
    assert.equal(freeBlocks(image), free0 - 12, 'blocks 0, 2 and 3 still hold the first cluster');
    step(image, (fsys) => fsys.fallocate(fsys.resolve('/f'), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096));
    assert.equal(freeBlocks(image), free0 - 8, 'the first cluster is free');
    step(image, (fsys) => fsys.truncate(fsys.resolve('/f'), 5 * 1024));
    assert.equal(freeBlocks(image), free0 - 4, 'cut at block 5: logical cluster 2 is free, 1 keeps block 4');
    const expect = data.slice(0, 5 * 1024);
    expect.fill(0, 0, 4096);
    const k = kernelView(image, 'f');
    assert.equal(k.sha, sha(expect));
    assert.equal(k.blocks, 8);
    // A hole punched back in and written again reuses the cluster of block 4.
    step(image, (fsys) => fsys.write(fsys.resolve('/f'), 7 * 1024, bytes(1024, 8)));
    assert.equal(freeBlocks(image), free0 - 4);
    step(image, (fsys) => fsys.truncate(fsys.resolve('/f'), 0));
    assert.equal(freeBlocks(image), free0, 'all space back');
  });

  it('fallocate (plain, KEEP_SIZE, ZERO_RANGE) maps unwritten extents in clusters; writes into them read back', () => {
    // 4 KiB blocks, 64 KiB clusters: 16 blocks each.
    const image = bigallocImage('ba-falloc', 4096, 65536);
    const free0 = freeBlocks(image);
    const expect = new Uint8Array(300_000);
    step(image, (fsys) => {
      const ino = fsys.resolve('/f');
      fsys.fallocate(ino, 0, 10_000, 90_000); // blocks 2..24: logical clusters 0 and 1
      fsys.fallocate(ino, FALLOC_FL_KEEP_SIZE, 200_000, 100_000); // past the end: clusters 3 and 4
      const w = bytes(50_000, 9);
      fsys.write(ino, 30_000, w);
      expect.set(w, 30_000);
    });
    assert.equal(freeBlocks(image), free0 - 4 * 16);
    step(image, (fsys) => {
      const ino = fsys.resolve('/f');
      const w = bytes(60_000, 10);
      fsys.write(ino, 240_000, w); // into the unwritten blocks past the end: size grows
      expect.set(w, 240_000);
      fsys.fallocate(ino, FALLOC_FL_ZERO_RANGE, 40_000, 20_000);
      expect.fill(0, 40_000, 60_000);
    });
    // Seven extents now (2-6u 7-9 10-13u 14-19 20-24u 48-57u 58-73): a leaf block, a cluster of its own.
    assert.equal(leafExtents(image, '/f').length, 7);
    assert.equal(freeBlocks(image), free0 - 5 * 16, 'the four data clusters and the leaf cluster');
    const k = kernelView(image, 'f');
    assert.equal(k.size, 300_000);
    assert.equal(k.sha, sha(expect));
    assert.equal(k.blocks, 5 * 128);
    step(image, (fsys) => fsys.unlink('/f'));
    assert.equal(freeBlocks(image), free0);
  });

  it('directory, extent tree and xattr blocks take a cluster each, and give it back', () => {
    const image = bigallocImage('ba-meta', 1024, 4096);
    const free0 = freeBlocks(image);
    const expect = new Uint8Array(800 * 4096);
    step(image, (fsys) => {
      const ino = fsys.resolve('/f');
      // One block in every other logical cluster: 400 extents, a tree two levels deep with 1 KiB blocks.
      for (let c = 0; c < 800; c += 2) {
        const w = bytes(1024, c);
        fsys.write(ino, c * 4096 + (c % 4) * 1024, w);
        expect.set(w, c * 4096 + (c % 4) * 1024);
      }
      fsys.mkdir('/d');
      for (let i = 0; i < 300; i++) fsys.writeFile(`/d/entry-with-a-long-name-${i}`, '');
      fsys.setxattr('/f', 'user.big', bytes(700, 11));
    });
    const k = kernelView(image, 'f');
    assert.equal(k.sha, sha(expect.subarray(0, 798 * 4096 + 3 * 1024)));
    const fsys = Ext4.openFile(image);
    try {
      const inode = fsys.readInode(fsys.resolve('/f'));
      assert.equal((inode.block[6] ?? 0) | ((inode.block[7] ?? 0) << 8), 2, 'the extent tree is two levels deep');
      assert.ok(inode.fileAclLo !== 0, 'the xattr went to a block');
      assert.equal(fsys.readdir('/d').length, 300);
    } finally {
      fsys.close();
    }
    assert.equal(k.blocks % 8, 0, 'whole clusters');
    step(image, (fsys2) => {
      fsys2.unlink('/f');
      fsys2.rm('/d', { recursive: true });
    });
    assert.equal(freeBlocks(image), free0, 'every cluster back');
  });

  it('a fast symlink with an xattr block (a whole cluster) keeps its target in i_block: read, removed', () => {
    const image = bigallocImage('ba-symlink', 1024, 4096);
    const free0 = freeBlocks(image);
    step(image, (fsys) => {
      fsys.symlink('target-of-the-link', '/s');
      fsys.setxattr('/s', 'trusted.big', bytes(700, 15)); // too large for the inode: a block
    });
    assert.equal(freeBlocks(image), free0 - 4, 'the xattr block takes a cluster');
    const fsys = Ext4.openFile(image);
    try {
      assert.equal(Buffer.from(fsys.readlink('/s')).toString(), 'target-of-the-link');
      const ino = fsys.resolve('/s', false);
      // `ext4ts stat` tells where the data is: i_blocks is the xattr's cluster, not 1 block.
      assert.deepEqual(dataLayout(fsys, ino, fsys.getattr(ino), fsys.readInode(ino)), { kind: 'fast-symlink' });
    } finally {
      fsys.close();
    }
    const kernelTarget = withMount(image, join(scratchDir(), `mnt-${process.pid}-symlink`), { readOnly: true }, (mnt) => fs.readlinkSync(join(mnt, 's')));
    assert.equal(kernelTarget, 'target-of-the-link');
    step(image, (fsys2) => fsys2.unlink('/s'));
    assert.equal(freeBlocks(image), free0, 'the cluster is back, nothing else freed');
  });

  it('filling the filesystem ends in ENOSPC, through groups never used (BLOCK_UNINIT, backup superblocks); the space comes back', () => {
    // Four groups of 32 MiB: groups 1 and 3 hold backup superblocks and descriptors.
    const image = bigallocImage('ba-full', 1024, 4096, [], '128M');
    const groups = execFileSync('dumpe2fs', [image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.match(groups, /^Group 1: .*BLOCK_UNINIT/m, 'a group whose bitmap is built on its first allocation');
    const free0 = freeBlocks(image);
    let size = 0;
    step(image, (fsys) => {
      const ino = fsys.resolve('/f');
      assert.ok(fillFile(fsys, ino, 5000) > 0); // 5000 bytes: writes straddle clusters
      size = fsys.getattr(ino).size; // the last, short write counts too
    });
    assert.ok(freeBlocks(image) < 4, `less than a cluster left free (${freeBlocks(image)})`);
    assert.equal(kernelView(image, 'f').size, size);
    step(image, (fsys) => fsys.unlink('/f'));
    assert.equal(freeBlocks(image), free0);
    step(image, (fsys) => fsys.writeFile('/g', bytes(100_000, 12)));
    assert.equal(kernelView(image, 'g').sha, sha(bytes(100_000, 12)));
  });

  it('EA inodes on bigalloc are charged to their owner in whole clusters', () => {
    const image = bigallocImage('ba-ea', 1024, 4096, ['ea_inode']);
    const free0 = freeBlocks(image);
    step(image, (fsys) => {
      fsys.setxattr('/f', 'user.a', bytes(5000, 13));
      fsys.setxattr('/f', 'user.b', bytes(1500, 14));
    });
    assert.ok(freeBlocks(image) < free0);
    step(image, (fsys) => fsys.unlink('/f'));
    assert.equal(freeBlocks(image), free0, 'EA inodes and their clusters freed with the file');
  });
});
