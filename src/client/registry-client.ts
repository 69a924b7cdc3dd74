import type { Readable } from 'node:stream';
import { Authenticator } from './auth.js';
import { downloadBlob, getBlob, hasBlob, pushBlob, type BlobDownload, type PushOutcome } from './blobs.js';
import { displayUrl, RegistryClientError, responseError } from './errors.js';
import { drain, header, HttpTransport, readBody } from './http-transport.js';
import { getManifest, headManifest, putManifest, type Manifest, type ManifestInfo } from './manifests.js';
import type { ProxySettings } from './proxy.js';
import { parseRegistryUrl } from './registry-url.js';
import { DEFAULT_RETRY, type RetryPolicy } from './retry.js';
import { checkRepository, RegistrySession } from './session.js';
import { pullScope } from './scopes.js';

/** How to reach a registry: the resource's `source.store` of `type: registry`. */
export interface RegistryClientOptions {
  /** `https://host[:port]`, `http://host[:port]` or bare `host[:port]` (HTTPS unless `insecure`). */
  url: string;
  username?: string;
  password?: string;
  /** Plain HTTP for a bare `host:port`, and no TLS certificate verification for https. */
  insecure?: boolean;
  /** PEM CA certificates to trust in addition to Node's bundled roots (`ca_certs`, and the system's: see `systemCaCerts`). */
  caCerts?: string[];
  /** Forward proxies, e.g. from `proxySettingsFromEnv` of the worker's environment; direct when absent. */
  proxy?: ProxySettings;
  /** Retries of transient failures; default 5 tries, 1 s doubling, at most 30 s apart. */
  retry?: Partial<RetryPolicy>;
  /** Receives one line per HTTP response (method, URL without query, status), for debug logs. */
  log?: (line: string) => void;
  /** Receives one line per retry. */
  warn?: (line: string) => void;
  userAgent?: string;
  /** Fail a request whose connection is idle this long; default 5 minutes. */
  idleTimeoutMs?: number;
}

const MAX_TAGS_PAGE = 16 * 1024 * 1024;
const MAX_TAG_PAGES = 10_000;

/**
 * A small OCI Distribution client: what the Concourse resource needs to check, get and put
 * images in any registry (pull, push, cross-repository mount, tags; Basic and Bearer token
 * auth). Absent things are `undefined`/`false`; failures throw a `RegistryClientError` whose
 * message is one line. Call `close()` when done so keep-alive sockets do not hold the process.
 */
export class RegistryClient {
  /** The registry's origin, e.g. `http://127.0.0.1:5001`. */
  readonly url: URL;
  readonly #session: RegistrySession;
  readonly #transport: HttpTransport;

  constructor(options: RegistryClientOptions) {
    this.url = parseRegistryUrl(options.url, options.insecure === true);
    if ((options.username === undefined) !== (options.password === undefined)) {
      throw new Error('registry username and password must be given together');
    }
    this.#transport = new HttpTransport({
      insecureTls: options.insecure === true,
      ...(options.caCerts && { caCerts: options.caCerts }),
      ...(options.proxy && { proxy: options.proxy }),
      ...(options.idleTimeoutMs !== undefined && { idleTimeoutMs: options.idleTimeoutMs }),
    });
    const credentials = options.username !== undefined && options.password !== undefined ? { username: options.username, password: options.password } : undefined;
    const authenticator = new Authenticator(credentials, this.#transport, options.log);
    this.#session = new RegistrySession(this.url, this.#transport, authenticator, options.userAgent ?? 'cartorio', options.log, {
      retry: { ...DEFAULT_RETRY, ...options.retry },
      ...(options.warn && { warn: options.warn }),
    });
  }

  /** The proxy requests to the registry go through; undefined when direct. */
  proxyFor(): URL | undefined {
    return this.#transport.proxyFor(this.url);
  }

  /** GET /v2/ — spec.md#determining-support: checks the address, the API and the credentials. */
  async ping(): Promise<void> {
    const res = await this.#session.send({ method: 'GET', target: '/v2/', scopes: [] });
    if (res.status !== 200) throw await responseError('GET', res);
    drain(res);
  }

  /** The manifest or index `reference` (tag or digest) points at, as stored; undefined if absent. */
  getManifest(repository: string, reference: string): Promise<Manifest | undefined> {
    return getManifest(this.#session, repository, reference);
  }

  /** Digest, media type and size of `reference`, without its body; undefined if absent. */
  headManifest(repository: string, reference: string): Promise<ManifestInfo | undefined> {
    return headManifest(this.#session, repository, reference);
  }

  /** Stores a manifest under a tag (or its digest); returns its digest. */
  putManifest(repository: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
    return putManifest(this.#session, repository, reference, bytes, mediaType);
  }

  /** A blob's body as a stream (not yet verified); undefined if absent. */
  getBlob(repository: string, digest: string): Promise<BlobDownload | undefined> {
    return getBlob(this.#session, repository, digest);
  }

  /** Downloads a blob to `path` (temp file + rename), verifying digest and size; returns its size. */
  downloadBlob(repository: string, digest: string, path: string, size?: number): Promise<number> {
    return downloadBlob(this.#session, repository, digest, path, size);
  }

  /** True when the repository holds the blob. */
  hasBlob(repository: string, digest: string): Promise<boolean> {
    return hasBlob(this.#session, repository, digest);
  }

  /**
   * Makes sure the repository holds the blob: skips it when present, mounts it from `from`
   * when given and the registry agrees, else uploads `open()` (streamed, `size` bytes).
   */
  pushBlob(repository: string, digest: string, size: number, open: () => Readable, options: { from?: string } = {}): Promise<PushOutcome> {
    return pushBlob(this.#session, repository, digest, size, open, options.from);
  }

  /**
   * GET /v2/<name>/tags/list — spec.md#listing-tags, following `Link: <…>; rel="next"` pages.
   * An unknown repository has no tags.
   */
  async listTags(repository: string): Promise<string[]> {
    checkRepository(repository);
    const tags: string[] = [];
    const seen = new Set<string>();
    let target: string | URL = `/v2/${repository}/tags/list`;
    for (let page = 0; page < MAX_TAG_PAGES; page++) {
      const res = await this.#session.send({ method: 'GET', target, scopes: [pullScope(repository)] });
      if (res.status === 404) {
        const error = await responseError('GET', res);
        if (error.code === undefined || error.code === 'NAME_UNKNOWN') return tags;
        throw error;
      }
      if (res.status !== 200) throw await responseError('GET', res);
      const body = await readBody(res, MAX_TAGS_PAGE);
      let data: { tags?: unknown };
      try {
        data = JSON.parse(body.toString('utf8')) as typeof data;
      } catch {
        throw new RegistryClientError(`GET ${displayUrl(res.url)}: tag list is not JSON`, 'GET', displayUrl(res.url), res.status);
      }
      if (Array.isArray(data.tags)) tags.push(...data.tags.filter((tag): tag is string => typeof tag === 'string'));
      const next = nextLink(header(res, 'link'));
      if (next === undefined) return tags;
      // The spec's Link is relative to the registry (RFC 8288 §3.2: resolve against the request).
      target = new URL(next, res.url);
      if (seen.has(target.href)) return tags;
      seen.add(target.href);
    }
    throw new Error(`${displayUrl(this.url)}: tag list of ${repository} has more than ${MAX_TAG_PAGES} pages`);
  }

  /** Closes idle connections. The client must not be used afterwards. */
  close(): void {
    this.#transport.close();
  }
}

/** The target of the `rel="next"` link in a `Link` header (RFC 8288), if any. */
export function nextLink(value: string | undefined): string | undefined {
  for (const match of (value ?? '').matchAll(/<([^>]*)>\s*((?:;\s*[^;,]*)*)/g)) {
    if (/;\s*rel\s*=\s*"?([^";]*\s)?next(\s[^";]*)?"?/i.test(match[2] ?? '')) return match[1];
  }
  return undefined;
}
