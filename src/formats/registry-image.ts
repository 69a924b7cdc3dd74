import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isSha256Digest, sha256Digest } from '../image/digest.js';
import { MediaType, isIndexMediaType } from '../image/media-types.js';
import { blobPath } from '../store/layout.js';
import { isTag, parseImageReference } from '../image/reference.js';
import type { Ingest } from '../store/ingest.js';
import { LoadError } from './load-error.js';
import { ingestReachable, readLayoutImages } from './oci-layout.js';
import type { LoadOptions, PendingImage } from './types.js';

/**
 * The output of registry-image's `get` with an OCI layout: `oci/` plus `repository`, `tag` and
 * `digest` files. The image named by `digest` is loaded under `repository:tag`.
 */
export async function loadRegistryImageOutput(input: string, ingest: Ingest, options: LoadOptions): Promise<PendingImage[]> {
  const repositoryText = await readSmallFile(input, 'repository');
  const reference = parseImageReference(repositoryText);
  if (!reference) throw new LoadError(input, `repository file says "${repositoryText}", which is not an image name`, 'pass --name REPO');
  const tag = (await readSmallFile(input, 'tag').catch(() => undefined)) ?? reference.tag ?? 'latest';
  if (!isTag(tag)) throw new LoadError(input, `tag file says "${tag}", which is not a valid tag`, 'pass --tag TAG');
  const digest = await readSmallFile(input, 'digest').catch(() => undefined);
  if (digest !== undefined && !isSha256Digest(digest)) throw new LoadError(input, `digest file says "${digest}", which is not a sha256 digest`);
  const layout = join(input, 'oci');
  const all = await readLayoutImages(layout);
  let chosen = digest === undefined ? all : all.filter((image) => image.descriptor.digest === digest);
  // A multi-platform get lists the platform manifests in index.json and keeps the index, whose
  // digest the `digest` file names, in blobs/ (cartorio's `in`; registry-image's oci-layout).
  if (chosen.length === 0 && digest !== undefined) chosen = await indexBlob(layout, digest, reference.repository, tag);
  if (chosen.length === 0) throw new LoadError(input, `oci/index.json has no image with digest ${digest ?? '?'}`, 'the get output is incomplete; run the get again');
  await ingestReachable(layout, chosen.map((image) => image.descriptor), ingest, options);
  const first = chosen[0] as PendingImage;
  return [{ repository: reference.repository, tags: [tag], descriptor: first.descriptor }];
}

async function indexBlob(layout: string, digest: string, repository: string, tag: string): Promise<PendingImage[]> {
  const bytes = await readFile(blobPath(layout, digest)).catch(() => undefined);
  if (bytes === undefined || bytes.length > 4 * 1024 * 1024 || sha256Digest(bytes) !== digest) return [];
  let mediaType: unknown;
  try {
    const data = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown };
    if (!Array.isArray(data.manifests)) return [];
    mediaType = data.mediaType ?? MediaType.ociIndex;
  } catch {
    return [];
  }
  if (typeof mediaType !== 'string' || !isIndexMediaType(mediaType)) return [];
  return [{ repository, tags: [tag], descriptor: { mediaType, digest, size: bytes.length } }];
}

async function readSmallFile(dir: string, name: string): Promise<string> {
  const text = (await readFile(join(dir, name), 'utf8')).trim();
  if (text.length > 1024) throw new LoadError(dir, `${name} file is longer than 1024 bytes`);
  return text;
}
