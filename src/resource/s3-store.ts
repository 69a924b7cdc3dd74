import { writeVerifiedFile } from '../client/blob-verify.js';
import { systemCaCerts } from '../client/trust.js';
import { loadIntoStore } from '../formats/load.js';
import type { Descriptor } from '../image/oci.schema.js';
import type { Bucket, EndpointSettings } from '../store/bucket/client.js';
import { poolKey, type BucketLocation } from '../store/bucket/location.js';
import type { BucketSource } from '../store/bucket/source.js';
import { BucketWriter } from '../store/bucket/writer.js';
import { walkChildrenFirst, writeImageLayout } from './layout-copy.js';
import type { StoreConfig } from './schema.js';
import type { ImageStore, PushReport } from './stores.js';

type S3Config = Extract<StoreConfig, { type: 's3' }>;

/** The s3 resource's default region: object stores other than AWS (RGW, MinIO) ignore it, but the SDK wants one. */
const DEFAULT_REGION = 'us-east-1';

/**
 * A cartorio store in an S3-compatible bucket (DESIGN §4a), the keys `cartorio load --store
 * s3://BUCKET/PREFIX` writes: check and in read `<repository>/index.json` and the pool, out loads
 * through the same commit as `cartorio load` (the lock object, blobs the pool has not sent again).
 * Endpoint, keys and region come from `source.store` (Concourse gives a resource no environment);
 * keys left out are found by the AWS SDK's own chain (an instance profile, web identity).
 */
export class S3Store implements ImageStore {
  readonly where: string;
  readonly #location: BucketLocation;
  readonly #settings: EndpointSettings;
  #opened: Promise<{ bucket: Bucket; source: BucketSource }> | undefined;

  constructor(config: S3Config, env: Record<string, string | undefined>) {
    const endpoint = config.endpoint === undefined ? undefined : withScheme(config.endpoint, config.disable_ssl === true);
    this.#location = {
      bucket: config.bucket,
      prefix: config.prefix ?? '',
      // Path-style with an endpoint of its own, as Concourse's s3 resource addresses one: RGW and MinIO rarely have wildcard DNS.
      pathStyle: config.path_style ?? endpoint !== undefined,
      ...(config.single_writer !== undefined && { singleWriter: config.single_writer }),
    };
    const caCerts = [...systemCaCerts(env), ...(config.ca_certs ?? [])];
    this.#settings = {
      ...(endpoint !== undefined && { endpoint }),
      region: config.region_name ?? DEFAULT_REGION,
      ...(config.access_key_id !== undefined && config.secret_access_key !== undefined && {
        credentials: { accessKeyId: config.access_key_id, secretAccessKey: config.secret_access_key, ...(config.session_token !== undefined && { sessionToken: config.session_token }) },
      }),
      caCerts,
      names: { keys: 'source.store.access_key_id and secret_access_key', endpoint: 'source.store.endpoint', ca: "trust its CA: source.store.ca_certs, or a PEM in the worker's /etc/ssl/certs (SSL_CERT_DIR, SSL_CERT_FILE)" },
    };
    const url = `s3://${config.bucket}${config.prefix === undefined ? '' : `/${config.prefix}`}`;
    this.where = `bucket store ${url}${endpoint === undefined ? '' : ` at ${endpoint}`}`;
    if ((config.access_key_id === undefined) !== (config.secret_access_key === undefined)) {
      throw new Error(`invalid payload: /source/store has ${config.access_key_id === undefined ? 'secret_access_key without access_key_id' : 'access_key_id without secret_access_key'}: give both, or neither to use the worker's instance profile`);
    }
  }

  // The SDK is imported, the keys tried and the repository list read on first use, once.
  #open(): Promise<{ bucket: Bucket; source: BucketSource }> {
    this.#opened ??= (async () => {
      const { Bucket } = await import('../store/bucket/client.js');
      const { BucketSource } = await import('../store/bucket/source.js');
      const bucket = await Bucket.open(this.#location, this.#settings);
      return { bucket, source: await BucketSource.open(bucket, { refreshMs: 0, blobs: 'stream' }) };
    })();
    return this.#opened;
  }

  async resolveTag(repository: string, tag: string): Promise<string | undefined> {
    return (await (await this.#open()).source.repository(repository))?.tagged.get(tag);
  }

  async hasRepository(repository: string): Promise<boolean> {
    return (await (await this.#open()).source.repository(repository)) !== undefined;
  }

  async findManifest(repository: string, digest: string): Promise<Descriptor | undefined> {
    return (await (await (await this.#open()).source.repository(repository))?.manifest(digest))?.descriptor;
  }

  async pull(repository: string, root: Descriptor, dest: string, tag: string): Promise<{ blobs: number; bytes: number }> {
    const { bucket } = await this.#open();
    return writeImageLayout(dest, root, tag, async (descriptor, path) => {
      const key = poolKey(descriptor.digest);
      const body = await bucket.stream(key);
      if (!body) throw new Error(`${this.where}: ${repository} lacks blob ${descriptor.digest} (no ${key}); run cartorio verify --store ${bucket.url}`);
      // Hashed as it arrives (as a registry store's get is): a blob is written whole and right, or the get fails naming it.
      const where = `${this.where}: ${key} of ${repository}`;
      await writeVerifiedFile(body, path, descriptor.digest, descriptor.size, where).catch((error: unknown) => {
        // The check names `where` itself (wrong bytes: the store wants verifying); anything else is the bucket's.
        throw error instanceof Error && error.message.startsWith(where) ? new Error(`${error.message}; run cartorio verify --store ${bucket.url}`) : bucket.describe(error, key);
      });
    });
  }

  async push(repository: string, layout: string, root: Descriptor, tags: string[]): Promise<PushReport> {
    const { bucket } = await this.#open();
    // Counted before the load: the commit itself skips what the pool has, and says nothing.
    const report: PushReport = { uploaded: 0, skipped: 0 };
    await walkChildrenFirst(layout, root, async (descriptor) => {
      if ((await bucket.head(poolKey(descriptor.digest)))?.size === descriptor.size) report.skipped++;
      else report.uploaded++;
    });
    const writer = new BucketWriter(bucket);
    await writer.prepare();
    await loadIntoStore(writer, [layout], { format: 'oci-layout', name: repository, tags });
    return report;
  }

  close(): void {
    void this.#opened?.then(({ source }) => source.close(), () => undefined);
  }
}

/** The s3 resource's `endpoint` may be a bare `host[:port]`: HTTPS, or HTTP with `disable_ssl`. */
function withScheme(endpoint: string, disableSsl: boolean): string {
  if (/^https?:\/\//i.test(endpoint)) return endpoint;
  return `${disableSsl ? 'http' : 'https'}://${endpoint}`;
}
