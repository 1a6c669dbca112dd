#!/usr/bin/env node
/**
 * The ext4ts command line. Parsing and printing only: every command calls the
 * library. Errors print one line `ext4ts: WHAT: reason` and exit 1.
 */
import { Command, CommanderError } from 'commander';
import { FsError } from '../errors.js';
import { registerCommands } from './commands.js';

const program = new Command();
program
  .name('ext4ts')
  .description('A userspace ext2/ext3/ext4 driver: read images and devices without the kernel, safely.')
  .version('0.1.0', '-V, --version')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

registerCommands(program);

function fail(message: string): never {
  process.stderr.write(`ext4ts: ${message}\n`);
  process.exit(1);
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exit(error.exitCode);
  }
  if (error instanceof FsError) {
    const what = error.context.path ?? error.context.device;
    fail(what !== undefined && !error.message.startsWith(what) ? `${what}: ${error.message}` : error.message);
  }
  fail(`internal error: ${error instanceof Error ? error.message : String(error)}`);
}
