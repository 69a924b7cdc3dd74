import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * Sends a small JSON document with an exact Content-Type and Content-Length; a HEAD request gets
 * the same headers and no body (fastify keeps a Content-Length it is given for HEAD).
 */
export function sendJson(request: FastifyRequest, reply: FastifyReply, value: unknown, contentType = 'application/json'): FastifyReply {
  // A Buffer, so fastify adds no `; charset=utf-8` to the media type.
  const body = Buffer.from(JSON.stringify(value));
  reply.header('content-type', contentType).header('content-length', body.length);
  return reply.send(request.method === 'HEAD' ? undefined : body);
}

/** The query parameter `key` as one string (the first when repeated), or undefined. */
export function queryParam(request: FastifyRequest, key: string): string | undefined {
  const value = (request.query as Record<string, string | string[] | undefined>)[key];
  return Array.isArray(value) ? value[0] : value;
}

/** True when If-None-Match names `etag` (RFC 9110 §13.1.2, weak comparison), or is `*`. */
export function notModified(request: FastifyRequest, etag: string): boolean {
  const header = request.headers['if-none-match'];
  if (header === undefined) return false;
  return header.split(',').some((candidate) => {
    const tag = candidate.trim();
    return tag === '*' || tag.replace(/^W\//, '') === etag;
  });
}
