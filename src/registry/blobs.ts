import { open, type FileHandle } from 'node:fs/promises';
import type { PullReply, PullRequest } from './exchange.js';
import type { BlobLocation, RemoteBlob } from '../store/image-source.js';
import { sha256Digest } from '../image/digest.js';
import { RegistryError, blobUnknown, internalError, rangeInvalid } from './errors.js';
import { DigestMismatch, FileChanged, hashFile, pumpFile } from './file-pump.js';
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
 * is pumped from that handle (or the source's own, for an archive kept open). HEAD only stats.
 *
 * A blob whose digest is only claimed (`proven: false`, a layer of an archive served in place) is
 * hashed as it streams and its last chunk held back until the hash matches; on a mismatch the
 * connection is destroyed, so the client sees a failed download, and the blob is refused from
 * then on. A Range of such a blob is sent only after the whole blob was hashed once (clients
 * resume with Range; a part cannot be checked alone). A blob hashed whole is proven from then on.
 * A file that can change in place (an archive) is checked once per request and again before the
 * last chunk (`revision`, one fstat each): a change drops its proofs, so its blobs are hashed as
 * they stream again, and a download during which it changed is cut before its last chunk.
 * A manifest asked for as a blob that has no file (a legacy docker save's, built at start) is
 * sent from the snapshot's bytes.
 */
/** Told when a claimed blob is found good (`problem` undefined) or bad while serving it. */
export type BlobVerdict = (location: BlobLocation, digest: string, problem?: string) => void;

export async function serveBlob(repository: RequestedRepository, digest: string, request: PullRequest, reply: PullReply, verdict?: BlobVerdict): Promise<PullReply> {
  const snapshot = await snapshotOf(repository);
  const blob = await repository.source?.blob(snapshot.name, digest);
  if (!blob) {
    // Checked against its digest like any manifest the snapshot gives (a store's is a file, found above).
    const built = await snapshot.manifest(digest);
    if (built) return serveBytes(built.bytes, digest, request, reply);
    throw blobUnknown(digest);
  }
  if ('kind' in blob) return serveRemote(blob, digest, request, reply);
  if (blob.refused !== undefined) throw blobRefused(digest);
  const etag = `"${digest}"`;
  if (request.method === 'HEAD') return setHeaders(reply, digest, etag).header('content-length', blob.size).send();
  if (notModified(request, etag)) return setHeaders(reply, digest, etag).code(304).send();
  const revision = blob.revision?.();
  const unchanged = blob.revision && (() => blob.revision?.() === revision);
  const ifRange = request.headers['if-range'];
  const asked = ifRange === undefined || ifRange === etag ? request.headers.range : undefined;
  if (!blob.proven && (asked !== undefined || blob.size === 0)) await prove(blob, digest, request, verdict);
  const { handle, size, owned } = await openBlob(blob, digest);
  const range = parseRange(asked, size);
  if (range === 'unsatisfiable' || size === 0) {
    if (owned) await handle.close();
    if (range === 'unsatisfiable') throw rangeInvalid(request.headers.range ?? '', size);
    return setHeaders(reply, digest, etag).header('content-length', 0).send(Buffer.alloc(0));
  }
  const { start, end } = range ?? { start: 0, end: size - 1 };
  setHeaders(reply, digest, etag).header('content-length', end - start + 1);
  if (range) reply.code(206).header('content-range', `bytes ${start}-${end}/${size}`);
  // The body bypasses fastify's stream piping for reused buffers (file-pump.ts); headers are the ones set above.
  reply.hijack();
  reply.raw.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string | number>);
  const check = blob.proven ? undefined : digest;
  try {
    const complete = await pumpFile(handle, reply.raw, blob.offset + start, blob.offset + end, check, unchanged);
    // Proven only if the file did not change while it was read (checked again: the socket took time).
    if (complete && check !== undefined && (unchanged === undefined || unchanged())) {
      blob.proven = true;
      verdict?.(blob, digest);
    }
  } catch (error) {
    if (error instanceof DigestMismatch) refuse(blob, digest, error.message, request, verdict);
    else if (error instanceof FileChanged) request.log.error({ archive: blob.path, entry: blob.origin, digest }, 'the archive changed while the blob was being sent: download cut before its last chunk');
    else request.log.error({ err: error, digest, origin: blob.origin }, 'blob read failed after headers were sent; download aborted');
    reply.raw.destroy();
  } finally {
    if (owned) await handle.close();
  }
  return reply;
}

/**
 * A blob in an object store: HEAD from what the source knows (no trip to the store); GET answered
 * 307 to a short-lived URL where the source gives one (Distribution's RedirectURL: clients fetch
 * the bytes from the store, never through this process), else streamed through, Range and all.
 */
async function serveRemote(blob: RemoteBlob, digest: string, request: PullRequest, reply: PullReply): Promise<PullReply> {
  const etag = `"${digest}"`;
  if (request.method === 'HEAD') return setHeaders(reply, digest, etag).header('content-length', blob.size).send();
  if (notModified(request, etag)) return setHeaders(reply, digest, etag).code(304).send();
  if (blob.redirect) {
    // Not cached: the URL expires, the digest's bytes do not.
    return reply.code(307).header('location', await blob.redirect()).header('docker-content-digest', digest).header('cache-control', 'no-store').send();
  }
  const ifRange = request.headers['if-range'];
  const range = parseRange(ifRange === undefined || ifRange === etag ? request.headers.range : undefined, blob.size);
  if (range === 'unsatisfiable') throw rangeInvalid(request.headers.range ?? '', blob.size);
  if (blob.size === 0) return setHeaders(reply, digest, etag).header('content-length', 0).send(Buffer.alloc(0));
  const body = await blob.open(range);
  if (!body) throw blobUnknown(digest);
  const { start, end } = range ?? { start: 0, end: blob.size - 1 };
  setHeaders(reply, digest, etag).header('content-length', end - start + 1);
  if (range) reply.code(206).header('content-range', `bytes ${start}-${end}/${blob.size}`);
  body.on('error', (error) => request.log.error({ err: error, digest, origin: blob.origin }, 'object store read failed after headers were sent; download aborted'));
  return reply.send(body);
}

// One whole-blob hash per location at a time, shared by the requests that wait for it.
const proving = new WeakMap<BlobLocation, Promise<void>>();

async function prove(blob: BlobLocation, digest: string, request: PullRequest, verdict: BlobVerdict | undefined): Promise<void> {
  let running = proving.get(blob);
  if (!running) {
    running = (async () => {
      const { handle, owned } = await openBlob(blob, digest);
      try {
        const revision = blob.revision?.();
        const found = blob.size === 0 ? sha256Digest(Buffer.alloc(0)) : await hashFile(handle, blob.offset, blob.offset + blob.size - 1);
        if (found !== digest) refuse(blob, digest, `the bytes hash to ${found}, not ${digest}`, request, verdict);
        else if (blob.revision?.() === revision) {
          blob.proven = true;
          verdict?.(blob, digest);
        }
      } finally {
        if (owned) await handle.close();
        proving.delete(blob);
      }
    })();
    proving.set(blob, running);
  }
  try {
    await running;
  } catch (error) {
    request.log.error({ err: error, digest, origin: blob.origin }, 'blob could not be read to check its digest');
    throw internalError();
  }
  if (blob.refused !== undefined) throw blobRefused(digest);
  // The file changed while it was hashed (an archive rewritten in place): nothing is proven yet.
  if (!blob.proven) throw new RegistryError('UNKNOWN', 503, 'the file holding the blob changed while it was being checked; try again', { digest }, { 'retry-after': '1' });
}

function refuse(blob: BlobLocation, digest: string, problem: string, request: PullRequest, verdict: BlobVerdict | undefined): void {
  blob.refused ??= problem;
  verdict?.(blob, digest, problem);
  request.log.error({ archive: blob.path, entry: blob.origin, digest, problem }, 'blob bytes do not match their digest: download aborted, blob refused from now on');
}

/** A blob whose bytes were found not to match its digest: never sent again (500: the server's data is bad). */
function blobRefused(digest: string): RegistryError {
  // The file and entry go to the log (refuse), never to a client: no error body holds a server path.
  return new RegistryError('UNKNOWN', 500, 'blob content does not match its digest', { digest, reason: 'the bytes the server holds for it are corrupt; its log names the file' });
}

// A manifest served as a blob from memory: whole, or one Range of it.
function serveBytes(bytes: Buffer, digest: string, request: PullRequest, reply: PullReply): PullReply {
  const etag = `"${digest}"`;
  setHeaders(reply, digest, etag);
  if (request.method === 'HEAD') return reply.header('content-length', bytes.length).send();
  if (notModified(request, etag)) return reply.code(304).send();
  const ifRange = request.headers['if-range'];
  const range = ifRange === undefined || ifRange === etag ? parseRange(request.headers.range, bytes.length) : undefined;
  if (range === 'unsatisfiable') throw rangeInvalid(request.headers.range ?? '', bytes.length);
  if (!range) return reply.header('content-length', bytes.length).send(bytes);
  return reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${bytes.length}`).send(bytes.subarray(range.start, range.end + 1));
}

function setHeaders(reply: PullReply, digest: string, etag: string): PullReply {
  return reply
    .header('content-type', 'application/octet-stream')
    .header('docker-content-digest', digest)
    .header('etag', etag)
    .header('accept-ranges', 'bytes')
    // Content-addressed: the bytes behind a digest never change.
    .header('cache-control', 'max-age=31536000');
}

// The size is the file's for a whole-file blob (what is on disk now), the location's for a slice.
// A source's own handle (an archive kept open) is used as is and never closed here.
async function openBlob(blob: BlobLocation, digest: string): Promise<{ handle: FileHandle; size: number; owned: boolean }> {
  if (blob.handle) return { handle: blob.handle, size: blob.size, owned: false };
  let handle: FileHandle;
  try {
    handle = await open(blob.path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw blobUnknown(digest);
    throw error;
  }
  try {
    return { handle, size: blob.offset === 0 ? (await handle.stat()).size : blob.size, owned: true };
  } catch (error) {
    await handle.close();
    throw error;
  }
}
