import { open, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/**
 * Dirty data handed to the disk while the file is still being written. Without it a load writes
 * everything into the page cache and then waits for one fsync of all of it at commit (a 472 MB
 * docker save: ~270 ms of a ~770 ms copy, bench/); flushed as it grows, the disk works while the
 * next chunks are hashed and the commit's fsync finds almost nothing left.
 */
const FLUSH_EVERY = 32 * 1024 * 1024;
const WRITES_IN_FLIGHT = 4;

/**
 * The most one write call hands the kernel. Linux (6.x ext4 with large folios) backs a write of
 * 1 MiB or more with page-cache folios that large, taken fresh from the page allocator; on this VM
 * such memory must first be faulted in by the host, and a load of a 472 MB layer in 1 MiB writes
 * spent 1.4 s of system time against 0.4 s in 512 KiB writes (`dd bs=1M` against `bs=512K`:
 * 0.94 s against 0.15 s; docs/benchmarks.md, "Variance on this machine"). The copy worker in
 * copy-pool.ts keeps the same bound.
 */
export const WRITE_MAX = 512 * 1024;

/**
 * The temp file of one blob of a load. Written at explicit positions, flushed in the background
 * every FLUSH_EVERY bytes (one flush at a time, so flushes never take the whole libuv threadpool
 * from reads and writes), and made durable by `durable()`, which the commit awaits.
 */
export class BlobFile extends Writable {
  readonly #path: string;
  #handle: FileHandle | undefined;
  #position = 0;
  #unflushed = 0;
  #flushing: Promise<void> | undefined;
  #flushError: unknown;
  readonly #writes = new Set<Promise<void>>();
  #writeError: unknown;
  #waiting: (() => void) | undefined;

  constructor(path: string, highWaterMark: number) {
    // Kept open after the last write: `durable()` flushes and closes it.
    super({ highWaterMark, autoDestroy: false });
    this.#path = path;
  }

  override _construct(done: (error?: Error | null) => void): void {
    open(this.#path, 'w', 0o644).then((handle) => {
      this.#handle = handle;
      done();
    }, done);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.#writeAt([chunk], chunk.length, done);
  }

  override _writev(chunks: { chunk: Buffer }[], done: (error?: Error | null) => void): void {
    const buffers = chunks.map(({ chunk }) => chunk);
    this.#writeAt(buffers, buffers.reduce((sum, buffer) => sum + buffer.length, 0), done);
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    const handle = this.#handle;
    this.#handle = undefined;
    if (!handle) return done(error);
    Promise.all([...this.#writes, this.#flushing]).then(() => handle.close()).then(() => done(error), (closeError: Error) => done(error ?? closeError));
  }

  /** Flushes what is left to the disk and closes the file; the blob survives a crash once this resolves. */
  async durable(): Promise<void> {
    const handle = this.#handle;
    if (!handle) throw new Error(`${this.#path}: closed before it was made durable`);
    this.#handle = undefined;
    try {
      await this.#flushing;
      if (this.#flushError) throw this.#flushError;
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }

  // Positional writes may overlap: up to WRITES_IN_FLIGHT run on the threadpool while the stream
  // goes on hashing, so a slow page-cache write never stalls the read → parse → hash chain.
  #writeAt(buffers: Buffer[], length: number, done: (error?: Error | null) => void): void {
    const handle = this.#handle;
    if (!handle) return done(new Error(`${this.#path}: written after close`));
    if (this.#writeError) return done(this.#writeError as Error);
    const position = this.#position;
    this.#position += length;
    const write = this.#writeInPieces(handle, buffers, position).then(() => {
      this.#unflushed += length;
      if (this.#unflushed >= FLUSH_EVERY && !this.#flushing) this.#flushInBackground(handle);
    }).catch((error: unknown) => {
      this.#writeError ??= error;
    }).finally(() => {
      this.#writes.delete(write);
      this.#waiting?.();
    });
    this.#writes.add(write);
    if (this.#writes.size < WRITES_IN_FLIGHT) return done();
    this.#waiting = () => {
      this.#waiting = undefined;
      done(this.#writeError as Error | undefined);
    };
  }

  // One writev per WRITE_MAX bytes, in order.
  async #writeInPieces(handle: FileHandle, buffers: Buffer[], position: number): Promise<void> {
    for (const piece of pieces(buffers, WRITE_MAX)) {
      const length = piece.reduce((sum, buffer) => sum + buffer.length, 0);
      const { bytesWritten } = await handle.writev(piece, position);
      if (bytesWritten !== length) throw new Error(`${this.#path}: short write (${bytesWritten} of ${length} bytes); is the disk full?`);
      position += length;
    }
  }

  override _final(done: (error?: Error | null) => void): void {
    Promise.all(this.#writes).then(() => done(this.#writeError as Error | undefined), done);
  }

  #flushInBackground(handle: FileHandle): void {
    this.#unflushed = 0;
    this.#flushing = handle.datasync().then(
      () => undefined,
      (error: unknown) => {
        this.#flushError ??= error;
      },
    ).finally(() => {
      this.#flushing = undefined;
    });
  }
}

/** `buffers` regrouped, in order, into runs of at most `max` bytes (a buffer may be split). */
export function* pieces(buffers: Buffer[], max: number): Generator<Buffer[]> {
  let run: Buffer[] = [];
  let room = max;
  for (let buffer of buffers) {
    while (buffer.length > 0) {
      const part = buffer.subarray(0, room);
      run.push(part);
      room -= part.length;
      buffer = buffer.subarray(part.length);
      if (room === 0) {
        yield run;
        run = [];
        room = max;
      }
    }
  }
  if (run.length > 0) yield run;
}
