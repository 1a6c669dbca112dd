/**
 * fscrypt without the key (Documentation/filesystems/fscrypt.rst, "Access semantics"):
 * what the kernel shows of an encrypted directory entry or symlink target when no key is
 * present, so that ext4ts lists an encrypted tree under the names a kernel mount shows.
 *
 * A stored name is ciphertext, at least 16 bytes (names are padded). Its "no-key name" is
 * the unpadded base64url encoding of
 *
 *     le32 hash, le32 minor_hash        the directory hash the kernel filed the entry under
 *                                       (0, 0 where it lists in record order)
 *     ciphertext[0..149]                 all of it when it is at most 149 bytes, else
 *     sha256(ciphertext[149..])          its first 149 bytes and the digest of the rest
 *
 * ('.' and '..' are stored in plain text and shown as they are.) An encrypted symlink
 * stores `le16 length` and that many bytes of ciphertext; its target reads as the no-key
 * name of the ciphertext with hashes 0, 0.
 */
import { corrupted, type ErrorContext } from '../errors.js';
import { isDotName } from './dirent.js';
import { sha256 } from '../lazy-crypto.js';

/** FSCRYPT_FNAME_MIN_MSG_LEN: encrypted names are padded to at least this many bytes. */
export const FSCRYPT_MIN_NAME = 16;
/** Ciphertext bytes a no-key name carries before it switches to a digest of the rest. */
export const NOKEY_NAME_BYTES = 149;
/** Bytes of the digest of a long name's rest (SHA-256). */
const NOKEY_DIGEST_BYTES = 32;
/** Bytes of the two hash words that open a no-key name. */
const NOKEY_HASH_BYTES = 8;

/**
 * The name the kernel shows without the key for stored name `stored` of an encrypted
 * directory, filed under `hash`/`minorHash`. An EUCLEAN error (for `structure` at
 * `context`) when the ciphertext is shorter than any encrypted name can be.
 */
export function noKeyName(stored: Uint8Array, hash: number, minorHash: number, structure: string, context: ErrorContext): Uint8Array {
  if (isDotName(stored)) return stored;
  if (stored.length < FSCRYPT_MIN_NAME) {
    throw corrupted(structure, `encrypted name of ${stored.length} bytes is shorter than the ${FSCRYPT_MIN_NAME} bytes of any fscrypt ciphertext`, context);
  }
  const long = stored.length > NOKEY_NAME_BYTES;
  const raw = Buffer.alloc(NOKEY_HASH_BYTES + (long ? NOKEY_NAME_BYTES + NOKEY_DIGEST_BYTES : stored.length));
  raw.writeUInt32LE(hash >>> 0, 0);
  raw.writeUInt32LE(minorHash >>> 0, 4);
  raw.set(long ? stored.subarray(0, NOKEY_NAME_BYTES) : stored, NOKEY_HASH_BYTES);
  if (long) raw.set(sha256(stored.subarray(NOKEY_NAME_BYTES)), NOKEY_HASH_BYTES + NOKEY_NAME_BYTES);
  return Buffer.from(raw.toString('base64url'), 'latin1');
}

/**
 * The ciphertext of an encrypted symlink's target from its stored bytes (`le16 length`,
 * then the ciphertext; at most `room` bytes in all: i_block's 60, or a data block). An
 * EUCLEAN error when the length is 0 or runs past the room.
 */
export function encryptedSymlinkCiphertext(stored: Uint8Array, room: number, context: ErrorContext): Uint8Array {
  const limit = Math.min(room, stored.length);
  if (limit < 3) throw corrupted('symlink', `encrypted target has ${limit} byte${limit === 1 ? "" : "s"}, too few for a length and any ciphertext`, context);
  const length = (stored[0] as number) | ((stored[1] as number) << 8);
  if (length === 0) throw corrupted('symlink', 'encrypted target of length 0', context);
  if (2 + length > limit) throw corrupted('symlink', `encrypted target of ${length} bytes does not fit in its ${limit - 2}`, context);
  return stored.subarray(2, 2 + length);
}

/** The target the kernel shows without the key for an encrypted symlink stored as `stored` (see encryptedSymlinkCiphertext). */
export function noKeySymlinkTarget(stored: Uint8Array, room: number, context: ErrorContext): Uint8Array {
  return noKeyName(encryptedSymlinkCiphertext(stored, room, context), 0, 0, 'symlink', context);
}
