import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Bucket } from './client.js';

/** The lock object, beside `.repositories`: one writer at a time across every machine. */
export const LOCK_KEY = '.lock';
/** A holder refreshes its lock this often; one not refreshed for LOCK_TTL_MS (a killed load) is taken over. */
const LOCK_TTL_MS = 30_000;
const REFRESH_MS = 10_000;
/** How long a load waits for another writer before giving up. */
const WAIT_MS = 120_000;

interface LockBody {
  owner: string;
  host: string;
  pid: number;
  since: string;
  expires: number;
}

/**
 * Runs `work` holding the store's writer lock: an object created only if absent (`If-None-Match: *`,
 * one winner however many writers race), refreshed with `If-Match`, deleted at the end. A lock
 * whose holder stopped refreshing it (killed) is taken over with `If-Match` on its ETag, so two
 * writers never both take it over. A store that ignores the conditions (found when a second create
 * of the lock succeeds) is refused, unless the operator vouches for a single writer
 * (`?single-writer=true`), in which case no lock is taken.
 */
export async function withBucketLock<T>(bucket: Bucket, work: () => Promise<T>): Promise<T> {
  if (bucket.location.singleWriter === true) return work();
  const owner = `${hostname()}:${process.pid}:${randomBytes(6).toString('hex')}`;
  const since = new Date().toISOString();
  const body = (): string => JSON.stringify({ owner, host: hostname(), pid: process.pid, since, expires: Date.now() + LOCK_TTL_MS } satisfies LockBody);
  let etag = await acquire(bucket, body);
  if ((await bucket.put(LOCK_KEY, body(), { ifNoneMatch: '*' })) !== 'conflict') {
    await bucket.delete(LOCK_KEY);
    throw new Error(`${bucket.url}: the object store ignores conditional writes (If-None-Match), so the lock object cannot keep a second writer out; use a store that supports them, or run one writer at a time and say so with ${bucket.url}?single-writer=true`);
  }
  let lost: string | undefined;
  const refresher = setInterval(() => {
    void bucket.put(LOCK_KEY, body(), { ifMatch: etag }).then((next) => {
      if (next === 'conflict') lost ??= 'another writer replaced the lock object (was this load paused for over 30 s?)';
      else etag = next;
    }, (error: unknown) => void (lost ??= (error as Error).message));
  }, REFRESH_MS);
  try {
    const result = await work();
    if (lost !== undefined) throw new Error(`${bucket.url}: the writer lock was lost during the load: ${lost}; run \`cartorio verify --store ${bucket.url}\``);
    return result;
  } finally {
    clearInterval(refresher);
    const current = await bucket.get(LOCK_KEY).catch(() => undefined);
    if (current !== undefined && current !== 'unchanged' && lockOf(current.bytes)?.owner === owner) await bucket.delete(LOCK_KEY);
  }
}

async function acquire(bucket: Bucket, body: () => string): Promise<string> {
  const deadline = Date.now() + WAIT_MS;
  for (let attempt = 0; ; attempt++) {
    const created = await bucket.put(LOCK_KEY, body(), { ifNoneMatch: '*' });
    if (created !== 'conflict') return created;
    const held = await bucket.get(LOCK_KEY);
    if (held === undefined || held === 'unchanged') continue; // released meanwhile
    const holder = lockOf(held.bytes);
    if (holder === undefined || holder.expires < Date.now()) {
      // A killed writer's lock: replaced only if it is still that very object.
      const taken = await bucket.put(LOCK_KEY, body(), { ifMatch: held.etag });
      if (taken !== 'conflict') return taken;
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(`${bucket.url}: another load holds the writer lock (${holder.host} pid ${holder.pid} since ${holder.since}); wait for it, or if it was killed the lock expires ${Math.ceil((holder.expires - Date.now()) / 1000)} s after its last refresh`);
    }
    await sleep(Math.min(1000, 100 * 2 ** Math.min(attempt, 4)));
  }
}

function lockOf(bytes: Buffer): LockBody | undefined {
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as Partial<LockBody>;
    return typeof parsed.owner === 'string' && typeof parsed.expires === 'number' ? (parsed as LockBody) : undefined;
  } catch {
    return undefined;
  }
}
