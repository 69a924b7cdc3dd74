import { isSha256Digest, sha256Digest } from '../image/digest.js';
import { isManifestMediaType, MediaType } from '../image/media-types.js';
import { displayUrl, RegistryClientError, responseError } from './errors.js';
import { contentType, drain, header, readBody, type HttpResponse } from './http-transport.js';
import { checkReference, checkRepository, type RegistrySession } from './session.js';
import { pullScope, pushScope } from './scopes.js';

/** A manifest or index as the registry stores it: exact bytes, media type, digest of the bytes. */
export interface Manifest {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

/** What a HEAD tells about a manifest without its body. */
export interface ManifestInfo {
  mediaType: string;
  digest: string;
  size: number;
}

/**
 * Every manifest kind cartorio can store. Without the Docker types in Accept, registries
 * down-convert (Distribution serves a schema 1 manifest to a client that does not list v2s2).
 */
export const MANIFEST_ACCEPT = [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest].join(', ');

/** Distribution's limit for a manifest body; anything bigger is not a manifest. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const NOT_FOUND_CODES = new Set(['MANIFEST_UNKNOWN', 'NAME_UNKNOWN']);

/**
 * GET /v2/<name>/manifests/<reference> — spec.md#pulling-manifests.
 * Returns undefined when the repository or reference does not exist.
 */
export async function getManifest(session: RegistrySession, repository: string, reference: string): Promise<Manifest | undefined> {
  checkRepository(repository);
  checkReference(reference);
  const res = await session.send({
    method: 'GET',
    target: `/v2/${repository}/manifests/${reference}`,
    scopes: [pullScope(repository)],
    headers: { accept: MANIFEST_ACCEPT },
  });
  if (res.status === 404) return notFound('GET', res);
  if (res.status !== 200) throw await responseError('GET', res);
  const bytes = await readBody(res, MAX_MANIFEST_BYTES).catch((error: Error) => {
    throw new RegistryClientError(`GET ${displayUrl(res.url)}: ${error.message}`, 'GET', displayUrl(res.url), res.status);
  });
  const digest = sha256Digest(bytes);
  // spec.md: a client pulling by digest "MUST" verify the content against it. By tag there is
  // nothing to check against: the body defines the digest (a stale header is the registry's bug).
  if (isSha256Digest(reference)) {
    const claimed = header(res, 'docker-content-digest');
    if (digest !== reference || (claimed !== undefined && claimed !== reference)) {
      throw new RegistryClientError(
        `GET ${displayUrl(res.url)}: manifest content has digest ${digest}${claimed ? ` (registry says ${claimed})` : ''}, not the requested one`,
        'GET',
        displayUrl(res.url),
        res.status,
      );
    }
  }
  return { bytes, mediaType: manifestMediaType(res, bytes), digest };
}

/**
 * HEAD /v2/<name>/manifests/<reference> — spec.md#checking-if-content-exists-in-the-registry.
 * Falls back to a GET when the registry leaves out the digest or media type.
 */
export async function headManifest(session: RegistrySession, repository: string, reference: string): Promise<ManifestInfo | undefined> {
  checkRepository(repository);
  checkReference(reference);
  const res = await session.send({
    method: 'HEAD',
    target: `/v2/${repository}/manifests/${reference}`,
    scopes: [pullScope(repository)],
    headers: { accept: MANIFEST_ACCEPT },
  });
  drain(res);
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw await responseError('HEAD', res);
  const digest = header(res, 'docker-content-digest');
  const mediaType = contentType(res);
  const size = Number(header(res, 'content-length'));
  if (digest === undefined || !isSha256Digest(digest) || mediaType === undefined || !isManifestMediaType(mediaType) || !Number.isSafeInteger(size)) {
    const manifest = await getManifest(session, repository, reference);
    return manifest && { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length };
  }
  if (isSha256Digest(reference) && digest !== reference) {
    throw new RegistryClientError(`HEAD ${displayUrl(res.url)}: registry says digest ${digest}, not the requested one`, 'HEAD', displayUrl(res.url), res.status);
  }
  return { mediaType, digest, size };
}

/**
 * PUT /v2/<name>/manifests/<reference> — spec.md#pushing-manifests. Every blob it references
 * must already be in the repository. Returns the manifest's digest.
 */
export async function putManifest(session: RegistrySession, repository: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
  checkRepository(repository);
  checkReference(reference);
  const digest = sha256Digest(bytes);
  if (isSha256Digest(reference) && reference !== digest) {
    throw new Error(`cannot push a manifest with digest ${digest} as ${reference}`);
  }
  const res = await session.send({
    method: 'PUT',
    target: `/v2/${repository}/manifests/${reference}`,
    scopes: [pushScope(repository)],
    headers: { 'content-type': mediaType },
    body: bytes,
  });
  if (res.status !== 201 && res.status !== 200) throw await responseError('PUT', res);
  drain(res);
  return digest;
}

/** A 404 is "absent" only when the registry says so (or says nothing); other codes are errors. */
async function notFound(method: string, res: HttpResponse): Promise<undefined> {
  const error = await responseError(method, res);
  if (error.code === undefined || NOT_FOUND_CODES.has(error.code)) return undefined;
  throw error;
}

// Content-Type is the spec's answer; some registries send application/json, then the body's
// own mediaType field (or its shape, for old OCI manifests without one) decides.
function manifestMediaType(res: HttpResponse, bytes: Buffer): string {
  const declared = contentType(res);
  if (declared !== undefined && isManifestMediaType(declared)) return declared;
  let data: { mediaType?: unknown; manifests?: unknown; config?: unknown } = {};
  try {
    data = JSON.parse(bytes.toString('utf8')) as typeof data;
  } catch {
    // reported below
  }
  if (typeof data.mediaType === 'string' && isManifestMediaType(data.mediaType)) return data.mediaType;
  if (data.mediaType === undefined && Array.isArray(data.manifests)) return MediaType.ociIndex;
  if (data.mediaType === undefined && typeof data.config === 'object' && data.config !== null) return MediaType.ociManifest;
  const what = typeof data.mediaType === 'string' ? data.mediaType : declared ?? 'none';
  throw new RegistryClientError(`GET ${displayUrl(res.url)}: unsupported manifest media type "${what}"`, 'GET', displayUrl(res.url), res.status);
}
