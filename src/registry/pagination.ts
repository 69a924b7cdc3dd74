import { Readable } from 'node:stream';
import type { PullReply, PullRequest } from './exchange.js';
import { paginationInvalid } from './errors.js';
import { queryParam } from './respond.js';

/** Pages are capped so one request cannot ask for a whole huge list at once. */
export const MAX_PAGE_SIZE = 1000;
/** A body this big is streamed from the list's one Buffer rather than copied into a new one. */
const COPY_BELOW = 64 * 1024;

/**
 * A page: a slice of at most MAX_PAGE_SIZE items (with `n`), or, without `n`, everything from
 * `start` of the very list given, sent from the JSON kept for it (`wholeListJson`).
 */
export type Page =
  | { items: readonly string[]; link?: string }
  | { list: readonly string[]; start: number };

/**
 * One page of a lexically sorted list, per distribution-spec "Listing Tags" pagination: entries
 * strictly after `last`, at most `n`, and a `Link: <path?n=&last=>; rel="next"` header while more
 * remain. Without `n` the whole list is returned (Distribution does so for tags/list, and old
 * clients never follow Link), and so does an empty `n=`; `n` above the cap is lowered to it; `n=0` is an empty page with no
 * Link (a Link there would send a client round in circles). `ns` is kept in the Link, so the next
 * page resolves to the same repository.
 */
export function paginate(request: PullRequest, sorted: readonly string[], path: string): Page {
  const rawN = queryParam(request, 'n');
  const last = queryParam(request, 'last');
  let n: number | undefined;
  if (rawN !== undefined && rawN !== '') {
    if (!/^\d{1,9}$/.test(rawN)) throw paginationInvalid(rawN);
    n = Math.min(Number(rawN), MAX_PAGE_SIZE);
  }
  const start = last === undefined ? 0 : firstAfter(sorted, last, (item) => item);
  if (n === undefined) return { list: sorted, start };
  const items = sorted.slice(start, start + n);
  const lastItem = items[items.length - 1];
  if (lastItem === undefined || start + n >= sorted.length) return { items };
  return { items, link: nextLink(request, path, { n: String(n), last: lastItem }) };
}

/** `<path?query>; rel="next"` (RFC 8288), with the request's `ns` after `query`. */
export function nextLink(request: PullRequest, path: string, query: Record<string, string | undefined>): string {
  const params = { ...query, ns: queryParam(request, 'ns') };
  const search = Object.entries(params).flatMap(([key, value]) => (value === undefined ? [] : [`${key}=${encodeURIComponent(value)}`]));
  return `<${path}?${search.join('&')}>; rel="next"`;
}

/** Index of the first entry whose key sorts after `last` (binary search; the list is sorted by that key). */
export function firstAfter<T>(sorted: readonly T[], last: string, key: (item: T) => string): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    const item = sorted[mid];
    if (item !== undefined && key(item) <= last) low = mid + 1;
    else high = mid;
  }
  return low;
}

/**
 * The JSON text of one whole list (a snapshot's tags, the catalog's names), built at most once,
 * by the first GET that needs it, with where each item starts in it, so the list from any item on
 * (`?last=` without `n`) is a view of the same bytes. Byte lengths are known without the text, for HEAD.
 */
export class ListJson {
  readonly #list: readonly string[];
  #bytes: Buffer | undefined;
  /** Where item i starts in the text; the last entry is where `]` is. */
  #offsets: Uint32Array | undefined;

  constructor(list: readonly string[]) {
    this.#list = list;
  }

  /** True once the text was built. */
  get built(): boolean {
    return this.#bytes !== undefined;
  }

  /** The byte length of the JSON array of the items from `start` on. */
  length(start = 0): number {
    const offsets = this.#offsetsOf();
    const end = (offsets[offsets.length - 1] ?? 1) + 1;
    return start === 0 ? end : start >= this.#list.length ? 2 : 1 + end - (offsets[start] ?? end);
  }

  /** The JSON array of the items from `start` on: views of the one kept text, never a copy of it. */
  bytes(start = 0): Buffer[] {
    const offsets = this.#offsetsOf();
    this.#bytes ??= Buffer.from(JSON.stringify(this.#list));
    if (start === 0) return [this.#bytes];
    if (start >= this.#list.length) return [Buffer.from('[]')];
    return [Buffer.from('['), this.#bytes.subarray(offsets[start])];
  }

  #offsetsOf(): Uint32Array {
    if (this.#offsets === undefined) {
      const count = this.#list.length;
      const offsets = new Uint32Array(count + 1);
      // After `[`, each item as JSON.stringify writes it, and a comma between two.
      let at = 1;
      this.#list.forEach((item, i) => {
        offsets[i] = at;
        at += Buffer.byteLength(JSON.stringify(item)) + (i < count - 1 ? 1 : 0);
      });
      offsets[count] = at;
      this.#offsets = offsets;
    }
    return this.#offsets;
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
 * exact Content-Length. A list without `n` comes from its kept JSON (65 536 tags: 8.5 MB, once per
 * version, not once per request, also from a `last`); HEAD builds no body at all.
 */
export function sendList(request: PullRequest, reply: PullReply, head: string, page: Page, tail: string): PullReply {
  reply.header('content-type', 'application/json');
  const before = Buffer.from(head);
  const after = Buffer.from(tail);
  if ('items' in page) {
    if (page.link !== undefined) reply.header('link', page.link);
    const body = Buffer.concat([before, Buffer.from(JSON.stringify(page.items)), after]);
    reply.header('content-length', body.length);
    return reply.send(request.method === 'HEAD' ? undefined : body);
  }
  const json = wholeListJson(page.list);
  const length = before.length + json.length(page.start) + after.length;
  reply.header('content-length', length);
  if (request.method === 'HEAD') return reply.send();
  const parts = [before, ...json.bytes(page.start), after];
  if (length < COPY_BELOW) return reply.send(Buffer.concat(parts));
  return reply.send(Readable.from(parts));
}
