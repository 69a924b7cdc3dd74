import type { Readable } from 'node:stream';
import { isDigestSyntax, isSha256Digest } from '../image/digest.js';
import { isRepositoryName, isTag } from '../image/reference.js';
import type { Authenticator } from './auth.js';
import { displayUrl, networkError, RegistryClientError } from './errors.js';
import { drain, header, RequestBodyError, type HttpResponse, type HttpTransport } from './http-transport.js';

/** One registry call: a path under the registry (or an absolute URL, e.g. an upload Location). */
export interface Call {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT';
  target: string | URL;
  /** Token scopes the whole operation needs (`repository:app:pull`); see `pullScope`. */
  scopes: string[];
  headers?: Record<string, string>;
  body?: Buffer | (() => Readable);
  /** Follow 3xx (blob downloads may be redirected to object storage). */
  followRedirects?: boolean;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

/**
 * Sends calls to one registry: adds the Authorization header (only to the registry's own
 * origin — a redirect to object storage must not carry it), retries once after a 401 the
 * authenticator could answer, follows redirects when asked, and logs one line per response.
 */
export class RegistrySession {
  constructor(
    readonly base: URL,
    readonly transport: HttpTransport,
    readonly authenticator: Authenticator,
    readonly userAgent: string,
    readonly log?: (line: string) => void,
  ) {}

  /** Sends `call`; the response may have any status, and its body is the caller's to consume. */
  async send(call: Call): Promise<HttpResponse> {
    let url = typeof call.target === 'string' ? new URL(call.target, this.base) : call.target;
    let method = call.method;
    let body = call.body;
    let retriedAuth = false;
    for (let redirects = 0; ; ) {
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...call.headers };
      const own = url.origin === this.base.origin;
      const authorization = own ? this.authenticator.authorization(call.scopes) : undefined;
      if (authorization) headers['authorization'] = authorization;
      let res: HttpResponse;
      try {
        res = await this.transport.send({ method, url, headers, ...(body !== undefined && { body }) });
      } catch (error) {
        if (error instanceof RequestBodyError) {
          throw new RegistryClientError(`${method} ${displayUrl(url)}: ${error.message}`, method, displayUrl(url), undefined, undefined, { cause: error.source });
        }
        throw networkError(method, url, error);
      }
      this.log?.(`${method} ${displayUrl(url)} → ${res.status}`);
      if (res.status === 401 && own && !retriedAuth && (await this.authenticator.onUnauthorized(res, call.scopes))) {
        drain(res);
        retriedAuth = true;
        continue;
      }
      const location = header(res, 'location');
      if (call.followRedirects && REDIRECTS.has(res.status) && location) {
        drain(res);
        if (++redirects > MAX_REDIRECTS) {
          throw new RegistryClientError(`${method} ${displayUrl(url)}: more than ${MAX_REDIRECTS} redirects`, method, displayUrl(url), res.status);
        }
        url = new URL(location, url);
        // RFC 9110 §15.4.4: a 303 is followed with GET and no body.
        if (res.status === 303 && method !== 'HEAD') {
          method = 'GET';
          body = undefined;
        }
        continue;
      }
      return res;
    }
  }
}

/** Throws unless `repository` is a valid repository name (it becomes part of a URL path). */
export function checkRepository(repository: string): void {
  if (!isRepositoryName(repository)) throw new Error(`invalid repository name "${repository}"`);
}

/** Throws unless `reference` is a tag or a sha256 digest. */
export function checkReference(reference: string): void {
  if (isTag(reference) || isSha256Digest(reference)) return;
  if (isDigestSyntax(reference)) throw new Error(`unsupported digest "${reference}" (only sha256 is supported)`);
  throw new Error(`invalid tag or digest "${reference}"`);
}

/** Throws unless `digest` is a sha256 digest, the only kind a blob can be verified against. */
export function checkDigest(digest: string): void {
  if (!isSha256Digest(digest)) throw new Error(`invalid or unsupported blob digest "${digest}" (expected sha256:<64 hex>)`);
}
