/**
 * How the CLI words errors: one line, `ext4ts: WHAT: reason`, never a stack trace.
 *
 * - `FsError`s (the library's) keep their message, except for the plain errno cases
 *   (ENOENT, ENOTDIR, ...) which read like the C library's strerror, as `ls` and `cp` print them.
 * - Node's system errors (from writing the extracted tree) print the strerror text of their code.
 * - Anything else is a bug: `internal error: ...`.
 */
import { FsError } from '../errors.js';

/** strerror(3) texts of the codes the CLI may meet. */
const STRERROR: Readonly<Record<string, string>> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  EIO: 'Input/output error',
  ENXIO: 'No such device or address',
  E2BIG: 'Argument list too long',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  EXDEV: 'Invalid cross-device link',
  ENODEV: 'No such device',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  EMFILE: 'Too many open files',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
  EROFS: 'Read-only file system',
  EMLINK: 'Too many links',
  ERANGE: 'Numerical result out of range',
  ENAMETOOLONG: 'File name too long',
  ENOTEMPTY: 'Directory not empty',
  ELOOP: 'Too many levels of symbolic links',
  ENODATA: 'No data available',
  EOVERFLOW: 'Value too large for defined data type',
  EOPNOTSUPP: 'Operation not supported',
  ENOTSUP: 'Operation not supported',
  EDQUOT: 'Disk quota exceeded',
  EUCLEAN: 'Structure needs cleaning',
  ENOKEY: 'Required key not available',
  EPIPE: 'Broken pipe',
};

/** Library codes whose own message adds nothing to strerror's. */
const PLAIN = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'ELOOP', 'ENAMETOOLONG', 'EEXIST', 'EACCES', 'EPERM']);

export function strerror(code: string): string {
  return STRERROR[code] ?? code;
}

/** A control-character-free rendering of a (possibly binary) path, for messages on one line. */
export function printable(path: string | Uint8Array): string {
  const text = typeof path === 'string' ? path : Buffer.from(path.buffer, path.byteOffset, path.byteLength).toString('utf8');
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f]/g, (c) => {
    const code = c.charCodeAt(0);
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    return `\\${code.toString(8).padStart(3, '0')}`;
  });
}

/** True for an error that Node's fs or child_process raised for a failed system call. */
export function isSystemError(error: unknown): error is Error & { code: string; syscall?: string } {
  if (!(error instanceof Error) || error instanceof FsError) return false;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code);
}

/** The reason part of a message: what went wrong, without the WHAT prefix. */
export function reasonOf(error: unknown, what?: string): string {
  if (error instanceof FsError) {
    if (PLAIN.has(error.code)) return strerror(error.code);
    let message = error.message.replace(/[\r\n]+/g, ' ');
    for (const prefix of [what, error.context.device, error.context.path]) {
      if (prefix !== undefined && prefix !== '' && message.startsWith(`${prefix}: `)) message = message.slice(prefix.length + 2);
    }
    return message;
  }
  if (isSystemError(error)) return strerror(error.code);
  if (error instanceof CliError) return error.message;
  return `internal error: ${error instanceof Error ? error.message.replace(/[\r\n]+/g, ' ') : String(error)}`;
}

/** An error whose message is meant for the user as it is (a failed helper program, say). */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

/** An error about something named (an image, a path): printed as `ext4ts: WHAT: reason`. */
export class Failure extends Error {
  constructor(
    readonly what: string | Uint8Array,
    readonly error: unknown,
  ) {
    super(error instanceof Error ? error.message : String(error));
    this.name = 'Failure';
  }
}

/** Runs `body`; an error it throws becomes a Failure about `what`. */
export function about<T>(what: string | Uint8Array, body: () => T): T {
  try {
    return body();
  } catch (error) {
    throw error instanceof Failure ? error : new Failure(what, error);
  }
}

/** Prints `ext4ts: WHAT: reason` lines on stderr and remembers that something failed. */
export class Reporter {
  failed = false;
  /** Optional hook run before writing (the progress bar clears its line). */
  beforeWrite: (() => void) | undefined;

  error(what: string | Uint8Array | undefined, error: unknown): void {
    if (error instanceof Failure) {
      what = error.what;
      error = error.error;
    }
    this.failed = true;
    const shown = what === undefined ? undefined : printable(what);
    this.line(shown === undefined ? reasonOf(error) : `${shown}: ${reasonOf(error, shown)}`);
  }

  /** A failure with a message of our own. */
  fail(what: string | Uint8Array, reason: string): void {
    this.failed = true;
    this.line(`${printable(what)}: ${reason}`);
  }

  warn(message: string): void {
    this.line(`warning: ${message}`);
  }

  private line(text: string): void {
    this.beforeWrite?.();
    process.stderr.write(`ext4ts: ${text}\n`);
  }
}
