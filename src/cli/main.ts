#!/usr/bin/env node
/**
 * The ext4ts command line. Parsing and printing only: every command calls the
 * library. Errors print one line `ext4ts: WHAT: reason` and exit 1; never a stack
 * trace, whatever the image holds (an unexpected exception is an `internal error`).
 */
import { Command, CommanderError } from 'commander';
import { setFlagsFromString } from 'node:v8';
import { Failure, printable, reasonOf } from './errors.js';
import { registerCommands } from './commands.js';

// A command runs for about a second, and TurboFan's default inlining budget (920 bytes
// of bytecode inlined per function) spends more time compiling than the inlined code
// saves in that time: a quarter of the instructions of `ls -R -l` and of `get` on the
// bench image were TurboFan's. With 230: ls -R -l 2.75G -> 2.66G instructions, get
// 4.10G -> 3.76G (callgrind, --single-threaded; node:v8 itself costs 0.03G). Not for
// `mount`, a long-lived server.
if (process.argv[2] !== 'mount') setFlagsFromString('--max-inlined-bytecode-size-cumulative=230');

const program = new Command();
program
  .name('ext4ts')
  .description('A userspace ext2/ext3/ext4 driver: read images and devices without the kernel, safely.')
  .version('0.1.0', '-V, --version')
  .exitOverride()
  .configureOutput({
    // Commander's own errors (unknown option, missing argument): one line, our prefix.
    outputError: (text, write) => write(`ext4ts: ${text.replace(/^error: /, '').trim()} (see --help)\n`),
  });
program.addHelpText(
  'after',
  `
Run "ext4ts COMMAND --help" for a command's options and examples.
The caching I/O manager can be measured with: npm run bench:cache`,
);

registerCommands(program);

function fail(message: string): void {
  process.stderr.write(`ext4ts: ${message}\n`);
  process.exitCode = 1;
}

// Last resort: whatever escapes the command's own handling still prints one line.
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (error: unknown) => {
    process.stderr.write(`ext4ts: ${reasonOf(error)}\n`);
    process.exit(1);
  });
}

// A reader that goes away (`ext4ts cat ... | head`) is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  fail(`stdout: ${error.message}`);
  process.exit(1);
});

// Not a top-level await: the bundled CLI is a classic script (scripts/bundle.ts).
program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode;
  } else if (error instanceof Failure) {
    const what = printable(error.what);
    fail(`${what}: ${reasonOf(error.error, what)}`);
  } else if ((error as { code?: unknown } | null)?.code === 'EPIPE') {
    // stdout closed early: see above.
  } else {
    fail(reasonOf(error));
  }
});
