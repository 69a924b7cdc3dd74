import { createReadStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { proxySettingsFromEnv } from '../client/proxy.js';
import { RegistryClient } from '../client/registry-client.js';
import { systemCaCerts } from '../client/trust.js';
import { isManifestMediaType } from '../image/media-types.js';
import type { Descriptor } from '../image/oci.schema.js';
import { blobPath } from '../store/layout.js';
import type { Log } from './io.js';
import { walkChildrenFirst, writeImageLayout } from './layout-copy.js';
import type { StoreConfig } from './schema.js';
import type { ImageStore, PushReport } from './stores.js';

type RegistryConfig = Extract<StoreConfig, { type: 'registry' }>;

/** Any OCI registry, through src/client (Basic and Bearer auth, insecure, ca_certs). */
export class RegistryStore implements ImageStore {
  readonly where: string;
  readonly #client: RegistryClient;
  readonly #log: Log;

  constructor(config: RegistryConfig, log: Log, env: Record<string, string | undefined>) {
    this.#log = log;
    // The worker's CAs (Concourse mounts its /etc/ssl/certs) and `ca_certs`, on top of Node's own.
    const caCerts = [...systemCaCerts(env), ...(config.ca_certs ?? [])];
    const proxy = proxySettingsFromEnv(env);
    this.#client = new RegistryClient({
      url: config.url,
      ...(config.username !== undefined && { username: config.username }),
      ...(config.password !== undefined && { password: config.password }),
      ...(config.insecure !== undefined && { insecure: config.insecure }),
      ...(caCerts.length > 0 && { caCerts }),
      proxy,
      log: (line) => log.debug(line),
      warn: (line) => log.info(line),
      userAgent: 'cartorio-resource',
    });
    const via = this.#client.proxyFor();
    this.where = `registry ${this.#client.url.origin}${via ? ` (via proxy ${via.host})` : ''}`;
  }

  async resolveTag(repository: string, tag: string): Promise<string | undefined> {
    return (await this.#client.headManifest(repository, tag))?.digest;
  }

  async hasRepository(repository: string): Promise<boolean> {
    // A registry that will not list tags (403 for a token without catalog rights…) is not
    // evidence of absence: then say "gone", as before.
    return (await this.#client.listTags(repository).catch(() => ['?'])).length > 0;
  }

  async findManifest(repository: string, digest: string): Promise<Descriptor | undefined> {
    const info = await this.#client.headManifest(repository, digest);
    return info && { mediaType: info.mediaType, digest: info.digest, size: info.size };
  }

  async pull(repository: string, root: Descriptor, dest: string, tag: string): Promise<{ blobs: number; bytes: number }> {
    return writeImageLayout(dest, root, tag, async (descriptor, path) => {
      if (isManifestMediaType(descriptor.mediaType)) {
        // Manifests come from /manifests/ (registries need not serve them as blobs); the client
        // checks the bytes against the digest asked for.
        const manifest = await this.#client.getManifest(repository, descriptor.digest);
        if (!manifest) throw new Error(`${this.where}: ${repository}@${descriptor.digest} is gone`);
        await writeFile(path, manifest.bytes, { flag: 'wx' });
        return;
      }
      await this.#client.downloadBlob(repository, descriptor.digest, path, descriptor.size);
    });
  }

  async push(repository: string, layout: string, root: Descriptor, tags: string[]): Promise<PushReport> {
    const report: PushReport = { uploaded: 0, skipped: 0 };
    await walkChildrenFirst(layout, root, async (descriptor, isRoot) => {
      const path = blobPath(layout, descriptor.digest);
      if (!isManifestMediaType(descriptor.mediaType)) {
        const outcome = await this.#client.pushBlob(repository, descriptor.digest, descriptor.size, () => createReadStream(path));
        this.#log.debug(`${descriptor.digest} ${outcome}`);
        if (outcome === 'uploaded') report.uploaded++;
        else report.skipped++;
        return;
      }
      const bytes = await readFile(path);
      // Manifests of an index go in by digest; the root under every tag.
      for (const reference of isRoot ? tags : [descriptor.digest]) await this.#client.putManifest(repository, reference, bytes, descriptor.mediaType);
    });
    return report;
  }

  close(): void {
    this.#client.close();
  }
}
