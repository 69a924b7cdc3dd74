import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { LOCK_DIR } from './layout.js';

/**
 * Runs `work` holding the store's writer lock. The lock is refreshed while held, so a writer
 * that was killed leaves a lock that goes stale after `STALE_MS` and is then taken over.
 */
const STALE_MS = 10_000;

export async function withStoreLock<T>(root: string, work: () => Promise<T>): Promise<T> {
  await mkdir(root, { recursive: true });
  let release: () => Promise<void>;
  try {
    // Loaded with the first lock: proper-lockfile and graceful-fs cost every start otherwise.
    const { default: lockfile } = await import('proper-lockfile');
    release = await lockfile.lock(root, {
      lockfilePath: join(root, LOCK_DIR),
      stale: STALE_MS,
      retries: { retries: 600, minTimeout: 50, maxTimeout: 500 },
      realpath: false,
    });
  } catch (error) {
    throw new Error(`${root}: could not take the store lock ${join(root, LOCK_DIR)}: ${(error as Error).message}; is another load stuck?`, { cause: error });
  }
  try {
    return await work();
  } finally {
    await release();
  }
}
