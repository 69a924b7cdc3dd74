/**
 * Spare buffers of one size, handed back by whoever finished with them to be filled again: a
 * fresh 1 MiB buffer costs a page fault per 4 KiB the first time it is written (measured: a
 * quarter of a directory pack's system time). Holds a few at most; the rest are left to the GC.
 */
export class ChunkPool {
  readonly size: number;
  readonly #spare: ArrayBuffer[] = [];

  constructor(size: number) {
    this.size = size;
  }

  /** A buffer of `size` bytes, contents undefined. */
  take(): Buffer {
    const spare = this.#spare.pop();
    return spare ? Buffer.from(spare) : Buffer.allocUnsafeSlow(this.size);
  }

  /** Hands back memory no one uses any more (other sizes are dropped). */
  readonly give = (buffer: ArrayBuffer): void => {
    if (buffer.byteLength === this.size && this.#spare.length < MAX_SPARE) this.#spare.push(buffer);
  };
}

const MAX_SPARE = 16;
