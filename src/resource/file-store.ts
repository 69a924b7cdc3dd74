import { constants } from 'node:fs';
import { copyFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { loadIntoStore } from '../formats/load.js';
import type { Descriptor } from '../image/oci.schema.js';
import { LOCK_DIR, POOL_DIR, TMP_DIR } from '../store/layout.js';
import { REPOSITORY_LIST } from '../store/repository-list.js';
import { StoreReader } from '../store/reader.js';
import { writeImageLayout } from './layout-copy.js';
import type { ImageStore, PushReport } from './stores.js';

/** What a store holds besides repositories and its blob pool: temp files, the writer lock, the name list. */
const STORE_BOOKKEEPING = new Set([TMP_DIR, LOCK_DIR, REPOSITORY_LIST]);

/**
 * A cartorio store on storage that outlives the step (DESIGN §3): reads through `StoreReader`,
 * writes through the loaders' atomic ingest, so a failed put leaves the store as it was.
 */
export class FileStore implements ImageStore {
  readonly where: string;
  readonly #root: string;
  readonly #reader: StoreReader;
  #checked: Promise<void> | undefined;

  constructor(path: string) {
    this.#root = resolve(path);
    this.#reader = new StoreReader(this.#root);
    this.where = `file store ${this.#root}`;
  }

  /**
   * The path must be a directory that holds a store, or an empty one to start a store in. A
   * path that is missing, or full of other things, is most likely a volume that is not mounted
   * in this container: a put would land on the container's own disk and vanish with it.
   */
  #checkRoot(): Promise<void> {
    this.#checked ??= (async () => {
      const info = await stat(this.#root).catch(() => undefined);
      const mount = 'store.path must be a directory mounted into the resource container (stock Concourse mounts none: use a registry store)';
      if (!info) throw new Error(`${this.where}: no such directory in this container; ${mount}`);
      if (!info.isDirectory()) throw new Error(`${this.where}: not a directory; ${mount}`);
      const names = await readdir(this.#root);
      // A store's own bookkeeping alone (what the first put, killed before it committed, leaves) is still an empty store.
      if (names.includes(POOL_DIR) || names.every((name) => STORE_BOOKKEEPING.has(name))) return;
      const shown = names.sort().slice(0, 5).join(', ') + (names.length > 5 ? ', …' : '');
      throw new Error(`${this.where} holds ${shown} but no cartorio store (no ${POOL_DIR}/): is the right volume mounted there? Point store.path at a store, or at an empty directory to start one`);
    })();
    return this.#checked;
  }

  async resolveTag(repository: string, tag: string): Promise<string | undefined> {
    await this.#checkRoot();
    return (await this.#reader.repository(repository))?.tagged.get(tag);
  }

  async hasRepository(repository: string): Promise<boolean> {
    await this.#checkRoot();
    return (await this.#reader.repository(repository)) !== undefined;
  }

  async findManifest(repository: string, digest: string): Promise<Descriptor | undefined> {
    await this.#checkRoot();
    return (await (await this.#reader.repository(repository))?.manifest(digest))?.descriptor;
  }

  async pull(repository: string, root: Descriptor, dest: string, tag: string): Promise<{ blobs: number; bytes: number }> {
    await this.#checkRoot();
    const snapshot = await this.#reader.repository(repository);
    if (!snapshot) throw new Error(`${this.where} has no repository ${repository}`);
    return writeImageLayout(dest, root, tag, async (descriptor, path) => {
      // Where the server would read it: the repository's blobs/, or the pool for one with none.
      const from = await this.#reader.blob(snapshot.name, descriptor.digest);
      if (!from) throw new Error(`${this.where}: ${repository} lacks blob ${descriptor.digest}; run cartorio verify --store ${this.#root}`);
      if (from.size !== descriptor.size) throw new Error(`${this.where}: blob ${descriptor.digest} of ${repository} is ${from.size} bytes, not ${descriptor.size}; run cartorio verify`);
      await copyBlob(from.path, path);
    });
  }

  async push(repository: string, layout: string, _root: Descriptor, tags: string[]): Promise<PushReport> {
    await this.#checkRoot();
    const before = new Set((await (await this.#reader.repository(repository))?.contents())?.blobs.keys() ?? []);
    await loadIntoStore(this.#root, [layout], { format: 'oci-layout', name: repository, tags });
    const after = (await (await this.#reader.repository(repository))?.contents())?.blobs.keys() ?? [];
    let uploaded = 0;
    let skipped = 0;
    for (const digest of after) {
      if (before.has(digest)) skipped++;
      else uploaded++;
    }
    return { uploaded, skipped };
  }

  close(): void {
    // nothing held open
  }
}

// Copied, never hard-linked: a task that writes into its input must not change the store.
// FICLONE makes it a reflink where the filesystem can (btrfs, xfs), a plain copy elsewhere.
async function copyBlob(from: string, to: string): Promise<void> {
  const partial = `${to}.partial`;
  try {
    await copyFile(from, partial, constants.COPYFILE_FICLONE);
    await rename(partial, to);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}
