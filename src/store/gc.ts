import { PARALLEL, mapLimit } from './parallel.js';
import type { HeldBlob, PoolBlob, RemovedRoot, StoreOps, UnfinishedUpload } from './store-ops.js';

export const DEFAULT_GRACE_MS = 10 * 60 * 1000;

export interface GcOptions {
  /** A blob a repository stopped reaching less than this long ago stays held (and served). */
  graceMs: number;
  /** Report what would go; change nothing. */
  dryRun?: boolean;
  /** Told how far the mark has got, in repositories. */
  onProgress?: (done: number, total: number) => void;
}

export interface GcReport {
  repositories: number;
  /** Blobs repositories stopped holding: a link released, or (`linked` false) no longer reached once gc forgot the removed roots that reached it. */
  released: ({ repository: string } & HeldBlob)[];
  /** Removed repositories whose last files went. */
  dropped: string[];
  /** Pool blobs deleted: the bytes actually freed. */
  freed: { digest: string; size: number }[];
  bytesFreed: number;
  /** Blobs left because they became unreachable (or were written, unheld) less than the grace ago. */
  inGrace: { blobs: number; bytes: number };
  /** Uploads a killed load left unfinished, begun longer than the grace ago, discarded. */
  aborted: UnfinishedUpload[];
  /** Repositories left alone: a manifest could not be read, so what it reaches is unknown. */
  problems: string[];
}

interface Marked {
  repository: string;
  version: string;
  release: HeldBlob[];
  /** Removed roots still within the grace: all the record keeps once `forget` is set. */
  recent: RemovedRoot[];
  forget: boolean;
  drop: boolean;
}

/**
 * Frees every blob no repository references, and nothing else.
 *
 * What is referenced: a repository references what its index.json reaches, and what the roots
 * that left it less than the grace ago reach (removed.json: rm, prune, a tag a load moved, load
 * --replace each record what left, with the time). The server serves a blob the repository still
 * links if either reaches it, so a pull that fetched its manifest before the removal gets every
 * blob that manifest names until the grace is over, while the server keeps running.
 *
 * Mark, without the lock: each repository's index and record are read with their version; the
 * blobs the repository links but nothing referenced reaches are to be released (links left by a
 * commit killed before its index was written are among them: never served, never referenced).
 * Then the pool's candidates: blobs whose holders would all be released.
 *
 * Sweep, once, under the writer lock (which every load's commit takes to move blobs into the
 * pool, link them and publish the index, and every rm and prune takes to rewrite an index): a
 * repository whose version changed since the mark is skipped (the next gc sees it), so a blob
 * linked by a commit that ran meanwhile is never released; a pool blob is deleted only if, read
 * again under the lock, no repository links it. A load not yet committed keeps its blobs in its
 * own temp directory (`.tmp/<pid>-…`), which gc never reads: nothing of it can be swept.
 *
 * Where a pool blob can appear before an index names it, outside the lock (a bucket: writtenAt),
 * an unheld one younger than the grace stays. A store's unfinished uploads begun longer than the
 * grace ago (a killed load's multipart uploads) are discarded under the lock.
 *
 * Killed at any point: each step is an unlink of something nothing referenced reaches, or the
 * rewrite of a record by rename, so the store stays valid (verify clean); the next gc marks what
 * is left and finishes.
 */
export async function collectGarbage(ops: StoreOps, options: GcOptions): Promise<GcReport> {
  const report: GcReport = { repositories: 0, released: [], dropped: [], freed: [], bytesFreed: 0, inGrace: { blobs: 0, bytes: 0 }, aborted: [], problems: [] };
  const cutoff = Date.now() - options.graceMs;
  const repositories = await ops.heldRepositories();
  const listed = new Set(await ops.listedRepositories());
  report.repositories = repositories.length;
  const marked: Marked[] = [];
  let done = 0;
  await mapLimit(repositories, PARALLEL, async (repository) => {
    const read = await ops.readIndex(repository);
    options.onProgress?.(++done, repositories.length);
    if (!read) return;
    const recent = read.removed.filter((root) => root.at > cutoff);
    // Walked apart, as the server serves them: what only the recent roots reach is what the grace keeps.
    const indexed = await ops.walker.reach(repository, read.index.manifests);
    const removed = recent.length > 0 ? await ops.walker.reach(repository, recent.map((root) => root.descriptor)) : undefined;
    const problems = [...indexed.problems, ...(removed?.problems ?? [])];
    if (problems.length > 0) {
      report.problems.push(...problems.map((problem) => `${problem}; its blobs were left alone`));
      return;
    }
    const held = await ops.heldBlobs(repository);
    const unreached: HeldBlob[] = [];
    for (const blob of held) {
      if (indexed.blobs.has(blob.digest)) continue;
      if (removed?.blobs.has(blob.digest)) {
        report.inGrace.blobs++;
        report.inGrace.bytes += blob.size;
      } else unreached.push(blob);
    }
    const expired = read.removed.length - recent.length;
    const drop = read.index.manifests.length === 0 && !listed.has(repository) && recent.length === 0;
    if (unreached.length > 0 || expired > 0 || drop) marked.push({ repository, version: read.version, release: unreached, recent, forget: expired > 0, drop });
  });
  const releasing = new Map<string, number>();
  for (const { release } of marked) for (const { digest } of release) releasing.set(digest, (releasing.get(digest) ?? 0) + 1);
  const young = (blob: PoolBlob): boolean => blob.writtenAt !== undefined && blob.writtenAt > cutoff;
  const pool = (await ops.poolBlobs()).filter((blob) => {
    if (blob.holders - (releasing.get(blob.digest) ?? 0) > 0) return false;
    if (!young(blob)) return true;
    report.inGrace.blobs++;
    report.inGrace.bytes += blob.size;
    return false;
  });
  const uploads = (await ops.unfinishedUploads?.(cutoff)) ?? [];

  if (options.dryRun) {
    for (const { repository, release, drop } of marked) {
      report.released.push(...release.map((blob) => ({ repository, ...blob })));
      if (drop) report.dropped.push(repository);
    }
    report.freed = pool.map(({ digest, size }) => ({ digest, size }));
    report.bytesFreed = pool.reduce((sum, blob) => sum + blob.size, 0);
    report.aborted = uploads;
    return report;
  }

  await ops.withWriteLock(async () => {
    const listedNow = new Set(await ops.listedRepositories());
    // Repositories are independent of each other: swept side by side, so the lock is held briefly.
    await mapLimit(marked, PARALLEL, async ({ repository, version, release, recent, forget, drop }) => {
      const now = await ops.readIndex(repository);
      if (now?.version !== version) return;
      await ops.releaseBlobs(repository, release.map((blob) => blob.digest));
      // After the release: a record that outlives its blobs only makes the server look for a link that is gone.
      if (forget) await ops.forgetRemoved(repository, recent);
      report.released.push(...release.map((blob) => ({ repository, ...blob })));
      if (drop && !listedNow.has(repository)) {
        await ops.dropRepository(repository);
        report.dropped.push(repository);
      }
    });
    await mapLimit(pool, PARALLEL, async ({ digest }) => {
      const now = await ops.poolBlob(digest);
      if (!now || now.holders > 0 || young(now)) return;
      await ops.deletePoolBlob(digest);
      report.freed.push({ digest, size: now.size });
      report.bytesFreed += now.size;
    });
    await mapLimit(uploads, PARALLEL, async (upload) => {
      await ops.abortUpload?.(upload);
      report.aborted.push(upload);
    });
  });
  report.dropped.sort();
  return report;
}
