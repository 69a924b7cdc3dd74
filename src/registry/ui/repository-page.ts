import type { Descriptor } from '../../image/oci.schema.js';
import type { ImageSource } from '../../store/image-source.js';
import type { RepositoryContents, RepositorySnapshot } from '../../store/snapshot.js';
import { mapLimit } from '../../store/parallel.js';
import { naturalOrder } from './home.js';
import { type Html, html, httpUrl } from './html.js';
import { type ImageFacts, ImageReader, type ManifestFacts } from './image-facts.js';
import { copyable, copyableBlock, digestCell, formatBytes, formatDate, page, query, repositoryHref, shortDigest } from './layout.js';
import { type Endpoint, LOCAL_HOST, hostOf, pullCommands } from './pull-commands.js';

/** Tags per page; their distinct images are shown in full (platforms, layers, referrers). */
export const TAGS_PER_PAGE = 30;
const IMAGE_PARALLELISM = 4;

/** Tags newest-looking first (natural order, reversed: v1.10 before v1.9), computed once per snapshot. */
const tagOrders = new WeakMap<RepositorySnapshot, string[]>();

/** A repository's page: its tags, one page at a time, and every image they name. */
export async function renderRepository(source: ImageSource, snapshot: RepositorySnapshot, pageNumber: number, endpoint: Endpoint): Promise<Html> {
  const name = snapshot.name;
  let ordered = tagOrders.get(snapshot);
  if (!ordered) {
    ordered = [...snapshot.tags].sort(naturalOrder).reverse();
    tagOrders.set(snapshot, ordered);
  }
  const pages = Math.max(1, Math.ceil(ordered.length / TAGS_PER_PAGE));
  const number = Math.min(Math.max(1, pageNumber), pages);
  const tags = ordered.slice((number - 1) * TAGS_PER_PAGE, number * TAGS_PER_PAGE);
  const groups = new Map<string, string[]>();
  for (const tag of tags) {
    const digest = snapshot.tagged.get(tag);
    if (digest === undefined) continue;
    const list = groups.get(digest);
    if (list) list.push(tag);
    else groups.set(digest, [tag]);
  }
  const reader = new ImageReader(source, snapshot);
  const images = await mapLimit([...groups.keys()], IMAGE_PARALLELISM, (digest) => reader.image(digest));
  const contents = await snapshot.contents().catch(() => undefined);
  const total = contents ? [...contents.blobs.values()].reduce((sum, size) => sum + size, 0) : undefined;
  const host = hostOf(name);
  const imageCount = new Set(snapshot.tagged.values()).size;
  const body = html`<h1>${name}</h1>
<p class="sub">${host !== LOCAL_HOST && html`<span class="host">${host}</span> `}${snapshot.tags.length.toLocaleString('en')} ${snapshot.tags.length === 1 ? 'tag' : 'tags'} &middot; ${imageCount.toLocaleString('en')} ${imageCount === 1 ? 'image' : 'images'}${total !== undefined && ` · ${formatBytes(total)} stored`}</p>
${tags.length === 0 ? html`<div class="table"><p class="empty">This repository has no tags.</p></div>` : html`
<h2 id="tags">Tags</h2>
<div class="table"><table>
<thead><tr><th scope="col">Tag</th><th scope="col">Digest</th><th scope="col" class="hide-narrow">Kind</th><th scope="col" class="num">Size</th><th scope="col" class="hide-narrow">Created</th></tr></thead>
<tbody>
${tags.map((tag) => {
    const digest = snapshot.tagged.get(tag) ?? '';
    const facts = images.find((image) => image.digest === digest);
    return html`<tr><td><a class="tag" href="#${anchor(digest)}">${tag}</a></td><td>${digestCell(digest)}</td><td class="hide-narrow">${facts ? kindOf(facts) : ''}</td><td class="num">${facts && facts.size > 0 ? formatBytes(facts.size) : '—'}</td><td class="hide-narrow">${formatDate(facts?.created)}</td></tr>\n`;
  })}
</tbody></table></div>
${pager(name, number, pages)}
<h2 id="images">Images</h2>
${images.map((facts, i) => renderImage(name, facts, groups.get(facts.digest) ?? [], contents, endpoint, i === 0))}
${pager(name, number, pages)}`}`;
  return page(name, [...(host !== LOCAL_HOST ? [{ label: host, href: `/${query({ host })}` }] : []), { label: name }], body);
}

function renderImage(name: string, facts: ImageFacts, tags: string[], contents: RepositoryContents | undefined, endpoint: Endpoint, first: boolean): Html {
  const referrers = contents ? referrersOf(facts, contents) : [];
  const tag = tags[0] ?? '';
  return html`<section class="image" id="${anchor(facts.digest)}" aria-label="Image ${shortDigest(facts.digest)}">
<h3>${tags.map((t) => html`<span class="tag">${t}</span>`)}</h3>
<dl class="facts">
<dt>Digest</dt><dd>${copyable(facts.digest, 'digest')}</dd>
<dt>Media type</dt><dd><code>${facts.mediaType || '—'}</code></dd>
<dt>Size</dt><dd>${facts.size > 0 ? formatBytes(facts.size) : '—'}${facts.platforms.length > 1 && html` <span class="muted">(all platforms, shared layers once)</span>`}</dd>
<dt>Created</dt><dd>${formatDate(facts.created)}</dd>
${facts.platforms.length > 0 && html`<dt>Platforms</dt><dd>${facts.platforms.filter((p) => !p.attestation).map((p) => p.platform).join(', ') || '—'}</dd>`}
${facts.problem !== undefined && html`<dt>Problem</dt><dd class="warn">${facts.problem}</dd>`}
</dl>
<details${first && html` open`}><summary>Pull commands</summary>
<h4 class="muted">By tag</h4>${commands(name, `:${tag}`, endpoint)}
<h4 class="muted">By digest</h4>${commands(name, `@${facts.digest}`, endpoint)}
</details>
${facts.platforms.length > 0 && html`<h3>Platforms</h3>
<div class="table"><table>
<thead><tr><th scope="col">Platform</th><th scope="col">Digest</th><th scope="col" class="num">Size</th><th scope="col" class="num hide-narrow">Layers</th><th scope="col" class="hide-narrow">Created</th></tr></thead>
<tbody>${facts.platforms.map((p) => html`<tr><td><code>${p.platform}</code>${p.attestation && html` <span class="muted">attestation</span>`}</td><td>${digestCell(p.manifest.digest)}</td><td class="num">${formatBytes(p.manifest.size)}</td><td class="num hide-narrow">${p.manifest.layers.length}</td><td class="hide-narrow">${formatDate(p.manifest.config?.created)}</td></tr>\n`)}</tbody>
</table></div>
${facts.platforms.filter((p) => !p.attestation).map((p) => html`<details><summary>${p.platform}: labels and layers</summary>${manifestDetails(p.manifest)}</details>`)}`}
${facts.manifest && manifestDetails(facts.manifest)}
${facts.annotations.length > 0 && html`<h3>Annotations</h3>${keyValues(facts.annotations)}`}
${referrers.length > 0 && html`<h3>Attached artifacts</h3>
<div class="table"><table>
<thead><tr><th scope="col">Artifact type</th><th scope="col">Digest</th><th scope="col" class="num">Size</th><th scope="col" class="hide-narrow">Attached to</th><th scope="col" class="hide-narrow">Annotations</th></tr></thead>
<tbody>${referrers.map(({ descriptor, subject }) => html`<tr><td><code>${descriptor.artifactType ?? descriptor.mediaType}</code><br><span class="muted">${artifactKind(descriptor.artifactType)}</span></td><td>${digestCell(descriptor.digest)}</td><td class="num">${formatBytes(descriptor.size)}</td><td class="hide-narrow">${subject}</td><td class="hide-narrow">${Object.entries(descriptor.annotations ?? {}).map(([key, value]) => html`<div><code>${key}</code>: ${value}</div>`)}</td></tr>\n`)}</tbody>
</table></div>`}
</section>
`;
}

function manifestDetails(manifest: ManifestFacts): Html {
  const labels = manifest.config?.labels ?? [];
  return html`${manifest.problem !== undefined && html`<p class="warn">${manifest.problem}</p>`}
${manifest.artifactType !== undefined && html`<p>Artifact type <code>${manifest.artifactType}</code></p>`}
<h3>Labels</h3>${labels.length > 0 ? keyValues(labels) : html`<p class="muted">No labels.</p>`}
${manifest.layers.length > 0 && html`<h3>Layers</h3>
<div class="table"><table>
<thead><tr><th scope="col" class="num">#</th><th scope="col">Digest</th><th scope="col" class="num">Size</th><th scope="col" class="hide-narrow">Media type</th><th scope="col">Compression</th></tr></thead>
<tbody>${manifest.layers.map((layer, i) => html`<tr><td class="num">${i + 1}</td><td>${digestCell(layer.digest)}</td><td class="num">${formatBytes(layer.size)}</td><td class="hide-narrow"><code>${layer.mediaType}</code></td><td>${layer.compression}</td></tr>\n`)}</tbody>
</table></div>`}`;
}

// Label and annotation values are data: a link only when the value is an http(s) URL.
function keyValues(pairs: [string, string][]): Html {
  return html`<div class="table"><table class="kv"><tbody>${pairs.map(([key, value]) => {
    const url = httpUrl(value);
    return html`<tr><td>${key}</td><td>${url !== undefined ? html`<a href="${url}" rel="noopener noreferrer nofollow">${value}</a>` : value}</td></tr>\n`;
  })}</tbody></table></div>`;
}

function commands(name: string, reference: string, endpoint: Endpoint): Html {
  return html`<div class="cmds">${pullCommands(name, reference, endpoint).map((command) => html`<span class="client">${command.client}</span>${copyableBlock(command.command, `${command.client} command`)}${command.note !== undefined && html`<span class="note">${command.note}</span>`}`)}</div>`;
}

/** Referrers of the image and of each of its platforms, with what they are attached to. */
function referrersOf(facts: ImageFacts, contents: RepositoryContents): { descriptor: Descriptor; subject: string }[] {
  const found = (contents.referrers.get(facts.digest) ?? []).map((descriptor) => ({ descriptor, subject: facts.platforms.length > 0 ? 'the index' : 'the image' }));
  for (const platform of facts.platforms) {
    for (const descriptor of contents.referrers.get(platform.manifest.digest) ?? []) found.push({ descriptor, subject: platform.platform });
  }
  return found.sort((a, b) => (a.descriptor.artifactType ?? '').localeCompare(b.descriptor.artifactType ?? ''));
}

/** What an artifact type is to a person: the common SBOM, signature and attestation formats. */
function artifactKind(artifactType: string | undefined): string {
  const type = (artifactType ?? '').toLowerCase();
  if (/spdx|cyclonedx|sbom|syft/.test(type)) return 'SBOM';
  if (/signature|cosign|notary|sigstore/.test(type)) return 'signature';
  if (/in-toto|attestation|provenance|vex/.test(type)) return 'attestation';
  return 'artifact';
}

function kindOf(facts: ImageFacts): string {
  if (facts.platforms.length > 0) {
    const count = facts.platforms.filter((p) => !p.attestation).length;
    return `index, ${count} ${count === 1 ? 'platform' : 'platforms'}`;
  }
  if (facts.manifest?.artifactType !== undefined) return 'artifact';
  return facts.manifest?.config?.platform ?? 'image';
}

function anchor(digest: string): string {
  return `image-${digest.slice('sha256:'.length, 'sha256:'.length + 12)}`;
}

function pager(name: string, number: number, pages: number): Html {
  if (pages <= 1) return html``;
  const href = (to: number): string => `${repositoryHref(name)}${query({ page: to })}`;
  return html`<nav class="pager" aria-label="Tag pages">
<span>${number > 1 && html`<a href="${href(number - 1)}" rel="prev">&larr; Previous</a>`}</span>
<span>page ${number} of ${pages}</span>
<span>${number < pages && html`<a href="${href(number + 1)}" rel="next">Next &rarr;</a>`}</span>
</nav>`;
}
