import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashingStream } from '../../image/digest.js';
import { OCI_LAYOUT_FILE, parseLayoutIndex } from '../layout.js';
import { MAX_MANIFEST_BYTES } from '../manifest-cache.js';
import { REPOSITORY_LIST } from '../repository-list.js';
import { type BlobChecks, type VerifyReport, type Walk, namingProblems, verifyDescriptor } from '../verify.js';
import type { Bucket } from './client.js';
import { poolKey } from './location.js';

/**
 * `cartorio verify` of a bucket store: the directory store's checks, on keys. Every blob reachable
 * from every listed repository's index.json is read back from the pool and re-hashed (once, however
 * many repositories share it); sizes, manifests and references are checked as for a directory.
 */
export async function verifyBucket(bucket: Bucket, onBlob?: (bytes: number) => void): Promise<VerifyReport> {
  const report: VerifyReport = { repositories: 0, blobs: 0, bytes: 0, problems: [] };
  const list = await bucket.get(REPOSITORY_LIST);
  const names = list === undefined || list === 'unchanged' ? [] : list.bytes.toString('utf8').split('\n').filter((name) => name !== '');
  const hashed = new Map<string, { digest: string; size: number } | undefined>();
  for (const repository of names) {
    const index = await bucket.get(`${repository}/index.json`);
    // Listed without an index.json is what a killed load leaves before publishing (NAME_UNKNOWN); not a problem.
    if (index === undefined || index === 'unchanged') continue;
    report.repositories++;
    try {
      if ((await bucket.head(`${repository}/${OCI_LAYOUT_FILE}`)) === undefined) report.problems.push(`${repository}: ${OCI_LAYOUT_FILE} is missing`);
      const manifests = parseLayoutIndex(index.bytes, `${bucket.url}/${repository}/index.json`).manifests;
      const walk: Walk = { seen: new Set(), subjects: new Map() };
      const blobs = poolBlobs(bucket, hashed, report, onBlob);
      for (const descriptor of manifests) await verifyDescriptor(blobs, repository, descriptor, walk, report);
      report.problems.push(...namingProblems(repository, manifests, walk.seen, walk.subjects));
    } catch (error) {
      report.problems.push(`${repository}: ${(error as Error).message}`);
    }
  }
  return report;
}

/** The pool's blobs: each hashed once per run, however many repositories reach it. */
function poolBlobs(bucket: Bucket, hashed: Map<string, { digest: string; size: number } | undefined>, report: VerifyReport, onBlob: ((bytes: number) => void) | undefined): BlobChecks {
  return {
    async check(digest, size) {
      if (!hashed.has(digest)) hashed.set(digest, await hashObject(bucket, digest, report, onBlob));
      const found = hashed.get(digest);
      if (found === undefined) return `blob is missing (${poolKey(digest)})`;
      if (found.size !== size) return `blob is ${found.size} bytes, descriptor says ${size}`;
      return found.digest === digest ? undefined : `content hashes to ${found.digest}; the object is corrupt`;
    },
    async read(digest, size) {
      if (size > MAX_MANIFEST_BYTES) throw new Error(`manifest is ${size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`);
      const read = await bucket.get(poolKey(digest));
      if (read === undefined || read === 'unchanged') throw new Error('blob is missing');
      return read.bytes;
    },
  };
}

// Streams the object through a hash; never held in memory.
async function hashObject(bucket: Bucket, digest: string, report: VerifyReport, onBlob: ((bytes: number) => void) | undefined): Promise<{ digest: string; size: number } | undefined> {
  const body = await bucket.stream(poolKey(digest));
  if (!body) return undefined;
  const hashing = new HashingStream();
  await pipeline(body, hashing, new Writable({ write: (_chunk, _encoding, done) => done() }));
  report.blobs++;
  report.bytes += hashing.size;
  onBlob?.(hashing.size);
  return { digest: hashing.digest(), size: hashing.size };
}
