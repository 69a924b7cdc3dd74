import type { FileHandle } from 'node:fs/promises';
import { normalizeEntryName } from '../image/tar-paths.js';
import { LoadError } from './load-error.js';
import { checksumOk, entrySize, field } from './tar-index.js';

const BLOCK = 512;
/** pax and GNU long-name headers are a few hundred bytes; anything near this is not a real archive. */
const MAX_EXTENDED_BYTES = 1024 * 1024;
/** What tar-stream's decoder puts in a name for bytes that are not UTF-8 (the loader refuses those too). */
const REPLACEMENT_CHARACTER = '\uFFFD';

/** One entry of an archive served in place: where its content lies in the file. */
export interface TarEntry {
  /** The normalised path (no `./`, no trailing `/`), as the loader names it. */
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'link';
  size: number;
  dataOffset: number;
  linkname: string;
  /** The first bytes of the content (up to HEAD_BYTES), when the read of the headers already held them. */
  head?: Buffer;
}

/** Enough of an entry's content to tell a gzip or zstd layer by its magic number. */
export const HEAD_BYTES = 4;

/**
 * Every entry of an uncompressed tar, read from its headers alone by seeking from one header to
 * the next, so a 1 GB docker save is indexed with a few hundred small reads and no content read.
 * Unlike `indexPlainTar` (which only guides the loader's faster path), this is the only reader of
 * an archive served in place, so it applies the loader's rules itself: pax (`path`, `linkpath`,
 * `size`) and GNU long names are honoured; a damaged header, a truncated entry, an unsafe or
 * non-UTF-8 name, an entry that appears twice and devices are refused, naming the entry.
 *
 * tar-stream cannot do this: its parser reads every byte of content (no seek) and its header codec
 * is not exported. The fields read here are those of tar-stream's `headers.decode`.
 */
export async function readTarHeaders(input: string, handle: FileHandle, fileSize: number): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  const seen = new Set<string>();
  const header = Buffer.alloc(BLOCK);
  const window = new ReadWindow(handle);
  let offset = 0;
  let pending: { path?: string; linkpath?: string; size?: number } = {};
  let last: string | undefined;
  const where = (): string => (last === undefined ? 'the first tar header' : `the tar header after entry "${last}"`);
  for (;;) {
    const bytesRead = await window.read(header, offset);
    if (bytesRead === 0 && offset === fileSize && offset > 0) break; // no end-of-archive blocks: tar-stream accepts that too
    if (bytesRead < BLOCK) throw new LoadError(input, `is truncated: ${where()} is cut short at byte ${offset + bytesRead}`, 'copy the file again and check its size');
    if (header.every((byte) => byte === 0)) break;
    if (!checksumOk(header)) {
      if (offset === 0) throw new LoadError(input, 'is not a tar archive (the first header fails its checksum)', 'serve only uncompressed docker save or OCI archives; load other inputs with cartorio load');
      throw new LoadError(input, `is corrupt: ${where()} is damaged (bad checksum)`, 'copy the file again');
    }
    const flag = String.fromCharCode(header[156] ?? 0);
    const dataOffset = offset + BLOCK;
    const size = pending.size ?? entrySize(header);
    if (dataOffset + size > fileSize) {
      throw new LoadError(input, `is truncated: ${last === undefined ? 'the first entry' : `the entry after "${last}"`} needs ${dataOffset + size - fileSize} bytes past the end of the file`, 'copy the file again and check its size');
    }
    offset = dataOffset + Math.ceil(size / BLOCK) * BLOCK;
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      const content = await readExtended(input, handle, dataOffset, entrySize(header), where());
      if (flag === 'x') pending = { ...pending, ...paxFields(input, content, where()) };
      else if (flag === 'L') pending.path = cString(content);
      else if (flag === 'K') pending.linkpath = cString(content);
      else if (Object.keys(paxFields(input, content, where())).length > 0) {
        throw new LoadError(input, `has a global pax header that renames or resizes every entry (${where()}), which no image tool writes`, 'the archive is damaged or hostile; do not serve it');
      }
      continue;
    }
    const name = pending.path ?? ustarName(header);
    const linkname = pending.linkpath ?? field(header, 157, 100);
    pending = {};
    const normalized = normalizeEntryName(name);
    if ('problem' in normalized) throw new LoadError(input, normalized.problem, 'the archive is damaged or hostile; do not serve it');
    const path = normalized.path;
    if (path.includes(REPLACEMENT_CHARACTER)) throw new LoadError(input, `entry ${JSON.stringify(path)} has a name that is not valid UTF-8`, 'the archive is damaged or hostile; do not serve it');
    const type = entryType(flag);
    if (type === undefined) throw new LoadError(input, `entry "${path}" is a ${describeFlag(flag)}, which an image archive never holds`);
    last = path;
    if (type === 'directory') continue;
    if (seen.has(path)) throw new LoadError(input, `entry "${path}" appears twice in the archive`);
    seen.add(path);
    const head = type === 'file' ? window.held(dataOffset, Math.min(HEAD_BYTES, size)) : undefined;
    entries.push({ path, type, size: type === 'file' ? size : 0, dataOffset, linkname, ...(head && { head }) });
  }
  return entries;
}

async function readExtended(input: string, handle: FileHandle, offset: number, size: number, where: string): Promise<Buffer> {
  if (size > MAX_EXTENDED_BYTES) throw new LoadError(input, `has a tar extended header (pax or GNU long name) over 1 MiB at ${where}, which no real archive needs`);
  const content = Buffer.alloc(size);
  const { bytesRead } = await handle.read(content, 0, size, offset);
  if (bytesRead < size) throw new LoadError(input, `is truncated inside an extended header at ${where}`, 'copy the file again and check its size');
  return content;
}

// pax records are "<length> <key>=<value>\n" (POSIX.1-2008 pax, "extended header"); only the keys
// that move or rename an entry matter here. Sparse files (GNU.sparse.*) cannot be served by offset.
function paxFields(input: string, content: Buffer, where: string): { path?: string; linkpath?: string; size?: number } {
  const fields: { path?: string; linkpath?: string; size?: number } = {};
  let rest = content;
  while (rest.length > 0) {
    const space = rest.indexOf(0x20);
    const length = Number(rest.subarray(0, Math.max(space, 0)).toString('latin1'));
    if (space <= 0 || !Number.isInteger(length) || length <= space + 1 || length > rest.length) {
      if (rest.every((byte) => byte === 0)) break;
      throw new LoadError(input, `has a malformed pax header at ${where}`, 'the archive is damaged; copy it again');
    }
    const record = rest.subarray(space + 1, length - 1).toString('utf8');
    const equals = record.indexOf('=');
    const key = record.slice(0, equals);
    const value = record.slice(equals + 1);
    if (key === 'path') fields.path = value;
    else if (key === 'linkpath') fields.linkpath = value;
    else if (key === 'size') {
      if (!/^\d{1,15}$/.test(value)) throw new LoadError(input, `has a pax size "${value}" at ${where} that is not a number`);
      fields.size = Number(value);
    } else if (key.startsWith('GNU.sparse')) {
      throw new LoadError(input, `holds a sparse file (${where}), which cannot be served by offset`, 'load it with cartorio load instead');
    }
    rest = rest.subarray(length);
  }
  return fields;
}

function entryType(flag: string): TarEntry['type'] | undefined {
  if (flag === '0' || flag === '\0' || flag === '7') return 'file';
  if (flag === '5') return 'directory';
  if (flag === '2') return 'symlink';
  if (flag === '1') return 'link';
  return undefined;
}

function describeFlag(flag: string): string {
  const names: Record<string, string> = { '3': 'character device', '4': 'block device', '6': 'fifo', S: 'GNU sparse file' };
  return names[flag] ?? `entry of tar type "${flag}"`;
}

function ustarName(header: Buffer): string {
  const name = field(header, 0, 100);
  // POSIX ustar ("ustar\0") splits long names into prefix + name; GNU ("ustar  ") uses that space otherwise.
  const prefix = header.subarray(257, 263).toString('latin1') === 'ustar\0' ? field(header, 345, 155) : '';
  return prefix ? `${prefix}/${name}` : name;
}

function cString(content: Buffer): string {
  const end = content.indexOf(0);
  return content.subarray(0, end < 0 ? content.length : end).toString('utf8');
}

/** Bytes read ahead for the next headers: 64 KiB hold the headers of ~20 small layers. */
const WINDOW = 64 * 1024;

/**
 * Headers read through a 64 KiB window: an archive of many small entries (a docker save of 200
 * small layers) costs one read per window instead of one per header (50 archives of 200 layers
 * took 3.9 s to start with a read each). A header past the window is read alone, with what follows.
 */
class ReadWindow {
  readonly #handle: FileHandle;
  readonly #bytes = Buffer.alloc(WINDOW);
  #start = 0;
  #length = 0;

  constructor(handle: FileHandle) {
    this.#handle = handle;
  }

  /** Copies up to BLOCK bytes at `offset` into `into`; fewer only at the end of the file. */
  async read(into: Buffer, offset: number): Promise<number> {
    if (offset < this.#start || offset + BLOCK > this.#start + this.#length) {
      const { bytesRead } = await this.#handle.read(this.#bytes, 0, WINDOW, offset);
      this.#start = offset;
      this.#length = bytesRead;
    }
    return this.#bytes.copy(into, 0, offset - this.#start, Math.min(offset - this.#start + BLOCK, this.#length));
  }

  /** A copy of `length` bytes at `offset` if the last read holds them all, else undefined (no read). */
  held(offset: number, length: number): Buffer | undefined {
    if (offset < this.#start || offset + length > this.#start + this.#length) return undefined;
    return Buffer.from(this.#bytes.subarray(offset - this.#start, offset - this.#start + length));
  }
}
