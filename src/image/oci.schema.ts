import type { FromSchema } from 'json-schema-to-ts';

/**
 * JSON schemas of the OCI image spec documents cartorio reads, and their types.
 * Unknown fields are allowed where the spec allows extensions; known fields are checked.
 */
const digest = { type: 'string', pattern: '^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$', maxLength: 256 } as const;
const stringMap = { type: 'object', additionalProperties: { type: 'string' } } as const;

export const platformSchema = {
  type: 'object',
  required: ['architecture', 'os'],
  properties: {
    architecture: { type: 'string' },
    os: { type: 'string' },
    'os.version': { type: 'string' },
    'os.features': { type: 'array', items: { type: 'string' } },
    variant: { type: 'string' },
  },
} as const;

export const descriptorSchema = {
  type: 'object',
  required: ['mediaType', 'digest', 'size'],
  properties: {
    mediaType: { type: 'string', maxLength: 255 },
    digest,
    size: { type: 'integer', minimum: 0 },
    urls: { type: 'array', items: { type: 'string' } },
    annotations: stringMap,
    platform: platformSchema,
    artifactType: { type: 'string' },
  },
} as const;
export type Descriptor = FromSchema<typeof descriptorSchema>;

export const imageManifestSchema = {
  type: 'object',
  required: ['schemaVersion', 'config', 'layers'],
  properties: {
    schemaVersion: { const: 2 },
    mediaType: { type: 'string' },
    artifactType: { type: 'string' },
    config: descriptorSchema,
    layers: { type: 'array', items: descriptorSchema, maxItems: 4096 },
    subject: descriptorSchema,
    annotations: stringMap,
  },
} as const;
export type ImageManifest = FromSchema<typeof imageManifestSchema>;

/**
 * The largest index.json a store or an OCI layout may hold; a bigger file is refused before it is
 * read (store/layout.ts). Room for ~250 000 tags as `cartorio load` writes them (~270 bytes each).
 */
export const MAX_INDEX_BYTES = 64 * 1024 * 1024;
/** The shortest descriptor the schema accepts: its three required keys, with their shortest values. */
export const SMALLEST_DESCRIPTOR_JSON = '{"mediaType":"","digest":"a:b","size":0}';
/**
 * The most entries an index may list: one more entry of the smallest kind than this cannot fit in
 * MAX_INDEX_BYTES, so the count never refuses a file the byte limit let through, and the byte
 * limit, checked with a stat before any read or parse, is the one that binds.
 */
export const MAX_INDEX_ENTRIES = Math.ceil(MAX_INDEX_BYTES / (SMALLEST_DESCRIPTOR_JSON.length + 1));

export const imageIndexSchema = {
  type: 'object',
  required: ['schemaVersion', 'manifests'],
  properties: {
    schemaVersion: { const: 2 },
    mediaType: { type: 'string' },
    artifactType: { type: 'string' },
    manifests: { type: 'array', items: descriptorSchema, maxItems: MAX_INDEX_ENTRIES },
    subject: descriptorSchema,
    annotations: stringMap,
  },
} as const;
export type ImageIndex = FromSchema<typeof imageIndexSchema>;

/** The `oci-layout` file of an OCI image layout. */
export const ociLayoutSchema = {
  type: 'object',
  required: ['imageLayoutVersion'],
  properties: { imageLayoutVersion: { type: 'string' } },
} as const;

/** The parts of an image config cartorio reads (image-spec config.md); the rest is kept as is. */
export const imageConfigSchema = {
  type: 'object',
  required: ['architecture', 'os', 'rootfs'],
  properties: {
    architecture: { type: 'string' },
    os: { type: 'string' },
    variant: { type: 'string' },
    created: { type: 'string' },
    config: {
      type: 'object',
      properties: {
        User: { type: 'string' },
        Env: { type: ['array', 'null'], items: { type: 'string' } },
        Entrypoint: { type: ['array', 'null'], items: { type: 'string' } },
        Cmd: { type: ['array', 'null'], items: { type: 'string' } },
        WorkingDir: { type: 'string' },
        Labels: { type: ['object', 'null'], additionalProperties: { type: 'string' } },
      },
    },
    rootfs: {
      type: 'object',
      required: ['type', 'diff_ids'],
      properties: { type: { const: 'layers' }, diff_ids: { type: 'array', items: digest } },
    },
    history: { type: 'array', items: { type: 'object' } },
  },
} as const;
export type ImageConfig = FromSchema<typeof imageConfigSchema>;
