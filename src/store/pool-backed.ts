import { PARALLEL, mapLimit } from './parallel.js';
import type { DirectoryStore } from './dir-store.js';
import { isPoolBacked, repositoryDir } from './layout.js';

interface Held {
  version: string;
  blobs: ReadonlyMap<string, number>;
}

/**
 * The pool-backed repositories of a directory store (layout.ts `isPoolBacked`: a bucket store
 * copied back with `aws s3 sync`) and what they hold. Such a repository links nothing, so a pool
 * blob's link count does not say it is held; it holds exactly what its index and its removed roots
 * reach — the rule a bucket store keeps — so gc frees what it would free in the bucket, and
 * nothing a pull may still ask for. What each holds is walked again only when its index or its
 * record of removed roots changed.
 */
export class PoolBackedRepositories {
  readonly #store: DirectoryStore;
  #names: string[] | undefined;
  readonly #held = new Map<string, Held>();
  #counts: { key: string; counts: Promise<ReadonlyMap<string, number>> } | undefined;

  constructor(store: DirectoryStore) {
    this.#store = store;
  }

  /**
   * Looks for pool-backed repositories among `names`. Writers never make one (a load into such a
   * repository keeps it so; a new repository links its blobs), so between scans the set can only
   * shrink, by gc dropping a removed repository.
   */
  async scan(names: readonly string[]): Promise<void> {
    const found: string[] = [];
    await mapLimit(names, PARALLEL, async (name) => {
      if (await isPoolBacked(repositoryDir(this.#store.root, name))) found.push(name);
    });
    this.#names = found.sort();
  }

  /** What a pool-backed repository holds: digest → size. Fails, naming the manifest, when that cannot be known. */
  async held(repository: string): Promise<ReadonlyMap<string, number>> {
    const version = await this.#store.version(repository);
    const cached = this.#held.get(repository);
    if (version === undefined) {
      this.#held.delete(repository);
      return new Map();
    }
    if (cached?.version === version) return cached.blobs;
    const read = await this.#store.readIndex(repository);
    if (!read) return this.held(repository);
    const reach = await this.#store.walker.held(repository, read);
    if (reach.problems.length > 0) {
      // A linked repository with an unreadable manifest keeps its links; this one keeps nothing but what is known.
      throw new Error(`${this.#store.root}: ${reach.problems[0]}, and ${repository} has no blobs/ of its own (it holds what it reaches in the pool), so what it holds is unknown and nothing was deleted; run cartorio verify --store ${this.#store.root}`);
    }
    this.#held.set(repository, { version: read.version, blobs: reach.blobs });
    return reach.blobs;
  }

  /** How many pool-backed repositories hold each blob, as their files say now. */
  async holders(): Promise<ReadonlyMap<string, number>> {
    if (this.#names === undefined) await this.scan(await this.#store.heldRepositories());
    const names = this.#names ?? [];
    if (names.length === 0) return new Map();
    const key = (await Promise.all(names.map(async (name) => `${name}=${(await this.#store.version(name)) ?? '-'}`))).join('\n');
    // Shared by the calls that see the same versions (gc asks for every pool blob at once).
    if (this.#counts?.key !== key) {
      const counting = (async () => {
        const counts = new Map<string, number>();
        for (const name of names) for (const digest of (await this.held(name)).keys()) counts.set(digest, (counts.get(digest) ?? 0) + 1);
        return counts;
      })();
      this.#counts = { key, counts: counting };
      counting.catch(() => this.#counts?.counts === counting && (this.#counts = undefined));
    }
    return this.#counts.counts;
  }
}
