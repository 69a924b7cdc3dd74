/**
 * Registry errors: one class, one table of codes (distribution-spec "Error Codes", plus the two
 * Distribution codes clients know for ranges and pagination), small factories. Handlers throw
 * these; `sendError` (respond.ts) is the only place that renders them.
 */
export const ERROR_CODES = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  DIGEST_INVALID: { status: 400, message: 'invalid digest' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  // Distribution's codes (registry/api/errcode): no spec code covers these.
  RANGE_INVALID: { status: 416, message: 'invalid content range' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  UNKNOWN: { status: 500, message: 'unknown error' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error a client gets as `{"errors":[{code, message, detail}]}` with `status`. */
export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Headers the answer needs (WWW-Authenticate, Allow, Content-Range). */
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, status: number, message: string, detail?: unknown, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'RegistryError';
    this.code = code;
    this.status = status;
    this.detail = detail;
    this.headers = headers;
  }

  /** The spec's error body. */
  body(): string {
    const error = { code: this.code, message: this.message, ...(this.detail !== undefined && { detail: this.detail }) };
    return JSON.stringify({ errors: [error] });
  }
}

function registryError(code: ErrorCode, detail?: unknown, headers?: Record<string, string>): RegistryError {
  const { status, message } = ERROR_CODES[code];
  return new RegistryError(code, status, message, detail, headers);
}

/** Names and references echoed in details are capped: a hostile URL is not worth echoing whole. */
function echo(value: string): string {
  return value.length > 300 ? `${value.slice(0, 300)}…` : value;
}

export const blobUnknown = (digest: string): RegistryError => registryError('BLOB_UNKNOWN', { digest });

export const manifestUnknown = (name: string, reference: string): RegistryError =>
  registryError('MANIFEST_UNKNOWN', { name, reference: echo(reference) });

export const nameUnknown = (name: string): RegistryError => registryError('NAME_UNKNOWN', { name });

/** A host-less name held under several registries, or by several sources: refused, never guessed. */
export const nameAmbiguous = (name: string, candidates: string[]): RegistryError =>
  registryError('NAME_UNKNOWN', {
    name,
    reason: `"${name}" is held by more than one repository; ask for one by its registry (e.g. /v2/${candidates[0] ?? 'HOST/PATH'}/…) or send ?ns=HOST`,
    candidates: candidates.slice(0, 20),
  });

export const nameInvalid = (name: string, reason: string): RegistryError => registryError('NAME_INVALID', { name: echo(name), reason });

export const digestInvalid = (digest: string, reason: string): RegistryError => registryError('DIGEST_INVALID', { digest: echo(digest), reason });

/** Write methods: cartorio is read-only (DESIGN §4). */
export const writeUnsupported = (method: string): RegistryError =>
  registryError('UNSUPPORTED', { method, reason: 'this registry is read-only' }, { allow: 'GET, HEAD' });

/** A path under /v2/ that is no route of the API; UNSUPPORTED is the spec's code for it. */
export const routeUnknown = (path: string): RegistryError =>
  new RegistryError('UNSUPPORTED', 404, 'no such route in the registry API', { path: echo(path) });

export const unauthorized = (realm: string): RegistryError =>
  registryError('UNAUTHORIZED', undefined, { 'www-authenticate': `Basic realm="${realm}"` });

/** Every password check is busy (a flood of credentials): try again after `seconds`. */
export const tooManyRequests = (seconds: number): RegistryError =>
  registryError('TOOMANYREQUESTS', { reason: 'too many credentials are waiting to be checked; try again shortly' }, { 'retry-after': String(seconds) });

export const rangeInvalid = (range: string, size: number): RegistryError =>
  registryError('RANGE_INVALID', { range: echo(range), size }, { 'content-range': `bytes */${size}` });

export const paginationInvalid = (value: string): RegistryError =>
  registryError('PAGINATION_NUMBER_INVALID', { n: echo(value), reason: 'n must be a non-negative integer' });

/** A URL longer than any route of the API needs (RFC 9110 §15.5.15). */
export const uriTooLong = (limit: number): RegistryError =>
  new RegistryError('UNSUPPORTED', 414, 'the request URL is too long', { limit });

/** A 4xx from fastify itself (malformed URL, bad header); its message is safe to show, capped. */
export const badRequest = (status: number, message: string): RegistryError => new RegistryError('UNSUPPORTED', status, echo(message));

/** Anything unexpected: logged in full by the caller, answered with no internals. */
export const internalError = (): RegistryError => registryError('UNKNOWN');
