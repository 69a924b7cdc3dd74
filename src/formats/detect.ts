import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract } from 'tar-stream';
import { inflating, inflationLimit, sniffCompression, type Compression } from './input-stream.js';
import { LoadError } from './load-error.js';
import { indexPlainTar } from './tar-index.js';
import type { FormatName } from './types.js';

/** Top-level archive entries that mark an image archive rather than a rootfs. */
const MARKERS = new Set(['manifest.json', 'index.json', 'oci-layout']);

/**
 * Which format an input is (DESIGN §2). Directories are told apart by the files they hold;
 * a tar file by its top-level entries, found by reading only the tar headers (seeking past
 * content), so detection costs almost nothing; a gzip or zstd tar must be decompressed to be listed.
 */
export async function detectFormat(input: string): Promise<FormatName> {
  let info;
  try {
    info = await stat(input);
  } catch {
    throw new LoadError(input, 'does not exist or cannot be read', 'check the path');
  }
  if (info.isDirectory()) return detectDirectory(input);
  if (!info.isFile()) throw new LoadError(input, 'is neither a file nor a directory');
  const compression = await sniffCompression(input);
  const names = compression === 'none' ? await topLevelNamesPlain(input) : await topLevelNamesCompressed(input, compression, inflationLimit(info.size));
  if (names.has('manifest.json')) return 'docker-archive';
  if (names.has('index.json') && names.has('oci-layout')) return 'oci-archive';
  return 'rootfs-tar';
}

async function detectDirectory(dir: string): Promise<FormatName> {
  const has = async (name: string, kind: 'file' | 'dir'): Promise<boolean> => {
    const info = await stat(join(dir, name)).catch(() => undefined);
    return kind === 'file' ? info?.isFile() === true : info?.isDirectory() === true;
  };
  if ((await has('oci-layout', 'file')) && (await has('index.json', 'file'))) return 'oci-layout';
  if ((await has('oci', 'dir')) && (await has('repository', 'file'))) return 'registry-image';
  if ((await has('rootfs', 'dir')) && (await has('metadata.json', 'file'))) return 'concourse-rootfs';
  if ((await has('rootfs.tgz', 'file')) && (await has('resource_metadata.json', 'file'))) return 'resource-bundle';
  return 'rootfs-dir';
}

// Reads only the headers, seeking past content.
async function topLevelNamesPlain(input: string): Promise<Set<string>> {
  const names = new Set<string>();
  for (const { name } of await indexPlainTar(input)) {
    const marker = name.replace(/^(\.\/)+/, '');
    if (MARKERS.has(marker)) names.add(marker);
  }
  return names;
}

async function topLevelNamesCompressed(input: string, compression: Exclude<Compression, 'none'>, limit: number): Promise<Set<string>> {
  const names = new Set<string>();
  const tar = extract();
  const feeding = pipeline([createReadStream(input, { highWaterMark: 1024 * 1024 }), ...inflating(compression, limit), tar] as unknown as [NodeJS.ReadableStream, NodeJS.WritableStream]);
  feeding.catch(() => undefined);
  try {
    for await (const entry of tar) {
      const marker = entry.header.name.replace(/^(\.\/)+/, '');
      if (MARKERS.has(marker)) names.add(marker);
      (entry as unknown as Readable).resume();
    }
    await feeding;
  } catch {
    // A damaged archive or a decompression bomb: let the loader name the problem precisely.
  }
  return names;
}
