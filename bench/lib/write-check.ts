/**
 * Checks and inputs of the write benchmark (bench/write.ts):
 *
 *   - `fsck`: `e2fsck -fn IMG`, clean or not, with the lines it complained with;
 *   - `compareTrees`: a copied tree (read through a kernel read-only mount of the
 *     result) against its source: entries missing or extra, and per entry the type,
 *     permission bits (mode & 07777), owner, size, mtime, symlink target and content;
 *   - `writeRandomFile`: incompressible input for the sequential write (AES-256-CTR
 *     keystream with a fixed key, as bench/lib/mount-image.ts does), with its sha256;
 *   - `SMALL_SCRIPT`: the client of the small-files workload (a Node script run as a
 *     child process: it creates COUNT files of 1-4 KiB in directories of 1,000).
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface FsckResult {
  readonly clean: boolean;
  readonly status: number | null;
  /** "N/M files (...), B/T blocks", if printed. */
  readonly summary: string;
  /** e2fsck's complaints: its output without the banner, the pass headers and the summary. */
  readonly complaints: readonly string[];
}

export function fsck(image: string): FsckResult {
  const r = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const lines = `${r.stdout}\n${r.stderr}`.split('\n').map((l) => l.trimEnd());
  let summary = '';
  const complaints: string[] = [];
  for (const line of lines) {
    if (line.trim() === '' || /^e2fsck \d/.test(line) || /^Pass \d/.test(line)) continue;
    if (/: \d+\/\d+ files .*blocks$/.test(line)) {
      summary = line.slice(line.indexOf(': ') + 2);
      continue;
    }
    complaints.push(line.trim());
  }
  return { clean: r.status === 0, status: r.status, summary, complaints };
}

interface Entry {
  readonly type: 'f' | 'd' | 'l' | 'o';
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly target: string | undefined;
}

/** Every entry below `root` (and root itself, as ''), by relative path. */
function snapshot(root: string, skipTopLevel: readonly string[]): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const add = (rel: string): Entry => {
    const full = rel === '' ? root : path.join(root, rel);
    const st = fs.lstatSync(full, { bigint: true });
    const type = st.isFile() ? 'f' : st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'o';
    const e: Entry = {
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: st.size,
      mtimeNs: st.mtimeNs,
      target: type === 'l' ? fs.readlinkSync(full) : undefined,
    };
    out.set(rel, e);
    return e;
  };
  const visit = (rel: string): void => {
    const names = fs.readdirSync(rel === '' ? root : path.join(root, rel));
    for (const name of names) {
      if (rel === '' && skipTopLevel.includes(name)) continue;
      const child = rel === '' ? name : `${rel}/${name}`;
      if (add(child).type === 'd') visit(child);
    }
  };
  add('');
  visit('');
  return out;
}

function sameContent(a: string, b: string, bufA: Buffer, bufB: Buffer): boolean {
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  try {
    for (let pos = 0; ; ) {
      const na = fs.readSync(fa, bufA, 0, bufA.length, pos);
      let nb = 0;
      while (nb < na) {
        const n = fs.readSync(fb, bufB, nb, na - nb, pos + nb);
        if (n === 0) break;
        nb += n;
      }
      if (na !== nb || bufA.compare(bufB, 0, nb, 0, na) !== 0) return false;
      if (na === 0) return fs.readSync(fb, bufB, 0, 1, pos) === 0;
      pos += na;
    }
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

export const DIFF_KINDS = ['missing', 'extra', 'type', 'perm', 'owner', 'size', 'mtime', 'target', 'content'] as const;
export type DiffKind = (typeof DIFF_KINDS)[number];

export interface TreeDiff {
  readonly sourceEntries: number;
  readonly copyEntries: number;
  /** Entries that differ, by kind (one entry may count under several kinds). */
  readonly counts: Record<DiffKind, number>;
  /** The first few differences, as "kind rel: source vs copy". */
  readonly examples: readonly string[];
  /** The most common (source mode -> copy mode) pairs among the permission mismatches. */
  readonly permPairs: readonly string[];
  readonly seconds: number;
}

/**
 * Compare the tree `copy` with `source`. `mtime`: 'ns' compares to the nanosecond,
 * 's' in whole seconds (tar's default format keeps seconds). Directory sizes are not
 * compared (they depend on the filesystem); the content of every regular file is.
 */
export function compareTrees(source: string, copy: string, options: { mtime: 'ns' | 's'; content: boolean }): TreeDiff {
  const t0 = performance.now();
  const src = snapshot(source, []);
  const dst = snapshot(copy, ['lost+found']);
  const counts = Object.fromEntries(DIFF_KINDS.map((k) => [k, 0])) as Record<DiffKind, number>;
  const examples: string[] = [];
  const pairs = new Map<string, number>();
  const note = (kind: DiffKind, rel: string, detail: string): void => {
    counts[kind]++;
    if (examples.length < 8) examples.push(`${kind} ${rel === '' ? '.' : rel}${detail === '' ? '' : `: ${detail}`}`);
  };
  const bufA = Buffer.allocUnsafe(1 << 20);
  const bufB = Buffer.allocUnsafe(1 << 20);
  const oct = (m: number): string => m.toString(8).padStart(4, '0');
  for (const [rel, s] of src) {
    const d = dst.get(rel);
    if (d === undefined) {
      note('missing', rel, '');
      continue;
    }
    if (s.type !== d.type) {
      note('type', rel, `${s.type} vs ${d.type}`);
      continue;
    }
    if (s.mode !== d.mode) {
      note('perm', rel, `${oct(s.mode)} vs ${oct(d.mode)}`);
      const pair = `${s.type} ${oct(s.mode)}->${oct(d.mode)}`;
      pairs.set(pair, (pairs.get(pair) ?? 0) + 1);
    }
    if (s.uid !== d.uid || s.gid !== d.gid) note('owner', rel, `${s.uid}:${s.gid} vs ${d.uid}:${d.gid}`);
    if (s.type !== 'd' && s.size !== d.size) note('size', rel, `${s.size} vs ${d.size}`);
    const sm = options.mtime === 'ns' ? s.mtimeNs : s.mtimeNs / 1_000_000_000n;
    const dm = options.mtime === 'ns' ? d.mtimeNs : d.mtimeNs / 1_000_000_000n;
    if (sm !== dm) note('mtime', rel, `${sm} vs ${dm}`);
    if (s.type === 'l' && s.target !== d.target) note('target', rel, `${s.target ?? ''} vs ${d.target ?? ''}`);
    if (options.content && s.type === 'f' && s.size === d.size && !sameContent(path.join(source, rel), path.join(copy, rel), bufA, bufB)) note('content', rel, '');
  }
  for (const rel of dst.keys()) if (!src.has(rel)) note('extra', rel, '');
  const permPairs = [...pairs.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([p, n]) => `${p} x${n}`);
  // Entries below the root (the root itself is the copied directory).
  return { sourceEntries: src.size - 1, copyEntries: dst.size - 1, counts, examples, permPairs, seconds: (performance.now() - t0) / 1000 };
}

/** sha256 of a file (hex). */
export function sha256File(file: string): string {
  const hash = crypto.createHash('sha256');
  const buf = Buffer.allocUnsafe(4 << 20);
  const fd = fs.openSync(file, 'r');
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** Write `bytes` bytes of a fixed AES-256-CTR keystream to `file`; returns their sha256. */
export function writeRandomFile(file: string, bytes: number): string {
  const cipher = crypto.createCipheriv('aes-256-ctr', Buffer.alloc(32, 0x57), Buffer.alloc(16, 0));
  const hash = crypto.createHash('sha256');
  const zeros = Buffer.alloc(4 << 20);
  const fd = fs.openSync(file, 'w');
  try {
    for (let done = 0; done < bytes; ) {
      const n = Math.min(zeros.length, bytes - done);
      const chunk = cipher.update(zeros.subarray(0, n));
      hash.update(chunk);
      for (let written = 0; written < chunk.length; ) written += fs.writeSync(fd, chunk, written, chunk.length - written, done + written);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/**
 * The small-files client: `node small.mjs DIR COUNT` makes DIR, then COUNT files of
 * 1,024-4,096 bytes (xorshift32 with a fixed seed: sizes and contents are the same on
 * every run) in subdirectories d000, d001, ... of 1,000 files each, with
 * writeFileSync; prints {"files":N,"bytes":B,"seconds":S} (S timed inside the script).
 */
export const SMALL_SCRIPT = `import * as fs from 'node:fs';
const [dir, countText] = process.argv.slice(2);
const count = Number(countText);
let x = 0x2545f491;
const rnd = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
const pool = Buffer.alloc(1 << 16);
for (let i = 0; i < pool.length; i += 4) pool.writeUInt32LE(rnd(), i);
const t0 = performance.now();
fs.mkdirSync(dir);
let sub = '';
let bytes = 0;
for (let i = 0; i < count; i++) {
  if (i % 1000 === 0) { sub = dir + '/d' + String(i / 1000).padStart(3, '0'); fs.mkdirSync(sub); }
  const size = 1024 + (rnd() % 3073);
  const at = rnd() % (pool.length - size);
  fs.writeFileSync(sub + '/f' + String(i).padStart(5, '0'), pool.subarray(at, at + size));
  bytes += size;
}
process.stdout.write(JSON.stringify({ files: count, bytes, seconds: (performance.now() - t0) / 1000 }) + '\\n');
`;
