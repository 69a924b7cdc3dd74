import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashingStream } from '../image/digest.js';

/**
 * A pass-through that fails the pipeline when the bytes are not `digest` (checked at the end)
 * or not `size` bytes long (checked as soon as they exceed it, so a runaway source stops early).
 * `where` names the source in the error.
 */
export class VerifyingStream extends HashingStream {
  constructor(
    readonly expectDigest: string,
    readonly expectSize: number | undefined,
    readonly where: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, encoding: BufferEncoding, done: TransformCallback): void {
    if (this.expectSize !== undefined && this.size + chunk.length > this.expectSize) {
      done(new Error(`${this.where}: more than the expected ${this.expectSize} bytes`));
      return;
    }
    super._transform(chunk, encoding, done);
  }

  override _flush(done: TransformCallback): void {
    if (this.expectSize !== undefined && this.size !== this.expectSize) {
      done(new Error(`${this.where}: got ${this.size} bytes, expected ${this.expectSize}`));
    } else if (this.digest() !== this.expectDigest) {
      done(new Error(`${this.where}: content has digest ${this.digest()}, expected ${this.expectDigest}`));
    } else {
      done();
    }
  }
}

/**
 * Streams `source` into `path` while verifying it: written to a temp file beside `path` and
 * renamed only once digest and size match, so `path` never holds unverified bytes.
 */
export async function writeVerifiedFile(source: Readable, path: string, digest: string, size: number | undefined, where: string): Promise<number> {
  const temp = `${path}.${randomBytes(6).toString('hex')}.partial`;
  const verifier = new VerifyingStream(digest, size, where);
  try {
    await pipeline(source, verifier, createWriteStream(temp, { flags: 'wx' }));
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  return verifier.size;
}
