import type { Descriptor, ImageIndex } from '../image/oci.schema.js';
import { isTag, parseImageReference } from '../image/reference.js';
import { imageIndexSchema } from '../image/oci.schema.js';
import { compileValidator, parseJson } from '../image/validate.js';
import { REF_NAME } from '../store/layout.js';
import { LoadError } from './load-error.js';
import type { PendingImage } from './types.js';

/** containerd's annotation with the full image name (also written by Docker 25+ `docker save`). */
export const CONTAINERD_IMAGE_NAME = 'io.containerd.image.name';

/** index.json lists every image of a layout; 16 MiB holds tens of thousands of descriptors. */
export const MAX_INDEX_BYTES = 16 * 1024 * 1024;

const validateIndex = compileValidator<ImageIndex>(imageIndexSchema, 'index.json');

/** Parses and validates an OCI layout's index.json. */
export function parseLayoutIndex(input: string, bytes: Buffer, where: string): ImageIndex {
  try {
    return validateIndex(parseJson(bytes, where), where);
  } catch (error) {
    throw new LoadError(input, (error as Error).message.replace(`${input}: `, ''), undefined, { cause: error });
  }
}

/**
 * One pending image per distinct manifest of index.json, named from `io.containerd.image.name`
 * or from `org.opencontainers.image.ref.name` (a tag, or a whole reference). Descriptors are
 * kept as stored, so digests do not change.
 */
export function imagesFromIndex(input: string, index: ImageIndex): PendingImage[] {
  const images: PendingImage[] = [];
  for (const entry of index.manifests) {
    const { repository, tag } = nameOf(input, entry);
    const same = images.find((image) => image.descriptor.digest === entry.digest && image.repository === repository);
    if (same) {
      if (tag !== undefined && !same.tags.includes(tag)) same.tags.push(tag);
      continue;
    }
    images.push({ ...(repository !== undefined && { repository }), tags: tag === undefined ? [] : [tag], descriptor: plainDescriptor(entry) });
  }
  return images;
}

function nameOf(input: string, entry: Descriptor): { repository?: string; tag?: string } {
  const full = entry.annotations?.[CONTAINERD_IMAGE_NAME];
  const refName = entry.annotations?.[REF_NAME];
  const reference = full ?? (refName !== undefined && !isTag(refName) ? refName : undefined);
  if (reference !== undefined) {
    const parsed = parseImageReference(reference);
    if (!parsed) throw new LoadError(input, `index.json names an image "${reference}", which is not a valid image reference`);
    return { repository: parsed.repository, ...(parsed.tag !== undefined ? { tag: parsed.tag } : refName !== undefined && isTag(refName) ? { tag: refName } : {}) };
  }
  return refName !== undefined ? { tag: refName } : {};
}

// The descriptor as stored, without the naming annotations (they belong to index.json, not the image).
function plainDescriptor(entry: Descriptor): Descriptor {
  const { annotations, ...rest } = entry;
  const kept = Object.entries(annotations ?? {}).filter(([key]) => key !== REF_NAME && key !== CONTAINERD_IMAGE_NAME);
  return kept.length > 0 ? { ...rest, annotations: Object.fromEntries(kept) } : rest;
}
