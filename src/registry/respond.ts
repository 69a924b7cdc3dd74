import { RegistryError, badRequest, internalError } from './errors.js';
import type { PullReply, PullRequest } from './exchange.js';

/**
 * Sends a small JSON document with an exact Content-Type and Content-Length; a HEAD request gets
 * the same headers and no body (fastify keeps a Content-Length it is given for HEAD).
 */
export function sendJson(request: PullRequest, reply: PullReply, value: unknown, contentType = 'application/json'): PullReply {
  // A Buffer, so fastify adds no `; charset=utf-8` to the media type.
  const body = Buffer.from(JSON.stringify(value));
  reply.header('content-type', contentType).header('content-length', body.length);
  return reply.send(request.method === 'HEAD' ? undefined : body);
}

/** The query parameter `key` as one string (the first when repeated), or undefined. */
export function queryParam(request: PullRequest, key: string): string | undefined {
  const value = (request.query as Record<string, string | string[] | undefined>)[key];
  return Array.isArray(value) ? value[0] : value;
}

/** True when If-None-Match names `etag` (RFC 9110 §13.1.2, weak comparison), or is `*`. */
export function notModified(request: PullRequest, etag: string): boolean {
  const header = request.headers['if-none-match'];
  if (header === undefined) return false;
  return header.split(',').some((candidate) => {
    const tag = candidate.trim();
    return tag === '*' || tag.replace(/^W\//, '') === etag;
  });
}

/** The spec's error answer: `{"errors":[…]}` with the error's status and headers (no body for HEAD). */
export function sendError(request: PullRequest, reply: PullReply, error: RegistryError): PullReply {
  reply.code(error.status);
  for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
  const body = Buffer.from(error.body());
  reply.header('content-type', 'application/json').header('content-length', body.length);
  return reply.send(request.method === 'HEAD' ? undefined : body);
}

/**
 * Answers a request whose handler failed: a RegistryError as itself, another client error (4xx,
 * fastify's own) as a 400-class error body, anything else logged and answered 500 with no detail.
 */
export function sendFailure(request: PullRequest, reply: PullReply, error: unknown): PullReply {
  if (error instanceof RegistryError) return sendError(request, reply, error);
  const status = (error as { statusCode?: unknown } | undefined)?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) return sendError(request, reply, badRequest(status, (error as Error).message));
  request.log.error({ err: error }, 'request failed');
  return sendError(request, reply, internalError());
}
