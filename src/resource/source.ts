import { hostPlatform, parsePlatform, type Platform } from '../image/platform.js';
import { DOCKER_HUB, isTag, normalizeHost, normalizeRepositoryName, repositoryNameProblem, splitName } from '../image/reference.js';
import { parseRegistryUrl } from '../client/registry-url.js';
import { createLog, type CommandIO, type Log } from './io.js';
import { REFUSED_S3_KEYS, REFUSED_SOURCE_KEYS, type Source, type StoreConfig, type Version } from './schema.js';
import { openStore, type ImageStore } from './stores.js';

/** `source` with its defaults applied and the checks a schema cannot express done. */
export interface ResolvedSource {
  /** The repository inside the store (a registry's path, without its host). */
  repository: string;
  /** The full name, as written to the `repository` file and shown: `registry.example.com/ci/app`. */
  name: string;
  tag: string;
  platform: Platform;
  log: Log;
  store: ImageStore;
  /**
   * True for a source in registry-image's vocabulary (no `store:`; the registry is the
   * repository's host): it gets registry-image's defaults too (a get writes rootfs/).
   */
  registryImageStyle: boolean;
}

const TOP_LEVEL_REGISTRY_KEYS = ['username', 'password', 'insecure', 'ca_certs'] as const;

/** Checks `source` beyond its schema and opens its store; call `store.close()` when done. */
export function resolveSource(io: CommandIO, source: Source): ResolvedSource {
  const refused = Object.keys(REFUSED_SOURCE_KEYS).filter((key) => (source as Record<string, unknown>)[key] !== undefined) as (keyof typeof REFUSED_SOURCE_KEYS)[];
  if (refused.length > 0) {
    throw new Error(`invalid payload: ${refused.map((key) => `/source/${key} is registry-image's and cartorio does not implement it (${REFUSED_SOURCE_KEYS[key]})`).join('; ')}`);
  }
  const tag = typeof source.tag === 'number' ? String(source.tag) : source.tag ?? 'latest';
  if (!isTag(tag)) throw new Error(`invalid payload: /source/tag ${JSON.stringify(source.tag)} is not a valid tag`);
  const platform = resolvePlatform(source.platform);
  const log = createLog(io, source.debug === true);
  const { repository, name, store } = resolveStore(source);
  return { repository, name, tag, platform, log, store: openStore(store, log, io.env ?? {}), registryImageStyle: source.store === undefined };
}

function resolvePlatform(value: Source['platform']): Platform {
  if (value === undefined) return hostPlatform();
  if (typeof value === 'object') {
    const host = hostPlatform();
    // registry-image: each of os and architecture defaults to the worker's own.
    const os = value.os ?? host.os;
    const architecture = value.architecture ?? host.architecture;
    return value.variant === undefined ? { os, architecture } : { os, architecture, variant: value.variant };
  }
  const platform = parsePlatform(value);
  if (!platform) throw new Error(`invalid payload: /source/platform "${value}" is not os/arch[/variant]`);
  return platform;
}

function resolveStore(source: Source): { repository: string; name: string; store: StoreConfig } {
  const problem = repositoryNameProblem(source.repository);
  if (problem) throw new Error(`invalid payload: /source/repository "${source.repository}" ${problem}`);
  const topLevel = TOP_LEVEL_REGISTRY_KEYS.filter((key) => source[key] !== undefined);
  const { store } = source;
  if (store === undefined) {
    // registry-image: the registry is the repository's host; no host means Docker Hub.
    const { host } = splitName(source.repository);
    const name = normalizeRepositoryName(host === undefined ? `${DOCKER_HUB}/${source.repository}` : source.repository);
    if (name === undefined) throw new Error(`invalid payload: /source/repository "${source.repository}" is not a valid image name`);
    const split = splitName(name) as { host: string; path: string };
    const config: StoreConfig = {
      type: 'registry',
      url: split.host,
      ...(source.username !== undefined && { username: source.username }),
      ...(source.password !== undefined && { password: source.password }),
      ...(source.insecure !== undefined && { insecure: source.insecure }),
      ...(source.ca_certs !== undefined && { ca_certs: source.ca_certs }),
    };
    return { repository: split.path, name, store: config };
  }
  if (topLevel.length > 0) {
    throw new Error(`invalid payload: /source has both store and ${topLevel.join(', ')}: give the registry either as store {type: registry, url, username, …} or registry-image style (host in repository, ${topLevel.join(', ')} at the top level), not both`);
  }
  if (store.type === 's3') {
    const refused = Object.keys(REFUSED_S3_KEYS).filter((key) => (store as Record<string, unknown>)[key] !== undefined) as (keyof typeof REFUSED_S3_KEYS)[];
    if (refused.length > 0) throw new Error(`invalid payload: ${refused.map((key) => `/source/store/${key} is the s3 resource's and a bucket store does not implement it (${REFUSED_S3_KEYS[key]})`).join('; ')}`);
  }
  if (store.type === 'file' || store.type === 's3') {
    const name = normalizeRepositoryName(source.repository) ?? source.repository;
    return { repository: name, name, store };
  }
  const { host, path } = splitName(source.repository);
  if (host === undefined) return { repository: source.repository, name: source.repository, store };
  const url = parseRegistryUrl(store.url, store.insecure === true);
  const storeHost = normalizeHost(url.hostname === 'registry-1.docker.io' ? DOCKER_HUB : url.host);
  if (normalizeHost(host) !== storeHost) {
    // Never push to <store.url>/registry.example.com/ci/app: that is not what anyone means.
    throw new Error(
      `invalid payload: /source/repository "${source.repository}" names registry ${host}, but /source/store/url is ${url.host}: drop the host from repository to use the store, or drop store to use ${host} (registry-image style)`,
    );
  }
  const name = normalizeRepositoryName(source.repository) ?? source.repository;
  return { repository: splitName(name).path || path, name, store };
}

/** The version Concourse sees: the digest, and the tag it was found under. */
export function versionOf(digest: string, tag: string): Version {
  return { digest, tag };
}
