import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { HashingStream, isSha256Digest } from '../image/digest.js';
import { parseManifest, subjectOf } from '../image/manifest.js';
import { isManifestMediaType } from '../image/media-types.js';
import type { Descriptor } from '../image/oci.schema.js';
import { REF_NAME, blobLayoutOf, blobPath, checkOciLayoutFile, isNotFound, readLayoutIndex, repositoryDir } from './layout.js';
import { REPOSITORY_LIST, readRepositoryList, walkRepositories } from './repository-list.js';

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
  const listed = await readRepositoryList(root);
  const listedSet = new Set(listed);
  const repositories: string[] = [];
  for (const name of await walkRepositories(root)) {
    // Removed by `rm` and not yet dropped by `gc` (perhaps killed halfway): unlisted, with an
    // empty index and blobs held for pulls under way. Nothing of it is served by name.
    const removed = listed !== undefined && !listedSet.has(name) && (await readLayoutIndex(repositoryDir(root, name)).catch(() => undefined))?.manifests.length === 0;
    if (!removed) repositories.push(name);
  }
  if (listed !== undefined) {
    for (const name of repositories.filter((repository) => !listedSet.has(repository))) {
      report.problems.push(`${name}: not in ${REPOSITORY_LIST}, so the catalog does not list it; remove that file and the next load rebuilds it from the store`);
    }
    // Listed without an index.json is what a killed load leaves; the next load drops it.
  }
  for (const repository of repositories) {
    report.repositories++;
    const dir = repositoryDir(root, repository);
    try {
      await checkOciLayoutFile(dir);
      const index = await readLayoutIndex(dir);
      const seen = new Set<string>();
      const subjects = new Map<string, string>();
      // A repository with no blobs/ (a bucket store copied back) holds what it reaches in the pool.
      const blobs = directoryBlobs(await blobLayoutOf(root, dir), hashedInodes, report, onBlob);
      for (const descriptor of index?.manifests ?? []) await verifyDescriptor(blobs, repository, descriptor, { seen, subjects }, report);
      report.problems.push(...namingProblems(repository, index?.manifests ?? [], seen, subjects));
    } catch (error) {
      report.problems.push(`${repository}: ${(error as Error).message}`);
    }
  }
  return report;
}

/** What a walk of one repository found: every digest reached, and referrer → subject digest. */
export interface Walk {
  seen: Set<string>;
  subjects: Map<string, string>;
}

/**
 * What a store should never hold, though every blob is sound: one tag twice in index.json, a
 * referrer whose subject is not in its repository, a tag on a referrer whose image has no tag.
 */
export function namingProblems(repository: string, roots: Descriptor[], walk: Walk['seen'], subjects: Walk['subjects']): string[] {
  const problems: string[] = [];
  const tagged = new Map<string, string>();
  for (const root of roots) {
    const tag = root.annotations?.[REF_NAME];
    if (tag === undefined) continue;
    const other = tagged.get(tag);
    if (other !== undefined) problems.push(`${repository}: index.json names tag "${tag}" twice (${other} and ${root.digest}); a client gets one of them at random`);
    tagged.set(tag, root.digest);
  }
  const taggedDigests = new Set(tagged.values());
  for (const [referrer, subject] of subjects) {
    if (!walk.has(subject)) problems.push(`${repository}: ${referrer} refers to subject ${subject}, which the repository does not hold`);
  }
  for (const [tag, digest] of tagged) {
    const subject = subjects.get(digest);
    if (subject !== undefined && walk.has(subject) && !taggedDigests.has(subject)) {
      problems.push(`${repository}: tag "${tag}" names a referrer of ${subject}, which has no tag; the tag should name the image`);
    }
  }
  return problems;
}

/**
 * How a verify walk reaches one store's blobs (a directory's files, a bucket's pool): `check`
 * re-hashes a blob (once, however many repositories share it) and says what is wrong with it, if
 * anything; `read` gives a manifest's bytes, or throws saying why it cannot.
 */
export interface BlobChecks {
  check(digest: string, size: number): Promise<string | undefined>;
  read(digest: string, size: number): Promise<Buffer>;
}

/**
 * Walks `descriptor` and what it references within one repository: each blob checked, each
 * manifest parsed, referrers' subjects noted for namingProblems. Problems go to `report`.
 */
export async function verifyDescriptor(blobs: BlobChecks, repository: string, descriptor: Descriptor, walk: Walk, report: VerifyReport, depth = 0): Promise<void> {
  const { digest, mediaType, size } = descriptor;
  const problem = (text: string): void => void report.problems.push(`${repository}: ${mediaType} ${digest}: ${text}`);
  if (!isSha256Digest(digest)) return problem('not a sha256 digest');
  if (walk.seen.has(digest)) return;
  walk.seen.add(digest);
  const wrong = await blobs.check(digest, size);
  if (wrong !== undefined) return problem(wrong);
  if (!isManifestMediaType(mediaType) || depth > 8) return;
  let children: Descriptor[];
  try {
    const parsed = parseManifest(await blobs.read(digest, size), mediaType, 'manifest');
    children = parsed.children;
    const subject = subjectOf(parsed);
    if (subject) walk.subjects.set(digest, subject.digest);
  } catch (error) {
    return problem((error as Error).message);
  }
  for (const child of children) await verifyDescriptor(blobs, repository, child, walk, report, depth + 1);
}

/** A repository directory's blobs; a blob hard-linked into several repositories is hashed once (by inode). */
function directoryBlobs(dir: string, hashed: Map<string, string>, report: VerifyReport, onBlob: ((bytes: number) => void) | undefined): BlobChecks {
  return {
    async check(digest, size) {
      const path = blobPath(dir, digest);
      let info;
      try {
        info = await stat(path);
      } catch (error) {
        if (isNotFound(error)) return 'blob is missing';
        throw error;
      }
      if (info.size !== size) return `blob is ${info.size} bytes, descriptor says ${size}`;
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
      return actual === digest ? undefined : `content hashes to ${actual}; the blob is corrupt`;
    },
    read: (digest) => readFile(blobPath(dir, digest)),
  };
}
