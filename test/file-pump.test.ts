import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type FileHandle, open, writeFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { pumpFile, pumpUsage } from '../src/registry/file-pump.js';
import { tempDir } from './helpers/cli.js';

// The blob pump against clients whose pace the test sets exactly: a response that calls a write
// back when the test says so. The bytes each one is given are hashed as they are written (the
// pump reuses its buffers, so a copy made later would see other bytes).

const MiB = 1024 * 1024;

/** A ServerResponse as the pump uses it; `delay` sets when each write is called back. */
class Client extends EventEmitter {
  destroyed = false;
  readonly hash = createHash('sha256');
  bytes = 0;
  largestWrite = 0;
  /** Every write's size, in order. */
  readonly writes: number[] = [];
  /** The first chunk written: a view of the pump's buffer, kept to see whether it was freed. */
  first: Buffer | undefined;
  /** 'now': called back at once; a number: after that many ms; 'stall': held until release(); bytesPerMs: at that pace. */
  delay: 'now' | number | 'stall' | { bytesPerMs: number } = 'now';
  /** Stops calling writes back once this many bytes were written to it. */
  stallAt = Infinity;
  readonly #held: (() => void)[] = [];
  ended = false;

  write(chunk: Buffer, callback: () => void): boolean {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.largestWrite = Math.max(this.largestWrite, chunk.length);
    this.writes.push(chunk.length);
    this.first ??= chunk;
    if (this.bytes >= this.stallAt) this.delay = 'stall';
    if (this.delay === 'stall') this.#held.push(callback);
    else if (this.delay === 'now') setImmediate(callback);
    else if (typeof this.delay === 'number') setTimeout(callback, this.delay);
    else setTimeout(callback, chunk.length / this.delay.bytesPerMs);
    return false;
  }

  end(callback: () => void): void {
    this.ended = true;
    setImmediate(() => {
      callback();
      this.emit('close');
    });
  }

  release(): void {
    this.stallAt = Infinity;
    this.delay = 'now';
    for (const callback of this.#held.splice(0)) setImmediate(callback);
  }

  get digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

// A file of `size` random bytes, opened for the pump (closed after the test), and its digest.
async function openBlob(t: { after: (fn: () => Promise<void>) => void }, size: number): Promise<{ handle: FileHandle; digest: string }> {
  const path = join(await tempDir(t), 'blob');
  const bytes = randomBytes(size);
  await writeFile(path, bytes);
  const handle = await open(path, 'r');
  t.after(() => handle.close());
  return { handle, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
}

async function until(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('clients that read fast and then stall hold at most the budget of large buffers; every byte is right once they read again', async (t) => {
  const size = 24 * MiB;
  const blob = await openBlob(t, size);
  const { handle } = blob;
  const { largePairs, large, small } = pumpUsage();
  const before = pumpUsage().bytesHeld;
  const clients: Client[] = [];
  const pumps: Promise<boolean>[] = [];
  // One after another, so that each one alone is fast: each reads 20 MiB at once, then stops.
  for (let i = 0; i < largePairs + 4; i++) {
    const client = new Client();
    client.stallAt = 20 * MiB;
    clients.push(client);
    pumps.push(pumpFile(handle, client as unknown as ServerResponse, 0, size - 1));
    await until(`client ${i} to take 20 MiB`, () => client.delay === 'stall');
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
  const stalled = pumpUsage();
  t.diagnostic(`largest writes (KiB): ${clients.map((client) => client.largestWrite / 1024).join(' ')}`);
  t.diagnostic(`stalled: ${stalled.largePairsLent} large pairs lent, ${((stalled.bytesHeld - before) / MiB).toFixed(1)} MiB held`);
  // the first `largePairs` earned large buffers; the budget held the others to one small buffer
  assert.equal(stalled.largePairsLent, largePairs);
  assert.ok(stalled.bytesHeld - before <= largePairs * 2 * large + 4 * small, `${stalled.bytesHeld - before} bytes held`);
  assert.ok(clients.slice(0, largePairs).every((client) => client.largestWrite === large));
  assert.ok(clients.slice(largePairs).every((client) => client.largestWrite === small));

  for (const client of clients) client.release();
  assert.deepEqual(await Promise.all(pumps), clients.map(() => true));
  for (const client of clients) {
    assert.equal(client.bytes, size);
    assert.equal(client.digest, blob.digest);
    assert.ok(client.ended);
  }
  assert.equal(pumpUsage().largePairsLent, 0);
  assert.equal(pumpUsage().bytesHeld, before, 'every buffer back in the pool');
});

test('a client that reads at a few MB/s is down to one small buffer after its first large writes; a fast one keeps large ones', async (t) => {
  const size = 20 * MiB;
  const blob = await openBlob(t, size);
  const { handle } = blob;
  const { largePairsLent, small, large } = pumpUsage();
  // ~13 MB/s: a 128 KiB write is called back after 10 ms (under the 20 ms that counts as a wait), a 1 MiB one after 80 ms
  const slow = new Client();
  slow.delay = { bytesPerMs: small / 10 };
  const fast = new Client();
  const [slowDone, fastDone] = await Promise.all([
    pumpFile(handle, slow as unknown as ServerResponse, 0, size - 1),
    pumpFile(handle, fast as unknown as ServerResponse, 0, size - 1),
  ]);
  const slowLarge = slow.writes.filter((bytes) => bytes > small).length;
  t.diagnostic(`slow client: ${slowLarge} large writes of ${slow.writes.length}; fast client: largest ${fast.largestWrite}, smallest ${Math.min(...fast.writes.slice(0, -1))}`);
  assert.ok(slowDone && fastDone);
  // both started large (pairs were free); the slow one gave its pair back at its first long wait
  assert.equal(slow.writes[0], large);
  assert.ok(slowLarge <= 2, `${slowLarge} large writes to the slow client`);
  assert.ok(slow.writes.slice(2).every((bytes) => bytes <= small), 'after its first wait, the slow client was sent through the small buffer only');
  assert.ok(fast.writes.slice(0, -1).every((bytes) => bytes === large), 'the fast client had large buffers from its first byte');
  // the pair a slow client gives back is freed at once (its ArrayBuffer detached), not pooled
  assert.equal(slow.first?.buffer.byteLength, 0, "the slow client's large buffer is freed");
  for (const client of [slow, fast]) assert.equal(client.digest, blob.digest);
  assert.equal(pumpUsage().largePairsLent, largePairsLent);
});

test('a client that goes away mid-blob: the pump stops, and gives back its large buffers', async (t) => {
  const size = 24 * MiB;
  const blob = await openBlob(t, size);
  const { handle } = blob;
  const { largePairsLent, bytesHeld } = pumpUsage();
  const client = new Client();
  client.stallAt = 20 * MiB;
  const pump = pumpFile(handle, client as unknown as ServerResponse, 0, size - 1);
  await until('the pump to hold a large pair', () => pumpUsage().largePairsLent === largePairsLent + 1);
  client.destroyed = true;
  client.emit('close');
  assert.equal(await pump, false);
  assert.equal(pumpUsage().largePairsLent, largePairsLent, 'the budget is given back at once');
  client.release(); // the socket lets go of its writes: the buffers go back to the pool
  await until('buffers back', () => pumpUsage().bytesHeld === bytesHeld);
});
