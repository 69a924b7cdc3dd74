import { createHash } from 'node:crypto';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Every path under `dir` with its type, mode, size and content hash, sorted: two equal
 * snapshots mean the tree is byte-for-byte the same. Missing `dir` snapshots as empty.
 */
export async function snapshotTree(dir: string): Promise<string[]> {
  const lines: string[] = [];
  const visit = async (path: string, rel: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(path);
    } catch {
      return;
    }
    for (const name of names.sort()) {
      const full = join(path, name);
      const relative = rel ? `${rel}/${name}` : name;
      const info = await lstat(full);
      const mode = (info.mode & 0o7777).toString(8);
      if (info.isDirectory()) {
        lines.push(`d ${relative} ${mode}`);
        await visit(full, relative);
      } else if (info.isSymbolicLink()) {
        lines.push(`l ${relative} -> ${await readlink(full)}`);
      } else {
        lines.push(`f ${relative} ${mode} ${info.size} ${createHash('sha256').update(await readFile(full)).digest('hex')}`);
      }
    }
  };
  await visit(dir, '');
  return lines;
}
