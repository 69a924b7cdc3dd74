import type { Readable } from 'node:stream';
import { isDigestSyntax, isSha256Digest } from '../image/digest.js';
import { isRepositoryName, isTag } from '../image/reference.js';
import type { Authenticator } from './auth.js';
import { displayUrl, networkError, RegistryClientError } from './errors.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { drain, header, RequestBodyError, type HttpResponse, type HttpTransport } from './http-transport.js';
import { DEFAULT_RETRY, isRetryableError, isRetryableStatus, retryDelay, showDelay, type RetryPolicy } from './retry.js';

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

/** How a session retries, and where it says so. */
export interface SessionOptions {
  retry?: RetryPolicy;
  /** Receives one line per retry (always shown: a retry is worth knowing about). */
  warn?: (line: string) => void;
}

/**
 * Sends calls to one registry: adds the Authorization header (only to the registry's own
 * origin — a redirect to object storage must not carry it), retries once after a 401 the
 * authenticator could answer, retries idempotent calls (GET, HEAD, a PUT of a buffer) after a
 * connection reset, a 429 or a 5xx with capped backoff and `Retry-After`, follows redirects
 * when asked, and logs one line per response.
 */
export class RegistrySession {
  readonly retry: RetryPolicy;
  readonly warn: (line: string) => void;

  constructor(
    readonly base: URL,
    readonly transport: HttpTransport,
    readonly authenticator: Authenticator,
    readonly userAgent: string,
    readonly log?: (line: string) => void,
    options: SessionOptions = {},
  ) {
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.warn = options.warn ?? (() => undefined);
  }

  /** Waits before retry number `retry` of `what`, saying so; `why` is the status or the error. */
  async pause(what: string, why: string, retry: number, res?: HttpResponse): Promise<void> {
    const delay = retryDelay(retry, this.retry, res);
    this.warn(`${what}: ${why}; retry ${retry} of ${this.retry.attempts - 1} in ${showDelay(delay)}`);
    await sleep(delay);
  }

  /** Sends `call`; the response may have any status, and its body is the caller's to consume. */
  async send(call: Call): Promise<HttpResponse> {
    let url = typeof call.target === 'string' ? new URL(call.target, this.base) : call.target;
    let method = call.method;
    let body = call.body;
    let retriedAuth = false;
    let retries = 0;
    // A stream body cannot be sent twice from here; pushBlob restarts the whole upload instead.
    const idempotent = call.method === 'GET' || call.method === 'HEAD' || (call.method === 'PUT' && (body === undefined || Buffer.isBuffer(body)));
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
        if (idempotent && retries + 1 < this.retry.attempts && isRetryableError(error)) {
          await this.pause(`${method} ${displayUrl(url)}`, oneLine(error), ++retries);
          continue;
        }
        throw networkError(method, url, error);
      }
      this.log?.(`${method} ${displayUrl(url)} → ${res.status}`);
      if (idempotent && isRetryableStatus(res.status) && retries + 1 < this.retry.attempts) {
        drain(res);
        await this.pause(`${method} ${displayUrl(url)}`, `${res.status} ${res.body.statusMessage ?? ''}`.trim(), ++retries, res);
        continue;
      }
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

function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const line = text.replace(/\s+/g, ' ').trim();
  return code && !line.includes(code) ? `${line} (${code})` : line;
}
