import { closeSync, lstatSync, openSync, readSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ChunkPool } from './chunk-pool.js';
import { tarHeaders, type EncodableHeader } from './tar-headers.js';
import { symlinkEscapes } from './tar-paths.js';
import { NOT_YET, TreeWalk } from './tree-walk.js';

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
  /** Where the 1 MiB chunks come from; whoever consumes them may hand them back (`pool.give`). */
  pool?: ChunkPool;
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
  const entries = [...listTree(root)];
  return { entries, contentBytes: entries.reduce((sum, entry) => sum + entry.stats.size, 0) };
}

/** collectTree's entries one at a time, listed as they are asked for. */
export function* listTree(root: string): Generator<TreeEntry> {
  function* visit(dir: string, prefix: string): Generator<TreeEntry> {
    const names = readdirSync(dir).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const name of names) {
      const absolute = join(dir, name);
      const path = prefix === '' ? name : `${prefix}/${name}`;
      const stats = lstatSync(absolute);
      const target = stats.isSymbolicLink() ? readlinkSync(absolute) : undefined;
      const compact = entryStats(stats, target);
      if (!compact) continue;
      if (target !== undefined && symlinkEscapes(path, target)) throw new Error(`symlink "${path}" -> "${target}" points outside the rootfs`);
      yield { path, absolute, stats: compact };
      if (compact.kind === 'directory') yield* visit(absolute, path);
    }
  }
  yield* visit(root, '');
}

/**
 * Packs the entries as an uncompressed tar stream: regular files, directories, symlinks kept as
 * links (never followed), hard links (same inode → a link entry), devices and FIFOs, with modes,
 * numeric uid/gid and mtimes.
 *
 * The bytes are what tar-stream's `pack()` writes for the same entries (test/tar-pin.test.ts pins
 * them), headers encoded by its own codec, but without a stream object per entry: headers and
 * file contents are written straight into 1 MiB buffers, one pushed as each fills (35k entries:
 * the entry streams were most of the packing time, see bench/). Every chunk but the last is a
 * whole PACK_CHUNK-byte buffer taken from `options.pool`, the consumer's to keep, to hand to
 * another thread, or to give back to the pool once done with it.
 */
export function packTree(entries: TreeEntry[] | TreeWalk, options: PackOptions = {}): Readable {
  return Readable.from(pack(new TarWriter(options), entries), { objectMode: false });
}

// The writer's chunks; where it waits for a TreeWalk to list more, it hands out the promise of that.
async function* pack(writer: TarWriter, entries: TreeEntry[] | TreeWalk): AsyncGenerator<Buffer> {
  try {
    for (const piece of writer.chunks(entries)) {
      if (piece instanceof Promise) await piece;
      else yield piece;
    }
  } finally {
    if (entries instanceof TreeWalk) entries.close();
  }
}

/** Size of the chunks packTree emits (the same as a gzip block, so a block is a chunk, not copied). */
export const PACK_CHUNK = 1024 * 1024;
const CHUNK = PACK_CHUNK;
const END_OF_TAR = 1024;

class TarWriter {
  readonly #options: PackOptions;
  readonly #pool: ChunkPool;
  #chunk: Buffer;
  #filled = 0;

  constructor(options: PackOptions) {
    this.#options = options;
    this.#pool = options.pool?.size === CHUNK ? options.pool : new ChunkPool(CHUNK);
    this.#chunk = this.#pool.take();
  }

  *chunks(entries: TreeEntry[] | TreeWalk): Generator<Buffer | Promise<void>> {
    const seenInodes = new Map<string, string>();
    let index = 0;
    const next = entries instanceof TreeWalk ? () => entries.next() : () => entries[index++];
    for (;;) {
      let entry = next();
      while (entry === NOT_YET) {
        yield (entries as TreeWalk).arrival();
        entry = next();
      }
      if (entry === undefined) break;
      const { stats } = entry;
      // pack.entry's defaults: a mode of 0 is written as 0644 (0755 for a directory).
      const header: EncodableHeader = {
        name: entry.path, mode: stats.mode || (stats.kind === 'directory' ? 0o755 : 0o644), uid: stats.uid, gid: stats.gid,
        mtime: this.#options.mtime ?? new Date(stats.mtimeMs), size: 0, type: stats.kind,
      };
      if (stats.kind === 'file' && stats.nlink > 1 && seenInodes.has(stats.inode)) {
        header.type = 'link';
        header.linkname = seenInodes.get(stats.inode) ?? '';
      } else if (stats.kind === 'file') {
        if (stats.nlink > 1) seenInodes.set(stats.inode, entry.path);
        header.size = stats.size;
        if (this.#smallFile(header, entry.absolute)) continue;
        yield* this.#header(header);
        yield* this.#file(entry.absolute, stats.size);
        continue;
      } else if (stats.kind === 'symlink') {
        header.linkname = stats.linkTarget ?? '';
      } else if (stats.kind === 'character-device' || stats.kind === 'block-device') {
        const { major, minor } = splitDevice(stats.rdev);
        header.devmajor = major;
        header.devminor = minor;
      }
      if (!this.#smallHeader(header)) yield* this.#header(header);
    }
    yield* this.#zeros(END_OF_TAR);
    if (this.#filled > 0) yield this.#chunk.subarray(0, this.#filled);
  }

  // Most entries of a rootfs are a ustar header, or a small file, that fit in the chunk being
  // filled: written without the generators below, which were a fifth of what packing allocated.
  // Each returns false, having written nothing, when the entry needs the general path.
  #smallHeader(header: EncodableHeader): boolean {
    if (CHUNK - this.#filled < 512) return false;
    const ustar = tarHeaders.encode(header);
    if (!ustar) return false;
    ustar.copy(this.#chunk, this.#filled);
    this.#filled += 512;
    return true;
  }

  // As #header then #file, for a file whose header, bytes, padding and probe byte fit. (A read
  // that fails ends the pack, so the header already written is never handed out.)
  #smallFile(header: EncodableHeader, path: string): boolean {
    const size = header.size;
    if (this.#filled + 512 + size + Math.max(padding(size), 1) > CHUNK || !this.#smallHeader(header)) return false;
    const at = this.#filled;
    const fd = openSync(path, 'r');
    try {
      // Every read asks for one byte more than is left: a file that grew fills it.
      let done = 0;
      let read;
      do {
        read = readSync(fd, this.#chunk, at + done, size + 1 - done, done);
        done += read;
      } while (read > 0 && done < size);
      if (done !== size) throw new Error(`${path} changed size while being packed`);
    } finally {
      closeSync(fd);
    }
    this.#chunk.fill(0, at + size, at + size + padding(size));
    this.#filled = at + size + padding(size);
    if (size > 0) this.#options.onBytes?.(size);
    return true;
  }

  // As Pack#_encode: a ustar header, or when the name or link target does not fit one, a pax
  // header (named PaxHeader, carrying path and linkpath) and then the entry's header, also named
  // PaxHeader.
  *#header(header: EncodableHeader): Generator<Buffer> {
    const ustar = tarHeaders.encode(header);
    if (ustar) return yield* this.#bytes(ustar);
    const pax = tarHeaders.encodePax({ name: header.name, linkname: header.linkname });
    const paxHeader = { ...header, name: 'PaxHeader', type: 'pax-header' as const, size: pax.length, linkname: header.linkname && 'PaxHeader' };
    yield* this.#bytes(tarHeaders.encode(paxHeader) as Buffer);
    yield* this.#bytes(pax);
    yield* this.#zeros(padding(pax.length));
    yield* this.#bytes(tarHeaders.encode({ ...paxHeader, size: header.size, type: header.type }) as Buffer);
  }

  // The file's bytes, read straight into the chunk, then the padding to 512 bytes. The last read
  // asks for one byte more, to notice a file that grew since lstat.
  *#file(path: string, size: number): Generator<Buffer> {
    const fd = openSync(path, 'r');
    try {
      let done = 0;
      let probed = false;
      while (done < size) {
        if (this.#filled === CHUNK) yield this.#flush();
        const room = CHUNK - this.#filled;
        const ask = Math.min(size - done + 1, room);
        const read = readSync(fd, this.#chunk, this.#filled, ask, done);
        if (read === 0 || done + read > size) throw new Error(`${path} changed size while being packed`);
        probed = ask > size - done;
        this.#filled += read;
        done += read;
        this.#options.onBytes?.(read);
      }
      if (!probed && readSync(fd, Buffer.alloc(1), 0, 1, size) !== 0) throw new Error(`${path} changed size while being packed`);
    } finally {
      closeSync(fd);
    }
    yield* this.#zeros(padding(size));
  }

  *#bytes(bytes: Buffer): Generator<Buffer> {
    for (let at = 0; at < bytes.length;) {
      if (this.#filled === CHUNK) yield this.#flush();
      const copied = bytes.copy(this.#chunk, this.#filled, at);
      this.#filled += copied;
      at += copied;
    }
  }

  *#zeros(count: number): Generator<Buffer> {
    for (let left = count; left > 0;) {
      if (this.#filled === CHUNK) yield this.#flush();
      const n = Math.min(left, CHUNK - this.#filled);
      this.#chunk.fill(0, this.#filled, this.#filled + n);
      this.#filled += n;
      left -= n;
    }
  }

  #flush(): Buffer {
    const full = this.#chunk;
    this.#chunk = this.#pool.take();
    this.#filled = 0;
    return full;
  }
}

function padding(size: number): number {
  return (512 - (size % 512)) % 512;
}

// Linux dev_t encoding (glibc's gnu_dev_major/minor).
function splitDevice(rdev: number): { major: number; minor: number } {
  const major = Number((BigInt(rdev) >> 8n) & 0xfffn);
  const minor = Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & 0xfff00n));
  return { major, minor };
}
