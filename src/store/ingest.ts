import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, rmdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashingStream, isSha256Digest, sha256Digest } from '../image/digest.js';
import { parseManifest } from '../image/manifest.js';
import { isManifestMediaType } from '../image/media-types.js';
import type { Descriptor } from '../image/oci.schema.js';
import { isTag, repositoryNameProblem } from '../image/reference.js';
import { BlobFile } from './blob-file.js';
import { CopyPool, OffThreadBlobSink } from './copy-pool.js';
import { DirectoryStore } from './dir-store.js';
import { PARALLEL, mapLimit } from './parallel.js';
import { leftRoots, mergeIndex } from './index-file.js';
import { POOL_DIR, TMP_DIR, blobPath, fsyncDir } from './layout.js';
import type { RepositoryChange, StoreOps } from './store-ops.js';
import { registerTempPath, releaseTempPath } from './temp-paths.js';

/** A blob's identity once written: what a descriptor needs besides its media type. */
export interface BlobInfo {
  digest: string;
  size: number;
}

/** One image to publish: its root manifest or index, under a repository, with tags. */
export interface ImageToCommit {
  repository: string;
  tags: string[];
  descriptor: Descriptor;
}

export interface WriteOptions {
  /** Names the blob's origin in errors ("image.tar: blobs/sha256/ab…"). */
  where: string;
  /** The digest the input claims for these bytes; a mismatch fails the write. */
  expectDigest?: string;
  /** The size the input claims; a mismatch fails the write. */
  expectSize?: number;
  /** Streams the bytes pass through before hashing (progress counters, validators). */
  through?: Transform[];
  /**
   * Hash and write on a worker thread: for long streams whose producer keeps this thread busy
   * (packing a directory). Costs a thread start (~30 ms), so not for small blobs.
   */
  offThread?: boolean;
  /** With `offThread`: gets back the memory of each chunk once written, to fill again. */
  recycle?: (buffer: ArrayBuffer) => void;
}

/** A blob of a load, in its temp file until the commit publishes it. */
export interface StagedBlob {
  path: string;
  size: number;
}

/**
 * Where a commit publishes when the store is not a directory (a bucket, store/bucket/): it is given
 * the load's checked blobs as local files, and each repository's closure and images. It publishes
 * them so readers see every image of the load whole or not at all, under its own writer lock.
 */
export interface CommitTarget {
  /** A local directory for the load's temp files (the bucket's own are not a filesystem). */
  readonly tempRoot: string;
  commit(blobs: ReadonlyMap<string, StagedBlob>, closures: ReadonlyMap<string, ReadonlySet<string>>, images: ImageToCommit[], options: CommitOptions): Promise<void>;
}

export interface CommitOptions {
  /** Each repository of the load ends holding exactly the tags it brings (`load --replace`). */
  replace?: boolean;
  /** Stamp every entry added with LOADED_AT (default true; `prune` orders tags by it). */
  recordLoadTime?: boolean;
}

/** When a load's entries were loaded (LOADED_AT), or undefined when it records no load time. */
export function loadTime(options: CommitOptions): Date | undefined {
  return options.recordLoadTime === false ? undefined : new Date();
}

/**
 * The change a load makes to one repository, the same for every store: its index merged with
 * the images loaded into it, the roots that left it (a moved tag, --replace: recorded, so pulls
 * of them under way finish, see gc.ts), and the version of the index it was made from.
 */
export async function loadChange(store: StoreOps, repository: string, images: ImageToCommit[], blobs: readonly string[], options: CommitOptions, loadedAt: Date | undefined): Promise<RepositoryChange> {
  const read = await store.readIndex(repository);
  const current = read?.index;
  const index = mergeIndex(current, images, { ...(loadedAt && { loadedAt }), replace: options.replace === true });
  return { repository, blobs, index, left: leftRoots(current?.manifests ?? [], index.manifests), version: read?.version };
}

/** Read buffers this large keep syscalls few on big layers (measured in bench/). */
const COPY_CHUNK = 1024 * 1024;
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * A load in progress. Blobs are streamed into `<store>/.tmp/<id>/` while hashed; nothing in the
 * store proper changes until `commit`, which under the writer lock moves blobs into the pool,
 * links them into each repository, and replaces each index.json by rename. A load killed at any
 * point leaves at most unreferenced blobs and a temp directory the next load removes.
 */
export class Ingest {
  readonly #root: string;
  readonly #dir: string;
  readonly #createdRoot: boolean;
  /** `durable` settles once a streamed blob's temp file is on disk (small blobs are synced at commit). */
  readonly #blobs = new Map<string, { path: string; size: number; durable?: Promise<void> }>();
  readonly #copies = new CopyPool();
  readonly #target: CommitTarget | undefined;
  #counter = 0;

  private constructor(root: string, dir: string, createdRoot: boolean, target: CommitTarget | undefined) {
    this.#root = root;
    this.#dir = dir;
    this.#createdRoot = createdRoot;
    this.#target = target;
  }

  /**
   * Starts a load into the store at `root` (created if missing), clearing temp files of dead loads;
   * or, given a `target` (a bucket store), a load staged under its local `tempRoot`.
   */
  static async begin(store: string | CommitTarget): Promise<Ingest> {
    const target = typeof store === 'string' ? undefined : store;
    const root = typeof store === 'string' ? store : store.tempRoot;
    const createdRoot = (await mkdir(root, { recursive: true })) !== undefined;
    const tmp = join(root, TMP_DIR);
    await mkdir(tmp, { recursive: true });
    await removeStaleTemp(tmp);
    const dir = join(tmp, `${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`);
    registerTempPath(dir);
    await mkdir(dir);
    return new Ingest(root, dir, createdRoot, target);
  }

  /** True when a blob with `digest` has been written in this load. */
  has(digest: string): boolean {
    return this.#blobs.has(digest);
  }

  /** Streams `source` to a temp file while hashing it; checks any digest or size the input claims. */
  async writeStream(source: Readable, options: WriteOptions): Promise<BlobInfo> {
    const path = join(this.#dir, `blob-${this.#counter++}`);
    if (options.offThread) {
      const sink = new OffThreadBlobSink(path, options.recycle);
      await pipeline([source, ...(options.through ?? []), sink]);
      const { digest, size } = await sink.copied;
      return this.#accept(path, digest, size, options, sink.durable);
    }
    const hashing = new HashingStream({ highWaterMark: COPY_CHUNK });
    const file = new BlobFile(path, COPY_CHUNK);
    await pipeline([source, ...(options.through ?? []), hashing, file]);
    // The last flush runs while the next blob is read; the commit waits for it.
    const durable = file.durable();
    durable.catch(() => undefined);
    return this.#accept(path, hashing.digest(), hashing.size, options, durable);
  }

  /**
   * Copies `size` bytes at `offset` of `file` into the load, hashed on a worker thread: big blobs
   * that lie whole in a file (layers of an uncompressed archive, blobs of a layout) are copied
   * several at a time, one per core.
   */
  async copyRange(file: string, offset: number, size: number, options: WriteOptions): Promise<BlobInfo> {
    const path = join(this.#dir, `blob-${this.#counter++}`);
    const { copied, durable } = this.#copies.copy({ input: file, offset, size, output: path });
    let result;
    try {
      result = await copied;
    } catch (error) {
      await unlink(path).catch(() => undefined);
      throw new Error(`${options.where}: ${(error as Error).message}`, { cause: error });
    }
    return this.#accept(path, result.digest, result.size, options, durable);
  }

  /** Copies a file into the load while hashing it. */
  async writeFile(file: string, options: WriteOptions): Promise<BlobInfo> {
    return this.writeStream(createReadStream(file, { highWaterMark: COPY_CHUNK }), options);
  }

  /** Writes small in-memory content (a config or manifest cartorio built or buffered). */
  async writeBytes(bytes: Buffer, options: WriteOptions): Promise<BlobInfo> {
    const digest = sha256Digest(bytes);
    if (this.#blobs.has(digest)) return this.#accept(undefined, digest, bytes.length, options);
    const path = join(this.#dir, `blob-${this.#counter++}`);
    const handle = await open(path, 'w', 0o644);
    try {
      await handle.writeFile(bytes);
    } finally {
      await handle.close();
    }
    return this.#accept(path, digest, bytes.length, options);
  }

  /** Reads back a small blob of this load (a manifest or config), capped at `maxBytes`. */
  async readBytes(digest: string, where: string, maxBytes = MAX_MANIFEST_BYTES): Promise<Buffer> {
    const blob = this.#blobs.get(digest);
    if (!blob) throw new Error(`${where}: blob ${digest} is not in the input`);
    if (blob.size > maxBytes) throw new Error(`${where}: ${digest} is ${blob.size} bytes, over the ${maxBytes}-byte limit for JSON documents`);
    const handle = await open(blob.path, 'r');
    try {
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  }

  /** Path of a blob's temp file, for loaders that must read a layer again (e.g. to decompress). */
  pathOf(digest: string): string | undefined {
    return this.#blobs.get(digest)?.path;
  }

  /**
   * Checks that every image is complete (all referenced blobs present, sizes as declared,
   * manifests well-formed), then publishes them atomically. Throws and changes nothing on error.
   */
  async commit(images: ImageToCommit[], where: string, options: CommitOptions = {}): Promise<void> {
    const closures = new Map<string, Set<string>>();
    const byRepository = new Map<string, ImageToCommit[]>();
    // One image named by 10 000 repositories (a docker save of many names) is walked once.
    const walked = new Map<string, Set<string>>();
    for (const image of images) {
      const problem = repositoryNameProblem(image.repository);
      if (problem) throw new Error(`${where}: repository name "${image.repository}" ${problem}`);
      const badTag = image.tags.find((tag) => !isTag(tag));
      if (badTag !== undefined) throw new Error(`${where}: "${badTag}" is not a valid tag (letters, digits, . _ -, at most 128, not starting with . or -)`);
      const key = `${image.descriptor.digest}:${image.descriptor.size}:${image.descriptor.mediaType}`;
      let reached = walked.get(key);
      if (!reached) {
        reached = new Set<string>();
        await this.#collect(image.descriptor, reached, where, 0);
        walked.set(key, reached);
      }
      const closure = closures.get(image.repository) ?? new Set<string>();
      for (const digest of reached) closure.add(digest);
      closures.set(image.repository, closure);
      byRepository.set(image.repository, [...(byRepository.get(image.repository) ?? []), image]);
    }
    if (this.#target) {
      const staged = new Map<string, StagedBlob>();
      for (const digest of new Set([...closures.values()].flatMap((set) => [...set]))) {
        const blob = this.#blobs.get(digest);
        if (!blob) continue;
        await blob.durable; // the temp file is whole and closed
        staged.set(digest, blob);
      }
      await this.#target.commit(staged, closures, images, options);
      await this.abort();
      return;
    }
    const store = new DirectoryStore(this.#root);
    // Protection from a concurrent gc: until here every blob of this load lives in this load's
    // own temp directory, which gc never reads. Under the writer lock, which gc's sweep also
    // takes, blobs move into the pool and are linked into their repositories before the lock is
    // released; gc sweeps only pool blobs no repository links, checked under that same lock.
    await store.withWriteLock(async () => {
      const pool = join(this.#root, POOL_DIR);
      await mkdir(join(pool, 'blobs', 'sha256'), { recursive: true });
      const all = new Set([...closures.values()].flatMap((set) => [...set]));
      for (const digest of all) await this.#moveToPool(pool, digest);
      await fsyncDir(join(pool, 'blobs', 'sha256'));
      const loadedAt = loadTime(options);
      const changes: RepositoryChange[] = [];
      await mapLimit(closures, PARALLEL, async ([repository, closure]) => {
        changes.push(await loadChange(store, repository, byRepository.get(repository) ?? [], [...closure], options, loadedAt));
      });
      await store.publish(changes);
    });
    await this.abort();
  }

  /** Removes this load's temp files; the store is left as it was. */
  async abort(): Promise<void> {
    await this.#copies.close();
    await rm(this.#dir, { recursive: true, force: true });
    releaseTempPath(this.#dir);
    await rmdir(join(this.#root, TMP_DIR)).catch(() => undefined);
    if (this.#createdRoot) await rmdir(this.#root).catch(() => undefined);
  }

  async #accept(path: string | undefined, digest: string, size: number, options: WriteOptions, durable?: Promise<void>): Promise<BlobInfo> {
    try {
      if (options.expectDigest !== undefined && options.expectDigest !== digest) {
        throw new Error(`${options.where}: content has digest ${digest} but the input names it ${options.expectDigest}; the file is corrupt or was altered`);
      }
      if (options.expectSize !== undefined && options.expectSize !== size) {
        throw new Error(`${options.where}: content is ${size} bytes but the input says ${options.expectSize}; the file is truncated or was altered`);
      }
    } catch (error) {
      if (path) await unlink(path).catch(() => undefined);
      throw error;
    }
    if (this.#blobs.has(digest)) {
      if (path) await unlink(path);
    } else if (path) {
      this.#blobs.set(digest, { path, size, ...(durable && { durable }) });
    }
    return { digest, size };
  }

  // Walks a descriptor's graph inside this load, checking sizes and manifest shapes.
  async #collect(descriptor: Descriptor, closure: Set<string>, where: string, depth: number): Promise<void> {
    if (depth > 8) throw new Error(`${where}: manifests nest more than 8 levels deep`);
    const { digest } = descriptor;
    if (!isSha256Digest(digest)) throw new Error(`${where}: unsupported or malformed digest "${digest}" (only sha256:<64 hex> is supported)`);
    const blob = this.#blobs.get(digest);
    if (!blob) throw new Error(`${where}: ${descriptor.mediaType} ${digest} is referenced but missing from the input`);
    if (blob.size !== descriptor.size) throw new Error(`${where}: ${digest} is ${blob.size} bytes but its descriptor says ${descriptor.size}`);
    if (closure.has(digest)) return;
    closure.add(digest);
    if (!isManifestMediaType(descriptor.mediaType)) return;
    const parsed = parseManifest(await this.readBytes(digest, where), descriptor.mediaType, `${where}: manifest ${digest}`);
    for (const child of parsed.children) await this.#collect(child, closure, where, depth + 1);
  }

  async #moveToPool(pool: string, digest: string): Promise<void> {
    const blob = this.#blobs.get(digest);
    if (!blob) return;
    const target = blobPath(pool, digest);
    const existing = await stat(target).catch(() => undefined);
    if (existing?.size === blob.size) return;
    if (blob.durable) {
      await blob.durable;
    } else {
      const handle = await open(blob.path, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    await rename(blob.path, target);
    blob.path = target;
  }
}

/** Temp directories are named `<pid>-…`; those whose process is gone belong to killed loads. */
async function removeStaleTemp(tmp: string): Promise<void> {
  for (const name of await readdir(tmp)) {
    const pid = Number(/^(?:write-)?(\d+)-/.exec(name)?.[1]);
    if (!Number.isInteger(pid) || pid === process.pid || isAlive(pid)) continue;
    await rm(join(tmp, name), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

