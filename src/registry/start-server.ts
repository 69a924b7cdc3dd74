import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import { parse as parseQuery } from 'node:querystring';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PullLog, PullReply, PullRequest } from './exchange.js';
import type { Metrics } from './metrics.js';
import { type ServerOptions, createRegistryServer } from './http-server.js';
import type { PullContext, PullRoute } from './pull-routes.js';
import { sendFailure } from './respond.js';

/** The pull routes' module: imported once the images are open, after the server listens. */
type PullRoutes = typeof import('./pull-routes.js');

/**
 * The registry's HTTP server, listening before fastify is loaded. Evaluating fastify and building
 * the app takes ~35 ms of CPU, most of `serve`'s start-up; a client that connects meanwhile (a
 * kubelet's first pull, a script polling for readiness) need not wait for it. From the moment the
 * images are open, this server answers the pull API's reads itself (GET and HEAD of /v2/,
 * manifests, blobs, tags, referrers, the catalog) through the very handlers fastify's routes call
 * (pull-routes.ts), and holds every other request; once fastify is ready (`handOver`) the held
 * requests and all new ones go to it. With credentials required (--htpasswd), nothing is answered
 * before fastify: its onRequest hook is where they are checked.
 *
 * fastify is loaded when it is wanted (`appWanted`): at once for a request this server holds, else
 * after the first requests, once none has run for IDLE_MS, and at the latest LOAD_BY_MS after the
 * images opened, so the catalog pages, /healthz and /metrics never wait long.
 */
export class StartingServer {
  readonly server: Server;
  readonly #held: [IncomingMessage, ServerResponse][] = [];
  /** The server's log: held until fastify's logger exists, then written through it (`handOver`). */
  readonly log = new HeldLog();
  #answering: Answering | undefined;
  #preparing: Promise<void> | undefined;
  #app: ((request: IncomingMessage, response: ServerResponse) => void) | undefined;
  #want: () => void = () => undefined;
  readonly appWanted = new Promise<void>((resolve) => (this.#want = resolve));
  #idle: NodeJS.Timeout | undefined;

  constructor(options: ServerOptions) {
    this.server = createRegistryServer(options, (details, message) => this.log.warn(details, message));
    this.server.on('request', (request: IncomingMessage, response: ServerResponse) => this.#request(request, response));
  }

  /**
   * Listens; rejects with the system's error (EADDRINUSE, EACCES) as it is. With `bound`, a server
   * already listening there (bound before the program loaded, cli/early-port.ts), this server
   * takes over its socket and the connections it accepted meanwhile, unread.
   */
  listen(options: { host: string; port: number; reusePort?: boolean; exclusive?: boolean }, bound?: { server: NetServer; connections: readonly Socket[] }): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(bound?.server ?? options, () => {
        this.server.off('error', reject);
        for (const socket of bound?.connections ?? []) {
          this.server.emit('connection', socket);
          // accepted paused (pauseOnConnect): reading starts now that the server's parser has it
          socket.resume();
        }
        resolve();
      });
    });
  }

  /**
   * Loads the pull routes' code and answers GET /v2/ (it needs no image) from then on. Called
   * before the images are opened: the code is evaluated while their files are being read.
   */
  prepare(metrics: Metrics): Promise<void> {
    this.#preparing ??= import('./pull-routes.js').then((routes) => {
      this.#answering = { routes, metrics, running: 0, requests: 0 };
      this.#retry();
    });
    return this.#preparing;
  }

  /**
   * From now on the pull API's reads are answered here, from `context`, until fastify takes over;
   * what is still held is fastify's to answer, which is then wanted at once (`#request`).
   */
  async answer(context: PullContext): Promise<void> {
    if (!this.#preparing) throw new Error('StartingServer.answer() before prepare()');
    await this.#preparing;
    if (!this.#answering) return;
    this.#answering.context = context;
    setTimeout(() => this.#want(), LOAD_BY_MS).unref();
    this.#retry();
    this.#armIdle();
  }

  /** fastify is ready: held requests and every new one go to `app`; what was logged here goes to `log`. */
  handOver(app: (request: IncomingMessage, response: ServerResponse) => void, log: Logger): void {
    this.#app = app;
    clearTimeout(this.#idle);
    this.log.flushTo(log);
    for (const [request, response] of this.#held.splice(0)) app(request, response);
  }

  /** Stops listening; open connections end when their requests do (Node closes idle ones), held ones now. */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const [, response] of this.#held.splice(0)) response.destroy();
    return closed;
  }

  #request(request: IncomingMessage, response: ServerResponse): void {
    if (this.#app) return this.#app(request, response);
    const state = this.#answering;
    const route = state?.routes.pullRouteOf(request.method ?? '', request.url ?? '');
    // Before the images are open only /v2/ is answered; the rest waits for them (or for fastify).
    if (!state || route === undefined || (!state.context && route !== '/v2/')) {
      this.#held.push([request, response]);
      // Nothing fastify is to answer is left waiting for a quiet moment.
      if (state?.context) this.#want();
      return;
    }
    void this.#answer(state, route, request, response);
  }

  // What was held is answered now where it can be, else held again as it would have been.
  #retry(): void {
    for (const [request, response] of this.#held.splice(0)) this.#request(request, response);
  }

  async #answer(state: Answering, route: PullRoute, raw: IncomingMessage, response: ServerResponse): Promise<void> {
    state.running++;
    clearTimeout(this.#idle);
    const id = `start-${++state.requests}`;
    const log = this.log.child({ reqId: id });
    const { ROUTE_LABELS, answerPull, observeResponse } = state.routes;
    const request: PullRequest = { method: raw.method ?? 'GET', url: raw.url ?? '/', headers: raw.headers, query: queryOf(raw.url ?? ''), log };
    const reply = new StartingReply(response, request.method);
    let group = ROUTE_LABELS[route] ?? 'other';
    observeResponse(state.metrics, request, reply, () => group);
    log.info({ req: { method: request.method, url: request.url, host: raw.headers.host, ip: raw.socket.remoteAddress, socket: { remotePort: raw.socket.remotePort } } }, 'incoming request');
    const started = performance.now();
    response.once('close', () => {
      log.info({ res: { statusCode: reply.statusCode }, responseTime: performance.now() - started }, 'request completed');
      state.running--;
      this.#armIdle();
    });
    reply.header('docker-distribution-api-version', 'registry/2.0');
    try {
      await answerPull(state.context, route, request, reply, (label) => (group = label));
    } catch (error) {
      // As fastify's error handler in app.ts; after the head is out, only the connection can tell.
      if (reply.sent) response.destroy();
      else sendFailure(request, reply, error);
    }
  }

  // fastify loads once no request has run for IDLE_MS: after a client's first burst, not during it.
  #armIdle(): void {
    if (this.#app || !this.#answering?.context || this.#answering.running > 0) return;
    clearTimeout(this.#idle);
    this.#idle = setTimeout(() => this.#want(), IDLE_MS);
    this.#idle.unref();
  }
}

/** The requests answered before fastify: how many run now, how many in all (their log ids). */
interface Answering {
  routes: PullRoutes;
  metrics: Metrics;
  /** Set once the images are open. */
  context?: PullContext;
  running: number;
  requests: number;
}

/** How long the server has had no request before fastify is loaded. */
const IDLE_MS = 20;
/** fastify is loaded this long after the images are open at the latest, busy or not. */
const LOAD_BY_MS = 250;

function queryOf(url: string): Record<string, string | string[]> {
  const at = url.indexOf('?');
  return at < 0 ? {} : (parseQuery(url.slice(at + 1)) as Record<string, string | string[]>);
}

/** fastify's reply, as far as the pull handlers use it (exchange.ts), over a plain response. */
class StartingReply implements PullReply {
  readonly raw: ServerResponse;
  statusCode = 200;
  sent = false;
  readonly #method: string;
  readonly #headers: Record<string, string | number> = {};

  constructor(raw: ServerResponse, method: string) {
    this.raw = raw;
    this.#method = method;
  }

  code(status: number): this {
    this.statusCode = status;
    return this;
  }

  header(name: string, value: string | number): this {
    this.#headers[name.toLowerCase()] = value;
    return this;
  }

  getHeader(name: string): unknown {
    return this.#headers[name.toLowerCase()];
  }

  getHeaders(): Record<string, unknown> {
    return { ...this.#headers };
  }

  hijack(): this {
    this.sent = true;
    return this;
  }

  send(payload?: Buffer | Readable): this {
    this.sent = true;
    const status = this.statusCode;
    const headers = this.#headers;
    if (payload === undefined) {
      // fastify's rule: no Content-Length for 204 and 304, and HEAD keeps the one it was given.
      if (status >= 200 && status !== 204 && status !== 304 && this.#method !== 'HEAD') headers['content-length'] = '0';
      this.raw.writeHead(status, headers).end();
    } else if (Buffer.isBuffer(payload)) {
      headers['content-type'] ??= 'application/octet-stream';
      const length = headers['content-length'];
      if (length === undefined || (this.#method !== 'HEAD' && Number(length) !== payload.length)) headers['content-length'] = String(payload.length);
      this.raw.writeHead(status, headers).end(payload);
    } else {
      this.raw.writeHead(status, headers);
      // A client that goes away ends the pipeline, which destroys the stream.
      pipeline(payload, this.raw).catch(() => this.raw.destroy());
    }
    return this;
  }
}

/** The parts of pino's logger used here. */
export interface Logger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
  child(bindings: object): Logger;
}

// What happens before fastify (and its logger) exists, logged through it once it does.
export class HeldLog implements PullLog, Logger {
  readonly #sink: Sink;
  readonly #bindings: object | undefined;

  constructor(bindings?: object, sink: Sink = { lines: [] }) {
    this.#bindings = bindings;
    this.#sink = sink;
  }

  child(bindings: object): HeldLog {
    return new HeldLog(bindings, this.#sink);
  }

  info(details: object, message: string): void {
    this.#write('info', details, message);
  }

  warn(details: object, message: string): void {
    this.#write('warn', details, message);
  }

  error(details: object, message: string): void {
    this.#write('error', details, message);
  }

  /** Writes what was held to `log`, and everything from now on (requests still running log on). */
  flushTo(log: Logger): void {
    this.#sink.log = log;
    for (const [from, level, details, message] of this.#sink.lines.splice(0)) from.#write(level, details, message);
  }

  #write(level: Level, details: object, message: string): void {
    const log = this.#sink.log;
    if (!log) this.#sink.lines.push([this, level, details, message]);
    else (this.#bindings === undefined ? log : log.child(this.#bindings))[level](details, message);
  }
}

type Level = 'info' | 'warn' | 'error';
/** Lines held until there is a logger, then the logger. */
interface Sink {
  lines: [HeldLog, Level, object, string][];
  log?: Logger;
}
