import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { sha256Digest } from '../src/image/digest.js';
import { MediaType } from '../src/image/media-types.js';
import type { Descriptor } from '../src/image/oci.schema.js';
import { buildRegistry } from '../src/registry/app.js';
import { updateIndex } from '../src/store/index-file.js';
import { Ingest } from '../src/store/ingest.js';
import { ServedImages } from '../src/store/image-source.js';
import { StoreReader } from '../src/store/reader.js';
import { tempDir } from './helpers/cli.js';
import { BUSYBOX_1, BUSYBOX_ARM64, BUSYBOX_MULTI, SBOM_TYPE, SIGNATURE_TYPE, makeRegistryStore, storedBlob, type RegistryStore } from './helpers/registry-store.js';

let store: RegistryStore;
let app: FastifyInstance;
let layer: { digest: string; size: number };
const hooks: (() => Promise<void>)[] = [];

before(async () => {
  const root = join(await tempDir({ after: (fn) => hooks.push(fn) }), 'store');
  store = await makeRegistryStore(root);
  app = buildRegistry({ images: new ServedImages([new StoreReader(root)]), logger: false });
  const manifest = JSON.parse((await storedBlob(root, 'busybox', BUSYBOX_1)).toString()) as { layers: { digest: string; size: number }[] };
  const first = manifest.layers[0];
  assert.ok(first);
  layer = first;
});
after(async () => {
  await app.close();
  for (const hook of hooks) await hook();
});

interface Case {
  method?: string;
  url: string;
  headers?: Record<string, string>;
  status: number;
  /** Spec error code of the body. */
  code?: string;
  /** Header values; null: must be absent. */
  expect?: Record<string, string | RegExp | null>;
  body?: unknown;
}

const V = 'registry/2.0';
const json = 'application/json';

function cases(): Case[] {
  const blob = layer.digest;
  const unknownDigest = sha256Digest('nothing has this digest');
  return [
    // distribution-spec "Determining support"
    { url: '/v2/', status: 200, expect: { 'docker-distribution-api-version': V, 'content-type': json, 'content-length': '2' }, body: {} },
    { url: '/v2', status: 200, expect: { 'docker-distribution-api-version': V }, body: {} },
    { method: 'HEAD', url: '/v2/', status: 200, expect: { 'content-length': '2' }, body: '' },
    // Manifests by tag and by digest, GET and HEAD, image and index.
    ...['1', BUSYBOX_1].flatMap((ref): Case[] => ['GET', 'HEAD'].map((method) => ({
      method, url: `/v2/busybox/manifests/${ref}`, status: 200,
      expect: { 'content-type': MediaType.ociManifest, 'docker-content-digest': BUSYBOX_1, 'content-length': '503', etag: `"${BUSYBOX_1}"`, 'docker-distribution-api-version': V },
    }))),
    { method: 'HEAD', url: '/v2/busybox/manifests/1', status: 200, body: '' },
    { url: '/v2/busybox/manifests/multi', status: 200, expect: { 'content-type': MediaType.ociIndex, 'docker-content-digest': BUSYBOX_MULTI } },
    { url: `/v2/busybox/manifests/${BUSYBOX_ARM64}`, status: 200, expect: { 'docker-content-digest': BUSYBOX_ARM64 } },
    { url: '/v2/library/busybox/manifests/latest', status: 200, expect: { 'docker-content-digest': BUSYBOX_1 } },
    // Accept is no filter: the stored type is served even when the client lists only others.
    { url: '/v2/busybox/manifests/1', headers: { accept: MediaType.dockerManifest }, status: 200, expect: { 'content-type': MediaType.ociManifest } },
    { url: '/v2/busybox/manifests/1', headers: { 'if-none-match': `"${BUSYBOX_1}"` }, status: 304, expect: { etag: `"${BUSYBOX_1}"` }, body: '' },
    { url: '/v2/busybox/manifests/1', headers: { 'if-none-match': '"sha256:other"' }, status: 200 },
    { url: '/v2/busybox/manifests/nope', status: 404, code: 'MANIFEST_UNKNOWN', expect: { 'content-type': json } },
    { method: 'HEAD', url: '/v2/busybox/manifests/nope', status: 404, body: '' },
    { url: `/v2/busybox/manifests/${unknownDigest}`, status: 404, code: 'MANIFEST_UNKNOWN' },
    { url: `/v2/busybox/manifests/${blob}`, status: 404, code: 'MANIFEST_UNKNOWN' },
    { url: '/v2/nope/manifests/1', status: 404, code: 'NAME_UNKNOWN' },
    { url: '/v2/busybox/manifests/sha256:baddigeststring', status: 400, code: 'DIGEST_INVALID' },
    { url: '/v2/Bad/manifests/1', status: 400, code: 'NAME_INVALID' },
    // Blobs.
    {
      url: `/v2/busybox/blobs/${blob}`, status: 200,
      expect: { 'content-type': 'application/octet-stream', 'content-length': String(layer.size), 'docker-content-digest': blob, 'accept-ranges': 'bytes', etag: `"${blob}"` },
    },
    { method: 'HEAD', url: `/v2/busybox/blobs/${blob}`, status: 200, expect: { 'content-length': String(layer.size), 'docker-content-digest': blob, 'accept-ranges': 'bytes' }, body: '' },
    { url: `/v2/busybox/blobs/${BUSYBOX_1}`, status: 200, expect: { 'content-length': '503', 'docker-content-digest': BUSYBOX_1 } },
    { url: `/v2/busybox/blobs/${blob}`, headers: { range: 'bytes=0-99' }, status: 206, expect: { 'content-range': `bytes 0-99/${layer.size}`, 'content-length': '100', 'docker-content-digest': blob } },
    { url: `/v2/busybox/blobs/${blob}`, headers: { range: 'bytes=-10' }, status: 206, expect: { 'content-range': `bytes ${layer.size - 10}-${layer.size - 1}/${layer.size}`, 'content-length': '10' } },
    { url: `/v2/busybox/blobs/${blob}`, headers: { range: `bytes=${layer.size}-` }, status: 416, code: 'RANGE_INVALID', expect: { 'content-range': `bytes */${layer.size}` } },
    { url: `/v2/busybox/blobs/${blob}`, headers: { range: 'bytes=0-1,4-5' }, status: 200, expect: { 'content-length': String(layer.size), 'content-range': null } },
    { url: `/v2/busybox/blobs/${blob}`, headers: { range: 'bytes=0-9', 'if-range': '"sha256:other"' }, status: 200, expect: { 'content-range': null } },
    { url: `/v2/busybox/blobs/${blob}`, headers: { range: 'bytes=0-9', 'if-range': `"${blob}"` }, status: 206 },
    { url: `/v2/busybox/blobs/${blob}`, headers: { 'if-none-match': `"${blob}"` }, status: 304, body: '' },
    { url: `/v2/busybox/blobs/${unknownDigest}`, status: 404, code: 'BLOB_UNKNOWN' },
    { method: 'HEAD', url: `/v2/busybox/blobs/${unknownDigest}`, status: 404, body: '' },
    { url: `/v2/nope/blobs/${blob}`, status: 404, code: 'NAME_UNKNOWN' },
    { url: '/v2/busybox/blobs/sha256:baddigeststring', status: 400, code: 'DIGEST_INVALID' },
    { url: `/v2/busybox/blobs/sha512:${'ab'.repeat(64)}`, status: 400, code: 'DIGEST_INVALID' },
    // Tags.
    { url: '/v2/busybox/tags/list', status: 200, expect: { 'content-type': json, link: null }, body: { name: 'busybox', tags: ['1', '2', '3', 'arm64', 'multi', 'v1.0'] } },
    { method: 'HEAD', url: '/v2/busybox/tags/list', status: 200, body: '' },
    { url: '/v2/busybox/tags/list?n=2', status: 200, expect: { link: '</v2/busybox/tags/list?n=2&last=2>; rel="next"' }, body: { name: 'busybox', tags: ['1', '2'] } },
    { url: '/v2/busybox/tags/list?n=2&last=2', status: 200, expect: { link: '</v2/busybox/tags/list?n=2&last=arm64>; rel="next"' }, body: { name: 'busybox', tags: ['3', 'arm64'] } },
    { url: '/v2/busybox/tags/list?n=2&last=arm64', status: 200, expect: { link: null }, body: { name: 'busybox', tags: ['multi', 'v1.0'] } },
    { url: '/v2/busybox/tags/list?n=0', status: 200, expect: { link: null }, body: { name: 'busybox', tags: [] } },
    { url: '/v2/busybox/tags/list?last=v1.0', status: 200, body: { name: 'busybox', tags: [] } },
    { url: '/v2/busybox/tags/list?last=zzz&n=5', status: 200, expect: { link: null }, body: { name: 'busybox', tags: [] } },
    { url: '/v2/busybox/tags/list?last=20', status: 200, body: { name: 'busybox', tags: ['3', 'arm64', 'multi', 'v1.0'] } },
    { url: '/v2/busybox/tags/list?n=6', status: 200, expect: { link: null } },
    { url: '/v2/busybox/tags/list?n=99999999', status: 200, expect: { link: null } },
    { url: '/v2/busybox/tags/list?n=&last=multi', status: 200, expect: { link: null }, body: { name: 'busybox', tags: ['v1.0'] } },
    { url: '/v2/busybox/tags/list?n=-1', status: 400, code: 'PAGINATION_NUMBER_INVALID' },
    { url: '/v2/busybox/tags/list?n=abc', status: 400, code: 'PAGINATION_NUMBER_INVALID' },
    { url: '/v2/nope/tags/list', status: 404, code: 'NAME_UNKNOWN' },
    // Catalog.
    { url: '/v2/_catalog', status: 200, expect: { link: null }, body: { repositories: ['busybox', 'library/busybox', 'other/tool'] } },
    { url: '/v2/_catalog?n=1', status: 200, expect: { link: '</v2/_catalog?n=1&last=busybox>; rel="next"' }, body: { repositories: ['busybox'] } },
    { url: '/v2/_catalog?n=1&last=busybox', status: 200, expect: { link: '</v2/_catalog?n=1&last=library%2Fbusybox>; rel="next"' }, body: { repositories: ['library/busybox'] } },
    { url: '/v2/_catalog?n=1&last=library%2Fbusybox', status: 200, expect: { link: null }, body: { repositories: ['other/tool'] } },
    { url: '/v2/_catalog?n=0', status: 200, expect: { link: null }, body: { repositories: [] } },
    { url: '/v2/_catalog?last=zzz', status: 200, body: { repositories: [] } },
    { method: 'HEAD', url: '/v2/_catalog', status: 200, body: '' },
    // Referrers: an OCI index, empty when none, never a 404.
    {
      url: `/v2/busybox/referrers/${BUSYBOX_1}`, status: 200, expect: { 'content-type': MediaType.ociIndex, 'oci-filters-applied': null },
      body: { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [referrer(() => store.sbom, SBOM_TYPE), referrer(() => store.signature, SIGNATURE_TYPE)] },
    },
    {
      url: `/v2/busybox/referrers/${BUSYBOX_1}?artifactType=${encodeURIComponent(SIGNATURE_TYPE)}`, status: 200, expect: { 'oci-filters-applied': 'artifactType' },
      body: { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [referrer(() => store.signature, SIGNATURE_TYPE)] },
    },
    { url: `/v2/busybox/referrers/${BUSYBOX_1}?artifactType=application/none`, status: 200, expect: { 'oci-filters-applied': 'artifactType' }, body: { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] } },
    { url: `/v2/busybox/referrers/${BUSYBOX_ARM64}`, status: 200, body: { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] } },
    { url: `/v2/nope/referrers/${BUSYBOX_1}`, status: 200, body: { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] } },
    { url: '/v2/busybox/referrers/sha256:baddigeststring', status: 400, code: 'DIGEST_INVALID' },
    // Not routes.
    { url: '/v2/busybox/blobs/uploads/', status: 404, code: 'UNSUPPORTED' },
    { url: '/v2/busybox/nothing/here', status: 404, code: 'UNSUPPORTED' },
    { url: '/elsewhere', status: 404, code: 'UNSUPPORTED' },
    { url: '/healthz', status: 200, body: { status: 'ok' } },
  ];
}

// The referrers body lists descriptors of the referring manifests (digest known once the store exists).
function referrer(descriptor: () => Descriptor, artifactType: string): () => Descriptor {
  return () => ({ ...descriptor(), artifactType, annotations: { 'org.example.kind': artifactType } });
}

function resolve(value: unknown): unknown {
  if (typeof value === 'function') return (value as () => unknown)();
  if (Array.isArray(value)) return value.map(resolve);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v)]));
  return value;
}

test('every route answers with the spec status, headers and body', async () => {
  for (const c of cases()) {
    const method = (c.method ?? 'GET') as 'GET';
    const where = `${method} ${c.url} ${JSON.stringify(c.headers ?? {})}`;
    const response = await app.inject({ method, url: c.url, ...(c.headers && { headers: c.headers }) });
    assert.equal(response.statusCode, c.status, `${where}: status (body ${response.body.slice(0, 300)})`);
    for (const [name, expected] of Object.entries(c.expect ?? {})) {
      const actual = response.headers[name];
      if (expected === null) assert.equal(actual, undefined, `${where}: header ${name} must be absent`);
      else if (expected instanceof RegExp) assert.match(String(actual), expected, `${where}: header ${name}`);
      else assert.equal(actual, expected, `${where}: header ${name}`);
    }
    if (c.code !== undefined) {
      assert.equal(response.headers['content-type'], json, `${where}: error content type`);
      const body = JSON.parse(response.body) as { errors: { code: string; message: string }[] };
      assert.equal(body.errors.length, 1, where);
      assert.equal(body.errors[0]?.code, c.code, `${where}: error code`);
      assert.ok(body.errors[0]?.message, `${where}: error message`);
    }
    if (typeof c.body === 'string') assert.equal(response.body, c.body, `${where}: body`);
    else if (c.body !== undefined) assert.deepEqual(JSON.parse(response.body), resolve(c.body), `${where}: body`);
  }
});

test('manifests and blobs are the exact stored bytes; ranges are the exact slice', async () => {
  for (const [url, digest] of [['/v2/busybox/manifests/1', BUSYBOX_1], ['/v2/busybox/manifests/multi', BUSYBOX_MULTI], [`/v2/busybox/blobs/${layer.digest}`, layer.digest]] as const) {
    const response = await app.inject({ url });
    const stored = await storedBlob(store.root, 'busybox', digest);
    assert.ok(response.rawPayload.equals(stored), url);
    assert.equal(sha256Digest(response.rawPayload), digest, url);
  }
  const stored = await storedBlob(store.root, 'busybox', layer.digest);
  const range = await app.inject({ url: `/v2/busybox/blobs/${layer.digest}`, headers: { range: 'bytes=1000-1999' } });
  assert.ok(range.rawPayload.equals(stored.subarray(1000, 2000)));
});

test('a blob is served under a repository only if that repository holds it', async () => {
  assert.equal((await app.inject({ url: `/v2/busybox/blobs/${store.busyboxOnlyBlob}` })).statusCode, 200);
  const elsewhere = await app.inject({ url: `/v2/library/busybox/blobs/${store.busyboxOnlyBlob}` });
  assert.equal(elsewhere.statusCode, 404);
  assert.equal(JSON.parse(elsewhere.body).errors[0].code, 'BLOB_UNKNOWN');
  // On disk in busybox/blobs/sha256, but no index.json entry reaches it.
  const stray = await app.inject({ url: `/v2/busybox/blobs/${store.strayBlob}` });
  assert.equal(stray.statusCode, 404);
  assert.equal(JSON.parse(stray.body).errors[0].code, 'BLOB_UNKNOWN');
});

test('every write method anywhere under /v2/ is 405 UNSUPPORTED, and nothing on disk changes', async () => {
  const before = await readFile(join(store.root, 'busybox', 'index.json'));
  const urls = ['/v2/', '/v2/_catalog', '/v2/busybox/manifests/1', `/v2/busybox/manifests/${BUSYBOX_1}`, `/v2/busybox/blobs/${layer.digest}`, '/v2/busybox/blobs/uploads/', '/v2/busybox/blobs/uploads/abc', '/v2/new/repo/manifests/x', '/v2/busybox/tags/list', '/v2/Bad%2f../x'];
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'] as const) {
    for (const url of urls) {
      const response = await app.inject({ method, url, headers: { 'content-type': 'application/x-odd' }, payload: 'x'.repeat(100) });
      assert.equal(response.statusCode, 405, `${method} ${url}`);
      assert.equal(response.headers['allow'], 'GET, HEAD', `${method} ${url}`);
      assert.equal(JSON.parse(response.body).errors[0].code, 'UNSUPPORTED', `${method} ${url}`);
    }
  }
  assert.ok(before.equals(await readFile(join(store.root, 'busybox', 'index.json'))));
});

test('hostile paths never give a 5xx nor a byte from outside the store', async () => {
  const secret = 'cartorio-secret-outside-the-store';
  const outside = join(store.root, '..', 'outside');
  await writeFile(outside, secret);
  const secretDigest = sha256Digest(secret);
  await writeFile(join(store.root, '..', secretDigest.slice(7)), secret);
  const hostile = [
    '/v2/..%2f..%2fetc/manifests/passwd', '/v2/%2e%2e/%2e%2e/etc/passwd', '/v2/..%252f..%252f/manifests/1',
    `/v2/busybox/blobs/sha256:..%2f..%2f${secretDigest.slice(13)}`, `/v2/..%2f/blobs/${secretDigest}`, `/v2/../blobs/${secretDigest}`,
    `/v2/busybox/..%2f..%2f/blobs/${secretDigest}`, `/v2/.blobs/blobs/${layer.digest}`, `/v2/.tmp/manifests/1`,
    '/v2/busybox%00/manifests/1', '/v2/busybox/manifests/1%00', '/v2/busybox/manifests/%00', `/v2/busybox/blobs/${layer.digest}%00`,
    '/v2/busybox%2fmanifests%2f1', '/v2/library%2Fbusybox/manifests/latest', '/v2/busybox/manifests/%zz', '/v2/%/manifests/1',
    `/v2/${'a'.repeat(300)}/manifests/1`, `/v2/${'a/'.repeat(200)}manifests/1`, `/v2/${'a'.repeat(5000)}/tags/list`,
    '/v2/busybox/manifests/sha256:baddigeststring', '/v2/busybox/blobs/sha256:baddigeststring', `/v2/busybox/blobs/sha1:${'a'.repeat(40)}`,
    `/v2/busybox/blobs/foo+bar:${'a'.repeat(64)}`, `/v2/busybox/blobs/sha256:${'A'.repeat(64)}`, `/v2/busybox/referrers/unknown:abc`,
    '/v2/busybox/blobs/sha256:', '/v2/busybox/manifests/', '/v2//busybox/manifests/1', '/v2/busybox//manifests/1',
    '/v2/_catalog?n=1e3', '/v2/_catalog?n=%00', '/v2/_catalog?last=%00', '/v2/busybox/tags/list?last=..%2F..%2F',
    '/v2/busybox/manifests/1?%zz', '/v2/blobs/blobs/' + layer.digest, '/v2/index.json/manifests/1', '/v2/busybox/index.json/tags/list',
  ];
  for (const url of hostile) {
    for (const method of ['GET', 'HEAD'] as const) {
      const response = await app.inject({ method, url });
      assert.ok(response.statusCode < 500, `${method} ${url}: ${response.statusCode} ${response.body}`);
      assert.ok(!response.body.includes(secret), `${method} ${url} leaked`);
      assert.ok(!response.body.includes('root:x:0:0'), `${method} ${url} leaked /etc/passwd`);
      if (response.statusCode >= 400 && method === 'GET') assert.ok(JSON.parse(response.body).errors[0].code, url);
    }
  }
  await rm(outside);
});

test('images loaded while serving are served without a restart', async () => {
  assert.equal((await app.inject({ url: '/v2/busybox/manifests/later' })).statusCode, 404);
  const descriptor: Descriptor = { mediaType: MediaType.ociManifest, digest: BUSYBOX_ARM64, size: 503 };
  await updateIndex(join(store.root, 'busybox'), join(store.root, '.tmp'), [{ tags: ['later'], descriptor }]);
  const response = await app.inject({ url: '/v2/busybox/manifests/later' });
  assert.equal(response.statusCode, 200);
  assert.equal(response.headers['docker-content-digest'], BUSYBOX_ARM64);
  assert.ok(JSON.parse((await app.inject({ url: '/v2/busybox/tags/list' })).body).tags.includes('later'));
});

test('/metrics counts requests, bytes and latency per route group', async () => {
  await app.inject({ url: `/v2/busybox/blobs/${layer.digest}` });
  const text = (await app.inject({ url: '/metrics' })).body;
  assert.match(text, /^cartorio_http_requests_total\{route="blobs",method="GET",status="200"\} \d+$/m);
  assert.match(text, /^cartorio_http_requests_total\{route="write",method="PUT",status="405"\} \d+$/m);
  const bytes = Number(/^cartorio_http_response_bytes_total\{route="blobs"\} (\d+)$/m.exec(text)?.[1]);
  assert.ok(bytes >= layer.size, `blob bytes ${bytes}`);
  assert.match(text, /^cartorio_http_request_duration_seconds_bucket\{route="manifests",le="\+Inf"\} \d+$/m);
  assert.match(text, /^cartorio_http_request_duration_seconds_count\{route="tags"\} \d+$/m);
});

test('over a real socket: streamed blobs, ranges, empty HEAD bodies, clients that go away', async (t) => {
  const server = buildRegistry({ images: new ServedImages([new StoreReader(store.root)]), logger: false });
  t.after(() => server.close());
  await server.listen({ host: '127.0.0.1', port: 0 });
  const { port } = server.server.address() as { port: number };
  const base = `http://127.0.0.1:${port}`;
  const stored = await storedBlob(store.root, 'busybox', layer.digest);

  const full = await fetch(`${base}/v2/busybox/blobs/${layer.digest}`);
  assert.equal(full.status, 200);
  assert.ok(Buffer.from(await full.arrayBuffer()).equals(stored));

  const range = await fetch(`${base}/v2/busybox/blobs/${layer.digest}`, { headers: { range: 'bytes=100-' } });
  assert.equal(range.status, 206);
  assert.equal(range.headers.get('content-range'), `bytes 100-${layer.size - 1}/${layer.size}`);
  assert.ok(Buffer.from(await range.arrayBuffer()).equals(stored.subarray(100)));

  for (const url of [`/v2/busybox/blobs/${layer.digest}`, '/v2/busybox/manifests/1', '/v2/busybox/manifests/nope', '/v2/']) {
    const head = await fetch(`${base}${url}`, { method: 'HEAD' });
    assert.equal((await head.arrayBuffer()).byteLength, 0, url);
    assert.ok(Number(head.headers.get('content-length')) > 0, `${url} announces its GET length`);
  }

  // A client that reads one chunk of a 48 MiB blob (more than loopback socket buffers hold) and
  // disconnects: the file stream is destroyed, the response counts as aborted, the server goes on.
  const big = await addLargeArtifact(store.root, 'large/blob', 48 * 1024 * 1024);
  const controller = new AbortController();
  const partial = await fetch(`${base}/v2/large/blob/blobs/${big}`, { signal: controller.signal });
  assert.equal(partial.headers.get('content-length'), String(48 * 1024 * 1024));
  const reader = partial.body?.getReader();
  await reader?.read();
  controller.abort();
  await reader?.cancel().catch(() => undefined);
  await new Promise((resolve) => setTimeout(resolve, 100));
  const after = await fetch(`${base}/v2/busybox/manifests/1`);
  assert.equal(after.status, 200);
  assert.equal(sha256Digest(Buffer.from(await after.arrayBuffer())), BUSYBOX_1);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /^cartorio_http_responses_aborted_total\{route="blobs"\} 1$/m);
});

// An artifact whose one layer is `size` zero bytes, committed through the store's ingest.
async function addLargeArtifact(root: string, repository: string, size: number): Promise<string> {
  const ingest = await Ingest.begin(root);
  const chunk = Buffer.alloc(1024 * 1024);
  const layer = await ingest.writeStream(Readable.from((function* () {
    for (let i = 0; i < size / chunk.length; i++) yield chunk;
  })()), { where: 'large layer' });
  const config = await ingest.writeBytes(Buffer.from('{}'), { where: 'config' });
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MediaType.ociManifest, artifactType: 'application/vnd.example.large',
    config: { mediaType: MediaType.ociEmpty, ...config }, layers: [{ mediaType: 'application/octet-stream', ...layer }],
  }));
  const written = await ingest.writeBytes(manifest, { where: 'manifest' });
  await ingest.commit([{ repository, tags: ['1'], descriptor: { mediaType: MediaType.ociManifest, ...written } }], 'large artifact');
  return layer.digest;
}
