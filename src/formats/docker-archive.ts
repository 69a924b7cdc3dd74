import { open, stat } from 'node:fs/promises';
import { MediaType, layerMediaType } from '../image/media-types.js';
import type { Ingest } from '../store/ingest.js';
import { readImageArchive, type ArchiveFiles } from './archive-reader.js';
import { type DockerManifestEntry, buildLegacyImage, inflatedDigest, nameFromDockerManifest, normalizeArchiveName, parseDockerManifest } from './docker-manifest.js';
import { compressionOf, type Compression } from './input-stream.js';
import { LoadError } from './load-error.js';
import { MAX_INDEX_BYTES, imagesFromIndex, parseLayoutIndex } from './oci-index.js';
import type { LoadOptions, PendingImage } from './types.js';

/**
 * An image archive: `docker save` output (legacy layout, or Docker 25+ with an OCI layout
 * inside) or an OCI archive. Read in one pass; the image is assembled after the archive ends.
 */
export async function loadImageArchive(input: string, ingest: Ingest, options: LoadOptions): Promise<PendingImage[]> {
  options.onStart?.((await stat(input)).size);
  const files = await readImageArchive(input, ingest, options.onBytes);
  const index = files.get('index.json');
  if (index && files.has('oci-layout')) {
    const layoutIndex = parseLayoutIndex(input, await readIndex(input, ingest, index.digest), `${input}: index.json`);
    const images = imagesFromIndex(input, layoutIndex);
    const manifest = files.get('manifest.json');
    if (manifest) {
      const entries = await readDockerManifest(input, ingest, manifest.digest);
      await nameFromDockerManifest(images, entries, (name) => files.get(name)?.digest, (digest) => ingest.readBytes(digest, input));
    }
    return images;
  }
  const manifest = files.get('manifest.json');
  if (!manifest) throw new LoadError(input, 'has neither manifest.json (docker save) nor index.json + oci-layout (OCI archive)', 'is it a rootfs tarball? pass --format rootfs-tar');
  const entries = await readDockerManifest(input, ingest, manifest.digest);
  const images: PendingImage[] = [];
  for (const entry of entries) images.push(...(await legacyImage(input, entry, files, ingest)));
  return images;
}

async function readIndex(input: string, ingest: Ingest, digest: string): Promise<Buffer> {
  try {
    return await ingest.readBytes(digest, `${input}: index.json`, MAX_INDEX_BYTES);
  } catch (error) {
    throw new LoadError(input, (error as Error).message.replace(`${input}: `, ''), undefined, { cause: error });
  }
}

async function readDockerManifest(input: string, ingest: Ingest, digest: string): Promise<DockerManifestEntry[]> {
  return parseDockerManifest(input, await ingest.readBytes(digest, `${input}: manifest.json`));
}

// Legacy docker save as `load` reads it: blobs from the ingest, gzip layers inflated to check their diff_id.
async function legacyImage(input: string, entry: DockerManifestEntry, files: ArchiveFiles, ingest: Ingest): Promise<PendingImage[]> {
  const { manifest, names } = await buildLegacyImage(input, entry, {
    config: async (name) => {
      const config = files.get(normalizeArchiveName(name));
      return config && { ...config, bytes: await ingest.readBytes(config.digest, `${input}: ${name}`) };
    },
    layer: async (name, diffId) => {
      const layer = files.get(normalizeArchiveName(name));
      if (!layer) return undefined;
      const compression = await layerCompression(ingest, layer.digest);
      // A layer's diff_id is the digest of its tar: check it, so a corrupt layer never loads. An
      // uncompressed layer's is its own digest; a gzip or zstd one (some tools write them) is inflated to tell.
      const found = compression !== 'none' ? await inflatedDigest(input, name, ingest.pathOf(layer.digest) ?? '', 0, layer.size, undefined, compression) : layer.digest;
      if (found !== diffId) {
        throw new LoadError(input, `layer "${name}" ${compression !== 'none' ? 'inflates to a tar with digest' : 'has digest'} ${found} but the config says ${diffId}; the archive is corrupt`);
      }
      return { mediaType: layerMediaType(compression), ...layer };
    },
  });
  const written = await ingest.writeBytes(manifest, { where: `${input}: manifest` });
  const descriptor = { mediaType: MediaType.ociManifest, ...written };
  return names.map((name) => ({ ...name, descriptor }));
}

async function layerCompression(ingest: Ingest, digest: string): Promise<Compression> {
  const path = ingest.pathOf(digest);
  if (!path) return 'none';
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await handle.read(head, 0, 4, 0);
    return compressionOf(head.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}
