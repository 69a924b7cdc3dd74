import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { paginationInvalid } from './errors.js';
import { queryParam } from './respond.js';

/** Pages are capped so one request cannot ask for a whole huge list at once. */
export const MAX_PAGE_SIZE = 1000;
/** A body this big is streamed from the list's one Buffer rather than copied into a new one. */
const COPY_BELOW = 64 * 1024;

export interface Page {
  items: readonly string[];
  /** True when `items` is the whole list, the very array given (its JSON is kept: `wholeListJson`). */
  whole: boolean;
  /** The `Link` header value when more results follow. */
  link?: string;
}

/**
 * One page of a lexically sorted list, per distribution-spec "Listing Tags" pagination: entries
 * strictly after `last`, at most `n`, and a `Link: <path?n=&last=>; rel="next"` header while more
 * remain. Without `n` the whole list is returned (Distribution does so for tags/list, and old
 * clients never follow Link), and so does an empty `n=`; `n` above the cap is lowered to it; `n=0` is an empty page with no
 * Link (a Link there would send a client round in circles). `ns` is kept in the Link, so the next
 * page resolves to the same repository.
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
  if (n === undefined) return start === 0 ? { items: sorted, whole: true } : { items: sorted.slice(start), whole: false };
  const items = sorted.slice(start, start + n);
  const lastItem = items[items.length - 1];
  if (lastItem === undefined || start + n >= sorted.length) return { items, whole: false };
  return { items, whole: false, link: nextLink(request, path, { n: String(n), last: lastItem }) };
}

/** `<path?query>; rel="next"` (RFC 8288), with the request's `ns` after `query`. */
export function nextLink(request: FastifyRequest, path: string, query: Record<string, string | undefined>): string {
  const params = { ...query, ns: queryParam(request, 'ns') };
  const search = Object.entries(params).flatMap(([key, value]) => (value === undefined ? [] : [`${key}=${encodeURIComponent(value)}`]));
  return `<${path}?${search.join('&')}>; rel="next"`;
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

/**
 * The JSON text of one whole list (a snapshot's tags, the catalog's names), built at most once,
 * by the first GET that needs it; its byte length is known without building it, for HEAD.
 */
export class ListJson {
  readonly #list: readonly string[];
  #bytes: Buffer | undefined;
  #length: number | undefined;

  constructor(list: readonly string[]) {
    this.#list = list;
  }

  /** True once the text was built. */
  get built(): boolean {
    return this.#bytes !== undefined;
  }

  get length(): number {
    if (this.#bytes !== undefined) return this.#bytes.length;
    // `[`, `]` and the commas, then each item as JSON.stringify writes it.
    this.#length ??= this.#list.reduce((sum, item) => sum + Buffer.byteLength(JSON.stringify(item)), Math.max(2, this.#list.length + 1));
    return this.#length;
  }

  bytes(): Buffer {
    this.#bytes ??= Buffer.from(JSON.stringify(this.#list));
    return this.#bytes;
  }
}

// Per list object: a snapshot's tags live as long as its version of index.json is served, the
// catalog's names while the store's list is unchanged; the text goes with them.
const wholeLists = new WeakMap<readonly string[], ListJson>();

/** The kept JSON of the whole list `list` (the same object for as long as `list` lives). */
export function wholeListJson(list: readonly string[]): ListJson {
  let json = wholeLists.get(list);
  if (json === undefined) {
    json = new ListJson(list);
    wholeLists.set(list, json);
  }
  return json;
}

/**
 * Sends `head` + the page's items as a JSON array + `tail` (`{"name":"x","tags":` … `}`), with an
 * exact Content-Length. A whole list comes from its kept JSON (65 536 tags: 8.5 MB, once per
 * version, not once per request); HEAD builds no body at all.
 */
export function sendList(request: FastifyRequest, reply: FastifyReply, head: string, page: Page, tail: string): FastifyReply {
  if (page.link !== undefined) reply.header('link', page.link);
  reply.header('content-type', 'application/json');
  const before = Buffer.from(head);
  const after = Buffer.from(tail);
  if (!page.whole) {
    const body = Buffer.concat([before, Buffer.from(JSON.stringify(page.items)), after]);
    reply.header('content-length', body.length);
    return reply.send(request.method === 'HEAD' ? undefined : body);
  }
  const json = wholeListJson(page.items);
  reply.header('content-length', before.length + json.length + after.length);
  if (request.method === 'HEAD') return reply.send();
  const list = json.bytes();
  if (list.length < COPY_BELOW) return reply.send(Buffer.concat([before, list, after]));
  return reply.send(Readable.from([before, list, after]));
}
