import { readdir, readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { isTag } from '../image/reference.js';

const GLOB_CHARS = /[*?[]/;
const MAX_TAGS_FILE_BYTES = 64 * 1024;

/**
 * The one path `pattern` names below `base` (`out`'s argv[1]). A pattern may use `*`, `?` and
 * `[…]` in any path component, as a shell would (a leading `*` does not match dot files).
 * Throws when it matches nothing or more than one path.
 */
export async function resolveImagePath(base: string, pattern: string): Promise<string> {
  const matches = await glob(base, pattern);
  const shown = (path: string): string => relative(base, path) || '.';
  if (matches.length === 0) throw new Error(`params.image "${pattern}" matches nothing in ${base}`);
  if (matches.length > 1) {
    const listed = matches.slice(0, 5).map(shown).join(', ');
    throw new Error(`params.image "${pattern}" matches ${matches.length} paths (${listed}${matches.length > 5 ? ', …' : ''}); it must match exactly one`);
  }
  return matches[0] as string;
}

async function glob(base: string, pattern: string): Promise<string[]> {
  const start = isAbsolute(pattern) ? '/' : resolve(base);
  const parts = pattern.split('/').filter((part) => part !== '' && part !== '.');
  let current = [start];
  for (const part of parts) {
    const next: string[] = [];
    for (const dir of current) {
      if (!GLOB_CHARS.test(part)) {
        next.push(join(dir, part));
        continue;
      }
      const matcher = componentMatcher(part);
      const names = await readdir(dir).catch(() => [] as string[]);
      for (const name of names.sort()) if (matcher.test(name) && (part.startsWith('.') || !name.startsWith('.'))) next.push(join(dir, name));
    }
    current = next;
  }
  const existing: string[] = [];
  for (const path of current) if (await stat(path).catch(() => undefined)) existing.push(path);
  return existing;
}

function componentMatcher(part: string): RegExp {
  let source = '';
  for (let i = 0; i < part.length; i++) {
    const char = part[i] as string;
    if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else if (char === '[') {
      const end = part.indexOf(']', i + 2);
      if (end < 0) {
        source += '\\[';
        continue;
      }
      const body = part.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\');
      source += `[${body}]`;
      i = end;
    } else source += char.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

/**
 * `params.additional_tags`: a list of tags, or the path (below `base`) of a file holding tags
 * separated by whitespace, as registry-image reads it.
 */
export async function readAdditionalTags(base: string, value: string[] | string | undefined): Promise<string[]> {
  if (value === undefined) return [];
  if (Array.isArray(value)) return value;
  const path = resolve(base, value);
  let text: string;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new Error('not a file');
    if (info.size > MAX_TAGS_FILE_BYTES) throw new Error(`over ${MAX_TAGS_FILE_BYTES} bytes`);
    text = await readFile(path, 'utf8');
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    throw new Error(`params.additional_tags file "${value}": ${why}`, { cause: error });
  }
  const tags = text.split(/\s+/).filter((tag) => tag !== '');
  const bad = tags.find((tag) => !isTag(tag));
  if (bad !== undefined) throw new Error(`params.additional_tags file "${value}": "${bad}" is not a valid tag (letters, digits, _ . -, at most 128, not starting with . or -)`);
  return tags;
}

/** Top-level directories of a root filesystem: one of them makes a directory look like one. */
const ROOTFS_DIRS = new Set(['bin', 'sbin', 'usr', 'etc', 'lib', 'lib64', 'opt', 'var', 'root', 'home', 'srv']);
/** Files a get (registry-image's or cartorio's) writes beside its image. */
const GET_FILES = new Set(['repository', 'tag', 'digest', 'labels.json', 'metadata.json']);
const IMAGE_FILE = /\.(tar|tar\.gz|tgz|oci)$/;

/** What a put stores, once `params.image` is resolved strictly. */
export interface PutInput {
  path: string;
  /** Set when the input was chosen by its shape (a rootfs directory); else the loader detects it. */
  format?: 'rootfs-dir';
}

/**
 * Decides what a directory given as `params.image` is, without guessing (a silent wrong image
 * is the worst outcome): a directory a loader recognises (an OCI layout, a get output, a
 * Concourse rootfs image, a resource-type bundle) is that; a directory holding exactly one
 * image (`image.tar`, an OCI layout, a get output) beside a get's small files is that image; a
 * directory that looks like a root filesystem is packed as one. Anything else fails, listing
 * what it found. Files and explicit `params.format` are left to the loader.
 */
export async function resolvePutInput(input: string, shown: string, detect: (path: string) => Promise<string>): Promise<PutInput> {
  const info = await stat(input);
  if (!info.isDirectory()) return { path: input };
  const format = await detect(input);
  if (format !== 'rootfs-dir') return { path: input };
  const entries = (await readdir(input, { withFileTypes: true })).filter((entry) => !entry.name.startsWith('.'));
  const images: string[] = [];
  const others: string[] = [];
  let rootfsDirs = 0;
  for (const entry of entries) {
    const path = join(input, entry.name);
    const isDir = entry.isDirectory() || (entry.isSymbolicLink() && (await stat(path).catch(() => undefined))?.isDirectory() === true);
    if (isDir && ROOTFS_DIRS.has(entry.name)) rootfsDirs++;
    if (isDir && !ROOTFS_DIRS.has(entry.name) && (await detect(path).catch(() => 'rootfs-dir')) !== 'rootfs-dir') images.push(`${entry.name}/`);
    else if (!isDir && IMAGE_FILE.test(entry.name) && entry.isFile()) images.push(entry.name);
    else if (!(entry.isFile() && GET_FILES.has(entry.name))) others.push(isDir ? `${entry.name}/` : entry.name);
  }
  if (images.length === 1 && rootfsDirs === 0 && others.length === 0) return { path: join(input, images[0] as string) };
  if (images.length === 0 && rootfsDirs > 0) return { path: input, format: 'rootfs-dir' };
  const found = [...images, ...others].sort();
  const listed = found.length === 0 ? 'nothing' : found.slice(0, 8).join(', ') + (found.length > 8 ? `, … (${found.length} entries)` : '');
  const why = images.length > 1 ? `${images.length} images` : images.length === 1 ? 'an image beside other files' : 'neither an image nor a root filesystem (no bin/, etc/, usr/ …)';
  throw new Error(
    `params.image "${shown}" is a directory holding ${why}: ${listed} — point params.image at the image itself (e.g. ${shown}/${images[0] ?? 'image.tar'}), or set params.format: rootfs-dir to pack the directory as a root filesystem`,
  );
}
