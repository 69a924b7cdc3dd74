import { join } from 'node:path';
import { MediaType } from '../image/media-types.js';
import type { Descriptor, ImageIndex } from '../image/oci.schema.js';
import { REF_NAME, readLayoutIndex, writeFileAtomic } from './layout.js';

/** What `updateIndex` adds: a root descriptor and the tags that should point at it. */
export interface IndexEntry {
  tags: string[];
  descriptor: Descriptor;
}

/**
 * Adds images to a repository's index.json and replaces it atomically. A tag moves to the new
 * image (as `docker tag` would); an image with no tags is kept by digest so it stays pullable.
 */
export async function updateIndex(layoutDir: string, tmpDir: string, entries: IndexEntry[]): Promise<void> {
  const index = mergeIndex(await readLayoutIndex(layoutDir), entries);
  await writeFileAtomic(join(layoutDir, 'index.json'), indexBytes(index), tmpDir);
}

/** The bytes of index.json as every store writes them. */
export function indexBytes(index: ImageIndex): string {
  return JSON.stringify(index, null, 2) + '\n';
}

/** `current` (undefined: a new repository) with `entries` added, tags moved (see updateIndex). */
export function mergeIndex(previous: ImageIndex | undefined, entries: IndexEntry[]): ImageIndex {
  const current = previous ?? { schemaVersion: 2 as const, manifests: [] };
  let manifests = [...current.manifests];
  for (const { tags, descriptor } of entries) {
    const base = stripRefName(descriptor);
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

function stripRefName(descriptor: Descriptor): Descriptor {
  const { annotations, ...rest } = descriptor;
  const kept = Object.entries(annotations ?? {}).filter(([key]) => key !== REF_NAME);
  return kept.length > 0 ? { ...rest, annotations: Object.fromEntries(kept) } : rest;
}
