import { parseManifest } from '../../image/manifest.js';
import { MediaType, isIndexMediaType } from '../../image/media-types.js';
import type { Descriptor } from '../../image/oci.schema.js';
import type { ImageSource } from '../../store/image-source.js';
import { readSmallBlob } from '../../store/small-blob.js';
import type { RepositorySnapshot } from '../../store/snapshot.js';

/** What a page shows of an image config: read tolerantly (a page never fails on an odd config). */
export interface ConfigFacts {
  created?: string;
  platform?: string;
  labels: [string, string][];
}

export interface LayerFacts {
  digest: string;
  size: number;
  mediaType: string;
  compression: string;
}

/** One image manifest: its own bytes, config and layers. `size` counts all three. */
export interface ManifestFacts {
  digest: string;
  mediaType: string;
  size: number;
  artifactType?: string;
  config?: ConfigFacts;
  layers: LayerFacts[];
  annotations: [string, string][];
  /** Why something could not be read (the rest is still shown). */
  problem?: string;
}

/** One platform of an index: the descriptor's platform, and that manifest's facts. */
export interface PlatformFacts {
  platform: string;
  /** A BuildKit attestation (platform unknown/unknown): not a platform a client pulls. */
  attestation: boolean;
  manifest: ManifestFacts;
}

/** A tagged root: an image manifest, or an index with its platforms. */
export interface ImageFacts {
  digest: string;
  mediaType: string;
  /** Every distinct blob counted once: the index, each platform's manifest, config and layers. */
  size: number;
  created?: string;
  manifest?: ManifestFacts;
  platforms: PlatformFacts[];
  annotations: [string, string][];
  problem?: string;
}

/** How many configs' facts are remembered (by digest, so never stale): ~300 bytes each. */
const CONFIG_CACHE_ENTRIES = 20_000;
const configCache = new Map<string, ConfigFacts | null>();

/** Reads repository `name`'s manifests through its snapshot and its configs through `source`. */
export class ImageReader {
  readonly #source: ImageSource;
  readonly #snapshot: RepositorySnapshot;

  constructor(source: ImageSource, snapshot: RepositorySnapshot) {
    this.#source = source;
    this.#snapshot = snapshot;
  }

  /** The facts of the tagged root `digest`: an index's platforms one level down, nothing deeper. */
  async image(digest: string): Promise<ImageFacts> {
    const stored = await this.#snapshot.manifest(digest).catch((error: Error) => error);
    if (stored === undefined || stored instanceof Error) {
      return { digest, mediaType: '', size: 0, platforms: [], annotations: [], problem: stored?.message ?? 'manifest not found in the store' };
    }
    const { mediaType } = stored.descriptor;
    if (!isIndexMediaType(mediaType)) {
      const manifest = await this.manifest(digest);
      return { digest, mediaType, size: manifest.size, ...(manifest.config?.created !== undefined && { created: manifest.config.created }), manifest, platforms: [], annotations: manifest.annotations };
    }
    const parsed = parseManifest(stored.bytes, mediaType, `${this.#snapshot.name}@${digest}`);
    if (parsed.kind !== 'index') throw new Error(`${digest}: an index media type parsed as an image`);
    const platforms = await Promise.all(parsed.index.manifests.map(async (child) => this.#platform(child)));
    let size = stored.bytes.length;
    const counted = new Set<string>([digest]);
    for (const { manifest } of platforms) size += uniqueSize(manifest, counted);
    // The newest platform's date, compared as times (configs write RFC 3339 with any offset).
    const dated = platforms.filter((p) => !p.attestation).map((p) => p.manifest.config?.created).filter((c): c is string => c !== undefined && !Number.isNaN(Date.parse(c)));
    const created = dated.sort((a, b) => Date.parse(a) - Date.parse(b)).pop();
    return { digest, mediaType, size, ...(created !== undefined && { created }), platforms, annotations: entries(parsed.index.annotations) };
  }

  /** An image manifest's facts (config read through the source, checked against its digest). */
  async manifest(digest: string): Promise<ManifestFacts> {
    try {
      const stored = await this.#snapshot.manifest(digest);
      if (!stored) return { digest, mediaType: '', size: 0, layers: [], annotations: [], problem: 'manifest not found in the store' };
      const parsed = parseManifest(stored.bytes, stored.descriptor.mediaType, `${this.#snapshot.name}@${digest}`);
      if (parsed.kind !== 'image') return { digest, mediaType: stored.descriptor.mediaType, size: stored.bytes.length, layers: [], annotations: [], problem: 'a nested index (not shown)' };
      const { config, layers, artifactType, annotations } = parsed.manifest;
      const facts: ManifestFacts = {
        digest,
        mediaType: stored.descriptor.mediaType,
        size: stored.bytes.length + config.size + layers.reduce((sum, layer) => sum + layer.size, 0),
        layers: layers.map((layer) => ({ digest: layer.digest, size: layer.size, mediaType: layer.mediaType, compression: compressionOf(layer.mediaType) })),
        annotations: entries(annotations),
        ...(artifactType !== undefined && { artifactType }),
      };
      const configFacts = await this.#config(config);
      if (configFacts) facts.config = configFacts;
      else if (config.mediaType === MediaType.ociConfig || config.mediaType === MediaType.dockerConfig) facts.problem = `config ${config.digest} could not be read`;
      return facts;
    } catch (error) {
      return { digest, mediaType: '', size: 0, layers: [], annotations: [], problem: (error as Error).message };
    }
  }

  /** When the image `digest` was created (an index: its newest platform), if its config says. */
  async created(digest: string): Promise<string | undefined> {
    return (await this.image(digest)).created;
  }

  async #platform(child: Descriptor): Promise<PlatformFacts> {
    const platform = child.platform ? [child.platform.os, child.platform.architecture, child.platform.variant].filter(Boolean).join('/') : '';
    const manifest = isIndexMediaType(child.mediaType)
      ? { digest: child.digest, mediaType: child.mediaType, size: child.size, layers: [], annotations: [], problem: 'a nested index (not shown)' }
      : await this.manifest(child.digest);
    const attestation = child.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || platform === 'unknown/unknown';
    return { platform: platform || manifest.config?.platform || 'unknown', attestation, manifest };
  }

  async #config(config: Descriptor): Promise<ConfigFacts | undefined> {
    if (config.mediaType !== MediaType.ociConfig && config.mediaType !== MediaType.dockerConfig) return undefined;
    const known = configCache.get(config.digest);
    if (known !== undefined) return known ?? undefined;
    const location = await this.#source.blob(this.#snapshot.name, config.digest);
    const bytes = location && (await readSmallBlob(location, config.digest));
    const facts = bytes ? configFacts(bytes) : undefined;
    if (configCache.size >= CONFIG_CACHE_ENTRIES) configCache.delete(configCache.keys().next().value as string);
    if (bytes) configCache.set(config.digest, facts ?? null);
    return facts;
  }
}

// Shared layers of a multi-platform index are counted once, as they are stored once.
function uniqueSize(manifest: ManifestFacts, counted: Set<string>): number {
  if (counted.has(manifest.digest)) return 0;
  counted.add(manifest.digest);
  if (manifest.layers.length === 0 && !manifest.config) return manifest.size;
  let size = manifest.size;
  for (const layer of manifest.layers) {
    if (counted.has(layer.digest)) size -= layer.size;
    else counted.add(layer.digest);
  }
  return size;
}

function configFacts(bytes: Buffer): ConfigFacts | undefined {
  let data: unknown;
  try {
    data = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof data !== 'object' || data === null) return undefined;
  const config = data as Record<string, unknown>;
  const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);
  const inner = typeof config['config'] === 'object' && config['config'] !== null ? (config['config'] as Record<string, unknown>) : {};
  const platform = [text(config['os']), text(config['architecture']), text(config['variant'])].filter(Boolean).join('/');
  const created = text(config['created']);
  return { ...(created !== undefined && { created }), ...(platform !== '' && { platform }), labels: entries(inner['Labels']) };
}

/** A string map (labels, annotations) as sorted pairs; anything else in it is left out. */
function entries(value: unknown): [string, string][] {
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value as Record<string, unknown>)
    .filter((pair): pair is [string, string] => typeof pair[1] === 'string')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The compression a layer media type names (image-spec media-types.md), for the layers table. */
export function compressionOf(mediaType: string): string {
  if (mediaType.endsWith('+gzip') || mediaType.endsWith('.tar.gzip')) return 'gzip';
  if (mediaType.endsWith('+zstd')) return 'zstd';
  if (mediaType.endsWith('.tar') || mediaType.endsWith('diff.tar')) return 'none';
  return '—';
}
