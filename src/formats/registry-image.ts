import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isSha256Digest } from '../image/digest.js';
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
  const chosen = digest === undefined ? all : all.filter((image) => image.descriptor.digest === digest);
  if (chosen.length === 0) throw new LoadError(input, `oci/index.json has no image with digest ${digest ?? '?'}`, 'the get output is incomplete; run the get again');
  await ingestReachable(layout, chosen.map((image) => image.descriptor), ingest, options);
  const first = chosen[0] as PendingImage;
  return [{ repository: reference.repository, tags: [tag], descriptor: first.descriptor }];
}

async function readSmallFile(dir: string, name: string): Promise<string> {
  const text = (await readFile(join(dir, name), 'utf8')).trim();
  if (text.length > 1024) throw new LoadError(dir, `${name} file is longer than 1024 bytes`);
  return text;
}
