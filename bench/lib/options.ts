/** Command-line option helpers the benchmark scripts share. */

/** A bad command line: the script prints the message and its usage, and exits 2. */
export class UsageError extends Error {}

/** An integer option in [min, max]. */
export function intOption(name: string, text: string, min: number, max: number): number {
  const n = /^-?\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`${name} ${text} is not an integer in [${min}, ${max}]`);
  return n;
}

/** A comma list of names from `all`, returned in `all`'s order. */
export function listOption<T extends string>(name: string, text: string, all: readonly T[]): T[] {
  const items = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const item of items) if (!(all as readonly string[]).includes(item)) throw new UsageError(`${name}: unknown "${item}" (one of ${all.join(', ')})`);
  if (items.length === 0) throw new UsageError(`${name} is empty`);
  return all.filter((x) => items.includes(x));
}

/**
 * The command line of a benchmark: its configuration, or the exit status when there is
 * nothing to run (0 after printing `help`, 2 after a usage error on stderr).
 */
export function commandLine<C>(name: string, help: string, parse: (argv: readonly string[]) => C | 'help'): C | { readonly exit: number } {
  try {
    const parsed = parse(process.argv.slice(2));
    if (parsed !== 'help') return parsed;
    process.stdout.write(help);
    return { exit: 0 };
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${name}: ${error.message} (see --help)\n`);
    return { exit: 2 };
  }
}
