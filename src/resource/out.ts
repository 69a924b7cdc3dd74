import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { convertToLayout } from '../formats/load.js';
import { LoadError } from '../formats/load-error.js';
import type { Descriptor } from '../image/oci.schema.js';
import { detectFormat } from '../formats/detect.js';
import { isTag } from '../image/reference.js';
import { registerTempPath, releaseTempPath } from '../store/temp-paths.js';
import { readAdditionalTags, resolveImagePath, resolvePutInput } from './image-path.js';
import { singleIndexLayout } from './put-layout.js';
import { directoryArgument, readRequest, respond, type CommandIO } from './io.js';
import { countLayers } from './layout-copy.js';
import { validateOutRequest, type MetadataField } from './schema.js';
import { resolveSource } from './source.js';

/**
 * Fixed times make a put reproducible: the same input gives the same layers, config and digest
 * whenever and wherever it runs (file mtimes in packed layers, `created` in the config).
 */
export const REPRODUCIBLE_MTIME = new Date(0);
export const REPRODUCIBLE_CREATED = '1970-01-01T00:00:00Z';

/**
 * `out` (a put): converts `params.image` (any format `cartorio load` reads, above all a
 * Concourse `rootfs/` + `metadata.json` directory) into one OCI image, reproducibly, and stores
 * it under `tag` and `additional_tags`, transferring only what the store lacks. The image is
 * built completely in a temp directory first, so a bad input never reaches the store.
 */
export async function outCommand(io: CommandIO): Promise<void> {
  const dir = directoryArgument(io, 'out');
  const request = await readRequest(io, validateOutRequest);
  const { params } = request;
  const { repository, name, tag: sourceTag, platform, log, store } = resolveSource(io, request.source);
  if (params.bump_aliases === true) {
    throw new Error('invalid payload: /params/bump_aliases is registry-image\'s and cartorio does not implement it (list the alias tags in params.additional_tags)');
  }
  if (params.version !== undefined && !isTag(params.version)) throw new Error(`invalid payload: /params/version "${params.version}" is not a valid tag`);
  // registry-image: `version` is the tag pushed, instead of source.tag.
  const tag = params.version ?? sourceTag;
  const scratch = await mkdtemp(join(tmpdir(), 'cartorio-out-'));
  registerTempPath(scratch);
  try {
    const matched = await resolveImagePath(dir, params.image);
    const strict = params.format === undefined ? await resolvePutInput(matched, params.image, detectFormat) : { path: matched };
    const multi = params.format === undefined ? await singleIndexLayout(strict.path, scratch, tag) : undefined;
    const input = multi ?? strict.path;
    const format = multi ? 'oci-layout' : params.format ?? strict.format;
    const tags = [...new Set([tag, ...(await readAdditionalTags(dir, params.additional_tags))])];
    const layout = join(scratch, 'layout');
    log.debug(`converting ${relative(dir, strict.path) || '.'}${format ? ` (${format})` : ''} into ${name}:${tags.join(', :')}`);
    // No tags here: they are given at push; tagging every image of a multi-image input with one
    // tag would fail the load before the clearer "holds N images" below.
    const loaded = await convertToLayout(input, layout, {
      name: repository,
      platform,
      mtime: REPRODUCIBLE_MTIME,
      created: REPRODUCIBLE_CREATED,
      ...(format !== undefined && { format }),
    }).catch((error: unknown) => {
      throw oneLine(error);
    });
    if (loaded.length !== 1) {
      const names = loaded.map((image) => `${image.tags[0] ?? '?'}@${image.digest.slice(0, 19)}…`).join(', ');
      throw new Error(`params.image "${params.image}" holds ${loaded.length} images (${names}); a put stores one — give an input with a single image (or one index)`);
    }
    const image = loaded[0] as (typeof loaded)[number];
    const root: Descriptor = { mediaType: image.mediaType, digest: image.digest, size: image.size };
    const pushed = await store.push(repository, layout, root, tags);
    log.info(`stored ${name}@${image.digest} in ${store.where} as ${tags.join(', ')}: ${pushed.uploaded} blobs sent, ${pushed.skipped} already there`);
    const metadata: MetadataField[] = [
      { name: 'repository', value: name },
      { name: 'tag', value: tag },
      ...(tags.length > 1 ? [{ name: 'additional_tags', value: tags.slice(1).join(' ') }] : []),
      { name: 'digest', value: image.digest },
      { name: 'layers', value: String(await countLayers(layout, root)) },
      { name: 'source_format', value: multi ? 'multi-platform oci-layout' : image.format },
    ];
    await respond(io, { version: { digest: image.digest, tag }, metadata });
  } finally {
    store.close();
    await rm(scratch, { recursive: true, force: true });
    releaseTempPath(scratch);
  }
}

// A loader's hint belongs on the same line: Concourse shows the step's last stderr line.
function oneLine(error: unknown): Error {
  if (error instanceof LoadError && error.hint) return new Error(`${error.message} (${error.hint})`, { cause: error });
  return error as Error;
}

/**
 * For the entry script: removes this step's temp files (the scratch layout, a load's temp
 * directory in a file store) when the worker stops the step with SIGINT or SIGTERM.
 */
export { removeTempPathsSync as cleanUpTempFiles } from '../store/temp-paths.js';
