import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CommitOptions, type CommitTarget, type ImageToCommit, type StagedBlob, loadChange, loadTime } from '../ingest.js';
import { mapLimit } from '../parallel.js';
import type { RepositoryChange } from '../store-ops.js';
import { BucketStore } from './bucket-store.js';
import type { Bucket } from './client.js';
import { poolKey } from './location.js';

/** Blob uploads at once (each a stream; a big one in PARTS_IN_FLIGHT parts of its own). */
const UPLOADS_IN_FLIGHT = 4;

/**
 * The commit of a load into a bucket store (the Ingest's CommitTarget). The keys are a directory
 * store's paths, with one difference: keys cannot be hard-linked, so a blob is kept once, in the
 * pool (`.blobs/blobs/sha256/<hex>`), and `<repository>/` holds `oci-layout`, `index.json` and
 * `removed.json` (BucketStore publishes them). Readers take every blob from the pool; a directory
 * store copied in with `aws s3 sync` has its pool too (and per-repository copies, not read).
 *
 * Order, under the writer lock: every blob (streamed from the load's temp files, multipart when
 * large, skipped when the pool has it), then `.repositories` with the new names, then each
 * repository's `removed.json` (roots its new index drops) and `index.json`. A load killed
 * anywhere leaves at most unreferenced blobs (and unfinished multipart uploads: gc clears both),
 * or a listed name with no index (NAME_UNKNOWN, as for any repository not loaded yet); never an
 * index.json naming a blob that is not there. The list goes before the indexes for the reason the
 * directory store's does (repository-list.ts): a served repository is always in the catalog.
 */
export class BucketWriter implements CommitTarget {
  readonly bucket: Bucket;
  readonly store: BucketStore;
  readonly tempRoot: string;

  constructor(bucket: Bucket, tempRoot = join(tmpdir(), 'cartorio-bucket-loads')) {
    this.bucket = bucket;
    this.store = new BucketStore(bucket);
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
    // tags a repository held before; roots that leave an index (a moved tag, --replace) are
    // recorded as removed, so gc keeps what they reach through the grace.
    const loadedAt = loadTime(options);
    await this.store.withWriteLock(async () => {
      await this.addPoolBlobs(blobs);
      const changes: RepositoryChange[] = [];
      for (const repository of closures.keys()) {
        // No blobs to hold: a bucket's repositories hold what their indexes reach (BucketStore).
        changes.push(await loadChange(this.store, repository, images.filter((image) => image.repository === repository), [], options, loadedAt));
      }
      await this.store.publish(changes);
    });
  }

  /**
   * Uploads blobs into the pool, UPLOADS_IN_FLIGHT at once, each streamed from its file; a blob
   * the pool has at that size is not sent again (keys are digests). Hold the writer lock.
   */
  async addPoolBlobs(blobs: ReadonlyMap<string, StagedBlob>): Promise<void> {
    await mapLimit(blobs, UPLOADS_IN_FLIGHT, async ([digest, blob]) => {
      const key = poolKey(digest);
      if ((await this.bucket.head(key))?.size !== blob.size) await this.bucket.upload(key, blob.path);
    });
  }
}
