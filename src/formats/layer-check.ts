import { Transform, type TransformCallback, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract } from 'tar-stream';
import { HashingStream } from '../image/digest.js';
import { hardlinkProblem, normalizeEntryName, symlinkEscapes } from '../image/tar-paths.js';
import { INFLATION_FLOOR, inflating, type Compression } from './input-stream.js';
import { damagedHeader } from './archive-reader.js';

/**
 * Checks a layer tar as it streams past on its way into the store: entry names and link
 * targets must stay inside the rootfs, and the tar must be complete. For a gzip or zstd layer it
 * also hashes the uncompressed bytes, which is the layer's diff_id, and refuses to inflate past
 * `inflationLimit` (a decompression bomb). One pass over the input.
 *
 * What a layer may hold that an image archive may not, as Docker and containerd accept it:
 * device nodes and FIFOs (a rootfs has /dev entries; runtimes create them only when privileged),
 * an entry repeated (tar semantics: the last one wins on extraction), and names that are not
 * UTF-8 (Linux names are bytes; the layer is stored as is, so they reach the runtime intact,
 * and the checks here only look at `/`, `.` and `..`, which decoding never changes).
 */
export class LayerCheck extends Transform {
  readonly #side: Writable;
  readonly #done: Promise<void>;
  readonly #diff: HashingStream | undefined;

  constructor(compression: Compression, inflationLimit = INFLATION_FLOOR) {
    super({ highWaterMark: 1024 * 1024 });
    const tar = extract();
    this.#diff = compression !== 'none' ? new HashingStream() : undefined;
    const stages = compression !== 'none' && this.#diff ? [...inflating(compression, inflationLimit), this.#diff] : [];
    const head = stages[0] ?? (tar as unknown as Writable);
    this.#side = head as Writable;
    const feeding = stages.length > 0 ? pipeline([...stages, tar] as unknown as [NodeJS.ReadableStream, NodeJS.WritableStream]) : Promise.resolve();
    this.#done = Promise.all([feeding, checkEntries(tar)]).then(() => undefined);
    this.#done.catch((error: unknown) => this.destroy(error as Error));
  }

  /** sha256 of the uncompressed tar (compressed layers only; an uncompressed layer's diff_id is its digest). */
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
  let last: string | undefined;
  try {
    for await (const entry of tar) {
      entries++;
      const { header } = entry;
      const normalized = normalizeEntryName(header.name);
      if ('problem' in normalized) throw new Error(normalized.problem);
      last = normalized.path;
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
  } catch (error) {
    throw damagedHeader(error, last);
  }
  if (entries === 0) throw new Error('the tar holds no entries');
}
