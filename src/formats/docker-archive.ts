import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { buildImageManifest } from '../image/config.js';
import { HashingStream } from '../image/digest.js';
import { MediaType, layerMediaType } from '../image/media-types.js';
import { imageConfigSchema, type ImageConfig } from '../image/oci.schema.js';
import { parseImageReference } from '../image/reference.js';
import { compileValidator, parseJson } from '../image/validate.js';
import type { Ingest } from '../store/ingest.js';
import { asLoadError, readImageArchive, type ArchiveFiles } from './archive-reader.js';
import { compressionOf, inflating, inflationLimit, type Compression } from './input-stream.js';
import { LoadError } from './load-error.js';
import { MAX_INDEX_BYTES, imagesFromIndex, parseLayoutIndex } from './oci-index.js';
import type { LoadOptions, PendingImage } from './types.js';

/** `manifest.json` of `docker save` (moby image/tarexport): one entry per image. */
const dockerManifestSchema = {
  type: 'array',
  maxItems: 10000,
  items: {
    type: 'object',
    required: ['Config', 'Layers'],
    properties: {
      Config: { type: 'string' },
      RepoTags: { type: ['array', 'null'], items: { type: 'string' } },
      Layers: { type: 'array', items: { type: 'string' }, maxItems: 4096 },
      Parent: { type: 'string' },
      LayerSources: { type: 'object' },
    },
  },
} as const;
interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}
const validateDockerManifest = compileValidator<DockerManifestEntry[]>(dockerManifestSchema, 'manifest.json');
const validateConfig = compileValidator<ImageConfig>(imageConfigSchema, 'image config');

const CONFIG_NAME = /^(?:blobs\/sha256\/)?([a-f0-9]{64})(?:\.json)?$/;

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
    if (manifest) await nameFromDockerManifest(input, images, await readDockerManifest(input, ingest, manifest.digest), files, ingest);
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
  const where = `${input}: manifest.json`;
  try {
    return validateDockerManifest(parseJson(await ingest.readBytes(digest, where), where), where);
  } catch (error) {
    throw new LoadError(input, (error as Error).message.replace(`${input}: `, ''), undefined, { cause: error });
  }
}

// Legacy docker save: config and layer.tar files; the manifest is built here (OCI, layers as stored).
async function legacyImage(input: string, entry: DockerManifestEntry, files: ArchiveFiles, ingest: Ingest): Promise<PendingImage[]> {
  const config = lookup(input, files, entry.Config, 'config');
  const claimed = CONFIG_NAME.exec(entry.Config)?.[1];
  if (claimed !== undefined && `sha256:${claimed}` !== config.digest) {
    throw new LoadError(input, `config "${entry.Config}" has digest ${config.digest}, not the one its name claims; the archive is corrupt`);
  }
  const where = `${input}: ${entry.Config}`;
  let parsed: ImageConfig;
  try {
    parsed = validateConfig(parseJson(await ingest.readBytes(config.digest, where), where), where);
  } catch (error) {
    throw new LoadError(input, (error as Error).message.replace(`${input}: `, ''), undefined, { cause: error });
  }
  const diffIds = parsed.rootfs.diff_ids;
  if (diffIds.length !== entry.Layers.length) {
    throw new LoadError(input, `manifest.json lists ${entry.Layers.length} layers but config ${entry.Config} has ${diffIds.length} diff_ids`);
  }
  const layers = [];
  for (const [i, name] of entry.Layers.entries()) {
    const layer = lookup(input, files, name, 'layer');
    const compression = await layerCompression(ingest, layer.digest);
    // A layer's diff_id is the digest of its tar: check it, so a corrupt layer never loads. An
    // uncompressed layer's is its own digest; a gzip or zstd one (some tools write them) is inflated to tell.
    const diffId = compression !== 'none' ? await inflatedDigest(input, name, ingest, layer, compression) : layer.digest;
    if (diffId !== diffIds[i]) {
      throw new LoadError(input, `layer "${name}" ${compression !== 'none' ? 'inflates to a tar with digest' : 'has digest'} ${diffId} but the config says ${diffIds[i] ?? '?'}; the archive is corrupt`);
    }
    layers.push({ mediaType: layerMediaType(compression), ...layer });
  }
  const manifest = buildImageManifest({ digest: config.digest, size: config.size }, layers);
  const written = await ingest.writeBytes(manifest, { where: `${input}: manifest` });
  const descriptor = { mediaType: MediaType.ociManifest, ...written };
  const byRepository = new Map<string | undefined, string[]>();
  for (const repoTag of entry.RepoTags ?? []) {
    const parsedTag = parseImageReference(repoTag);
    if (!parsedTag) throw new LoadError(input, `manifest.json has RepoTag "${repoTag}", which is not a valid image reference`);
    const tags = byRepository.get(parsedTag.repository) ?? [];
    const tag = parsedTag.tag ?? 'latest';
    if (!tags.includes(tag)) tags.push(tag);
    byRepository.set(parsedTag.repository, tags);
  }
  if (byRepository.size === 0) return [{ tags: [], descriptor }];
  return [...byRepository].map(([repository, tags]) => ({ ...(repository !== undefined && { repository }), tags, descriptor }));
}

// Docker 25+ archives: names may come only from manifest.json RepoTags, matched by config digest.
async function nameFromDockerManifest(input: string, images: PendingImage[], entries: DockerManifestEntry[], files: ArchiveFiles, ingest: Ingest): Promise<void> {
  for (const image of images) {
    if (image.repository !== undefined) continue;
    const bytes = await ingest.readBytes(image.descriptor.digest, input).catch(() => undefined);
    const configDigest = bytes ? (JSON.parse(bytes.toString()) as { config?: { digest?: string } }).config?.digest : undefined;
    const entry = entries.find((e) => files.get(normalize(e.Config))?.digest === configDigest);
    const first = entry?.RepoTags?.[0];
    const parsed = first !== undefined ? parseImageReference(first) : undefined;
    if (parsed) {
      image.repository = parsed.repository;
      if (image.tags.length === 0) image.tags = (entry?.RepoTags ?? []).map((t) => parseImageReference(t)).filter((r) => r?.repository === parsed.repository).map((r) => r?.tag ?? 'latest');
    }
  }
}

function lookup(input: string, files: ArchiveFiles, name: string, what: string): { digest: string; size: number } {
  const file = files.get(normalize(name));
  if (!file) throw new LoadError(input, `manifest.json names ${what} "${name}", which is not in the archive`, 'the archive is incomplete; save it again');
  return file;
}

function normalize(name: string): string {
  return name.replace(/^(\.\/)+/, '');
}

async function inflatedDigest(input: string, name: string, ingest: Ingest, layer: { digest: string; size: number }, compression: Exclude<Compression, 'none'>): Promise<string> {
  const hashing = new HashingStream();
  const discard = new Writable({ write: (_chunk, _encoding, done) => done() });
  try {
    await pipeline([createReadStream(ingest.pathOf(layer.digest) ?? '', { highWaterMark: 1024 * 1024 }), ...inflating(compression, inflationLimit(layer.size)), hashing, discard] as unknown as [NodeJS.ReadableStream, NodeJS.WritableStream]);
  } catch (error) {
    const problem = asLoadError(input, error).problem;
    throw new LoadError(input, `layer "${name}": ${problem}`, undefined, { cause: error });
  }
  return hashing.digest();
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
