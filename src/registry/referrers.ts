import type { PullReply, PullRequest } from './exchange.js';
import { MediaType } from '../image/media-types.js';
import type { Descriptor } from '../image/oci.schema.js';
import { MAX_PAGE_SIZE, firstAfter, nextLink } from './pagination.js';
import type { RequestedRepository } from './repository.js';
import { queryParam } from './respond.js';

/** A referrers page stays under the manifest size every client accepts (distribution-spec: 4 MiB). */
export const MAX_REFERRERS_PAGE_BYTES = 4 * 1024 * 1024;
/** Room for the index around the descriptors. */
const PAGE_ENVELOPE_BYTES = 1024;

/**
 * GET /v2/<name>/referrers/<digest>?artifactType=<type>
 * https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-referrers
 *
 * Always an image index, empty when nothing refers to the digest. The spec forbids a 404 here
 * (clients take a 404 to mean "no referrers API" and fall back to tag schemes), so an unknown
 * repository gets the empty index too; only a malformed request is refused (400).
 *
 * Paged: "A `Link` header MUST be included in the response when the descriptor list cannot be
 * returned in a single manifest" (RFC 5988, rel="next"). A page holds at most MAX_PAGE_SIZE
 * descriptors (the page cap of tags/list and _catalog: one page for all but huge sets, so a client
 * that does not follow Link misses nothing there) and at most MAX_REFERRERS_PAGE_BYTES; the next
 * page starts after the `last` digest (the list is sorted by digest), with the same filter and `ns`.
 */
export async function listReferrers(repository: RequestedRepository, digest: string, request: PullRequest, reply: PullReply): Promise<PullReply> {
  const snapshot = repository.name !== undefined ? await repository.source?.repository(repository.name) : undefined;
  const all = sortedByDigest((await snapshot?.contents())?.referrers.get(digest) ?? []);
  const artifactType = queryParam(request, 'artifactType');
  const matching = artifactType === undefined ? all : all.filter((descriptor) => descriptor.artifactType === artifactType);
  if (artifactType !== undefined) reply.header('oci-filters-applied', 'artifactType');
  const last = queryParam(request, 'last');
  const { parts, next } = referrersPage(matching, last === undefined ? 0 : firstAfter(matching, last, (descriptor) => descriptor.digest));
  if (next !== undefined) reply.header('link', nextLink(request, `/v2/${repository.asked}/referrers/${digest}`, { ...(artifactType !== undefined && { artifactType }), last: next }));
  const body = Buffer.from(`{"schemaVersion":2,"mediaType":${JSON.stringify(MediaType.ociIndex)},"manifests":[${parts.join(',')}]}`);
  reply.header('content-type', MediaType.ociIndex).header('content-length', body.length);
  return reply.send(request.method === 'HEAD' ? undefined : body);
}

// The descriptors of one page from `start`, as JSON, and the digest to continue after when more follow.
function referrersPage(sorted: readonly Descriptor[], start: number): { parts: string[]; next?: string } {
  const parts: string[] = [];
  let bytes = 0;
  let index = start;
  for (; index < sorted.length && parts.length < MAX_PAGE_SIZE; index++) {
    const part = JSON.stringify(sorted[index]);
    const size = Buffer.byteLength(part) + 1;
    // Always one descriptor, however big: a page that fits none would never end.
    if (parts.length > 0 && bytes + size > MAX_REFERRERS_PAGE_BYTES - PAGE_ENVELOPE_BYTES) break;
    parts.push(part);
    bytes += size;
  }
  const lastShown = sorted[index - 1];
  return index < sorted.length && lastShown !== undefined ? { parts, next: lastShown.digest } : { parts };
}

// Pages continue after a digest, so they need one order: a store's walk sorts its lists by digest;
// an archive served in place lists them as found. Checked (and sorted if need be) once per list.
const sortedLists = new WeakMap<readonly Descriptor[], readonly Descriptor[]>();
function sortedByDigest(list: readonly Descriptor[]): readonly Descriptor[] {
  let sorted = sortedLists.get(list);
  if (sorted === undefined) {
    const inOrder = list.every((descriptor, i) => i === 0 || (list[i - 1]?.digest ?? '') <= descriptor.digest);
    sorted = inOrder ? list : [...list].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
    sortedLists.set(list, sorted);
  }
  return sorted;
}
