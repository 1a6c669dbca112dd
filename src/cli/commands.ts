/** The CLI's commands; each is a thin layer over the library. */
import type { Command } from 'commander';

export function registerCommands(program: Command): void {
  program.addHelpText(
    'after',
    `
Commands that read images (info, ls, stat, cat, get) and mount arrive with the
filesystem layer. The caching I/O manager can be measured now:
  npm run bench:cache`,
  );
}
