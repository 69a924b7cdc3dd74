import { readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { ArchiveSource } from '../formats/archive-source.js';
import { nameServedLayouts } from '../formats/served-layouts.js';
import type { Logger, StartingServer } from '../registry/start-server.js';
import { type ImageSource, ServedImages } from '../store/image-source.js';
import { StoreReader } from '../store/reader.js';
import { Metrics } from '../registry/metrics.js';
import { type Verdict, WorkerGroup, WorkerLink, checkSameArchives, leaveGroup, stopOnSignals } from './serve-workers.js';
import { type BucketServeFlags, openBucketSource } from './bucket-serve.js';
import { CliError, type StoreLocation } from './common.js';
import { type ServeOptions, readInput } from './serve.js';

/**
 * What `serve` does once its server listens (serve.ts): open the images and answer pulls from
 * them at once, load fastify when the first requests are done, then start the other processes
 * and tell the user.
 */

/** What one `serve` serves, for the banner and the signal handlers. */
interface Sources {
  images: ServedImages;
  archives?: ArchiveSource;
  /** The store directory, when a store is served. */
  store?: string;
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

/** What serve.ts decided before listening. */
export interface ServeStart {
  inputs: string[];
  store: StoreLocation | undefined;
  options: ServeOptions;
  /** Processes serving the port, this one included (1 in a worker). */
  workers: number;
  /** In a worker: listens (the primary listened before calling). */
  listening?: () => Promise<void>;
}

export async function serve(server: StartingServer, start: ServeStart): Promise<void> {
  const { options } = start;
  const log = server.log;
  let app: { close(): Promise<unknown> } | undefined;
  let group: WorkerGroup | undefined;
  const stopped = stopOnSignals(closing(server, () => app, () => group), undefined);
  const metrics = new Metrics();
  // Credentials are checked in fastify's onRequest hook: with --htpasswd nothing is answered before it.
  const early = options.htpasswd === undefined;
  if (early) void server.prepare(metrics);
  const sources = await openSources(start.inputs, start.store, options);
  const { images, archives } = sources;
  for (const source of images.sources) source.logTo?.((details, message) => log.error(details, message));
  const htpasswd = options.htpasswd === undefined ? undefined : (await import('../registry/auth.js')).parseHtpasswd((await readInput(options.htpasswd, '--htpasswd')).toString('utf8'), options.htpasswd);
  let link: WorkerLink | undefined;
  if (start.listening) {
    if (archives) checkSameArchives(archives.identity, archives.paths);
    link = new WorkerLink({
      own: () => metrics.snapshot(),
      reload: () => archives && void reloadArchives(archives, log),
      verdict: (v: Verdict) => archives?.adoptVerdict(v.identity, v.digest, v.path, v.offset, v.problem, v.status),
      identityOf: (digest, location) => archives?.identityOf(digest, location),
    });
  } else if (start.workers > 1) {
    group = new WorkerGroup(start.workers, { error: (details, message) => log.error(details, message) }, () => metrics.snapshot(), () => archives?.identity);
    if (archives) {
      group.adopt = (v) => archives.adoptVerdict(v.identity, v.digest, v.path, v.offset, v.problem, v.status);
      group.identityOf = (digest, location) => archives.identityOf(digest, location);
    }
  }
  const peers = group ?? link;
  if (early) await server.answer({ images, ...(peers && { verdict: (location, digest, problem) => peers.blobVerdict(location, digest, problem) }) });
  await start.listening?.();
  // A SIGTERM before fastify is wanted: nothing more to start.
  if (await Promise.race([(htpasswd ? Promise.resolve() : server.appWanted).then(() => false), stopped.then(() => true)])) {
    await archives?.close();
    leaveGroup();
    return;
  }
  const { buildRegistry } = await import('../registry/app.js');
  const logger = { level: options.logLevel, stream: process.stderr };
  const registry = buildRegistry({ images, logger, metrics, server, ...(peers && { group: peers }), ...(htpasswd && { htpasswd }), ...(options.ui && { ui: { trustProxy: options.trustProxy === true } }) });
  app = registry;
  await registry.ready();
  server.handOver(registry.routing, registry.log);
  // For the long run, not the first requests: loaded once fastify is.
  (await import('./young-generation.js')).capYoungGeneration(process.execArgv, process.env.NODE_OPTIONS);
  const address = formatAddress(server.server.address() as AddressInfo);
  // fastify's own line when it listens itself; here the server listened before fastify was loaded.
  log.info({}, `Server listening at ${options.tlsCert !== undefined ? 'https' : 'http'}://${address}`);
  if (link) {
    // SIGHUP is the primary's to pass on (a terminal's hangup reaches every process of the group).
    process.on('SIGHUP', () => undefined);
    link.listening();
  } else {
    // A SIGTERM while the workers start stops them before they listen, and their start never
    // settles: waiting for it alone left nothing to run and Node exited 13 ("unsettled await").
    const started = (group?.start(address) ?? Promise.resolve()).then(() => true, async (error: unknown) => {
      await group?.stop();
      throw error;
    });
    if (await Promise.race([started, stopped.then(() => false)])) await announce(sources, options, log, address, htpasswd !== undefined, options.tlsCert !== undefined, start.workers);
    if (archives) {
      process.on('SIGHUP', () => {
        group?.broadcast({ type: 'reload' });
        void reloadArchives(archives, log);
      });
      // --verify hashes once, in the primary; every worker learns what it finds.
      if (options.verify) void verifyArchives(archives, log, group);
    }
  }
  await stopped;
  await archives?.close();
  if (options.readyFile !== undefined && !link) await rm(options.readyFile, { force: true });
  leaveGroup();
}

// What SIGTERM stops: this server (requests running finish, idle connections close), then fastify's
// app (its onClose hooks), and the workers, which drain their own requests meanwhile.
function closing(server: StartingServer, app: () => { close(): Promise<unknown> } | undefined, group: () => WorkerGroup | undefined): Parameters<typeof stopOnSignals>[0] {
  return {
    log: { info: (details, message) => server.log.info(details, message), warn: (message) => server.log.warn({}, message) },
    close: () => Promise.all([server.close().then(() => app()?.close()), group()?.stop()]),
  };
}

// The primary, once every process listens: warnings, the ready file, the banner.
async function announce(sources: Sources, options: ServeOptions, log: Logger, address: string, htpasswd: boolean, tls: boolean, workers: number): Promise<void> {
  const archives = sources.archives;
  // Basic auth sends the password in every request; off this machine that wants TLS.
  if (htpasswd && !tls && !/^(127\.|\[::1\]|localhost)/.test(address)) {
    log.warn({ address }, '--htpasswd without --tls-cert: passwords cross the network in clear text');
  }
  const storeState = sources.store === undefined ? undefined : await describeStore(sources.store);
  if (storeState) log.warn({ store: sources.store }, `store ${storeState}: images loaded into it are served live, without a restart`);
  if (archives) log.info({ archives: archives.paths, repositories: (await archives.repositoryNames()).length, startupMs: Math.round(performance.now()) }, 'serving archives in place');
  if (workers > 1) log.info({ address, workers }, `${workers} processes serve ${address}`);
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
async function reloadArchives(archives: ArchiveSource, log: Logger): Promise<void> {
  const started = performance.now();
  try {
    await archives.reload();
    log.info({ archives: archives.paths, repositories: (await archives.repositoryNames()).length, ms: Math.round(performance.now() - started) }, 'SIGHUP: archives read again; new downloads get their current bytes');
  } catch (error) {
    log.error({ err: error }, `SIGHUP: cannot read the archives again, still serving the previous ones: ${(error as Error).message}`);
  }
}

// --verify: every unproven layer hashed on worker threads, from the archive's open descriptor.
async function verifyArchives(archives: ArchiveSource, log: Logger, group: WorkerGroup | undefined): Promise<void> {
  const { CopyPool } = await import('../store/copy-pool.js');
  const pool = new CopyPool();
  const started = performance.now();
  // The files verified: a SIGHUP meanwhile serves others, which these verdicts are not about.
  const identity = archives.identity;
  log.info({ archives: archives.paths }, 'verifying every layer of the archives while serving');
  try {
    const failed = await archives.verify(
      async (location) => (await pool.copy({ input: location.path, offset: location.offset, size: location.size, ...(location.handle && { fd: location.handle.fd }) }).copied).digest,
      (location, digest, problem) => {
        const status = archives.verificationStatus();
        if (group && status) group.broadcast({ type: 'verdict', identity, digest, path: location.path, offset: location.offset, ...(problem !== undefined && { problem }), status });
        if (problem !== undefined) log.error({ archive: location.path, entry: location.origin, digest, problem }, 'verification: blob does not match its digest; refused from now on');
      },
    );
    const summary = { failed: failed.length, ms: Math.round(performance.now() - started) };
    const status = archives.verificationStatus();
    if (group && status) group.broadcast({ type: 'verdict', identity, digest: '', path: '', offset: -1, status }); // done: the final status
    if (failed.length > 0) log.error({ ...summary, blobs: failed.slice(0, 20) }, 'verification finished: some blobs do not match their digest and are refused');
    else log.info(summary, 'verification finished: every blob matches its digest');
  } finally {
    await pool.close();
  }
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

