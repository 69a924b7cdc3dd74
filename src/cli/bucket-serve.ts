import { Option } from 'commander';
import type { BucketSource } from '../store/bucket/source.js';
import { CliError, openBucket, type StoreLocation } from './common.js';

/** serve's options for a bucket store (DESIGN §4a). */
export interface BucketServeFlags {
  refresh: string;
  blobRedirect: string;
  blobRedirectEndpoint?: string;
}

/** --refresh, --blob-redirect, --blob-redirect-endpoint (added to serve one by one: commander has no addOptions). */
export function bucketServeOptions(): [Option, Option, Option] {
  return [
    new Option('--refresh <duration>', 's3:// store: how often to look for new loads in the bucket (e.g. 10s, 1m)').default('10s'),
    new Option('--blob-redirect <on|off>', 's3:// store: answer blob GETs with 307 to a presigned URL (on), or stream the bytes through (off)').choices(['on', 'off']).default('on'),
    new Option('--blob-redirect-endpoint <url>', 's3:// store: sign redirect URLs for this endpoint, the object store as clients reach it (default: AWS_ENDPOINT_URL_S3)'),
  ];
}

/** The bucket store as served: read once (failing in one line), then refreshed every --refresh. */
export async function openBucketSource(location: Extract<StoreLocation, { kind: 'bucket' }>, flags: BucketServeFlags): Promise<BucketSource> {
  const refreshMs = parseDuration(flags.refresh, '--refresh');
  if (flags.blobRedirectEndpoint !== undefined && !/^https?:\/\/[^/]+\/?$/.test(flags.blobRedirectEndpoint)) {
    throw new CliError(`--blob-redirect-endpoint "${flags.blobRedirectEndpoint}" is not http(s)://HOST[:PORT]`, 'e.g. https://objects.example.com or http://10.0.0.9:7480');
  }
  const bucket = await openBucket(location.bucket, flags.blobRedirectEndpoint);
  const { BucketSource } = await import('../store/bucket/source.js');
  return BucketSource.open(bucket, { refreshMs, blobs: flags.blobRedirect === 'off' ? 'stream' : 'redirect' });
}

/** `10s`, `500ms`, `2m`, or a number of seconds; at least 100 ms. */
export function parseDuration(value: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  const ms = match ? Number(match[1]) * ({ ms: 1, s: 1000, m: 60_000 } as const)[(match[2] ?? 's') as 'ms' | 's' | 'm'] : NaN;
  if (!(ms >= 100)) throw new CliError(`${flag} "${value}" is not a duration of at least 100ms`, 'e.g. 10s, 500ms, 1m');
  return ms;
}
