import { isSha256Digest } from '../../image/digest.js';
import { isRepositoryName } from '../../image/reference.js';
import type { ImageSource, RemoteBlob } from '../image-source.js';
import { REF_NAME, REMOVED_FILE, parseLayoutIndex } from '../layout.js';
import { ManifestCache } from '../manifest-cache.js';
import { mapLimit } from '../parallel.js';
import { removedRoots } from '../removed-file.js';
import { REPOSITORY_LIST } from '../repository-list.js';
import { type RepositorySnapshot, StoreSnapshot } from '../snapshot.js';
import { walkIndexes } from './bucket-store.js';
import type { Bucket } from './client.js';
import { poolKey } from './location.js';

export interface BucketSourceOptions {
  /** How often what is in memory is compared with the bucket (ms); 0: read once, never again. */
  refreshMs: number;
  /** Blob GETs: 'redirect' (307 to a presigned URL) or 'stream' (through this process). */
  blobs: 'redirect' | 'stream';
  /** Lifetime of a presigned URL (s): long enough to start a download, short enough not to be shared. */
  presignSeconds?: number;
}

/** Index reads at once during a refresh. */
const REFRESH_PARALLELISM = 16;
const DEFAULT_PRESIGN_SECONDS = 300;

interface Held {
  etag: string;
  snapshot: StoreSnapshot;
}

/** What a repository's removed roots reach, read for one version of its index.json. */
interface Removed {
  /** The index.json ETag it was read with, when, and removed.json's own ETag ('' when absent). */
  index: string;
  at: number;
  etag: string;
  snapshot: StoreSnapshot | undefined;
}

/**
 * A bucket store as the registry reads it (DESIGN §4a). Names, tags, manifests and referrers are
 * answered from memory; every `refreshMs` the small objects are compared with the bucket by ETag
 * (`.repositories`, and the index.json of each repository asked for so far: one conditional GET
 * each, 304 when unchanged), so a load through any machine is served by every replica within one
 * interval. Manifests are read once per digest (content-addressed, never stale). Blob bytes are
 * never read here: the registry sends clients to a presigned URL, or streams the object through.
 *
 * After `rm`, as the directory reader (reader.ts) does: a blob a repository's removed roots reach
 * (removed.json) is still served until gc forgets them; removed.json is read only when a blob is
 * not reached from the index, and again when index.json changed (rm writes removed.json first) or
 * `refreshMs` passed. A repository that leaves `.repositories` leaves the catalog, but while its
 * (empty) index.json is there it is still looked up by this replica, so a pull under way
 * finishes. Why that is enough for gc to delete blobs safely: BucketStore and gc.ts.
 */
export class BucketSource implements ImageSource {
  readonly bucket: Bucket;
  readonly #options: BucketSourceOptions;
  readonly #manifests: ManifestCache;
  readonly #repositories = new Map<string, Held>();
  /** Repositories being read for the first time, shared by the requests that wait for them. */
  readonly #reading = new Map<string, Promise<Held | undefined>>();
  readonly #removed = new Map<string, Promise<Removed>>();
  /** Names that were listed and left the list: looked up until their index.json is gone. */
  readonly #unlisted = new Set<string>();
  #names: readonly string[] = [];
  #listEtag: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;
  #lastError: string | undefined;

  private constructor(bucket: Bucket, options: BucketSourceOptions) {
    this.bucket = bucket;
    this.#options = options;
    this.#manifests = new ManifestCache(undefined, async (_dir, digest) => {
      const read = await this.bucket.get(poolKey(digest));
      return read === undefined || read === 'unchanged' ? undefined : { bytes: read.bytes, name: `${bucket.url}/${poolKey(digest)}` };
    });
  }

  /** Reads the store's names (failing in one line when the bucket cannot be read), then refreshes every `refreshMs`. */
  static async open(bucket: Bucket, options: BucketSourceOptions): Promise<BucketSource> {
    await bucket.check();
    const source = new BucketSource(bucket, options);
    await source.refresh();
    if (options.refreshMs > 0) {
      source.#timer = setInterval(() => void source.refresh().catch(() => undefined), options.refreshMs);
      source.#timer.unref();
    }
    return source;
  }

  get description(): string {
    return this.bucket.url;
  }

  close(): void {
    clearInterval(this.#timer);
  }

  async repositoryNames(): Promise<readonly string[]> {
    return this.#names;
  }

  /** Only names listed (or listed once, see the class comment) are looked up: an unknown name costs no trip to the bucket. */
  async repository(name: string): Promise<RepositorySnapshot | undefined> {
    const held = this.#repositories.get(name);
    if (held) return held.snapshot;
    // A reader that never refreshes (a command's, not a server's) looks up any name, as a directory's does.
    const looked = this.#listed(name) || this.#unlisted.has(name) || this.#options.refreshMs === 0;
    if (!isRepositoryName(name) || !looked) return undefined;
    let reading = this.#reading.get(name);
    if (!reading) {
      reading = this.#read(name, undefined).finally(() => this.#reading.delete(name));
      this.#reading.set(name, reading);
    }
    return (await reading)?.snapshot;
  }

  async blob(name: string, digest: string): Promise<RemoteBlob | undefined> {
    if (!isSha256Digest(digest)) return undefined;
    const snapshot = await this.repository(name);
    const size = snapshot && ((await snapshot.contents()).blobs.get(digest) ?? (await this.#removedReach(name, digest)));
    if (size === undefined) return undefined;
    const key = poolKey(digest);
    const seconds = this.#options.presignSeconds ?? DEFAULT_PRESIGN_SECONDS;
    return {
      kind: 'remote',
      size,
      origin: `${this.bucket.url}/${key}`,
      ...(this.#options.blobs === 'redirect' && { redirect: () => this.bucket.presign(key, seconds) }),
      open: (range) => this.bucket.stream(key, range),
    };
  }

  /** False while the bucket cannot be read (the last refresh failed): /healthz reports it. */
  async available(): Promise<boolean> {
    return this.#lastError === undefined;
  }

  health(): Record<string, unknown> | undefined {
    return this.#lastError === undefined ? undefined : { store: this.bucket.url, refresh: this.#lastError };
  }

  /** Compares names and every held index.json with the bucket, one refresh at a time. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refresh().then(
      () => void (this.#lastError = undefined),
      (error: unknown) => {
        this.#lastError = (error as Error).message;
        throw error;
      },
    ).finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #refresh(): Promise<void> {
    const list = await this.bucket.get(REPOSITORY_LIST, this.#listEtag);
    if (list === undefined) {
      // A store copied in without `.repositories` (an older one): found by listing its index.json keys.
      this.#setNames(await walkIndexes(this.bucket));
      this.#listEtag = undefined;
    } else if (list !== 'unchanged') {
      this.#setNames(list.bytes.toString('utf8').split('\n').filter((name) => name !== '' && isRepositoryName(name)));
      this.#listEtag = list.etag;
    }
    await mapLimit([...this.#repositories], REFRESH_PARALLELISM, ([name, old]) => this.#read(name, old));
  }

  // Reads index.json if it changed since `old` (or for the first time); keeps the snapshot in memory.
  async #read(name: string, old: Held | undefined): Promise<Held | undefined> {
    const path = `${name}/index.json`;
    const read = await this.bucket.get(path, old?.etag);
    if (read === 'unchanged') return old;
    if (read === undefined) {
      this.#repositories.delete(name);
      this.#removed.delete(name);
      this.#unlisted.delete(name);
      return undefined;
    }
    const index = parseLayoutIndex(read.bytes, `${this.bucket.url}/${path}`);
    const tagged = new Map<string, string>();
    for (const { digest, annotations } of index.manifests) {
      const ref = annotations?.[REF_NAME];
      if (ref !== undefined && isSha256Digest(digest)) tagged.set(ref, digest);
    }
    const held: Held = { etag: read.etag, snapshot: new StoreSnapshot(name, name, index.manifests, tagged, this.#manifests, old?.snapshot) };
    this.#repositories.set(name, held);
    return held;
  }

  #setNames(names: string[]): void {
    const sorted = [...new Set(names)].sort();
    const same = sorted.length === this.#names.length && sorted.every((name, i) => name === this.#names[i]);
    // The same array while nothing changed: ServedImages keeps what it derived from it.
    if (same) return;
    const now = new Set(sorted);
    for (const name of this.#names) if (!now.has(name)) this.#unlisted.add(name);
    for (const name of sorted) this.#unlisted.delete(name);
    this.#names = sorted;
  }

  // The size of `digest` if the removed roots of `name` reach it (see the class comment).
  async #removedReach(name: string, digest: string): Promise<number | undefined> {
    const index = this.#repositories.get(name)?.etag;
    if (index === undefined) return undefined;
    let removed = this.#removed.get(name);
    const known = await removed?.catch(() => undefined);
    const stale = known === undefined || known.index !== index || (this.#options.refreshMs > 0 && Date.now() - known.at > this.#options.refreshMs);
    if (stale) {
      // One read at a time per repository: a request that finds another's read under way shares it.
      if (this.#removed.get(name) === removed) this.#removed.set(name, this.#readRemoved(name, index, known));
      removed = this.#removed.get(name);
    }
    const snapshot = (await removed?.catch(() => undefined))?.snapshot;
    return snapshot && (await snapshot.contents()).blobs.get(digest);
  }

  async #readRemoved(name: string, index: string, old: Removed | undefined): Promise<Removed> {
    const path = `${name}/${REMOVED_FILE}`;
    const read = await this.bucket.get(path, old?.etag || undefined);
    if (read === 'unchanged' && old) return { ...old, index, at: Date.now() };
    if (read === undefined || read === 'unchanged') return { index, at: Date.now(), etag: '', snapshot: undefined };
    const roots = removedRoots(parseLayoutIndex(read.bytes, `${this.bucket.url}/${path}`)).map((root) => root.descriptor);
    return { index, at: Date.now(), etag: read.etag, snapshot: new StoreSnapshot(name, name, roots, new Map(), this.#manifests) };
  }

  #listed(name: string): boolean {
    // Sorted: a binary search, for stores of many repositories.
    let low = 0;
    let high = this.#names.length - 1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      const found = this.#names[middle] as string;
      if (found === name) return true;
      if (found < name) low = middle + 1;
      else high = middle - 1;
    }
    return false;
  }
}
