/** Opening the image with the common options (see options.ts), and the --stats line. */
import { Ext4 } from '../fs/ext4.js';
import { Failure } from './errors.js';
import type { CommonOptions } from './options.js';

/** Opens IMAGE read-only with the common options. */
export function openImage(image: string, options: CommonOptions): Ext4 {
  return Ext4.openFile(image, {
    checksums: options.checksums,
    journal: options.journal !== false,
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
