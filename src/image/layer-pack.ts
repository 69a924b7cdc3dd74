import { lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import { ChunkPool } from './chunk-pool.js';
import { tarHeaders, type EncodableHeader } from './tar-headers.js';
import { startSourceWorker } from './source-worker.js';
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
  /** Where the 1 MiB chunks come from; whoever consumes them may hand them back (`pool.give`). */
  pool?: ChunkPool;
  /** Threads that read the files into the chunks (default: one per core). Does not change the bytes. */
  threads?: number;
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
  const entries = [...walkTree(root)];
  return { entries, contentBytes: entries.reduce((sum, entry) => sum + entry.stats.size, 0) };
}

/**
 * The entries of `collectTree`, in the same order, listed as they are asked for: packTree lays
 * out and reads the first files while the rest of the tree is still being listed.
 */
export function* walkTree(root: string): Generator<TreeEntry> {
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
 * them), headers encoded by its own codec, but without a stream object per entry. This thread
 * lays the tar out: every header is encoded here and every byte's place in the stream is known
 * before any file is read, so each 1 MiB chunk is planned as a list of pieces (header bytes,
 * zero padding, a byte range of a file). Worker threads fill the chunks from their plans (open,
 * read, close: most of a pack's time for 35k small files), several at a time, and the chunks are
 * emitted in order: the same bytes whatever the number of threads. Every chunk but the last is a
 * whole PACK_CHUNK-byte buffer taken from `options.pool`, the consumer's to keep, to hand to
 * another thread, or to give back to the pool once done with it.
 */
export function packTree(entries: Iterable<TreeEntry>, options: PackOptions = {}): Readable {
  return new PackStream(entries, options);
}

/** Size of the chunks packTree emits (the same as a gzip block, so a block is a chunk, not copied). */
export const PACK_CHUNK = 1024 * 1024;
const CHUNK = PACK_CHUNK;
const END_OF_TAR = 1024;

// A chunk's plan is a list of pieces, FIELDS numbers each: [DATA, at, from, length] copies bytes
// laid out here (headers, padding) from the plan's `data`; [FILE, at, index, from, length, size]
// reads `length` bytes of the chunk's `index`th path from offset `from` (`size`: the file's size
// when listed; the piece that reaches it, or an empty file's, also checks the file has not grown).
const DATA = 0;
const FILE = 1;
const FIELDS = 6;

interface ChunkPlan {
  pieces: Float64Array;
  data: Uint8Array;
  /** The files the pieces read, joined by NUL. */
  paths: string;
  length: number;
  /** File content in this chunk, for progress. */
  contentBytes: number;
}

// Lays the tar out chunk by chunk: the same bytes the former one-buffer writer put in each chunk.
class TarPlanner {
  readonly #mtime: Date | undefined;
  readonly #ready: ChunkPlan[] = [];
  readonly #seenInodes = new Map<string, string>();
  #pieces: number[] = [];
  #paths: string[] = [];
  readonly #staging = Buffer.allocUnsafe(CHUNK);
  #staged = 0;
  #runAt = -1;
  #runFrom = 0;
  #filled = 0;
  #content = 0;

  constructor(mtime: Date | undefined) {
    this.#mtime = mtime;
  }

  *plans(entries: Iterable<TreeEntry>): Generator<ChunkPlan> {
    for (const entry of entries) {
      this.#entry(entry);
      while (this.#ready.length > 0) yield this.#ready.shift() as ChunkPlan;
    }
    this.#zeros(END_OF_TAR);
    if (this.#filled > 0) this.#cut();
    while (this.#ready.length > 0) yield this.#ready.shift() as ChunkPlan;
  }

  #entry(entry: TreeEntry): void {
    const { stats } = entry;
    // pack.entry's defaults: a mode of 0 is written as 0644 (0755 for a directory).
    const header = {
      name: entry.path, mode: stats.mode || (stats.kind === 'directory' ? 0o755 : 0o644), uid: stats.uid, gid: stats.gid,
      mtime: this.#mtime ?? new Date(stats.mtimeMs), size: 0,
    };
    if (stats.kind === 'file' && stats.nlink > 1 && this.#seenInodes.has(stats.inode)) {
      this.#header({ ...header, type: 'link', linkname: this.#seenInodes.get(stats.inode) ?? '' });
    } else if (stats.kind === 'file') {
      if (stats.nlink > 1) this.#seenInodes.set(stats.inode, entry.path);
      this.#header({ ...header, type: 'file', size: stats.size });
      this.#file(entry.absolute, stats.size);
    } else if (stats.kind === 'symlink') {
      this.#header({ ...header, type: 'symlink', linkname: stats.linkTarget ?? '' });
    } else if (stats.kind === 'character-device' || stats.kind === 'block-device') {
      const { major, minor } = splitDevice(stats.rdev);
      this.#header({ ...header, type: stats.kind, devmajor: major, devminor: minor });
    } else {
      this.#header({ ...header, type: stats.kind });
    }
  }

  // As Pack#_encode: a ustar header, or when the name or link target does not fit one, a pax
  // header (named PaxHeader, carrying path and linkpath) and then the entry's header, also named
  // PaxHeader.
  #header(header: EncodableHeader): void {
    const ustar = tarHeaders.encode(header);
    if (ustar) return this.#bytes(ustar);
    const pax = tarHeaders.encodePax({ name: header.name, linkname: header.linkname });
    const paxHeader = { ...header, name: 'PaxHeader', type: 'pax-header' as const, size: pax.length, linkname: header.linkname && 'PaxHeader' };
    this.#bytes(tarHeaders.encode(paxHeader) as Buffer);
    this.#bytes(pax);
    this.#zeros(padding(pax.length));
    this.#bytes(tarHeaders.encode({ ...paxHeader, size: header.size, type: header.type }) as Buffer);
  }

  // The file's bytes, as one piece per chunk it spans, then the padding to 512 bytes.
  #file(path: string, size: number): void {
    let from = 0;
    do {
      if (this.#filled === CHUNK) this.#cut();
      const length = Math.min(size - from, CHUNK - this.#filled);
      this.#endRun();
      this.#pieces.push(FILE, this.#filled, this.#paths.length, from, length, size);
      this.#paths.push(path);
      this.#filled += length;
      this.#content += length;
      from += length;
    } while (from < size);
    this.#zeros(padding(size));
  }

  #bytes(bytes: Buffer): void {
    for (let at = 0; at < bytes.length;) {
      const n = this.#room(bytes.length - at);
      bytes.copy(this.#staging, this.#staged, at, at + n);
      this.#staged += n;
      this.#filled += n;
      at += n;
    }
  }

  #zeros(count: number): void {
    for (let left = count; left > 0;) {
      const n = this.#room(left);
      this.#staging.fill(0, this.#staged, this.#staged + n);
      this.#staged += n;
      this.#filled += n;
      left -= n;
    }
  }

  // Room for up to `wanted` laid-out bytes in the current chunk, which they join the run of.
  #room(wanted: number): number {
    if (this.#filled === CHUNK) this.#cut();
    if (this.#runAt < 0) {
      this.#runAt = this.#filled;
      this.#runFrom = this.#staged;
    }
    return Math.min(wanted, CHUNK - this.#filled);
  }

  #endRun(): void {
    if (this.#runAt < 0) return;
    this.#pieces.push(DATA, this.#runAt, this.#runFrom, this.#filled - this.#runAt, 0, 0);
    this.#runAt = -1;
  }

  #cut(): void {
    this.#endRun();
    // No path holds a NUL: the chunk's paths travel as one string.
    this.#ready.push({ pieces: Float64Array.from(this.#pieces), data: new Uint8Array(this.#staging.subarray(0, this.#staged)), paths: this.#paths.join('\0'), length: this.#filled, contentBytes: this.#content });
    this.#pieces = [];
    this.#paths = [];
    this.#staged = 0;
    this.#filled = 0;
    this.#content = 0;
  }
}

type FillReply = { id: number; buffer: ArrayBuffer; error?: { message: string; code?: string; path?: string } };
interface Queued {
  id: number;
  plan: ChunkPlan;
  buffer: Buffer;
}

/** The tar stream: chunks planned here, filled on worker threads, pushed in order. */
class PackStream extends Readable {
  readonly #options: PackOptions;
  readonly #pool: ChunkPool;
  readonly #plans: Generator<ChunkPlan>;
  readonly #threads: number;
  readonly #maxInFlight: number;
  readonly #workers: Worker[] = [];
  readonly #idle: Worker[] = [];
  readonly #queue: Queued[] = [];
  readonly #filled = new Map<number, { buffer: Buffer; plan: ChunkPlan }>();
  readonly #plansById = new Map<number, ChunkPlan>();
  #sent = 0;
  #pushed = 0;
  #planned = false;
  #wanted = false;
  #closed = false;

  constructor(entries: Iterable<TreeEntry>, options: PackOptions) {
    super({ highWaterMark: CHUNK });
    this.#options = options;
    this.#pool = options.pool?.size === CHUNK ? options.pool : new ChunkPool(CHUNK);
    this.#plans = new TarPlanner(options.mtime).plans(entries);
    this.#threads = Math.max(1, options.threads ?? availableParallelism());
    this.#maxInFlight = this.#threads * 3 + 2;
  }

  override _read(): void {
    this.#wanted = true;
    this.#pump();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.#close();
    done(error);
  }

  #pump(): void {
    if (this.#closed) return;
    while (this.#wanted) {
      const ready = this.#filled.get(this.#pushed);
      if (!ready) break;
      this.#filled.delete(this.#pushed);
      this.#pushed++;
      this.#options.onBytes?.(ready.plan.contentBytes);
      const chunk = ready.plan.length === CHUNK ? ready.buffer : ready.buffer.subarray(0, ready.plan.length);
      this.#wanted = this.push(chunk);
    }
    while (!this.#planned && this.#sent - this.#pushed < this.#maxInFlight) {
      let next;
      try {
        next = this.#plans.next();
      } catch (error) {
        this.destroy(error as Error);
        return;
      }
      if (next.done) {
        this.#planned = true;
        break;
      }
      this.#queue.push({ id: this.#sent++, plan: next.value, buffer: this.#pool.take() });
      this.#dispatch();
    }
    if (this.#planned && this.#pushed === this.#sent && !this.#closed) {
      this.#close();
      this.push(null);
    }
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      const worker = this.#idle.pop() ?? (this.#workers.length < this.#threads ? this.#spawn() : undefined);
      if (!worker) return;
      const { id, plan, buffer } = this.#queue.shift() as Queued;
      this.#plansById.set(id, plan);
      // The plan's arrays are copied, not moved: their memory is small, and kept for progress.
      worker.postMessage({ id, buffer: buffer.buffer, pieces: plan.pieces, data: plan.data, paths: plan.paths }, [buffer.buffer as ArrayBuffer]);
    }
  }

  #spawn(): Worker {
    const worker = startSourceWorker(fillWorker);
    this.#workers.push(worker);
    worker.on('message', (reply: FillReply) => {
      if (this.#closed) return;
      this.#idle.push(worker);
      const plan = this.#plansById.get(reply.id) as ChunkPlan;
      this.#plansById.delete(reply.id);
      if (reply.error) {
        this.destroy(Object.assign(new Error(reply.error.message), reply.error.code === undefined ? {} : { code: reply.error.code, path: reply.error.path }));
        return;
      }
      this.#filled.set(reply.id, { buffer: Buffer.from(reply.buffer), plan });
      this.#dispatch();
      this.#pump();
    });
    worker.on('error', (error) => this.destroy(error));
    worker.on('exit', (code) => {
      if (!this.#closed) this.destroy(new Error(`a tar packing thread stopped (exit code ${code})`));
    });
    return worker;
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    for (const worker of this.#workers.splice(0)) void worker.terminate();
  }
}

/**
 * The worker (started by `startSourceWorker`: only `require` and Node built-ins): fills a chunk
 * from its plan and sends the memory back. A file's last piece asks for one byte more than it
 * expects (or reads one byte past the end on its own when the chunk is full there), so a file
 * that grew since it was listed fails the pack, as one that shrank does.
 */
function fillWorker(require: NodeJS.Require): void {
  const { parentPort } = require('node:worker_threads') as typeof import('node:worker_threads');
  const fs = require('node:fs') as typeof import('node:fs');
  const port = parentPort as NonNullable<typeof parentPort>;
  const [DATA, FIELDS] = [0, 6];
  const probe = Buffer.alloc(1);
  const readFile = (chunk: Buffer, at: number, path: string, from: number, length: number, size: number): void => {
    const changed = (): Error => new Error(`${path} changed size while being packed`);
    const fd = fs.openSync(path, 'r');
    try {
      const reachesEnd = from + length === size;
      let done = 0;
      let probed = false;
      while (done < length) {
        const left = length - done;
        const ask = reachesEnd && at + length < chunk.length ? left + 1 : left;
        const read = fs.readSync(fd, chunk, at + done, ask, from + done);
        if (read === 0 || done + read > length) throw changed();
        probed = ask > left;
        done += read;
      }
      if (reachesEnd && !probed && fs.readSync(fd, probe, 0, 1, size) !== 0) throw changed();
    } finally {
      fs.closeSync(fd);
    }
  };
  port.on('message', (job: { id: number; buffer: ArrayBuffer; pieces: Float64Array; data: Uint8Array; paths: string }) => {
    const paths = job.paths.split('\0');
    const chunk = Buffer.from(job.buffer);
    const { pieces, data } = job;
    try {
      for (let p = 0; p < pieces.length; p += FIELDS) {
        const at = pieces[p + 1] as number;
        if (pieces[p] === DATA) chunk.set(data.subarray(pieces[p + 2] as number, (pieces[p + 2] as number) + (pieces[p + 3] as number)), at);
        else readFile(chunk, at, paths[pieces[p + 2] as number] as string, pieces[p + 3] as number, pieces[p + 4] as number, pieces[p + 5] as number);
      }
      port.postMessage({ id: job.id, buffer: job.buffer }, [job.buffer]);
    } catch (error) {
      const { message, code, path } = error as NodeJS.ErrnoException;
      port.postMessage({ id: job.id, buffer: job.buffer, error: { message, ...(code !== undefined && { code }), ...(path !== undefined && { path }) } }, [job.buffer]);
    }
  });
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
