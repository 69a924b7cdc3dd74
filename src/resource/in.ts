import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { directoryArgument, readRequest, respond, type CommandIO } from './io.js';
import { validateInRequest, type MetadataField } from './schema.js';
import { currentRuntime, findCliBundle, writeServerBundle } from './server-bundle.js';
import { resolveSource } from './source.js';
import { unpackRootfs } from './unpack.js';

/**
 * `in` (a get): fetches the version's image into `<dir>/oci` — a standard OCI layout, ref name
 * = tag — and writes `repository`, `tag` and `digest`. `format: rootfs` also unpacks it into
 * `rootfs/` + `metadata.json` (a Concourse task image); `bundle_server` adds the `cartorio`
 * launcher; `skip_download` writes only the three files. Fails when the version is gone.
 */
export async function inCommand(io: CommandIO): Promise<void> {
  const dir = directoryArgument(io, 'in');
  const request = await readRequest(io, validateInRequest);
  const params = request.params ?? {};
  const { repository, tag: sourceTag, platform, log, store } = resolveSource(io, request.source);
  const { digest } = request.version;
  const tag = request.version.tag ?? sourceTag;
  try {
    const root = await store.findManifest(repository, digest);
    if (!root) throw new Error(`version ${digest} of ${repository} is gone from ${store.where} (its tag moved on and the old image was removed)`);
    await mkdir(dir, { recursive: true });
    const metadata: MetadataField[] = [
      { name: 'repository', value: repository },
      { name: 'tag', value: tag },
      { name: 'digest', value: digest },
      { name: 'media_type', value: root.mediaType },
    ];
    // Said once everything worked: a failed get prints its error as its only stderr line.
    const done: string[] = [];
    if (params.skip_download !== true) {
      const copied = await store.pull(repository, root, join(dir, 'oci'), tag);
      done.push(`fetched ${repository}@${digest} from ${store.where}: ${copied.blobs} blobs, ${copied.bytes} bytes, into oci/`);
      metadata.push({ name: 'size', value: String(copied.bytes) });
      if (params.format === 'rootfs') {
        // Ownership matters for a task image; only root can restore it (Concourse runs get as root).
        done.push(await unpackRootfs(join(dir, 'oci'), root, platform, dir, log, process.getuid?.() === 0));
      }
    }
    await writeSmallFile(dir, 'repository', repository);
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

async function writeSmallFile(dir: string, name: string, content: string): Promise<void> {
  await writeFile(join(dir, `.${name}.partial`), content);
  await rename(join(dir, `.${name}.partial`), join(dir, name));
}
