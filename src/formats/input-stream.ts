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
  zlib: Partial<Pick<typeof zlib, 'createZstdCompress' | 'createZstdDecompress'>>;
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
export function inflating(compression: 'gzip' | 'zstd', limit: number, runtime: ZstdRuntime = THIS_RUNTIME): [Transform, InflationGuard] {
  return [compression === 'gzip' ? gunzip() : zstdDecompressor(runtime), new InflationGuard(limit)];
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
