/**
 * POSIX ACLs: ext4's on-disk format and the Linux VFS xattr format.
 *
 * ext4 stores the values of "system.posix_acl_access" (name index 2) and
 * "system.posix_acl_default" (index 3) compactly (fs/ext4/acl.h):
 *   header   { le32 a_version = 1 }
 *   short    { le16 e_tag; le16 e_perm }                for USER_OBJ, GROUP_OBJ, MASK, OTHER
 *   long     { le16 e_tag; le16 e_perm; le32 e_id }     for USER, GROUP
 * getxattr/setxattr (getfattr, setfacl) use the VFS format (include/uapi/linux/posix_acl_xattr.h):
 *   header   { le32 a_version = 2 }
 *   entry    { le16 e_tag; le16 e_perm; le32 e_id }     e_id = 0xFFFFFFFF (ACL_UNDEFINED_ID) for non-named entries
 *
 * Decoding on-disk bytes throws EUCLEAN (structure "ACL"); decoding VFS bytes from a
 * caller throws EINVAL (EOPNOTSUPP for an unknown version), as the kernel's setxattr does.
 */
import { FsError, corrupted } from '../errors.js';
import { readU16, readU32, writeU16, writeU32 } from './bytes.js';

export const ACL_USER_OBJ = 0x01;
export const ACL_USER = 0x02;
export const ACL_GROUP_OBJ = 0x04;
export const ACL_GROUP = 0x08;
export const ACL_MASK = 0x10;
export const ACL_OTHER = 0x20;

export type AclTag = typeof ACL_USER_OBJ | typeof ACL_USER | typeof ACL_GROUP_OBJ | typeof ACL_GROUP | typeof ACL_MASK | typeof ACL_OTHER;

/** e_id of entries that name no user or group. */
export const ACL_UNDEFINED_ID = 0xffffffff;

/** Permission bits of an entry. */
export const ACL_READ = 0x04;
export const ACL_WRITE = 0x02;
export const ACL_EXECUTE = 0x01;

/** a_version of the ext4 on-disk format. */
export const EXT4_ACL_VERSION = 1;
/** a_version of the VFS xattr format. */
export const POSIX_ACL_XATTR_VERSION = 2;

const EXT4_HEADER_SIZE = 4;
const EXT4_SHORT_SIZE = 4;
const EXT4_LONG_SIZE = 8;
const VFS_HEADER_SIZE = 4;
const VFS_ENTRY_SIZE = 8;

/** One ACL entry. `id` is the uid/gid for USER/GROUP, ACL_UNDEFINED_ID for the others. */
export interface AclEntry {
  readonly tag: AclTag;
  /** Permission bits as stored (ACL_READ | ACL_WRITE | ACL_EXECUTE when valid). */
  readonly perm: number;
  readonly id: number;
}

export interface AclDecodeContext {
  /** Inode number, for error messages. */
  readonly inode?: number;
}

function isNamed(tag: number): boolean {
  return tag === ACL_USER || tag === ACL_GROUP;
}

function isKnownTag(tag: number): tag is AclTag {
  return tag === ACL_USER_OBJ || tag === ACL_USER || tag === ACL_GROUP_OBJ || tag === ACL_GROUP || tag === ACL_MASK || tag === ACL_OTHER;
}

/**
 * Number of entries the kernel derives from an on-disk ACL's size (ext4_acl_count): the
 * first four entries are taken as short ones, the rest as long; -1 when the size does not fit.
 */
function ext4AclCount(size: number): number {
  const body = size - EXT4_HEADER_SIZE;
  const afterShorts = body - 4 * EXT4_SHORT_SIZE;
  if (afterShorts < 0) return body % EXT4_SHORT_SIZE === 0 ? body / EXT4_SHORT_SIZE : -1;
  return afterShorts % EXT4_LONG_SIZE === 0 ? afterShorts / EXT4_LONG_SIZE + 4 : -1;
}

/**
 * Decode an ext4 on-disk ACL value. An ACL of only the header decodes to [] (the kernel
 * treats it as no ACL). Entries are returned as stored; see validateAcl for the POSIX rules.
 */
export function decodeExt4Acl(value: Uint8Array, ctx: AclDecodeContext = {}): AclEntry[] {
  const where = ctx.inode !== undefined ? { inode: ctx.inode } : {};
  if (value.length < EXT4_HEADER_SIZE) throw corrupted('ACL', `value of ${value.length} bytes is shorter than the header`, where);
  const version = readU32(value, 0);
  if (version !== EXT4_ACL_VERSION) throw corrupted('ACL', `unknown version ${version}`, where);
  const count = ext4AclCount(value.length);
  if (count < 0) throw corrupted('ACL', `size ${value.length} is not a valid ACL size`, where);
  const out: AclEntry[] = [];
  let pos = EXT4_HEADER_SIZE;
  for (let n = 0; n < count; n++) {
    if (pos + EXT4_SHORT_SIZE > value.length) throw corrupted('ACL', 'entries run past the end', { ...where, offset: pos });
    const tag = readU16(value, pos);
    const perm = readU16(value, pos + 2);
    if (!isKnownTag(tag)) throw corrupted('ACL', `unknown tag 0x${tag.toString(16)}`, { ...where, offset: pos });
    if (isNamed(tag)) {
      if (pos + EXT4_LONG_SIZE > value.length) throw corrupted('ACL', 'entries run past the end', { ...where, offset: pos });
      out.push({ tag, perm, id: readU32(value, pos + 4) });
      pos += EXT4_LONG_SIZE;
    } else {
      out.push({ tag, perm, id: ACL_UNDEFINED_ID });
      pos += EXT4_SHORT_SIZE;
    }
  }
  if (pos !== value.length) throw corrupted('ACL', 'entry sizes do not add up to the value size', { ...where, offset: pos });
  return out;
}

/** Encode an ACL in the ext4 on-disk format (ext4_acl_to_disk). Throws EINVAL on an unknown tag. */
export function encodeExt4Acl(acl: readonly AclEntry[]): Uint8Array {
  let size = EXT4_HEADER_SIZE;
  for (const e of acl) {
    checkEntryFields(e);
    size += isNamed(e.tag) ? EXT4_LONG_SIZE : EXT4_SHORT_SIZE;
  }
  const out = new Uint8Array(size);
  writeU32(out, 0, EXT4_ACL_VERSION);
  let pos = EXT4_HEADER_SIZE;
  for (const e of acl) {
    writeU16(out, pos, e.tag);
    writeU16(out, pos + 2, e.perm);
    if (isNamed(e.tag)) {
      writeU32(out, pos + 4, e.id);
      pos += EXT4_LONG_SIZE;
    } else {
      pos += EXT4_SHORT_SIZE;
    }
  }
  return out;
}

/**
 * Decode a VFS-format ACL (as given to setxattr). A header without entries decodes to []
 * (setxattr then removes the ACL). Throws EOPNOTSUPP on another version, EINVAL on a bad
 * size or tag. The id of non-named entries is normalised to ACL_UNDEFINED_ID.
 */
export function decodeVfsAcl(value: Uint8Array): AclEntry[] {
  if (value.length < VFS_HEADER_SIZE) throw new FsError('EINVAL', `ACL of ${value.length} bytes is shorter than its header`);
  const version = readU32(value, 0);
  if (version !== POSIX_ACL_XATTR_VERSION) throw new FsError('EOPNOTSUPP', `unsupported ACL xattr version ${version}`);
  if ((value.length - VFS_HEADER_SIZE) % VFS_ENTRY_SIZE !== 0) throw new FsError('EINVAL', `ACL size ${value.length} is not a whole number of entries`);
  const out: AclEntry[] = [];
  for (let pos = VFS_HEADER_SIZE; pos < value.length; pos += VFS_ENTRY_SIZE) {
    const tag = readU16(value, pos);
    const perm = readU16(value, pos + 2);
    if (!isKnownTag(tag)) throw new FsError('EINVAL', `unknown ACL tag 0x${tag.toString(16)}`);
    out.push({ tag, perm, id: isNamed(tag) ? readU32(value, pos + 4) : ACL_UNDEFINED_ID });
  }
  return out;
}

/** Encode an ACL in the VFS xattr format (posix_acl_to_xattr). Throws EINVAL on an unknown tag. */
export function encodeVfsAcl(acl: readonly AclEntry[]): Uint8Array {
  const out = new Uint8Array(VFS_HEADER_SIZE + acl.length * VFS_ENTRY_SIZE);
  writeU32(out, 0, POSIX_ACL_XATTR_VERSION);
  let pos = VFS_HEADER_SIZE;
  for (const e of acl) {
    checkEntryFields(e);
    writeU16(out, pos, e.tag);
    writeU16(out, pos + 2, e.perm);
    writeU32(out, pos + 4, isNamed(e.tag) ? e.id : ACL_UNDEFINED_ID);
    pos += VFS_ENTRY_SIZE;
  }
  return out;
}

/**
 * Check the POSIX rules as the kernel's posix_acl_valid does: permissions within rwx; one
 * USER_OBJ first, then named USER entries, one GROUP_OBJ, named GROUP entries, at most one
 * MASK (required when there is a named entry), one OTHER last. Named entries need a real id
 * (not ACL_UNDEFINED_ID); like the kernel, their order among themselves is not checked.
 * An empty ACL is valid (it means no ACL). Throws EINVAL.
 */
export function validateAcl(acl: readonly AclEntry[]): void {
  if (acl.length === 0) return;
  // The kernel's state machine: the state names the tag class expected next; 0 = done.
  let state: number = ACL_USER_OBJ;
  let needsMask = false;
  for (const e of acl) {
    checkEntryFields(e);
    if ((e.perm & ~(ACL_READ | ACL_WRITE | ACL_EXECUTE)) !== 0) throw new FsError('EINVAL', `ACL permission 0x${e.perm.toString(16)} has bits beyond rwx`);
    switch (e.tag) {
      case ACL_USER_OBJ:
        if (state !== ACL_USER_OBJ) throw invalidOrder();
        state = ACL_USER;
        break;
      case ACL_USER:
      case ACL_GROUP:
        if (state !== (e.tag === ACL_USER ? ACL_USER : ACL_GROUP)) throw invalidOrder();
        if (e.id === ACL_UNDEFINED_ID) throw new FsError('EINVAL', 'named ACL entry without an id');
        needsMask = true;
        break;
      case ACL_GROUP_OBJ:
        if (state !== ACL_USER) throw invalidOrder();
        state = ACL_GROUP;
        break;
      case ACL_MASK:
        if (state !== ACL_GROUP) throw invalidOrder();
        state = ACL_OTHER;
        break;
      case ACL_OTHER:
        if (state === ACL_OTHER || (state === ACL_GROUP && !needsMask)) {
          state = 0;
          break;
        }
        throw state === ACL_GROUP ? new FsError('EINVAL', 'ACL with named entries lacks a mask entry') : invalidOrder();
    }
  }
  if (state !== 0) throw new FsError('EINVAL', 'ACL lacks an owner, group or other entry');
}

function invalidOrder(): FsError {
  return new FsError('EINVAL', 'ACL entries are missing, repeated or out of order');
}

/**
 * On-disk ACL value -> VFS xattr value (what getxattr returns). Null when the stored ACL has
 * no entries: the kernel then reports no ACL (ENODATA).
 */
export function ext4AclToVfs(value: Uint8Array, ctx: AclDecodeContext = {}): Uint8Array | null {
  const acl = decodeExt4Acl(value, ctx);
  return acl.length === 0 ? null : encodeVfsAcl(acl);
}

/**
 * VFS xattr value (from setxattr) -> on-disk ACL value, validated with validateAcl. Null when
 * the value has no entries: the caller removes the ACL instead.
 */
export function vfsAclToExt4(value: Uint8Array): Uint8Array | null {
  const acl = decodeVfsAcl(value);
  if (acl.length === 0) return null;
  validateAcl(acl);
  return encodeExt4Acl(acl);
}

function checkEntryFields(e: AclEntry): void {
  if (!isKnownTag(e.tag)) throw new FsError('EINVAL', `unknown ACL tag ${String(e.tag)}`);
  if (!Number.isInteger(e.perm) || e.perm < 0 || e.perm > 0xffff) throw new FsError('EINVAL', `invalid ACL permission ${e.perm}`);
  if (!Number.isInteger(e.id) || e.id < 0 || e.id > 0xffffffff) throw new FsError('EINVAL', `invalid ACL id ${e.id}`);
}

/** posix_acl_chmod: the access ACL after chmod to `mode`. */
export function aclChmod(acl: readonly AclEntry[], mode: number): AclEntry[] {
  const hasMask = acl.some((e) => e.tag === ACL_MASK);
  return acl.map((e) => {
    switch (e.tag) {
      case ACL_USER_OBJ:
        return { ...e, perm: (mode >> 6) & 7 };
      case ACL_MASK:
        return { ...e, perm: (mode >> 3) & 7 };
      case ACL_GROUP_OBJ:
        return hasMask ? e : { ...e, perm: (mode >> 3) & 7 };
      case ACL_OTHER:
        return { ...e, perm: mode & 7 };
      default:
        return e;
    }
  });
}
