/**
 * The system calls `get` needs that Node.js lacks: mknod (devices, fifos, sockets),
 * lsetxattr, and utimensat with nanoseconds (Node's utimes takes seconds as a double
 * and libuv truncates them to microseconds; BigInt is refused, and times before 1970
 * become the current time).
 *
 * Three backends:
 * - `native`: the project's N-API addon (src/io/native.ts), in this process: lutimens
 *   (utimensat, AT_SYMLINK_NOFOLLOW), mknod, lsetxattr, with Node's lchown and chmod.
 *   Exact to the nanosecond, no child process. Used when the addon is built and
 *   `EXT4TS_PYTHON` is not set.
 * - `python`: one `python3` process per batch runs the calls (os.mknod, os.setxattr,
 *   os.chown, os.chmod, os.utime(ns=...), never following symlinks). Exact to the
 *   nanosecond; thousands of files per process. python3 is on every machine that can
 *   build the project's native addon (node-gyp needs it). `EXT4TS_PYTHON` names the
 *   interpreter; set it empty to use the fallback. Setting it at all (even empty)
 *   picks these helpers over the addon.
 * - `tools`: `mknod`/`mkfifo` per special file (no sockets), `setfattr --restore` per
 *   batch for xattrs, and Node's lchown/chmod/lutimes: times exact to the microsecond only
 *   (libuv truncates), and `touch -d @SECONDS` for times before 1970, which Node's utimes
 *   silently replaces by the current time.
 *
 * Paths are Buffers throughout: names are bytes, not text.
 */
import { spawnSync } from 'node:child_process';
import * as nodefs from 'node:fs';
import { join } from 'node:path';
import type { FileKind, Timestamp } from '../fs/types.js';
import { BackgroundFileWriter, canWriteInBackground, canWriteNewFile, isNativeAvailable, lgetxattr, lsetxattr, lutimens, mknod, writeNewFile } from '../io/native.js';
import { CliError, strerror } from './errors.js';

/** What to set on a path once its content is in place. */
export interface MetaRecord {
  readonly path: Buffer;
  readonly kind: FileKind;
  /** Permission bits (07777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly atime: Timestamp;
  readonly mtime: Timestamp;
  readonly xattrs: readonly (readonly [string, Uint8Array])[];
}

export interface SpecialNode {
  readonly path: Buffer;
  readonly kind: 'char-device' | 'block-device' | 'fifo' | 'socket';
  readonly mode: number;
  readonly major: number;
  readonly minor: number;
}

/** One failed call. */
export interface OpFailure {
  readonly path: Buffer;
  /** What was being done: 'set times', 'set xattr user.x', 'chown', ... */
  readonly op: string;
  /** errno name when known. */
  readonly code: string | undefined;
  readonly message: string;
}

export interface SysOps {
  readonly name: 'native' | 'python' | 'tools';
  /** True when times are set to the nanosecond. */
  readonly exactTimes: boolean;
  /** Creates a device node, fifo or socket (mode without the type bits). */
  makeSpecial(node: SpecialNode): OpFailure[];
  /** Per record: owner (with `chown`; it would clear capabilities set before), xattrs, mode (not on symlinks, and after chown, which clears setuid), times. */
  apply(records: readonly MetaRecord[], chown: boolean): OpFailure[];
  /**
   * `apply` for one regular file still open as `fd` (on `record.path`): owner and mode
   * through the descriptor (no path lookups), xattrs, then `close()` (its error is
   * thrown), then the times by path (after the last write is closed). Only where the
   * calls are in-process (native); the helper backends batch paths instead.
   */
  readonly applyOpenFile?: (fd: number, record: MetaRecord, chown: boolean, close: () => void) => OpFailure[];
  /**
   * A new regular file at `record.path` holding all of `data`, created with
   * `record.mode` (less the umask) and given its times, in one call (native only).
   * For a file that needs nothing else: no chown, no xattrs. Throws when the file
   * cannot be created or written (the error's `syscall` says which; a file not fully
   * written is removed again); a failure to set the times is returned.
   */
  readonly writeNewFile?: ((record: MetaRecord, data: Uint8Array) => OpFailure[]) | undefined;
  /**
   * A writer that does what `writeNewFile` does on a thread of its own (native only;
   * see BackgroundFileWriter): the caller goes on while the destination is written.
   */
  readonly backgroundWriter?: (() => BackgroundFileWriter) | undefined;
  /**
   * Whether a file created in directory `dir` gets exactly the mode it is created with
   * (under umask 0): false when `dir` has a default ACL (which replaces the umask), or
   * when that cannot be told.
   */
  readonly plainCreation?: ((dir: string | Buffer) => boolean) | undefined;
}

const S_IFMT_OF: Readonly<Record<SpecialNode['kind'], number>> = {
  'char-device': 0o020000,
  'block-device': 0o060000,
  fifo: 0o010000,
  socket: 0o140000,
};

/** Nanoseconds since the epoch, as a decimal integer string (may be negative). */
export function nsString(t: Timestamp): string {
  return (BigInt(t.seconds) * 1_000_000_000n + BigInt(t.nanoseconds)).toString();
}

/* ------------------------------------------------------------------ native */

/** A failure from Node's fs or from the addon, with the C library's text for its errno. */
function syscallFailure(path: Buffer, op: string, error: unknown): OpFailure {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string') return { path, op, code: undefined, message: error instanceof Error ? error.message : String(error) };
  let message = strerror(code);
  if (message === code && error instanceof Error) {
    // The addon's message is "CODE: strerror text, syscall".
    const m = /^[A-Z0-9]+: (.*), [^,]+$/.exec(error.message);
    if (m?.[1] !== undefined) message = m[1];
  }
  return { path, op, code, message };
}

/** Everything in this process, through the addon and Node's fs; exact times. */
class NativeOps implements SysOps {
  readonly name = 'native';
  readonly exactTimes = true;

  makeSpecial(node: SpecialNode): OpFailure[] {
    try {
      mknod(node.path, S_IFMT_OF[node.kind] | (node.mode & 0o7777), node.major, node.minor);
      return [];
    } catch (error) {
      return [syscallFailure(node.path, 'mknod', error)];
    }
  }

  readonly applyOpenFile = (fd: number, r: MetaRecord, chown: boolean, close: () => void): OpFailure[] => {
    const failures: OpFailure[] = [];
    const path = r.path;
    if (chown) attempt(failures, path, 'chown', () => nodefs.fchownSync(fd, r.uid, r.gid));
    setXattrs(failures, r);
    attempt(failures, path, 'chmod', () => nodefs.fchmodSync(fd, r.mode & 0o7777));
    close();
    setTimes(failures, r);
    return failures;
  };

  readonly writeNewFile = canWriteNewFile()
    ? (r: MetaRecord, data: Uint8Array): OpFailure[] => {
        try {
          writeNewFile(r.path, data, r.mode & 0o7777, r.atime.seconds, r.atime.nanoseconds, r.mtime.seconds, r.mtime.nanoseconds);
        } catch (error) {
          if ((error as { syscall?: unknown }).syscall !== 'futimens') throw error;
          return [syscallFailure(r.path, 'set times', error)];
        }
        return [];
      }
    : undefined;

  readonly backgroundWriter = canWriteInBackground() ? () => new BackgroundFileWriter() : undefined;

  readonly plainCreation = canWriteNewFile()
    ? (dir: string | Buffer): boolean => {
        try {
          return lgetxattr(dir, 'system.posix_acl_default') === undefined;
        } catch {
          return false;
        }
      }
    : undefined;

  apply(records: readonly MetaRecord[], chown: boolean): OpFailure[] {
    const failures: OpFailure[] = [];
    for (const r of records) {
      const path = r.path;
      if (chown) attempt(failures, path, 'chown', () => nodefs.lchownSync(path, r.uid, r.gid));
      setXattrs(failures, r);
      if (r.kind !== 'symlink') attempt(failures, path, 'chmod', () => nodefs.chmodSync(path, r.mode & 0o7777));
      setTimes(failures, r);
    }
    return failures;
  }
}

/** Run one metadata syscall; a failure is recorded, not thrown. */
function attempt(failures: OpFailure[], path: Buffer, op: string, call: () => void): void {
  try {
    call();
  } catch (error) {
    failures.push(syscallFailure(path, op, error));
  }
}

function setXattrs(failures: OpFailure[], r: MetaRecord): void {
  for (const [name, value] of r.xattrs) attempt(failures, r.path, `setxattr ${name}`, () => lsetxattr(r.path, name, value));
}

function setTimes(failures: OpFailure[], r: MetaRecord): void {
  attempt(failures, r.path, 'set times', () => lutimens(r.path, r.atime.seconds, r.atime.nanoseconds, r.mtime.seconds, r.mtime.nanoseconds));
}

/* ------------------------------------------------------------------ python */

// Reads NUL-separated records from stdin: OP, PATH, ARGS...; writes OP, PATH, ERRNO NAME, MESSAGE per failure.
const PY_SCRIPT = String.raw`
import errno, os, sys
ARGS = {b'n': 3, b'x': 2, b'o': 2, b'm': 1, b't': 2}
NAMES = {b'n': 'mknod', b'x': 'setxattr', b'o': 'chown', b'm': 'chmod', b't': 'set times'}
data = sys.stdin.buffer.read().split(b'\0')
out = sys.stdout.buffer
i = 0
while i + 1 < len(data):
    op = data[i]; path = data[i + 1]; n = ARGS[op]; a = data[i + 2:i + 2 + n]; i += 2 + n
    try:
        if op == b'n': os.mknod(path, int(a[0]), os.makedev(int(a[1]), int(a[2])))
        elif op == b'x': os.setxattr(path, a[0], bytes.fromhex(a[1].decode()), follow_symlinks=False)
        elif op == b'o': os.chown(path, int(a[0]), int(a[1]), follow_symlinks=False)
        elif op == b'm': os.chmod(path, int(a[0]))
        elif op == b't': os.utime(path, ns=(int(a[0]), int(a[1])), follow_symlinks=False)
    except OSError as e:
        what = NAMES[op] + (' ' + a[0].decode('utf-8', 'replace') if op == b'x' else '')
        code = errno.errorcode.get(e.errno, '') if e.errno else ''
        out.write(path + b'\0' + what.encode() + b'\0' + code.encode() + b'\0' + (e.strerror or str(e)).encode() + b'\0')
`;

class PythonOps implements SysOps {
  readonly name = 'python';
  readonly exactTimes = true;

  constructor(private readonly python: string) {}

  makeSpecial(node: SpecialNode): OpFailure[] {
    return this.run([['n', node.path, String(S_IFMT_OF[node.kind] | (node.mode & 0o7777)), String(node.major), String(node.minor)]]);
  }

  apply(records: readonly MetaRecord[], chown: boolean): OpFailure[] {
    const ops: (readonly (string | Buffer)[])[] = [];
    for (const r of records) {
      if (chown) ops.push(['o', r.path, String(r.uid), String(r.gid)]);
      for (const [name, value] of r.xattrs) ops.push(['x', r.path, name, Buffer.from(value).toString('hex')]);
      if (r.kind !== 'symlink') ops.push(['m', r.path, String(r.mode & 0o7777)]);
      ops.push(['t', r.path, nsString(r.atime), nsString(r.mtime)]);
    }
    return ops.length === 0 ? [] : this.run(ops);
  }

  private run(ops: readonly (readonly (string | Buffer)[])[]): OpFailure[] {
    const parts: Buffer[] = [];
    for (const op of ops) for (const field of op) parts.push(typeof field === 'string' ? Buffer.from(field) : field, Buffer.alloc(1));
    const result = spawnSync(this.python, ['-c', PY_SCRIPT], { input: Buffer.concat(parts), maxBuffer: 1 << 30, stdio: ['pipe', 'pipe', 'pipe'] });
    if (result.error !== undefined || result.status !== 0) {
      const why = result.error?.message ?? result.stderr.toString('utf8').trim().split('\n').pop() ?? `exit status ${result.status}`;
      throw new CliError(`${this.python} (the helper for mknod, xattrs and exact times) failed: ${why}`);
    }
    const fields = result.stdout.length === 0 ? [] : splitNul(result.stdout);
    const failures: OpFailure[] = [];
    for (let i = 0; i + 3 < fields.length; i += 4) {
      const code = (fields[i + 2] as Buffer).toString();
      failures.push({ path: fields[i] as Buffer, op: (fields[i + 1] as Buffer).toString(), code: code === '' ? undefined : code, message: (fields[i + 3] as Buffer).toString() });
    }
    return failures;
  }
}

function splitNul(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = buf.indexOf(0); i >= 0; i = buf.indexOf(0, start)) {
    out.push(buf.subarray(start, i));
    start = i + 1;
  }
  return out;
}

/* ------------------------------------------------------------------ tools */

function systemFailure(path: Buffer, op: string, error: unknown): OpFailure {
  const code = (error as { code?: unknown }).code;
  const known = typeof code === 'string' ? code : undefined;
  return { path, op, code: known, message: known !== undefined ? strerror(known) : error instanceof Error ? error.message : String(error) };
}

/** getfattr/setfattr's quoting: backslash, control and non-ASCII bytes, '=' as \ooo. */
function attrQuote(bytes: Buffer): string {
  let s = '';
  for (const b of bytes) s += b <= 0x20 || b >= 0x7f || b === 0x5c || b === 0x3d ? `\\${b.toString(8).padStart(3, '0')}` : String.fromCharCode(b);
  return s;
}

class ToolOps implements SysOps {
  readonly name = 'tools';
  readonly exactTimes = false;
  private tmpDir: string | undefined;
  private serial = 0;

  /** `scratch` is a directory on the destination filesystem (for mknod under an ASCII name, then rename). */
  constructor(private readonly scratch: () => string) {}

  makeSpecial(node: SpecialNode): OpFailure[] {
    if (node.kind === 'socket') return [{ path: node.path, op: 'mknod', code: 'EOPNOTSUPP', message: 'cannot create sockets without python3 (mknod(1) has no socket type)' }];
    this.tmpDir ??= this.scratch();
    const tmp = join(this.tmpDir, `n${this.serial++}`);
    const mode = (node.mode & 0o7777).toString(8);
    const args = node.kind === 'fifo' ? ['mkfifo', ['-m', mode, tmp]] : ['mknod', ['-m', mode, tmp, node.kind === 'char-device' ? 'c' : 'b', String(node.major), String(node.minor)]];
    const result = spawnSync(args[0] as string, args[1] as string[], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
    if (result.error !== undefined || result.status !== 0) {
      const detail = result.error?.message ?? result.stderr.trim().split('\n').pop() ?? '';
      const code = /Operation not permitted/.test(detail) ? 'EPERM' : undefined;
      return [{ path: node.path, op: 'mknod', code, message: code !== undefined ? strerror(code) : detail }];
    }
    try {
      nodefs.renameSync(tmp, node.path);
    } catch (error) {
      nodefs.rmSync(tmp, { force: true });
      return [systemFailure(node.path, 'mknod', error)];
    }
    return [];
  }

  apply(records: readonly MetaRecord[], chown: boolean): OpFailure[] {
    const failures: OpFailure[] = [];
    for (const r of records) {
      if (!chown) continue;
      try {
        nodefs.lchownSync(r.path, r.uid, r.gid);
      } catch (error) {
        failures.push(systemFailure(r.path, 'chown', error));
      }
    }
    failures.push(...this.setXattrs(records.filter((r) => r.xattrs.length > 0)));
    for (const r of records) {
      try {
        if (r.kind !== 'symlink') nodefs.chmodSync(r.path, r.mode & 0o7777);
      } catch (error) {
        failures.push(systemFailure(r.path, 'chmod', error));
      }
      if (r.atime.seconds < 0 || r.mtime.seconds < 0) {
        failures.push(...touchTimes(r));
        continue;
      }
      try {
        nodefs.lutimesSync(r.path, microsecondSeconds(r.atime), microsecondSeconds(r.mtime));
      } catch (error) {
        failures.push(systemFailure(r.path, 'set times', error));
      }
    }
    return failures;
  }

  /** One `setfattr --restore` for the whole batch (its dump format is binary-safe). */
  private setXattrs(records: readonly MetaRecord[]): OpFailure[] {
    if (records.length === 0) return [];
    let dump = '';
    for (const r of records) {
      dump += `# file: ${attrQuote(r.path)}\n`;
      for (const [name, value] of r.xattrs) dump += `${attrQuote(Buffer.from(name))}=0x${Buffer.from(value).toString('hex')}\n`;
      dump += '\n';
    }
    const result = spawnSync('setfattr', ['-h', '--restore=-'], { input: dump, encoding: 'utf8', stdio: ['pipe', 'ignore', 'pipe'] });
    if (result.error === undefined && result.status === 0) return [];
    const detail = result.error?.message ?? result.stderr.trim();
    // setfattr names the file in its messages; report them once for the batch.
    return [{ path: records[0]?.path ?? Buffer.alloc(0), op: 'setfattr --restore', code: undefined, message: detail.replace(/\n/g, '; ') }];
  }
}

/** `ns` nanoseconds as an exact decimal number of seconds, e.g. -14182939.500000000. */
export function decimalSeconds(t: Timestamp): string {
  const ns = BigInt(nsString(t));
  const abs = ns < 0n ? -ns : ns;
  return `${ns < 0n ? '-' : ''}${abs / 1_000_000_000n}.${(abs % 1_000_000_000n).toString().padStart(9, '0')}`;
}

/**
 * Times before 1970, which Node's utimes replaces by the current time: `touch -d @SECONDS`
 * (exact), twice (atime, mtime). touch takes the path as text, so it must be UTF-8.
 */
function touchTimes(r: MetaRecord): OpFailure[] {
  const text = r.path.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(r.path)) {
    return [{ path: r.path, op: 'set times', code: undefined, message: 'a time before 1970 on a name that is not UTF-8 needs python3' }];
  }
  for (const [flag, t] of [
    ['-a', r.atime],
    ['-m', r.mtime],
  ] as const) {
    const result = spawnSync('touch', ['-h', flag, '-d', `@${decimalSeconds(t)}`, '--', text], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
    if (result.error !== undefined || result.status !== 0) {
      return [{ path: r.path, op: 'set times', code: undefined, message: result.error?.message ?? result.stderr.trim() }];
    }
  }
  return [];
}

/**
 * Seconds for Node's utimes, landing on the right microsecond: libuv truncates the
 * double's fraction toward zero to microseconds, so aim half a microsecond away from zero.
 */
export function microsecondSeconds(t: Timestamp): number {
  const us = Math.floor(t.nanoseconds / 1000);
  const value = t.seconds + us / 1e6;
  return value >= 0 ? value + 5e-7 : value - 5e-7;
}

/* ------------------------------------------------------------------ choice */

/**
 * The interpreter `EXT4TS_PYTHON` names (default python3), if it runs, as the absolute
 * path of its executable (a pyenv shim costs a shell script per start); '' disables it.
 */
function findPython(): string | undefined {
  const name = process.env.EXT4TS_PYTHON ?? 'python3';
  if (name === '') return undefined;
  const probe = spawnSync(name, ['-c', 'import os, sys; os.utime; os.setxattr; os.mknod; sys.stdout.write(sys.executable)'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  if (probe.error !== undefined || probe.status !== 0) return undefined;
  return probe.stdout !== '' && nodefs.existsSync(probe.stdout) ? probe.stdout : name;
}

/**
 * The addon when it is built, unless `EXT4TS_PYTHON` is set (even empty), which picks
 * the helpers: that interpreter, or with it empty the tools fallback. Without the
 * addon: python3 if it runs, else the tools.
 */
export function chooseSysOps(scratch: () => string): SysOps {
  if (process.env.EXT4TS_PYTHON === undefined && isNativeAvailable()) return new NativeOps();
  const python = findPython();
  return python !== undefined ? new PythonOps(python) : new ToolOps(scratch);
}
