import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { EXIT_USAGE, quietOnBrokenPipe } from './common.js';
import type { EarlyPort } from './early-port.js';
import { runtimeLine } from './runtime.js';

const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
const ALIASES: Record<string, string> = { ls: 'list' };

/** The `cartorio` program: main.ts runs it, with serve's port when it was bound first. */
export async function run(early: EarlyPort | undefined): Promise<void> {
  // Each command's module is imported only when it runs (or for help): `load` need not pay for
  // fastify, nor `serve` for the loaders. Start-up is most of the time of a small load.
  const COMMANDS: Record<string, () => Promise<Command>> = {
    load: async () => (await import('./load.js')).loadCommand(),
    serve: async () => (await import('./serve.js')).serveCommand(early),
    list: async () => (await import('./list.js')).listCommand(),
    verify: async () => (await import('./verify.js')).verifyCommand(),
    rm: async () => (await import('./rm.js')).rmCommand(),
    gc: async () => (await import('./gc.js')).gcCommand(),
    prune: async () => (await import('./prune.js')).pruneCommand(),
    convert: async () => (await import('./convert.js')).convertCommand(),
    'mirror-config': async () => (await import('./mirror-config.js')).mirrorConfigCommand(),
  };

  quietOnBrokenPipe();

  const program = new Command('cartorio')
    .description('A read-only container registry for images you already have as files.')
    .version(`${version}\n${runtimeLine(process.version)}`, '-V, --version', 'print the version and the Node.js it runs on')
    .showHelpAfterError('(run with --help for usage and examples)')
    .exitOverride();

  const requested = process.argv[2] ?? '';
  const only = COMMANDS[requested] ? requested : ALIASES[requested];
  // `--version` needs no command: loading them all cost it ~300 ms (fastify, ajv, the loaders).
  const versionOnly = requested === '--version' || requested === '-V';
  for (const name of versionOnly ? [] : only ? [only] : Object.keys(COMMANDS)) {
    const command = await (COMMANDS[name] as () => Promise<Command>)();
    program.addCommand(command.exitOverride());
  }

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
}
