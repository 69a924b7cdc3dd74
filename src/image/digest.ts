import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * Digests cartorio stores and serves. Only sha256 is stored; the grammar of the OCI
 * image spec (descriptor.md#digests) is used to tell "malformed" from "unsupported".
 */
const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;
const ANY_DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** True when `value` is a well-formed sha256 digest, the only kind a store holds. */
export function isSha256Digest(value: string): boolean {
  return SHA256_DIGEST.test(value);
}

/** True when `value` matches the spec's general digest grammar (any algorithm). */
export function isDigestSyntax(value: string): boolean {
  return value.length <= 256 && ANY_DIGEST.test(value);
}

/** The hex part of a sha256 digest; call only on a value `isSha256Digest` accepted. */
export function digestHex(digest: string): string {
  return digest.slice('sha256:'.length);
}

/** sha256 digest of a buffer, as `sha256:<hex>`. */
export function sha256Digest(bytes: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(bytes).digest('hex');
}

/** A pass-through stream that hashes and counts what flows through it. */
export class HashingStream extends Transform {
  readonly #hash: Hash = createHash('sha256');
  #size = 0;
  #digest: string | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#hash.update(chunk);
    this.#size += chunk.length;
    done(null, chunk);
  }

  /** Bytes seen so far. */
  get size(): number {
    return this.#size;
  }

  /** The digest of everything that passed; valid once the stream has finished. */
  digest(): string {
    this.#digest ??= 'sha256:' + this.#hash.digest('hex');
    return this.#digest;
  }
}

/**
 * Gathers small chunks into ~1 MiB ones: tar-stream emits a header, content and padding per
 * entry, and hashing or writing thousands of tiny buffers costs more than the bytes themselves.
 */
export class Coalesce extends Transform {
  readonly #chunks: Buffer[] = [];
  #size = 0;
  readonly #target: number;

  constructor(target = 1024 * 1024) {
    super({ highWaterMark: target });
    this.#target = target;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.#size === 0 && chunk.length >= this.#target) return done(null, chunk);
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    if (this.#size >= this.#target) this.#flushChunks();
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.#size > 0) this.#flushChunks();
    done();
  }

  #flushChunks(): void {
    this.push(Buffer.concat(this.#chunks, this.#size));
    this.#chunks.length = 0;
    this.#size = 0;
  }
}
