import { closeSync, createReadStream, lstatSync, openSync, readSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
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
 *
 * Synchronous on purpose: packing runs in a batch command with nothing else on its event loop,
 * and a threadpool round trip per lstat costs more than the lstat itself (35k entries: 655 ms
 * async, see bench/run.sh for the whole load).
 */
export function collectTree(root: string): { entries: TreeEntry[]; contentBytes: number } {
  const entries: TreeEntry[] = [];
  let contentBytes = 0;
  const visit = (dir: string, prefix: string): void => {
    const names = readdirSync(dir).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const name of names) {
      const absolute = join(dir, name);
      const path = prefix === '' ? name : `${prefix}/${name}`;
      const stats = lstatSync(absolute);
      const target = stats.isSymbolicLink() ? readlinkSync(absolute) : undefined;
      const compact = entryStats(stats, target);
      if (!compact) continue;
      if (target !== undefined && symlinkEscapes(path, target)) throw new Error(`symlink "${path}" -> "${target}" points outside the rootfs`);
      entries.push({ path, absolute, stats: compact });
      contentBytes += compact.size;
      if (compact.kind === 'directory') visit(absolute, path);
    }
  };
  visit(root, '');
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
      const header: TarHeader = { name: entry.path, mode: stats.mode, uid: stats.uid, gid: stats.gid, mtime: options.mtime ?? new Date(stats.mtimeMs) };
      if (stats.kind === 'file' && stats.nlink > 1 && seenInodes.has(stats.inode)) {
        await addEntry(tar, { ...header, type: 'link', linkname: seenInodes.get(stats.inode) ?? '', size: 0 });
      } else if (stats.kind === 'file' && stats.size <= SMALL_FILE) {
        seenInodes.set(stats.inode, entry.path);
        const content = readSmallFile(entry.absolute, stats.size);
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

/** Files up to this size are read whole, synchronously (one open, read, close), like tar does. */
const SMALL_FILE = 256 * 1024;

// One byte more is asked for, to notice a file that grew since lstat.
function readSmallFile(path: string, size: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(size + 1);
    return buffer.subarray(0, readSync(fd, buffer, 0, size + 1, 0));
  } finally {
    closeSync(fd);
  }
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
