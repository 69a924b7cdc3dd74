import { Agent as HttpAgent, request as httpRequest, type ClientRequestArgs, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { connect as tlsConnect, rootCertificates, type ConnectionOptions } from 'node:tls';
import { proxyFor, type ProxySettings } from './proxy.js';

/** TLS and timeout settings shared by every connection a client opens. */
export interface TransportOptions {
  /** Extra PEM CA certificates trusted on top of Node's bundled roots (`ca_certs`, the system's). */
  caCerts?: string[];
  /** Forward proxies (`http_proxy`, `https_proxy`, `no_proxy`); none when absent. */
  proxy?: ProxySettings;
  /** Skip TLS certificate verification (self-signed registries). */
  insecureTls?: boolean;
  /** A request fails when its socket is idle this long; default 5 minutes. */
  idleTimeoutMs?: number;
}

/** One request. A body is a buffer, or a factory so an authentication retry can reopen it. */
export interface HttpRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: Buffer | (() => Readable);
}

/** A response whose body is still unread: callers consume it, `drain` it or destroy it. */
export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
  url: URL;
}

/**
 * node:http(s) with keep-alive agents. Chosen over the built-in fetch because `ca_certs` and
 * `insecure` need per-client TLS options, which fetch only takes through the separate `undici`
 * package; here they are plain agent options, request bodies stream with an exact
 * Content-Length, and responses are already Node streams.
 */
export class HttpTransport {
  readonly #http: HttpAgent;
  readonly #https: HttpsAgent;
  readonly #tunnels = new Map<string, TunnelAgent>();
  readonly #tls: ConnectionOptions;
  readonly #proxy: ProxySettings | undefined;
  readonly #idleTimeoutMs: number;

  constructor(options: TransportOptions = {}) {
    this.#tls = {
      rejectUnauthorized: options.insecureTls !== true,
      // `ca` replaces Node's roots; keep them so redirects to public blob storage still verify.
      ...(options.caCerts?.length ? { ca: [...new Set([...rootCertificates, ...options.caCerts])] } : {}),
    };
    this.#http = new HttpAgent({ keepAlive: true });
    this.#https = new HttpsAgent({ keepAlive: true, ...this.#tls });
    this.#proxy = options.proxy;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 5 * 60_000;
  }

  /** The proxy a request to `url` goes through, for messages; undefined when direct. */
  proxyFor(url: URL): URL | undefined {
    return this.#proxy && proxyFor(url, this.#proxy);
  }

  // http through a proxy: the absolute URL as the request target (RFC 9112 §3.2.2), sent to the
  // proxy; https: a CONNECT tunnel per connection (RFC 9110 §9.3.6), TLS to the registry inside.
  #route(url: URL, headers: Record<string, string>): { target: URL | ClientRequestArgs; agent: HttpAgent } {
    const isHttps = url.protocol === 'https:';
    const proxy = this.proxyFor(url);
    if (proxy === undefined) return { target: url, agent: isHttps ? this.#https : this.#http };
    if (isHttps) {
      let tunnel = this.#tunnels.get(proxy.href);
      if (!tunnel) {
        tunnel = new TunnelAgent(proxy, this.#tls);
        this.#tunnels.set(proxy.href, tunnel);
      }
      return { target: url, agent: tunnel };
    }
    const authorization = proxyAuthorization(proxy);
    if (authorization) headers['proxy-authorization'] = authorization;
    headers['host'] = url.host;
    return { target: { host: proxy.hostname, port: proxy.port || 80, path: url.href }, agent: this.#http };
  }

  /** Sends one request and resolves when the response headers arrive. */
  send(req: HttpRequest): Promise<HttpResponse> {
    const headers = { ...req.headers };
    const { target, agent } = this.#route(req.url, headers);
    // A proxied plain-HTTP request is an http request to the proxy whatever the URL says.
    const send = target instanceof URL && target.protocol === 'https:' ? httpsRequest : httpRequest;
    const body = typeof req.body === 'function' ? req.body() : req.body;
    if (Buffer.isBuffer(body)) headers['content-length'] = String(body.length);
    return new Promise((resolve, reject) => {
      const options = { method: req.method, headers, agent };
      const outgoing = target instanceof URL ? send(target, options) : send({ ...target, ...options });
      outgoing.setTimeout(this.#idleTimeoutMs, () => outgoing.destroy(Object.assign(new Error(`no data for ${this.#idleTimeoutMs / 1000} s`), { code: 'IDLE_TIMEOUT' })));
      outgoing.once('response', (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url: req.url }));
      outgoing.once('error', (error) => {
        if (body instanceof Readable) body.destroy();
        reject(error);
      });
      if (body instanceof Readable) {
        // A registry may answer (401, 400) before the whole body is sent; the response still
        // wins, and a failing source stream aborts the request with its own error.
        pipeline(body, outgoing).catch((error: Error) => outgoing.destroy(new RequestBodyError(error)));
      } else {
        outgoing.end(body);
      }
    });
  }

  /** Closes idle keep-alive sockets so the process can exit. */
  close(): void {
    this.#http.destroy();
    this.#https.destroy();
    for (const tunnel of this.#tunnels.values()) tunnel.destroy();
  }
}

/** `Proxy-Authorization: Basic …` for a proxy URL carrying `user:password@`. */
function proxyAuthorization(proxy: URL): string | undefined {
  if (proxy.username === '' && proxy.password === '') return undefined;
  return 'Basic ' + Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64');
}

/**
 * An https agent whose connections are CONNECT tunnels through an http proxy. Keep-alive works
 * as usual: the agent pools the TLS sockets it made. Node's agent takes a socket from
 * `createConnection`'s callback when the function returns nothing.
 */
class TunnelAgent extends HttpsAgent {
  constructor(
    readonly proxy: URL,
    tls: ConnectionOptions,
  ) {
    super({ keepAlive: true, ...tls });
  }

  override createConnection(options: ClientRequestArgs, callback?: (error: Error | null, socket: Duplex) => void): Duplex | null | undefined {
    const done = callback ?? (() => undefined);
    const host = options.hostname ?? options.host ?? 'localhost';
    const port = Number(options.port ?? 443);
    const target = `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
    const authorization = proxyAuthorization(this.proxy);
    const connect = httpRequest({
      host: this.proxy.hostname,
      port: this.proxy.port || 80,
      method: 'CONNECT',
      path: target,
      agent: false,
      headers: { host: target, ...(authorization && { 'proxy-authorization': authorization }) },
    });
    connect.once('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        done(Object.assign(new Error(`proxy ${this.proxy.host} answered CONNECT ${target} with ${res.statusCode} ${res.statusMessage ?? ''}`.trim()), { code: 'EPROXY' }), socket);
        return;
      }
      const secure = tlsConnect({ ...(options as ConnectionOptions), socket, ...(isIP(host) === 0 && { servername: host }) });
      done(null, secure);
    });
    connect.once('error', (error) => done(Object.assign(new Error(`proxy ${this.proxy.host}: ${error.message}`, { cause: error }), { code: (error as NodeJS.ErrnoException).code }), undefined as unknown as Duplex));
    connect.end();
    return undefined;
  }
}

/** The request body's source failed (a file error, a size or digest check), not the network. */
export class RequestBodyError extends Error {
  constructor(readonly source: Error) {
    super(source.message, { cause: source });
  }
}

/** Reads a (small) response body whole, failing beyond `limit` bytes. */
export async function readBody(res: HttpResponse, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      res.body.destroy();
      throw new Error(`response body is larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Discards a response body so its connection can be reused. */
export function drain(res: HttpResponse): void {
  res.body.resume();
}

/** One header's value (the first, if repeated). */
export function header(res: HttpResponse, name: string): string | undefined {
  const value = res.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** A response's Content-Type without parameters, lowercased; undefined when absent. */
export function contentType(res: HttpResponse): string | undefined {
  const value = header(res, 'content-type');
  return value?.split(';')[0]?.trim().toLowerCase() || undefined;
}
