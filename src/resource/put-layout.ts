import { constants } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isSha256Digest, sha256Digest } from '../image/digest.js';
import { MediaType, isImageManifestMediaType, isIndexMediaType } from '../image/media-types.js';
import type { Descriptor } from '../image/oci.schema.js';
import { OCI_LAYOUT_CONTENT, OCI_LAYOUT_FILE, REF_NAME, blobPath, readLayoutIndex } from '../store/layout.js';

const MAX_SMALL_FILE = 1024;
const MAX_INDEX_BLOB = 4 * 1024 * 1024;

/**
 * Multi-platform layouts that name their index indirectly, rewritten as a layout whose
 * index.json has that one index (so a put stores the index, with its digest):
 * - a get output whose `digest` names an index blob of `oci/` that index.json does not list
 *   (cartorio's get lists the platform manifests, as registry-image does);
 * - a layout whose index.json is itself the multi-platform index — registry-image's
 *   `oci-layout` get of an index (go-containerregistry writes the index as index.json) — told
 *   by the `digest` file naming index.json's own digest, or, without one, by entries that are
 *   all image manifests with distinct platforms and no differing ref names.
 * Returns the rewritten layout (under `scratch`), or undefined when `input` is none of these.
 */
export async function singleIndexLayout(input: string, scratch: string, tag: string): Promise<string | undefined> {
  const isFile = async (path: string): Promise<boolean> => (await stat(path).catch(() => undefined))?.isFile() === true;
  let layout: string;
  let digest: string | undefined;
  if (await isFile(join(input, OCI_LAYOUT_FILE))) layout = input;
  else if ((await isFile(join(input, 'oci', OCI_LAYOUT_FILE))) && (await isFile(join(input, 'repository')))) {
    layout = join(input, 'oci');
    if (await isFile(join(input, 'digest'))) {
      const text = (await readFile(join(input, 'digest'), 'utf8')).slice(0, MAX_SMALL_FILE).trim();
      if (isSha256Digest(text)) digest = text;
    }
  } else return undefined;
  const index = await readLayoutIndex(layout);
  if (!index) return undefined;
  const indexBytes = await readFile(join(layout, 'index.json'));
  let root: Descriptor | undefined;
  let rootBytes: Buffer | undefined;
  if (digest !== undefined && !index.manifests.some((m) => m.digest === digest)) {
    const info = await stat(blobPath(layout, digest)).catch(() => undefined);
    if (info?.isFile() && info.size <= MAX_INDEX_BLOB) {
      const bytes = await readFile(blobPath(layout, digest));
      const mediaType = indexMediaType(bytes);
      if (mediaType && sha256Digest(bytes) === digest) root = { mediaType, digest, size: bytes.length };
    } else if (sha256Digest(indexBytes) === digest) {
      rootBytes = indexBytes;
    }
  } else if (digest === undefined && isPlatformList(index.manifests)) {
    // The index the entries came from, when the layout keeps it (cartorio's get does); else index.json is the index.
    root = await findIndexOf(layout, index.manifests);
    if (!root) rootBytes = indexBytes;
  }
  if (rootBytes) root = { mediaType: indexMediaType(rootBytes) ?? MediaType.ociIndex, digest: sha256Digest(rootBytes), size: rootBytes.length };
  if (!root) return undefined;

  const out = join(scratch, 'put-layout');
  await mkdir(join(out, 'blobs', 'sha256'), { recursive: true });
  for (const name of await readdir(join(layout, 'blobs', 'sha256'))) {
    await copyFile(join(layout, 'blobs', 'sha256', name), join(out, 'blobs', 'sha256', name), constants.COPYFILE_FICLONE);
  }
  if (rootBytes) await writeFile(blobPath(out, root.digest), rootBytes);
  await writeFile(join(out, OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT);
  const entry = { mediaType: root.mediaType, digest: root.digest, size: root.size, annotations: { [REF_NAME]: tag } };
  await writeFile(join(out, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [entry] }));
  return out;
}

function indexMediaType(bytes: Buffer): string | undefined {
  try {
    const data = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown };
    if (!Array.isArray(data.manifests)) return undefined;
    if (data.mediaType === undefined) return MediaType.ociIndex;
    return typeof data.mediaType === 'string' && isIndexMediaType(data.mediaType) ? data.mediaType : undefined;
  } catch {
    return undefined;
  }
}

// Two or more image manifests, each for another platform, with no ref names that tell them apart as tags.
function isPlatformList(manifests: Descriptor[]): boolean {
  if (manifests.length < 2 || !manifests.every((m) => isImageManifestMediaType(m.mediaType) && m.platform)) return false;
  const platforms = new Set(manifests.map((m) => JSON.stringify([m.platform?.os, m.platform?.architecture, m.platform?.variant ?? ''])));
  const refs = new Set(manifests.map((m) => m.annotations?.[REF_NAME] ?? ''));
  return platforms.size === manifests.length && refs.size === 1;
}

async function findIndexOf(layout: string, entries: Descriptor[]): Promise<Descriptor | undefined> {
  const want = entries.map((m) => m.digest).sort().join(',');
  for (const name of await readdir(join(layout, 'blobs', 'sha256'))) {
    const path = join(layout, 'blobs', 'sha256', name);
    const info = await stat(path);
    if (!info.isFile() || info.size > MAX_INDEX_BLOB) continue;
    const bytes = await readFile(path);
    const mediaType = indexMediaType(bytes);
    if (!mediaType) continue;
    const manifests = (JSON.parse(bytes.toString('utf8')) as { manifests: Array<{ digest?: unknown }> }).manifests;
    if (manifests.map((m) => String(m.digest)).sort().join(',') === want) return { mediaType, digest: sha256Digest(bytes), size: bytes.length };
  }
  return undefined;
}
