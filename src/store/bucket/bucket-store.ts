import { isSha256Digest } from '../../image/digest.js';
import { isRepositoryName } from '../../image/reference.js';
import { PARALLEL, mapLimit } from '../parallel.js';
import { serializeIndex } from '../index-file.js';
import { OCI_LAYOUT_CONTENT, OCI_LAYOUT_FILE, POOL_DIR, REMOVED_FILE, parseLayoutIndex } from '../layout.js';
import { ReachWalker } from '../reach.js';
import { removedRoots, serializeRemoved, withLeft } from '../removed-file.js';
import { REPOSITORY_LIST } from '../repository-list.js';
import type { HeldBlob, IndexChange, IndexVersion, PoolBlob, RemovedRoot, RepositoryChange, StoreOps, UnfinishedUpload } from '../store-ops.js';
import type { Bucket } from './client.js';
import { poolKey } from './location.js';
import { withBucketLock } from './lock.js';

/** A repository's version is its index.json's ETag and its removed.json's, so joined (ETags hold no '/'). */
const VERSION_SEPARATOR = '/';
/** The ETag part of a version for an object that does not exist. */
const NO_OBJECT = '-';

interface Holders {
  counts: Map<string, number>;
  /** False when some repository's manifests could not be read: what it holds is unknown. */
  complete: boolean;
}

/**
 * The store in a bucket (DESIGN §3a, §4a), as StoreOps: every lifecycle command (rm, prune, gc)
 * runs on it unchanged. Keys are a directory store's paths, with one difference: keys cannot be
 * hard-linked, so each blob is kept once, in the pool (`.blobs/blobs/sha256/<hex>`), and
 * `<repository>/` holds `oci-layout`, `index.json` and `removed.json` (the directory store's
 * record of roots that left the index, same format: removed-file.ts).
 *
 * "A repository holds a blob" is therefore derived, not stored: a repository holds exactly the
 * blobs reachable from its index plus its removed roots. That keeps the model of StoreOps:
 * - what a repository's removed roots reach stays held (and served, BucketSource) until gc
 *   forgets those roots once the grace is over; forgetting them *is* the release, so
 *   releaseBlobs has nothing left to do;
 * - a pool blob's holders are the repositories that reach it so (poolBlobs walks every held
 *   repository once; poolBlob under the writer lock answers from one such walk made under the
 *   lock, redone after each of this store's own writes, since no one else writes meanwhile);
 * - a repository whose manifests cannot be read may hold anything: while one exists, every pool
 *   blob counts as held, so gc frees nothing rather than something still needed.
 *
 * Replicas (BucketSource) serve from what they read, up to one `--refresh` (10 s) old, and hand
 * out presigned URLs that live 5 minutes. gc deletes a blob only when no index and no removed root
 * reaches it, and a root only once `at` + grace is past: so every URL a replica handed out while
 * an index still named the blob was handed out before `at` + refresh, and still works if the
 * grace is over refresh + URL lifetime (5 min 10 s; the default 10 min is). A pull begun before
 * `rm` keeps getting redirects from removed.json until the grace ends, as from a directory.
 *
 * One thing a link count gives for free must be said here: a pool blob can exist before any
 * index names it (a load uploads its blobs, then publishes; `aws s3 sync` of a directory store
 * copies `.blobs/` before the indexes, without cartorio's lock). So pool blobs carry their
 * LastModified (`writtenAt`) and gc frees an unheld one only once it is older than the grace: a
 * killed load's orphans go at the next gc after the grace, a copy or a load that lost its lock
 * (paused over the lock's 30 s) is not robbed halfway. LastModified is the object store's clock,
 * the grace's cutoff this machine's: a skew between them shortens or lengthens that grace by as much.
 */
export class BucketStore implements StoreOps {
  readonly bucket: Bucket;
  readonly walker: ReachWalker = new ReachWalker(this);
  /** Set while this process holds the writer lock: then nobody else changes what is held. */
  #locked = false;
  #holders: Promise<Holders> | undefined;

  constructor(bucket: Bucket) {
    this.bucket = bucket;
  }

  get description(): string {
    return this.bucket.url;
  }

  withWriteLock<T>(work: () => Promise<T>): Promise<T> {
    return withBucketLock(this.bucket, async () => {
      this.#locked = true;
      this.#holders = undefined;
      try {
        return await work();
      } finally {
        this.#locked = false;
        this.#holders = undefined;
      }
    });
  }

  /** The names in `.repositories`, sorted; a store copied in without one is walked, as BucketSource does. */
  async listedRepositories(): Promise<string[]> {
    return (await this.#readList()).names;
  }

  /** The listed names and the list's ETag (NO_OBJECT for a store copied in without one: walked). */
  async #readList(): Promise<{ names: string[]; etag: string }> {
    const current = await this.bucket.get(REPOSITORY_LIST);
    return current === undefined || current === 'unchanged' ? { names: await walkIndexes(this.bucket), etag: NO_OBJECT } : { names: namesOf(current.bytes), etag: current.etag };
  }

  heldRepositories(): Promise<string[]> {
    return walkIndexes(this.bucket);
  }

  /** The index and removed roots; the version is both objects' ETags (a PUT replaces an object whole). */
  async readIndex(repository: string): Promise<IndexVersion | undefined> {
    const index = await this.bucket.get(`${repository}/index.json`);
    if (index === undefined || index === 'unchanged') return undefined;
    const removed = await this.#record(repository);
    return { index: parseLayoutIndex(index.bytes, `${this.bucket.url}/${repository}/index.json`), removed: removed.roots, version: `${index.etag}${VERSION_SEPARATOR}${removed.etag}` };
  }

  async #record(repository: string): Promise<{ roots: RemovedRoot[]; etag: string }> {
    const path = `${repository}/${REMOVED_FILE}`;
    const read = await this.bucket.get(path);
    if (read === undefined || read === 'unchanged') return { roots: [], etag: NO_OBJECT };
    return { roots: removedRoots(parseLayoutIndex(read.bytes, `${this.bucket.url}/${path}`)), etag: read.etag };
  }

  /** Any blob the pool has: the walk that asks reaches it from the repository's own roots. */
  async readBlob(_repository: string, digest: string, maxBytes: number): Promise<Buffer | undefined> {
    if (!isSha256Digest(digest)) return undefined;
    const read = await this.bucket.get(poolKey(digest));
    return read === undefined || read === 'unchanged' || read.bytes.length > maxBytes ? undefined : read.bytes;
  }

  /** Names listed first, then per repository what left (removed.json), then index.json (see BucketWriter). */
  async publish(changes: readonly RepositoryChange[]): Promise<void> {
    const listed = await this.#readList();
    const all = [...new Set([...listed.names, ...changes.map((change) => change.repository)])].sort();
    if (all.length !== listed.names.length) await this.#writeList(all, listed.etag);
    await mapLimit(changes, PARALLEL, async (change) => {
      if ((await this.bucket.head(`${change.repository}/${OCI_LAYOUT_FILE}`)) === undefined) await this.bucket.put(`${change.repository}/${OCI_LAYOUT_FILE}`, OCI_LAYOUT_CONTENT);
      await this.#rewrite(change);
    });
    this.#holders = undefined;
  }

  async rewriteIndexes(changes: readonly IndexChange[], unlist: readonly string[]): Promise<void> {
    await mapLimit(changes, PARALLEL, (change) => this.#rewrite(change));
    // After the index is emptied, as for a directory store: never an unlisted repository with tags.
    if (unlist.length > 0) {
      const gone = new Set(unlist);
      const listed = await this.#readList();
      await this.#writeList(listed.names.filter((name) => !gone.has(name)), listed.etag);
    }
    this.#holders = undefined;
  }

  // First what left, then the index without it: a crash between serves both, never loses the record.
  // Each object is written only over the version the change was made from (IndexChange.version):
  // a writer paused past its lock's expiry, while another took the lock over and wrote, fails here
  // instead of undoing the other's change. A ?single-writer=true store ignores conditions: none sent.
  async #rewrite({ repository, index, left, version }: IndexChange): Promise<void> {
    const [indexEtag, removedEtag] = version === undefined ? [undefined, undefined] : version.split(VERSION_SEPARATOR);
    if (left.length > 0) {
      const record = await this.#record(repository);
      await this.#putUnchanged(`${repository}/${REMOVED_FILE}`, serializeRemoved(withLeft(record.roots, left)), removedEtag);
    }
    await this.#putUnchanged(`${repository}/index.json`, serializeIndex(index), indexEtag);
  }

  /** Writes `path` if it is still at `etag` (NO_OBJECT or undefined: if it does not exist). */
  async #putUnchanged(path: string, body: string, etag: string | undefined): Promise<void> {
    const condition = this.bucket.location.singleWriter === true ? {} : etag === undefined || etag === NO_OBJECT ? { ifNoneMatch: '*' as const } : { ifMatch: etag };
    if ((await this.bucket.put(path, body, condition)) === 'conflict') {
      throw new Error(`${this.bucket.url}/${path}: another writer changed it after this command lost the writer lock (paused for over 30 s?), so it was left as that writer made it; run the command again`);
    }
  }

  // Over the list as read, like the indexes (#rewrite): a late writer never drops another's names.
  async #writeList(names: readonly string[], etag: string): Promise<void> {
    await this.#putUnchanged(REPOSITORY_LIST, names.map((name) => `${name}\n`).join(''), etag);
  }

  async forgetRemoved(repository: string, kept: readonly RemovedRoot[]): Promise<void> {
    const path = `${repository}/${REMOVED_FILE}`;
    if (kept.length === 0) await this.bucket.delete(path);
    else await this.bucket.put(path, serializeRemoved(kept));
    this.#holders = undefined;
  }

  /** What the index and every removed root reach (see the class comment). */
  async heldBlobs(repository: string): Promise<HeldBlob[]> {
    const read = await this.readIndex(repository);
    if (!read) return [];
    const reach = await this.walker.held(repository, read);
    return [...reach.blobs].map(([digest, size]) => ({ digest, size, linked: false }));
  }

  /** Nothing to do: a blob is released when gc forgets the removed roots that reached it (forgetRemoved). */
  async releaseBlobs(): Promise<void> {}

  /** Its keys, index.json last (a directory store copied in with `aws s3 sync` also has `blobs/`). */
  async dropRepository(repository: string): Promise<void> {
    const copies: string[] = [];
    for await (const { path } of this.bucket.list(`${repository}/blobs/`)) copies.push(path);
    await mapLimit(copies, PARALLEL, (path) => this.bucket.delete(path));
    for (const name of [OCI_LAYOUT_FILE, REMOVED_FILE, 'index.json']) await this.bucket.delete(`${repository}/${name}`);
    this.#holders = undefined;
  }

  async poolBlobs(): Promise<PoolBlob[]> {
    const holders = await this.#countHolders();
    const found: PoolBlob[] = [];
    for await (const { path, size, modified } of this.bucket.list(`${POOL_DIR}/blobs/sha256/`)) {
      const digest = `sha256:${path.slice(path.lastIndexOf('/') + 1)}`;
      if (isSha256Digest(digest)) found.push({ digest, size, holders: holdersOf(holders, digest), writtenAt: modified });
    }
    return found.sort((a, b) => (a.digest < b.digest ? -1 : 1));
  }

  async poolBlob(digest: string): Promise<PoolBlob | undefined> {
    if (!isSha256Digest(digest)) return undefined;
    const found = await this.bucket.head(poolKey(digest));
    if (!found) return undefined;
    // Under the lock, one walk serves every blob gc re-checks; outside it, each answer is fresh.
    const holders = this.#locked ? await (this.#holders ??= this.#countHolders()) : await this.#countHolders();
    return { digest, size: found.size, holders: holdersOf(holders, digest), writtenAt: found.modified };
  }

  async deletePoolBlob(digest: string): Promise<void> {
    await this.bucket.delete(poolKey(digest));
  }

  async unfinishedUploads(before: number): Promise<UnfinishedUpload[]> {
    const found: UnfinishedUpload[] = [];
    for await (const upload of this.bucket.uploads()) if (upload.started < before) found.push(upload);
    return found;
  }

  async abortUpload(upload: UnfinishedUpload): Promise<void> {
    await this.bucket.abortUpload(upload.path, upload.id);
  }

  async #countHolders(): Promise<Holders> {
    const result: Holders = { counts: new Map(), complete: true };
    await mapLimit(await this.heldRepositories(), PARALLEL, async (repository) => {
      const read = await this.readIndex(repository);
      if (!read) return;
      const reach = await this.walker.held(repository, read);
      if (reach.problems.length > 0) result.complete = false;
      for (const digest of reach.blobs.keys()) result.counts.set(digest, (result.counts.get(digest) ?? 0) + 1);
    });
    return result;
  }
}

function holdersOf(holders: Holders, digest: string): number {
  const count = holders.counts.get(digest) ?? 0;
  return holders.complete ? count : Math.max(count, 1);
}

function namesOf(bytes: Buffer): string[] {
  return bytes.toString('utf8').split('\n').filter((name) => name !== '' && isRepositoryName(name)).sort();
}

/** Every repository with an index.json, listed or not (a store copied in without `.repositories`, one removed and awaiting gc), sorted. */
export async function walkIndexes(bucket: Bucket): Promise<string[]> {
  const names: string[] = [];
  for await (const { path } of bucket.list('')) {
    if (!path.endsWith('/index.json') || path.startsWith('.') || path.includes('/blobs/')) continue;
    const name = path.slice(0, -'/index.json'.length);
    if (isRepositoryName(name)) names.push(name);
  }
  return names.sort();
}
