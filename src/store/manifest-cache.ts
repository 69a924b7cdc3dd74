import { open } from 'node:fs/promises';
import { sha256Digest } from '../image/digest.js';
import { type ParsedManifest, parseManifest } from '../image/manifest.js';
import { blobPath, isNotFound } from './layout.js';

/** No manifest or index is read past this size (a store's are a few KB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** What a server keeps of manifest bytes; the rest is read again from the page cache when asked for. */
export const MANIFEST_CACHE_BYTES = 16 * 1024 * 1024;

/** Reads a manifest's bytes: `name` says where they came from in errors. Undefined: no such blob. */
export type ManifestBytes = (dir: string, digest: string) => Promise<{ bytes: Buffer; name: string } | undefined>;

interface Entry {
  bytes: Buffer;
  /** The media type the bytes were parsed as; another type is checked again. */
  mediaType: string;
}

/**
 * Manifest bytes by digest, each checked against its digest and parsed once when read, the least
 * recently used dropped past a byte budget. Keyed by digest alone: the bytes of a digest are the
 * same in every repository; whether a repository may serve them is its snapshot's business.
 */
export class ManifestCache {
  readonly #entries = new Map<string, Entry>();
  readonly #budget: number;
  readonly #source: ManifestBytes;
  #bytes = 0;

  /** `source`: where the bytes are (default: the blob file of the layout at `dir`; a bucket store gives its own). */
  constructor(budget = MANIFEST_CACHE_BYTES, source: ManifestBytes = readBlobFile) {
    this.#budget = budget;
    this.#source = source;
  }

  /** Bytes held now (tests, health). */
  get size(): number {
    return this.#bytes;
  }

  /**
   * The bytes of manifest `digest` in the layout at `dir`, as `mediaType`: undefined when there is
   * no such file; throws (naming the file) when it is too large, does not match its digest, or is
   * no valid manifest of that type. `parsed` is set when this call parsed the bytes.
   */
  async read(dir: string, digest: string, mediaType: string): Promise<{ bytes: Buffer; parsed?: ParsedManifest } | undefined> {
    const hit = this.#entries.get(digest);
    if (hit && hit.mediaType === mediaType) {
      this.#entries.delete(digest);
      this.#entries.set(digest, hit);
      return { bytes: hit.bytes };
    }
    const read = await this.#source(dir, digest);
    if (read === undefined) return undefined;
    const { bytes, name: path } = read;
    // Serving bytes whose digest is not the one announced would make every client fail with a
    // confusing digest error; a corrupt store is the operator's problem, said in the log.
    if (sha256Digest(bytes) !== digest) throw new Error(`stored manifest ${path} does not match its digest ${digest}; run \`cartorio verify\``);
    const parsed = parseManifest(bytes, mediaType, path);
    this.#add(digest, { bytes, mediaType });
    return { bytes, parsed };
  }

  #add(digest: string, entry: Entry): void {
    if (entry.bytes.length > this.#budget) return;
    const old = this.#entries.get(digest);
    if (old) {
      this.#entries.delete(digest);
      this.#bytes -= old.bytes.length;
    }
    this.#entries.set(digest, entry);
    this.#bytes += entry.bytes.length;
    for (const [key, value] of this.#entries) {
      if (this.#bytes <= this.#budget) break;
      this.#entries.delete(key);
      this.#bytes -= value.bytes.length;
    }
  }
}

async function readBlobFile(dir: string, digest: string): Promise<{ bytes: Buffer; name: string } | undefined> {
  const path = blobPath(dir, digest);
  const bytes = await readSmallFile(path);
  return bytes && { bytes, name: path };
}

// open, fstat, one read, close: a miss costs four trips to the thread pool, not six (stat + readFile).
async function readSmallFile(path: string): Promise<Buffer | undefined> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
  try {
    const { size } = await handle.stat();
    if (size > MAX_MANIFEST_BYTES) throw new Error(`stored manifest ${path} is ${size} bytes, over the ${MAX_MANIFEST_BYTES} limit; run \`cartorio verify\``);
    const bytes = Buffer.allocUnsafeSlow(size);
    const { bytesRead } = await handle.read(bytes, 0, size, 0);
    // A file shorter than its stat said (replaced meanwhile): what was read is checked like any bytes.
    return bytesRead === size ? bytes : bytes.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
