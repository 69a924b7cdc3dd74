import assert from 'node:assert/strict';
import { link, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { hashSync } from 'bcryptjs';
import { buildRegistry } from '../src/registry/app.js';
import { parseHtpasswd } from '../src/registry/auth.js';
import { escapeHtml, html, httpUrl, trusted } from '../src/registry/ui/html.js';
import { pullCommands, validHost } from '../src/registry/ui/pull-commands.js';
import { ServedImages } from '../src/store/image-source.js';
import { StoreReader } from '../src/store/reader.js';
import { HOSTILE_LABELS, HOSTILE_NAME, makeCatalogStore } from './helpers/catalog-store.js';
import { tempDir } from './helpers/cli.js';

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

test('html: every interpolated value is escaped, markup built by html is not, nothing renders as nothing', () => {
  const cases: [string, unknown, string][] = [
    ['markup', '<script>alert(1)</script>', '&lt;script&gt;alert(1)&lt;/script&gt;'],
    ['both quotes and ampersand', `"a" & 'b'`, '&quot;a&quot; &amp; &#39;b&#39;'],
    ['number', 42, '42'],
    ['undefined', undefined, ''],
    ['null', null, ''],
    ['false', false, ''],
    ['array of text', ['<a>', '&'], '&lt;a&gt;&amp;'],
    ['nested html', html`<b>${'<i>'}</b>`, '<b>&lt;i&gt;</b>'],
    ['trusted', trusted('<!doctype html>'), '<!doctype html>'],
  ];
  for (const [what, value, expected] of cases) assert.equal(html`${value as string}`.text, expected, what);
  // A value cannot leave the quoted attribute it sits in.
  assert.equal(html`<a title="${'x" onmouseover="alert(1)'}">`.text, '<a title="x&quot; onmouseover=&quot;alert(1)">');
  assert.equal(escapeHtml(`<>&"'`), '&lt;&gt;&amp;&quot;&#39;');
});

test('httpUrl: only absolute http(s) URLs become links', () => {
  for (const bad of ['javascript:alert(1)', 'JavaScript:alert(1)', ' javascript:alert(1)', 'data:text/html,<script>', 'vbscript:x', '//evil.example/x', '/relative', 'https://', 'http://[bad', 'ftp://example.com/']) {
    assert.equal(httpUrl(bad), undefined, bad);
  }
  assert.equal(httpUrl('https://github.com/org/repo'), 'https://github.com/org/repo');
  assert.equal(httpUrl('HTTP://Example.com/a b'), 'http://example.com/a%20b');
});

test('pull commands: the browser\'s host, the mirror spelling of a registry host, TLS flags', () => {
  const plain = pullCommands('quay.io/org/app', ':v1', { host: '10.0.0.5:5000', tls: false });
  const by = (client: string): string => plain.find((command) => command.client === client)?.command ?? '';
  assert.equal(by('docker'), 'docker pull 10.0.0.5:5000/quay.io/org/app:v1');
  assert.equal(by('podman'), 'podman pull --tls-verify=false 10.0.0.5:5000/quay.io/org/app:v1');
  assert.equal(by('ctr'), 'ctr image pull --plain-http 10.0.0.5:5000/quay.io/org/app:v1');
  assert.equal(by('skopeo'), 'skopeo copy --src-tls-verify=false docker://10.0.0.5:5000/quay.io/org/app:v1 oci-archive:app-v1.tar');
  // containerd (CRI, Kubernetes) asks the mirror with ?ns=quay.io: the upstream spelling.
  assert.equal(by('crictl'), 'crictl pull quay.io/org/app:v1');
  assert.equal(by('kubernetes'), 'image: quay.io/org/app:v1');
  assert.match(plain.find((command) => command.client === 'docker')?.note ?? '', /insecure-registries/);
  const tls = pullCommands('tools/kit', '@sha256:' + 'a'.repeat(64), { host: 'registry.example:443', tls: true });
  assert.deepEqual(tls.map((command) => command.command), [
    `docker pull registry.example:443/tools/kit@sha256:${'a'.repeat(64)}`,
    `podman pull registry.example:443/tools/kit@sha256:${'a'.repeat(64)}`,
    `ctr image pull registry.example:443/tools/kit@sha256:${'a'.repeat(64)}`,
    `crictl pull registry.example:443/tools/kit@sha256:${'a'.repeat(64)}`,
    `skopeo copy docker://registry.example:443/tools/kit@sha256:${'a'.repeat(64)} oci-archive:kit.tar`,
    `image: registry.example:443/tools/kit@sha256:${'a'.repeat(64)}`,
  ]);
  for (const bad of ['evil.com/x', 'a b', '<script>', '', 'host:port', 'x@y']) assert.equal(validHost(bad), undefined, bad);
  for (const good of ['localhost:5000', '10.0.0.5', '[::1]:5000', 'Registry.Example:443']) assert.equal(validHost(good), good.toLowerCase(), good);
});

test('catalog routes: security headers, escaping, host from Host (X-Forwarded-Host only when trusted), 404 page', async (t) => {
  const root = join(await tempDir(t), 'store');
  await makeCatalogStore(root);
  const images = new ServedImages([new StoreReader(root)]);
  const app = buildRegistry({ images, logger: false, ui: {} });
  t.after(() => app.close());

  const home = await app.inject({ url: '/' });
  assert.equal(home.statusCode, 200);
  assert.equal(home.headers['content-type'], 'text/html; charset=utf-8');
  assert.match(String(home.headers['content-security-policy']), /^default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:/);
  assert.equal(home.headers['x-content-type-options'], 'nosniff');
  for (const name of ['busybox', 'library/busybox', 'other/tool', HOSTILE_NAME]) assert.ok(home.body.includes(`href="/r/${name}"`), name);
  assert.doesNotMatch(home.body, /<script>|<style|\sstyle=|\son[a-z]+=/, 'no inline script, style or handler');
  const head = await app.inject({ method: 'HEAD', url: '/' });
  assert.equal(head.body, '');
  assert.equal(head.headers['content-length'], home.headers['content-length']);

  // Search without JavaScript: a query parameter.
  const searched = await app.inject({ url: '/?q=tool' });
  assert.ok(searched.body.includes('href="/r/other/tool"'));
  assert.ok(!searched.body.includes('href="/r/busybox"'));
  const hostile = await app.inject({ url: `/?q=${encodeURIComponent('"><script>alert(1)</script>')}&host=${encodeURIComponent('"><b>')}` });
  assert.equal(hostile.statusCode, 200);
  assert.ok(hostile.body.includes('value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"'), 'the query is echoed escaped');
  assert.ok(!hostile.body.includes('<script>alert') && !hostile.body.includes('"><b>'));
  const byHost = await app.inject({ url: '/?host=quay.io' });
  assert.ok(byHost.body.includes(`href="/r/${HOSTILE_NAME}"`));
  assert.ok(!byHost.body.includes('href="/r/other/tool"'));

  const page = await app.inject({ url: `/r/${HOSTILE_NAME}`, headers: { host: 'catalog.example:8443', 'x-forwarded-host': 'proxy.example' } });
  assert.equal(page.statusCode, 200);
  for (const value of Object.values(HOSTILE_LABELS)) assert.ok(page.body.includes(escapeHtml(value)), value);
  assert.ok(!page.body.includes('<script>alert'), 'label markup is escaped');
  assert.ok(!page.body.includes('href="javascript:'), 'a javascript: label is no link');
  assert.ok(page.body.includes('href="https://example.com/evil?a=%22b%22&amp;c=%3Cd%3E"'), 'an https label is a link');
  assert.ok(page.body.includes(`docker pull catalog.example:8443/${HOSTILE_NAME}:hostile`), 'Host names the server; X-Forwarded-Host is not trusted');

  const trusting = buildRegistry({ images, logger: false, ui: { trustProxy: true } });
  t.after(() => trusting.close());
  const proxied = await trusting.inject({ url: '/r/other/tool', headers: { host: 'internal:5000', 'x-forwarded-host': 'registry.example', 'x-forwarded-proto': 'https' } });
  assert.ok(proxied.body.includes('podman pull registry.example/other/tool:1'), 'the proxy\'s host and scheme (https: no --tls-verify=false)');
  const spoofed = await trusting.inject({ url: '/r/other/tool', headers: { host: 'internal:5000', 'x-forwarded-host': '"><script>' } });
  assert.ok(spoofed.body.includes('docker pull internal:5000/other/tool:1'), 'an invalid forwarded host is ignored');

  assert.equal((await app.inject({ url: '/r/' })).statusCode, 404);
  for (const url of ['/r/nope', '/r/Busybox', '/r/busybox%2Fx', '/r/busybox/%2e%2e/x', '/-/nope.css']) {
    const missing = await app.inject({ url });
    assert.equal(missing.statusCode, 404, url);
    assert.equal(missing.headers['content-type'], 'text/html; charset=utf-8', url);
  }
  // The API is untouched: /v2/ still answers JSON.
  assert.equal((await app.inject({ url: '/v2/_catalog' })).json().repositories.length, 4);
});

test('catalog: --no-ui leaves / a JSON 404; with htpasswd the pages and assets need credentials, /healthz not', async (t) => {
  const root = join(await tempDir(t), 'store');
  await makeCatalogStore(root);
  const images = new ServedImages([new StoreReader(root)]);
  const off = buildRegistry({ images, logger: false });
  t.after(() => off.close());
  const root404 = await off.inject({ url: '/' });
  assert.equal(root404.statusCode, 404);
  assert.equal(root404.headers['content-type'], 'application/json');
  assert.ok(Array.isArray(root404.json().errors));
  assert.equal((await off.inject({ url: '/r/busybox' })).statusCode, 404);

  const htpasswd = parseHtpasswd(`alice:${hashSync('wonderland', 4)}\n`, 'test htpasswd');
  const app = buildRegistry({ images, logger: false, htpasswd, ui: {} });
  t.after(() => app.close());
  const asset = /href="(\/-\/catalog\.[0-9a-f]+\.css)"/.exec((await app.inject({ url: '/', headers: { authorization: basic('alice', 'wonderland') } })).body)?.[1] ?? '';
  assert.notEqual(asset, '');
  for (const url of ['/', '/?q=busybox', '/r/busybox', asset]) {
    const refused = await app.inject({ url });
    assert.equal(refused.statusCode, 401, url);
    assert.equal(refused.headers['www-authenticate'], 'Basic realm="cartorio"', url);
    assert.equal((await app.inject({ url, headers: { authorization: basic('alice', 'wonderland') } })).statusCode, 200, url);
  }
  assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200);
});

test('home: pages of 100 bounded in bytes, whatever the store holds; details only for the rows shown', async (t) => {
  const root = join(await tempDir(t), 'store');
  await makeCatalogStore(root);
  // 250 more repositories: hard links of other/tool, as a store shares its blobs.
  const names = Array.from({ length: 250 }, (_, i) => `ghcr.io/team-${i % 5}/app-${String(i).padStart(3, '0')}`);
  for (const name of names) await linkTree(join(root, 'other', 'tool'), join(root, ...name.split('/')));
  await writeFile(join(root, '.repositories'), [...names, 'busybox', 'library/busybox', 'other/tool', HOSTILE_NAME].sort().join('\n') + '\n');
  const app = buildRegistry({ images: new ServedImages([new StoreReader(root)]), logger: false, ui: {} });
  t.after(() => app.close());
  const rows = (body: string): string[] => [...body.matchAll(/<td class="name"><a href="\/r\/([^"]+)"/g)].map((match) => match[1] ?? '');
  const first = await app.inject({ url: '/' });
  assert.equal(rows(first.body).length, 100);
  assert.ok(first.body.includes('href="/?page=2" rel="next"'));
  assert.ok(first.body.length < 80_000, `${first.body.length} bytes`);
  const last = await app.inject({ url: '/?page=3' });
  assert.deepEqual(rows(last.body), [...names, 'busybox', 'library/busybox', 'other/tool', HOSTILE_NAME].sort().slice(200));
  const team = await app.inject({ url: '/?q=team-3&host=ghcr.io' });
  assert.equal(rows(team.body).length, 50);
  assert.ok(rows(team.body).every((name) => name.includes('/team-3/')));
});

async function linkTree(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const entry of await readdir(from, { withFileTypes: true })) {
    if (entry.isDirectory()) await linkTree(join(from, entry.name), join(to, entry.name));
    else await link(join(from, entry.name), join(to, entry.name));
  }
}
