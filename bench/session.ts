/**
 * bench:session — what the FUSE server spends per created file, without the kernel.
 *
 * Feeds FuseSession.handle the requests the kernel sends when a program creates a small
 * file on a read-write mount (LOOKUP, CREATE, GETXATTR security.capability, WRITE,
 * SETATTR, FLUSH, RELEASE, GETATTR of the parent; 1,000 files per directory) on a fresh
 * image in /dev/shm, and prints the server's time per request kind and per file over
 * the second half of the run (the first half warms V8 up). `--workload cp` sends what
 * `cp -a` adds per file instead (after WRITE: SETATTR of the times, SETATTR of the owner,
 * SETXATTR system.posix_acl_access, SETATTR of the mode the ACL gives; seen with
 * `ext4ts mount -o debug`). The mount benchmarks add the
 * kernel's round trips and the client on top of these numbers; this one isolates the
 * session, protocol and library work that ext4ts itself controls. The image must pass
 * `e2fsck -fn` at the end.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type * as Ext4Module from '../src/fs/ext4.js';
import type * as SessionModule from '../src/fuse/session.js';
import type * as AbiModule from '../src/fuse/abi.js';
import { commandLine, intOption, UsageError } from './lib/options.js';

const HELP = `Usage: npm run bench:session -- [--files N] [--workload create|cp] [--dir DIR] [--dist DIR]

Creates N small files (2,500 bytes; 1,000 per directory) by feeding FuseSession the
requests of a read-write FUSE mount, without the kernel, and prints the server's
microseconds per request kind and per file over the second half (the first warms up).

Options:
  --workload <w>  create: what a program writing new files sends (default); cp: what
                cp -a sends (its times, owner and ACL on top: 11 requests per file)
  --files <n>   files to create (default 40000)
  --dir <dir>   where the 2 GiB scratch image goes (default /dev/shm, else the temp dir)
  --dist <dir>  the compiled ext4ts to measure (default: the project's dist/, built by
                npm ci / npm run build; the tsx-run sources would add tsx's wrappers)
  -h, --help    show this help
`;

interface Config {
  readonly files: number;
  readonly workload: 'create' | 'cp';
  readonly dir: string;
  readonly dist: string;
}

const cfg = commandLine<Config>('bench:session', HELP, (argv) => {
  const { values } = parseArgs({ args: [...argv], options: { files: { type: 'string' }, workload: { type: 'string' }, dir: { type: 'string' }, dist: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help === true) return 'help';
  const workload = values.workload ?? 'create';
  if (workload !== 'create' && workload !== 'cp') throw new UsageError(`--workload: '${workload}' is not create or cp`);
  return {
    workload,
    files: values.files === undefined ? 40_000 : intOption('--files', values.files, 2, 1_000_000),
    dir: values.dir ?? (fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir()),
    dist: path.resolve(values.dist ?? fileURLToPath(new URL('../dist', import.meta.url))),
  };
});
if ('exit' in cfg) process.exit(cfg.exit);

const distDir = cfg.dist;
async function load<T>(relative: string): Promise<T> {
  const file = path.join(distDir, relative);
  if (!fs.existsSync(file)) {
    process.stderr.write(`bench:session: ${file} is missing: run npm run build (or pass --dist)\n`);
    process.exit(2);
  }
  return (await import(pathToFileURL(file).href)) as T;
}
const { Ext4, ROOT_INO } = await load<typeof Ext4Module>('fs/ext4.js');
const { FuseSession } = await load<typeof SessionModule>('fuse/session.js');
const { Opcode, FATTR } = await load<typeof AbiModule>('fuse/abi.js');

const image = path.join(cfg.dir, `ext4ts-bench-session-${process.pid}.img`);
// The 2 GiB scratch image in /dev/shm is RAM: a detached watcher removes it when this
// process ends however it ends (the run is one synchronous loop, so a signal handler
// would only run after it; Ctrl-C and kill must still stop it at once).
spawn('sh', ['-c', 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; rm -f "$2"', 'bench-session-cleanup', String(process.pid), image], { detached: true, stdio: 'ignore' }).unref();
execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-E', 'lazy_itable_init=0', image, '2G'], { stdio: 'ignore' });
const ext4 = Ext4.openFile(image, { write: true });
let last: readonly Uint8Array[] = [];
const session = new FuseSession(ext4, (buffers) => (last = buffers), { attrTimeout: 86_400, entryTimeout: 86_400, maxRead: 1 << 20, flushInterval: 30 });

const encoder = new TextEncoder();
let unique = 2n;

/** Nanoseconds the last request spent in FuseSession.handle (building it and reading the reply excluded). */
let handled = 0n;

/** One request through the session; returns the reply (header + body). */
function request(opcode: number, nodeid: number, body: Uint8Array): Buffer {
  const bytes = new Uint8Array(40 + body.length);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, bytes.length, true);
  v.setUint32(4, opcode, true);
  v.setBigUint64(8, (unique += 2n), true);
  v.setBigUint64(16, BigInt(nodeid), true);
  v.setUint32(32, process.pid, true);
  bytes.set(body, 40);
  const t = process.hrtime.bigint();
  session.handle(bytes);
  handled = process.hrtime.bigint() - t;
  const reply = Buffer.concat(last.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength)));
  const error = reply.readInt32LE(4);
  if (error !== 0 && !(opcode === Opcode.GETXATTR && error === -61) && !(opcode === Opcode.LOOKUP && error === -2)) {
    throw new Error(`opcode ${opcode} on node ${nodeid}: error ${error}`);
  }
  return reply;
}

/** A request body: `size` bytes set by `fill`, then `tail`. */
function body(size: number, fill: (v: DataView) => void, tail?: Uint8Array): Uint8Array {
  const b = new Uint8Array(size + (tail?.length ?? 0));
  fill(new DataView(b.buffer));
  if (tail !== undefined) b.set(tail, size);
  return b;
}

const cstr = (s: string): Uint8Array => encoder.encode(`${s}\0`);
/** fuse_entry_out.nodeid of an entry reply. */
const nodeOf = (reply: Buffer): number => Number(reply.readBigUInt64LE(16));

// INIT 7.45, the kernel offering every flag.
request(
  Opcode.INIT,
  0,
  body(64, (v) => {
    v.setUint32(0, 7, true);
    v.setUint32(4, 45, true);
    v.setUint32(8, 1 << 20, true);
    v.setUint32(12, 0xffff_ffff, true);
    v.setUint32(16, 0xffff_ffff, true);
  }),
);
const mkdir = (name: string): number => nodeOf(request(Opcode.MKDIR, 1, body(8, (v) => (v.setUint32(0, 0o755, true), v.setUint32(4, 0o022, true)), cstr(name))));
const data = new Uint8Array(2500).fill(0x5a);
const cp = cfg.workload === 'cp';
const KINDS = cp
  ? (['LOOKUP', 'CREATE', 'GETXATTR', 'WRITE', 'SETATTR', 'SETATTR owner', 'SETXATTR', 'SETATTR mode', 'FLUSH', 'RELEASE', 'GETATTR'] as const)
  : (['LOOKUP', 'CREATE', 'GETXATTR', 'WRITE', 'SETATTR', 'FLUSH', 'RELEASE', 'GETATTR'] as const);
type Kind = (typeof KINDS)[number];
// cp -a's ACL: the one its mode gives (u::rw-, g::r--, o::r--), in the VFS xattr format.
const ACL_ENTRIES: readonly (readonly [number, number])[] = [
  [0x01, 6],
  [0x04, 4],
  [0x20, 4],
];
const aclXattr = cstr('system.posix_acl_access');
const aclBody = body(16, (v) => v.setUint32(0, 4 + ACL_ENTRIES.length * 8, true), new Uint8Array(aclXattr.length + 4 + ACL_ENTRIES.length * 8));
{
  const v = new DataView(aclBody.buffer, 16 + aclXattr.length);
  aclBody.set(aclXattr, 16);
  v.setUint32(0, 2, true);
  ACL_ENTRIES.forEach(([tag, perm], i) => {
    v.setUint16(4 + i * 8, tag, true);
    v.setUint16(6 + i * 8, perm, true);
    v.setUint32(8 + i * 8, 0xffff_ffff, true);
  });
}
const spent = new Map<string, bigint>(KINDS.map((k) => [k, 0n]));
const timed = <T>(kind: Kind, f: () => T): T => {
  const result = f();
  spent.set(kind, (spent.get(kind) ?? 0n) + handled);
  return result;
};

const half = Math.floor(cfg.files / 2);
/** The files of the second half, removed afterwards. */
const created: { dir: number; name: string; ino: number }[] = [];
let dir = ROOT_INO;
let halfStart = process.hrtime.bigint();
let halfCpu = process.cpuUsage();
for (let i = 0; i < cfg.files; i++) {
  if (i % 1000 === 0) dir = mkdir(`d${i / 1000}`);
  if (i === half) {
    for (const k of KINDS) spent.set(k, 0n);
    halfStart = process.hrtime.bigint();
    halfCpu = process.cpuUsage();
  }
  const name = `f${String(i).padStart(6, '0')}`;
  timed('LOOKUP', () => request(Opcode.LOOKUP, dir, cstr(name)));
  const ino = nodeOf(timed('CREATE', () => request(Opcode.CREATE, dir, body(16, (v) => (v.setUint32(0, 0o1101, true), v.setUint32(4, 0o100644, true), v.setUint32(8, 0o022, true)), cstr(name)))));
  timed('GETXATTR', () => request(Opcode.GETXATTR, ino, body(8, () => undefined, cstr('security.capability'))));
  timed('WRITE', () => request(Opcode.WRITE, ino, body(40, (v) => v.setUint32(16, data.length, true), data)));
  if (cp) {
    // futimens (with the file handle), fchown, the ACL, and the mode the kernel derives from it
    timed('SETATTR', () => request(Opcode.SETATTR, ino, body(88, (v) => (v.setUint32(0, FATTR.ATIME | FATTR.MTIME | FATTR.CTIME | FATTR.FH, true), v.setBigUint64(32, 1_600_000_000n, true), v.setBigUint64(40, 1_600_000_000n, true), v.setBigUint64(48, 1_700_000_000n, true)))));
    timed('SETATTR owner', () => request(Opcode.SETATTR, ino, body(88, (v) => (v.setUint32(0, FATTR.UID | FATTR.GID | FATTR.FH, true), v.setUint32(76, 0, true), v.setUint32(80, 0, true)))));
    timed('SETXATTR', () => request(Opcode.SETXATTR, ino, aclBody));
    timed('SETATTR mode', () => request(Opcode.SETATTR, ino, body(88, (v) => (v.setUint32(0, FATTR.MODE | FATTR.CTIME, true), v.setBigUint64(48, 1_700_000_000n, true), v.setUint32(68, 0o100644, true)))));
  } else {
    // mtime and ctime, as the kernel's writeback cache sends them at close
    timed('SETATTR', () => request(Opcode.SETATTR, ino, body(88, (v) => (v.setUint32(0, FATTR.MTIME | FATTR.CTIME, true), v.setBigUint64(40, 1_700_000_000n, true), v.setBigUint64(48, 1_700_000_000n, true)))));
  }
  timed('FLUSH', () => request(Opcode.FLUSH, ino, body(24, () => undefined)));
  timed('RELEASE', () => request(Opcode.RELEASE, ino, body(24, () => undefined)));
  timed('GETATTR', () => request(Opcode.GETATTR, dir, body(16, () => undefined)));
  if (i >= half) created.push({ dir, name, ino });
}

const perFile = Number([...spent.values()].reduce((a, b) => a + b, 0n)) / 1000 / (cfg.files - half);
const wallPerFile = Number(process.hrtime.bigint() - halfStart) / 1000 / (cfg.files - half);
// CPU time (user + system, all threads) is steadier than wall time on a busy machine.
const cpu = process.cpuUsage(halfCpu);
const cpuPerFile = (cpu.user + cpu.system) / (cfg.files - half);

// rm -rf of the second half, as the kernel sends it (writeback cache): UNLINK, the
// SETATTR of the ctime it keeps, GETATTR of the parent (default_permissions).
const RM_KINDS = ['UNLINK', 'SETATTR', 'GETATTR'] as const;
const rmSpent = new Map<string, bigint>(RM_KINDS.map((k) => [k, 0n]));
const rmTimed = (kind: (typeof RM_KINDS)[number], f: () => unknown): void => {
  f();
  rmSpent.set(kind, (rmSpent.get(kind) ?? 0n) + handled);
};
for (const f of created) {
  rmTimed('UNLINK', () => request(Opcode.UNLINK, f.dir, cstr(f.name)));
  rmTimed('SETATTR', () => request(Opcode.SETATTR, f.ino, body(88, (v) => (v.setUint32(0, 1 << 10, true), v.setBigUint64(48, 1_700_000_001n, true)))));
  rmTimed('GETATTR', () => request(Opcode.GETATTR, f.dir, body(16, () => undefined)));
  request(Opcode.FORGET, f.ino, body(8, (v) => v.setBigUint64(0, 1n, true)));
}
const rmPerFile = Number([...rmSpent.values()].reduce((a, b) => a + b, 0n)) / 1000 / created.length;
ext4.close();
let fsck = 'clean';
try {
  execFileSync('e2fsck', ['-fn', image], { stdio: 'ignore' });
} catch {
  fsck = 'NOT CLEAN';
}
fs.rmSync(image, { force: true });

const us = (ns: bigint): string => (Number(ns) / 1000 / (cfg.files - half)).toFixed(1).padStart(7);
// (created.length === cfg.files - half: the same divisor for the removal.)
process.stdout.write(`ext4ts FUSE session, ${cfg.files.toLocaleString('en-US')} files created${cp ? ' as cp -a does' : ''} (us per file over the second half; node ${process.version})\n`);
for (const k of KINDS) process.stdout.write(`  ${k.padEnd(13)}${us(spent.get(k) ?? 0n)} us\n`);
process.stdout.write(`  per file  ${perFile.toFixed(1).padStart(6)} us   (in FuseSession.handle${cp ? '' : '; fuse2fs through a mount, kernel included: ~290 us; see README'})\n`);
process.stdout.write(`  wall/file ${wallPerFile.toFixed(1).padStart(6)} us   (with this benchmark building the requests and reading the replies)\n`);
process.stdout.write(`  cpu/file  ${cpuPerFile.toFixed(1).padStart(6)} us   (user + system time of the process, all threads, as wall/file)\n`);
process.stdout.write(`then the same ${created.length.toLocaleString('en-US')} files removed (us per file):\n`);
for (const k of RM_KINDS) process.stdout.write(`  ${k.padEnd(9)}${us(rmSpent.get(k) ?? 0n)} us\n`);
process.stdout.write(`  per file  ${rmPerFile.toFixed(1).padStart(6)} us   (in FuseSession.handle)\n`);
process.stdout.write(`  e2fsck -fn: ${fsck}\n`);
if (fsck !== 'clean') process.exitCode = 1;
