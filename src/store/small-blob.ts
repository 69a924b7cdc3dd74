import { open } from 'node:fs/promises';
import { sha256Digest } from '../image/digest.js';
import type { BlobLocation, RemoteBlob } from './image-source.js';

/** An image config is a few KiB; one larger than this is not read into memory for a page. */
export const MAX_SMALL_BLOB_BYTES = 1024 * 1024;

/**
 * The bytes of a small blob (an image config) at `location`, checked against `digest`: undefined
 * when it is larger than `max` or its bytes do not match (a page shows nothing rather than
 * something that is not that blob). Reads through the location's own handle when it has one
 * (an archive served in place), so the registry never opens store files itself; a blob in a
 * bucket is read through its own stream.
 */
export async function readSmallBlob(location: BlobLocation | RemoteBlob, digest: string, max = MAX_SMALL_BLOB_BYTES): Promise<Buffer | undefined> {
  if (location.size > max) return undefined;
  if ('kind' in location) return readRemote(location, digest);
  if (location.refused !== undefined) return undefined;
  const handle = location.handle ?? (await open(location.path, 'r'));
  try {
    const bytes = Buffer.alloc(location.size);
    let read = 0;
    while (read < bytes.length) {
      const { bytesRead } = await handle.read(bytes, read, bytes.length - read, location.offset + read);
      if (bytesRead === 0) return undefined;
      read += bytesRead;
    }
    return sha256Digest(bytes) === digest ? bytes : undefined;
  } finally {
    if (!location.handle) await handle.close();
  }
}

async function readRemote(location: RemoteBlob, digest: string): Promise<Buffer | undefined> {
  const stream = await location.open();
  if (stream === undefined) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    // More bytes than the object's known size: not the blob the page asked for.
    if (size > location.size) {
      stream.destroy();
      return undefined;
    }
    chunks.push(chunk);
  }
  const bytes = Buffer.concat(chunks);
  return sha256Digest(bytes) === digest ? bytes : undefined;
}
