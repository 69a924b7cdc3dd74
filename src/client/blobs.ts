import type { IncomingMessage } from 'node:http';
import { pipeline, type Readable } from 'node:stream';
import { VerifyingStream, writeVerifiedFile } from './blob-verify.js';
import { displayUrl, RegistryClientError, responseError } from './errors.js';
import { drain, header } from './http-transport.js';
import { isRetryableError, isRetryableStatus } from './retry.js';
import { checkDigest, checkRepository, type RegistrySession } from './session.js';
import { pullScope, pushScope } from './scopes.js';

/** A blob being downloaded: its body (unverified; see `downloadBlob`) and announced size. */
export interface BlobDownload {
  stream: IncomingMessage;
  size: number | undefined;
  /** Where the bytes come from after redirects, for messages. */
  url: string;
}

/** How `pushBlob` got the blob into the repository. */
export type PushOutcome = 'exists' | 'mounted' | 'uploaded';

/**
 * GET /v2/<name>/blobs/<digest> — spec.md#pulling-blobs. Follows redirects (registries hand
 * blobs off to object storage). Returns undefined when the blob is not in the repository.
 */
export async function getBlob(session: RegistrySession, repository: string, digest: string): Promise<BlobDownload | undefined> {
  checkRepository(repository);
  checkDigest(digest);
  const res = await session.send({ method: 'GET', target: `/v2/${repository}/blobs/${digest}`, scopes: [pullScope(repository)], followRedirects: true });
  if (res.status === 404) {
    drain(res);
    return undefined;
  }
  if (res.status !== 200) throw await responseError('GET', res);
  const size = Number(header(res, 'content-length'));
  return { stream: res.body, size: Number.isSafeInteger(size) ? size : undefined, url: displayUrl(res.url) };
}

/**
 * Downloads a blob to `path`, verifying digest and size (`size` from the descriptor when known,
 * else the announced Content-Length). Throws when the blob is absent or its bytes are wrong.
 */
export async function downloadBlob(session: RegistrySession, repository: string, digest: string, path: string, size?: number): Promise<number> {
  // A connection that breaks in the middle of a layer starts the download again.
  return restarting(session, `download of ${digest} from ${repository}`, async () => {
    const blob = await getBlob(session, repository, digest);
    if (!blob) {
      throw new RegistryClientError(`GET ${session.base.origin}/v2/${repository}/blobs/${digest}: 404 blob not found`, 'GET', `${session.base.origin}/v2/${repository}/blobs/${digest}`, 404, 'BLOB_UNKNOWN');
    }
    return writeVerifiedFile(blob.stream, path, digest, size ?? blob.size, `GET ${blob.url}`);
  });
}

/** Runs `attempt` again, from the start, after a transient failure (a reset, 429, 5xx). */
async function restarting<T>(session: RegistrySession, what: string, attempt: () => Promise<T>): Promise<T> {
  for (let retry = 1; ; retry++) {
    try {
      return await attempt();
    } catch (error) {
      const status = error instanceof RegistryClientError ? error.status : undefined;
      const transient = (status !== undefined && isRetryableStatus(status)) || isRetryableError(error);
      if (!transient || retry >= session.retry.attempts) throw error;
      await session.pause(what, (error as Error).message, retry);
    }
  }
}

/** HEAD /v2/<name>/blobs/<digest> — spec.md#checking-if-content-exists-in-the-registry. */
export async function hasBlob(session: RegistrySession, repository: string, digest: string, scopes = [pullScope(repository)]): Promise<boolean> {
  checkRepository(repository);
  checkDigest(digest);
  const res = await session.send({ method: 'HEAD', target: `/v2/${repository}/blobs/${digest}`, scopes, followRedirects: true });
  drain(res);
  if (res.status === 200) return true;
  if (res.status === 404) return false;
  throw await responseError('HEAD', res);
}

/**
 * Puts a blob in `repository` with as little transfer as possible (spec.md#pushing-blobs):
 * nothing when it is already there; a cross-repository mount from `from` when given
 * (spec.md#mounting-a-blob-from-another-repository); otherwise POST then one monolithic PUT
 * streaming `open()` — a layer is never held in memory. `open` may be called more than once.
 */
export async function pushBlob(
  session: RegistrySession,
  repository: string,
  digest: string,
  size: number,
  open: () => Readable,
  from?: string,
): Promise<PushOutcome> {
  checkRepository(repository);
  checkDigest(digest);
  if (from !== undefined) checkRepository(from);
  const mountFrom = from !== undefined && from !== repository ? from : undefined;
  // One token for the whole operation: push here, and pull where the mount comes from.
  const scopes = [pushScope(repository), ...(mountFrom ? [pullScope(mountFrom)] : [])];
  if (await hasBlob(session, repository, digest, scopes)) return 'exists';
  // An upload that fails on the way (POST or PUT: 5xx, 429, a reset) starts over with a new
  // session: the old upload's state at the registry is unknown.
  return restarting(session, `upload of ${digest} to ${repository}`, () => upload(session, repository, digest, size, open, scopes, mountFrom));
}

async function upload(session: RegistrySession, repository: string, digest: string, size: number, open: () => Readable, scopes: string[], mountFrom: string | undefined): Promise<PushOutcome> {
  const query = mountFrom ? `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(mountFrom)}` : '';
  const started = await session.send({ method: 'POST', target: `/v2/${repository}/blobs/uploads/${query}`, scopes, headers: { 'content-length': '0' } });
  // 201: mounted. 202: the registry could not (or would not) mount and opened an upload instead.
  if (started.status === 201 && mountFrom) {
    drain(started);
    return 'mounted';
  }
  if (started.status !== 202) throw await responseError('POST', started);
  drain(started);
  const location = header(started, 'location');
  if (!location) throw new RegistryClientError(`POST ${displayUrl(started.url)}: 202 without a Location header`, 'POST', displayUrl(started.url), 202);
  // Location may be absolute or relative to the request (spec.md: "MAY be absolute or relative").
  const uploadUrl = new URL(location, started.url);
  // Appended as text: re-encoding the registry's opaque upload state through URLSearchParams could alter it.
  uploadUrl.search += `${uploadUrl.search ? '&' : '?'}digest=${encodeURIComponent(digest)}`;

  const put = await session.send({
    method: 'PUT',
    target: uploadUrl,
    scopes,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
    body: () => verified(open(), digest, size),
  });
  if (put.status !== 201) throw await responseError('PUT', put);
  drain(put);
  const stored = header(put, 'docker-content-digest');
  if (stored !== undefined && stored !== digest) {
    throw new RegistryClientError(`PUT ${displayUrl(put.url)}: registry stored ${stored}, not ${digest}`, 'PUT', displayUrl(put.url), put.status);
  }
  return 'uploaded';
}

// Checks what is sent: a source with other bytes than announced would otherwise leave the
// registry waiting for the rest of Content-Length, or fail later as DIGEST_INVALID.
function verified(source: Readable, digest: string, size: number): Readable {
  const verifier = new VerifyingStream(digest, size, `upload of ${digest}`);
  pipeline(source, verifier, () => {
    // errors reach the request through the verifier, which pipeline destroys
  });
  return verifier;
}
