/**
 * Inline data (Documentation/filesystems/ext4/inlinedata.rst): an inode with
 * EXT4_INLINE_DATA_FL keeps its content in the inode itself: the first 60 bytes in i_block,
 * the rest in the value of the in-inode extended attribute "system.data" (name index 7,
 * name "data"). The attribute exists, possibly empty, on every inline-data inode.
 *
 * For a directory the same bytes hold the parent inode number (4 bytes) and directory
 * entries; this module only deals with the bytes.
 */
import { corrupted } from '../errors.js';
import {
  XATTR_INDEX,
  inodeXattrCapacity,
  xattrEntryLength,
  xattrSpaceNeeded,
  type InodeXattrLayout,
  type XattrEntry,
  type XattrName,
} from './xattr.js';

/** Bytes of content kept in i_block (EXT4_MIN_INLINE_DATA_SIZE). */
export const INLINE_DATA_IBLOCK_SIZE = 60;

/** The name of the attribute holding the rest of the content: "system.data". */
export const INLINE_DATA_XATTR: XattrName = { index: XATTR_INDEX.SYSTEM, name: new Uint8Array([0x64, 0x61, 0x74, 0x61]) };

/** True for the "system.data" entry. */
export function isInlineDataXattr(e: XattrName): boolean {
  const n = INLINE_DATA_XATTR.name;
  return e.index === INLINE_DATA_XATTR.index && e.name.length === n.length && e.name.every((b, i) => b === n[i]);
}

/** The two stored parts of inline content. */
export interface InlineDataParts {
  /** The 60 bytes to store in i_block (content, zero-padded). */
  readonly iBlock: Uint8Array;
  /** The value of "system.data": the content beyond the first 60 bytes (empty when none). */
  readonly dataValue: Uint8Array;
}

export interface InlineDataContext {
  /** Inode number, for error messages. */
  readonly inode?: number;
}

/** Bytes of content an inline inode holds with a "system.data" value of `dataValueSize` bytes. */
export function inlineDataCapacity(dataValueSize: number): number {
  return INLINE_DATA_IBLOCK_SIZE + dataValueSize;
}

/**
 * The content of an inline-data inode: `size` (i_size) bytes taken from i_block (its first
 * 60 bytes) and then from the "system.data" value found among the inode's in-inode xattrs.
 * Throws EUCLEAN when "system.data" is missing or stored in an EA inode, or when i_size is
 * larger than what the inode holds.
 */
export function assembleInlineData(iBlock: Uint8Array, inodeXattrs: readonly XattrEntry[], size: number, ctx: InlineDataContext = {}): Uint8Array {
  const where = ctx.inode !== undefined ? { inode: ctx.inode } : {};
  if (iBlock.length < INLINE_DATA_IBLOCK_SIZE) throw new RangeError(`i_block of ${iBlock.length} bytes is shorter than ${INLINE_DATA_IBLOCK_SIZE}`);
  const entry = inodeXattrs.find(isInlineDataXattr);
  if (entry === undefined) throw corrupted('inline data', 'no system.data attribute', where);
  if (entry.value.kind !== 'bytes') throw corrupted('inline data', 'system.data is stored in an EA inode', where);
  const value = entry.value.bytes;
  const capacity = inlineDataCapacity(value.length);
  if (!Number.isSafeInteger(size) || size < 0) throw corrupted('inline data', `invalid i_size ${size}`, where);
  if (size > capacity) throw corrupted('inline data', `i_size ${size} exceeds the ${capacity} bytes stored inline`, where);
  const out = new Uint8Array(size);
  const head = Math.min(size, INLINE_DATA_IBLOCK_SIZE);
  out.set(iBlock.subarray(0, head), 0);
  if (size > head) out.set(value.subarray(0, size - head), head);
  return out;
}

/** Split content into the i_block bytes and the "system.data" value, as the kernel and e2fsprogs store it. */
export function splitInlineData(content: Uint8Array): InlineDataParts {
  const iBlock = new Uint8Array(INLINE_DATA_IBLOCK_SIZE);
  iBlock.set(content.subarray(0, INLINE_DATA_IBLOCK_SIZE));
  const dataValue = content.length > INLINE_DATA_IBLOCK_SIZE ? content.slice(INLINE_DATA_IBLOCK_SIZE) : new Uint8Array(0);
  return { iBlock, dataValue };
}

/** The "system.data" entry for a value, ready for encodeInodeXattrs (hash computed there). */
export function inlineDataXattrEntry(dataValue: Uint8Array): XattrEntry {
  return { index: INLINE_DATA_XATTR.index, name: INLINE_DATA_XATTR.name.slice(), value: { kind: 'bytes', bytes: dataValue }, hash: 0 };
}

/**
 * Largest i_size an inode can hold inline next to its other in-inode xattrs (which must not
 * include "system.data"); null when not even an empty "system.data" fits.
 */
export function maxInlineDataSize(layout: InodeXattrLayout, otherInodeXattrs: readonly XattrEntry[]): number | null {
  let room = inodeXattrCapacity(layout) - 4 - xattrEntryLength(INLINE_DATA_XATTR.name.length);
  for (const e of otherInodeXattrs) room -= xattrSpaceNeeded(e);
  if (room < 0) return null;
  return INLINE_DATA_IBLOCK_SIZE + Math.floor(room / 4) * 4;
}
