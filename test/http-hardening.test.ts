import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { hashSync } from 'bcryptjs';
import type { FastifyInstance } from 'fastify';
import { buildRegistry, type RegistryOptions } from '../src/registry/app.js';
import { BasicAuth, parseHtpasswd } from '../src/registry/auth.js';
import { ServedImages } from '../src/store/image-source.js';
import { StoreReader } from '../src/store/reader.js';
import { ROOT, cartorio, run, tempDir } from './helpers/cli.js';
import { makeTestCA, startServe } from './helpers/clients.js';
import { BUSYBOX_1, makeRegistryStore, storedBlob } from './helpers/registry-store.js';

// The server against hostile clients, over real sockets: requests are written byte for byte
// (fetch would normalise `..`, `%2e` and backslashes away before they reach the server).

const PASSWORD = 'wonderland';
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const GOOD = basic('alice', PASSWORD);

let dir: string;
let root: string;
let bigLayer: { digest: string; size: number };
const cleanups: (() => Promise<void>)[] = [];

before(async () => {
  dir = await tempDir({ after: (fn) => cleanups.push(fn) });
  root = join(dir, 'store');
  await makeRegistryStore(root);
  // a 24 MiB layer (more than loopback socket buffers hold), loaded as any rootfs tarball is
  await mkdir(join(dir, 'big'));
  await writeFile(join(dir, 'big', 'random.bin'), randomBytes(24 * 1024 * 1024));
  assert.equal((await run('tar', ['-C', join(dir, 'big'), '-cf', join(dir, 'big.tar'), '.'])).code, 0);
  const loaded = await cartorio(['load', '--store', root, join(dir, 'big.tar'), '--name', 'big/blob', '--tag', '1']);
  assert.equal(loaded.code, 0, loaded.stderr);
  const tar = await readFile(join(dir, 'big.tar'));
  bigLayer = { digest: `sha256:${createHash('sha256').update(tar).digest('hex')}`, size: tar.length };
});
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

async function listening(options: Partial<RegistryOptions> = {}): Promise<{ app: FastifyInstance; port: number }> {
  const app = buildRegistry({ images: new ServedImages([new StoreReader(root)]), logger: false, ...options });
  cleanups.unshift(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, port: (app.server.address() as { port: number }).port };
}

// ---- a raw HTTP/1.1 client ----------------------------------------------------------------------

interface RawResponse {
  /** 0 when the server closed the connection without an answer. */
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** Every byte received, headers included. */
  raw: Buffer;
}

/** Writes `request` as is on a fresh connection and reads until the server closes it (or `ms` pass). */
function rawRequest(port: number, request: string | Buffer, ms = 5000): Promise<RawResponse> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(parseResponse(Buffer.concat(chunks)));
    };
    const timer = setTimeout(done, ms);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('close', done);
    socket.on('error', () => undefined); // a reset after a refused request ends like a close
    socket.write(request);
  });
}

function parseResponse(raw: Buffer): RawResponse {
  // interim answers (100 Continue) come first: the final one is what counts
  let start = 0;
  while (/^HTTP\/1\.[01] 1\d\d /.test(raw.subarray(start, start + 13).toString('latin1')) && raw.indexOf('\r\n\r\n', start) >= 0) start = raw.indexOf('\r\n\r\n', start) + 4;
  const end = raw.indexOf('\r\n\r\n', start);
  const head = raw.subarray(start, end < 0 ? raw.length : end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status, headers, body: end < 0 ? Buffer.alloc(0) : raw.subarray(end + 4), raw };
}

const get = (port: number, target: string, extra: string[] = [], method = 'GET'): Promise<RawResponse> =>
  rawRequest(port, [`${method} ${target} HTTP/1.1`, 'Host: registry.test', 'Connection: close', ...extra, '', ''].join('\r\n'));

/** No stack frame, no path of this machine: what any error body may never hold. */
function assertNoInternals(response: RawResponse, where: string): void {
  const text = response.raw.toString('latin1');
  for (const leak of [dir, ROOT, 'node_modules', 'node:internal', '.js:']) assert.ok(!text.includes(leak), `${where}: the answer holds "${leak}":\n${text.slice(0, 500)}`);
  assert.doesNotMatch(text, /\n\s+at /, `${where}: stack trace`);
}

// ---- path tricks ----------------------------------------------------------------------------------

// [request target, status, spec code]: normalisation tricks are refused (400) or not found (404).
const TRICKS: [string, number, string][] = [
  ['/v2/%2e%2e/%2e%2e/etc/passwd', 404, 'UNSUPPORTED'],
  ['/v2/busybox/%2e%2e/other/tool/manifests/1', 400, 'NAME_INVALID'],
  ['/v2/%2E%2E/busybox/manifests/1', 400, 'NAME_INVALID'],
  ['/v2/../v2/busybox/manifests/1', 400, 'NAME_INVALID'],
  ['/v2/./busybox/manifests/1', 400, 'NAME_INVALID'],
  ['/v2/busybox%2fmanifests%2f1', 404, 'UNSUPPORTED'],
  ['/v2/library%2Fbusybox/manifests/latest', 400, 'NAME_INVALID'],
  ['/v2/busybox/manifests/%252e%252e', 404, 'MANIFEST_UNKNOWN'],
  ['/v2/%252e%252e/%252e%252e/manifests/1', 400, 'NAME_INVALID'],
  ['/v2/busybox/blobs/sha256%3a..%2f..%2fsecret', 400, 'DIGEST_INVALID'],
  ['/v2/busybox\\manifests\\1', 404, 'UNSUPPORTED'],
  ['/v2/busybox/manifests/..\\..\\index.json', 404, 'MANIFEST_UNKNOWN'],
  ['/v2/..\\..\\/manifests/1', 400, 'NAME_INVALID'],
  ['/v2/busybox%00/manifests/1', 400, 'NAME_INVALID'],
  ['/v2/busybox/manifests/1%00', 404, 'MANIFEST_UNKNOWN'],
  [`/v2/busybox/manifests/${BUSYBOX_1}%00.json`, 400, 'DIGEST_INVALID'],
  ['//v2/busybox/manifests/1', 404, 'UNSUPPORTED'],
  ['/v2//busybox/manifests/1', 400, 'NAME_INVALID'],
  ['/v2/busybox//manifests/1', 400, 'NAME_INVALID'],
  ['/v2/busybox/manifests/1/', 404, 'UNSUPPORTED'],
  ['/v2/busybox/manifests/1;x=y', 404, 'MANIFEST_UNKNOWN'],
  ['/v2/busybox;x=y/manifests/1', 400, 'NAME_INVALID'],
  ['/v2/_catalog;x=y', 404, 'UNSUPPORTED'],
  ['/v%32/_catalog', 404, 'UNSUPPORTED'],
  ['/v2/_c%61talog', 404, 'UNSUPPORTED'],
  ['/V2/_catalog', 404, 'UNSUPPORTED'],
  ['/%76%32/busybox/manifests/1', 404, 'UNSUPPORTED'],
  ['/v%32/busybox/manifests/1', 404, 'UNSUPPORTED'],
  ['/%68ealthz', 404, 'UNSUPPORTED'],
  ['/v2/.tmp/manifests/1', 400, 'NAME_INVALID'],
  ['/v2/busybox/blobs/../index.json', 404, 'UNSUPPORTED'],
  ['/v2/%/manifests/1', 400, 'UNSUPPORTED'],
  ['/v2/busybox/manifests/%zz', 400, 'UNSUPPORTED'],
  ['/v2/%ff%fe/tags/list', 400, 'UNSUPPORTED'],
  ['*', 404, 'UNSUPPORTED'],
];

test('path normalisation tricks are refused or not found, never served, never a 5xx', async () => {
  const { port } = await listening();
  for (const [target, status, code] of TRICKS) {
    for (const method of ['GET', 'HEAD']) {
      const response = await get(port, target, [], method);
      const where = `${method} ${target}`;
      assert.equal(response.status, status, `${where}: ${response.raw.toString().slice(0, 300)}`);
      assertNoInternals(response, where);
      if (method === 'GET') assert.equal(JSON.parse(response.body.toString()).errors[0].code, code, where);
      else assert.equal(response.body.length, 0, where);
    }
  }
  // the canonical spellings still work, and an absolute-form target (RFC 9112 §3.2.2) is the same request
  for (const target of ['/v2/busybox/manifests/1', '/v2/_catalog/', '/v2', `http://registry.test/v2/busybox/manifests/1`]) {
    assert.equal((await get(port, target)).status, 200, target);
  }
});

// ---- authentication ----------------------------------------------------------------------------

test('with an htpasswd no spelling, method or credential gets past the check', async () => {
  const htpasswd = parseHtpasswd(`alice:${hashSync(PASSWORD, 4)}\n`, 'test htpasswd');
  const { port } = await listening({ htpasswd });
  const protectedTargets = [
    '/v2/', '/v2', '/V2/', '/v2/_catalog', '/v2/_catalog/', '/V2/_catalog', '/v%32/_catalog', '/v2/_c%61talog', '/%76%32/_catalog',
    '//v2/_catalog', '/v2//_catalog', '/v2/../v2/_catalog', '/v2/./_catalog', '/./v2/_catalog', '/v2/_catalog;x', '/v2/_catalog%00', '/v2/_catalog?n=1',
    'http://registry.test/v2/_catalog', 'HTTP://registry.test:80/v2/busybox/tags/list', '/v2/busybox/manifests/1', '/v2/busybox/manifests/1/',
    `/v2/busybox/manifests/${BUSYBOX_1}`, `/v2/big/blob/blobs/${bigLayer.digest}`, '/v2/busybox/tags/list', `/v2/busybox/referrers/${BUSYBOX_1}`,
    '/v%32/busybox/manifests/1', '/%2Fv2/_catalog', '/v2%2F_catalog', '/v2\\_catalog', '/nothing', '/%68ealthz', '/healthz/../v2/_catalog',
  ];
  const refusedCredentials = [undefined, basic('alice', 'wrong'), basic('nobody', PASSWORD), basic('ALICE', PASSWORD), basic('alice', `${PASSWORD} `), 'basic', 'Bearer x', `Basic ${Buffer.from(`alice${PASSWORD}`).toString('base64')}`, `Digest username="alice"`];
  for (const target of protectedTargets) {
    for (const method of ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']) {
      for (const authorization of refusedCredentials) {
        const response = await get(port, target, authorization === undefined ? [] : [`Authorization: ${authorization}`], method);
        const where = `${method} ${target} with ${authorization ?? 'nothing'}`;
        assert.equal(response.status, 401, `${where}: ${response.raw.toString().slice(0, 200)}`);
        assert.equal(response.headers['www-authenticate'], 'Basic realm="cartorio"', where);
        if (method === 'HEAD') assert.equal(response.body.length, 0, where);
      }
    }
  }
  // the public routes, spelled as routed, and the real thing with good credentials
  for (const target of ['/healthz', '/metrics', '/healthz/']) assert.equal((await get(port, target)).status, 200, target);
  for (const target of ['/v2/', '/v2/_catalog', '/v2/busybox/manifests/1', 'http://registry.test/v2/_catalog']) {
    assert.equal((await get(port, target, [`Authorization: ${GOOD}`])).status, 200, target);
  }
  assert.equal((await get(port, '/v%32/_catalog', [`Authorization: ${GOOD}`])).status, 404, 'a misspelling is not found, even authenticated');
});

test('credential checks take as long for an unknown user as for a wrong password; the cache keys on exact credentials', async () => {
  // cost 8 for the users; the old fixed dummy hash (cost 10) made unknown names 4 times slower
  const auth = new BasicAuth(parseHtpasswd(`alice:${hashSync(PASSWORD, 8)}\nbob:${hashSync('builder', 8)}\n`, 'h'));
  const time = async (authorization: (i: number) => string): Promise<number> => {
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = process.hrtime.bigint();
      // a new wrong password each time: a repeated one is answered from the cache of failures
      assert.ok(await auth.check(authorization(i)), `${authorization(i)} is refused`);
      samples.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
    return samples.sort((a, b) => a - b)[2] ?? 0;
  };
  // bcryptjs runs cold on a fresh thread: the first comparisons are slower, whoever they are for
  for (let i = 0; i < 6; i++) await auth.check(basic(i % 2 === 0 ? 'alice' : 'mallory', `warm-up-${i}`));
  const wrongPassword = await time((i) => basic('alice', `wrong-${i}`));
  const unknownUser = await time((i) => basic('mallory', `wrong-${i}`));
  const ratio = unknownUser / wrongPassword;
  assert.ok(ratio > 0.5 && ratio < 2, `unknown user ${unknownUser.toFixed(1)} ms vs wrong password ${wrongPassword.toFixed(1)} ms`);
  assert.equal(await auth.check(GOOD), undefined);
  const started = process.hrtime.bigint();
  assert.equal(await auth.check(GOOD), undefined);
  const cached = Number(process.hrtime.bigint() - started) / 1e6;
  assert.ok(cached < wrongPassword / 4, `a remembered credential costs no bcrypt (${cached.toFixed(2)} ms)`);
  // a cached pair admits only itself: not another password, not the same password for another user
  assert.ok(await auth.check(basic('alice', `${PASSWORD}x`)));
  assert.ok(await auth.check(basic('bob', PASSWORD)));
  await auth.close();
});

// ---- sizes -------------------------------------------------------------------------------------

test('oversized URLs and headers, malformed request lines and n are answered 4xx, never 5xx', async () => {
  const { port } = await listening();
  const cases: [string, string | Buffer, number][] = [
    ['URL of 5000 characters', `GET /v2/busybox/tags/list?last=${'a'.repeat(5000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 414],
    ['URL of 20000 characters', `GET /v2/${'a/'.repeat(10_000)}tags/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 431],
    ['one header of 20 KiB', `GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20 * 1024)}\r\nConnection: close\r\n\r\n`, 431],
    ['400 small headers', `GET /v2/ HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'v'.repeat(40)}\r\n`).join('')}Connection: close\r\n\r\n`, 431],
    ['no Host header', 'GET /v2/ HTTP/1.1\r\nConnection: close\r\n\r\n', 400],
    ['unknown HTTP version', 'GET /v2/ HTTP/9.9\r\nHost: x\r\n\r\n', 400],
    // llhttp reads a request line with no version as HTTP/0.9 and Node answers it: harmless
    ['no version', 'GET /v2/\r\n\r\n', 200],
    ['lowercase method', 'get /v2/ HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['garbage', '\x00\x01\x02\x03 garbage\r\n\r\n', 400],
    ['space in the target', 'GET /v2/busybox manifests/1 HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['CR alone in a header', 'GET /v2/ HTTP/1.1\r\nHost: x\rX-Evil: 1\r\n\r\n', 400],
    ['Content-Length and Transfer-Encoding (smuggling)', 'GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['negative Content-Length', 'GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n', 400],
    ['an unknown method with a 10 KB body (not read: no route)', `PROPFIND /v2/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\nConnection: close\r\n\r\n{"a":"${'x'.repeat(9992)}"}`, 404],
    ['a write with a 10 KB body (refused before it is read)', `PUT /v2/busybox/manifests/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\nConnection: close\r\n\r\n{"a":"${'x'.repeat(9992)}"}`, 405],
    ['n above the cap', 'GET /v2/_catalog?n=1000000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 200],
    ['n with an exponent', 'GET /v2/_catalog?n=1e3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400],
    ['negative n', 'GET /v2/busybox/tags/list?n=-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400],
    ['n of 10 digits', 'GET /v2/busybox/tags/list?n=9999999999 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400],
  ];
  for (const [name, request, status] of cases) {
    const response = await rawRequest(port, request);
    assert.equal(response.status, status, `${name}: ${response.raw.toString().slice(0, 300)}`);
    assertNoInternals(response, name);
  }
  assert.equal((await get(port, '/v2/busybox/manifests/1')).status, 200, 'still serving');
});

// ---- timeouts ----------------------------------------------------------------------------------

const SHORT = { headersTimeout: 1000, requestTimeout: 1500, keepAliveTimeout: 500, connectionTimeout: 1500, connectionsCheckingInterval: 200 };

/** Resolves with the milliseconds until the server closed `socket` (or `limit` when it did not). */
function closedWithin(socket: Socket, limit: number): Promise<number> {
  const started = Date.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(limit), limit);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
}

test('slowloris: slow headers, silent and idle connections are closed; a slow download is not', async (t) => {
  const { port } = await listening({ timeouts: SHORT });
  const open = (): Socket => connect(port, '127.0.0.1').on('error', () => undefined).on('data', () => undefined);

  // headers trickled a byte at a time, forever
  const slow = open();
  slow.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n');
  const trickle = setInterval(() => slow.writable && slow.write('X'), 100);
  const slowClosed = await closedWithin(slow, 8000);
  clearInterval(trickle);
  assert.ok(slowClosed < 4000, `slow headers closed after ${slowClosed} ms`);

  // a connection that never sends a byte
  const silent = open();
  const silentClosed = await closedWithin(silent, 8000);
  assert.ok(silentClosed < 4000, `silent connection closed after ${silentClosed} ms`);

  // a keep-alive connection left idle after one answer
  const idle = open();
  idle.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n');
  const idleClosed = await closedWithin(idle, 8000);
  assert.ok(idleClosed < 3000, `idle keep-alive connection closed after ${idleClosed} ms`);

  // a client reading a 24 MiB blob slowly for longer than every timeout above gets all of it
  const download = connect(port, '127.0.0.1');
  download.write(`GET /v2/big/blob/blobs/${bigLayer.digest} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  const started = Date.now();
  const chunks: Buffer[] = [];
  // at most one chunk (≤ 64 KiB) every 10 ms: about 4 s for the whole blob
  download.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    download.pause();
    setTimeout(() => download.resume(), 10);
  });
  await new Promise((resolve) => download.once('close', resolve));
  const response = parseResponse(Buffer.concat(chunks));
  const seconds = (Date.now() - started) / 1000;
  assert.equal(response.status, 200);
  assert.ok(seconds > SHORT.requestTimeout / 1000, `the download took ${seconds} s, longer than the request timeout`);
  assert.equal(`sha256:${createHash('sha256').update(response.body).digest('hex')}`, bigLayer.digest, `all ${bigLayer.size} bytes`);
  t.diagnostic(`closed: slow headers ${slowClosed} ms, silent ${silentClosed} ms, idle ${idleClosed} ms; a ${seconds.toFixed(1)} s download completed`);
});

test('a client that stops reading a blob is disconnected after the connection timeout; the server goes on', async () => {
  const { app, port } = await listening({ timeouts: SHORT });
  // watched from the server's side: a paused client sees no close until it reads what it was sent
  const accepted = new Promise<Socket>((resolve) => app.server.once('connection', resolve));
  const stalled = connect(port, '127.0.0.1').on('error', () => undefined);
  stalled.write(`GET /v2/big/blob/blobs/${bigLayer.digest} HTTP/1.1\r\nHost: x\r\n\r\n`);
  stalled.once('data', () => stalled.pause()); // headers and a first chunk, then nothing is read
  const closed = await closedWithin(await accepted, 10_000);
  stalled.destroy();
  assert.ok(closed < 6000, `stalled download closed after ${closed} ms`);
  assert.equal((await get(port, '/v2/busybox/manifests/1')).status, 200);
});

test('the defaults, over HTTP and HTTPS: headers within 20 s, request within 30 s, 16 KiB of headers, silent connections closed', async () => {
  const ca = await makeTestCA(join(dir, 'tls'));
  const tls = { cert: await readFile(ca.cert), key: await readFile(ca.key) };
  for (const { app } of [await listening(), await listening({ tls })]) {
    assert.equal(app.server.headersTimeout, 20_000);
    assert.equal(app.server.requestTimeout, 30_000);
    assert.equal(app.server.keepAliveTimeout, 72_000);
    assert.equal(app.server.timeout, 120_000);
    assert.equal((app.server as unknown as { maxHeaderSize: number }).maxHeaderSize, 16 * 1024);
  }
});

// ---- errors ------------------------------------------------------------------------------------

test('an unexpected failure is a 500 with the spec body and nothing else: no path, no stack', async (t) => {
  const broken = join(await tempDir(t), 'store');
  // an index.json that is not JSON: the store reader's error names the file by its absolute path
  await mkdir(join(broken, 'app'), { recursive: true });
  await writeFile(join(broken, 'app', 'index.json'), '{"schemaVersion": 2, "manif');
  await writeFile(join(broken, 'app', 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const logs: string[] = [];
  const app = buildRegistry({ images: new ServedImages([new StoreReader(broken)]), logger: { level: 'error', stream: { write: (line: string) => logs.push(line) } } });
  t.after(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  const response = await get(port, '/v2/app/manifests/1');
  assert.equal(response.status, 500);
  assert.deepEqual(JSON.parse(response.body.toString()), { errors: [{ code: 'UNKNOWN', message: 'unknown error' }] });
  assertNoInternals(response, 'a 500');
  assert.ok(logs.some((line) => line.includes('not valid JSON') && line.includes(broken)), 'the operator sees the cause in the log');
});

// ---- the fuzz loop ----------------------------------------------------------------------------

const FUZZ_REQUESTS = 10_000;
const FUZZ_SECONDS = 15;
const FUZZ_PARALLEL = 8;

function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

interface FuzzTarget {
  port: number;
  /** Bytes that live outside the store, next to it: no answer may hold them. */
  secret: string;
  secretHex: string;
  /** A blob busybox holds, for real routes. */
  layer: string;
  /** With an htpasswd: only requests with good credentials (or the public routes) may succeed. */
  auth: boolean;
}

/**
 * Sends up to FUZZ_REQUESTS requests for at most FUZZ_SECONDS, FUZZ_PARALLEL at a time, built
 * from a seeded PRNG: a third are real routes with odd headers and queries, the rest paths
 * assembled from API words, traversal pieces and encodings, with random methods and headers.
 * Every answer is checked as it arrives; returns a summary line.
 */
async function fuzz(target: FuzzTarget, seed: number): Promise<string> {
  const { port, secret, secretHex, layer } = target;
  const random = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const routes = [
    '/v2/', '/v2/_catalog', '/v2/busybox/manifests/1', `/v2/busybox/manifests/${BUSYBOX_1}`, '/v2/busybox/manifests/multi', `/v2/busybox/blobs/${layer}`,
    '/v2/busybox/tags/list', `/v2/busybox/referrers/${BUSYBOX_1}`, '/v2/library/busybox/manifests/latest', '/v2/other/tool/tags/list', '/healthz', '/metrics',
  ];
  const pieces = [
    'v2', 'V2', 'v2', 'v2', '_catalog', 'busybox', 'library', 'other', 'tool', 'big', 'blob', 'manifests', 'manifests', 'blobs', 'blobs', 'tags', 'list', 'referrers',
    '1', 'latest', 'multi', BUSYBOX_1, layer, `sha256:${secretHex}`, secretHex, 'sha256:', 'sha512:abc', '..', '.', '...', '%2e%2e', '%2E%2e', '.%2e', '%2f', '%2F',
    '%252e%252e', '%252f', '%25', '%00', '%0a', '%0d%0a', '%ff', '%c0%ae%c0%ae', '%', '%zz', '\\', '..\\..', ';', ';x=1', '', '', '~', 'secret.txt', 'index.json',
    'oci-layout', '.tmp', '.blobs', 'blobs/sha256', '..%2f..%2fsecret.txt', '..%2f..%2f..%2fetc%2fpasswd', '%2e%2e%2f%2e%2e%2fsecret.txt', 'a'.repeat(300), 'A', '@', ':', '*', '$',
  ];
  const queries = ['', '', '', '?n=1', '?n=0', '?n=', '?n=-1', '?n=99999999999', '?n=1&last=busybox', '?last=%00', '?last=..%2f', '?artifactType=%ff', '?n=1&n=2', '?%zz', '?a[b]=1', '?__proto__=1', '?constructor[prototype][x]=1'];
  const methods = ['GET', 'GET', 'GET', 'HEAD', 'HEAD', 'OPTIONS', 'PUT', 'POST', 'DELETE', 'PATCH', 'TRACE', 'PROPFIND', 'CONNECT', 'get', 'G\x00T', 'BREW', ''];
  const headerPool = [
    'Range: bytes=0-10', 'Range: bytes=-5', 'Range: bytes=999999999999-', 'Range: bytes=5-1', 'Range: bytes=0-1,2-3', 'Range: items=0-1', 'Range: bytes=--',
    'If-None-Match: *', `If-None-Match: "${BUSYBOX_1}"`, 'If-Range: "x"', 'Accept: */*', 'Accept: application/vnd.oci.image.index.v1+json;q=0.5, %%%',
    'Authorization: Basic !!!', `Authorization: ${GOOD}`, `Authorization: ${GOOD}`, `Authorization: ${basic('alice', 'nope')}`, 'Authorization: Bearer x',
    'Content-Type: application/json', 'Content-Length: 4', 'Transfer-Encoding: chunked', 'Expect: 100-continue', 'Connection: keep-alive', 'X-Forwarded-For: 127.0.0.1',
    `X-Long: ${'x'.repeat(8000)}`, 'Host: other',
  ];

  const oneRequest = (): { text: string; target: string; headers: string[]; label: string } => {
    const kind = random();
    let path: string;
    if (kind < 0.05) path = pick(['*', 'http://evil.test/v2/_catalog', `http://x/v2/busybox/blobs/${layer}`, '', '/', 'v2/', '/v2/?', '/v2#x']);
    else if (kind < 0.35) path = pick(routes) + (random() < 0.2 ? pick(['/', '%00', ';x', '/..', '%2f..']) : '') + pick(queries);
    else {
      const parts = Array.from({ length: 1 + Math.floor(random() * 6) }, () => pick(pieces));
      if (random() < 0.7) parts.unshift('v2');
      path = (random() < 0.1 ? '//' : '/') + parts.join(random() < 0.9 ? '/' : pick(['//', '\\', '/./', '/../'])) + (random() < 0.15 ? '/' : '') + pick(queries);
    }
    const method = pick(methods);
    const headers = Array.from({ length: Math.floor(random() * 3) }, () => pick(headerPool));
    const body = headers.some((h) => h.startsWith('Content-Length')) ? 'abcd' : headers.some((h) => h.startsWith('Transfer-Encoding')) ? '4\r\nabcd\r\n0\r\n\r\n' : '';
    const host = random() < 0.03 ? [] : ['Host: registry.test'];
    const text = `${method} ${path} HTTP/1.1\r\n${[...host, ...headers, 'Connection: close'].map((h) => `${h}\r\n`).join('')}\r\n${body}`;
    return { text, target: path, headers, label: `${method} ${path} [${headers.map((h) => h.slice(0, 40)).join(' | ')}]` };
  };

  const statuses = new Map<number, number>();
  const started = Date.now();
  const deadline = started + FUZZ_SECONDS * 1000;
  let sent = 0;
  const worker = async (): Promise<void> => {
    while (sent < FUZZ_REQUESTS && Date.now() < deadline) {
      sent++;
      const { text, target: path, headers, label } = oneRequest();
      const response = await rawRequest(port, text);
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      assert.ok(response.status < 500, `${label}: ${response.raw.toString().slice(0, 300)}`);
      // Node closes CONNECT (a tunnel request) when no one listens for it: no answer at all
      if (response.status === 0) assert.match(text, /^CONNECT /, `${label}: closed with no answer`);
      assert.ok(!response.raw.includes(secret), `${label}: leaked the secret file`);
      assert.ok(!response.raw.includes('root:x:0:0'), `${label}: leaked /etc/passwd`);
      assertNoInternals(response, label);
      if (target.auth && response.status >= 200 && response.status < 400) {
        const credentialed = headers.includes(`Authorization: ${GOOD}`);
        assert.ok(credentialed || /^\/(?:healthz|metrics)\/?(?:\?|$)/.test(path), `${label}: ${response.status} without credentials`);
      }
    }
  };
  await Promise.all(Array.from({ length: FUZZ_PARALLEL }, worker));
  assert.ok(sent >= 500, `only ${sent} requests were sent`);
  const summary = [...statuses].sort(([a], [b]) => a - b).map(([status, n]) => `${status || 'closed (CONNECT)'}: ${n}`).join(', ');
  return `${sent} requests in ${((Date.now() - started) / 1000).toFixed(1)} s; ${summary}`;
}

for (const auth of [false, true]) {
  test(`fuzz${auth ? ', with --htpasswd' : ''}: random and malformed requests to cartorio serve get no 5xx${auth ? ', no answer without credentials,' : ''} and no byte from outside the store`, async (t) => {
    const secret = `cartorio-secret-${randomBytes(16).toString('hex')}`;
    const secretHex = createHash('sha256').update(secret).digest('hex');
    // next to the store: by name, by digest, and as a layout file one level up
    for (const name of ['secret.txt', secretHex, 'index.json']) {
      await writeFile(join(dir, name), secret);
      t.after(() => rm(join(dir, name)));
    }
    const extra: string[] = [];
    if (auth) {
      await writeFile(join(dir, 'htpasswd'), `alice:${hashSync(PASSWORD, 4)}\n`);
      extra.push('--htpasswd', join(dir, 'htpasswd'));
    }
    const server = await startServe(t, join(dir, 'serve'), root, extra);
    const port = Number(server.address.split(':').pop());
    const manifest = JSON.parse((await storedBlob(root, 'busybox', BUSYBOX_1)).toString()) as { layers: { digest: string }[] };
    const summary = await fuzz({ port, secret, secretHex, layer: manifest.layers[0]?.digest ?? '', auth }, auth ? 20261125 : 20261124);
    t.diagnostic(summary);
    assert.equal((await get(port, '/healthz')).status, 200, 'the server is still up');
    assert.doesNotMatch(server.logs(), /"level":50/, 'no request failed unexpectedly (error-level log)');
  });
}
