import { close, createReadStream, open, read, type Stats } from 'node:fs';
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
  /** What packing needs of lstat, kept small: a tree can hold hundreds of thousands of entries. */
  stats: EntryStats;
}

export interface EntryStats {
  kind: 'file' | 'directory' | 'symlink' | 'character-device' | 'block-device' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  /** `dev:ino`, to find hard links. */
  inode: string;
  nlink: number;
  rdev: number;
  linkTarget?: string;
}

function entryStats(stats: Stats, linkTarget: string | undefined): EntryStats | undefined {
  const kind = stats.isFile() ? 'file' : stats.isDirectory() ? 'directory' : stats.isSymbolicLink() ? 'symlink'
    : stats.isCharacterDevice() ? 'character-device' : stats.isBlockDevice() ? 'block-device' : stats.isFIFO() ? 'fifo' : undefined;
  if (kind === undefined) return undefined; // sockets cannot be archived; tar skips them too
  return {
    kind, mode: stats.mode & 0o7777, uid: stats.uid, gid: stats.gid, size: kind === 'file' ? stats.size : 0, mtimeMs: stats.mtimeMs,
    inode: `${stats.dev}:${stats.ino}`, nlink: stats.nlink, rdev: stats.rdev, ...(linkTarget !== undefined && { linkTarget }),
  };
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
    // lstat a directory's children together: a tree of many small files is latency-bound otherwise
    const children = await Promise.all(names.map(async (name) => {
      const absolute = join(dir, name);
      const stats = await lstat(absolute);
      return { name, absolute, stats, target: stats.isSymbolicLink() ? await readlink(absolute) : undefined };
    }));
    for (const { name, absolute, stats, target } of children) {
      const path = prefix === '' ? name : `${prefix}/${name}`;
      const compact = entryStats(stats, target);
      if (!compact) continue;
      if (target !== undefined && symlinkEscapes(path, target)) throw new Error(`symlink "${path}" -> "${target}" points outside the rootfs`);
      entries.push({ path, absolute, stats: compact });
      contentBytes += compact.size;
      if (compact.kind === 'directory') await visit(absolute, path);
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
    const prefetch = new Prefetch(entries);
    for (const [index, entry] of entries.entries()) {
      const { stats } = entry;
      const header: TarHeader = { name: entry.path, mode: stats.mode, uid: stats.uid, gid: stats.gid, mtime: options.mtime ?? new Date(stats.mtimeMs) };
      if (stats.kind === 'file' && stats.nlink > 1 && seenInodes.has(stats.inode)) {
        await addEntry(tar, { ...header, type: 'link', linkname: seenInodes.get(stats.inode) ?? '', size: 0 });
      } else if (stats.kind === 'file' && stats.size <= SMALL_FILE) {
        seenInodes.set(stats.inode, entry.path);
        const content = await prefetch.take(index);
        if (content.length !== stats.size) throw new Error(`${entry.absolute} changed size while being packed`);
        options.onBytes?.(content.length);
        await addEntry(tar, { ...header, type: 'file', size: content.length }, content);
      } else if (stats.kind === 'file') {
        seenInodes.set(stats.inode, entry.path);
        const sink = tar.entry({ ...header, type: 'file', size: stats.size });
        const done = new Promise<void>((resolve, reject) => {
          sink.once('finish', () => resolve());
          sink.once('error', reject);
        });
        const source = createReadStream(entry.absolute, { highWaterMark: 1024 * 1024, start: 0, end: stats.size - 1 });
        if (options.onBytes) source.on('data', (chunk) => options.onBytes?.(chunk.length));
        await pipeline(source, sink as unknown as NodeJS.WritableStream);
        await done;
      } else if (stats.kind === 'symlink') {
        await addEntry(tar, { ...header, type: 'symlink', linkname: stats.linkTarget ?? '' });
      } else if (stats.kind === 'character-device' || stats.kind === 'block-device') {
        const { major, minor } = splitDevice(stats.rdev);
        await addEntry(tar, { ...header, type: stats.kind, devmajor: major, devminor: minor });
      } else {
        await addEntry(tar, { ...header, type: stats.kind });
      }
    }
    tar.finalize();
  };
  feed().catch((error: unknown) => tar.destroy(error as Error));
  return tar as unknown as Readable;
}

/** Small files are read ahead, a bounded window at a time, so packing is not one open/read/close at a time. */
const SMALL_FILE = 256 * 1024;
const PREFETCH_WINDOW = 16;

class Prefetch {
  readonly #entries: TreeEntry[];
  readonly #pending = new Map<number, Promise<Buffer>>();
  #next = 0;

  constructor(entries: TreeEntry[]) {
    this.#entries = entries;
  }

  /** The content of the small file at `index`, starting reads for the files after it. */
  take(index: number): Promise<Buffer> {
    this.#next = Math.max(this.#next, index);
    while (this.#next < this.#entries.length && this.#next < index + PREFETCH_WINDOW) {
      const entry = this.#entries[this.#next];
      if (entry && entry.stats.kind === 'file' && entry.stats.size <= SMALL_FILE && !this.#pending.has(this.#next)) {
        const reading = readSmallFile(entry.absolute, entry.stats.size);
        reading.catch(() => undefined); // awaited (and reported) when its turn comes
        this.#pending.set(this.#next, reading);
      }
      this.#next++;
    }
    const entry = this.#entries[index];
    const reading = this.#pending.get(index) ?? readSmallFile(entry?.absolute ?? '', entry?.stats.size ?? 0);
    this.#pending.delete(index);
    return reading;
  }
}

// open + read + close with the size lstat gave: fs.promises.readFile adds an fstat and FileHandle
// bookkeeping per file, which dominates packing a tree of small files. One byte more is asked
// for, to notice a file that grew.
function readSmallFile(path: string, size: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    open(path, 'r', (openError, fd) => {
      if (openError) return reject(openError);
      const buffer = Buffer.allocUnsafe(size + 1);
      read(fd, buffer, 0, size + 1, 0, (readError, bytesRead) => {
        close(fd, () => (readError ? reject(readError) : resolve(buffer.subarray(0, bytesRead))));
      });
    });
  });
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
