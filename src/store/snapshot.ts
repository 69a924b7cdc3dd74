import { isSha256Digest, sha256Digest } from '../image/digest.js';
import { type ParsedManifest, parseManifest, subjectOf } from '../image/manifest.js';
import { MediaType, isManifestMediaType } from '../image/media-types.js';
import type { Descriptor } from '../image/oci.schema.js';
import type { ManifestCache } from './manifest-cache.js';

/** A stored manifest: its descriptor (media type from the index or parent) and its exact bytes. */
export interface StoredManifest {
  descriptor: Descriptor;
  bytes: Buffer;
}

/** What a repository can serve beyond its tags: known once every manifest reachable was read. */
export interface RepositoryContents {
  /** Every blob reachable from index.json (configs, layers, and the manifests themselves), with its size. */
  readonly blobs: ReadonlyMap<string, number>;
  /** Subject digest → descriptors of the manifests that name it as `subject` (referrers API). */
  readonly referrers: ReadonlyMap<string, Descriptor[]>;
  /** Broken references found while reading; the rest of the repository is still served. */
  readonly problems: readonly string[];
}

/**
 * Everything a server needs to answer for one repository, for one version of its index.json.
 * The tags come from the index alone (tags/list costs no manifest read); what the manifests
 * reference is read on first need, and manifest bytes on demand, checked against their digest.
 */
export interface RepositorySnapshot {
  readonly name: string;
  /** Tags in lexical order (the order tags/list pages through). */
  readonly tags: readonly string[];
  /** Tag → digest of the manifest or index it names. */
  readonly tagged: ReadonlyMap<string, string>;
  /**
   * Manifest or index `digest` if it is reachable from index.json and there: its bytes, checked
   * against the digest. Throws when the stored bytes are corrupt (never served).
   */
  manifest(digest: string): Promise<StoredManifest | undefined>;
  /** Blobs, referrers and problems (a store reads every manifest the first time: bounded, shared). */
  contents(): Promise<RepositoryContents>;
}

/**
 * A snapshot built whole in memory (archives served in place): fill the maps, then set `tags`.
 * Manifest bytes are checked against their digest the first time they are asked for.
 */
export class BuiltSnapshot implements RepositorySnapshot, RepositoryContents {
  readonly name: string;
  tags: string[] = [];
  readonly tagged = new Map<string, string>();
  /** Manifests held in memory (an archive's; a legacy docker save's have no file at all). */
  readonly manifests = new Map<string, StoredManifest>();
  readonly blobs = new Map<string, number>();
  readonly referrers = new Map<string, Descriptor[]>();
  readonly problems: string[] = [];
  readonly #checked = new Set<string>();

  constructor(name: string) {
    this.name = name;
  }

  async manifest(digest: string): Promise<StoredManifest | undefined> {
    const stored = this.manifests.get(digest);
    if (stored && !this.#checked.has(digest)) {
      if (sha256Digest(stored.bytes) !== digest) throw new Error(`stored manifest ${digest} of ${this.name} does not match its digest; run \`cartorio verify\``);
      this.#checked.add(digest);
    }
    return stored;
  }

  async contents(): Promise<RepositoryContents> {
    return this;
  }
}

/** One manifest as the walk of a repository knows it: kept between versions of index.json. */
export interface ManifestNode {
  mediaType: string;
  size: number;
  children: readonly Descriptor[];
  referrer?: { subject: string; descriptor: Descriptor };
}

/** What a store snapshot learns by reading every reachable manifest once. */
export interface StoreContents extends RepositoryContents {
  readonly nodes: ReadonlyMap<string, ManifestNode>;
}

/** How many manifest files one walk reads at once. */
const READ_PARALLELISM = 16;
/** An index nested deeper than this is a loop or an attack; what lies below is a plain blob. */
const MAX_DEPTH = 8;

/**
 * A store repository's snapshot: tags and root media types from index.json; the rest on demand.
 * `previous` is what the last version of this repository's index.json walked: manifests already
 * known are not read again (a commit of one tag to a 10 000-tag repository reads one manifest).
 */
export class StoreSnapshot implements RepositorySnapshot {
  readonly name: string;
  readonly tags: readonly string[];
  readonly tagged: ReadonlyMap<string, string>;
  readonly #dir: string;
  /** Root digest → its type and size from index.json (only what the walk and manifest() need). */
  readonly #roots: ReadonlyMap<string, Descriptor>;
  readonly #cache: ManifestCache;
  /** What the walk of an earlier version found, until this version's walk has run. */
  #inherited: Promise<StoreContents> | undefined;
  #contents: Promise<StoreContents> | undefined;

  constructor(name: string, dir: string, roots: readonly Descriptor[], tagged: Map<string, string>, cache: ManifestCache, previous?: StoreSnapshot) {
    this.name = name;
    this.#dir = dir;
    this.tagged = tagged;
    this.tags = [...tagged.keys()].sort();
    const compact = new Compactor();
    const kept = new Map<string, Descriptor>();
    for (const root of roots) if (!kept.has(root.digest)) kept.set(root.digest, compact.descriptor(root));
    this.#roots = kept;
    this.#cache = cache;
    this.#inherited = previous && (previous.#contents ?? previous.#inherited);
  }

  async manifest(digest: string): Promise<StoredManifest | undefined> {
    if (!isSha256Digest(digest)) return undefined;
    const root = this.#roots.get(digest)?.mediaType;
    const mediaType = root !== undefined && isManifestMediaType(root) ? root : (await this.contents()).nodes.get(digest)?.mediaType;
    if (mediaType === undefined) return undefined;
    const read = await this.#cache.read(this.#dir, digest, mediaType);
    return read && { descriptor: { mediaType, digest, size: read.bytes.length }, bytes: read.bytes };
  }

  contents(): Promise<StoreContents> {
    if (!this.#contents) {
      const inherited = this.#inherited;
      const contents = (async () => walkManifests(this.#dir, this.#roots.values(), this.#cache, (await inherited?.catch(() => undefined))?.nodes))();
      this.#contents = contents;
      // A failed walk (an I/O error) is tried again by the next request.
      contents.then(() => (this.#inherited = undefined), () => (this.#contents = undefined));
    }
    return this.#contents;
  }
}

/**
 * What `roots` reach in the layout `dir` (for a cache with its own source, whatever that source
 * takes `dir` to name): every manifest read through `cache` (checked against its digest, parsed),
 * READ_PARALLELISM at a time; `known` nodes are not read again. The one definition of what a
 * repository reaches: the server serves by it, and gc, rm and prune keep by it (reach.ts).
 */
export async function walkManifests(dir: string, roots: Iterable<Descriptor>, cache: ManifestCache, known: ReadonlyMap<string, ManifestNode> | undefined): Promise<StoreContents> {
  const others = new Map<string, number>();
  const nodes = new Map<string, ManifestNode>();
  const referrers = new Map<string, Descriptor[]>();
  const problems: string[] = [];
  const seen = new Set<string>();
  const queue: { descriptor: Descriptor; depth: number }[] = Array.from(roots, (descriptor) => ({ descriptor, depth: 0 }));
  const compact = new Compactor();
  let next = 0;
  const visit = async (descriptor: Descriptor, depth: number): Promise<void> => {
    const { digest, mediaType } = descriptor;
    if (!isSha256Digest(digest)) {
      problems.push(`${digest}: unsupported digest`);
      return;
    }
    if (seen.has(digest)) return;
    seen.add(digest);
    if (!isManifestMediaType(mediaType) || depth > MAX_DEPTH) {
      others.set(digest, descriptor.size);
      return;
    }
    let node = known?.get(digest);
    if (node?.mediaType !== mediaType) {
      try {
        const read = await cache.read(dir, digest, mediaType);
        if (!read) throw new Error('no such file');
        node = nodeOf(descriptor, read.bytes, read.parsed ?? parseManifest(read.bytes, mediaType, digest), compact);
      } catch (error) {
        problems.push(`${mediaType} ${digest}: ${(error as Error).message}`);
        return;
      }
    }
    nodes.set(digest, node);
    if (node.referrer) {
      const list = referrers.get(node.referrer.subject);
      if (list) list.push(node.referrer.descriptor);
      else referrers.set(node.referrer.subject, [node.referrer.descriptor]);
    }
    for (const child of node.children) queue.push({ descriptor: child, depth: depth + 1 });
  };
  const worker = async (): Promise<void> => {
    while (next < queue.length) {
      const item = queue[next++] as (typeof queue)[number];
      await visit(item.descriptor, item.depth);
    }
  };
  await Promise.all(Array.from({ length: READ_PARALLELISM }, worker));
  // Reads finish in any order; answers must not depend on it.
  for (const list of referrers.values()) list.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  return { blobs: new ReachableBlobs(nodes, others), nodes, referrers, problems };
}

/**
 * The blobs a walk reached: its manifests (sizes from their nodes) and everything else, without a
 * second map of every manifest (100 000 tags: 10 tables of 10 000 entries, ~5 MB). The walk visits
 * each digest once, so the two never share a key.
 */
class ReachableBlobs implements ReadonlyMap<string, number> {
  readonly #manifests: ReadonlyMap<string, ManifestNode>;
  readonly #others: ReadonlyMap<string, number>;

  constructor(manifests: ReadonlyMap<string, ManifestNode>, others: ReadonlyMap<string, number>) {
    this.#manifests = manifests;
    this.#others = others;
  }

  get size(): number {
    return this.#manifests.size + this.#others.size;
  }

  has(digest: string): boolean {
    return this.#manifests.has(digest) || this.#others.has(digest);
  }

  get(digest: string): number | undefined {
    return this.#manifests.get(digest)?.size ?? this.#others.get(digest);
  }

  *entries(): MapIterator<[string, number]> {
    for (const [digest, node] of this.#manifests) yield [digest, node.size];
    yield* this.#others;
  }

  *keys(): MapIterator<string> {
    for (const [digest] of this.entries()) yield digest;
  }

  *values(): MapIterator<number> {
    for (const [, size] of this.entries()) yield size;
  }

  [Symbol.iterator](): MapIterator<[string, number]> {
    return this.entries();
  }

  forEach(callback: (size: number, digest: string, map: ReadonlyMap<string, number>) => void, thisArg?: unknown): void {
    for (const [digest, size] of this.entries()) callback.call(thisArg, size, digest, this);
  }
}

function nodeOf(descriptor: Descriptor, bytes: Buffer, parsed: ParsedManifest, compact: Compactor): ManifestNode {
  const node: ManifestNode = {
    mediaType: compact.string(descriptor.mediaType),
    size: bytes.length,
    children: parsed.children.map((child) => compact.descriptor(child)),
  };
  const subject = subjectOf(parsed);
  if (subject) node.referrer = { subject: subject.digest, descriptor: referrerDescriptor(descriptor, bytes.length, parsed) };
  return node;
}

/**
 * Ten thousand manifests of one image name the same config and layers: one object each, and one
 * copy of each media type string, instead of one per manifest.
 */
class Compactor {
  readonly #strings = new Map<string, string>();
  readonly #descriptors = new Map<string, Descriptor>();

  string(value: string): string {
    const known = this.#strings.get(value);
    if (known !== undefined) return known;
    this.#strings.set(value, value);
    return value;
  }

  // Only what the walk needs of a child: its type, digest and size.
  descriptor({ mediaType, digest, size }: Descriptor): Descriptor {
    const known = this.#descriptors.get(digest);
    if (known?.mediaType === mediaType && known.size === size) return known;
    const made = { mediaType: this.string(mediaType), digest, size };
    if (!known) this.#descriptors.set(digest, made);
    return made;
  }
}

/** distribution-spec "Listing Referrers": artifactType is the manifest's, else its config's media type. */
export function referrerDescriptor(descriptor: Descriptor, size: number, parsed: ParsedManifest): Descriptor {
  const body = parsed.kind === 'index' ? parsed.index : parsed.manifest;
  const artifactType = body.artifactType ?? (parsed.kind === 'image' && parsed.manifest.config.mediaType !== MediaType.ociEmpty ? parsed.manifest.config.mediaType : undefined);
  return {
    mediaType: descriptor.mediaType,
    digest: descriptor.digest,
    size,
    ...(artifactType !== undefined && { artifactType }),
    ...(body.annotations !== undefined && { annotations: body.annotations }),
  };
}
