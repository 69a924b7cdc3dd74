import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Command } from 'commander';
import { isRegistryHost, normalizeHost } from '../image/reference.js';
import { nodeConfigFiles, registryHosts } from '../registry/mirror-config.js';
import { CliError, action, collect, examples, openStoreReader, storeOption } from './common.js';

interface MirrorConfigFlags {
  store: string;
  registry: string;
  host?: string[];
  tls?: boolean;
  out?: string;
}

/** `cartorio mirror-config`: node configuration that makes runtimes pull the store's images from this server. */
export function mirrorConfigCommand(): Command {
  return new Command('mirror-config')
    .summary('print mirror settings for container runtimes')
    .description(
      'Print (or write with --out) the node configuration that makes container runtimes pull the images of every ' +
        'registry the store holds (docker.io, quay.io, registry.k8s.io, …) from this server: containerd ' +
        'certs.d/<host>/hosts.toml, k3s registries.yaml, registries.conf for CRI-O and podman, and Docker\'s daemon.json.',
    )
    .requiredOption('-r, --registry <host:port>', 'this server as the nodes reach it, e.g. 10.0.0.5:5000 or cartorio.local:30500')
    .addOption(storeOption())
    .option('--host <registry>', 'mirror this registry host instead of those found in the store (repeatable)', collect)
    .option('--tls', 'the server runs with --tls-cert: https, no insecure marks')
    .option('-o, --out <dir>', 'write the files under this directory instead of printing them')
    .addHelpText('after', examples([
      'cartorio mirror-config --registry 10.0.0.5:5000',
      'cartorio mirror-config --registry 10.0.0.5:5000 --out node-config && sudo cp -r node-config/containerd/certs.d /etc/containerd/',
      'cartorio mirror-config --registry 127.0.0.1:30500 --host docker.io --host quay.io --out deploy/kubernetes/node-config',
    ]))
    .action(action('mirror-config', async (flags: MirrorConfigFlags) => {
      if (!/^[^\s/:]+(?::\d{1,5})?$|^\[[0-9a-fA-F:.]+\](?::\d{1,5})?$/.test(flags.registry)) {
        throw new CliError(`--registry "${flags.registry}" is not HOST[:PORT]`, 'give the address nodes use to reach cartorio serve, without http://');
      }
      const hosts = flags.host !== undefined ? flags.host.map(checkHost) : registryHosts(await (await openStoreReader(flags.store)).repositoryNames());
      if (hosts.length === 0) throw new CliError(`store ${flags.store} holds no images, so there is no registry to mirror`, 'load images first, or name registries with --host');
      const files = nodeConfigFiles([...new Set(hosts)].sort(), { registry: flags.registry, tls: flags.tls === true });
      if (flags.out === undefined) {
        process.stdout.write(files.map((file) => `==> ${file.path} (install at ${file.installAt}) <==\n${file.content}`).join('\n'));
        return;
      }
      for (const file of files) {
        await mkdir(dirname(join(flags.out, file.path)), { recursive: true });
        await writeFile(join(flags.out, file.path), file.content);
        process.stdout.write(`${join(flags.out, file.path)} → ${file.installAt}\n`);
      }
    }));
}

function checkHost(host: string): string {
  const normalized = normalizeHost(host);
  if (!isRegistryHost(normalized) || normalized.includes('/')) throw new CliError(`--host "${host}" is not a registry host`, 'e.g. docker.io, quay.io, registry.k8s.io, ghcr.io');
  return normalized;
}
