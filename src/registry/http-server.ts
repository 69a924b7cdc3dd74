import { type Server, createServer } from 'node:http';

// The registry's HTTP server and its limits: made by serve's starting server (start-server.ts),
// which listens before fastify loads, or by buildRegistry for an app that listens itself.

/** Connection settings of the registry's server (fastify's with the same names). */
export interface ServerOptions {
  tls?: { cert: Buffer; key: Buffer };
  timeouts: Timeouts;
  /** Connections open at once; one more is closed as it arrives, and the log says so. */
  maxConnections: number;
}

/** How long a client may take, in milliseconds (Node's http.Server settings of the same names). */
export interface Timeouts {
  /** To send the request headers, from the connection's start (slowloris). */
  headersTimeout: number;
  /** To send the whole request; requests here have no body, so about the same. Not the response. */
  requestTimeout: number;
  /** An idle keep-alive connection stays open this long between requests. */
  keepAliveTimeout: number;
  /** A connection with no bytes moving either way (a client that stopped reading a blob) is closed. */
  connectionTimeout: number;
  /** How often headers and request timeouts are checked. */
  connectionsCheckingInterval: number;
  /**
   * To finish the TLS handshake, from the connection's start: before it, no HTTP timeout applies
   * (the HTTP parser starts after it), so a client that connects and says nothing is held this long.
   */
  handshakeTimeout: number;
}

export const DEFAULT_TIMEOUTS: Timeouts = {
  // Docker, containerd and skopeo send their headers at once; Node's default is 60 s.
  headersTimeout: 20_000,
  requestTimeout: 30_000,
  // fastify's default, longer than the 60 s idle timeout of common load balancers, so a balancer
  // never reuses a connection the registry is closing.
  keepAliveTimeout: 72_000,
  // A download moves bytes all the time; two minutes of silence is a client that is gone.
  connectionTimeout: 120_000,
  connectionsCheckingInterval: 5_000,
  // As headersTimeout: a real client's handshake takes milliseconds; Node's default is 120 s.
  handshakeTimeout: 20_000,
};

/**
 * Each open connection holds a descriptor and some memory (a download up to 128 KiB of buffers
 * once slow, file-pump.ts); the many clients of a fleet rollout use a few each. Beyond this many,
 * a connection is closed as it arrives instead of the process running out of descriptors.
 */
export const DEFAULT_MAX_CONNECTIONS = 8192;
/** A server at its connection cap says so at most this often (with how many it dropped since). */
const DROP_LOG_INTERVAL_MS = 60_000;
/** Request line plus headers (Node's default, set so a --max-http-header-size flag cannot raise it). */
export const MAX_HEADER_BYTES = 16 * 1024;

/** The HTTP (or, given a certificate, HTTPS) server with the registry's limits; no request handler yet. */
export function createRegistryServer(options: ServerOptions, warn: (details: object, message: string) => void): Server {
  const { timeouts } = options;
  const settings = { maxHeaderSize: MAX_HEADER_BYTES, headersTimeout: timeouts.headersTimeout, requestTimeout: timeouts.requestTimeout, keepAliveTimeout: timeouts.keepAliveTimeout, connectionsCheckingInterval: timeouts.connectionsCheckingInterval };
  // https.createServer passes handshakeTimeout on to tls.Server. node:https (tls, crypto) is
  // loaded only for TLS: for plain HTTP it would cost every start several milliseconds.
  const server: Server = options.tls
    ? process.getBuiltinModule('node:https').createServer({ ...options.tls, ...settings, handshakeTimeout: timeouts.handshakeTimeout })
    : createServer(settings);
  server.setTimeout(timeouts.connectionTimeout);
  limitConnections(server, options.maxConnections, warn);
  return server;
}

// Node closes a connection beyond server.maxConnections as it arrives ('drop'): logged, not per drop.
function limitConnections(server: Server, max: number, warn: (details: object, message: string) => void): void {
  server.maxConnections = max;
  let dropped = 0;
  let loggedAt = -Infinity;
  server.on('drop', () => {
    dropped++;
    const now = performance.now();
    if (now - loggedAt < DROP_LOG_INTERVAL_MS) return;
    loggedAt = now;
    warn({ maxConnections: max, dropped }, `${max} connections are open, the most this server takes: new connections are closed as they arrive until some end`);
    dropped = 0;
  });
}

