import { displayUrl, networkError, responseError, RegistryClientError } from './errors.js';
import { header, readBody, type HttpResponse, type HttpTransport } from './http-transport.js';
import { covers, scopeSet, scopeStrings, type ScopeSet } from './scopes.js';

/** Registry credentials (`source.store.username` / `password`). */
export interface Credentials {
  username: string;
  password: string;
}

/** One challenge of a `WWW-Authenticate` header (RFC 9110 §11.6.1); scheme lowercased. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

const TOKEN = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;
const MAX_TOKEN_RESPONSE = 1024 * 1024;
/** Docker's token spec: "If omitted, a default of 60 seconds should be assumed." */
const DEFAULT_TOKEN_SECONDS = 60;
/** Renew a little early so a token does not expire between being chosen and being checked. */
const EXPIRY_MARGIN_MS = 10_000;

/**
 * Parses a `WWW-Authenticate` value, which may hold several challenges and quoted parameters
 * with commas inside (`scope="repository:app:pull,push"`).
 */
export function parseChallenges(value: string): Challenge[] {
  const challenges: Challenge[] = [];
  let current: Challenge | undefined;
  let i = 0;
  const skip = (chars: string): void => {
    while (i < value.length && chars.includes(value[i] ?? '')) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < value.length && TOKEN.test(value[i] ?? '')) i++;
    return value.slice(start, i);
  };
  while (i < value.length) {
    skip(' \t,');
    const name = token();
    if (name === '') {
      i++;
      continue;
    }
    skip(' \t');
    if (current && value[i] === '=') {
      i++;
      skip(' \t');
      // RFC 9110 allows only a token unquoted; be lenient about unquoted URLs.
      current.params[name.toLowerCase()] = value[i] === '"' ? quoted() : bare();
    } else {
      current = { scheme: name.toLowerCase(), params: {} };
      challenges.push(current);
    }
  }
  return challenges;

  function bare(): string {
    const start = i;
    while (i < value.length && !', \t'.includes(value[i] ?? '')) i++;
    return value.slice(start, i);
  }

  function quoted(): string {
    let out = '';
    for (i++; i < value.length && value[i] !== '"'; i++) {
      if (value[i] === '\\') i++;
      out += value[i] ?? '';
    }
    i++;
    return out;
  }
}

/** The Basic `Authorization` value for credentials (RFC 7617). */
export function basicAuthorization(credentials: Credentials): string {
  return 'Basic ' + Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64');
}

/**
 * Chooses the `Authorization` header for each request and reacts to 401 challenges:
 * Basic (send the credentials from then on) or Bearer (Docker token auth: GET the realm with
 * `service` and `scope`, with the credentials if any, and cache the token per scope set).
 * https://distribution.github.io/distribution/spec/auth/token/
 */
export class Authenticator {
  readonly #credentials: Credentials | undefined;
  readonly #transport: HttpTransport;
  readonly #log: ((line: string) => void) | undefined;
  /** Newest last; a token is used for any request whose scopes its own cover. */
  readonly #tokens: Array<{ value: string; expiresAt: number; scopes: ScopeSet }> = [];
  #useBasic = false;

  constructor(credentials: Credentials | undefined, transport: HttpTransport, log?: (line: string) => void) {
    this.#credentials = credentials;
    this.#transport = transport;
    this.#log = log;
  }

  /** The header to send for an operation needing `scopes`, once the registry's scheme is known. */
  authorization(scopes: string[]): string | undefined {
    const need = scopeSet(scopes);
    const now = Date.now();
    for (let i = this.#tokens.length - 1; i >= 0; i--) {
      const token = this.#tokens[i];
      if (token && token.expiresAt > now && covers(token.scopes, need)) return `Bearer ${token.value}`;
    }
    if (this.#useBasic && this.#credentials) return basicAuthorization(this.#credentials);
    return undefined;
  }

  /**
   * Handles a 401: returns true when new credentials were obtained and the request is worth
   * one retry, false when nothing more can be done (no credentials, or Basic already refused).
   */
  async onUnauthorized(res: HttpResponse, scopes: string[]): Promise<boolean> {
    const challenges = parseChallenges(header(res, 'www-authenticate') ?? '');
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params['realm']);
    if (bearer) {
      // The registry's scope names what this request needs (it may add a mount's source repo);
      // ours names what the whole operation needs. Ask for both, merged per repository.
      await this.#fetchToken(bearer, scopeSet([...scopes, ...(bearer.params['scope']?.split(' ') ?? [])]));
      return true;
    }
    if (challenges.some((c) => c.scheme === 'basic') && this.#credentials && !this.#useBasic) {
      this.#useBasic = true;
      return true;
    }
    return false;
  }

  async #fetchToken(challenge: Challenge, wanted: ScopeSet): Promise<void> {
    const scopes = scopeStrings(wanted);
    let url: URL;
    try {
      url = new URL(challenge.params['realm'] ?? '');
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('not http(s)');
    } catch {
      throw new RegistryClientError(`registry asked for a token from an invalid realm "${challenge.params['realm']}"`, 'GET', String(challenge.params['realm']));
    }
    if (challenge.params['service']) url.searchParams.set('service', challenge.params['service']);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#credentials) {
      headers['authorization'] = basicAuthorization(this.#credentials);
      url.searchParams.set('account', this.#credentials.username);
    }
    let res: HttpResponse;
    try {
      res = await this.#transport.send({ method: 'GET', url, headers });
    } catch (error) {
      throw networkError('GET', url, error);
    }
    this.#log?.(`GET ${displayUrl(url)} → ${res.status} (token for ${scopes.join(' ') || 'no scope'})`);
    if (res.status !== 200) throw await responseError('GET', res, '(token request)');
    const body = await readBody(res, MAX_TOKEN_RESPONSE);
    let data: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      data = JSON.parse(body.toString('utf8')) as typeof data;
    } catch {
      throw new RegistryClientError(`GET ${displayUrl(url)}: token response is not JSON`, 'GET', displayUrl(url), res.status);
    }
    const value = typeof data.token === 'string' && data.token ? data.token : data.access_token;
    if (typeof value !== 'string' || value === '') {
      throw new RegistryClientError(`GET ${displayUrl(url)}: token response has no "token"`, 'GET', displayUrl(url), res.status);
    }
    const seconds = typeof data.expires_in === 'number' && data.expires_in > 0 ? data.expires_in : DEFAULT_TOKEN_SECONDS;
    const issued = typeof data.issued_at === 'string' ? Date.parse(data.issued_at) : NaN;
    // Trust our clock over the server's issued_at when they disagree by much (skewed servers).
    const start = Number.isFinite(issued) && Math.abs(issued - Date.now()) < 60_000 ? issued : Date.now();
    this.#tokens.push({ value, expiresAt: start + seconds * 1000 - Math.min(EXPIRY_MARGIN_MS, seconds * 500), scopes: wanted });
    // Keep the cache small: drop expired tokens.
    for (let i = this.#tokens.length - 1; i >= 0; i--) if ((this.#tokens[i]?.expiresAt ?? 0) <= Date.now()) this.#tokens.splice(i, 1);
  }
}
