import { Command, InvalidArgumentError } from 'commander';
import { LOADED_AT } from '../store/index-file.js';
import { ServedImages } from '../store/image-source.js';
import { pruneTargets } from '../store/prune.js';
import { applyRemoval, planRemoval } from '../store/removal.js';
import { action, CliError, examples, openStoreOps, storeOption } from './common.js';
import { createCountProgress, parseDuration } from './lifecycle-options.js';
import { printRemoval } from './rm.js';

interface PruneFlags {
  store: string;
  keep: number;
  olderThan?: number;
  dryRun?: boolean;
  json?: boolean;
  quiet?: boolean;
}

export function pruneCommand(): Command {
  return new Command('prune')
    .summary('keep the N newest tags of each repository')
    .description(
      `Untag all but the --keep newest tags of each repository (of the NAMEs given, else of every one), ` +
        `newest by when they were loaded into this store: the ${LOADED_AT} annotation cartorio puts on each ` +
        `index.json entry (not org.opencontainers.image.created, which says when the image was built). Tags ` +
        `loaded before cartorio recorded that count as the oldest. An image goes once no tag names it, with ` +
        `its referrers; \`cartorio gc\` frees the bytes. A running server and the resource see the result at once.`,
    )
    .argument('[name...]', 'repositories to prune (default: all)')
    .requiredOption('--keep <n>', 'tags to keep per repository', parseCount)
    .option('--older-than <duration>', 'untag only tags loaded longer ago than this (e.g. 30d)', parseDuration)
    .addOption(storeOption())
    .option('--dry-run', 'say what would go; change nothing')
    .option('--json', 'print what goes as JSON')
    .option('-q, --quiet', 'print nothing but errors')
    .addHelpText('after', examples([
      'cartorio prune --keep 5                          # every repository',
      'cartorio prune --keep 10 --older-than 30d ci/app ci/worker',
      'cartorio prune --keep 3 --dry-run --json | jq ".repositories[].removed[].tag"',
    ]))
    .action(action('prune', async (names: string[], flags: PruneFlags) => {
      const { ops: store, reader } = await openStoreOps(flags.store);
      const served = new ServedImages([reader]);
      const repositories: string[] = [];
      for (const name of names) {
        const found = await served.resolve(name);
        if (found.kind === 'ambiguous') throw new CliError(`${name}: names several repositories (${found.names.join(', ')}); write the full name; nothing was removed`);
        if (found.kind === 'unknown') throw new CliError(`${name}: no such repository in ${store.description}; nothing was removed`, 'see `cartorio list`');
        if (found.kind === 'invalid') throw new CliError(`${name}: ${found.problem}; nothing was removed`);
        repositories.push(found.name);
      }
      const targets = await pruneTargets(store, names.length > 0 ? repositories : await store.listedRepositories(), {
        keep: flags.keep,
        ...(flags.olderThan !== undefined && { olderThanMs: flags.olderThan }),
      });
      const progress = createCountProgress('pruning', flags.quiet === true || flags.json === true);
      const plans = await planRemoval(store, targets, async (path) => ({ kind: 'found', name: path, source: reader }), (done, total) => progress.update(done, total)).finally(() => progress.stop());
      if (!flags.dryRun && plans.length > 0) await applyRemoval(store, plans);
      printRemoval(plans, flags);
    }));
}

function parseCount(value: string): number {
  const count = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(count)) throw new InvalidArgumentError('expected a whole number (0 or more)');
  return count;
}
