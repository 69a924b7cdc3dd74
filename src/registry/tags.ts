import type { PullReply, PullRequest } from './exchange.js';
import { type RequestedRepository, snapshotOf } from './repository.js';
import { paginate, sendList } from './pagination.js';

/**
 * GET /v2/<name>/tags/list?n=<int>&last=<tag>
 * https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-tags
 *
 * The whole list (no `n`) is the snapshot's tags, serialized once per version of index.json.
 */
export async function listTags(repository: RequestedRepository, request: PullRequest, reply: PullReply): Promise<PullReply> {
  const snapshot = await snapshotOf(repository);
  const name = repository.asked;
  const page = paginate(request, snapshot.tags, `/v2/${name}/tags/list`);
  return sendList(request, reply, `{"name":${JSON.stringify(name)},"tags":`, page, '}');
}
