import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isSha256Digest } from '../image/digest.js';
import { parseManifest, subjectOf } from '../image/manifest.js';
import { MediaType, isIndexMediaType, isManifestMediaType } from '../image/media-types.js';
import type { Descriptor } from '../image/oci.schema.js';
import { isRepositoryName } from '../image/reference.js';
import type { BlobLocation, ImageSource } from './image-source.js';
import { REF_NAME, blobPath, isNotFound, readLayoutIndex, repositoryDir } from './layout.js';
import { REPOSITORY_LIST, readRepositoryList, walkRepositories } from './repository-list.js';

/** A stored manifest: its descriptor (media type from the index or parent) and its exact bytes. */
export interface StoredManifest {
  descriptor: Descriptor;
  bytes: Buffer;
}

/** Everything a server needs to answer for one repository, read once per index.json change. */
export interface RepositorySnapshot {
  name: string;
  /** Tags in lexical order (the order tags/list pages through). */
  tags: string[];
  /** Tag → digest of the manifest or index it names. */
  tagged: Map<string, string>;
  /** Every manifest and index reachable from index.json, by digest. */
  manifests: Map<string, StoredManifest>;
  /** Every blob reachable from index.json (configs, layers, and the manifests themselves). */
  blobs: Map<string, number>;
  /** Subject digest → descriptors of the manifests that name it as `subject` (referrers API). */
  referrers: Map<string, Descriptor[]>;
  /** Broken references found while reading; the rest of the repository is still served. */
  problems: string[];
}

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** A store written before `.repositories` existed is walked at most this often. */
const WALK_INTERVAL_MS = 1000;

/**
 * Read-only view of a store for the registry. Snapshots are cached and rebuilt when a
 * repository's index.json changes (every commit replaces it by rename), so images loaded while
 * a server runs are served without a restart.
 */
export class StoreReader implements ImageSource {
  /** The store directory; for a reader over layouts, where they are described (for messages). */
  readonly root: string;
  readonly #layouts: Map<string, string> | undefined;
  readonly #cache = new Map<string, { key: string; snapshot: RepositorySnapshot }>();
  #names: { key: string; names: readonly string[]; at: number } | undefined;
  #walking: Promise<readonly string[]> | undefined;

  /**
   * A reader over the store at `root`, or, with `layouts`, over standalone OCI layouts served
   * under the given repository names (`cartorio serve DIR…`: a get's `oci/`, any layout).
   */
  constructor(root: string, layouts?: Map<string, string>) {
    this.root = root;
    this.#layouts = layouts;
  }

  get description(): string {
    return this.root;
  }

  /**
   * Repository names, sorted: a store's `.repositories` list, re-read when it changes (one stat a
   * call); a store written before that list existed is walked, at most once a second.
   */
  async repositoryNames(): Promise<readonly string[]> {
    if (this.#layouts) {
      this.#names ??= { key: 'layouts', names: [...this.#layouts.keys()].sort(), at: 0 };
      return this.#names.names;
    }
    const info = await stat(join(this.root, REPOSITORY_LIST)).catch(() => undefined);
    const key = info ? `${info.ino}:${info.mtimeMs}:${info.size}` : 'walk';
    const cached = this.#names;
    if (cached?.key === key && (info || Date.now() - cached.at < WALK_INTERVAL_MS)) return cached.names;
    const names = (info && (await readRepositoryList(this.root))) || (await this.#walk(cached?.key === 'walk' ? cached.names : undefined));
    if (names === cached?.names) return names;
    // The same array while nothing changed, so what callers derive from it stays cached.
    const same = cached !== undefined && cached.names.length === names.length && cached.names.every((name, i) => name === names[i]);
    this.#names = { key, names: same ? cached.names : names, at: Date.now() };
    return this.#names.names;
  }

  /**
   * One walk at a time for a store without `.repositories` (10 000 repositories: ~2 s), shared by
   * every request that needs it; while it runs, requests are answered from the previous list.
   */
  async #walk(previous: readonly string[] | undefined): Promise<readonly string[]> {
    if (!this.#walking) {
      this.#walking = walkRepositories(this.root).finally(() => {
        this.#walking = undefined;
      });
    }
    if (previous !== undefined) {
      // Refresh in the background; the caller serves the list it has.
      this.#walking.then((names) => {
        const current = this.#names;
        if (current?.key !== 'walk') return;
        const same = current.names.length === names.length && current.names.every((name, i) => name === names[i]);
        this.#names = { key: 'walk', names: same ? current.names : names, at: Date.now() };
      }, () => undefined);
      return previous;
    }
    return this.#walking;
  }

  /** True while what is served is there: the store directory, or every layout directory. */
  async available(): Promise<boolean> {
    const dirs = this.#layouts ? [...this.#layouts.values()] : [this.root];
    const found = await Promise.all(dirs.map((dir) => stat(dir).then((info) => info.isDirectory(), () => false)));
    return found.every(Boolean);
  }

  /** The current snapshot of exactly `name`, or undefined when the store has no such repository. */
  async repository(name: string): Promise<RepositorySnapshot | undefined> {
    const dir = this.#dirOf(name);
    if (dir === undefined) return undefined;
    let info;
    try {
      info = await stat(join(dir, 'index.json'));
    } catch (error) {
      if (isNotFound(error)) {
        this.#cache.delete(name);
        return undefined;
      }
      throw error;
    }
    const key = `${info.ino}:${info.mtimeMs}:${info.size}`;
    const cached = this.#cache.get(name);
    if (cached?.key === key) return cached.snapshot;
    const snapshot = await readSnapshot(name, dir);
    if (snapshot) this.#cache.set(name, { key, snapshot });
    return snapshot;
  }

  /** The file of `digest` if repository `name` holds it (reachable from its index), else undefined. */
  async blob(name: string, digest: string): Promise<BlobLocation | undefined> {
    if (!isSha256Digest(digest)) return undefined;
    const snapshot = await this.repository(name);
    if (!snapshot?.blobs.has(digest)) return undefined;
    const path = blobPath(this.#dirOf(snapshot.name) ?? '', digest);
    try {
      const info = await stat(path);
      return info.isFile() ? { path, offset: 0, size: info.size, proven: true, origin: path } : undefined;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  // Only after the name is validated is a path built from it.
  #dirOf(name: string): string | undefined {
    if (!isRepositoryName(name)) return undefined;
    return this.#layouts ? this.#layouts.get(name) : repositoryDir(this.root, name);
  }
}

async function readSnapshot(name: string, dir: string): Promise<RepositorySnapshot | undefined> {
  const index = await readLayoutIndex(dir);
  if (!index) return undefined;
  const snapshot: RepositorySnapshot = {
    name, tags: [], tagged: new Map(), manifests: new Map(), blobs: new Map(), referrers: new Map(), problems: [],
  };
  for (const descriptor of index.manifests) {
    const ref = descriptor.annotations?.[REF_NAME];
    const loaded = await visit(dir, descriptor, snapshot, 0);
    if (loaded && ref !== undefined) snapshot.tagged.set(ref, descriptor.digest);
  }
  await tagSharedIndexes(dir, index.manifests, snapshot);
  snapshot.tags = [...snapshot.tagged.keys()].sort();
  return snapshot;
}

// A multi-platform get (the resource's `in`, issue 16) lists an index's platform manifests in
// index.json under one ref name and keeps the index itself in blobs/: that ref names the index
// whose manifests are exactly those. Stores never repeat a ref name, so they never pay for this.
async function tagSharedIndexes(dir: string, manifests: Descriptor[], snapshot: RepositorySnapshot): Promise<void> {
  const byRef = new Map<string, string[]>();
  for (const { annotations, digest } of manifests) {
    const ref = annotations?.[REF_NAME];
    if (ref !== undefined) byRef.set(ref, [...(byRef.get(ref) ?? []), digest]);
  }
  const shared = [...byRef].filter(([, digests]) => digests.length > 1).map(([ref, digests]) => [ref, digests.sort().join(',')] as const);
  if (shared.length === 0) return;
  for (const name of await readdir(join(dir, 'blobs', 'sha256')).catch(() => [] as string[])) {
    const digest = `sha256:${name}`;
    const path = join(dir, 'blobs', 'sha256', name);
    if (!isSha256Digest(digest) || snapshot.manifests.has(digest) || ((await stat(path).catch(() => undefined))?.size ?? Infinity) > MAX_MANIFEST_BYTES) continue;
    let data: { mediaType?: unknown; manifests?: Array<{ digest?: unknown }> };
    try {
      data = JSON.parse((await readFile(path)).toString('utf8')) as typeof data;
    } catch {
      continue;
    }
    const mediaType = data.mediaType ?? MediaType.ociIndex;
    if (!Array.isArray(data.manifests) || typeof mediaType !== 'string' || !isIndexMediaType(mediaType)) continue;
    const listed = data.manifests.map((m) => String(m.digest)).sort().join(',');
    for (const [ref, digests] of shared) {
      if (digests === listed && (await visit(dir, { mediaType, digest, size: (await stat(path)).size }, snapshot, 0))) snapshot.tagged.set(ref, digest);
    }
  }
}

// Loads one descriptor (and what it references) into the snapshot; false when it is unusable.
async function visit(dir: string, descriptor: Descriptor, snapshot: RepositorySnapshot, depth: number): Promise<boolean> {
  const { digest, mediaType } = descriptor;
  if (!isSha256Digest(digest)) {
    snapshot.problems.push(`${digest}: unsupported digest`);
    return false;
  }
  if (snapshot.blobs.has(digest)) return true;
  if (!isManifestMediaType(mediaType) || depth > 8) {
    snapshot.blobs.set(digest, descriptor.size);
    return true;
  }
  let bytes: Buffer;
  try {
    if (descriptor.size > MAX_MANIFEST_BYTES) throw new Error(`manifest is ${descriptor.size} bytes`);
    bytes = await readFile(blobPath(dir, digest));
  } catch (error) {
    snapshot.problems.push(`${mediaType} ${digest}: ${(error as Error).message}`);
    return false;
  }
  let parsed;
  try {
    parsed = parseManifest(bytes, mediaType, digest);
  } catch (error) {
    snapshot.problems.push((error as Error).message);
    return false;
  }
  snapshot.manifests.set(digest, { descriptor: { mediaType, digest, size: bytes.length }, bytes });
  snapshot.blobs.set(digest, bytes.length);
  const subject = subjectOf(parsed);
  if (subject) {
    const list = snapshot.referrers.get(subject.digest) ?? [];
    list.push(referrerDescriptor(descriptor, bytes.length, parsed));
    snapshot.referrers.set(subject.digest, list);
  }
  for (const child of parsed.children) await visit(dir, child, snapshot, depth + 1);
  return true;
}

/** distribution-spec "Listing Referrers": artifactType is the manifest's, else its config's media type. */
export function referrerDescriptor(descriptor: Descriptor, size: number, parsed: ReturnType<typeof parseManifest>): Descriptor {
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
