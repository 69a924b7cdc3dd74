import { createReadStream, type Stats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack, type Header, type Pack } from 'tar-stream';

type TarHeader = Partial<Header> & Pick<Header, 'name'>;
import { symlinkEscapes } from './tar-paths.js';

/** One file-system object to put in a layer, in the order it will be written. */
export interface TreeEntry {
  /** Path inside the layer, relative, `/`-separated. */
  path: string;
  absolute: string;
  stats: Stats;
}

export interface PackOptions {
  /** Every entry gets this mtime (reproducible layers); otherwise each keeps its own. */
  mtime?: Date;
  /** Called with the size of each file's content as it is packed (for progress). */
  onBytes?: (bytes: number) => void;
}

/**
 * Lists a directory tree depth-first with names sorted bytewise (as `tar --sort=name`), without
 * following symlinks. Throws, naming the link, when a relative symlink climbs out of the tree.
 */
export async function collectTree(root: string): Promise<{ entries: TreeEntry[]; contentBytes: number }> {
  const entries: TreeEntry[] = [];
  let contentBytes = 0;
  const visit = async (dir: string, prefix: string): Promise<void> => {
    const names = (await readdir(dir)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const name of names) {
      const absolute = join(dir, name);
      const path = prefix === '' ? name : `${prefix}/${name}`;
      const stats = await lstat(absolute);
      if (stats.isSocket()) continue; // sockets cannot be archived; tar skips them too
      if (stats.isSymbolicLink()) {
        const target = await readlink(absolute);
        if (symlinkEscapes(path, target)) throw new Error(`symlink "${path}" -> "${target}" points outside the rootfs`);
      }
      entries.push({ path, absolute, stats });
      if (stats.isFile()) contentBytes += stats.size;
      if (stats.isDirectory()) await visit(absolute, path);
    }
  };
  await visit(root, '');
  return { entries, contentBytes };
}

/**
 * Packs the entries as an uncompressed tar stream: regular files, directories, symlinks kept as
 * links (never followed), hard links (same inode → a link entry), devices and FIFOs, with modes,
 * numeric uid/gid and mtimes.
 */
export function packTree(entries: TreeEntry[], options: PackOptions = {}): Readable {
  const tar = pack();
  const feed = async (): Promise<void> => {
    const seenInodes = new Map<string, string>();
    for (const entry of entries) {
      const { stats } = entry;
      const header: TarHeader = {
        name: entry.path,
        mode: stats.mode & 0o7777,
        uid: stats.uid,
        gid: stats.gid,
        mtime: options.mtime ?? stats.mtime,
      };
      const inode = `${stats.dev}:${stats.ino}`;
      if (stats.isFile() && stats.nlink > 1 && seenInodes.has(inode)) {
        await addEntry(tar, { ...header, type: 'link', linkname: seenInodes.get(inode) ?? '', size: 0 });
      } else if (stats.isFile() && stats.size === 0) {
        seenInodes.set(inode, entry.path);
        await addEntry(tar, { ...header, type: 'file', size: 0 }, Buffer.alloc(0));
      } else if (stats.isFile()) {
        seenInodes.set(inode, entry.path);
        const sink = tar.entry({ ...header, type: 'file', size: stats.size });
        const done = new Promise<void>((resolve, reject) => {
          sink.once('finish', () => resolve());
          sink.once('error', reject);
        });
        const source = createReadStream(entry.absolute, { highWaterMark: 1024 * 1024, start: 0, end: stats.size - 1 });
        if (options.onBytes) source.on('data', (chunk) => options.onBytes?.(chunk.length));
        await pipeline(source, sink as unknown as NodeJS.WritableStream);
        await done;
      } else if (stats.isDirectory()) {
        await addEntry(tar, { ...header, type: 'directory' });
      } else if (stats.isSymbolicLink()) {
        await addEntry(tar, { ...header, type: 'symlink', linkname: await readlink(entry.absolute) });
      } else if (stats.isCharacterDevice() || stats.isBlockDevice()) {
        const { major, minor } = splitDevice(stats.rdev);
        await addEntry(tar, { ...header, type: stats.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: major, devminor: minor });
      } else if (stats.isFIFO()) {
        await addEntry(tar, { ...header, type: 'fifo' });
      }
    }
    tar.finalize();
  };
  feed().catch((error: unknown) => tar.destroy(error as Error));
  return tar as unknown as Readable;
}

function addEntry(tar: Pack, header: TarHeader, content?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error | null): void => (error ? reject(error) : resolve());
    if (content) tar.entry(header, content, done);
    else tar.entry(header, done);
  });
}

// Linux dev_t encoding (glibc's gnu_dev_major/minor).
function splitDevice(rdev: number): { major: number; minor: number } {
  const major = Number((BigInt(rdev) >> 8n) & 0xfffn);
  const minor = Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & 0xfff00n));
  return { major, minor };
}
