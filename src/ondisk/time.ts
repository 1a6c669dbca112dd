/**
 * Inode timestamps: (seconds, nanoseconds) <-> the on-disk 32-bit seconds field and
 * its optional 32-bit `*_extra` companion.
 *
 * Layout (Documentation/filesystems/ext4/inodes.rst, "Inode Timestamps"):
 * - the 32-bit field holds the low 32 bits of the seconds, read as a *signed* value,
 *   so without an extra field the range is 1901-12-13 .. 2038-01-19;
 * - the extra field holds 2 epoch bits (bits 0-1) and 30 bits of nanoseconds (bits 2-31):
 *   `seconds = signed32(lo) + (extra & 3) * 2^32`, `nanoseconds = extra >>> 2`.
 *   The range becomes -2^31 .. 2^34 - 2^31 - 1 (1901-12-13 .. 2446-05-10).
 *
 * Seconds are JavaScript numbers (exact: the range stays far below 2^53). Multiplications
 * by 2^32 are used instead of shifts, which would truncate to 32 bits.
 */
import { FsError } from '../errors.js';

/** A point in time as ext4 stores it: seconds since the Unix epoch (may be negative) plus nanoseconds. */
export interface Timestamp {
  readonly seconds: number;
  /** 0..999_999_999 for well-formed data; a hostile extra field can decode up to 2^30 - 1. */
  readonly nanoseconds: number;
}

const TWO_32 = 0x1_0000_0000;

/** Mask of the epoch bits in an `*_extra` field. */
export const EXTRA_EPOCH_MASK = 0x3;
/** Number of epoch bits below the nanoseconds in an `*_extra` field. */
export const EXTRA_EPOCH_BITS = 2;
/** Largest nanoseconds value the 30-bit field can hold (valid data stays below 10^9). */
export const EXTRA_NSEC_MAX = 0x3fff_ffff;

/** Earliest second representable, with or without an extra field: 1901-12-13T20:45:52Z. */
export const TIME_MIN_SECONDS = -0x8000_0000;
/** Latest second representable by the 32-bit field alone: 2038-01-19T03:14:07Z. */
export const TIME_MAX_SECONDS_LEGACY = 0x7fff_ffff;
/** Latest second representable with an extra field: 2446-05-10T22:38:55Z (2^34 - 1 - 2^31). */
export const TIME_MAX_SECONDS_EXTRA = 4 * TWO_32 - 1 - 0x8000_0000;

/** A 32-bit field's value (0..2^32-1) read as signed. */
function signed32(value: number): number {
  return value | 0;
}

/**
 * Decode a timestamp from its 32-bit field and, when the inode holds one, its extra field.
 * Without an extra field the seconds are the signed 32-bit value and nanoseconds are 0.
 */
export function decodeTime(lo: number, extra?: number): Timestamp {
  return { seconds: decodeTimeSeconds(lo, extra), nanoseconds: decodeTimeNanoseconds(extra) };
}

/** The seconds of decodeTime (for callers that keep no Timestamp object). */
export function decodeTimeSeconds(lo: number, extra?: number): number {
  const base = signed32(lo);
  if (extra === undefined) return base;
  const epoch = extra & EXTRA_EPOCH_MASK;
  // Epoch 0 (every time before 2038) keeps `base` a small integer: `base + 0 * TWO_32` is
  // a heap number in unoptimized code, which turns the seconds field of every Timestamp
  // from small-integer to double and throws away the optimized code that reads them
  // (decodeInode, statOf and their callers were compiled twice in a tree walk).
  return epoch === 0 ? base : base + epoch * TWO_32;
}

/** The nanoseconds of decodeTime. */
export function decodeTimeNanoseconds(extra?: number): number {
  return extra === undefined ? 0 : extra >>> EXTRA_EPOCH_BITS;
}

/** The 32-bit field and extra field for a timestamp; throws EOVERFLOW outside the representable range. */
export function encodeTime(time: Timestamp): { readonly lo: number; readonly extra: number } {
  const { seconds, nanoseconds } = time;
  checkNanoseconds(nanoseconds);
  if (!Number.isInteger(seconds) || seconds < TIME_MIN_SECONDS || seconds > TIME_MAX_SECONDS_EXTRA) {
    throw new FsError('EOVERFLOW', `timestamp ${seconds}s is outside the range ext4 can store (${TIME_MIN_SECONDS}..${TIME_MAX_SECONDS_EXTRA})`);
  }
  const lo = ((seconds % TWO_32) + TWO_32) % TWO_32;
  const epoch = (seconds - signed32(lo)) / TWO_32;
  return { lo, extra: ((nanoseconds * 4) + epoch) >>> 0 };
}

/**
 * The 32-bit field alone (inodes without the extra field): nanoseconds are dropped, the
 * granularity being one second; seconds outside the signed 32-bit range throw EOVERFLOW.
 */
export function encodeTimeLegacy(time: Timestamp): number {
  const { seconds } = time;
  checkNanoseconds(time.nanoseconds);
  if (!Number.isInteger(seconds) || seconds < TIME_MIN_SECONDS || seconds > TIME_MAX_SECONDS_LEGACY) {
    throw new FsError('EOVERFLOW', `timestamp ${seconds}s needs an inode with extra timestamp fields (32-bit range ${TIME_MIN_SECONDS}..${TIME_MAX_SECONDS_LEGACY})`);
  }
  return seconds >>> 0;
}

/**
 * Clamp a timestamp into what the inode can store (as the kernel does when it writes
 * times): `extended` = the inode has the field's extra part. Without it, nanoseconds
 * become 0. Non-integer seconds are floored.
 */
export function clampTime(time: Timestamp, extended: boolean): Timestamp {
  const max = extended ? TIME_MAX_SECONDS_EXTRA : TIME_MAX_SECONDS_LEGACY;
  const raw = Number.isNaN(time.seconds) ? 0 : Math.floor(time.seconds);
  const seconds = Math.min(max, Math.max(TIME_MIN_SECONDS, raw));
  if (!extended) return { seconds, nanoseconds: 0 };
  const n = Number.isNaN(time.nanoseconds) ? 0 : Math.floor(time.nanoseconds);
  return { seconds, nanoseconds: Math.min(999_999_999, Math.max(0, n)) };
}

function checkNanoseconds(nanoseconds: number): void {
  if (!Number.isInteger(nanoseconds) || nanoseconds < 0 || nanoseconds > EXTRA_NSEC_MAX) {
    throw new FsError('EINVAL', `timestamp nanoseconds ${nanoseconds} outside 0..${EXTRA_NSEC_MAX}`);
  }
}
