import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { imageConfigSchema, type Descriptor, type ImageConfig } from '../image/oci.schema.js';
import type { Platform } from '../image/platform.js';
import { compileValidator, parseJson } from '../image/validate.js';
import { blobPath } from '../store/layout.js';
import { platformImage, writeImageTar } from './image-tar.js';
import { directoryArgument, readRequest, respond, type CommandIO } from './io.js';
import { validateInRequest, type MetadataField } from './schema.js';
import { currentRuntime, findCliBundle, writeServerBundle } from './server-bundle.js';
import { resolveSource } from './source.js';
import type { ImageStore } from './stores.js';
import { unpackRootfs } from './unpack.js';

const validateConfig = compileValidator<ImageConfig>(imageConfigSchema, 'image config');
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/**
 * `in` (a get), with registry-image's formats: `rootfs` → `rootfs/` + `metadata.json` (a
 * Concourse task image), `oci` → `image.tar`, `oci-layout` → `oci/` (a standard OCI layout, ref
 * name = tag); always `repository` (the full name, host included), `tag`, `digest` and, when
 * downloaded, `labels.json`. The default is registry-image's (`rootfs`) for a source in its
 * vocabulary, `oci-layout` for a source with cartorio's `store:`; with `store:` the `oci/`
 * layout is always written too (cartorio's own consumers read it). `bundle_server` adds the
 * `cartorio` launcher; `skip_download` writes only the small files. Fails when the version
 * does not exist.
 */
export async function inCommand(io: CommandIO): Promise<void> {
  const dir = directoryArgument(io, 'in');
  const request = await readRequest(io, validateInRequest);
  const params = request.params ?? {};
  const { repository, name, tag: sourceTag, platform, log, store, registryImageStyle } = resolveSource(io, request.source);
  const { digest } = request.version;
  const tag = request.version.tag ?? sourceTag;
  const format = params.format ?? (registryImageStyle ? 'rootfs' : 'oci-layout');
  try {
    const root = await store.findManifest(repository, digest);
    if (!root) throw new Error(await absentMessage(store, repository, name, digest));
    await mkdir(dir, { recursive: true });
    const metadata: MetadataField[] = [
      { name: 'repository', value: name },
      { name: 'tag', value: tag },
      { name: 'digest', value: digest },
      { name: 'media_type', value: root.mediaType },
    ];
    // Said once everything worked: a failed get prints its error as its only stderr line.
    const done: string[] = [];
    if (params.skip_download !== true) {
      const keepLayout = !registryImageStyle || format === 'oci-layout' || params.bundle_server === true;
      const layout = keepLayout ? join(dir, 'oci') : join(dir, '.oci.partial-download');
      try {
        const copied = await store.pull(repository, root, layout, tag);
        done.push(`fetched ${name}@${digest} from ${store.where}: ${copied.blobs} blobs, ${copied.bytes} bytes${keepLayout ? ', into oci/' : ''}`);
        metadata.push({ name: 'size', value: String(copied.bytes) });
        if (format === 'rootfs') {
          // Ownership matters for a task image; only root can restore it (Concourse runs get as root).
          done.push(await unpackRootfs(layout, root, platform, dir, log, process.getuid?.() === 0));
        }
        if (format === 'oci') done.push(await writeImageTar(layout, root, platform, name, tag, join(dir, 'image.tar')));
        await writeLabels(layout, root, platform, dir);
      } finally {
        if (!keepLayout) await rm(layout, { recursive: true, force: true });
      }
    }
    await writeSmallFile(dir, 'repository', name);
    await writeSmallFile(dir, 'tag', tag);
    await writeSmallFile(dir, 'digest', digest);
    if (params.bundle_server === true) {
      const bytes = await writeServerBundle(dir, await currentRuntime(process.execPath), await findCliBundle());
      done.push(`wrote the cartorio launcher (${Math.round(bytes / 1048576)} MiB): ./<input>/cartorio serve ./<input>/oci`);
    }
    for (const line of done) log.info(line);
    await respond(io, { version: request.version, metadata });
  } finally {
    store.close();
  }
}

// "Gone" only when the repository exists and the tag moved on; an absent repository is said so.
async function absentMessage(store: ImageStore, repository: string, name: string, digest: string): Promise<string> {
  if (!(await store.hasRepository(repository))) return `repository ${name} does not exist in ${store.where} (check source.repository and source.store)`;
  return `version ${digest} of ${name} is gone from ${store.where} (its tag moved on and the old image was removed)`;
}

/** registry-image's `labels.json`: the image config's labels (`{}` when it has none). */
async function writeLabels(layout: string, root: Descriptor, platform: Platform, dir: string): Promise<void> {
  let labels: Record<string, string> = {};
  const image = await platformImage(layout, root, platform).catch(() => undefined);
  if (image && image.manifest.config.size <= MAX_CONFIG_BYTES) {
    const where = `config ${image.manifest.config.digest}`;
    const config = await readFile(blobPath(layout, image.manifest.config.digest))
      .then((bytes) => validateConfig(parseJson(bytes, where), where))
      .catch(() => undefined);
    labels = config?.config?.Labels ?? {};
  }
  await writeSmallFile(dir, 'labels.json', JSON.stringify(labels) + '\n');
}

async function writeSmallFile(dir: string, name: string, content: string): Promise<void> {
  await writeFile(join(dir, `.${name}.partial`), content);
  await rename(join(dir, `.${name}.partial`), join(dir, name));
}
