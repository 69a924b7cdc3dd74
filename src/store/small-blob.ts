import { open } from 'node:fs/promises';
import { sha256Digest } from '../image/digest.js';
import type { BlobLocation } from './image-source.js';

/** An image config is a few KiB; one larger than this is not read into memory for a page. */
export const MAX_SMALL_BLOB_BYTES = 1024 * 1024;

/**
 * The bytes of a small blob (an image config) at `location`, checked against `digest`: undefined
 * when it is larger than `max` or its bytes do not match (a page shows nothing rather than
 * something that is not that blob). Reads through the location's own handle when it has one
 * (an archive served in place), so the registry never opens store files itself.
 */
export async function readSmallBlob(location: BlobLocation, digest: string, max = MAX_SMALL_BLOB_BYTES): Promise<Buffer | undefined> {
  if (location.size > max || location.refused !== undefined) return undefined;
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
