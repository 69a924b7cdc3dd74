import { createReadStream } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, readdir, readlink, rm, stat, symlink, utimes } from 'node:fs/promises';
import { join, posix, relative } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract, type Header } from 'tar-stream';
import { compressionOf, inflating, inflationLimit, readHead, zstdProblem, type Compression } from '../formats/input-stream.js';
import { hardlinkProblem, normalizeEntryName, symlinkEscapes } from '../image/tar-paths.js';

/** OCI image-spec layer.md: a whiteout file hides `<name>` of the layers below. */
const WHITEOUT_PREFIX = '.wh.';
/** …and this one, in a directory, hides everything the layers below put there. */
const OPAQUE_WHITEOUT = '.wh..wh..opq';
const AUFS_META_PREFIX = '.wh..wh.';
const MAX_SYMLINK_HOPS = 40;

export interface ApplyOptions {
  /** Restore each entry's uid/gid (needs root; Concourse runs `get` as root). */
  preserveOwnership: boolean;
  /** Told about entries that cannot be recreated here (device nodes, FIFOs). */
  onSkip?: (path: string, why: string) => void;
}

/**
 * Applies image layers, in order, to a directory as a container runtime would (image-spec
 * layer.md "Applying Changesets"): whiteouts delete from lower layers, opaque whiteouts empty
 * a directory of lower-layer content, a new entry replaces an old one. Extraction is confined
 * to the directory: names are normalised and may not climb out, symlinks already on disk are
 * resolved inside the root (as in a chroot) when a later entry goes through them, a relative
 * symlink may not point above the root, and a hard link may only name an entry inside it.
 */
export class RootfsWriter {
  readonly #root: string;
  readonly #options: ApplyOptions;
  /** Directory attributes are set last (deepest first), so a read-only directory can still be filled. */
  readonly #directories = new Map<string, Header>();

  constructor(root: string, options: ApplyOptions) {
    this.#root = root;
    this.#options = options;
  }

  /** Applies one layer file (tar, tar+gzip, tar+zstd); `where` names it in errors. */
  async applyLayerFile(path: string, where: string): Promise<void> {
    const compression = compressionOf(await readHead(path, 4));
    const noZstd = compression === 'zstd' ? zstdProblem() : undefined;
    if (noZstd !== undefined) throw new Error(`${where}: cannot unpack a zstd layer: ${noZstd} (run the resource on Node.js 24, or get with format: oci)`);
    const source = createReadStream(path, { highWaterMark: 1024 * 1024 });
    await this.applyLayer(source, where, compression, (await stat(path)).size);
  }

  /**
   * Applies one layer tar stream, compressed as `compression` says. A gzip or zstd layer may
   * inflate to the same bound a load allows (formats/input-stream.ts), so a bomb cannot fill the disk.
   */
  async applyLayer(source: Readable, where: string, compression: Compression = 'none', compressedSize = 0): Promise<void> {
    const tar = extract();
    const stages = compression !== 'none' ? [source, ...inflating(compression, inflationLimit(compressedSize)), tar] : [source, tar];
    const feeding = pipeline(stages as unknown as [NodeJS.ReadableStream, NodeJS.WritableStream]);
    let feedError: Error | undefined;
    feeding.catch((error: Error) => (feedError = error)); // reported below, after the entries
    const written = new Set<string>();
    let betweenEntries = false;
    try {
      for await (const entry of tar) {
        betweenEntries = false;
        try {
          await this.#apply(entry.header, entry as unknown as Readable, written);
        } finally {
          (entry as unknown as Readable).resume();
        }
        betweenEntries = true;
      }
      await feeding;
    } catch (error) {
      // Go's archive/tar (Docker, containerd) reads EOF right after an entry's content as the
      // end of the archive, so layers without the final padding and zero blocks run everywhere
      // (umoci writes them). tar-stream calls that truncated; accept it, but only there.
      if (betweenEntries && /Unexpected end of data/.test((error as Error).message)) return;
      source.destroy();
      // An entry cut short dies as "Stream was destroyed"; the archive's own error says why.
      await new Promise((resolve) => setImmediate(resolve));
      const fromArchive = feedError !== undefined && (feedError as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE';
      const reason = fromArchive ? (feedError as Error) : (error as Error);
      throw new Error(`${where}: ${reason.message}`, { cause: reason });
    }
  }

  /** Sets the attributes of every directory entry seen, deepest first. */
  async finish(): Promise<void> {
    const paths = [...this.#directories.keys()].sort((a, b) => b.length - a.length);
    for (const path of paths) {
      const header = this.#directories.get(path) as Header;
      const info = await lstat(path).catch(() => undefined);
      if (!info?.isDirectory()) continue; // whited out by a later layer
      await this.#attributes(path, header, false);
    }
  }

  async #apply(header: Header, content: Readable, written: Set<string>): Promise<void> {
    const normalized = normalizeEntryName(header.name);
    if ('problem' in normalized) throw new Error(normalized.problem);
    const path = normalized.path;
    if (path === '') return; // the root itself
    const name = posix.basename(path);
    const parent = posix.dirname(path) === '.' ? '' : posix.dirname(path);

    // aufs metadata (.wh..wh.plnk/, .wh..wh.aufs) is no content; Docker skips it too.
    if (name !== OPAQUE_WHITEOUT && path.split('/').some((part) => part.startsWith(AUFS_META_PREFIX))) return;
    if (name === OPAQUE_WHITEOUT) {
      const dir = await this.#resolve(parent, true);
      if ((await lstat(dir).catch(() => undefined))?.isDirectory()) await this.#purge(dir, written);
      return;
    }
    if (name.startsWith(WHITEOUT_PREFIX)) {
      const hidden = name.slice(WHITEOUT_PREFIX.length);
      if (hidden === '' || hidden === '.' || hidden === '..') throw new Error(`whiteout "${path}" names no entry`);
      const victim = join(await this.#resolve(parent, true), hidden);
      if (!written.has(relative(this.#root, victim))) await rm(victim, { recursive: true, force: true });
      return;
    }

    const dir = await this.#ensureDirectory(parent, path);
    const target = join(dir, name);
    const existing = await lstat(target).catch(() => undefined);
    switch (header.type) {
      case 'directory':
        if (existing && !existing.isDirectory()) await rm(target, { force: true });
        if (!existing?.isDirectory()) await mkdir(target, { mode: 0o755 });
        this.#directories.set(target, header);
        break;
      case 'file':
      case 'contiguous-file':
        if (existing) await rm(target, { recursive: true, force: true });
        await writeContent(content, target);
        await this.#attributes(target, header, false);
        break;
      case 'symlink': {
        const linkTarget = header.linkname ?? '';
        if (symlinkEscapes(path, linkTarget)) throw new Error(`symlink "${path}" -> "${linkTarget}" points outside the rootfs`);
        if (existing) await rm(target, { recursive: true, force: true });
        await symlink(linkTarget, target);
        await this.#attributes(target, header, true);
        break;
      }
      case 'link': {
        const linkTarget = header.linkname ?? '';
        const problem = hardlinkProblem(path, linkTarget);
        if (problem) throw new Error(problem);
        const source = await this.#resolve((normalizeEntryName(linkTarget) as { path: string }).path, false);
        const info = await lstat(source).catch(() => undefined);
        if (!info) throw new Error(`hard link "${path}" -> "${linkTarget}": the target is not in the layers so far`);
        if (info.isDirectory()) throw new Error(`hard link "${path}" -> "${linkTarget}": the target is a directory`);
        if (source === target) break;
        if (existing) await rm(target, { recursive: true, force: true });
        await link(source, target);
        break;
      }
      default:
        // Device nodes need privileges a get does not have (and runtimes create /dev themselves).
        this.#options.onSkip?.(path, `${header.type ?? 'unknown'} entries are not recreated`);
        return;
    }
    written.add(relative(this.#root, target));
  }

  // Resolves a path inside the root the way a chroot would: symlinks on disk are followed with
  // their targets read relative to the root, and ".." never climbs above it. The result is
  // always below the root. With `followLast` false the last component is not followed.
  async #resolve(path: string, followLast: boolean): Promise<string> {
    const queue = path.split('/').filter((part) => part !== '' && part !== '.');
    const resolved: string[] = [];
    let hops = 0;
    while (queue.length > 0) {
      const part = queue.shift() as string;
      if (part === '..') {
        resolved.pop();
        continue;
      }
      const candidate = join(this.#root, ...resolved, part);
      if (queue.length === 0 && !followLast) {
        resolved.push(part);
        break;
      }
      const info = await lstat(candidate).catch(() => undefined);
      if (info?.isSymbolicLink()) {
        if (++hops > MAX_SYMLINK_HOPS) throw new Error(`"${path}": too many levels of symbolic links`);
        const target = await readlink(candidate);
        if (target.startsWith('/')) resolved.length = 0;
        queue.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
        continue;
      }
      resolved.push(part);
    }
    return join(this.#root, ...resolved);
  }

  async #ensureDirectory(path: string, entry: string): Promise<string> {
    const dir = await this.#resolve(path, true);
    try {
      await mkdir(dir, { recursive: true, mode: 0o755 });
    } catch (error) {
      throw new Error(`"${entry}": a parent is not a directory (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
    }
    return dir;
  }

  // Opaque whiteout: drop what lower layers put in `dir`, keep what this layer wrote.
  async #purge(dir: string, written: Set<string>): Promise<void> {
    for (const name of await readdir(dir)) {
      const path = join(dir, name);
      if (!written.has(relative(this.#root, path))) {
        await rm(path, { recursive: true, force: true });
      } else if ((await lstat(path)).isDirectory()) {
        await this.#purge(path, written);
      }
    }
  }

  async #attributes(path: string, header: Header, isSymlink: boolean): Promise<void> {
    if (this.#options.preserveOwnership) await lchown(path, header.uid ?? 0, header.gid ?? 0);
    // After chown, which clears set-id bits. Linux cannot chmod a symlink.
    if (!isSymlink) await chmod(path, (header.mode ?? 0o644) & 0o7777);
    const mtime = header.mtime ?? new Date(0);
    if (isSymlink) await lutimes(path, mtime, mtime);
    else await utimes(path, mtime, mtime);
  }
}

// 'wx': never write through whatever might sit at the path. The entry is read with for-await, not
// stream.pipeline: tar-stream's entries are streamx streams, whose destruction on a truncated
// archive node's pipeline does not notice (it would wait forever).
async function writeContent(content: Readable, path: string): Promise<void> {
  const handle = await open(path, 'wx', 0o600);
  try {
    for await (const chunk of content as AsyncIterable<Buffer>) await handle.write(chunk);
  } finally {
    await handle.close();
  }
}

