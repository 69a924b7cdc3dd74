import { Command } from 'commander';
import { verifyBucket } from '../store/bucket/verify.js';
import { verifyStore } from '../store/verify.js';
import { action, CliError, examples, existingStore, openBucket, parseStore, storeOption } from './common.js';

export function verifyCommand(): Command {
  return new Command('verify')
    .summary('re-hash and check everything in the store')
    .description('Re-hash every blob reachable from every repository and check every manifest and index reference. Exits 1 and lists the problems when anything is missing or corrupt.')
    .addOption(storeOption())
    .option('--json', 'print the report as JSON')
    .addHelpText('after', examples(['cartorio verify --store /srv/images', 'cartorio verify --json | jq .problems', 'cartorio verify --store s3://images/prod']))
    .action(action('verify', async (flags: { store: string; json?: boolean }) => {
      const location = parseStore(flags.store);
      const report = location.kind === 'bucket' ? await verifyBucket(await checked(location.bucket)) : await verifyStore(await existingStore(flags.store));
      if (flags.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      else {
        for (const problem of report.problems) process.stdout.write(`problem: ${problem}\n`);
        process.stdout.write(`${report.repositories} repositories, ${report.blobs} blobs (${report.bytes} bytes) checked, ${report.problems.length} problems\n`);
      }
      if (report.problems.length > 0) throw new CliError(`${report.problems.length} problems in ${flags.store}`, 'reload the affected images; see the problem lines above');
    }));
}

async function checked(location: Parameters<typeof openBucket>[0]): ReturnType<typeof openBucket> {
  const bucket = await openBucket(location);
  await bucket.check();
  return bucket;
}
