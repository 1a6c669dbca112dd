/**
 * Standard output for bytes (file contents, binary names): buffered, with backpressure,
 * so a large listing or file never piles up in memory.
 */
import { once } from 'node:events';

const FLUSH_AT = 64 * 1024;

export class Output {
  private parts: Buffer[] = [];
  private size = 0;

  constructor(private readonly stream: NodeJS.WritableStream = process.stdout) {}

  /** Queue text or bytes; flushes (awaiting drain) past 64 KiB. */
  async write(data: string | Uint8Array): Promise<void> {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (buf.length === 0) return;
    this.parts.push(buf);
    this.size += buf.length;
    if (this.size >= FLUSH_AT) await this.flush();
  }

  /** Write a large chunk straight through (after what is queued), awaiting drain. The caller must not reuse `data`. */
  async writeChunk(data: Uint8Array): Promise<void> {
    await this.flush();
    if (data.length === 0) return;
    await this.send(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }

  async flush(): Promise<void> {
    if (this.size === 0) return;
    const buf = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    await this.send(buf);
  }

  private async send(buf: Buffer): Promise<void> {
    if (!this.stream.write(buf)) await once(this.stream, 'drain');
  }
}

const SINK_CHUNK = 256 * 1024;

/** Decimal digits of a non-negative integer (String(n).length without the string). */
export function decimalDigits(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/**
 * Text and bytes appended into large buffers, written out in big chunks: a listing's
 * rows cost a copy each, not a Buffer, a concat and a stream write. Text must be
 * Latin-1 (code points < 256; in practice ASCII), written one byte per character.
 * Appending is synchronous; `drain` writes what is complete once enough has gathered.
 */
export class ByteSink {
  private chunk = Buffer.allocUnsafe(SINK_CHUNK);
  private pos = 0;
  private full: Buffer[] = [];
  private fullBytes = 0;

  constructor(private readonly output: Output = new Output()) {}

  text(s: string): void {
    if (this.pos + s.length > this.chunk.length) this.next(s.length);
    this.pos += this.chunk.write(s, this.pos, 'latin1');
  }

  /**
   * `text` for short strings (names, cached fields): copied character by character in
   * JavaScript, which beats a call into the runtime below a few dozen characters.
   */
  latin1(s: string): void {
    const n = s.length;
    if (this.pos + n > this.chunk.length) this.next(n);
    const c = this.chunk;
    let p = this.pos;
    for (let i = 0; i < n; i++) c[p++] = s.charCodeAt(i);
    this.pos = p;
  }

  /** A non-negative integer's decimal digits, right-aligned in `width` columns (blanks before); no string made. */
  padded(n: number, width: number): void {
    const d = decimalDigits(n);
    const blanks = width > d ? width - d : 0;
    if (this.pos + blanks + d > this.chunk.length) this.next(blanks + d);
    const c = this.chunk;
    let p = this.pos;
    for (let i = 0; i < blanks; i++) c[p++] = 0x20;
    this.pos = p + d;
    let v = n;
    for (let i = p + d - 1; i >= p; i--) {
      const q = Math.floor(v / 10);
      c[i] = 0x30 + (v - q * 10);
      v = q;
    }
  }

  bytes(data: Uint8Array): void {
    if (this.pos + data.length > this.chunk.length) this.next(data.length);
    this.chunk.set(data, this.pos);
    this.pos += data.length;
  }

  byte(b: number): void {
    if (this.pos >= this.chunk.length) this.next(1);
    this.chunk[this.pos++] = b;
  }

  /** Writes out (awaiting the stream) when a chunk or more has gathered. */
  async drain(): Promise<void> {
    if (this.fullBytes + this.pos >= SINK_CHUNK) await this.flush();
  }

  async flush(): Promise<void> {
    const parts = this.full;
    if (this.pos > 0) parts.push(this.chunk.subarray(0, this.pos));
    this.full = [];
    this.fullBytes = 0;
    this.chunk = Buffer.allocUnsafe(SINK_CHUNK);
    this.pos = 0;
    for (const part of parts) await this.output.writeChunk(part);
  }

  /** Starts a new chunk with room for `need` bytes (the filled one is kept until flush; the stream may hold it). */
  private next(need: number): void {
    if (this.pos > 0) {
      this.full.push(this.chunk.subarray(0, this.pos));
      this.fullBytes += this.pos;
    }
    this.chunk = Buffer.allocUnsafe(Math.max(SINK_CHUNK, need));
    this.pos = 0;
  }
}
