import { statSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isSha256Digest } from '../image/digest.js';
import { MediaType, isIndexMediaType } from '../image/media-types.js';
import type { Descriptor } from '../image/oci.schema.js';
import { isRepositoryName } from '../image/reference.js';
import type { BlobLocation, ImageSource } from './image-source.js';
import { readRemoved } from './removed-file.js';
import { POOL_DIR, REF_NAME, REMOVED_FILE, blobLayoutOf, blobPath, fileVersion, isNotFound, isPoolBacked, readLayoutIndex, repositoryDir } from './layout.js';
import { MAX_MANIFEST_BYTES, ManifestCache } from './manifest-cache.js';
import { REPOSITORY_LIST, readRepositoryList, walkRepositories } from './repository-list.js';
import { type RepositorySnapshot, StoreSnapshot } from './snapshot.js';

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
  /** Per repository: the index.json version read (inode, mtime, size) and its snapshot, shared by every request. */
  readonly #cache = new Map<string, { key: string; snapshot: Promise<StoreSnapshot | undefined> }>();
  readonly #manifests = new ManifestCache();
  /** Per repository: the removed.json version read and what its roots reach. */
  readonly #removed = new Map<string, { key: string; snapshot: Promise<StoreSnapshot> }>();
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
    const info = statNow(join(this.root, REPOSITORY_LIST));
    const key = info ? fileVersion(info) : 'walk';
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
    const info = statNow(join(dir, 'index.json'), true);
    if (info === undefined) {
      this.#cache.delete(name);
      return undefined;
    }
    const key = fileVersion(info);
    const cached = this.#cache.get(name);
    if (cached?.key === key) return cached.snapshot;
    // One read per version of index.json, however many requests arrive while it runs, and whether
    // it parses or not: a broken file fails the same way until it is replaced, so its failure is
    // kept like a snapshot (a broken 56 MB index.json re-parsed per request cost each over a
    // second of CPU). A failed read (EIO, EMFILE; EACCES, which a chmod fixes without changing
    // the key) is tried again by the next request.
    const previous = cached?.snapshot.catch(() => undefined);
    const snapshot = (async () => readSnapshot(name, dir, await this.#blobsDir(dir), this.#manifests, await previous))();
    const entry = { key, snapshot };
    this.#cache.set(name, entry);
    snapshot.then(
      (read) => read === undefined && this.#cache.get(name) === entry && this.#cache.delete(name),
      (error: unknown) => isReadError(error) && this.#cache.get(name) === entry && this.#cache.delete(name),
    );
    return snapshot;
  }

  /**
   * The file of `digest` if repository `name` holds it (reachable from its index), else undefined.
   * A store's repository also holds, until gc forgets them once the grace is over, the blobs of
   * roots that left its index (removed.json): a pull that fetched its manifest before `rm` gets
   * every blob that manifest names.
   */
  async blob(name: string, digest: string): Promise<BlobLocation | undefined> {
    if (!isSha256Digest(digest)) return undefined;
    const snapshot = await this.repository(name);
    if (!snapshot) return undefined;
    const held = (await snapshot.contents()).blobs.has(digest) || (!this.#layouts && (await this.#removedReaches(name, digest)));
    if (!held) return undefined;
    const dir = this.#dirOf(snapshot.name) ?? '';
    const own = await this.#blobFile(blobPath(dir, digest));
    if (own !== 'missing') return own;
    // Not in its own blobs/: only a repository with no blobs/ at all reads the pool (isPoolBacked).
    // One that has blobs/ never serves a pool blob it does not link (gc released it).
    if (this.#layouts || !(await isPoolBacked(dir))) return undefined;
    const pooled = await this.#blobFile(blobPath(join(this.root, POOL_DIR), digest));
    return pooled === 'missing' ? undefined : pooled;
  }

  async #blobFile(path: string): Promise<BlobLocation | 'missing' | undefined> {
    try {
      const info = await stat(path);
      return info.isFile() ? { path, offset: 0, size: info.size, proven: true, origin: path } : undefined;
    } catch (error) {
      if (isNotFound(error)) return 'missing';
      throw error;
    }
  }

  /** Where a repository's manifests are read: its own blobs/, or the pool for a repository that has none. */
  async #blobsDir(dir: string): Promise<string> {
    return this.#layouts ? dir : blobLayoutOf(this.root, dir);
  }

  // What the removed roots of a repository reach, read once per version of its removed.json.
  async #removedReaches(name: string, digest: string): Promise<boolean> {
    const dir = this.#dirOf(name);
    if (dir === undefined) return false;
    const info = await stat(join(dir, REMOVED_FILE)).catch(() => undefined);
    if (!info) {
      this.#removed.delete(name);
      return false;
    }
    const key = fileVersion(info);
    let cached = this.#removed.get(name);
    if (cached?.key !== key) {
      const snapshot = Promise.all([readRemoved(dir), this.#blobsDir(dir)]).then(([roots, blobs]) => new StoreSnapshot(name, blobs, roots.map((root) => root.descriptor), new Map(), this.#manifests));
      cached = { key, snapshot };
      this.#removed.set(name, cached);
    }
    const snapshot = await cached.snapshot.catch(() => undefined);
    return snapshot !== undefined && (await snapshot.contents()).blobs.has(digest);
  }

  // Only after the name is validated is a path built from it.
  #dirOf(name: string): string | undefined {
    if (!isRepositoryName(name)) return undefined;
    return this.#layouts ? this.#layouts.get(name) : repositoryDir(this.root, name);
  }
}

// An error of the file system (it has an errno code), not of what the file holds.
function isReadError(error: unknown): boolean {
  return typeof (error as NodeJS.ErrnoException | undefined)?.code === 'string';
}

// The snapshot of one version of index.json: tags and roots from the index alone; manifests read from `blobs`.
async function readSnapshot(name: string, dir: string, blobs: string, cache: ManifestCache, previous: StoreSnapshot | undefined): Promise<StoreSnapshot | undefined> {
  const index = await readLayoutIndex(dir);
  if (!index) return undefined;
  const tagged = new Map<string, string>();
  let repeated = false;
  for (const { digest, annotations } of index.manifests) {
    const ref = annotations?.[REF_NAME];
    if (ref === undefined || !isSha256Digest(digest)) continue;
    repeated ||= tagged.has(ref);
    tagged.set(ref, digest);
  }
  const shared = repeated ? await sharedIndexes(dir, index.manifests, cache) : [];
  for (const { ref, descriptor } of shared) tagged.set(ref, descriptor.digest);
  const roots = shared.length === 0 ? index.manifests : [...index.manifests, ...shared.map(({ descriptor }) => descriptor)];
  return new StoreSnapshot(name, blobs, roots, tagged, cache, previous);
}

// A multi-platform get (the resource's `in`, as registry-image's oci-layout get does) lists an
// index's platform manifests in index.json under one ref name and keeps the index itself in
// blobs/: that ref names the index whose manifests are exactly those. Stores never repeat a ref
// name, so they never pay for this (called only when a ref name repeats).
async function sharedIndexes(dir: string, manifests: Descriptor[], cache: ManifestCache): Promise<{ ref: string; descriptor: Descriptor }[]> {
  const byRef = new Map<string, string[]>();
  for (const { annotations, digest } of manifests) {
    const ref = annotations?.[REF_NAME];
    if (ref !== undefined) byRef.set(ref, [...(byRef.get(ref) ?? []), digest]);
  }
  const shared = [...byRef].filter(([, digests]) => digests.length > 1).map(([ref, digests]) => [ref, digests.sort().join(',')] as const);
  const found: { ref: string; descriptor: Descriptor }[] = [];
  if (shared.length === 0) return found;
  for (const name of await readdir(join(dir, 'blobs', 'sha256')).catch(() => [] as string[])) {
    const digest = `sha256:${name}`;
    const path = join(dir, 'blobs', 'sha256', name);
    const size = (await stat(path).catch(() => undefined))?.size ?? Infinity;
    if (!isSha256Digest(digest) || size > MAX_MANIFEST_BYTES) continue;
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
      if (digests !== listed) continue;
      // Only an index that is what its name says and parses is tagged.
      const usable = await cache.read(dir, digest, mediaType).catch(() => undefined);
      if (usable) found.push({ ref, descriptor: { mediaType, digest, size } });
    }
  }
  return found;
}

/**
 * stat(2) on the event loop: every request stats `.repositories` and its repository's index.json
 * (a load must be seen at once), and through the thread pool those two stats took 38% of a
 * process's CPU at c32 (profiled: ~17 µs each to hand over and back, against ~2 µs for the call).
 * Undefined when the file is absent (or, unless `strict`, unreadable).
 */
function statNow(path: string, strict = false): { ino: number; mtimeMs: number; size: number } | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch (error) {
    if (strict && !isNotFound(error)) throw error;
    return undefined;
  }
}
