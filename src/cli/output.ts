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
