import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { BcryptPool, type BcryptPoolLimits, PoolBusy } from './bcrypt-pool.js';
import { RegistryError, tooManyRequests, unauthorized } from './errors.js';

/** Users and their bcrypt hashes, from an htpasswd file. */
export type Htpasswd = ReadonlyMap<string, string>;

export const DEFAULT_REALM = 'cartorio';

const BCRYPT = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;
/** Verified credentials are remembered so a pull (dozens of requests) costs one bcrypt, not dozens. */
const MAX_REMEMBERED = 1024;
/**
 * Wrong credentials are remembered this long, so a client retrying a wrong password (or a flood
 * repeating one) costs no bcrypt; briefly, so the cache stays small and never outlives a mistake.
 */
const FAILED_FOR_MS = 60_000;
const MAX_FAILED = 4096;
/** What a client refused for a full queue is told to wait, in seconds. */
const RETRY_AFTER_SECONDS = 1;
// Compared against when the user is unknown, at the cost of the costliest real entry, so an
// unknown user takes as long as a known one (a cheaper dummy would tell which names exist).
const DUMMY_SALT_AND_HASH = '5yHLm9LeV5Anz9DMcnGR6OkOuiO32t1zeNDk/RhxBTxcWiekk8i5O';

/**
 * Parses an htpasswd file (`user:hash` per line, `#` comments). Only bcrypt entries
 * (`htpasswd -B`) are accepted, as Distribution does: the other htpasswd schemes are weak.
 * Throws naming the line when an entry is malformed.
 */
export function parseHtpasswd(text: string, where: string): Htpasswd {
  const users = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (colon <= 0) throw new Error(`${where}:${i + 1}: expected "user:bcrypt-hash"`);
    if (!BCRYPT.test(hash)) throw new Error(`${where}:${i + 1}: user "${user}" has no bcrypt hash; only bcrypt entries are accepted (htpasswd -B)`);
    users.set(user, hash);
  });
  if (users.size === 0) throw new Error(`${where}: no users`);
  return users;
}

/** The bcrypt cost of each user's entry, by cost: more than one cost lets a prober tell users apart by timing. */
export function bcryptCosts(users: Htpasswd): Map<number, string[]> {
  const costs = new Map<number, string[]>();
  for (const [user, hash] of users) {
    const cost = Number(hash.slice(4, 6));
    costs.set(cost, [...(costs.get(cost) ?? []), user]);
  }
  return costs;
}

/**
 * HTTP Basic authentication (RFC 7617) against an htpasswd. Returns undefined when the request
 * may go on, else the 401 to send; a Docker client reads the realm from `WWW-Authenticate`.
 *
 * bcrypt runs on worker threads (bcrypt-pool.ts) behind a bounded queue: a flood of wrong
 * passwords waits there, not on the event loop, and beyond the queue is answered 429
 * TOOMANYREQUESTS with Retry-After (the distribution-spec code for it: Docker prints it as
 * "toomanyrequests", go-containerregistry retries it, and a 503 would read as the server being
 * down to a balancer's health check). Credentials already verified, and recent failures, are
 * answered from memory without a thread: a logged-in client never waits behind the flood.
 */
export class BasicAuth {
  readonly #users: { name: Buffer; hash: string }[];
  readonly #dummyHash: string;
  readonly #realm: string;
  /**
   * HMACs of verified `user:password` pairs under a key born with this process: the cache holds
   * nothing a memory dump could turn back into a password, and a lookup compares digests of
   * credentials, never the credentials, so its timing says nothing about a stored password.
   */
  readonly #remembered = new Set<string>();
  /** HMACs of wrong credentials → when they are forgotten (insertion order is age order). */
  readonly #failed = new Map<string, number>();
  /** Comparisons running, by HMAC: a pull's parallel first requests share one. */
  readonly #verifying = new Map<string, Promise<boolean>>();
  readonly #cacheKey = randomBytes(32);
  readonly #pool: BcryptPool;

  constructor(users: Htpasswd, realm = DEFAULT_REALM, limits: Partial<BcryptPoolLimits> = {}) {
    this.#pool = new BcryptPool(limits);
    this.#users = [...users].map(([name, hash]) => ({ name: digestOf(name), hash }));
    const cost = Math.max(...[...users.values()].map((hash) => Number(hash.slice(4, 6))));
    this.#dummyHash = `$2b$${String(cost).padStart(2, '0')}$${DUMMY_SALT_AND_HASH}`;
    this.#realm = realm;
  }

  async check(authorization: string | undefined): Promise<RegistryError | undefined> {
    const match = /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(authorization ?? '');
    if (!match?.[1]) return unauthorized(this.#realm);
    const decoded = Buffer.from(match[1], 'base64').toString('utf8');
    const key = createHmac('sha256', this.#cacheKey).update(decoded).digest('hex');
    if (this.#remembered.has(key)) return undefined;
    if ((this.#failed.get(key) ?? 0) > Date.now()) return unauthorized(this.#realm);
    const colon = decoded.indexOf(':');
    if (colon < 0) return unauthorized(this.#realm);
    let verifying = this.#verifying.get(key);
    if (!verifying) {
      verifying = this.#verify(decoded.slice(0, colon), decoded.slice(colon + 1));
      this.#verifying.set(key, verifying);
      void verifying.finally(() => this.#verifying.delete(key)).catch(() => undefined);
    }
    let ok: boolean;
    try {
      ok = await verifying;
    } catch (error) {
      if (error instanceof PoolBusy) return tooManyRequests(RETRY_AFTER_SECONDS);
      throw error;
    }
    if (!ok) {
      this.#rememberFailure(key);
      return unauthorized(this.#realm);
    }
    if (this.#remembered.size >= MAX_REMEMBERED) this.#remembered.clear();
    this.#remembered.add(key);
    return undefined;
  }

  /** Ends the password-check threads. */
  async close(): Promise<void> {
    await this.#pool.close();
  }

  // An unknown user is compared too (against the dummy hash), so it takes as long as a known one.
  async #verify(user: string, password: string): Promise<boolean> {
    const hash = this.#find(user);
    const ok = await this.#pool.compare(password, hash ?? this.#dummyHash);
    return ok && hash !== undefined;
  }

  #rememberFailure(key: string): void {
    this.#failed.delete(key);
    const oldest = this.#failed.keys().next();
    if (this.#failed.size >= MAX_FAILED && !oldest.done) this.#failed.delete(oldest.value);
    this.#failed.set(key, Date.now() + FAILED_FOR_MS);
  }

  // Every entry is compared, in constant time, whichever matches: the lookup's time does not
  // depend on the name asked for.
  #find(user: string): string | undefined {
    const wanted = digestOf(user);
    let found: string | undefined;
    for (const entry of this.#users) {
      if (timingSafeEqual(entry.name, wanted) && found === undefined) found = entry.hash;
    }
    return found;
  }
}

function digestOf(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
