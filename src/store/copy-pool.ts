import { availableParallelism } from 'node:os';
import { Writable } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import { startSourceWorker } from '../image/source-worker.js';

/**
 * One byte range of a file to copy into a blob's temp file, hashing it on the way; without
 * `output`, only hashed (checking an archive served in place), read from the open descriptor
 * `fd` when given (threads share the process's descriptors), else from `input`.
 */
export interface RangeCopy {
  input: string;
  offset: number;
  size: number;
  output?: string;
  fd?: number;
}

/** A copy in progress: `copied` gives the digest once the bytes are written; `durable`, once they are on disk. */
export interface CopyJob {
  copied: Promise<{ digest: string; size: number }>;
  durable: Promise<void>;
}

interface Pending {
  copy: RangeCopy;
  copied: Deferred<{ digest: string; size: number }>;
  durable: Deferred<void>;
}

/** Blobs this big are worth a copy on the pool's threads (smaller ones stream on the main thread). */
export const POOL_COPY_MIN = 8 * 1024 * 1024;

type WorkerReply = { id: number; digest: string; size: number } | { id: number; durable: true } | { id: number; error: string };

/**
 * Copies byte ranges into blob temp files on worker threads, one copy per core at a time. sha256
 * is most of a load's time and one thread hashes one stream at a time: the layers of a docker save
 * hash side by side, each read from the input by offset (bench/: 472 MB, 2 cores).
 *
 * Workers start on first use, hold the event loop only while they have work, and end on `close()`.
 */
export class CopyPool {
  readonly #size: number;
  readonly #workers: Worker[] = [];
  readonly #idle: Worker[] = [];
  readonly #queue: Pending[] = [];
  readonly #running = new Map<number, Pending>();
  readonly #byWorker = new Map<Worker, Set<number>>();
  #nextId = 0;
  #closed = false;

  constructor(size = Math.min(2, availableParallelism())) {
    this.#size = Math.max(1, size);
  }

  copy(copy: RangeCopy): CopyJob {
    const pending: Pending = { copy, copied: deferred(), durable: deferred() };
    if (this.#closed) {
      pending.copied.reject(new Error(`${copy.input}: the load has ended`));
      pending.durable.reject(new Error(`${copy.input}: the load has ended`));
    } else {
      this.#queue.push(pending);
      this.#dispatch();
    }
    return { copied: pending.copied.promise, durable: pending.durable.promise };
  }

  /**
   * Lets the copies that have started finish (so no worker writes into a temp directory after it
   * is removed), drops those that have not, and stops the workers.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const pending of this.#queue.splice(0)) fail(pending, new Error(`${pending.copy.input}: the load has ended`));
    await Promise.allSettled([...this.#running.values()].map((pending) => pending.durable.promise));
    // Not awaited: terminating a worker while it is in a file-system call could leave the promise
    // unsettled with nothing holding the event loop, ending the process with code 0 (seen here).
    for (const worker of this.#workers.splice(0)) {
      this.#byWorker.delete(worker);
      void worker.terminate();
    }
    this.#idle.length = 0;
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      const worker = this.#idle.pop() ?? (this.#workers.length < this.#size ? this.#spawn() : undefined);
      if (!worker) return;
      const pending = this.#queue.shift() as Pending;
      const id = this.#nextId++;
      this.#running.set(id, pending);
      this.#byWorker.get(worker)?.add(id);
      worker.ref();
      worker.postMessage({ type: pending.copy.output === undefined ? 'hash' : 'range', id, ...pending.copy });
    }
  }

  #spawn(): Worker {
    const worker = startSourceWorker(copyWorker);
    this.#workers.push(worker);
    this.#byWorker.set(worker, new Set());
    worker.on('message', (reply: WorkerReply) => this.#reply(worker, reply));
    worker.on('error', (error) => this.#crashed(worker, error));
    worker.on('exit', (code) => this.#crashed(worker, new Error(`copy worker exited with code ${code}`)));
    return worker;
  }

  #reply(worker: Worker, reply: WorkerReply): void {
    const pending = this.#running.get(reply.id);
    if (!pending) return;
    if ('digest' in reply) {
      pending.copied.resolve({ digest: reply.digest, size: reply.size });
      // The worker takes the next copy while this one's last flush runs.
      this.#release(worker);
      return;
    }
    if ('error' in reply) fail(pending, new Error(reply.error));
    else pending.durable.resolve();
    this.#running.delete(reply.id);
    this.#byWorker.get(worker)?.delete(reply.id);
    this.#release(worker);
  }

  // A worker free for the next copy; one with nothing left to finish stops holding the event loop.
  #release(worker: Worker): void {
    if (!this.#idle.includes(worker)) this.#idle.push(worker);
    this.#dispatch();
    if (this.#idle.includes(worker) && this.#byWorker.get(worker)?.size === 0) worker.unref();
  }

  #crashed(worker: Worker, error: Error): void {
    const ids = this.#byWorker.get(worker);
    if (!ids) return; // 'exit' after 'error': already handled
    for (const id of ids) {
      const pending = this.#running.get(id);
      if (pending) fail(pending, error);
      this.#running.delete(id);
    }
    this.#byWorker.delete(worker);
    this.#workers.splice(this.#workers.indexOf(worker), 1);
    const idle = this.#idle.indexOf(worker);
    if (idle >= 0) this.#idle.splice(idle, 1);
    if (!this.#closed) this.#dispatch();
  }
}

function fail(pending: Pending, error: Error): void {
  pending.copied.reject(error);
  pending.durable.reject(error);
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: Error) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((ok, ko) => {
    resolve = ok;
    reject = ko;
  });
  promise.catch(() => undefined); // the caller may stop listening after a first failure
  return { promise, resolve, reject };
}

/**
 * A blob streamed to a worker thread of its own, which hashes and writes what it is sent: for a
 * stream whose producer keeps the main thread busy (packing a directory: tar headers for 35k
 * files), hashing there would take a quarter of that thread's time. Chunks are handed over, not
 * copied, when they own their memory (as Coalesce's do); at most CHUNKS_IN_FLIGHT are outstanding.
 */
export class OffThreadBlobSink extends Writable {
  readonly #worker: Worker;
  readonly #copied = deferred<{ digest: string; size: number }>();
  readonly #durable = deferred<void>();
  #inFlight = 0;
  #resume: (() => void) | undefined;
  #failure: Error | undefined;

  readonly #recycle: ((buffer: ArrayBuffer) => void) | undefined;

  /** `recycle` gets back the memory of each chunk the thread has written (handed-over chunks only). */
  constructor(output: string, recycle?: (buffer: ArrayBuffer) => void) {
    super({ highWaterMark: 1024 * 1024 });
    this.#recycle = recycle;
    this.#worker = startSourceWorker(copyWorker);
    this.#worker.on('message', (reply: { ack?: true; buffer?: ArrayBuffer; digest?: string; size?: number; durable?: true; error?: string }) => {
      if (reply.ack) {
        this.#inFlight--;
        if (reply.buffer) this.#recycle?.(reply.buffer);
        this.#resume?.();
      } else if (reply.digest !== undefined) {
        this.#copied.resolve({ digest: reply.digest, size: reply.size ?? 0 });
      } else if (reply.durable) {
        this.#durable.resolve();
        void this.#worker.terminate();
      } else if (reply.error !== undefined) {
        this.#fail(new Error(reply.error));
      }
    });
    this.#worker.on('error', (error) => this.#fail(error));
    this.#worker.on('exit', (code) => this.#fail(new Error(`the blob writer thread stopped (exit code ${code})`)));
    this.#worker.postMessage({ type: 'open', output });
  }

  /** The digest and size of everything written; settles after the stream has finished. */
  get copied(): Promise<{ digest: string; size: number }> {
    return this.#copied.promise;
  }

  /** Settles once the blob is on disk. */
  get durable(): Promise<void> {
    return this.#durable.promise;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.#failure) return done(this.#failure);
    // Only a chunk that is its whole ArrayBuffer moves as is. Any other is copied into one of its
    // own: not Buffer.from, which puts a small copy in the shared 8 KiB pool, an ArrayBuffer that
    // Node.js 21+ refuses to transfer ("Cannot transfer object of unsupported type").
    const owned = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength ? chunk : new Uint8Array(chunk);
    this.#inFlight++;
    this.#worker.postMessage({ type: 'chunk', buffer: owned.buffer }, [owned.buffer as ArrayBuffer]);
    if (this.#inFlight < CHUNKS_IN_FLIGHT) return done();
    this.#resume = () => {
      this.#resume = undefined;
      done(this.#failure);
    };
  }

  override _final(done: (error?: Error | null) => void): void {
    this.#worker.postMessage({ type: 'end' });
    this.#copied.promise.then(() => done(), done);
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    if (error) this.#fail(error);
    done(error);
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    this.#copied.reject(error);
    this.#durable.reject(error);
    this.#resume?.();
    void this.#worker.terminate();
  }
}

const CHUNKS_IN_FLIGHT = 8;

/**
 * The worker (started by `startSourceWorker`: only `require` and Node built-ins). It writes blobs
 * two ways: a `range` of a file, which it reads itself in 1 MiB chunks into reused buffers (for
 * CopyPool), or the chunks of an `open` … `end` stream it is sent (for OffThreadBlobSink). Either
 * way each chunk is hashed and written at its position, in writes of at most 512 KiB (a range
 * keeps up to four chunks in flight, a stream as many as its sender allows), and flushed to disk
 * every 32 MiB in the background (as BlobFile does); the digest is reported once the bytes are
 * written, and the blob reported durable once the rest is flushed.
 */
function copyWorker(require: NodeJS.Require): void {
  const { parentPort } = require('node:worker_threads') as typeof import('node:worker_threads');
  const fs = require('node:fs/promises') as typeof import('node:fs/promises');
  const { createHash } = require('node:crypto') as typeof import('node:crypto');
  type FileHandle = import('node:fs/promises').FileHandle;
  const CHUNK = 1024 * 1024;
  const FLUSH_EVERY = 32 * 1024 * 1024;
  const WRITES_IN_FLIGHT = 4;
  const WRITE_MAX = 512 * 1024; // blob-file.ts's WRITE_MAX (the worker cannot import it): bigger writes cost 3× the system time
  const port = parentPort as NonNullable<typeof parentPort>;
  // Chunk buffers of range copies are reused: a fresh 1 MiB buffer per read costs a page fault
  // per 4 KiB, which measured as a third of a load's system time.
  const spare: Buffer[] = [];
  const take = (): Buffer => spare.pop() ?? Buffer.allocUnsafeSlow(CHUNK);

  /** One blob's temp file: hashed, positioned writes, background flushes. */
  class BlobWriter {
    readonly hash = createHash('sha256');
    size = 0;
    readonly #file: Promise<FileHandle>;
    readonly #writes = new Set<Promise<void>>();
    #unflushed = 0;
    #flushing: Promise<void> | undefined;
    #error: unknown;

    constructor(output: string) {
      this.#file = fs.open(output, 'w', 0o644);
      this.#file.catch((error: unknown) => {
        this.#error ??= error;
      });
    }

    get writing(): number {
      return this.#writes.size;
    }

    /** Hashes `chunk` now and writes it; `written` runs once the write is done (or failed). */
    add(chunk: Buffer, written?: () => void): void {
      this.hash.update(chunk);
      const at = this.size;
      this.size += chunk.length;
      const write = this.#file.then(async (file) => {
        for (let offset = 0; offset < chunk.length; offset += WRITE_MAX) {
          const length = Math.min(WRITE_MAX, chunk.length - offset);
          const { bytesWritten } = await file.write(chunk, offset, length, at + offset);
          if (bytesWritten !== length) throw new Error(`short write (${bytesWritten} of ${length} bytes); is the disk full?`);
        }
        this.#unflushed += chunk.length;
        if (this.#unflushed >= FLUSH_EVERY && !this.#flushing) {
          this.#unflushed = 0;
          this.#flushing = file.datasync().catch((error: unknown) => {
            this.#error ??= error;
          }).finally(() => {
            this.#flushing = undefined;
          });
        }
      }).catch((error: unknown) => {
        this.#error ??= error;
      }).finally(() => {
        this.#writes.delete(write);
        written?.();
      });
      this.#writes.add(write);
    }

    /** Waits for one write to finish. */
    async oneWritten(): Promise<void> {
      await Promise.race(this.#writes);
    }

    /** Waits for every write; the digest of all that was added. */
    async written(): Promise<string> {
      await Promise.all(this.#writes);
      if (this.#error) throw this.#error;
      return `sha256:${this.hash.digest('hex')}`;
    }

    /** Flushes the rest and closes the file. */
    async durable(): Promise<void> {
      const file = await this.#file;
      try {
        await this.#flushing;
        if (this.#error) throw this.#error;
        await file.datasync();
      } finally {
        await file.close();
      }
    }

    async abandon(): Promise<void> {
      await Promise.allSettled(this.#writes);
      await (await this.#file.catch(() => undefined))?.close().catch(() => undefined);
    }
  }

  const report = async (id: number | undefined, blob: BlobWriter): Promise<void> => {
    try {
      port.postMessage({ id, digest: await blob.written(), size: blob.size });
      await blob.durable();
      port.postMessage({ id, durable: true });
    } catch (error) {
      await blob.abandon();
      port.postMessage({ id, error: (error as Error).message });
    }
  };

  async function copyRange(job: { id: number; input: string; offset: number; size: number; output: string }): Promise<void> {
    const blob = new BlobWriter(job.output);
    try {
      const input = await fs.open(job.input, 'r');
      try {
        let done = 0;
        let next = input.read(take(), 0, Math.min(CHUNK, job.size), job.offset);
        while (done < job.size) {
          const { bytesRead, buffer } = await next;
          if (bytesRead === 0) throw new Error(`the file ends ${job.size - done} bytes early; it was truncated or changed while being loaded`);
          done += bytesRead;
          const ahead = Math.min(CHUNK, job.size - done);
          if (ahead > 0) {
            next = input.read(take(), 0, ahead, job.offset + done);
            next.catch(() => undefined); // awaited next round, unless a failure ends the copy first
          }
          if (blob.writing >= WRITES_IN_FLIGHT) await blob.oneWritten();
          blob.add(buffer.subarray(0, bytesRead), () => spare.push(buffer));
        }
      } finally {
        await input.close();
      }
    } catch (error) {
      await blob.abandon();
      port.postMessage({ id: job.id, error: (error as Error).message });
      return;
    }
    await report(job.id, blob);
  }

  // Hash only: read by offset (from the shared descriptor when given), nothing written.
  async function hashRange(job: { id: number; input: string; offset: number; size: number; fd?: number }): Promise<void> {
    const hash = createHash('sha256');
    const buffer = take();
    try {
      const input = job.fd === undefined ? await fs.open(job.input, 'r') : undefined;
      const readAt = (length: number, position: number): Promise<number> => input
        ? input.read(buffer, 0, length, position).then((result) => result.bytesRead)
        : new Promise((resolve, reject) => require('node:fs').read(job.fd as number, buffer, 0, length, position, (error: Error | null, bytesRead: number) => (error ? reject(error) : resolve(bytesRead))));
      try {
        let done = 0;
        while (done < job.size) {
          const bytesRead = await readAt(Math.min(CHUNK, job.size - done), job.offset + done);
          if (bytesRead === 0) throw new Error(`the file ends ${job.size - done} bytes early; it was truncated or changed`);
          hash.update(buffer.subarray(0, bytesRead));
          done += bytesRead;
        }
      } finally {
        await input?.close();
      }
      port.postMessage({ id: job.id, digest: `sha256:${hash.digest('hex')}`, size: job.size });
      port.postMessage({ id: job.id, durable: true });
    } catch (error) {
      port.postMessage({ id: job.id, error: (error as Error).message });
    } finally {
      spare.push(buffer);
    }
  }

  let stream: BlobWriter | undefined;
  port.on('message', (message: { type: 'range'; id: number; input: string; offset: number; size: number; output: string } | { type: 'hash'; id: number; input: string; offset: number; size: number; fd?: number } | { type: 'open'; output: string } | { type: 'chunk'; buffer: ArrayBuffer } | { type: 'end' }) => {
    if (message.type === 'hash') {
      void hashRange(message);
    } else if (message.type === 'range') {
      void copyRange(message);
    } else if (message.type === 'open') {
      stream = new BlobWriter(message.output);
    } else if (message.type === 'chunk') {
      // The chunk's memory goes back with the ack, for the sender to fill again.
      stream?.add(Buffer.from(message.buffer), () => port.postMessage({ ack: true, buffer: message.buffer }, [message.buffer]));
    } else if (stream) {
      void report(undefined, stream);
    }
  });
}
