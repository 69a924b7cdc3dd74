import type { Descriptor } from '../image/oci.schema.js';
import { MAX_MANIFEST_BYTES, ManifestCache } from './manifest-cache.js';
import { type ManifestNode, walkManifests } from './snapshot.js';
import type { IndexVersion, StoreOps } from './store-ops.js';

/** What a set of roots reaches in one repository. */
export interface Reach {
  /** Every blob reached (manifests, configs, layers) with its size. */
  readonly blobs: ReadonlyMap<string, number>;
  /** Manifest digest → the subject it names (referrers). */
  readonly subjects: ReadonlyMap<string, string>;
  /** Manifests that could not be read or parsed, each naming the repository: what lies below them is unknown. */
  readonly problems: readonly string[];
}

/**
 * What roots reach in a store's repositories, by the walk the server serves by (snapshot.ts
 * walkManifests: the same depth limit, digest check and parse), so gc, rm and prune never let go
 * of a blob a pull may still be given. Manifests are content-addressed: one walker keeps what it
 * parsed for every repository and every step of a command (a store has one: StoreOps.walker).
 */
export class ReachWalker {
  readonly #manifests: ManifestCache;
  readonly #nodes = new Map<string, ManifestNode>();
  /** Reads shared by walks side by side (gc marks repositories in parallel) until their node is known. */
  readonly #reading = new Map<string, Promise<Buffer | undefined>>();

  constructor(ops: StoreOps) {
    // No bytes are kept (a budget of 0): what the walk needs again of a manifest is its node.
    this.#manifests = new ManifestCache(0, async (repository, digest) => {
      // A read that found nothing serves no other walk: that repository's blobs/ may lack a file this one has.
      const shared = this.#reading.get(digest);
      let bytes = shared ? await shared.catch(() => undefined) : undefined;
      if (!bytes) {
        const reading = ops.readBlob(repository, digest, MAX_MANIFEST_BYTES);
        this.#reading.set(digest, reading);
        bytes = await reading;
      }
      if (!bytes) throw new Error(`missing, or over the ${MAX_MANIFEST_BYTES}-byte limit for a manifest`);
      return { bytes, name: `${repository}@${digest}` };
    });
  }

  async reach(repository: string, roots: readonly Descriptor[]): Promise<Reach> {
    const contents = await walkManifests(repository, roots, this.#manifests, this.#nodes);
    const subjects = new Map<string, string>();
    for (const [digest, node] of contents.nodes) {
      this.#nodes.set(digest, node);
      this.#reading.delete(digest);
      if (node.referrer) subjects.set(digest, node.referrer.subject);
    }
    return { blobs: contents.blobs, subjects, problems: contents.problems.map((problem) => `${repository}: ${problem}`) };
  }

  /**
   * What a repository holds where holding is reaching (a bucket's, a pool-backed directory's):
   * what its index reaches and what its removed roots reach, walked apart as the server walks them.
   */
  async held(repository: string, read: IndexVersion): Promise<Reach> {
    const indexed = await this.reach(repository, read.index.manifests);
    if (read.removed.length === 0) return indexed;
    return union(indexed, await this.reach(repository, read.removed.map((root) => root.descriptor)));
  }
}

/** What either reaches. */
function union(a: Reach, b: Reach): Reach {
  return { blobs: new Map([...b.blobs, ...a.blobs]), subjects: new Map([...b.subjects, ...a.subjects]), problems: [...a.problems, ...b.problems] };
}
