import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import zlib, { createGunzip, type Gunzip } from 'node:zlib';
import { LoadError } from './load-error.js';

export type Compression = 'none' | 'gzip' | 'zstd';

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];
const READ_CHUNK = 1024 * 1024;
/** zlib's 16 KiB default output chunks make gunzip, hashing and tar parsing three times slower. */
const GUNZIP_CHUNK = 256 * 1024;
/**
 * Bound on what a gzip or zstd input may inflate to: deflate reaches ~1030:1 at most, so 2 GiB of
 * zeros fits in 2 MiB (zstd goes much further, which the same bound cuts short). Nothing inflated
 * is stored (layers are kept compressed), so memory and disk stay flat; the bound is on CPU time. Layers holding big runs of zeros are legitimate (disk images,
 * preallocated files), hence a floor of several GiB before the ratio applies.
 */
export const MAX_INFLATION_RATIO = 100;
export const INFLATION_FLOOR = 8 * 1024 ** 3;

/**
 * The runtime's zstd, in `node:zlib` since Node.js 22.15 and 24. Read through the module object at
 * call time (a named import of a missing export would stop the whole CLI from starting on an older
 * runtime); tests pass a runtime without it.
 */
export interface ZstdRuntime {
  version: string;
  zlib: Partial<Pick<typeof zlib, 'createZstdCompress' | 'createZstdDecompress' | 'zstdCompressSync' | 'zstdDecompressSync'>>;
}
const THIS_RUNTIME: ZstdRuntime = { version: process.version, zlib };

/** Why this runtime cannot read or write zstd, or undefined when it can. */
export function zstdProblem(runtime: ZstdRuntime = THIS_RUNTIME): string | undefined {
  const { createZstdCompress, createZstdDecompress } = runtime.zlib;
  if (typeof createZstdCompress === 'function' && typeof createZstdDecompress === 'function') return undefined;
  return `zstd needs Node.js 22.15 or later, and this is Node.js ${runtime.version}`;
}

/** The compression of a file, from its first bytes; zstd on a runtime without it is refused by name. */
export async function sniffCompression(path: string, runtime: ZstdRuntime = THIS_RUNTIME): Promise<Compression> {
  const head = await readHead(path, 4);
  if (startsWith(head, GZIP_MAGIC)) return 'gzip';
  if (startsWith(head, ZSTD_MAGIC)) {
    const problem = zstdProblem(runtime);
    if (problem) throw new LoadError(path, `is zstd-compressed: ${problem}`, `run cartorio on Node.js 24, or decompress it first: zstd -d ${path}`);
    return 'zstd';
  }
  return 'none';
}

/** The compression of bytes that start a file (a stored layer): gzip, zstd or none. */
export function compressionOf(head: Buffer): Compression {
  return startsWith(head, GZIP_MAGIC) ? 'gzip' : startsWith(head, ZSTD_MAGIC) ? 'zstd' : 'none';
}

/** The first `length` bytes of a file (fewer when it is shorter). */
export async function readHead(path: string, length: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Opens a file for a streaming pass with large reads. */
export function openInput(path: string) {
  return createReadStream(path, { highWaterMark: READ_CHUNK });
}

/** A byte range of a file: `length` bytes from `offset`. */
export interface ByteRange {
  offset: number;
  length: number;
}

/** Zeros stand in for content that is read elsewhere; one shared buffer, never written to. */
const ZEROS = Buffer.alloc(8 * 1024 * 1024);

/**
 * Streams a file with the bytes of `unread` ranges (sorted, not overlapping) replaced by zeros
 * that are never read from disk. The archive reader uses it so that tar-stream parses every header
 * of an archive whose big entries are copied by offset on other threads: a tar parser needs an
 * entry's content only to count past it.
 */
export function openInputExcept(path: string, unread: ByteRange[]): Readable {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  let position = 0;
  let range = 0;
  return new Readable({
    highWaterMark: READ_CHUNK,
    construct(done) {
      open(path, 'r').then((opened) => {
        handle = opened;
        done();
      }, done);
    },
    read() {
      const skip = unread[range];
      if (skip && position >= skip.offset) {
        const length = Math.min(ZEROS.length, skip.offset + skip.length - position);
        position += length;
        if (position >= skip.offset + skip.length) range++;
        this.push(ZEROS.subarray(0, length));
        return;
      }
      const length = Math.min(READ_CHUNK, skip ? skip.offset - position : READ_CHUNK);
      (handle as NonNullable<typeof handle>).read(Buffer.allocUnsafe(length), 0, length, position).then(({ bytesRead, buffer }) => {
        position += bytesRead;
        this.push(bytesRead === 0 ? null : buffer.subarray(0, bytesRead));
      }, (error: Error) => this.destroy(error));
    },
    destroy(error, done) {
      if (!handle) return done(error);
      handle.close().then(() => done(error), () => done(error));
    },
  });
}

/** Reports each chunk's size as it passes (drives the progress bar). */
export class ByteCounter extends Transform {
  readonly #onBytes: (bytes: number) => void;
  constructor(onBytes: (bytes: number) => void) {
    super({ highWaterMark: READ_CHUNK });
    this.#onBytes = onBytes;
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#onBytes(chunk.length);
    done(null, chunk);
  }
}

/** How many bytes a gzip or zstd input of `compressedSize` bytes may inflate to before it is refused. */
export function inflationLimit(compressedSize: number): number {
  return Math.max(INFLATION_FLOOR, MAX_INFLATION_RATIO * compressedSize);
}

/** A gunzip stream with large output chunks. */
export function gunzip(): Gunzip {
  return createGunzip({ chunkSize: GUNZIP_CHUNK });
}

/**
 * The stages that turn a compressed input back into its tar: the decompressor, with large output
 * chunks, and the inflation bound `limit` (see `inflationLimit`; the same for zstd as for gzip).
 * Throws the one-line `zstdProblem` on a runtime without zstd.
 */
export function inflating(compression: 'gzip' | 'zstd', limit: number, runtime: ZstdRuntime = THIS_RUNTIME): Transform[] {
  if (compression === 'gzip') return [gunzip(), new InflationGuard(limit)];
  const decompressor = zstdDecompressor(runtime);
  return [new ZstdFrames(decodesEveryFrame(runtime) ? undefined : runtime.version), decompressor, new InflationGuard(limit)];
}

const everyFrame = new WeakMap<ZstdRuntime, boolean>();
/**
 * Whether the runtime's zstd decodes a stream of several frames to the end (RFC 8878 §3.1: frames
 * are concatenated). Node.js 22.23's stops after the first frame without a word; 24's does not.
 */
function decodesEveryFrame(runtime: ZstdRuntime): boolean {
  let known = everyFrame.get(runtime);
  if (known === undefined) {
    const { zstdCompressSync, zstdDecompressSync } = runtime.zlib;
    const two = zstdCompressSync && zstdDecompressSync ? Buffer.concat([zstdCompressSync(Buffer.from('a')), zstdCompressSync(Buffer.from('b'))]) : undefined;
    known = two !== undefined && zstdDecompressSync?.(two).toString() === 'ab';
    everyFrame.set(runtime, known);
  }
  return known;
}

/**
 * Passes zstd bytes through, walking their frames (RFC 8878 §3.1: header, blocks, checksum;
 * skippable frames), and fails when the input ends inside a frame. Node.js 22's zstd decompressor
 * ends quietly on a cut stream (a file that lost its last bytes loaded as if whole), Node.js 24's
 * does not; this makes both refuse it.
 */
export class ZstdFrames extends Transform {
  /** Set on a runtime whose decompressor stops after the first frame: a second one is refused. */
  readonly #firstFrameOnly: string | undefined;
  #frames = 0;
  #pending = Buffer.alloc(0);
  /** Bytes still to pass before the next structure starts (a block's content, a skippable frame). */
  #skip = 0;
  #state: 'frame' | 'block' | 'checksum' = 'frame';
  #checksum = false;

  /** `firstFrameOnly`: the version of a runtime whose zstd decodes only a stream's first frame. */
  constructor(firstFrameOnly?: string) {
    super();
    this.#firstFrameOnly = firstFrameOnly;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    try {
      this.#walk(chunk);
    } catch (error) {
      return done(error as Error);
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    try {
      // A frame header is read up to its longest (18 bytes): the last frames may be shorter.
      while (this.#pending.length > 0) {
        const head = this.#pending;
        this.#pending = Buffer.alloc(0);
        const used = this.#structure(head);
        if (used === undefined) throw new Error('the zstd stream ends inside a frame: truncated');
        this.#walk(head.subarray(used));
      }
      if (this.#state !== 'frame' || this.#skip > 0) throw new Error('the zstd stream ends inside a frame: truncated');
    } catch (error) {
      return done(error as Error);
    }
    done();
  }

  #walk(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.#skip > 0) {
        const skipped = Math.min(this.#skip, chunk.length - at);
        this.#skip -= skipped;
        at += skipped;
        continue;
      }
      const need = this.#state === 'frame' ? 18 : this.#state === 'block' ? 3 : 4;
      const take = Math.min(need - this.#pending.length, chunk.length - at);
      const head = Buffer.concat([this.#pending, chunk.subarray(at, at + take)]);
      at += take;
      this.#pending = Buffer.alloc(0);
      const used = head.length < need ? undefined : this.#structure(head);
      if (used === undefined) {
        if (head.length >= 4 && this.#state === 'frame' && !isZstdMagic(head) && !isSkippable(head)) badMagic();
        this.#pending = head;
        continue;
      }
      // What the structure did not use starts the next one.
      if (used < head.length) this.#walk(head.subarray(used));
    }
  }

  /** Reads the structure starting `head`; returns its length, or undefined when `head` is too short. */
  #structure(head: Buffer): number | undefined {
    if (this.#state === 'checksum') {
      if (head.length < 4) return undefined;
      this.#state = 'frame';
      return 4;
    }
    if (this.#state === 'block') {
      if (head.length < 3) return undefined;
      const header = head.readUIntLE(0, 3);
      const type = (header >> 1) & 3;
      if (type === 3) throw new Error('is not valid zstd (reserved block type)');
      this.#skip = type === 1 ? 1 : header >>> 3;
      if (header & 1) this.#state = this.#checksum ? 'checksum' : 'frame';
      return 3;
    }
    if (head.length < 4) return undefined;
    if (!isZstdMagic(head) && !isSkippable(head)) return badMagic();
    if (head.length < (isSkippable(head) ? 8 : 6)) return undefined;
    if (isSkippable(head)) {
      this.#skip = head.readUInt32LE(4);
      return 8;
    }
    const descriptor = head[4] ?? 0;
    const single = (descriptor >> 5) & 1;
    const fcs = [single, 2, 4, 8][descriptor >> 6] ?? 0;
    const dictionary = [0, 1, 2, 4][descriptor & 3] ?? 0;
    const length = 5 + (single ? 0 : 1) + dictionary + fcs;
    if (head.length < length) return undefined;
    this.#checksum = ((descriptor >> 2) & 1) === 1;
    this.#state = 'block';
    if (++this.#frames > 1 && this.#firstFrameOnly !== undefined) {
      throw new Error(`holds more than one zstd frame, and the zstd of Node.js ${this.#firstFrameOnly} decodes only the first: run cartorio on Node.js 24`);
    }
    return length;
  }
}

function isZstdMagic(head: Buffer): boolean {
  return head.readUInt32LE(0) === 0xfd2fb528;
}

function isSkippable(head: Buffer): boolean {
  return (head.readUInt32LE(0) & 0xfffffff0) >>> 0 === 0x184d2a50;
}

function badMagic(): never {
  throw new Error('is not valid zstd (no frame magic where a frame should start)');
}

function zstdDecompressor(runtime: ZstdRuntime): Transform {
  const problem = zstdProblem(runtime);
  if (problem !== undefined || !runtime.zlib.createZstdDecompress) throw new Error(problem);
  return runtime.zlib.createZstdDecompress({ chunkSize: GUNZIP_CHUNK });
}

/**
 * A zstd compressor for layers cartorio packs: level 3 (zstd's and BuildKit's default), one
 * thread and a content checksum, so the same tar always gives the same bytes.
 */
export function zstdCompressor(runtime: ZstdRuntime = THIS_RUNTIME): Transform {
  const problem = zstdProblem(runtime);
  if (problem !== undefined || !runtime.zlib.createZstdCompress) throw new Error(problem);
  const { ZSTD_c_compressionLevel, ZSTD_c_checksumFlag } = zlib.constants;
  return runtime.zlib.createZstdCompress({ chunkSize: GUNZIP_CHUNK, params: { [ZSTD_c_compressionLevel]: 3, [ZSTD_c_checksumFlag]: 1 } });
}

/** Passes inflated bytes through, failing once more than `limit` have gone by (a gzip or zstd bomb). */
export class InflationGuard extends Transform {
  readonly #limit: number;
  #seen = 0;
  constructor(limit: number) {
    super({ highWaterMark: GUNZIP_CHUNK });
    this.#limit = limit;
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.#limit) return done(new Error(inflationProblem(this.#limit)));
    done(null, chunk);
  }
}

/** The one-line reason for refusing an input that inflates past `limit`. */
export function inflationProblem(limit: number): string {
  return `inflates to more than ${formatBytes(limit)} (over ${MAX_INFLATION_RATIO} times its compressed size): refused as a likely decompression bomb`;
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 ** 3 && bytes % 1024 ** 3 === 0 ? `${bytes / 1024 ** 3} GiB` : bytes >= 1024 ** 2 && bytes % 1024 ** 2 === 0 ? `${bytes / 1024 ** 2} MiB` : `${bytes} bytes`;
}

function startsWith(buffer: Buffer, magic: number[]): boolean {
  return buffer.length >= magic.length && magic.every((byte, i) => buffer[i] === byte);
}
