import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestHex } from '../../image/digest.js';
import type { ImageIndex } from '../../image/oci.schema.js';
import { mergeIndex, serializeIndex } from '../index-file.js';
import type { CommitOptions, CommitTarget, ImageToCommit, StagedBlob } from '../ingest.js';
import { OCI_LAYOUT_CONTENT, OCI_LAYOUT_FILE, POOL_DIR, parseLayoutIndex } from '../layout.js';
import { REPOSITORY_LIST } from '../repository-list.js';
import type { Bucket } from './client.js';
import { withBucketLock } from './lock.js';

/** Blob uploads at once (each a stream; a big one in PARTS_IN_FLIGHT parts of its own). */
const UPLOADS_IN_FLIGHT = 4;

/** The key of a blob in a bucket store: once, in the pool (see BucketWriter). */
export function poolKey(digest: string): string {
  return `${POOL_DIR}/blobs/sha256/${digestHex(digest)}`;
}

/**
 * The commit of a load into a bucket store (the Ingest's CommitTarget). The keys are a directory
 * store's paths, with one difference: keys cannot be hard-linked, so a blob is kept once, in the
 * pool (`.blobs/blobs/sha256/<hex>`), and `<repository>/` holds `oci-layout` and `index.json` only.
 * Readers take every blob from the pool; a directory store copied in with `aws s3 sync` has its
 * pool too (and per-repository copies, which are then simply not read).
 *
 * Order, under the writer lock: every blob (streamed from the load's temp files, multipart when
 * large, skipped when the pool has it), then `.repositories` with the new names, then each
 * repository's `index.json`. A load killed anywhere leaves at most unreferenced blobs, or a
 * listed name with no index (NAME_UNKNOWN, as for any repository not loaded yet); never an
 * index.json naming a blob that is not there. The list goes before the indexes for the reason the
 * directory store's does (repository-list.ts): a served repository is always in the catalog.
 */
export class BucketWriter implements CommitTarget {
  readonly bucket: Bucket;
  readonly tempRoot: string;

  constructor(bucket: Bucket, tempRoot = join(tmpdir(), 'cartorio-bucket-loads')) {
    this.bucket = bucket;
    this.tempRoot = tempRoot;
  }

  /** Checks the bucket answers with these keys before a load reads anything. */
  async prepare(): Promise<void> {
    await this.bucket.check();
    await mkdir(this.tempRoot, { recursive: true });
  }

  /** The load's commit: blobs into the pool, then each repository's new index (see the class comment). */
  async commit(blobs: ReadonlyMap<string, StagedBlob>, closures: ReadonlyMap<string, ReadonlySet<string>>, images: ImageToCommit[], options: CommitOptions): Promise<void> {
    // As for a directory: each entry added records when it was loaded, and --replace drops the
    // tags a repository held before (their blobs stay in the pool: no gc runs on buckets yet).
    const loadedAt = options.recordLoadTime === false ? undefined : new Date();
    await this.withWriteLock(async () => {
      await this.addPoolBlobs(blobs);
      const changes: IndexChange[] = [];
      for (const repository of closures.keys()) {
        const current = await this.readIndex(repository);
        changes.push({ repository, version: current?.version, index: mergeIndex(current?.index, images.filter((image) => image.repository === repository), { ...(loadedAt && { loadedAt }), replace: options.replace === true }) });
      }
      await this.publish(changes);
    });
  }

  // The operations below are named as the store's write operations are for a directory store
  // (withWriteLock, listedRepositories, readIndex, publish), so rm/gc/prune can come to buckets.

  /** Runs `work` holding the store's writer lock (the lock object, lock.ts). */
  withWriteLock<T>(work: () => Promise<T>): Promise<T> {
    return withBucketLock(this.bucket, work);
  }

  /** The names in `.repositories`, sorted. */
  async listedRepositories(): Promise<string[]> {
    const current = await this.bucket.get(REPOSITORY_LIST);
    return current === undefined || current === 'unchanged' ? [] : current.bytes.toString('utf8').split('\n').filter((name) => name !== '').sort();
  }

  /** A repository's index and its version (the object's ETag), or undefined when it has none. */
  async readIndex(repository: string): Promise<{ index: ImageIndex; version: string } | undefined> {
    const path = `${repository}/index.json`;
    const current = await this.bucket.get(path);
    return current === undefined || current === 'unchanged' ? undefined : { index: parseLayoutIndex(current.bytes, `${this.bucket.url}/${path}`), version: current.etag };
  }

  /**
   * Uploads blobs into the pool, UPLOADS_IN_FLIGHT at once, each streamed from its file; a blob
   * the pool has at that size is not sent again (keys are digests). Hold the writer lock.
   */
  async addPoolBlobs(blobs: ReadonlyMap<string, StagedBlob>): Promise<void> {
    const pending = [...blobs];
    const upload = async (): Promise<void> => {
      for (let next = pending.shift(); next !== undefined; next = pending.shift()) {
        const [digest, blob] = next;
        const key = poolKey(digest);
        if ((await this.bucket.head(key))?.size === blob.size) continue;
        await this.bucket.upload(key, blob.path);
      }
    };
    await Promise.all(Array.from({ length: UPLOADS_IN_FLIGHT }, upload));
  }

  /**
   * Publishes new indexes (their blobs already in the pool): the names are listed first, then each
   * index.json is replaced whole (a PUT is atomic: readers see the old object or the new one), only
   * if it is still the version the change was made from: a writer paused past its lock's expiry
   * (another took the lock over and published) fails here instead of undoing the other's load.
   * Hold the writer lock.
   */
  async publish(changes: readonly IndexChange[]): Promise<void> {
    const listed = await this.listedRepositories();
    const all = [...new Set([...listed, ...changes.map((change) => change.repository)])].sort();
    if (all.length !== listed.length) await this.bucket.put(REPOSITORY_LIST, all.map((name) => `${name}\n`).join(''));
    for (const { repository, index, version } of changes) {
      if ((await this.bucket.head(`${repository}/${OCI_LAYOUT_FILE}`)) === undefined) await this.bucket.put(`${repository}/${OCI_LAYOUT_FILE}`, OCI_LAYOUT_CONTENT);
      // ?single-writer=true: a store that ignores conditions; none are sent, as for the lock.
      const unchanged = this.bucket.location.singleWriter === true ? {} : version === undefined ? { ifNoneMatch: '*' as const } : { ifMatch: version };
      if ((await this.bucket.put(`${repository}/index.json`, serializeIndex(index), unchanged)) === 'conflict') {
        throw new Error(`${this.bucket.url}/${repository}/index.json: another writer changed it during this load, which had lost the writer lock (paused for over 30 s?); load again`);
      }
    }
  }
}

/** A repository's new index. */
export interface IndexChange {
  repository: string;
  index: ImageIndex;
  /** The version (ETag) of the index.json `index` was made from (readIndex), undefined when there was none. */
  version: string | undefined;
}
