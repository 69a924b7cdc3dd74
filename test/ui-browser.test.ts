import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Browser, type BrowserContext, type Page, chromium } from 'playwright-core';
import { HOSTILE_LABELS, HOSTILE_NAME, makeCatalogStore } from './helpers/catalog-store.js';
import { CLI, FIXTURES, ROOT, tempDir } from './helpers/cli.js';
import { BUSYBOX_1, BUSYBOX_MULTI, SBOM_TYPE, SIGNATURE_TYPE } from './helpers/registry-store.js';

// The catalog as a person sees it: Debian's Chromium, headless, against `cartorio serve` over a
// store (with referrers and a hostile image), an archive served in place and a layout directory.

/** Debian's chromium package; playwright-core drives it over the DevTools protocol (no bundled browser). */
const CHROMIUM = '/usr/bin/chromium';
// playwright's launch() also gives every run a fresh temporary --user-data-dir.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/**
 * The screenshots the docs show (docs/images) are taken again only when asked
 * (CARTORIO_UPDATE_SCREENSHOTS=1): a test run leaves the checkout as it was.
 */
function screenshotsIn(dir: string): string {
  return process.env['CARTORIO_UPDATE_SCREENSHOTS'] === '1' ? join(ROOT, 'docs', 'images') : join(dir, 'screenshots');
}
const NAMES = ['archived/busybox', 'busybox', 'library/busybox', 'other/tool', HOSTILE_NAME, 'tools/kit'];

test('catalog in Chromium: lists, searches, reaches a repository, shows tags, platforms, referrers and pull commands; no console error', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  const fixtures = await makeCatalogStore(store);
  const address = await serve(t, dir, ['--store', store, `archived/busybox=${join(FIXTURES, 'docker-save-busybox.tar')}`, `tools/kit=${join(FIXTURES, 'busybox-oci')}`]);
  const origin = `http://${address}`;
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  t.after(() => browser.close());
  const problems: string[] = [];
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light', permissions: ['clipboard-read', 'clipboard-write'] });
  const page = await watched(context, origin, problems);

  // Home: every repository, archives and layouts beside the store's; the security headers.
  const response = await page.goto(`${origin}/`);
  assert.equal(response?.status(), 200);
  assert.match((await response?.allHeaders())?.['content-security-policy'] ?? '', /^default-src 'none'; script-src 'self'; style-src 'self'/);
  assert.deepEqual(await names(page), NAMES);
  const screenshots = screenshotsIn(dir);
  await mkdir(screenshots, { recursive: true });
  await page.screenshot({ path: join(screenshots, 'catalog-home.png') });

  // Keyboard: the first stops are the home link and the search box.
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.className), 'brand');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('name')), 'q');

  // Instant search: typing narrows the list without a submit, and the URL follows.
  await page.keyboard.type('busybox');
  await page.waitForFunction(() => document.querySelectorAll('#results td.name').length === 3);
  assert.deepEqual(await names(page), ['archived/busybox', 'busybox', 'library/busybox']);
  assert.equal(new URL(page.url()).search, '?q=busybox');
  await page.fill('input[name=q]', 'evil');
  await page.waitForFunction(() => document.querySelectorAll('#results td.name').length === 1);

  // A click reaches the repository page; a hostile label is text, never markup or a link.
  await page.click(`a[href="/r/${HOSTILE_NAME}"]`);
  await page.waitForURL(`${origin}/r/${HOSTILE_NAME}`);
  assert.equal(await page.locator('h1').textContent(), HOSTILE_NAME);
  const labels = await page.locator('table.kv').first().innerText();
  for (const [key, value] of Object.entries(HOSTILE_LABELS)) assert.ok(labels.includes(`${key}\t${value}`), `${key} shown as text`);
  assert.equal(await page.locator('script').count(), 1, 'only the catalog script');
  assert.equal(await page.locator('a[href^="javascript:" i]').count(), 0);
  assert.equal(await page.locator('img[src="x"]').count(), 0);
  assert.equal(await page.locator(`a[href="${new URL(HOSTILE_LABELS['org.opencontainers.image.url']).href}"]`).count(), 1, 'an https label is a link');

  // Pull commands name the host the browser used, with the registry host as a path prefix.
  assert.equal(await commandOf(page, 'docker pull'), `docker pull ${address}/${HOSTILE_NAME}:hostile`);
  assert.equal(await commandOf(page, 'image:'), `image: ${HOSTILE_NAME}:hostile`);
  // The copy button puts the command on the clipboard.
  await page.locator('.copy', { hasText: 'podman pull' }).first().getByRole('button').click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), `podman pull --tls-verify=false ${address}/${HOSTILE_NAME}:hostile`);

  // busybox: tags, digests, the index's platforms and the referrers (an SBOM and a signature).
  await page.goto(`${origin}/r/busybox`);
  const tags = await page.locator('#tags ~ .table tbody td:first-child').allTextContents();
  assert.deepEqual(tags.sort(), ['1', '2', '3', 'arm64', 'multi', 'v1.0']);
  const image1 = page.locator(`section[id="image-${BUSYBOX_1.slice(7, 19)}"]`);
  assert.ok((await image1.locator('dl.facts').innerText()).includes(BUSYBOX_1));
  assert.deepEqual((await image1.locator('h3 .tag').allTextContents()).sort(), ['1', '2', '3', 'v1.0']);
  const artifacts = await image1.locator('h3:text("Attached artifacts") + .table').innerText();
  assert.ok(artifacts.includes(SBOM_TYPE) && artifacts.includes('SBOM'), artifacts);
  assert.ok(artifacts.includes(SIGNATURE_TYPE) && artifacts.includes('signature'), artifacts);
  assert.ok(artifacts.includes(fixtures.sbom.digest.slice(0, 19)), artifacts);
  const multi = page.locator(`section[id="image-${BUSYBOX_MULTI.slice(7, 19)}"]`);
  const platforms = await multi.locator('h3:text("Platforms") + .table').innerText();
  assert.match(platforms, /linux\/amd64/);
  assert.match(platforms, /linux\/arm64\/v8/);
  assert.equal(await multi.locator('dl.facts dt:text("Media type") + dd').innerText(), 'application/vnd.oci.image.index.v1+json');
  assert.equal(await commandOf(page, 'docker pull', multi), `docker pull ${address}/busybox:multi`);
  assert.equal(await commandOf(page, 'ctr image pull', multi, 1), `ctr image pull --plain-http ${address}/busybox@${BUSYBOX_MULTI}`);
  await page.screenshot({ path: join(screenshots, 'catalog-repository.png') });

  // Dark theme from prefers-color-scheme.
  await page.emulateMedia({ colorScheme: 'dark' });
  assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(13, 17, 23)');
  await page.goto(`${origin}/`);
  await page.screenshot({ path: join(screenshots, 'catalog-home-dark.png') });
  assert.deepEqual(problems, []);
});

test('catalog in Chromium: complete without JavaScript, readable on a phone', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  await makeCatalogStore(store);
  const address = await serve(t, dir, ['--store', store]);
  const origin = `http://${address}`;
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  t.after(() => browser.close());
  const problems: string[] = [];

  const noScript = await watched(await browser.newContext({ javaScriptEnabled: false }), origin, problems);
  await noScript.goto(`${origin}/`);
  await noScript.fill('input[name=q]', 'tool');
  await Promise.all([noScript.waitForURL(`${origin}/?q=tool&host=`), noScript.press('input[name=q]', 'Enter')]);
  assert.deepEqual(await names(noScript), ['other/tool']);
  await noScript.click('a[href="/r/other/tool"]');
  assert.equal(await commandOf(noScript, 'docker pull'), `docker pull ${address}/other/tool:1`);
  assert.equal(await noScript.locator('.copy button').count(), 0, 'no copy buttons without the script');

  const phone = await watched(await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true }), origin, problems);
  for (const path of ['/', '/r/busybox', `/r/${HOSTILE_NAME}`]) {
    await phone.goto(`${origin}${path}`);
    const [scroll, width] = await phone.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    assert.ok((scroll ?? 0) <= (width ?? 0), `${path}: ${scroll} px wide in a ${width} px screen`);
  }
  assert.deepEqual(problems, []);
});

/** A page that records console errors and warnings (CSP violations among them), page errors, dialogs and requests elsewhere. */
async function watched(context: BrowserContext, origin: string, problems: string[]): Promise<Page> {
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(`console ${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('dialog', (dialog) => {
    problems.push(`dialog: ${dialog.message()}`);
    void dialog.dismiss();
  });
  page.on('request', (request) => {
    if (!request.url().startsWith(`${origin}/`)) problems.push(`request outside the server: ${request.url()}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`${response.status()} for ${response.url()}`);
  });
  return page;
}

async function names(page: Page): Promise<string[]> {
  return page.locator('#results td.name a').allTextContents();
}

/** The text a copy button would copy, for the nth command starting with `prefix` (by tag first, then by digest). */
async function commandOf(page: Page, prefix: string, within = page.locator('section.image').first(), nth = 0): Promise<string | null> {
  return within.locator(`[data-copy^="${prefix}"]`).nth(nth).getAttribute('data-copy');
}

/** `cartorio serve ARGS` on a free port; the address once it is listening. */
async function serve(t: { after: (fn: () => void | Promise<void>) => void }, dir: string, args: string[]): Promise<string> {
  const ready = join(dir, 'ready');
  const child: ChildProcess = spawn(process.execPath, [CLI, 'serve', ...args, '--listen', '127.0.0.1:0', '--ready-file', ready, '--quiet', '--log-level', 'warn'], { stdio: 'ignore' });
  t.after(() => void child.kill('SIGTERM'));
  for (let i = 0; i < 200; i++) {
    const address = await readFile(ready, 'utf8').catch(() => '');
    if (address !== '') return address;
    await sleep(50);
  }
  throw new Error('cartorio serve did not write its ready file in 10 s');
}
