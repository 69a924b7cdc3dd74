import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPOSITORY_LIST } from '../../src/store/repository-list.js';
import { FIXTURES, run } from './cli.js';
import { type RegistryStore, makeRegistryStore } from './registry-store.js';

/** Labels no page may run or link: markup, quotes, and a `javascript:` source URL. */
export const HOSTILE_LABELS = {
  'org.opencontainers.image.source': 'javascript:alert(document.domain)',
  'org.opencontainers.image.url': 'https://example.com/evil?a="b"&c=<d>',
  'org.opencontainers.image.description': '<script>alert("x")</script><img src=x onerror=alert(1)>',
  'evil"key': "it's \"quoted\" & <b>bold</b>",
} as const;

/** The hostile image's name: a registry host, so its pull commands take the mirror spelling. */
export const HOSTILE_NAME = 'quay.io/evil/app';

/**
 * The registry test store (busybox with a multi-platform index, referrers, library/busybox,
 * other/tool) plus `quay.io/evil/app:hostile`: busybox given HOSTILE_LABELS by umoci and copied
 * in by skopeo, as real tools write them.
 */
export async function makeCatalogStore(root: string): Promise<RegistryStore> {
  const store = await makeRegistryStore(root);
  const work = await mkdtemp(join(tmpdir(), 'cartorio-hostile-'));
  try {
    const layout = join(work, 'layout');
    await cp(join(FIXTURES, 'busybox-oci'), layout, { recursive: true });
    const labels = Object.entries(HOSTILE_LABELS).flatMap(([key, value]) => ['--config.label', `${key}=${value}`]);
    await must('umoci', ['config', '--no-history', '--image', `${layout}:1`, '--tag', 'hostile', ...labels]);
    await mkdir(join(root, 'quay.io', 'evil'), { recursive: true });
    await must('skopeo', ['copy', '-q', `oci:${layout}:hostile`, `oci:${join(root, ...HOSTILE_NAME.split('/'))}:hostile`]);
    // skopeo writes the layout; the store's list of names is cartorio's to keep.
    const list = join(root, REPOSITORY_LIST);
    const names = new Set((await readFile(list, 'utf8')).split('\n').filter(Boolean)).add(HOSTILE_NAME);
    await writeFile(list, [...names].sort().map((name) => `${name}\n`).join(''));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return store;
}

async function must(command: string, args: string[]): Promise<void> {
  const result = await run(command, args);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr}`);
}
