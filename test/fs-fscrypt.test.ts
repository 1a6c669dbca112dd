/**
 * fscrypt-encrypted trees without the key, against the kernel: images whose encrypted
 * directories the kernel wrote (policy and key set through its ioctls, see
 * helpers/fscrypt.py), then mounted read-only again, when the key is gone. ext4ts must
 * show what that mount shows: the same no-key names (hashed ones in single-block and
 * htree directories, unhashed ones without dir_index, digests of long names), '.' and
 * '..' as themselves, symlink targets and sizes, types, modes and links; and refuse file
 * contents with ENOKEY, as the kernel does. The CLI lists such a tree like GNU ls on the
 * kernel mount and copies out all it can.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Ext4 } from '../src/fs/ext4.js';
import { FsError } from '../src/errors.js';
import { ENCRYPT_FL, INDEX_FL } from '../src/ondisk/inode.js';
import { MemoryChannel } from '../src/io/memory-channel.js';
import type { Stat } from '../src/fs/types.js';
import { Rng } from './helpers/fuzz.js';
import { debugfs, scratchDir } from './helpers/images.js';
import { unmountLeftovers, withMount } from './helpers/kernel.js';
import { runCliAsync } from './helpers/cli.js';

after(() => unmountLeftovers());

const FSCRYPT = join(import.meta.dirname, 'helpers', 'fscrypt.py');
let serial = 0;
const mountpoint = (): string => join(scratchDir(), `mnt-fscrypt-${process.pid}-${serial++}`);

/** What one path shows through lstat, readlink, listxattr and a read of its content. */
interface Seen {
  readonly kind: string;
  readonly mode: number;
  readonly nlink: number;
  readonly size: number;
  readonly target: string | null;
  /** Content as hex, or the error code reading it gave. */
  readonly content: string;
}

/** Make an ext4 image with `features`, then let the kernel write `fill(mnt, policy)` through a read-write mount holding the test key. */
function encryptedImage(name: string, mkfsArgs: readonly string[], fill: (mnt: string, encrypt: (dir: string) => void) => void): string {
  const image = join(scratchDir(), `${name}.img`);
  execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', ...mkfsArgs, image, '32M'], { stdio: ['ignore', 'ignore', 'pipe'] });
  withMount(image, mountpoint(), { readOnly: false }, (mnt) => {
    const key = execFileSync('python3', [FSCRYPT, 'add-key', mnt], { encoding: 'utf8' }).trim();
    assert.match(key, /^[0-9a-f]{32}$/);
    fill(mnt, (dir) => {
      fs.mkdirSync(dir);
      execFileSync('python3', [FSCRYPT, 'set-policy', dir, key]);
    });
  });
  return image;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'directory';
  if (st.isFile()) return 'file';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  return 'other';
}

/** The kernel's view, key absent: every path under `mnt` (relative, "/"-rooted). */
function kernelView(image: string): Map<string, Seen> {
  return withMount(image, mountpoint(), { readOnly: true }, (mnt) => {
    const out = new Map<string, Seen>();
    const visit = (rel: string): void => {
      const abs = mnt + rel;
      const st = fs.lstatSync(abs);
      const kind = kindOf(st);
      let content = '';
      if (kind === 'file') {
        try {
          content = hex(fs.readFileSync(abs));
        } catch (error) {
          // libuv has no name for ENOKEY (126): "Unknown system error -126".
          const e = error as NodeJS.ErrnoException;
          content = e.errno === -126 ? 'ENOKEY' : (e.code ?? String(error));
        }
      }
      out.set(rel === '' ? '/' : rel, { kind, mode: st.mode, nlink: st.nlink, size: st.size, target: kind === 'symlink' ? fs.readlinkSync(abs) : null, content });
      if (kind === 'directory') for (const name of fs.readdirSync(abs)) visit(`${rel}/${name}`);
    };
    visit('');
    return out;
  });
}

/** The same through ext4ts' path API: every name looked up again by the name it listed. */
function ext4tsView(image: string): Map<string, Seen> {
  const fsys = Ext4.openFile(image);
  try {
    const out = new Map<string, Seen>();
    const visit = (rel: string): void => {
      const path = rel === '' ? '/' : rel;
      const st = fsys.lstat(path);
      let content = '';
      if (st.kind === 'file') {
        try {
          content = hex(fsys.readFile(path));
        } catch (error) {
          if (!(error instanceof FsError)) throw error;
          content = error.code;
        }
      }
      out.set(path, { kind: st.kind, mode: st.mode, nlink: st.nlink, size: st.size, target: st.kind === 'symlink' ? fsys.readlink(path) : null, content });
      if (st.kind === 'directory') for (const name of fsys.readdir(path)) visit(`${rel}/${name}`);
    };
    visit('');
    return out;
  } finally {
    fsys.close();
  }
}

describe('fscrypt: an encrypted tree without the key reads as the kernel shows it', () => {
  let withIndex = '';
  let noIndex = '';

  before(() => {
    // 4 KiB blocks, dir_index: single-block directories list hashed no-key names, /enc/big
    // grows an htree; names past 149 bytes of ciphertext end in a SHA-256 digest.
    withIndex = encryptedImage('fscrypt-index', ['-b', '4096', '-O', 'encrypt'], (mnt, encrypt) => {
      fs.mkdirSync(join(mnt, 'plain'));
      fs.writeFileSync(join(mnt, 'plain', 'clear.txt'), 'not encrypted\n');
      const e = join(mnt, 'enc');
      encrypt(e);
      fs.writeFileSync(join(e, 'hello.txt'), 'hello, world\n');
      fs.writeFileSync(join(e, 'empty'), '');
      fs.linkSync(join(e, 'hello.txt'), join(e, 'hard-link'));
      fs.writeFileSync(join(e, 'n'.repeat(200)), 'long name\n');
      fs.symlinkSync('hello.txt', join(e, 'short-link'));
      fs.symlinkSync(`/a/target/long/enough/to/need/a/block/${'x'.repeat(80)}`, join(e, 'long-link'));
      execFileSync('mkfifo', [join(e, 'fifo')]);
      fs.mkdirSync(join(e, 'sub', 'deeper'), { recursive: true });
      fs.writeFileSync(join(e, 'sub', 'inner'), 'inner\n');
      fs.mkdirSync(join(e, 'big'));
      for (let i = 0; i < 400; i++) fs.writeFileSync(join(e, 'big', `entry-number-${String(i).padStart(4, '0')}-of-the-big-directory`), '');
    });
    // 1 KiB blocks, no dir_index: every directory lists in record order, hashes 0.
    noIndex = encryptedImage('fscrypt-noindex', ['-b', '1024', '-O', 'encrypt,^dir_index'], (mnt, encrypt) => {
      const e = join(mnt, 'enc');
      encrypt(e);
      fs.writeFileSync(join(e, 'one'), '1');
      fs.mkdirSync(join(e, 'many'));
      for (let i = 0; i < 60; i++) fs.writeFileSync(join(e, 'many', `file-${i}`), '');
      fs.symlinkSync('one', join(e, 'link'));
    });
  });

  it('names, types, modes, links, sizes and symlink targets match the kernel; contents are ENOKEY', () => {
    for (const image of [withIndex, noIndex]) {
      const kernel = kernelView(image);
      const ours = ext4tsView(image);
      assert.deepEqual([...ours.keys()].sort(), [...kernel.keys()].sort(), `${image}: the same paths`);
      for (const [path, k] of kernel) assert.deepEqual(ours.get(path), k, `${image}: ${path}`);
      // The trees hold what was written: encrypted contents refused, the plain ones read.
      const files = [...kernel.values()].filter((s) => s.kind === 'file');
      assert.ok(files.some((s) => s.content === 'ENOKEY'));
      assert.ok(files.every((s) => s.content === 'ENOKEY' || s.content === hex(Buffer.from('not encrypted\n'))));
    }
    const big = [...kernelView(withIndex).keys()].filter((p) => /^\/enc\/[^/]+\/[^/]+$/.test(p));
    assert.ok(big.length >= 400, 'the htree directory was listed');
    const names = [...kernelView(withIndex).keys()].map((p) => p.split('/').pop() as string);
    assert.ok(names.some((n) => n.length > 200), 'a no-key name with a digest');
  });

  it('the no-key names depend on how the directory is indexed: hashed with dir_index, unhashed without', () => {
    const fsys = Ext4.openFile(noIndex);
    try {
      const many = fsys.readdir('/enc', { withFileTypes: true }).find((e) => e.kind === 'directory');
      assert.ok(many !== undefined);
      assert.equal(fsys.readdir(`/enc/${many.name}`).length, 60);
      for (const name of fsys.readdir(`/enc/${many.name}`)) assert.ok(Buffer.from(name, 'base64url').subarray(0, 8).equals(Buffer.alloc(8)), name);
    } finally {
      fsys.close();
    }
    const indexed = Ext4.openFile(withIndex);
    try {
      const big = indexed.readdir('/enc', { withFileTypes: true }).find((e) => e.kind === 'directory' && indexed.readdir(`/enc/${e.name}`).length === 400);
      assert.ok(big !== undefined);
      assert.notEqual(indexed.lstat(`/enc/${big.name}`).flags & INDEX_FL, 0, 'an htree directory');
      const names = indexed.readdir(`/enc/${big.name}`);
      assert.ok(names.every((n) => !Buffer.from(n, 'base64url').subarray(0, 8).equals(Buffer.alloc(8))), 'every hash set');
      assert.throws(() => indexed.lstat('/enc/no-such-name'), (e: unknown) => e instanceof FsError && e.code === 'ENOENT');
    } finally {
      indexed.close();
    }
  });

  it('a damaged encrypted symlink (stored length 0) is EUCLEAN for it alone, in the library and in ls -l', async () => {
    const image = join(scratchDir(), 'fscrypt-damaged.img');
    fs.copyFileSync(withIndex, image);
    let link = '';
    let ino = 0;
    const fsys = Ext4.openFile(image);
    try {
      for (const e of fsys.readdir('/enc', { withFileTypes: true })) {
        if (e.kind === 'symlink' && fsys.lstat(`/enc/${e.name}`).blocks === 0) [link, ino] = [`/enc/${e.name}`, e.ino];
      }
    } finally {
      fsys.close();
    }
    assert.notEqual(ino, 0, 'the fast symlink');
    execFileSync('debugfs', ['-w', '-R', `sif <${ino}> block[0] 0`, image], { stdio: 'ignore' });
    const damaged = Ext4.openFile(image);
    try {
      const corrupt = (e: unknown): boolean => e instanceof FsError && e.code === 'EUCLEAN' && /corrupted symlink \(inode \d+\): encrypted target of length 0/.test(e.message);
      assert.throws(() => damaged.readlink(link), corrupt);
      assert.throws(() => damaged.lstat(link), corrupt, 'its size is its target\'s length');
      assert.equal(damaged.readdir('/enc').length, 9, 'the directory still lists');
    } finally {
      damaged.close();
    }
    const ls = await runCliAsync(['ls', '-l', image, '/enc']);
    assert.equal(ls.status, 1);
    assert.match(ls.stderr, new RegExp(`^ext4ts: ${link}: corrupted symlink \\(inode ${ino}\\): encrypted target of length 0\n$`));
    const rows = ls.stdout.toString().split('\n').filter((l) => l !== '' && !l.startsWith('total'));
    assert.equal(rows.length, 9, 'a row for each entry');
    const unknown = rows.filter((l) => l.startsWith('?'));
    assert.equal(unknown.length, 1);
    assert.match(unknown[0] as string, new RegExp(`^\\?{10} \\? \\? +\\? +\\? +\\? ${link.slice(5)}$`), 'the damaged one unknown, as GNU ls shows an entry it cannot stat');
  });

  it('hostile bytes in encrypted directories, symlinks and their inodes: FsErrors, never another exception (seeded)', () => {
    // Where the encrypted tree lives: its directories' blocks, and every encrypted inode's
    // record (debugfs finds them by inode number; it cannot resolve no-key names).
    const regions: [number, number][] = [];
    const probe = Ext4.openFile(withIndex);
    const blockSize = probe.sb.blockSize;
    try {
      const visit = (path: string, ino: number): void => {
        const st = probe.lstat(path);
        if ((st.flags & ENCRYPT_FL) !== 0) {
          const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(debugfs(withIndex, `imap <${ino}>`));
          assert.ok(m !== null, `imap <${ino}>`);
          regions.push([Number(m[1]) * blockSize + parseInt(m[2] as string, 16), probe.sb.inodeSize]);
        }
        if (st.kind !== 'directory') return;
        for (const b of debugfs(withIndex, `blocks <${ino}>`).trim().split(/\s+/)) if (b !== '') regions.push([Number(b) * blockSize, blockSize]);
        for (const e of probe.readdir(path, { withFileTypes: true })) visit(`${path === '/' ? '' : path}/${e.name}`, e.ino);
      };
      visit('/enc', probe.resolve('/enc'));
    } finally {
      probe.close();
    }
    assert.ok(regions.length > 10, `${regions.length} regions`);
    const base = fs.readFileSync(withIndex);
    const rng = new Rng(20261127);
    let failures = 0;
    for (let i = 0; i < 120; i++) {
      const bytes = Uint8Array.from(base);
      const [start, length] = rng.pick(regions);
      for (let n = 1 + rng.int(4); n > 0; n--) bytes[start + rng.int(length)] = rng.chance(0.5) ? rng.int(256) : (bytes[start + rng.int(length)] as number) ^ (1 << rng.int(8));
      const tried = (op: () => unknown): unknown => {
        try {
          return op();
        } catch (error) {
          if (!(error instanceof FsError)) throw new Error(`case ${i}: ${String(error)}`, { cause: error });
          failures++;
          return undefined;
        }
      };
      const fsys = tried(() => Ext4.open(new MemoryChannel(bytes, { readOnly: true }), { checksums: false })) as Ext4 | undefined;
      if (fsys === undefined) continue;
      const walk = (path: string, depth: number): void => {
        const names = tried(() => fsys.readdir(path)) as string[] | undefined;
        for (const name of names ?? []) {
          const child = `${path}/${name}`;
          const st = tried(() => fsys.lstat(child)) as Stat | undefined;
          if (st?.kind === 'symlink') tried(() => fsys.readlink(child));
          if (st?.kind === 'file') tried(() => fsys.readFile(child));
          if (st?.kind === 'directory' && depth < 3) walk(child, depth + 1);
        }
      };
      walk('/enc', 0);
      fsys.close();
    }
    assert.ok(failures > 0, 'the mutations were seen');
  });

  it('ls -lRA prints what GNU ls prints on the kernel mount; get copies out all but the encrypted contents', async () => {
    const gnu = withMount(withIndex, mountpoint(), { readOnly: true }, (mnt) =>
      execFileSync('ls', ['-lRAn', '--quoting-style=literal', 'enc'], { cwd: mnt, env: { ...process.env, LC_ALL: 'C', TZ: 'UTC' }, maxBuffer: 16 << 20 })
        .toString('latin1')
        .replace(/^enc:$/m, '/enc:')
        .replace(/^enc\/(.*):$/gm, '/enc/$1:'),
    );
    const ls = await runCliAsync(['ls', '-lRA', withIndex, '/enc']);
    assert.equal(ls.status, 0, ls.stderr);
    assert.equal(ls.stdout.toString('latin1'), gnu);

    const dest = join(scratchDir(), 'fscrypt-get');
    const got = await runCliAsync(['get', withIndex, '/', dest]);
    assert.equal(got.status, 1, 'encrypted contents cannot be copied');
    const kernel = kernelView(withIndex);
    const refused = [...kernel].filter(([, s]) => s.content === 'ENOKEY').map(([p]) => p);
    const lines = got.stderr.trim().split('\n');
    assert.deepEqual(lines.map((l) => /^ext4ts: (\/\S+): inode \d+ is encrypted \(fscrypt\) and no key is available$/.exec(l)?.[1]).sort(), refused.sort(), got.stderr);
    for (const [path, s] of kernel) {
      const there = join(dest, path);
      if (s.content === 'ENOKEY') {
        assert.ok(!fs.existsSync(there), `${path}: no half copy`);
        continue;
      }
      const st = fs.lstatSync(there);
      assert.equal(kindOf(st), s.kind, path);
      if (s.kind === 'symlink') assert.equal(fs.readlinkSync(there), s.target, path);
    }
  });
});
