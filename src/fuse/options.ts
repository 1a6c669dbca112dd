/**
 * Mount options: the `-o` comma list of `ext4ts mount`, like mount(8) and fuse2fs.
 */
import { FsError } from '../errors.js';

export type ErrorsBehavior = 'continue' | 'remount-ro' | 'panic';

/** When reads update atime (mount(8)'s atime options). */
export type AtimeMode = 'relatime' | 'strictatime' | 'noatime';

export interface MountOptions {
  /**
   * true: `ro`; false: `rw` was asked for; undefined: neither, read-write when the image
   * can be written (a filesystem that cannot be written is served read-only with a warning).
   */
  readonly readOnly: boolean | undefined;
  /** relatime (default): a read updates atime when it is not newer than mtime/ctime, or a day old. */
  readonly atime: AtimeMode;
  /** Keep atime updates in memory until other changes are written back (or the unmount). */
  readonly lazytime: boolean;
  /** Let users other than the mounter access the mount (kernel allow_other). */
  readonly allowOther: boolean;
  /** Report every file as owned by the mounting user (uid/gid of the server). */
  readonly fakeroot: boolean;
  /** Block cache budget in bytes (undefined = the default, min(32 MiB, RAM/20)). */
  readonly cacheSize: number | undefined;
  /** Periodic flush interval, seconds (0 = off). */
  readonly flushInterval: number;
  readonly errors: ErrorsBehavior;
  /** Byte offset of the filesystem in the image. */
  readonly offset: number;
  /** Seconds the kernel may cache attributes and entries (negative entries too). */
  readonly attrTimeout: number;
  readonly entryTimeout: number;
  /** Trace every request and reply on stderr. */
  readonly debug: boolean;
  /** Largest READ the kernel sends (bytes, a multiple of 4096). */
  readonly maxRead: number;
  /** Don't verify metadata checksums. */
  readonly noChecksums: boolean;
  /** Don't replay a journal that needs recovery (the kernel's noload): serve the device as it is. */
  readonly noLoad: boolean;
  /**
   * Read-write mounts: ask for the kernel's writeback cache (default). Small writes are
   * gathered into large WRITEs, but the kernel then sends a SETATTR for the times at
   * every close of a written file and after every unlink: no_writeback_cache saves those
   * two round trips per file (about 15% on creating and deleting many small files).
   */
  readonly writebackCache: boolean;
  /**
   * Microseconds the server keeps looking for the next request, yielding the CPU
   * between looks, before it sleeps (0: sleep at once). A client sends its next request
   * a few microseconds after a reply; a server that slept must be woken by an interrupt
   * between CPUs, which on a virtual machine costs more than serving the request.
   */
  readonly spinMicros: number;
}

/**
 * Default attribute/entry timeouts, read-only and read-write alike: every change to the
 * image goes through this mount (the image is locked against other writers), so the
 * kernel's caches stay right; the server invalidates what only it changes (atime).
 */
export const DEFAULT_TIMEOUT_RO = 3600;

export const DEFAULT_MOUNT_OPTIONS: MountOptions = {
  readOnly: undefined,
  atime: 'relatime',
  lazytime: false,
  allowOther: false,
  fakeroot: false,
  cacheSize: undefined,
  flushInterval: 30,
  errors: 'continue',
  offset: 0,
  attrTimeout: DEFAULT_TIMEOUT_RO,
  entryTimeout: DEFAULT_TIMEOUT_RO,
  debug: false,
  maxRead: 1 << 20,
  writebackCache: true,
  noChecksums: false,
  noLoad: false,
  spinMicros: 100,
};

/** "32M", "1G", "4096", "512k" -> bytes. */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+)([kKmMgGtT]?)(i?[bB])?$/.exec(text.trim());
  if (m === null) throw new FsError('EINVAL', `invalid ${what} "${text}" (a number with an optional K, M, G or T suffix)`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[(m[2] ?? '').toLowerCase()] ?? 1;
  const value = Number(m[1]) * mult;
  if (!Number.isSafeInteger(value)) throw new FsError('EINVAL', `${what} "${text}" is too large`);
  return value;
}

function parseSeconds(text: string, what: string): number {
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || v < 0) throw new FsError('EINVAL', `invalid ${what} "${text}" (seconds, >= 0)`);
  return v;
}

/** Parse a `-o` list (several lists may be given; later options win). */
export function parseMountOptions(lists: readonly string[]): MountOptions {
  const o: { -readonly [K in keyof MountOptions]: MountOptions[K] } = { ...DEFAULT_MOUNT_OPTIONS };
  for (const list of lists) {
    for (const raw of list.split(',')) {
      const item = raw.trim();
      if (item === '') continue;
      const eq = item.indexOf('=');
      const key = eq < 0 ? item : item.slice(0, eq);
      const value = eq < 0 ? undefined : item.slice(eq + 1);
      const need = (): string => {
        if (value === undefined || value === '') throw new FsError('EINVAL', `mount option "${key}" needs a value (${key}=...)`);
        return value;
      };
      switch (key) {
        case 'ro':
          o.readOnly = true;
          break;
        case 'rw':
          o.readOnly = false;
          break;
        case 'allow_other':
          o.allowOther = true;
          break;
        case 'default_permissions':
          break; // always in force (see kernel-mount.ts)
        case 'no_default_permissions':
          // The kernel turns default_permissions on whenever the server handles POSIX
          // ACLs (FUSE_POSIX_ACL), which ext4ts does; the server checks nothing itself.
          throw new FsError('EINVAL', 'mount option "no_default_permissions" is not supported: the kernel checks permissions (mode bits and POSIX ACLs) on every ext4ts mount');
        case 'fakeroot':
          o.fakeroot = true;
          break;
        case 'writeback_cache':
          o.writebackCache = true;
          break;
        case 'no_writeback_cache':
          o.writebackCache = false;
          break;
        case 'cache_size':
          o.cacheSize = parseSize(need(), 'cache_size');
          break;
        case 'flush_interval':
          o.flushInterval = parseSeconds(need(), 'flush_interval');
          break;
        case 'errors': {
          const v = need();
          if (v !== 'continue' && v !== 'remount-ro' && v !== 'panic') throw new FsError('EINVAL', `errors= must be continue, remount-ro or panic, not "${v}"`);
          o.errors = v;
          break;
        }
        case 'offset':
          o.offset = parseSize(need(), 'offset');
          break;
        case 'attr_timeout':
          o.attrTimeout = parseSeconds(need(), 'attr_timeout');
          break;
        case 'entry_timeout':
          o.entryTimeout = parseSeconds(need(), 'entry_timeout');
          break;
        case 'debug':
          o.debug = true;
          break;
        case 'max_read': {
          const v = parseSize(need(), 'max_read');
          if (v < 4096 || v > 1 << 20 || v % 4096 !== 0) throw new FsError('EINVAL', 'max_read must be a multiple of 4096 from 4K to 1M');
          o.maxRead = v;
          break;
        }
        case 'spin': {
          const text = need();
          const v = Number(text);
          if (!/^\d+$/.test(text) || v > 10_000) throw new FsError('EINVAL', `invalid spin "${text}" (microseconds, 0 to 10000)`);
          o.spinMicros = v;
          break;
        }
        case 'nochecksums':
        case 'no_checksums':
          o.noChecksums = true;
          break;
        case 'noload':
          o.noLoad = true;
          break;
        case 'noatime':
        case 'relatime':
        case 'strictatime':
          o.atime = key;
          break;
        case 'lazytime':
          o.lazytime = true;
          break;
        case 'nolazytime':
          o.lazytime = false;
          break;
        // Accepted for compatibility with mount(8)/fuse2fs; they change nothing here.
        case 'nodiratime':
        case 'nosuid':
        case 'nodev':
        case 'user_xattr':
        case 'acl':
          break;
        default:
          throw new FsError('EINVAL', `unknown mount option "${key}" (see ext4ts mount --help)`);
      }
    }
  }
  return o;
}
