import { Transform, type TransformCallback, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { HashingStream } from '../image/digest.js';
import { hardlinkProblem, normalizeEntryName, symlinkEscapes } from '../image/tar-paths.js';

/**
 * Checks a layer tar as it streams past on its way into the store: entry names and link
 * targets must stay inside the rootfs, and the tar must be complete. For a gzip layer it also
 * hashes the uncompressed bytes, which is the layer's diff_id. One pass over the input.
 */
export class LayerCheck extends Transform {
  readonly #side: Writable;
  readonly #done: Promise<void>;
  readonly #diff: HashingStream | undefined;

  constructor(compression: 'none' | 'gzip') {
    super({ highWaterMark: 1024 * 1024 });
    const tar = extract();
    this.#diff = compression === 'gzip' ? new HashingStream() : undefined;
    const stages = compression === 'gzip' && this.#diff ? [createGunzip(), this.#diff] : [];
    const head = stages[0] ?? (tar as unknown as Writable);
    this.#side = head as Writable;
    const feeding = stages.length > 0 ? pipeline([...stages, tar] as unknown as [NodeJS.ReadableStream, NodeJS.WritableStream]) : Promise.resolve();
    this.#done = Promise.all([feeding, checkEntries(tar)]).then(() => undefined);
    this.#done.catch((error: unknown) => this.destroy(error as Error));
  }

  /** sha256 of the uncompressed tar (gzip layers only; an uncompressed layer's diff_id is its digest). */
  diffId(): string | undefined {
    return this.#diff?.digest();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.#side.write(chunk)) done(null, chunk);
    else this.#side.once('drain', () => done(null, chunk));
  }

  override _flush(done: TransformCallback): void {
    this.#side.end();
    this.#done.then(() => done(), done);
  }
}

async function checkEntries(tar: ReturnType<typeof extract>): Promise<void> {
  let entries = 0;
  for await (const entry of tar) {
    entries++;
    const { header } = entry;
    const normalized = normalizeEntryName(header.name);
    if ('problem' in normalized) throw new Error(normalized.problem);
    const target = header.linkname ?? '';
    if (header.type === 'symlink' && symlinkEscapes(normalized.path, target)) {
      throw new Error(`symlink "${normalized.path}" -> "${target}" points outside the rootfs`);
    }
    if (header.type === 'link') {
      const problem = hardlinkProblem(normalized.path, target);
      if (problem) throw new Error(problem);
    }
    entry.resume();
  }
  if (entries === 0) throw new Error('the tar holds no entries');
}
