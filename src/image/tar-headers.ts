import { createRequire } from 'node:module';
import type { Header } from 'tar-stream';

/** What `encode` takes: tar-stream's header fields, all of them filled in (pack.entry's defaults applied). */
export interface EncodableHeader {
  name: string;
  type: Header['type'] | 'pax-header';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: Date;
  linkname?: string | undefined;
  uname?: string | undefined;
  gname?: string | undefined;
  devmajor?: number | undefined;
  devminor?: number | undefined;
}

/** tar-stream's header codec (`headers.js`), the one its `pack()` encodes every entry with. */
export interface TarHeaderCodec {
  /** A 512-byte ustar header, or null when the name or link target needs a pax header. */
  encode(header: EncodableHeader): Buffer | null;
  /** The body of a pax extended header carrying `path` and `linkpath`. */
  encodePax(fields: { name: string; linkname?: string | undefined }): Buffer;
}

/**
 * tar-stream's package.json exports only its index (pack, extract), not the header codec that
 * pack() uses; it is loaded here by path from the package's own directory, found through the one
 * other subpath it exports (`./package`). The one-file bundles (assets/build-bundle.mjs) have no
 * node_modules at run time: esbuild swaps this module for a static import of the same file.
 */
export const tarHeaders = createRequire(createRequire(import.meta.url).resolve('tar-stream/package'))('./headers.js') as TarHeaderCodec;
