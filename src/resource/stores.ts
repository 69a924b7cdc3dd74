import type { Descriptor } from '../image/oci.schema.js';
import { S3Store } from './s3-store.js';
import { FileStore } from './file-store.js';
import type { Log } from './io.js';
import { RegistryStore } from './registry-store.js';
import type { StoreConfig } from './schema.js';

/**
 * Where the resource's versions live (`source.store`), seen the way check, in and out need it.
 * Absent things are `undefined`/`false`; failures throw one-line errors.
 */
export interface ImageStore {
  /** Names the store in messages: `file store /mnt/images`, `registry http://127.0.0.1:5000`, `bucket store s3://images/ci at https://…`. */
  readonly where: string;
  /** The digest `tag` points at now; undefined when the repository or the tag does not exist. */
  resolveTag(repository: string, tag: string): Promise<string | undefined>;
  /** True when the repository exists (so an absent version is "gone", not "never there"). */
  hasRepository(repository: string): Promise<boolean>;
  /** The root descriptor of manifest or index `digest`, or undefined when the repository no longer holds it. */
  findManifest(repository: string, digest: string): Promise<Descriptor | undefined>;
  /** Writes image `root` with everything it references as an OCI layout at `dest`, ref name `tag`. */
  pull(repository: string, root: Descriptor, dest: string, tag: string): Promise<{ blobs: number; bytes: number }>;
  /** Stores the image `root` of the OCI layout `layout` under `tags`; transfers only what the store lacks. */
  push(repository: string, layout: string, root: Descriptor, tags: string[]): Promise<PushReport>;
  /** Releases connections; the store is not used afterwards. */
  close(): void;
}

/** What a push transferred. */
export interface PushReport {
  /** Blobs (layers, configs) sent. */
  uploaded: number;
  /** Blobs the store already held (or mounted from elsewhere in it). */
  skipped: number;
}

/** Opens the store `source.store` describes; a registry or a bucket is reached as the worker's `env` says (CAs; a registry's proxies). */
export function openStore(config: StoreConfig, log: Log, env: Record<string, string | undefined>): ImageStore {
  if (config.type === 'file') return new FileStore(config.path);
  if (config.type === 's3') return new S3Store(config, env);
  return new RegistryStore(config, log, env);
}
