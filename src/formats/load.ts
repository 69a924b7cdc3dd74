import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SUBJECT_TAG, normalizeRepositoryName, repositoryNameProblem } from '../image/reference.js';
import { type CommitOptions, type CommitTarget, Ingest, type ImageToCommit } from '../store/ingest.js';
import { repositoryDir } from '../store/layout.js';
import { registerTempPath, releaseTempPath } from '../store/temp-paths.js';
import { parseManifest, rootKind, type RootKind } from '../image/manifest.js';
import { loadConcourseRootfs, loadResourceBundle } from './concourse.js';
import { detectFormat } from './detect.js';
import { loadImageArchive } from './docker-archive.js';
import { LoadError } from './load-error.js';
import { loadOciLayout } from './oci-layout.js';
import { loadRegistryImageOutput } from './registry-image.js';
import { loadRootfsDir, loadRootfsTar } from './rootfs.js';
import type { FormatName, Loader, LoadOptions, PendingImage } from './types.js';


const LOADERS: Record<FormatName, Loader> = {
  'docker-archive': loadImageArchive,
  'oci-archive': loadImageArchive,
  'oci-layout': loadOciLayout,
  'rootfs-tar': loadRootfsTar,
  'rootfs-dir': loadRootfsDir,
  'concourse-rootfs': loadConcourseRootfs,
  'resource-bundle': loadResourceBundle,
  'registry-image': loadRegistryImageOutput,
};

/** What a load published: one entry per image, with every tag it got. */
export interface LoadedImage {
  input: string;
  format: FormatName;
  repository: string;
  tags: string[];
  digest: string;
  mediaType: string;
  size: number;
}

/**
 * Loads every input into the store at `storeRoot` (a directory, or a bucket store's commit target)
 * as one transaction: all images appear together once every input has been read and checked, or
 * none do and the store is unchanged.
 */
export async function loadIntoStore(storeRoot: string | CommitTarget, inputs: string[], options: LoadOptions = {}): Promise<LoadedImage[]> {
  options = { ...options, ...(options.name !== undefined && { name: checkNameOption(inputs, options.name) }) };
  const ingest = await Ingest.begin(storeRoot);
  try {
    const loaded = await readInputs(inputs, ingest, options);
    await commit(ingest, loaded, inputs, { replace: options.replace === true, recordLoadTime: options.recordLoadTime !== false });
    return loaded;
  } catch (error) {
    await ingest.abort();
    throw error;
  }
}

/**
 * Writes an input as a standalone OCI layout at `dest` (no store). Every image must end up in
 * one repository (pass `name` for inputs that hold several); tags become ref names.
 */
export async function convertToLayout(input: string, dest: string, options: LoadOptions = {}): Promise<LoadedImage[]> {
  const existing = await readdir(dest).catch(() => undefined);
  if (existing !== undefined && existing.length > 0) throw new LoadError(dest, 'already exists and is not empty', 'choose a new destination or remove it');
  await mkdir(dirname(dest), { recursive: true });
  const scratch = join(dirname(dest), `.${basename(dest)}.cartorio-${process.pid}`);
  // A layout has no repository name, only ref names: every image goes into one, named for the scratch store.
  const repository = options.name ?? 'image';
  registerTempPath(scratch);
  try {
    const loaded = await loadIntoStore(scratch, [input], { ...options, name: repository, recordLoadTime: false });
    if (existing !== undefined) await rm(dest, { recursive: true });
    await rename(repositoryDir(scratch, repository), dest);
    return loaded;
  } finally {
    await rm(scratch, { recursive: true, force: true });
    releaseTempPath(scratch);
  }
}

async function readInputs(inputs: string[], ingest: Ingest, options: LoadOptions): Promise<LoadedImage[]> {
  const loaded: LoadedImage[] = [];
  for (const input of inputs) {
    const format = options.format ?? (await detectFormat(input));
    await checkFormatFits(input, format);
    const pending = await LOADERS[format](input, ingest, options);
    if (pending.length === 0) throw new LoadError(input, `holds no images (${format} input with an empty index or manifest list)`);
    const kinds = await Promise.all(pending.map(async (image) => image.tags.length > 0 && image.tags.every((tag) => SUBJECT_TAG.test(tag))
      ? 'artifact'
      : rootKind(parseManifest(await ingest.readBytes(image.descriptor.digest, input), image.descriptor.mediaType, `${input}: manifest ${image.descriptor.digest}`))));
    for (const image of nameImages(input, format, pending, kinds, options)) {
      loaded.push({ input, format, ...image, digest: image.descriptor.digest, mediaType: image.descriptor.mediaType, size: image.descriptor.size });
    }
  }
  checkOneDigestPerTag(loaded);
  return loaded;
}

// One load never gives one tag two digests: the later would silently replace the earlier.
function checkOneDigestPerTag(loaded: LoadedImage[]): void {
  const owners = new Map<string, LoadedImage>();
  for (const image of loaded) {
    for (const tag of image.tags) {
      const key = `${image.repository}:${tag}`;
      const first = owners.get(key);
      if (first !== undefined && first.digest !== image.digest) {
        const where = first.input === image.input ? image.input : `${first.input}, ${image.input}`;
        throw new LoadError(where, `would tag ${key} twice: ${first.digest} and ${image.digest}`, 'load them separately, or give --tag only to the one you mean');
      }
      owners.set(key, image);
    }
  }
}

async function commit(ingest: Ingest, loaded: LoadedImage[], inputs: string[], options: CommitOptions): Promise<void> {
  const images: ImageToCommit[] = loaded.map(({ repository, tags, digest, mediaType, size }) => ({ repository, tags, descriptor: { mediaType, digest, size } }));
  const where = inputs.length === 1 ? (inputs[0] as string) : inputs.join(', ');
  try {
    await ingest.commit(images, where, options);
  } catch (error) {
    if (error instanceof LoadError) throw error;
    // A problem of the input names it first (Ingest.commit); anything else is the store's (its
    // lock, a write, a refusal), named by the store itself: not made to read as the archive's.
    const message = (error as Error).message;
    if (!message.startsWith(`${where}: `)) throw error;
    throw new LoadError(where, message.slice(where.length + 2), undefined, { cause: error });
  }
}

/**
 * --name wins over the names an input carries, for every root (referrers stay beside their subject).
 * --tag and the `latest` of a lone unnamed image go to what a user means by "the image": the
 * images and indexes; referrers (SBOMs, signatures) travel untagged, and other artifacts keep the
 * tags the input gave them (a cosign `sha256-….sig`). Only when the input holds no image at all do
 * artifacts without a subject take them.
 */
function nameImages(input: string, format: FormatName, pending: PendingImage[], kinds: RootKind[], options: LoadOptions): (PendingImage & { repository: string; tags: string[] })[] {
  const images = kinds.filter((kind) => kind === 'image').length;
  const named = (kind: RootKind): boolean => (images > 0 ? kind === 'image' : kind === 'artifact');
  const unnamed = kinds.filter(named).length;
  return pending.map((image, i) => {
    const kind = kinds[i] ?? 'image';
    const repository = options.name ?? image.repository ?? (kind === 'referrer' ? soleRepository(pending) : undefined);
    if (repository === undefined) {
      throw new LoadError(input, `holds an image with no name (${format} input)`, 'pass --name REPO (and --tag TAG), e.g. --name myapp --tag 1.0');
    }
    if (kind === 'referrer') return { ...image, repository, tags: [] };
    const given = options.tags !== undefined && options.tags.length > 0 && named(kind) ? options.tags : image.tags;
    const tags = given.length > 0 ? given : unnamed === 1 && named(kind) ? ['latest'] : [];
    return { ...image, repository, tags };
  });
}

// A referrer with no name of its own belongs with the images it travels with, when they share one name.
function soleRepository(pending: PendingImage[]): string | undefined {
  const names = new Set(pending.map((image) => image.repository).filter((name) => name !== undefined));
  return names.size === 1 ? [...names][0] : undefined;
}

// --name follows the one naming rule: `docker.io/busybox` is stored as `docker.io/library/busybox`.
function checkNameOption(inputs: string[], name: string): string {
  const normalized = normalizeRepositoryName(name);
  if (normalized !== undefined) return normalized;
  throw new LoadError(inputs.join(', '), `--name "${name}" is not a repository name: it ${repositoryNameProblem(name) ?? 'is not valid'}`);
}

// --format names what the user believes; a directory given as a file format (or back) is a clear mistake.
async function checkFormatFits(input: string, format: FormatName): Promise<void> {
  const info = await stat(input).catch(() => undefined);
  if (!info) throw new LoadError(input, 'does not exist or cannot be read', 'check the path');
  const wantsDirectory = ['oci-layout', 'rootfs-dir', 'concourse-rootfs', 'resource-bundle', 'registry-image'].includes(format);
  if (wantsDirectory !== info.isDirectory()) throw new LoadError(input, `is a ${info.isDirectory() ? 'directory' : 'file'}, but format ${format} needs a ${wantsDirectory ? 'directory' : 'file'}`);
}
