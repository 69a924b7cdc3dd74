import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rename, rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import { sha256Digest } from '../image/digest.js';
import { MediaType, isIndexMediaType } from '../image/media-types.js';
import type { Descriptor, ImageManifest } from '../image/oci.schema.js';
import type { Platform } from '../image/platform.js';
import { OCI_LAYOUT_CONTENT, OCI_LAYOUT_FILE, REF_NAME, blobPath } from '../store/layout.js';
import { readLayoutManifest } from './layout-copy.js';

/**
 * Writes registry-image's `format: oci` output, `image.tar`: the platform's image as a tarball
 * that is at once a `docker save` archive (manifest.json: what `docker load` and oci-build-task's
 * `IMAGE_ARG_*` read) and an OCI image archive (oci-layout + index.json), as Docker 25's
 * `docker save` writes. Blobs are copied as stored (never recompressed). An index is resolved
 * to the image for `platform`. Written under a temp name and renamed into place.
 */
export async function writeImageTar(layout: string, root: Descriptor, platform: Platform, name: string, tag: string, dest: string): Promise<string> {
  const { descriptor, manifest: image } = await platformImage(layout, root, platform);
  const bytes = await readFile(blobPath(layout, descriptor.digest));
  const digest = sha256Digest(bytes);
  const hex = (d: string): string => d.slice('sha256:'.length);
  const index = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: [{ mediaType: image.mediaType ?? MediaType.ociManifest, digest, size: bytes.length, annotations: { [REF_NAME]: tag, 'io.containerd.image.name': `${name}:${tag}` } }],
  };
  const manifestJson = [{ Config: `blobs/sha256/${hex(image.config.digest)}`, RepoTags: [`${name}:${tag}`], Layers: image.layers.map((l) => `blobs/sha256/${hex(l.digest)}`) }];
  const partial = `${dest}.partial`;
  const tar = pack();
  const writing = pipeline(tar, createWriteStream(partial));
  const addBuffer = async (path: string, content: Buffer | string): Promise<void> => {
    await new Promise<void>((resolve, reject) => tar.entry({ name: path, mode: 0o644, mtime: new Date(0) }, content, (error) => (error ? reject(error) : resolve())));
  };
  const addBlob = async (blob: string): Promise<void> => {
    const path = blobPath(layout, blob);
    const { size } = await stat(path);
    const entry = tar.entry({ name: `blobs/sha256/${hex(blob)}`, size, mode: 0o644, mtime: new Date(0) });
    await pipeline(createReadStream(path), entry);
  };
  try {
    await addBuffer(OCI_LAYOUT_FILE, OCI_LAYOUT_CONTENT);
    await addBuffer(`blobs/sha256/${hex(digest)}`, bytes);
    await addBlob(image.config.digest);
    const seen = new Set<string>();
    for (const layer of image.layers) {
      if (seen.has(layer.digest)) continue;
      seen.add(layer.digest);
      await addBlob(layer.digest);
    }
    await addBuffer('index.json', JSON.stringify(index));
    await addBuffer('manifest.json', JSON.stringify(manifestJson));
    tar.finalize();
    await writing;
    await rename(partial, dest);
  } catch (error) {
    tar.destroy();
    await writing.catch(() => undefined);
    await rm(partial, { force: true });
    throw error;
  }
  return `wrote image.tar (${[platform.os, platform.architecture, platform.variant].filter(Boolean).join('/')}, ${image.layers.length} layers, manifest ${digest})`;
}

/** The image of `root` for `platform` (root itself when it is an image), with its descriptor. */
export async function platformImage(layout: string, root: Descriptor, platform: Platform, depth = 0): Promise<{ descriptor: Descriptor; manifest: ImageManifest }> {
  const parsed = await readLayoutManifest(layout, root);
  if (parsed.kind === 'image') return { descriptor: root, manifest: parsed.manifest };
  if (parsed.kind !== 'index' || !isIndexMediaType(root.mediaType) || depth > 4) throw new Error(`${root.digest} is a ${root.mediaType}, not an image`);
  const want = [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
  const chosen = parsed.index.manifests.find((m) => {
    const p = m.platform;
    return p !== undefined && p.os === platform.os && p.architecture === platform.architecture && (platform.variant === undefined || p.variant === undefined || p.variant === platform.variant);
  });
  if (!chosen) {
    const offered = parsed.index.manifests.map((m) => (m.platform ? [m.platform.os, m.platform.architecture, m.platform.variant].filter(Boolean).join('/') : 'unknown'));
    throw new Error(`${root.digest} has no image for ${want} (it has ${offered.join(', ')}); set source.platform`);
  }
  return platformImage(layout, chosen, platform, depth + 1);
}
