import { isSha256Digest } from '../image/digest.js';
import { parseManifest, subjectOf } from '../image/manifest.js';
import { isManifestMediaType } from '../image/media-types.js';
import type { Descriptor } from '../image/oci.schema.js';
import { MAX_MANIFEST_BYTES } from './manifest-cache.js';
import type { StoreOps } from './store-ops.js';

/** What a set of roots reaches in one repository. */
export interface Reach {
  /** Every blob reached (manifests, configs, layers) with its size. */
  readonly blobs: Map<string, number>;
  /** Manifest digest → the subject it names (referrers). */
  readonly subjects: Map<string, string>;
  /** Manifests that could not be read or parsed: what lies below them is unknown. */
  readonly problems: string[];
}

interface Node {
  children: readonly Descriptor[];
  subject?: string;
}

/** An index nested deeper than this is a loop or an attack, as the server and verify hold it. */
const MAX_DEPTH = 8;

/**
 * Walks manifests from roots through the blobs a repository holds. Manifests are content-
 * addressed, so one walker shares what it parsed across every repository of a gc run.
 */
export class ReachWalker {
  readonly #ops: StoreOps;
  readonly #nodes = new Map<string, Node>();

  constructor(ops: StoreOps) {
    this.#ops = ops;
  }

  async reach(repository: string, roots: readonly Descriptor[]): Promise<Reach> {
    const result: Reach = { blobs: new Map(), subjects: new Map(), problems: [] };
    for (const root of roots) await this.#visit(repository, root, result, 0);
    return result;
  }

  async #visit(repository: string, descriptor: Descriptor, result: Reach, depth: number): Promise<void> {
    const { digest, mediaType, size } = descriptor;
    if (!isSha256Digest(digest) || result.blobs.has(digest)) return;
    result.blobs.set(digest, size);
    if (!isManifestMediaType(mediaType) || depth > MAX_DEPTH) return;
    let node = this.#nodes.get(digest);
    if (!node) {
      const bytes = await this.#ops.readBlob(repository, digest, MAX_MANIFEST_BYTES);
      if (!bytes) {
        result.problems.push(`${repository}: manifest ${digest} is missing or too large to read`);
        return;
      }
      try {
        const parsed = parseManifest(bytes, mediaType, `${repository}: manifest ${digest}`);
        const subject = subjectOf(parsed)?.digest;
        node = { children: parsed.children, ...(subject !== undefined && { subject }) };
      } catch (error) {
        result.problems.push((error as Error).message);
        return;
      }
      this.#nodes.set(digest, node);
    }
    if (node.subject !== undefined) result.subjects.set(digest, node.subject);
    for (const child of node.children) await this.#visit(repository, child, result, depth + 1);
  }
}
