import type { PullReply, PullRequest } from './exchange.js';
import type { ServedImages } from '../store/image-source.js';
import { paginate, sendList } from './pagination.js';

/**
 * GET /v2/_catalog?n=<int>&last=<name>
 * Reserved by the OCI spec for historical use; clients (skopeo, crane catalog, Harbor replication)
 * expect Docker Registry v2's shape: https://distribution.github.io/distribution/spec/api/#catalog
 */
export async function listCatalog(images: ServedImages, request: PullRequest, reply: PullReply): Promise<PullReply> {
  const page = paginate(request, await images.repositoryNames(), '/v2/_catalog');
  return sendList(request, reply, '{"repositories":', page, '}');
}
