import { MediaType } from './media-types.js';
import type { Platform } from './platform.js';

/** What a user can set on an image built from a rootfs (flags, metadata.json). */
export interface ImageSettings {
  env?: string[];
  entrypoint?: string[];
  cmd?: string[];
  user?: string;
  workdir?: string;
  labels?: Record<string, string>;
}

export interface ConfigInput {
  platform: Platform;
  settings: ImageSettings;
  /** sha256 of each layer's uncompressed tar, in order. */
  diffIds: string[];
  /** RFC 3339; fixed by default so the same rootfs gives the same digest. */
  created: string;
  /** Says where the layer came from, shown by `docker history`. */
  createdBy: string;
}

/**
 * Builds an OCI image config (image-spec config.md) for a rootfs image. Keys are written in a
 * fixed order, so the same input always serialises to the same bytes and digest.
 */
export function buildImageConfig(input: ConfigInput): Buffer {
  const { settings, platform } = input;
  const config: Record<string, unknown> = {};
  if (settings.user !== undefined && settings.user !== '') config['User'] = settings.user;
  if (settings.env !== undefined && settings.env.length > 0) config['Env'] = settings.env;
  if (settings.entrypoint !== undefined && settings.entrypoint.length > 0) config['Entrypoint'] = settings.entrypoint;
  if (settings.cmd !== undefined && settings.cmd.length > 0) config['Cmd'] = settings.cmd;
  if (settings.workdir !== undefined && settings.workdir !== '') config['WorkingDir'] = settings.workdir;
  if (settings.labels !== undefined && Object.keys(settings.labels).length > 0) config['Labels'] = sortKeys(settings.labels);
  const document = {
    created: input.created,
    architecture: platform.architecture,
    ...(platform.variant !== undefined && { variant: platform.variant }),
    os: platform.os,
    config,
    rootfs: { type: 'layers', diff_ids: input.diffIds },
    history: input.diffIds.map(() => ({ created: input.created, created_by: input.createdBy })),
  };
  return Buffer.from(JSON.stringify(document));
}

/** Builds an OCI image manifest for one config and its layers; bytes are deterministic. */
export function buildImageManifest(config: { digest: string; size: number }, layers: { mediaType: string; digest: string; size: number }[], annotations?: Record<string, string>): Buffer {
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: config.digest, size: config.size },
    layers: layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
    ...(annotations !== undefined && Object.keys(annotations).length > 0 && { annotations: sortKeys(annotations) }),
  };
  return Buffer.from(JSON.stringify(manifest));
}

/** The creation time for built images: $SOURCE_DATE_EPOCH when set, else the Unix epoch. */
export function defaultCreated(sourceDateEpoch: string | undefined): string {
  const seconds = sourceDateEpoch !== undefined && /^\d+$/.test(sourceDateEpoch) ? Number(sourceDateEpoch) : 0;
  return new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');
}

function sortKeys(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
