import { SUBJECT_TAG } from '../image/reference.js';
import { LOADED_AT } from './index-file.js';
import { REF_NAME } from './layout.js';
import type { ParsedRef } from './removal.js';
import type { StoreOps } from './store-ops.js';

export interface PruneOptions {
  /** Tags kept per repository, newest loaded first. */
  keep: number;
  /** Only tags loaded longer ago than this go (a tag with no load time counts as old). */
  olderThanMs?: number;
  now?: number;
}

/**
 * The tags past the `keep` newest of each repository, by when they were loaded (LOADED_AT on
 * their index.json entry; a tag loaded before that was recorded counts as the oldest, and ties
 * keep the greater tag), as REFs for `planRemoval`.
 */
export async function pruneTargets(ops: StoreOps, repositories: readonly string[], options: PruneOptions): Promise<ParsedRef[]> {
  const cutoff = options.olderThanMs === undefined ? Infinity : (options.now ?? Date.now()) - options.olderThanMs;
  const targets: ParsedRef[] = [];
  for (const repository of repositories) {
    const read = await ops.readIndex(repository);
    const tags: { tag: string; at: number }[] = [];
    for (const entry of read?.index.manifests ?? []) {
      const tag = entry.annotations?.[REF_NAME];
      if (tag === undefined || SUBJECT_TAG.test(tag)) continue; // an artifact's tag goes with its image, never counted
      const at = Date.parse(entry.annotations?.[LOADED_AT] ?? '');
      tags.push({ tag, at: Number.isNaN(at) ? 0 : at });
    }
    tags.sort((a, b) => b.at - a.at || (a.tag < b.tag ? 1 : a.tag > b.tag ? -1 : 0));
    for (const { tag, at } of tags.slice(options.keep)) {
      if (at < cutoff) targets.push({ ref: `${repository}:${tag}`, path: repository, target: { tag } });
    }
  }
  return targets;
}
