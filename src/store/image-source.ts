import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { hostlessAliases, requestCandidates, requestedName } from '../image/reference.js';
import type { RepositorySnapshot } from './snapshot.js';

/**
 * Where a blob's bytes are: `size` bytes at `offset` in the file at `path`. `proven` is true when
 * these bytes were hashed against the digest before (a store blob, at ingest); false when the
 * digest is only claimed by the input (a layer inside a legacy archive served in place), so the
 * server must hash while it streams and never deliver the whole blob on a mismatch.
 */
export interface BlobLocation {
  path: string;
  offset: number;
  size: number;
  /** Set to true by whoever hashes the whole blob and finds it matches (the server, `--verify`). */
  proven: boolean;
  /** Names the bytes for logs: the archive and entry, or the blob file. */
  origin: string;
  /**
   * An open handle to read from instead of opening `path` (an archive served in place is opened
   * once, so a file replaced by rename keeps serving the old bytes). Owned by the source: never closed.
   */
  handle?: FileHandle;
  /** Set once the bytes were found not to match the digest: why. They are never sent again. */
  refused?: string;
  /**
   * For bytes in a file that can be rewritten in place (an archive served in place): stats the
   * open handle (one fstat, synchronous: ~1 µs, where a thread-pool round trip costs ~37 µs and
   * halved the rate of small blobs) and gives a number that changes whenever the file did (its
   * size, mtime or ctime). On a change the source has already dropped every proof of that file
   * (`proven` is false again), so its blobs are hashed as they stream. Whoever sets `proven` must
   * have seen the same number before reading the bytes and after: else they may be mixed.
   */
  revision?: () => number;
}

/** A log line's fields and message (the registry's logger, for what a source notices on its own). */
export type SourceLog = (details: Record<string, unknown>, message: string) => void;

/**
 * A blob kept in an object store (a bucket store): its bytes are fetched there. With `redirect`
 * the client is sent to a short-lived URL (Distribution's RedirectURL: the bytes never pass through
 * the server); without, the server streams them through (`--blob-redirect off`). Stored blobs were
 * hashed when loaded, as a store's files are.
 */
export interface RemoteBlob {
  kind: 'remote';
  size: number;
  /** Names the object for logs. */
  origin: string;
  /** A URL any client can GET without credentials, valid for a short while. */
  redirect?: () => Promise<string>;
  /** The bytes, or bytes `start`..`end` (inclusive); undefined when the object is gone. */
  open(range?: { start: number; end: number }): Promise<Readable | undefined>;
}

/**
 * What the registry reads (DESIGN §6): repository names → snapshots, and blobs by location.
 * Implemented by the store, by layout directories, and by archives served in place.
 */
export interface ImageSource {
  /** For banners, logs and errors: the store directory, or the files served. */
  readonly description: string;
  /**
   * Every repository name, sorted. Cheap to call on every request: an implementation returns the
   * same array object while nothing changed, so callers can cache what they derive from it.
   */
  repositoryNames(): Promise<readonly string[]>;
  /** The snapshot of exactly `name`, or undefined when this source has no such repository. */
  repository(name: string): Promise<RepositorySnapshot | undefined>;
  /** Where the bytes of `digest` are if repository `name` holds it (reachable from its index; for a store, still linked), else undefined. */
  blob(name: string, digest: string): Promise<BlobLocation | RemoteBlob | undefined>;
  /** False once what is served is gone (an unmounted store volume): /healthz reports it. */
  available(): Promise<boolean>;
  /**
   * What the source adds to /healthz, if anything: counts and states only, since /healthz is
   * public (never a path, entry or digest: those go to the log). `degraded: true` when it still
   * serves but not everything as it was (an archive changed in place, blobs refused).
   */
  health?(): Record<string, unknown> | undefined;
  /** Where to log what the source notices by itself (an archive changed under it). */
  logTo?(log: SourceLog): void;
}

/** How a requested path resolved: to one repository, to none, or to several (never a guess); or a request that names no registry it could be about. */
export type Resolution =
  | { kind: 'found'; name: string; source: ImageSource }
  | { kind: 'unknown' }
  | { kind: 'ambiguous'; names: string[] }
  | { kind: 'invalid'; problem: string };

interface NameTable {
  /** The arrays the table was built from, one per source, to tell when to rebuild. */
  from: (readonly string[])[];
  sorted: string[];
  owners: Map<string, ImageSource[]>;
  /** Host-less path → the names that hold it under some registry (`org/app` → `quay.io/org/app`). */
  aliases: Map<string, string[]>;
}

/**
 * Every source a server serves, behind the one naming rule (DESIGN §4): a request resolves to
 * exactly one repository or is refused. A name held by two sources is ambiguous, not shadowed.
 */
export class ServedImages {
  readonly sources: readonly ImageSource[];
  #table: NameTable | undefined;

  constructor(sources: ImageSource[]) {
    this.sources = sources;
  }

  get description(): string {
    return this.sources.map((source) => source.description).join(', ');
  }

  /** Every repository name of every source, sorted and unique (the catalog). */
  async repositoryNames(): Promise<readonly string[]> {
    return (await this.#names()).sorted;
  }

  /**
   * The one repository a request for `path` means, with `ns` the upstream registry containerd
   * names on mirrored requests. Tries `requestCandidates` in order; a request that names no
   * registry (neither `ns` nor a host first in the path) and matches none is looked up under every
   * registry, and several matches are ambiguous. A request that names a registry is answered by
   * that registry's repository (or a host-less one) or not at all.
   */
  async resolve(path: string, ns?: string): Promise<Resolution> {
    const asked = requestedName(path, ns);
    if ('problem' in asked) return { kind: 'invalid', problem: asked.problem };
    const table = await this.#names();
    const candidates = requestCandidates(path, ns);
    for (const candidate of candidates) {
      const owners = table.owners.get(candidate);
      if (owners !== undefined) return resolution(candidate, owners);
    }
    // A repository written by a tool that does not keep `.repositories` (an older cartorio, a
    // layout copied in by hand) is still found by its exact name.
    for (const candidate of candidates) {
      const holders: ImageSource[] = [];
      for (const source of this.sources) if (await source.repository(candidate)) holders.push(source);
      if (holders.length > 0) return resolution(candidate, holders);
    }
    if (asked.registry !== undefined) return { kind: 'unknown' };
    const held = table.aliases.get(path) ?? [];
    if (held.length > 1) return { kind: 'ambiguous', names: held };
    const only = held[0];
    return only === undefined ? { kind: 'unknown' } : resolution(only, table.owners.get(only) ?? []);
  }

  /** What the sources add to /healthz; `degraded` when any source is. */
  health(): Record<string, unknown> {
    const parts = this.sources.map((source) => source.health?.() ?? {});
    const merged = Object.assign({}, ...parts) as Record<string, unknown>;
    if (parts.some((part) => part.degraded === true)) merged.degraded = true;
    return merged;
  }

  /** True while every source is there. */
  async available(): Promise<boolean> {
    return (await Promise.all(this.sources.map((source) => source.available()))).every(Boolean);
  }

  async #names(): Promise<NameTable> {
    const lists = await Promise.all(this.sources.map((source) => source.repositoryNames()));
    const table = this.#table;
    if (table && table.from.length === lists.length && table.from.every((list, i) => list === lists[i])) return table;
    this.#table = buildTable(this.sources, lists);
    return this.#table;
  }
}

// One name held by one source is found; held by several, it is ambiguous (never shadowed).
function resolution(name: string, holders: ImageSource[]): Resolution {
  const only = holders[0];
  if (holders.length === 1 && only) return { kind: 'found', name, source: only };
  return holders.length === 0 ? { kind: 'unknown' } : { kind: 'ambiguous', names: holders.map((holder) => `${name} (${holder.description})`) };
}

function buildTable(sources: readonly ImageSource[], lists: (readonly string[])[]): NameTable {
  const owners = new Map<string, ImageSource[]>();
  lists.forEach((list, i) => {
    const source = sources[i] as ImageSource;
    for (const name of list) {
      const known = owners.get(name);
      if (known) known.push(source);
      else owners.set(name, [source]);
    }
  });
  const aliases = new Map<string, string[]>();
  for (const name of owners.keys()) {
    for (const alias of hostlessAliases(name)) {
      const held = aliases.get(alias);
      if (held) held.push(name);
      else aliases.set(alias, [name]);
    }
  }
  const sorted = lists.length === 1 ? [...(lists[0] ?? [])] : [...owners.keys()].sort();
  return { from: lists, sorted, owners, aliases };
}
