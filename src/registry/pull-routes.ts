import type { ServedImages } from '../store/image-source.js';
import { type BlobVerdict, serveBlob } from './blobs.js';
import { listCatalog } from './catalog.js';
import { routeUnknown } from './errors.js';
import type { PullReply, PullRequest } from './exchange.js';
import { serveManifest } from './manifests.js';
import type { Metrics } from './metrics.js';
import { parseV2Path, rawPath } from './paths.js';
import { listReferrers } from './referrers.js';
import { resolveRepository } from './repository.js';
import { queryParam, sendJson } from './respond.js';
import { listTags } from './tags.js';

/** The read routes of the pull API (GET and HEAD), by their pattern in fastify's router. */
export type PullRoute = '/v2/' | '/v2/_catalog' | '/v2/*';

/** What the pull routes answer from. */
export interface PullContext {
  images: ServedImages;
  /** Told when a claimed blob is found good or bad while it is served (the other processes must know). */
  verdict?: BlobVerdict;
}

/**
 * Answers a GET or HEAD of one of the pull routes. The one implementation of these routes:
 * fastify's handlers call it, and so does the starting server while fastify loads. `label` is
 * told the metrics route group once the path is parsed. Throws RegistryError for the client.
 * `context` may be undefined for /v2/ alone, which answers the same whatever is served.
 */
export async function answerPull(context: PullContext | undefined, route: PullRoute, request: PullRequest, reply: PullReply, label: (group: string) => void): Promise<PullReply> {
  // distribution-spec "Determining support": GET /v2/ → 200 and the API version header Docker checks.
  if (route === '/v2/') return sendJson(request, reply, {});
  // Only /v2/ is answered before the images are open (start-server.ts).
  if (!context) throw new Error(`${route} answered before the images are open`);
  if (route === '/v2/_catalog') return listCatalog(context.images, request, reply);
  const path = parseV2Path(rawPath(request.url).slice('/v2/'.length));
  label(path.kind === 'error' || path.kind === 'none' ? 'invalid' : path.kind);
  if (path.kind === 'error') throw path.error;
  if (path.kind === 'none') throw routeUnknown(rawPath(request.url));
  const repository = await resolveRepository(context.images, path.name, queryParam(request, 'ns'), path.kind === 'referrers');
  switch (path.kind) {
    case 'manifests':
      return serveManifest(repository, path.reference, request, reply);
    case 'blobs':
      return serveBlob(repository, path.reference, request, reply, context.verdict);
    case 'tags':
      return listTags(repository, request, reply);
    case 'referrers':
      return listReferrers(repository, path.reference, request, reply);
  }
}

/** Metrics route groups of the routes fastify knows by pattern; under /v2/* answerPull says. */
export const ROUTE_LABELS: Record<string, string> = { '/v2': 'base', '/v2/': 'base', '/v2/_catalog': 'catalog', '/healthz': 'healthz', '/metrics': 'metrics', '/': 'ui', '/r/*': 'ui', '/-/*': 'ui' };

/** Counts the request in `metrics` once its response is done or abandoned; `route()` gives its group then. */
export function observeResponse(metrics: Metrics, request: PullRequest, reply: PullReply, route: () => string): void {
  const started = process.hrtime.bigint();
  let finished = false;
  reply.raw.once('finish', () => (finished = true));
  reply.raw.once('close', () => {
    const head = request.method === 'HEAD' || reply.statusCode === 304;
    metrics.observe({
      route: route(),
      method: request.method,
      status: reply.statusCode,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
      bytes: finished && !head ? Number(reply.getHeader('content-length') ?? 0) : 0,
      aborted: !finished,
    });
  });
}

/** Longest request target the starting server answers: a name is ≤ 255 characters and a digest ~71. */
const MAX_START_URL = 2048;

/**
 * The pull route a request takes, for the starting server (start-server.ts), which answers only
 * these: GET or HEAD, the path spelled exactly as the route (anything odd is left to fastify's
 * checks), a path under /v2/ that parses. Undefined for anything else.
 */
export function pullRouteOf(method: string, url: string): PullRoute | undefined {
  if ((method !== 'GET' && method !== 'HEAD') || !url.startsWith('/') || url.length > MAX_START_URL) return undefined;
  const path = rawPath(url);
  if (path === '/v2/' || path === '/v2') return '/v2/';
  if (path === '/v2/_catalog') return '/v2/_catalog';
  if (!path.startsWith('/v2/')) return undefined;
  const kind = parseV2Path(path.slice('/v2/'.length)).kind;
  return kind === 'error' || kind === 'none' ? undefined : '/v2/*';
}
