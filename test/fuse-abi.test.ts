// Byte-fixture tests of the FUSE kernel ABI (src/fuse/abi.ts, src/fuse/protocol.ts).
// Requests are written out by hand, field by field, as a 7.45 kernel (Linux 6.18) sends
// them; replies are compared byte for byte with hand-written expectations.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FsError } from '../src/errors.js';
import {
  DirentPacker,
  DirentType,
  FUSE_KERNEL_MINOR_VERSION,
  InitFlag,
  NotifyCode,
  Opcode,
  FATTR,
  FsXflag,
  IoctlCmd,
  IoctlFlag,
  StructSize,
  decodeFsxattr,
  describeInitFlags,
  direntSize,
  direntTypeOfMode,
  encodeDevice,
  encodeFsxattr,
  encodeNotifyDelete,
  encodeNotifyInvalEntry,
  encodeNotifyInvalInode,
  type EntryOut,
  type FuseAttr,
} from '../src/fuse/abi.js';
import {
  PROTOCOL_BEFORE_INIT,
  Reply,
  decodeRequest,
  needsReply,
  negotiateInit,
  type FuseRequest,
  type Protocol,
  type Send,
} from '../src/fuse/protocol.js';
import { readFileSync } from 'node:fs';
import { Ext4 } from '../src/fs/ext4.js';
import { FuseSession } from '../src/fuse/session.js';
import { MemoryChannel } from '../src/io/memory-channel.js';
import { makeImage } from './helpers/images.js';
import { parseMountOptions } from '../src/fuse/options.js';

// ---------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------

/** Hex with `#` comments and any whitespace -> bytes. */
function hex(text: string): Uint8Array {
  const clean = text.replace(/#[^\n]*/g, '').replace(/\s+/g, '');
  assert.match(clean, /^([0-9a-f]{2})*$/i, 'fixture is not whole bytes of hex');
  return Uint8Array.from(Buffer.from(clean, 'hex'));
}

/** 16 bytes per line, so that a mismatch shows where. */
function rows(bytes: Uint8Array): string {
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += 16) {
    lines.push(`${i.toString(16).padStart(4, '0')}: ${Buffer.from(bytes.subarray(i, i + 16)).toString('hex').replace(/(..)/g, '$1 ').trim()}`);
  }
  return lines.join('\n');
}

function assertBytes(actual: Uint8Array, expected: Uint8Array): void {
  assert.equal(rows(actual), rows(expected));
}

function concat(pieces: readonly Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(pieces.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength))));
}

function text(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('latin1');
}

/** A Reply for `opcode` whose messages land in `messages` (one concatenated buffer each). */
function capture(opcode: number, unique = 4n): { reply: Reply; messages: Uint8Array[]; pieces: (readonly Uint8Array[])[] } {
  const messages: Uint8Array[] = [];
  const pieces: (readonly Uint8Array[])[] = [];
  const send: Send = (buffers) => {
    pieces.push(buffers);
    messages.push(concat(buffers));
  };
  return { reply: new Reply({ opcode, unique }, send), messages, pieces };
}

function only<T>(items: readonly T[]): T {
  assert.equal(items.length, 1);
  return items[0] as T;
}

function expectOp<Op extends FuseRequest['op']>(req: FuseRequest, op: Op): Extract<FuseRequest, { op: Op }> {
  assert.equal(req.op, op);
  return req as Extract<FuseRequest, { op: Op }>;
}

function isEinval(error: unknown): boolean {
  return error instanceof FsError && error.code === 'EINVAL';
}

/** Protocol after INIT with a 7.45 kernel that granted SETXATTR_EXT. */
const PROTOCOL_45: Protocol = { minor: 45, flags: InitFlag.SETXATTR_EXT | InitFlag.INIT_EXT };

/** Flags offered by Linux 6.18 (7.45), as listed in reference/fuse-from-node.md. */
const KERNEL_6_18_OFFER = [
  'ASYNC_READ', 'POSIX_LOCKS', 'ATOMIC_O_TRUNC', 'EXPORT_SUPPORT', 'BIG_WRITES', 'DONT_MASK', 'SPLICE_WRITE',
  'SPLICE_MOVE', 'SPLICE_READ', 'FLOCK_LOCKS', 'HAS_IOCTL_DIR', 'AUTO_INVAL_DATA', 'DO_READDIRPLUS',
  'READDIRPLUS_AUTO', 'ASYNC_DIO', 'WRITEBACK_CACHE', 'NO_OPEN_SUPPORT', 'PARALLEL_DIROPS', 'HANDLE_KILLPRIV',
  'POSIX_ACL', 'ABORT_ERROR', 'MAX_PAGES', 'CACHE_SYMLINKS', 'NO_OPENDIR_SUPPORT', 'EXPLICIT_INVAL_DATA',
  'HANDLE_KILLPRIV_V2', 'SETXATTR_EXT', 'INIT_EXT', 'SECURITY_CTX', 'CREATE_SUPP_GROUP', 'HAS_EXPIRE_ONLY',
  'DIRECT_IO_ALLOW_MMAP', 'PASSTHROUGH', 'NO_EXPORT_SUPPORT', 'HAS_RESEND', 'ALLOW_IDMAP', 'REQUEST_TIMEOUT',
];

// INIT from a 7.45 kernel (first request of a mount: unique 2).
const INIT_7_45 = hex(`
  68000000                # len 104 = 40 + 64
  1a000000                # opcode 26 INIT
  0200000000000000        # unique 2
  0000000000000000        # nodeid 0
  00000000 00000000       # uid 0, gid 0
  d2040000                # pid 1234
  0000 0000               # total_extlen 0, padding
  # fuse_init_in
  07000000                # major 7
  2d000000                # minor 45
  00000200                # max_readahead 131072
  fbffff73                # flags: bits 0-25 except FILE_OPS(2), + KILLPRIV_V2, SETXATTR_EXT, INIT_EXT (28-30)
  fd050000                # flags2: bits 32,34-40,42 (SECURITY_CTX ... ALLOW_IDMAP, REQUEST_TIMEOUT)
  ${'00'.repeat(44)}      # unused[11]
`);

// The attributes used by the reply fixtures.
const ATTR: FuseAttr = {
  ino: 12,
  size: 13,
  blocks: 8,
  atime: { seconds: 1_700_000_000, nanoseconds: 123_456_789 },
  mtime: { seconds: -1, nanoseconds: 500_000_000 }, // 1969-12-31T23:59:59.5Z
  ctime: { seconds: 0, nanoseconds: 0 },
  mode: 0o100644,
  nlink: 1,
  uid: 1000,
  gid: 1000,
  rdev: 0,
  blksize: 4096,
};

// ...and its 88 bytes.
const ATTR_BYTES = `
  0c00000000000000        # ino 12
  0d00000000000000        # size 13
  0800000000000000        # blocks 8
  00f1536500000000        # atime 1700000000
  ffffffffffffffff        # mtime -1 (two's complement)
  0000000000000000        # ctime 0
  15cd5b07                # atimensec 123456789
  0065cd1d                # mtimensec 500000000
  00000000                # ctimensec 0
  a4810000                # mode 0100644
  01000000                # nlink 1
  e8030000 e8030000       # uid 1000, gid 1000
  00000000                # rdev 0
  00100000                # blksize 4096
  00000000                # flags 0
`;

const ENTRY: EntryOut = { nodeid: 12, generation: 7, entryTimeout: 1.5, attrTimeout: 1, attr: ATTR };

const ENTRY_BYTES = `
  0c00000000000000        # nodeid 12
  0700000000000000        # generation 7
  0100000000000000        # entry_valid 1 s
  0100000000000000        # attr_valid 1 s
  0065cd1d                # entry_valid_nsec 500000000
  00000000                # attr_valid_nsec 0
  ${ATTR_BYTES}
`;

// ---------------------------------------------------------------------------------------
// constants
// ---------------------------------------------------------------------------------------

describe('FUSE ABI constants', () => {
  it('opcodes and struct sizes match fuse.h 7.45', () => {
    assert.equal(FUSE_KERNEL_MINOR_VERSION, 45);
    assert.equal(Opcode.LOOKUP, 1);
    assert.equal(Opcode.BATCH_FORGET, 42);
    assert.equal(Opcode.READDIRPLUS, 44);
    assert.equal(Opcode.STATX, 52);
    assert.equal(Opcode.COPY_FILE_RANGE_64, 53);
    assert.equal(Opcode.CUSE_INIT, 4096);
    assert.equal(StructSize.ENTRY_OUT, 40 + StructSize.ATTR);
    assert.equal(StructSize.ATTR_OUT, 16 + StructSize.ATTR);
    assert.equal(StructSize.DIRENTPLUS, StructSize.ENTRY_OUT + StructSize.DIRENT);
    assert.equal(StructSize.STATX_OUT, 32 + StructSize.STATX);
    assert.equal(Opcode.IOCTL, 39);
    assert.equal(StructSize.IOCTL_IN, 32);
    assert.equal(StructSize.IOCTL_OUT, 16);
    assert.equal(StructSize.FSXATTR, 28);
  });

  it('ioctl numbers are the _IOC encodings of linux/fs.h (64- and 32-bit)', () => {
    // _IOC(dir, type, nr, size) = dir << 30 | size << 16 | type << 8 | nr; _IOC_WRITE 1, _IOC_READ 2.
    const ioc = (dir: number, type: string, nr: number, size: number): number => (dir * 2 ** 30 + size * 2 ** 16 + type.charCodeAt(0) * 256 + nr);
    assert.equal(IoctlCmd.FS_IOC_GETFLAGS, ioc(2, 'f', 1, 8));
    assert.equal(IoctlCmd.FS_IOC_SETFLAGS, ioc(1, 'f', 2, 8));
    assert.equal(IoctlCmd.FS_IOC32_GETFLAGS, ioc(2, 'f', 1, 4));
    assert.equal(IoctlCmd.FS_IOC32_SETFLAGS, ioc(1, 'f', 2, 4));
    assert.equal(IoctlCmd.FS_IOC_FSGETXATTR, ioc(2, 'X', 31, StructSize.FSXATTR));
    assert.equal(IoctlCmd.FS_IOC_FSSETXATTR, ioc(1, 'X', 32, StructSize.FSXATTR));
    assert.deepEqual([IoctlFlag.COMPAT, IoctlFlag.UNRESTRICTED, IoctlFlag.RETRY, IoctlFlag.BIT32, IoctlFlag.DIR, IoctlFlag.COMPAT_X32], [1, 2, 4, 8, 16, 32]);
  });

  it('struct fsxattr: 28 bytes, pad zero; decodes back', () => {
    const fa = { xflags: FsXflag.IMMUTABLE | FsXflag.NODUMP, extsize: 4096, nextents: 3, projid: 0x1234_5678, cowextsize: 0 };
    const bytes = encodeFsxattr(fa);
    assertBytes(bytes, hex(`
      88000000                # fsx_xflags IMMUTABLE | NODUMP
      00100000                # fsx_extsize 4096
      03000000                # fsx_nextents 3
      78563412                # fsx_projid
      00000000                # fsx_cowextsize
      ${'00'.repeat(8)}       # fsx_pad[8]
    `));
    assert.deepEqual(decodeFsxattr(bytes), fa);
    const inside = new Uint8Array(40);
    inside.set(bytes, 5);
    assert.deepEqual(decodeFsxattr(inside.subarray(5, 33)), fa, 'decodes at an offset in a bigger buffer');
    assert.throws(() => decodeFsxattr(bytes.subarray(0, 27)), isEinval);
  });

  it('INIT flags above bit 31 are exact bigints, and describe as named', () => {
    assert.equal(InitFlag.SECURITY_CTX, 0x1_0000_0000n);
    assert.equal(InitFlag.REQUEST_TIMEOUT, 1n << 42n);
    assert.deepEqual(describeInitFlags(InitFlag.ASYNC_READ | (1n << 60n)), ['ASYNC_READ', 'bit 60']);
  });

  it('device numbers use the kernel new_encode_dev layout; DT_ from mode', () => {
    assert.equal(encodeDevice(8, 1), 0x801);
    assert.equal(encodeDevice(0xfff, 0xf_ffff), 0xffff_ffff);
    assert.equal(encodeDevice(1, 0x123), 0x10_0123); // minor 0x23 | major 1 << 8 | minor 0x100 << 12
    assert.throws(() => encodeDevice(0x1000, 0), FsError);
    assert.equal(direntTypeOfMode(0o100644), DirentType.REG);
    assert.equal(direntTypeOfMode(0o40755), DirentType.DIR);
    assert.equal(direntTypeOfMode(0o120777), DirentType.LNK);
  });
});

// ---------------------------------------------------------------------------------------
// requests
// ---------------------------------------------------------------------------------------

describe('FUSE request decoding', () => {
  it('INIT from a 7.45 kernel: version, readahead, 64-bit flags via flags2', () => {
    const req = expectOp(decodeRequest(INIT_7_45), 'INIT');
    assert.deepEqual(req.header, { len: 104, opcode: 26, unique: 2n, nodeid: 0, uid: 0, gid: 0, pid: 1234, totalExtlen: 0 });
    assert.equal(req.args.major, 7);
    assert.equal(req.args.minor, 45);
    assert.equal(req.args.maxReadahead, 131072);
    assert.deepEqual(describeInitFlags(req.args.flags), KERNEL_6_18_OFFER);
    assert.equal(req.extensions.length, 0);
  });

  it('INIT from a 7.31 kernel (16-byte fuse_init_in, no flags2)', () => {
    const bytes = hex(`
      38000000 1a000000 0200000000000000 0000000000000000 00000000 00000000 01000000 00000000
      07000000 1f000000      # 7.31
      00000200               # max_readahead 131072
      fbffff03               # flags bits 0-25 except FILE_OPS
    `);
    const req = expectOp(decodeRequest(bytes), 'INIT');
    assert.equal(req.args.minor, 31);
    assert.equal(req.args.flags, 0x03ff_fffbn);
  });

  it('INIT_EXT clear: flags2 is ignored even when present', () => {
    const bytes = INIT_7_45.slice();
    bytes[40 + 15] = 0x33; // clear INIT_EXT (bit 30) in flags
    const req = expectOp(decodeRequest(bytes), 'INIT');
    assert.equal(req.args.flags, 0x33ff_fffbn);
  });

  it('LOOKUP of "hello.txt" in the root', () => {
    const bytes = hex(`
      32000000                # len 50 = 40 + 10
      01000000                # opcode 1 LOOKUP
      0400000000000000        # unique 4
      0100000000000000        # nodeid 1 (FUSE_ROOT_ID)
      e8030000 e8030000       # uid 1000, gid 1000
      e1100000                # pid 4321
      0000 0000               # total_extlen 0
      68656c6c6f2e74787400    # "hello.txt\\0"
    `);
    const req = expectOp(decodeRequest(bytes, PROTOCOL_45), 'LOOKUP');
    assert.deepEqual(req.header, { len: 50, opcode: 1, unique: 4n, nodeid: 1, uid: 1000, gid: 1000, pid: 4321, totalExtlen: 0 });
    assert.equal(text(req.args.name), 'hello.txt');
  });

  it('READ of 128 KiB at 128 KiB', () => {
    const bytes = hex(`
      50000000 0f000000       # len 80, opcode 15 READ
      0600000000000000        # unique 6
      0c00000000000000        # nodeid 12
      e8030000 e8030000 e1100000 00000000
      # fuse_read_in
      0300000000000000        # fh 3
      0000020000000000        # offset 131072
      00000200                # size 131072
      00000000                # read_flags 0
      0000000000000000        # lock_owner (not valid)
      00800000                # flags O_RDONLY|O_LARGEFILE
      00000000                # padding
    `);
    const req = expectOp(decodeRequest(bytes, PROTOCOL_45), 'READ');
    assert.equal(req.header.nodeid, 12);
    assert.deepEqual(req.args, { fh: 3, offset: 131072, size: 131072, readFlags: 0, lockOwner: undefined, flags: 0x8000 });
  });

  it('READ with a lock owner and an offset past 2^53 (saturates)', () => {
    const bytes = hex(`
      50000000 0f000000 0800000000000000 0c00000000000000 00000000 00000000 01000000 00000000
      0300000000000000        # fh 3
      0000000000000080        # offset 2^63
      00100000                # size 4096
      02000000                # read_flags READ_LOCKOWNER
      0df0fecaefbeadde        # lock_owner 0xdeadbeefcafef00d
      00800000 00000000
    `);
    const req = expectOp(decodeRequest(bytes, PROTOCOL_45), 'READ');
    assert.equal(req.args.offset, Number.MAX_SAFE_INTEGER);
    assert.equal(req.args.lockOwner, 0xdead_beef_cafe_f00dn);
  });

  it('READDIRPLUS of a directory handle', () => {
    const bytes = hex(`
      50000000 2c000000       # len 80, opcode 44 READDIRPLUS
      0a00000000000000        # unique 10
      0100000000000000        # nodeid 1
      e8030000 e8030000 e1100000 00000000
      0500000000000000        # fh 5
      0000000000000000        # offset 0 (start)
      00100000                # size 4096
      00000000                # read_flags
      0000000000000000        # lock_owner
      00880100                # flags O_RDONLY|O_NONBLOCK|O_LARGEFILE|O_DIRECTORY
      00000000
    `);
    const req = expectOp(decodeRequest(bytes, PROTOCOL_45), 'READDIRPLUS');
    assert.deepEqual(req.args, { fh: 5, offset: 0, size: 4096, readFlags: 0, lockOwner: undefined, flags: 0x18800 });
  });

  it('BATCH_FORGET with 3 entries', () => {
    const bytes = hex(`
      60000000 2a000000       # len 96 = 40 + 8 + 3*16, opcode 42 BATCH_FORGET
      0c00000000000000        # unique 12
      0000000000000000        # nodeid 0
      00000000 00000000 00000000 00000000
      03000000 00000000       # count 3, dummy
      0c00000000000000 0100000000000000   # nodeid 12, nlookup 1
      0d00000000000000 0200000000000000   # nodeid 13, nlookup 2
      0500000000010000 e803000000000000   # nodeid 2^40 + 5, nlookup 1000
    `);
    const req = expectOp(decodeRequest(bytes, PROTOCOL_45), 'BATCH_FORGET');
    assert.deepEqual(req.args.forgets, [
      { nodeid: 12, nlookup: 1 },
      { nodeid: 13, nlookup: 2 },
      { nodeid: 2 ** 40 + 5, nlookup: 1000 },
    ]);
    assert.equal(needsReply(req.header.opcode), false);
  });

  it('FORGET and INTERRUPT', () => {
    const forget = hex(`30000000 02000000 0e00000000000000 0c00000000000000 ${'00'.repeat(16)} 0300000000000000`);
    assert.deepEqual(expectOp(decodeRequest(forget), 'FORGET').args, { nlookup: 3 });
    const interrupt = hex(`30000000 24000000 0f00000000000000 0000000000000000 ${'00'.repeat(16)} 0600000000000080`);
    assert.deepEqual(expectOp(decodeRequest(interrupt), 'INTERRUPT').args, { unique: (1n << 63n) + 6n });
  });

  const SETXATTR_EXT = hex(`
    47000000 15000000       # len 71 = 40 + 16 + 10 + 5, opcode 21 SETXATTR
    1000000000000000        # unique 16
    0c00000000000000        # nodeid 12
    e8030000 e8030000 e1100000 00000000
    # fuse_setxattr_in, extended layout (FUSE_SETXATTR_EXT)
    05000000                # size 5
    01000000                # flags XATTR_CREATE
    01000000                # setxattr_flags SETXATTR_ACL_KILL_SGID
    00000000                # padding
    757365722e7465737400    # "user.test\\0"
    68656c6c6f              # value "hello"
  `);

  it('SETXATTR with the extended (7.33) layout', () => {
    const req = expectOp(decodeRequest(SETXATTR_EXT, PROTOCOL_45), 'SETXATTR');
    assert.equal(req.args.size, 5);
    assert.equal(req.args.flags, 1);
    assert.equal(req.args.setxattrFlags, 1);
    assert.equal(text(req.args.name), 'user.test');
    assert.equal(text(req.args.value), 'hello');
  });

  it('SETXATTR without SETXATTR_EXT uses the 8-byte struct', () => {
    const bytes = hex(`
      3f000000 15000000 1000000000000000 0c00000000000000 e8030000 e8030000 e1100000 00000000
      05000000 02000000       # size 5, flags XATTR_REPLACE
      757365722e7465737400 68656c6c6f
    `);
    const req = expectOp(decodeRequest(bytes, PROTOCOL_BEFORE_INIT), 'SETXATTR');
    assert.deepEqual({ ...req.args, name: text(req.args.name), value: text(req.args.value) }, {
      size: 5,
      flags: 2,
      setxattrFlags: 0,
      name: 'user.test',
      value: 'hello',
    });
    // The extended message read without the flag: the name starts inside the struct.
    const wrong = expectOp(decodeRequest(SETXATTR_EXT, PROTOCOL_BEFORE_INIT), 'SETXATTR');
    assert.deepEqual(wrong.args.name, Uint8Array.of(1));
  });

  it('WRITE carries its data as a view of the request', () => {
    const bytes = hex(`
      53000000 10000000       # len 83 = 40 + 40 + 3, opcode 16 WRITE
      1200000000000000 0c00000000000000 e8030000 e8030000 e1100000 00000000
      0300000000000000        # fh 3
      0010000000000000        # offset 4096
      03000000                # size 3
      00000000                # write_flags
      0000000000000000 01800000 00000000   # lock_owner, flags O_WRONLY|O_LARGEFILE
      616263                  # "abc"
    `);
    const req = expectOp(decodeRequest(bytes, PROTOCOL_45), 'WRITE');
    assert.equal(req.args.offset, 4096);
    assert.equal(text(req.args.data), 'abc');
    assert.equal(req.args.data.buffer, bytes.buffer);
  });

  it('RENAME2 with flags and two names; SYMLINK with name and target', () => {
    const rename = hex(`
      3e000000 2d000000 1400000000000000  # len 62 = 40 + 16 + 2 + 4, opcode 45 RENAME2
      0c00000000000000 00000000 00000000 00000000 00000000
      0d00000000000000 01000000 00000000   # newdir 13, flags RENAME_NOREPLACE
      6100 62636400                         # "a\\0", "bcd\\0"
    `);
    const r = expectOp(decodeRequest(rename), 'RENAME2');
    assert.deepEqual([r.args.newdir, r.args.flags, text(r.args.name), text(r.args.newname)], [13, 1, 'a', 'bcd']);
    const symlink = hex(`
      31000000 06000000 1600000000000000  # len 49 = 40 + 4 + 5, opcode 6 SYMLINK
      0100000000000000 00000000 00000000 00000000 00000000
      6c6e6b00 2f746d7000                  # "lnk\\0", "/tmp\\0"
    `);
    const s = expectOp(decodeRequest(symlink), 'SYMLINK');
    assert.deepEqual([text(s.args.name), text(s.args.target)], ['lnk', '/tmp']);
  });

  it('MKDIR followed by a supplementary-group extension: the extension is split off', () => {
    const real = hex(`
      44000000 09000000       # len 68 = 40 + 8 + 4 + 16, opcode 9 MKDIR
      1800000000000000 0100000000000000 e8030000 e8030000 e1100000
      0200 0000               # total_extlen 2 (16 bytes), padding
      ed010000 12000000       # mode 0755, umask 022
      6e657700                # "new\\0"
      10000000 20000000       # fuse_ext_header: size 16, type FUSE_EXT_GROUPS (32)
      01000000 64000000       # nr_groups 1, group 100
    `);
    const req = expectOp(decodeRequest(real), 'MKDIR');
    assert.deepEqual([req.args.mode, req.args.umask, text(req.args.name)], [0o755, 0o22, 'new']);
    assert.equal(req.header.totalExtlen, 2);
    assertBytes(req.extensions, hex('10000000 20000000 01000000 64000000'));
  });

  it('SETATTR: size, times before 1970, conditional fh', () => {
    const bytes = hex(`
      80000000 04000000 1a00000000000000 0c00000000000000 00000000 00000000 00000000 00000000
      69000000 00000000       # valid MODE|SIZE|MTIME|FH (0x1 | 0x8 | 0x20 | 0x40)
      0400000000000000        # fh 4
      0010000000000000        # size 4096
      0000000000000000        # lock_owner
      0000000000000000        # atime
      00ffffffffffffff        # mtime -256
      0000000000000000        # ctime
      00000000 07000000 00000000   # atimensec, mtimensec 7, ctimensec
      a4810000 00000000       # mode 0100644, unused4
      00000000 00000000 00000000   # uid, gid, unused5
    `);
    const req = expectOp(decodeRequest(bytes), 'SETATTR');
    assert.equal(req.args.valid, FATTR.MODE | FATTR.SIZE | FATTR.MTIME | FATTR.FH);
    assert.equal(req.args.fh, 4);
    assert.equal(req.args.size, 4096);
    assert.equal(req.args.lockOwner, undefined);
    assert.deepEqual(req.args.mtime, { seconds: -256, nanoseconds: 7 });
    assert.equal(req.args.mode, 0o100644);
  });

  it('IOCTL FS_IOC_SETFLAGS as fuse_fileattr_set sends it for a directory: 4 bytes of input', () => {
    const bytes = hex(`
      4c000000                # len 76 = 40 + 32 + 4
      27000000                # opcode 39 IOCTL
      3000000000000000        # unique 48
      0c00000000000000        # nodeid 12
      e8030000 e8030000       # uid 1000, gid 1000
      d2040000 0000 0000      # pid 1234, total_extlen 0, padding
      # fuse_ioctl_in
      0500000000000000        # fh 5
      10000000                # flags FUSE_IOCTL_DIR
      02660840                # cmd 0x40086602 FS_IOC_SETFLAGS
      0000000000000000        # arg 0 (fuse_priv_ioctl passes no user pointer)
      04000000                # in_size 4
      00000000                # out_size 0
      10000000                # the int: FS_IMMUTABLE_FL
    `);
    const req = expectOp(decodeRequest(bytes, PROTOCOL_45), 'IOCTL');
    assert.equal(req.header.uid, 1000);
    assert.equal(req.args.fh, 5);
    assert.equal(req.args.flags, IoctlFlag.DIR);
    assert.equal(req.args.cmd, IoctlCmd.FS_IOC_SETFLAGS);
    assert.equal(req.args.arg, 0n);
    assert.equal(req.args.inSize, 4);
    assert.equal(req.args.outSize, 0);
    assertBytes(req.args.data, hex('10000000'));
    assert.equal(req.args.data.buffer, bytes.buffer, 'the data is a view of the request');
  });

  it('IOCTL from a 32-bit caller (compat): a user pointer above 2^53, output only', () => {
    const bytes = hex(`
      48000000 27000000 3100000000000000 0c00000000000000 ${'00'.repeat(16)}
      0000000000000000        # fh 0
      09000000                # flags COMPAT | 32BIT
      01760480                # cmd 0x80047601 (_IOR('v', 1, int): FS_IOC32_GETVERSION)
      f0debc9a78563412        # arg 0x123456789abcdef0
      00000000 04000000       # in_size 0, out_size 4
    `);
    const req = expectOp(decodeRequest(bytes), 'IOCTL');
    assert.equal(req.args.flags, IoctlFlag.COMPAT | IoctlFlag.BIT32);
    assert.equal(req.args.cmd, 0x8004_7601);
    assert.equal(req.args.arg, 0x1234_5678_9abc_def0n);
    assert.equal(req.args.outSize, 4);
    assert.equal(req.args.data.length, 0);
  });

  it('unserved opcodes come back as OTHER with their raw arguments', () => {
    const bytes = hex(`30000000 25000000 1c00000000000000 0c00000000000000 ${'00'.repeat(16)} 0102030405060708`);
    const req = expectOp(decodeRequest(bytes), 'OTHER');
    assert.equal(req.header.opcode, Opcode.BMAP);
    assertBytes(req.args.body, hex('0102030405060708'));
  });

  describe('malformed requests throw FsError EINVAL', () => {
    const header = (len: number, opcode: number, extra = '') =>
      hex(`${len.toString(16).padStart(2, '0')}000000 ${opcode.toString(16).padStart(2, '0')}000000 0200000000000000 0100000000000000 ${'00'.repeat(16)} ${extra}`);
    const cases: [string, Uint8Array][] = [
      ['empty', new Uint8Array(0)],
      ['39-byte header', INIT_7_45.subarray(0, 39)],
      ['len larger than the bytes read', INIT_7_45.subarray(0, 100)],
      ['len smaller than a header', hex(`10000000 01000000 ${'00'.repeat(32)}`)],
      ['nodeid of 2^53', hex(`28000000 03000000 0200000000000000 0000000000002000 ${'00'.repeat(16)}`)],
      ['LOOKUP name without NUL', header(0x2b, Opcode.LOOKUP, '616263')],
      ['READ with a 39-byte fuse_read_in', header(40 + 39, Opcode.READ, '00'.repeat(39))],
      ['WRITE size beyond the data', header(40 + 40 + 2, Opcode.WRITE, `${'00'.repeat(16)} 03000000 ${'00'.repeat(20)} 6162`)],
      ['BATCH_FORGET count beyond the entries', header(40 + 8 + 16, Opcode.BATCH_FORGET, `ffffffff 00000000 ${'01'.repeat(16)}`)],
      ['SYMLINK target without NUL', header(40 + 5, Opcode.SYMLINK, '6100 626364')],
      ['GETATTR fh >= 2^53 with GETATTR_FH', header(40 + 16, Opcode.GETATTR, '01000000 00000000 0000000000000080')],
      ['extensions longer than the request', hex(`28000000 01000000 0200000000000000 0100000000000000 ${'00'.repeat(12)} 0100 0000`)],
      ['SETXATTR value shorter than size', header(40 + 16 + 2 + 1, Opcode.SETXATTR, '05000000 00000000 00000000 00000000 6100 61')],
      ['INIT shorter than major/minor', header(40 + 4, Opcode.INIT, '07000000')],
      ['IOCTL with a 31-byte fuse_ioctl_in', header(40 + 31, Opcode.IOCTL, '00'.repeat(31))],
      ['IOCTL in_size beyond the data', header(40 + 32 + 3, Opcode.IOCTL, `${'00'.repeat(24)} 04000000 00000000 010203`)],
      ['IOCTL fh >= 2^53', header(40 + 32, Opcode.IOCTL, `0000000000000080 ${'00'.repeat(24)}`)],
    ];
    for (const [name, bytes] of cases) {
      it(name, () => {
        assert.throws(() => decodeRequest(bytes, PROTOCOL_45), isEinval);
      });
    }
  });

  it('property: any bytes decode or throw FsError, never anything else', () => {
    const decodeOrFsError = (bytes: Uint8Array, protocol: Protocol) => {
      try {
        decodeRequest(bytes, protocol);
      } catch (error) {
        if (!(error instanceof FsError)) throw error;
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, ext) => {
        decodeOrFsError(bytes, ext ? PROTOCOL_45 : PROTOCOL_BEFORE_INIT);
      }),
      { numRuns: 2000 },
    );
    // Well-formed headers with the right length and random arguments reach every decoder.
    const opcodes = [...Object.values(Opcode), 0, 7, 19, 54, 9999];
    fc.assert(
      fc.property(
        fc.constantFrom(...opcodes),
        fc.uint8Array({ maxLength: 160 }),
        fc.integer({ min: 0, max: 3 }),
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        fc.boolean(),
        (opcode, body, extlen, unique, ext) => {
          const bytes = new Uint8Array(40 + body.length);
          const view = new DataView(bytes.buffer);
          view.setUint32(0, bytes.length, true);
          view.setUint32(4, opcode, true);
          view.setBigUint64(8, unique, true);
          view.setUint32(16, 1, true);
          view.setUint16(36, extlen, true);
          bytes.set(body, 40);
          decodeOrFsError(bytes, ext ? PROTOCOL_45 : PROTOCOL_BEFORE_INIT);
        },
      ),
      { numRuns: 5000 },
    );
  });
});

// ---------------------------------------------------------------------------------------
// INIT negotiation
// ---------------------------------------------------------------------------------------

describe('FUSE INIT negotiation', () => {
  const want =
    InitFlag.ASYNC_READ |
    InitFlag.EXPORT_SUPPORT |
    InitFlag.BIG_WRITES |
    InitFlag.DO_READDIRPLUS |
    InitFlag.READDIRPLUS_AUTO |
    InitFlag.PARALLEL_DIROPS |
    InitFlag.MAX_PAGES |
    InitFlag.SETXATTR_EXT |
    InitFlag.HAS_EXPIRE_ONLY |
    InitFlag.OVER_IO_URING; // not offered by this kernel: must not appear

  it('7.45 kernel: minor 45, offered & wanted flags, flags2, max_pages; 64-byte fuse_init_out', () => {
    const init = expectOp(decodeRequest(INIT_7_45), 'INIT');
    const result = negotiateInit(init.args, { want, maxWrite: 1 << 20, maxReadahead: 1 << 20 });
    assert.equal(result.kind, 'accepted');
    if (result.kind !== 'accepted') return;
    assert.equal(result.protocol.minor, 45);
    assert.equal(result.protocol.flags & InitFlag.OVER_IO_URING, 0n);
    const { reply, messages } = capture(Opcode.INIT, init.header.unique);
    reply.replyInit(result.reply);
    assertBytes(
      only(messages),
      hex(`
        50000000 00000000 0200000000000000   # len 80, error 0, unique 2
        07000000                # major 7
        2d000000                # minor 45
        00000200                # max_readahead 131072 (the kernel's, below ours)
        31604460                # flags: ASYNC_READ EXPORT_SUPPORT BIG_WRITES DO_READDIRPLUS READDIRPLUS_AUTO
                                #   PARALLEL_DIROPS MAX_PAGES SETXATTR_EXT INIT_EXT
        1000 0c00               # max_background 16, congestion_threshold 12
        00001000                # max_write 1 MiB
        01000000                # time_gran 1 ns
        0001 0000               # max_pages 256, map_alignment 0
        08000000                # flags2: HAS_EXPIRE_ONLY (bit 35)
        00000000                # max_stack_depth 0
        0000                    # request_timeout 0
        ${'00'.repeat(22)}      # unused[11]
      `),
    );
  });

  it('a session asks for the writeback cache on read-write mounts only, unless told not to', () => {
    const image = makeImage({ name: 'init-writeback', size: '8M', mkfsArgs: ['-t', 'ext4'] });
    const flagsOf = (write: boolean, writebackCache?: boolean): bigint => {
      const fsys = Ext4.open(new MemoryChannel(new Uint8Array(readFileSync(image))), { write });
      const out: Uint8Array[] = [];
      const session = new FuseSession(fsys, (buffers) => out.push(Buffer.concat(buffers)), {
        attrTimeout: 1,
        entryTimeout: 1,
        maxRead: 131072,
        ...(writebackCache === undefined ? {} : { writebackCache }),
      });
      session.handle(INIT_7_45);
      fsys.close();
      const reply = only(out);
      return BigInt(new DataView(reply.buffer, reply.byteOffset, reply.byteLength).getUint32(16 + 12, true));
    };
    assert.notEqual(flagsOf(true) & InitFlag.WRITEBACK_CACHE, 0n, 'read-write: on by default');
    assert.notEqual(flagsOf(true, true) & InitFlag.WRITEBACK_CACHE, 0n);
    assert.equal(flagsOf(true, false) & InitFlag.WRITEBACK_CACHE, 0n, 'no_writeback_cache');
    assert.equal(flagsOf(false) & InitFlag.WRITEBACK_CACHE, 0n, 'never on read-only mounts');
    assert.equal(parseMountOptions(['rw']).writebackCache, true);
    assert.equal(parseMountOptions(['rw,no_writeback_cache']).writebackCache, false);
    assert.equal(parseMountOptions(['no_writeback_cache,writeback_cache']).writebackCache, true);
  });

  it('default_permissions is always in force: no_default_permissions is refused', () => {
    assert.doesNotThrow(() => parseMountOptions(['rw,default_permissions']));
    // The kernel turns default_permissions on with FUSE_POSIX_ACL; the server checks nothing itself.
    assert.throws(() => parseMountOptions(['rw,no_default_permissions']), (e: unknown) => isEinval(e) && /no_default_permissions.*not supported/.test((e as Error).message));
  });

  it('spin=MICROSECONDS: 100 by default, 0 to 10000, anything else EINVAL', () => {
    assert.equal(parseMountOptions([]).spinMicros, 100);
    assert.equal(parseMountOptions(['spin=0']).spinMicros, 0);
    assert.equal(parseMountOptions(['ro,spin=2500']).spinMicros, 2500);
    for (const bad of ['spin', 'spin=', 'spin=-1', 'spin=1.5', 'spin=10001', 'spin=1e3', 'spin=x']) assert.throws(() => parseMountOptions([bad]), isEinval, bad);
  });

  it('7.31 kernel: minor 31, no flags2, no INIT_EXT', () => {
    const result = negotiateInit({ major: 7, minor: 31, maxReadahead: 131072, flags: 0x03ff_fffbn }, { want, maxWrite: 131072 });
    assert.equal(result.kind, 'accepted');
    if (result.kind !== 'accepted') return;
    assert.equal(result.protocol.minor, 31);
    assert.equal(result.reply.flags, 0x0044_6031n & ~InitFlag.SETXATTR_EXT);
    assert.equal(result.reply.maxPages, 32);
    const { reply, messages } = capture(Opcode.INIT, 2n);
    reply.replyInit(result.reply);
    assert.equal(only(messages).length, 16 + 64);
  });

  it('7.19 kernel: the reply is trimmed to the 24-byte fuse_init_out of 7.22 and older', () => {
    const result = negotiateInit({ major: 7, minor: 19, maxReadahead: 131072, flags: 0x0000_0021n }, { want, maxWrite: 131072 });
    assert.equal(result.kind, 'accepted');
    if (result.kind !== 'accepted') return;
    const { reply, messages } = capture(Opcode.INIT, 2n);
    reply.replyInit(result.reply);
    assertBytes(
      only(messages),
      hex(`
        28000000 00000000 0200000000000000   # len 40
        07000000 13000000 00000200 21000000  # 7.19, readahead, ASYNC_READ|BIG_WRITES
        1000 0c00 00000200                   # max_background, congestion, max_write 128 KiB
      `),
    );
  });

  it('a newer major gets a 7.45 answer and a retry; older kernels are refused', () => {
    const retry = negotiateInit({ major: 8, minor: 0, maxReadahead: 0, flags: 0n }, { want, maxWrite: 4096 });
    assert.equal(retry.kind, 'retry');
    assert.equal(retry.reply.major, 7);
    assert.equal(retry.reply.minor, 45);
    assert.throws(() => negotiateInit({ major: 7, minor: 8, maxReadahead: 0, flags: 0n }, { want, maxWrite: 4096 }), FsError);
    assert.throws(() => negotiateInit({ major: 6, minor: 50, maxReadahead: 0, flags: 0n }, { want, maxWrite: 4096 }), FsError);
  });
});

// ---------------------------------------------------------------------------------------
// replies
// ---------------------------------------------------------------------------------------

describe('FUSE replies', () => {
  it('entry: fuse_entry_out (128 bytes) after the out header', () => {
    const { reply, messages } = capture(Opcode.LOOKUP, 4n);
    reply.replyEntry(ENTRY);
    assertBytes(only(messages), hex(`90000000 00000000 0400000000000000  # len 144, error 0, unique 4\n${ENTRY_BYTES}`));
  });

  it('attr: fuse_attr_out (104 bytes)', () => {
    const { reply, messages } = capture(Opcode.GETATTR, 0x1234_5678_9abc_def0n);
    reply.replyAttr({ attrTimeout: 0.25, attr: ATTR });
    assertBytes(
      only(messages),
      hex(`
        78000000 00000000 f0debc9a78563412   # len 120, error 0, unique
        0000000000000000        # attr_valid 0 s
        80b2e60e                # attr_valid_nsec 250000000
        00000000                # dummy
        ${ATTR_BYTES}
      `),
    );
  });

  it('error: header only, -errno', () => {
    const { reply, messages } = capture(Opcode.LOOKUP, 4n);
    reply.replyError('ENOENT');
    assertBytes(only(messages), hex('10000000 feffffff 0400000000000000'));
    const other = capture(Opcode.READ, 6n);
    other.reply.replyError(new FsError('EUCLEAN', 'corrupted'));
    assertBytes(only(other.messages), hex('10000000 8bffffff 0600000000000000')); // -117
  });

  it('statfs: fuse_kstatfs (80 bytes)', () => {
    const { reply, messages } = capture(Opcode.STATFS, 8n);
    reply.replyStatfs({ blocks: 2 ** 32 + 1, bfree: 1000, bavail: 900, files: 65536, ffree: 65000, bsize: 4096, namelen: 255, frsize: 4096 });
    assertBytes(
      only(messages),
      hex(`
        60000000 00000000 0800000000000000   # len 96
        0100000001000000        # blocks 2^32 + 1
        e803000000000000        # bfree 1000
        8403000000000000        # bavail 900
        0000010000000000        # files 65536
        e8fd000000000000        # ffree 65000
        00100000 ff000000 00100000 00000000  # bsize, namelen 255, frsize, padding
        ${'00'.repeat(24)}      # spare[6]
      `),
    );
  });

  it('open, create, write, xattr size, lseek, copy_file_range', () => {
    const open = capture(Opcode.OPEN, 2n);
    open.reply.replyOpen({ fh: 3, openFlags: 0x2 });
    assertBytes(only(open.messages), hex('20000000 00000000 0200000000000000 0300000000000000 02000000 00000000'));

    const create = capture(Opcode.CREATE, 2n);
    create.reply.replyCreate(ENTRY, { fh: 9, openFlags: 0 });
    assertBytes(only(create.messages), hex(`a0000000 00000000 0200000000000000 ${ENTRY_BYTES} 0900000000000000 00000000 00000000`));

    const write = capture(Opcode.WRITE, 2n);
    write.reply.replyWrite(131072);
    assertBytes(only(write.messages), hex('18000000 00000000 0200000000000000 00000200 00000000'));

    const xattr = capture(Opcode.GETXATTR, 2n);
    xattr.reply.replyXattrSize(5);
    assertBytes(only(xattr.messages), hex('18000000 00000000 0200000000000000 05000000 00000000'));

    const lseek = capture(Opcode.LSEEK, 2n);
    lseek.reply.replyLseek(2 ** 40);
    assertBytes(only(lseek.messages), hex('18000000 00000000 0200000000000000 0000000000010000'));

    const cfr = capture(Opcode.COPY_FILE_RANGE, 2n);
    cfr.reply.replyCopyFileRange(4096);
    assertBytes(only(cfr.messages), hex('18000000 00000000 0200000000000000 00100000 00000000'));
    const cfr64 = capture(Opcode.COPY_FILE_RANGE_64, 2n);
    cfr64.reply.replyCopyFileRange(2 ** 33);
    assertBytes(only(cfr64.messages), hex('18000000 00000000 0200000000000000 0000000002000000'));
  });

  it('ioctl: fuse_ioctl_out then the output data (exactly out_size for the fileattr ioctls)', () => {
    const get = capture(Opcode.IOCTL, 0x30n);
    get.reply.replyIoctl(0, hex('10008000'));
    assertBytes(only(get.messages), hex(`
      24000000 00000000 3000000000000000   # len 36 = 16 + 16 + 4, error 0, unique
      00000000                             # result 0
      00000000                             # flags
      00000000 00000000                    # in_iovs, out_iovs
      10008000                             # the int: IMMUTABLE | EXTENTS
    `));
    const set = capture(Opcode.IOCTL, 0x31n);
    set.reply.replyIoctl(0);
    assertBytes(only(set.messages), hex(`20000000 00000000 3100000000000000 ${'00'.repeat(16)}`));
    const neg = capture(Opcode.IOCTL, 0x32n);
    neg.reply.replyIoctl(-25);
    assertBytes(only(neg.messages), hex('20000000 00000000 3200000000000000 e7ffffff 00000000 00000000 00000000'));
    const err = capture(Opcode.IOCTL, 0x33n);
    err.reply.replyError('ENOTTY');
    assertBytes(only(err.messages), hex('10000000 e7ffffff 3300000000000000'));
    assert.throws(() => capture(Opcode.READ).reply.replyIoctl(0), /does not fit READ/);
    const bad = capture(Opcode.IOCTL);
    assert.throws(() => bad.reply.replyIoctl(2 ** 31), FsError);
    assert.equal(bad.reply.sent, false);
  });

  it('data: header then the caller\'s buffers, uncopied', () => {
    const { reply, messages, pieces } = capture(Opcode.READ, 6n);
    const a = Uint8Array.of(1, 2, 3);
    const b = Uint8Array.of(4);
    reply.replyData(a, b);
    assertBytes(only(messages), hex('14000000 00000000 0600000000000000 01020304'));
    const sent = only(pieces);
    assert.equal(sent[1], a);
    assert.equal(sent[2], b);
  });

  it('statx: fuse_statx_out (288 bytes) with a birth time', () => {
    const { reply, messages } = capture(Opcode.STATX, 2n);
    reply.replyStatx({
      attrTimeout: 1,
      stat: {
        mask: 0xfff,
        blksize: 4096,
        attributes: 0x10,
        nlink: 1,
        uid: 1000,
        gid: 1000,
        mode: 0o100644,
        ino: 12,
        size: 13,
        blocks: 8,
        attributesMask: 0x10,
        atime: ATTR.atime,
        btime: { seconds: -86400, nanoseconds: 1 },
        ctime: ATTR.ctime,
        mtime: ATTR.mtime,
        rdevMajor: 0,
        rdevMinor: 0,
        devMajor: 7,
        devMinor: 3,
      },
    });
    assertBytes(
      only(messages),
      hex(`
        30010000 00000000 0200000000000000   # len 304
        0100000000000000 00000000 00000000   # attr_valid 1 s, nsec, flags
        ${'00'.repeat(16)}                   # spare[2]
        ff0f0000 00100000       # mask, blksize
        1000000000000000        # attributes IMMUTABLE
        01000000 e8030000 e8030000           # nlink, uid, gid
        a481 0000               # mode, spare
        0c00000000000000 0d00000000000000 0800000000000000   # ino, size, blocks
        1000000000000000        # attributes_mask
        00f1536500000000 15cd5b07 00000000   # atime
        80aefeffffffffff 01000000 00000000   # btime -86400 s + 1 ns
        0000000000000000 00000000 00000000   # ctime
        ffffffffffffffff 0065cd1d 00000000   # mtime
        00000000 00000000 07000000 03000000  # rdev 0:0, dev 7:3
        ${'00'.repeat(112)}     # spare2[14]
      `),
    );
  });

  it('a hostile nanoseconds value is clamped, a bad integer is EOVERFLOW and leaves the reply usable', () => {
    const { reply, messages } = capture(Opcode.GETATTR, 2n);
    assert.throws(
      () => reply.replyAttr({ attrTimeout: 1, attr: { ...ATTR, uid: -1 } }),
      (error: unknown) => error instanceof FsError && error.code === 'EOVERFLOW',
    );
    assert.throws(() => reply.replyAttr({ attrTimeout: 1, attr: { ...ATTR, size: 2 ** 53 } }), FsError);
    assert.equal(reply.sent, false);
    reply.replyAttr({ attrTimeout: 1, attr: { ...ATTR, atime: { seconds: 0, nanoseconds: 2 ** 30 - 1 } } });
    const view = new DataView(only(messages).buffer);
    assert.equal(view.getUint32(16 + 16 + 48, true), 999_999_999);
  });

  it('a reply is used once: a second use, or the wrong kind, throws', () => {
    const { reply, messages } = capture(Opcode.UNLINK, 2n);
    reply.replyEmpty();
    assert.equal(reply.sent, true);
    assert.throws(() => reply.replyEmpty(), /used twice/);
    assert.throws(() => reply.replyError('EIO'), /used twice/);
    assert.equal(messages.length, 1);

    const lookup = capture(Opcode.LOOKUP, 2n);
    assert.throws(() => lookup.reply.replyData(Uint8Array.of(1)), /does not fit LOOKUP/);
    assert.throws(() => lookup.reply.replyAttr({ attrTimeout: 0, attr: ATTR }), /does not fit/);
    lookup.reply.replyEntry(ENTRY);
    assert.throws(() => lookup.reply.replyEntry(ENTRY), /used twice/);
  });

  it('FORGET, BATCH_FORGET, INTERRUPT and NOTIFY_REPLY get no Reply', () => {
    for (const opcode of [Opcode.FORGET, Opcode.BATCH_FORGET, Opcode.INTERRUPT, Opcode.NOTIFY_REPLY]) {
      assert.equal(needsReply(opcode), false);
      assert.throws(() => new Reply({ opcode, unique: 2n }, () => undefined), /never gets a reply/);
    }
    assert.equal(needsReply(Opcode.DESTROY), true);
    assert.throws(() => capture(Opcode.READ).reply.replyErrno(512), /out of range/);
  });
});

// ---------------------------------------------------------------------------------------
// directory entries
// ---------------------------------------------------------------------------------------

const enc = (s: string) => new TextEncoder().encode(s);

describe('FUSE dirent packing', () => {
  const entries = [
    { ino: 2, off: 1, type: DirentType.DIR, name: enc('.') },
    { ino: 2, off: 2, type: DirentType.DIR, name: enc('..') },
    { ino: 12, off: 3, type: DirentType.REG, name: enc('hello.txt') },
  ];

  it('fuse_dirent records padded to 8 bytes', () => {
    const packer = new DirentPacker(4096);
    for (const e of entries) assert.equal(packer.add(e), true);
    assert.equal(packer.count, 3);
    assertBytes(
      packer.bytes(),
      hex(`
        0200000000000000 0100000000000000 01000000 04000000  2e ${'00'.repeat(7)}         # "."  -> 32
        0200000000000000 0200000000000000 02000000 04000000  2e2e ${'00'.repeat(6)}       # ".." -> 32
        0c00000000000000 0300000000000000 09000000 08000000  68656c6c6f2e747874 ${'00'.repeat(7)}  # 33 -> 40
      `),
    );
  });

  it('stops at the size limit, padding included; nothing half-written', () => {
    const packer = new DirentPacker(103); // 32 + 32 + 40 = 104 needed for all three
    assert.equal(packer.add(entries[0]!), true);
    assert.equal(packer.add(entries[1]!), true);
    assert.equal(packer.add(entries[2]!), false);
    assert.equal(packer.count, 2);
    assert.equal(packer.length, 64);
    assert.equal(packer.bytes().length, 64);
    const exact = new DirentPacker(104);
    for (const e of entries) assert.equal(exact.add(e), true);
    assert.equal(exact.length, 104);
    const tiny = new DirentPacker(31);
    assert.equal(tiny.add(entries[0]!), false);
    assert.equal(tiny.count, 0);
  });

  it('fuse_direntplus: entry_out then dirent', () => {
    const packer = new DirentPacker(4096);
    assert.equal(packer.addPlus(entries[2]!, ENTRY), true);
    assert.equal(direntSize(9, true), 168);
    assertBytes(packer.bytes(), hex(`${ENTRY_BYTES} 0c00000000000000 0300000000000000 09000000 08000000 68656c6c6f2e747874 ${'00'.repeat(7)}`));
    const { reply, messages } = capture(Opcode.READDIRPLUS, 10n);
    reply.replyDirents(packer);
    assert.equal(only(messages).length, 16 + 168);
    assert.equal(new DataView(only(messages).buffer).getUint32(0, true), 16 + 168);
    assert.throws(() => packer.add(entries[0]!), /cannot mix/);
    assert.equal(new DirentPacker(167).addPlus(entries[2]!, ENTRY), false);
  });

  it('rejects names the kernel would refuse; a failed entry leaves the buffer clean', () => {
    const packer = new DirentPacker(4096);
    assert.throws(() => packer.add({ ino: 1, off: 1, type: 0, name: enc('a/b') }), isEinval);
    assert.throws(() => packer.add({ ino: 1, off: 1, type: 0, name: new Uint8Array(0) }), isEinval);
    assert.throws(() => packer.add({ ino: 2 ** 53, off: 1, type: 0, name: enc('x') }), FsError);
    assert.equal(packer.count, 0);
    assert.equal(packer.add(entries[0]!), true);
    assertBytes(packer.bytes(), hex(`0200000000000000 0100000000000000 01000000 04000000 2e ${'00'.repeat(7)}`));
  });

  it('property: records parse back, padding is zero, the size limit holds', () => {
    const name = fc.uint8Array({ minLength: 1, maxLength: 40 }).map((bytes) => bytes.map((b) => (b === 0 || b === 0x2f ? 0x41 : b)));
    fc.assert(
      fc.property(fc.array(name, { maxLength: 60 }), fc.integer({ min: 0, max: 3000 }), (names, maxSize) => {
        const packer = new DirentPacker(maxSize);
        let added = 0;
        for (const [i, n] of names.entries()) {
          if (!packer.add({ ino: i + 100, off: i + 1, type: DirentType.REG, name: n })) break;
          added++;
        }
        assert.equal(packer.count, added);
        const bytes = packer.bytes();
        assert.ok(bytes.length <= maxSize);
        if (added < names.length) {
          assert.ok(bytes.length + direntSize(names[added]!.length, false) > maxSize);
        }
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        let at = 0;
        for (let i = 0; i < added; i++) {
          assert.equal(view.getBigUint64(at, true), BigInt(i + 100));
          assert.equal(view.getBigUint64(at + 8, true), BigInt(i + 1));
          const len = view.getUint32(at + 16, true);
          assert.deepEqual(bytes.subarray(at + 24, at + 24 + len), names[i]);
          const end = at + direntSize(len, false);
          assert.ok(bytes.subarray(at + 24 + len, end).every((b) => b === 0));
          at = end;
        }
        assert.equal(at, bytes.length);
      }),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------
// notifications
// ---------------------------------------------------------------------------------------

describe('FUSE notifications', () => {
  it('inval_inode: unique 0, error = code 2, ino/off/len', () => {
    assertBytes(
      encodeNotifyInvalInode(12, -1, 0),
      hex(`
        28000000 02000000 0000000000000000   # len 40, NOTIFY_INVAL_INODE, unique 0
        0c00000000000000        # ino 12
        ffffffffffffffff        # off -1: attributes only
        0000000000000000        # len 0
      `),
    );
  });

  it('inval_entry: name with its trailing NUL', () => {
    assertBytes(
      encodeNotifyInvalEntry(1, enc('hello.txt'), 1),
      hex(`
        2a000000 03000000 0000000000000000   # len 42 = 16 + 16 + 9 + 1, NOTIFY_INVAL_ENTRY
        0100000000000000        # parent 1
        09000000 01000000       # namelen 9, flags EXPIRE_ONLY
        68656c6c6f2e74787400    # "hello.txt\\0"
      `),
    );
  });

  it('delete: parent, child, name', () => {
    const bytes = encodeNotifyDelete(1, 12, enc('a'));
    assertBytes(
      bytes,
      hex(`
        2a000000 06000000 0000000000000000   # len 42 = 16 + 24 + 1 + 1, NOTIFY_DELETE
        0100000000000000 0c00000000000000    # parent 1, child 12
        01000000 00000000       # namelen 1, padding
        6100                    # "a\\0"
      `),
    );
    assert.equal(new DataView(bytes.buffer).getInt32(4, true), NotifyCode.DELETE);
    assert.throws(() => encodeNotifyDelete(1, 12, new Uint8Array(0)), isEinval);
  });
});

describe('FUSE 64-bit time encoding', () => {
  it('property: seconds round-trip as signed 64-bit through fuse_attr', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), fc.integer({ min: 0, max: 999_999_999 }), (seconds, nanoseconds) => {
        const { reply, messages } = capture(Opcode.GETATTR, 2n);
        reply.replyAttr({ attrTimeout: 0, attr: { ...ATTR, mtime: { seconds, nanoseconds } } });
        const view = new DataView(only(messages).buffer);
        assert.equal(view.getBigInt64(16 + 16 + 32, true), BigInt(seconds));
        assert.equal(view.getUint32(16 + 16 + 52, true), nanoseconds);
      }),
      { numRuns: 500 },
    );
  });
});
