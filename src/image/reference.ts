/**
 * Repository names and tags, per the OCI distribution spec
 * (spec.md#pulling-manifests: `<name>` and `<reference>` grammars).
 */
const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** Path components that would collide with a repository's own OCI layout files. */
const RESERVED_COMPONENTS = new Set(['blobs', 'index.json', 'oci-layout']);
const MAX_NAME_LENGTH = 255;

/** True when `name` is a valid repository name the store can hold. */
export function isRepositoryName(name: string): boolean {
  if (name.length > MAX_NAME_LENGTH || !NAME.test(name)) return false;
  return !name.split('/').some((part) => RESERVED_COMPONENTS.has(part));
}

/** True when `tag` is a valid tag. */
export function isTag(tag: string): boolean {
  return TAG.test(tag);
}

/** Why `name` is not a repository name, for error messages. */
export function repositoryNameProblem(name: string): string | undefined {
  if (isRepositoryName(name)) return undefined;
  if (name.length > MAX_NAME_LENGTH) return `is longer than ${MAX_NAME_LENGTH} characters`;
  const reserved = name.split('/').find((part) => RESERVED_COMPONENTS.has(part));
  if (reserved) return `uses the reserved path component "${reserved}"`;
  return 'must be lowercase letters, digits and separators (. _ __ -), components joined by /';
}

export interface ImageReference {
  repository: string;
  tag?: string;
  digest?: string;
}

/**
 * Parses `[host[:port]/]path[:tag][@digest]` the way Docker does, dropping the registry host
 * (clients add their own) and Docker Hub's `docker.io/library/` prefix.
 * Returns undefined when the result is not a valid repository name.
 */
export function parseImageReference(input: string): ImageReference | undefined {
  let rest = input.trim();
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > lastSlash) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
  }
  const parts = rest.split('/');
  // Docker's rule: the first component is a registry host when it has a dot or a port, or is localhost.
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    const host = parts.shift();
    if ((host === 'docker.io' || host === 'index.docker.io') && parts[0] === 'library' && parts.length > 1) parts.shift();
  }
  const repository = parts.join('/');
  if (!isRepositoryName(repository)) return undefined;
  if (tag !== undefined && !isTag(tag)) return undefined;
  return { repository, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}
