import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isSha256Digest } from '../image/digest.js';
import { parseManifest, type ParsedManifest } from '../image/manifest.js';
import { MediaType, isImageManifestMediaType, isManifestMediaType } from '../image/media-types.js';
import type { Descriptor, ImageIndex } from '../image/oci.schema.js';
import { OCI_LAYOUT_CONTENT, OCI_LAYOUT_FILE, REF_NAME, blobPath } from '../store/layout.js';

/** Puts the bytes of one blob at `path`, checked against the descriptor's digest and size. */
export type BlobFetcher = (descriptor: Descriptor, path: string) => Promise<void>;

/** What a copy moved. */
export interface CopyReport {
  blobs: number;
  bytes: number;
}

const MAX_DEPTH = 8;

/**
 * Writes the image `root` (a manifest or an index, with everything it references) as a
 * standard OCI image layout at `dest`, tagged `tag` (the `org.opencontainers.image.ref.name`
 * of its one index.json entry). Built in a sibling temp directory and renamed into place, so
 * `dest` is either absent or complete.
 */
export async function writeImageLayout(dest: string, root: Descriptor, tag: string, fetch: BlobFetcher): Promise<CopyReport> {
  const partial = join(dirname(dest), `.${basename(dest)}.partial-${randomBytes(4).toString('hex')}`);
  const report: CopyReport = { blobs: 0, bytes: 0 };
  try {
    await mkdir(join(partial, 'blobs', 'sha256'), { recursive: true });
    const seen = new Set<string>();
    const visit = async (descriptor: Descriptor, depth: number): Promise<void> => {
      if (!isSha256Digest(descriptor.digest)) throw new Error(`${descriptor.digest}: only sha256 digests are supported`);
      if (depth > MAX_DEPTH) throw new Error(`manifests nest more than ${MAX_DEPTH} levels deep`);
      if (seen.has(descriptor.digest)) return;
      seen.add(descriptor.digest);
      const path = blobPath(partial, descriptor.digest);
      await fetch(descriptor, path);
      report.blobs++;
      report.bytes += descriptor.size;
      if (!isManifestMediaType(descriptor.mediaType)) return;
      const parsed = parseManifest(await readFile(path), descriptor.mediaType, `manifest ${descriptor.digest}`);
      for (const child of parsed.children) await visit(child, depth + 1);
    };
    await visit(root, 0);
    const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: await layoutEntries(partial, root, tag) };
    await writeFile(join(partial, OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT);
    await writeFile(join(partial, 'index.json'), JSON.stringify(index, null, 2) + '\n');
    await rm(dest, { recursive: true, force: true });
    await rename(partial, dest);
    return report;
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    throw error;
  }
}

/**
 * index.json's entries for `root`, ref name = tag. A multi-platform index is written as its
 * platform manifests, each with its platform (as registry-image's `oci-layout` does), so
 * readers that do not follow an index inside index.json (oci-build-task's `IMAGE_ARG_*`,
 * BuildKit's `oci-layout://`) find the images; the index blob stays in blobs/ and its digest in
 * the get's `digest` file, and `StoreReader` serves it under the tag. Anything else (an image,
 * an index of indexes) is one entry.
 */
async function layoutEntries(layout: string, root: Descriptor, tag: string): Promise<Descriptor[]> {
  const own = [{ mediaType: root.mediaType, digest: root.digest, size: root.size, annotations: { [REF_NAME]: tag } }];
  if (!isManifestMediaType(root.mediaType)) return own;
  const parsed = await readLayoutManifest(layout, root);
  if (parsed.kind !== 'index') return own;
  const children = parsed.index.manifests;
  if (children.length === 0 || !children.every((child) => isImageManifestMediaType(child.mediaType) && child.platform)) return own;
  return children.map((child) => ({ ...child, annotations: { ...child.annotations, [REF_NAME]: tag } }));
}

/** Reads and parses a manifest or index blob of the layout at `layout`. */
export async function readLayoutManifest(layout: string, descriptor: Descriptor): Promise<ParsedManifest> {
  return parseManifest(await readFile(blobPath(layout, descriptor.digest)), descriptor.mediaType, `manifest ${descriptor.digest}`);
}

/**
 * Visits `root` and everything it references, children before parents (the order a registry
 * accepts pushes in: blobs, then the manifests that name them, then the index).
 */
export async function walkChildrenFirst(layout: string, root: Descriptor, visit: (descriptor: Descriptor, isRoot: boolean) => Promise<void>): Promise<void> {
  const seen = new Set<string>();
  const walk = async (descriptor: Descriptor, depth: number): Promise<void> => {
    if (seen.has(descriptor.digest)) return;
    seen.add(descriptor.digest);
    if (depth > MAX_DEPTH) throw new Error(`manifests nest more than ${MAX_DEPTH} levels deep`);
    if (isManifestMediaType(descriptor.mediaType)) {
      const parsed = await readLayoutManifest(layout, descriptor);
      for (const child of parsed.children) await walk(child, depth + 1);
    }
    await visit(descriptor, depth === 0);
  };
  await walk(root, 0);
}

/** Layers of an image, or distinct layers of every image of an index. */
export async function countLayers(layout: string, root: Descriptor): Promise<number> {
  const layers = new Set<string>();
  await walkChildrenFirst(layout, root, async (descriptor) => {
    if (descriptor.mediaType !== MediaType.ociIndex && descriptor.mediaType !== MediaType.dockerManifestList && isManifestMediaType(descriptor.mediaType)) {
      const parsed = await readLayoutManifest(layout, descriptor);
      if (parsed.kind === 'image') for (const layer of parsed.manifest.layers) layers.add(layer.digest);
    }
  });
  return layers.size;
}
