/**
 * Options every command takes (--cache-size, --offset, --no-checksums, --no-journal, --stats) and
 * argument parsers. Opening the image with them is in image.ts: this module is loaded
 * at start-up by every command, the mount server's main thread included, and must not
 * pull in the filesystem.
 */
import { InvalidArgumentError, type Command } from 'commander';

export interface CommonOptions {
  readonly cacheSize?: number;
  readonly offset?: number;
  readonly checksums: boolean;
  /** false with --no-journal: read the device as it is, without replaying a journal that needs recovery. */
  readonly journal?: boolean;
  readonly stats?: boolean;
}

const UNITS: Readonly<Record<string, number>> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** Bytes from "4096", "64K", "32M", "1G" (binary units; an optional trailing B or iB). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  if (m === null || m[1] === undefined) throw new InvalidArgumentError(`"${text}" is not a size (bytes, or a number with a K, M, G or T suffix)`);
  const value = Number(m[1]) * (UNITS[(m[2] ?? '').toUpperCase()] ?? 1);
  if (!Number.isSafeInteger(value)) throw new InvalidArgumentError(`"${text}" is too large`);
  return value;
}

/** An octal mode argument (`755`, `1777`), for commander. */
export function parseOctalMode(text: string): number {
  if (!/^[0-7]{1,4}$/.test(text)) throw new InvalidArgumentError(`"${text}" is not an octal mode (like 755 or 1777)`);
  return parseInt(text, 8);
}

/** Adds the common options and their help to a command. */
export function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('--cache-size <size>', 'block cache budget in bytes, K/M/G suffixes allowed; 0 = no cache (default: min(32M, RAM/20))', parseSize)
    .option('--offset <bytes>', 'byte offset of the filesystem inside IMAGE (e.g. a partition in a disk image; K/M/G allowed)', parseSize)
    .option('--no-checksums', 'do not verify metadata checksums (to recover data from a damaged image)')
    .option('--no-journal', 'read the image as it is on the device: a journal that needs recovery is not replayed (in memory) first')
    .option('--stats', 'at exit, print one JSON line of cache statistics on stderr');
}
