import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { BlobLocation, ServedImages } from '../store/image-source.js';
import { BasicAuth, DEFAULT_REALM, type Htpasswd, bcryptCosts } from './auth.js';
import type { BcryptPoolLimits } from './bcrypt-pool.js';
import { serveBlob } from './blobs.js';
import { listCatalog } from './catalog.js';
import { RegistryError, badRequest, internalError, routeUnknown, uriTooLong, writeUnsupported } from './errors.js';
import { serveManifest } from './manifests.js';
import { Metrics, renderMetrics, type MetricsSnapshot } from './metrics.js';
import { parseV2Path, rawPath, spellsRoute } from './paths.js';
import { listReferrers } from './referrers.js';
import { queryParam, sendJson } from './respond.js';
import { resolveRepository } from './repository.js';
import { listTags } from './tags.js';
import { registerCatalog } from './ui/routes.js';

export interface RegistryOptions {
  /** What to serve, read-only: a store, layouts, archives, behind the one naming rule. */
  images: ServedImages;
  /** fastify's logger setting: false, or pino options (level, stream). */
  logger?: FastifyServerOptions['logger'];
  /** Require HTTP Basic credentials from this htpasswd for everything under /v2/. */
  htpasswd?: Htpasswd;
  realm?: string;
  /** Serve HTTPS with this certificate chain and key (PEM). */
  tls?: { cert: Buffer; key: Buffer };
  /** Connection limits; the defaults suit a registry on a network (tests shorten them). */
  timeouts?: Partial<Timeouts>;
  /** This process's counts; given when the caller also reads them (the other processes of a group ask for them). */
  metrics?: Metrics;
  /** The other processes serving the same port, when there are several. */
  group?: ProcessGroup;
  /** Serve the read-only catalog for browsers at `/` (DESIGN §4b); off when absent. */
  ui?: { trustProxy?: boolean };
  /** Connections open at once; one more is closed at once, and the log says so. */
  maxConnections?: number;
  /** Threads and queue of the password checks (tests shrink them). */
  bcrypt?: Partial<BcryptPoolLimits>;
}

/** What one process of a server of several (one port, many processes) knows about the others. */
export interface ProcessGroup {
  /** The counts of every other process serving the port that answered in time. */
  peerMetrics(): Promise<MetricsSnapshot[]>;
  /** Processes serving now, and how many should be: /healthz fails while one is missing. */
  processes(): { up: number; want: number };
  /** This process found a claimed blob good (`problem` undefined) or bad while serving it: the others must know. */
  blobVerdict(location: BlobLocation, digest: string, problem?: string): void;
}

/** How long a client may take, in milliseconds (Node's http.Server settings of the same names). */
export interface Timeouts {
  /** To send the request headers, from the connection's start (slowloris). */
  headersTimeout: number;
  /** To send the whole request; requests here have no body, so about the same. Not the response. */
  requestTimeout: number;
  /** An idle keep-alive connection stays open this long between requests. */
  keepAliveTimeout: number;
  /** A connection with no bytes moving either way (a client that stopped reading a blob) is closed. */
  connectionTimeout: number;
  /** How often headers and request timeouts are checked. */
  connectionsCheckingInterval: number;
  /**
   * To finish the TLS handshake, from the connection's start: before it, no HTTP timeout applies
   * (the HTTP parser starts after it), so a client that connects and says nothing is held this long.
   */
  handshakeTimeout: number;
}

export const DEFAULT_TIMEOUTS: Timeouts = {
  // Docker, containerd and skopeo send their headers at once; Node's default is 60 s.
  headersTimeout: 20_000,
  requestTimeout: 30_000,
  // fastify's default, longer than the 60 s idle timeout of common load balancers, so a balancer
  // never reuses a connection the registry is closing.
  keepAliveTimeout: 72_000,
  // A download moves bytes all the time; two minutes of silence is a client that is gone.
  connectionTimeout: 120_000,
  connectionsCheckingInterval: 5_000,
  // As headersTimeout: a real client's handshake takes milliseconds; Node's default is 120 s.
  handshakeTimeout: 20_000,
};

/**
 * Each open connection holds a descriptor and some memory (a download up to 128 KiB of buffers
 * once slow, file-pump.ts); the many clients of a fleet rollout use a few each. Beyond this many,
 * a connection is closed as it arrives instead of the process running out of descriptors.
 */
export const DEFAULT_MAX_CONNECTIONS = 8192;
/** A server at its connection cap says so at most this often (with how many it dropped since). */
const DROP_LOG_INTERVAL_MS = 60_000;

/** Request line plus headers (Node's default, set so a --max-http-header-size flag cannot raise it). */
export const MAX_HEADER_BYTES = 16 * 1024;
/** The longest URL the API needs is under 1 KiB (a 255-character name and a digest). */
export const MAX_URL_LENGTH = 4096;
/** Nothing here reads a request body; fastify still parses one for unknown routes. */
const BODY_LIMIT = 4096;
/** Routes open without credentials, for probes and scrapers: they tell nothing about images. */
const PUBLIC_ROUTES = new Set(['/healthz', '/metrics']);

const WRITE_METHODS = ['DELETE', 'PATCH', 'POST', 'PUT'] as const;
// Routes fastify knows by pattern; everything under /v2/ is labelled by what parseV2Path found.
const ROUTE_LABELS: Record<string, string> = { '/v2': 'base', '/v2/': 'base', '/v2/_catalog': 'catalog', '/healthz': 'healthz', '/metrics': 'metrics', '/': 'ui', '/r/*': 'ui', '/-/*': 'ui' };

// Stands in for fastify's schema compilers; a route given a schema is a programming error.
function noSchemas(): never {
  throw new Error('registry routes take no schema: fastify\'s schema compilers are not loaded (see buildRegistry)');
}

/**
 * Builds the registry: the pull and content-discovery routes of the OCI Distribution Spec v1.1
 * over a store, read-only. Returns the app, not yet listening.
 */
export function buildRegistry(options: RegistryOptions): FastifyInstance {
  const images = options.images;
  const auth = options.htpasswd ? new BasicAuth(options.htpasswd, options.realm ?? DEFAULT_REALM, options.bcrypt) : undefined;
  const metrics = options.metrics ?? new Metrics();
  const group = options.group;
  const routeLabels = new WeakMap<FastifyRequest, string>();
  const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  const server = { maxHeaderSize: MAX_HEADER_BYTES, headersTimeout: timeouts.headersTimeout, connectionsCheckingInterval: timeouts.connectionsCheckingInterval };
  const app = Fastify({
    logger: options.logger ?? false,
    // fastify hands these to https.createServer, which passes handshakeTimeout on to tls.Server.
    ...(options.tls ? { https: { ...options.tls, ...server, handshakeTimeout: timeouts.handshakeTimeout } } : { http: server }),
    // HEAD is written by hand for every route: fastify's automatic HEAD runs GET and discards the body.
    exposeHeadRoutes: false,
    // Names are up to 255 characters and the tail is parsed by parseV2Path, not by the router.
    routerOptions: { maxParamLength: 2048, ignoreTrailingSlash: true },
    // fastify turns Node's 300 s default off; requests here have no body, so a slow sender is a leak.
    requestTimeout: timeouts.requestTimeout,
    keepAliveTimeout: timeouts.keepAliveTimeout,
    connectionTimeout: timeouts.connectionTimeout,
    bodyLimit: BODY_LIMIT,
    // No route has a schema (no request has a body; every answer is built by hand), so fastify's
    // default compilers, Ajv and fast-json-stringify (~100 ms of start-up), are never loaded.
    schemaController: { compilersFactory: { buildValidator: noSchemas, buildSerializer: noSchemas } },
    frameworkErrors: (error, request, reply) => {
      void sendError(request, reply, badRequest(400, error.message));
    },
    // The cast joins fastify's http and https instance types, which differ only in the server type.
  }) as unknown as FastifyInstance;
  limitConnections(app, options.maxConnections ?? DEFAULT_MAX_CONNECTIONS);
  if (auth) {
    app.addHook('onClose', () => auth.close());
    const costs = bcryptCosts(options.htpasswd ?? new Map());
    if (costs.size > 1) {
      app.log.warn({ costs: Object.fromEntries(costs) }, 'htpasswd entries use different bcrypt costs: a wrong password takes longer for some users than for others, which tells a prober who they are; hash every entry at one cost (htpasswd -B -C COST)');
    }
  }
  // Sources report what happens to their files (an archive changed in place) through the log.
  for (const source of images.sources) source.logTo?.((details, message) => app.log.error(details, message));

  app.addHook('onRequest', async (request, reply) => {
    const started = process.hrtime.bigint();
    let finished = false;
    reply.raw.once('finish', () => (finished = true));
    reply.raw.once('close', () => {
      const head = request.method === 'HEAD' || reply.statusCode === 304;
      metrics.observe({
        route: routeLabels.get(request) ?? ROUTE_LABELS[request.routeOptions.url ?? ''] ?? 'other',
        method: request.method,
        status: reply.statusCode,
        seconds: Number(process.hrtime.bigint() - started) / 1e9,
        bytes: finished && !head ? Number(reply.getHeader('content-length') ?? 0) : 0,
        aborted: !finished,
      });
    });
    const path = rawPath(request.url);
    const route = request.routeOptions.url;
    // Distribution sends it on every /v2 answer; Docker's ping looks for it even on a 401.
    if (route?.startsWith('/v2') || path === '/v2' || path.startsWith('/v2/')) reply.header('docker-distribution-api-version', 'registry/2.0');
    // Credentials first, for every path but the public routes (unknown paths too: `/V2/`, `//v2/`),
    // so no spelling of a path reaches a handler unchecked; only then is the spelling judged.
    if (auth && !(route !== undefined && PUBLIC_ROUTES.has(route) && spellsRoute(path, route))) {
      const refused = await auth.check(request.headers.authorization);
      if (refused) throw refused;
    }
    if (request.url.length > MAX_URL_LENGTH) throw uriTooLong(MAX_URL_LENGTH);
    if (route !== undefined && !spellsRoute(path, route)) throw routeUnknown(path);
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof RegistryError) return sendError(request, reply, error);
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      return sendError(request, reply, badRequest(error.statusCode, error.message));
    }
    request.log.error({ err: error }, 'request failed');
    return sendError(request, reply, internalError());
  });
  app.setNotFoundHandler((request, reply) => sendError(request, reply, routeUnknown(rawPath(request.url))));

  // distribution-spec "Determining support": GET /v2/ → 200 and the API version header Docker checks.
  app.route({
    method: ['GET', 'HEAD'],
    url: '/v2/',
    handler: (request, reply) => sendJson(request, reply, {}),
  });
  app.route({ method: ['GET', 'HEAD'], url: '/v2/_catalog', handler: (request, reply) => listCatalog(images, request, reply) });
  app.route({
    method: ['GET', 'HEAD'],
    url: '/v2/*',
    handler: async (request, reply) => {
      const path = parseV2Path(v2Tail(request.url));
      routeLabels.set(request, path.kind === 'error' || path.kind === 'none' ? 'invalid' : path.kind);
      if (path.kind === 'error') throw path.error;
      if (path.kind === 'none') throw routeUnknown(rawPath(request.url));
      const repository = await resolveRepository(images, path.name, queryParam(request, 'ns'), path.kind === 'referrers');
      switch (path.kind) {
        case 'manifests':
          return serveManifest(repository, path.reference, request, reply);
        case 'blobs':
          return serveBlob(repository, path.reference, request, reply, group && ((location, digest, problem) => group.blobVerdict(location, digest, problem)));
        case 'tags':
          return listTags(repository, request, reply);
        case 'referrers':
          return listReferrers(repository, path.reference, request, reply);
      }
    },
  });
  // Read-only: refused in onRequest, before any body is parsed (a PUT with an odd Content-Type
  // must still be a 405, not a 415).
  for (const url of ['/v2/', '/v2/_catalog', '/v2/*']) {
    app.route({
      method: [...WRITE_METHODS],
      url,
      onRequest: async (request) => {
        routeLabels.set(request, 'write');
        throw writeUnsupported(request.method);
      },
      // Never reached (onRequest answers); fastify needs one.
      handler: async (request) => {
        throw writeUnsupported(request.method);
      },
    });
  }

  // Public (PUBLIC_ROUTES): counts and states only, never a path, entry or digest; the log has those.
  app.route({ method: ['GET', 'HEAD'], url: '/healthz', handler: async (request, reply) => {
    // The store directory going away (an unmounted volume) is what takes a replica out of service.
    const ok = await images.available();
    // A worker that died is being replaced; until then the server answers with less than it should.
    const processes = group?.processes();
    const whole = processes === undefined || processes.up >= processes.want;
    // Degraded still serves (what no longer matches is refused): 200, so a probe keeps the replica.
    const { degraded, ...health } = images.health();
    const status = !ok ? 'store unavailable' : !whole ? 'workers down' : degraded === true ? 'degraded' : 'ok';
    return sendJson(request, reply.code(ok && whole ? 200 : 503), { status, ...(processes && { workers: processes }), ...health });
  } });
  // The pages fall under the same credentials as /v2/ (onRequest above): they list every image.
  if (options.ui) registerCatalog(app, { images, ...options.ui });
  app.get('/metrics', async (_request, reply) => {
    const snapshots = [metrics.snapshot(), ...(group ? await group.peerMetrics() : [])];
    return reply.header('content-type', 'text/plain; version=0.0.4; charset=utf-8').send(renderMetrics(snapshots));
  });
  return app;
}

// Node closes a connection beyond server.maxConnections as it arrives ('drop'): logged, not per drop.
function limitConnections(app: FastifyInstance, max: number): void {
  app.server.maxConnections = max;
  let dropped = 0;
  let loggedAt = -Infinity;
  app.server.on('drop', () => {
    dropped++;
    const now = performance.now();
    if (now - loggedAt < DROP_LOG_INTERVAL_MS) return;
    loggedAt = now;
    app.log.warn({ maxConnections: max, dropped }, `${max} connections are open, the most this server takes: new connections are closed as they arrive until some end`);
    dropped = 0;
  });
}

/** The raw path after `/v2/` (onRequest made sure it is spelled so), for parseV2Path to decode segment by segment. */
function v2Tail(url: string): string {
  return rawPath(url).slice('/v2/'.length);
}

function sendError(request: FastifyRequest, reply: FastifyReply, error: RegistryError): FastifyReply {
  reply.code(error.status);
  for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
  const body = Buffer.from(error.body());
  reply.header('content-type', 'application/json').header('content-length', body.length);
  return reply.send(request.method === 'HEAD' ? undefined : body);
}
