import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract } from 'tar-stream';
import { InflationGuard, gunzip, inflationLimit, sniffCompression } from './input-stream.js';
import { LoadError } from './load-error.js';
import type { FormatName } from './types.js';

/** Top-level archive entries that mark an image archive rather than a rootfs. */
const MARKERS = new Set(['manifest.json', 'index.json', 'oci-layout']);
const BLOCK = 512;

/**
 * Which format an input is (DESIGN §2). Directories are told apart by the files they hold;
 * a tar file by its top-level entries, found by reading only the tar headers (seeking past
 * content), so detection costs almost nothing; a gzip tar must be decompressed to be listed.
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
  const names = compression === 'gzip' ? await topLevelNamesGzip(input, inflationLimit(info.size)) : await topLevelNamesPlain(input);
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

// Walks ustar/GNU/pax headers with positioned reads; content blocks are skipped, never read.
async function topLevelNamesPlain(input: string): Promise<Set<string>> {
  const names = new Set<string>();
  const handle = await open(input, 'r');
  try {
    const header = Buffer.alloc(BLOCK);
    let offset = 0;
    for (;;) {
      const { bytesRead } = await handle.read(header, 0, BLOCK, offset);
      if (bytesRead < BLOCK || header.every((byte) => byte === 0)) break;
      if (!checksumOk(header)) {
        if (offset === 0 && header.subarray(257, 262).toString() === 'ustar') throw new LoadError(input, 'is a damaged tar archive: the first header fails its checksum', 'copy the file again');
        if (offset === 0) throw new LoadError(input, 'is neither a directory nor a tar archive (plain or gzip)', 'pass --format if cartorio guessed wrong');
        break; // a damaged tail: the loader reports it precisely
      }
      const name = field(header, 0, 100);
      const prefix = header.subarray(257, 262).toString() === 'ustar' ? field(header, 345, 155) : '';
      const marker = (prefix ? `${prefix}/${name}` : name).replace(/^(\.\/)+/, '');
      if (MARKERS.has(marker)) names.add(marker);
      offset += BLOCK + Math.ceil(entrySize(header) / BLOCK) * BLOCK;
    }
  } finally {
    await handle.close();
  }
  return names;
}

async function topLevelNamesGzip(input: string, limit: number): Promise<Set<string>> {
  const names = new Set<string>();
  const tar = extract();
  const feeding = pipeline(createReadStream(input, { highWaterMark: 1024 * 1024 }), gunzip(), new InflationGuard(limit), tar as unknown as NodeJS.WritableStream);
  feeding.catch(() => undefined);
  try {
    for await (const entry of tar) {
      const marker = entry.header.name.replace(/^(\.\/)+/, '');
      if (MARKERS.has(marker)) names.add(marker);
      (entry as unknown as Readable).resume();
    }
    await feeding;
  } catch {
    // A damaged archive or a gzip bomb: let the loader name the problem precisely.
  }
  return names;
}

function field(block: Buffer, start: number, length: number): string {
  const raw = block.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end < 0 ? length : end).toString('utf8');
}

function entrySize(block: Buffer): number {
  const raw = block.subarray(124, 136);
  if ((raw[0] ?? 0) & 0x80) {
    // GNU base-256 size for entries over 8 GiB
    let size = 0;
    for (let i = 1; i < raw.length; i++) size = size * 256 + (raw[i] ?? 0);
    return size;
  }
  return parseInt(field(block, 124, 12).trim() || '0', 8) || 0;
}

function checksumOk(block: Buffer): boolean {
  const stored = parseInt(field(block, 148, 8).trim(), 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
  return sum === stored;
}
