import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { LoadError } from './load-error.js';

export type Compression = 'none' | 'gzip';

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];
const READ_CHUNK = 1024 * 1024;

/** The compression of a file, from its first bytes; zstd is refused with what to do instead. */
export async function sniffCompression(path: string): Promise<Compression> {
  const head = await readHead(path, 4);
  if (startsWith(head, GZIP_MAGIC)) return 'gzip';
  if (startsWith(head, ZSTD_MAGIC)) {
    throw new LoadError(path, 'is zstd-compressed, which cartorio cannot read yet', `decompress it first: zstd -d ${path}`);
  }
  return 'none';
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

function startsWith(buffer: Buffer, magic: number[]): boolean {
  return buffer.length >= magic.length && magic.every((byte, i) => buffer[i] === byte);
}
