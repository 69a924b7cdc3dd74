import { digestHex } from '../../image/digest.js';
import { POOL_DIR } from '../layout.js';

/**
 * A store in an S3-compatible bucket (DESIGN §4a): `s3://BUCKET[/PREFIX]`. Its keys are the paths
 * a directory store has under its root, below PREFIX: `PREFIX/<repository>/index.json`,
 * `PREFIX/.blobs/blobs/sha256/<hex>`, `PREFIX/.repositories`.
 */
export interface BucketLocation {
  bucket: string;
  /** Without leading or trailing slash; '' for the bucket's root. */
  prefix: string;
  /** Path-style addressing asked for on the URL (`?path-style=true`); else decided from the endpoint. */
  pathStyle?: boolean;
  /**
   * The store has one writer by the operator's word (`?single-writer=true`): for object stores that
   * ignore conditional writes, where the lock object cannot exclude a second writer.
   */
  singleWriter?: boolean;
}

/** `s3://bucket/prefix`, as the operator wrote it (for messages). */
export function bucketUrl(location: BucketLocation): string {
  return `s3://${location.bucket}${location.prefix === '' ? '' : `/${location.prefix}`}`;
}

/** The key of `path` (a store-relative path such as `app/index.json`) in the bucket. */
export function keyOf(location: BucketLocation, path: string): string {
  return location.prefix === '' ? path : `${location.prefix}/${path}`;
}

/** The store-relative path of a blob in a bucket store: once, in the pool (see BucketStore). */
export function poolKey(digest: string): string {
  return `${POOL_DIR}/blobs/sha256/${digestHex(digest)}`;
}
