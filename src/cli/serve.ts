import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUTS } from '../registry/http-server.js';
import { StartingServer } from '../registry/start-server.js';
import { MAX_WORKERS, autoWorkers, hasReusePort, workersValue } from './worker-count.js';
import { listenAddress } from './listen-address.js';
import type { EarlyPort } from './early-port.js';
import { strangersOnPort } from './port-strangers.js';
import { type BucketServeFlags, bucketServeOptions } from './bucket-serve.js';
import { CliError, action, examples, parseStore, storeOption } from './common.js';

export interface ServeOptions extends BucketServeFlags {
  store: string;
  listen: string;
  readyFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  htpasswd?: string;
  logLevel: string;
  quiet?: boolean;
  verify?: boolean;
  workers: number | 'auto';
  /** commander's negated --no-ui: false when given. */
  ui: boolean;
  trustProxy?: boolean;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** `cartorio serve`: the read-only registry over a store. */
export function serveCommand(early?: EarlyPort): Command {
  const [refresh, blobRedirect, blobRedirectEndpoint] = bucketServeOptions();
  return new Command('serve')
    .summary('serve images read-only over the registry API')
    .description(
      'Serve images read-only (OCI Distribution / Docker Registry v2 API):\n' +
        'the store, or the INPUTs given, or both (--store DIR and INPUTs).\n' +
        'An INPUT is [NAME=]PATH:\n' +
        '  FILE.tar  an uncompressed docker save or OCI archive, served in\n' +
        '            place (no copy, ready at once), each image under the\n' +
        '            name and digest `cartorio load` would give it;\n' +
        '  DIR       an OCI layout, or a get output holding oci/.\n' +
        'Layers whose digest an archive only claims are hashed as they\n' +
        'stream, never sent whole when they do not match.\n' +
        'SIGHUP re-reads the archive files (after replacing one).\n' +
        'Several processes share the port (--workers): SIGHUP and SIGTERM go to\n' +
        'the first one, which passes them on and replaces a worker that dies.',
    )
    .argument('[inputs...]', 'archives and layouts to serve: [NAME=]FILE.tar or [NAME=]DIR')
    .addOption(storeOption())
    .addOption(refresh)
    .addOption(blobRedirect)
    .addOption(blobRedirectEndpoint)
    .addOption(new Option('-l, --listen <host:port>', 'address to listen on (port 0 picks a free one)').env('CARTORIO_LISTEN').default('0.0.0.0:5000'))
    .option('--ready-file <file>', 'once listening, write the bound address (e.g. 127.0.0.1:41234) to this file')
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (chain)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--htpasswd <file>', 'require HTTP Basic auth from this htpasswd file (bcrypt entries, htpasswd -B)')
    .option('--verify', 'hash every layer of the archives on worker threads at start, while already serving; /healthz tells when it is done and how many failed, the log which')
    // auto, not 1: one Node.js process serves on one core, and a registry answering many small
    // requests is CPU-bound (manifest GETs at c32: 1 process used 1 of 2 cores while Distribution's
    // Go server used both). Where pods or replicas are the unit of scale, give --workers 1.
    .addOption(new Option('--workers <n|auto>', 'processes serving the port: auto = the cores this process may use (CPU affinity and cgroup cpu.max quota), 1 = a single process').env('CARTORIO_WORKERS').argParser(parseWorkers).default('auto'))
    .option('--no-ui', 'do not serve the catalog pages for browsers at / (the API under /v2/ is the same either way)')
    .option('--trust-proxy', 'behind a reverse proxy: the pages\' pull commands name X-Forwarded-Host and -Proto instead of Host')
    .addOption(new Option('--log-level <level>', 'log level of the JSON logs on stderr').choices(LOG_LEVELS).default('info'))
    .option('-q, --quiet', 'do not print the address and pull commands on stdout')
    .addHelpText('after', examples([
      'cartorio serve                                   # ./cartorio-store on 0.0.0.0:5000',
      'AWS_ENDPOINT_URL_S3=http://10.0.0.9:7480 cartorio serve --store s3://images/prod --refresh 10s',
      'cartorio serve --store /srv/images --listen 127.0.0.1:5000',
      'cartorio serve --listen 127.0.0.1:0 --ready-file addr && curl http://$(cat addr)/v2/_catalog',
      'cartorio serve --tls-cert server.crt --tls-key server.key --htpasswd users.htpasswd',
      'cartorio serve --no-ui                           # the API only: / answers 404 as /v2/ does for unknown paths',
      'cartorio serve --trust-proxy                     # behind nginx: pull commands on the pages name X-Forwarded-Host',
      'docker save app:1 app:2 -o app.tar && cartorio serve app.tar   # served in place as app:1, app:2',
      'cartorio serve myapp=image/image.tar             # oci-build-task output, under the name myapp',
      'cartorio serve ./app-image/oci tools/kit=./kit-layout   # a Concourse get output and a layout',
      'cartorio serve --store /srv/images extra.tar     # a store and an archive together',
      'kill -HUP <pid of serve>                         # after replacing app.tar: serve the new file',
      'cartorio serve --workers 1 --store /srv/images   # one process (a pod of a Deployment)',
      'docker pull 127.0.0.1:5000/busybox:1             # 127.0.0.0/8 needs no insecure-registries entry',
    ]))
    .action(action('serve', async (inputs: string[], options: ServeOptions, command: Command) => {
      const store = inputs.length === 0 || command.getOptionValueSource('store') === 'cli' ? parseStore(options.store) : undefined;
      // A worker listens where the primary already does; only the primary speaks to the user.
      // node:cluster is loaded before listening only where a worker may be: a process with an IPC
      // channel to its parent (a cluster worker has one); the first process loads it after.
      const workers = process.channel !== undefined ? await import('./serve-workers.js') : undefined;
      const shared = workers?.workerAddress();
      const { host, port } = parseListen(shared ?? options.listen);
      const count = shared !== undefined ? 1 : options.workers === 'auto' ? autoWorkers() : options.workers;
      if (count > 1 && !hasReusePort(process.versions.node)) throw new CliError(`--workers ${count} needs Node.js 22.12 or later (listen's reusePort); this is ${process.version}`, 'use --workers 1, or a supported Node.js');
      if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) throw new CliError('--tls-cert and --tls-key go together');
      const tls = options.tlsCert !== undefined && options.tlsKey !== undefined
        ? { cert: await readInput(options.tlsCert, '--tls-cert'), key: await readInput(options.tlsKey, '--tls-key') }
        : undefined;
      const server = new StartingServer({ ...(tls && { tls }), timeouts: DEFAULT_TIMEOUTS, maxConnections: DEFAULT_MAX_CONNECTIONS });
      // SO_REUSEPORT on every process of a group; a worker binds its own socket (exclusive), not the primary's.
      const listen = { host, port, ...(count > 1 || shared !== undefined ? { reusePort: true } : {}), ...(shared !== undefined && { exclusive: true }) };
      // The port bound before the program loaded, when it is this one (early-port.ts); a worker's never is.
      const bound = shared === undefined ? early?.take(listen) : undefined;
      const listening = async (): Promise<void> => {
        try {
          await server.listen(listen, bound);
        } catch (error) {
          throw new CliError(`cannot listen on ${shared ?? options.listen}: ${(error as Error).message}`);
        }
      };
      // The first process listens before anything else is loaded (start-server.ts holds what comes
      // in until it can answer). A worker listens once its images are open and found to be the
      // primary's: it must never take a connection it would then drop.
      if (shared === undefined) await listening();
      try {
        // With SO_REUSEPORT the kernel lets another server of this user bind the port too and
        // splits connections with it: the first process makes sure it is alone there before it
        // answers anything (nothing is, before serve()), while the rest of it loads.
        const alone = listen.reusePort === true && shared === undefined ? refuseSharedPort(server, bound?.strangers) : undefined;
        const [{ serve }] = await Promise.all([import('./serving.js'), alone]);
        await serve(server, { inputs, store, options, workers: count, ...(shared !== undefined && { listening }) });
      } catch (error) {
        // A worker that cannot serve exits (its IPC channel would keep it alive); the primary logs and replaces it.
        workers?.leaveGroup();
        await server.close();
        throw error;
      }
    }));
}

/** `--workers`: `auto` or a count from 1 (worker-count.ts), else commander's one-line usage error. */
export function parseWorkers(value: string): number | 'auto' {
  const workers = workersValue(value);
  if (workers === undefined) throw new InvalidArgumentError(`expected auto or a number of processes from 1 to ${MAX_WORKERS}`);
  return workers;
}

/**
 * Fails when another process's socket shares the server's port (port-strangers.ts), as counted
 * when the port was bound early, or now.
 */
async function refuseSharedPort(server: StartingServer, counted: Promise<number> | undefined): Promise<void> {
  const address = server.server.address() as AddressInfo;
  if ((await (counted ?? strangersOnPort(address))) === 0) return;
  const where = address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
  throw new CliError(
    `cannot listen on ${where}: another process listens there already, and --workers (SO_REUSEPORT) would split the port's connections between the two servers`,
    `stop it (\`ss -ltnp 'sport = :${address.port}'\` names it), or choose another --listen`,
  );
}

/** `HOST:PORT`, `[IPv6]:PORT`, or `:PORT` (all interfaces). */
export function parseListen(value: string): { host: string; port: number } {
  const address = listenAddress(value);
  if (address === undefined) throw new CliError(`--listen "${value}" is not HOST:PORT`, 'e.g. 0.0.0.0:5000, 127.0.0.1:0 (any free port), [::1]:5000');
  return address;
}

export async function readInput(path: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new CliError(`${flag} ${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
}
