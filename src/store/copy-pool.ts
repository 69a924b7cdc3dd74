import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** One byte range of a file to copy into a blob's temp file, hashing it on the way. */
export interface RangeCopy {
  input: string;
  offset: number;
  size: number;
  output: string;
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
      worker.postMessage({ id, ...pending.copy });
    }
  }

  #spawn(): Worker {
    // Started from source text (`eval`) so the same code runs from dist/ and from the one-file
    // esbuild bundles, which have no separate worker file to point at.
    const worker = new Worker(`(${copyWorker.toString()})(require)`, { eval: true });
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
    if ('error' in reply) {
      fail(pending, new Error(reply.error));
    } else if ('digest' in reply) {
      pending.copied.resolve({ digest: reply.digest, size: reply.size });
      // The worker takes the next copy while this one's last flush runs.
      this.#idle.push(worker);
      this.#dispatch();
      return;
    } else {
      pending.durable.resolve();
    }
    this.#running.delete(reply.id);
    const ids = this.#byWorker.get(worker);
    ids?.delete(reply.id);
    if (ids?.size === 0 && this.#idle.includes(worker)) worker.unref();
    if ('error' in reply && !this.#idle.includes(worker)) {
      this.#idle.push(worker);
      this.#dispatch();
    }
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
 * The worker, as source text: only `require` and Node built-ins. For each copy it reads the range
 * in 1 MiB chunks (into reused buffers), hashes them, writes them at their position with up to four writes in flight,
 * flushes to disk every 32 MiB in the background (as BlobFile does), reports the digest, then
 * flushes the rest and reports the copy durable.
 */
function copyWorker(require: NodeJS.Require): void {
  const { parentPort } = require('node:worker_threads') as typeof import('node:worker_threads');
  const fs = require('node:fs/promises') as typeof import('node:fs/promises');
  const { createHash } = require('node:crypto') as typeof import('node:crypto');
  const CHUNK = 1024 * 1024;
  const FLUSH_EVERY = 32 * 1024 * 1024;
  const WRITES_IN_FLIGHT = 4;
  const port = parentPort as NonNullable<typeof parentPort>;
  // Chunk buffers are reused: a fresh 1 MiB buffer per read costs a page fault per 4 KiB, which
  // measured as a third of a load's system time.
  const spare: Buffer[] = [];
  const take = (): Buffer => spare.pop() ?? Buffer.allocUnsafeSlow(CHUNK);

  port.on('message', (job: { id: number; input: string; offset: number; size: number; output: string }) => {
    void run(job);
  });

  async function run(job: { id: number; input: string; offset: number; size: number; output: string }): Promise<void> {
    let out: import('node:fs/promises').FileHandle | undefined;
    let flushError: unknown;
    try {
      const input = await fs.open(job.input, 'r');
      const writes: Promise<unknown>[] = [];
      let flushing: Promise<void> | undefined;
      const hash = createHash('sha256');
      try {
        out = await fs.open(job.output, 'w', 0o644);
        const file = out;
        let done = 0;
        let unflushed = 0;
        let next = input.read(take(), 0, Math.min(CHUNK, job.size), job.offset);
        while (done < job.size) {
          const { bytesRead, buffer } = await next;
          if (bytesRead === 0) throw new Error(`the file ends ${job.size - done} bytes early; it was truncated or changed while being loaded`);
          const chunk = buffer.subarray(0, bytesRead);
          const at = done;
          done += bytesRead;
          const ahead = Math.min(CHUNK, job.size - done);
          if (ahead > 0) {
            next = input.read(take(), 0, ahead, job.offset + done);
            next.catch(() => undefined); // awaited next round, unless a failure ends the copy first
          }
          hash.update(chunk);
          if (writes.length >= WRITES_IN_FLIGHT) await writes.shift();
          const write = file.write(chunk, 0, bytesRead, at).then(({ bytesWritten }) => {
            if (bytesWritten !== bytesRead) throw new Error(`${job.output}: short write (${bytesWritten} of ${bytesRead} bytes); is the disk full?`);
            spare.push(buffer);
          });
          write.catch(() => undefined); // awaited below; this only keeps an early failure from crashing the worker
          writes.push(write);
          unflushed += bytesRead;
          if (unflushed >= FLUSH_EVERY && !flushing) {
            unflushed = 0;
            flushing = file.datasync().catch((error: unknown) => {
              flushError ??= error;
            }).finally(() => {
              flushing = undefined;
            });
          }
        }
        await Promise.all(writes);
      } finally {
        await input.close();
      }
      port.postMessage({ id: job.id, digest: `sha256:${hash.digest('hex')}`, size: job.size });
      await flushing;
      if (flushError) throw flushError;
      await out.datasync();
      await out.close();
      out = undefined;
      port.postMessage({ id: job.id, durable: true });
    } catch (error) {
      await out?.close().catch(() => undefined);
      port.postMessage({ id: job.id, error: (error as Error).message });
    }
  }
}
