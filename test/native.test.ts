// Tests of the native addon (native/ext4ts_native.c) through its wrapper src/io/native.ts,
// against the real kernel: flock conflicts between two open file descriptions,
// fallocate's effect on contents / size / allocated blocks, fd passing over a unix
// socket (also to and from a child process), the block-device ioctls on a loop
// device made with losetup (root only; detached in after()), and the file-metadata
// calls `ext4ts get` uses: lutimens (nanosecond times, checked with a BigInt lstat),
// mknod (fifos, sockets, devices) and lsetxattr (checked with getfattr), on string,
// Buffer and non-UTF-8 paths.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FsError } from '../src/errors.js';
import { GOOD_OLD_INODE_SIZE, INODE_OFFSETS, inodeChecksum, setInodeChecksum, storedInodeChecksum } from '../src/ondisk/inode.js';
import { InodeChecksumMemo } from '../src/fs/inode-csum.js';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  blockDeviceSize,
  blockDiscard,
  blockSectorSize,
  blockZeroout,
  fallocate,
  flock,
  inodeChecksumsOk,
  BackgroundFileWriter,
  canWriteInBackground,
  clockCoarse,
  adviseWillNeed,
  canWriteNewFile,
  isNativeAvailable,
  isNativeSyscallError,
  lgetxattr,
  lsetxattr,
  lutimens,
  mknod,
  native,
  pwriteBatch,
  recvFd,
  S_IFBLK,
  S_IFCHR,
  S_IFIFO,
  S_IFSOCK,
  sendFd,
  socketpair,
  spinningReader,
  writeNewFile,
  type FlockOperation,
} from '../src/io/native.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ADDON = path.join(ROOT, 'native/build/Release/ext4ts_native.node');

/** Assert `fn` throws an addon error with this errno name (and the matching number). */
function assertErrno(fn: () => unknown, code: string, errno: number): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(isNativeSyscallError(error), `expected a native syscall error, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.equal(error.errno, errno);
    assert.match(error.message, new RegExp(`^${code}: `));
    return true;
  });
}

/** A byte pattern with no zero byte, so zeroed ranges are visible. */
function pattern(size: number, seed = 1): Buffer {
  const buffer = Buffer.alloc(size);
  for (let i = 0; i < size; i++) buffer[i] = ((i * 7 + seed) % 255) + 1;
  return buffer;
}

function readAt(fd: number, offset: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  const n = fs.readSync(fd, buffer, 0, length, offset);
  assert.equal(n, length);
  return buffer;
}

/** Runs `body` on a 64 KiB tmpfs mounted at `dir` (made here), always unmounted; skips the test unless root. */
function withTinyTmpfs(t: { skip(message: string): void }, dir: string, body: (mounted: string) => void): void {
  if (process.getuid?.() !== 0) {
    t.skip('needs root to mount a small tmpfs');
    return;
  }
  fs.mkdirSync(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]);
  try {
    body(dir);
  } finally {
    execFileSync('umount', [dir]);
  }
}

function isZero(buffer: Uint8Array): boolean {
  return buffer.every((byte) => byte === 0);
}

let dir: string;
const openFds: number[] = [];

function open(file: string, flags: string): number {
  const fd = fs.openSync(file, flags);
  openFds.push(fd);
  return fd;
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ext4ts-native-'));
});

after(() => {
  for (const fd of openFds) {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed by the test
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

void describe('native addon', () => {
  void it('is built and loads', () => {
    assert.ok(fs.existsSync(ADDON), `${ADDON} missing: run npm run build:native`);
    assert.equal(isNativeAvailable(), true);
    assert.equal(native.flock, flock);
    assert.equal(FALLOC_FL_KEEP_SIZE, 1);
    assert.equal(FALLOC_FL_PUNCH_HOLE, 2);
    assert.equal(FALLOC_FL_ZERO_RANGE, 0x10);
  });

  void it('throws FsError EOPNOTSUPP with build instructions when the addon is missing', () => {
    // The wrapper copied to a tree that has no native/build: loading fails there.
    const tree = path.join(dir, 'nobuild');
    fs.mkdirSync(path.join(tree, 'src/io'), { recursive: true });
    fs.copyFileSync(path.join(ROOT, 'src/io/native.ts'), path.join(tree, 'src/io/native.ts'));
    fs.copyFileSync(path.join(ROOT, 'src/errors.ts'), path.join(tree, 'src/errors.ts'));
    const script = path.join(tree, 'probe.ts');
    fs.writeFileSync(
      script,
      [
        "import { isNativeAvailable, flock } from './src/io/native.js';",
        "import { FsError } from './src/errors.js';",
        'let caught: unknown;',
        "try { flock(0, 'shared', true); } catch (error) { caught = error; }",
        'const e = caught as FsError;',
        'console.log(JSON.stringify({ available: isNativeAvailable(), isFsError: caught instanceof FsError, code: e.code, errno: e.errno, message: e.message }));',
      ].join('\n'),
    );
    const child = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    const result = JSON.parse(child.stdout) as { available: boolean; isFsError: boolean; code: string; errno: number; message: string };
    assert.equal(result.available, false);
    assert.equal(result.isFsError, true);
    assert.equal(result.code, 'EOPNOTSUPP');
    assert.equal(result.errno, 95);
    assert.match(result.message, /not built/);
    assert.match(result.message, /npm run build:native/);
    assert.match(result.message, /npm rebuild/);
  });
});

void describe('adviseWillNeed', () => {
  /** Bytes of `file` in the page cache (fincore, from util-linux-extra). */
  function resident(file: string): number {
    return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' }).trim());
  }

  void it('has the kernel read the range into the page cache, without waiting for it', () => {
    const file = path.join(dir, 'advise.bin');
    fs.writeFileSync(file, Buffer.alloc(2 << 20, 7));
    const fd = open(file, 'r');
    // Out of the page cache (only clean pages leave: hence the fsync first).
    execFileSync('python3', ['-c', 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)', file]);
    assert.equal(resident(file), 0, 'evicted before the hint');
    assert.equal(adviseWillNeed(fd, 512 << 10, 1 << 20), true);
    let cached = resident(file);
    for (let tries = 0; cached < 1 << 20 && tries < 500; tries++) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      cached = resident(file);
    }
    assert.ok(cached >= 1 << 20 && cached < 2 << 20, `${cached} bytes cached after a hint for 1 MiB of 2`);
  });

  void it('reports a descriptor it cannot advise on, and checks its arguments', () => {
    const fifo = path.join(dir, 'advise.fifo');
    mknod(fifo, S_IFIFO | 0o600, 0, 0);
    const r = fs.openSync(fifo, 'r+'); // O_RDWR: a FIFO opens without waiting for a writer
    assert.throws(() => adviseWillNeed(r, 0, 4096), (e: unknown) => isNativeSyscallError(e) && e.code === 'ESPIPE' && e.syscall === 'posix_fadvise');
    fs.closeSync(r);
    assert.throws(() => adviseWillNeed(r, 0, 4096), (e: unknown) => isNativeSyscallError(e) && e.code === 'EBADF');
    const fd = open(path.join(dir, 'advise-args.bin'), 'w+');
    assert.throws(() => adviseWillNeed(fd, -1, 4096), (e: unknown) => isNativeSyscallError(e) && e.code === 'EINVAL');
    assert.throws(() => adviseWillNeed(fd, 2 ** 53, 1), (e: unknown) => isNativeSyscallError(e) && e.code === 'EINVAL');
  });
});

void describe('clockCoarse', () => {
  void it('reads the kernel\'s coarse realtime clock: whole seconds and nanoseconds, near Date.now, never going back', () => {
    const out = new Float64Array(2);
    assert.equal(clockCoarse(out), true);
    let [sec, nsec] = out as unknown as [number, number];
    assert.ok(Number.isInteger(sec) && Number.isInteger(nsec) && nsec >= 0 && nsec < 1e9, `${sec}.${nsec}`);
    assert.ok(Math.abs(sec * 1000 + nsec / 1e6 - Date.now()) < 1000, `${sec}.${nsec} vs ${Date.now()}`);
    const seen = new Set<string>();
    const start = performance.now();
    // The coarse clock moves by whole ticks (1-10 ms): called in a loop for at least 50 ms
    // (and until it has moved), it takes few distinct values, never going back.
    let elapsed = 0;
    while ((elapsed < 50 || seen.size < 2) && elapsed < 5000) {
      assert.equal(clockCoarse(out), true);
      const [s2, n2] = out as unknown as [number, number];
      assert.ok(s2 > sec || (s2 === sec && n2 >= nsec), `went back: ${sec}.${nsec} -> ${s2}.${n2}`);
      [sec, nsec] = [s2, n2];
      seen.add(`${s2}.${n2}`);
      elapsed = performance.now() - start;
    }
    assert.ok(seen.size >= 2 && seen.size <= elapsed + 1, `${seen.size} distinct values in ${elapsed.toFixed(1)} ms`);
  });

  void it('rejects anything but a Float64Array of two or more', () => {
    for (const bad of [new Float64Array(1), new Float32Array(2), [0, 0], undefined]) {
      assert.throws(() => clockCoarse(bad as unknown as Float64Array), TypeError);
    }
  });
});

void describe('flock', () => {
  let file: string;
  before(() => {
    file = path.join(dir, 'lock');
    fs.writeFileSync(file, 'lock me');
  });

  void it('an exclusive lock makes another open file description fail with EAGAIN until unlocked', () => {
    const a = open(file, 'r+');
    const b = open(file, 'r+');
    flock(a, 'exclusive', true);
    assertErrno(() => flock(b, 'exclusive', true), 'EAGAIN', 11);
    assertErrno(() => flock(b, 'shared', true), 'EAGAIN', 11);
    flock(a, 'unlock', true);
    flock(b, 'exclusive', true);
    assertErrno(() => flock(a, 'shared', true), 'EAGAIN', 11);
    flock(b, 'unlock', false);
  });

  void it('shared locks coexist, and exclude an exclusive one', () => {
    const a = open(file, 'r');
    const b = open(file, 'r');
    const c = open(file, 'r');
    flock(a, 'shared', true);
    flock(b, 'shared', false);
    assertErrno(() => flock(c, 'exclusive', true), 'EAGAIN', 11);
    flock(a, 'unlock', false);
    flock(b, 'unlock', false);
    flock(c, 'exclusive', true);
    flock(c, 'unlock', true);
  });

  void it('a lock held by this process is seen by another, and a lock dies with its process', () => {
    const tryLock = (op: number): string => {
      const code = [
        `const addon = require(${JSON.stringify(ADDON)});`,
        `const fd = require('fs').openSync(${JSON.stringify(file)}, 'r');`,
        `try { addon.flock(fd, ${op}, true); console.log('locked'); } catch (e) { console.log(e.code); }`,
      ].join('\n');
      return execFileSync(process.execPath, ['-e', code], { encoding: 'utf8' }).trim();
    };
    const a = open(file, 'r');
    flock(a, 'shared', true);
    assert.equal(tryLock(1), 'EAGAIN');
    assert.equal(tryLock(0), 'locked');
    flock(a, 'unlock', true);
    assert.equal(tryLock(1), 'locked'); // the child exits holding it: the kernel drops it
    flock(a, 'exclusive', true);
    flock(a, 'unlock', true);
  });

  void it('rejects a bad fd and a bad operation', () => {
    assertErrno(() => flock(1_000_000, 'shared', true), 'EBADF', 9);
    assertErrno(() => flock(-1, 'shared', true), 'EINVAL', 22);
    assert.throws(
      () => flock(0, 'everything' as FlockOperation, true),
      (error: unknown) => error instanceof FsError && error.code === 'EINVAL',
    );
  });
});

void describe('fallocate', () => {
  const SIZE = 1024 * 1024;
  let file: string;
  let fd: number;
  before(() => {
    file = path.join(dir, 'data');
    fs.writeFileSync(file, pattern(SIZE));
    fd = open(file, 'r+');
    fs.fsyncSync(fd);
  });

  void it('PUNCH_HOLE|KEEP_SIZE zeroes the range, frees its blocks and keeps the size', () => {
    const before = fs.statSync(file);
    assert.ok(before.blocks >= SIZE / 512, `file not fully allocated: ${before.blocks} blocks`);
    const offset = 256 * 1024;
    const length = 512 * 1024;
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
    const afterStat = fs.statSync(file);
    assert.equal(afterStat.size, SIZE);
    assert.ok(before.blocks - afterStat.blocks >= length / 512, `blocks ${before.blocks} -> ${afterStat.blocks}`);
    const data = fs.readFileSync(file);
    assert.ok(isZero(data.subarray(offset, offset + length)));
    assert.deepEqual(data.subarray(0, offset), pattern(SIZE).subarray(0, offset));
    assert.deepEqual(data.subarray(offset + length), pattern(SIZE).subarray(offset + length));
  });

  void it('PUNCH_HOLE of a few bytes inside a block zeroes exactly those bytes', () => {
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 50);
    const data = readAt(fd, 0, 4096);
    const expected = pattern(SIZE).subarray(0, 4096);
    expected.fill(0, 100, 150);
    assert.deepEqual(data, expected);
  });

  void it('ZERO_RANGE zeroes the range and keeps the size', () => {
    const offset = 800 * 1024 + 123;
    const length = 10_000;
    assert.ok(!isZero(readAt(fd, offset, length)));
    fallocate(fd, FALLOC_FL_ZERO_RANGE, offset, length);
    assert.ok(isZero(readAt(fd, offset, length)));
    assert.deepEqual(readAt(fd, offset - 10, 10), pattern(SIZE).subarray(offset - 10, offset));
    assert.deepEqual(readAt(fd, offset + length, 10), pattern(SIZE).subarray(offset + length, offset + length + 10));
    assert.equal(fs.statSync(file).size, SIZE);
  });

  void it('mode 0 allocates, growing the file; KEEP_SIZE allocates without growing it', () => {
    const grow = path.join(dir, 'grow');
    const g = open(grow, 'w+');
    fallocate(g, 0, 0, 64 * 1024);
    let stat = fs.statSync(grow);
    assert.equal(stat.size, 64 * 1024);
    assert.ok(stat.blocks >= 128);
    fallocate(g, FALLOC_FL_KEEP_SIZE, 64 * 1024, 64 * 1024);
    stat = fs.statSync(grow);
    assert.equal(stat.size, 64 * 1024);
    assert.ok(stat.blocks >= 256);
    assert.ok(isZero(fs.readFileSync(grow)));
  });

  void it('takes offsets above 2^32 exactly', () => {
    const big = path.join(dir, 'big');
    const g = open(big, 'w+');
    const offset = 2 ** 32 + 8192;
    fallocate(g, 0, offset, 4096);
    assert.equal(fs.statSync(big).size, offset + 4096);
    assert.ok(fs.statSync(big).blocks <= 64, 'the file should stay sparse');
  });

  void it('rejects invalid arguments with EINVAL, without crashing', () => {
    assertErrno(() => fallocate(fd, 0, -1, 4096), 'EINVAL', 22);
    assertErrno(() => fallocate(fd, 0, 0, -4096), 'EINVAL', 22);
    assertErrno(() => fallocate(fd, 0, 0.5, 4096), 'EINVAL', 22);
    assertErrno(() => fallocate(fd, 0, Number.NaN, 4096), 'EINVAL', 22);
    assertErrno(() => fallocate(fd, 0, Number.POSITIVE_INFINITY, 4096), 'EINVAL', 22);
    assertErrno(() => fallocate(fd, 0, 2 ** 53 + 2, 4096), 'EINVAL', 22);
    assertErrno(() => fallocate(fd, 0, 2 ** 53, 4096), 'EINVAL', 22); // offset + length > 2^53
    assertErrno(() => fallocate(fd, -1, 0, 4096), 'EINVAL', 22);
    assertErrno(() => fallocate(-1, 0, 0, 4096), 'EINVAL', 22);
    // From the kernel: a zero length, and punch-hole without keep-size.
    assertErrno(() => fallocate(fd, 0, 0, 0), 'EINVAL', 22);
    assertErrno(() => fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096), 'EOPNOTSUPP', 95);
    assertErrno(() => fallocate(1_000_000, 0, 0, 4096), 'EBADF', 9);
    assert.equal(fs.statSync(file).size, SIZE);
  });

  void it('rejects arguments of the wrong type with a TypeError', () => {
    const raw = native.fallocate as unknown as (...args: unknown[]) => void;
    assert.throws(() => raw(fd, 0, '0', 4096), TypeError);
    assert.throws(() => raw(fd, 0, 0), TypeError);
    assert.throws(() => raw(fd, 0, 10n, 4096), TypeError);
  });
});

void describe('pwriteBatch', () => {
  void it('writes every buffer in full at its offset, in order (a later one wins on overlap)', () => {
    const file = path.join(dir, 'batch');
    fs.writeFileSync(file, pattern(64 * 1024));
    const fd = open(file, 'r+');
    try {
      const a = Buffer.alloc(4096, 0xa1);
      const b = new Uint8Array(100).fill(0xb2);
      const c = Buffer.alloc(10, 0xc3);
      pwriteBatch(fd, [a, b, c], new Float64Array([8192, 70_000, 8192 + 4090]));
      pwriteBatch(fd, [], new Float64Array(0));
    } finally {
      fs.closeSync(fd);
    }
    const data = fs.readFileSync(file);
    assert.equal(data.length, 70_100, 'a write past the end extends the file');
    assert.ok(data.subarray(8192, 8192 + 4090).every((x) => x === 0xa1));
    assert.ok(data.subarray(8192 + 4090, 8192 + 4100).every((x) => x === 0xc3));
    assert.ok(data.subarray(70_000).every((x) => x === 0xb2));
    assert.deepEqual(data.subarray(0, 8192), pattern(64 * 1024).subarray(0, 8192));
  });

  void it('throws the first failure with its item; refuses bad arguments before writing', () => {
    const file = path.join(dir, 'batch-ro');
    fs.writeFileSync(file, pattern(8192));
    const fd = open(file, 'r');
    try {
      assertErrno(() => pwriteBatch(fd, [Buffer.alloc(1)], new Float64Array([0])), 'EBADF', 9);
      assert.throws(() => pwriteBatch(fd, [Buffer.alloc(1)], new Float64Array([0])), /item 0 of 1/);
    } finally {
      fs.closeSync(fd);
    }
    const rw = open(file, 'r+');
    try {
      assertErrno(() => pwriteBatch(rw, [Buffer.alloc(1), Buffer.alloc(1)], new Float64Array([0])), 'EINVAL', 22);
      assertErrno(() => pwriteBatch(rw, [Buffer.alloc(1)], new Float64Array([-1])), 'EINVAL', 22);
      assertErrno(() => pwriteBatch(rw, [Buffer.alloc(1)], new Float64Array([0.5])), 'EINVAL', 22);
      assert.throws(() => pwriteBatch(rw, ['x' as unknown as Uint8Array], new Float64Array([0])), TypeError);
      assert.throws(() => pwriteBatch(rw, [Buffer.alloc(1)], [0] as unknown as Float64Array), TypeError);
    } finally {
      fs.closeSync(rw);
    }
    assert.deepEqual(fs.readFileSync(file), pattern(8192), 'nothing was written');
  });
});

void describe('readSpin (spinningReader): reads that look a while before they sleep', () => {
  /** A child process that writes `text` to its fd 3 (`fd` here) after `ms`. */
  const writeLater = (fd: number, text: string, ms: number): Promise<number | null> => {
    const child = spawn(process.execPath, ['-e', `setTimeout(() => require('fs').writeSync(3, ${JSON.stringify(text)}), ${ms})`], { stdio: ['ignore', 'inherit', 'inherit', fd] });
    return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  };

  void it('reads what is there at once, and leaves the descriptor non-blocking', () => {
    const [c, d] = socketpair();
    openFds.push(c, d);
    fs.writeSync(c, 'abc');
    const read = spinningReader(d, 100);
    assert.ok(read !== undefined);
    const buffer = Buffer.alloc(16);
    assert.equal(read(buffer), 3);
    assert.equal(buffer.subarray(0, 3).toString(), 'abc');
    assert.throws(() => fs.readSync(d, buffer), { code: 'EAGAIN' }, 'a plain read now returns EAGAIN at once');
  });

  for (const spin of [0, 200]) {
    void it(`with nothing there, ${spin === 0 ? 'waits at once' : `looks for ${spin} µs, then waits`} until a writer sends something`, async () => {
      const [c, d] = socketpair();
      openFds.push(c, d);
      const exited = writeLater(c, 'late data', 300);
      const buffer = Buffer.alloc(64);
      const n = spinningReader(d, spin)?.(buffer);
      assert.equal(n, 9);
      assert.equal(buffer.subarray(0, 9).toString(), 'late data');
      assert.equal(await exited, 0);
    });
  }

  void it('end of file reads 0; bad descriptors and arguments are errors', () => {
    const [c, d] = socketpair();
    openFds.push(d);
    fs.closeSync(c);
    const buffer = Buffer.alloc(8);
    assert.equal(spinningReader(d, 50)?.(buffer), 0);
    assertErrno(() => spinningReader(1_000_000, 50)?.(buffer), 'EBADF', 9);
    assert.throws(() => spinningReader(d, 50)?.('text' as unknown as Uint8Array), TypeError);
    assert.throws(() => spinningReader(d, 50)?.(new Uint8Array(0)), TypeError);
    assertErrno(() => spinningReader(d, 2_000_000)?.(buffer), 'EINVAL', 22);
  });
});

void describe('fd passing over a unix socket', () => {
  let a: number;
  let b: number;
  before(() => {
    [a, b] = socketpair();
    openFds.push(a, b);
  });

  void it('socketpair gives two connected close-on-exec sockets', () => {
    assert.ok(Number.isInteger(a) && Number.isInteger(b) && a !== b);
    fs.writeSync(a, 'ping');
    const buffer = Buffer.alloc(4);
    assert.equal(fs.readSync(b, buffer, 0, 4, null), 4);
    assert.equal(buffer.toString(), 'ping');
    for (const fd of [a, b]) {
      assert.ok(fs.fstatSync(fd).isSocket());
      assert.ok(cloexec(fd), `fd ${fd} is not close-on-exec`);
    }
  });

  void it('recvFd receives a working descriptor of the file sendFd sent', () => {
    const file = path.join(dir, 'passed');
    fs.writeFileSync(file, 'hello through SCM_RIGHTS');
    const original = open(file, 'r');
    sendFd(a, original);
    const received = recvFd(b);
    openFds.push(received);
    assert.notEqual(received, original);
    assert.equal(fs.fstatSync(received).ino, fs.fstatSync(original).ino);
    fs.closeSync(original);
    assert.equal(readAt(received, 0, 24).toString(), 'hello through SCM_RIGHTS');
    assert.ok(cloexec(received), 'received fd is not close-on-exec');
  });

  void it('receives an fd sent by a child process that got its socket end through stdio', () => {
    // As with fusermount3: the child inherits one end (here as fd 3) and sends an fd back.
    const file = path.join(dir, 'from-child');
    fs.writeFileSync(file, 'from the child');
    const child = spawnSync(
      process.execPath,
      [
        '-e',
        `const addon = require(${JSON.stringify(ADDON)}); addon.sendFd(3, require('fs').openSync(${JSON.stringify(file)}, 'r'));`,
      ],
      { stdio: ['ignore', 'inherit', 'inherit', b] },
    );
    assert.equal(child.status, 0);
    const received = recvFd(a);
    openFds.push(received);
    assert.equal(readAt(received, 0, 14).toString(), 'from the child');
  });

  void it('a message without an fd, or a closed peer, throws ENOMSG', () => {
    const [c, d] = socketpair();
    openFds.push(c, d);
    fs.writeSync(c, 'x');
    assertErrno(() => recvFd(d), 'ENOMSG', 42);
    fs.closeSync(c);
    assertErrno(() => recvFd(d), 'ENOMSG', 42);
  });

  void it('fails cleanly on a descriptor that is not a socket', () => {
    const file = path.join(dir, 'not-a-socket');
    fs.writeFileSync(file, '');
    const f = open(file, 'r');
    assertErrno(() => sendFd(f, f), 'ENOTSOCK', 88);
    assertErrno(() => recvFd(f), 'ENOTSOCK', 88);
    assertErrno(() => sendFd(a, 1_000_000), 'EBADF', 9);
  });
});

/** FD_CLOEXEC as the kernel reports it: O_CLOEXEC (octal 02000000) in /proc/self/fdinfo's flags. */
function cloexec(fd: number): boolean {
  const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const flags = /^flags:\s+([0-7]+)$/m.exec(info)?.[1];
  assert.ok(flags !== undefined, info);
  return (parseInt(flags, 8) & 0o2000000) !== 0;
}

void describe('block device ioctls on a loop device', () => {
  const SIZE = 4 * 1024 * 1024;
  let image: string;
  let device: string | undefined;
  let fd: number;

  before(() => {
    image = path.join(dir, 'loop.img');
    fs.writeFileSync(image, pattern(SIZE, 5));
    device = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim();
    assert.match(device, /^\/dev\/loop\d+$/);
    fd = fs.openSync(device, 'r+');
  });

  after(() => {
    if (fd !== undefined) fs.closeSync(fd);
    if (device !== undefined) execFileSync('losetup', ['-d', device]);
  });

  void it('blockDeviceSize is the size of the backing file', () => {
    assert.equal(blockDeviceSize(fd), SIZE);
    assert.equal(blockDeviceSize(fd), fs.statSync(image).size);
  });

  void it('blockSectorSize is the logical sector size', () => {
    const expected = Number(execFileSync('blockdev', ['--getss', device ?? ''], { encoding: 'utf8' }).trim());
    assert.equal(blockSectorSize(fd), expected);
    assert.equal(blockSectorSize(fd), 512);
  });

  void it('blockDiscard zeroes the range (a hole in the backing file) and nothing else', () => {
    const offset = 1024 * 1024;
    const length = 512 * 1024;
    assert.ok(!isZero(readAt(fd, offset, length)));
    const blocksBefore = fs.statSync(image).blocks;
    blockDiscard(fd, offset, length);
    assert.ok(isZero(readAt(fd, offset, length)));
    assert.deepEqual(readAt(fd, offset - 512, 512), pattern(SIZE, 5).subarray(offset - 512, offset));
    assert.deepEqual(readAt(fd, offset + length, 512), pattern(SIZE, 5).subarray(offset + length, offset + length + 512));
    assert.ok(fs.statSync(image).blocks < blocksBefore, 'discard should punch a hole in the backing file');
  });

  void it('blockZeroout zeroes a sector-aligned range and nothing else', () => {
    const offset = 2 * 1024 * 1024 + 512;
    const length = 3 * 512;
    assert.ok(!isZero(readAt(fd, offset, length)));
    blockZeroout(fd, offset, length);
    assert.ok(isZero(readAt(fd, offset, length)));
    assert.deepEqual(readAt(fd, offset - 512, 512), pattern(SIZE, 5).subarray(offset - 512, offset));
    assert.deepEqual(readAt(fd, offset + length, 512), pattern(SIZE, 5).subarray(offset + length, offset + length + 512));
    fs.fsyncSync(fd);
    const backing = fs.readFileSync(image);
    assert.ok(isZero(backing.subarray(offset, offset + length)));
  });

  void it('rejects unaligned or out-of-range requests', () => {
    assertErrno(() => blockZeroout(fd, 100, 512), 'EINVAL', 22);
    assertErrno(() => blockDiscard(fd, 0, 100), 'EINVAL', 22);
    assertErrno(() => blockZeroout(fd, SIZE, 512), 'EINVAL', 22);
    assertErrno(() => blockDiscard(fd, -512, 512), 'EINVAL', 22);
  });

  void it('the ioctls on a regular file fail with ENOTTY', () => {
    const f = open(image, 'r');
    assertErrno(() => blockDeviceSize(f), 'ENOTTY', 25);
    assertErrno(() => blockSectorSize(f), 'ENOTTY', 25);
    assertErrno(() => blockDiscard(f, 0, 512), 'ENOTTY', 25);
  });
});

/** Nanoseconds since the epoch of `sec` + `nsec`, as lstat reports them. */
function ns(sec: number, nsec: number): bigint {
  return BigInt(sec) * 1_000_000_000n + BigInt(nsec);
}

/** Linux's dev_t encoding of (major, minor), as st_rdev shows it (glibc's makedev). */
function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return (mi & 0xffn) | ((ma & 0xfffn) << 8n) | ((mi & ~0xffn) << 12n) | ((ma & ~0xfffn) << 32n);
}

/** `getfattr -h -e hex -n NAME PATH`'s value as bytes (undefined when the attribute is absent). */
function getfattr(file: string, name: string): Buffer | undefined {
  const r = spawnSync('getfattr', ['-h', '--absolute-names', '-e', 'hex', '-n', name, file], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const m = new RegExp(`^${name.replace(/\./g, '\\.')}(?:=0x([0-9a-f]*))?$`, 'm').exec(r.stdout);
  assert.ok(m !== null, r.stdout);
  return Buffer.from(m[1] ?? '', 'hex');
}

const NON_UTF8 = Buffer.from([0x62, 0x69, 0x6e, 0xff, 0xfe, 0x2d, 0xc3, 0x28]); // "bin\xff\xfe-\xc3(": not UTF-8

void describe('lutimens', () => {
  let sub: string;
  before(() => {
    sub = path.join(dir, 'times');
    fs.mkdirSync(sub);
  });

  void it('sets atime and mtime to the nanosecond, before 1970, after 2038 and at the extremes of nsec', () => {
    const file = path.join(sub, 'f');
    fs.writeFileSync(file, 'x');
    const cases: [number, number, number, number][] = [
      [1614834367, 123456789, 1546300800, 1], // 2021, 2019
      [-14182939, 500000000, -1, 999999999], // 1969-07-20; one nanosecond before the epoch
      [4133980799, 999999999, 2214450367, 987654321], // 2100, 2040
      [0, 0, 2147483648, 0], // the epoch; one second past the 32-bit limit
      [-2147483648, 0, -2147483647, 999999999], // 1901-12-13, ext4's earliest (the test dir may be on ext4)
    ];
    for (const [as, an, ms, mn] of cases) {
      lutimens(file, as, an, ms, mn);
      const st = fs.lstatSync(file, { bigint: true });
      assert.equal(st.atimeNs, ns(as, an), `atime ${as}.${an}`);
      assert.equal(st.mtimeNs, ns(ms, mn), `mtime ${ms}.${mn}`);
    }
  });

  void it('sets a symlink’s own times and leaves its target alone; a directory’s too', () => {
    const target = path.join(sub, 'target');
    const link = path.join(sub, 'link');
    fs.writeFileSync(target, 't');
    fs.symlinkSync('target', link);
    lutimens(target, 1000, 1, 2000, 2);
    lutimens(link, 3000, 3, -4000, 4);
    const t = fs.lstatSync(target, { bigint: true });
    const l = fs.lstatSync(link, { bigint: true });
    assert.deepEqual([t.atimeNs, t.mtimeNs], [ns(1000, 1), ns(2000, 2)]);
    assert.deepEqual([l.atimeNs, l.mtimeNs], [ns(3000, 3), ns(-4000, 4)]);
    assert.ok(l.isSymbolicLink());
    // A dangling symlink works too: nothing is followed.
    const dangling = path.join(sub, 'dangling');
    fs.symlinkSync('nowhere', dangling);
    lutimens(dangling, 5, 5, 6, 6);
    assert.equal(fs.lstatSync(dangling, { bigint: true }).mtimeNs, ns(6, 6));
    lutimens(sub, 7, 7, 8, 8);
    assert.equal(fs.lstatSync(sub, { bigint: true }).mtimeNs, ns(8, 8));
  });

  void it('takes Buffer, Uint8Array and non-UTF-8 paths', () => {
    const raw = Buffer.concat([Buffer.from(sub + '/'), NON_UTF8]);
    fs.writeFileSync(raw, 'raw name');
    lutimens(raw, 11, 12, 13, 14);
    assert.equal(fs.lstatSync(raw, { bigint: true }).mtimeNs, ns(13, 14));
    const view = new Uint8Array(raw.length + 4).fill(0x41);
    view.set(raw, 2);
    lutimens(view.subarray(2, 2 + raw.length), 15, 16, 17, 18); // a view with an offset into its buffer
    assert.equal(fs.lstatSync(raw, { bigint: true }).mtimeNs, ns(17, 18));
    const utf8 = path.join(sub, 'ünïcödé');
    fs.writeFileSync(utf8, '');
    lutimens(utf8, 19, 20, 21, 22);
    assert.equal(fs.lstatSync(Buffer.from(utf8), { bigint: true }).mtimeNs, ns(21, 22));
  });

  void it('rejects bad times with EINVAL and bad paths with the kernel’s errno', () => {
    const file = path.join(sub, 'f');
    const before = fs.lstatSync(file, { bigint: true }).mtimeNs;
    assertErrno(() => lutimens(file, 0, 1_000_000_000, 0, 0), 'EINVAL', 22);
    assertErrno(() => lutimens(file, 0, 0, 0, -1), 'EINVAL', 22);
    assertErrno(() => lutimens(file, 0.5, 0, 0, 0), 'EINVAL', 22);
    assertErrno(() => lutimens(file, 0, 0, Number.NaN, 0), 'EINVAL', 22);
    assertErrno(() => lutimens(file, 0, 0, -(2 ** 53) - 2, 0), 'EINVAL', 22);
    assertErrno(() => lutimens(file, 0, 0, Number.POSITIVE_INFINITY, 0), 'EINVAL', 22);
    assertErrno(() => lutimens(`${file}\0x`, 0, 0, 0, 0), 'EINVAL', 22);
    assert.equal(fs.lstatSync(file, { bigint: true }).mtimeNs, before, 'nothing changed');
    assertErrno(() => lutimens(path.join(sub, 'missing'), 0, 0, 0, 0), 'ENOENT', 2);
    assertErrno(() => lutimens('', 0, 0, 0, 0), 'ENOENT', 2);
    assertErrno(() => lutimens(path.join(file, 'below'), 0, 0, 0, 0), 'ENOTDIR', 20);
    assertErrno(() => lutimens('/' + 'a'.repeat(5000), 0, 0, 0, 0), 'ENAMETOOLONG', 36);
    assertErrno(() => lutimens(Buffer.alloc(5000, 0x61), 0, 0, 0, 0), 'ENAMETOOLONG', 36);
    const raw = native.lutimens as unknown as (...args: unknown[]) => void;
    assert.throws(() => raw(42, 0, 0, 0, 0), TypeError);
    assert.throws(() => raw(file, 0, 0, 0), TypeError);
    assert.throws(() => raw(file, 0n, 0, 0, 0), TypeError);
    assert.throws(() => raw(new Uint16Array(4), 0, 0, 0, 0), TypeError);
    try {
      lutimens(path.join(sub, 'missing'), 0, 0, 0, 0);
    } catch (error) {
      assert.ok(isNativeSyscallError(error));
      assert.equal(error.syscall, 'utimensat');
    }
  });
});

void describe('writeNewFile', () => {
  let sub: string;
  before(() => {
    sub = path.join(dir, 'newfiles');
    fs.mkdirSync(sub);
  });

  void it('makes a file with the data, the mode (less the umask) and both times to the nanosecond', () => {
    assert.ok(canWriteNewFile());
    const data = pattern(10_000, 3);
    const oldMask = process.umask(0);
    try {
      writeNewFile(path.join(sub, 'f'), data, 0o1751, -14182939, 500000000, 4133980799, 999999999);
      writeNewFile(Buffer.concat([Buffer.from(sub + '/'), NON_UTF8]), new Uint8Array(0), 0o444, 1, 2, 3, 4);
    } finally {
      process.umask(oldMask);
    }
    const oldMask2 = process.umask(0o027);
    try {
      writeNewFile(path.join(sub, 'masked'), data.subarray(5, 10), 0o777, 0, 0, 0, 0);
    } finally {
      process.umask(oldMask2);
    }
    const st = fs.lstatSync(path.join(sub, 'f'), { bigint: true });
    assert.deepEqual(fs.readFileSync(path.join(sub, 'f')), data);
    assert.equal(Number(st.mode) & 0o7777, 0o1751);
    assert.equal(st.atimeNs, ns(-14182939, 500000000));
    assert.equal(st.mtimeNs, ns(4133980799, 999999999));
    const empty = fs.lstatSync(Buffer.concat([Buffer.from(sub + '/'), NON_UTF8]), { bigint: true });
    assert.equal(empty.size, 0n);
    assert.equal(Number(empty.mode) & 0o7777, 0o444);
    assert.equal(empty.mtimeNs, ns(3, 4));
    assert.deepEqual(fs.readFileSync(path.join(sub, 'masked')), data.subarray(5, 10));
    assert.equal(fs.lstatSync(path.join(sub, 'masked')).mode & 0o7777, 0o750);
  });

  void it('never replaces or follows: an existing file or symlink is EEXIST and stays as it was', () => {
    fs.writeFileSync(path.join(sub, 'old'), 'old');
    fs.symlinkSync('old', path.join(sub, 'link'));
    fs.symlinkSync('nowhere', path.join(sub, 'dangling'));
    assertErrno(() => writeNewFile(path.join(sub, 'old'), pattern(4), 0o600, 0, 0, 0, 0), 'EEXIST', 17);
    assertErrno(() => writeNewFile(path.join(sub, 'link'), pattern(4), 0o600, 0, 0, 0, 0), 'EEXIST', 17);
    assertErrno(() => writeNewFile(path.join(sub, 'dangling'), pattern(4), 0o600, 0, 0, 0, 0), 'EEXIST', 17);
    assert.equal(fs.readFileSync(path.join(sub, 'old'), 'utf8'), 'old');
    assert.equal(fs.existsSync(path.join(sub, 'nowhere')), false);
    try {
      writeNewFile(path.join(sub, 'missing', 'f'), pattern(4), 0o600, 0, 0, 0, 0);
      assert.fail('no error');
    } catch (error) {
      assert.ok(isNativeSyscallError(error));
      assert.equal(error.code, 'ENOENT');
      assert.equal(error.syscall, 'open');
    }
  });

  void it('a file whose data does not fit is removed again (ENOSPC, syscall write)', (t) => {
    withTinyTmpfs(t, path.join(sub, 'small'), (small) => {
      try {
        writeNewFile(path.join(small, 'big'), pattern(256 * 1024), 0o600, 0, 0, 0, 0);
        assert.fail('no error');
      } catch (error) {
        assert.ok(isNativeSyscallError(error));
        assert.equal(error.code, 'ENOSPC');
        assert.equal(error.syscall, 'write');
      }
      assert.deepEqual(fs.readdirSync(small), []);
    });
  });

  void it('rejects bad arguments before creating anything', () => {
    const file = path.join(sub, 'bad');
    assertErrno(() => writeNewFile(file, pattern(4), 0o10000, 0, 0, 0, 0), 'EINVAL', 22);
    assertErrno(() => writeNewFile(file, pattern(4), 0o600, 0, 1_000_000_000, 0, 0), 'EINVAL', 22);
    assertErrno(() => writeNewFile(file, pattern(4), 0o600, 0, 0, 0.5, 0), 'EINVAL', 22);
    const raw = native.writeNewFile as unknown as (...args: unknown[]) => void;
    assert.throws(() => raw(file, 'text', 0o600, 0, 0, 0, 0), TypeError);
    assert.throws(() => raw(file, pattern(4), 0o600, 0, 0, 0), TypeError);
    assert.equal(fs.existsSync(file), false);
  });
});

void describe('BackgroundFileWriter', () => {
  let sub: string;
  before(() => {
    sub = path.join(dir, 'background');
    fs.mkdirSync(sub);
  });

  void it('writes every file added (data, mode less the umask, ns times) across many batches; the data is copied at add', () => {
    assert.ok(canWriteInBackground());
    const writer = new BackgroundFileWriter();
    const reused = Buffer.alloc(5000);
    const expected: Buffer[] = [];
    const oldMask = process.umask(0o022);
    try {
      // 1,000 files (several batches of 256, so both threads work), then 3 large ones
      // (2 MiB batches fill up by bytes), from one buffer overwritten after each add.
      for (let i = 0; i < 1003; i++) {
        const size = i < 1000 ? (i * 37) % 5000 : 1_500_000;
        const data = size <= reused.length ? reused.subarray(0, size) : Buffer.alloc(size);
        pattern(size, i).copy(data);
        expected.push(Buffer.from(data));
        const name = i === 7 ? Buffer.concat([Buffer.from(sub + '/'), NON_UTF8]) : path.join(sub, `f${i}`);
        assert.equal(writer.add(name, data, i % 2 === 0 ? 0o644 : 0o777, 1000 + i, i, -5 - i, 999_999_999 - i), 0);
        data.fill(0);
      }
      assert.equal(writer.busy, true);
      assert.deepEqual(writer.drain(), []);
      assert.equal(writer.busy, false);
    } finally {
      process.umask(oldMask);
    }
    for (let i = 0; i < 1003; i++) {
      const file = i === 7 ? Buffer.concat([Buffer.from(sub + '/'), NON_UTF8]) : path.join(sub, `f${i}`);
      const st = fs.lstatSync(file, { bigint: true });
      assert.deepEqual(fs.readFileSync(file), expected[i], `f${i}'s data`);
      assert.equal(Number(st.mode) & 0o7777, i % 2 === 0 ? 0o644 : 0o755, `f${i}'s mode`);
      assert.equal(st.atimeNs, ns(1000 + i, i));
      assert.equal(st.mtimeNs, ns(-5 - i, 999_999_999 - i));
    }
  });

  void it('reports what it could not create, naming the path and the syscall; the rest is written', () => {
    fs.writeFileSync(path.join(sub, 'taken'), 'old');
    const writer = new BackgroundFileWriter();
    writer.add(path.join(sub, 'taken'), pattern(10), 0o600, 0, 0, 0, 0);
    writer.add(path.join(sub, 'no-dir', 'f'), pattern(10), 0o600, 0, 0, 0, 0);
    writer.add(path.join(sub, 'fine'), pattern(10), 0o600, 0, 0, 0, 0);
    const failures = writer.drain();
    assert.deepEqual(
      failures.map((f) => [f.path.toString(), f.error.code, f.error.errno, f.error.syscall]),
      [
        [path.join(sub, 'taken'), 'EEXIST', 17, 'open'],
        [path.join(sub, 'no-dir', 'f'), 'ENOENT', 2, 'open'],
      ],
    );
    assert.ok(failures.every((f) => isNativeSyscallError(f.error) && /^E[A-Z]+: .*, open$/.test(f.error.message)));
    assert.equal(fs.readFileSync(path.join(sub, 'taken'), 'utf8'), 'old');
    assert.deepEqual(fs.readFileSync(path.join(sub, 'fine')), pattern(10));
    assert.deepEqual(writer.take(), [], 'taken once');
  });

  void it('on a full destination: the file that did not fit is removed, nothing after it is tried, one failure', (t) => {
    withTinyTmpfs(t, path.join(sub, 'small'), (small) => {
      const writer = new BackgroundFileWriter();
      for (let i = 0; i < 20; i++) writer.add(path.join(small, `f${i}`), pattern(16 * 1024, i), 0o600, 0, 0, 0, 0);
      const failures = writer.drain();
      assert.equal(failures.length, 1, JSON.stringify(failures));
      assert.equal(failures[0]?.error.code, 'ENOSPC');
      assert.equal(failures[0]?.error.syscall, 'write');
      const names = fs.readdirSync(small);
      assert.ok(names.length >= 1 && names.length < 20, names.join(' '));
      assert.ok(!names.includes(path.basename(failures[0]?.path.toString() ?? '')), 'the partly written file is gone');
      for (const name of names) assert.deepEqual(fs.readFileSync(path.join(small, name)), pattern(16 * 1024, Number(name.slice(1))), `${name} is whole`);
    });
  });

  void it('addFromFd: the data is read from a file at an offset; a failed read creates nothing and names the source', () => {
    const sourceFile = path.join(sub, 'source.bin');
    const content = pattern(300_000, 9);
    fs.writeFileSync(sourceFile, content);
    const fd = open(sourceFile, 'r');
    const writer = new BackgroundFileWriter();
    writer.add(path.join(sub, 'inline'), pattern(10, 1), 0o640, 0, 0, 7, 8);
    for (let i = 0; i < 300; i++) writer.add(path.join(sub, `mix${i}`), pattern(i, i), 0o600, 0, 0, 0, 0); // past one batch
    writer.addFromFd(path.join(sub, 'from-fd'), fd, 12_345, 200_000, 'image:/the/file', 0o604, 1, 2, 3, 4);
    writer.addFromFd(path.join(sub, 'empty-from-fd'), fd, 0, 0, 'image:/empty', 0o600, 0, 0, 0, 0);
    writer.addFromFd(path.join(sub, 'past-the-end'), fd, 250_000, 100_000, Buffer.concat([Buffer.from('image:/'), NON_UTF8]), 0o600, 0, 0, 0, 0);
    const failures = writer.drain();
    assert.equal(failures.length, 1, JSON.stringify(failures));
    assert.equal(failures[0]?.error.code, 'EIO');
    assert.equal(failures[0]?.error.syscall, 'read');
    assert.deepEqual(failures[0]?.source, Buffer.concat([Buffer.from('image:/'), NON_UTF8]));
    assert.equal(failures[0]?.path.toString(), path.join(sub, 'past-the-end'));
    assert.equal(fs.existsSync(path.join(sub, 'past-the-end')), false, 'nothing created when the read failed');
    assert.deepEqual(fs.readFileSync(path.join(sub, 'from-fd')), content.subarray(12_345, 212_345));
    const st = fs.statSync(path.join(sub, 'from-fd'), { bigint: true });
    assert.equal(Number(st.mode) & 0o777, 0o604 & ~process.umask());
    assert.equal(st.mtimeNs, ns(3, 4));
    assert.equal(fs.statSync(path.join(sub, 'empty-from-fd')).size, 0);
    assert.deepEqual(fs.readFileSync(path.join(sub, 'inline')), pattern(10, 1));
    assert.deepEqual(fs.readFileSync(path.join(sub, 'mix299')), pattern(299, 299));
  });

  void it('addFromFd over many batches: dense, interleaved-source and sparse batches all read right (read-ahead is advice only)', () => {
    // A thread taking a batch advises the kernel to read its source span, and the next
    // batch's, when dense in one descriptor; batches of two sources or widely spread
    // items are not advised. None of it may change what is written.
    const a = pattern(2 << 20, 21);
    const b = pattern(2 << 20, 22);
    const fileA = path.join(sub, 'src-a.bin');
    const fileB = path.join(sub, 'src-b.bin');
    fs.writeFileSync(fileA, a);
    fs.writeFileSync(fileB, b);
    const fdA = open(fileA, 'r');
    const fdB = open(fileB, 'r');
    const dir = path.join(sub, 'batches');
    fs.mkdirSync(dir);
    const expected = new Map<string, Buffer>();
    const add = (name: string, fd: number, src: Buffer, offset: number, length: number): void => {
      writer.addFromFd(path.join(dir, name), fd, offset, length, `src:${name}`, 0o600, 0, 0, 0, 0);
      expected.set(name, src.subarray(offset, offset + length));
    };
    const writer = new BackgroundFileWriter();
    for (let i = 0; i < 300; i++) add(`dense${i}`, fdA, a, i * 4096, 1000 + (i % 7) * 400); // one source, in order
    for (let i = 0; i < 260; i++) add(`mixed${i}`, i % 2 === 0 ? fdA : fdB, i % 2 === 0 ? a : b, i * 3000, 2500); // two sources
    for (let i = 0; i < 260; i++) add(`sparse${i}`, fdB, b, ((i * 7919) % 256) * 8000, 100); // far apart, out of order
    assert.deepEqual(writer.drain(), []);
    assert.equal(fs.readdirSync(dir).length, expected.size);
    for (const [name, data] of expected) assert.deepEqual(fs.readFileSync(path.join(dir, name)), data, name);
  });

  void it('rejects bad arguments at add, before queueing anything', () => {
    const writer = new BackgroundFileWriter();
    const file = path.join(sub, 'bad');
    assertErrno(() => writer.add(file, pattern(4), 0o10000, 0, 0, 0, 0), 'EINVAL', 22);
    assertErrno(() => writer.add(file, pattern(4), 0o600, 0, 1_000_000_000, 0, 0), 'EINVAL', 22);
    assertErrno(() => writer.add(`${file}\0x`, pattern(4), 0o600, 0, 0, 0, 0), 'EINVAL', 22);
    assertErrno(() => writer.addFromFd(file, -1, 0, 10, 'src', 0o600, 0, 0, 0, 0), 'EINVAL', 22);
    assertErrno(() => writer.addFromFd(file, 0, 0, 64 << 20, 'src', 0o600, 0, 0, 0, 0), 'EFBIG', 27);
    assert.deepEqual(writer.drain(), []);
    assert.equal(fs.existsSync(file), false);
  });
});

void describe('lgetxattr', () => {
  void it('reads a value set by lsetxattr; undefined for a missing one', (t) => {
    const file = path.join(dir, 'xattr-get');
    fs.writeFileSync(file, 'x');
    try {
      lsetxattr(file, 'user.probe', new Uint8Array([1, 2]));
    } catch (error) {
      if ((error as { code?: string }).code === 'EOPNOTSUPP') {
        t.skip('no user xattrs on the test directory');
        return;
      }
      throw error;
    }
    const value = new Uint8Array(300).map((_, i) => (i * 7) & 0xff);
    lsetxattr(file, 'user.big', value);
    assert.deepEqual(new Uint8Array(lgetxattr(file, 'user.big') ?? []), value);
    assert.deepEqual([...(lgetxattr(Buffer.from(file), 'user.probe') ?? [])], [1, 2]);
    assert.equal(lgetxattr(file, 'user.absent'), undefined);
    assertErrno(() => lgetxattr(path.join(dir, 'missing-file'), 'user.x'), 'ENOENT', 2);
  });
});

void describe('mknod', () => {
  let sub: string;
  before(() => {
    sub = path.join(dir, 'nodes');
    fs.mkdirSync(sub);
  });

  void it('makes fifos and sockets with the given permission bits', () => {
    const oldMask = process.umask(0);
    try {
      mknod(path.join(sub, 'fifo'), S_IFIFO | 0o640, 0, 0);
      mknod(Buffer.from(path.join(sub, 'sock')), S_IFSOCK | 0o755, 0, 0);
      mknod(path.join(sub, 'regular'), 0o600, 0, 0); // type 0: a regular file
    } finally {
      process.umask(oldMask);
    }
    const fifo = fs.lstatSync(path.join(sub, 'fifo'));
    assert.ok(fifo.isFIFO());
    assert.equal(fifo.mode & 0o7777, 0o640);
    const sock = fs.lstatSync(path.join(sub, 'sock'));
    assert.ok(sock.isSocket());
    assert.equal(sock.mode & 0o7777, 0o755);
    assert.ok(fs.lstatSync(path.join(sub, 'regular')).isFile());
    assert.equal(S_IFCHR, 0o020000);
    assert.equal(S_IFBLK, 0o060000);
  });

  void it('makes character and block devices with their major and minor numbers (root)', { skip: process.getuid?.() !== 0 && 'needs root' }, () => {
    const cases: [string, number, number, number][] = [
      ['null', S_IFCHR | 0o666, 1, 3],
      ['loop', S_IFBLK | 0o660, 7, 200],
      ['wide', S_IFCHR | 0o600, 259, 65537], // minor above 8 bits, major above 8 bits
      ['widest', S_IFBLK | 0o600, 4095, 1048575], // the largest the kernel keeps (12 and 20 bits)
    ];
    for (const [name, mode, major, minor] of cases) {
      const file = path.join(sub, name);
      mknod(file, mode, major, minor);
      const st = fs.lstatSync(file, { bigint: true });
      assert.equal(st.isCharacterDevice(), (mode & 0o170000) === S_IFCHR, name);
      assert.equal(st.isBlockDevice(), (mode & 0o170000) === S_IFBLK, name);
      assert.equal(st.rdev, makedev(major, minor), name);
    }
    // /dev/null's twin works as one.
    fs.writeFileSync(path.join(sub, 'null'), 'discarded');
    assert.equal(fs.readFileSync(path.join(sub, 'null')).length, 0);
  });

  void it('on a non-UTF-8 name', () => {
    const raw = Buffer.concat([Buffer.from(sub + '/'), NON_UTF8]);
    mknod(raw, S_IFIFO | 0o600, 0, 0);
    assert.ok(fs.lstatSync(raw).isFIFO());
  });

  void it('fails with EEXIST, ENOENT, EINVAL, and EPERM for a device made without privilege', () => {
    assertErrno(() => mknod(path.join(sub, 'fifo'), S_IFIFO | 0o600, 0, 0), 'EEXIST', 17);
    assertErrno(() => mknod(path.join(sub, 'no', 'such'), S_IFIFO | 0o600, 0, 0), 'ENOENT', 2);
    assertErrno(() => mknod(path.join(sub, 'dir'), 0o040000 | 0o700, 0, 0), 'EPERM', 1); // mknod cannot make directories
    assertErrno(() => mknod(path.join(sub, 'x'), -1, 0, 0), 'EINVAL', 22);
    assertErrno(() => mknod(path.join(sub, 'x'), S_IFCHR, 2 ** 32, 0), 'EINVAL', 22);
    assertErrno(() => mknod(path.join(sub, 'x'), S_IFCHR, 0, 1.5), 'EINVAL', 22);
    assert.equal(fs.existsSync(path.join(sub, 'x')), false);
    if (process.getuid?.() === 0) {
      // As nobody, in a directory nobody may write to: a fifo is fine, a device is EPERM.
      const open = path.join(dir, 'nobody');
      fs.mkdirSync(open);
      fs.chmodSync(open, 0o777);
      fs.chmodSync(dir, 0o755);
      const code = [
        `const addon = require(${JSON.stringify(ADDON)});`,
        `addon.mknod(${JSON.stringify(path.join(open, 'fifo'))}, ${S_IFIFO | 0o600}, 0, 0);`,
        `try { addon.mknod(${JSON.stringify(path.join(open, 'dev'))}, ${S_IFCHR | 0o600}, 1, 3); console.log('made'); } catch (e) { console.log(e.code, e.errno, e.syscall); }`,
      ].join('\n');
      const child = spawnSync(process.execPath, ['-e', code], { uid: 65534, gid: 65534, encoding: 'utf8' });
      assert.equal(child.status, 0, child.stderr);
      assert.equal(child.stdout.trim(), 'EPERM 1 mknod');
      assert.ok(fs.lstatSync(path.join(open, 'fifo')).isFIFO());
      assert.equal(fs.existsSync(path.join(open, 'dev')), false);
    }
  });
});

void describe('lsetxattr', () => {
  let sub: string;
  before(() => {
    sub = path.join(dir, 'xattrs');
    fs.mkdirSync(sub);
  });

  void it('sets and replaces user.* attributes that getfattr reads back, binary and empty values included', () => {
    const file = path.join(sub, 'f');
    fs.writeFileSync(file, '');
    lsetxattr(file, 'user.greeting', Buffer.from('hello'));
    assert.deepEqual(getfattr(file, 'user.greeting'), Buffer.from('hello'));
    lsetxattr(file, 'user.greeting', Buffer.from('replaced, longer'));
    assert.deepEqual(getfattr(file, 'user.greeting'), Buffer.from('replaced, longer'));
    const binary = Uint8Array.from([0x00, 0xff, 0x7f, 0x80, 0x00]);
    lsetxattr(file, 'user.bin', binary);
    assert.deepEqual(getfattr(file, 'user.bin'), Buffer.from(binary));
    lsetxattr(file, 'user.empty', new Uint8Array(0));
    assert.deepEqual(getfattr(file, 'user.empty'), Buffer.alloc(0));
    const big = pattern(3000, 9);
    lsetxattr(file, 'user.big', big.subarray(1000)); // a view with an offset
    assert.deepEqual(getfattr(file, 'user.big'), big.subarray(1000));
    lsetxattr(sub, 'user.ondir', Buffer.from('d'));
    assert.deepEqual(getfattr(sub, 'user.ondir'), Buffer.from('d'));
  });

  void it('works on a symlink itself (trusted.*, root) and never on its target', { skip: process.getuid?.() !== 0 && 'needs root' }, () => {
    const target = path.join(sub, 'target');
    const link = path.join(sub, 'link');
    fs.writeFileSync(target, '');
    fs.symlinkSync('target', link);
    lsetxattr(link, 'trusted.onlink', Buffer.from('L'));
    assert.deepEqual(getfattr(link, 'trusted.onlink'), Buffer.from('L'));
    assert.equal(getfattr(target, 'trusted.onlink'), undefined);
    // user.* is for regular files and directories only: on a symlink the kernel says EPERM.
    assertErrno(() => lsetxattr(link, 'user.x', Buffer.from('x')), 'EPERM', 1);
    assert.equal(getfattr(target, 'user.x'), undefined);
  });

  void it('on a non-UTF-8 name', () => {
    const raw = Buffer.concat([Buffer.from(sub + '/'), NON_UTF8]);
    fs.writeFileSync(raw, '');
    lsetxattr(raw, 'user.raw', Buffer.from('bytes'));
    // getfattr's argv cannot carry the raw bytes: look through a second (ASCII) name of the inode.
    fs.linkSync(raw, path.join(sub, 'raw-alias'));
    assert.deepEqual(getfattr(path.join(sub, 'raw-alias'), 'user.raw'), Buffer.from('bytes'));
  });

  void it('reports ENOTSUP as EOPNOTSUPP, and ENOENT, ERANGE, EINVAL and type errors', () => {
    assertErrno(() => lsetxattr('/proc/self/comm', 'user.x', Buffer.from('x')), 'EOPNOTSUPP', 95);
    assertErrno(() => lsetxattr(path.join(sub, 'missing'), 'user.x', Buffer.from('x')), 'ENOENT', 2);
    const file = path.join(sub, 'f');
    assertErrno(() => lsetxattr(file, `user.${'n'.repeat(251)}`, Buffer.from('x')), 'ERANGE', 34); // 256 bytes
    lsetxattr(file, `user.${'n'.repeat(250)}`, Buffer.from('x')); // 255: the longest allowed
    assertErrno(() => lsetxattr(file, 'user.a\0b', Buffer.from('x')), 'EINVAL', 22);
    assertErrno(() => lsetxattr(file, 'nonamespace', Buffer.from('x')), 'EOPNOTSUPP', 95);
    const raw = native.lsetxattr as unknown as (...args: unknown[]) => void;
    assert.throws(() => raw(file, 'user.x', 'a string'), TypeError);
    assert.throws(() => raw(file, Buffer.from('user.x'), Buffer.from('x')), TypeError);
    assert.throws(() => raw(file, 'user.x'), TypeError);
  });
});

void describe('inodeChecksumsOk (the batched inode checksum check)', () => {
  /** A random record of `size` bytes with i_extra_isize `extra` (when it has an extra part) and its checksum set. */
  function record(size: number, extra: number, seed: number, ino: number, rnd: () => number): Uint8Array {
    const raw = new Uint8Array(size);
    for (let i = 0; i < size; i++) raw[i] = rnd() & 0xff;
    if (size > GOOD_OLD_INODE_SIZE) {
      raw[INODE_OFFSETS.extraIsize] = extra & 0xff;
      raw[INODE_OFFSETS.extraIsize + 1] = extra >> 8;
    }
    setInodeChecksum(raw, { inodeNo: ino, fsCsumSeed: seed });
    return raw;
  }

  void it('agrees with the TypeScript check, record by record, for every record size and extra size', () => {
    let state = 12345;
    const rnd = (): number => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 8;
    for (const [size, extras] of [
      [128, [0]],
      [256, [0, 2, 4, 28, 32, 128]],
      [512, [4, 32, 384]],
    ] as const) {
      for (const extra of extras) {
        const seed = rnd() >>> 0;
        const count = 16;
        const first = 1 + (rnd() % 100000);
        const block = new Uint8Array(size * count);
        for (let i = 0; i < count; i++) block.set(record(size, extra, seed, first + i, rnd), i * size);
        // Spoil some: a flipped byte, a wrong inode number's checksum, an all-zero record.
        block[3 * size + 40] = ((block[3 * size + 40] as number) ^ 0x10) & 0xff;
        block.set(record(size, extra, seed, first + 99, rnd), 5 * size);
        block.fill(0, 7 * size, 8 * size);
        const out = new Uint8Array(count);
        const matched = inodeChecksumsOk(block, size, seed, first, out);
        assert.notEqual(matched, undefined, 'the addon has inodeChecksumsOk');
        let expected = 0;
        for (let i = 0; i < count; i++) {
          const raw = block.subarray(i * size, (i + 1) * size);
          const ok = storedInodeChecksum(raw) === inodeChecksum(raw, { inodeNo: first + i, fsCsumSeed: seed });
          assert.equal(out[i], ok ? 1 : 0, `record ${i} (size ${size}, extra ${extra})`);
          if (ok) expected++;
        }
        assert.equal(matched, expected);
        assert.equal(out[3], 0);
        assert.equal(out[5], 0);
      }
    }
  });

  void it('rejects bad arguments', () => {
    const out = new Uint8Array(4);
    assert.throws(() => inodeChecksumsOk(new Uint8Array(512), 100, 0, 1, out), /EINVAL/);
    assert.throws(() => inodeChecksumsOk(new Uint8Array(1024), 128, 0, 1, out), /EINVAL/, 'out too short');
    const raw = native.inodeChecksumsOk as unknown as (...args: unknown[]) => number;
    assert.throws(() => raw('x', 128, 0, 1, out), TypeError);
    assert.equal(inodeChecksumsOk(new Uint8Array(512), 128, 0, 1, out), 0, 'all-zero records do not match (the caller accepts those itself)');
  });
});

void describe('InodeChecksumMemo (inode checksums a table block at a time)', () => {
  void it('answers like the per-record check in every group, keeps bits for at most 1,024 groups at once', () => {
    const size = 256;
    const ipg = 16; // one 4 KiB table block per group
    const groups = 1500;
    const seed = 0x1234_5678;
    const geo = { inodesCount: groups * ipg, inodesPerGroup: ipg, inodeSize: size, blockSize: 4096, csumSeed: seed };
    const memo = new InodeChecksumMemo(geo);
    const blocks: Uint8Array[] = [];
    for (let g = 0; g < groups; g++) {
      const block = new Uint8Array(ipg * size);
      for (let i = 0; i < ipg; i++) {
        const raw = block.subarray(i * size, (i + 1) * size);
        raw.fill((g * 7 + i) & 0xff);
        raw[INODE_OFFSETS.extraIsize] = 32;
        raw[INODE_OFFSETS.extraIsize + 1] = 0;
        setInodeChecksum(raw, { inodeNo: g * ipg + i + 1, fsCsumSeed: seed });
      }
      const spoil = (g % ipg) * size + 8;
      block[spoil] = ((block[spoil] as number) ^ 0x40) & 0xff; // one spoiled record per group
      blocks.push(block);
    }
    for (let pass = 0; pass < 2; pass++) {
      for (let g = 0; g < groups; g++) {
        for (let i = 0; i < ipg; i++) {
          const ino = g * ipg + i + 1;
          const got = memo.verified(ino, g, i, blocks[g] as Uint8Array, i * size);
          assert.equal(got, i !== g % ipg, `inode ${ino} (pass ${pass})`);
        }
        assert.ok(memo.groupsKept <= 1024, `${memo.groupsKept} groups kept`);
      }
    }
  });
});
