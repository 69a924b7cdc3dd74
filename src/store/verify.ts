import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { HashingStream, isSha256Digest } from '../image/digest.js';
import { parseManifest } from '../image/manifest.js';
import { isManifestMediaType } from '../image/media-types.js';
import type { Descriptor } from '../image/oci.schema.js';
import { blobPath, checkOciLayoutFile, isNotFound, readLayoutIndex, repositoryDir } from './layout.js';
import { StoreReader } from './reader.js';
import { walkRepositories } from './repository-list.js';

export interface VerifyReport {
  repositories: number;
  blobs: number;
  bytes: number;
  /** One line per problem: repository, blob, what is wrong. Empty when the store is sound. */
  problems: string[];
}

/**
 * Re-hashes every blob reachable from every repository's index.json and checks every reference:
 * present, the declared size, the declared digest, manifests well-formed. Blobs hard-linked into
 * several repositories are hashed once.
 */
export async function verifyStore(root: string, onBlob?: (bytes: number) => void): Promise<VerifyReport> {
  const report: VerifyReport = { repositories: 0, blobs: 0, bytes: 0, problems: [] };
  const hashedInodes = new Map<string, string>();
  for (const repository of await walkRepositories(root)) {
    report.repositories++;
    const dir = repositoryDir(root, repository);
    try {
      await checkOciLayoutFile(dir);
      const index = await readLayoutIndex(dir);
      const seen = new Set<string>();
      for (const descriptor of index?.manifests ?? []) await verifyDescriptor(dir, repository, descriptor, seen, hashedInodes, report, onBlob, 0);
    } catch (error) {
      report.problems.push(`${repository}: ${(error as Error).message}`);
    }
  }
  return report;
}

async function verifyDescriptor(
  dir: string, repository: string, descriptor: Descriptor, seen: Set<string>, hashed: Map<string, string>,
  report: VerifyReport, onBlob: ((bytes: number) => void) | undefined, depth: number,
): Promise<void> {
  const { digest, mediaType, size } = descriptor;
  const problem = (text: string): void => void report.problems.push(`${repository}: ${mediaType} ${digest}: ${text}`);
  if (!isSha256Digest(digest)) return problem('not a sha256 digest');
  if (seen.has(digest)) return;
  seen.add(digest);
  const path = blobPath(dir, digest);
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    if (isNotFound(error)) return problem('blob is missing');
    throw error;
  }
  if (info.size !== size) return problem(`blob is ${info.size} bytes, descriptor says ${size}`);
  const inode = `${info.dev}:${info.ino}`;
  let actual = hashed.get(inode);
  if (actual === undefined) {
    const hashing = new HashingStream();
    await pipeline(createReadStream(path, { highWaterMark: 1024 * 1024 }), hashing, new Writable({ write: (_chunk, _enc, done) => done() }));
    actual = hashing.digest();
    hashed.set(inode, actual);
    report.blobs++;
    report.bytes += info.size;
    onBlob?.(info.size);
  }
  if (actual !== digest) return problem(`content hashes to ${actual}; the blob is corrupt`);
  if (!isManifestMediaType(mediaType) || depth > 8) return;
  let children: Descriptor[];
  try {
    children = parseManifest(await readFile(path), mediaType, 'manifest').children;
  } catch (error) {
    return problem((error as Error).message);
  }
  for (const child of children) await verifyDescriptor(dir, repository, child, seen, hashed, report, onBlob, depth + 1);
}
