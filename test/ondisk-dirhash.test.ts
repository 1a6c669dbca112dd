/**
 * Directory hashes and utf8 casefolding, checked against e2fsprogs: debugfs's
 * `dx_hash` uses libext2fs' dirhash.c and its copy of the kernel's utf8-12.1 tables.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import {
  DX_HASH,
  SB_FLAGS_SIGNED_HASH,
  SB_FLAGS_UNSIGNED_HASH,
  dirHash,
  dirHashName,
  dirHashSiphash,
  effectiveHashVersion,
  hashSeedFromBytes,
  hashSeedFromUuid,
  siphash24,
} from '../src/ondisk/dirhash.js';
import {
  casefoldName,
  casefoldNameOrNull,
  casefoldString,
  isAssignedUnicode121,
  isIgnorableUnicode121,
  isValidUtf8Name,
  namesEqualCasefold,
} from '../src/ondisk/casefold.js';
import { FsError } from '../src/errors.js';
import { makeImage, scratchDir } from './helpers/images.js';

const enc = new TextEncoder();
const bytesOf = (s: string): Uint8Array => enc.encode(s);
const latin1 = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** Any image will do for dx_hash; a casefold one so `-e utf8` is at home. */
function hashImage(): string {
  return makeImage({ name: 'dirhash-any', size: '4M', mkfsArgs: ['-t', 'ext4', '-O', 'casefold', '-E', 'encoding=utf8'] });
}

interface Request {
  readonly name: Uint8Array;
  readonly version: number;
  readonly seed?: string;
  readonly casefold?: boolean;
}

/**
 * Run many `dx_hash` requests in one debugfs process (a command file; names are raw
 * bytes in double quotes, so they must not contain '"', whitespace controls or NUL).
 */
function debugfsHashes(requests: readonly Request[]): { hash: number; minorHash: number }[] {
  const file = join(scratchDir(), `dxhash-${process.pid}-${Math.random().toString(36).slice(2)}.cmds`);
  const chunks: Buffer[] = [];
  for (const r of requests) {
    for (const b of r.name) assert.ok(b > 0x20 && b !== 0x22 && b !== 0x7f, `name byte 0x${b.toString(16)} cannot be passed to debugfs`);
    const opts = `-h ${r.version}${r.seed !== undefined ? ` -s ${r.seed}` : ''}${r.casefold === true ? ' -c -e utf8' : ''}`;
    chunks.push(Buffer.from(`dx_hash ${opts} -- "`), Buffer.from(r.name), Buffer.from('"\n'));
  }
  writeFileSync(file, Buffer.concat(chunks));
  const out = execFileSync('debugfs', ['-f', file, hashImage()], { encoding: 'latin1', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 30 });
  const results = out
    .split('\n')
    .filter((l) => l.startsWith('Hash of '))
    .map((l) => {
      const m = /is 0x([0-9a-f]+) \(minor 0x([0-9a-f]+)\)$/.exec(l);
      assert.ok(m !== null, `unparsed debugfs line: ${l}`);
      return { hash: parseInt(m[1] as string, 16), minorHash: parseInt(m[2] as string, 16) };
    });
  assert.equal(results.length, requests.length, 'debugfs answered every request');
  return results;
}

const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

function sampleNames(): Uint8Array[] {
  const names: Uint8Array[] = [];
  for (let len = 1; len <= 100; len++) names.push(bytesOf(Array.from({ length: len }, (_, i) => String.fromCharCode(0x21 + ((i * 7 + len) % 90))).join('').replace(/"/g, '#')));
  names.push(bytesOf('hello'), bytesOf('lost+found'), bytesOf('file_1234.txt'), bytesOf('a'.repeat(255)), bytesOf('Z'.repeat(254)));
  // High-bit bytes: signed and unsigned variants differ on these.
  names.push(latin1('\xe9t\xe9'), latin1('\xff'), latin1('\x80\x81\x82\x83\x84'), latin1('caf\xe9-na\xefve-\xfc\xf1\xee\xe7\xf8d\xe9'));
  for (let len = 1; len <= 70; len += 3) names.push(Uint8Array.from({ length: len }, (_, i) => 0x80 + ((i * 37 + len * 11) % 128)));
  names.push(bytesOf('Straße-ÅNGSTRÖM-ΣΊΣΥΦΟΣ-ﬃ-İ'));
  return names;
}

describe('dirhash: legacy, half_md4, tea (signed and unsigned) match debugfs dx_hash', () => {
  const names = sampleNames();
  const seeds = [undefined, '48b96855-2684-462b-bf5f-87e78b9d3cd9', '00000000-0000-0000-0000-000000000001'];
  const requests: Request[] = [];
  for (const name of names) {
    for (let version = 0; version <= 5; version++) {
      for (const seed of seeds) requests.push(seed === undefined ? { name, version } : { name, version, seed });
    }
  }

  it(`${requests.length} (name, version, seed) triples`, () => {
    const want = debugfsHashes(requests);
    requests.forEach((r, i) => {
      const got = dirHash(r.name, r.version, r.seed === undefined ? null : hashSeedFromUuid(r.seed));
      const w = want[i] as { hash: number; minorHash: number };
      assert.equal(hex(got.hash), hex(w.hash), `hash of ${Buffer.from(r.name).toString('hex')} v${r.version} seed ${r.seed}`);
      assert.equal(hex(got.minorHash), hex(w.minorHash), `minor hash of ${Buffer.from(r.name).toString('hex')} v${r.version}`);
    });
  });

  it('signed and unsigned differ only on high-bit bytes', () => {
    for (const name of names) {
      const high = name.some((b) => b >= 0x80);
      for (const v of [0, 1, 2]) {
        const same = dirHash(name, v).hash === dirHash(name, v + 3).hash;
        if (!high) assert.ok(same, `ASCII name hashes alike for v${v} and v${v + 3}`);
      }
    }
    assert.notEqual(dirHash(latin1('\xe9t\xe9'), DX_HASH.HALF_MD4).hash, dirHash(latin1('\xe9t\xe9'), DX_HASH.HALF_MD4_UNSIGNED).hash);
  });

  it('an all-zero seed means the default constants', () => {
    for (const name of names.slice(0, 20)) {
      for (let v = 0; v <= 5; v++) assert.deepEqual(dirHash(name, v, [0, 0, 0, 0]), dirHash(name, v));
    }
  });
});

describe('dirhash: rules around the hash value', () => {
  it('bit 0 is always clear', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 255 }), fc.integer({ min: 0, max: 5 }), (name, v) => (dirHash(name, v).hash & 1) === 0),
    );
  });

  it('the EOF hash 0xfffffffe becomes 0xfffffffc', () => {
    // An empty name leaves the seed untouched: half_md4 returns seed[1], tea seed[0].
    assert.equal(dirHash(new Uint8Array(0), DX_HASH.HALF_MD4, [1, 0xffffffff, 5, 7]).hash, 0xfffffffc);
    assert.equal(dirHash(new Uint8Array(0), DX_HASH.HALF_MD4, [1, 0xfffffffe, 5, 7]).hash, 0xfffffffc);
    assert.equal(dirHash(new Uint8Array(0), DX_HASH.TEA, [0xffffffff, 3, 5, 7]).hash, 0xfffffffc);
    assert.equal(dirHash(new Uint8Array(0), DX_HASH.TEA, [0xfffffffd, 3, 5, 7]).hash, 0xfffffffc);
    assert.equal(dirHash(new Uint8Array(0), DX_HASH.TEA, [0xfffffffb, 3, 5, 7]).hash, 0xfffffffa);
    assert.equal(dirHash(new Uint8Array(0), DX_HASH.HALF_MD4, [1, 0xfffffffe, 5, 7]).minorHash, 5);
  });

  it('effectiveHashVersion follows s_flags', () => {
    assert.equal(effectiveHashVersion(DX_HASH.HALF_MD4, SB_FLAGS_SIGNED_HASH), DX_HASH.HALF_MD4);
    assert.equal(effectiveHashVersion(DX_HASH.HALF_MD4, SB_FLAGS_UNSIGNED_HASH), DX_HASH.HALF_MD4_UNSIGNED);
    assert.equal(effectiveHashVersion(DX_HASH.LEGACY, SB_FLAGS_UNSIGNED_HASH), DX_HASH.LEGACY_UNSIGNED);
    assert.equal(effectiveHashVersion(DX_HASH.TEA, SB_FLAGS_UNSIGNED_HASH | 4), DX_HASH.TEA_UNSIGNED);
    assert.equal(effectiveHashVersion(DX_HASH.SIPHASH, SB_FLAGS_UNSIGNED_HASH), DX_HASH.SIPHASH);
    assert.equal(effectiveHashVersion(DX_HASH.TEA, 0), DX_HASH.TEA);
  });

  it('seeds: UUID text and superblock bytes agree', () => {
    const bytes = Uint8Array.from(Buffer.from('48b968552684462bbf5f87e78b9d3cd9', 'hex'));
    assert.deepEqual(hashSeedFromUuid('48b96855-2684-462b-bf5f-87e78b9d3cd9'), hashSeedFromBytes(bytes));
    assert.deepEqual(hashSeedFromBytes(bytes), [0x5568b948, 0x2b468426, 0xe7875fbf, 0xd93c9d8b]);
  });

  it('unknown versions and keyless siphash are EINVAL', () => {
    assert.throws(() => dirHash(bytesOf('x'), 7), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
    assert.throws(() => dirHash(bytesOf('x'), DX_HASH.SIPHASH), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
    assert.throws(() => dirHashName(bytesOf('x'), { version: DX_HASH.SIPHASH }), (e: unknown) => e instanceof FsError && e.code === 'ENOKEY');
  });
});

describe('siphash-2-4', () => {
  const key = Uint8Array.from({ length: 16 }, (_, i) => i);

  it('matches the reference vectors (key 00..0f, message 00..n-1)', () => {
    assert.equal(siphash24(key, new Uint8Array(0)), 0x726fdb47dd0e0e31n);
    assert.equal(siphash24(key, Uint8Array.from({ length: 15 }, (_, i) => i)), 0xa129ca6149be45e5n);
  });

  const openssl = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  it('matches OpenSSL SIPHASH for lengths 0..40 and random keys', { skip: openssl.status !== 0 ? 'openssl not available' : false }, () => {
    const dir = scratchDir();
    for (let len = 0; len <= 40; len++) {
      const k = Uint8Array.from({ length: 16 }, (_, i) => (i * 29 + len * 7) & 0xff);
      const msg = Uint8Array.from({ length: len }, (_, i) => (i * 13 + 5) & 0xff);
      const file = join(dir, `sip-${len}.bin`);
      writeFileSync(file, msg);
      const out = execFileSync('openssl', ['mac', '-macopt', `hexkey:${Buffer.from(k).toString('hex')}`, '-macopt', 'size:8', '-in', file, 'SIPHASH'], {
        encoding: 'utf8',
      }).trim();
      // OpenSSL prints the 8 output bytes: the u64 in little-endian order.
      const want = Buffer.from(out, 'hex').readBigUInt64LE(0);
      assert.equal(siphash24(k, msg), want, `length ${len}`);
    }
  });

  it('version 6: hash = high half with bit 0 clear, minor = low half', () => {
    const h = siphash24(key, bytesOf('hello'));
    const d = dirHashSiphash(bytesOf('hello'), key);
    const high = (Number(h >> 32n) & ~1) >>> 0;
    assert.equal(d.hash, high === 0xfffffffe ? 0xfffffffc : high);
    assert.equal(d.minorHash, Number(h & 0xffffffffn));
    assert.deepEqual(dirHashName(bytesOf('HeLLo'), { version: DX_HASH.SIPHASH, siphashKey: key, casefold: true }), d);
  });
});

describe('casefold (utf8-12.1)', () => {
  it('names differing only in case or normalization compare equal', () => {
    const pairs: [string, string][] = [
      ['README', 'readme'],
      ['Straße', 'STRASSE'],
      ['Straße', 'strasse'],
      ['ẞ', 'ss'],
      ['Å', 'A\u030a'],
      ['\u212b', 'å'],
      ['école', 'E\u0301COLE'],
      ['ΣΊΣΥΦΟΣ', 'σίσυφος'],
      ['ς', 'σ'],
      ['ﬃ', 'FFI'],
      ['İ', 'i\u0307'],
      ['ǅ', 'ǆ'],
      ['Ǆ', 'ǆ'],
      ['ᾈ', 'ἀι'],
      ['\u13a0', '\uab70'],
      ['\u13f8', '\u13f0'],
      ['K', '\u212a'],
      ['a\u200bb', 'ab'],
      ['a\u00adb', 'AB'],
      ['한국어', '한국어'.normalize('NFD')],
      ['\u1e0b\u0323', 'd\u0323\u0307'],
    ];
    for (const [a, b] of pairs) {
      assert.ok(namesEqualCasefold(bytesOf(a), bytesOf(b)), `${a} ~ ${b}`);
      assert.deepEqual(casefoldName(bytesOf(a), true), casefoldName(bytesOf(b), true), `${a} folds like ${b}`);
    }
    const different: [string, string][] = [
      ['ı', 'i'],
      ['ı', 'I'],
      ['a', 'b'],
      ['a\u180fb', 'ab'], // U+180F became ignorable only in Unicode 14
      ['résumé', 'resume'],
    ];
    for (const [a, b] of different) assert.ok(!namesEqualCasefold(bytesOf(a), bytesOf(b)), `${a} !~ ${b}`);
  });

  it('invalid UTF-8: strict mode refuses, otherwise raw bytes; equality only with itself', () => {
    for (const bad of [latin1('\xff'), latin1('caf\xe9'), latin1('\xc0\x80'), latin1('\xed\xa0\x80'), latin1('\xf4\x90\x80\x80'), latin1('ab\xe2\x82')]) {
      assert.equal(isValidUtf8Name(bad), false);
      assert.equal(casefoldNameOrNull(bad), null);
      assert.throws(() => casefoldName(bad, true), (e: unknown) => e instanceof FsError && e.code === 'EINVAL');
      assert.deepEqual(casefoldName(bad, false), bad);
      assert.ok(namesEqualCasefold(bad, bad.slice()));
      assert.ok(!namesEqualCasefold(bad, bytesOf('x')));
    }
    assert.equal(isValidUtf8Name(bytesOf('\u{10ffff}')), true);
    assert.equal(isValidUtf8Name(bytesOf('\u{e01f0}')), true);
  });

  it('the hash of an invalid name in a casefolded directory is the hash of its raw bytes', () => {
    const bad = latin1('CAF\xc9');
    assert.deepEqual(dirHashName(bad, { version: 1, casefold: true }), dirHash(bad, 1));
  });

  it('tables: ignorables and assignment by Unicode 12.1', () => {
    assert.ok(isIgnorableUnicode121(0x200b) && isIgnorableUnicode121(0xe0fff) && isIgnorableUnicode121(0x2065));
    assert.ok(!isIgnorableUnicode121(0x180f) && !isIgnorableUnicode121(0x41) && !isIgnorableUnicode121(0xe1000));
    assert.ok(isAssignedUnicode121(0x41) && isAssignedUnicode121(0x1f9ff) && isAssignedUnicode121(0x10fffd));
    assert.ok(isAssignedUnicode121(0x1fa70) /* Unicode 12.0 */);
    assert.ok(!isAssignedUnicode121(0x1e030) /* Cyrillic Ext-D, Unicode 15 */);
    assert.ok(!isAssignedUnicode121(0x2c2f) /* Glagolitic capital, Unicode 14 */);
    assert.equal(casefoldString('\u2c2f'), '\u2c2f', 'letters newer than 12.1 are left alone');
  });

  it('casefolding is idempotent', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 20 }), (s) => {
        const once = casefoldString(s);
        return casefoldString(once) === once;
      }),
    );
  });

  it('single code points and combining contexts match debugfs dx_hash -c -e utf8', () => {
    // Every code point of the BMP and planes 1-2 plus plane 14, alone and between
    // combining marks (U+0345 turns into a starter when folded: ordering matters).
    const requests: Request[] = [];
    const push = (s: string): void => void requests.push({ name: bytesOf(s), version: DX_HASH.HALF_MD4, casefold: true });
    for (let cp = 0x21; cp < 0x30000; cp++) {
      if ((cp >= 0xd800 && cp <= 0xdfff) || cp === 0x22 || cp === 0x7f) continue;
      push(String.fromCodePoint(cp));
    }
    for (let cp = 0xe0000; cp < 0xe1010; cp++) push(`a${String.fromCodePoint(cp)}b`);
    for (let cp = 0x80; cp < 0x30000; cp += 7) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const c = String.fromCodePoint(cp);
      push(`A${c}\u0301\u0345${c}\u0327Z`);
    }
    const want = debugfsHashes(requests);
    let mismatches = 0;
    requests.forEach((r, i) => {
      const got = dirHashName(r.name, { version: DX_HASH.HALF_MD4, casefold: true });
      const w = want[i] as { hash: number; minorHash: number };
      if (got.hash !== w.hash || got.minorHash !== w.minorHash) {
        mismatches++;
        if (mismatches <= 10) assert.fail(`casefold hash of ${Buffer.from(r.name).toString('hex')}: ${hex(got.hash)} != debugfs ${hex(w.hash)}`);
      }
    });
    assert.equal(mismatches, 0);
  });

  it('casefolded hashes with the other versions and a seed match debugfs', () => {
    const names = ['Straße', 'ÉCOLE', 'ﬃ', 'ΣΊΣΥΦΟΣ', 'Ꭰꭰ', 'İstanbul', 'a\u200bB', 'x'.repeat(200) + 'É', '한국어'];
    const requests: Request[] = [];
    for (const n of names) for (let v = 0; v <= 5; v++) requests.push({ name: bytesOf(n), version: v, seed: '320e2102-cff3-426e-8b3d-013d09de06f9', casefold: true });
    const want = debugfsHashes(requests);
    requests.forEach((r, i) => {
      const got = dirHashName(r.name, { version: r.version, seed: hashSeedFromUuid(r.seed as string), casefold: true });
      assert.deepEqual(got, want[i], `${new TextDecoder().decode(r.name)} v${r.version}`);
    });
  });

  it('never throws anything but FsError, whatever the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, strict) => {
        try {
          const out = casefoldName(bytes, strict);
          assert.ok(out instanceof Uint8Array);
          dirHashName(bytes, { version: DX_HASH.TEA, casefold: true });
        } catch (e) {
          assert.ok(e instanceof FsError, String(e));
        }
      }),
    );
  });
});
