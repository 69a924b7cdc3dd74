import type { FastifyReply, FastifyRequest } from 'fastify';
import { sha256Digest } from '../image/digest.js';
import type { StoredManifest } from '../store/reader.js';
import { manifestUnknown } from './errors.js';
import { type RequestedRepository, snapshotOf } from './repository.js';
import { notModified } from './respond.js';

// Digests of stored bytes, computed once per snapshot entry (snapshots are rebuilt on change).
const verified = new WeakMap<StoredManifest, boolean>();

/**
 * GET|HEAD /v2/<name>/manifests/<reference>
 * https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-manifests
 *
 * The stored bytes exactly as stored, Content-Type from the descriptor that references them.
 * `Accept` is not used to convert anything: when a client's Accept leaves out the stored type
 * the manifest is still served, as Distribution does for OCI manifests, and clients that list
 * their types (Docker, containerd, skopeo) accept what they asked for. HEAD reads nothing: the
 * snapshot holds the bytes, so neither verb touches the disk while index.json is unchanged.
 */
export async function serveManifest(repository: RequestedRepository, reference: string, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const snapshot = await snapshotOf(repository);
  const name = repository.asked;
  const digest = reference.includes(':') ? reference : snapshot.tagged.get(reference);
  const stored = digest === undefined ? undefined : snapshot.manifests.get(digest);
  if (digest === undefined || !stored) throw manifestUnknown(name, reference);
  checkBytes(stored, digest);
  const etag = `"${digest}"`;
  reply.header('content-type', stored.descriptor.mediaType).header('docker-content-digest', digest).header('etag', etag);
  if (notModified(request, etag)) return reply.code(304).send();
  reply.header('content-length', stored.bytes.length);
  return reply.send(request.method === 'HEAD' ? undefined : stored.bytes);
}

// Serving bytes whose digest is not the one announced would make every client fail with a
// confusing digest error; a corrupt store is the operator's problem, said once in the log.
function checkBytes(stored: StoredManifest, digest: string): void {
  if (verified.get(stored) === undefined) verified.set(stored, sha256Digest(stored.bytes) === digest);
  if (!verified.get(stored)) throw new Error(`stored manifest ${digest} does not match its digest; run \`cartorio verify\``);
}
