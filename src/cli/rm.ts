import { Command } from 'commander';
import { ServedImages } from '../store/image-source.js';
import { applyRemoval, parseRef, planRemoval, type ParsedRef, type RepositoryRemoval } from '../store/removal.js';
import { action, CliError, examples, openStoreOps, storeOption } from './common.js';
import { createCountProgress, humanBytes } from './lifecycle-options.js';

interface RmFlags {
  store: string;
  dryRun?: boolean;
  json?: boolean;
  quiet?: boolean;
}

export function rmCommand(): Command {
  return new Command('rm')
    .summary('remove tags, images or repositories')
    .description(
      'Remove from the store: NAME:TAG untags (the image goes once no tag and no tagged index names it), ' +
        'NAME@DIGEST removes that image or index with its referrers, NAME removes the whole repository. ' +
        'Names resolve as the server resolves them (busybox:1 finds docker.io/library/busybox:1); an ambiguous ' +
        'or unknown REF is an error and nothing changes. Every REF is checked before anything is removed. ' +
        'A running `cartorio serve` stops serving what went at once; the bytes are freed by `cartorio gc` ' +
        'once the grace is over, so pulls already under way finish.',
    )
    .argument('<ref...>', 'NAME, NAME:TAG or NAME@DIGEST')
    .addOption(storeOption())
    .option('--dry-run', 'say what would go; change nothing')
    .option('--json', 'print what goes as JSON')
    .option('-q, --quiet', 'print nothing but errors')
    .addHelpText('after', examples([
      'cartorio rm app:1.2                      # untag',
      'cartorio rm app@sha256:3f1c…             # the image, its signatures with it',
      'cartorio rm old/tool                     # the whole repository',
      'cartorio rm --dry-run app:1.0 app:1.1 && cartorio rm app:1.0 app:1.1 && cartorio gc',
    ]))
    .action(action('rm', async (refs: string[], flags: RmFlags) => {
      const parsed = refs.map((ref) => parseRef(ref) ?? badRef(ref));
      const { ops: store, reader } = await openStoreOps(flags.store);
      const served = new ServedImages([reader]);
      const progress = createCountProgress('checking', flags.quiet === true || flags.json === true);
      const plans = await planRemoval(store, parsed, (path) => served.resolve(path), (done, total) => progress.update(done, total)).catch((error: unknown) => {
        throw new CliError(`${(error as Error).message}; nothing was removed`, 'see `cartorio list` for what the store holds');
      }).finally(() => progress.stop());
      if (!flags.dryRun) await applyRemoval(store, plans);
      printRemoval(plans, flags);
    }));
}

function badRef(ref: string): ParsedRef {
  throw new CliError(`"${ref}" is not NAME, NAME:TAG or NAME@sha256:<64 hex>; nothing was removed`);
}

/** What went (or would go): one line per tag or image, then the bytes gc can free later. */
export function printRemoval(plans: readonly RepositoryRemoval[], flags: { dryRun?: boolean; json?: boolean; quiet?: boolean }): void {
  if (flags.json) {
    const shown = plans.map(({ repository, whole, entries, blobs, bytes }) => ({ repository, whole, removed: entries, unreachableBlobs: blobs, unreachableBytes: bytes }));
    process.stdout.write(JSON.stringify({ dryRun: flags.dryRun === true, repositories: shown }, null, 2) + '\n');
    return;
  }
  if (flags.quiet) return;
  const verb = flags.dryRun ? 'would remove' : 'removed';
  const lines: string[] = [];
  for (const plan of plans) {
    if (plan.whole) lines.push(`${verb} repository ${plan.repository}`);
    else for (const entry of plan.entries) lines.push(`${verb} ${plan.repository}${entry.tag !== undefined ? `:${entry.tag}` : ''}@${entry.digest}`);
  }
  const blobs = plans.reduce((sum, plan) => sum + plan.blobs, 0);
  const bytes = plans.reduce((sum, plan) => sum + plan.bytes, 0);
  lines.push(`${blobs} blobs (${humanBytes(bytes)}) no longer reached there; \`cartorio gc\` frees those no other repository holds once the grace is over`);
  process.stdout.write(lines.join('\n') + '\n');
}
