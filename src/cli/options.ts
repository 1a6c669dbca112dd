/**
 * Options every command takes (--cache-size, --offset, --no-checksums, --stats), and
 * opening the image with them.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { Ext4 } from '../fs/ext4.js';
import { Failure } from './errors.js';

export interface CommonOptions {
  readonly cacheSize?: number;
  readonly offset?: number;
  readonly checksums: boolean;
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
    .option('--stats', 'at exit, print one JSON line of cache statistics on stderr');
}

/** Opens IMAGE read-only with the common options. */
export function openImage(image: string, options: CommonOptions): Ext4 {
  return Ext4.openFile(image, {
    checksums: options.checksums,
    ...(options.cacheSize === undefined ? {} : { cacheSize: options.cacheSize }),
    ...(options.offset === undefined ? {} : { offset: options.offset }),
  });
}

/** Prints the `--stats` line for an open filesystem. */
export function printStats(fs: Ext4): void {
  process.stderr.write(`${JSON.stringify(fs.stats())}\n`);
}

/**
 * Opens the image, runs `body`, closes the image and prints the stats line (also when
 * `body` throws). Errors from opening are wrapped in a Failure so they name the image.
 */
export async function withImage<T>(image: string, options: CommonOptions, body: (fs: Ext4) => T | Promise<T>): Promise<T> {
  let fs: Ext4;
  try {
    fs = openImage(image, options);
  } catch (error) {
    throw new Failure(image, error);
  }
  try {
    return await body(fs);
  } finally {
    if (options.stats === true) printStats(fs);
    closeQuietly(image, fs);
  }
}

/** Read-only: nothing is written back on close; a failure is still worth a line. */
function closeQuietly(image: string, fs: Ext4): void {
  try {
    fs.close();
  } catch (error) {
    process.stderr.write(`ext4ts: ${image}: ${error instanceof Error ? error.message : String(error)}\n`);
  }
}
