import assert from 'node:assert/strict';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { sha256Digest } from '../src/image/digest.js';
import { MediaType } from '../src/image/media-types.js';
import { buildRegistry } from '../src/registry/app.js';
import { wholeListJson } from '../src/registry/pagination.js';
import { ServedImages } from '../src/store/image-source.js';
import { StoreReader } from '../src/store/reader.js';
import { FIXTURES, tempDir } from './helpers/cli.js';
import { BUSYBOX_1 } from './helpers/registry-store.js';

// Big lists cost one serialization per version of index.json, not one per request: tags/list and
// _catalog without `n` answer from the JSON kept for the list, HEAD builds no body, and referrers
// come in pages linked by `Link: <…>; rel="next"` (distribution-spec "Listing Referrers").

const NAME = 'quay.io/org/app';
const TAGS = 3000;
const REFERRERS = 2500;
const SBOM = 'application/vnd.example.sbom.v1+json';
const SIGNATURE = 'application/vnd.example.signature.v1';

async function makeStore(root: string): Promise<{ referrers: string[]; sboms: string[] }> {
  const dir = join(root, ...NAME.split('/'));
  await mkdir(dir, { recursive: true });
  await cp(join(FIXTURES, 'busybox-oci', 'blobs'), join(dir, 'blobs'), { recursive: true });
  await cp(join(FIXTURES, 'busybox-oci', 'oci-layout'), join(dir, 'oci-layout'));
  const image = { mediaType: MediaType.ociManifest, digest: BUSYBOX_1, size: 503 };
  // Tags JSON escapes, and a multi-byte one: HEAD's Content-Length counts bytes as GET sends them.
  const tags = [...Array.from({ length: TAGS }, (_, i) => `t-${String(i).padStart(5, '0')}`), 'with"quote', 'é-1'];
  const manifests: object[] = tags.map((tag) => ({ ...image, annotations: { 'org.opencontainers.image.ref.name': tag } }));
  const empty = { mediaType: MediaType.ociEmpty, digest: sha256Digest('{}'), size: 2 };
  const referrers: string[] = [];
  const sboms: string[] = [];
  for (let i = 0; i < REFERRERS; i++) {
    const artifactType = i % 5 === 0 ? SBOM : SIGNATURE;
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, artifactType, config: empty, layers: [], subject: image, annotations: { 'org.example.n': String(i) } }));
    const digest = sha256Digest(bytes);
    await writeFile(join(dir, 'blobs', 'sha256', digest.slice(7)), bytes);
    manifests.push({ mediaType: MediaType.ociManifest, digest, size: bytes.length });
    referrers.push(digest);
    if (artifactType === SBOM) sboms.push(digest);
  }
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
  await writeFile(join(root, '.repositories'), `${NAME}\n`);
  return { referrers: referrers.sort(), sboms: sboms.sort() };
}

// Follows rel="next" Links from `url` as oras and regclient do; every page's digests, in order.
async function allPages(app: FastifyInstance, url: string): Promise<{ pages: string[][]; links: string[] }> {
  const pages: string[][] = [];
  const links: string[] = [];
  for (let next: string | undefined = url; next !== undefined;) {
    const response: LightMyRequestResponse = await app.inject({ url: next });
    assert.equal(response.statusCode, 200, next);
    assert.equal(response.headers['content-type'], MediaType.ociIndex);
    pages.push((response.json() as { manifests: { digest: string }[] }).manifests.map((m) => m.digest));
    const link = response.headers.link as string | undefined;
    if (link !== undefined) links.push(link);
    next = link === undefined ? undefined : /^<([^>]+)>; rel="next"$/.exec(link)?.[1];
    assert.ok(pages.length < 100, 'pages end');
  }
  return { pages, links };
}

test('tags/list and _catalog without n: the same kept JSON for every request of a version; HEAD has the headers and builds nothing', async (t) => {
  const root = join(await tempDir(t), 'store');
  await makeStore(root);
  const reader = new StoreReader(root);
  const app = buildRegistry({ images: new ServedImages([reader]) });
  t.after(() => app.close());
  const snapshot = await reader.repository(NAME);
  assert.ok(snapshot);
  const kept = wholeListJson(snapshot.tags);

  const head = await app.inject({ method: 'HEAD', url: '/v2/org/app/tags/list?ns=quay.io' });
  assert.equal(head.statusCode, 200);
  assert.equal(head.body, '');
  assert.equal(kept.built, false, 'HEAD built no body');
  const expected = JSON.stringify({ name: 'org/app', tags: snapshot.tags });
  assert.equal(Number(head.headers['content-length']), Buffer.byteLength(expected));

  const first = await app.inject({ url: '/v2/org/app/tags/list?ns=quay.io' });
  assert.equal(first.body, expected);
  assert.equal(first.headers['content-length'], head.headers['content-length']);
  assert.equal(first.headers['content-type'], head.headers['content-type']);
  assert.equal(first.headers.link, undefined);
  assert.ok(kept.built);
  const bytes = kept.bytes()[0];
  const second = await app.inject({ url: '/v2/org/app/tags/list?ns=quay.io' });
  assert.equal(second.body, expected);
  assert.equal(kept.bytes()[0], bytes, 'the same Buffer: not serialized again');
  assert.equal(await reader.repository(NAME), snapshot, 'same version, same snapshot');
  assert.equal(wholeListJson(snapshot.tags), kept);
  // Another spelling of the same repository shares the list's JSON; only the name differs.
  assert.equal((await app.inject({ url: `/v2/${NAME}/tags/list` })).body, JSON.stringify({ name: NAME, tags: snapshot.tags }));
  assert.equal(kept.bytes()[0], bytes);

  // `last` without `n`: the rest of the list, a view of the same kept bytes, HEAD of the same length.
  for (const last of ['t-02997', 'a', 'with"quote', 'zzz']) {
    const url = `/v2/org/app/tags/list?ns=quay.io&last=${encodeURIComponent(last)}`;
    const rest = await app.inject({ url });
    const restHead = await app.inject({ method: 'HEAD', url });
    const tags: string[] = snapshot.tags.filter((tag) => tag > last);
    assert.equal(rest.body, JSON.stringify({ name: 'org/app', tags }), last);
    assert.equal(restHead.headers['content-length'], rest.headers['content-length'], last);
    assert.equal(restHead.body, '');
  }
  assert.equal(kept.bytes(2)[1]?.buffer, bytes?.buffer, 'no copy');
  assert.equal(kept.bytes()[0], bytes);

  // Pages keep ns in their Link, so the next page resolves to the same repository.
  const page = await app.inject({ url: '/v2/org/app/tags/list?ns=quay.io&n=2' });
  assert.equal(page.headers.link, '</v2/org/app/tags/list?n=2&last=t-00001&ns=quay.io>; rel="next"');

  const catalogHead = await app.inject({ method: 'HEAD', url: '/v2/_catalog' });
  const catalog = await app.inject({ url: '/v2/_catalog' });
  assert.equal(catalog.body, JSON.stringify({ repositories: [NAME] }));
  assert.equal(catalogHead.body, '');
  assert.equal(catalogHead.headers['content-length'], catalog.headers['content-length']);
});

test('referrers over a large set come in linked pages that list every entry exactly once', async (t) => {
  const root = join(await tempDir(t), 'store');
  const { referrers, sboms } = await makeStore(root);
  const app = buildRegistry({ images: new ServedImages([new StoreReader(root)]) });
  t.after(() => app.close());

  const all = await allPages(app, `/v2/${NAME}/referrers/${BUSYBOX_1}`);
  assert.deepEqual(all.pages.map((page) => page.length), [1000, 1000, 500]);
  assert.deepEqual(all.pages.flat(), referrers, 'every referrer once, in digest order');
  assert.match(all.links[0] ?? '', new RegExp(`^</v2/${NAME}/referrers/${BUSYBOX_1}\\?last=sha256%3A[0-9a-f]{64}>; rel="next"$`));

  // The filter and ns are kept from page to page.
  const filtered = await allPages(app, `/v2/org/app/referrers/${BUSYBOX_1}?artifactType=${encodeURIComponent(SIGNATURE)}&ns=quay.io`);
  assert.deepEqual(filtered.pages.map((page) => page.length), [1000, 1000]);
  assert.deepEqual(filtered.pages.flat(), referrers.filter((digest) => !sboms.includes(digest)));
  assert.ok(filtered.links.every((link) => link.includes(`artifactType=${encodeURIComponent(SIGNATURE)}`) && link.includes('&ns=quay.io')), filtered.links.join(' '));
  const few = await allPages(app, `/v2/${NAME}/referrers/${BUSYBOX_1}?artifactType=${encodeURIComponent(SBOM)}`);
  assert.deepEqual(few.pages, [sboms], 'one page, no Link, when all fit');

  const get = await app.inject({ url: `/v2/${NAME}/referrers/${BUSYBOX_1}` });
  const head = await app.inject({ method: 'HEAD', url: `/v2/${NAME}/referrers/${BUSYBOX_1}` });
  assert.equal(head.body, '');
  for (const header of ['content-type', 'content-length', 'link']) assert.equal(head.headers[header], get.headers[header], header);
});
