import { header, type HttpResponse } from './http-transport.js';

/** How often and how long to retry a registry call that failed in a way worth retrying. */
export interface RetryPolicy {
  /** Tries in all, the first included. */
  attempts: number;
  /** Wait before the first retry; doubled for each further one. */
  baseMs: number;
  /** No wait is longer than this, whatever the backoff or `Retry-After` says. */
  maxMs: number;
}

/** 1, 2, 4, 8 s: five tries over about 15 s, the span of a registry restart or a proxy hiccup. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseMs: 1000, maxMs: 30_000 };

/**
 * Errors of a connection that worked and then broke, or of a name lookup that failed for now.
 * Refused connections, unknown hosts and TLS errors are configuration, and are not retried.
 */
const RETRYABLE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN', 'ERR_STREAM_PREMATURE_CLOSE', 'IDLE_TIMEOUT']);

/** 429 Too Many Requests and 5xx, except 501/505 (the server will never do it). */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599 && status !== 501 && status !== 505);
}

/** True when `error` (or an error it wraps) is a transient network failure. */
export function isRetryableError(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    const code = (current as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && RETRYABLE_CODES.has(code)) return true;
    if (/^(socket hang up|aborted)$/.test(current.message)) return true;
  }
  return false;
}

/**
 * Milliseconds to wait before retry number `retry` (1 for the first): the response's
 * `Retry-After` (seconds or an HTTP date, RFC 9110 §10.2.3) when it has one, else capped
 * exponential backoff.
 */
export function retryDelay(retry: number, policy: RetryPolicy, res?: HttpResponse): number {
  const backoff = Math.min(policy.maxMs, policy.baseMs * 2 ** (retry - 1));
  const after = res && header(res, 'retry-after')?.trim();
  if (!after) return backoff;
  const ms = /^\d+$/.test(after) ? Number(after) * 1000 : Date.parse(after) - Date.now();
  return Number.isFinite(ms) ? Math.min(policy.maxMs, Math.max(0, ms)) : backoff;
}

/** "1 s", "250 ms": how a wait is shown in the retry log line. */
export function showDelay(ms: number): string {
  return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000} s` : `${Math.round(ms)} ms`;
}
