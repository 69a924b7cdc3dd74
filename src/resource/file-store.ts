import { constants } from 'node:fs';
import { copyFile, lstat, rename, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { loadIntoStore } from '../formats/load.js';
import type { Descriptor } from '../image/oci.schema.js';
import { blobPath, repositoryDir } from '../store/layout.js';
import { StoreReader } from '../store/reader.js';
import { writeImageLayout } from './layout-copy.js';
import type { ImageStore, PushReport } from './stores.js';

/**
 * A cartorio store on storage that outlives the step (DESIGN §3): reads through `StoreReader`,
 * writes through the loaders' atomic ingest, so a failed put leaves the store as it was.
 */
export class FileStore implements ImageStore {
  readonly where: string;
  readonly #root: string;
  readonly #reader: StoreReader;

  constructor(path: string) {
    this.#root = resolve(path);
    this.#reader = new StoreReader(this.#root);
    this.where = `file store ${this.#root}`;
  }

  async resolveTag(repository: string, tag: string): Promise<string | undefined> {
    return (await this.#reader.repository(repository))?.tagged.get(tag);
  }

  async findManifest(repository: string, digest: string): Promise<Descriptor | undefined> {
    return (await this.#reader.repository(repository))?.manifests.get(digest)?.descriptor;
  }

  async pull(repository: string, root: Descriptor, dest: string, tag: string): Promise<{ blobs: number; bytes: number }> {
    const snapshot = await this.#reader.repository(repository);
    if (!snapshot) throw new Error(`${this.where} has no repository ${repository}`);
    const source = repositoryDir(this.#root, snapshot.name);
    return writeImageLayout(dest, root, tag, async (descriptor, path) => {
      const from = blobPath(source, descriptor.digest);
      const info = await lstat(from).catch(() => undefined);
      if (!info?.isFile()) throw new Error(`${this.where}: ${repository} lacks blob ${descriptor.digest}; run cartorio verify --store ${this.#root}`);
      if (info.size !== descriptor.size) throw new Error(`${this.where}: blob ${descriptor.digest} of ${repository} is ${info.size} bytes, not ${descriptor.size}; run cartorio verify`);
      await copyBlob(from, path);
    });
  }

  async push(repository: string, layout: string, _root: Descriptor, tags: string[]): Promise<PushReport> {
    const before = new Set((await this.#reader.repository(repository))?.blobs.keys() ?? []);
    await loadIntoStore(this.#root, [layout], { format: 'oci-layout', name: repository, tags });
    const after = (await this.#reader.repository(repository))?.blobs.keys() ?? [];
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
