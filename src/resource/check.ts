import { readRequest, respond, type CommandIO } from './io.js';
import { validateCheckRequest, type Version } from './schema.js';
import { resolveSource, versionOf } from './source.js';

/**
 * `check`: the digest `tag` points at now, oldest first — the given version first when the
 * store still holds it and it is not the current one; `[]` when the tag does not exist (yet).
 */
export async function checkCommand(io: CommandIO): Promise<void> {
  const request = await readRequest(io, validateCheckRequest);
  const { repository, name, tag, log, store } = resolveSource(io, request.source);
  try {
    const current = await store.resolveTag(repository, tag);
    log.debug(`${store.where}: ${repository}:${tag} is ${current ?? 'absent'}`);
    const versions: Version[] = [];
    const given = request.version ?? undefined;
    if (current === undefined) {
      log.info(`${name}:${tag} does not exist in ${store.where} yet`);
    } else {
      if (given && given.digest !== current && (await store.findManifest(repository, given.digest))) versions.push(given);
      versions.push(given?.digest === current ? given : versionOf(current, tag));
    }
    await respond(io, versions);
  } finally {
    store.close();
  }
}
