/**
 * The AWS SDK modules a bucket store uses, as one module imported on first use (client.ts): a
 * directory store never loads them. The single-file bundle (assets/build-bundle.mjs) ships this
 * module as a file of its own beside the CLI, read only when a store is s3://.
 */
export * as s3 from '@aws-sdk/client-s3';
export * as storage from '@aws-sdk/lib-storage';
export * as presigner from '@aws-sdk/s3-request-presigner';
