import assert from 'node:assert/strict';
import { cp, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { MediaType } from '../src/image/media-types.js';
import type { Descriptor } from '../src/image/oci.schema.js';
import { buildRegistry } from '../src/registry/app.js';
import { ServedImages } from '../src/store/image-source.js';
import { updateIndex } from '../src/store/index-file.js';
import { ManifestCache } from '../src/store/manifest-cache.js';
import { StoreReader } from '../src/store/reader.js';
import { cartorio, tempDir } from './helpers/cli.js';
import { BUSYBOX_1, BUSYBOX_ARM64, BUSYBOX_MULTI, makeRegistryStore, storedBlob, type RegistryStore } from './helpers/registry-store.js';

// Snapshots of a store (src/store/snapshot.ts): tags from index.json alone, manifests read on
// demand and checked, what they reference walked on first need and again after a commit.

let store: RegistryStore;
const hooks: (() => Promise<void>)[] = [];
const apps: FastifyInstance[] = [];
const busybox1: Descriptor = { mediaType: MediaType.ociManifest, digest: BUSYBOX_1, size: 503 };

before(async () => {
  store = await makeRegistryStore(join(await tempDir({ after: (fn) => hooks.push(fn) }), 'store'));
});
after(async () => {
  for (const app of apps) await app.close();
  for (const hook of hooks) await hook();
});

function serve(root: string, logs?: string[]): FastifyInstance {
  const logger = logs ? { level: 'error', stream: { write: (line: string) => void logs.push(line) } } : false;
  const app = buildRegistry({ images: new ServedImages([new StoreReader(root)]), logger });
  apps.push(app);
  return app;
}

async function copyStore(from: string, to: string): Promise<void> {
  await cp(from, to, { recursive: true });
}

test('a stored manifest that does not match its digest is never served, read first or read again after eviction', async (t) => {
  const root = join(await tempDir(t), 'store');
  await copyStore(store.root, root);
  const path = join(root, 'other', 'tool', 'blobs', 'sha256', BUSYBOX_1.slice(7));
  const good = await readFile(path);
  // Same length, one byte changed: only the digest tells.
  const bad = Buffer.from(good);
  bad[bad.length - 2] = bad[bad.length - 2] === 0x20 ? 0x09 : 0x20;
  await writeFile(path, bad);
  const logs: string[] = [];
  const app = serve(root, logs);
  const response = await app.inject({ url: '/v2/other/tool/manifests/1' });
  assert.equal(response.statusCode, 500);
  assert.ok(!response.body.includes('schemaVersion'), 'no byte of the manifest');
  assert.ok(logs.some((line) => line.includes('does not match its digest') && line.includes(path)), 'the log names the file');
  assert.equal((await app.inject({ url: `/v2/other/tool/manifests/${BUSYBOX_1}` })).statusCode, 500, 'by digest too');
  assert.equal((await app.inject({ url: '/v2/busybox/manifests/1' })).statusCode, 200, 'another repository\'s good copy is served');

  // A cache too small for two manifests: the second read evicts the first, and its file changed meanwhile.
  await writeFile(path, good);
  const cache = new ManifestCache(good.length + 10);
  const dir = join(root, 'other', 'tool');
  assert.deepEqual((await cache.read(dir, BUSYBOX_1, MediaType.ociManifest))?.bytes, good);
  await writeFile(path, bad);
  assert.deepEqual((await cache.read(dir, BUSYBOX_1, MediaType.ociManifest))?.bytes, good, 'checked bytes are kept while cached');
  assert.ok(await cache.read(join(root, 'busybox'), BUSYBOX_ARM64, MediaType.ociManifest));
  assert.ok(cache.size <= good.length + 10);
  await assert.rejects(cache.read(dir, BUSYBOX_1, MediaType.ociManifest), /does not match its digest/);
  await assert.rejects(cache.read(dir, BUSYBOX_1, MediaType.ociIndex), /./, 'an image manifest asked for as an index is refused');
  assert.equal(await cache.read(dir, `sha256:${'0'.repeat(64)}`, MediaType.ociManifest), undefined, 'no file: undefined');
});

test('tags/list needs no manifest; a missing manifest is MANIFEST_UNKNOWN and the rest is served', async (t) => {
  const root = join(await tempDir(t), 'store');
  await copyStore(store.root, root);
  const arm64 = join(root, 'busybox', 'blobs', 'sha256', BUSYBOX_ARM64.slice(7));
  await rename(arm64, `${arm64}.gone`);
  const app = serve(root);
  const tags = JSON.parse((await app.inject({ url: '/v2/busybox/tags/list' })).body) as { tags: string[] };
  assert.deepEqual(tags.tags, ['1', '2', '3', 'arm64', 'multi', 'v1.0']);
  const missing = await app.inject({ url: '/v2/busybox/manifests/arm64' });
  assert.equal(missing.statusCode, 404);
  assert.equal(JSON.parse(missing.body).errors[0].code, 'MANIFEST_UNKNOWN');
  assert.equal((await app.inject({ url: '/v2/busybox/manifests/1' })).statusCode, 200);
  const reader = new StoreReader(root);
  const contents = await (await reader.repository('busybox'))?.contents();
  assert.ok(contents?.problems.some((problem) => problem.includes(BUSYBOX_ARM64) && problem.includes('no such file')), contents?.problems.join('\n'));
  // `list` shows what a pull gets, and says which tag it leaves out and why.
  const listed = await cartorio(['list', '--store', root]);
  assert.equal(listed.code, 0, listed.stderr);
  assert.doesNotMatch(listed.stdout, /\barm64\b/);
  assert.match(listed.stdout, /^busybox\s+1\s/m);
  assert.match(listed.stderr, /busybox:arm64 \(sha256:[0-9a-f]{64}\) is not served: its manifest is missing; run `cartorio verify`/);
});

test('what a repository can serve is what its index.json reaches: children of an index, referrers, no stray blob', async () => {
  const reader = new StoreReader(store.root);
  const snapshot = await reader.repository('busybox');
  assert.ok(snapshot);
  // A platform manifest listed only inside the `multi` index is found by the walk.
  const multi = JSON.parse((await storedBlob(store.root, 'busybox', BUSYBOX_MULTI)).toString()) as { manifests: Descriptor[] };
  const amd64 = multi.manifests.find((m) => m.digest !== BUSYBOX_ARM64) ?? multi.manifests[0];
  assert.ok(amd64);
  assert.equal((await snapshot.manifest(amd64.digest))?.descriptor.digest, amd64.digest);
  const contents = await snapshot.contents();
  assert.ok(contents.blobs.has(store.busyboxOnlyBlob));
  assert.ok(!contents.blobs.has(store.strayBlob));
  assert.equal(await snapshot.manifest(store.strayBlob), undefined, 'a stray file is no manifest of the repository');
  assert.deepEqual((contents.referrers.get(BUSYBOX_1) ?? []).map((d) => d.digest), [store.sbom.digest, store.signature.digest].sort());
  assert.equal(await reader.blob('busybox', store.strayBlob), undefined);
  assert.equal(await reader.blob('other/tool', store.busyboxOnlyBlob), undefined, 'another repository does not reach it');
  assert.ok(await reader.blob('busybox', store.busyboxOnlyBlob));
  // Twenty requests at once for a repository not read yet: one snapshot, shared.
  const fresh = new StoreReader(store.root);
  const all = await Promise.all(Array.from({ length: 20 }, () => fresh.repository('busybox')));
  assert.ok(all.every((s) => s !== undefined && s === all[0]));
});

test('a commit while serving: the new tag, its manifest and blobs are served; a moved tag names its new image', async (t) => {
  const root = join(await tempDir(t), 'store');
  await copyStore(store.root, root);
  const app = serve(root);
  const config = (JSON.parse((await storedBlob(root, 'busybox', BUSYBOX_ARM64)).toString()) as { config: Descriptor }).config;
  // The walk has run (a blob GET needs it) before the commit.
  assert.equal((await app.inject({ url: `/v2/other/tool/blobs/${store.busyboxOnlyBlob}` })).statusCode, 404);
  assert.equal((await app.inject({ url: `/v2/other/tool/blobs/${config.digest}` })).statusCode, 404, 'arm64 is not in other/tool yet');
  // arm64's blobs are copied in as a load would, then index.json is replaced.
  for (const digest of [BUSYBOX_ARM64, config.digest, ...(JSON.parse((await storedBlob(root, 'busybox', BUSYBOX_ARM64)).toString()) as { layers: Descriptor[] }).layers.map((l) => l.digest)]) {
    await writeFile(join(root, 'other', 'tool', 'blobs', 'sha256', digest.slice(7)), await storedBlob(root, 'busybox', digest));
  }
  const arm64: Descriptor = { mediaType: MediaType.ociManifest, digest: BUSYBOX_ARM64, size: (await storedBlob(root, 'busybox', BUSYBOX_ARM64)).length };
  await updateIndex(join(root, 'other', 'tool'), join(root, '.tmp'), [{ tags: ['new', '1'], descriptor: arm64 }]);
  assert.deepEqual(JSON.parse((await app.inject({ url: '/v2/other/tool/tags/list' })).body).tags, ['1', 'new']);
  for (const tag of ['new', '1']) assert.equal((await app.inject({ url: `/v2/other/tool/manifests/${tag}` })).headers['docker-content-digest'], BUSYBOX_ARM64, tag);
  assert.equal((await app.inject({ url: `/v2/other/tool/blobs/${config.digest}` })).statusCode, 200, 'the new image\'s config');
  assert.equal((await app.inject({ url: `/v2/other/tool/manifests/${BUSYBOX_1}` })).statusCode, 404, 'the image no tag names is gone from the repository');
  // And back: the earlier image again, as the walk before the commit knew it.
  await updateIndex(join(root, 'other', 'tool'), join(root, '.tmp'), [{ tags: ['1'], descriptor: busybox1 }]);
  assert.equal((await app.inject({ url: '/v2/other/tool/manifests/1' })).headers['docker-content-digest'], BUSYBOX_1);
  assert.equal((await app.inject({ url: `/v2/other/tool/manifests/${BUSYBOX_1}` })).statusCode, 200);
});

test('tags/list pages at every boundary: n of 1, the size minus one, the size, the cap; last before, on and after a tag', async (t) => {
  const root = join(await tempDir(t), 'store');
  await copyStore(store.root, root);
  const count = 2347;
  // Committed out of order (7 is prime to the count): pages follow lexical order, not index.json's.
  const tags = Array.from({ length: count }, (_, i) => `t${String((i * 7) % count).padStart(4, '0')}`);
  await updateIndex(join(root, 'other', 'tool'), join(root, '.tmp'), [{ tags, descriptor: busybox1 }]);
  const all = [...tags, '1'].sort();
  const app = serve(root);
  const follow = async (first: string): Promise<{ tags: string[]; pages: number[] }> => {
    const got: string[] = [];
    const pages: number[] = [];
    let next: string | undefined = first;
    while (next !== undefined) {
      const response: { statusCode: number; body: string; headers: Record<string, unknown> } = await app.inject({ url: next });
      assert.equal(response.statusCode, 200, next);
      const page = JSON.parse(response.body).tags as string[];
      got.push(...page);
      pages.push(page.length);
      const link = response.headers.link as string | undefined;
      next = link === undefined ? undefined : /^<([^>]+)>; rel="next"$/.exec(link)?.[1];
      assert.ok(link === undefined || next !== undefined, link);
    }
    return { tags: got, pages };
  };
  for (const n of [999, 1000, all.length - 1, all.length, all.length + 1]) {
    const { tags: got, pages } = await follow(`/v2/other/tool/tags/list?n=${n}`);
    assert.deepEqual(got, all, `n=${n}`);
    const size = Math.min(n, 1000);
    assert.equal(pages.length, Math.ceil(all.length / size), `n=${n}: ${pages.join(',')}`);
  }
  const small = await follow('/v2/busybox/tags/list?n=1');
  assert.deepEqual(small.tags, ['1', '2', '3', 'arm64', 'multi', 'v1.0']);
  const on = all[1500] as string;
  const list = async (query: string): Promise<string[]> => JSON.parse((await app.inject({ url: `/v2/other/tool/tags/list?${query}` })).body).tags;
  assert.deepEqual(await list(`n=3&last=${on}`), all.slice(1501, 1504), 'last on a tag');
  assert.deepEqual(await list(`n=3&last=${on}0`), all.slice(1501, 1504), 'last between two tags');
  assert.deepEqual(await list('n=3&last=0'), all.slice(0, 3), 'last before every tag');
  assert.deepEqual(await list(`n=3&last=${all[all.length - 1]}`), [], 'last on the last tag');
  const response = await app.inject({ url: `/v2/other/tool/tags/list?n=5&last=${all[all.length - 6]}` });
  assert.deepEqual(JSON.parse(response.body).tags, all.slice(-5));
  assert.equal(response.headers.link, undefined, 'the page that ends the list has no Link');
});
