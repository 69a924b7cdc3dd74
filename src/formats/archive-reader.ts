import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { extract } from 'tar-stream';
import { normalizeEntryName } from '../image/tar-paths.js';
import { POOL_COPY_MIN } from '../store/copy-pool.js';
import type { BlobInfo, Ingest } from '../store/ingest.js';
import { ByteCounter, inflating, inflationLimit, openInput, openInputExcept, sniffCompression } from './input-stream.js';
import { LoadError } from './load-error.js';
import { indexPlainTar, type IndexedEntry } from './tar-index.js';

/** Regular files of an image archive, by normalised path, each already in the ingest. */
export type ArchiveFiles = Map<string, BlobInfo>;

const BLOB_PATH = /^blobs\/([^/]+)\/([^/]+)$/;
const SHA256_HEX = /^[a-f0-9]{64}$/;
const MAX_LINK_HOPS = 16;
/** What tar-stream's decoder puts in a name for bytes that are not UTF-8. */
const REPLACEMENT_CHARACTER = '\uFFFD';

/**
 * Reads an image archive (docker save, OCI archive) in one pass: every regular entry streams
 * into the ingest while hashed — `blobs/sha256/<hex>` entries are checked against their name —,
 * symlinks and hard links between entries become aliases, and anything that could write
 * outside the archive (absolute or `..` names, links that escape, devices) is refused, as are
 * entries that appear twice (which copy would a reader take?) and names that are not UTF-8
 * (two such names can decode to the same string; no tool writes them in an image archive).
 *
 * In an uncompressed archive, big entries are not hashed on the way through: tar-stream still
 * parses every byte and rules on every entry, but the content of an entry it accepts is copied
 * and hashed from its offset in the file by `Ingest.copyRange`, several layers side by side.
 * The offsets come from reading the headers alone (`indexPlainTar`), and are used only for
 * entries whose header both readers see the same way; the digests are checked as for any blob.
 */
export async function readImageArchive(input: string, ingest: Ingest, onBytes?: (bytes: number) => void): Promise<ArchiveFiles> {
  const compression = await sniffCompression(input);
  const files: ArchiveFiles = new Map();
  const aliases = new Map<string, string>();
  const seen = new Set<string>();
  const byOffset = compression === 'none' ? await bigEntries(input) : new Map<string, IndexedEntry>();
  const copies: Promise<void>[] = [];
  const tar = extract();
  // The big entries' content is read on the copy threads, by offset; tar-stream sees zeros there.
  const unread = [...byOffset.values()].map((entry) => ({ offset: entry.dataOffset, length: entry.size })).sort((a, b) => a.offset - b.offset);
  const stages: (Readable | NodeJS.ReadWriteStream)[] = [unread.length > 0 ? openInputExcept(input, unread) : openInput(input)];
  if (onBytes) stages.push(new ByteCounter(onBytes));
  if (compression !== 'none') stages.push(...inflating(compression, inflationLimit((await stat(input)).size)));
  const feeding = pipeline([...stages, tar] as unknown as [Readable, NodeJS.WritableStream]);
  feeding.catch(() => undefined); // reported below, once iteration stops
  let last: string | undefined;
  try {
    for await (const entry of tar) {
      const { header } = entry;
      const normalized = normalizeEntryName(header.name);
      if ('problem' in normalized) throw new LoadError(input, normalized.problem, 'the archive is damaged or hostile; do not load it');
      const path = normalized.path;
      if (path.includes(REPLACEMENT_CHARACTER)) throw new LoadError(input, `entry ${JSON.stringify(path)} has a name that is not valid UTF-8`, 'the archive is damaged or hostile; do not load it');
      last = path;
      if (seen.has(path)) throw new LoadError(input, `entry "${path}" appears twice in the archive`);
      seen.add(path);
      if (header.type === 'file' || header.type === 'contiguous-file') {
        const options = { where: `${input}: ${path}`, expectSize: header.size, ...blobClaim(input, path) };
        const located = byOffset.get(path);
        if (located) {
          // Its content reached tar-stream as zeros: it is copied by offset or the load fails.
          if (located.size !== header.size) throw new LoadError(input, `entry "${path}" has two sizes (${located.size} and ${header.size}) in its headers`, 'the archive is damaged or hostile; do not load it');
          byOffset.delete(path);
          entry.resume();
          const copy = ingest.copyRange(input, located.dataOffset, located.size, options).then((blob) => void files.set(path, blob));
          copy.catch(() => undefined); // awaited once the archive has been read
          copies.push(copy);
          continue;
        }
        files.set(path, await ingest.writeStream(entry as unknown as Readable, options));
        continue;
      }
      entry.resume();
      if (header.type === 'directory') continue;
      if (header.type === 'symlink') aliases.set(path, resolveLink(input, path, header.linkname ?? '', posix.dirname(path)));
      else if (header.type === 'link') aliases.set(path, resolveLink(input, path, header.linkname ?? '', '.'));
      else throw new LoadError(input, `entry "${path}" is a ${header.type ?? 'special file'}, which an image archive never holds`);
    }
    await feeding;
    const missed = [...byOffset.keys()][0];
    if (missed !== undefined) throw new LoadError(input, `entry "${missed}" is not where its header says`, 'the archive is damaged or hostile; do not load it');
    await Promise.all(copies);
  } catch (error) {
    tar.destroy();
    await Promise.allSettled(copies);
    // A stage's own error (a decompression bomb, a read error) says more than the parser's "premature close".
    const fed = await feeding.then(() => undefined, (failure: unknown) => failure as NodeJS.ErrnoException);
    const cause = error instanceof LoadError || fed === undefined || fed.code === 'ERR_STREAM_PREMATURE_CLOSE' ? error : fed;
    throw asLoadError(input, damagedHeader(cause, last));
  }
  for (const [path, target] of aliases) files.set(path, followAlias(input, path, target, files, aliases));
  return files;
}

// Big regular entries with nothing but their own ustar header, by the name tar-stream gives them;
// not those a truncated file cuts short (tar-stream reads them, and says the file is truncated).
async function bigEntries(input: string): Promise<Map<string, IndexedEntry>> {
  const { size: fileSize } = await stat(input);
  const found = new Map<string, IndexedEntry>();
  const names = new Set<string>();
  for (const entry of await indexPlainTar(input)) {
    const normalized = normalizeEntryName(entry.name);
    if ('problem' in normalized) continue;
    if (names.has(normalized.path)) {
      found.delete(normalized.path); // a duplicate, which tar-stream's pass refuses
      continue;
    }
    names.add(normalized.path);
    if (entry.regular && entry.plain && entry.size >= POOL_COPY_MIN && entry.dataOffset + entry.size <= fileSize) found.set(normalized.path, entry);
  }
  return found;
}

// A blob named by digest must hash to that digest; other algorithms are refused, not guessed at.
function blobClaim(input: string, path: string): { expectDigest?: string } {
  const match = BLOB_PATH.exec(path);
  if (!match) return {};
  const [, algorithm, hex] = match as unknown as [string, string, string];
  if (algorithm !== 'sha256') throw new LoadError(input, `blob "${path}" uses digest algorithm "${algorithm}"; only sha256 is supported`);
  if (!SHA256_HEX.test(hex)) throw new LoadError(input, `blob "${path}" is not named by a sha256 digest (64 lowercase hex digits)`);
  return { expectDigest: `sha256:${hex}` };
}

// A symlink is relative to its own directory, a hard link to the archive root; neither may leave it.
function resolveLink(input: string, path: string, target: string, base: string): string {
  const normalized = target.startsWith('/') ? undefined : normalizeEntryName(posix.join(base, target));
  if (!normalized || 'problem' in normalized) throw new LoadError(input, `link "${path}" points outside the archive ("${target}")`);
  return normalized.path;
}

function followAlias(input: string, path: string, target: string, files: ArchiveFiles, aliases: Map<string, string>): BlobInfo {
  let current = target;
  for (let hop = 0; hop < MAX_LINK_HOPS; hop++) {
    const file = files.get(current);
    if (file) return file;
    const next = aliases.get(current);
    if (next === undefined) break;
    current = next;
  }
  throw new LoadError(input, `link "${path}" points at "${target}", which is not a file in the archive`);
}

/**
 * tar-stream's words for a header it cannot decode, made precise: which entry it followed. A
 * header that fails its checksum after good entries is damage, not "not a tar".
 */
export function damagedHeader(error: unknown, after: string | undefined): unknown {
  const message = (error as Error | undefined)?.message ?? '';
  if (/^Invalid tar header/.test(message) && after !== undefined) {
    return new Error(`is corrupt: the tar header after entry "${after}" is damaged (bad checksum or format)`, { cause: error });
  }
  if (message === 'Header exceeds max size') return new Error('has a tar extended header (pax or GNU long name) over 4 MiB, which no real archive needs', { cause: error });
  if (message === 'Invalid header') return new Error(`is corrupt: a tar header${after === undefined ? '' : ` after entry "${after}"`} has an invalid size`, { cause: error });
  return error;
}

/** Turns stream and parser errors into one line naming the input. */
export function asLoadError(input: string, error: unknown): LoadError {
  if (error instanceof LoadError) return error;
  const message = (error as Error).message ?? String(error);
  if (/^(?:is corrupt|has a tar|inflates to)/.test(message)) return new LoadError(input, message, undefined, { cause: error });
  if (message.startsWith(input)) return new LoadError(input, message.slice(input.length + 2), undefined, { cause: error });
  if (/unexpected end|premature close|truncated/i.test(message)) {
    return new LoadError(input, `is truncated or corrupt (${message})`, 'copy the file again and check its size', { cause: error });
  }
  // tar-stream's and zlib's words for bytes that are not what they claim
  if (/invalid tar header|unknown format|incorrect (?:header|data|length) check|unknown compression method|invalid (?:block type|stored block|distance|code|literal)/i.test(message)) {
    return new LoadError(input, `is not a valid tar or gzip archive (${message})`, undefined, { cause: error });
  }
  return new LoadError(input, message, undefined, { cause: error });
}
