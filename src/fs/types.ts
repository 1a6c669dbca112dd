/** Public value types of the filesystem layer. */
import type { Timestamp } from '../ondisk/time.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from '../ondisk/inode.js';
import { FT } from '../ondisk/dirent.js';

export type { Timestamp } from '../ondisk/time.js';

export type FileKind = 'file' | 'directory' | 'symlink' | 'char-device' | 'block-device' | 'fifo' | 'socket' | 'unknown';

/** What `getattr`/`stat` return: everything `stat(2)` knows, with nanosecond times. */
export interface Stat {
  readonly ino: number;
  readonly kind: FileKind;
  /** Type and permission bits, as st_mode. */
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  /** Bytes. */
  readonly size: number;
  /** Storage used, in 512-byte units (st_blocks). */
  readonly blocks: number;
  /** Preferred I/O size: the filesystem block size. */
  readonly blksize: number;
  /** Device number of a device node (glibc makedev encoding), else 0. */
  readonly rdev: number;
  readonly rdevMajor: number;
  readonly rdevMinor: number;
  readonly atime: Timestamp;
  readonly mtime: Timestamp;
  readonly ctime: Timestamp;
  /** Creation time, where the inode records one. */
  readonly birthtime: Timestamp | undefined;
  /** ext4 inode flags (i_flags). */
  readonly flags: number;
  readonly generation: number;
}

/**
 * What a long listing shows of an inode (`Ext4.describeInode`), in an object the caller
 * may reuse: the attributes of `Stat` that `ls -l` prints, the mtime as two numbers.
 */
export interface InodeListing {
  kind: FileKind;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  /** 512-byte units, as Stat.blocks. */
  blocks: number;
  rdevMajor: number;
  rdevMinor: number;
  mtimeSeconds: number;
  mtimeNanoseconds: number;
  /** A symlink's target bytes; undefined for other kinds. */
  target: Uint8Array | undefined;
  /** Whether the inode has one of the extended attributes asked about. */
  hasXattr: boolean;
}

/** One directory entry. */
export interface DirEntryInfo {
  /** The name as UTF-8 text (invalid bytes become U+FFFD; use `rawName` for the exact bytes). */
  readonly name: string;
  readonly rawName: Uint8Array;
  readonly ino: number;
  /** From the entry's file type byte; 'unknown' without the filetype feature. */
  readonly kind: FileKind;
  /** Cookie to resume reading after this entry. */
  readonly next: number;
}

export interface StatFs {
  readonly blockSize: number;
  /** Fragment size (the cluster size with bigalloc). */
  readonly fragmentSize: number;
  readonly blocks: number;
  readonly freeBlocks: number;
  /** Free blocks available to unprivileged users (free minus reserved). */
  readonly availableBlocks: number;
  readonly files: number;
  readonly freeFiles: number;
  readonly nameMax: number;
}

export function kindOfMode(mode: number): FileKind {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 'file';
    case S_IFDIR:
      return 'directory';
    case S_IFLNK:
      return 'symlink';
    case S_IFCHR:
      return 'char-device';
    case S_IFBLK:
      return 'block-device';
    case S_IFIFO:
      return 'fifo';
    case S_IFSOCK:
      return 'socket';
    default:
      return 'unknown';
  }
}

export function kindOfFileType(fileType: number): FileKind {
  switch (fileType) {
    case FT.REG_FILE:
      return 'file';
    case FT.DIR:
      return 'directory';
    case FT.SYMLINK:
      return 'symlink';
    case FT.CHRDEV:
      return 'char-device';
    case FT.BLKDEV:
      return 'block-device';
    case FT.FIFO:
      return 'fifo';
    case FT.SOCK:
      return 'socket';
    default:
      return 'unknown';
  }
}
