/**
 * A FUSE client without the kernel: encodes requests as the kernel writes them to
 * /dev/fuse (struct layouts of include/uapi/linux/fuse.h, protocol 7.45), feeds them to
 * a FuseSession and checks the protocol contract on every answer: exactly one reply per
 * request that needs one, with the request's unique, a length equal to its bytes, an
 * error of 0 or a negated errno, and no handler bug (a throw that is not an FsError).
 * Any breach throws a ProtocolViolation. Used by the fuzz (hostile images through the
 * session) and by tests that drive the session directly.
 */
import { Buffer } from 'node:buffer';
import type { Ext4 } from '../../src/fs/ext4.js';
import { FuseSession, type SessionOptions } from '../../src/fuse/session.js';
import { Opcode, opcodeName, WriteFlag } from '../../src/fuse/abi.js';

/** fuse_write_in.write_flags of a write-back from the page cache. */
export const WRITE_CACHE = WriteFlag.CACHE;

/** The session broke the protocol contract (or a handler hit a bug). */
export class ProtocolViolation extends Error {
  override readonly name = 'ProtocolViolation';
}

/** A reply: 0 or a positive errno, and the body after fuse_out_header. */
export interface FuseReply {
  readonly errno: number;
  readonly body: Buffer;
}

/** fuse_attr, as the replies carry it. */
export interface FuseAttr {
  readonly ino: bigint;
  readonly size: bigint;
  readonly blocks: bigint;
  readonly mode: number;
  readonly nlink: number;
}

/** One READDIRPLUS record: fuse_entry_out (nodeid 0: no lookup taken) and fuse_dirent. */
export interface DirentPlus {
  readonly nodeid: bigint;
  readonly attr: FuseAttr;
  readonly ino: bigint;
  readonly off: bigint;
  readonly type: number;
  readonly name: Buffer;
}

const IN_HEADER = 40;
const OUT_HEADER = 16;
const ENTRY_OUT = 128;
const DIRENT = 24;
const S_IFMT = 0o170000;
const VALID_TYPES = new Set([0o140000, 0o120000, 0o100000, 0o060000, 0o040000, 0o020000, 0o010000]);

export function decodeAttr(b: Buffer, at: number): FuseAttr {
  return { ino: b.readBigUInt64LE(at), size: b.readBigUInt64LE(at + 8), blocks: b.readBigUInt64LE(at + 16), mode: b.readUInt32LE(at + 60), nlink: b.readUInt32LE(at + 64) };
}

/** A request body: a fixed struct of `size` bytes filled by `fill`, then the `tail` pieces. */
export function struct(size: number, fill: (v: DataView) => void = () => undefined, ...tail: (Uint8Array | string)[]): Uint8Array {
  const parts = tail.map((t) => (typeof t === 'string' ? Buffer.from(`${t}\0`) : t));
  const b = new Uint8Array(size + parts.reduce((n, p) => n + p.length, 0));
  fill(new DataView(b.buffer));
  let at = size;
  for (const p of parts) {
    b.set(p, at);
    at += p.length;
  }
  return b;
}

const u64 = (v: DataView, at: number, value: number | bigint): void => v.setBigUint64(at, BigInt(value), true);

export class SessionClient {
  readonly session: FuseSession;
  /** Requests sent, by opcode name. */
  readonly sent = new Map<string, number>();
  /** Error replies, by "OPCODE errno". */
  readonly errors = new Map<string, number>();
  /** Notifications the session sent (unique 0), in order. */
  readonly notifications: Buffer[] = [];
  private unique = 0n;
  private pending: Buffer[] = [];
  private bug: { error: unknown; op: string } | undefined;

  constructor(
    fs: Ext4,
    options: Partial<SessionOptions> = {},
    /** The caller's uid and gid in the requests' headers. */
    public uid = 0,
    public gid = 0,
  ) {
    this.session = new FuseSession(fs, (buffers) => this.pending.push(Buffer.concat(buffers.map((x) => Buffer.from(x.buffer, x.byteOffset, x.byteLength)))), {
      attrTimeout: 1,
      entryTimeout: 1,
      maxRead: 128 << 10,
      onBug: (error, op) => (this.bug ??= { error, op }),
      ...options,
    });
  }

  /**
   * Send one request and return its reply (undefined for FORGET, which gets none).
   * Notifications the session sends meanwhile (unique 0) go to `notifications`.
   */
  request(opcode: number, nodeid: number | bigint, body: Uint8Array): FuseReply;
  request(opcode: number, nodeid: number | bigint, body: Uint8Array, noReply: true): undefined;
  request(opcode: number, nodeid: number | bigint, body: Uint8Array, noReply = false): FuseReply | undefined {
    const name = opcodeName(opcode);
    this.sent.set(name, (this.sent.get(name) ?? 0) + 1);
    const bytes = new Uint8Array(IN_HEADER + body.length);
    const v = new DataView(bytes.buffer);
    const unique = (this.unique += 2n);
    v.setUint32(0, bytes.length, true);
    v.setUint32(4, opcode, true);
    v.setBigUint64(8, unique, true);
    v.setBigUint64(16, BigInt(nodeid), true);
    v.setUint32(24, this.uid, true);
    v.setUint32(28, this.gid, true);
    v.setUint32(32, 4242, true);
    bytes.set(body, IN_HEADER);
    this.pending = [];
    this.session.handle(bytes);
    if (this.bug !== undefined) {
      const { error, op } = this.bug;
      this.bug = undefined;
      const violation = new ProtocolViolation(`handler bug in ${op}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
      if (error instanceof Error && error.stack !== undefined) violation.stack = `${violation.name}: ${violation.message}\n${error.stack}`;
      throw violation;
    }
    const replies: Buffer[] = [];
    for (const m of this.pending) {
      if (m.length < OUT_HEADER) throw new ProtocolViolation(`${name}: a ${m.length}-byte message`);
      if (m.readUInt32LE(0) !== m.length) throw new ProtocolViolation(`${name}: header says ${m.readUInt32LE(0)} bytes, message has ${m.length}`);
      const u = m.readBigUInt64LE(8);
      if (u === 0n) {
        this.notifications.push(m);
        continue;
      }
      if (u !== unique) throw new ProtocolViolation(`${name}: reply to unique ${u}, expected ${unique}`);
      replies.push(m);
    }
    if (noReply) {
      if (replies.length !== 0) throw new ProtocolViolation(`${name}: ${replies.length} replies to a request that takes none`);
      return undefined;
    }
    if (replies.length !== 1) throw new ProtocolViolation(`${name}: ${replies.length} replies`);
    const reply = replies[0] as Buffer;
    const error = reply.readInt32LE(4);
    if (error > 0 || error < -4095) throw new ProtocolViolation(`${name}: error field ${error}`);
    if (error < 0 && reply.length !== OUT_HEADER) throw new ProtocolViolation(`${name}: an error reply with ${reply.length - OUT_HEADER} body bytes`);
    if (error !== 0) this.errors.set(`${name} ${-error}`, (this.errors.get(`${name} ${-error}`) ?? 0) + 1);
    return { errno: error === 0 ? 0 : -error, body: reply.subarray(OUT_HEADER) };
  }

  /** INIT as the 7.45 kernel sends it, offering every flag. */
  init(maxReadahead = 128 << 10): FuseReply {
    return this.request(
      Opcode.INIT,
      0,
      struct(64, (v) => {
        v.setUint32(0, 7, true);
        v.setUint32(4, 45, true);
        v.setUint32(8, maxReadahead, true);
        v.setUint32(12, 0xffff_ffff, true);
        v.setUint32(16, 0xffff_ffff, true);
      }),
    );
  }

  /** An entry reply (LOOKUP, MKDIR, MKNOD, SYMLINK, LINK, CREATE): checked and decoded. */
  entry(name: string, reply: FuseReply): { nodeid: bigint; attr: FuseAttr } | undefined {
    if (reply.errno !== 0) return undefined;
    if (reply.body.length < ENTRY_OUT) throw new ProtocolViolation(`${name}: a ${reply.body.length}-byte entry reply`);
    const nodeid = reply.body.readBigUInt64LE(0);
    const attr = decodeAttr(reply.body, 40);
    if (nodeid === 0n) {
      // A negative entry (a cacheable ENOENT) is an answer to LOOKUP only.
      if (name !== 'LOOKUP') throw new ProtocolViolation(`${name}: entry with nodeid 0`);
      return { nodeid, attr };
    }
    checkAttr(name, attr);
    return { nodeid, attr };
  }

  lookup(parent: bigint | number, name: Uint8Array | string): { nodeid: bigint; attr: FuseAttr } | undefined {
    const r = this.entry('LOOKUP', this.request(Opcode.LOOKUP, parent, struct(0, undefined, typeof name === 'string' ? name : Buffer.concat([name, Buffer.from([0])]))));
    return r === undefined || r.nodeid === 0n ? undefined : r;
  }

  forget(nodeid: bigint | number, nlookup = 1): void {
    this.request(Opcode.FORGET, nodeid, struct(8, (v) => u64(v, 0, nlookup)), true);
  }

  getattr(nodeid: bigint | number): FuseAttr | undefined {
    const r = this.request(Opcode.GETATTR, nodeid, struct(16));
    if (r.errno !== 0) return undefined;
    if (r.body.length !== 104) throw new ProtocolViolation(`GETATTR: a ${r.body.length}-byte reply`);
    const attr = decodeAttr(r.body, 16);
    checkAttr('GETATTR', attr);
    return attr;
  }

  /** OPEN or OPENDIR: the file handle (0 when the session wants no opens), or the errno. */
  open(nodeid: bigint | number, dir: boolean, flags = 0): { fh: bigint } | { errno: number } {
    const name = dir ? 'OPENDIR' : 'OPEN';
    const r = this.request(dir ? Opcode.OPENDIR : Opcode.OPEN, nodeid, struct(8, (v) => v.setUint32(0, flags, true)));
    // ENOSYS: the server needs no OPEN (the kernel then sends none and uses fh 0).
    if (r.errno === 38) return { fh: 0n };
    if (r.errno !== 0) return { errno: r.errno };
    if (r.body.length !== 16) throw new ProtocolViolation(`${name}: a ${r.body.length}-byte reply`);
    return { fh: r.body.readBigUInt64LE(0) };
  }

  release(nodeid: bigint | number, fh: bigint, dir: boolean): number {
    return this.request(dir ? Opcode.RELEASEDIR : Opcode.RELEASE, nodeid, struct(24, (v) => u64(v, 0, fh))).errno;
  }

  read(nodeid: bigint | number, fh: bigint, offset: number, size: number): Buffer | undefined {
    const r = this.request(Opcode.READ, nodeid, struct(40, (v) => (u64(v, 0, fh), u64(v, 8, offset), v.setUint32(16, size, true))));
    if (r.errno !== 0) return undefined;
    if (r.body.length > size) throw new ProtocolViolation(`READ of ${size} bytes answered ${r.body.length}`);
    return r.body;
  }

  /**
   * WRITE; `writeFlags` WRITE_CACHE marks it as the page cache's write-back, which must be
   * acknowledged in full or fail (the kernel drops the rest of a short one silently). A
   * direct write(2) may be short (out of space half-way), never empty or over-long.
   */
  write(nodeid: bigint | number, fh: bigint, offset: number, data: Uint8Array, writeFlags = 0): number {
    const r = this.request(Opcode.WRITE, nodeid, struct(40, (v) => (u64(v, 0, fh), u64(v, 8, offset), v.setUint32(16, data.length, true), v.setUint32(20, writeFlags, true)), data));
    if (r.errno !== 0) return -r.errno;
    if (r.body.length !== 8) throw new ProtocolViolation(`WRITE: a ${r.body.length}-byte reply`);
    const written = r.body.readUInt32LE(0);
    const full = (writeFlags & WRITE_CACHE) !== 0;
    if (full ? written !== data.length : written > data.length || (written === 0 && data.length > 0)) {
      throw new ProtocolViolation(`WRITE of ${data.length} bytes${full ? ' from the page cache' : ''} acknowledged ${written}`);
    }
    return written;
  }

  /** READDIRPLUS from `offset`, one reply of at most `size` bytes, decoded and checked. */
  readdirplus(nodeid: bigint | number, fh: bigint, offset: bigint, size: number): DirentPlus[] | undefined {
    const r = this.request(Opcode.READDIRPLUS, nodeid, struct(40, (v) => (u64(v, 0, fh), u64(v, 8, offset), v.setUint32(16, size, true))));
    if (r.errno !== 0) return undefined;
    if (r.body.length > size) throw new ProtocolViolation(`READDIRPLUS of ${size} bytes answered ${r.body.length}`);
    const out: DirentPlus[] = [];
    let at = 0;
    while (at < r.body.length) {
      if (r.body.length - at < ENTRY_OUT + DIRENT) throw new ProtocolViolation(`READDIRPLUS: ${r.body.length - at} trailing bytes`);
      const nodeid = r.body.readBigUInt64LE(at);
      const attr = decodeAttr(r.body, at + 40);
      const d = at + ENTRY_OUT;
      const namelen = r.body.readUInt32LE(d + 16);
      const recLen = ENTRY_OUT + ((DIRENT + namelen + 7) & ~7);
      if (namelen === 0 || namelen > 255 || at + recLen > r.body.length) throw new ProtocolViolation(`READDIRPLUS: record with a ${namelen}-byte name at ${at} of ${r.body.length}`);
      if (nodeid !== 0n) checkAttr('READDIRPLUS', attr);
      out.push({ nodeid, attr, ino: r.body.readBigUInt64LE(d), off: r.body.readBigUInt64LE(d + 8), type: r.body.readUInt32LE(d + 20), name: Buffer.from(r.body.subarray(d + DIRENT, d + DIRENT + namelen)) });
      at += recLen;
    }
    return out;
  }

  /** LISTXATTR/GETXATTR with size 0 (the length), then with that size (the bytes). */
  xattrProbe(opcode: typeof Opcode.LISTXATTR | typeof Opcode.GETXATTR, nodeid: bigint | number, name?: Buffer): Buffer | undefined {
    const what = opcodeName(opcode);
    const ask = (size: number): FuseReply => this.request(opcode, nodeid, struct(8, (v) => v.setUint32(0, size, true), ...(name === undefined ? [] : [Buffer.concat([name, Buffer.from([0])])])));
    const sized = ask(0);
    if (sized.errno !== 0) return undefined;
    if (sized.body.length !== 8) throw new ProtocolViolation(`${what} size 0: a ${sized.body.length}-byte reply`);
    const size = sized.body.readUInt32LE(0);
    if (size > 65536) throw new ProtocolViolation(`${what}: ${size} bytes announced (XATTR_SIZE_MAX is 65536)`);
    if (size === 0) return Buffer.alloc(0); // asking with size 0 again would ask for the size
    const full = ask(size);
    if (full.errno !== 0) return undefined;
    if (full.body.length !== size) throw new ProtocolViolation(`${what}: ${size} bytes announced, ${full.body.length} sent`);
    return full.body;
  }
}

function checkAttr(what: string, attr: FuseAttr): void {
  if (!VALID_TYPES.has(attr.mode & S_IFMT)) throw new ProtocolViolation(`${what}: attr mode 0o${attr.mode.toString(8)} is no file type (the kernel answers EIO)`);
  if (attr.size > 0x7fff_ffff_ffff_ffffn) throw new ProtocolViolation(`${what}: attr size ${attr.size} is over LLONG_MAX (the kernel answers EIO)`);
}

export { Opcode };
