import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { BlobLocation, ServedImages } from '../store/image-source.js';
import { BasicAuth, DEFAULT_REALM, type Htpasswd, bcryptCosts } from './auth.js';
import type { BcryptPoolLimits } from './bcrypt-pool.js';
import { badRequest, routeUnknown, uriTooLong, writeUnsupported } from './errors.js';
import { Metrics, renderMetrics, type MetricsSnapshot } from './metrics.js';
import { rawPath, spellsRoute } from './paths.js';
import { type PullContext, type PullRoute, ROUTE_LABELS, answerPull, observeResponse } from './pull-routes.js';
import { sendError, sendFailure, sendJson } from './respond.js';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUTS, type Timeouts, createRegistryServer } from './http-server.js';
import type { StartingServer } from './start-server.js';
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
  /**
   * The server already listening (serve's start): the app answers its requests once handed over
   * (`StartingServer.handOver(app.routing, app.log)`) and is never `listen`ed. Without it the app
   * makes its own server (tls, timeouts, maxConnections), listened on by `app.listen()`.
   */
  server?: StartingServer;
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

export { DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUTS, MAX_HEADER_BYTES, type Timeouts } from './http-server.js';
/** The longest URL the API needs is under 1 KiB (a 255-character name and a digest). */
export const MAX_URL_LENGTH = 4096;
/** Nothing here reads a request body; fastify still parses one for unknown routes. */
const BODY_LIMIT = 4096;
/** Routes open without credentials, for probes and scrapers: they tell nothing about images. */
const PUBLIC_ROUTES = new Set(['/healthz', '/metrics']);

const WRITE_METHODS = ['DELETE', 'PATCH', 'POST', 'PUT'] as const;

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
  const server = options.server?.server ?? createRegistryServer(
    { ...(options.tls && { tls: options.tls }), timeouts: { ...DEFAULT_TIMEOUTS, ...options.timeouts }, maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS },
    (details, message) => app.log.warn(details, message),
  );
  const app = Fastify({
    logger: options.logger ?? false,
    // The server is made here or by serve's start (start-server.ts): its timeouts and limits are set there.
    serverFactory: (handler) => {
      if (!options.server) server.on('request', handler);
      return server;
    },
    // HEAD is written by hand for every route: fastify's automatic HEAD runs GET and discards the body.
    exposeHeadRoutes: false,
    // Names are up to 255 characters and the tail is parsed by parseV2Path, not by the router.
    routerOptions: { maxParamLength: 2048, ignoreTrailingSlash: true },
    bodyLimit: BODY_LIMIT,
    // No route has a schema (no request has a body; every answer is built by hand), so fastify's
    // default compilers, Ajv and fast-json-stringify (~100 ms of start-up), are never loaded.
    schemaController: { compilersFactory: { buildValidator: noSchemas, buildSerializer: noSchemas } },
    frameworkErrors: (error, request, reply) => {
      // fastify types this reply by the route's generics; it is the plain one.
      void sendError(request, reply as FastifyReply, badRequest(400, error.message));
    },
    // The cast joins fastify's http and https instance types, which differ only in the server type.
  }) as unknown as FastifyInstance;
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
    observeResponse(metrics, request, reply, () => routeLabels.get(request) ?? ROUTE_LABELS[request.routeOptions.url ?? ''] ?? 'other');
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

  app.setErrorHandler((error: FastifyError, request, reply) => sendFailure(request, reply, error));
  app.setNotFoundHandler((request, reply) => sendError(request, reply, routeUnknown(rawPath(request.url))));

  // The pull API's reads: one implementation for fastify and for the starting server (pull-routes.ts).
  const pull: PullContext = { images, ...(group && { verdict: (location, digest, problem) => group.blobVerdict(location, digest, problem) }) };
  for (const url of ['/v2/', '/v2/_catalog', '/v2/*'] satisfies PullRoute[]) {
    app.route({ method: ['GET', 'HEAD'], url, handler: (request, reply) => answerPull(pull, url, request, reply, (group) => routeLabels.set(request, group)) });
  }
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
