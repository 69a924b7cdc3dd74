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
  const user = metadata.user !== undefined && options.settings?.user === undefined ? await resolveUser(input, rootfs, metadata.user, options) : metadata.user;
  const layer = await packDirectory(rootfs, ingest, options);
  const fromMetadata: ImageSettings = {
    ...(metadata.env && { env: metadata.env }),
    ...(user !== undefined && { user }),
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

/**
 * The `user` of metadata.json as the image config must say it. Concourse runs a rootfs as the
 * named user with its own lookup, and as uid 0 for `root` even with no /etc/passwd (static and
 * busybox-style images); Docker and containerd look a name up in the image's /etc/passwd and
 * refuse to start when it is not there. So a name is kept when the rootfs defines it, `root`
 * becomes `0` when it does not (a group likewise), and any other unknown name is an error.
 */
async function resolveUser(input: string, rootfs: string, user: string, options: LoadOptions): Promise<string> {
  const [name = '', group] = user.split(':', 2);
  const mapped = [
    await resolveId(input, rootfs, name, 'passwd', user),
    ...(group === undefined ? [] : [await resolveId(input, rootfs, group, 'group', user)]),
  ].join(':');
  if (mapped !== user) options.onNotice?.(`${input}: metadata.json user "${user}" has no entry in rootfs/etc/${group === undefined ? 'passwd' : 'passwd or group'}; the image runs as "${mapped}", as Concourse runs it`);
  return mapped;
}

async function resolveId(input: string, rootfs: string, id: string, database: 'passwd' | 'group', user: string): Promise<string> {
  if (/^\d+$/.test(id)) return id;
  if ((await databaseNames(rootfs, database)).has(id)) return id;
  if (id === 'root') return '0';
  throw new LoadError(input, `metadata.json user "${user}": "${id}" is not in rootfs/etc/${database}, so no container runtime can start the image as that user`, `add the ${database === 'passwd' ? 'user' : 'group'} to rootfs/etc/${database}, or give a numeric id (--user UID[:GID])`);
}

// Names in rootfs/etc/passwd or group; a missing file, or one reached through a symlink (it could
// point outside the rootfs), defines none.
async function databaseNames(rootfs: string, database: 'passwd' | 'group'): Promise<Set<string>> {
  const etc = await lstat(join(rootfs, 'etc')).catch(() => undefined);
  const file = join(rootfs, 'etc', database);
  const info = etc?.isDirectory() ? await lstat(file).catch(() => undefined) : undefined;
  if (!info?.isFile() || info.size > MAX_METADATA_BYTES) return new Set();
  const text = await readFile(file, 'utf8');
  return new Set(text.split('\n').map((line) => line.split(':')[0] ?? '').filter((name) => name !== '' && !name.startsWith('#')));
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
