import assert from 'node:assert/strict';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildRegistry } from '../src/registry/app.js';
import { nodeConfigFiles, registryHosts } from '../src/registry/mirror-config.js';
import { ServedImages } from '../src/store/image-source.js';
import { StoreReader } from '../src/store/reader.js';
import { FIXTURES, tempDir } from './helpers/cli.js';
import { BUSYBOX_1 } from './helpers/registry-store.js';

// DESIGN §4 "A request resolves to exactly one repository", as every client spells a request:
// containerd's `?ns=HOST` mirrors, CRI-O/podman's `HOST:PORT/quay.io` mirror locations, Docker's
// and skopeo's plain paths, and hostile spellings that name one registry to reach another's image.
// Each repository of the store tags the same image with a tag of its own, so tags/list tells which
// repository a request resolved to.

const NAMES = [
  'docker.io/library/busybox',
  'quay.io/org/secret',
  'quay.io/org/app',
  'registry.k8s.io/pause',
  'localhost:5000/team/app',
  // A registry's repository whose path starts with another registry's host (how Harbor or
  // Artifactory mirrors name what they hold): a name of its own, never the other registry's image.
  'artifactory.corp/docker.io/library/nginx',
  'evil.com/quay.io/org/other',
  // Host-less names (docker save of `app`, stores written before names kept their registry).
  'app',
  'hostless/tool',
];
const tagOf = (name: string): string => `r-${name.replace(/[/:]/g, '_')}`;
const nameOfTag = new Map(NAMES.map((name) => [tagOf(name), name]));

async function makeStore(root: string): Promise<void> {
  const layout = join(FIXTURES, 'busybox-oci');
  for (const name of NAMES) {
    const dir = join(root, ...name.split('/'));
    await mkdir(dir, { recursive: true });
    await cp(join(layout, 'blobs'), join(dir, 'blobs'), { recursive: true });
    await cp(join(layout, 'oci-layout'), join(dir, 'oci-layout'));
    const entry = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: BUSYBOX_1, size: 503, annotations: { 'org.opencontainers.image.ref.name': tagOf(name) } };
    await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [entry] }));
  }
  await writeFile(join(root, '.repositories'), [...NAMES].sort().join('\n') + '\n');
}

// [request after /v2/, what it resolves to: a stored name, or the error code]
const REQUESTS: [string, string][] = [
  // containerd and k3s (hosts.toml / registries.yaml mirrors): the image's registry in ?ns=.
  ['library/busybox/tags/list?ns=docker.io', 'docker.io/library/busybox'],
  ['busybox/tags/list?ns=docker.io', 'docker.io/library/busybox'],
  ['library/busybox/tags/list?ns=index.docker.io', 'docker.io/library/busybox'],
  ['library/busybox/tags/list?ns=registry-1.docker.io', 'docker.io/library/busybox'],
  ['org/secret/tags/list?ns=quay.io', 'quay.io/org/secret'],
  ['org/secret/tags/list?ns=Quay.IO', 'quay.io/org/secret'],
  ['pause/tags/list?ns=registry.k8s.io', 'registry.k8s.io/pause'],
  ['team/app/tags/list?ns=localhost:5000', 'localhost:5000/team/app'],
  ['team/app/tags/list?ns=localhost', 'NAME_UNKNOWN'],
  ['team/app/tags/list?ns=localhost:5001', 'NAME_UNKNOWN'],
  ['docker.io/library/nginx/tags/list?ns=artifactory.corp', 'artifactory.corp/docker.io/library/nginx'],
  ['org/secret/tags/list?ns=ghcr.io', 'NAME_UNKNOWN'],
  // A host-less store keeps answering mirrors: a host-less name has no registry to disagree with.
  ['library/app/tags/list?ns=docker.io', 'app'],
  ['app/tags/list?ns=docker.io', 'app'],
  ['hostless/tool/tags/list?ns=quay.io', 'hostless/tool'],
  // CRI-O and podman (registries.conf mirror locations HOST:PORT/REGISTRY): the registry in the path.
  ['quay.io/org/app/tags/list', 'quay.io/org/app'],
  ['docker.io/library/busybox/tags/list', 'docker.io/library/busybox'],
  ['docker.io/busybox/tags/list', 'docker.io/library/busybox'],
  ['index.docker.io/library/busybox/tags/list', 'docker.io/library/busybox'],
  ['registry-1.docker.io/busybox/tags/list', 'docker.io/library/busybox'],
  ['localhost:5000/team/app/tags/list', 'localhost:5000/team/app'],
  ['registry.k8s.io/pause/tags/list', 'registry.k8s.io/pause'],
  ['artifactory.corp/docker.io/library/nginx/tags/list', 'artifactory.corp/docker.io/library/nginx'],
  ['docker.io/app/tags/list', 'app'],
  // The same registry in the path and in ?ns= (a containerd mirror location with the host as a path prefix).
  ['quay.io/org/secret/tags/list?ns=quay.io', 'quay.io/org/secret'],
  ['docker.io/library/busybox/tags/list?ns=index.docker.io', 'docker.io/library/busybox'],
  // Docker (registry-mirrors, or pull HOST:PORT/x) and skopeo: no registry named; one holder or refused.
  ['library/busybox/tags/list', 'docker.io/library/busybox'],
  ['busybox/tags/list', 'docker.io/library/busybox'],
  ['org/secret/tags/list', 'quay.io/org/secret'],
  ['pause/tags/list', 'registry.k8s.io/pause'],
  ['app/tags/list', 'app'],
  ['hostless/tool/tags/list', 'hostless/tool'],
  // Hostile: a registry nested under another host, and ?ns= disagreeing with the path's host. The
  // first registry named is the registry; the rest is a path on it, never a second lookup.
  ['evil.com/quay.io/org/secret/tags/list', 'NAME_UNKNOWN'],
  ['evil.com/quay.io/org/secret/manifests/r-quay.io_org_secret', 'NAME_UNKNOWN'],
  [`evil.com/quay.io/org/secret/blobs/${BUSYBOX_1}`, 'NAME_UNKNOWN'],
  ['quay.io/org/secret/tags/list?ns=evil.com', 'NAME_UNKNOWN'],
  ['quay.io/org/secret/manifests/r-quay.io_org_secret?ns=evil.com', 'NAME_UNKNOWN'],
  ['docker.io/quay.io/org/secret/tags/list', 'NAME_UNKNOWN'],
  ['localhost/quay.io/org/secret/tags/list', 'NAME_UNKNOWN'],
  ['docker.io/library/busybox/tags/list?ns=quay.io', 'NAME_UNKNOWN'],
  ['evil.com/quay.io/org/other/tags/list', 'evil.com/quay.io/org/other'],
  ['quay.io/org/other/tags/list?ns=evil.com', 'evil.com/quay.io/org/other'],
  ['quay.io/org/other/tags/list', 'NAME_UNKNOWN'],
  ['docker.io/library/nginx/tags/list', 'NAME_UNKNOWN'],
  ['library/nginx/tags/list?ns=docker.io', 'NAME_UNKNOWN'],
  ['evil.com/app/tags/list', 'app'],
  // ?ns= that is no registry host: refused, never read as part of the path.
  ['busybox/tags/list?ns=library', 'NAME_INVALID'],
  ['busybox/tags/list?ns=..', 'NAME_INVALID'],
  ['busybox/tags/list?ns=', 'NAME_INVALID'],
  ['org/secret/tags/list?ns=evil.com%2Fquay.io', 'NAME_INVALID'],
  ['org/secret/tags/list?ns=quay.io.', 'NAME_INVALID'],
  [`busybox/referrers/${BUSYBOX_1}?ns=library`, 'NAME_INVALID'],
  // Hosts in a path are lowercase (the name grammar); in ?ns= case does not matter (DNS).
  ['Quay.io/org/secret/tags/list', 'NAME_INVALID'],
];

test('a request resolves under the one registry its path or ?ns= names, for every client spelling', async (t) => {
  const root = join(await tempDir(t), 'store');
  await makeStore(root);
  const app = buildRegistry({ images: new ServedImages([new StoreReader(root)]) });
  t.after(() => app.close());
  const resolved = async (request: string): Promise<string> => {
    const response = await app.inject({ url: `/v2/${request}` });
    if (response.statusCode >= 400) return (response.json() as { errors: { code: string }[] }).errors[0]?.code ?? `HTTP ${response.statusCode}`;
    if (request.includes('/referrers/')) return `HTTP ${response.statusCode}`;
    if (request.includes('/tags/list')) return nameOfTag.get((response.json() as { tags: string[] }).tags[0] ?? '') ?? response.body;
    return `HTTP ${response.statusCode}`;
  };
  const wrong: string[] = [];
  for (const [request, expected] of REQUESTS) {
    const got = await resolved(request);
    if (got !== expected) wrong.push(`/v2/${request}: ${got}, expected ${expected}`);
  }
  assert.deepEqual(wrong, []);

  // The clear answer to an ns that is no host says what is wrong with it.
  const refused = await app.inject({ url: '/v2/busybox/manifests/1?ns=library' });
  assert.equal(refused.statusCode, 400);
  assert.match(refused.body, /ns=\\"library\\" is not a registry host/);
});

test('every spelling mirror-config makes a runtime send resolves to the stored name', async (t) => {
  const root = join(await tempDir(t), 'store');
  await makeStore(root);
  const app = buildRegistry({ images: new ServedImages([new StoreReader(root)]) });
  t.after(() => app.close());
  const hosted = NAMES.filter((name) => name.split('/')[0]?.match(/[.:]|^localhost$/));
  const files = nodeConfigFiles(registryHosts(hosted), { registry: 'mirror.example:5000', tls: false });
  // containerd sends ?ns= with the directory's host; CRI-O and podman put the mirror location's path first.
  const nsHosts = files.flatMap((file) => /^containerd\/certs\.d\/([^/]+)\/hosts\.toml$/.exec(file.path)?.[1] ?? []);
  const prefixes = [...(files.find((file) => file.path === 'containers/registries.conf')?.content ?? '').matchAll(/location = "mirror\.example:5000\/([^"]+)"/g)].map((m) => m[1] ?? '');
  assert.ok(nsHosts.length >= 5 && prefixes.length === nsHosts.length, `${nsHosts.join(' ')} | ${prefixes.join(' ')}`);
  const wrong: string[] = [];
  for (const name of hosted) {
    const host = name.slice(0, name.indexOf('/'));
    const path = name.slice(host.length + 1);
    const spellings = [
      ...nsHosts.filter((ns) => ns === host).map((ns) => `${path}/tags/list?ns=${ns}`),
      ...prefixes.filter((prefix) => prefix === host).map((prefix) => `${prefix}/${path}/tags/list`),
    ];
    if (spellings.length !== 2) wrong.push(`${name}: mirror-config writes ${spellings.length} spellings`);
    for (const spelling of spellings) {
      const response = await app.inject({ url: `/v2/${spelling}` });
      const tags = response.statusCode === 200 ? (response.json() as { tags: string[] }).tags : [];
      if (tags[0] !== tagOf(name)) wrong.push(`/v2/${spelling}: ${response.statusCode} ${response.body.slice(0, 120)}`);
    }
  }
  assert.deepEqual(wrong, []);
});
