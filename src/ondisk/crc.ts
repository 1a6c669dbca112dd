/**
 * Checksums used by ext4: CRC32C (metadata_csum) and CRC16 (gdt_csum, uninit_bg).
 *
 * ext4 stores the *raw* CRC32C update: `crc32cRaw(seed, bytes)` continues a running
 * CRC register without the standard pre- and post-inversion (the kernel's
 * `crc32c(crc, p, len)`). The filesystem checksum seed is `crc32cRaw(~0, uuid)`.
 * The standard CRC32C of a message is `~crc32cRaw(~0, message)`.
 *
 * Large inputs use `@node-rs/crc32` (hardware CRC32C); small ones, and any runtime
 * where that native package is unavailable, use the table-driven version below.
 */
import { createRequire } from 'node:module';

type NativeCrc32c = (input: Uint8Array, initialState?: number) => number;

const CRC32C_POLY_REFLECTED = 0x82f63b78;
const CRC16_POLY_REFLECTED = 0xa001;

/** Slicing-by-8 tables for CRC32C (8 x 256 entries). */
const CRC32C_TABLES: Uint32Array = (() => {
  const t = new Uint32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ CRC32C_POLY_REFLECTED : c >>> 1;
    t[i] = c >>> 0;
  }
  for (let i = 0; i < 256; i++) {
    let c = t[i] as number;
    for (let s = 1; s < 8; s++) {
      c = (t[c & 0xff] as number) ^ (c >>> 8);
      t[s * 256 + i] = c >>> 0;
    }
  }
  return t;
})();

const CRC16_TABLE: Uint16Array = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ CRC16_POLY_REFLECTED : c >>> 1;
    t[i] = c;
  }
  return t;
})();

const nativeCrc32c: NativeCrc32c | undefined = (() => {
  try {
    const require = createRequire(import.meta.url);
    const mod = require('@node-rs/crc32') as { crc32c?: NativeCrc32c };
    return typeof mod.crc32c === 'function' ? mod.crc32c : undefined;
  } catch {
    return undefined;
  }
})();

/** Below this many bytes the table version beats the native call overhead. */
const NATIVE_THRESHOLD = 256;

function crc32cRawTable(seed: number, data: Uint8Array, start: number, end: number): number {
  const t = CRC32C_TABLES;
  let crc = seed >>> 0;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const a = crc ^ ((data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24));
    crc =
      (t[7 * 256 + (a & 0xff)] as number) ^
      (t[6 * 256 + ((a >>> 8) & 0xff)] as number) ^
      (t[5 * 256 + ((a >>> 16) & 0xff)] as number) ^
      (t[4 * 256 + (a >>> 24)] as number) ^
      (t[3 * 256 + (data[i + 4] as number)] as number) ^
      (t[2 * 256 + (data[i + 5] as number)] as number) ^
      (t[256 + (data[i + 6] as number)] as number) ^
      (t[data[i + 7] as number] as number);
  }
  for (; i < end; i++) crc = (t[(crc ^ (data[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  return crc >>> 0;
}

/**
 * Continue a raw CRC32C register over `data[start, end)`, as the kernel's
 * `crc32c(seed, data, len)` does (no pre/post inversion).
 */
export function crc32cRaw(seed: number, data: Uint8Array, start = 0, end = data.length): number {
  if (start < 0 || end > data.length || start > end) throw new RangeError(`crc32c range [${start}, ${end}) outside ${data.length} bytes`);
  if (nativeCrc32c !== undefined && end - start >= NATIVE_THRESHOLD) {
    const view = start === 0 && end === data.length ? data : data.subarray(start, end);
    return ~nativeCrc32c(view, ~seed >>> 0) >>> 0;
  }
  return crc32cRawTable(seed, data, start, end);
}

/** Raw CRC32C over the 4 little-endian bytes of a 32-bit value (inode numbers, generations, block numbers). */
export function crc32cRawU32(seed: number, value: number): number {
  const t = CRC32C_TABLES;
  let crc = seed >>> 0;
  for (let k = 0; k < 4; k++) {
    crc = (t[(crc ^ (value >>> (8 * k))) & 0xff] as number) ^ (crc >>> 8);
  }
  return crc >>> 0;
}

/** Standard CRC32C (iSCSI/Castagnoli): check value of "123456789" is 0xe3069283. */
export function crc32c(data: Uint8Array): number {
  return ~crc32cRaw(0xffffffff, data) >>> 0;
}

/** Table-only variant, exported for tests that compare the two implementations. */
export function crc32cRawPortable(seed: number, data: Uint8Array, start = 0, end = data.length): number {
  if (start < 0 || end > data.length || start > end) throw new RangeError(`crc32c range [${start}, ${end}) outside ${data.length} bytes`);
  return crc32cRawTable(seed, data, start, end);
}

/** CRC16 (ANSI, reflected 0xA001) continuing from `seed`, as ext4's gdt_csum uses (seed ~0). */
export function crc16(seed: number, data: Uint8Array, start = 0, end = data.length): number {
  if (start < 0 || end > data.length || start > end) throw new RangeError(`crc16 range [${start}, ${end}) outside ${data.length} bytes`);
  let crc = seed & 0xffff;
  for (let i = start; i < end; i++) crc = ((CRC16_TABLE[(crc ^ (data[i] as number)) & 0xff] as number) ^ (crc >>> 8)) & 0xffff;
  return crc;
}
