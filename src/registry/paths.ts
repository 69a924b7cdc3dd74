import { isDigestSyntax, isSha256Digest } from '../image/digest.js';
import { isRepositoryName, isTag, repositoryNameProblem } from '../image/reference.js';
import { type RegistryError, digestInvalid, manifestUnknown, nameInvalid } from './errors.js';

/** What a path under /v2/ asks for, once its name and reference are known to be valid. */
export type V2Route =
  | { kind: 'manifests'; name: string; reference: string }
  | { kind: 'blobs'; name: string; reference: string }
  | { kind: 'referrers'; name: string; reference: string }
  | { kind: 'tags'; name: string; reference: undefined };

/** The answer of `parseV2Path`: a route, an error to send, or no route at all (404). */
export type V2Path = V2Route | { kind: 'error'; error: RegistryError } | { kind: 'none' };

/** Longer paths are refused before any work: a name is at most 255 characters, a digest ~135. */
const MAX_TAIL_LENGTH = 1024;
// RFC 9112 §3.2.2 absolute-form (`GET http://host/v2/ HTTP/1.1`): servers must accept it.
const ABSOLUTE_FORM_ORIGIN = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;

/**
 * The path of a request target exactly as sent (still percent-encoded), without query and
 * without the scheme and host of an absolute-form target.
 */
export function rawPath(url: string): string {
  const path = (url.split('?')[0] ?? '').replace(ABSOLUTE_FORM_ORIGIN, '');
  return path === '' ? '/' : path;
}

/**
 * True when `path` (raw) spells the fixed part of the route pattern it was routed to, byte for
 * byte. The router decodes percent-escapes before it matches, so `/v%32/_catalog` reaches the
 * `/v2/_catalog` handler: anything that decides from the path (auth, the /v2/ tail) must see
 * the same literal prefix the router saw, or a request can take a route while skipping a check.
 */
export function spellsRoute(path: string, pattern: string): boolean {
  if (pattern.endsWith('*')) return path.startsWith(pattern.slice(0, -1));
  const trim = (value: string): string => (value.length > 1 && value.endsWith('/') ? value.slice(0, -1) : value);
  return trim(path) === trim(pattern);
}

/**
 * Parses the raw (still percent-encoded) path after `/v2/`, query removed. Repository names
 * contain `/`, so the route is read from the end, as go-containerregistry's dispatcher does.
 * Segments are split before they are decoded, so an encoded `%2f` or `..` can never become a
 * separator; the name must match the spec's grammar and a digest must be sha256 before the
 * caller builds any file path from them. Pure: no I/O.
 */
export function parseV2Path(tail: string): V2Path {
  if (tail.length > MAX_TAIL_LENGTH) return { kind: 'error', error: nameInvalid(tail, `the path is longer than ${MAX_TAIL_LENGTH} characters`) };
  const segments: string[] = [];
  for (const raw of tail.split('/')) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return { kind: 'error', error: nameInvalid(tail, 'the path has malformed percent-encoding') };
    }
    segments.push(segment);
  }
  const route = matchRoute(segments);
  if (!route) return { kind: 'none' };
  // An encoded slash is data, not a separator: it may not join two name components.
  if (segments.slice(0, -2).some((segment) => segment.includes('/'))) return { kind: 'error', error: nameInvalid(route.name, 'a name component holds an encoded "/" (%2F)') };
  const problem = isRepositoryName(route.name) ? undefined : (repositoryNameProblem(route.name) ?? 'is not a repository name');
  if (problem !== undefined) return { kind: 'error', error: nameInvalid(route.name, `the name ${problem}`) };
  if (route.kind === 'tags') return route;
  if (route.kind === 'manifests' && !route.reference.includes(':')) {
    return isTag(route.reference) ? route : { kind: 'error', error: manifestUnknown(route.name, route.reference) };
  }
  const digestProblem = checkDigest(route.reference);
  return digestProblem === undefined ? route : { kind: 'error', error: digestInvalid(route.reference, digestProblem) };
}

// `<name>/manifests/<ref>`, `<name>/blobs/<digest>`, `<name>/referrers/<digest>`, `<name>/tags/list`.
function matchRoute(segments: string[]): V2Route | undefined {
  if (segments.length < 3) return undefined;
  const last = segments[segments.length - 1] ?? '';
  const verb = segments[segments.length - 2];
  const name = segments.slice(0, -2).join('/');
  if (verb === 'manifests' || verb === 'blobs' || verb === 'referrers') return { kind: verb, name, reference: last };
  if (verb === 'tags' && last === 'list') return { kind: 'tags', name, reference: undefined };
  return undefined;
}

/** Why `value` is no digest this registry can hold; undefined when it is a valid sha256 digest. */
export function checkDigest(value: string): string | undefined {
  if (isSha256Digest(value)) return undefined;
  if (!isDigestSyntax(value)) return 'not a digest (algorithm:encoded, as in sha256:<64 hex>)';
  if (value.startsWith('sha256:')) return 'a sha256 digest is 64 lowercase hexadecimal characters';
  return `unsupported digest algorithm "${value.slice(0, value.indexOf(':'))}" (only sha256 is stored)`;
}
