import { resolve } from 'node:path';
import { Command } from 'commander';
import { convertToLayout } from '../formats/load.js';
import { action, cleanUpOnSignals, examples } from './common.js';
import { addImageOptions, loadOptionsFrom, type ImageFlags } from './image-options.js';

interface ConvertFlags extends ImageFlags {
  json?: boolean;
  quiet?: boolean;
}

export function convertCommand(): Command {
  const command = new Command('convert')
    .summary('write any input as a standalone OCI layout')
    .description('Convert SRC (any format `load` reads) into an OCI image layout at DEST, without a store. DEST must not exist or be empty. Tags become org.opencontainers.image.ref.name entries.')
    .argument('<src>', 'file or directory to convert')
    .argument('<dest>', 'directory to write the OCI layout to')
    .option('-q, --quiet', 'print nothing but errors')
    .option('--json', 'print what was written as JSON')
    .addHelpText('after', examples([
      'cartorio convert ./image ./image-oci --tag 1.0        # Concourse rootfs/ + metadata.json',
      'cartorio convert app.tar ./app-oci && skopeo inspect oci:./app-oci:1',
    ]));
  addImageOptions(command);
  return command.action(action('convert', async (source: string, dest: string, flags: ConvertFlags) => {
    cleanUpOnSignals();
    const loaded = await convertToLayout(source, resolve(dest), { ...loadOptionsFrom(flags), onNotice: (message) => process.stderr.write(`cartorio convert: note: ${message}\n`) });
    if (flags.json) process.stdout.write(JSON.stringify(loaded, null, 2) + '\n');
    else if (!flags.quiet) process.stdout.write(loaded.flatMap((image) => image.tags.map((tag) => `${dest}:${tag}@${image.digest}`)).join('\n') + '\n');
  }));
}
