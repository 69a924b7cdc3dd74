import { open } from 'node:fs/promises';
import { LoadError } from './load-error.js';

const BLOCK = 512;
/** Type flags of entries whose content is the file's bytes (regular, old regular, contiguous). */
const REGULAR = new Set(['0', '\0', '7']);
/** Headers that change the next entry's name or size (pax, GNU long name and long link). */
const EXTENDS_NEXT = new Set(['x', 'L', 'K']);

/** Where a plain tar keeps one entry: its header's name and size, and where its content starts. */
export interface IndexedEntry {
  name: string;
  size: number;
  dataOffset: number;
  regular: boolean;
  /**
   * True when nothing but the entry's own ustar header says what it is (no pax or GNU long-name
   * header before it, no global pax header before it): only then are `name`, `size` and
   * `dataOffset` certain to be what a full tar parser (tar-stream) reads.
   */
  plain: boolean;
}

/**
 * The headers of an uncompressed tar, read by seeking from one header to the next: content is
 * never read, so indexing a 500 MB docker save costs a few hundred small reads. Used to detect a
 * format, and to find where big entries' content lies so several can be copied side by side.
 * A damaged first header is an error; later damage ends the index (the loader, which parses
 * every byte with tar-stream, reports it precisely).
 */
export async function indexPlainTar(input: string): Promise<IndexedEntry[]> {
  const entries: IndexedEntry[] = [];
  const handle = await open(input, 'r');
  try {
    const header = Buffer.alloc(BLOCK);
    let offset = 0;
    let extended = false;
    let globalPax = false;
    // A size field can claim more than 2^53 bytes (GNU base-256): no next header to read there.
    while (Number.isSafeInteger(offset)) {
      const { bytesRead } = await handle.read(header, 0, BLOCK, offset);
      if (bytesRead < BLOCK || header.every((byte) => byte === 0)) break;
      if (!checksumOk(header)) {
        if (offset === 0 && header.subarray(257, 262).toString() === 'ustar') throw new LoadError(input, 'is a damaged tar archive: the first header fails its checksum', 'copy the file again');
        if (offset === 0) throw new LoadError(input, 'is neither a directory nor a tar archive (plain or gzip)', 'pass --format if cartorio guessed wrong');
        break;
      }
      const type = String.fromCharCode(header[156] ?? 0);
      const size = entrySize(header);
      const dataOffset = offset + BLOCK;
      if (EXTENDS_NEXT.has(type)) {
        extended = true;
      } else if (type === 'g') {
        globalPax = true;
      } else {
        const name = field(header, 0, 100);
        const prefix = isPosixUstar(header) ? field(header, 345, 155) : '';
        entries.push({ name: prefix ? `${prefix}/${name}` : name, size, dataOffset, regular: REGULAR.has(type), plain: !extended && !globalPax });
        extended = false;
      }
      offset = dataOffset + Math.ceil(size / BLOCK) * BLOCK;
    }
  } finally {
    await handle.close();
  }
  return entries;
}

function isPosixUstar(block: Buffer): boolean {
  return block.subarray(257, 263).toString('latin1') === 'ustar\0';
}

/** A NUL-terminated header field as text (shared with tar-headers.ts). */
export function field(block: Buffer, start: number, length: number): string {
  const raw = block.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end < 0 ? length : end).toString('utf8');
}

/** The size field: octal, or GNU base-256 for entries over 8 GiB. */
export function entrySize(block: Buffer): number {
  const raw = block.subarray(124, 136);
  if ((raw[0] ?? 0) & 0x80) {
    // GNU base-256 size for entries over 8 GiB
    let size = 0;
    for (let i = 1; i < raw.length; i++) size = size * 256 + (raw[i] ?? 0);
    return size;
  }
  return parseInt(field(block, 124, 12).trim() || '0', 8) || 0;
}

/** True when the header's checksum field matches its bytes. */
export function checksumOk(block: Buffer): boolean {
  const stored = parseInt(field(block, 148, 8).trim(), 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
  return sum === stored;
}
