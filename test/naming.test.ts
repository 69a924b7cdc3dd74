import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalizeRepositoryName, parseImageReference, requestCandidates } from '../src/image/reference.js';
import { type ImageSource, ServedImages } from '../src/store/image-source.js';
import type { RepositorySnapshot } from '../src/store/snapshot.js';

// DESIGN §2: a name keeps its registry; Docker Hub's spellings normalise; host-less stays host-less.
const NAMES: [string, string | undefined][] = [
  ['busybox', 'busybox'],
  ['library/busybox', 'library/busybox'],
  ['cartorio/sample', 'cartorio/sample'],
  ['docker.io/busybox', 'docker.io/library/busybox'],
  ['docker.io/library/busybox', 'docker.io/library/busybox'],
  ['index.docker.io/library/busybox', 'docker.io/library/busybox'],
  ['registry-1.docker.io/org/app', 'docker.io/org/app'],
  ['Docker.IO/org/app', 'docker.io/org/app'],
  ['quay.io/cilium/cilium', 'quay.io/cilium/cilium'],
  ['registry.k8s.io/pause', 'registry.k8s.io/pause'],
  ['127.0.0.1:5000/busybox', '127.0.0.1:5000/busybox'],
  ['localhost/app', 'localhost/app'],
  ['localhost', 'localhost'],
  ['quay.io/Org/app', undefined],
  ['quay.io:x/app', undefined],
  ['-bad.io/app', undefined],
  ['quay.io/blobs/x', undefined],
  ['', undefined],
];

test('one naming rule: every spelling of a name to its stored form', () => {
  for (const [input, expected] of NAMES) assert.equal(normalizeRepositoryName(input), expected, input);
});

test('references keep their registry, tags and digests', () => {
  assert.deepEqual(parseImageReference('quay.io/org/app:1'), { repository: 'quay.io/org/app', tag: '1' });
  assert.deepEqual(parseImageReference('docker.io/busybox:1'), { repository: 'docker.io/library/busybox', tag: '1' });
  assert.deepEqual(parseImageReference('busybox:1'), { repository: 'busybox', tag: '1' });
  assert.deepEqual(parseImageReference('127.0.0.1:5000/busybox'), { repository: '127.0.0.1:5000/busybox' });
  assert.deepEqual(parseImageReference('127.0.0.1:5000/busybox:1@sha256:ab'), { repository: '127.0.0.1:5000/busybox', tag: '1', digest: 'sha256:ab' });
  assert.equal(parseImageReference('app:-bad'), undefined);
});

// [path, ns, candidates in order]
const CANDIDATES: [string, string | undefined, string[]][] = [
  ['library/busybox', 'docker.io', ['docker.io/library/busybox', 'library/busybox', 'busybox']],
  ['busybox', 'docker.io', ['docker.io/library/busybox', 'busybox', 'library/busybox']],
  ['org/app', 'index.docker.io', ['docker.io/org/app', 'org/app']],
  ['cilium/cilium', 'quay.io', ['quay.io/cilium/cilium', 'cilium/cilium']],
  ['pause', 'registry.k8s.io', ['registry.k8s.io/pause', 'pause']],
  ['busybox', '127.0.0.1:5000', ['127.0.0.1:5000/busybox', 'busybox']],
  ['busybox', 'not a host', []],
  ['quay.io/cilium/cilium', undefined, ['quay.io/cilium/cilium', 'cilium/cilium']],
  ['docker.io/busybox', undefined, ['docker.io/library/busybox', 'busybox', 'library/busybox']],
  ['docker.io/library/busybox', undefined, ['docker.io/library/busybox', 'library/busybox', 'busybox']],
  ['busybox', undefined, ['busybox']],
  ['library/busybox', undefined, ['library/busybox', 'busybox']],
  // One registry per request: the rest of the path is a path on it, and a hosted name is never a fallback.
  ['evil.com/quay.io/org/app', undefined, ['evil.com/quay.io/org/app']],
  ['quay.io/org/app', 'evil.com', ['evil.com/quay.io/org/app']],
  ['quay.io/org/app', 'quay.io', ['quay.io/org/app', 'org/app']],
  ['quay.io/org/app', 'library', []],
];

test('a request path (and ns) to the names it may mean, most specific first', () => {
  for (const [path, ns, expected] of CANDIDATES) assert.deepEqual(requestCandidates(path, ns), expected, `${path} ns=${ns}`);
});

function fakeSource(description: string, names: string[]): ImageSource {
  const sorted = [...names].sort();
  return {
    description,
    repositoryNames: async () => sorted,
    repository: async (name) => (sorted.includes(name) ? ({ name } as RepositorySnapshot) : undefined),
    blob: async () => undefined,
    available: async () => true,
  };
}

test('a request resolves to exactly one repository, or is refused with the candidates', async () => {
  const store = fakeSource('store', ['docker.io/library/busybox', 'quay.io/org/app', 'docker.io/org/app', 'registry.k8s.io/pause', 'app2', 'ghcr.io/x/tool']);
  const served = new ServedImages([store, fakeSource('image.tar', ['ghcr.io/x/tool', 'solo'])]);
  const resolve = async (path: string, ns?: string): Promise<string> => {
    const found = await served.resolve(path, ns);
    return found.kind === 'found' ? found.name : found.kind === 'ambiguous' ? `ambiguous: ${found.names.join(' | ')}` : 'unknown';
  };
  assert.equal(await resolve('org/app', 'quay.io'), 'quay.io/org/app');
  assert.equal(await resolve('org/app', 'docker.io'), 'docker.io/org/app');
  assert.equal(await resolve('org/app', 'ghcr.io'), 'unknown', 'ns names the registry: never another registry');
  assert.equal(await resolve('org/app'), 'ambiguous: docker.io/org/app | quay.io/org/app');
  assert.equal(await resolve('quay.io/org/app'), 'quay.io/org/app');
  assert.equal(await resolve('busybox'), 'docker.io/library/busybox');
  assert.equal(await resolve('library/busybox'), 'docker.io/library/busybox');
  assert.equal(await resolve('library/busybox', 'docker.io'), 'docker.io/library/busybox');
  assert.equal(await resolve('pause'), 'registry.k8s.io/pause');
  assert.equal(await resolve('app2', 'docker.io'), 'app2', 'host-less stores keep answering mirrors');
  assert.equal(await resolve('solo'), 'solo');
  assert.match(await resolve('ghcr.io/x/tool'), /^ambiguous: ghcr.io\/x\/tool \(store\) \| ghcr.io\/x\/tool \(image.tar\)$/);
  assert.equal(await resolve('nothing'), 'unknown');
  assert.deepEqual(await served.repositoryNames(), ['app2', 'docker.io/library/busybox', 'docker.io/org/app', 'ghcr.io/x/tool', 'quay.io/org/app', 'registry.k8s.io/pause', 'solo']);
});

test('a store keeps its repository list; a repository written without it is still served by name, and verify says so', async (t) => {
  const { mkdtemp, rm, cp, readFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { cartorio, FIXTURES } = await import('./helpers/cli.js');
  const { StoreReader } = await import('../src/store/reader.js');
  const dir = await mkdtemp(join(tmpdir(), 'cartorio-names-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = join(dir, 'store');
  assert.equal((await cartorio(['load', '--quiet', '--store', store, join(FIXTURES, 'docker-save-multi.tar')])).code, 0);
  assert.equal(await readFile(join(store, '.repositories'), 'utf8'), '127.0.0.1:5000/busybox\nbusybox\nother/tool\n');
  // A layout copied in by hand (or by an older cartorio): not in the list.
  await cp(join(store, 'other', 'tool'), join(store, 'quay.io', 'copied'), { recursive: true });
  const served = new ServedImages([new StoreReader(store)]);
  const found = await served.resolve('copied', 'quay.io');
  assert.equal(found.kind === 'found' ? found.name : found.kind, 'quay.io/copied');
  const verify = await cartorio(['verify', '--store', store]);
  assert.equal(verify.code, 1);
  assert.match(verify.stdout, /problem: quay.io\/copied: not in .repositories, so the catalog does not list it/);
});
