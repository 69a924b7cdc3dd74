/**
 * Repository names and tags: the OCI distribution spec's `<name>` and `<reference>` grammars
 * (spec.md#pulling-manifests), plus one naming rule for every name cartorio stores or serves.
 *
 * The rule (DESIGN §2): a name keeps its registry. `quay.io/org/app` stays `quay.io/org/app`;
 * Docker Hub's spellings normalise to `docker.io/library/x` and `docker.io/org/x`; a name with
 * no registry host stays host-less. The first component is a host, as Docker decides, when it
 * holds a `.` or a `:` or is `localhost` and more components follow.
 */
const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const PATH = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
// Docker's domain grammar (distribution/reference), lowercase only: hosts are stored normalised.
const HOST = /^(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])(?:\.(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9]))*(?::[0-9]{1,5})?$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** Path components that would collide with a repository's own OCI layout files. */
const RESERVED_COMPONENTS = new Set(['blobs', 'index.json', 'oci-layout']);
const MAX_NAME_LENGTH = 255;

/** Docker Hub's canonical host, and the other spellings clients and tools write for it. */
export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);
const DOCKER_HUB_LIBRARY = 'library';

/** True when the first component of a name is a registry host (Docker's rule). */
export function isRegistryHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

/** A name split into its registry host (if any) and its path on that registry. */
export interface SplitName {
  host?: string;
  path: string;
}

/** Splits `name` at its registry host, by Docker's rule; no validation. */
export function splitName(name: string): SplitName {
  const slash = name.indexOf('/');
  if (slash < 0) return { path: name };
  const first = name.slice(0, slash);
  return isRegistryHost(first) ? { host: first, path: name.slice(slash + 1) } : { path: name };
}

/** Docker Hub's spellings → `docker.io`; other hosts lowercased (DNS names have no case). */
export function normalizeHost(host: string): string {
  const lower = host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(lower) ? DOCKER_HUB : lower;
}

/**
 * The stored form of a repository name: the host normalised and, on Docker Hub, the implicit
 * `library/` added (`docker.io/busybox` → `docker.io/library/busybox`). Returns undefined
 * when the result is not a valid repository name.
 */
export function normalizeRepositoryName(name: string): string | undefined {
  const { host, path } = splitName(name.trim());
  if (host === undefined) return isRepositoryName(path) ? path : undefined;
  const canonicalHost = normalizeHost(host);
  const canonicalPath = canonicalHost === DOCKER_HUB && !path.includes('/') ? `${DOCKER_HUB_LIBRARY}/${path}` : path;
  const normalized = `${canonicalHost}/${canonicalPath}`;
  return isRepositoryName(normalized) ? normalized : undefined;
}

/** True when `name` is a valid repository name the store can hold: `[host[:port]/]path`. */
export function isRepositoryName(name: string): boolean {
  return repositoryNameProblem(name) === undefined;
}

/** True when `tag` is a valid tag. */
export function isTag(tag: string): boolean {
  return TAG.test(tag);
}

/** Why `name` is not a repository name, for error messages; undefined when it is one. */
export function repositoryNameProblem(name: string): string | undefined {
  if (name.length > MAX_NAME_LENGTH) return `is longer than ${MAX_NAME_LENGTH} characters`;
  const { host, path } = splitName(name);
  if (host !== undefined && !HOST.test(host)) return `starts with "${host}", which is not a registry host (lowercase host name, optional :port)`;
  const reserved = path.split('/').find((part) => RESERVED_COMPONENTS.has(part));
  if (reserved) return `uses the reserved path component "${reserved}"`;
  if (!PATH.test(path)) return 'must be lowercase letters, digits and separators (. _ __ -), components joined by /';
  return undefined;
}

export interface ImageReference {
  repository: string;
  tag?: string;
  digest?: string;
}

/**
 * Parses `[host[:port]/]path[:tag][@digest]` the way Docker does, keeping the registry host
 * (normalised by `normalizeRepositoryName`). Returns undefined when the name or tag is invalid.
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
  const repository = normalizeRepositoryName(rest);
  if (repository === undefined) return undefined;
  if (tag !== undefined && !isTag(tag)) return undefined;
  return { repository, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}

/** What a request names: the registry it is about, if any, and the repository path on that registry. */
export interface RequestedName {
  /** The registry host, normalised, that `?ns=` or the path's first component names. */
  registry?: string;
  /** The path on that registry; the whole path when the request names no registry. */
  path: string;
}

/**
 * Which registry a request names (DESIGN §4): `ns` when given (containerd's `?ns=HOST` on mirrored
 * requests), else the path's first component when it is a registry host (the `HOST:PORT/quay.io`
 * mirror locations of CRI-O and podman, which cannot send `ns`). A request names one registry at
 * most: the rest of the path is a path on it, taken literally, so `/v2/evil.com/quay.io/org/app`
 * asks evil.com for its repository `quay.io/org/app` (mirrors such as Harbor and Artifactory hold
 * names like that), never quay.io for its image. A path that starts with the registry `ns` names
 * names it once (a containerd mirror location with the host as a path prefix).
 * Returns a problem, for a 400, when `ns` is no registry host: it is never read as a path.
 */
export function requestedName(path: string, ns?: string): RequestedName | { problem: string } {
  const split = splitName(path);
  if (ns === undefined) return split.host === undefined ? { path } : { registry: normalizeHost(split.host), path: split.path };
  const registry = normalizeHost(ns);
  if (!isRegistryHost(registry) || !HOST.test(registry)) {
    return { problem: `ns=${JSON.stringify(ns.slice(0, 100))} is not a registry host (a host name with a "." or a ":port", or localhost, as containerd sends it)` };
  }
  const same = split.host !== undefined && normalizeHost(split.host) === registry;
  return { registry, path: same ? split.path : path };
}

/**
 * The repository names a request for `path` (with `ns`) may mean, most specific first; none when
 * `ns` is no registry host. Pure: no I/O. Candidates are valid repository names.
 * - The request names a registry (see `requestedName`): that registry's repository, with Docker
 *   Hub's `library/x` ↔ `x` both ways; then, only when the path on it is itself host-less, the
 *   host-less repositories of that path (stores written before names kept their registry, or from
 *   a `docker save` of `app`, keep answering mirrors: a host-less name has no registry to
 *   disagree with). A name with a host is never a fallback: that would be another registry's image.
 * - A host-less request: that exact name, then `x` for `library/x`. The caller then looks for the
 *   one registry that holds the path.
 */
export function requestCandidates(path: string, ns?: string): string[] {
  const asked = requestedName(path, ns);
  if ('problem' in asked) return [];
  const found: string[] = [];
  const add = (name: string | undefined): void => {
    if (name !== undefined && isRepositoryName(name) && !found.includes(name)) found.push(name);
  };
  const { registry } = asked;
  const onRegistry = asked.path;
  // Docker Hub's official images answer to `x` and `library/x`.
  const library = onRegistry.startsWith(`${DOCKER_HUB_LIBRARY}/`) ? onRegistry.slice(DOCKER_HUB_LIBRARY.length + 1) : undefined;
  if (registry === undefined) {
    add(onRegistry);
    add(library);
    return found;
  }
  const spellings = [onRegistry, ...(library !== undefined ? [library] : onRegistry.includes('/') ? [] : [`${DOCKER_HUB_LIBRARY}/${onRegistry}`])];
  if (registry === DOCKER_HUB) spellings.forEach((p) => add(normalizeRepositoryName(`${registry}/${p}`)));
  else add(`${registry}/${onRegistry}`);
  if (splitName(onRegistry).host !== undefined) return found;
  add(onRegistry);
  if (registry === DOCKER_HUB) spellings.forEach(add);
  return found;
}

/**
 * The host-less path a stored name answers to on a request that names no registry, once no exact
 * name matched: `quay.io/org/app` → `org/app`; Docker Hub's `docker.io/library/x` → `x` (and
 * `library/x`). None for host-less names, and none for a path that starts with a host
 * (`evil.com/quay.io/org/app`): a request for `quay.io/org/app` names quay.io.
 */
export function hostlessAliases(name: string): string[] {
  const { host, path } = splitName(name);
  if (host === undefined || splitName(path).host !== undefined) return [];
  if (host === DOCKER_HUB && path.startsWith(`${DOCKER_HUB_LIBRARY}/`)) return [path, path.slice(DOCKER_HUB_LIBRARY.length + 1)];
  return [path];
}

/**
 * Tags of the fallback schemes that attach an artifact to an image by its digest: the referrers
 * tag schema (distribution-spec, `sha256-<hex>`) and cosign's `.sig`, `.att`, `.sbom`. Their
 * manifests look like images, but they go with their subject. Group 1: the subject's hex digest.
 */
export const SUBJECT_TAG = /^sha256-([a-f0-9]{64})(?:\.[a-z]+)?$/;
