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
 */
import { FsError, ERRNO, isFsError } from '../errors.js';
import type { Ext4 } from '../fs/ext4.js';
import { kindOfMode, type Stat } from '../fs/types.js';
import {
  AccessMask,
  DirentPacker,
  DirentType,
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
import { decodeInHeader } from './abi.js';

const ROOT_NODEID = 1;
const EXT4_ROOT = 2;

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
}

/** INIT flags we ask for on a read-only mount. */
const WANT =
  InitFlag.ASYNC_READ |
  InitFlag.BIG_WRITES |
  InitFlag.MAX_PAGES |
  InitFlag.PARALLEL_DIROPS |
  InitFlag.DO_READDIRPLUS |
  InitFlag.READDIRPLUS_AUTO |
  InitFlag.CACHE_SYMLINKS |
  InitFlag.POSIX_ACL |
  InitFlag.ATOMIC_O_TRUNC |
  InitFlag.HAS_EXPIRE_ONLY;

const O_ACCMODE = 3;
const O_TRUNC = 0o1000;

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

  constructor(
    readonly fs: Ext4,
    private readonly send: Send,
    private readonly options: SessionOptions,
  ) {}

  /** Serve one message as read from /dev/fuse. */
  handle(bytes: Uint8Array): void {
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
    }
  }

  private dispatch(request: FuseRequest, reply: Reply): void {
    const ino = toIno(request.header.nodeid);
    switch (request.op) {
      case 'INIT': {
        const result = negotiateInit(request.args, { want: WANT, maxWrite: this.options.maxRead, maxPages: Math.ceil(this.options.maxRead / 4096) });
        if (result.kind === 'accepted') this.protocol = result.protocol;
        reply.replyInit(result.reply);
        return;
      }
      case 'DESTROY':
        this.destroyed = true;
        reply.replyEmpty();
        return;
      case 'LOOKUP': {
        let child: number;
        try {
          child = this.fs.lookup(ino, request.args.name);
        } catch (error) {
          if (isFsError(error) && error.code === 'ENOENT' && this.options.entryTimeout > 0) {
            // A negative entry the kernel may cache: nothing else changes a read-only image.
            reply.replyEntry({ nodeid: 0, generation: 0, entryTimeout: this.options.entryTimeout, attrTimeout: 0, attr: EMPTY_ATTR });
            return;
          }
          throw error;
        }
        reply.replyEntry(this.entry(child));
        return;
      }
      case 'GETATTR':
        reply.replyAttr({ attrTimeout: this.options.attrTimeout, attr: this.attr(this.fs.getattr(ino)) });
        return;
      case 'STATX':
        reply.replyStatx({ attrTimeout: this.options.attrTimeout, stat: this.statx(this.fs.getattr(ino)) });
        return;
      case 'READLINK':
        reply.replyData(this.fs.readlinkInode(ino));
        return;
      case 'OPEN': {
        const flags = request.args.flags;
        if ((flags & O_ACCMODE) !== 0 || (flags & O_TRUNC) !== 0) throw new FsError('EROFS', 'read-only mount');
        const st = this.fs.getattr(ino);
        if (st.kind === 'directory') throw new FsError('EISDIR', 'is a directory');
        reply.replyOpen({ fh: 0, openFlags: FOPEN.KEEP_CACHE });
        return;
      }
      case 'OPENDIR': {
        if (this.fs.getattr(ino).kind !== 'directory') throw new FsError('ENOTDIR', 'not a directory');
        reply.replyOpen({ fh: 0, openFlags: FOPEN.KEEP_CACHE | FOPEN.CACHE_DIR });
        return;
      }
      case 'READ': {
        const size = Math.min(request.args.size, this.options.maxRead);
        reply.replyData(this.fs.read(ino, request.args.offset, size));
        return;
      }
      case 'READDIR':
      case 'READDIRPLUS':
        reply.replyDirents(this.readdir(ino, request.args.offset, request.args.size, request.op === 'READDIRPLUS'));
        return;
      case 'FLUSH':
        // Nothing to flush on a read-only mount: ENOSYS makes the kernel stop sending
        // FLUSH at every close (one round trip less per file).
        reply.replyErrno(ERRNO.ENOSYS);
        return;
      case 'RELEASE':
      case 'RELEASEDIR':
      case 'FSYNC':
      case 'FSYNCDIR':
      case 'SYNCFS':
        reply.replyEmpty();
        return;
      case 'STATFS': {
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
        return;
      }
      case 'GETXATTR': {
        const name = new TextDecoder().decode(request.args.name);
        this.sized(reply, this.fs.getxattrInode(ino, name), request.args.size);
        return;
      }
      case 'LISTXATTR': {
        const names = this.fs.listxattrInode(ino);
        const bytes = new TextEncoder().encode(names.map((n) => `${n}\0`).join(''));
        this.sized(reply, bytes, request.args.size);
        return;
      }
      case 'ACCESS':
        if ((request.args.mask & AccessMask.W_OK) !== 0) throw new FsError('EROFS', 'read-only mount');
        this.fs.getattr(ino);
        reply.replyEmpty();
        return;
      case 'LSEEK': {
        const { offset, whence } = request.args;
        if (whence === Whence.DATA || whence === Whence.HOLE) {
          reply.replyLseek(this.fs.seek(ino, offset, whence === Whence.DATA ? 'data' : 'hole'));
          return;
        }
        throw new FsError('EINVAL', 'only SEEK_DATA and SEEK_HOLE reach the filesystem');
      }
      case 'SETATTR':
      case 'SYMLINK':
      case 'MKNOD':
      case 'MKDIR':
      case 'UNLINK':
      case 'RMDIR':
      case 'RENAME':
      case 'RENAME2':
      case 'LINK':
      case 'WRITE':
      case 'CREATE':
      case 'SETXATTR':
      case 'REMOVEXATTR':
      case 'FALLOCATE':
      case 'COPY_FILE_RANGE':
      case 'COPY_FILE_RANGE_64':
        throw new FsError('EROFS', 'read-only mount');
      case 'FORGET':
      case 'BATCH_FORGET':
      case 'INTERRUPT':
        return;
      case 'OTHER':
        reply.replyErrno(ERRNO.ENOSYS);
        return;
    }
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
    const base = {
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
    };
    return st.birthtime === undefined ? base : { ...base, btime: st.birthtime };
  }

  private entry(ino: number): EntryOut {
    const st = this.fs.getattr(ino);
    return {
      nodeid: toNodeid(ino),
      generation: st.generation,
      entryTimeout: this.options.entryTimeout,
      attrTimeout: this.options.attrTimeout,
      attr: this.attr(st),
    };
  }

  private readdir(ino: number, cookie: number, size: number, plus: boolean): DirentPacker {
    const packer = new DirentPacker(size);
    for (const e of this.fs.readdirInode(ino, cookie)) {
      const dot = e.rawName.length <= 2 && e.rawName[0] === 0x2e && (e.rawName.length === 1 || e.rawName[1] === 0x2e);
      const dirent = { ino: e.ino, off: e.next, type: DIRENT_TYPE[e.kind], name: e.rawName };
      if (!plus) {
        if (!packer.add(dirent)) break;
        continue;
      }
      let entry: EntryOut = { nodeid: 0, generation: 0, entryTimeout: 0, attrTimeout: 0, attr: EMPTY_ATTR };
      if (!dot) {
        try {
          entry = this.entry(e.ino);
        } catch (error) {
          // A broken child must not break the listing: no entry (the kernel looks it up later).
          if (!isFsError(error)) throw error;
        }
      }
      if (!packer.addPlus(entry.nodeid === 0 ? dirent : { ...dirent, type: DIRENT_TYPE[kindOfMode(entry.attr.mode)] }, entry)) break;
    }
    return packer;
  }
}
