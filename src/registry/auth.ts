import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { compare } from 'bcryptjs';
import { RegistryError, unauthorized } from './errors.js';

/** Users and their bcrypt hashes, from an htpasswd file. */
export type Htpasswd = ReadonlyMap<string, string>;

export const DEFAULT_REALM = 'cartorio';

const BCRYPT = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;
/** Verified credentials are remembered so a pull (dozens of requests) costs one bcrypt, not dozens. */
const MAX_REMEMBERED = 1024;
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

/**
 * HTTP Basic authentication (RFC 7617) against an htpasswd. Returns undefined when the request
 * may go on, else the 401 to send; a Docker client reads the realm from `WWW-Authenticate`.
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
  readonly #cacheKey = randomBytes(32);

  constructor(users: Htpasswd, realm = DEFAULT_REALM) {
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
    const colon = decoded.indexOf(':');
    if (colon < 0) return unauthorized(this.#realm);
    const hash = this.#find(decoded.slice(0, colon));
    const ok = await compare(decoded.slice(colon + 1), hash ?? this.#dummyHash);
    if (!ok || hash === undefined) return unauthorized(this.#realm);
    if (this.#remembered.size >= MAX_REMEMBERED) this.#remembered.clear();
    this.#remembered.add(key);
    return undefined;
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
