/** The progress bar of the copy commands (`get`, `put`): entries and bytes, on stderr. */
import { createRequire } from 'node:module';
import type CliProgress from 'cli-progress';

/** cli-progress, loaded when a bar is first shown (on a terminal): otherwise ~25 ms of every get's start-up. */
function cliProgress(): typeof CliProgress {
  return createRequire(import.meta.url)('cli-progress') as typeof CliProgress;
}

export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  for (; v >= 1024 && i < units.length - 1; i++) v /= 1024;
  return `${i === 0 ? v : v.toFixed(1)} ${units[i] ?? ''}`;
}

/** Totals found by a scan before the copy; undefined makes a silent (inactive) progress. */
export interface CopyTotals {
  readonly entries: number;
  readonly bytes: number;
}

export class CopyProgress {
  private readonly bar: CliProgress.SingleBar | undefined;
  private entries = 0;
  private bytes = 0;
  private readonly total: CopyTotals;

  constructor(command: string, total: CopyTotals | undefined) {
    this.total = total ?? { entries: 0, bytes: 0 };
    if (total === undefined) return;
    const lib = cliProgress();
    this.bar = new lib.SingleBar(
      {
        format: `ext4ts ${command} |{bar}| {percentage}% | {value}/{total} entries | {done} of {size}`,
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: true,
        fps: 10,
      },
      lib.Presets.shades_classic,
    );
    this.bar.start(Math.max(1, total.entries), 0, { done: humanBytes(0), size: humanBytes(total.bytes) });
  }

  get active(): boolean {
    return this.bar !== undefined;
  }

  entry(): void {
    this.entries++;
    this.update();
  }

  data(n: number): void {
    this.bytes += n;
    this.update();
  }

  private update(): void {
    this.bar?.update(Math.min(this.entries, Math.max(1, this.total.entries)), { done: humanBytes(this.bytes), size: humanBytes(Math.max(this.total.bytes, this.bytes)) });
  }

  /** Clears the bar's line so a message can be printed. */
  clearLine(): void {
    if (this.bar !== undefined) process.stderr.write('\r\x1b[2K');
  }

  stop(): void {
    this.bar?.stop();
  }
}
