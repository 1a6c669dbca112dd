/**
 * `FuseSession`: kernel FUSE requests -> Ext4 calls -> replies. One handler per
 * opcode; anything not handled answers ENOSYS; every request that needs a reply
 * gets exactly one (FORGET, BATCH_FORGET and INTERRUPT get none). Synchronous: the
 * worker calls `handle` for each message it reads from /dev/fuse.
 *
 * Node ids are inode numbers, swapped for the root: FUSE's root is node 1, ext4's
 * root is inode 2 (inode 1, the bad-blocks inode, is never exposed), so no table
 * of lookups is needed and FORGET is free.
 *
 * A request that fails on a corrupted object answers that object's errno (EUCLEAN,
 * EIO, ...); the session itself never stops on bad input. An unexpected exception
 * (a bug) answers EIO and is reported through `onBug`.
 *
 * Read-write mounts (the filesystem was opened for writing):
 * - INIT also asks for WRITEBACK_CACHE (the kernel keeps dirty pages, size, mtime and
 *   ctime of regular files and sends WRITE and SETATTR(mtime, ctime) when it writes them
 *   back; it may READ pages of files opened write-only, and does O_APPEND itself),
 *   DONT_MASK (the umask arrives unapplied: a parent's default ACL replaces it, as
 *   posix_acl_create does), SETXATTR_EXT (ACL_KILL_SGID) and HANDLE_KILLPRIV_V2: the
 *   server clears setuid/setgid and security.capability on a write or truncate that
 *   asks for it (FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID, FUSE_OPEN_KILL_SUIDGID) and
 *   on chown; in exchange the kernel stops asking for security.capability before every
 *   write(2) (one GETXATTR round trip per write otherwise).
 * - Mutations answer with full entry/attribute replies. The kernel updates what it
 *   cached itself for the operations it sent (parents' attributes after directory
 *   operations, nlink after UNLINK/RENAME, new dentries after CREATE/MKDIR, negative
 *   dentries after UNLINK), so the long timeouts stay right; the one thing only the
 *   server changes is atime (on READ/READDIR), which is followed by NOTIFY_INVAL_INODE
 *   (attributes only: no page-cache invalidation, so no lock the request holds is needed).
 * - Open files are counted per inode (OPEN/CREATE +1, RELEASE -1): an unlinked or
 *   renamed-over inode still open is kept, and freed at its last RELEASE.
 * - Durability: FSYNC, FSYNCDIR and SYNCFS make everything durable (`Ext4.sync`); FLUSH
 *   (every close) writes everything back to the image without an fsync (`writeBack`)
 *   when something other than an access time changed since the last write-back:
 *   what close(2) promises on a kernel filesystem is that other processes see the data,
 *   not that it survives a power cut; after writeBack the data is in the host's page
 *   cache, so it survives a crash or kill of this server, and an fsync per close would
 *   make `cp -a` or `tar x` of many files pay a disk flush per file. A failed write-back
 *   fails the request that asked for it (EIO); the data stays dirty and is retried.
 *   Periodic flush: `housekeeping` syncs when something changed and the flush interval
 *   passed; `shutdown` (unmount) closes the filesystem, which writes back and marks it clean.
 */
import { FsError, ERRNO, isFsError } from '../errors.js';
import type { Ext4 } from '../fs/ext4.js';
import { kindOfMode, type DirEntryInfo, type Stat, type Timestamp } from '../fs/types.js';
import { RO_COMPAT_PROJECT } from '../ondisk/features.js';
import { isDotName } from '../ondisk/dirent.js';
import {
  APPEND_FL,
  CASEFOLD_FL,
  COMPR_FL,
  DAX_FL,
  DIRSYNC_FL,
  EOFBLOCKS_FL,
  EXTENTS_FL,
  IMMUTABLE_FL,
  JOURNAL_DATA_FL,
  NOATIME_FL,
  NODUMP_FL,
  PROJINHERIT_FL,
  SYNC_FL,
  TOPDIR_FL,
  S_IFDIR,
  S_IFMT,
  S_IFREG,
  S_ISGID,
  S_ISUID,
} from '../ondisk/inode.js';
import type { Creator, SetAttr } from '../fs/writer.js';
import { ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_USER, ACL_GROUP, ACL_USER_OBJ, decodeVfsAcl, encodeVfsAcl, type AclEntry } from '../ondisk/acl.js';
import {
  AccessMask,
  FATTR,
  FsXflag,
  IoctlCmd,
  OpenInFlag,
  decodeFsxattr,
  encodeFsxattr,
  SetxattrExtFlag,
  WriteFlag,
  encodeNotifyInvalInode,
  DirentPacker,
  DirentType,
  direntSize,
  FOPEN,
  InitFlag,
  StatxMask,
  Whence,
  encodeDevice,
  opcodeName,
  type EntryOut,
  type FuseAttr,
  type FuseStatx,
} from './abi.js';
import { PROTOCOL_BEFORE_INIT, Reply, decodeRequest, needsReply, negotiateInit, type FuseRequest, type Protocol, type Send } from './protocol.js';

/** The request of one opcode (or of several that share a handler). */
type RequestOf<K extends FuseRequest['op']> = Extract<FuseRequest, { readonly op: K }>;
import { IN_HEADER, OUT_HEADER, Opcode, RW_IN, StructSize, decodeInHeader, type IoctlIn, type SetattrIn } from './abi.js';

const ROOT_NODEID = 1;
const EXT4_ROOT = 2;
/** btime of a STATX reply whose mask leaves StatxMask.BTIME out (the kernel ignores it). */
const NO_BIRTH_TIME: Timestamp = Object.freeze({ seconds: 0, nanoseconds: 0 });

export interface SessionOptions {
  /** Seconds the kernel may cache attributes. */
  readonly attrTimeout: number;
  /** Seconds the kernel may cache names (and negative lookups). */
  readonly entryTimeout: number;
  /** Largest READ/WRITE payload, bytes. */
  readonly maxRead: number;
  /** Report every file as owned by this uid/gid (fakeroot). */
  readonly owner?: { readonly uid: number; readonly gid: number };
  /** Called with one line per request and reply when tracing. */
  readonly trace?: (line: string) => void;
  /** Called when a handler threw something that is not an FsError (a bug). */
  readonly onBug?: (error: unknown, request: string) => void;
  /** When reads update atime (read-write mounts; default relatime). */
  readonly atime?: 'relatime' | 'strictatime' | 'noatime';
  /** atime updates alone do not make the periodic flush write back. */
  readonly lazytime?: boolean;
  /** Seconds between periodic syncs of a changed filesystem (0: none; default 30). */
  readonly flushInterval?: number;
  /** Called when a write-back no request waits for (periodic flush, unmount) fails. */
  readonly onWriteBackError?: (error: unknown, when: string) => void;
  /** Read-write mounts: ask for the kernel's writeback cache (default true). */
  readonly writebackCache?: boolean;
}

/** INIT flags we ask for on a read-only mount. */
const WANT =
  InitFlag.ASYNC_READ |
  InitFlag.BIG_WRITES |
  InitFlag.MAX_PAGES |
  InitFlag.PARALLEL_DIROPS |
  InitFlag.DO_READDIRPLUS |
  InitFlag.CACHE_SYMLINKS |
  InitFlag.POSIX_ACL |
  InitFlag.ATOMIC_O_TRUNC |
  InitFlag.HAS_EXPIRE_ONLY;

/** What a read-write mount asks for on top (see the module comment). */
const WANT_RW = WANT | InitFlag.DONT_MASK | InitFlag.SETXATTR_EXT | InitFlag.HANDLE_KILLPRIV_V2;

const O_ACCMODE = 3;
const O_TRUNC = 0o1000;
const O_EXCL = 0o200;
const S_IXGRP = 0o010;
const CAPS = 'security.capability';
const O_APPEND = 0o2000;

/*
 * Inode flags through FUSE_IOCTL (lsattr/chattr): what fs/ext4/ioctl.c does, with
 * ext4.h's masks (Linux 5.8+, since EXT4_DAX_FL).
 */
/** EXT4_FL_USER_VISIBLE: the i_flags FS_IOC_GETFLAGS reports. */
const EXT4_FL_USER_VISIBLE = 0x725b_dfff;
/** EXT4_FL_USER_MODIFIABLE: the i_flags FS_IOC_SETFLAGS may change (others are kept). */
const EXT4_FL_USER_MODIFIABLE = 0x624b_c0ff;
/** Modifiable flags ext4ts cannot change (compression, extent migration, DAX): EOPNOTSUPP. */
const FL_UNCHANGEABLE_HERE = COMPR_FL | EXTENTS_FL | EOFBLOCKS_FL | DAX_FL;
/** Flags and the FS_XFLAG_* bits they show as (the VFS's fileattr_fill_flags; FS_COMMON_FL). */
const XFLAG_OF_FLAG: readonly (readonly [number, number])[] = [
  [SYNC_FL, FsXflag.SYNC],
  [IMMUTABLE_FL, FsXflag.IMMUTABLE],
  [APPEND_FL, FsXflag.APPEND],
  [NODUMP_FL, FsXflag.NODUMP],
  [NOATIME_FL, FsXflag.NOATIME],
  [DAX_FL, FsXflag.DAX],
  [PROJINHERIT_FL, FsXflag.PROJINHERIT],
];
const FS_COMMON_FL = XFLAG_OF_FLAG.reduce((all, [flag]) => all | flag, 0);
/** relatime: atime is updated at least this often on reads (seconds). */
const RELATIME_PERIOD = 24 * 3600;
/** Most bytes one COPY_FILE_RANGE copies (user space loops on a short copy). */
const COPY_MAX = 64 << 20;
/** Chunk of a COPY_FILE_RANGE. */
const COPY_CHUNK = 1 << 20;

const ACL_ACCESS = 'system.posix_acl_access';
const ACL_DEFAULT = 'system.posix_acl_default';

const utf8 = new TextDecoder();

function later(a: Timestamp, b: Timestamp): boolean {
  return a.seconds > b.seconds || (a.seconds === b.seconds && a.nanoseconds > b.nanoseconds);
}

/** The kernel's new_decode_dev: [major, minor]. */
function decodeDevice(rdev: number): [number, number] {
  return [Math.floor(rdev / 0x100) % 0x1000, (rdev % 0x100) + Math.floor(rdev / 0x10_0000) * 0x100];
}

/**
 * posix_acl_create_masq: a new inode's access ACL from its parent's default ACL and the
 * mode asked for; returns the ACL, the resulting permission bits and whether the ACL
 * says more than the mode.
 */
function aclCreateMasq(acl: readonly AclEntry[], mode: number): { acl: AclEntry[]; mode: number; extended: boolean } {
  let m = mode & 0o777;
  let extended = false;
  const out: { -readonly [K in keyof AclEntry]: AclEntry[K] }[] = acl.map((e) => ({ ...e }));
  let groupObj: (typeof out)[number] | undefined;
  let mask: (typeof out)[number] | undefined;
  for (const e of out) {
    switch (e.tag) {
      case ACL_USER_OBJ:
        e.perm &= (m >> 6) & 7;
        m &= (e.perm << 6) | ~0o700;
        break;
      case ACL_USER:
      case ACL_GROUP:
        extended = true;
        break;
      case ACL_GROUP_OBJ:
        groupObj = e;
        break;
      case ACL_OTHER:
        e.perm &= m & 7;
        m &= e.perm | ~0o007;
        break;
      case ACL_MASK:
        mask = e;
        extended = true;
        break;
    }
  }
  const g = mask ?? groupObj;
  if (g !== undefined) {
    g.perm &= (m >> 3) & 7;
    m &= (g.perm << 3) | ~0o070;
  }
  return { acl: out, mode: m & 0o777, extended };
}

/** The high 32 bits of a u64 below 2^53 are below this. */
const SAFE_HIGH = 0x20_0000;

function toIno(nodeid: number): number {
  return nodeid === ROOT_NODEID ? EXT4_ROOT : nodeid === EXT4_ROOT ? ROOT_NODEID : nodeid;
}

function toNodeid(ino: number): number {
  return ino === EXT4_ROOT ? ROOT_NODEID : ino === ROOT_NODEID ? EXT4_ROOT : ino;
}

const DIRENT_TYPE: Record<Stat['kind'], number> = {
  file: DirentType.REG,
  directory: DirentType.DIR,
  symlink: DirentType.LNK,
  'char-device': DirentType.CHR,
  'block-device': DirentType.BLK,
  fifo: DirentType.FIFO,
  socket: DirentType.SOCK,
  unknown: DirentType.UNKNOWN,
};

const EMPTY_ATTR: FuseAttr = {
  ino: 0,
  size: 0,
  blocks: 0,
  atime: { seconds: 0, nanoseconds: 0 },
  mtime: { seconds: 0, nanoseconds: 0 },
  ctime: { seconds: 0, nanoseconds: 0 },
  mode: 0,
  nlink: 0,
  uid: 0,
  gid: 0,
  rdev: 0,
  blksize: 0,
};

export class FuseSession {
  protocol: Protocol = PROTOCOL_BEFORE_INIT;
  /** Set once DESTROY arrives. */
  destroyed = false;
  /** Requests served, by opcode name. */
  readonly counts = new Map<string, number>();
  /** Where READ replies are assembled (see opRead). */
  private readBuffer: Uint8Array | undefined;
  /** readFast: the out header of READ replies, and a view of the buffer requests arrive in. */
  private readonly readHeaderBytes = new Uint8Array(StructSize.OUT_HEADER);
  private readonly readHeader = new DataView(this.readHeaderBytes.buffer);
  private fastSource: ArrayBufferLike | undefined;
  private fastView: DataView | undefined;
  /** Open files (OPEN/CREATE not yet RELEASEd), by inode. */
  private readonly opens = new Map<number, number>();
  /** Something changed since the last sync (periodic flush pending). */
  private dirty = false;
  /** Something changed since the last write-back (FLUSH has work to do). */
  private unwritten = false;
  /** The kernel agreed to the writeback cache (INIT): it keeps written files' times. */
  private writebackCache = false;
  /** When the last sync or periodic flush finished (ms, monotonic). */
  private lastSync = performance.now();
  private readonly writable: boolean;
  /** Inodes whose attributes the kernel must drop once the current request is answered. */
  private staleAttrs: number[] = [];
  private readonly isOpen = (ino: number): boolean => (this.opens.get(ino) ?? 0) > 0;

  constructor(
    readonly fs: Ext4,
    private readonly send: Send,
    private readonly options: SessionOptions,
  ) {
    this.writable = fs.writable;
  }

  /** Files open now (inode -> opens), for diagnostics and tests. */
  openFiles(): ReadonlyMap<number, number> {
    return this.opens;
  }

  /**
   * Periodic work between requests: sync a changed filesystem once the flush interval
   * has passed since the last sync. A failure is reported (the data stays dirty and
   * the next FLUSH/FSYNC or periodic flush retries and reports it again).
   */
  housekeeping(now = performance.now()): void {
    const interval = (this.options.flushInterval ?? 30) * 1000;
    if (!this.writable || !this.dirty || interval <= 0 || now - this.lastSync < interval) return;
    try {
      this.sync();
    } catch (error) {
      this.options.onWriteBackError?.(error, 'periodic flush');
      this.lastSync = now;
    }
  }

  /**
   * The end of the session (unmounted): free inodes unlinked while open whose RELEASE
   * never came, then close the filesystem (write back everything, mark it clean).
   * Throws if that fails (the caller reports it).
   */
  shutdown(): void {
    if (this.writable) {
      for (const ino of this.opens.keys()) {
        try {
          this.fs.releaseInode(ino);
        } catch (error) {
          this.options.onWriteBackError?.(error, `freeing unlinked inode ${ino}`);
        }
      }
      this.opens.clear();
    }
    this.fs.close();
  }

  /** Who creates new inodes: the caller, or the mounting user under fakeroot. */
  private creator(request: FuseRequest): Creator {
    return this.options.owner ?? { uid: request.header.uid, gid: request.header.gid };
  }

  private rw(): void {
    if (!this.writable) throw new FsError('EROFS', 'read-only mount');
    this.dirty = true;
    this.unwritten = true;
  }

  /** Everything durable (FSYNC, FSYNCDIR, SYNCFS, periodic flush). */
  private sync(): void {
    this.fs.sync();
    this.dirty = false;
    this.unwritten = false;
    this.lastSync = performance.now();
  }

  private opened(ino: number): void {
    this.opens.set(ino, (this.opens.get(ino) ?? 0) + 1);
  }

  /** RELEASE of a file: at its last, an inode unlinked meanwhile is freed. */
  private released(ino: number): void {
    const n = (this.opens.get(ino) ?? 0) - 1;
    if (n > 0) {
      this.opens.set(ino, n);
      return;
    }
    this.opens.delete(ino);
    // releaseInode frees only an inode with no links left that is not yet freed.
    if (this.writable && this.fs.getattr(ino).nlink === 0) {
      this.dirty = true;
      this.unwritten = true;
      this.fs.releaseInode(ino);
    }
  }

  /**
   * The mode of a new inode and the ACLs to give it: with a default ACL on the parent,
   * the ACL decides (umask ignored), else the umask applies (we asked for DONT_MASK).
   */
  private newMode(parent: number, mode: number, umask: number, dir: boolean): { mode: number; access?: Uint8Array; inherit?: Uint8Array } {
    const def = this.fs.tryGetxattrInode(parent, ACL_DEFAULT);
    const umasked = (this.protocol.flags & InitFlag.DONT_MASK) !== 0n ? mode & ~(umask & 0o777) : mode;
    if (def === undefined || def.length === 0) return { mode: umasked };
    const acl = decodeVfsAcl(def);
    if (acl.length === 0) return { mode: umasked };
    const masq = aclCreateMasq(acl, mode);
    const result: { mode: number; access?: Uint8Array; inherit?: Uint8Array } = { mode: (mode & ~0o777) | masq.mode };
    if (masq.extended) result.access = encodeVfsAcl(masq.acl);
    if (dir) result.inherit = def;
    return result;
  }

  /** Give a just-created inode the ACLs `newMode` chose. */
  private applyAcls(ino: number, acls: { access?: Uint8Array; inherit?: Uint8Array }): void {
    if (acls.inherit !== undefined) this.fs.setxattrInode(ino, ACL_DEFAULT, acls.inherit);
    if (acls.access !== undefined) this.fs.setxattrInode(ino, ACL_ACCESS, acls.access);
  }

  /** relatime/strictatime: update atime after a read of `ino`, and tell the kernel. */
  private accessed(ino: number): void {
    const policy = this.options.atime ?? 'relatime';
    if (!this.writable || policy === 'noatime') return;
    const st = this.fs.getattr(ino);
    if (policy === 'relatime') {
      const nowSeconds = Date.now() / 1000;
      if (later(st.atime, st.mtime) && later(st.atime, st.ctime) && nowSeconds - st.atime.seconds < RELATIME_PERIOD) return;
    }
    if (!this.fs.touchAtime(ino)) return;
    // For the periodic flush (lazytime: not even that). Not for FLUSH: a close(2) after
    // a read does not write an access time back, as the kernel's ext4 leaves it to its
    // next journal commit; it goes with the next write-back of anything else.
    if (this.options.lazytime !== true) this.dirty = true;
    this.notifyInvalAttr(ino);
  }

  /** NOTIFY_INVAL_INODE for attributes only (offset -1: the page cache stays). */
  private notifyInvalAttr(ino: number): void {
    try {
      this.send([encodeNotifyInvalInode(toNodeid(ino), -1, 0)]);
    } catch {
      // The kernel has no such inode cached (ENOENT) or the mount is going away.
    }
  }

  /** Serve one message as read from /dev/fuse. */
  handle(bytes: Uint8Array): void {
    if (!this.writable && this.readFast(bytes)) return;
    let request: FuseRequest;
    try {
      request = decodeRequest(bytes, this.protocol);
    } catch (error) {
      // A request we cannot parse: answer EINVAL if its header is readable.
      try {
        const header = decodeInHeader(bytes);
        if (needsReply(header.opcode)) new Reply(header, this.send).replyError(isFsError(error) ? error : 'EINVAL');
      } catch {
        // not even a header: nothing to answer
      }
      return;
    }
    const name = request.op === 'OTHER' ? opcodeName(request.header.opcode) : request.op;
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
    if (!needsReply(request.header.opcode)) return; // FORGET, BATCH_FORGET, INTERRUPT: stateless here
    const reply = new Reply(request.header, this.send);
    try {
      this.dispatch(request, reply);
      this.options.trace?.(`${name} node ${request.header.nodeid} -> ok`);
      if (this.writable && (request.op === 'READ' || (request.op === 'READDIR' && request.args.offset === 0) || (request.op === 'READDIRPLUS' && request.args.offset === 0))) {
        // After the reply: the atime is not what the reader waits for.
        try {
          this.accessed(toIno(request.header.nodeid));
        } catch (error) {
          this.options.trace?.(`atime of node ${request.header.nodeid}: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    } catch (error) {
      if (reply.sent) {
        this.options.onBug?.(error, name);
        return;
      }
      if (isFsError(error)) {
        this.options.trace?.(`${name} node ${request.header.nodeid} -> ${error.code}: ${error.message}`);
        reply.replyError(error);
      } else {
        this.options.onBug?.(error, name);
        reply.replyError('EIO');
      }
    } finally {
      if (this.staleAttrs.length > 0) {
        for (const stale of this.staleAttrs) this.notifyInvalAttr(stale);
        this.staleAttrs = [];
      }
    }
  }

  /**
   * READ on a read-only mount, answered in place: the fields are read from the request
   * bytes and the out header goes into one reused buffer, without the request and reply
   * objects, the dispatch and their garbage (what a random 4 KiB reader pays for every
   * page; with nothing else to do per request, they were a measurable part of the
   * server's time per READ). What the general path answers with anything but data (a
   * malformed, extended or traced request, an id past 2^53, a read that fails) returns
   * false and is left to it, which answers it as before. The header stays valid until
   * the next request, like the data in readBuffer.
   */
  private readFast(bytes: Uint8Array): boolean {
    const len = bytes.length;
    if (len < StructSize.IN_HEADER + StructSize.READ_IN || this.options.trace !== undefined) return false;
    if (this.fastSource !== bytes.buffer) {
      this.fastSource = bytes.buffer;
      this.fastView = new DataView(bytes.buffer);
    }
    const view = this.fastView as DataView;
    const at = bytes.byteOffset;
    const body = at + StructSize.IN_HEADER;
    if (view.getUint32(at + IN_HEADER.opcode, true) !== Opcode.READ || view.getUint32(at + IN_HEADER.len, true) !== len || view.getUint16(at + IN_HEADER.totalExtlen, true) !== 0) return false;
    // u64 fields as two little-endian halves: the high one must keep the value below 2^53.
    const nodeHigh = view.getUint32(at + IN_HEADER.nodeid + 4, true);
    const offsetHigh = view.getUint32(body + RW_IN.offset + 4, true);
    if (nodeHigh >= SAFE_HIGH || offsetHigh >= SAFE_HIGH) return false;
    const nodeid = nodeHigh * 0x1_0000_0000 + view.getUint32(at + IN_HEADER.nodeid, true);
    const offset = offsetHigh * 0x1_0000_0000 + view.getUint32(body + RW_IN.offset, true);
    const size = Math.min(view.getUint32(body + RW_IN.size, true), this.options.maxRead);
    this.readBuffer ??= new Uint8Array(this.options.maxRead);
    let data: Uint8Array;
    try {
      data = this.fs.read(toIno(nodeid), offset, size, this.readBuffer);
    } catch {
      return false; // the general path reads again and answers the error
    }
    this.counts.set('READ', (this.counts.get('READ') ?? 0) + 1);
    const header = this.readHeader;
    header.setUint32(OUT_HEADER.len, StructSize.OUT_HEADER + data.length, true);
    header.setInt32(OUT_HEADER.error, 0, true);
    header.setUint32(OUT_HEADER.unique, view.getUint32(at + IN_HEADER.unique, true), true); // copied raw
    header.setUint32(OUT_HEADER.unique + 4, view.getUint32(at + IN_HEADER.unique + 4, true), true);
    try {
      this.send([this.readHeaderBytes, data]);
    } catch (error) {
      this.options.onBug?.(error, 'READ'); // as the general path does when a sent reply throws
    }
    return true;
  }

  private dispatch(request: FuseRequest, reply: Reply): void {
    // One small method per opcode (V8 optimizes those quickly; one switch over every
    // opcode was too large for it to optimize at all).
    const handler = this.handlers[request.op] as (request: FuseRequest, ino: number, reply: Reply) => void;
    handler(request, toIno(request.header.nodeid), reply);
  }

  private readonly handlers: { readonly [K in FuseRequest['op']]: (request: RequestOf<K>, ino: number, reply: Reply) => void } = {
    INIT: (request, ino, reply) => this.opInit(request, ino, reply),
    DESTROY: (request, ino, reply) => this.opDestroy(request, ino, reply),
    LOOKUP: (request, ino, reply) => this.opLookup(request, ino, reply),
    GETATTR: (request, ino, reply) => this.opGetattr(request, ino, reply),
    STATX: (request, ino, reply) => this.opStatx(request, ino, reply),
    READLINK: (request, ino, reply) => this.opReadlink(request, ino, reply),
    OPEN: (request, ino, reply) => this.opOpen(request, ino, reply),
    OPENDIR: (request, ino, reply) => this.opOpendir(request, ino, reply),
    READ: (request, ino, reply) => this.opRead(request, ino, reply),
    READDIR: (request, ino, reply) => this.opReaddir(request, ino, reply),
    READDIRPLUS: (request, ino, reply) => this.opReaddir(request, ino, reply),
    FLUSH: (request, ino, reply) => this.opFlush(request, ino, reply),
    RELEASE: (request, ino, reply) => this.opRelease(request, ino, reply),
    RELEASEDIR: (request, ino, reply) => this.opReleasedir(request, ino, reply),
    FSYNC: (request, ino, reply) => this.opFsync(request, ino, reply),
    FSYNCDIR: (request, ino, reply) => this.opFsync(request, ino, reply),
    SYNCFS: (request, ino, reply) => this.opFsync(request, ino, reply),
    STATFS: (request, ino, reply) => this.opStatfs(request, ino, reply),
    GETXATTR: (request, ino, reply) => this.opGetxattr(request, ino, reply),
    LISTXATTR: (request, ino, reply) => this.opListxattr(request, ino, reply),
    ACCESS: (request, ino, reply) => this.opAccess(request, ino, reply),
    LSEEK: (request, ino, reply) => this.opLseek(request, ino, reply),
    SETATTR: (request, ino, reply) => this.opSetattr(request, ino, reply),
    MKNOD: (request, ino, reply) => this.opMknod(request, ino, reply),
    MKDIR: (request, ino, reply) => this.opMkdir(request, ino, reply),
    SYMLINK: (request, ino, reply) => this.opSymlink(request, ino, reply),
    LINK: (request, ino, reply) => this.opLink(request, ino, reply),
    UNLINK: (request, ino, reply) => this.opUnlink(request, ino, reply),
    RMDIR: (request, ino, reply) => this.opRmdir(request, ino, reply),
    RENAME: (request, ino, reply) => this.opRename(request, ino, reply),
    RENAME2: (request, ino, reply) => this.opRename(request, ino, reply),
    CREATE: (request, ino, reply) => this.opCreate(request, ino, reply),
    WRITE: (request, ino, reply) => this.opWrite(request, ino, reply),
    FALLOCATE: (request, ino, reply) => this.opFallocate(request, ino, reply),
    COPY_FILE_RANGE: (request, ino, reply) => this.opCopyFileRange(request, ino, reply),
    COPY_FILE_RANGE_64: (request, ino, reply) => this.opCopyFileRange(request, ino, reply),
    SETXATTR: (request, ino, reply) => this.opSetxattr(request, ino, reply),
    REMOVEXATTR: (request, ino, reply) => this.opRemovexattr(request, ino, reply),
    FORGET: (request, ino, reply) => this.opForget(request, ino, reply),
    BATCH_FORGET: (request, ino, reply) => this.opForget(request, ino, reply),
    INTERRUPT: (request, ino, reply) => this.opForget(request, ino, reply),
    IOCTL: (request, ino, reply) => this.opIoctl(request, ino, reply),
    OTHER: (request, ino, reply) => this.opOther(request, ino, reply),
  };

  private opInit(request: RequestOf<'INIT'>, _ino: number, reply: Reply): void {
    const result = negotiateInit(request.args, { want: this.writable ? (this.options.writebackCache === false ? WANT_RW : WANT_RW | InitFlag.WRITEBACK_CACHE) : WANT, maxWrite: this.options.maxRead, maxPages: Math.ceil(this.options.maxRead / 4096) });
    if (result.kind === 'accepted') {
      this.protocol = result.protocol;
      this.writebackCache = (result.protocol.flags & InitFlag.WRITEBACK_CACHE) !== 0n;
    }
    reply.replyInit(result.reply);
  }

  private opDestroy(_request: RequestOf<'DESTROY'>, _ino: number, reply: Reply): void {
    this.destroyed = true;
    reply.replyEmpty();
  }

  private opLookup(request: RequestOf<'LOOKUP'>, ino: number, reply: Reply): void {
    // Misses are common (every create looks first): tryLookup builds no error for them.
    const child = this.fs.tryLookup(ino, request.args.name);
    if (child === undefined) {
      const timeout = this.entryTimeoutIn(ino);
      if (timeout <= 0) throw new FsError('ENOENT', 'no such entry');
      // A negative entry the kernel may cache: only this mount changes the image, and
      // the kernel drops it itself when a name is created through the mount.
      reply.replyEntry({ nodeid: 0, generation: 0, entryTimeout: timeout, attrTimeout: 0, attr: EMPTY_ATTR });
      return;
    }
    reply.replyEntry(this.entry(child, ino));
  }

  private opGetattr(_request: RequestOf<'GETATTR'>, ino: number, reply: Reply): void {
    reply.replyAttr({ attrTimeout: this.options.attrTimeout, attr: this.attr(this.fs.getattr(ino)) });
  }

  private opStatx(_request: RequestOf<'STATX'>, ino: number, reply: Reply): void {
    reply.replyStatx({ attrTimeout: this.options.attrTimeout, stat: this.statx(this.fs.getattr(ino)) });
  }

  private opReadlink(_request: RequestOf<'READLINK'>, ino: number, reply: Reply): void {
    reply.replyData(this.fs.readlinkInode(ino));
  }

  private opOpen(request: RequestOf<'OPEN'>, ino: number, reply: Reply): void {
    if (!this.writable) {
      // A read-only mount needs nothing from an open (the kernel mount is read-only too,
      // so the VFS refuses writes itself): ENOSYS makes the kernel open files without
      // asking from then on, with KEEP_CACHE, and send no RELEASE (two round trips less
      // per file read).
      reply.replyErrno(ERRNO.ENOSYS);
      return;
    }
    const flags = request.args.flags;
    const st = this.fs.getattr(ino);
    if (st.kind === 'directory') throw new FsError('EISDIR', 'is a directory');
    if ((flags & O_ACCMODE) !== 0 || (flags & O_TRUNC) !== 0) {
      if (!this.writable) throw new FsError('EROFS', 'read-only mount');
      this.checkOpenFlags(st, flags);
      // ATOMIC_O_TRUNC: the truncation comes with the open (mtime and ctime change
      // even when the file was empty, as on a kernel filesystem).
      if ((flags & O_TRUNC) !== 0 && st.kind === 'file') {
        this.rw();
        if ((request.args.openFlags & OpenInFlag.KILL_SUIDGID) !== 0) this.killPriv(ino, undefined, request.header);
        this.fs.setattr(ino, { size: 0, mtime: 'now' });
      }
    }
    this.opened(ino);
    reply.replyOpen({ fh: 0, openFlags: FOPEN.KEEP_CACHE });
  }

  private opOpendir(_request: RequestOf<'OPENDIR'>, ino: number, reply: Reply): void {
    if (!this.writable) {
      // As for OPEN: the kernel then opens directories itself (KEEP_CACHE | CACHE_DIR)
      // and sends no RELEASEDIR.
      reply.replyErrno(ERRNO.ENOSYS);
      return;
    }
    if (this.fs.getattr(ino).kind !== 'directory') throw new FsError('ENOTDIR', 'not a directory');
    reply.replyOpen({ fh: 0, openFlags: FOPEN.KEEP_CACHE | FOPEN.CACHE_DIR });
  }

  private opRead(request: RequestOf<'READ'>, ino: number, reply: Reply): void {
    const size = Math.min(request.args.size, this.options.maxRead);
    // One buffer for every READ: the reply is written before the next request is read.
    this.readBuffer ??= new Uint8Array(this.options.maxRead);
    reply.replyData(this.fs.read(ino, request.args.offset, size, this.readBuffer));
  }

  private opReaddir(request: RequestOf<'READDIR' | 'READDIRPLUS'>, ino: number, reply: Reply): void {
    reply.replyDirents(this.readdir(ino, request.args.offset, request.args.size, request.op === 'READDIRPLUS'));
  }

  private opFlush(_request: RequestOf<'FLUSH'>, _ino: number, reply: Reply): void {
    if (!this.writable) {
      // Nothing to flush on a read-only mount: ENOSYS makes the kernel stop sending
      // FLUSH at every close (one round trip less per file).
      reply.replyErrno(ERRNO.ENOSYS);
      return;
    }
    // close(2): written back to the image, not fsync'ed (see the module comment);
    // nothing to do when nothing changed since the last write-back.
    if (this.unwritten) {
      this.fs.writeBack();
      this.unwritten = false;
    }
    reply.replyEmpty();
  }

  private opRelease(_request: RequestOf<'RELEASE'>, ino: number, reply: Reply): void {
    this.released(ino);
    reply.replyEmpty();
  }

  private opReleasedir(_request: RequestOf<'RELEASEDIR'>, _ino: number, reply: Reply): void {
    reply.replyEmpty();
  }

  private opFsync(_request: RequestOf<'FSYNC' | 'FSYNCDIR' | 'SYNCFS'>, _ino: number, reply: Reply): void {
    if (this.writable) this.sync();
    reply.replyEmpty();
  }

  private opStatfs(_request: RequestOf<'STATFS'>, _ino: number, reply: Reply): void {
    const s = this.fs.statfs();
    reply.replyStatfs({
      blocks: s.blocks,
      bfree: s.freeBlocks,
      bavail: s.availableBlocks,
      files: s.files,
      ffree: s.freeFiles,
      bsize: s.blockSize,
      namelen: s.nameMax,
      frsize: s.blockSize,
    });
  }

  private opGetxattr(request: RequestOf<'GETXATTR'>, ino: number, reply: Reply): void {
    const value = this.fs.tryGetxattrInode(ino, utf8.decode(request.args.name));
    if (value === undefined) {
      reply.replyErrno(ERRNO.ENODATA);
      return;
    }
    this.sized(reply, value, request.args.size);
  }

  private opListxattr(request: RequestOf<'LISTXATTR'>, ino: number, reply: Reply): void {
    const names = this.fs.listxattrInode(ino);
    const bytes = new TextEncoder().encode(names.map((n) => `${n}\0`).join(''));
    this.sized(reply, bytes, request.args.size);
  }

  private opAccess(request: RequestOf<'ACCESS'>, ino: number, reply: Reply): void {
    if ((request.args.mask & AccessMask.W_OK) !== 0 && !this.writable) throw new FsError('EROFS', 'read-only mount');
    this.fs.getattr(ino);
    reply.replyEmpty();
  }

  private opLseek(request: RequestOf<'LSEEK'>, ino: number, reply: Reply): void {
    const { offset, whence } = request.args;
    if (whence === Whence.DATA || whence === Whence.HOLE) {
      reply.replyLseek(this.fs.seek(ino, offset, whence === Whence.DATA ? 'data' : 'hole'));
      return;
    }
    throw new FsError('EINVAL', 'only SEEK_DATA and SEEK_HOLE reach the filesystem');
  }

  private opSetattr(request: RequestOf<'SETATTR'>, ino: number, reply: Reply): void {
    this.rw();
    reply.replyAttr({ attrTimeout: this.options.attrTimeout, attr: this.attr(this.setattr(ino, request.args, request.header)) });
  }

  private opMknod(request: RequestOf<'MKNOD'>, ino: number, reply: Reply): void {
    this.rw();
    const { mode, rdev, umask, name } = request.args;
    const m = this.newMode(ino, mode, umask, false);
    const child = this.fs.mknodInode(ino, name, m.mode, this.creator(request), decodeDevice(rdev));
    this.applyAcls(child, m);
    reply.replyEntry(this.entry(child, ino));
  }

  private opMkdir(request: RequestOf<'MKDIR'>, ino: number, reply: Reply): void {
    this.rw();
    const { mode, umask, name } = request.args;
    const m = this.newMode(ino, (mode & 0o7777) | S_IFDIR, umask, true);
    const child = this.fs.mkdirInode(ino, name, m.mode & 0o7777, this.creator(request));
    this.applyAcls(child, m);
    reply.replyEntry(this.entry(child, ino));
  }

  private opSymlink(request: RequestOf<'SYMLINK'>, ino: number, reply: Reply): void {
    this.rw();
    const child = this.fs.symlinkInode(ino, request.args.name, request.args.target, this.creator(request));
    reply.replyEntry(this.entry(child, ino));
  }

  private opLink(request: RequestOf<'LINK'>, ino: number, reply: Reply): void {
    this.rw();
    const target = toIno(request.args.oldnodeid);
    this.fs.linkInode(target, ino, request.args.newname);
    reply.replyEntry(this.entry(target, ino));
  }

  private opUnlink(request: RequestOf<'UNLINK'>, ino: number, reply: Reply): void {
    this.rw();
    this.fs.unlinkInode(ino, request.args.name, this.isOpen);
    reply.replyEmpty();
  }

  private opRmdir(request: RequestOf<'RMDIR'>, ino: number, reply: Reply): void {
    this.rw();
    this.fs.rmdirInode(ino, request.args.name);
    reply.replyEmpty();
  }

  private opRename(request: RequestOf<'RENAME' | 'RENAME2'>, ino: number, reply: Reply): void {
    this.rw();
    this.fs.renameInode(ino, request.args.name, toIno(request.args.newdir), request.args.newname, request.args.flags, this.isOpen);
    reply.replyEmpty();
  }

  private opCreate(request: RequestOf<'CREATE'>, ino: number, reply: Reply): void {
    this.rw();
    const { flags, mode, umask, name } = request.args;
    let child = this.fs.tryLookup(ino, name) ?? 0;
    if (child !== 0) {
      // The kernel believed the name absent (it is not, as it normally would know):
      // open(O_CREAT) without O_EXCL opens what is there.
      if ((flags & O_EXCL) !== 0) throw new FsError('EEXIST', 'file exists');
      const st = this.fs.getattr(child);
      if (st.kind === 'directory') throw new FsError('EISDIR', 'is a directory');
      this.checkOpenFlags(st, flags);
      if ((flags & O_TRUNC) !== 0 && st.kind === 'file') {
        if ((request.args.openFlags & OpenInFlag.KILL_SUIDGID) !== 0) this.killPriv(child, undefined, request.header);
        this.fs.setattr(child, { size: 0, mtime: 'now' });
      }
    } else {
      const m = this.newMode(ino, (mode & S_IFMT) === 0 ? mode | S_IFREG : mode, umask, false);
      child = this.fs.mknodInode(ino, name, m.mode, this.creator(request));
      this.applyAcls(child, m);
    }
    const entry = this.entry(child, ino);
    this.opened(child);
    reply.replyCreate(entry, { fh: 0, openFlags: FOPEN.KEEP_CACHE });
  }

  private opWrite(request: RequestOf<'WRITE'>, ino: number, reply: Reply): void {
    this.rw();
    if ((request.args.writeFlags & WriteFlag.KILL_SUIDGID) !== 0) this.killPriv(ino, undefined, request.header);
    const size = request.args.data.length;
    // With the writeback cache the kernel keeps a written file's mtime and ctime: it
    // stamps them at write(2) and sends them in a SETATTR when they changed. Stamping
    // them here too would put a later time on disk than the one every client was shown
    // (a WRITE of the page cache comes at close, maybe a clock tick after the write).
    const written = this.fs.write(ino, request.args.offset, request.args.data, !this.writebackCache);
    if (written < size && (request.args.writeFlags & WriteFlag.CACHE) !== 0) {
      // The page cache's write-back (writeback_cache): the kernel takes a short count as
      // the pages written and drops the rest without an error. Only a write(2) that
      // reached us directly may be short (the caller sees it and retries, getting the
      // ENOSPC); here the failure must be the answer, for fsync and close to report.
      throw new FsError('ENOSPC', `no space left: ${written} of ${size} bytes written back at offset ${request.args.offset}`, { inode: ino });
    }
    reply.replyWrite(written);
  }

  private opFallocate(request: RequestOf<'FALLOCATE'>, ino: number, reply: Reply): void {
    this.rw();
    this.fs.fallocate(ino, request.args.mode, request.args.offset, request.args.length);
    reply.replyEmpty();
  }

  private opCopyFileRange(request: RequestOf<'COPY_FILE_RANGE' | 'COPY_FILE_RANGE_64'>, ino: number, reply: Reply): void {
    this.rw();
    const { offIn, nodeidOut, offOut, len, flags } = request.args;
    if (flags !== 0) throw new FsError('EINVAL', 'copy_file_range flags must be 0');
    const out = toIno(nodeidOut);
    const total = Math.min(len, COPY_MAX, request.op === 'COPY_FILE_RANGE' ? 0xffff_ffff : COPY_MAX);
    let done = 0;
    while (done < total) {
      const want = Math.min(COPY_CHUNK, total - done);
      const chunk = this.fs.read(ino, offIn + done, want);
      if (chunk.length === 0) break;
      // Out of space half-way: report what was copied (a short copy), never more. The
      // destination's times are the kernel's under the writeback cache, as for WRITE
      // (it stamps them itself after the copy).
      const written = this.fs.write(out, offOut + done, chunk, !this.writebackCache);
      done += written;
      if (written < chunk.length || chunk.length < want) break; // short write, or end of file
    }
    reply.replyCopyFileRange(done);
  }

  private opSetxattr(request: RequestOf<'SETXATTR'>, ino: number, reply: Reply): void {
    this.rw();
    const { name, value, flags, setxattrFlags } = request.args;
    this.fs.setxattrInode(ino, utf8.decode(name), value, flags);
    if ((setxattrFlags & SetxattrExtFlag.ACL_KILL_SGID) !== 0) {
      const st = this.fs.getattr(ino);
      if ((st.mode & S_ISGID) !== 0) this.fs.setattr(ino, { mode: st.mode & 0o7777 & ~S_ISGID });
    }
    reply.replyEmpty();
  }

  private opRemovexattr(request: RequestOf<'REMOVEXATTR'>, ino: number, reply: Reply): void {
    this.rw();
    this.fs.removexattrInode(ino, utf8.decode(request.args.name));
    reply.replyEmpty();
  }

  private opForget(_request: RequestOf<'FORGET' | 'BATCH_FORGET' | 'INTERRUPT'>, _ino: number, _reply: Reply): void {
  }

  private opIoctl(request: RequestOf<'IOCTL'>, ino: number, reply: Reply): void {
    this.ioctl(ino, request.args, request.header, reply);
  }

  private opOther(_request: RequestOf<'OTHER'>, _ino: number, reply: Reply): void {
    reply.replyErrno(ERRNO.ENOSYS);
  }

  /**
   * FUSE_IOCTL: the inode-flag ioctls the VFS's fileattr_get/set send (lsattr, chattr,
   * xfs_io chattr), answered as ext4 answers them; any other command is ENOTTY, as for an
   * ioctl a filesystem does not know. The kernel checks ownership and CAP_LINUX_IMMUTABLE
   * before it asks; they are checked again here (uid 0 standing in for the capability).
   */
  private ioctl(ino: number, args: IoctlIn, caller: { readonly uid: number }, reply: Reply): void {
    switch (args.cmd) {
      case IoctlCmd.FS_IOC_GETFLAGS:
      case IoctlCmd.FS_IOC32_GETFLAGS: {
        if (args.outSize < 4) throw new FsError('EINVAL', `FS_IOC_GETFLAGS with ${args.outSize} bytes of room`);
        const out = new Uint8Array(4);
        new DataView(out.buffer).setUint32(0, this.visibleFlags(ino), true);
        reply.replyIoctl(0, out);
        return;
      }
      case IoctlCmd.FS_IOC_SETFLAGS:
      case IoctlCmd.FS_IOC32_SETFLAGS: {
        if (!this.writable) throw new FsError('EROFS', 'read-only mount');
        if (args.data.length < 4) throw new FsError('EINVAL', `FS_IOC_SETFLAGS with ${args.data.length} bytes of data`);
        const flags = new DataView(args.data.buffer, args.data.byteOffset, 4).getUint32(0, true);
        this.setFlags(ino, flags, caller);
        reply.replyIoctl(0);
        return;
      }
      case IoctlCmd.FS_IOC_FSGETXATTR: {
        if (args.outSize < 28) throw new FsError('EINVAL', `FS_IOC_FSGETXATTR with ${args.outSize} bytes of room`);
        const flags = this.visibleFlags(ino);
        let xflags = 0;
        for (const [flag, xflag] of XFLAG_OF_FLAG) if ((flags & flag) !== 0) xflags |= xflag;
        reply.replyIoctl(0, encodeFsxattr({ xflags, extsize: 0, nextents: 0, projid: this.projid(ino), cowextsize: 0 }));
        return;
      }
      case IoctlCmd.FS_IOC_FSSETXATTR: {
        if (!this.writable) throw new FsError('EROFS', 'read-only mount');
        const fa = decodeFsxattr(args.data);
        // ext4 changes a project id only with the project feature, which ext4ts never writes.
        if (fa.projid !== this.projid(ino)) throw new FsError('EOPNOTSUPP', 'ext4ts cannot change project ids');
        // The common flags come from xflags; the other flags stay (vfs_fileattr_set).
        let flags = this.visibleFlags(ino) & ~FS_COMMON_FL;
        for (const [flag, xflag] of XFLAG_OF_FLAG) if ((fa.xflags & xflag) !== 0) flags |= flag;
        this.setFlags(ino, flags, caller);
        reply.replyIoctl(0);
        return;
      }
      default:
        throw new FsError('ENOTTY', `ioctl 0x${args.cmd.toString(16)} is not supported`);
    }
  }

  /** ext4_fileattr_get: i_flags & EXT4_FL_USER_VISIBLE, without PROJINHERIT on a regular file. */
  private visibleFlags(ino: number): number {
    const st = this.fs.getattr(ino);
    const flags = st.flags & EXT4_FL_USER_VISIBLE;
    return (st.kind === 'file' ? flags & ~PROJINHERIT_FL : flags) >>> 0;
  }

  /** i_projid as ext4 reports it: with the project feature only. */
  private projid(ino: number): number {
    if ((this.fs.sb.featureRoCompat & RO_COMPAT_PROJECT) === 0) return 0;
    return this.fs.readInode(ino).projid ?? 0;
  }

  /** FS_IOC_SETFLAGS as ext4_fileattr_set does it (vfs_fileattr_set's checks first). */
  private setFlags(ino: number, requested: number, caller: { readonly uid: number }): void {
    const st = this.fs.getattr(ino);
    const root = caller.uid === 0;
    if (!root && caller.uid !== st.uid && caller.uid !== this.options.owner?.uid) throw new FsError('EPERM', 'only the owner may change inode flags');
    if ((requested & ~EXT4_FL_USER_VISIBLE) !== 0) throw new FsError('EOPNOTSUPP', `inode flags 0x${((requested & ~EXT4_FL_USER_VISIBLE) >>> 0).toString(16)} are not ext4 flags`);
    const flags = requested & EXT4_FL_USER_MODIFIABLE;
    // ext4_mask_flags: directory-only flags are not for regular files, and other inodes take only NODUMP and NOATIME.
    const allowed = st.kind === 'directory' ? flags : st.kind === 'file' ? flags & ~(DIRSYNC_FL | TOPDIR_FL | CASEFOLD_FL | PROJINHERIT_FL) : flags & (NODUMP_FL | NOATIME_FL);
    if (allowed !== flags) throw new FsError('EOPNOTSUPP', 'inode flags not valid for this file type');
    const old = st.flags;
    const changed = (old ^ flags) & EXT4_FL_USER_MODIFIABLE;
    if ((changed & (IMMUTABLE_FL | APPEND_FL)) !== 0 && !root) throw new FsError('EPERM', 'changing immutable or append-only needs CAP_LINUX_IMMUTABLE');
    // ext4_ioctl_check_immutable: an immutable inode that stays immutable changes nothing else.
    if ((old & flags & IMMUTABLE_FL) !== 0 && (changed & ~IMMUTABLE_FL) !== 0) throw new FsError('EPERM', 'the file is immutable');
    if ((changed & JOURNAL_DATA_FL) !== 0 && !root) throw new FsError('EPERM', 'changing data journaling needs CAP_SYS_RESOURCE');
    if ((changed & FL_UNCHANGEABLE_HERE) !== 0) throw new FsError('EOPNOTSUPP', `ext4ts cannot change inode flags 0x${(changed & FL_UNCHANGEABLE_HERE).toString(16)}`);
    if (changed === 0) return;
    this.rw();
    this.fs.setFlags(ino, flags);
    // ctime changed: the kernel's cached attributes are stale.
    this.staleAttrs.push(ino);
  }

  /**
   * may_open's checks of immutable and append-only inodes (the kernel makes them only for
   * inodes it marks S_IMMUTABLE/S_APPEND, which FUSE inodes never are): no opening for
   * writing or truncation of an immutable file, and an append-only one only for appending.
   */
  private checkOpenFlags(st: Stat, flags: number): void {
    const writing = (flags & O_ACCMODE) !== 0 || (flags & O_TRUNC) !== 0;
    if (!writing) return;
    if ((st.flags & IMMUTABLE_FL) !== 0) throw new FsError('EPERM', 'the file is immutable');
    if ((st.flags & APPEND_FL) !== 0 && ((flags & O_APPEND) === 0 || (flags & O_TRUNC) !== 0)) throw new FsError('EPERM', 'the file is append-only');
  }

  /** SETATTR: the FATTR fields the kernel set, in one library call; chmod also rewrites an access ACL. */
  private setattr(ino: number, a: SetattrIn, caller: { readonly uid: number; readonly gid: number }): Stat {
    const v = a.valid;
    const change: { -readonly [K in keyof SetAttr]: SetAttr[K] } = {};
    if ((v & FATTR.MODE) !== 0) change.mode = a.mode & 0o7777;
    if ((v & FATTR.UID) !== 0) change.uid = a.uid;
    if ((v & FATTR.GID) !== 0) change.gid = a.gid;
    if ((v & FATTR.SIZE) !== 0) change.size = a.size;
    if ((v & FATTR.ATIME) !== 0) change.atime = (v & FATTR.ATIME_NOW) !== 0 ? 'now' : a.atime;
    if ((v & FATTR.MTIME) !== 0) change.mtime = (v & FATTR.MTIME_NOW) !== 0 ? 'now' : a.mtime;
    if ((v & FATTR.CTIME) !== 0) change.ctime = a.ctime;
    if (Object.keys(change).length === 0 && (v & FATTR.KILL_SUIDGID) === 0) return this.fs.getattr(ino);
    // HANDLE_KILLPRIV_V2: a truncation that asks for it, and every chown of a non-directory,
    // clears setuid (and setgid with group execute) and file capabilities.
    const chown = (v & (FATTR.UID | FATTR.GID)) !== 0;
    if ((v & FATTR.KILL_SUIDGID) !== 0 || chown) {
      const cleared = this.killPriv(ino, change.mode, (v & FATTR.KILL_SUIDGID) !== 0 ? caller : undefined);
      if (cleared !== undefined) change.mode = cleared;
      if (Object.keys(change).length === 0) return this.fs.getattr(ino);
    }
    // The library keeps an access ACL in step with a new mode (posix_acl_chmod).
    return this.fs.setattr(ino, change);
  }

  /**
   * Clear setuid, setgid-with-group-execute and security.capability of a non-directory.
   * With `mode` (a mode about to be set), returns it cleared instead of setting it;
   * otherwise sets the cleared mode when it changed.
   */
  private killPriv(ino: number, mode?: number, caller?: { readonly uid: number; readonly gid: number }): number | undefined {
    const st = this.fs.getattr(ino);
    if (st.kind === 'directory') return mode;
    if (this.fs.tryGetxattrInode(ino, CAPS) !== undefined) this.fs.removexattrInode(ino, CAPS);
    const base = mode ?? st.mode & 0o7777;
    let cleared = base & ~S_ISUID;
    // setgid goes with group execute, or (as the VFS does) when the caller is not in the
    // file's group: the request carries only its primary group, so that is what counts.
    if ((cleared & S_IXGRP) !== 0 || (caller !== undefined && caller.uid !== 0 && caller.gid !== st.gid)) cleared &= ~S_ISGID;
    if (mode !== undefined) return cleared;
    if (cleared !== base) {
      this.fs.setattr(ino, { mode: cleared });
      // The kernel caches the mode and does not expect it to change on a write: tell it
      // (after the reply, see `handle`).
      this.staleAttrs.push(ino);
    }
    return undefined;
  }

  /** Answer a size probe (size 0), ERANGE if too small, else the bytes. */
  private sized(reply: Reply, bytes: Uint8Array, size: number): void {
    if (size === 0) reply.replyXattrSize(bytes.length);
    else if (size < bytes.length) reply.replyError('ERANGE');
    else reply.replyData(bytes);
  }

  private attr(st: Stat): FuseAttr {
    const owner = this.options.owner;
    return {
      ino: st.ino,
      size: st.size,
      blocks: st.blocks,
      atime: st.atime,
      mtime: st.mtime,
      ctime: st.ctime,
      mode: st.mode,
      nlink: st.nlink,
      uid: owner?.uid ?? st.uid,
      gid: owner?.gid ?? st.gid,
      rdev: encodeDevice(st.rdevMajor, st.rdevMinor),
      blksize: st.blksize,
    };
  }

  private statx(st: Stat): FuseStatx {
    const owner = this.options.owner;
    // One object shape whether or not there is a birth time (the mask says which): a
    // spread adding btime to a 19-property object took V8 11's slow path (~2.5 us in a
    // microbenchmark; through a mount, STATX cost the server ~8 us less without it).
    return {
      mask: StatxMask.BASIC_STATS | (st.birthtime === undefined ? 0 : StatxMask.BTIME),
      blksize: st.blksize,
      attributes: 0,
      nlink: st.nlink,
      uid: owner?.uid ?? st.uid,
      gid: owner?.gid ?? st.gid,
      mode: st.mode,
      ino: st.ino,
      size: st.size,
      blocks: st.blocks,
      attributesMask: 0,
      atime: st.atime,
      ctime: st.ctime,
      mtime: st.mtime,
      rdevMajor: st.rdevMajor,
      rdevMinor: st.rdevMinor,
      devMajor: 0,
      devMinor: 0,
      btime: st.birthtime ?? NO_BIRTH_TIME,
    };
  }

  /**
   * How long the kernel may keep a name of directory `parent`. Not at all in a
   * casefolded directory: the kernel's dentry cache compares names exactly, so a name
   * it cached ("foo", or a negative "foo") would outlive a change made through another
   * spelling ("FOO" unlinked, or created).
   */
  private entryTimeoutIn(parent: number): number {
    return this.fs.foldsNames(parent) ? 0 : this.options.entryTimeout;
  }

  /**
   * The entry of `ino` under directory `parent` (`entryTimeout`: entryTimeoutIn(parent),
   * if known; `cache`: keep the decoded inode in the inode cache).
   */
  private entry(ino: number, parent: number, entryTimeout = this.entryTimeoutIn(parent), cache = true): EntryOut {
    const st = this.fs.getattr(ino, { cache });
    return {
      nodeid: toNodeid(ino),
      generation: st.generation,
      entryTimeout,
      attrTimeout: this.options.attrTimeout,
      attr: this.attr(st),
    };
  }

  /**
   * One READDIR(PLUS) reply: entries from `cookie` on, as many as fit in `size` bytes.
   *
   * Entries that share a `next` cookie (a run of equal hash keys in an htree directory,
   * see fs/readdir-cookie.ts) go into one reply together: a READDIR resumed from that
   * cookie continues after the whole run, so a run cut in two would lose its tail. A run
   * that does not fit goes into the next reply instead. Only a run larger than a whole
   * reply (a page holds 100+ short names; it takes that many names with one 51-bit hash
   * key, i.e. a crafted or damaged directory) is cut: the reply holds what fits and the
   * rest of the run is not listed. (The kernel can still cut a run itself when the
   * caller's getdents buffer fills in the middle of a reply: it then resumes from the
   * last entry it passed on, after the run.)
   */
  private readdir(ino: number, cookie: number, size: number, plus: boolean): DirentPacker {
    const packer = new DirentPacker(size);
    const entryTimeout = plus ? this.entryTimeoutIn(ino) : 0;
    let run: DirEntryInfo[] = [];
    let runBytes = 0;
    // Adds the run; false when the reply is full (the run fits only in a later one).
    const flush = (): boolean => {
      if (packer.length + runBytes > size && packer.count > 0) return false;
      for (const e of run) if (!this.addDirent(packer, e, ino, plus, entryTimeout)) return false;
      run = [];
      runBytes = 0;
      return true;
    };
    for (const e of this.fs.readdirInode(ino, cookie)) {
      if (run.length > 0 && e.next !== (run[0] as DirEntryInfo).next && !flush()) return packer;
      run.push(e);
      runBytes += direntSize(e.rawName.length, plus);
      // A run that cannot fit: stop reading it (a hostile run may be the whole directory).
      if (packer.length + runBytes > size) {
        flush();
        return packer;
      }
    }
    flush();
    return packer;
  }

  /** Pack one entry (with its lookup reply for READDIRPLUS); false when it does not fit. */
  private addDirent(packer: DirentPacker, e: DirEntryInfo, dirIno: number, plus: boolean, entryTimeout: number): boolean {
    if (!plus) return packer.add({ ino: e.ino, off: e.next, type: DIRENT_TYPE[e.kind], name: e.rawName });
    const dot = isDotName(e.rawName);
    let entry: EntryOut = { nodeid: 0, generation: 0, entryTimeout: 0, attrTimeout: 0, attr: EMPTY_ATTR };
    if (!dot) {
      try {
        // The kernel keeps these attributes for the entry timeout and rarely asks for
        // the inode again soon: a listing does not churn the inode cache.
        entry = this.entry(e.ino, dirIno, entryTimeout, false);
      } catch (error) {
        // A broken child must not break the listing: no entry (the kernel looks it up later).
        if (!isFsError(error)) throw error;
      }
    }
    // The type the attributes give (they are what the kernel will believe) when there are any.
    const type = entry.nodeid === 0 ? DIRENT_TYPE[e.kind] : DIRENT_TYPE[kindOfMode(entry.attr.mode)];
    const added = packer.addPlus({ ino: e.ino, off: e.next, type, name: e.rawName }, entry);
    // A walk (find, du, ls -R) lists the subdirectories next: the device fetches their
    // blocks meanwhile, side by side, instead of one synchronous miss per directory.
    if (added && entry.nodeid !== 0 && type === DIRENT_TYPE.directory) this.fs.prefetchBlocks(e.ino);
    return added;
  }
}
