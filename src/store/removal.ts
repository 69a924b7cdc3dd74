import { isSha256Digest } from '../image/digest.js';
import { MediaType } from '../image/media-types.js';
import type { Descriptor, ImageIndex } from '../image/oci.schema.js';
import { SUBJECT_TAG } from '../image/reference.js';
import type { Resolution } from './image-source.js';
import { leftRoots } from './index-file.js';
import { REF_NAME } from './layout.js';
import type { Reach, ReachWalker } from './reach.js';
import type { StoreOps } from './store-ops.js';

/** What `rm` is asked to remove in one repository, once its REF resolved. */
export type Target = { tag: string } | { digest: string } | { whole: true };

/** One REF as written: `NAME`, `NAME:TAG` or `NAME@DIGEST`. */
export interface ParsedRef {
  ref: string;
  path: string;
  target: Target;
}

/** What leaves one repository's index.json. */
export interface RepositoryRemoval {
  repository: string;
  /** The repository goes whole (by name, or its last image went): its index is emptied and its name unlisted. */
  whole: boolean;
  /** index.json entries that go: tags, and images or referrers kept by digest. */
  entries: { tag?: string; digest: string; mediaType: string }[];
  /** Blobs the repository no longer reaches (gc releases them once the grace is over). */
  blobs: number;
  bytes: number;
  /** The version of index.json this was planned against, its roots, and what replaces it. */
  version: string;
  before: Descriptor[];
  index: ImageIndex;
}

/** Splits a REF the way a pull names an image; undefined when it is no reference at all. */
export function parseRef(ref: string): ParsedRef | undefined {
  let rest = ref.trim();
  const at = rest.indexOf('@');
  if (at >= 0) {
    const digest = rest.slice(at + 1);
    const path = rest.slice(0, at);
    return isSha256Digest(digest) && path !== '' ? { ref, path, target: { digest } } : undefined;
  }
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    const tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    return tag !== '' && rest !== '' ? { ref, path: rest, target: { tag } } : undefined;
  }
  return rest === '' ? undefined : { ref, path: rest, target: { whole: true } };
}

/**
 * Plans the removal of every REF, each resolved by the server's naming rule, and changes
 * nothing: a REF that names nothing, or more than one repository, throws naming it.
 */
export async function planRemoval(ops: StoreOps, refs: readonly ParsedRef[], resolve: (path: string) => Promise<Resolution>, onProgress?: (done: number, total: number) => void): Promise<RepositoryRemoval[]> {
  const byRepository = new Map<string, { ref: string; target: Target }[]>();
  for (const { ref, path, target } of refs) {
    const found = await resolve(path);
    if (found.kind === 'ambiguous') throw new Error(`${ref}: names several repositories (${found.names.join(', ')}); write the full name`);
    if (found.kind === 'unknown') throw new Error(`${ref}: no repository ${path} in ${ops.description}`);
    if (found.kind === 'invalid') throw new Error(`${ref}: ${found.problem}`);
    byRepository.set(found.name, [...(byRepository.get(found.name) ?? []), { ref, target }]);
  }
  const plans: RepositoryRemoval[] = [];
  for (const [repository, targets] of byRepository) {
    plans.push(await planRepository(ops, repository, targets));
    onProgress?.(plans.length, byRepository.size);
  }
  return plans;
}

async function planRepository(ops: StoreOps, repository: string, targets: { ref: string; target: Target }[]): Promise<RepositoryRemoval> {
  const read = await ops.readIndex(repository);
  const entries = read?.index.manifests ?? [];
  const first = targets[0]?.ref ?? repository;
  if (!read || entries.length === 0) throw new Error(`${first}: repository ${repository} holds no images (already removed?)`);
  const walker = ops.walker;
  const before = await walker.reach(repository, entries);
  if (before.problems.length > 0) throw new Error(`${repository}: ${before.problems[0]}; run \`cartorio verify\` before removing from it`);
  const whole = targets.some(({ target }) => 'whole' in target);
  let kept = whole ? [] : entries;
  if (!whole) {
    for (const { ref, target } of targets) {
      if ('tag' in target) {
        if (!kept.some((entry) => entry.annotations?.[REF_NAME] === target.tag)) throw new Error(`${ref}: ${repository} has no tag ${target.tag}`);
        kept = kept.filter((entry) => entry.annotations?.[REF_NAME] !== target.tag);
      } else if ('digest' in target) {
        if (!entries.some((entry) => entry.digest === target.digest)) {
          if (before.blobs.has(target.digest)) throw new Error(`${ref}: ${target.digest} is part of another image of ${repository} (a platform of an index, or a layer); remove the image that names it`);
          throw new Error(`${ref}: ${repository} has no image ${target.digest}`);
        }
        kept = kept.filter((entry) => entry.digest !== target.digest);
      }
    }
    kept = await withoutOrphanReferrers(walker, repository, kept, before);
  }
  // A repository left with no image is gone: unlisted, as if removed by name.
  const gone = whole || kept.length === 0;
  const after = await walker.reach(repository, kept);
  const keptSet = new Set(kept);
  let bytes = 0;
  let blobs = 0;
  for (const [digest, size] of before.blobs) {
    if (after.blobs.has(digest)) continue;
    blobs++;
    bytes += size;
  }
  return {
    repository,
    whole: gone,
    entries: entries.filter((entry) => !keptSet.has(entry)).map(describe),
    blobs,
    bytes,
    version: read.version,
    before: entries,
    index: { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: kept },
  };
}

/**
 * Referrers (signatures, SBOMs) in index.json, by digest or by a tag naming their subject's
 * digest (`sha256-<hex>.sig`), go with their subject: a referrer
 * entry stays only while what it refers to is still reached (or was never there to begin with:
 * removing something else does not tidy it away).
 */
async function withoutOrphanReferrers(walker: ReachWalker, repository: string, kept: Descriptor[], before: Reach): Promise<Descriptor[]> {
  const subjectOf = (entry: Descriptor): string | undefined => before.subjects.get(entry.digest) ?? taggedSubject(entry);
  const accepted = new Set(kept.filter((entry) => subjectOf(entry) === undefined));
  for (;;) {
    const reached = await walker.reach(repository, [...accepted]);
    const more = kept.filter((entry) => {
      const subject = subjectOf(entry);
      return !accepted.has(entry) && subject !== undefined && (reached.blobs.has(subject) || !before.blobs.has(subject));
    });
    if (more.length === 0) return kept.filter((entry) => accepted.has(entry));
    for (const entry of more) accepted.add(entry);
  }
}

function taggedSubject(entry: Descriptor): string | undefined {
  const hex = SUBJECT_TAG.exec(entry.annotations?.[REF_NAME] ?? '')?.[1];
  return hex === undefined ? undefined : `sha256:${hex}`;
}

function describe(entry: Descriptor): { tag?: string; digest: string; mediaType: string } {
  const tag = entry.annotations?.[REF_NAME];
  return { ...(tag !== undefined && { tag }), digest: entry.digest, mediaType: entry.mediaType };
}

/**
 * Applies planned removals under the writer lock, each index replaced whole. When an index
 * changed since it was planned (a load meanwhile), nothing is changed and the caller is told.
 */
export async function applyRemoval(ops: StoreOps, plans: readonly RepositoryRemoval[]): Promise<void> {
  await ops.withWriteLock(async () => {
    for (const plan of plans) {
      const now = await ops.readIndex(plan.repository);
      if (now?.version !== plan.version) throw new Error(`${plan.repository}: index.json changed while the removal was planned (a load?); nothing was removed, run the command again`);
    }
    const changes = plans.map((plan) => ({ repository: plan.repository, index: plan.index, left: leftRoots(plan.before, plan.index.manifests), version: plan.version }));
    await ops.rewriteIndexes(changes, plans.filter((plan) => plan.whole).map((plan) => plan.repository));
  });
}
