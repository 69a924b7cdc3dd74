import { createReadStream } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { isIP } from 'node:net';
import type { Readable } from 'node:stream';
import { getCACertificates } from 'node:tls';
import type { S3Client } from '@aws-sdk/client-s3';
import { type BucketLocation, bucketUrl, keyOf } from './location.js';

/** The SDK's modules, imported on first use: a directory store never pays for them (~100 ms). */
type Sdk = [typeof import('@aws-sdk/client-s3'), typeof import('@aws-sdk/lib-storage'), typeof import('@aws-sdk/s3-request-presigner')];
let sdk: Promise<Sdk> | undefined;
function loadSdk(): Promise<Sdk> {
  sdk ??= import('./sdk.js').then(({ s3, storage, presigner }) => [s3, storage, presigner], (error: unknown) => {
    // A copy of the single-file CLI without its aws-sdk.mjs beside it (a get's launcher).
    throw new Error(`this copy of cartorio cannot load its S3 support (${(error as Error).message}); s3:// stores need the npm package or the cartorio image`, { cause: error });
  });
  return sdk;
}

/** What the operator's environment says about the endpoint (read by the CLI, which alone reads env). */
export interface EndpointSettings {
  /** AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, when set: decides path-style addressing. */
  endpoint?: string;
  /** AWS_S3_FORCE_PATH_STYLE=true. */
  forcePathStyle?: boolean;
  /** `--blob-redirect-endpoint`: presigned URLs name this endpoint (what clients reach). */
  presignEndpoint?: string;
  /**
   * Keys given in configuration (the resource's `source.store`, since Concourse gives a resource
   * no environment); without them the SDK's own chain finds them (env, profiles, web identity, IMDS).
   */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** The region given in configuration; without it the SDK's chain (AWS_REGION, profiles). */
  region?: string;
  /**
   * PEM CA certificates trusted besides Node's bundle, read by the caller (the resource reads the
   * worker's /etc/ssl/certs itself): instead of Node's look-up of the machine's store, which
   * writes a warning to stderr in a container that has no /etc/ssl/certs.
   */
  caCerts?: string[];
  /** How messages name where the keys, the endpoint and trusted CAs are set (default: what the CLI reads). */
  names?: ConfigNames;
}

export interface ConfigNames {
  keys: string;
  endpoint: string;
  ca: string;
}

const ENVIRONMENT_NAMES: ConfigNames = { keys: 'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the AWS profile)', endpoint: 'AWS_ENDPOINT_URL_S3', ca: "add its CA to this machine's trusted certificates, or name a PEM file of it in SSL_CERT_FILE" };
/** Node's codes for a certificate it would not trust. */
const UNTRUSTED = /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ERR_TLS_CERT_ALTNAME_INVALID)$/;

/** Small objects (index.json, .repositories, manifests, the lock) are read whole, up to this. */
const MAX_SMALL_OBJECT = 64 * 1024 * 1024;
/** Multipart parts: 16 MiB, 4 in flight: ~64 MiB buffered at most, whatever the layer's size. */
const PART_SIZE = 16 * 1024 * 1024;
const PARTS_IN_FLIGHT = 4;

/** An object's bytes and ETag (quotes removed). */
export interface Fetched {
  bytes: Buffer;
  etag: string;
}

/**
 * One bucket store's objects, by store-relative path (`app/index.json`, `.blobs/blobs/sha256/…`).
 * Errors come out as one line naming the store, the key and what to do (`describe`).
 */
export class Bucket {
  readonly location: BucketLocation;
  readonly url: string;
  readonly #client: S3Client;
  readonly #presigner: S3Client;
  readonly #sdk: Awaited<ReturnType<typeof loadSdk>>;
  readonly #endpoint: string;
  readonly #names: ConfigNames;

  private constructor(location: BucketLocation, client: S3Client, presigner: S3Client, loaded: Awaited<ReturnType<typeof loadSdk>>, endpoint: string, names = ENVIRONMENT_NAMES) {
    this.location = location;
    this.url = bucketUrl(location);
    this.#client = client;
    this.#presigner = presigner;
    this.#sdk = loaded;
    this.#endpoint = endpoint;
    this.#names = names;
  }

  static async open(location: BucketLocation, settings: EndpointSettings = {}): Promise<Bucket> {
    const loaded = await loadSdk();
    const [{ S3Client }] = loaded;
    const ca = settings.caCerts === undefined ? systemCas() : [...getCACertificates('default'), ...settings.caCerts];
    const make = (endpoint: string | undefined): S3Client => new S3Client({
      ...(endpoint !== undefined && { endpoint }),
      ...(settings.region !== undefined && { region: settings.region }),
      ...(settings.credentials !== undefined && { credentials: settings.credentials }),
      forcePathStyle: location.pathStyle ?? (settings.forcePathStyle === true || (endpoint !== undefined && isLocalEndpoint(endpoint))),
      // RGW 16 (and other S3-compatible stores) answer 411 to the SDK's default trailing checksums.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
      requestHandler: {
        // Private endpoints are signed by the machine's own CA (what curl and the aws CLI trust), not only Node's bundle.
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 64, ca }),
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 64 }),
        connectionTimeout: 5000,
        requestTimeout: 60_000,
      },
    });
    const client = make(settings.endpoint);
    const presigner = settings.presignEndpoint === undefined ? client : make(settings.presignEndpoint);
    return new Bucket(location, client, presigner, loaded, settings.endpoint ?? 'the default AWS endpoint', settings.names);
  }

  /** Reads a small object whole; undefined when there is none. `etag` given: 'unchanged' if it still has it. */
  async get(path: string, etag?: string): Promise<Fetched | 'unchanged' | undefined> {
    const [{ GetObjectCommand }] = this.#sdk;
    try {
      const answer = await this.#client.send(new GetObjectCommand({ Bucket: this.location.bucket, Key: keyOf(this.location, path), ...(etag !== undefined && { IfNoneMatch: `"${etag}"` }) }));
      if ((answer.ContentLength ?? 0) > MAX_SMALL_OBJECT) throw new Error(`is ${answer.ContentLength} bytes, over the ${MAX_SMALL_OBJECT}-byte limit`);
      const bytes = Buffer.from(await (answer.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
      return { bytes, etag: unquote(answer.ETag) };
    } catch (error) {
      if (statusOf(error) === 304) return 'unchanged';
      if (isNoSuchKey(error)) return undefined;
      throw this.describe(error, path);
    }
  }

  /** Size, ETag and last write (ms since the epoch, the object store's clock) of an object, or undefined. */
  async head(path: string): Promise<{ size: number; etag: string; modified: number } | undefined> {
    const [{ HeadObjectCommand }] = this.#sdk;
    try {
      const answer = await this.#client.send(new HeadObjectCommand({ Bucket: this.location.bucket, Key: keyOf(this.location, path) }));
      return { size: answer.ContentLength ?? 0, etag: unquote(answer.ETag), modified: answer.LastModified?.getTime() ?? 0 };
    } catch (error) {
      if (isNoSuchKey(error)) return undefined;
      throw this.describe(error, path);
    }
  }

  /**
   * Writes a small object. `ifNoneMatch: '*'` creates it only if absent, `ifMatch` replaces only
   * that version: 'conflict' when the condition fails (412, or 409 for a concurrent write).
   */
  async put(path: string, body: Buffer | string, condition: { ifNoneMatch?: '*'; ifMatch?: string } = {}): Promise<string | 'conflict'> {
    const [{ PutObjectCommand }] = this.#sdk;
    try {
      const answer = await this.#client.send(new PutObjectCommand({
        Bucket: this.location.bucket,
        Key: keyOf(this.location, path),
        Body: body,
        ...(path.endsWith('.json') && { ContentType: 'application/json' }),
        ...(condition.ifNoneMatch !== undefined && { IfNoneMatch: condition.ifNoneMatch }),
        ...(condition.ifMatch !== undefined && { IfMatch: condition.ifMatch }),
      }));
      return unquote(answer.ETag);
    } catch (error) {
      const status = statusOf(error);
      if ((condition.ifNoneMatch !== undefined || condition.ifMatch !== undefined) && (status === 412 || status === 409)) return 'conflict';
      throw this.describe(error, path);
    }
  }

  /** Uploads a file, streamed: one PUT when small, multipart parts of PART_SIZE when large. */
  async upload(path: string, file: string): Promise<void> {
    const [, { Upload }] = this.#sdk;
    const upload = new Upload({
      client: this.#client,
      params: { Bucket: this.location.bucket, Key: keyOf(this.location, path), Body: createReadStream(file, { highWaterMark: 1024 * 1024 }) },
      partSize: PART_SIZE,
      queueSize: PARTS_IN_FLIGHT,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (error) {
      throw this.describe(error, path);
    }
  }

  async delete(path: string): Promise<void> {
    const [{ DeleteObjectCommand }] = this.#sdk;
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.location.bucket, Key: keyOf(this.location, path) }));
    } catch (error) {
      throw this.describe(error, path);
    }
  }

  /** The bytes of an object as a stream, optionally one range (both ends inclusive). */
  async stream(path: string, range?: { start: number; end: number }): Promise<Readable | undefined> {
    const [{ GetObjectCommand }] = this.#sdk;
    try {
      const answer = await this.#client.send(new GetObjectCommand({ Bucket: this.location.bucket, Key: keyOf(this.location, path), ...(range && { Range: `bytes=${range.start}-${range.end}` }) }));
      return answer.Body as Readable;
    } catch (error) {
      if (isNoSuchKey(error)) return undefined;
      throw this.describe(error, path);
    }
  }

  /** A URL that GETs the object without credentials for `seconds` (signed for the presign endpoint). */
  async presign(path: string, seconds: number, filename?: string): Promise<string> {
    const [{ GetObjectCommand }, , { getSignedUrl }] = this.#sdk;
    return getSignedUrl(this.#presigner, new GetObjectCommand({
      Bucket: this.location.bucket,
      Key: keyOf(this.location, path),
      ...(filename !== undefined && { ResponseContentType: 'application/octet-stream' }),
    }), { expiresIn: seconds });
  }

  /** Every key under `path` (store-relative), as store-relative paths, with size and last write. */
  async *list(path: string): AsyncGenerator<{ path: string; size: number; modified: number }> {
    const [{ ListObjectsV2Command }] = this.#sdk;
    const base = keyOf(this.location, '');
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.#client.send(new ListObjectsV2Command({ Bucket: this.location.bucket, Prefix: keyOf(this.location, path), ...(token !== undefined && { ContinuationToken: token }) }));
      } catch (error) {
        throw this.describe(error, path);
      }
      for (const object of page.Contents ?? []) if (object.Key !== undefined) yield { path: object.Key.slice(base.length), size: object.Size ?? 0, modified: object.LastModified?.getTime() ?? 0 };
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  /** Multipart uploads under the store never completed nor aborted (a killed load's), with when each began. */
  async *uploads(): AsyncGenerator<{ path: string; id: string; started: number }> {
    const [{ ListMultipartUploadsCommand }] = this.#sdk;
    const base = keyOf(this.location, '');
    let marker: { KeyMarker?: string; UploadIdMarker?: string } = {};
    for (;;) {
      let page;
      try {
        page = await this.#client.send(new ListMultipartUploadsCommand({ Bucket: this.location.bucket, Prefix: base, ...marker }));
      } catch (error) {
        throw this.describe(error, undefined);
      }
      for (const { Key, UploadId, Initiated } of page.Uploads ?? []) {
        if (Key !== undefined && UploadId !== undefined) yield { path: Key.slice(base.length), id: UploadId, started: Initiated?.getTime() ?? 0 };
      }
      if (page.IsTruncated !== true) return;
      marker = { ...(page.NextKeyMarker !== undefined && { KeyMarker: page.NextKeyMarker }), ...(page.NextUploadIdMarker !== undefined && { UploadIdMarker: page.NextUploadIdMarker }) };
    }
  }

  /** Discards a multipart upload and its parts (gone already: nothing to do). */
  async abortUpload(path: string, id: string): Promise<void> {
    const [{ AbortMultipartUploadCommand }] = this.#sdk;
    try {
      await this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.location.bucket, Key: keyOf(this.location, path), UploadId: id }));
    } catch (error) {
      if ((error as { name?: string }).name !== 'NoSuchUpload' && statusOf(error) !== 404) throw this.describe(error, path);
    }
  }

  /** Checks the bucket is there and the keys work: the first call of every command, so a mistake costs one clear line. */
  async check(): Promise<void> {
    const [{ HeadBucketCommand }] = this.#sdk;
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.location.bucket }));
    } catch (error) {
      throw this.describe(error, undefined);
    }
  }

  /** One line: what failed, on which store and key, and what to do. */
  describe(error: unknown, path: string | undefined): Error {
    const where = path === undefined ? this.url : `${this.url}/${path}`;
    const name = (error as { name?: string; Code?: string }).name ?? '';
    const status = statusOf(error);
    const code = (error as NodeJS.ErrnoException).code ?? (error as { cause?: NodeJS.ErrnoException }).cause?.code;
    const label = name !== '' && name !== 'Unknown' ? name : `HTTP ${status ?? '?'}`;
    let text: string;
    if (name === 'NoSuchBucket' || (status === 404 && path === undefined)) text = `bucket "${this.location.bucket}" does not exist at ${this.#endpoint}: create it first (aws s3 mb s3://${this.location.bucket})`;
    else if (name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch' || status === 403 && path === undefined) text = `the object store at ${this.#endpoint} refused the keys (${label}): check ${this.#names.keys}`;
    else if (name === 'AccessDenied' || status === 403) text = `access denied at ${this.#endpoint} (${label}): the keys may not read or write this bucket`;
    else if (name === 'CredentialsProviderError') text = `no credentials for the object store: set ${this.#names.keys} (${(error as Error).message})`;
    else if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'ETIMEDOUT' || code === 'ECONNRESET' || name === 'TimeoutError') text = `cannot reach the object store at ${this.#endpoint} (${code ?? name}): check ${this.#names.endpoint}`;
    else if (code !== undefined && UNTRUSTED.test(code)) text = `the object store at ${this.#endpoint} has a certificate this machine does not trust (${code}): ${this.#names.ca}`;
    else text = `${(error as Error).message || name || `HTTP ${status}`}`;
    return new Error(`${where}: ${text}`, { cause: error });
  }
}

/** True for an endpoint named by an IP address or `localhost`: no virtual-host bucket names there. */
export function isLocalEndpoint(endpoint: string): boolean {
  try {
    const host = new URL(endpoint).hostname.replace(/^\[|\]$/g, '');
    return isIP(host) !== 0 || host === 'localhost' || host.endsWith('.localhost');
  } catch {
    return false;
  }
}

function systemCas(): string[] {
  try {
    return [...new Set([...getCACertificates('default'), ...getCACertificates('system')])];
  } catch {
    return [...getCACertificates('default')];
  }
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function isNoSuchKey(error: unknown): boolean {
  const name = (error as { name?: string }).name;
  return name === 'NoSuchKey' || name === 'NotFound' || (statusOf(error) === 404 && name !== 'NoSuchBucket');
}

function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/^"|"$/g, '');
}
