import type { ImageSource } from '../store/image-source.js';
import type { ServedImages } from '../store/image-source.js';
import type { RepositorySnapshot } from '../store/snapshot.js';
import { nameAmbiguous, nameInvalid, nameUnknown } from './errors.js';

/** The repository a request is about: the name asked for, and where that name resolved. */
export interface RequestedRepository {
  /** The name in the request path, as the client spelled it (echoed in answers). */
  asked: string;
  /** The stored name it resolved to, and the source holding it; undefined when none does. */
  name?: string;
  source?: ImageSource;
}

/**
 * Resolves `asked` (with containerd's `ns`) to one repository, by the one naming rule (DESIGN §4).
 * Several candidates → NAME_UNKNOWN listing them, never a guess. None → NAME_UNKNOWN, unless
 * `lenient` (the referrers API must answer an empty index, not 404). An `ns` that is no registry
 * host → NAME_INVALID (400): the name it asks for, `ns/path`, is not a repository name, and a 404
 * would read as "not here" to a client that should hear "misconfigured".
 */
export async function resolveRepository(images: ServedImages, asked: string, ns: string | undefined, lenient = false): Promise<RequestedRepository> {
  const resolution = await images.resolve(asked, ns);
  if (resolution.kind === 'found') return { asked, name: resolution.name, source: resolution.source };
  if (resolution.kind === 'ambiguous') throw nameAmbiguous(asked, resolution.names);
  if (resolution.kind === 'invalid') throw nameInvalid(asked, resolution.problem);
  if (lenient) return { asked };
  throw nameUnknown(asked);
}

/** The snapshot of a resolved repository; NAME_UNKNOWN when it went away since it was resolved. */
export async function snapshotOf(repository: RequestedRepository): Promise<RepositorySnapshot> {
  const snapshot = repository.name !== undefined ? await repository.source?.repository(repository.name) : undefined;
  if (!snapshot) throw nameUnknown(repository.asked);
  return snapshot;
}
