import type { ServedImages } from '../../store/image-source.js';
import { mapLimit } from '../../store/parallel.js';
import type { RepositorySnapshot } from '../../store/snapshot.js';
import { type Html, html } from './html.js';
import { ImageReader } from './image-facts.js';
import { formatBytes, formatDate, page, query, repositoryHref } from './layout.js';
import { LOCAL_HOST, hostOf } from './pull-commands.js';

/** Rows per page: ~450 bytes of HTML each, so a page stays near 50 KB whatever the store holds. */
export const HOME_PAGE_SIZE = 100;
/** The newest tag is looked for among at most this many images of a repository (the tags that sort last). */
const NEWEST_SCAN = 16;
/** Repositories whose details are read at once for one page. */
const ROW_PARALLELISM = 8;

export interface HomeRequest {
  /** Substring of the name, case-insensitive. */
  q: string;
  /** Only names of this registry host (`-`: names with none). */
  host?: string;
  page: number;
}

interface Row {
  name: string;
  host: string;
  tags: number;
  newest?: { tag: string; created?: string };
  size?: number;
  problem?: string;
}

/** Names grouped by registry host, derived once per version of the name list. */
interface HostIndex {
  hosts: [string, number][];
  byHost: Map<string, string[]>;
}

const hostIndexes = new WeakMap<readonly string[], HostIndex>();
const rows = new WeakMap<RepositorySnapshot, Promise<Row>>();
export const naturalOrder = new Intl.Collator('en', { numeric: true }).compare;

/** The home page: one page of the sorted catalog, filtered; details read only for its rows. */
export async function renderHome(images: ServedImages, request: HomeRequest): Promise<Html> {
  const names = await images.repositoryNames();
  const index = hostIndex(names);
  const scoped = request.host !== undefined ? (index.byHost.get(request.host) ?? []) : names;
  const needle = request.q.toLowerCase();
  const matched = needle === '' ? scoped : scoped.filter((name) => name.includes(needle));
  const pages = Math.max(1, Math.ceil(matched.length / HOME_PAGE_SIZE));
  const number = Math.min(Math.max(1, request.page), pages);
  const start = (number - 1) * HOME_PAGE_SIZE;
  const shown = await mapLimit(matched.slice(start, start + HOME_PAGE_SIZE), ROW_PARALLELISM, (name) => rowOf(images, name));
  const hostCount = index.hosts.filter(([host]) => host !== LOCAL_HOST).length;
  const body = html`<h1>Repositories</h1>
<p class="sub">${names.length.toLocaleString('en')} ${names.length === 1 ? 'repository' : 'repositories'}${hostCount > 0 && html` from ${hostCount} ${hostCount === 1 ? 'registry' : 'registries'}`} &middot; pull with any OCI client from this address</p>
<form id="search" class="search" method="get" action="/" role="search">
<input type="search" name="q" value="${request.q}" placeholder="Filter repositories by name" aria-label="Filter repositories by name" autocomplete="off" spellcheck="false">
${index.hosts.length > 1 && html`<select name="host" aria-label="Registry">
<option value="">All registries</option>
${index.hosts.map(([host, count]) => html`<option value="${host}"${host === request.host && html` selected`}>${hostLabel(host)} (${count.toLocaleString('en')})</option>`)}
</select>`}
<button type="submit">Search</button>
</form>
<div id="results">
${index.hosts.length > 1 && html`<ul class="hosts" aria-label="Registries">
<li><a href="/${query({ q: request.q })}"${request.host === undefined && html` aria-current="true"`}>All<span class="n">${names.length.toLocaleString('en')}</span></a></li>
${index.hosts.map(([host, count]) => html`<li><a href="/${query({ q: request.q, host })}"${host === request.host && html` aria-current="true"`}>${hostLabel(host)}<span class="n">${count.toLocaleString('en')}</span></a></li>`)}
</ul>`}
${matched.length === 0
    ? html`<div class="table"><p class="empty">${names.length === 0 ? 'No images yet: load some with cartorio load.' : html`No repository matches &ldquo;${request.q}&rdquo;.`}</p></div>`
    : html`<div class="table"><table>
<thead><tr><th scope="col">Repository</th><th scope="col" class="hide-narrow">Registry</th><th scope="col" class="num">Tags</th><th scope="col">Newest tag</th><th scope="col" class="num">Size</th><th scope="col" class="hide-narrow">Created</th></tr></thead>
<tbody>
${shown.map(renderRow)}
</tbody></table></div>`}
${pager(request, number, pages, start, shown.length, matched.length)}
</div>`;
  return page('Repositories', [], body);
}

function renderRow(row: Row): Html {
  return html`<tr><td class="name"><a href="${repositoryHref(row.name)}">${row.name}</a>${row.problem !== undefined && html` <span class="warn" title="${row.problem}">(unreadable)</span>`}</td>
<td class="hide-narrow">${row.host === LOCAL_HOST ? html`<span class="muted">&mdash;</span>` : html`<span class="host">${row.host}</span>`}</td>
<td class="num">${row.tags.toLocaleString('en')}</td>
<td>${row.newest ? html`<span class="tag">${row.newest.tag}</span>` : html`<span class="muted">&mdash;</span>`}</td>
<td class="num">${row.size === undefined ? '—' : formatBytes(row.size)}</td>
<td class="hide-narrow">${formatDate(row.newest?.created)}</td></tr>
`;
}

function pager(request: HomeRequest, number: number, pages: number, start: number, shown: number, total: number): Html {
  if (total === 0) return html``;
  const pageLink = (to: number, label: string, rel: string): Html => html`<a href="/${query({ q: request.q, host: request.host, page: to })}" rel="${rel}">${label}</a>`;
  return html`<nav class="pager" aria-label="Pages">
<span>${number > 1 ? pageLink(number - 1, '← Previous', 'prev') : ''}</span>
<span>${(start + 1).toLocaleString('en')}&ndash;${(start + shown).toLocaleString('en')} of ${total.toLocaleString('en')}${pages > 1 && ` · page ${number} of ${pages}`}</span>
<span>${number < pages ? pageLink(number + 1, 'Next →', 'next') : ''}</span>
</nav>`;
}

function hostLabel(host: string): string {
  return host === LOCAL_HOST ? 'no registry host' : host;
}

function hostIndex(names: readonly string[]): HostIndex {
  const known = hostIndexes.get(names);
  if (known) return known;
  const byHost = new Map<string, string[]>();
  for (const name of names) {
    const host = hostOf(name);
    const list = byHost.get(host);
    if (list) list.push(name);
    else byHost.set(host, [name]);
  }
  const hosts = [...byHost].map(([host, list]): [string, number] => [host, list.length]).sort(([a], [b]) => (a === LOCAL_HOST ? 1 : b === LOCAL_HOST ? -1 : a < b ? -1 : 1));
  const made = { hosts, byHost };
  hostIndexes.set(names, made);
  return made;
}

// One row per snapshot version: a repository whose index.json did not change is not read again.
async function rowOf(images: ServedImages, name: string): Promise<Row> {
  const host = hostOf(name);
  const resolved = await images.resolve(name);
  if (resolved.kind !== 'found') return { name, host, tags: 0, problem: resolved.kind === 'ambiguous' ? 'held by more than one source' : 'no longer served' };
  const snapshot = await resolved.source.repository(name).catch(() => undefined);
  if (!snapshot) return { name, host, tags: 0, problem: 'index.json could not be read' };
  let row = rows.get(snapshot);
  if (!row) {
    row = readRow(new ImageReader(resolved.source, snapshot), snapshot, host);
    rows.set(snapshot, row);
  }
  return row;
}

async function readRow(reader: ImageReader, snapshot: RepositorySnapshot, host: string): Promise<Row> {
  const row: Row = { name: snapshot.name, host, tags: snapshot.tags.length };
  try {
    let size = 0;
    for (const bytes of (await snapshot.contents()).blobs.values()) size += bytes;
    row.size = size;
  } catch (error) {
    row.problem = (error as Error).message;
  }
  // Tags that sort last name the newest images in most schemes (1.2 < 1.10, dates); of those, the newest created wins.
  const byDigest = new Map<string, string>();
  const ordered = [...snapshot.tags].sort(naturalOrder).reverse();
  for (const tag of ordered) {
    const digest = snapshot.tagged.get(tag);
    if (digest !== undefined && !byDigest.has(digest)) byDigest.set(digest, tag);
    if (byDigest.size >= NEWEST_SCAN) break;
  }
  let newest: Row['newest'];
  for (const [digest, tag] of byDigest) {
    const created = await reader.created(digest);
    if (!newest || later(created, newest.created)) newest = { tag, ...(created !== undefined && { created }) };
  }
  if (newest) row.newest = newest;
  return row;
}

// Configs write `created` in RFC 3339 with any offset: compared as times, an unreadable one never wins.
function later(a: string | undefined, b: string | undefined): boolean {
  const time = a === undefined ? NaN : Date.parse(a);
  if (Number.isNaN(time)) return false;
  const other = b === undefined ? NaN : Date.parse(b);
  return Number.isNaN(other) || time > other;
}

