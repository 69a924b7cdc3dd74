import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isRepositoryName } from '../image/reference.js';
import { isNotFound } from './layout.js';

/**
 * `<store>/.repositories`: every repository name of the store, sorted, one a line. Loads add names
 * under the writer lock before publishing (DirectoryStore.publish: a load killed between the two
 * leaves a listed name with no image, answered NAME_UNKNOWN, never a served repository the list
 * lacks; the next load drops such names); rm drops a name after emptying its index. Servers re-read
 * it when it changes, so `_catalog` and name resolution cost one stat per request instead of a
 * walk of the whole store (10 000 repositories: 0.9 s).
 */
export const REPOSITORY_LIST = '.repositories';
const MAX_REPOSITORY_DEPTH = 32;

/** The names in the list file, or undefined when the store has none (written before it existed). */
export async function readRepositoryList(root: string): Promise<string[] | undefined> {
  let text: string;
  try {
    text = await readFile(join(root, REPOSITORY_LIST), 'utf8');
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
  return text.split('\n').filter((name) => name !== '' && isRepositoryName(name));
}

/** Every directory under `root` holding an index.json, as a repository name, sorted. */
export async function walkRepositories(root: string): Promise<string[]> {
  const found: string[] = [];
  await walk(root, [], found);
  return found.filter(isRepositoryName).sort();
}

async function walk(dir: string, parts: string[], found: string[]): Promise<void> {
  if (parts.length > MAX_REPOSITORY_DEPTH) return;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if (isNotFound(error)) return;
    throw error;
  }
  if (parts.length > 0 && entries.some((e) => e.name === 'index.json' && e.isFile())) found.push(parts.join('/'));
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name.startsWith('.') || entry.name === 'blobs') continue;
    await walk(join(dir, entry.name), [...parts, entry.name], found);
  }
}
