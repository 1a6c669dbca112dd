/**
 * The one error type of ext4ts. Every layer throws `FsError` with an errno-style
 * `code`; the FUSE layer maps `code` to the kernel's errno through `ERRNO`, the CLI
 * prints `message`. Corruption (`EUCLEAN`), I/O failure (`EIO`) and "unsupported"
 * (`EOPNOTSUPP`) are distinct codes.
 */

/** Linux errno numbers for the codes ext4ts uses (x86_64/generic values). */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EMFILE: 24,
  ENOTTY: 25,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EMLINK: 31,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
  EDQUOT: 122,
  EUCLEAN: 117,
  ENOKEY: 126,
} as const;

export type Errno = keyof typeof ERRNO;

/** Where an error happened: whatever of these the thrower knows. */
export interface ErrorContext {
  /** On-disk structure involved, e.g. "superblock", "extent block", "directory block". */
  readonly structure?: string;
  /** First block of the range involved (filesystem block number). */
  readonly block?: number;
  /** Number of blocks in the range involved. */
  readonly count?: number;
  /** Byte offset on the device or in a file. */
  readonly offset?: number;
  /** Inode number involved. */
  readonly inode?: number;
  /** Path involved (path-level API and CLI). */
  readonly path?: string;
  /** Name of the channel/device involved. */
  readonly device?: string;
}

const KEEP_STACKS = process.env['EXT4TS_STACKS'] === '1';

export class FsError extends Error {
  readonly code: Errno;
  readonly errno: number;
  readonly context: ErrorContext;

  constructor(code: Errno, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    // An FsError is an answer (ENOENT for a name looked up, ENODATA for an xattr probed),
    // thrown on hot paths: capturing a stack trace would cost more than the work. Set
    // EXT4TS_STACKS=1 to have them when debugging.
    const limit = Error.stackTraceLimit;
    if (!KEEP_STACKS) Error.stackTraceLimit = 0;
    super(message, options);
    Error.stackTraceLimit = limit;
    this.name = 'FsError';
    this.code = code;
    this.errno = ERRNO[code];
    this.context = context;
  }
}

/** A corrupted on-disk structure: EUCLEAN naming the structure and where it is. */
export function corrupted(structure: string, what: string, context: Omit<ErrorContext, 'structure'> = {}): FsError {
  const where = describeWhere(context);
  return new FsError('EUCLEAN', `corrupted ${structure}${where}: ${what}`, { ...context, structure });
}

function describeWhere(context: ErrorContext): string {
  const parts: string[] = [];
  if (context.inode !== undefined) parts.push(`inode ${context.inode}`);
  if (context.block !== undefined) parts.push(`block ${context.block}`);
  if (context.offset !== undefined) parts.push(`offset ${context.offset}`);
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}

/** True for errors ext4ts raised on purpose (as opposed to bugs). */
export function isFsError(error: unknown): error is FsError {
  return error instanceof FsError;
}

/** Node's system errors (fs.readSync etc.) carry a string `code`; map them to FsError. */
export function fromSystemError(error: unknown, message: string, context: ErrorContext = {}): FsError {
  if (error instanceof FsError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const known = typeof code === 'string' && code in ERRNO ? (code as Errno) : 'EIO';
  const detail = error instanceof Error ? error.message : String(error);
  return new FsError(known, `${message}: ${detail}`, context, { cause: error });
}

const nameDecoder = new TextDecoder('utf-8', { fatal: false });

/**
 * A name from the image (raw bytes) as it goes into an error message: UTF-8 decoded,
 * in double quotes, with every control character (C0, DEL and C1) escaped, so that a
 * hostile name can neither break the one-line message nor reach a terminal raw.
 */
export function quoteName(bytes: Uint8Array): string {
  return quoteText(nameDecoder.decode(bytes));
}

/**
 * A string from the image (an xattr name, say) quoted for a message as quoteName does:
 * JSON string syntax, so control characters (C0 and C1) come out escaped.
 */
export function quoteText(text: string): string {
  return JSON.stringify(text).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
