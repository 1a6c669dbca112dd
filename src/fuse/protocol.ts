/**
 * FUSE requests and replies on top of the byte codecs in `abi.ts`, in the spirit of fuser's
 * `ll/request.rs` + `reply.rs`:
 * - `decodeRequest` turns one message read from /dev/fuse into a typed `FuseRequest`
 *   (a union discriminated by `op`, the opcode's name); opcodes this driver never serves
 *   come back as `op: 'OTHER'` so the session answers ENOSYS.
 * - `negotiateInit` computes the INIT reply: minor = min(kernel's, ours), flags = what the
 *   kernel offers and the filesystem wants.
 * - `Reply` is the one-shot answer to one request: exactly one `reply*` call, which encodes
 *   the reply and hands it to the injected `send`. A second call is a bug and throws.
 *   FORGET, BATCH_FORGET, INTERRUPT and NOTIFY_REPLY never get a reply (`needsReply`).
 */
import { ERRNO, FsError, type Errno } from '../errors.js';
import {
  decodeAccessIn,
  decodeBatchForgetIn,
  decodeCopyFileRangeIn,
  decodeCreateIn,
  decodeFallocateIn,
  decodeFlushIn,
  decodeForgetIn,
  decodeFsyncIn,
  decodeGetattrIn,
  decodeGetxattrIn,
  decodeInHeader,
  decodeInitIn,
  decodeInterruptIn,
  decodeIoctlIn,
  decodeLinkIn,
  decodeListxattrIn,
  decodeLseekIn,
  decodeMkdirIn,
  decodeMknodIn,
  decodeNameIn,
  decodeOpenIn,
  decodeReadIn,
  decodeReleaseIn,
  decodeRename2In,
  decodeRenameIn,
  decodeSetattrIn,
  decodeSetxattrIn,
  decodeStatxIn,
  decodeSymlinkIn,
  decodeWriteIn,
  encodeInitOut,
  FUSE_KERNEL_MINOR_VERSION,
  FUSE_KERNEL_VERSION,
  FUSE_MIN_KERNEL_MINOR,
  InitFlag,
  Opcode,
  opcodeName,
  StructSize,
  writeAttrOut,
  writeEntryOut,
  writeIoctlOut,
  writeOpenOut,
  writeOutHeader,
  writeStatfsOut,
  writeStatxOut,
  writeU32Out,
  writeU64Out,
  type AccessIn,
  type AttrOut,
  type BatchForgetIn,
  type CopyFileRangeIn,
  type CreateIn,
  type DirentPacker,
  type EntryOut,
  type FallocateIn,
  type FlushIn,
  type ForgetIn,
  type FsyncIn,
  type GetattrIn,
  type GetxattrIn,
  type InHeader,
  type InitIn,
  type InitOut,
  type InterruptIn,
  type IoctlIn,
  type Kstatfs,
  type LinkIn,
  type ListxattrIn,
  type LseekIn,
  type MkdirIn,
  type MknodIn,
  type NameIn,
  type OpenIn,
  type OpenOut,
  type ReadIn,
  type ReleaseIn,
  type RenameIn,
  type SetattrIn,
  type SetxattrIn,
  type StatxIn,
  type StatxOut,
  type SymlinkIn,
  type WriteIn,
} from './abi.js';

// ---------------------------------------------------------------------------------------
// Protocol state
// ---------------------------------------------------------------------------------------

/** What INIT settled, which later decoding depends on. */
export interface Protocol {
  /** Minor version in use: min(kernel's, FUSE_KERNEL_MINOR_VERSION). */
  readonly minor: number;
  /** INIT flags granted (offered by the kernel and accepted in our reply). */
  readonly flags: bigint;
}

/** Before INIT: no flags (SETXATTR uses its short layout). */
export const PROTOCOL_BEFORE_INIT: Protocol = { minor: FUSE_KERNEL_MINOR_VERSION, flags: 0n };

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/** No arguments (READLINK, STATFS, DESTROY, SYNCFS, ...). */
export type NoArgs = Readonly<Record<string, never>>;
const NO_ARGS: NoArgs = Object.freeze({});

/** Arguments of an opcode this layer does not decode: the raw argument bytes. */
export interface OtherArgs {
  readonly body: Uint8Array;
}

interface Req<Op extends string, Args> {
  readonly op: Op;
  readonly header: InHeader;
  readonly args: Args;
  /** Request extensions (7.38+: security context, supplementary groups), raw; usually empty. */
  readonly extensions: Uint8Array;
}

/** One decoded request. `op` names the opcode (`header.opcode` holds the number). */
export type FuseRequest =
  | Req<'LOOKUP', NameIn>
  | Req<'FORGET', ForgetIn>
  | Req<'GETATTR', GetattrIn>
  | Req<'SETATTR', SetattrIn>
  | Req<'READLINK', NoArgs>
  | Req<'SYMLINK', SymlinkIn>
  | Req<'MKNOD', MknodIn>
  | Req<'MKDIR', MkdirIn>
  | Req<'UNLINK', NameIn>
  | Req<'RMDIR', NameIn>
  | Req<'RENAME', RenameIn>
  | Req<'LINK', LinkIn>
  | Req<'OPEN', OpenIn>
  | Req<'READ', ReadIn>
  | Req<'WRITE', WriteIn>
  | Req<'STATFS', NoArgs>
  | Req<'RELEASE', ReleaseIn>
  | Req<'FSYNC', FsyncIn>
  | Req<'SETXATTR', SetxattrIn>
  | Req<'GETXATTR', GetxattrIn>
  | Req<'LISTXATTR', ListxattrIn>
  | Req<'REMOVEXATTR', NameIn>
  | Req<'FLUSH', FlushIn>
  | Req<'INIT', InitIn>
  | Req<'OPENDIR', OpenIn>
  | Req<'READDIR', ReadIn>
  | Req<'RELEASEDIR', ReleaseIn>
  | Req<'FSYNCDIR', FsyncIn>
  | Req<'ACCESS', AccessIn>
  | Req<'CREATE', CreateIn>
  | Req<'INTERRUPT', InterruptIn>
  | Req<'DESTROY', NoArgs>
  | Req<'BATCH_FORGET', BatchForgetIn>
  | Req<'FALLOCATE', FallocateIn>
  | Req<'READDIRPLUS', ReadIn>
  | Req<'RENAME2', RenameIn>
  | Req<'LSEEK', LseekIn>
  | Req<'COPY_FILE_RANGE', CopyFileRangeIn>
  | Req<'SYNCFS', NoArgs>
  | Req<'STATX', StatxIn>
  | Req<'COPY_FILE_RANGE_64', CopyFileRangeIn>
  | Req<'IOCTL', IoctlIn>
  /** GETLK, SETLK(W), BMAP, POLL, NOTIFY_REPLY, SETUPMAPPING, REMOVEMAPPING, TMPFILE, CUSE_INIT, unknown. */
  | Req<'OTHER', OtherArgs>;

export type FuseOp = FuseRequest['op'];

/**
 * Decode one message as read from /dev/fuse (`bytes` = exactly what read() returned).
 * Throws FsError EINVAL when it is short, its `len` disagrees with the bytes read, its
 * extensions overrun it, or its arguments are malformed for the opcode.
 */
export function decodeRequest(bytes: Uint8Array, protocol: Protocol = PROTOCOL_BEFORE_INIT): FuseRequest {
  const header = decodeInHeader(bytes);
  if (header.len !== bytes.length) {
    throw new FsError('EINVAL', `malformed FUSE request: fuse_in_header.len ${header.len} but ${bytes.length} bytes read`, {
      structure: 'fuse_in_header',
    });
  }
  const extBytes = header.totalExtlen * 8;
  const argsEnd = header.len - extBytes;
  if (argsEnd < StructSize.IN_HEADER) {
    throw new FsError('EINVAL', `malformed FUSE request: ${extBytes} bytes of extensions in a ${header.len}-byte request`, {
      structure: 'fuse_in_header',
    });
  }
  const body = bytes.subarray(StructSize.IN_HEADER, argsEnd);
  const extensions = bytes.subarray(argsEnd, header.len);
  switch (header.opcode) {
    case Opcode.LOOKUP:
      return req('LOOKUP', header, extensions, decodeNameIn(body));
    case Opcode.FORGET:
      return req('FORGET', header, extensions, decodeForgetIn(body));
    case Opcode.GETATTR:
      return req('GETATTR', header, extensions, decodeGetattrIn(body));
    case Opcode.SETATTR:
      return req('SETATTR', header, extensions, decodeSetattrIn(body));
    case Opcode.READLINK:
      return req('READLINK', header, extensions, NO_ARGS);
    case Opcode.SYMLINK:
      return req('SYMLINK', header, extensions, decodeSymlinkIn(body));
    case Opcode.MKNOD:
      return req('MKNOD', header, extensions, decodeMknodIn(body));
    case Opcode.MKDIR:
      return req('MKDIR', header, extensions, decodeMkdirIn(body));
    case Opcode.UNLINK:
      return req('UNLINK', header, extensions, decodeNameIn(body));
    case Opcode.RMDIR:
      return req('RMDIR', header, extensions, decodeNameIn(body));
    case Opcode.RENAME:
      return req('RENAME', header, extensions, decodeRenameIn(body));
    case Opcode.LINK:
      return req('LINK', header, extensions, decodeLinkIn(body));
    case Opcode.OPEN:
      return req('OPEN', header, extensions, decodeOpenIn(body));
    case Opcode.READ:
      return req('READ', header, extensions, decodeReadIn(body));
    case Opcode.WRITE:
      return req('WRITE', header, extensions, decodeWriteIn(body));
    case Opcode.STATFS:
      return req('STATFS', header, extensions, NO_ARGS);
    case Opcode.RELEASE:
      return req('RELEASE', header, extensions, decodeReleaseIn(body));
    case Opcode.FSYNC:
      return req('FSYNC', header, extensions, decodeFsyncIn(body));
    case Opcode.SETXATTR:
      return req('SETXATTR', header, extensions, decodeSetxattrIn(body, (protocol.flags & InitFlag.SETXATTR_EXT) !== 0n));
    case Opcode.GETXATTR:
      return req('GETXATTR', header, extensions, decodeGetxattrIn(body));
    case Opcode.LISTXATTR:
      return req('LISTXATTR', header, extensions, decodeListxattrIn(body));
    case Opcode.REMOVEXATTR:
      return req('REMOVEXATTR', header, extensions, decodeNameIn(body));
    case Opcode.FLUSH:
      return req('FLUSH', header, extensions, decodeFlushIn(body));
    case Opcode.INIT:
      return req('INIT', header, extensions, decodeInitIn(body));
    case Opcode.OPENDIR:
      return req('OPENDIR', header, extensions, decodeOpenIn(body));
    case Opcode.READDIR:
      return req('READDIR', header, extensions, decodeReadIn(body));
    case Opcode.RELEASEDIR:
      return req('RELEASEDIR', header, extensions, decodeReleaseIn(body));
    case Opcode.FSYNCDIR:
      return req('FSYNCDIR', header, extensions, decodeFsyncIn(body));
    case Opcode.ACCESS:
      return req('ACCESS', header, extensions, decodeAccessIn(body));
    case Opcode.CREATE:
      return req('CREATE', header, extensions, decodeCreateIn(body));
    case Opcode.INTERRUPT:
      return req('INTERRUPT', header, extensions, decodeInterruptIn(body));
    case Opcode.DESTROY:
      return req('DESTROY', header, extensions, NO_ARGS);
    case Opcode.BATCH_FORGET:
      return req('BATCH_FORGET', header, extensions, decodeBatchForgetIn(body));
    case Opcode.FALLOCATE:
      return req('FALLOCATE', header, extensions, decodeFallocateIn(body));
    case Opcode.READDIRPLUS:
      return req('READDIRPLUS', header, extensions, decodeReadIn(body));
    case Opcode.RENAME2:
      return req('RENAME2', header, extensions, decodeRename2In(body));
    case Opcode.LSEEK:
      return req('LSEEK', header, extensions, decodeLseekIn(body));
    case Opcode.COPY_FILE_RANGE:
      return req('COPY_FILE_RANGE', header, extensions, decodeCopyFileRangeIn(body));
    case Opcode.SYNCFS:
      return req('SYNCFS', header, extensions, NO_ARGS);
    case Opcode.STATX:
      return req('STATX', header, extensions, decodeStatxIn(body));
    case Opcode.COPY_FILE_RANGE_64:
      return req('COPY_FILE_RANGE_64', header, extensions, decodeCopyFileRangeIn(body));
    case Opcode.IOCTL:
      return req('IOCTL', header, extensions, decodeIoctlIn(body));
    default:
      return req('OTHER', header, extensions, { body });
  }
}

function req<Op extends FuseOp, Args>(op: Op, header: InHeader, extensions: Uint8Array, args: Args): Req<Op, Args> {
  return { op, header, args, extensions };
}

const NO_REPLY: ReadonlySet<number> = new Set([Opcode.FORGET, Opcode.BATCH_FORGET, Opcode.INTERRUPT, Opcode.NOTIFY_REPLY]);

/**
 * False for FORGET, BATCH_FORGET, INTERRUPT and NOTIFY_REPLY, which the kernel never waits
 * on. (The kernel would accept ENOSYS or EAGAIN for an INTERRUPT, whose unique has bit 0
 * set; a synchronous server has always finished the interrupted request, so it never needs to.)
 */
export function needsReply(opcode: number): boolean {
  return !NO_REPLY.has(opcode);
}

// ---------------------------------------------------------------------------------------
// INIT negotiation
// ---------------------------------------------------------------------------------------

/** What the filesystem asks for in INIT. */
export interface InitOptions {
  /** INIT flags wanted; the reply carries those the kernel offered. */
  readonly want: bigint;
  /** Largest WRITE payload, bytes (the /dev/fuse read buffer must hold max(8192, maxWrite + 80)). */
  readonly maxWrite: number;
  /** Readahead limit, bytes; default and upper bound: the kernel's. */
  readonly maxReadahead?: number;
  /** Default 16. */
  readonly maxBackground?: number;
  /** Default 12. */
  readonly congestionThreshold?: number;
  /** Timestamp granularity in ns; default 1. */
  readonly timeGran?: number;
  /** With MAX_PAGES; default ceil(maxWrite / 4096). */
  readonly maxPages?: number;
  /** With REQUEST_TIMEOUT: seconds; default 0 (none). */
  readonly requestTimeout?: number;
}

export type InitNegotiation =
  /** Reply with `reply`, then serve requests under `protocol`. */
  | { readonly kind: 'accepted'; readonly protocol: Protocol; readonly reply: InitOut }
  /** The kernel speaks a newer major: reply with `reply` (7.x) and wait for another INIT. */
  | { readonly kind: 'retry'; readonly reply: InitOut };

const PAGE_SIZE = 4096;

function emptyInitOut(minor: number): InitOut {
  return {
    major: FUSE_KERNEL_VERSION,
    minor,
    maxReadahead: 0,
    flags: 0n,
    maxBackground: 0,
    congestionThreshold: 0,
    maxWrite: 0,
    timeGran: 0,
    maxPages: 0,
    mapAlignment: 0,
    maxStackDepth: 0,
    requestTimeout: 0,
  };
}

/**
 * The INIT reply for the kernel's `init`. Minor = min(kernel's, FUSE_KERNEL_MINOR_VERSION);
 * flags = kernel's offer & `options.want`, plus INIT_EXT whenever the kernel offered it
 * (so that flags2 is read). Throws FsError EOPNOTSUPP for a kernel older than 7.12 or a
 * major below 7; the session replies with that error and the mount fails.
 */
export function negotiateInit(init: InitIn, options: InitOptions): InitNegotiation {
  if (init.major > FUSE_KERNEL_VERSION) return { kind: 'retry', reply: emptyInitOut(FUSE_KERNEL_MINOR_VERSION) };
  if (init.major < FUSE_KERNEL_VERSION || init.minor < FUSE_MIN_KERNEL_MINOR) {
    throw new FsError(
      'EOPNOTSUPP',
      `kernel FUSE protocol ${init.major}.${init.minor} is older than the oldest supported, ${FUSE_KERNEL_VERSION}.${FUSE_MIN_KERNEL_MINOR}`,
    );
  }
  const minor = Math.min(init.minor, FUSE_KERNEL_MINOR_VERSION);
  let flags = init.flags & options.want & ~InitFlag.INIT_EXT;
  if ((init.flags & InitFlag.INIT_EXT) !== 0n) flags |= InitFlag.INIT_EXT;
  else flags &= 0xffff_ffffn;
  const maxPages = options.maxPages ?? Math.ceil(options.maxWrite / PAGE_SIZE);
  const reply: InitOut = {
    major: FUSE_KERNEL_VERSION,
    minor,
    maxReadahead: Math.min(init.maxReadahead, options.maxReadahead ?? init.maxReadahead),
    flags,
    maxBackground: options.maxBackground ?? 16,
    congestionThreshold: options.congestionThreshold ?? 12,
    maxWrite: options.maxWrite,
    timeGran: options.timeGran ?? 1,
    maxPages: (flags & InitFlag.MAX_PAGES) !== 0n ? Math.min(Math.max(maxPages, 1), 0xffff) : 0,
    mapAlignment: 0,
    maxStackDepth: 0,
    requestTimeout: (flags & InitFlag.REQUEST_TIMEOUT) !== 0n ? (options.requestTimeout ?? 0) : 0,
  };
  return { kind: 'accepted', protocol: { minor, flags }, reply };
}

// ---------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------

/** Writes one message to /dev/fuse (a writev: header first, then payload pieces). */
export type Send = (buffers: readonly Uint8Array[]) => void;

/** Errnos the protocol needs that are not FsError codes (errors.ts' ERRNO). */
export const PROTOCOL_ERRNO = {
  /** Answer to an interrupted request. */
  EINTR: 4,
  /** libfuse's answer to an INIT it cannot speak. */
  EPROTO: 71,
} as const;

type ReplyKind =
  | 'entry'
  | 'attr'
  | 'open'
  | 'create'
  | 'data'
  | 'write'
  | 'statfs'
  | 'xattrSize'
  | 'init'
  | 'lseek'
  | 'copyFileRange'
  | 'statx'
  | 'ioctl'
  | 'empty';

/** Which opcodes each success reply fits (an error fits every request that gets a reply). */
const REPLY_OPCODES: Readonly<Record<ReplyKind, ReadonlySet<number>>> = {
  entry: new Set([Opcode.LOOKUP, Opcode.MKNOD, Opcode.MKDIR, Opcode.SYMLINK, Opcode.LINK]),
  attr: new Set([Opcode.GETATTR, Opcode.SETATTR]),
  open: new Set([Opcode.OPEN, Opcode.OPENDIR]),
  create: new Set([Opcode.CREATE, Opcode.TMPFILE]),
  data: new Set([Opcode.READ, Opcode.READLINK, Opcode.READDIR, Opcode.READDIRPLUS, Opcode.GETXATTR, Opcode.LISTXATTR]),
  write: new Set([Opcode.WRITE]),
  statfs: new Set([Opcode.STATFS]),
  xattrSize: new Set([Opcode.GETXATTR, Opcode.LISTXATTR]),
  init: new Set([Opcode.INIT]),
  lseek: new Set([Opcode.LSEEK]),
  copyFileRange: new Set([Opcode.COPY_FILE_RANGE, Opcode.COPY_FILE_RANGE_64]),
  statx: new Set([Opcode.STATX]),
  ioctl: new Set([Opcode.IOCTL]),
  empty: new Set([
    Opcode.UNLINK,
    Opcode.RMDIR,
    Opcode.RENAME,
    Opcode.RENAME2,
    Opcode.RELEASE,
    Opcode.RELEASEDIR,
    Opcode.FSYNC,
    Opcode.FSYNCDIR,
    Opcode.FLUSH,
    Opcode.SETXATTR,
    Opcode.REMOVEXATTR,
    Opcode.ACCESS,
    Opcode.FALLOCATE,
    Opcode.DESTROY,
    Opcode.SYNCFS,
    Opcode.SETLK,
    Opcode.SETLKW,
  ]),
};

/**
 * Reply memory: messages are carved from 64 KiB slabs of fresh (zeroed) memory that is
 * never reused, so a message stays valid for as long as `send` keeps it, padding is zero
 * without a fill, and a reply costs no ArrayBuffer allocation (which costs more here than
 * encoding the reply: ~0.6 us against ~0.1 us).
 */
const SLAB_SIZE = 64 * 1024;
let slab = new ArrayBuffer(SLAB_SIZE);
let slabView = new DataView(slab);
let slabUsed = 0;

interface Message {
  readonly bytes: Uint8Array;
  /** A view whose offset `at` is the message's first byte. */
  readonly view: DataView;
  readonly at: number;
}

function allocMessage(size: number): Message {
  if (size > SLAB_SIZE / 4) {
    const bytes = new Uint8Array(size);
    return { bytes, view: new DataView(bytes.buffer), at: 0 };
  }
  if (slabUsed + size > SLAB_SIZE) {
    slab = new ArrayBuffer(SLAB_SIZE);
    slabView = new DataView(slab);
    slabUsed = 0;
  }
  const at = slabUsed;
  slabUsed += Math.ceil(size / 8) * 8;
  return { bytes: new Uint8Array(slab, at, size), view: slabView, at };
}

/**
 * The answer to one request; use exactly one `reply*` method, once. Each encodes its
 * payload first (an unencodable value throws FsError EOVERFLOW and leaves the reply
 * unused, so the caller can still answer with an error), then marks the reply used and
 * calls `send`. A second use, or a reply kind that does not fit the opcode, is a bug and
 * throws a plain Error. Replies are freshly allocated: `send` may keep them.
 */
export class Reply {
  readonly unique: bigint;
  readonly opcode: number;
  readonly #send: Send;
  #sent = false;

  constructor(header: Pick<InHeader, 'unique' | 'opcode'>, send: Send) {
    if (!needsReply(header.opcode)) throw new Error(`FUSE ${opcodeName(header.opcode)} never gets a reply`);
    this.unique = header.unique;
    this.opcode = header.opcode;
    this.#send = send;
  }

  /** True once a reply has been sent. */
  get sent(): boolean {
    return this.#sent;
  }

  /** Fail the request with an FsError's errno, or an errno code. */
  replyError(error: FsError | Errno): void {
    this.replyErrno(typeof error === 'string' ? ERRNO[error] : error.errno);
  }

  /** Fail the request with a raw errno (1..511), e.g. PROTOCOL_ERRNO.EINTR. */
  replyErrno(errno: number): void {
    if (!Number.isInteger(errno) || errno < 1 || errno > 511) throw new Error(`FUSE reply: errno ${errno} out of range 1..511`);
    if (this.#sent) this.#twice();
    this.#finish([this.#message(0, -errno).bytes]);
  }

  /** Success with no payload (UNLINK, RMDIR, RENAME, RELEASE, FSYNC, FLUSH, SETXATTR, ...). */
  replyEmpty(): void {
    this.#check('empty');
    this.#finish([this.#message(0).bytes]);
  }

  /** fuse_entry_out (LOOKUP, MKNOD, MKDIR, SYMLINK, LINK). */
  replyEntry(entry: EntryOut): void {
    this.#check('entry');
    const m = this.#message(StructSize.ENTRY_OUT);
    writeEntryOut(m.view, m.at + StructSize.OUT_HEADER, entry);
    this.#finish([m.bytes]);
  }

  /** fuse_attr_out (GETATTR, SETATTR). */
  replyAttr(attr: AttrOut): void {
    this.#check('attr');
    const m = this.#message(StructSize.ATTR_OUT);
    writeAttrOut(m.view, m.at + StructSize.OUT_HEADER, attr);
    this.#finish([m.bytes]);
  }

  /** fuse_open_out (OPEN, OPENDIR). */
  replyOpen(open: OpenOut): void {
    this.#check('open');
    const m = this.#message(StructSize.OPEN_OUT);
    writeOpenOut(m.view, m.at + StructSize.OUT_HEADER, open);
    this.#finish([m.bytes]);
  }

  /** fuse_entry_out + fuse_open_out (CREATE). */
  replyCreate(entry: EntryOut, open: OpenOut): void {
    this.#check('create');
    const m = this.#message(StructSize.ENTRY_OUT + StructSize.OPEN_OUT);
    writeEntryOut(m.view, m.at + StructSize.OUT_HEADER, entry);
    writeOpenOut(m.view, m.at + StructSize.OUT_HEADER + StructSize.ENTRY_OUT, open);
    this.#finish([m.bytes]);
  }

  /**
   * Raw bytes (READ, READLINK, READDIR(PLUS), GETXATTR/LISTXATTR with size > 0); the pieces
   * are sent after the header without copying. The caller keeps it within the request's size.
   */
  replyData(...pieces: Uint8Array[]): void {
    this.#check('data');
    let total = 0;
    for (const piece of pieces) total += piece.length;
    const header = this.#message(total, 0, false);
    this.#finish([header.bytes, ...pieces]);
  }

  /** The records of a DirentPacker (READDIR, READDIRPLUS). */
  replyDirents(packer: DirentPacker): void {
    this.replyData(packer.bytes());
  }

  /** fuse_write_out (WRITE): bytes written. */
  replyWrite(size: number): void {
    this.#check('write');
    const m = this.#message(StructSize.WRITE_OUT);
    writeU32Out(m.view, m.at + StructSize.OUT_HEADER, size, 'write.size');
    this.#finish([m.bytes]);
  }

  /** fuse_statfs_out (STATFS). */
  replyStatfs(st: Kstatfs): void {
    this.#check('statfs');
    const m = this.#message(StructSize.STATFS_OUT);
    writeStatfsOut(m.view, m.at + StructSize.OUT_HEADER, st);
    this.#finish([m.bytes]);
  }

  /** fuse_getxattr_out (GETXATTR/LISTXATTR with size 0): the size the value/list needs. */
  replyXattrSize(size: number): void {
    this.#check('xattrSize');
    const m = this.#message(StructSize.GETXATTR_OUT);
    writeU32Out(m.view, m.at + StructSize.OUT_HEADER, size, 'getxattr.size');
    this.#finish([m.bytes]);
  }

  /** fuse_init_out (INIT), as long as the negotiated minor expects (see encodeInitOut). */
  replyInit(out: InitOut): void {
    this.#check('init');
    const payload = encodeInitOut(out);
    const m = this.#message(payload.length);
    m.bytes.set(payload, StructSize.OUT_HEADER);
    this.#finish([m.bytes]);
  }

  /** fuse_lseek_out (LSEEK): the resulting offset. */
  replyLseek(offset: number): void {
    this.#check('lseek');
    const m = this.#message(StructSize.LSEEK_OUT);
    writeU64Out(m.view, m.at + StructSize.OUT_HEADER, offset, 'lseek.offset');
    this.#finish([m.bytes]);
  }

  /** COPY_FILE_RANGE: fuse_write_out (u32); COPY_FILE_RANGE_64: fuse_copy_file_range_out (u64). */
  replyCopyFileRange(bytesCopied: number): void {
    this.#check('copyFileRange');
    const m = this.#message(8);
    if (this.opcode === Opcode.COPY_FILE_RANGE_64) {
      writeU64Out(m.view, m.at + StructSize.OUT_HEADER, bytesCopied, 'copy_file_range.bytes_copied');
    } else {
      writeU32Out(m.view, m.at + StructSize.OUT_HEADER, bytesCopied, 'copy_file_range.size');
    }
    this.#finish([m.bytes]);
  }

  /** fuse_statx_out (STATX). */
  replyStatx(out: StatxOut): void {
    this.#check('statx');
    const m = this.#message(StructSize.STATX_OUT);
    writeStatxOut(m.view, m.at + StructSize.OUT_HEADER, out);
    this.#finish([m.bytes]);
  }

  /**
   * fuse_ioctl_out (IOCTL): `result` is what ioctl(2) returns to the caller (>= 0; a
   * negative -errno also reaches it, but replyError is the usual way to fail), then the
   * output data. The caller keeps `data` within the request's out_size: the kernel fails
   * the ioctl with EIO otherwise, and for the fileattr ioctls (lsattr/chattr) it wants
   * exactly out_size bytes.
   */
  replyIoctl(result: number, data: Uint8Array = new Uint8Array(0)): void {
    this.#check('ioctl');
    const m = this.#message(StructSize.IOCTL_OUT + data.length);
    writeIoctlOut(m.view, m.at + StructSize.OUT_HEADER, { result, flags: 0, inIovs: 0, outIovs: 0 });
    m.bytes.set(data, StructSize.OUT_HEADER + StructSize.IOCTL_OUT);
    this.#finish([m.bytes]);
  }

  #check(kind: ReplyKind): void {
    if (this.#sent) this.#twice();
    if (!REPLY_OPCODES[kind].has(this.opcode)) {
      throw new Error(`FUSE reply: a ${kind} reply does not fit ${opcodeName(this.opcode)} (unique ${this.unique.toString()})`);
    }
  }

  #twice(): never {
    throw new Error(`FUSE reply for ${opcodeName(this.opcode)} (unique ${this.unique.toString()}) used twice`);
  }

  /**
   * A message with its out header written, `len` = header + `payload` bytes; the buffer
   * holds the payload too unless `withPayload` is false (data sent from separate buffers).
   */
  #message(payload: number, error = 0, withPayload = true): Message {
    const len = StructSize.OUT_HEADER + payload;
    if (len > 0xffff_ffff) throw new FsError('EOVERFLOW', `FUSE reply of ${payload} bytes is too long`);
    const m = allocMessage(withPayload ? len : StructSize.OUT_HEADER);
    writeOutHeader(m.view, m.at, len, error, this.unique);
    return m;
  }

  #finish(buffers: readonly Uint8Array[]): void {
    if (this.#sent) this.#twice();
    this.#sent = true;
    this.#send(buffers);
  }
}
