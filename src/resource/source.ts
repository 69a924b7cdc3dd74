import { repositoryNameProblem } from '../image/reference.js';
import { hostPlatform, parsePlatform, type Platform } from '../image/platform.js';
import { createLog, type CommandIO, type Log } from './io.js';
import type { Source, Version } from './schema.js';
import { openStore, type ImageStore } from './stores.js';

/** `source` with its defaults applied and the checks a schema cannot express done. */
export interface ResolvedSource {
  repository: string;
  tag: string;
  platform: Platform;
  log: Log;
  store: ImageStore;
}

/** Checks `source` beyond its schema and opens its store; call `store.close()` when done. */
export function resolveSource(io: CommandIO, source: Source): ResolvedSource {
  const problem = repositoryNameProblem(source.repository);
  if (problem) throw new Error(`invalid payload: /source/repository "${source.repository}" ${problem}`);
  const platform = source.platform === undefined ? hostPlatform() : parsePlatform(source.platform);
  if (!platform) throw new Error(`invalid payload: /source/platform "${source.platform}" is not os/arch[/variant]`);
  const log = createLog(io, source.debug === true);
  return { repository: source.repository, tag: source.tag ?? 'latest', platform, log, store: openStore(source.store, log) };
}

/** The version Concourse sees: the digest, and the tag it was found under. */
export function versionOf(digest: string, tag: string): Version {
  return { digest, tag };
}
