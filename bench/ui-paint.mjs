// bench/ui-paint.mjs URL RUNS — median first paint and first contentful paint of URL in Debian's
// Chromium (headless, playwright-core, a fresh browser and profile per run), beside the same browser
// painting a one-line page from a data: URL (the floor: no network, no stylesheet) in the same run.
// Prints "FP / FCP ms (floor FP / FCP ms)".
import { chromium } from 'playwright-core';

const [url, runs = '5'] = process.argv.slice(2);
const floorUrl = 'data:text/html,<!doctype html><title>floor</title><h1>Repositories</h1>';
const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function paints(target) {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(target, { waitUntil: 'load' });
    // Paint entries are recorded once a frame is produced, which headless may do after `load`.
    await page.waitForFunction(() => performance.getEntriesByType('paint').length >= 2, undefined, { timeout: 10_000 });
    const entries = await page.evaluate(() => Object.fromEntries(performance.getEntriesByType('paint').map((entry) => [entry.name, entry.startTime])));
    return [entries['first-paint'], entries['first-contentful-paint']];
  } finally {
    await browser.close();
  }
}

const page = [];
const floor = [];
for (let i = 0; i < Number(runs); i++) {
  page.push(await paints(url));
  floor.push(await paints(floorUrl));
}
const median = (values) => Math.round(values.sort((a, b) => a - b)[Math.floor(values.length / 2)]);
const pair = (list) => `${median(list.map((p) => p[0]))} / ${median(list.map((p) => p[1]))}`;
console.log(`${pair(page)} ms (floor ${pair(floor)} ms)`);
