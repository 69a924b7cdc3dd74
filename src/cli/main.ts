#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { EXIT_USAGE } from './common.js';
import { convertCommand } from './convert.js';
import { listCommand } from './list.js';
import { loadCommand } from './load.js';
import { serveCommand } from './serve.js';
import { verifyCommand } from './verify.js';

const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('cartorio')
  .description('A read-only container registry for images you already have as files.')
  .version(version, '-V, --version')
  .showHelpAfterError('(run with --help for usage and examples)')
  .exitOverride()
  .addCommand(loadCommand())
  .addCommand(serveCommand())
  .addCommand(listCommand())
  .addCommand(verifyCommand())
  .addCommand(convertCommand());

for (const command of program.commands) command.exitOverride();

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // --help and --version end here with code 0; usage errors were already printed by commander.
    process.exitCode = error.exitCode === 0 ? 0 : EXIT_USAGE;
  } else {
    throw error;
  }
}
