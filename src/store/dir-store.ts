import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { copyFile, link, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { digestHex, isSha256Digest } from '../image/digest.js';
import { serializeIndex } from './index-file.js';
import { readRemoved, removedAfter, serializeRemoved } from './removed-file.js';
import { OCI_LAYOUT_CONTENT, OCI_LAYOUT_FILE, POOL_DIR, REMOVED_FILE, TMP_DIR, blobLayoutOf, blobPath, fileVersion, fsyncDir, isNotFound, isPoolBacked, readLayoutIndex, repositoryDir, writeFileAtomic } from './layout.js';
import { PARALLEL, mapLimit } from './parallel.js';
import { PoolBackedRepositories } from './pool-backed.js';
import { ReachWalker } from './reach.js';
import { withStoreLock } from './lock.js';
import { REPOSITORY_LIST, readRepositoryList, walkRepositories } from './repository-list.js';
import type { HeldBlob, IndexChange, IndexVersion, PoolBlob, RemovedRoot, RepositoryChange, StoreOps } from './store-ops.js';

/** What a repository directory holds of its own; anything else is a nested repository. */
const OWN_FILES = new Set(['blobs', OCI_LAYOUT_FILE, 'index.json', REMOVED_FILE]);
/** Above this many files to make durable, one sync of the file system beats an fsync each. */
const SYNCFS_FROM = 64;

/**
 * The store as a directory (DESIGN §3): `<root>/<name>/` OCI layouts whose blobs are hard links
 * into the pool `<root>/.blobs/`. A pool blob's link count says how many repositories hold it,
 * plus the pool-backed repositories that reach it (a bucket store copied back: pool-backed.ts).
 */
export class DirectoryStore implements StoreOps {
  readonly root: string;
  readonly walker: ReachWalker;
  readonly #tmp: string;
  readonly #poolBacked: PoolBackedRepositories;

  constructor(root: string) {
    this.root = root;
    this.#tmp = join(root, TMP_DIR);
    this.walker = new ReachWalker(this);
    this.#poolBacked = new PoolBackedRepositories(this);
  }

  get description(): string {
    return this.root;
  }

  withWriteLock<T>(work: () => Promise<T>): Promise<T> {
    return withStoreLock(this.root, work);
  }

  async listedRepositories(): Promise<string[]> {
    return (await readRepositoryList(this.root)) ?? (await walkRepositories(this.root));
  }

  heldRepositories(): Promise<string[]> {
    return walkRepositories(this.root);
  }

  async readIndex(repository: string): Promise<IndexVersion | undefined> {
    const dir = repositoryDir(this.root, repository);
    const before = await this.#versionOf(dir);
    if (before === undefined) return undefined;
    const index = await readLayoutIndex(dir);
    const removed = await readRemoved(dir);
    // Replaced while read: the version must name the bytes read, so read again.
    if (!index || (await this.#versionOf(dir)) !== before) return this.readIndex(repository);
    return { index, removed, version: before };
  }

  /** The version readIndex would give now (index.json and removed.json), without reading them; undefined without an index. */
  version(repository: string): Promise<string | undefined> {
    return this.#versionOf(repositoryDir(this.root, repository));
  }

  async #versionOf(dir: string): Promise<string | undefined> {
    const index = await stat(join(dir, 'index.json')).catch((error: unknown) => (isNotFound(error) ? undefined : Promise.reject(error)));
    if (!index) return undefined;
    const removed = await stat(join(dir, REMOVED_FILE)).catch(() => undefined);
    return `${fileVersion(index)}/${removed ? fileVersion(removed) : '-'}`;
  }

  async readBlob(repository: string, digest: string, maxBytes: number): Promise<Buffer | undefined> {
    if (!isSha256Digest(digest)) return undefined;
    const path = blobPath(await blobLayoutOf(this.root, repositoryDir(this.root, repository)), digest);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile() || info.size > maxBytes) return undefined;
    return readFile(path);
  }

  /**
   * The batch is made durable in passes, not per repository (a docker save of 10 000 names paid
   * ~5 ms of syncs each): link every blob and write every new file to a temp name; make all of it
   * durable at once; list the names; rename the files into place; make the renames durable. An
   * index is renamed only after the blobs it names and its own bytes are on disk, so a crash
   * leaves each repository with its old index.json or its new one.
   */
  async publish(changes: readonly RepositoryChange[]): Promise<void> {
    const pool = join(this.root, POOL_DIR);
    await mkdir(this.#tmp, { recursive: true });
    // Before any directory is made: a store without `.repositories` is walked while it is small.
    const listed = await this.#currentList();
    const renames: { from: string; to: string }[] = [];
    const dirs = new Set<string>();
    let counter = 0;
    // Removed roots are recorded before the index that drops them is in place.
    const early: { from: string; to: string }[] = [];
    await mapLimit(changes, PARALLEL, async ({ repository, blobs, index, left }) => {
      const dir = repositoryDir(this.root, repository);
      if (await isPoolBacked(dir)) {
        // It holds what its index reaches: the blobs need only be in the pool (as a link needs them).
        for (const digest of blobs) if (!(await stat(blobPath(pool, digest)).then((info) => info.isFile(), () => false))) throw new Error(`${this.root}: pool blob ${digest} for ${repository} is missing`);
        dirs.add(dir);
      } else {
        const blobDir = join(dir, 'blobs', 'sha256');
        await mkdir(blobDir, { recursive: true });
        for (const digest of blobs) await linkBlob(blobPath(pool, digest), join(blobDir, digestHex(digest)));
        dirs.add(blobDir).add(dir);
      }
      const files: [string, string][] = [[join(dir, 'index.json'), serializeIndex(index)]];
      if (left.length > 0) early.push(await this.#stage(join(dir, REMOVED_FILE), await removedAfter(dir, left), changes.length < SYNCFS_FROM, counter++));
      if (!(await stat(join(dir, OCI_LAYOUT_FILE)).then(() => true, () => false))) files.push([join(dir, OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT]);
      for (const [to, content] of files) {
        const from = join(this.#tmp, `write-${process.pid}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`);
        await writeNew(from, content, changes.length < SYNCFS_FROM);
        renames.push({ from, to });
      }
    });
    if (changes.length >= SYNCFS_FROM) await syncFileSystem(this.root);
    else await mapLimit([...dirs].filter((dir) => dir.endsWith('sha256')), PARALLEL, fsyncDir);
    // Listed before published: a repository is never served without being listed (see repository-list.ts).
    await this.#setList(changes.map((change) => change.repository), [], listed);
    await mapLimit(early, PARALLEL, ({ from, to }) => rename(from, to));
    await mapLimit(renames, PARALLEL, ({ from, to }) => rename(from, to));
    if (changes.length >= SYNCFS_FROM) await syncFileSystem(this.root);
    else await mapLimit([...dirs].filter((dir) => !dir.endsWith('sha256')), PARALLEL, fsyncDir);
  }

  async #stage(to: string, content: string, sync: boolean, n: number): Promise<{ from: string; to: string }> {
    const from = join(this.#tmp, `write-${process.pid}-r${n.toString(36)}-${Math.random().toString(36).slice(2, 8)}`);
    await writeNew(from, content, sync);
    return { from, to };
  }

  async rewriteIndexes(changes: readonly IndexChange[], unlist: readonly string[]): Promise<void> {
    await mapLimit(changes, PARALLEL, async ({ repository, index, left }) => {
      const dir = repositoryDir(this.root, repository);
      // First what left, then the index without it: a crash between serves both, never loses the record.
      if (left.length > 0) await writeFileAtomic(join(dir, REMOVED_FILE), await removedAfter(dir, left), this.#tmp);
      await writeFileAtomic(join(dir, 'index.json'), serializeIndex(index), this.#tmp);
    });
    // After the index is emptied: a crash between leaves a listed repository with no tags, never an unlisted one with tags.
    if (unlist.length > 0) await this.#setList([], unlist);
  }

  async forgetRemoved(repository: string, kept: readonly RemovedRoot[]): Promise<void> {
    const dir = repositoryDir(this.root, repository);
    if (kept.length === 0) await unlink(join(dir, REMOVED_FILE)).catch(ignoreMissing);
    else await writeFileAtomic(join(dir, REMOVED_FILE), serializeRemoved(kept), this.#tmp);
  }

  async heldBlobs(repository: string): Promise<HeldBlob[]> {
    if (await isPoolBacked(repositoryDir(this.root, repository))) {
      // What its index and its removed roots reach, by the sizes their descriptors give.
      return [...(await this.#poolBacked.held(repository))].map(([digest, size]) => ({ digest, size, linked: false }));
    }
    const blobDir = join(repositoryDir(this.root, repository), 'blobs', 'sha256');
    const names = await readdir(blobDir).catch((error: unknown) => (isNotFound(error) ? [] : Promise.reject(error)));
    const held: HeldBlob[] = [];
    await mapLimit(names, PARALLEL, async (name) => {
      const digest = `sha256:${name}`;
      if (!isSha256Digest(digest)) return;
      const info = await stat(join(blobDir, name)).catch(() => undefined);
      if (info?.isFile()) held.push({ digest, size: info.size, linked: true });
    });
    return held;
  }

  async releaseBlobs(repository: string, digests: readonly string[]): Promise<void> {
    const dir = repositoryDir(this.root, repository);
    // A pool-backed repository lets go of a blob when gc forgets the removed roots that reached it.
    if (await isPoolBacked(dir)) return;
    await mapLimit(digests, PARALLEL, (digest) => unlink(blobPath(dir, digest)).catch((error: unknown) => (isNotFound(error) ? undefined : Promise.reject(error))));
  }

  /**
   * A repository directory holding nothing but its own files is renamed whole into `.tmp/` (one
   * step: gc killed before it leaves the repository for the next gc, after it nothing the store
   * knows), then deleted; the next load clears a `.tmp/<pid>-…` entry its dead owner left. One
   * that also holds a nested repository loses its own files one by one, index.json last.
   */
  async dropRepository(repository: string): Promise<void> {
    const dir = repositoryDir(this.root, repository);
    const entries = await readdir(dir).catch((error: unknown) => (isNotFound(error) ? undefined : Promise.reject(error)));
    if (entries === undefined) return;
    if (entries.every((name) => OWN_FILES.has(name))) {
      await mkdir(this.#tmp, { recursive: true });
      const grave = join(this.#tmp, `${process.pid}-drop-${Math.random().toString(36).slice(2, 10)}`);
      await rename(dir, grave);
      await rm(grave, { recursive: true, force: true });
    } else {
      // Anything left in blobs/ (a copy's partial file) keeps the repository for a later look.
      if (!(await removeDir(join(dir, 'blobs', 'sha256'))) || !(await removeDir(join(dir, 'blobs')))) return;
      await unlink(join(dir, OCI_LAYOUT_FILE)).catch(ignoreMissing);
      await unlink(join(dir, REMOVED_FILE)).catch(ignoreMissing);
      await unlink(join(dir, 'index.json')).catch(ignoreMissing);
    }
    // Parents that held nothing but this repository go too (never the store itself).
    for (let at = dirname(dir); at !== this.root && at.startsWith(this.root); at = dirname(at)) {
      if (!(await rmdir(at).then(() => true, () => false))) break;
    }
  }

  async poolBlobs(): Promise<PoolBlob[]> {
    const dir = join(this.root, POOL_DIR, 'blobs', 'sha256');
    const names = await readdir(dir).catch((error: unknown) => (isNotFound(error) ? [] : Promise.reject(error)));
    await this.#poolBacked.scan(await this.heldRepositories());
    const found: PoolBlob[] = [];
    await mapLimit(names, PARALLEL, async (name) => {
      const blob = await this.poolBlob(`sha256:${name}`);
      if (blob) found.push(blob);
    });
    return found.sort((a, b) => (a.digest < b.digest ? -1 : 1));
  }

  async poolBlob(digest: string): Promise<PoolBlob | undefined> {
    if (!isSha256Digest(digest)) return undefined;
    const info = await stat(blobPath(join(this.root, POOL_DIR), digest)).catch(() => undefined);
    if (!info?.isFile()) return undefined;
    // Where links are not allowed a repository holds a copy: such a pool blob reads as garbage,
    // and deleting it loses nothing (the next load that needs it puts it back).
    return { digest, size: info.size, holders: info.nlink - 1 + ((await this.#poolBacked.holders()).get(digest) ?? 0) };
  }

  async deletePoolBlob(digest: string): Promise<void> {
    await unlink(blobPath(join(this.root, POOL_DIR), digest)).catch(ignoreMissing);
  }

  async #currentList(): Promise<{ listed: string[] | undefined; current: string[] }> {
    const listed = await readRepositoryList(this.root);
    return { listed, current: listed === undefined ? await walkRepositories(this.root) : await withIndex(this.root, listed) };
  }

  async #setList(add: readonly string[], remove: readonly string[], known?: { listed: string[] | undefined; current: string[] }): Promise<void> {
    const { listed, current } = known ?? (await this.#currentList());
    const all = new Set(current);
    for (const name of add) all.add(name);
    for (const name of remove) all.delete(name);
    const text = [...all].sort().map((name) => `${name}\n`).join('');
    if (listed !== undefined && text === listed.map((name) => `${name}\n`).join('')) return;
    await writeFileAtomic(join(this.root, REPOSITORY_LIST), text, this.#tmp);
  }
}

// Names a killed load listed whose repository never got an index are dropped (one stat each).
async function withIndex(root: string, names: string[]): Promise<string[]> {
  const present = await Promise.all(names.map((name) => stat(join(repositoryDir(root, name), 'index.json')).then((info) => info.isFile(), () => false)));
  return names.filter((_, i) => present[i]);
}

/** Hard-links a pool blob into a repository (a copy where links are not allowed). */
export async function linkBlob(source: string, target: string): Promise<void> {
  try {
    await link(source, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw error;
    const tmp = `${target}.partial-${process.pid}`;
    await copyFile(source, tmp);
    await rename(tmp, target);
  }
}

async function writeNew(path: string, content: string, sync: boolean): Promise<void> {
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  try {
    await handle.writeFile(content);
    if (sync) await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * syncfs(2) of the file system holding `root` (`sync -f`, coreutils or BusyBox): one journal
 * commit for thousands of small files, where an fsync each costs a commit each.
 */
async function syncFileSystem(root: string): Promise<void> {
  const run = promisify(execFile);
  try {
    // -f, not --file-system: BusyBox's sync (an Alpine base image) knows only the short option.
    await run('sync', ['-f', root]);
  } catch (error) {
    // A sync without -f (an older BusyBox) still makes everything durable: every file system.
    await run('sync', []).catch((plain: unknown) => {
      throw new Error(`${root}: could not make the load durable: \`sync -f\` failed (${(error as Error).message.split('\n')[0]}) and so did \`sync\` (${(plain as Error).message.split('\n')[0]}); the store needs the \`sync\` command on PATH`, { cause: plain });
    });
  }
}

function ignoreMissing(error: unknown): void {
  if (!isNotFound(error)) throw error;
}

/** True once `dir` is gone (removed now or missing); false when it is not empty. */
async function removeDir(dir: string): Promise<boolean> {
  try {
    await rmdir(dir);
    return true;
  } catch (error) {
    if (isNotFound(error)) return true;
    if ((error as NodeJS.ErrnoException).code === 'ENOTEMPTY') return false;
    throw error;
  }
}

