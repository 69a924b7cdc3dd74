import type { FastifyReply, FastifyRequest } from 'fastify';
import { MediaType } from '../image/media-types.js';
import type { RequestedRepository } from './repository.js';
import { queryParam, sendJson } from './respond.js';

/**
 * GET /v2/<name>/referrers/<digest>?artifactType=<type>
 * https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-referrers
 *
 * Always an image index, empty when nothing refers to the digest. The spec forbids a 404 here
 * (clients take a 404 to mean "no referrers API" and fall back to tag schemes), so an unknown
 * repository gets the empty index too; only a malformed request is refused (400).
 */
export async function listReferrers(repository: RequestedRepository, digest: string, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const snapshot = repository.name !== undefined ? await repository.source?.repository(repository.name) : undefined;
  const all = (await snapshot?.contents())?.referrers.get(digest) ?? [];
  const artifactType = queryParam(request, 'artifactType');
  const manifests = artifactType === undefined ? all : all.filter((descriptor) => descriptor.artifactType === artifactType);
  if (artifactType !== undefined) reply.header('oci-filters-applied', 'artifactType');
  return sendJson(request, reply, { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }, MediaType.ociIndex);
}
