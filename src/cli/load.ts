import { stat } from 'node:fs/promises';
import { Command } from 'commander';
import { loadIntoStore, type LoadedImage } from '../formats/load.js';
import { BucketWriter } from '../store/bucket/writer.js';
import { action, cleanUpOnSignals, collect, examples, openBucket, parseStore, storeOption } from './common.js';
import { addImageOptions, loadOptionsFrom, type ImageFlags } from './image-options.js';
import { createProgress } from './progress.js';

interface LoadFlags extends ImageFlags {
  store: string;
  tarball?: string[];
  replace?: boolean;
  quiet?: boolean;
  json?: boolean;
}

export function loadCommand(): Command {
  const command = new Command('load')
    .summary('load images from files into the store')
    .description(
      'Load images into the store: docker save tarballs, OCI layouts and archives, rootfs tarballs and ' +
        'directories, Concourse rootfs images and resource-type bundles, registry-image get outputs. ' +
        'All inputs are loaded as one transaction: every image appears, or none does.',
    )
    .argument('[src...]', 'files or directories to load')
    .option('--tarball <file>', 'a file to load, as a source argument would (repeatable; the spelling of earlier READMEs)', collect)
    .option('--replace', 'each repository this load names ends holding exactly the tags it brings (a monthly bundle); tags it does not bring are removed in the same transaction, and `cartorio gc` frees their bytes')
    .addOption(storeOption())
    .option('-q, --quiet', 'print nothing but errors')
    .option('--json', 'print what was loaded as JSON')
    .addHelpText('after', examples([
      'docker save app:1 redis:7 > images.tar && cartorio load images.tar',
      'cartorio load --store /srv/images ./oci-layout ./other.tar',
      'AWS_ENDPOINT_URL_S3=http://10.0.0.9:7480 cartorio load --store s3://images/prod app.tar   # a bucket store',
      'cartorio load ./rootfs --name tools/busybox --tag 1.36 --cmd /bin/sh --env PATH=/bin',
      'cartorio load ./my-task-image --name ci/task        # Concourse rootfs/ + metadata.json',
      'cartorio load --tarball=./image.tar',
      'cartorio load --replace bundle-2026-12.tar && cartorio gc   # the repositories it names hold exactly its tags',
    ]));
  addImageOptions(command);
  // A usage error (exit 2) like any other missing argument: `--tarball` stands in for a source.
  command.hook('preAction', (self) => {
    if (self.args.length === 0 && !(self.opts() as LoadFlags).tarball) self.error("error: missing required argument 'src' (or --tarball FILE)", { exitCode: 2, code: 'commander.missingArgument' });
  });
  return command.action(action('load', async (args: string[], flags: LoadFlags) => {
    const sources = [...args, ...(flags.tarball ?? [])];
    cleanUpOnSignals();
    const location = parseStore(flags.store);
    const store: string | BucketWriter = location.kind === 'directory' ? location.path : new BucketWriter(await openBucket(location.bucket));
    if (typeof store !== 'string') await store.prepare();
    const progress = createProgress(flags.quiet === true || flags.json === true);
    // Several files (`cartorio load images/*.tar`): one bar over all their bytes, not one per file.
    const total = sources.length > 1 ? await totalFileBytes(sources) : undefined;
    if (total !== undefined) progress.start(`loading ${sources.length} inputs`, total);
    const loaded = await loadIntoStore(store, sources, {
      ...loadOptionsFrom(flags),
      ...(flags.replace && { replace: true }),
      onStart: (size) => (total === undefined ? progress.start('loading', size) : undefined),
      onBytes: (bytes) => progress.add(bytes),
      onNotice: (message) => progress.note(`cartorio load: note: ${message}`),
    }).finally(() => progress.stop());
    if (flags.json) process.stdout.write(JSON.stringify(loaded, null, 2) + '\n');
    else if (!flags.quiet) process.stdout.write(loaded.flatMap(describe).join('\n') + '\n');
  }));
}

// The sum of the inputs' sizes when every input is a file (directories have no size up front).
async function totalFileBytes(sources: string[]): Promise<number | undefined> {
  const sizes = await Promise.all(sources.map(async (source) => {
    const info = await stat(source).catch(() => undefined);
    return info?.isFile() ? info.size : undefined;
  }));
  return sizes.every((size) => size !== undefined) ? sizes.reduce((sum, size) => sum + size, 0) : undefined;
}

function describe(image: LoadedImage): string[] {
  if (image.tags.length === 0) return [`${image.repository}@${image.digest}`];
  return image.tags.map((tag) => `${image.repository}:${tag}@${image.digest}`);
}
