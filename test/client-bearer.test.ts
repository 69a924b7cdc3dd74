import * as assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { RegistryClient } from '../src/client/registry-client.js';
import { FIXTURES, tempDir } from './helpers/cli.js';
import { pushLayoutImage, readLayoutImage, skopeo, startDistribution } from './helpers/client-fixtures.js';

// Docker token auth (https://distribution.github.io/distribution/spec/auth/token/) needs TLS
// certificates in Distribution itself, so a small node:http "front" plays the registry's auth
// part: it issues tokens from /token, answers 401 + `WWW-Authenticate: Bearer …` to requests
// without a token covering their scope, and proxies the rest to a plain Distribution. It also
// makes Location headers relative and redirects blob GETs to a second origin ("storage"), as
// registries backed by object storage do.
const BACKEND = 5243;
const BUSYBOX_1 = 'sha256:aa48215cf55ff8cc1922a87e696d659944c1aaf0502097800a4cc8cfa23d2bcb';
const OCI = join(FIXTURES, 'busybox-oci');
const USER = 'bob';
const PASSWORD = 'b3arer-pw';

interface Recorded {
  tokenRequests: Array<{ scopes: string[]; service: string | null; user: string | undefined }>;
  storageAuthorization: Array<string | undefined>;
  uploads: Array<{ contentLength: string | undefined; transferEncoding: string | undefined }>;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** Forwards to the backend Distribution, keeping Host so its absolute Locations name the front. */
function proxy(req: IncomingMessage, res: ServerResponse, path: string, relativeLocation: boolean): void {
  const headers = { ...req.headers };
  delete headers.authorization;
  const upstream = request({ host: '127.0.0.1', port: BACKEND, method: req.method, path, headers }, (up) => {
    const out = { ...up.headers };
    if (relativeLocation && typeof out.location === 'string') out.location = out.location.replace(/^https?:\/\/[^/]+/, '');
    res.writeHead(up.statusCode ?? 502, out);
    up.pipe(res);
  });
  upstream.on('error', () => res.destroy());
  req.pipe(upstream);
}

async function startFake(t: { after: (fn: () => Promise<void>) => void }): Promise<{ url: string; recorded: Recorded }> {
  const recorded: Recorded = { tokenRequests: [], storageAuthorization: [], uploads: [] };
  const granted = new Map<string, string[]>();

  const storage = createServer((req, res) => {
    recorded.storageAuthorization.push(req.headers.authorization);
    const url = new URL(req.url ?? '/', 'http://storage');
    const [, repo, digest] = /^\/storage\/(.+)\/(sha256:[a-f0-9]{64})$/.exec(url.pathname) ?? [];
    if (url.searchParams.get('corrupt') === '1') {
      res.writeHead(200, { 'content-length': '5' });
      res.end('wrong');
      return;
    }
    proxy(req, res, `/v2/${repo}/blobs/${digest}`, false);
  });
  const storagePort = await listen(storage);
  t.after(() => close(storage));

  const front: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
    if (url.pathname === '/token') return token(req, res, url);
    const scope = neededScopes(req.method ?? 'GET', url);
    const [, tokenValue] = /^Bearer (.+)$/.exec(req.headers.authorization ?? '') ?? [];
    const have = granted.get(tokenValue ?? '') ?? [];
    if (tokenValue === undefined || !scope.every((s) => covers(have, s))) {
      const challenge = `Bearer realm="${url.origin}/token",service="fake-registry"${scope.length ? `,scope="${scope.join(' ')}"` : ''}`;
      return json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required', detail: scope }] }, { 'www-authenticate': challenge });
    }
    if (url.pathname === '/v2/paged/tags/list') {
      const pages: Record<string, [string[], string | undefined]> = {
        '': [['a', 'b'], '/v2/paged/tags/list?n=2&last=b'],
        b: [['c', 'd'], `${url.origin}/v2/paged/tags/list?n=2&last=d`],
        d: [['e'], undefined],
      };
      const [tags, next] = pages[url.searchParams.get('last') ?? ''] ?? [[], undefined];
      return json(res, 200, { name: 'paged', tags }, next ? { link: `<${next}>; rel="next"` } : {});
    }
    if (url.pathname.startsWith('/v2/bad/manifests/')) {
      return json(res, 200, { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json' }, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
    }
    const blob = /^\/v2\/(.+)\/blobs\/(sha256:[a-f0-9]{64})$/.exec(url.pathname);
    if (blob && req.method === 'GET') {
      const corrupt = blob[1] === 'corrupt' ? '?corrupt=1' : '';
      res.writeHead(307, { location: `http://127.0.0.1:${storagePort}/storage/${blob[1] === 'corrupt' ? 'secure/app' : blob[1]}/${blob[2]}${corrupt}` });
      return res.end();
    }
    if (req.method === 'PUT' && url.pathname.includes('/blobs/uploads/')) {
      recorded.uploads.push({ contentLength: req.headers['content-length'], transferEncoding: req.headers['transfer-encoding'] });
    }
    proxy(req, res, url.pathname + url.search, true);
  });
  const frontPort = await listen(front);
  t.after(() => close(front));
  return { url: `http://127.0.0.1:${frontPort}`, recorded };

  function token(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const [user, password] = basic ? Buffer.from(basic, 'base64').toString().split(':') : [];
    const scopes = url.searchParams.getAll('scope');
    recorded.tokenRequests.push({ scopes, service: url.searchParams.get('service'), user });
    if (basic && (user !== USER || password !== PASSWORD)) {
      return json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }] });
    }
    // Like Docker Hub: anonymous users get pull only; the token covers what they may have.
    const allowed = basic ? scopes : scopes.map((s) => s.replace(/:pull,push$/, ':pull'));
    const value = `tok-${recorded.tokenRequests.length}`;
    granted.set(value, allowed);
    json(res, 200, { token: value, expires_in: 300, issued_at: new Date().toISOString() });
  }
}

// The scopes a request needs: pull to read, pull,push to write, pull on a mount's source.
function neededScopes(method: string, url: URL): string[] {
  const name = /^\/v2\/(.+?)\/(?:manifests|blobs|tags)\//.exec(url.pathname)?.[1];
  if (!name) return [];
  const write = method !== 'GET' && method !== 'HEAD';
  const from = url.searchParams.get('from');
  return [`repository:${name}:${write ? 'pull,push' : 'pull'}`, ...(from ? [`repository:${from}:pull`] : [])];
}

function covers(granted: string[], needed: string): boolean {
  const [, repo, actions] = /^repository:(.+):([a-z,]+)$/.exec(needed) ?? [];
  return granted.some((g) => {
    const [, grepo, gactions] = /^repository:(.+):([a-z,]+)$/.exec(g) ?? [];
    return grepo === repo && (actions ?? '').split(',').every((a) => (gactions ?? '').split(',').includes(a));
  });
}

test('Bearer token flow through a token server in front of Distribution', async (t) => {
  await startDistribution(t, BACKEND);
  const { url, recorded } = await startFake(t);
  const image = await readLayoutImage(OCI, '1');
  const open = (t: { after: (fn: () => void) => void }, options: { username?: string; password?: string; log?: (line: string) => void } = {}): RegistryClient => {
    const c = new RegistryClient({ url, ...options });
    t.after(() => c.close());
    return c;
  };

  await t.test('push: one token for the whole push, relative upload Locations, Content-Length on PUT', async (t) => {
    const lines: string[] = [];
    const c = open(t, { username: USER, password: PASSWORD, log: (line) => lines.push(line) });
    assert.deepEqual(await pushLayoutImage(c, image, 'secure/app', '1'), ['uploaded', 'uploaded', 'uploaded']);
    assert.deepEqual(recorded.tokenRequests, [{ scopes: ['repository:secure/app:pull,push'], service: 'fake-registry', user: USER }]);
    assert.equal(lines.filter((line) => line.endsWith(' 401')).length, 1);
    assert.deepEqual(recorded.uploads, image.blobs.map((b) => ({ contentLength: String(b.size), transferEncoding: undefined })));
    const inspected = JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://127.0.0.1:${BACKEND}/secure/app:1`)) as { Digest: string };
    assert.equal(inspected.Digest, BUSYBOX_1);
  });

  await t.test('pull: a pull token, cached; blob redirects reach storage without the token', async (t) => {
    recorded.tokenRequests.length = 0;
    const c = open(t, { username: USER, password: PASSWORD });
    assert.equal((await c.headManifest('secure/app', '1'))?.digest, BUSYBOX_1);
    assert.equal((await c.getManifest('secure/app', BUSYBOX_1))?.digest, BUSYBOX_1);
    const dir = await tempDir(t);
    for (const blob of image.blobs) await c.downloadBlob('secure/app', blob.digest, join(dir, blob.digest), blob.size);
    assert.deepEqual(recorded.tokenRequests.map((r) => r.scopes), [['repository:secure/app:pull']]);
    assert.deepEqual(recorded.storageAuthorization, [undefined, undefined, undefined]);
  });

  await t.test('mount: the token covers pull on the source repository', async (t) => {
    recorded.tokenRequests.length = 0;
    const c = open(t, { username: USER, password: PASSWORD });
    assert.deepEqual(await pushLayoutImage(c, image, 'secure/copy', '1', 'secure/app'), ['mounted', 'mounted', 'mounted']);
    assert.deepEqual(recorded.tokenRequests.map((r) => r.scopes), [['repository:secure/copy:pull,push', 'repository:secure/app:pull']]);
  });

  await t.test('anonymous: pull works, push fails once with a clear line', async (t) => {
    const c = open(t);
    assert.equal((await c.getManifest('secure/app', '1'))?.digest, BUSYBOX_1);
    await assert.rejects(c.putManifest('secure/app', '2', image.bytes, image.mediaType), {
      message: `PUT ${url}/v2/secure/app/manifests/2: 401 UNAUTHORIZED authentication required — check source.store.username/password`,
    });
  });

  await t.test('a wrong password fails at the token server', async (t) => {
    const c = open(t, { username: USER, password: 'nope' });
    await assert.rejects(c.ping(), (error: Error) => {
      assert.equal(error.message, `GET ${url}/token: 401 UNAUTHORIZED invalid username or password (token request) — check source.store.username/password`);
      assert.doesNotMatch(error.message, /nope|b3arer/);
      return true;
    });
  });

  await t.test('tag pages follow Link, relative and absolute', async (t) => {
    assert.deepEqual(await open(t, { username: USER, password: PASSWORD }).listTags('paged'), ['a', 'b', 'c', 'd', 'e']);
  });

  await t.test('content that does not match its digest is refused', async (t) => {
    const c = open(t, { username: USER, password: PASSWORD });
    await assert.rejects(c.getManifest('bad', BUSYBOX_1), /^RegistryClientError: GET http:\/\/127\.0\.0\.1:\d+\/v2\/bad\/manifests\/sha256:aa48.*: manifest content has digest sha256:[0-9a-f]{64}, not the requested one$/);
    const dir = await tempDir(t);
    const layer = image.blobs[1]!;
    await assert.rejects(c.downloadBlob('corrupt', layer.digest, join(dir, 'layer')), /storage\/secure\/app\/sha256:[0-9a-f]{64}: content has digest sha256:[0-9a-f]{64}, expected sha256:/);
    assert.deepEqual(await readdir(dir), []);
  });
});
