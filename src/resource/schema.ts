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

export const sourceSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['repository', 'store'],
  properties: {
    repository: { type: 'string', minLength: 1 },
    /** Default `latest`. */
    tag,
    store: {
      type: 'object',
      required: ['type'],
      properties: { type: { enum: ['registry', 'file'] } },
      discriminator: { propertyName: 'type' },
      oneOf: [registryStoreSchema, fileStoreSchema],
    },
    platform: { type: 'string', pattern: '^[a-z0-9._-]+/[a-z0-9._-]+(/[a-z0-9._-]+)?$' },
    debug: { type: 'boolean' },
  },
} as const;
export type Source = FromSchema<typeof sourceSchema>;
export type StoreConfig = Source['store'];

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
    format: { enum: ['oci', 'rootfs'] },
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
const ajv = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true, discriminator: true, verbose: true });

/** Validates a parsed payload; throws `invalid payload: <path>: <problem>`. */
export type PayloadValidator<T> = (data: unknown) => T;

/** Compiled on first use: each script validates one kind of payload, not all three. */
export function compilePayload<T>(schema: Schema): PayloadValidator<T> {
  let check: ValidateFunction | undefined;
  return (data) => {
    check ??= ajv.compile(schema);
    if (check(data)) return data as T;
    throw new Error(`invalid payload: ${describePayloadError(check.errors ?? [])}`);
  };
}

export const validateCheckRequest = compilePayload<CheckRequest>(checkRequestSchema);
export const validateInRequest = compilePayload<InRequest>(inRequestSchema);
export const validateOutRequest = compilePayload<OutRequest>(outRequestSchema);

/** One line for a failed validation: the JSON path of the bad value and what is wrong with it. */
export function describePayloadError(errors: ErrorObject[]): string {
  // anyOf/oneOf report their branches' errors first and their own last; the branch that fits the
  // value's type says the most (`version: {}` → missing digest, rather than "must be null").
  const error = pickError(errors);
  if (!error) return 'does not match its schema';
  const path = error.instancePath;
  if (error.keyword === 'required') return `${path === '' ? '' : `${path}: `}missing required key "${String(error.params['missingProperty'])}"`;
  if (error.keyword === 'enum') return `${path} must be one of ${(error.params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
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
  if (path.endsWith('/platform')) return 'expected os/arch or os/arch/variant, e.g. linux/amd64';
  return 'a tag is letters, digits, _ . -, at most 128, not starting with . or -';
}
