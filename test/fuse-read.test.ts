/**
 * READ through a FuseSession, without the kernel: a read-only session answers READ in
 * place (FuseSession.readFast), and its replies must be the bytes the general path
 * sends (a session with tracing on takes the general path for every request) and the
 * file's content. Image: `mke2fs -d` of a directory with a 300,000-byte random file, a
 * file with a hole and a directory; the expected data is the source files themselves.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Ext4, ROOT_INO } from '../src/fs/ext4.js';
import { MemoryChannel } from '../src/io/memory-channel.js';
import { FuseSession } from '../src/fuse/session.js';
import { Opcode } from '../src/fuse/abi.js';
import { makeImage } from './helpers/images.js';

const MAX_READ = 131072;
const DATA = crypto.createHash('sha512').update('fuse-read').digest();
/** 300,000 bytes: not a multiple of the block size. */
const content = Buffer.concat(Array.from({ length: Math.ceil(300_000 / DATA.length) }, (_, i) => crypto.createHash('sha512').update(DATA).update(String(i)).digest())).subarray(0, 300_000);
/** 64 KiB of zeros (a hole, or zeros mke2fs wrote), then 5,000 bytes of data. */
const sparseTail = content.subarray(1000, 6000);

const image = makeImage({
  name: 'fuse-read',
  size: '16M',
  mkfsArgs: ['-t', 'ext4'],
  populate: (dir) => {
    fs.writeFileSync(join(dir, 'data.bin'), content);
    const fd = fs.openSync(join(dir, 'sparse.bin'), 'w');
    fs.writeSync(fd, sparseTail, 0, sparseTail.length, 65536);
    fs.closeSync(fd);
    fs.mkdirSync(join(dir, 'dir'));
  },
});

interface Served {
  readonly session: FuseSession;
  /** The last reply, header and payload joined (empty once taken). */
  take(): Buffer;
}

function serve(trace: boolean): Served {
  const fsys = Ext4.open(new MemoryChannel(new Uint8Array(fs.readFileSync(image))));
  assert.equal(fsys.writable, false);
  let reply = Buffer.alloc(0);
  // Copied at once: READ replies live in buffers the session reuses.
  const session = new FuseSession(fsys, (buffers) => (reply = Buffer.concat(buffers.map((b) => Buffer.from(b)))), {
    attrTimeout: 1,
    entryTimeout: 1,
    maxRead: MAX_READ,
    ...(trace ? { trace: () => undefined } : {}),
  });
  const init = Buffer.alloc(104);
  init.writeUInt32LE(104, 0);
  init.writeUInt32LE(Opcode.INIT, 4);
  init.writeBigUInt64LE(2n, 8);
  init.writeUInt32LE(7, 40);
  init.writeUInt32LE(45, 44);
  init.writeUInt32LE(MAX_READ, 48);
  session.handle(init);
  return {
    session,
    take: () => {
      const r = reply;
      reply = Buffer.alloc(0);
      return r;
    },
  };
}

let unique = 100n;
/** A READ request; `len` overrides fuse_in_header.len, `extlen` its total_extlen. */
function readRequest(nodeid: bigint, offset: bigint, size: number, opts: { len?: number; extlen?: number } = {}): Buffer {
  const b = Buffer.alloc(80);
  b.writeUInt32LE(opts.len ?? 80, 0);
  b.writeUInt32LE(Opcode.READ, 4);
  b.writeBigUInt64LE((unique += 2n), 8);
  b.writeBigUInt64LE(nodeid, 16);
  b.writeUInt16LE(opts.extlen ?? 0, 36);
  b.writeBigUInt64LE(offset, 48);
  b.writeUInt32LE(size, 56);
  return b;
}

/** fuse_out_header fields and payload of a reply. */
function parse(reply: Buffer): { len: number; error: number; unique: bigint; data: Buffer } {
  return { len: reply.readUInt32LE(0), error: reply.readInt32LE(4), unique: reply.readBigUInt64LE(8), data: reply.subarray(16) };
}

describe('FUSE READ on a read-only session', () => {
  const fast = serve(false);
  const general = serve(true);
  const fsys = fast.session.fs;
  const dataNode = BigInt(fsys.lookup(ROOT_INO, 'data.bin'));
  const sparseNode = BigInt(fsys.lookup(ROOT_INO, 'sparse.bin'));
  const dirNode = BigInt(fsys.lookup(ROOT_INO, 'dir'));

  /** The same request to both sessions: the replies must be equal; returns the fast one. */
  function both(request: Buffer): ReturnType<typeof parse> {
    fast.session.handle(request);
    general.session.handle(request);
    const got = fast.take();
    assert.deepEqual(got, general.take());
    assert.ok(got.length >= 16, 'a reply was sent');
    const reply = parse(got);
    assert.equal(reply.unique, request.readBigUInt64LE(8));
    assert.equal(reply.len, 16 + reply.data.length);
    return reply;
  }

  it('returns the file content at aligned and unaligned offsets, short at the end', () => {
    const cases: [number, number][] = [
      [0, 4096],
      [4096, 4096],
      [12345, 7000],
      [0, MAX_READ],
      [290_000, 65536], // crosses the end: 10,000 bytes
      [300_000 - 1, 4096],
    ];
    for (const [offset, size] of cases) {
      const r = both(readRequest(dataNode, BigInt(offset), size));
      assert.equal(r.error, 0);
      assert.deepEqual(r.data, content.subarray(offset, offset + size), `read ${size} at ${offset}`);
    }
  });

  it('answers no bytes at and past the end, and for offsets past 2^53', () => {
    for (const offset of [300_000n, 1_000_000n, 1n << 60n]) {
      const r = both(readRequest(dataNode, offset, 4096));
      assert.equal(r.error, 0);
      assert.equal(r.data.length, 0);
    }
  });

  it('caps a READ larger than max_read', () => {
    const r = both(readRequest(dataNode, 0n, 2 * MAX_READ));
    assert.deepEqual(r.data, content.subarray(0, MAX_READ));
  });

  it('reads a hole as zeros', () => {
    const r = both(readRequest(sparseNode, 60000n, 16384));
    assert.deepEqual(r.data, Buffer.concat([Buffer.alloc(65536 - 60000), sparseTail.subarray(0, 16384 - (65536 - 60000))]));
  });

  it('answers errors as the general path does', () => {
    const eisdir = both(readRequest(dirNode, 0n, 4096));
    assert.equal(eisdir.error, -21); // EISDIR
    assert.equal(eisdir.data.length, 0);
    // fuse_in_header.len not the bytes read: EINVAL
    assert.equal(both(readRequest(dataNode, 0n, 4096, { len: 72 })).error, -22);
    // a node id past 2^53 (we never hand one out): no header to answer, no reply
    const bad = readRequest(1n << 60n, 0n, 4096);
    fast.session.handle(bad);
    general.session.handle(bad);
    assert.equal(fast.take().length, 0);
    assert.equal(general.take().length, 0);
    // a node id that is no inode: an error reply
    assert.ok(both(readRequest(999_999n, 0n, 4096)).error < 0);
    // extensions the READ does not have room for: EINVAL
    assert.equal(both(readRequest(dataNode, 0n, 4096, { extlen: 16 })).error, -22);
  });

  it('counts the READs it serves', () => {
    const before = fast.session.counts.get('READ') ?? 0;
    both(readRequest(dataNode, 0n, 4096));
    assert.equal(fast.session.counts.get('READ'), before + 1);
  });
});
