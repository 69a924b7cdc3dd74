import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isSha256Digest } from '../image/digest.js';
import { parseManifest } from '../image/manifest.js';
import { isManifestMediaType } from '../image/media-types.js';
import type { Descriptor } from '../image/oci.schema.js';
import { POOL_COPY_MIN } from '../store/copy-pool.js';
import { blobPath, checkOciLayoutFile } from '../store/layout.js';
import type { Ingest } from '../store/ingest.js';
import { LoadError } from './load-error.js';
import { MAX_INDEX_BYTES, imagesFromIndex, parseLayoutIndex } from './oci-index.js';
import type { LoadOptions, PendingImage } from './types.js';

/**
 * An OCI image layout directory: every manifest and index of index.json (multi-platform
 * indexes included), with the blobs they reach copied byte for byte and verified.
 */
export async function loadOciLayout(input: string, ingest: Ingest, options: LoadOptions): Promise<PendingImage[]> {
  const images = await readLayoutImages(input);
  await ingestReachable(input, images.map((image) => image.descriptor), ingest, options);
  return images;
}

/** index.json of a layout directory, as pending images (nothing copied yet). */
export async function readLayoutImages(input: string): Promise<PendingImage[]> {
  try {
    await checkOciLayoutFile(input);
  } catch (error) {
    throw new LoadError(input, `is not an OCI image layout: ${(error as Error).message}`, undefined, { cause: error });
  }
  const indexPath = join(input, 'index.json');
  const info = await stat(indexPath);
  if (info.size > MAX_INDEX_BYTES) throw new LoadError(input, `index.json is ${info.size} bytes, over the ${MAX_INDEX_BYTES}-byte limit`);
  return imagesFromIndex(input, parseLayoutIndex(input, await readFile(indexPath), indexPath));
}

/**
 * Copies every blob reachable from `roots` into the ingest, checking digest and size of each.
 * Manifests are read as they are found, to find their children; big layers are copied side by
 * side on worker threads while the walk goes on, and awaited at its end.
 */
export async function ingestReachable(input: string, roots: Descriptor[], ingest: Ingest, options: LoadOptions): Promise<void> {
  options.onStart?.(undefined); // sizes are known only as manifests are read
  const copies = new Map<string, Promise<void>>();
  const visit = async (descriptor: Descriptor, depth: number): Promise<void> => {
    const { digest, mediaType, size } = descriptor;
    if (!isSha256Digest(digest)) throw new LoadError(input, `references a blob by "${digest}", which is not a sha256 digest`);
    if (depth > 8) throw new LoadError(input, 'manifests nest more than 8 levels deep');
    if (ingest.has(digest) || copies.has(digest)) return;
    const path = blobPath(input, digest);
    const where = `${input}: blobs/sha256/${digest.slice(7)}`;
    const missing = (): LoadError => new LoadError(input, `${mediaType} ${digest} is referenced but blobs/sha256/${digest.slice(7)} is missing`);
    if (!isManifestMediaType(mediaType) && size >= POOL_COPY_MIN) {
      const found = await stat(path).catch(() => undefined);
      if (!found?.isFile()) throw missing();
      const copy = ingest.copyRange(path, 0, found.size, { where, expectDigest: digest, expectSize: size }).then(() => options.onBytes?.(size));
      copy.catch(() => undefined); // awaited at the end of the walk
      copies.set(digest, copy);
      return;
    }
    try {
      await ingest.writeFile(path, { where, expectDigest: digest, expectSize: size });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw missing();
      throw error;
    }
    options.onBytes?.(size);
    if (!isManifestMediaType(mediaType)) return;
    const parsed = parseManifest(await ingest.readBytes(digest, input), mediaType, `${input}: manifest ${digest}`);
    for (const child of parsed.children) await visit(child, depth + 1);
  };
  try {
    for (const root of roots) await visit(root, 0);
  } finally {
    await Promise.allSettled(copies.values());
  }
  await Promise.all(copies.values());
}
