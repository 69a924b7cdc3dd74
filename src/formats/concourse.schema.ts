import type { FromSchema } from 'json-schema-to-ts';

/**
 * `metadata.json` of a Concourse rootfs image (written by registry-image `format: rootfs` and
 * read by Concourse's worker): env and user, and since Concourse 8 entrypoint and cmd.
 * Unknown keys are tolerated (newer Concourse versions may add some); known ones are typed.
 */
export const rootfsMetadataSchema = {
  type: 'object',
  properties: {
    env: { type: ['array', 'null'], items: { type: 'string' }, maxItems: 10000 },
    user: { type: 'string' },
    entrypoint: { type: ['array', 'null'], items: { type: 'string' } },
    cmd: { type: ['array', 'null'], items: { type: 'string' } },
  },
} as const;
export type RootfsMetadata = FromSchema<typeof rootfsMetadataSchema>;

/** `resource_metadata.json` of a Concourse resource-type bundle (concourse/resource-types). */
export const resourceMetadataSchema = {
  type: 'object',
  required: ['type'],
  properties: {
    type: { type: 'string', minLength: 1 },
    version: { type: 'string' },
    privileged: { type: 'boolean' },
    unique_version_history: { type: 'boolean' },
  },
} as const;
export type ResourceMetadata = FromSchema<typeof resourceMetadataSchema>;
