import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { rootCertificates } from 'node:tls';

/** TLS and timeout settings shared by every connection a client opens. */
export interface TransportOptions {
  /** Extra PEM CA certificates trusted on top of Node's bundled roots. */
  caCerts?: string[];
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
  readonly #idleTimeoutMs: number;

  constructor(options: TransportOptions = {}) {
    this.#http = new HttpAgent({ keepAlive: true });
    this.#https = new HttpsAgent({
      keepAlive: true,
      rejectUnauthorized: options.insecureTls !== true,
      // `ca` replaces Node's roots; keep them so redirects to public blob storage still verify.
      ...(options.caCerts?.length ? { ca: [...rootCertificates, ...options.caCerts] } : {}),
    });
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 5 * 60_000;
  }

  /** Sends one request and resolves when the response headers arrive. */
  send(req: HttpRequest): Promise<HttpResponse> {
    const isHttps = req.url.protocol === 'https:';
    const send = isHttps ? httpsRequest : httpRequest;
    const headers = { ...req.headers };
    const body = typeof req.body === 'function' ? req.body() : req.body;
    if (Buffer.isBuffer(body)) headers['content-length'] = String(body.length);
    return new Promise((resolve, reject) => {
      const outgoing = send(req.url, { method: req.method, headers, agent: isHttps ? this.#https : this.#http });
      outgoing.setTimeout(this.#idleTimeoutMs, () => outgoing.destroy(new Error(`no data for ${this.#idleTimeoutMs / 1000} s`)));
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
