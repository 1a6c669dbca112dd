/**
 * jbd2 decoding and replay planning (src/ondisk/jbd2.ts) on hand-made journals: the
 * superblock's checks, a transaction's copies, revokes, interrupted commits, escaped
 * magic, and logs that would loop. (Real journals against the kernel's recovery are in
 * fs-journal.test.ts.)
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FsError } from '../src/errors.js';
import { crc32cRaw } from '../src/ondisk/crc.js';
import { decodeJournalSuperblock, JBD2_INCOMPAT, JBD2_MAGIC, planReplay, type JournalSuperblock } from '../src/ondisk/jbd2.js';

const BS = 1024;
const code = (c: string, pattern: RegExp) => (e: unknown) => e instanceof FsError && e.code === c && pattern.test(e.message);

function superblock(fields: { maxLen?: number; first?: number; sequence?: number; start?: number; incompat?: number; type?: number; blockSize?: number } = {}): Buffer {
  const b = Buffer.alloc(BS);
  b.writeUInt32BE(JBD2_MAGIC, 0);
  b.writeUInt32BE(fields.type ?? 4, 4);
  b.writeUInt32BE(fields.blockSize ?? BS, 0x0c);
  b.writeUInt32BE(fields.maxLen ?? 64, 0x10);
  b.writeUInt32BE(fields.first ?? 1, 0x14);
  b.writeUInt32BE(fields.sequence ?? 7, 0x18);
  b.writeUInt32BE(fields.start ?? 1, 0x1c);
  b.writeUInt32BE(fields.incompat ?? 0, 0x28);
  b.fill(0xab, 0x30, 0x40);
  return b;
}

function header(type: number, sequence: number): Buffer {
  const b = Buffer.alloc(BS);
  b.writeUInt32BE(JBD2_MAGIC, 0);
  b.writeUInt32BE(type, 4);
  b.writeUInt32BE(sequence, 8);
  return b;
}

/** A descriptor (32-bit tags, no checksums) naming `targets`; flags per tag (LAST added). */
function descriptor(sequence: number, targets: readonly number[], flags: readonly number[] = []): Buffer {
  const b = header(1, sequence);
  let at = 12;
  targets.forEach((t, i) => {
    const f = (flags[i] ?? 0) | 2 | (i === targets.length - 1 ? 8 : 0); // SAME_UUID on every tag
    b.writeUInt32BE(t, at);
    b.writeUInt16BE(f, at + 6);
    at += 8;
  });
  return b;
}

function revoke(sequence: number, targets: readonly number[]): Buffer {
  const b = header(5, sequence);
  targets.forEach((t, i) => b.writeUInt32BE(t, 16 + 4 * i));
  b.writeUInt32BE(16 + 4 * targets.length, 12);
  return b;
}

const commit = (sequence: number): Buffer => header(2, sequence);
const data = (fill: number): Buffer => Buffer.alloc(BS, fill);

function plan(log: readonly Buffer[], fields: Parameters<typeof superblock>[0] = {}) {
  const jsb: JournalSuperblock = decodeJournalSuperblock(superblock({ maxLen: log.length, ...fields }), { verifyChecksum: true });
  return planReplay(jsb, (i) => log[i] ?? Buffer.alloc(BS), { verifyChecksums: true });
}

describe('jbd2', () => {
  it('the superblock: magic, type, block size, log bounds, features, checksum', () => {
    const ok = decodeJournalSuperblock(superblock(), { verifyChecksum: true });
    assert.deepEqual([ok.blockSize, ok.maxLen, ok.first, ok.sequence, ok.start], [BS, 64, 1, 7, 1]);
    const bad = (b: Buffer, c: string, p: RegExp): void => assert.throws(() => decodeJournalSuperblock(b, { verifyChecksum: true }), code(c, p));
    const noMagic = superblock();
    noMagic.writeUInt32BE(0, 0);
    bad(noMagic, 'EUCLEAN', /corrupted journal superblock: bad magic/);
    bad(superblock({ type: 1 }), 'EUCLEAN', /block type 1/);
    bad(superblock({ blockSize: 3000 }), 'EUCLEAN', /block size 3000/);
    bad(superblock({ first: 64 }), 'EUCLEAN', /first log block 64/);
    bad(superblock({ start: 99 }), 'EUCLEAN', /log start 99/);
    bad(superblock({ incompat: 0x100 }), 'EOPNOTSUPP', /unknown incompatible features 0x100/);
    bad(superblock({ incompat: JBD2_INCOMPAT.CSUM_V2 | JBD2_INCOMPAT.CSUM_V3 }), 'EUCLEAN', /both checksum v2 and v3/);
    const v3 = superblock({ incompat: JBD2_INCOMPAT.CSUM_V3 });
    v3[0x50] = 4;
    v3.writeUInt32BE(crc32cRaw(0xffffffff, v3), 0xfc);
    assert.equal(decodeJournalSuperblock(v3, { verifyChecksum: true }).csumSeed, crc32cRaw(0xffffffff, v3.subarray(0x30, 0x40)));
    v3[0x40] = (v3[0x40] as number) ^ 1;
    bad(v3, 'EUCLEAN', /checksum/);
    assert.equal(decodeJournalSuperblock(v3, { verifyChecksum: false }).maxLen, 64);
  });

  it('committed copies replay, the newest winning; an uncommitted transaction does not; escaped magic is marked', () => {
    const log = [superblock(), descriptor(7, [100, 101], [0, 1]), data(1), data(2), commit(7), descriptor(8, [100]), data(3), commit(8), descriptor(9, [102]), data(4)];
    const p = plan(log);
    assert.deepEqual(
      [...p.blocks].sort((a, b) => a[0] - b[0]),
      [
        [100, { logBlock: 6, escaped: false }],
        [101, { logBlock: 3, escaped: true }],
      ],
    );
    assert.deepEqual([p.firstSequence, p.endSequence], [7, 9]);
    assert.equal(plan(log, { start: 0 }).blocks.size, 0, 's_start 0: nothing to recover');
  });

  it('a revoke cancels copies up to its transaction, not later ones', () => {
    const log = [superblock(), descriptor(7, [100, 101]), data(1), data(2), commit(7), revoke(8, [100, 101]), descriptor(8, [102]), data(3), commit(8), descriptor(9, [101]), data(5), commit(9)];
    const p = plan(log);
    assert.deepEqual([...p.blocks].sort((a, b) => a[0] - b[0]), [
      [101, { logBlock: 10, escaped: false }],
      [102, { logBlock: 7, escaped: false }],
    ]);
    assert.equal(p.revokedCopies, 2, 'both copies of transaction 7; 101 is copied again in 9, after the revoke');
  });

  it('the log wraps from its end to s_first; a log that never ends is corrupt', () => {
    // Transaction 7 starts at block 3: its second copy and its commit wrap around to blocks 1 and 2.
    const log = [superblock(), data(2), commit(7), descriptor(7, [200, 201]), data(1)];
    const p = plan(log, { start: 3 });
    assert.deepEqual([...p.blocks].sort((a, b) => a[0] - b[0]), [
      [200, { logBlock: 4, escaped: false }],
      [201, { logBlock: 1, escaped: false }],
    ]);
    const circle = [superblock(), revoke(7, []), revoke(7, []), revoke(7, [])];
    assert.throws(() => plan(circle), code('EUCLEAN', /runs in a circle/));
  });

  it('a revoke block claiming more than a block is corrupt', () => {
    const r = revoke(7, [1]);
    r.writeUInt32BE(BS + 4, 12);
    assert.throws(() => plan([superblock(), r, commit(7)]), code('EUCLEAN', /revoke block of transaction 7 claims 1028 bytes/));
  });
});
