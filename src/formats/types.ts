import type { ImageSettings } from '../image/config.js';
import type { Descriptor } from '../image/oci.schema.js';
import type { Platform } from '../image/platform.js';
import type { Ingest } from '../store/ingest.js';

/** Every input format cartorio loads (DESIGN §2). */
export const FORMATS = ['docker-archive', 'oci-layout', 'oci-archive', 'rootfs-tar', 'rootfs-dir', 'concourse-rootfs', 'resource-bundle', 'registry-image'] as const;
export type FormatName = (typeof FORMATS)[number];

export interface LoadOptions {
  /** Skip detection. */
  format?: FormatName;
  /** Repository for every image of the input, instead of the names it carries. */
  name?: string;
  /** Tags for every image of the input, instead of the tags it carries. */
  tags?: string[];
  /** Config for images built from a rootfs; flags win over metadata.json. */
  settings?: ImageSettings;
  platform?: Platform;
  /** Layer compression for images packed from a directory (default gzip; zstd needs Node.js 22.15+). */
  compression?: 'none' | 'gzip' | 'zstd';
  /** zlib level (1–9) of a gzip layer packed from a directory (default 6). */
  gzipLevel?: number;
  /** Fixed mtime for every packed entry; default: each file's own, clamped by SOURCE_DATE_EPOCH. */
  mtime?: Date;
  /** `created` of built configs (default: SOURCE_DATE_EPOCH or the Unix epoch). */
  created?: string;
  /** Called with the input size when known, then with byte counts as the input is read. */
  onStart?: (totalBytes: number | undefined) => void;
  onBytes?: (bytes: number) => void;
  /** Told what the load decided for the user that the input did not say (a mapped user id). */
  onNotice?: (message: string) => void;
  /** Each repository the load names ends holding exactly the tags it brings (`load --replace`). */
  replace?: boolean;
  /** False: index.json entries get no load time (a standalone layout from `convert` stays reproducible). */
  recordLoadTime?: boolean;
}

/** An image a loader found: its root descriptor, and the names the input gave it, if any. */
export interface PendingImage {
  repository?: string;
  tags: string[];
  descriptor: Descriptor;
}

/** A loader writes the input's blobs into the ingest and returns the images it holds. */
export type Loader = (input: string, ingest: Ingest, options: LoadOptions) => Promise<PendingImage[]>;
