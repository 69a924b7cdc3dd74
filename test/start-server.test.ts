import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type TestContext, after, before, test } from 'node:test';
import { sha256Digest } from '../src/image/digest.js';
import { MediaType } from '../src/image/media-types.js';
import { type RegistryOptions, buildRegistry } from '../src/registry/app.js';
import { Metrics } from '../src/registry/metrics.js';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUTS } from '../src/registry/http-server.js';
import { StartingServer } from '../src/registry/start-server.js';
import { ServedImages } from '../src/store/image-source.js';
import { StoreReader } from '../src/store/reader.js';
import { tempDir } from './helpers/cli.js';
import { BUSYBOX_1, BUSYBOX_MULTI, SIGNATURE_TYPE, makeRegistryStore, storedBlob, type RegistryStore } from './helpers/registry-store.js';

// serve listens before fastify is loaded and answers the pull API's reads itself until fastify is
// ready (src/registry/start-server.ts). A client must not be able to tell which of the two answered.

let store: RegistryStore;
let layer: { digest: string; size: number };
const hooks: (() => Promise<void>)[] = [];

before(async () => {
  store = await makeRegistryStore(join(await tempDir({ after: (fn) => hooks.push(fn) }), 'store'));
  const manifest = JSON.parse((await storedBlob(store.root, 'busybox', BUSYBOX_1)).toString()) as { layers: { digest: string; size: number }[] };
  const first = manifest.layers[0];
  assert.ok(first);
  layer = first;
});
after(async () => {
  for (const hook of hooks) await hook();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

// A raw HTTP request (no client-side decoding), its answer with the headers that differ by the moment left out.
function ask(port: number, path: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const sent = httpRequest({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const { date: _date, connection: _connection, 'keep-alive': _keepAlive, ...headers } = response.headers;
        resolve({ status: response.statusCode ?? 0, headers, body: Buffer.concat(chunks) });
      });
    });
    sent.on('error', reject);
    sent.end();
  });
}

// Every route of the pull API, its errors, conditional and partial requests.
function requests(): { path: string; method?: string; headers?: Record<string, string> }[] {
  const blob = layer.digest;
  const unknown = sha256Digest('nothing has this digest');
  return [
    { path: '/v2/' }, { path: '/v2' }, { path: '/v2/', method: 'HEAD' },
    { path: '/v2/busybox/manifests/1' }, { path: '/v2/busybox/manifests/1', method: 'HEAD' }, { path: `/v2/busybox/manifests/${BUSYBOX_1}` },
    { path: '/v2/busybox/manifests/multi', headers: { accept: MediaType.ociIndex } },
    { path: '/v2/library/busybox/manifests/latest' }, { path: '/v2/busybox/manifests/1?ns=docker.io' },
    { path: '/v2/busybox/manifests/1', headers: { 'if-none-match': `"${BUSYBOX_1}"` } },
    { path: '/v2/busybox/manifests/nope' }, { path: '/v2/busybox/manifests/nope', method: 'HEAD' }, { path: `/v2/busybox/manifests/${unknown}` },
    { path: '/v2/nope/manifests/1' }, { path: '/v2/busybox/manifests/1?ns=not%20a%20host' },
    { path: `/v2/busybox/blobs/${blob}` }, { path: `/v2/busybox/blobs/${blob}`, method: 'HEAD' }, { path: `/v2/busybox/blobs/${BUSYBOX_1}` },
    { path: `/v2/busybox/blobs/${blob}`, headers: { range: 'bytes=0-99' } }, { path: `/v2/busybox/blobs/${blob}`, headers: { range: 'bytes=-10' } },
    { path: `/v2/busybox/blobs/${blob}`, headers: { range: `bytes=${layer.size}-` } },
    { path: `/v2/busybox/blobs/${blob}`, headers: { range: 'bytes=0-9', 'if-range': '"sha256:other"' } },
    { path: `/v2/busybox/blobs/${blob}`, headers: { 'if-none-match': `"${blob}"` } },
    { path: `/v2/busybox/blobs/${unknown}` }, { path: `/v2/nope/blobs/${blob}` }, { path: `/v2/library/busybox/blobs/${store.busyboxOnlyBlob}` },
    { path: '/v2/busybox/tags/list' }, { path: '/v2/busybox/tags/list', method: 'HEAD' }, { path: '/v2/busybox/tags/list?n=2' },
    { path: '/v2/busybox/tags/list?n=2&last=2&ns=docker.io' }, { path: '/v2/busybox/tags/list?n=abc' }, { path: '/v2/nope/tags/list' },
    { path: '/v2/_catalog' }, { path: '/v2/_catalog?n=1' }, { path: '/v2/_catalog?n=1&last=busybox' }, { path: '/v2/_catalog', method: 'HEAD' },
    { path: `/v2/busybox/referrers/${BUSYBOX_1}` }, { path: `/v2/busybox/referrers/${BUSYBOX_1}?artifactType=${encodeURIComponent(SIGNATURE_TYPE)}` },
    { path: `/v2/nope/referrers/${BUSYBOX_1}` }, { path: `/v2/busybox/referrers/${BUSYBOX_MULTI}` },
  ];
}

/** A starting server over the test store, listening; `handOver` builds fastify's app on it. Both are closed after the test. */
async function starting(t: TestContext): Promise<{ images: ServedImages; metrics: Metrics; server: StartingServer; port: number; handOver: (logger?: RegistryOptions['logger']) => Promise<void> }> {
  const images = new ServedImages([new StoreReader(store.root)]);
  const metrics = new Metrics();
  const server = new StartingServer({ timeouts: DEFAULT_TIMEOUTS, maxConnections: DEFAULT_MAX_CONNECTIONS });
  let app: ReturnType<typeof buildRegistry> | undefined;
  t.after(async () => {
    await server.close();
    await app?.close();
  });
  await server.listen({ host: '127.0.0.1', port: 0 });
  const handOver = async (logger: RegistryOptions['logger'] = false): Promise<void> => {
    app = buildRegistry({ images, logger, metrics, server });
    await app.ready();
    server.handOver(app.routing, app.log);
  };
  return { images, metrics, server, port: (server.server.address() as { port: number }).port, handOver };
}

test('before fastify is loaded, every pull route answers byte for byte as fastify does after it', async (t) => {
  const { images, metrics, server, port, handOver } = await starting(t);
  await server.prepare(metrics);
  await server.answer({ images });
  const early = [];
  for (const r of requests()) early.push(await ask(port, r.path, r));
  await handOver();
  for (const [i, r] of requests().entries()) {
    const late = await ask(port, r.path, r);
    assert.deepEqual(early[i], late, `${r.method ?? 'GET'} ${r.path} ${JSON.stringify(r.headers ?? {})}`);
  }
  // Not vacuous: the answers are the registry's, statuses and bodies included.
  const statuses = new Set(early.map((answer) => answer.status));
  for (const status of [200, 206, 304, 400, 404, 416]) assert.ok(statuses.has(status), `a ${status} among the answers`);
  assert.ok(early[15]?.body.equals(await storedBlob(store.root, 'busybox', layer.digest)), 'the blob is the stored bytes');
  assert.equal(early[0]?.headers['docker-distribution-api-version'], 'registry/2.0');
});

test('before the images are open only /v2/ is answered; a manifest asked then is answered once they are; others wait for fastify', async (t) => {
  const { images, metrics, server, port, handOver } = await starting(t);
  let wanted = false;
  void server.appWanted.then(() => (wanted = true));
  // Sent while nothing can answer: held.
  const base = ask(port, '/v2/');
  let baseAnswered = false;
  void base.then(() => (baseAnswered = true));
  const manifest = ask(port, '/v2/busybox/manifests/1');
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(baseAnswered, false, 'nothing is answered before the pull routes are loaded');
  // Loaded while the images are still opening: /v2/, which needs none, is answered; the manifest waits.
  await server.prepare(metrics);
  assert.deepEqual([(await base).status, (await base).body.toString()], [200, '{}']);
  const health = ask(port, '/healthz');
  const write = ask(port, '/v2/busybox/blobs/uploads/', { method: 'POST' });
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(wanted, false, 'nothing asks for fastify before the images are open');
  await server.answer({ images });
  const early = await manifest;
  assert.equal(early.status, 200);
  assert.equal(sha256Digest(early.body), BUSYBOX_1);
  // /healthz and a write are fastify's to answer: it is wanted at once, and they wait for it.
  await server.appWanted;
  let answered = false;
  void health.then(() => (answered = true));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(answered, false, '/healthz waits for fastify');
  await handOver();
  assert.equal((await health).status, 200);
  assert.equal((await write).status, 405);
});

test('requests answered before fastify are logged through its logger and counted in its /metrics', async (t) => {
  const { images, metrics, server, port, handOver } = await starting(t);
  const lines: { msg?: string; reqId?: string; req?: { url?: string }; res?: { statusCode?: number } }[] = [];
  const stream = new Writable({ write: (chunk: Buffer, _encoding, done) => {
    for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as (typeof lines)[number]);
    done();
  } });
  await server.prepare(metrics);
  await server.answer({ images });
  assert.equal((await ask(port, '/v2/busybox/manifests/1')).status, 200);
  assert.equal((await ask(port, '/v2/busybox/manifests/nope')).status, 404);
  assert.equal(lines.length, 0, 'nothing is written before there is a logger');
  await handOver({ level: 'info', stream });
  const incoming = lines.filter((line) => line.msg === 'incoming request');
  assert.deepEqual(incoming.map((line) => [line.reqId, line.req?.url]), [['start-1', '/v2/busybox/manifests/1'], ['start-2', '/v2/busybox/manifests/nope']]);
  assert.deepEqual(lines.filter((line) => line.msg === 'request completed').map((line) => [line.reqId, line.res?.statusCode]), [['start-1', 200], ['start-2', 404]]);
  const text = (await ask(port, '/metrics')).body.toString();
  assert.match(text, /^cartorio_http_requests_total\{route="manifests",method="GET",status="200"\} 1$/m);
  assert.match(text, /^cartorio_http_requests_total\{route="manifests",method="GET",status="404"\} 1$/m);
});
