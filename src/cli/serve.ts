import { readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import type { FastifyInstance } from 'fastify';
import { ArchiveSource } from '../formats/archive-source.js';
import { nameServedLayouts } from '../formats/served-layouts.js';
import { CopyPool } from '../store/copy-pool.js';
import { type ImageSource, ServedImages } from '../store/image-source.js';
import { StoreReader } from '../store/reader.js';
import { Metrics } from '../registry/metrics.js';
import { type Verdict, WorkerGroup, WorkerLink, checkSameArchives, leaveGroup, stopOnSignals, workerAddress } from './serve-workers.js';
import { autoWorkers, hasReusePort, parseWorkers } from './worker-count.js';
import { capYoungGeneration } from './young-generation.js';
import { type BucketServeFlags, bucketServeOptions, openBucketSource } from './bucket-serve.js';
import { CliError, type StoreLocation, action, examples, parseStore, storeOption } from './common.js';

/** The registry's modules (fastify, ~150 ms to load): imported while the archives are being read. */
type Registry = [typeof import('../registry/app.js'), typeof import('../registry/auth.js')];

interface ServeOptions extends BucketServeFlags {
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

/** What one `serve` serves, for the banner and the signal handlers. */
interface Sources {
  images: ServedImages;
  archives?: ArchiveSource;
  /** The store directory, when a store is served. */
  store?: string;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** `cartorio serve`: the read-only registry over a store. */
export function serveCommand(): Command {
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
      const registry = Promise.all([import('../registry/app.js'), import('../registry/auth.js')]);
      // A failure to read the inputs is the one to report; the import's own failure is awaited in serve().
      registry.catch(() => undefined);
      try {
        await serve(await openSources(inputs, store, options), options, await registry);
      } catch (error) {
        // A worker that cannot serve exits (its IPC channel would keep it alive); the primary logs and replaces it.
        leaveGroup();
        throw error;
      }
    }));
}

// Archives (files) and layouts (directories) by what the path is; a name held by two sources is refused here.
async function openSources(inputs: string[], location: StoreLocation | undefined, options: BucketServeFlags): Promise<Sources> {
  const store = location?.kind === 'directory' ? location.path : undefined;
  const files: string[] = [];
  const dirs: string[] = [];
  for (const input of inputs) {
    const equals = input.indexOf('=');
    const path = resolve(equals > 0 ? input.slice(equals + 1) : input);
    const info = await stat(path).catch(() => undefined);
    if (!info) throw new CliError(`${path}: does not exist`, 'give an image tarball (FILE.tar) or an OCI layout directory, optionally as NAME=PATH');
    (info.isFile() ? files : dirs).push(input);
  }
  const sources: ImageSource[] = [];
  const archives = files.length > 0 ? await ArchiveSource.open(files) : undefined;
  if (archives) sources.push(archives);
  if (dirs.length > 0) sources.push(new StoreReader(dirs.join(' '), await nameServedLayouts(dirs)));
  if (store !== undefined) sources.push(new StoreReader(store));
  if (location?.kind === 'bucket') sources.push(await openBucketSource(location, options));
  const owner = new Map<string, ImageSource>();
  for (const source of sources) {
    for (const name of await source.repositoryNames()) {
      const other = owner.get(name);
      if (other) {
        await archives?.close();
        throw new CliError(`"${name}" would be served from both ${other.description} and ${source.description}`, 'serve one of them under another name: NAME=PATH');
      }
      owner.set(name, source);
    }
  }
  return { images: new ServedImages(sources), ...(archives && { archives }), ...(store !== undefined && { store }) };
}

async function serve(sources: Sources, options: ServeOptions, [{ buildRegistry }, { parseHtpasswd }]: Registry): Promise<void> {
  const { images, archives } = sources;
  capYoungGeneration(process.execArgv, process.env.NODE_OPTIONS);
  // A worker listens where the primary already does; only the primary speaks to the user.
  const shared = workerAddress();
  const { host, port } = parseListen(shared ?? options.listen);
  const count = shared !== undefined ? 1 : options.workers === 'auto' ? await autoWorkers() : options.workers;
  if (count > 1 && !hasReusePort(process.versions.node)) throw new CliError(`--workers ${count} needs Node.js 22.12 or later (listen's reusePort); this is ${process.version}`, 'use --workers 1, or a supported Node.js');
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) throw new CliError('--tls-cert and --tls-key go together');
  const tls = options.tlsCert !== undefined && options.tlsKey !== undefined
    ? { cert: await readInput(options.tlsCert, '--tls-cert'), key: await readInput(options.tlsKey, '--tls-key') }
    : undefined;
  const htpasswd = options.htpasswd === undefined ? undefined : parseHtpasswd((await readInput(options.htpasswd, '--htpasswd')).toString('utf8'), options.htpasswd);
  const metrics = new Metrics();
  const logger = { level: options.logLevel, stream: process.stderr };
  let group: WorkerGroup | undefined;
  let link: WorkerLink | undefined;
  if (shared !== undefined) {
    if (archives) checkSameArchives(archives.identity, archives.paths);
    link = new WorkerLink({
      own: () => metrics.snapshot(),
      reload: () => archives && void reloadArchives(archives, app),
      verdict: (v: Verdict) => archives?.adoptVerdict(v.identity, v.digest, v.path, v.offset, v.problem, v.status),
      identityOf: (digest, location) => archives?.identityOf(digest, location),
    });
  } else if (count > 1) {
    group = new WorkerGroup(count, { error: (details, message) => app.log.error(details, message) }, () => metrics.snapshot(), () => archives?.identity);
  }
  if (group && archives) {
    group.adopt = (v) => archives.adoptVerdict(v.identity, v.digest, v.path, v.offset, v.problem, v.status);
    group.identityOf = (digest, location) => archives.identityOf(digest, location);
  }
  const app = buildRegistry({ images, logger, metrics, ...((group ?? link) && { group: group ?? link }), ...(htpasswd && { htpasswd }), ...(tls && { tls }), ...(options.ui && { ui: { trustProxy: options.trustProxy === true } }) });
  try {
    // SO_REUSEPORT on every process of a group; a worker binds its own socket (exclusive), not the primary's.
    await app.listen({ host, port, ...(count > 1 || shared !== undefined ? { reusePort: true } : {}), ...(shared !== undefined && { exclusive: true }) });
  } catch (error) {
    throw new CliError(`cannot listen on ${shared ?? options.listen}: ${(error as Error).message}`);
  }
  const address = formatAddress(app.server.address() as AddressInfo);
  const stopped = stopOnSignals(app, group);
  if (link) {
    // SIGHUP is the primary's to pass on (a terminal's hangup reaches every process of the group).
    process.on('SIGHUP', () => undefined);
    link.listening();
  } else {
    // A SIGTERM while the workers start stops them before they listen, and their start never
    // settles: waiting for it alone left nothing to run and Node exited 13 ("unsettled await").
    const started = (group?.start(address) ?? Promise.resolve()).then(
      () => true,
      async (error: unknown) => {
        await Promise.all([group?.stop(), app.close()]);
        throw error;
      },
    );
    if (await Promise.race([started, stopped.then(() => false)])) await announce(sources, options, app, address, htpasswd !== undefined, tls !== undefined, count);
    if (archives) {
      process.on('SIGHUP', () => {
        group?.broadcast({ type: 'reload' });
        void reloadArchives(archives, app);
      });
      // --verify hashes once, in the primary; every worker learns what it finds.
      if (options.verify) void verifyArchives(archives, app, group);
    }
  }
  await stopped;
  await archives?.close();
  if (options.readyFile !== undefined && !link) await rm(options.readyFile, { force: true });
  leaveGroup();
}

// The primary, once every process listens: warnings, the ready file, the banner.
async function announce(sources: Sources, options: ServeOptions, app: FastifyInstance, address: string, htpasswd: boolean, tls: boolean, workers: number): Promise<void> {
  const archives = sources.archives;
  // Basic auth sends the password in every request; off this machine that wants TLS.
  if (htpasswd && !tls && !/^(127\.|\[::1\]|localhost)/.test(address)) {
    app.log.warn({ address }, '--htpasswd without --tls-cert: passwords cross the network in clear text');
  }
  const storeState = sources.store === undefined ? undefined : await describeStore(sources.store);
  if (storeState) app.log.warn({ store: sources.store }, `store ${storeState}: images loaded into it are served live, without a restart`);
  if (archives) app.log.info({ archives: archives.paths, repositories: (await archives.repositoryNames()).length, startupMs: Math.round(performance.now()) }, 'serving archives in place');
  if (workers > 1) app.log.info({ address, workers }, `${workers} processes serve ${address}`);
  if (options.readyFile !== undefined) await writeReadyFile(options.readyFile, address);
  if (!options.quiet) process.stdout.write(await banner(sources, address, tls, storeState, options.ui));
}

const BANNER_TAGS = 5;

/** What a person starting the server wants to see: where it is, and how to pull from it. */
async function banner(sources: Sources, address: string, tls: boolean, storeState: string | undefined, ui: boolean): Promise<string> {
  const images = sources.images;
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
  if (storeState !== undefined) {
    lines.push(`  store ${sources.store ?? ''} ${storeState}: images loaded into it (cartorio load --store ${sources.store ?? ''} IMAGE.tar) are served live, without a restart`);
  }
  if (first !== undefined) {
    const insecure = tls ? '' : ' --tls-verify=false';
    lines.push('pull with:', `  docker pull ${pullAddress}/${first}`, `  podman pull${insecure} ${pullAddress}/${first}`, `  skopeo inspect${insecure} docker://${pullAddress}/${first}`);
    lines.push(`images: ${refs.join(', ')}${names.length > refs.length ? ', … (cartorio list)' : ''}`);
  }
  if (ui) lines.push(`browse: ${tls ? 'https' : 'http'}://${pullAddress}/`);
  return lines.join('\n') + '\n';
}

// Undefined when the store holds something; else what to tell (it is missing, or empty).
async function describeStore(store: string): Promise<string | undefined> {
  const entries = await readdir(store).catch(() => undefined);
  if (entries === undefined) return 'does not exist yet';
  return entries.some((name) => !name.startsWith('.')) ? undefined : 'is empty';
}

// SIGHUP: the archive files are read again; on a problem the old ones keep being served.
async function reloadArchives(archives: ArchiveSource, app: FastifyInstance): Promise<void> {
  const started = performance.now();
  try {
    await archives.reload();
    app.log.info({ archives: archives.paths, repositories: (await archives.repositoryNames()).length, ms: Math.round(performance.now() - started) }, 'SIGHUP: archives read again; new downloads get their current bytes');
  } catch (error) {
    app.log.error({ err: error }, `SIGHUP: cannot read the archives again, still serving the previous ones: ${(error as Error).message}`);
  }
}

// --verify: every unproven layer hashed on worker threads, from the archive's open descriptor.
async function verifyArchives(archives: ArchiveSource, app: FastifyInstance, group: WorkerGroup | undefined): Promise<void> {
  const pool = new CopyPool();
  const started = performance.now();
  // The files verified: a SIGHUP meanwhile serves others, which these verdicts are not about.
  const identity = archives.identity;
  app.log.info({ archives: archives.paths }, 'verifying every layer of the archives while serving');
  try {
    const failed = await archives.verify(
      async (location) => (await pool.copy({ input: location.path, offset: location.offset, size: location.size, ...(location.handle && { fd: location.handle.fd }) }).copied).digest,
      (location, digest, problem) => {
        const status = archives.verificationStatus();
        if (group && status) group.broadcast({ type: 'verdict', identity, digest, path: location.path, offset: location.offset, ...(problem !== undefined && { problem }), status });
        if (problem !== undefined) app.log.error({ archive: location.path, entry: location.origin, digest, problem }, 'verification: blob does not match its digest; refused from now on');
      },
    );
    const summary = { failed: failed.length, ms: Math.round(performance.now() - started) };
    const status = archives.verificationStatus();
    if (group && status) group.broadcast({ type: 'verdict', identity, digest: '', path: '', offset: -1, status }); // done: the final status
    if (failed.length > 0) app.log.error({ ...summary, blobs: failed.slice(0, 20) }, 'verification finished: some blobs do not match their digest and are refused');
    else app.log.info(summary, 'verification finished: every blob matches its digest');
  } finally {
    await pool.close();
  }
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
