import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, request as httpRequest, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignatureV4 } from '@smithy/signature-v4';

/** One request the proxy saw: `key` is the object key (path-style, bucket removed), `status` once answered. */
export interface ProxiedRequest {
  method: string;
  key: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  status?: number;
}

export interface S3ProxyOptions {
  /**
   * Called before each request is forwarded, with every request seen before it. True trips the
   * proxy: `onTrip` runs (a test SIGKILLs the client there), and neither this request nor any
   * later one reaches the store, as if the client had died just before sending it. When `onTrip`
   * gives a promise instead (a test SIGSTOPs the client), this request is held until it settles,
   * then forwarded, and every other request goes through as before: a client paused mid-load.
   */
  tripWhen?: (request: ProxiedRequest, seen: readonly ProxiedRequest[]) => boolean;
  onTrip?: (request: ProxiedRequest) => Promise<void> | void;
  /**
   * Stand in for an object store that ignores conditional writes: If-None-Match and If-Match are
   * removed from every signed request, which is then signed again with these keys (a header
   * removed from a signed request would fail SigV4 at the store).
   */
  ignoreConditions?: { accessKey: string; secretKey: string };
}

export interface S3Proxy {
  /** `http://127.0.0.1:PORT`: give it as AWS_ENDPOINT_URL_S3. */
  endpoint: string;
  seen: ProxiedRequest[];
  tripped: ProxiedRequest | undefined;
  close(): Promise<void>;
}

/**
 * An HTTP proxy on 127.0.0.1 in front of an S3 endpoint (path-style addressing, plain HTTP), for
 * putting a real object store's client in situations a real store does not make on demand: a
 * request that never arrives (the client killed at a chosen request) or a store without
 * conditional writes. Requests are forwarded as they came, Host header included, so their
 * signatures still verify at the store. Closed when `t.after` runs.
 */
export async function startS3Proxy(t: { after: (fn: () => Promise<void>) => void }, upstream: string, options: S3ProxyOptions = {}): Promise<S3Proxy> {
  const target = new URL(upstream);
  const proxy: S3Proxy = { endpoint: '', seen: [], tripped: undefined, close: async () => undefined };
  let dropping = false;
  const server = createServer((incoming, outgoing) => {
    const url = new URL(incoming.url ?? '/', 'http://proxy');
    const entry: ProxiedRequest = { method: incoming.method ?? 'GET', key: decodeURIComponent(url.pathname).replace(/^\/[^/]*\/?/, ''), query: url.searchParams, headers: incoming.headers };
    let held: Promise<void> | void = undefined;
    if (proxy.tripped === undefined && options.tripWhen?.(entry, proxy.seen) === true) {
      proxy.tripped = entry;
      held = options.onTrip?.(entry);
      dropping = !(held instanceof Promise);
    }
    if (dropping) {
      incoming.socket.destroy();
      return;
    }
    proxy.seen.push(entry);
    void Promise.resolve(held).then(() => headersFor(incoming, url, options)).then((headers) => forward(incoming, outgoing, target, headers, entry), (error: unknown) => {
      outgoing.writeHead(502).end(`s3-proxy: ${(error as Error).message}`);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  t.after(() => proxy.close());
  return proxy;
}

function forward(incoming: IncomingMessage, outgoing: ServerResponse, target: URL, headers: OutgoingHttpHeaders, entry: ProxiedRequest): void {
  const upstream = httpRequest({ hostname: target.hostname, port: target.port, method: incoming.method, path: incoming.url, headers }, (answer) => {
    entry.status = answer.statusCode;
    outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(outgoing);
  });
  upstream.on('error', () => outgoing.destroy());
  // A client gone before its body is all there (killed): the store must not see a shorter body end well.
  incoming.on('close', () => {
    if (!incoming.complete) upstream.destroy();
  });
  incoming.pipe(upstream);
}

/** The headers to forward: as they came, or without the conditions and signed again. */
async function headersFor(incoming: IncomingMessage, url: URL, options: S3ProxyOptions): Promise<OutgoingHttpHeaders> {
  const keys = options.ignoreConditions;
  const authorization = incoming.headers.authorization;
  if (keys === undefined || authorization === undefined || (incoming.headers['if-none-match'] === undefined && incoming.headers['if-match'] === undefined)) return incoming.headers;
  // Credential=KEY/DATE/REGION/SERVICE/aws4_request: signed again for the same scope.
  const [, region = 'us-east-1', service = 's3'] = /Credential=[^/]+\/\d+\/([^/]+)\/([^/]+)\//.exec(authorization) ?? [];
  const signer = new SignatureV4({ credentials: { accessKeyId: keys.accessKey, secretAccessKey: keys.secretKey }, region, service, sha256: NodeSha256, uriEscapePath: false });
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(incoming.headers)) {
    if (value === undefined || ['authorization', 'x-amz-date', 'if-none-match', 'if-match'].includes(name)) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  const query: Record<string, string> = {};
  for (const [name, value] of url.searchParams) query[name] = value;
  const host = incoming.headers.host ?? '';
  const signed = await signer.sign({ method: incoming.method ?? 'GET', protocol: 'http:', hostname: host.replace(/:\d+$/, ''), path: (incoming.url ?? '/').split('?')[0] ?? '/', query, headers });
  return signed.headers;
}

/** SHA-256 and HMAC-SHA-256 in the shape the signer asks for, from node:crypto. */
class NodeSha256 {
  readonly #secret: Uint8Array | string | undefined;
  #hash: Hash | Hmac;

  constructor(secret?: Uint8Array | string | ArrayBuffer | ArrayBufferView) {
    this.#secret = bytesOf(secret);
    this.#hash = this.#fresh();
  }

  update(data: Uint8Array | string | ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(bytesOf(data) ?? '');
  }

  digest(): Promise<Uint8Array> {
    return Promise.resolve(this.#hash.digest());
  }

  reset(): void {
    this.#hash = this.#fresh();
  }

  #fresh(): Hash | Hmac {
    return this.#secret === undefined ? createHash('sha256') : createHmac('sha256', this.#secret);
  }
}

function bytesOf(data: Uint8Array | string | ArrayBuffer | ArrayBufferView | undefined): Uint8Array | string | undefined {
  if (data === undefined || typeof data === 'string' || data instanceof Uint8Array) return data;
  return ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
}
