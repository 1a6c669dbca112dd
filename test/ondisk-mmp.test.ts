/**
 * The MMP block codec against a byte fixture: the block mke2fs 1.47.0 wrote for
 * `mke2fs -t ext4 -O mmp -E mmp_update_interval=1 -U 01234567-89ab-cdef-0123-456789abcdef fx.img 8M`
 * (1 KiB blocks, metadata_csum), as dumpe2fs described it: magic 0x4d4d50, seq
 * 0xff4d4d50 (clean), time 1795694314, node "vm", device "fx.img", check interval 5,
 * checksum 0x3cd39fbd.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FsError, isFsError } from '../src/errors.js';
import { crc32cRaw } from '../src/ondisk/crc.js';
import {
  decodeMmp,
  describeMmpSeq,
  encodeMmp,
  EXT4_MMP_MAGIC,
  EXT4_MMP_SEQ_CLEAN,
  EXT4_MMP_SEQ_FSCK,
  EXT4_MMP_SEQ_MAX,
  MMP,
  MMP_STRUCT_SIZE,
  mmpChecksum,
} from '../src/ondisk/mmp.js';

const UUID = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
const CSUM = { hasMetadataCsum: true, csumSeed: crc32cRaw(0xffffffff, UUID) };
const NO_CSUM = { hasMetadataCsum: false, csumSeed: 0 };

/** The non-zero lines of the fixture block (offset -> 16 bytes, as `xxd` printed them). */
const FIXTURE_LINES: readonly [number, string][] = [
  [0x000, '504d4d00504d4dffea1e086b00000000'],
  [0x010, '766d0000000000000000000000000000'],
  [0x050, '66782e696d6700000000000000000000'],
  [0x070, '05000000000000000000000000000000'],
  [0x3f0, '000000000000000000000000bd9fd33c'],
];

function fixture(size = 1024): Uint8Array {
  const b = new Uint8Array(size);
  for (const [off, hex] of FIXTURE_LINES) b.set(Buffer.from(hex, 'hex'), off);
  return b;
}

function assertCorrupted(fn: () => unknown, pattern: RegExp): FsError {
  try {
    fn();
  } catch (error) {
    assert.ok(isFsError(error), `expected an FsError, got ${String(error)}`);
    assert.equal(error.code, 'EUCLEAN');
    assert.equal(error.context.structure, 'MMP block');
    assert.match(error.message, pattern);
    return error;
  }
  assert.fail('expected a corruption error');
}

describe('MMP block constants', () => {
  it('match the kernel and e2fsprogs', () => {
    assert.equal(EXT4_MMP_MAGIC, 0x004d4d50);
    assert.equal(EXT4_MMP_SEQ_CLEAN, 0xff4d4d50);
    assert.equal(EXT4_MMP_SEQ_FSCK, 0xe24d4d50);
    assert.equal(EXT4_MMP_SEQ_MAX, 0xe24d4d4f);
    assert.equal(MMP_STRUCT_SIZE, 1024);
    assert.deepEqual([MMP.seq, MMP.timeLo, MMP.nodename, MMP.bdevname, MMP.checkInterval, MMP.checksum], [4, 8, 0x10, 0x50, 0x70, 0x3fc]);
    assert.equal(describeMmpSeq(EXT4_MMP_SEQ_CLEAN), 'clean');
    assert.equal(describeMmpSeq(EXT4_MMP_SEQ_FSCK), 'fsck');
    assert.equal(describeMmpSeq(0x1234), '0x00001234');
  });
});

describe('decodeMmp', () => {
  it('decodes the mke2fs fixture and verifies its checksum', () => {
    const mmp = decodeMmp(fixture(), CSUM, { block: 1618 });
    assert.deepEqual(mmp, {
      magic: EXT4_MMP_MAGIC,
      seq: EXT4_MMP_SEQ_CLEAN,
      time: 1795694314,
      nodename: 'vm',
      bdevname: 'fx.img',
      checkInterval: 5,
      checksum: 0x3cd39fbd,
    });
    assert.equal(mmpChecksum(fixture(), CSUM.csumSeed), 0x3cd39fbd);
  });

  it('reads only the first 1024 bytes of a larger block', () => {
    const block = fixture(4096);
    block.fill(0xee, 1024);
    assert.equal(decodeMmp(block, CSUM).seq, EXT4_MMP_SEQ_CLEAN);
  });

  it('refuses a bad magic, naming the structure and block', () => {
    const b = fixture();
    b[0] = 0x51;
    const error = assertCorrupted(() => decodeMmp(b, CSUM, { block: 1618 }), /bad magic 0x004d4d51/);
    assert.equal(error.context.block, 1618);
    assert.match(error.message, /block 1618/);
    // the magic is checked even when checksums are not
    assertCorrupted(() => decodeMmp(b, NO_CSUM), /bad magic/);
    assertCorrupted(() => decodeMmp(new Uint8Array(1024), CSUM), /bad magic 0x00000000/);
  });

  it('refuses a checksum mismatch with metadata_csum, unless told not to verify', () => {
    const b = fixture();
    b[MMP.seq] = 0x51;
    assertCorrupted(() => decodeMmp(b, CSUM), /checksum mismatch: stored 0x3cd39fbd/);
    assert.equal(decodeMmp(b, CSUM, { verifyChecksum: false }).seq, 0xff4d4d51);
    // without metadata_csum the field means nothing
    assert.equal(decodeMmp(b, NO_CSUM).seq, 0xff4d4d51);
    // a different filesystem (seed) does not match either
    assertCorrupted(() => decodeMmp(fixture(), { hasMetadataCsum: true, csumSeed: 0x12345678 }), /checksum mismatch/);
  });

  it('refuses a short buffer and an impossible time', () => {
    assertCorrupted(() => decodeMmp(fixture().subarray(0, 1020), CSUM), /1020 bytes, need 1024/);
    assertCorrupted(() => decodeMmp(new Uint8Array(0), CSUM), /0 bytes/);
    const b = fixture();
    b[MMP.timeHi + 3] = 0x80;
    assertCorrupted(() => decodeMmp(b, NO_CSUM), /mmp_time above 2\^53/);
  });

  it('reads names that fill their whole field (no NUL)', () => {
    const b = fixture();
    b.fill(0x61, MMP.nodename, MMP.nodename + 64);
    b.fill(0x62, MMP.bdevname, MMP.bdevname + 32);
    const mmp = decodeMmp(b, NO_CSUM);
    assert.equal(mmp.nodename, 'a'.repeat(64));
    assert.equal(mmp.bdevname, 'b'.repeat(32));
  });

  it('never throws anything but EUCLEAN on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 1100 }), fc.boolean(), fc.boolean(), (bytes, csum, keepMagic) => {
        if (keepMagic && bytes.length >= 4) bytes.set([0x50, 0x4d, 0x4d, 0x00]);
        try {
          const mmp = decodeMmp(bytes, csum ? CSUM : NO_CSUM);
          assert.ok(Number.isSafeInteger(mmp.time));
          assert.ok(mmp.nodename.length <= 64 && mmp.bdevname.length <= 32);
        } catch (error) {
          assert.ok(isFsError(error) && error.code === 'EUCLEAN', String(error));
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('encodeMmp', () => {
  it('reproduces the mke2fs fixture byte for byte', () => {
    const mmp = decodeMmp(fixture(), CSUM);
    assert.deepEqual(encodeMmp(mmp, CSUM), fixture());
  });

  it('sets the checksum with metadata_csum, leaves the field alone without', () => {
    const fields = { seq: 0x12345678, time: 1_700_000_000, nodename: 'node-a', bdevname: 'disk.img', checkInterval: 7 };
    const withCsum = encodeMmp(fields, CSUM);
    assert.equal(Buffer.from(withCsum).readUInt32LE(MMP.checksum), mmpChecksum(withCsum, CSUM.csumSeed));
    assert.deepEqual(decodeMmp(withCsum, CSUM), { ...fields, magic: EXT4_MMP_MAGIC, checksum: mmpChecksum(withCsum, CSUM.csumSeed) });
    const into = new Uint8Array(1024);
    into.set([1, 2, 3, 4], MMP.checksum);
    encodeMmp(fields, NO_CSUM, into);
    assert.deepEqual([...into.subarray(MMP.checksum)], [1, 2, 3, 4]);
    assert.equal(decodeMmp(into, NO_CSUM).seq, 0x12345678);
  });

  it('keeps the padding and the rest of the block, and overwrites old names completely', () => {
    const block = fixture(2048);
    block.fill(0x77, MMP.pad1, MMP.checksum);
    block.fill(0x66, 1024);
    block.fill(0x78, MMP.nodename, MMP.nodename + 64);
    encodeMmp({ seq: 1, time: 2, nodename: 'n', bdevname: 'd', checkInterval: 5 }, CSUM, block);
    assert.ok(block.subarray(MMP.pad1, MMP.checksum).every((b) => b === 0x77));
    assert.ok(block.subarray(1024).every((b) => b === 0x66));
    assert.ok(block.subarray(MMP.nodename + 1, MMP.nodename + 64).every((b) => b === 0));
    const back = decodeMmp(block, CSUM);
    assert.equal(back.nodename, 'n');
    assert.equal(back.time, 2);
  });

  it('cuts long names at their field size, and writes 64-bit times', () => {
    const b = encodeMmp({ seq: 1, time: 2 ** 40 + 5, nodename: 'h'.repeat(100), bdevname: 'd'.repeat(40), checkInterval: 5 }, NO_CSUM);
    const mmp = decodeMmp(b, NO_CSUM);
    assert.equal(mmp.nodename, 'h'.repeat(64));
    assert.equal(mmp.bdevname, 'd'.repeat(32));
    assert.equal(mmp.time, 2 ** 40 + 5);
    assert.equal(b[MMP.bdevname + 32], 0x05); // the check interval that follows is intact
  });

  it('refuses out-of-range fields and short buffers (EINVAL)', () => {
    const ok = { seq: 1, time: 2, nodename: 'n', bdevname: 'd', checkInterval: 5 };
    for (const bad of [{ ...ok, seq: -1 }, { ...ok, seq: 2 ** 32 }, { ...ok, time: -1 }, { ...ok, time: 1.5 }, { ...ok, checkInterval: 65536 }]) {
      assert.throws(() => encodeMmp(bad, CSUM), (e: unknown) => isFsError(e) && e.code === 'EINVAL');
    }
    assert.throws(() => encodeMmp(ok, CSUM, new Uint8Array(512)), (e: unknown) => isFsError(e) && e.code === 'EINVAL');
  });
});
