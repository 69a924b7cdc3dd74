import { readBody, type HttpResponse } from './http-transport.js';

/** The registry's own error, from the distribution-spec body `{"errors":[{code,message,detail}]}`. */
export interface RegistryErrorBody {
  code: string;
  message: string;
}

/**
 * A failed registry call, with a one-line message naming the method, the URL (never
 * credentials or query strings, which may hold upload state or signatures), the status and
 * the registry's error code and message, e.g.
 * `PUT http://127.0.0.1:5001/v2/app/manifests/1: 401 UNAUTHORIZED authentication required — check source.store.username/password`.
 */
export class RegistryClientError extends Error {
  override name = 'RegistryClientError';

  constructor(
    message: string,
    readonly method: string,
    readonly url: string,
    readonly status?: number,
    readonly code?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

const MAX_ERROR_BODY = 64 * 1024;
const AUTH_HINT = 'check source.store.username/password';

/** A URL as shown in errors and logs: origin and path only. */
export function displayUrl(url: URL): string {
  return url.origin + url.pathname;
}

/** Builds the error for an unexpected response, reading (at most 64 KiB of) its body. */
export async function responseError(method: string, res: HttpResponse, context?: string): Promise<RegistryClientError> {
  const body = method === 'HEAD' ? Buffer.alloc(0) : await readBody(res, MAX_ERROR_BODY).catch(() => Buffer.alloc(0));
  const registryError = parseErrorBody(body);
  const what = registryError
    ? `${registryError.code} ${registryError.message}`.trim()
    : (res.body.statusMessage ?? '') || body.toString('utf8', 0, 200).replace(/\s+/g, ' ').trim();
  const hint = res.status === 401 || res.status === 403 ? AUTH_HINT : undefined;
  const where = `${method} ${displayUrl(res.url)}`;
  const line = [`${where}: ${res.status}`, what, context].filter((part) => part).join(' ');
  return new RegistryClientError(hint ? `${line} — ${hint}` : line, method, displayUrl(res.url), res.status, registryError?.code);
}

/** Builds the error for a request that got no response (refused, DNS, TLS, timeout). */
export function networkError(method: string, url: URL, cause: unknown): RegistryClientError {
  const error: Partial<NodeJS.ErrnoException> = cause instanceof Error ? cause : { message: String(cause) };
  const code = typeof error.code === 'string' ? error.code : undefined;
  let hint = 'check source.store.url';
  if (code && /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS/.test(code)) hint = "trust the registry's CA: ca_certs, or a PEM in the worker's /etc/ssl/certs (SSL_CERT_DIR, SSL_CERT_FILE); or set insecure: true";
  if (code === 'EPROTO' || /wrong version number|packet length too long/i.test(error.message ?? '')) {
    hint = 'the registry may speak plain HTTP: use an http:// url or insecure: true';
  }
  // OpenSSL reports "write EPROTO 80…:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:file:line:\n";
  // keep its reason, and keep every message on one line.
  const openssl = /error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^:]+):/.exec(error.message ?? '')?.[1];
  // Node.js 24 adds "; if the root CA is installed locally, try running Node.js with
  // --use-system-ca" to certificate errors: not something a resource's user can do (ca_certs is).
  const text = openssl ? `TLS failed: ${openssl}` : String(error.message).replace(/; if the root CA is installed locally, try running Node\.js with --use-system-ca$/, '').replace(/\s+/g, ' ').trim();
  const reason = code && !text.includes(code) ? `${text} (${code})` : text;
  return new RegistryClientError(`${method} ${displayUrl(url)}: ${reason} — ${hint}`, method, displayUrl(url), undefined, code, { cause });
}

/** The first error of a distribution-spec error body, if the body is one. */
export function parseErrorBody(body: Buffer): RegistryErrorBody | undefined {
  try {
    const data = JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const first = data.errors?.[0];
    if (!first || typeof first.code !== 'string') return undefined;
    return { code: first.code, message: typeof first.message === 'string' ? first.message : '' };
  } catch {
    return undefined;
  }
}

/** The error codes of a response body, for callers that branch on them (404 NAME_UNKNOWN…). */
export async function errorCodes(res: HttpResponse): Promise<string[]> {
  const body = await readBody(res, MAX_ERROR_BODY).catch(() => Buffer.alloc(0));
  try {
    const data = JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: unknown }> };
    return (data.errors ?? []).map((e) => (typeof e.code === 'string' ? e.code : '')).filter((c) => c);
  } catch {
    return [];
  }
}
