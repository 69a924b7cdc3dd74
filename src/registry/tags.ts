import type { FastifyReply, FastifyRequest } from 'fastify';
import { type RequestedRepository, snapshotOf } from './repository.js';
import { paginate } from './pagination.js';
import { sendJson } from './respond.js';

/**
 * GET /v2/<name>/tags/list?n=<int>&last=<tag>
 * https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-tags
 */
export async function listTags(repository: RequestedRepository, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const snapshot = await snapshotOf(repository);
  const name = repository.asked;
  const page = paginate(request, snapshot.tags, `/v2/${name}/tags/list`);
  if (page.link !== undefined) reply.header('link', page.link);
  return sendJson(request, reply, { name, tags: page.items });
}
