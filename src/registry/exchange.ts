import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';

/**
 * What the pull API's handlers read of a request and do to its reply: the parts of fastify's
 * request and reply they use, with fastify's meaning. fastify's objects are these; so are the
 * starting server's (start-server.ts), which answers pulls while fastify is still loading. A
 * handler written against these answers both the same way, byte for byte.
 */
export interface PullRequest {
  readonly method: string;
  /** The request target as sent (path and query, still percent-encoded). */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** The parsed query: each key's value, an array when the key is repeated. */
  readonly query: unknown;
  readonly log: PullLog;
}

export interface PullLog {
  error(details: object, message: string): void;
}

export interface PullReply {
  /** The response itself: a handler that streams a file writes to it after `hijack()`. */
  readonly raw: ServerResponse;
  statusCode: number;
  code(status: number): PullReply;
  /** Sets a header (names are case-insensitive). */
  header(name: string, value: string | number): PullReply;
  getHeader(name: string): unknown;
  getHeaders(): Record<string, unknown>;
  /**
   * Writes the head and ends with `payload`, as fastify does: a Buffer's length is the
   * Content-Length unless one was set (HEAD keeps the one set), no payload is `Content-Length: 0`
   * except for HEAD, 204 and 304, a stream is piped and destroyed when the client goes away.
   */
  send(payload?: Buffer | Readable): PullReply;
  /** The handler answers on `raw` itself from now on. */
  hijack(): PullReply;
}
