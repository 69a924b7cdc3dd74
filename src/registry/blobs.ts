import { open, type FileHandle } from 'node:fs/promises';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { BlobLocation } from '../store/image-source.js';
import { blobUnknown, rangeInvalid } from './errors.js';
import { pumpFile } from './file-pump.js';
import { notModified } from './respond.js';
import { type RequestedRepository, snapshotOf } from './repository.js';

/** A byte range to send, both ends inclusive (RFC 9110 §14.1.1). */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Reads a `Range` header against a blob of `size` bytes (RFC 9110 §14.2). Returns the range,
 * `'unsatisfiable'` (→ 416), or undefined to send the whole blob: no header, another unit, a
 * syntax error, or several ranges (a server may ignore Range; no registry client asks for more
 * than one, and multipart/byteranges would only add risk).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== '' && Number(last) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

/**
 * GET|HEAD /v2/<name>/blobs/<digest>
 * https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-blobs
 *
 * Served only if the repository holds the blob (reachable from its index.json). The file is
 * opened before any header is written, so a blob removed meanwhile is still a clean 404; the body
 * is streamed from that handle, and fastify's `send(stream)` pipes it with back-pressure and
 * destroys it when the client goes away. HEAD only stats.
 */
export async function serveBlob(repository: RequestedRepository, digest: string, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const snapshot = await snapshotOf(repository);
  const blob = await repository.source?.blob(snapshot.name, digest);
  if (!blob) throw blobUnknown(digest);
  const etag = `"${digest}"`;
  if (request.method === 'HEAD') return setHeaders(reply, digest, etag).header('content-length', blob.size).send();
  if (notModified(request, etag)) return setHeaders(reply, digest, etag).code(304).send();
  const { handle, size } = await openBlob(blob, digest);
  const ifRange = request.headers['if-range'];
  const range = ifRange === undefined || ifRange === etag ? parseRange(request.headers.range, size) : undefined;
  if (range === 'unsatisfiable' || size === 0) {
    await handle.close();
    if (range === 'unsatisfiable') throw rangeInvalid(request.headers.range ?? '', size);
    return setHeaders(reply, digest, etag).header('content-length', 0).send(Buffer.alloc(0));
  }
  const { start, end } = range ?? { start: 0, end: size - 1 };
  setHeaders(reply, digest, etag).header('content-length', end - start + 1);
  if (range) reply.code(206).header('content-range', `bytes ${start}-${end}/${size}`);
  // The body bypasses fastify's stream piping for reused buffers (file-pump.ts); headers are the ones set above.
  reply.hijack();
  reply.raw.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string | number>);
  try {
    await pumpFile(handle, reply.raw, blob.offset + start, blob.offset + end);
  } catch (error) {
    request.log.error({ err: error, digest }, 'blob read failed after headers were sent');
    reply.raw.destroy();
  } finally {
    await handle.close();
  }
  return reply;
}

function setHeaders(reply: FastifyReply, digest: string, etag: string): FastifyReply {
  return reply
    .header('content-type', 'application/octet-stream')
    .header('docker-content-digest', digest)
    .header('etag', etag)
    .header('accept-ranges', 'bytes')
    // Content-addressed: the bytes behind a digest never change.
    .header('cache-control', 'max-age=31536000');
}

// The size is the file's for a whole-file blob (what is on disk now), the location's for a slice.
async function openBlob(blob: BlobLocation, digest: string): Promise<{ handle: FileHandle; size: number }> {
  let handle: FileHandle;
  try {
    handle = await open(blob.path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw blobUnknown(digest);
    throw error;
  }
  try {
    return { handle, size: blob.offset === 0 ? (await handle.stat()).size : blob.size };
  } catch (error) {
    await handle.close();
    throw error;
  }
}
