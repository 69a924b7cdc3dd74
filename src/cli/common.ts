import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Option } from 'commander';
import type { Bucket, EndpointSettings } from '../store/bucket/client.js';
import type { BucketLocation } from '../store/bucket/location.js';
import type { ImageSource } from '../store/image-source.js';
import type { StoreOps } from '../store/store-ops.js';
import { removeTempPathsSync } from '../store/temp-paths.js';

/**
 * What every command shares: where the store is, how errors reach the operator, exit codes.
 * Exit codes: 0 success; 1 the work failed (bad input, problems found, server error);
 * 2 the command line was wrong (commander's usage errors).
 */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** What a shell reports for a process killed by SIGPIPE (128 + 13), as git and coreutils end. */
export const EXIT_BROKEN_PIPE = 141;
const SIGNAL_EXITS: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

export const DEFAULT_STORE = 'cartorio-store';

/** `--store DIR|s3://BUCKET[/PREFIX]`, defaulting to $CARTORIO_STORE, then ./cartorio-store. */
export function storeOption(): Option {
  return new Option('-s, --store <dir|s3://bucket/prefix>', 'store: a directory, or an S3-compatible bucket (s3://BUCKET[/PREFIX])').env('CARTORIO_STORE').default(DEFAULT_STORE);
}

/** Where a store is: a directory, or a bucket. */
export type StoreLocation = { kind: 'directory'; path: string } | { kind: 'bucket'; bucket: BucketLocation; text: string };

/**
 * Object stores that are not S3-compatible, by URL scheme: named in the refusal, so `gs://b/x`
 * never becomes a directory `./gs:/b/x` (a load that "succeeds" into the wrong place).
 */
const OTHER_SCHEMES: Record<string, string> = {
  gs: 'Google Cloud Storage',
  gcs: 'Google Cloud Storage',
  azblob: 'Azure Blob Storage',
  az: 'Azure Blob Storage',
  abfs: 'Azure Data Lake Storage',
  abfss: 'Azure Data Lake Storage',
  wasb: 'Azure Blob Storage',
  wasbs: 'Azure Blob Storage',
  swift: 'OpenStack Swift',
  oss: 'Alibaba OSS',
  cos: 'Tencent COS',
  http: 'an HTTP URL',
  https: 'an HTTPS URL',
  file: 'a file: URL',
  docker: 'a registry reference',
  oci: 'a registry reference',
};
const URL_OPTIONS = new Set(['path-style', 'single-writer']);
// S3's bucket naming rules (3–63 lower-case letters, digits, dots, hyphens), which RGW and MinIO also keep by default.
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * Reads a store argument. Anything shaped `scheme://` is a URL: `s3://` is a bucket, every other
 * scheme is refused by name; it is never taken as a relative path.
 */
export function parseStore(store: string): StoreLocation {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(store)?.[1];
  if (scheme === undefined) return { kind: 'directory', path: resolve(store) };
  const lower = scheme.toLowerCase();
  const hint = 'a store is a directory or an S3-compatible bucket: --store s3://BUCKET[/PREFIX] (endpoint and keys from AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, or an AWS profile)';
  if (lower !== 's3') {
    const what = OTHER_SCHEMES[lower];
    throw new CliError(`store "${store}": ${lower}:// ${what === undefined ? 'is not a kind of store cartorio knows' : `(${what}) is not a store cartorio can use`}`, lower === 'file' ? 'give the directory itself, e.g. --store /srv/images' : hint);
  }
  let url: URL;
  try {
    url = new URL(store);
  } catch {
    throw new CliError(`store "${store}" is not a valid s3:// URL`, hint);
  }
  if (url.username !== '' || url.password !== '') throw new CliError(`store "${store}": keys do not go in the URL`, 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE');
  if (url.port !== '' || url.hash !== '') throw new CliError(`store "${store}" is not s3://BUCKET[/PREFIX][?path-style=true]`, 'the endpoint goes in AWS_ENDPOINT_URL_S3, e.g. http://127.0.0.1:7480');
  const bucket = url.hostname;
  if (!BUCKET_NAME.test(bucket) || bucket.includes('..')) throw new CliError(`store "${store}": "${bucket}" is not a bucket name`, 'bucket names are 3–63 lower-case letters, digits, dots and hyphens');
  const raw = decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, '');
  const parts = raw === '' ? [] : raw.split('/');
  if (parts.some((part) => part === '' || part === '.' || part === '..')) throw new CliError(`store "${store}": the prefix "${raw}" has an empty, . or .. part`, 'write the prefix as a/b/c');
  const location: BucketLocation = { bucket, prefix: parts.join('/') };
  for (const [key, value] of url.searchParams) {
    if (!URL_OPTIONS.has(key)) throw new CliError(`store "${store}": unknown option "${key}"`, `options: ${[...URL_OPTIONS].map((name) => `${name}=true|false`).join(', ')}`);
    if (value !== 'true' && value !== 'false') throw new CliError(`store "${store}": ${key}=${value} is not true or false`);
    if (key === 'path-style') location.pathStyle = value === 'true';
    else location.singleWriter = value === 'true';
  }
  return { kind: 'bucket', bucket: location, text: store };
}

/**
 * The bucket of an s3:// store, reached through the AWS SDK's own chain (keys, profiles, web
 * identity, AWS_REGION); what decides path-style addressing is read here, where env is read.
 */
export async function openBucket(location: BucketLocation, presignEndpoint?: string): Promise<Bucket> {
  const env = process.env;
  const endpoint = env['AWS_ENDPOINT_URL_S3'] ?? env['AWS_ENDPOINT_URL'];
  const settings: EndpointSettings = {
    ...(endpoint !== undefined && endpoint !== '' && { endpoint }),
    forcePathStyle: /^(1|true)$/i.test(env['AWS_S3_FORCE_PATH_STYLE'] ?? ''),
    ...(presignEndpoint !== undefined && { presignEndpoint }),
  };
  // The SDK wants a region even for endpoints that ignore it (RGW, MinIO).
  if (env['AWS_REGION'] === undefined && env['AWS_DEFAULT_REGION'] === undefined && endpoint !== undefined) env['AWS_REGION'] = 'us-east-1';
  // Imported here, not at start: a directory store never loads the bucket client (node:https, tls).
  const { Bucket } = await import('../store/bucket/client.js');
  return Bucket.open(location, settings);
}

/** A store that must exist, to read (list, mirror-config): a directory's reader, or a bucket's, read once. */
export async function openStoreReader(store: string): Promise<ImageSource> {
  const location = parseStore(store);
  if (location.kind === 'bucket') {
    const { BucketSource } = await import('../store/bucket/source.js');
    return BucketSource.open(await openBucket(location.bucket), { refreshMs: 0, blobs: 'stream' });
  }
  const { StoreReader } = await import('../store/reader.js');
  return new StoreReader(await existingStore(store));
}

/**
 * A store that must exist, to change (rm, prune, gc): its operations, and a reader that resolves
 * names as the server does (a bucket's is read once, never refreshed).
 */
export async function openStoreOps(store: string): Promise<{ ops: StoreOps; reader: ImageSource }> {
  const location = parseStore(store);
  if (location.kind === 'bucket') {
    const [{ BucketStore }, { BucketSource }] = await Promise.all([import('../store/bucket/bucket-store.js'), import('../store/bucket/source.js')]);
    const bucket = await openBucket(location.bucket);
    return { ops: new BucketStore(bucket), reader: await BucketSource.open(bucket, { refreshMs: 0, blobs: 'stream' }) };
  }
  const root = await existingStore(store);
  // Imported here, not at start: every command loads this module, serve before it listens.
  const [{ DirectoryStore }, { StoreReader }] = await Promise.all([import('../store/dir-store.js'), import('../store/reader.js')]);
  return { ops: new DirectoryStore(root), reader: new StoreReader(root) };
}

/** A directory store that must already exist: a mistyped path is an error, not an empty store. Callers open buckets themselves. */
export async function existingStore(store: string): Promise<string> {
  const location = parseStore(store);
  if (location.kind !== 'directory') throw new Error(`store "${store}" is a bucket: open it with openBucket`);
  const info = await stat(location.path).catch(() => undefined);
  if (!info?.isDirectory()) throw new CliError(`store ${location.path} does not exist`, 'check --store (or $CARTORIO_STORE); `cartorio load --store DIR` creates a store');
  return location.path;
}

/**
 * For commands that write (load, convert): SIGINT and SIGTERM remove this run's temp files,
 * then exit 130 / 143 as a shell expects. SIGKILL is covered by the next load's clean-up.
 */
export function cleanUpOnSignals(): void {
  for (const [signal, code] of Object.entries(SIGNAL_EXITS) as [NodeJS.Signals, number][]) {
    process.once(signal, () => {
      removeTempPathsSync();
      process.exit(code);
    });
  }
}

/**
 * Output to a closed pipe (`cartorio list | head -1`) ends the command quietly with status 141,
 * as git and coreutils do, instead of an unhandled EPIPE with a stack trace.
 */
export function quietOnBrokenPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      removeTempPathsSync();
      process.exit(EXIT_BROKEN_PIPE);
    });
  }
}

/** An error meant for the operator: printed as one line (plus an optional hint), no stack. */
export class CliError extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.hint = hint;
  }
}

/**
 * Wraps a command's action: errors print as `cartorio <command>: <message>` on stderr, with a
 * hint line when there is one, and set a non-zero exit code. Stacks only with CARTORIO_DEBUG=1.
 */
export function action<A extends unknown[]>(command: string, run: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await run(...args);
    } catch (error) {
      const err = error as Error & { hint?: string };
      process.stderr.write(`cartorio ${command}: ${err.message}\n`);
      if (err.hint) process.stderr.write(`  hint: ${err.hint}\n`);
      if (process.env['CARTORIO_DEBUG'] === '1') process.stderr.write(`${err.stack ?? ''}\n`);
      process.exitCode = EXIT_FAILURE;
    }
  };
}

/** Collects a repeatable option into an array (`--tag a --tag b`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Examples block appended to a command's --help. */
export function examples(lines: string[]): string {
  return `\nExamples:\n${lines.map((line) => `  $ ${line}`).join('\n')}\n`;
}
