import type { Descriptor, ImageIndex } from '../image/oci.schema.js';
import type { ReachWalker } from './reach.js';

/**
 * Every way a store changes, as one interface: loads publish through it, `rm`, `prune` and `gc`
 * act only through it, so a store kept elsewhere than a directory (a bucket) implements these
 * and gets every command. The directory store (dir-store.ts) is the reference implementation.
 *
 * The model every implementation keeps:
 * - A repository *lists* its images in an index (index.json, replaced whole, old or new) and
 *   *holds* the blobs it was given (a directory store: hard links into the repository). Roots
 *   that leave the index (rm, prune, a tag moved by a load) are recorded with the time; the
 *   blobs they reach stay held and served until `gc` forgets them once the grace is over: a
 *   client that fetched a manifest before `rm` still gets every blob it names.
 * - A *pool* keeps one copy of every blob; a pool blob no repository holds is garbage.
 * - `.repositories` lists exactly the repositories with images. A removed repository keeps an
 *   empty index (and its held blobs) until `gc` drops it, so it is unlisted but still holds.
 * - Writers (publish, index rewrites, gc's sweep) take the writer lock; readers never do.
 */
export interface StoreOps {
  /** Names the store in messages. */
  readonly description: string;
  /**
   * What the roots of its repositories reach (reach.ts). One per store, shared by every step of a
   * command (gc's mark, heldBlobs, poolBlobs), so each manifest is read once, not once a step.
   */
  readonly walker: ReachWalker;

  /** Runs `work` holding the store's writer lock (one writer at a time; a dead writer's lock goes stale). */
  withWriteLock<T>(work: () => Promise<T>): Promise<T>;

  /** The listed repository names, sorted (what the catalog serves). */
  listedRepositories(): Promise<string[]>;
  /** Every repository that has an index, listed or removed and awaiting gc, sorted. */
  heldRepositories(): Promise<string[]>;

  /** A repository's index and the roots that left it, with a version token (changes with every rewrite of either). */
  readIndex(repository: string): Promise<IndexVersion | undefined>;
  /** A blob the repository holds, whole, or undefined when it holds none by that digest or it is larger than `maxBytes`. */
  readBlob(repository: string, digest: string, maxBytes: number): Promise<Buffer | undefined>;

  /**
   * Publishes under the writer lock (the caller holds it): each repository first holds `blobs`
   * (pool blobs, already there), is listed, then gets `index`. Durable when it returns; a crash
   * leaves each repository with its old index or its new one, never half.
   */
  publish(changes: readonly RepositoryChange[]): Promise<void>;
  /** Rewrites indexes (rm, prune) under the writer lock; `unlist` names leave `.repositories` after their index is emptied. */
  rewriteIndexes(changes: readonly IndexChange[], unlist: readonly string[]): Promise<void>;
  /** Keeps only `kept` of a repository's removed roots (gc, under the writer lock, once the others' grace is over). */
  forgetRemoved(repository: string, kept: readonly RemovedRoot[]): Promise<void>;

  /** Blobs a repository holds (reachable or not), with their sizes and how it holds them. */
  heldBlobs(repository: string): Promise<HeldBlob[]>;
  /** Releases blobs a repository holds (gc, under the writer lock). */
  releaseBlobs(repository: string, digests: readonly string[]): Promise<void>;
  /** Removes what is left of an unlisted repository with an empty index and no held blobs (its index last). */
  dropRepository(repository: string): Promise<void>;

  /** Every pool blob with how many repositories hold it. */
  poolBlobs(): Promise<PoolBlob[]>;
  /** One pool blob's current state, or undefined once it is gone. */
  poolBlob(digest: string): Promise<PoolBlob | undefined>;
  /** Deletes a pool blob (gc, under the writer lock, after `poolBlob` says no repository holds it). */
  deletePoolBlob(digest: string): Promise<void>;

  /** Uploads begun before `before` (ms) and never finished: a killed load's (a bucket's multipart uploads). A store that has none omits this. */
  unfinishedUploads?(before: number): Promise<UnfinishedUpload[]>;
  /** Discards one, with what it stored so far (gc, under the writer lock). */
  abortUpload?(upload: UnfinishedUpload): Promise<void>;
}

export interface UnfinishedUpload {
  /** Store-relative path the upload was writing. */
  path: string;
  id: string;
  /** When it began, in ms since the epoch. */
  started: number;
}

export interface IndexVersion {
  index: ImageIndex;
  /** Roots that left the index, still served (while held) until gc forgets them. */
  removed: RemovedRoot[];
  /** Differs between any two writes of the index or its removed roots (a directory store: inode, mtime, size of each). */
  version: string;
}

export interface IndexChange {
  repository: string;
  index: ImageIndex;
  /** Roots of the old index the new one no longer names: recorded as removed now. */
  left: readonly Descriptor[];
  /**
   * The version (readIndex) the new index was made from, undefined when the repository had none.
   * A store whose lock can be lost while its holder is paused (a bucket's, taken over when stale)
   * writes only over that version, so a late writer fails instead of undoing another's change.
   */
  version: string | undefined;
}

export interface RepositoryChange extends IndexChange {
  /** Digests of pool blobs the repository must hold before its index names them. */
  blobs: readonly string[];
}

export interface RemovedRoot {
  descriptor: Descriptor;
  /** When it left the index, in ms since the epoch. */
  at: number;
}

export interface HeldBlob {
  digest: string;
  size: number;
  /**
   * Held by a link of the repository's own (a directory store's hard link), which releasing
   * removes; false where a repository holds what it reaches (a bucket's, a pool-backed one), and
   * lets go of a blob when gc forgets the removed roots that reached it.
   */
  linked: boolean;
}

export interface PoolBlob {
  digest: string;
  size: number;
  /** Repositories holding the blob; 0 means garbage. */
  holders: number;
  /**
   * When it was written (ms), for a store where a pool blob can appear before any index names it
   * and outside gc's sight (a bucket: see BucketStore): gc keeps an unheld one younger than the grace.
   */
  writtenAt?: number;
}
