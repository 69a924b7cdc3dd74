import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Option } from 'commander';
import { removeTempPathsSync } from '../store/temp-paths.js';

/**
 * What every command shares: where the store is, how errors reach the operator, exit codes.
 * Exit codes: 0 success; 1 the work failed (bad input, problems found, server error);
 * 2 the command line was wrong (commander's usage errors).
 */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** What a shell reports for a process killed by SIGPIPE (128 + 13), as git and coreutils end. */
export const EXIT_BROKEN_PIPE = 141;
const SIGNAL_EXITS: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

export const DEFAULT_STORE = 'cartorio-store';

/** `--store DIR`, defaulting to $CARTORIO_STORE, then ./cartorio-store. */
export function storeOption(): Option {
  return new Option('-s, --store <dir>', 'store directory').env('CARTORIO_STORE').default(DEFAULT_STORE);
}

export function storePath(store: string): string {
  return resolve(store);
}

/** A store that must already exist (list, verify): a mistyped path is an error, not an empty store. */
export async function existingStore(store: string): Promise<string> {
  const path = storePath(store);
  const info = await stat(path).catch(() => undefined);
  if (!info?.isDirectory()) throw new CliError(`store ${path} does not exist`, 'check --store (or $CARTORIO_STORE); `cartorio load --store DIR` creates a store');
  return path;
}

/**
 * For commands that write (load, convert): SIGINT and SIGTERM remove this run's temp files,
 * then exit 130 / 143 as a shell expects. SIGKILL is covered by the next load's clean-up.
 */
export function cleanUpOnSignals(): void {
  for (const [signal, code] of Object.entries(SIGNAL_EXITS) as [NodeJS.Signals, number][]) {
    process.once(signal, () => {
      removeTempPathsSync();
      process.exit(code);
    });
  }
}

/**
 * Output to a closed pipe (`cartorio list | head -1`) ends the command quietly with status 141,
 * as git and coreutils do, instead of an unhandled EPIPE with a stack trace.
 */
export function quietOnBrokenPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      removeTempPathsSync();
      process.exit(EXIT_BROKEN_PIPE);
    });
  }
}

/** An error meant for the operator: printed as one line (plus an optional hint), no stack. */
export class CliError extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.hint = hint;
  }
}

/**
 * Wraps a command's action: errors print as `cartorio <command>: <message>` on stderr, with a
 * hint line when there is one, and set a non-zero exit code. Stacks only with CARTORIO_DEBUG=1.
 */
export function action<A extends unknown[]>(command: string, run: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await run(...args);
    } catch (error) {
      const err = error as Error & { hint?: string };
      process.stderr.write(`cartorio ${command}: ${err.message}\n`);
      if (err.hint) process.stderr.write(`  hint: ${err.hint}\n`);
      if (process.env['CARTORIO_DEBUG'] === '1') process.stderr.write(`${err.stack ?? ''}\n`);
      process.exitCode = EXIT_FAILURE;
    }
  };
}

/** Collects a repeatable option into an array (`--tag a --tag b`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Examples block appended to a command's --help. */
export function examples(lines: string[]): string {
  return `\nExamples:\n${lines.map((line) => `  $ ${line}`).join('\n')}\n`;
}
