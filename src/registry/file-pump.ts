import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';

/**
 * Sends bytes [start, end] of a file to an HTTP response through reused buffers. Node has no
 * sendfile; a read stream allocates a fresh buffer per chunk and leaves them to the GC, which
 * measured 2.2 GB/s to curl on loopback against 3.5 GB/s with two 512 KiB buffers, one filled
 * while the socket writes the other (1 MiB: 3.8 GB/s; 256 KiB: 2.9 GB/s) — 337 MB layer, medians
 * of 5. On a slower day of the same machine, `wrk -c1` against Distribution (Go, sendfile)
 * measured 0.95× with 512 KiB buffers and 1.04× with 1 MiB (2 MiB: no better), hence 1 MiB.
 *
 * A buffer is refilled only after the write that used it has called back, i.e. after the socket
 * took the bytes. Resolves when everything is written; stops early (resolving `false`) when the
 * client goes away; rejects on a read error, after which the caller must destroy the response.
 */
const LARGE = 1024 * 1024;
/**
 * A response starts with two large buffers when few others stream (STARTS_LARGE_WITHIN) and the
 * budget (LARGE_PAIRS) has a pair free, and gives them back for one small buffer as soon as the client sets the pace: a write the socket
 * takes more than SLOW_WAIT_MS to call back, or PROVEN_FAST_BYTES sent at under
 * FAST_BYTES_PER_MS. A response on small buffers earns a large pair by the opposite: that many
 * bytes at that rate, without a slow wait. A slow client (a node of a cluster rolling out a
 * DaemonSet, at 2 MB/s) so holds 128 KiB, not 2 MiB: 300 of them held the server at 701 MB RSS
 * with 1 MiB buffers for all. A fast one is at full speed from its first byte: starting small and
 * earning the pair after 16 MiB cost a single download of a 150-320 MB layer 20-30% of its rate
 * (wrk -c1 starts over on every request).
 *
 * Waits alone did not tell: on a busy event loop a write is often done before the pump asks, and
 * 62 of 300 clients at 2 MB/s earned large buffers within 10 s (fleet peak 314-326 MB RSS); the
 * rate does tell (16 MiB in 8 s, not in 10 ms). One buffer, not two: a slow client's pace is its
 * socket's, with megabytes still queued in the kernel when the write calls back, so reading the
 * next chunk meanwhile gains nothing; and one 128 KiB buffer takes half the reads and writes of
 * two 64 KiB ones for the same memory (fleet: 12.6 GB sent in 20 s with 15.6 s of CPU, against
 * 9.3-9.6 GB with 17 s for two 64 KiB buffers). One 64 KiB buffer took 16 MB less over 2
 * processes (223 MB against 239-247 MB peak RSS for 300 clients at 2 MB/s) for 40-50% more CPU
 * (17-22 s against 14-15 s for the same 12.7-12.9 GB in 20 s): not worth it.
 */
const SMALL = 128 * 1024;
/**
 * Responses streaming in this process (this one included) up to which a new one starts large:
 * one download, or a handful, run at full speed from the first byte; a burst of hundreds (a
 * fleet rolling out) starts small, so it does not take the whole budget for a first second.
 */
const STARTS_LARGE_WITHIN = 4;
/**
 * Responses streaming in this process above which none earns a large pair. In a crowd of
 * hundreds, 16 MiB at 64 MB/s is a slow client catching up (curl --limit-rate reads at full speed
 * after it fell behind), not a fast one: 300 clients at 2 MB/s had 2-6 such pairs per process at
 * once, 20 s in, for a second or two: 4-12 MB on the process's peak RSS for nothing. 32 parallel
 * pulls (16 a process) still earn them.
 */
const EARNS_LARGE_WITHIN = 32;
const PROVEN_FAST_BYTES = 16 * 1024 * 1024;
/** 64 MB/s: 16 MiB within 250 ms. One curl on loopback takes 1.5-3.5 GB/s; a fleet node 2 MB/s. */
const FAST_BYTES_PER_MS = 64 * 1000;
/** A write that takes longer than this to be taken by the socket means the client sets the pace. */
const SLOW_WAIT_MS = 20;
/**
 * Large pairs lent at once, over all responses: a hard bound (32 MiB) on what large buffers cost
 * whatever the clients do, e.g. many that read fast for 16 MiB and then stall (a stalled
 * response keeps its buffers until the connection timeout). A response that would earn a pair
 * when none is free goes on with small ones, and asks again after another PROVEN_FAST_BYTES.
 */
const LARGE_PAIRS = 16;
/** Free buffers kept between requests: every large one the budget allows, 32 MiB of small ones. */
const POOL_LIMIT = { [LARGE]: 2 * LARGE_PAIRS, [SMALL]: 256 } as Record<number, number>;
const pools = new Map<number, Buffer[]>([[LARGE, []], [SMALL, []]]);
let largePairsLent = 0;
let streaming = 0;
/** Bytes of buffers out of the pool: held by a pump, or by a write the socket has not called back. */
let bytesHeld = 0;

/** The bytes sent do not hash to the digest they were sent as; the last chunk was held back. */
export class DigestMismatch extends Error {
  constructor(readonly expected: string, readonly found: string) {
    super(`the bytes hash to ${found}, not ${expected}`);
    this.name = 'DigestMismatch';
  }
}

/** The file changed while the bytes were read (an archive rewritten in place); the last chunk was held back. */
export class FileChanged extends Error {
  constructor() {
    super('the file changed while the blob was being sent');
    this.name = 'FileChanged';
  }
}

/**
 * What the pumps hold right now (for tests): large pairs lent (of `largePairs`), and the bytes of
 * every buffer out of the pool. A buffer whose write is never called back stays counted.
 */
export function pumpUsage(): { largePairsLent: number; largePairs: number; bytesHeld: number; small: number; large: number } {
  return { largePairsLent, largePairs: LARGE_PAIRS, bytesHeld, small: SMALL, large: LARGE };
}

/**
 * With `check`, the bytes whose digest is only claimed (an archive served in place) are hashed as
 * they are read, and the last chunk is written only once the whole hash matches `check`: on a
 * mismatch the pump rejects with DigestMismatch and the client never receives the whole blob.
 * With `unchanged`, it is asked once the last chunk is read and before it is written: false (the
 * file changed meanwhile, so the bytes sent may be mixed) rejects with FileChanged.
 */
export async function pumpFile(handle: FileHandle, response: ServerResponse, start: number, end: number, check?: string, unchanged?: () => boolean): Promise<boolean> {
  // Waits end on the write's callback or on the response closing. Not Promise.race with a
  // promise of 'close': every race adds a reaction to that promise, kept until the response
  // closes, i.e. one per chunk for the whole download.
  let closed = response.destroyed;
  let wake: (() => void) | undefined;
  response.once('close', () => {
    closed = true;
    wake?.();
  });
  const settled = async (promise: Promise<unknown>): Promise<boolean> => {
    if (!closed) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        void promise.then(() => resolve());
      });
      wake = undefined;
    }
    return !closed && !response.destroyed;
  };
  const hash = check === undefined ? undefined : createHash('sha256');
  // A blob that fits in the small buffer never needs the large ones.
  streaming += 1;
  let size = end - start + 1 > SMALL && streaming <= STARTS_LARGE_WITHIN && largePairsLent < LARGE_PAIRS ? LARGE : SMALL;
  if (size === LARGE) largePairsLent += 1;
  let buffers = size === LARGE ? [take(size), take(size)] : [take(size)];
  // Buffers go back to the pool only once no write holds them: `pending` counts the writes the
  // socket has not called back yet; the last callback after the pump is done gives them back.
  let pending = 0;
  let done = false;
  let held = buffers;
  let written: Promise<unknown>[] = buffers.map(() => Promise.resolve());
  const write = (buffer: Buffer): Promise<void> => {
    pending += 1;
    return new Promise<void>((resolve) =>
      response.write(buffer, () => {
        pending -= 1;
        if (done && pending === 0) for (const free of held) give(free);
        resolve();
      }),
    );
  };
  let unhurried = 0;
  let since = performance.now();
  try {
    let position = start;
    let turn = 0;
    while (position <= end) {
      // the buffer's previous write must be done before it is overwritten
      const waitedFrom = performance.now();
      if (!(await settled(written[turn] as Promise<unknown>))) return false;
      const now = performance.now();
      const slow = now - waitedFrom > SLOW_WAIT_MS;
      if (slow) {
        unhurried = 0;
        since = now;
      }
      let gear: number | undefined;
      if (size === LARGE && slow) gear = SMALL;
      else if (unhurried >= PROVEN_FAST_BYTES) {
        const fast = unhurried / Math.max(now - since, 1) >= FAST_BYTES_PER_MS;
        if (size === SMALL && fast && largePairsLent < LARGE_PAIRS && streaming <= EARNS_LARGE_WITHIN) gear = LARGE;
        else if (size === LARGE && !fast) gear = SMALL;
        unhurried = 0;
        since = now;
      }
      if (gear !== undefined) {
        // Change gear only with every buffer free: a buffer a write still holds cannot be reused.
        if (!(await settled(Promise.all(written)))) return false;
        // A pair given back by a client found slow is freed, not pooled: a burst of slow clients
        // starts its first few on large pairs, and their memory would otherwise stay in the pool
        // beside every slow client's small buffer (300 clients at 2 MB/s: 8 MB per process).
        for (const buffer of buffers) give(buffer, gear === SMALL);
        largePairsLent += gear === LARGE ? 1 : -1;
        size = gear;
        buffers = held = size === LARGE ? [take(size), take(size)] : [take(size)];
        written = buffers.map(() => Promise.resolve());
        turn = 0;
      }
      const buffer = buffers[turn] as Buffer;
      const { bytesRead } = await handle.read(buffer, 0, Math.min(size, end - position + 1), position);
      if (bytesRead === 0) throw new Error(`blob file ended at byte ${position}, before ${end + 1}`);
      position += bytesRead;
      unhurried += bytesRead;
      hash?.update(buffer.subarray(0, bytesRead));
      if (position > end) {
        const found = hash && `sha256:${hash.digest('hex')}`;
        if (found !== undefined && found !== check) throw new DigestMismatch(check as string, found);
        if (unchanged && !unchanged()) throw new FileChanged();
      }
      written[turn] = write(buffer.subarray(0, bytesRead));
      turn = (turn + 1) % buffers.length;
    }
    if (!(await settled(Promise.all(written)))) return false;
    await new Promise<void>((resolve) => response.end(resolve));
    return true;
  } finally {
    // The budget is given back now; the buffers once no write holds them. A write the socket
    // never calls back (an aborted client) leaves them to the GC.
    if (size === LARGE) largePairsLent -= 1;
    streaming -= 1;
    done = true;
    if (pending === 0) for (const buffer of held) give(buffer);
  }
}

/** The digest of bytes [start, end] of a file (a blob served in place, proven before a Range is sent from it). */
export async function hashFile(handle: FileHandle, start: number, end: number): Promise<string> {
  const hash = createHash('sha256');
  const buffer = take(LARGE);
  try {
    for (let position = start; position <= end;) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(LARGE, end - position + 1), position);
      if (bytesRead === 0) throw new Error(`blob file ended at byte ${position}, before ${end + 1}`);
      hash.update(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
  } finally {
    give(buffer);
  }
  return `sha256:${hash.digest('hex')}`;
}

function take(size: number): Buffer {
  bytesHeld += size;
  return pools.get(size)?.pop() ?? Buffer.allocUnsafeSlow(size);
}

/** Back to the pool, or with `release` (or a full pool) freed now, not when the GC comes to it. */
function give(buffer: Buffer, release = false): void {
  bytesHeld -= buffer.length;
  const pool = pools.get(buffer.length);
  if (!release && pool && pool.length < (POOL_LIMIT[buffer.length] ?? 0)) pool.push(buffer);
  // transfer(0) detaches the ArrayBuffer, whose memory goes back to malloc at once (ES2024, not in
  // the ES2022 typings); every pumped buffer has an ArrayBuffer of its own (allocUnsafeSlow)
  else (buffer.buffer as ArrayBuffer & { transfer(length: number): ArrayBuffer }).transfer(0);
}
