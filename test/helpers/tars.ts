import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { pack } from 'tar-stream';

/** One entry of a hand-built tar (for malformed cases only; real fixtures come from real tools). */
export interface TarEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device';
  content?: string | Buffer;
  linkname?: string;
}

const FIXED_MTIME = new Date('2000-01-01T00:00:00Z');

/** Writes `entries` as a tar (gzip when `gzip`), with fixed mtimes so bytes are reproducible. */
export async function writeTar(path: string, entries: TarEntry[], gzip = false): Promise<void> {
  const tar = pack();
  for (const entry of entries) {
    const type = entry.type ?? 'file';
    const header = { name: entry.name, type, mtime: FIXED_MTIME, mode: type === 'directory' ? 0o755 : 0o644, ...(entry.linkname !== undefined && { linkname: entry.linkname }) };
    if (type === 'file') tar.entry(header, entry.content ?? '');
    else tar.entry(header);
  }
  tar.finalize();
  const stages = gzip ? [tar, createGzip(), createWriteStream(path)] : [tar, createWriteStream(path)];
  await pipeline(stages as unknown as [NodeJS.ReadableStream, NodeJS.WritableStream]);
}
