import { constants } from 'node:fs';
import { lstat, mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { digestHex } from '../image/digest.js';
import { MAX_INDEX_BYTES, imageIndexSchema, ociLayoutSchema, type ImageIndex } from '../image/oci.schema.js';
import { compileValidator, parseJson } from '../image/validate.js';

/** The annotation that carries a tag in an OCI layout's index.json (image-layout.md). */
export const REF_NAME = 'org.opencontainers.image.ref.name';
export const OCI_LAYOUT_FILE = 'oci-layout';
export const OCI_LAYOUT_CONTENT = '{"imageLayoutVersion":"1.0.0"}';
/** Temp files of loads in progress; same filesystem as the store so rename and link work. */
export const TMP_DIR = '.tmp';
/** Every blob of the store once, so a blob another repository has is hard-linked, not copied. */
export const POOL_DIR = '.blobs';
/** Held by one writer at a time (proper-lockfile). */
export const LOCK_DIR = '.lock';

const validateIndex = compileValidator<ImageIndex>(imageIndexSchema, 'index.json');
const validateLayout = compileValidator(ociLayoutSchema, 'oci-layout');

/** Identity of one version of a file that writers replace by rename (index.json, .repositories). */
export function fileVersion(info: { ino: number; mtimeMs: number; size: number }): string {
  return `${info.ino}:${info.mtimeMs}:${info.size}`;
}

/** Directory of `repository` inside the store at `root`; the name must already be validated. */
export function repositoryDir(root: string, repository: string): string {
  return join(root, ...repository.split('/'));
}

/**
 * True for a store repository that has an index.json and no `blobs` entry at all: what a bucket
 * store copied to a directory (`aws s3 sync s3://… DIR`) holds, since a bucket keeps each blob
 * once, in the pool. Such a repository's blobs are read from the pool, and it holds exactly what
 * its index and its removed roots reach (as a bucket's repository does), where any other
 * repository holds what it links into its own `blobs/`. Writers keep it that way: a load into it
 * links nothing, so the directory still matches the bucket key for key.
 */
export async function isPoolBacked(dir: string): Promise<boolean> {
  const [index, blobs] = await Promise.all([lstat(join(dir, 'index.json')).catch(() => undefined), lstat(join(dir, 'blobs')).catch((error: unknown) => (isNotFound(error) ? undefined : Promise.reject(error)))]);
  return index?.isFile() === true && blobs === undefined;
}

/** The layout a store repository's blobs are read from: its own, or the pool for a pool-backed one. */
export async function blobLayoutOf(root: string, dir: string): Promise<string> {
  return (await isPoolBacked(dir)) ? join(root, POOL_DIR) : dir;
}

/** Path of a sha256 blob inside an OCI layout directory; the digest must already be validated. */
export function blobPath(layoutDir: string, digest: string): string {
  return join(layoutDir, 'blobs', 'sha256', digestHex(digest));
}

/**
 * `<repository>/removed.json` (an image index in form): roots that left the repository's
 * index.json, each with when (REMOVED_AT). The server still serves the blobs they reach while
 * the repository holds them, so a pull that fetched its manifest before finishes; gc forgets
 * them, and releases those blobs, once the grace is over. Never read as a layout's index.
 */
export const REMOVED_FILE = 'removed.json';
export const REMOVED_AT = 'io.cartorio.removed';

/** Reads and validates `<layoutDir>/index.json` (or `file`); undefined when there is none. */
export async function readLayoutIndex(layoutDir: string, file = 'index.json'): Promise<ImageIndex | undefined> {
  const path = join(layoutDir, file);
  let bytes: Buffer;
  try {
    const info = await stat(path);
    if (!info.isFile()) return undefined;
    if (info.size > MAX_INDEX_BYTES) throw new Error(`${path}: index.json is ${info.size} bytes, over the ${MAX_INDEX_BYTES}-byte limit`);
    bytes = await readFile(path);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
  return validateIndex(parseJson(bytes, path), path);
}

/** Validates index.json bytes read from elsewhere (a bucket); `where` names them in errors. */
export function parseLayoutIndex(bytes: Buffer, where: string): ImageIndex {
  return validateIndex(parseJson(bytes, where), where);
}

/** Checks the `oci-layout` file of a layout directory; throws naming the file when it is wrong. */
export async function checkOciLayoutFile(layoutDir: string): Promise<void> {
  const path = join(layoutDir, OCI_LAYOUT_FILE);
  validateLayout(parseJson(await readFile(path), path), path);
}

/** Writes `bytes` to `path` so readers see the old or the new file, never a part: temp, fsync, rename. */
export async function writeFileAtomic(path: string, bytes: Buffer | string, tmpDir: string): Promise<void> {
  await mkdir(tmpDir, { recursive: true });
  const tmp = join(tmpDir, `write-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const handle = await open(tmp, 'w', 0o644);
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}

/** fsync a directory so a rename or link in it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function isNotFound(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
