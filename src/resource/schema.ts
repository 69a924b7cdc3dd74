import { Ajv, type ErrorObject, type Schema, type ValidateFunction } from 'ajv';
import type { FromSchema } from 'json-schema-to-ts';
import { describeAjvError } from '../image/validate.js';

/**
 * Every Concourse payload the resource reads (DESIGN §5), as `as const` schemas whose types
 * come from `FromSchema`. Strict: unknown keys are rejected, nothing is coerced or stripped.
 * Version values are strings, as Concourse requires.
 */

const TAG_PATTERN = '^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$';
const tag = { type: 'string', pattern: TAG_PATTERN } as const;
const digest = { type: 'string', pattern: '^sha256:[a-f0-9]{64}$' } as const;

/** An OCI registry: any Distribution-API registry, Basic or Bearer-token auth. */
export const registryStoreSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'url'],
  properties: {
    type: { const: 'registry' },
    url: { type: 'string', minLength: 1 },
    username: { type: 'string' },
    password: { type: 'string' },
    insecure: { type: 'boolean' },
    ca_certs: { type: 'array', items: { type: 'string', minLength: 1 } },
  },
} as const;

/** A cartorio store directory on storage that outlives the step (NFS, a mounted volume). */
export const fileStoreSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'path'],
  properties: {
    type: { const: 'file' },
    path: { type: 'string', minLength: 1 },
  },
} as const;

/**
 * Keys of Concourse's s3 resource that a bucket store does not implement: accepted by the schema
 * so the refusal says why in one line (`resolveSource`), not "unknown key".
 */
export const REFUSED_S3_KEYS = {
  skip_ssl_verification: "give the endpoint's CA in ca_certs, or put it in the worker's /etc/ssl/certs",
  use_v2_signing: 'cartorio signs with Signature Version 4 only',
  disable_multipart: 'large blobs are uploaded in parts; use an object store that takes multipart uploads',
  server_side_encryption: 'set default encryption on the bucket instead',
  sse_kms_key_id: 'set default encryption on the bucket instead',
  aws_role_arn: 'give keys for the role (access_key_id, secret_access_key, session_token)',
  private: 'a bucket store is always read with signed requests',
  cloudfront_url: 'a bucket store is read from the bucket itself',
} as const;

const refusedS3Properties = Object.fromEntries(Object.keys(REFUSED_S3_KEYS).map((key) => [key, {}])) as Record<keyof typeof REFUSED_S3_KEYS, object>;

/**
 * A cartorio store in an S3-compatible bucket, as `cartorio load --store s3://BUCKET/PREFIX` writes
 * it. Concourse gives a resource no environment, so the endpoint and keys are here, in the words
 * of Concourse's own s3 resource (`access_key_id`, `region_name`, `endpoint`, `disable_ssl`, …).
 */
export const s3StoreSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'bucket'],
  properties: {
    type: { const: 's3' },
    bucket: { type: 'string', pattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$' },
    /** The store's keys live below it: `s3://bucket/prefix`. */
    prefix: { type: 'string', pattern: '^[^/]+(/[^/]+)*$' },
    /** `https://host[:port]`, `http://host[:port]`, or `host[:port]` (HTTPS unless disable_ssl). */
    endpoint: { type: 'string', minLength: 1 },
    disable_ssl: { type: 'boolean' },
    region_name: { type: 'string', minLength: 1 },
    access_key_id: { type: 'string', minLength: 1 },
    secret_access_key: { type: 'string', minLength: 1 },
    session_token: { type: 'string', minLength: 1 },
    /** Default: true with `endpoint` (RGW, MinIO), as the s3 resource does; virtual-hosted names on AWS. */
    path_style: { type: 'boolean' },
    /** The object store ignores conditional writes and the operator vouches for one writer (`?single-writer=true`). */
    single_writer: { type: 'boolean' },
    ca_certs: { type: 'array', items: { type: 'string', minLength: 1 } },
    ...refusedS3Properties,
  },
} as const;

/**
 * registry-image's source keys cartorio does not implement. They are accepted by the schema so
 * the refusal is one line that says so (`resolveSource`), not "unknown key".
 */
export const REFUSED_SOURCE_KEYS = {
  tag_regex: 'cartorio checks one tag: set source.tag',
  semver_constraint: 'cartorio checks one tag: set source.tag',
  pre_releases: 'cartorio checks one tag: set source.tag',
  created_at_sort: 'cartorio checks one tag: set source.tag',
  variant: 'put the variant in source.tag',
  aws_access_key_id: 'ECR credentials are not supported: give username and password (e.g. from `aws ecr get-login-password`)',
  aws_secret_access_key: 'ECR credentials are not supported: give username and password',
  aws_session_token: 'ECR credentials are not supported: give username and password',
  aws_region: 'ECR credentials are not supported: give username and password',
  aws_role_arn: 'ECR credentials are not supported: give username and password',
  aws_role_arns: 'ECR credentials are not supported: give username and password',
  registry_mirror: 'name the mirror in repository instead (host/path)',
  content_trust: 'Notary content trust is not supported',
} as const;

const refusedSourceProperties = Object.fromEntries(Object.keys(REFUSED_SOURCE_KEYS).map((key) => [key, {}])) as Record<keyof typeof REFUSED_SOURCE_KEYS, object>;

/** registry-image writes `tag: 3` in YAML as a number; Concourse hands it over as JSON 3. */
const tagOrNumber = { anyOf: [tag, { type: 'number', minimum: 0 }] } as const;

export const sourceSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['repository'],
  properties: {
    /** `host/path` (registry-image style: the registry is the host) or a name in `store`. */
    repository: { type: 'string', minLength: 1 },
    /** Default `latest`. */
    tag: tagOrNumber,
    store: {
      type: 'object',
      required: ['type'],
      properties: { type: { enum: ['registry', 'file', 's3'] } },
      discriminator: { propertyName: 'type' },
      oneOf: [registryStoreSchema, fileStoreSchema, s3StoreSchema],
    },
    // registry-image's way to say store {type: registry} at the repository's host.
    username: { type: 'string' },
    password: { type: 'string' },
    insecure: { type: 'boolean' },
    ca_certs: { type: 'array', items: { type: 'string', minLength: 1 } },
    platform: {
      anyOf: [
        { type: 'string', pattern: '^[a-z0-9._-]+/[a-z0-9._-]+(/[a-z0-9._-]+)?$' },
        {
          type: 'object',
          additionalProperties: false,
          properties: { os: { type: 'string', pattern: '^[a-z0-9._-]+$' }, architecture: { type: 'string', pattern: '^[a-z0-9._-]+$' }, variant: { type: 'string', pattern: '^[a-z0-9._-]+$' } },
        },
      ],
    },
    debug: { type: 'boolean' },
    ...refusedSourceProperties,
  },
} as const;
export type Source = FromSchema<typeof sourceSchema>;
export type StoreConfig = NonNullable<Source['store']>;

export const versionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['digest'],
  properties: { digest, tag },
} as const;
export type Version = FromSchema<typeof versionSchema>;

export const getParamsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    /** registry-image's meanings: `rootfs` → rootfs/ + metadata.json, `oci` → image.tar, `oci-layout` → oci/. */
    format: { enum: ['oci', 'oci-layout', 'rootfs'] },
    skip_download: { type: 'boolean' },
    bundle_server: { type: 'boolean' },
  },
} as const;
export type GetParams = FromSchema<typeof getParamsSchema>;

export const putParamsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['image'],
  properties: {
    image: { type: 'string', minLength: 1 },
    additional_tags: {
      oneOf: [
        { type: 'array', items: tag },
        { type: 'string', minLength: 1 },
      ],
    },
    /** registry-image: push under this tag instead of source.tag. */
    version: { type: 'string', minLength: 1 },
    /** registry-image: also move 1.2 and 1 (and latest) to a newer `version`; refused (one line) when true. */
    bump_aliases: { type: 'boolean' },
    format: {
      enum: ['docker-archive', 'oci-layout', 'oci-archive', 'rootfs-tar', 'rootfs-dir', 'concourse-rootfs', 'resource-bundle', 'registry-image'],
    },
  },
} as const;
export type PutParams = FromSchema<typeof putParamsSchema>;

export const checkRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['source'],
  properties: { source: sourceSchema, version: { anyOf: [versionSchema, { type: 'null' }] } },
} as const;
export type CheckRequest = FromSchema<typeof checkRequestSchema>;

export const inRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['source', 'version'],
  properties: { source: sourceSchema, version: versionSchema, params: { anyOf: [getParamsSchema, { type: 'null' }] } },
} as const;
export type InRequest = FromSchema<typeof inRequestSchema>;

export const outRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['source', 'params'],
  properties: { source: sourceSchema, params: putParamsSchema },
} as const;
export type OutRequest = FromSchema<typeof outRequestSchema>;

/** One `metadata` entry Concourse shows beside a version. */
export interface MetadataField {
  name: string;
  value: string;
}

// The resource's own Ajv: like image/validate.ts (strict, no coercion, nothing removed) plus
// `discriminator`, so a bad `store` is reported against the branch its `type` names, not as
// "must match exactly one schema in oneOf".
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, discriminator: true, verbose: true });

/** Validates a parsed payload; throws `invalid payload: <path>: <problem>`, every problem (at most MAX_PROBLEMS) joined by `; `. */
export type PayloadValidator<T> = (data: unknown) => T;

/** Compiled on first use: each script validates one kind of payload, not all three. */
export function compilePayload<T>(schema: Schema): PayloadValidator<T> {
  let check: ValidateFunction | undefined;
  return (data) => {
    check ??= ajv.compile(schema);
    if (check(data)) return data as T;
    throw new Error(`invalid payload: ${describePayloadErrors(check.errors ?? [])}`);
  };
}

export const validateCheckRequest = compilePayload<CheckRequest>(checkRequestSchema);
export const validateInRequest = compilePayload<InRequest>(inRequestSchema);
export const validateOutRequest = compilePayload<OutRequest>(outRequestSchema);

/** A payload with more problems than this is reported with its first ones and a count. */
export const MAX_PROBLEMS = 8;

/**
 * Every problem of a failed validation on one line (Concourse shows a step's last lines; a
 * list joined by `; ` survives being shown as one), deduplicated, at most MAX_PROBLEMS. The
 * errors of one anyOf/oneOf are grouped and reported as that value's one problem.
 */
export function describePayloadErrors(errors: ErrorObject[]): string {
  // Group by the instance path of the value at fault; an anyOf's branch errors sit below or at
  // the anyOf's own path, so group them under it.
  const unions = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf').map((e) => e.instancePath);
  const groups = new Map<string, ErrorObject[]>();
  for (const error of errors) {
    const union = unions.filter((path) => error.instancePath === path || error.instancePath.startsWith(`${path}/`)).sort((a, b) => a.length - b.length)[0];
    const key = union ?? `${error.instancePath}#${error.keyword}#${JSON.stringify(error.params)}`;
    groups.set(key, [...(groups.get(key) ?? []), error]);
  }
  // A store without `type` fails `required` and the discriminator alike: one problem.
  const requiredAt = new Set(errors.filter((e) => e.keyword === 'required').map((e) => e.instancePath));
  // Likewise a store whose `type` is wrong fails its enum and the discriminator.
  const others = errors.filter((e) => e.keyword !== 'discriminator');
  const explained = (path: string): boolean => requiredAt.has(path) || others.some((e) => e.instancePath.startsWith(`${path}/`));
  for (const [key, group] of groups) if (group.every((e) => e.keyword === 'discriminator' && explained(e.instancePath))) groups.delete(key);
  const lines = [...new Set([...groups.values()].map((group) => describePayloadError(group)))];
  if (lines.length <= MAX_PROBLEMS) return lines.join('; ');
  return `${lines.slice(0, MAX_PROBLEMS).join('; ')}; and ${lines.length - MAX_PROBLEMS} more problems`;
}

/** One line for one problem: the JSON path of the bad value and what is wrong with it. */
export function describePayloadError(errors: ErrorObject[]): string {
  // anyOf/oneOf report their branches' errors first and their own last; the branch that fits the
  // value's type says the most (`version: {}` → missing digest, rather than "must be null").
  const error = pickError(errors);
  if (!error) return 'does not match its schema';
  const path = error.instancePath;
  if (error.keyword === 'required') return `${path === '' ? '' : `${path}: `}missing required key "${String(error.params['missingProperty'])}"`;
  if (error.keyword === 'enum') return `${path} must be one of ${(error.params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  if (error.keyword === 'additionalProperties') {
    // registry-image keys cartorio refuses are accepted by the schema, but are no advice.
    const refused: Record<string, unknown> = path === '/source' ? REFUSED_SOURCE_KEYS : path === '/source/store' ? REFUSED_S3_KEYS : {};
    const allowed = Object.keys((error.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties ?? {}).filter((key) => !(key in refused));
    return `${path === '' ? '' : `${path}: `}unknown key "${String(error.params['additionalProperty'])}" (allowed: ${allowed.join(', ')})`;
  }
  if (error.keyword === 'pattern') return `${path} ${JSON.stringify(valueAt(error))} is not valid: ${patternHint(path)}`;
  return describeAjvError(error);
}

function pickError(errors: ErrorObject[]): ErrorObject | undefined {
  const specific = errors.filter((e) => !['anyOf', 'oneOf'].includes(e.keyword) && !(e.keyword === 'type' && e.params['type'] === 'null'));
  return specific.find((e) => e.keyword !== 'type') ?? specific[0] ?? errors[0];
}

function valueAt(error: ErrorObject): unknown {
  return (error as ErrorObject & { data?: unknown }).data;
}

function patternHint(path: string): string {
  if (path.endsWith('/digest')) return 'expected sha256:<64 hex digits>';
  if (path.includes('/platform')) return 'expected os/arch or os/arch/variant, e.g. linux/amd64';
  if (path.endsWith('/store/bucket')) return 'a bucket name is 3–63 lower-case letters, digits, dots and hyphens';
  if (path.endsWith('/store/prefix')) return 'a prefix is a/b/c, with no leading, trailing or doubled slash';
  return 'a tag is letters, digits, _ . -, at most 128, not starting with . or -';
}
