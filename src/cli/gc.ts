import { Command, Option } from 'commander';
import { DEFAULT_GRACE_MS, type GcReport, collectGarbage } from '../store/gc.js';
import { action, cleanUpOnSignals, examples, openStoreOps, storeOption } from './common.js';
import { createCountProgress, humanBytes, parseDuration } from './lifecycle-options.js';

interface GcFlags {
  store: string;
  grace: number;
  dryRun?: boolean;
  json?: boolean;
  quiet?: boolean;
}

export function gcCommand(): Command {
  return new Command('gc')
    .summary('free the blobs no repository references')
    .description(
      'Free every blob no repository of the store references, and nothing else. A blob a repository ' +
        'stopped referencing (rm, prune, load --replace) less than --grace ago stays, and a running server ' +
        'keeps serving it, so a pull that already has its manifest finishes. Loads and puts may run at ' +
        'the same time: gc takes the writer lock once, briefly, to re-check and sweep. Killed at any ' +
        'moment, the store stays valid and the next gc finishes the job.',
    )
    .addOption(storeOption())
    .addOption(new Option('--grace <duration>', 'keep blobs unreferenced for less than this (0s: none)').argParser(parseDuration).default(DEFAULT_GRACE_MS, '10m'))
    .option('--dry-run', 'list what would go and its bytes; change nothing')
    .option('--json', 'print the report as JSON')
    .option('-q, --quiet', 'print nothing but errors')
    .addHelpText('after', examples([
      'cartorio gc',
      'cartorio gc --dry-run',
      'cartorio rm app:1.0 && cartorio gc --grace 0s       # nothing is pulling app:1.0',
      'cartorio gc --json | jq .bytesFreed',
    ]))
    .action(action('gc', async (flags: GcFlags) => {
      const { ops } = await openStoreOps(flags.store);
      cleanUpOnSignals();
      const progress = createCountProgress('marking', flags.quiet === true || flags.json === true);
      const report = await collectGarbage(ops, {
        graceMs: flags.grace,
        ...(flags.dryRun && { dryRun: true }),
        onProgress: (done, total) => progress.update(done, total),
      }).finally(() => progress.stop());
      for (const problem of report.problems) process.stderr.write(`cartorio gc: ${problem}\n`);
      if (flags.json) {
        process.stdout.write(JSON.stringify({ dryRun: flags.dryRun === true, ...report }, null, 2) + '\n');
        return;
      }
      if (flags.quiet) return;
      const verb = flags.dryRun ? 'would free' : 'freed';
      const lines = flags.dryRun ? report.freed.map((blob) => `would free ${blob.digest} (${humanBytes(blob.size)})`) : [];
      for (const name of report.dropped) lines.push(`${flags.dryRun ? 'would drop' : 'dropped'} removed repository ${name}`);
      lines.push(`${verb} ${report.freed.length} blobs, ${report.bytesFreed} bytes (${humanBytes(report.bytesFreed)}); ${released(report)} in ${report.repositories} repositories`);
      if (report.aborted.length > 0) lines.push(`${flags.dryRun ? 'would abort' : 'aborted'} ${report.aborted.length} unfinished uploads a killed load left (${report.aborted.map((upload) => upload.path).join(', ')})`);
      if (report.inGrace.blobs > 0) lines.push(`${report.inGrace.blobs} blobs (${humanBytes(report.inGrace.bytes)}) unreferenced for less than the grace were kept; run gc again later`);
      process.stdout.write(lines.join('\n') + '\n');
    }));
}

// A repository that holds what it reaches (a bucket's, a pool-backed one) has no links: it lets
// go of what only its removed roots past the grace reached, when gc forgets them.
function released(report: GcReport): string {
  const links = report.released.filter((blob) => blob.linked).length;
  const reached = report.released.length - links;
  const parts = [...(links > 0 || reached === 0 ? [`${links} links released`] : []), ...(reached > 0 ? [`${reached} blobs no longer held (reached only by removed roots past the grace)`] : [])];
  return parts.join(' and ');
}
