import { createHash } from 'node:crypto';
import { fstatSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { posix, resolve } from 'node:path';
import { isSha256Digest, sha256Digest } from '../image/digest.js';
import { parseManifest, subjectOf } from '../image/manifest.js';
import { MediaType, isManifestMediaType } from '../image/media-types.js';
import type { Descriptor } from '../image/oci.schema.js';
import { normalizeRepositoryName } from '../image/reference.js';
import type { BlobLocation, ImageSource, SourceLog } from '../store/image-source.js';
import { BuiltSnapshot, referrerDescriptor, type RepositorySnapshot, type StoredManifest } from '../store/snapshot.js';
import { buildLegacyImage, inflatedDigest, nameFromDockerManifest, parseDockerManifest } from './docker-manifest.js';
import { type FileIdentity, describeIdentity, identityOf, rewritten } from './file-identity.js';
import { LoadError } from './load-error.js';
import { MAX_INDEX_BYTES, imagesFromIndex, parseLayoutIndex } from './oci-index.js';
import { readTarHeaders, type TarEntry } from './tar-headers.js';
import type { PendingImage } from './types.js';

/** Manifests and configs are read and hashed at start; none real comes near this. */
const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;
const MAX_LINK_HOPS = 16;
const BLOB_PATH = /^blobs\/sha256\/([a-f0-9]{64})$/;
/** go-containerregistry's `tarball` (registry-image's image.tar) names a layer by its (compressed) digest. */
const LAYER_NAMED_BY_DIGEST = /^(?:blobs\/sha256\/)?([a-f0-9]{64})(?:\.tar\.gz|\.tgz)?$/;

/**
 * An archive opened to be served: kept open, so a file replaced by rename keeps serving its old
 * bytes. A file rewritten in place is another matter: the handle sees the new bytes, so its
 * identity (size, mtime, ctime of the handle) is checked on every blob request (one fstat, ~1 µs)
 * and before a download's last chunk; once it changes, every proof of the file is
 * dropped and its blobs are hashed again as they stream (`revision`).
 */
interface OpenArchive {
  argument: string;
  path: string;
  handle: FileHandle;
  size: number;
  /** What fstat said when last checked. */
  identity: FileIdentity;
  /** Counts the changes seen; a proof stands only if it did not move while the bytes were read. */
  revision: number;
  /** Every location in this file, to drop their proofs on a change. */
  locations: BlobLocation[];
  /** Changed in place at least once since it was opened (for /healthz; logged once). */
  changed: boolean;
  /** Told of the first change (the source's log). */
  onChange: (archive: OpenArchive, was: FileIdentity) => void;
}

/** Everything served from the archives, built at start (and again on reload), never changed after. */
interface Served {
  archives: OpenArchive[];
  names: readonly string[];
  snapshots: Map<string, BuiltSnapshot>;
  /** Where each blob is; several places when archives share it: a refused one gives way to the next. */
  locations: Map<string, BlobLocation[]>;
  /** Gzip legacy layers whose compressed digest is only claimed by their file name: their diff_id, to check with --verify. */
  diffIds: Map<BlobLocation, string>;
  /** Device, inode, size and mtime of every archive as opened: which bytes these are. */
  identity: string;
}

/** One image found in an archive, named, with what it references. */
interface FoundImage {
  archive: string;
  repository: string;
  tags: string[];
  descriptor: Descriptor;
}

/** Collects an archive's manifests and blob locations as its images are walked. */
interface Collected {
  manifests: Map<string, StoredManifest>;
  locations: Map<string, BlobLocation[]>;
  diffIds: Map<BlobLocation, string>;
}

// A place holding `digest`; a proven one goes first, the same entry is not added twice.
function addLocation(collected: Collected, digest: string, location: BlobLocation): void {
  const list = collected.locations.get(digest) ?? [];
  if (list.some((known) => known.path === location.path && known.offset === location.offset)) return;
  if (location.proven) list.unshift(location);
  else list.push(location);
  collected.locations.set(digest, list);
}

/**
 * Uncompressed image archives served in place (`cartorio serve [NAME=]FILE.tar…`): legacy and
 * Docker 25+ `docker save`, skopeo `docker-archive:`, OCI archives. Start-up reads the tar headers
 * and the small JSON documents (manifest.json, index.json, manifests, configs), hashing those;
 * layers are never read to start. Each image gets the name and digest `load` would give it
 * (legacy manifests are built by the same `buildLegacyImage`). A layer whose digest the archive
 * only claims (a diff_id, a file name) is a location with `proven: false`: the server hashes it
 * as it streams. Repositories of all archives are merged; a tag given to two images is refused.
 */
/** How far `--verify` got: blobs checked of the total, and what failed. */
export interface VerificationStatus {
  state: 'running' | 'done';
  checked: number;
  total: number;
  failed: string[];
}

export class ArchiveSource implements ImageSource {
  readonly #arguments: string[];
  #served: Served;
  #verification: VerificationStatus | undefined;
  #log: SourceLog | undefined;

  private constructor(args: string[], served: Served) {
    this.#arguments = args;
    this.#served = this.#watch(served);
  }

  logTo(log: SourceLog): void {
    this.#log = log;
  }

  /** Opens and indexes every `[NAME=]FILE` argument; throws a LoadError naming the file on any problem. */
  static async open(args: string[]): Promise<ArchiveSource> {
    return new ArchiveSource(args, await readArchives(args));
  }

  get description(): string {
    return this.#served.archives.map((archive) => archive.path).join(', ');
  }

  /** The archive files served, for logs. */
  get paths(): string[] {
    return this.#served.archives.map((archive) => archive.path);
  }

  /**
   * Reads the archives given at start again (SIGHUP): files replaced since are served from now
   * on. On any problem the old archives stay served and the error is thrown. Old handles are closed
   * after `grace` ms, so downloads that started before keep their bytes.
   */
  async reload(grace = 600_000): Promise<void> {
    const next = await readArchives(this.#arguments);
    const old = this.#served;
    this.#served = this.#watch(next);
    this.#verification = undefined;
    setTimeout(() => void closeAll(old.archives), grace).unref();
  }

  async close(): Promise<void> {
    await closeAll(this.#served.archives);
  }

  async repositoryNames(): Promise<readonly string[]> {
    return this.#served.names;
  }

  async repository(name: string): Promise<RepositorySnapshot | undefined> {
    return this.#served.snapshots.get(name);
  }

  async blob(name: string, digest: string): Promise<BlobLocation | undefined> {
    const { snapshots, locations } = this.#served;
    if (!snapshots.get(name)?.blobs.has(digest)) return undefined;
    const list = locations.get(digest);
    return list?.find((location) => location.refused === undefined) ?? list?.[0];
  }

  /** False when an archive was truncated under the server (its bytes are no longer all there). */
  async available(): Promise<boolean> {
    const sizes = await Promise.all(this.#served.archives.map((archive) => archive.handle.stat().then((info) => info.size >= archive.size, () => false)));
    return sizes.every(Boolean);
  }

  /** Counts and states only (/healthz is public); which files, entries and digests is in the log. */
  health(): Record<string, unknown> | undefined {
    const { archives, locations } = this.#served;
    const changed = archives.filter((archive) => archive.changed).length;
    let refused = 0;
    for (const list of locations.values()) refused += list.filter((location) => location.refused !== undefined).length;
    const verification = this.#verification;
    return {
      ...((changed > 0 || refused > 0) && { degraded: true }),
      archives: { served: archives.length, changedInPlace: changed },
      refusedBlobs: refused,
      ...(verification && { verification: { ...verification, failed: verification.failed.length } }),
    };
  }

  /**
   * What identifies the bytes served, file by file (device, inode, size, mtime of each open file):
   * another process serving the same arguments serves the same bytes only if its identity is equal.
   */
  get identity(): string {
    return this.#served.identity;
  }

  /** The identity of the files `location` is in if it is served now; undefined for a location of files read before a reload. */
  identityOf(digest: string, location: BlobLocation): string | undefined {
    return this.#served.locations.get(digest)?.includes(location) ? this.#served.identity : undefined;
  }

  /** A copy of how far `verify` got, to pass to the other processes serving the same archives. */
  verificationStatus(): VerificationStatus | undefined {
    const status = this.#verification;
    return status && { ...status, failed: [...status.failed] };
  }

  /**
   * Applies what `verify` found in another process serving the same archives (one process hashes,
   * every process refuses what failed), or found while serving a blob: the blob at `path` and
   * `offset` is proven, or refused for `problem`; `status`, from --verify, is that process's
   * progress. Ignored unless `identity` is this source's: the verdict is about these very files.
   */
  adoptVerdict(identity: string, digest: string, path: string, offset: number, problem: string | undefined, status?: VerificationStatus): void {
    // Reached about other files (sent before one side read the archives again): about nothing here.
    if (identity !== this.#served.identity) return;
    const location = this.#served.locations.get(digest)?.find((each) => each.path === path && each.offset === offset);
    if (location !== undefined) {
      if (problem !== undefined) location.refused ??= problem;
      else if (!this.#changedInPlace(location)) location.proven = true;
    }
    if (status !== undefined) this.#verification = status;
  }

  /**
   * Hashes every blob not yet proven (`--verify`), `hash` doing the work (worker threads), while
   * the server already serves. Mismatches are refused from then on. Resolves with what failed.
   */
  async verify(hash: (location: BlobLocation) => Promise<string>, log: (location: BlobLocation, digest: string, problem?: string) => void): Promise<string[]> {
    const served = this.#served;
    const pending = [...served.locations].flatMap(([digest, list]) => list.map((location) => [digest, location] as const)).filter(([, location]) => !location.proven && location.refused === undefined);
    const status: VerificationStatus = { state: 'running', checked: 0, total: pending.length, failed: [] };
    this.#verification = status;
    await Promise.all(pending.map(async ([digest, location]) => {
      let problem: string | undefined;
      const revision = location.revision?.();
      try {
        const found = await hash(location);
        if (found !== digest) problem = `has digest ${found}, not ${digest}`;
        const diffId = served.diffIds.get(location);
        if (problem === undefined && diffId !== undefined) {
          const inflated = await inflatedDigest(location.path, location.origin, location.path, location.offset, location.size, location.handle?.fd);
          if (inflated !== diffId) problem = `inflates to ${inflated}, not its diff_id ${diffId}`;
        }
      } catch (error) {
        problem = (error as Error).message;
      }
      if (problem === undefined) {
        // Bytes read while the file changed prove nothing: they are hashed as they stream instead.
        if (location.revision?.() === revision) location.proven = true;
      } else {
        location.refused ??= problem;
        status.failed.push(`${location.origin} (${digest}): ${problem}`);
      }
      status.checked++;
      log(location, digest, problem);
    }));
    status.state = 'done';
    return status.failed;
  }

  // Another process's proof may be of bytes since rewritten in place (it reached us over IPC after
  // the change): once a file has changed, only this process's own hashing proves its blobs.
  #changedInPlace(location: BlobLocation): boolean {
    location.revision?.();
    return this.#served.archives.some((archive) => archive.changed && archive.locations.includes(location));
  }

  // The archives' first change in place goes to the log, with the file's name (never to /healthz).
  #watch(served: Served): Served {
    for (const archive of served.archives) {
      archive.onChange = (changed, was) => {
        this.#log?.({ archive: changed.path, was: describeIdentity(was), now: describeIdentity(changed.identity) }, 'archive changed in place while served: its blobs are hashed again as they stream and refused where they no longer match; replace an archive by rename, then SIGHUP');
      };
    }
    return served;
  }
}

// One fstat of the open handle, synchronous (~1 µs: an inode's attributes, no read); on a change every
// proof of the file is dropped (see OpenArchive).
function revise(archive: OpenArchive): number {
  const identity = identityOf(fstatSync(archive.handle.fd, { bigint: true }));
  const was = archive.identity;
  archive.identity = identity;
  if (rewritten(was, identity)) {
    archive.revision++;
    for (const location of archive.locations) location.proven = false;
    if (!archive.changed) {
      archive.changed = true;
      archive.onChange(archive, was);
    }
  }
  return archive.revision;
}

async function closeAll(archives: OpenArchive[]): Promise<void> {
  await Promise.allSettled(archives.map((archive) => archive.handle.close()));
}

async function readArchives(args: string[]): Promise<Served> {
  const archives: OpenArchive[] = [];
  try {
    const collected: Collected = { manifests: new Map(), locations: new Map(), diffIds: new Map() };
    const images: FoundImage[] = [];
    for (const argument of args) {
      const archive = await openArchive(argument);
      archives.push(archive);
      images.push(...(await readArchive(archive, collected)));
    }
    const infos = await Promise.all(archives.map((archive) => archive.handle.stat()));
    const identity = infos.map((info) => `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}`).join(' ');
    return { archives, ...snapshotsOf(images, collected), locations: collected.locations, diffIds: collected.diffIds, identity };
  } catch (error) {
    await closeAll(archives);
    throw error;
  }
}

async function openArchive(argument: string): Promise<OpenArchive> {
  const equals = argument.indexOf('=');
  const path = resolve(equals > 0 ? argument.slice(equals + 1) : argument);
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw new LoadError(path, (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : `cannot be opened: ${(error as Error).message}`, 'check the path');
  }
  try {
    const info = await handle.stat({ bigint: true });
    if (!info.isFile()) throw new LoadError(path, 'is not a file', 'serve an OCI layout directory as DIR, a store with --store DIR');
    const head = Buffer.alloc(4);
    await handle.read(head, 0, 4, 0);
    if (head[0] === 0x1f && head[1] === 0x8b) throw compressed(path, 'gzip', `gunzip -k ${path}`);
    if (head.readUInt32LE(0) === 0xfd2fb528) throw compressed(path, 'zstd', `zstd -d ${path}`);
    return { argument, path, handle, size: Number(info.size), identity: identityOf(info), revision: 0, locations: [], changed: false, onChange: () => undefined };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

function compressed(path: string, kind: string, decompress: string): LoadError {
  return new LoadError(path, `is ${kind}-compressed: a compressed tarball cannot be served in place (its layers are not at byte offsets)`, `load it (cartorio load --store DIR ${path}, then cartorio serve --store DIR) or decompress it first (${decompress})`);
}

/** One archive's images, named as `load` names them; its blobs go into `collected`. */
async function readArchive(archive: OpenArchive, collected: Collected): Promise<FoundImage[]> {
  const { path, handle } = archive;
  const entries = new Map<string, TarEntry>();
  for (const entry of await readTarHeaders(path, handle, archive.size)) entries.set(entry.path, entry);
  const file = (name: string): TarEntry | undefined => followLinks(path, entries, name.replace(/^(\.\/)+/, ''));
  const read = async (entry: TarEntry, what: string, limit = MAX_DOCUMENT_BYTES): Promise<Buffer> => {
    if (entry.size > limit) throw new LoadError(path, `${what} "${entry.path}" is ${entry.size} bytes, more than a real one (${limit})`);
    const bytes = Buffer.alloc(entry.size);
    const { bytesRead } = await handle.read(bytes, 0, entry.size, entry.dataOffset);
    if (bytesRead < entry.size) throw new LoadError(path, `is truncated inside "${entry.path}"`, 'copy the file again and check its size');
    return bytes;
  };
  const locate = (entry: TarEntry, proven: boolean): BlobLocation => {
    const location = { path, offset: entry.dataOffset, size: entry.size, proven, origin: `${path}: ${entry.path}`, handle, revision: () => revise(archive) };
    archive.locations.push(location);
    return location;
  };
  const given = nameGiven(archive.argument);
  const manifestJson = file('manifest.json');
  const indexJson = file('index.json');
  let pending: PendingImage[];
  if (indexJson && file('oci-layout')) {
    pending = imagesFromIndex(path, parseLayoutIndex(path, await read(indexJson, 'index.json', MAX_INDEX_BYTES), `${path}: index.json`));
    const walker = new OciWalk(path, file, read, locate, collected);
    if (manifestJson) {
      const entries = parseDockerManifest(path, await read(manifestJson, 'manifest.json'));
      const claimed = (name: string): string | undefined => BLOB_PATH.exec(name)?.[1]?.replace(/^/, 'sha256:');
      await nameFromDockerManifest(pending, entries, claimed, (digest) => walker.document(digest, MediaType.ociManifest));
    }
    for (const image of pending) await walker.visit(image.descriptor, 0);
  } else if (manifestJson) {
    pending = [];
    for (const entry of parseDockerManifest(path, await read(manifestJson, 'manifest.json'))) {
      pending.push(...(await legacyImage(path, entry, file, read, locate, collected)));
    }
  } else {
    throw new LoadError(path, 'is not an image archive: it has neither manifest.json (docker save) nor index.json + oci-layout (OCI archive)', 'a rootfs tarball must be loaded: cartorio load --name NAME FILE');
  }
  if (pending.length === 0) throw new LoadError(path, 'holds no images (an empty index or manifest list)');
  // As load's nameImages: NAME= wins over the archive's names; a lone image with no tag gets `latest`.
  return pending.map((image) => {
    const repository = given ?? image.repository;
    if (repository === undefined) throw new LoadError(path, 'holds an image with no name', `serve it under a name: NAME=${archive.argument}`);
    const tags = image.tags.length > 0 ? image.tags : pending.length === 1 ? ['latest'] : [];
    return { archive: path, repository, tags, descriptor: image.descriptor };
  });
}

function nameGiven(argument: string): string | undefined {
  const equals = argument.indexOf('=');
  if (equals <= 0) return undefined;
  const text = argument.slice(0, equals);
  const name = normalizeRepositoryName(text);
  if (name === undefined) throw new LoadError(argument, `"${text}" is not a repository name (lowercase letters, digits, . _ - and /)`);
  return name;
}

type ReadEntry = (entry: TarEntry, what: string, limit?: number) => Promise<Buffer>;
type Locate = (entry: TarEntry, proven: boolean) => BlobLocation;

// A legacy docker save image: config hashed here, layers located by their diff_id (only claimed:
// the server hashes them as they stream). A gzip layer's digest is its compressed bytes', which
// the archive claims only when the file is named by it (go-containerregistry's `<hex>.tar.gz`);
// otherwise it is hashed here, and inflated to check its diff_id, as `load` does.
async function legacyImage(path: string, entry: Parameters<typeof buildLegacyImage>[1], file: (name: string) => TarEntry | undefined, read: ReadEntry, locate: Locate, collected: Collected): Promise<PendingImage[]> {
  const { manifest, names } = await buildLegacyImage(path, entry, {
    config: async (name) => {
      const found = file(name);
      if (!found) return undefined;
      const bytes = await read(found, 'config');
      const digest = sha256Digest(bytes);
      addLocation(collected, digest, locate(found, true));
      return { digest, size: bytes.length, bytes };
    },
    layer: async (name, diffId) => {
      const found = file(name);
      if (!found) return undefined;
      if (!isSha256Digest(diffId)) throw new LoadError(path, `config of layer "${name}" gives diff_id "${diffId}", which is not a sha256 digest`);
      // Usually already read with the tar headers (the 50 × 200-layer case: no read per layer).
      const head = found.head ?? (await read({ ...found, size: Math.min(2, found.size) }, 'layer'));
      const gzip = head[0] === 0x1f && head[1] === 0x8b;
      let digest = diffId;
      let location: BlobLocation;
      if (!gzip) {
        location = locate(found, false);
      } else {
        const claimed = LAYER_NAMED_BY_DIGEST.exec(found.path)?.[1] ?? LAYER_NAMED_BY_DIGEST.exec(posix.basename(name))?.[1];
        location = locate(found, claimed === undefined);
        if (claimed !== undefined) {
          digest = `sha256:${claimed}`;
          collected.diffIds.set(location, diffId);
        } else {
          digest = await hashLocation(location);
          const inflated = await inflatedDigest(path, name, path, found.dataOffset, found.size, location.handle?.fd);
          if (inflated !== diffId) throw new LoadError(path, `layer "${name}" inflates to a tar with digest ${inflated} but the config says ${diffId}; the archive is corrupt`);
        }
      }
      addLocation(collected, digest, location);
      return { mediaType: gzip ? MediaType.ociLayerGzip : MediaType.ociLayer, digest, size: found.size };
    },
  });
  const digest = sha256Digest(manifest);
  collected.manifests.set(digest, { descriptor: { mediaType: MediaType.ociManifest, digest, size: manifest.length }, bytes: manifest });
  return names.map((name) => ({ ...name, descriptor: { mediaType: MediaType.ociManifest, digest, size: manifest.length } }));
}

async function hashLocation(location: BlobLocation): Promise<string> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  for (let done = 0; done < location.size;) {
    const { bytesRead } = await (location.handle as FileHandle).read(buffer, 0, Math.min(buffer.length, location.size - done), location.offset + done);
    if (bytesRead === 0) throw new LoadError(location.path, `is truncated inside "${location.origin}"`);
    hash.update(buffer.subarray(0, bytesRead));
    done += bytesRead;
  }
  return `sha256:${hash.digest('hex')}`;
}

/**
 * Walks an OCI archive's images from index.json as `load` checks them: every referenced blob must
 * be in the archive at its descriptor's size; manifests and configs are read and hashed (proven),
 * layers are located only (their digest claimed by their `blobs/sha256/<hex>` name).
 */
class OciWalk {
  constructor(
    readonly path: string,
    readonly file: (name: string) => TarEntry | undefined,
    readonly read: ReadEntry,
    readonly locate: Locate,
    readonly collected: Collected,
  ) {}

  /** The bytes of a manifest or config, checked against their digest. */
  async document(digest: string, mediaType: string): Promise<Buffer> {
    const entry = this.#entry(digest, mediaType);
    const bytes = await this.read(entry, mediaType);
    const found = sha256Digest(bytes);
    if (found !== digest) throw new LoadError(this.path, `blob "${entry.path}" has digest ${found}; the file is corrupt or was altered`);
    addLocation(this.collected, digest, this.locate(entry, true));
    return bytes;
  }

  async visit(descriptor: Descriptor, depth: number): Promise<void> {
    const { digest, mediaType } = descriptor;
    if (depth > 8) throw new LoadError(this.path, 'has manifests nested more than 8 levels deep');
    if (!isSha256Digest(digest)) throw new LoadError(this.path, `references unsupported or malformed digest "${digest}" (only sha256:<64 hex> is supported)`);
    const entry = this.#entry(digest, mediaType);
    if (entry.size !== descriptor.size) throw new LoadError(this.path, `${digest} is ${entry.size} bytes but its descriptor says ${descriptor.size}`);
    if (!isManifestMediaType(mediaType)) {
      addLocation(this.collected, digest, this.locate(entry, false));
      return;
    }
    if (this.collected.manifests.has(digest)) return;
    const bytes = await this.document(digest, mediaType);
    const parsed = parseManifest(bytes, mediaType, `${this.path}: manifest ${digest}`);
    this.collected.manifests.set(digest, { descriptor: { mediaType, digest, size: bytes.length }, bytes });
    if (parsed.kind === 'image' && parsed.manifest.config.size <= MAX_DOCUMENT_BYTES && isSha256Digest(parsed.manifest.config.digest)) {
      await this.document(parsed.manifest.config.digest, parsed.manifest.config.mediaType);
    }
    for (const child of parsed.children) await this.visit(child, depth + 1);
  }

  #entry(digest: string, mediaType: string): TarEntry {
    const entry = this.file(`blobs/sha256/${digest.slice('sha256:'.length)}`);
    if (!entry) throw new LoadError(this.path, `${mediaType} ${digest} is referenced but missing from the archive`, 'the archive is incomplete; save it again');
    return entry;
  }
}

// A symlink is relative to its own directory, a hard link to the archive root; neither may leave it.
function followLinks(path: string, entries: Map<string, TarEntry>, name: string): TarEntry | undefined {
  let current = entries.get(name);
  for (let hop = 0; hop < MAX_LINK_HOPS && current !== undefined; hop++) {
    if (current.type === 'file') return current;
    const base = current.type === 'symlink' ? posix.dirname(current.path) : '.';
    const target = current.linkname.startsWith('/') ? undefined : posix.normalize(posix.join(base, current.linkname));
    if (target === undefined || target.startsWith('..')) throw new LoadError(path, `link "${current.path}" points outside the archive ("${current.linkname}")`);
    current = entries.get(target.replace(/^\.\//, ''));
  }
  if (current !== undefined) throw new LoadError(path, `link "${name}" is part of a loop or a chain over ${MAX_LINK_HOPS} links`);
  return undefined;
}

// Every repository's snapshot, from the images of every archive; a tag given twice is refused.
function snapshotsOf(images: FoundImage[], collected: Collected): { names: readonly string[]; snapshots: Map<string, BuiltSnapshot> } {
  const snapshots = new Map<string, BuiltSnapshot>();
  const tagSource = new Map<string, string>();
  for (const image of images) {
    let snapshot = snapshots.get(image.repository);
    if (!snapshot) {
      snapshot = new BuiltSnapshot(image.repository);
      snapshots.set(image.repository, snapshot);
    }
    for (const tag of image.tags) {
      const before = snapshot.tagged.get(tag);
      if (before !== undefined && before !== image.descriptor.digest) {
        throw new LoadError(image.archive, `gives ${image.repository}:${tag} to ${image.descriptor.digest}, but ${tagSource.get(`${image.repository}:${tag}`) ?? 'another image'} gives it to ${before}`, 'serve one of them under another name: NAME=FILE');
      }
      snapshot.tagged.set(tag, image.descriptor.digest);
      tagSource.set(`${image.repository}:${tag}`, image.archive);
    }
    addReachable(snapshot, image.descriptor, collected, 0);
  }
  for (const snapshot of snapshots.values()) snapshot.tags = [...snapshot.tagged.keys()].sort();
  return { names: [...snapshots.keys()].sort(), snapshots };
}

function addReachable(snapshot: BuiltSnapshot, descriptor: Descriptor, collected: Collected, depth: number): void {
  const { digest } = descriptor;
  if (snapshot.blobs.has(digest) || depth > 8) return;
  const stored = collected.manifests.get(digest);
  snapshot.blobs.set(digest, stored ? stored.bytes.length : descriptor.size);
  if (!stored) return;
  snapshot.manifests.set(digest, stored);
  const parsed = parseManifest(stored.bytes, stored.descriptor.mediaType, digest);
  const subject = subjectOf(parsed);
  if (subject) {
    const list = snapshot.referrers.get(subject.digest) ?? [];
    list.push(referrerDescriptor(descriptor, stored.bytes.length, parsed));
    snapshot.referrers.set(subject.digest, list);
  }
  for (const child of parsed.children) addReachable(snapshot, child, collected, depth + 1);
}
