import type { FastifyReply, FastifyRequest } from 'fastify';
import { isRepositoryName } from '../../image/reference.js';
import type { ServedImages } from '../../store/image-source.js';
import { queryParam } from '../respond.js';
import { ASSETS } from './assets.js';
import { renderHome } from './home.js';
import { type Html, html } from './html.js';
import { page } from './layout.js';
import { type Endpoint, validHost } from './pull-commands.js';
import { renderRepository } from './repository-page.js';

/** What the catalog pages are given by the app (src/registry/ui/routes.ts). */
export interface CatalogContext {
  images: ServedImages;
  /** Take the browser's host and scheme from X-Forwarded-Host/-Proto (serve --trust-proxy). */
  trustProxy: boolean;
}

/**
 * Nothing but this server's own files, no inline script or style, no framing, forms only to
 * itself: a label that slipped past escaping still could not run or load anything.
 */
export const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const PAGE_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

/** GET / : the catalog. `q`, `host` and `page` are plain query parameters, so every view is a URL. */
export async function home(context: CatalogContext, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const host = queryParam(request, 'host');
  const body = await renderHome(context.images, { q: (queryParam(request, 'q') ?? '').trim().slice(0, 256), ...(host !== undefined && host !== '' && { host }), page: pageNumber(request) });
  return sendPage(request, reply, 200, body);
}

/** GET /r/NAME : one repository (NAME as stored, `/` kept, each component percent-encoded). */
export async function repository(context: CatalogContext, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const name = nameFromPath(request.url);
  const resolved = name === undefined ? undefined : await context.images.resolve(name);
  if (name === undefined || resolved?.kind !== 'found' || resolved.name !== name) return notFound(request, reply, name);
  const snapshot = await resolved.source.repository(name);
  if (!snapshot) return notFound(request, reply, name);
  return sendPage(request, reply, 200, await renderRepository(resolved.source, snapshot, pageNumber(request), endpointOf(context, request)));
}

/** GET /-/FILE : the stylesheet, script and icon, named by content hash (cached for a year). */
export async function asset(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const found = ASSETS.get(request.url.split('?')[0] ?? '');
  if (!found) return notFound(request, reply, undefined);
  reply.headers({ ...PAGE_HEADERS, 'content-type': found.type, 'content-length': found.body.length, 'cache-control': 'public, max-age=31536000, immutable', etag: found.etag });
  if (request.headers['if-none-match'] === found.etag) return reply.code(304).send();
  return reply.send(request.method === 'HEAD' ? undefined : found.body);
}

function notFound(request: FastifyRequest, reply: FastifyReply, name: string | undefined): FastifyReply {
  const body = page('Not found', [{ label: 'Not found' }], html`<h1>Not found</h1>
<p class="sub">${name !== undefined ? html`No repository named <code>${name}</code> is served here.` : 'No such page.'} <a href="/">All repositories</a></p>`);
  return sendPage(request, reply, 404, body);
}

function sendPage(request: FastifyRequest, reply: FastifyReply, status: number, body: Html): FastifyReply {
  const bytes = Buffer.from(body.text);
  // Pages change whenever an image is loaded: always asked for again, never stored by a proxy.
  reply.code(status).headers({ ...PAGE_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-length': bytes.length, 'cache-control': 'no-cache, private' });
  return reply.send(request.method === 'HEAD' ? undefined : bytes);
}

function pageNumber(request: FastifyRequest): number {
  const value = queryParam(request, 'page');
  return value !== undefined && /^\d{1,6}$/.test(value) ? Number(value) : 1;
}

/** The repository name of `/r/NAME…`, decoded component by component; undefined when not a valid name. */
function nameFromPath(url: string): string | undefined {
  const path = url.split('?')[0] ?? '';
  const parts = path.slice('/r/'.length).replace(/\/+$/, '').split('/');
  try {
    const name = parts.map((part) => decodeURIComponent(part)).join('/');
    return parts.every((part) => !part.includes('%2F') && !part.includes('%2f')) && isRepositoryName(name) ? name : undefined;
  } catch {
    return undefined;
  }
}

/** The address the browser used: what clients on the same network will reach too. */
function endpointOf(context: CatalogContext, request: FastifyRequest): Endpoint {
  const header = (name: string): string | undefined => {
    const value = request.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const forwarded = context.trustProxy ? validHost(header('x-forwarded-host')) : undefined;
  const socket = request.raw.socket;
  const local = socket.localAddress?.includes(':') ? `[${socket.localAddress}]` : socket.localAddress;
  const host = forwarded ?? validHost(header('host')) ?? `${local ?? 'localhost'}:${socket.localPort ?? 5000}`;
  const proto = context.trustProxy ? header('x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase() : undefined;
  return { host, tls: proto !== undefined ? proto === 'https' : request.protocol === 'https' };
}
