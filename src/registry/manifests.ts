import type { PullReply, PullRequest } from './exchange.js';
import { manifestUnknown } from './errors.js';
import { type RequestedRepository, snapshotOf } from './repository.js';
import { notModified } from './respond.js';

/**
 * GET|HEAD /v2/<name>/manifests/<reference>
 * https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-manifests
 *
 * The stored bytes exactly as stored, Content-Type from the descriptor that references them.
 * `Accept` is not used to convert anything: when a client's Accept leaves out the stored type
 * the manifest is still served, as Distribution does for OCI manifests, and clients that list
 * their types (Docker, containerd, skopeo) accept what they asked for. The snapshot reads the
 * bytes through a bounded cache and checks them against the digest: bytes that do not match are
 * never served (a 500, the cause in the log).
 */
export async function serveManifest(repository: RequestedRepository, reference: string, request: PullRequest, reply: PullReply): Promise<PullReply> {
  const snapshot = await snapshotOf(repository);
  const name = repository.asked;
  const digest = reference.includes(':') ? reference : snapshot.tagged.get(reference);
  const stored = digest === undefined ? undefined : await snapshot.manifest(digest);
  if (digest === undefined || !stored) throw manifestUnknown(name, reference);
  const etag = `"${digest}"`;
  reply.header('content-type', stored.descriptor.mediaType).header('docker-content-digest', digest).header('etag', etag);
  if (notModified(request, etag)) return reply.code(304).send();
  reply.header('content-length', stored.bytes.length);
  return reply.send(request.method === 'HEAD' ? undefined : stored.bytes);
}
