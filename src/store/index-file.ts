import { join } from 'node:path';
import { MediaType } from '../image/media-types.js';
import type { Descriptor, ImageIndex } from '../image/oci.schema.js';
import { REF_NAME, readLayoutIndex, writeFileAtomic } from './layout.js';

/**
 * When a load put an entry into index.json (RFC 3339, UTC): what `prune` orders tags by. Not
 * `org.opencontainers.image.created`, which says when the image was built, not when it came here.
 */
export const LOADED_AT = 'io.cartorio.loaded';

/** What `updateIndex` adds: a root descriptor and the tags that should point at it. */
export interface IndexEntry {
  tags: string[];
  descriptor: Descriptor;
}

export interface MergeOptions {
  /** The index holds exactly these entries afterwards (`load --replace`), not these added to it. */
  replace?: boolean;
  /** Recorded on every entry added, as LOADED_AT; none when undefined. */
  loadedAt?: Date;
}

/**
 * Adds images to a repository's index.json and replaces it atomically. A tag moves to the new
 * image (as `docker tag` would); an image with no tags is kept by digest so it stays pullable.
 */
export async function updateIndex(layoutDir: string, tmpDir: string, entries: IndexEntry[]): Promise<void> {
  const index = mergeIndex(await readLayoutIndex(layoutDir), entries);
  await writeFileAtomic(join(layoutDir, 'index.json'), serializeIndex(index), tmpDir);
}

/** The index `current` becomes once `entries` are added (see updateIndex). Pure. */
export function mergeIndex(current: ImageIndex | undefined, entries: IndexEntry[], options: MergeOptions = {}): ImageIndex {
  let manifests = options.replace ? [] : [...(current?.manifests ?? [])];
  const stamp = options.loadedAt?.toISOString();
  for (const { tags, descriptor } of entries) {
    const stripped = stripRefName(descriptor);
    const base = stamp === undefined ? stripped : { ...stripped, annotations: { ...stripped.annotations, [LOADED_AT]: stamp } };
    if (tags.length === 0) {
      if (!manifests.some((m) => m.digest === base.digest)) manifests.push(base);
      continue;
    }
    const moving = new Set(tags);
    manifests = manifests.filter((m) => {
      const ref = m.annotations?.[REF_NAME];
      if (ref !== undefined) return !moving.has(ref);
      return m.digest !== base.digest; // an untagged entry is replaced by the tagged one
    });
    for (const tag of tags) manifests.push({ ...base, annotations: { ...base.annotations, [REF_NAME]: tag } });
  }
  return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
}

/** Roots of `before` that `after` no longer names (by digest), once each, as bare descriptors. */
export function leftRoots(before: readonly Descriptor[], after: readonly Descriptor[]): Descriptor[] {
  const kept = new Set(after.map((entry) => entry.digest));
  const left = new Map<string, Descriptor>();
  for (const { mediaType, digest, size } of before) if (!kept.has(digest)) left.set(digest, { mediaType, digest, size });
  return [...left.values()];
}

/** index.json as cartorio writes it. */
export function serializeIndex(index: ImageIndex): string {
  return JSON.stringify(index, null, 2) + '\n';
}

function stripRefName(descriptor: Descriptor): Descriptor {
  const { annotations, ...rest } = descriptor;
  const kept = Object.entries(annotations ?? {}).filter(([key]) => key !== REF_NAME && key !== LOADED_AT);
  return kept.length > 0 ? { ...rest, annotations: Object.fromEntries(kept) } : rest;
}
