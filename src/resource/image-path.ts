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
