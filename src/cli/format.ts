/** Text formats shared by the commands: mode strings, times, inode flags. */
import type { FileKind, Timestamp } from '../fs/types.js';

const TYPE_CHAR: Readonly<Record<FileKind, string>> = {
  file: '-',
  directory: 'd',
  symlink: 'l',
  'char-device': 'c',
  'block-device': 'b',
  fifo: 'p',
  socket: 's',
  unknown: '?',
};

/** `ls -l`'s ten-character mode string, e.g. `drwxr-xr-t`, `-rwsr-x---`. */
export function modeString(kind: FileKind, mode: number): string {
  const rwx = (shift: number, special: boolean, on: string, off: string): string => {
    const bits = (mode >> shift) & 7;
    const x = (bits & 1) !== 0;
    return `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${special ? (x ? on : off) : x ? 'x' : '-'}`;
  };
  return TYPE_CHAR[kind] + rwx(6, (mode & 0o4000) !== 0, 's', 'S') + rwx(3, (mode & 0o2000) !== 0, 's', 'S') + rwx(0, (mode & 0o1000) !== 0, 't', 'T');
}

const KIND_INDEX: Readonly<Record<FileKind, number>> = {
  file: 0,
  directory: 1,
  symlink: 2,
  'char-device': 3,
  'block-device': 4,
  fifo: 5,
  socket: 6,
  unknown: 7,
};
const modeStrings = new Map<number, string>();

/** `modeString`, remembered per kind and permission bits (all it reads of `mode`). */
export function cachedModeString(kind: FileKind, mode: number): string {
  const key = KIND_INDEX[kind] * 0o10000 + (mode & 0o7777);
  let text = modeStrings.get(key);
  if (text === undefined) {
    text = modeString(kind, mode);
    modeStrings.set(key, text);
  }
  return text;
}

/** stat(1)'s words for a file type. */
export function kindWords(kind: FileKind): string {
  switch (kind) {
    case 'file':
      return 'regular file';
    case 'directory':
      return 'directory';
    case 'symlink':
      return 'symbolic link';
    case 'char-device':
      return 'character special file';
    case 'block-device':
      return 'block special file';
    case 'fifo':
      return 'fifo';
    case 'socket':
      return 'socket';
    case 'unknown':
      return 'unknown type';
  }
}

const p2 = (n: number): string => String(n).padStart(2, '0');
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/** Local-time fields of a moment given in seconds (the process's TZ, as ls and stat use). */
function local(seconds: number): Date {
  return new Date(seconds * 1000);
}

function offsetString(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? '-' : '+';
  const abs = Math.abs(off);
  return `${sign}${p2(Math.floor(abs / 60))}${p2(abs % 60)}`;
}

/** `2026-01-02 03:04:05.123456789 +0000`, stat(1)'s format, in local time. */
export function formatTimestamp(t: Timestamp): string {
  const d = local(t.seconds);
  const ns = String(Math.min(t.nanoseconds, 999_999_999)).padStart(9, '0');
  const year = d.getFullYear();
  const y = year < 0 ? `-${String(-year).padStart(4, '0')}` : String(year).padStart(4, '0');
  return `${y}-${p2(d.getMonth() + 1)}-${p2(d.getDate())} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}.${ns} ${offsetString(d)}`;
}

/** ISO 8601 in UTC with nanoseconds, for JSON: `2026-01-02T03:04:05.123456789Z`. */
export function isoTimestamp(t: Timestamp): string {
  const d = new Date(t.seconds * 1000);
  const ns = String(Math.min(t.nanoseconds, 999_999_999)).padStart(9, '0');
  return `${d.toISOString().slice(0, 19)}.${ns}Z`;
}

/** asctime-like `Thu Nov 26 06:53:39 2026` (what dumpe2fs prints), local time. */
export function ctimeString(seconds: number): string {
  const d = local(seconds);
  return `${DAYS[d.getDay()] ?? '?'} ${MONTHS[d.getMonth()] ?? '?'} ${String(d.getDate()).padStart(2, ' ')} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${d.getFullYear()}`;
}

/** GNU ls's six months (Gregorian year / 2). */
const SIX_MONTHS_SECONDS = 31_556_952 / 2;

/** `ls -l`'s time column: `Mar  4 05:06` when recent, else `Mar  4  2021`. */
export function lsTime(t: Timestamp, now: Timestamp): string {
  const d = local(t.seconds);
  const head = `${MONTHS[d.getMonth()] ?? '?'} ${String(d.getDate()).padStart(2, ' ')}`;
  const when = t.seconds + t.nanoseconds / 1e9;
  const current = now.seconds + now.nanoseconds / 1e9;
  const recent = current - SIX_MONTHS_SECONDS < when && when <= current;
  return recent ? `${head} ${p2(d.getHours())}:${p2(d.getMinutes())}` : `${head}  ${d.getFullYear()}`;
}

/**
 * `lsTime` for many rows against one `now`: its strings depend only on the second and
 * on whether the time is recent, so they are remembered per (second, recent) — files
 * of a tree share few mtimes, and a Date per row was a tenth of a long listing.
 */
export class LsTimes {
  private readonly cache = new Map<number, string>();
  private readonly current: number;

  constructor(private readonly now: Timestamp) {
    this.current = now.seconds + now.nanoseconds / 1e9;
  }

  format(seconds: number, nanoseconds: number): string {
    const when = seconds + nanoseconds / 1e9;
    const recent = this.current - SIX_MONTHS_SECONDS < when && when <= this.current;
    const key = seconds * 2 + (recent ? 1 : 0);
    let text = this.cache.get(key);
    if (text === undefined) {
      if (this.cache.size >= 4096) this.cache.clear();
      text = lsTime({ seconds, nanoseconds }, this.now);
      this.cache.set(key, text);
    }
    return text;
  }
}

/** Now as a Timestamp. */
export function now(): Timestamp {
  const ms = Date.now();
  return { seconds: Math.floor(ms / 1000), nanoseconds: (ms % 1000) * 1e6 };
}

/** Names of ext4 inode flags (i_flags), as chattr/lsattr and the kernel call them. */
const FLAG_NAMES: readonly (readonly [number, string])[] = [
  [0x1, 'secrm'],
  [0x2, 'unrm'],
  [0x4, 'compr'],
  [0x8, 'sync'],
  [0x10, 'immutable'],
  [0x20, 'append'],
  [0x40, 'nodump'],
  [0x80, 'noatime'],
  [0x100, 'dirty'],
  [0x200, 'comprblk'],
  [0x400, 'nocompr'],
  [0x800, 'encrypt'],
  [0x1000, 'index'],
  [0x2000, 'imagic'],
  [0x4000, 'journal_data'],
  [0x8000, 'notail'],
  [0x10000, 'dirsync'],
  [0x20000, 'topdir'],
  [0x40000, 'huge_file'],
  [0x80000, 'extents'],
  [0x100000, 'verity'],
  [0x200000, 'ea_inode'],
  [0x400000, 'eofblocks'],
  [0x800000, 'nocow'],
  [0x1000000, 'snapfile'],
  [0x2000000, 'dax'],
  [0x4000000, 'snapfile_deleted'],
  [0x8000000, 'snapfile_shrunk'],
  [0x10000000, 'inline_data'],
  [0x20000000, 'projinherit'],
  [0x40000000, 'casefold'],
  [0x80000000, 'reserved'],
];

export function flagNames(flags: number): string[] {
  return FLAG_NAMES.filter(([bit]) => ((flags >>> 0) & bit) >>> 0 !== 0).map(([, name]) => name);
}

export function hex(value: number, width = 0): string {
  return `0x${(value >>> 0).toString(16).padStart(width, '0')}`;
}
