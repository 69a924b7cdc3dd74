import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import { ChunkPool } from './chunk-pool.js';
import { crc32Combine } from './crc32.js';
import { startSourceWorker } from './source-worker.js';

/**
 * Bytes of input per deflate block. A constant of the layer format, never of the machine: the
 * blocks, and so the compressed bytes and the layer digest, are the same on 1 or 32 cores.
 * 1 MiB keeps the per-block costs (a thread message each way, a 32 KiB dictionary, 5 bytes of
 * sync marker) under 0.1% while a 20 MB layer still splits into enough blocks for every core.
 */
export const GZIP_BLOCK = 1024 * 1024;
/** deflate's window: each block may refer back this far, into the block before it. */
const WINDOW = 32 * 1024;

export interface ParallelGzipOptions {
  /** zlib level, 1–9 (default 6, as gzip and Docker use). */
  level?: number;
  /** Worker threads (default: one per core). Does not change the output. */
  threads?: number;
  /** Compute CRC-32 in JavaScript even where `zlib.crc32` exists (to test the Node < 20.15 path). */
  portableCrc?: boolean;
  /**
   * The writer hands its chunks over: a whole GZIP_BLOCK-byte chunk that owns its memory is
   * deflated in place (sent to a thread, not copied), and every block's memory goes back to
   * `pool` once deflated. Only for writers that never touch a chunk again (packTree).
   */
  adopt?: { pool: ChunkPool };
}

interface Deflated {
  deflated: Buffer;
  crc: number;
  length: number;
}

type WorkerReply = { id: number; deflated: Uint8Array; crc: number; block: ArrayBuffer } | { id: number; error: string };

/**
 * gzip on every core, pigz-style, with output that depends only on the input and the level.
 * The input is cut into GZIP_BLOCK-byte blocks; a worker deflates each one as raw deflate primed
 * with the previous block's last 32 KiB as dictionary and ends it with a sync flush (an empty
 * stored block, so it ends on a byte boundary without the "last block" bit); the blocks are
 * written in order between one gzip header and an empty final block + trailer (CRC-32 combined
 * from the blocks' CRCs, ISIZE). The result is one ordinary gzip member: every gunzip reads it.
 *
 * It also hashes what it compresses: `diffId()` is the sha256 of the input (the layer's diff_id).
 */
export class ParallelGzip extends Transform {
  readonly #level: number;
  readonly #pool: DeflatePool;
  readonly #hash = createHash('sha256');
  readonly #blocks: ChunkPool;
  readonly #adopt: boolean;
  #block: Buffer;
  #filled = 0;
  #dictionary: Buffer | undefined;
  #sent = 0;
  #written = 0;
  readonly #done = new Map<number, Deflated>();
  #crc = 0;
  #size = 0;
  #diffId: string | undefined;
  #resume: (() => void) | undefined;
  #failure: Error | undefined;
  readonly #maxInFlight: number;

  constructor(options: ParallelGzipOptions = {}) {
    super({ highWaterMark: GZIP_BLOCK });
    const level = options.level ?? 6;
    if (!Number.isInteger(level) || level < 1 || level > 9) throw new RangeError(`gzip level must be 1 to 9, not ${level}`);
    this.#level = level;
    const threads = Math.max(1, options.threads ?? availableParallelism());
    this.#pool = new DeflatePool(threads, options.portableCrc ?? false, (error) => this.#fail(error));
    this.#maxInFlight = threads * 2 + 1;
    this.#adopt = options.adopt?.pool.size === GZIP_BLOCK;
    this.#blocks = this.#adopt && options.adopt ? options.adopt.pool : new ChunkPool(GZIP_BLOCK);
    this.#block = this.#blocks.take();
    this.push(gzipHeader(level));
  }

  /** sha256 of everything compressed, as `sha256:<hex>`; valid once the stream has finished. */
  diffId(): string {
    this.#diffId ??= 'sha256:' + this.#hash.digest('hex');
    return this.#diffId;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.#adopt && this.#filled === 0 && chunk.length === GZIP_BLOCK && chunk.byteOffset === 0 && chunk.buffer.byteLength === GZIP_BLOCK) {
      this.#blocks.give(this.#block.buffer as ArrayBuffer);
      this.#block = chunk;
      this.#filled = GZIP_BLOCK;
      this.#send();
      return this.#whenRoom(done);
    }
    let at = 0;
    while (at < chunk.length) {
      const taken = chunk.copy(this.#block, this.#filled, at);
      at += taken;
      this.#filled += taken;
      if (this.#filled === GZIP_BLOCK) this.#send();
    }
    this.#whenRoom(done);
  }

  override _flush(done: TransformCallback): void {
    if (this.#filled > 0) this.#send();
    const finish = (): void => {
      if (this.#failure) return done(this.#failure);
      if (this.#written < this.#sent) {
        this.#resume = finish;
        return;
      }
      this.#pool.close();
      const trailer = Buffer.alloc(10);
      // An empty final block with fixed Huffman codes (BFINAL=1, BTYPE=01, end-of-block): the
      // blocks before it all end with a sync flush, so this closes the deflate stream.
      trailer[0] = 0x03;
      trailer[1] = 0x00;
      trailer.writeUInt32LE(this.#crc >>> 0, 2);
      trailer.writeUInt32LE(this.#size % 2 ** 32, 6);
      done(null, trailer);
    };
    finish();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.#pool.close();
    done(error);
  }

  #send(): void {
    const block = this.#block;
    const length = this.#filled;
    this.#hash.update(block.subarray(0, length));
    const dictionary = this.#dictionary;
    this.#dictionary = length >= WINDOW ? Buffer.from(block.subarray(length - WINDOW, length)) : undefined;
    const id = this.#sent++;
    this.#pool.deflate({ id, block: block.buffer as ArrayBuffer, length, dictionary, level: this.#level }, (reply) => this.#deflated(id, length, reply));
    this.#block = this.#blocks.take();
    this.#filled = 0;
  }

  #deflated(id: number, length: number, reply: WorkerReply): void {
    if ('error' in reply) return this.#fail(new Error(`gzip worker: ${reply.error}`));
    this.#blocks.give(reply.block);
    this.#done.set(id, { deflated: Buffer.from(reply.deflated.buffer, reply.deflated.byteOffset, reply.deflated.byteLength), crc: reply.crc, length });
    for (let next = this.#done.get(this.#written); next; next = this.#done.get(this.#written)) {
      this.#done.delete(this.#written);
      this.#written++;
      this.#crc = crc32Combine(this.#crc, next.crc, next.length);
      this.#size += next.length;
      this.push(next.deflated);
    }
    const resume = this.#resume;
    this.#resume = undefined;
    resume?.();
  }

  // Holds the writer back while enough blocks are in flight to keep every thread busy.
  #whenRoom(done: TransformCallback): void {
    if (this.#failure) return done(this.#failure);
    if (this.#sent - this.#written < this.#maxInFlight) return done();
    this.#resume = () => this.#whenRoom(done);
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    const resume = this.#resume;
    this.#resume = undefined;
    resume?.();
    this.destroy(error);
  }
}

// RFC 1952: magic, CM = deflate, no flags, MTIME = 0 (reproducible), XFL as zlib sets it for the
// level, OS = 3 (Unix) whatever the machine, so a layer packed anywhere has the same bytes.
function gzipHeader(level: number): Buffer {
  const xfl = level === 9 ? 2 : level === 1 ? 4 : 0;
  return Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, xfl, 0x03]);
}

interface DeflateJob {
  id: number;
  block: ArrayBuffer;
  length: number;
  dictionary: Buffer | undefined;
  level: number;
}

interface Queued {
  job: DeflateJob;
  reply: (reply: WorkerReply) => void;
}

/** Worker threads that deflate blocks; a job goes to the first idle one. */
class DeflatePool {
  readonly #size: number;
  readonly #portableCrc: boolean;
  readonly #onCrash: (error: Error) => void;
  readonly #workers: Worker[] = [];
  readonly #idle: Worker[] = [];
  readonly #queue: Queued[] = [];
  readonly #replies = new Map<number, (reply: WorkerReply) => void>();
  #closed = false;

  constructor(size: number, portableCrc: boolean, onCrash: (error: Error) => void) {
    this.#size = size;
    this.#portableCrc = portableCrc;
    this.#onCrash = onCrash;
  }

  deflate(job: DeflateJob, reply: (reply: WorkerReply) => void): void {
    this.#queue.push({ job, reply });
    this.#dispatch();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    for (const worker of this.#workers.splice(0)) void worker.terminate();
  }

  #dispatch(): void {
    while (this.#queue.length > 0 && !this.#closed) {
      const worker = this.#idle.pop() ?? (this.#workers.length < this.#size ? this.#spawn() : undefined);
      if (!worker) return;
      const { job, reply } = this.#queue.shift() as Queued;
      this.#replies.set(job.id, reply);
      worker.postMessage(job, [job.block]);
    }
  }

  #spawn(): Worker {
    const worker = startSourceWorker(deflateWorker);
    worker.postMessage({ portableCrc: this.#portableCrc });
    this.#workers.push(worker);
    worker.on('message', (reply: WorkerReply) => {
      const answer = this.#replies.get(reply.id);
      this.#replies.delete(reply.id);
      this.#idle.push(worker);
      answer?.(reply);
      this.#dispatch();
    });
    worker.on('error', (error) => {
      if (!this.#closed) this.#onCrash(error);
    });
    worker.on('exit', (code) => {
      if (!this.#closed) this.#onCrash(new Error(`a gzip worker thread stopped (exit code ${code})`));
    });
    return worker;
  }
}

/**
 * The worker (started by `startSourceWorker`: only `require` and Node built-ins): deflates a
 * block as raw deflate with the dictionary it is given, ends it with Z_SYNC_FLUSH, computes its
 * CRC-32, and sends both back with the block's buffer (for reuse).
 */
function deflateWorker(require: NodeJS.Require): void {
  const { parentPort } = require('node:worker_threads') as typeof import('node:worker_threads');
  const zlib = require('node:zlib') as typeof import('node:zlib');
  const port = parentPort as NonNullable<typeof parentPort>;
  // Table-driven CRC-32 (slicing by 8, ~1 GB/s) for Node before 20.15, which lacks zlib.crc32.
  const table = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = table[n] as number;
    for (let t = 1; t < 8; t++) {
      c = (table[c & 0xff] as number) ^ (c >>> 8);
      table[t * 256 + n] = c;
    }
  }
  const portableCrc32 = (data: Uint8Array): number => {
    let c = -1;
    let i = 0;
    const end8 = data.length - (data.length & 7);
    const at = (index: number): number => data[index] as number;
    const t = (index: number): number => table[index] as number;
    for (; i < end8; i += 8) {
      const a = (at(i) | (at(i + 1) << 8) | (at(i + 2) << 16) | (at(i + 3) << 24)) ^ c;
      c = t(1792 + (a & 0xff)) ^ t(1536 + ((a >>> 8) & 0xff)) ^ t(1280 + ((a >>> 16) & 0xff)) ^ t(1024 + (a >>> 24))
        ^ t(768 + at(i + 4)) ^ t(512 + at(i + 5)) ^ t(256 + at(i + 6)) ^ t(at(i + 7));
    }
    for (; i < data.length; i++) c = t((c ^ at(i)) & 0xff) ^ (c >>> 8);
    return ~c >>> 0;
  };
  let crc32 = (data: Uint8Array): number => (typeof zlib.crc32 === 'function' ? zlib.crc32(data) : portableCrc32(data));
  let configured = false;
  port.on('message', (message: { portableCrc: boolean } | { id: number; block: ArrayBuffer; length: number; dictionary?: Uint8Array; level: number }) => {
    if (!configured && 'portableCrc' in message) {
      configured = true;
      if (message.portableCrc) crc32 = portableCrc32;
      return;
    }
    if (!('id' in message)) return;
    try {
      const data = new Uint8Array(message.block, 0, message.length);
      const deflated = zlib.deflateRawSync(data, {
        level: message.level,
        finishFlush: zlib.constants.Z_SYNC_FLUSH,
        ...(message.dictionary && { dictionary: message.dictionary }),
      });
      const crc = crc32(data);
      const owned = deflated.byteOffset === 0 && deflated.byteLength === deflated.buffer.byteLength;
      port.postMessage({ id: message.id, deflated, crc, block: message.block }, owned ? [message.block, deflated.buffer as ArrayBuffer] : [message.block]);
    } catch (error) {
      port.postMessage({ id: message.id, error: (error as Error).message });
    }
  });
}
