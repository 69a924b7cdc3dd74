import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageSettings } from '../image/config.js';
import { isTag, repositoryNameProblem } from '../image/reference.js';
import { compileValidator, parseJson } from '../image/validate.js';
import type { Ingest } from '../store/ingest.js';
import { resourceMetadataSchema, rootfsMetadataSchema, type ResourceMetadata, type RootfsMetadata } from './concourse.schema.js';
import { LoadError } from './load-error.js';
import { buildImage, ingestLayerTar, packDirectory } from './rootfs.js';
import type { LoadOptions, PendingImage } from './types.js';

const validateRootfsMetadata = compileValidator<RootfsMetadata>(rootfsMetadataSchema, 'metadata.json');
const validateResourceMetadata = compileValidator<ResourceMetadata>(resourceMetadataSchema, 'resource_metadata.json');
const MAX_METADATA_BYTES = 1024 * 1024;

/** A Concourse rootfs image (`rootfs/` + `metadata.json`): one layer, config from metadata.json. */
export async function loadConcourseRootfs(input: string, ingest: Ingest, options: LoadOptions): Promise<PendingImage[]> {
  const metadata = await readMetadata(input, 'metadata.json', validateRootfsMetadata);
  const rootfs = join(input, 'rootfs');
  const info = await lstat(rootfs);
  if (!info.isDirectory()) throw new LoadError(input, 'rootfs is not a directory (a symlink is refused: it could point anywhere on this machine)');
  const layer = await packDirectory(rootfs, ingest, options);
  const fromMetadata: ImageSettings = {
    ...(metadata.env && { env: metadata.env }),
    ...(metadata.user !== undefined && { user: metadata.user }),
    ...(metadata.entrypoint && { entrypoint: metadata.entrypoint }),
    ...(metadata.cmd && { cmd: metadata.cmd }),
  };
  const settings = mergeSettings(fromMetadata, options.settings ?? {});
  return [await buildImage(input, ingest, [layer], settings, options, 'concourse rootfs image')];
}

/** A resource-type bundle (`rootfs.tgz` + `resource_metadata.json`): repository = type, tags = version + latest. */
export async function loadResourceBundle(input: string, ingest: Ingest, options: LoadOptions): Promise<PendingImage[]> {
  const metadata = await readMetadata(input, 'resource_metadata.json', validateResourceMetadata);
  const problem = repositoryNameProblem(metadata.type);
  if (problem) throw new LoadError(input, `resource_metadata.json type "${metadata.type}" cannot be a repository name: it ${problem}`, 'pass --name REPO');
  if (metadata.version !== undefined && !isTag(metadata.version)) {
    throw new LoadError(input, `resource_metadata.json version "${metadata.version}" is not a valid tag`, 'pass --tag TAG');
  }
  const layer = await ingestLayerTar(join(input, 'rootfs.tgz'), ingest, options);
  const image = await buildImage(input, ingest, [layer], options.settings ?? {}, options, 'concourse resource type bundle');
  const tags = metadata.version !== undefined && metadata.version !== 'latest' ? [metadata.version, 'latest'] : ['latest'];
  return [{ ...image, repository: metadata.type, tags }];
}

async function readMetadata<T>(input: string, file: string, validate: (data: unknown, where: string) => T): Promise<T> {
  const path = join(input, file);
  try {
    const info = await lstat(path);
    if (!info.isFile()) throw new Error(`${path}: not a regular file`);
    if (info.size > MAX_METADATA_BYTES) throw new Error(`${path}: ${info.size} bytes, over the ${MAX_METADATA_BYTES}-byte limit`);
    return validate(parseJson(await readFile(path), path), path);
  } catch (error) {
    throw new LoadError(input, (error as Error).message.replace(`${input}/`, ''), `${file} must be a JSON object as Concourse writes it`, { cause: error });
  }
}

/** Flags given on the command line win over what the input says. */
export function mergeSettings(base: ImageSettings, overrides: ImageSettings): ImageSettings {
  const merged: ImageSettings = { ...base };
  for (const [key, value] of Object.entries(overrides) as [keyof ImageSettings, unknown][]) {
    if (value === undefined) continue;
    if (key === 'env') merged.env = mergeEnv(base.env ?? [], overrides.env ?? []);
    else if (key === 'labels') merged.labels = { ...base.labels, ...overrides.labels };
    else (merged as Record<string, unknown>)[key] = value;
  }
  return merged;
}

function mergeEnv(base: string[], overrides: string[]): string[] {
  const keyOf = (entry: string): string => entry.split('=')[0] ?? entry;
  const replaced = new Set(overrides.map(keyOf));
  return [...base.filter((entry) => !replaced.has(keyOf(entry))), ...overrides];
}
