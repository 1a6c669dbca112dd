/**
 * No-key names and encrypted symlink targets (src/ondisk/fscrypt.ts) on hostile bytes:
 * what no ciphertext can be is an EUCLEAN error naming the structure, never a name.
 * (Names the kernel really shows are compared in fs-fscrypt.test.ts.)
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { FsError } from '../src/errors.js';
import { encryptedSymlinkCiphertext, noKeyName, noKeySymlinkTarget } from '../src/ondisk/fscrypt.js';

const euclean = (pattern: RegExp) => (e: unknown) => e instanceof FsError && e.code === 'EUCLEAN' && pattern.test(e.message);
const decoded = (name: Uint8Array): Buffer => Buffer.from(Buffer.from(name).toString('latin1'), 'base64url');
const filled = (length: number, seed: number): Uint8Array => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);

describe('fscrypt no-key names', () => {
  it('hash words, then the ciphertext; past 149 bytes, its first 149 and the SHA-256 of the rest', () => {
    const short = filled(32, 1);
    const a = decoded(noKeyName(short, 0x1234_5678, 0x9abc_def0, 'directory entry', { inode: 12 }));
    assert.equal(a.readUInt32LE(0), 0x1234_5678);
    assert.equal(a.readUInt32LE(4), 0x9abc_def0);
    assert.ok(a.subarray(8).equals(short));
    for (const length of [149, 150, 255]) {
      const long = filled(length, length);
      const b = decoded(noKeyName(long, 0, 0, 'directory entry', {}));
      if (length === 149) {
        assert.equal(b.length, 8 + 149);
        continue;
      }
      assert.equal(b.length, 8 + 149 + 32, `${length} bytes`);
      assert.ok(b.subarray(8, 157).equals(long.subarray(0, 149)));
      assert.ok(b.subarray(157).equals(createHash('sha256').update(long.subarray(149)).digest()));
    }
    // The encoding is base64url without padding: safe in a path, at most 252 characters.
    const longest = noKeyName(filled(255, 3), 0xffff_ffff, 0xffff_ffff, 'directory entry', {});
    assert.match(Buffer.from(longest).toString('latin1'), /^[A-Za-z0-9_-]{252}$/);
  });

  it('"." and ".." are shown as themselves; a name shorter than 16 bytes is corrupt', () => {
    assert.deepEqual(noKeyName(Uint8Array.of(0x2e), 5, 5, 'directory entry', {}), Uint8Array.of(0x2e));
    assert.deepEqual(noKeyName(Uint8Array.of(0x2e, 0x2e), 5, 5, 'directory entry', {}), Uint8Array.of(0x2e, 0x2e));
    assert.throws(() => noKeyName(filled(15, 0), 0, 0, 'directory entry', { inode: 14 }), euclean(/^corrupted directory entry \(inode 14\).*15 bytes/));
    assert.throws(() => noKeyName(new Uint8Array(0), 0, 0, 'directory entry', {}), euclean(/0 bytes/));
  });

  it('symlink targets: le16 length then ciphertext, within the room; length 0 or past the room is corrupt', () => {
    const stored = new Uint8Array(60);
    stored.set([32, 0]);
    stored.set(filled(32, 9), 2);
    assert.deepEqual(encryptedSymlinkCiphertext(stored, 60, {}), filled(32, 9));
    const target = decoded(noKeySymlinkTarget(stored, 60, {}));
    assert.ok(target.subarray(0, 8).equals(Buffer.alloc(8)), 'hashes 0');
    assert.ok(target.subarray(8).equals(filled(32, 9)));
    const bad = (bytes: Uint8Array, room: number, pattern: RegExp): void => {
      assert.throws(() => noKeySymlinkTarget(bytes, room, { inode: 15 }), euclean(pattern));
    };
    bad(Uint8Array.of(0, 0, 1, 2), 60, /length 0/);
    bad(Uint8Array.of(59, 0, ...filled(58, 0)), 60, /59 bytes does not fit in its 58/);
    bad(Uint8Array.of(20, 0, ...filled(20, 0)), 10, /20 bytes does not fit in its 8/);
    bad(Uint8Array.of(1), 60, /1 byte, too few/);
    bad(Uint8Array.of(4, 0, 1, 2, 3, 4), 60, /shorter than the 16 bytes/);
  });
});
