import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isImageManifestMediaType, isIndexMediaType } from '../image/media-types.js';
import { imageConfigSchema, type Descriptor, type ImageConfig, type ImageManifest } from '../image/oci.schema.js';
import type { Platform } from '../image/platform.js';
import { compileValidator, parseJson } from '../image/validate.js';
import { blobPath } from '../store/layout.js';
import { RootfsWriter } from './extract.js';
import type { Log } from './io.js';
import { readLayoutManifest } from './layout-copy.js';

const validateConfig = compileValidator<ImageConfig>(imageConfigSchema, 'image config');
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/** `metadata.json` of a Concourse rootfs image: what the worker reads to run a task image. */
export interface RootfsMetadata {
  env: string[];
  user: string;
  entrypoint?: string[];
  cmd?: string[];
}

/**
 * Unpacks image `root` of the OCI layout `layout` into `<dest>/rootfs` (layers applied in
 * order) and writes `<dest>/metadata.json` — the shape Concourse runs tasks from. An index is
 * resolved to the manifest for `platform`. Built under a temp name and renamed into place.
 * Returns a line saying what it did.
 */
export async function unpackRootfs(layout: string, root: Descriptor, platform: Platform, dest: string, log: Log, preserveOwnership: boolean): Promise<string> {
  const image = await selectImage(layout, root, platform);
  const config = await readConfig(layout, image.config);
  const partial = join(dest, `.rootfs.partial-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(partial, { mode: 0o755 });
    const writer = new RootfsWriter(partial, {
      preserveOwnership,
      onSkip: (path, why) => log.debug(`rootfs: skipped ${path}: ${why}`),
    });
    for (const [i, layer] of image.layers.entries()) {
      await writer.applyLayerFile(blobPath(layout, layer.digest), `layer ${i + 1}/${image.layers.length} ${layer.digest}`);
    }
    await writer.finish();
    await rm(join(dest, 'rootfs'), { recursive: true, force: true });
    await rename(partial, join(dest, 'rootfs'));
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    throw error;
  }
  const metadata: RootfsMetadata = {
    env: config.config?.Env ?? [],
    user: config.config?.User ?? '',
    ...(config.config?.Entrypoint && { entrypoint: config.config.Entrypoint }),
    ...(config.config?.Cmd && { cmd: config.config.Cmd }),
  };
  await writeFile(join(dest, 'metadata.json'), JSON.stringify(metadata) + '\n');
  return `unpacked ${image.layers.length} layers into rootfs/ (${config.os}/${config.architecture}) and wrote metadata.json`;
}

/** The image manifest to unpack: `root` itself, or the entry of an index for `platform`. */
async function selectImage(layout: string, root: Descriptor, platform: Platform): Promise<ImageManifest> {
  if (isImageManifestMediaType(root.mediaType)) {
    const parsed = await readLayoutManifest(layout, root);
    if (parsed.kind === 'image') return parsed.manifest;
  }
  if (!isIndexMediaType(root.mediaType)) throw new Error(`${root.digest} is a ${root.mediaType}, not an image`);
  const parsed = await readLayoutManifest(layout, root);
  if (parsed.kind !== 'index') throw new Error(`${root.digest} is not an image index`);
  const matches = (candidate: Descriptor): boolean => {
    const p = candidate.platform;
    if (!p || p.os !== platform.os || p.architecture !== platform.architecture) return false;
    return platform.variant === undefined || p.variant === undefined || p.variant === platform.variant;
  };
  const chosen = parsed.index.manifests.find(matches);
  if (!chosen) {
    const offered = parsed.index.manifests.map((m) => (m.platform ? [m.platform.os, m.platform.architecture, m.platform.variant].filter(Boolean).join('/') : 'unknown'));
    const wanted = [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
    throw new Error(`${root.digest} has no image for ${wanted} (it has ${offered.join(', ')}); set source.platform`);
  }
  return selectImage(layout, chosen, platform);
}

async function readConfig(layout: string, descriptor: Descriptor): Promise<ImageConfig> {
  if (descriptor.size > MAX_CONFIG_BYTES) throw new Error(`config ${descriptor.digest} is ${descriptor.size} bytes, over the ${MAX_CONFIG_BYTES}-byte limit`);
  const where = `config ${descriptor.digest}`;
  return validateConfig(parseJson(await readFile(blobPath(layout, descriptor.digest)), where), where);
}
