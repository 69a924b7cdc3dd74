import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { Command, Option } from 'commander';
import { buildRegistry } from '../registry/app.js';
import { parseHtpasswd } from '../registry/auth.js';
import { nameServedLayouts } from '../formats/served-layouts.js';
import { ServedImages } from '../store/image-source.js';
import { StoreReader } from '../store/reader.js';
import { CliError, action, examples, storeOption, storePath } from './common.js';

interface ServeOptions {
  store: string;
  listen: string;
  readyFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  htpasswd?: string;
  logLevel: string;
  quiet?: boolean;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
/** In-flight downloads get this long to finish after SIGTERM before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 10_000;

/** `cartorio serve`: the read-only registry over a store. */
export function serveCommand(): Command {
  return new Command('serve')
    .description(
      'Serve the store read-only over the OCI Distribution / Docker Registry v2 API.\n' +
        'Given LAYOUT directories instead, serve those OCI layouts without a store: NAME=DIR, a get\n' +
        'output holding oci/ (named by its repository file), or a layout (named by its directory).',
    )
    .argument('[layouts...]', 'OCI layouts to serve instead of a store: [NAME=]DIR')
    .addOption(storeOption())
    .addOption(new Option('-l, --listen <host:port>', 'address to listen on (port 0 picks a free one)').env('CARTORIO_LISTEN').default('0.0.0.0:5000'))
    .option('--ready-file <file>', 'once listening, write the bound address (e.g. 127.0.0.1:41234) to this file')
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (chain)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--htpasswd <file>', 'require HTTP Basic auth from this htpasswd file (bcrypt entries, htpasswd -B)')
    .addOption(new Option('--log-level <level>', 'log level of the JSON logs on stderr').choices(LOG_LEVELS).default('info'))
    .option('-q, --quiet', 'do not print the address and pull commands on stdout')
    .addHelpText('after', examples([
      'cartorio serve                                   # ./cartorio-store on 0.0.0.0:5000',
      'cartorio serve --store /srv/images --listen 127.0.0.1:5000',
      'cartorio serve --listen 127.0.0.1:0 --ready-file addr && curl http://$(cat addr)/v2/_catalog',
      'cartorio serve --tls-cert server.crt --tls-key server.key --htpasswd users.htpasswd',
      'cartorio serve ./app-image/oci tools/kit=./kit-layout   # a Concourse get output and a layout',
      'docker pull 127.0.0.1:5000/busybox:1             # 127.0.0.0/8 needs no insecure-registries entry',
    ]))
    .action(action('serve', async (layouts: string[], options: ServeOptions, command: Command) => {
      const storeGiven = command.getOptionValueSource('store') === 'cli';
      if (layouts.length > 0 && storeGiven) throw new CliError('give either --store DIR or layout directories, not both');
      const reader = layouts.length > 0
        ? new StoreReader(layouts.join(' '), await nameServedLayouts(layouts))
        : new StoreReader(storePath(options.store));
      await serve(new ServedImages([reader]), options);
    }));
}

async function serve(images: ServedImages, options: ServeOptions): Promise<void> {
  const { host, port } = parseListen(options.listen);
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) throw new CliError('--tls-cert and --tls-key go together');
  const tls = options.tlsCert !== undefined && options.tlsKey !== undefined
    ? { cert: await readInput(options.tlsCert, '--tls-cert'), key: await readInput(options.tlsKey, '--tls-key') }
    : undefined;
  const htpasswd = options.htpasswd === undefined ? undefined : parseHtpasswd((await readInput(options.htpasswd, '--htpasswd')).toString('utf8'), options.htpasswd);
  const app = buildRegistry({
    images,
    logger: { level: options.logLevel, stream: process.stderr },
    ...(htpasswd && { htpasswd }),
    ...(tls && { tls }),
  });
  try {
    await app.listen({ host, port });
  } catch (error) {
    throw new CliError(`cannot listen on ${options.listen}: ${(error as Error).message}`);
  }
  const address = formatAddress(app.server.address() as AddressInfo);
  // Basic auth sends the password in every request; off this machine that wants TLS.
  if (htpasswd && !tls && !/^(127\.|\[::1\]|localhost)/.test(address)) {
    app.log.warn({ address }, '--htpasswd without --tls-cert: passwords cross the network in clear text');
  }
  if (options.readyFile !== undefined) await writeReadyFile(options.readyFile, address);
  if (!options.quiet) process.stdout.write(await banner(images, address, tls !== undefined));
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      app.log.info({ signal }, 'shutting down');
      process.once(signal, () => process.exit(1)); // a second signal: stop now
      setTimeout(() => {
        app.log.warn('requests still running after the grace period; exiting');
        process.exit(0);
      }, SHUTDOWN_GRACE_MS).unref();
      app.close().then(resolve, resolve);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await stopped;
  if (options.readyFile !== undefined) await rm(options.readyFile, { force: true });
}

const BANNER_TAGS = 5;

/** What a person starting the server wants to see: where it is, and how to pull from it. */
async function banner(images: ServedImages, address: string, tls: boolean): Promise<string> {
  // A wildcard address is not one a client can use; 127.0.0.1 works from this machine.
  const pullAddress = address.replace(/^0\.0\.0\.0:/, '127.0.0.1:').replace(/^\[::\]:/, '127.0.0.1:');
  const names = await images.repositoryNames();
  // A few snapshots, not all: a store of 10 000 repositories must start at once.
  const refs: string[] = [];
  for (const name of names) {
    if (refs.length >= BANNER_TAGS) break;
    const resolved = await images.resolve(name);
    const tags = resolved.kind === 'found' ? ((await resolved.source.repository(name))?.tags ?? []) : [];
    refs.push(...tags.slice(0, BANNER_TAGS - refs.length).map((tag) => `${name}:${tag}`));
  }
  const lines = [`cartorio: serving ${images.description} on ${tls ? 'https' : 'http'}://${address} (${names.length} ${names.length === 1 ? 'repository' : 'repositories'})`];
  const first = refs[0];
  if (first === undefined) {
    lines.push(`  nothing to serve yet: load images with \`cartorio load --store ${images.description} IMAGE.tar\`; they are served without a restart`);
  } else {
    const insecure = tls ? '' : ' --tls-verify=false';
    lines.push('pull with:', `  docker pull ${pullAddress}/${first}`, `  podman pull${insecure} ${pullAddress}/${first}`, `  skopeo inspect${insecure} docker://${pullAddress}/${first}`);
    lines.push(`images: ${refs.join(', ')}${names.length > refs.length ? ', … (cartorio list)' : ''}`);
  }
  return lines.join('\n') + '\n';
}

/** `HOST:PORT`, `[IPv6]:PORT`, or `:PORT` (all interfaces). */
export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new CliError(`--listen "${value}" is not HOST:PORT`, 'e.g. 0.0.0.0:5000, 127.0.0.1:0 (any free port), [::1]:5000');
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

function formatAddress(address: AddressInfo): string {
  return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
}

// Written whole, then renamed, so a script polling for the file never reads half an address.
async function writeReadyFile(path: string, address: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, address);
  await rename(tmp, path);
}

async function readInput(path: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new CliError(`${flag} ${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
}
