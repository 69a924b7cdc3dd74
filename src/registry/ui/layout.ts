import { BEHAVIOUR, FAVICON, STYLESHEET } from './assets.js';
import { type Html, type Interpolation, html, trusted } from './html.js';

/** One step of the breadcrumb trail: a link, or the current page (no href). */
export interface Crumb {
  label: string;
  href?: string;
}

/** A whole page: one stylesheet, one deferred script, no inline code (the CSP forbids it). */
export function page(title: string, crumbs: Crumb[], body: Interpolation): Html {
  return html`${trusted('<!doctype html>')}
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title} &middot; cartorio</title>
<link rel="icon" href="${FAVICON.path}" type="image/svg+xml">
<link rel="stylesheet" href="${STYLESHEET.path}">
<script src="${BEHAVIOUR.path}" defer></script>
</head>
<body>
<header class="top"><div class="in">
<a class="brand" href="/"><img src="${FAVICON.path}" alt="">cartorio</a>
${crumbs.length > 0 && html`<nav class="crumbs" aria-label="Breadcrumb">${crumbs.map((crumb) => html`<span class="sep">/</span>${crumb.href !== undefined ? html`<a href="${crumb.href}">${crumb.label}</a>` : html`<span aria-current="page">${crumb.label}</span>`}`)}</nav>`}
</div></header>
<main id="main">
${body}
</main>
<footer>Read-only registry &middot; pull API at <code>/v2/</code></footer>
</body>
</html>
`;
}

/** `1.2 MB`: decimal units, as registries and `docker images` print sizes. */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** A config's `created` as `2024-05-01 12:00 UTC` (in a <time> element), or a dash. */
export function formatDate(created: string | undefined): Html {
  const time = created === undefined ? NaN : Date.parse(created);
  if (Number.isNaN(time)) return html`<span class="muted">&mdash;</span>`;
  const iso = new Date(time).toISOString();
  return html`<time datetime="${iso}">${iso.slice(0, 16).replace('T', ' ')} UTC</time>`;
}

/** `sha256:0123456789ab`: enough to tell digests apart on a page. */
export function shortDigest(digest: string): string {
  return digest.slice(0, 'sha256:'.length + 12);
}

/** Text with a copy button (added by the script): the text itself is shown, so it copies without JS. */
export function copyable(text: string, label: string, shown: Interpolation = html`<code>${text}</code>`): Html {
  return html`<span class="copy" data-copy="${text}" data-copy-label="${label}">${shown}</span>`;
}

/** A command in a box of its own (a <pre> cannot sit in a <span>), with its copy button. */
export function copyableBlock(text: string, label: string): Html {
  return html`<div class="copy" data-copy="${text}" data-copy-label="${label}"><pre class="cmd">${text}</pre></div>`;
}

/** A digest shown short, the whole one in its title and copied by the button. */
export function digestCell(digest: string): Html {
  return copyable(digest, 'digest', html`<code title="${digest}">${shortDigest(digest)}</code>`);
}

/** Query string from parameters, leaving out empty ones. */
export function query(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== '' && value !== 1) search.set(key, String(value));
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}

/** The page path of repository `name` (its components percent-encoded, slashes kept readable). */
export function repositoryHref(name: string): string {
  return `/r/${name.split('/').map(encodeURIComponent).join('/')}`;
}
