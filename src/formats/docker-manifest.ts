import { createReadStream } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { buildImageManifest } from '../image/config.js';
import { HashingStream } from '../image/digest.js';
import { imageConfigSchema, type ImageConfig } from '../image/oci.schema.js';
import { parseImageReference } from '../image/reference.js';
import { compileValidator, parseJson } from '../image/validate.js';
import type { Compression } from './input-stream.js';
import { LoadError } from './load-error.js';
import type { PendingImage } from './types.js';

/**
 * A `docker save` archive's own description of its images (`manifest.json`, legacy layout): read
 * by `load` (docker-archive.ts) and by `serve FILE.tar` in place (archive-source.ts), which must
 * give every image the same manifest and names. Nothing here reads the archive as a stream.
 */

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
export interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}
const validateDockerManifest = compileValidator<DockerManifestEntry[]>(dockerManifestSchema, 'manifest.json');
const validateConfig = compileValidator<ImageConfig>(imageConfigSchema, 'image config');

const CONFIG_NAME = /^(?:blobs\/sha256\/)?([a-f0-9]{64})(?:\.json)?$/;

/** Parses and validates a docker save `manifest.json`. */
export function parseDockerManifest(input: string, bytes: Buffer): DockerManifestEntry[] {
  const where = `${input}: manifest.json`;
  try {
    return validateDockerManifest(parseJson(bytes, where), where);
  } catch (error) {
    throw new LoadError(input, (error as Error).message.replace(`${input}: `, ''), undefined, { cause: error });
  }
}

/** Where a legacy image's files are: in a load's ingest, or in an archive served in place. */
export interface LegacyFiles {
  /** The config file manifest.json names: digest and size of its bytes, and the bytes; undefined when absent. */
  config(name: string): Promise<{ digest: string; size: number; bytes: Buffer } | undefined>;
  /** The layer file manifest.json names, as a manifest's layer descriptor whose tar has digest `diffId`; undefined when absent. */
  layer(name: string, diffId: string): Promise<{ mediaType: string; digest: string; size: number } | undefined>;
}

/**
 * The OCI manifest of one legacy `docker save` image and the names its RepoTags give it. `load`
 * and `serve FILE.tar` both build it here, so a tag has one digest whether loaded or served in
 * place: config as stored, layers as stored (uncompressed, or gzip when a tool wrote them so).
 */
export async function buildLegacyImage(input: string, entry: DockerManifestEntry, files: LegacyFiles): Promise<{ manifest: Buffer; names: { repository?: string; tags: string[] }[] }> {
  const config = await files.config(entry.Config);
  if (!config) throw missing(input, entry.Config, 'config');
  const claimed = CONFIG_NAME.exec(entry.Config)?.[1];
  if (claimed !== undefined && `sha256:${claimed}` !== config.digest) {
    throw new LoadError(input, `config "${entry.Config}" has digest ${config.digest}, not the one its name claims; the archive is corrupt`);
  }
  const where = `${input}: ${entry.Config}`;
  let parsed: ImageConfig;
  try {
    parsed = validateConfig(parseJson(config.bytes, where), where);
  } catch (error) {
    throw new LoadError(input, (error as Error).message.replace(`${input}: `, ''), undefined, { cause: error });
  }
  const diffIds = parsed.rootfs.diff_ids;
  if (diffIds.length !== entry.Layers.length) {
    throw new LoadError(input, `manifest.json lists ${entry.Layers.length} layers but config ${entry.Config} has ${diffIds.length} diff_ids`);
  }
  const layers = [];
  for (const [i, name] of entry.Layers.entries()) {
    const layer = await files.layer(name, diffIds[i] as string);
    if (!layer) throw missing(input, name, 'layer');
    layers.push(layer);
  }
  const manifest = buildImageManifest({ digest: config.digest, size: config.size }, layers);
  const byRepository = new Map<string | undefined, string[]>();
  for (const repoTag of entry.RepoTags ?? []) {
    const parsedTag = parseImageReference(repoTag);
    if (!parsedTag) throw new LoadError(input, `manifest.json has RepoTag "${repoTag}", which is not a valid image reference`);
    const tags = byRepository.get(parsedTag.repository) ?? [];
    const tag = parsedTag.tag ?? 'latest';
    if (!tags.includes(tag)) tags.push(tag);
    byRepository.set(parsedTag.repository, tags);
  }
  if (byRepository.size === 0) return { manifest, names: [{ tags: [] }] };
  return { manifest, names: [...byRepository].map(([repository, tags]) => ({ ...(repository !== undefined && { repository }), tags })) };
}

/**
 * Docker 25+ archives: names may come only from manifest.json RepoTags, matched by config digest.
 * `configDigest` gives the digest of an archive file by name; `manifestBytes`, a manifest's bytes.
 */
export async function nameFromDockerManifest(images: PendingImage[], entries: DockerManifestEntry[], configDigest: (name: string) => string | undefined, manifestBytes: (digest: string) => Promise<Buffer | undefined>): Promise<void> {
  for (const image of images) {
    if (image.repository !== undefined) continue;
    const bytes = await manifestBytes(image.descriptor.digest).catch(() => undefined);
    const digest = bytes ? (JSON.parse(bytes.toString()) as { config?: { digest?: string } }).config?.digest : undefined;
    const entry = entries.find((e) => configDigest(normalizeArchiveName(e.Config)) === digest);
    const first = entry?.RepoTags?.[0];
    const parsed = first !== undefined ? parseImageReference(first) : undefined;
    if (parsed) {
      image.repository = parsed.repository;
      if (image.tags.length === 0) image.tags = (entry?.RepoTags ?? []).map((t) => parseImageReference(t)).filter((r) => r?.repository === parsed.repository).map((r) => r?.tag ?? 'latest');
    }
  }
}

function missing(input: string, name: string, what: string): LoadError {
  return new LoadError(input, `manifest.json names ${what} "${name}", which is not in the archive`, 'the archive is incomplete; save it again');
}

/** A file name as manifest.json gives it, without leading `./`. */
export function normalizeArchiveName(name: string): string {
  return name.replace(/^(\.\/)+/, '');
}

/** The digest of the tar a gzip (or zstd) layer inflates to: `size` bytes at `start` of `path` (or of the open `fd`). */
export async function inflatedDigest(input: string, name: string, path: string, start: number, size: number, fd?: number, compression: Exclude<Compression, 'none'> = 'gzip'): Promise<string> {
  // The loaders' streams (zlib, zstd) are needed only when a served layer is compressed.
  const [{ inflating, inflationLimit }, { asLoadError }] = await Promise.all([import('./input-stream.js'), import('./archive-reader.js')]);
  const hashing = new HashingStream();
  const discard = new Writable({ write: (_chunk, _encoding, done) => done() });
  const source = createReadStream(path, { highWaterMark: 1024 * 1024, start, end: start + size - 1, ...(fd !== undefined && { fd, autoClose: false }) });
  try {
    await pipeline([source, ...inflating(compression, inflationLimit(size)), hashing, discard] as unknown as [NodeJS.ReadableStream, NodeJS.WritableStream]);
  } catch (error) {
    const problem = asLoadError(input, error).problem;
    throw new LoadError(input, `layer "${name}": ${problem}`, undefined, { cause: error });
  }
  return hashing.digest();
}

