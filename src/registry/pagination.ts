import type { FastifyRequest } from 'fastify';
import { paginationInvalid } from './errors.js';
import { queryParam } from './respond.js';

/** Pages are capped so one request cannot ask for a whole huge list at once. */
export const MAX_PAGE_SIZE = 1000;

export interface Page {
  items: string[];
  /** The `Link` header value when more results follow. */
  link?: string;
}

/**
 * One page of a lexically sorted list, per distribution-spec "Listing Tags" pagination: entries
 * strictly after `last`, at most `n`, and a `Link: <path?n=&last=>; rel="next"` header while more
 * remain. Without `n` the whole list is returned (Distribution does so for tags/list, and old
 * clients never follow Link), and so does an empty `n=`; `n` above the cap is lowered to it; `n=0` is an empty page with no
 * Link (a Link there would send a client round in circles).
 */
export function paginate(request: FastifyRequest, sorted: readonly string[], path: string): Page {
  const rawN = queryParam(request, 'n');
  const last = queryParam(request, 'last');
  let n: number | undefined;
  if (rawN !== undefined && rawN !== '') {
    if (!/^\d{1,9}$/.test(rawN)) throw paginationInvalid(rawN);
    n = Math.min(Number(rawN), MAX_PAGE_SIZE);
  }
  const start = last === undefined ? 0 : firstAfter(sorted, last);
  if (n === undefined) return { items: sorted.slice(start) };
  const items = sorted.slice(start, start + n);
  const lastItem = items[items.length - 1];
  if (lastItem === undefined || start + n >= sorted.length) return { items };
  return { items, link: `<${path}?n=${n}&last=${encodeURIComponent(lastItem)}>; rel="next"` };
}

// Index of the first entry greater than `last` (binary search; the list is sorted).
function firstAfter(sorted: readonly string[], last: string): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((sorted[mid] ?? '') <= last) low = mid + 1;
    else high = mid;
  }
  return low;
}
