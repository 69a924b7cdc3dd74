import { ReachWalker } from './reach.js';
import { inParallel } from './dir-store.js';
import type { StoreOps } from './store-ops.js';

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
  /** Blobs repositories stopped holding (links released). */
  released: { repository: string; digest: string; size: number }[];
  /** Removed repositories whose last files went. */
  dropped: string[];
  /** Pool blobs deleted: the bytes actually freed. */
  freed: { digest: string; size: number }[];
  bytesFreed: number;
  /** Blobs left because they became unreachable less than the grace ago. */
  inGrace: { blobs: number; bytes: number };
  /** Repositories left alone: a manifest could not be read, so what it reaches is unknown. */
  problems: string[];
}

interface Marked {
  repository: string;
  version: string;
  release: { digest: string; size: number }[];
  drop: boolean;
}

/**
 * Frees every blob no repository references, and nothing else.
 *
 * Mark, without the lock: each repository's index is read with its version, and the blobs the
 * repository holds but no longer reaches are candidates once the index was written more than
 * the grace ago (a blob stops being reached only by a rewrite of the index, so it has been
 * unreachable at least since then; a pull that fetched its manifest before that still finds
 * every blob held, and the server serves held blobs). Then the pool's candidates: blobs whose
 * holders would all be released.
 *
 * Sweep, once, under the writer lock (which every load's commit takes to move blobs into the
 * pool, link them and publish the index): a repository whose index version changed since the
 * mark is skipped (the next gc sees it), so a blob linked by a commit that ran meanwhile is
 * never released; a pool blob is deleted only if, re-read under the lock, no repository holds
 * it. A load not yet committed keeps its blobs in its own temp directory, which gc never reads.
 *
 * Killed at any point: links released, pool blobs deleted, directories removed are each single
 * unlinks of things no index reaches, so the store stays valid; the next gc finds what is left.
 */
export async function collectGarbage(ops: StoreOps, options: GcOptions): Promise<GcReport> {
  const report: GcReport = { repositories: 0, released: [], dropped: [], freed: [], bytesFreed: 0, inGrace: { blobs: 0, bytes: 0 }, problems: [] };
  const cutoff = Date.now() - options.graceMs;
  const repositories = await ops.heldRepositories();
  const listed = new Set(await ops.listedRepositories());
  report.repositories = repositories.length;
  const walker = new ReachWalker(ops);
  const marked: Marked[] = [];
  let done = 0;
  await inParallel(repositories, async (repository) => {
    const read = await ops.readIndex(repository);
    options.onProgress?.(++done, repositories.length);
    if (!read) return;
    const reach = await walker.reach(repository, read.index.manifests);
    if (reach.problems.length > 0) {
      report.problems.push(...reach.problems.map((problem) => `${problem}; its blobs were left alone`));
      return;
    }
    const unreached = (await ops.heldBlobs(repository)).filter((blob) => !reach.blobs.has(blob.digest));
    const removed = read.index.manifests.length === 0 && !listed.has(repository);
    if (read.writtenAt > cutoff) {
      report.inGrace.blobs += unreached.length;
      report.inGrace.bytes += unreached.reduce((sum, blob) => sum + blob.size, 0);
      return;
    }
    if (unreached.length > 0 || removed) marked.push({ repository, version: read.version, release: unreached, drop: removed });
  });
  const releasing = new Map<string, number>();
  for (const { release } of marked) for (const { digest } of release) releasing.set(digest, (releasing.get(digest) ?? 0) + 1);
  const pool = (await ops.poolBlobs()).filter((blob) => blob.holders - (releasing.get(blob.digest) ?? 0) <= 0);

  if (options.dryRun) {
    for (const { repository, release, drop } of marked) {
      report.released.push(...release.map((blob) => ({ repository, ...blob })));
      if (drop) report.dropped.push(repository);
    }
    report.freed = pool.map(({ digest, size }) => ({ digest, size }));
    report.bytesFreed = pool.reduce((sum, blob) => sum + blob.size, 0);
    return report;
  }

  await ops.withWriteLock(async () => {
    const listedNow = new Set(await ops.listedRepositories());
    for (const { repository, version, release, drop } of marked) {
      const now = await ops.readIndex(repository);
      if (now?.version !== version) continue;
      await ops.releaseBlobs(repository, release.map((blob) => blob.digest));
      report.released.push(...release.map((blob) => ({ repository, ...blob })));
      if (drop && !listedNow.has(repository)) {
        await ops.dropRepository(repository);
        report.dropped.push(repository);
      }
    }
    await inParallel(pool, async ({ digest }) => {
      const now = await ops.poolBlob(digest);
      if (!now || now.holders > 0) return;
      await ops.deletePoolBlob(digest);
      report.freed.push({ digest, size: now.size });
      report.bytesFreed += now.size;
    });
  });
  return report;
}
