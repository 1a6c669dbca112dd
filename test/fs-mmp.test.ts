/**
 * Multi-mount protection on real images made by `mke2fs -O mmp -E mmp_update_interval=1`:
 * the start protocol (clean, fsck, a live or dead node), the heartbeat, the clean mark
 * on close, and hostile MMP blocks. The waits are injected, so nothing sleeps; e2fsck
 * -fn, dumpe2fs and debugfs are the oracles.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { Ext4 } from '../src/fs/ext4.js';
import { isFsError, type Errno } from '../src/errors.js';
import { FileChannel } from '../src/io/file-channel.js';
import { MultiMountProtection, type MmpWaitPhase } from '../src/fs/mmp.js';
import { decodeSuperblock, encodeSuperblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, type Superblock } from '../src/ondisk/superblock.js';
import { decodeMmp, encodeMmp, EXT4_MMP_SEQ_CLEAN, EXT4_MMP_SEQ_FSCK, EXT4_MMP_SEQ_MAX, MMP, type Mmp, type MmpFields } from '../src/ondisk/mmp.js';
import { debugfs, dumpe2fsHeader, makeImage, scratchDir } from './helpers/images.js';
import { copyImage, fsckClean } from './helpers/twin.js';

const BASES = {
  csum: { name: 'mmp-base', size: '32M', mkfsArgs: ['-t', 'ext4', '-O', 'mmp', '-E', 'mmp_update_interval=1'] },
  nocsum1k: { name: 'mmp-base-1k', size: '32M', mkfsArgs: ['-t', 'ext4', '-b', '1024', '-O', 'mmp,^metadata_csum', '-E', 'mmp_update_interval=1'] },
} as const;

let serial = 0;
/** A fresh copy of a base image. */
function freshImage(base: keyof typeof BASES = 'csum'): string {
  return copyImage(makeImage(BASES[base]), join(scratchDir(), `mmp-${serial++}.img`));
}

function readSb(image: string): Superblock {
  const fd = fs.openSync(image, 'r');
  try {
    const b = Buffer.alloc(SUPERBLOCK_SIZE);
    fs.readSync(fd, b, 0, SUPERBLOCK_SIZE, SUPERBLOCK_OFFSET);
    return decodeSuperblock(b);
  } finally {
    fs.closeSync(fd);
  }
}

function readMmpRaw(image: string): Buffer {
  const sb = readSb(image);
  const fd = fs.openSync(image, 'r');
  try {
    const b = Buffer.alloc(sb.blockSize);
    fs.readSync(fd, b, 0, sb.blockSize, sb.mmpBlock * sb.blockSize);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

function readMmp(image: string): Mmp {
  return decodeMmp(readMmpRaw(image), readSb(image));
}

/** Rewrite the MMP block (with a valid checksum) as another node or e2fsck would. */
function writeMmp(image: string, change: Partial<MmpFields>): void {
  const sb = readSb(image);
  const raw = readMmpRaw(image);
  encodeMmp({ ...decodeMmp(raw, sb), ...change }, sb, raw);
  writeRaw(image, sb.mmpBlock * sb.blockSize, raw);
}

function writeRaw(image: string, offset: number, bytes: Uint8Array): void {
  const fd = fs.openSync(image, 'r+');
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** debugfs' view of the MMP block: its `dump_mmp` fields. */
function dumpMmp(image: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of debugfs(image, 'dump_mmp').split('\n')) {
    const m = /^([a-z_]+):\s*(.*)$/.exec(line.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) fields.set(m[1], m[2]);
  }
  return fields;
}

function expectCode(fn: () => unknown, code: Errno, pattern?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(isFsError(error), `expected an FsError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (pattern !== undefined) assert.match(error.message, pattern);
    return true;
  });
}

type Waits = [number, MmpWaitPhase][];

/** A wait that records its calls, and runs `during` instead of sleeping. */
function recordingWait(waits: Waits, during?: (phase: MmpWaitPhase) => void): (seconds: number, phase: MmpWaitPhase) => void {
  return (seconds, phase) => {
    waits.push([seconds, phase]);
    during?.(phase);
  };
}

const enc = new TextEncoder();

describe('MMP: read-write open of a clean filesystem', () => {
  for (const base of ['csum', 'nocsum1k'] as const) {
    it(`${base}: claims the block without waiting, writes, marks it clean on close`, () => {
      const image = freshImage(base);
      const before = readMmp(image);
      assert.equal(before.seq, EXT4_MMP_SEQ_CLEAN);
      const waits: Waits = [];
      const ext4 = Ext4.openFile(image, { write: true, mmp: { wait: recordingWait(waits) } });
      assert.deepEqual(waits, [], 'a clean filesystem opens without waiting');
      const live = readMmp(image);
      assert.ok(live.seq >= 1 && live.seq <= EXT4_MMP_SEQ_MAX, `live seq 0x${live.seq.toString(16)}`);
      assert.equal(live.nodename, hostname().slice(0, 64));
      assert.equal(live.bdevname, basename(image).slice(0, 32));
      assert.equal(live.checkInterval, 5, 'max(2 * update interval, 5)');
      assert.ok(Math.abs(live.time - Date.now() / 1000) < 60);
      // e2fsprogs reads our block (checksum included) and sees it in use
      const dumped = dumpMmp(image);
      assert.equal(Number.parseInt(dumped.get('sequence') ?? '', 16), live.seq); // printed %08x
      assert.equal(dumped.get('node_name'), live.nodename);
      assert.equal(dumped.get('device_name'), live.bdevname);
      ext4.mkdir('/dir');
      ext4.writeFile('/dir/file', enc.encode('written under MMP\n'));
      ext4.close();
      const after = readMmp(image);
      assert.equal(after.seq, EXT4_MMP_SEQ_CLEAN);
      assert.equal(dumpMmp(image).get('sequence'), 'ff4d4d50');
      const header = dumpe2fsHeader(image);
      assert.equal(header.get('Filesystem state'), 'clean');
      assert.match(execFileSync('dumpe2fs', ['-h', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }), /mmp_sequence: 0xff4d4d50/);
      fsckClean(image);
      assert.equal(debugfs(image, 'cat /dir/file'), 'written under MMP\n');
      // and it opens again (the clean mark is what the next open looks for)
      const again = Ext4.openFile(image, { write: true, mmp: { wait: recordingWait(waits) } });
      again.writeFile('/second', enc.encode('x'));
      again.close();
      assert.deepEqual(waits, []);
      assert.equal(readMmp(image).seq, EXT4_MMP_SEQ_CLEAN);
      fsckClean(image);
    });
  }

  it('opens with the default options without waiting', () => {
    const image = freshImage();
    const ext4 = Ext4.openFile(image, { write: true });
    assert.notEqual(readMmp(image).seq, EXT4_MMP_SEQ_CLEAN);
    ext4.close();
    assert.equal(readMmp(image).seq, EXT4_MMP_SEQ_CLEAN);
  });

  it('a read-only open never touches the block, whatever it says', () => {
    const image = freshImage();
    writeMmp(image, { seq: EXT4_MMP_SEQ_FSCK });
    const raw = readMmpRaw(image);
    const ext4 = Ext4.openFile(image);
    assert.ok(ext4.readdir('/').length > 0);
    assert.equal(ext4.mmpHeartbeat(), false);
    ext4.close();
    assert.deepEqual(readMmpRaw(image), raw);
  });
});

describe('MMP: refusing a filesystem in use', () => {
  it('refuses with EBUSY while e2fsck runs (seq FSCK), writing nothing', () => {
    const image = freshImage();
    writeMmp(image, { seq: EXT4_MMP_SEQ_FSCK, nodename: 'fsck-node' });
    const raw = readMmpRaw(image);
    const mounts = readSb(image).mntCount;
    const waits: Waits = [];
    expectCode(() => Ext4.openFile(image, { write: true, mmp: { wait: recordingWait(waits) } }), 'EBUSY', /e2fsck is running on this filesystem.*fsck-node/);
    assert.deepEqual(waits, []);
    assert.deepEqual(readMmpRaw(image), raw);
    assert.equal(readSb(image).mntCount, mounts, 'the superblock was not marked mounted');
    assert.equal(dumpe2fsHeader(image).get('Filesystem state'), 'clean');
  });

  it('waits out a node that stopped updating (2 * interval + 1 s, twice), then takes over', () => {
    const image = freshImage();
    writeMmp(image, { seq: 0x1234, nodename: 'crashed-node' });
    const waits: Waits = [];
    const ext4 = Ext4.openFile(image, { write: true, mmp: { wait: recordingWait(waits) } });
    // interval = max(update interval 1, check interval 5 in the block, 5) = 5
    assert.deepEqual(waits, [
      [11, 'check'],
      [11, 'confirm'],
    ]);
    const live = readMmp(image);
    assert.notEqual(live.seq, 0x1234);
    assert.equal(live.nodename, hostname().slice(0, 64));
    ext4.writeFile('/after-crash', enc.encode('ok'));
    ext4.close();
    assert.equal(readMmp(image).seq, EXT4_MMP_SEQ_CLEAN);
    fsckClean(image);
  });

  it('uses the larger check interval of the block, capped for hostile values', () => {
    for (const [checkInterval, expected] of [
      [7, 15],
      [40, 81],
      [65535, 360],
    ] as const) {
      const image = freshImage();
      writeMmp(image, { seq: 99, checkInterval });
      const waits: Waits = [];
      Ext4.openFile(image, { write: true, mmp: { wait: recordingWait(waits) } }).close();
      assert.deepEqual(
        waits.map(([s]) => s),
        [expected, expected],
        `check interval ${checkInterval}`,
      );
    }
  });

  it('refuses with EBUSY when the sequence changes while it watches (a live node)', () => {
    const image = freshImage();
    writeMmp(image, { seq: 0x1000, nodename: 'live-node' });
    const mounts = readSb(image).mntCount;
    const waits: Waits = [];
    const otherNodeBeats = (): void => writeMmp(image, { seq: 0x1001, nodename: 'live-node' });
    expectCode(() => Ext4.openFile(image, { write: true, mmp: { wait: recordingWait(waits, otherNodeBeats) } }), 'EBUSY', /in use on another node.*live-node/);
    assert.deepEqual(waits, [[11, 'check']]);
    assert.equal(readMmp(image).seq, 0x1001, 'the live node keeps its block');
    assert.equal(readSb(image).mntCount, mounts);
    fsckClean(image);
  });

  it('refuses with EBUSY when another node overwrites our sequence before we confirm it', () => {
    const image = freshImage();
    writeMmp(image, { seq: 0x2000, nodename: 'dead-node' });
    const waits: Waits = [];
    const race = (phase: MmpWaitPhase): void => {
      if (phase === 'confirm') writeMmp(image, { seq: 0x3000, nodename: 'racing-node' });
    };
    expectCode(() => Ext4.openFile(image, { write: true, mmp: { wait: recordingWait(waits, race) } }), 'EBUSY', /racing-node/);
    assert.deepEqual(
      waits.map(([, p]) => p),
      ['check', 'confirm'],
    );
    assert.equal(readMmp(image).seq, 0x3000);
  });

  it('takes over the block of a filesystem whose node name is too long for the field', () => {
    const image = freshImage();
    const name = 'n'.repeat(80);
    const ext4 = Ext4.openFile(image, { write: true, mmp: { nodename: name } });
    assert.equal(readMmp(image).nodename, 'n'.repeat(64));
    assert.equal(ext4.mmpHeartbeat(performance.now() + 10_000), true, 'the cut name still reads back as ours');
    ext4.close();
    assert.equal(readMmp(image).seq, EXT4_MMP_SEQ_CLEAN);
  });
});

describe('MMP: heartbeat', () => {
  it('advances the sequence at most once per update interval, adapting the check interval', () => {
    const image = freshImage();
    let now = 1_000_000;
    const ext4 = Ext4.openFile(image, { write: true, mmp: { clock: () => now } });
    const first = readMmp(image).seq;
    assert.equal(ext4.mmpHeartbeat(now + 999), false, 'not yet: update interval 1 s');
    assert.equal(readMmp(image).seq, first);
    now += 1000;
    assert.equal(ext4.mmpHeartbeat(), true);
    const second = readMmp(image);
    assert.equal(second.seq, first === EXT4_MMP_SEQ_MAX ? 1 : first + 1);
    assert.equal(second.checkInterval, 5);
    assert.equal(ext4.mmpHeartbeat(now + 500), false);
    // a heartbeat 20 s late tells other nodes to watch 40 s
    assert.equal(ext4.mmpHeartbeat(now + 20_000), true);
    const third = readMmp(image);
    assert.equal(third.seq, second.seq === EXT4_MMP_SEQ_MAX ? 1 : second.seq + 1);
    assert.equal(third.checkInterval, 40);
    assert.equal(Number.parseInt(dumpMmp(image).get('sequence') ?? '', 16), third.seq);
    ext4.writeFile('/beat', enc.encode('still ours'));
    ext4.close();
    assert.equal(readMmp(image).seq, EXT4_MMP_SEQ_CLEAN);
    fsckClean(image);
  });

  it('wraps from EXT4_MMP_SEQ_MAX to 1', () => {
    const image = freshImage();
    const sb = readSb(image);
    const channel = FileChannel.open(image, { readOnly: false, blockSize: sb.blockSize });
    try {
      let now = 0;
      const mmp = MultiMountProtection.start(channel, sb, { clock: () => now, nodename: 'wrap-node' });
      // pretend our sequence reached MAX: write it, as our own previous beat would have
      writeMmp(image, { seq: EXT4_MMP_SEQ_MAX });
      (mmp as unknown as { ourSeq: number }).ourSeq = EXT4_MMP_SEQ_MAX;
      now = 5000;
      assert.equal(mmp.tick(), true);
      assert.equal(readMmp(image).seq, 1);
      assert.equal(mmp.seq, 1);
      mmp.stop();
      assert.equal(readMmp(image).seq, EXT4_MMP_SEQ_CLEAN);
    } finally {
      channel.close();
    }
  });

  it('reports another writer once, then refuses writes and does not mark the block clean', () => {
    const image = freshImage();
    let now = 0;
    const ext4 = Ext4.openFile(image, { write: true, mmp: { clock: () => now } });
    ext4.writeFile('/before', enc.encode('acknowledged'));
    writeMmp(image, { seq: 0x4242, nodename: 'intruder' });
    now = 1000;
    expectCode(() => ext4.mmpHeartbeat(), 'EBUSY', /rewritten by another node.*intruder/);
    assert.equal(ext4.mmpHeartbeat(now + 5000), false, 'reported once; the heartbeat has stopped');
    expectCode(() => ext4.writeFile('/after', enc.encode('refused')), 'EROFS', /writes stopped.*intruder/);
    assert.deepEqual(ext4.readFile('/before'), enc.encode('acknowledged'));
    expectCode(() => ext4.close(), 'EBUSY', /intruder/);
    ext4.close(); // the retry finishes closing
    const after = readMmp(image);
    assert.equal(after.seq, 0x4242, 'the intruder keeps the block');
    assert.equal(after.nodename, 'intruder');
  });

  it('does not mark clean a block another node took between the last beat and close', () => {
    const image = freshImage();
    const ext4 = Ext4.openFile(image, { write: true });
    writeMmp(image, { seq: 0x77, nodename: 'late-node' });
    expectCode(() => ext4.close(), 'EBUSY', /late-node.*not marking it clean/);
    ext4.close();
    assert.equal(readMmp(image).seq, 0x77);
  });

  it('is a no-op on filesystems without mmp', () => {
    const image = copyImage(makeImage({ name: 'no-mmp', size: '16M', mkfsArgs: ['-t', 'ext4'] }), join(scratchDir(), 'no-mmp-copy.img'));
    const ext4 = Ext4.openFile(image, { write: true });
    assert.equal(ext4.mmpHeartbeat(performance.now() + 1e9), false);
    ext4.close();
  });
});

describe('MMP: hostile blocks', () => {
  it('a bad magic is EUCLEAN naming the MMP block, and nothing is written', () => {
    const image = freshImage();
    const sb = readSb(image);
    writeRaw(image, sb.mmpBlock * sb.blockSize, new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
    const raw = readMmpRaw(image);
    assert.throws(
      () => Ext4.openFile(image, { write: true, mmp: { wait: () => assert.fail('no wait') } }),
      (error: unknown) => isFsError(error) && error.code === 'EUCLEAN' && error.context.structure === 'MMP block' && error.context.block === sb.mmpBlock && /bad magic 0xefbeadde/.test(error.message),
    );
    assert.deepEqual(readMmpRaw(image), raw);
    assert.equal(readSb(image).mntCount, sb.mntCount);
    // read-only access is unaffected
    const ro = Ext4.openFile(image);
    ro.readdir('/');
    ro.close();
  });

  it('a checksum mismatch is EUCLEAN (unless checksums are off)', () => {
    const image = freshImage();
    const sb = readSb(image);
    const raw = readMmpRaw(image);
    raw[MMP.nodename] = 0x5a; // changed without updating the checksum
    writeRaw(image, sb.mmpBlock * sb.blockSize, raw);
    expectCode(() => Ext4.openFile(image, { write: true }), 'EUCLEAN', /MMP block.*checksum mismatch/);
    const ext4 = Ext4.openFile(image, { write: true, checksums: false });
    ext4.close();
    assert.equal(readMmp(image).seq, EXT4_MMP_SEQ_CLEAN, 'rewritten with a good checksum');
  });

  it('an unknown sequence number is EUCLEAN', () => {
    const image = freshImage();
    writeMmp(image, { seq: 0xf0000000 });
    expectCode(() => Ext4.openFile(image, { write: true, mmp: { wait: () => assert.fail('no wait') } }), 'EUCLEAN', /unknown sequence number 0xf0000000/);
  });

  it('an MMP block number outside the filesystem is EUCLEAN', () => {
    for (const block of [0, readSb(makeImage(BASES.csum)).blocksCount, 1e9]) {
      const image = freshImage();
      const sb = readSb(image);
      writeRaw(image, SUPERBLOCK_OFFSET, encodeSuperblock({ ...sb, mmpBlock: block }));
      expectCode(() => Ext4.openFile(image, { write: true }), 'EUCLEAN', /MMP block \d+ is outside the filesystem/);
    }
  });
});
