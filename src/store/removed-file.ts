import { MediaType } from '../image/media-types.js';
import type { Descriptor, ImageIndex } from '../image/oci.schema.js';
import { serializeIndex } from './index-file.js';
import { REMOVED_AT, REMOVED_FILE, readLayoutIndex } from './layout.js';
import type { RemovedRoot } from './store-ops.js';

/** The removed roots of the layout at `dir`, oldest first; none when it has no record. */
export async function readRemoved(dir: string): Promise<RemovedRoot[]> {
  return removedRoots(await readLayoutIndex(dir, REMOVED_FILE));
}

/** The removed roots a record (removed.json, parsed) holds, oldest first. */
export function removedRoots(record: ImageIndex | undefined): RemovedRoot[] {
  return (record?.manifests ?? []).map((entry) => {
    const { [REMOVED_AT]: when, ...rest } = entry.annotations ?? {};
    const { annotations: _, ...descriptor } = entry;
    return { descriptor: Object.keys(rest).length > 0 ? { ...descriptor, annotations: rest } : descriptor, at: Date.parse(when ?? '') || 0 };
  });
}

/** The record once `left` is added to it, stamped now (a root removed again is stamped again: its grace starts anew). */
export async function removedAfter(dir: string, left: readonly Descriptor[]): Promise<string> {
  return serializeRemoved(withLeft(await readRemoved(dir), left));
}

/** `roots` once `left` is added, stamped now (see removedAfter). */
export function withLeft(roots: readonly RemovedRoot[], left: readonly Descriptor[]): RemovedRoot[] {
  const leaving = new Set(left.map((descriptor) => descriptor.digest));
  const at = Date.now();
  return [...roots.filter((root) => !leaving.has(root.descriptor.digest)), ...left.map((descriptor) => ({ descriptor, at }))];
}

export function serializeRemoved(roots: readonly RemovedRoot[]): string {
  const manifests = roots.map(({ descriptor, at }) => ({ ...descriptor, annotations: { ...descriptor.annotations, [REMOVED_AT]: new Date(at).toISOString() } }));
  return serializeIndex({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests });
}

