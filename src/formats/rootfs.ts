import { stat } from 'node:fs/promises';
import { relative } from 'node:path';
import { buildImageConfig, buildImageManifest, defaultCreated, type ImageSettings } from '../image/config.js';
import { ChunkPool } from '../image/chunk-pool.js';
import { PACK_CHUNK, packTree } from '../image/layer-pack.js';
import { TreeWalk, TreeWalkError } from '../image/tree-walk.js';
import { HashingStream } from '../image/digest.js';
import { MediaType, layerMediaType } from '../image/media-types.js';
import { ParallelGzip } from '../image/parallel-gzip.js';
import type { Descriptor } from '../image/oci.schema.js';
import { hostPlatform } from '../image/platform.js';
import type { Ingest } from '../store/ingest.js';
import { asLoadError } from './archive-reader.js';
import { ByteCounter, inflationLimit, openInput, sniffCompression, zstdCompressor, zstdProblem } from './input-stream.js';
import { LayerCheck } from './layer-check.js';
import { LoadError } from './load-error.js';
import type { LoadOptions, PendingImage } from './types.js';

/** A layer written to the ingest, with what its config entry needs. */
export interface BuiltLayer {
  mediaType: string;
  digest: string;
  size: number;
  diffId: string;
}

/** A rootfs tarball (plain, gzip or zstd) as a one-layer image; the layer is the file, copied as is. */
export async function loadRootfsTar(input: string, ingest: Ingest, options: LoadOptions): Promise<PendingImage[]> {
  const layer = await ingestLayerTar(input, ingest, options);
  return [await buildImage(input, ingest, [layer], options.settings ?? {}, options, `cartorio load ${input}`)];
}

/** A directory as a one-layer image, packed in sorted order with links kept as links. */
export async function loadRootfsDir(input: string, ingest: Ingest, options: LoadOptions): Promise<PendingImage[]> {
  const layer = await packDirectory(input, ingest, options);
  return [await buildImage(input, ingest, [layer], options.settings ?? {}, options, `cartorio load ${input}`)];
}

/** Streams a layer tarball into the ingest, checking its entries and computing its diff_id. */
export async function ingestLayerTar(input: string, ingest: Ingest, options: LoadOptions): Promise<BuiltLayer> {
  const compression = await sniffCompression(input);
  const { size } = await stat(input);
  options.onStart?.(size);
  const check = new LayerCheck(compression, inflationLimit(size));
  try {
    const through = options.onBytes ? [new ByteCounter(options.onBytes), check] : [check];
    const blob = await ingest.writeStream(openInput(input), { where: input, through });
    return { mediaType: layerMediaType(compression), ...blob, diffId: check.diffId() ?? blob.digest };
  } catch (error) {
    throw asLoadError(input, error);
  }
}

/** Packs a directory into a layer (gzip unless `compression` is none or zstd), hashing tar and blob in one pass. */
export async function packDirectory(input: string, ingest: Ingest, options: LoadOptions): Promise<BuiltLayer> {
  const compression = options.compression ?? 'gzip';
  const noZstd = compression === 'zstd' ? zstdProblem() : undefined;
  if (noZstd !== undefined) throw new LoadError(input, `cannot be packed with --compression zstd: ${noZstd}`, 'run cartorio on Node.js 24, or use --compression gzip');
  // Listed on another thread while it is packed; the progress total comes when the listing ends.
  const walk = new TreeWalk(input);
  let listed = false;
  let early = 0;
  walk.onListed = (contentBytes) => {
    listed = true;
    options.onStart?.(contentBytes);
    if (early > 0) options.onBytes?.(early);
  };
  const onBytes = options.onBytes && ((bytes: number): void => (listed ? options.onBytes?.(bytes) : void (early += bytes)));
  const mtime = options.mtime ?? clampedMtime();
  // The tar's 1 MiB chunks go to another thread and come back to be filled again.
  const pool = new ChunkPool(PACK_CHUNK);
  const tar = packTree(walk, { pool, ...(mtime && { mtime }), ...(onBytes && { onBytes }) });
  try {
    if (compression === 'none') {
      // The blob is the tar itself: its digest is the diff_id, hashed once.
      const blob = await ingest.writeStream(tar, { where: input, offThread: true, recycle: pool.give });
      return { mediaType: layerMediaType(compression), ...blob, diffId: blob.digest };
    }
    if (compression === 'zstd') {
      const diff = new HashingStream();
      const blob = await ingest.writeStream(tar, { where: input, through: [diff, zstdCompressor()] });
      return { mediaType: layerMediaType(compression), ...blob, diffId: diff.digest() };
    }
    // Deflated on every core in fixed blocks: the same bytes on any machine (image/parallel-gzip.ts).
    const gzip = new ParallelGzip({ level: options.gzipLevel ?? 6, adopt: { pool } });
    const blob = await ingest.writeStream(tar, { where: input, through: [gzip] });
    return { mediaType: layerMediaType(compression), ...blob, diffId: gzip.diffId() };
  } catch (error) {
    throw error instanceof TreeWalkError ? treeError(input, error) : asLoadError(input, error);
  }
}

// Names are read as UTF-8 strings, so a name that is not UTF-8 cannot be found again to be packed:
// refused by name, with the way round it (tar keeps names as bytes, and a rootfs tar loads as is).
function treeError(input: string, error: unknown): LoadError {
  const { message, code, path } = error as NodeJS.ErrnoException;
  if (code === 'ENOENT' && path?.includes('\uFFFD')) {
    return new LoadError(input, `holds a file whose name is not valid UTF-8 (${JSON.stringify(relative(input, path))}), which cannot be packed from a directory`, `rename it, or pack the directory yourself (tar -C ${input} -cf rootfs.tar .) and load the tar, which keeps names as bytes`, { cause: error });
  }
  if (code !== undefined) return new LoadError(input, message.replace(`${input}/`, ''), undefined, { cause: error });
  return new LoadError(input, message, 'fix or remove the link; cartorio never follows links out of a rootfs', { cause: error });
}

/** Writes config and manifest for layers built from a rootfs; returns the pending image. */
export async function buildImage(input: string, ingest: Ingest, layers: BuiltLayer[], settings: ImageSettings, options: LoadOptions, createdBy: string): Promise<PendingImage> {
  const config = buildImageConfig({
    platform: options.platform ?? hostPlatform(),
    settings,
    diffIds: layers.map((layer) => layer.diffId),
    created: options.created ?? defaultCreated(process.env['SOURCE_DATE_EPOCH']),
    createdBy,
  });
  const configBlob = await ingest.writeBytes(config, { where: `${input}: config` });
  const manifest = buildImageManifest(configBlob, layers);
  const manifestBlob = await ingest.writeBytes(manifest, { where: `${input}: manifest` });
  const descriptor: Descriptor = { mediaType: MediaType.ociManifest, ...manifestBlob };
  return { tags: [], descriptor };
}

// Reproducible builds (reproducible-builds.org SOURCE_DATE_EPOCH): when set, it is every entry's mtime.
function clampedMtime(): Date | undefined {
  const epoch = process.env['SOURCE_DATE_EPOCH'];
  return epoch !== undefined && /^\d+$/.test(epoch) ? new Date(Number(epoch) * 1000) : undefined;
}

