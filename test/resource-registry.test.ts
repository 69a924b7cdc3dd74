import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, tempDir } from './helpers/cli.js';
import { skopeo, startDistribution, writeHtpasswd } from './helpers/client-fixtures.js';
import { ASSETS, launchServe, metadataValue, resource, resourceOk, type StepOutput } from './helpers/resource-run.js';

// The real scripts against Debian's docker-registry (CNCF Distribution 2.8) with a temp config,
// plain and with htpasswd (Basic) auth. Ports 5310-5319 are this file's.
const PLAIN = 5310;
const BASIC = 5311;
const BUSYBOX_MULTI = 'sha256:042824baea619777f6c26bffe935a21baf87abcd580436f3dc25f6cbefba4c04';

async function putDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await tempDir(t, 'cartorio-resource-reg-');
  await cp(join(FIXTURES, 'concourse-rootfs'), join(dir, 'image'), { recursive: true, verbatimSymlinks: true });
  return dir;
}

const tagsOf = async (registry: string, repository: string): Promise<string[]> =>
  (JSON.parse(await skopeo('list-tags', '--tls-verify=false', `docker://${registry}/${repository}`)) as { Tags: string[] }).Tags.sort();

test('registry store (Distribution, no auth): put, check, get, serve, pull', async (t) => {
  await startDistribution(t, PLAIN);
  const registry = `127.0.0.1:${PLAIN}`;
  const source = { repository: 'ci/task', tag: '1', store: { type: 'registry', url: `http://${registry}` } };
  const dir = await putDir(t);
  let digest = '';

  await t.test('check before any put finds nothing', async () => {
    assert.deepEqual(await resourceOk('check', { source }), []);
  });

  await t.test('put pushes config, layer and manifest under tag and additional tags', async () => {
    await writeFile(join(dir, 'tags'), 'stable 2024.1\n');
    const result = await resource('out', { source, params: { image: 'image', additional_tags: 'tags' } }, dir);
    assert.equal(result.code, 0, result.stderr);
    const output = result.json as StepOutput;
    digest = output.version.digest;
    assert.deepEqual(output.version, { digest, tag: '1' });
    assert.equal(metadataValue(output, 'source_format'), 'concourse-rootfs');
    assert.equal(metadataValue(output, 'additional_tags'), 'stable 2024.1');
    assert.match(result.stderr, /: 2 blobs sent, 0 already there\n$/);
    assert.deepEqual(await tagsOf(registry, 'ci/task'), ['1', '2024.1', 'stable']);
  });

  await t.test('the pushed image is pullable by skopeo from docker-registry, with the same digest', async () => {
    const inspected = JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://${registry}/ci/task:stable`)) as { Digest: string; Env: string[] };
    assert.equal(inspected.Digest, digest);
    assert.deepEqual(inspected.Env, ['PATH=/bin', 'GREETING=from-concourse']);
    const copy = join(dir, 'pulled');
    await skopeo('copy', '--src-tls-verify=false', `docker://${registry}/ci/task:1`, `oci:${copy}:1`);
    assert.equal(JSON.parse(await skopeo('inspect', `oci:${copy}:1`)).Digest, digest);
  });

  await t.test('the same put again: same digest, nothing uploaded', async () => {
    const result = await resource('out', { source, params: { image: 'image' } }, dir);
    assert.equal((result.json as StepOutput).version.digest, digest);
    assert.match(result.stderr, /: 0 blobs sent, 2 already there\n$/);
  });

  await t.test('only missing blobs are uploaded: a new config over the same layer', async () => {
    const other = join(dir, 'other');
    await cp(join(dir, 'image'), other, { recursive: true, verbatimSymlinks: true });
    await writeFile(join(other, 'metadata.json'), JSON.stringify({ env: ['PATH=/bin'], user: '0' }));
    const result = await resource('out', { source: { ...source, tag: 'other' }, params: { image: 'other' } }, dir);
    assert.equal(result.code, 0, result.stderr);
    assert.notEqual((result.json as StepOutput).version.digest, digest);
    assert.match(result.stderr, /: 1 blobs sent, 1 already there\n$/);
  });

  await t.test('check, with the given version first while it exists', async () => {
    assert.deepEqual(await resourceOk('check', { source }), [{ digest, tag: '1' }]);
    const other = (await resourceOk<{ digest: string }[]>('check', { source: { ...source, tag: 'other' } }))[0]?.digest ?? '';
    assert.deepEqual(await resourceOk('check', { source, version: { digest: other, tag: '1' } }), [{ digest: other, tag: '1' }, { digest, tag: '1' }]);
    const absent = 'sha256:' + 'f'.repeat(64);
    assert.deepEqual(await resourceOk('check', { source, version: { digest: absent } }), [{ digest, tag: '1' }]);
  });

  await t.test('get writes a layout skopeo reads; cartorio serve serves it to skopeo', async (st) => {
    const get = join(dir, 'get');
    await resourceOk('in', { source, version: { digest, tag: '1' } }, get);
    assert.equal(JSON.parse(await skopeo('inspect', `oci:${join(get, 'oci')}:1`)).Digest, digest);
    const server = await launchServe(st, process.execPath, [join(ASSETS, 'cartorio'), 'serve', join(get, 'oci')], join(dir, 'ready'));
    const copy = join(dir, 'served');
    await skopeo('copy', '--src-tls-verify=false', `docker://${server.address}/ci/task:1`, `oci:${copy}:1`);
    assert.equal(JSON.parse(await skopeo('inspect', `oci:${copy}:1`)).Digest, digest);
  });

  await t.test('a multi-platform index: get keeps the index, format: rootfs unpacks source.platform', async () => {
    await skopeo('copy', '--dest-tls-verify=false', '--multi-arch', 'all', `oci:${join(FIXTURES, 'busybox-oci')}:multi`, `docker://${registry}/busybox:multi`);
    const multi = { repository: 'busybox', tag: 'multi', store: { type: 'registry', url: registry, insecure: true } };
    const [version] = await resourceOk<{ digest: string; tag: string }[]>('check', { source: multi });
    assert.deepEqual(version, { digest: BUSYBOX_MULTI, tag: 'multi' });
    const get = join(dir, 'get-arm64');
    await resourceOk('in', { source: { ...multi, platform: 'linux/arm64' }, version, params: { format: 'rootfs' } }, get);
    // index.json lists the platform manifests (with platform and ref name); the index stays in blobs/.
    const index = JSON.parse(await readFile(join(get, 'oci', 'index.json'), 'utf8')) as { manifests: { digest: string; platform?: { architecture: string }; annotations?: Record<string, string> }[] };
    const stored = JSON.parse(await readFile(join(get, 'oci', 'blobs', 'sha256', BUSYBOX_MULTI.slice(7)), 'utf8')) as { manifests: { digest: string }[] };
    assert.deepEqual(index.manifests.map((m) => m.digest), stored.manifests.map((m) => m.digest));
    assert.deepEqual(index.manifests.map((m) => [m.platform?.architecture, m.annotations?.['org.opencontainers.image.ref.name']]), [['amd64', 'multi'], ['arm64', 'multi']]);
    assert.equal(await readFile(join(get, 'digest'), 'utf8'), BUSYBOX_MULTI);
    // Layout readers: skopeo (containers/image) takes the first entry with the ref name, an image;
    // cartorio serve still serves the index under the tag.
    const first = JSON.parse(await skopeo('inspect', `oci:${join(get, 'oci')}:multi`)) as { Digest: string; Architecture: string };
    assert.deepEqual([first.Digest, first.Architecture], [index.manifests[0]?.digest, 'amd64']);
    const served = await launchServe(t, join(ASSETS, 'cartorio'), ['serve', join(get, 'oci')], join(dir, 'ready-multi'));
    const raw = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${served.address}/busybox:multi`);
    assert.equal(createHash('sha256').update(raw).digest('hex'), BUSYBOX_MULTI.slice(7));
    // …and a put of the get output stores the index again, with its digest.
    const back = await resource('out', { source: { ...multi, tag: 'multi-again' }, params: { image: 'get-arm64' } }, dir);
    assert.equal((back.json as StepOutput).version.digest, BUSYBOX_MULTI, back.stderr);
    assert.deepEqual(JSON.parse(await readFile(join(get, 'metadata.json'), 'utf8')), { env: ['PATH=/bin', 'GREETING=hello'], user: '', cmd: ['/bin/sh'] });
    assert.ok((await readdir(join(get, 'rootfs', 'bin'))).includes('busybox'));
    const missing = await resource('in', { source: { ...multi, platform: 'linux/s390x' }, version, params: { format: 'rootfs' } }, join(dir, 'get-s390x'));
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, `${BUSYBOX_MULTI} has no image for linux/s390x (it has linux/amd64, linux/arm64/v8); set source.platform\n`);
  });

  await t.test('failures: one line, and nothing pushed', async () => {
    const before = await tagsOf(registry, 'ci/task');
    const absent = 'sha256:' + '0'.repeat(64);
    const gone = await resource('in', { source, version: { digest: absent } }, join(dir, 'get-absent'));
    assert.equal(gone.stderr, `version ${absent} of ci/task is gone from registry http://${registry} (its tag moved on and the old image was removed)\n`);
    const glob = await resource('out', { source: { ...source, tag: 'never' }, params: { image: '*' } }, dir);
    assert.match(glob.stderr, /^params.image "\*" matches \d+ paths \(.*\); it must match exactly one\n$/);
    const refused = await resource('check', { source: { ...source, store: { type: 'registry', url: 'http://127.0.0.1:5319' } } });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^HEAD http:\/\/127.0.0.1:5319\/v2\/ci\/task\/manifests\/1: connect ECONNREFUSED 127.0.0.1:5319 — check source.store.url\n$/);
    assert.deepEqual(await tagsOf(registry, 'ci/task'), before);
  });

  await t.test('debug: true logs each registry call on stderr', async () => {
    const result = await resource('check', { source: { ...source, debug: true } });
    assert.equal(result.code, 0);
    assert.match(result.stderr, /^debug: HEAD http:\/\/127.0.0.1:5310\/v2\/ci\/task\/manifests\/1 → 200$/m);
  });
});

test('registry store with htpasswd auth', async (t) => {
  const dir = await putDir(t);
  const htpasswd = join(dir, 'htpasswd');
  await writeHtpasswd(htpasswd, 'ci', 's3cret');
  await startDistribution(t, BASIC, htpasswd);
  const registry = `127.0.0.1:${BASIC}`;
  const store = { type: 'registry', url: `http://${registry}`, username: 'ci', password: 's3cret' };
  const source = { repository: 'secure/task', store };

  const output = await resourceOk<StepOutput>('out', { source, params: { image: 'image' } }, dir);
  assert.deepEqual(output.version.tag, 'latest');
  assert.deepEqual(await resourceOk('check', { source }), [output.version]);
  const get = join(dir, 'get');
  await resourceOk('in', { source, version: output.version }, get);
  assert.equal(JSON.parse(await skopeo('inspect', `oci:${join(get, 'oci')}:latest`)).Digest, output.version.digest);
  assert.equal(JSON.parse(await skopeo('inspect', '--tls-verify=false', '--creds', 'ci:s3cret', `docker://${registry}/secure/task:latest`)).Digest, output.version.digest);

  for (const [label, bad] of [['a wrong password', { ...store, password: 'nope' }], ['no credentials', { type: 'registry', url: `http://${registry}` }]] as const) {
    await t.test(label, async () => {
      for (const [command, payload, target] of [
        ['check', { source: { ...source, store: bad } }, undefined],
        ['out', { source: { ...source, tag: 'denied', store: bad }, params: { image: 'image' } }, dir],
      ] as const) {
        const result = await resource(command, payload, target);
        assert.equal(result.code, 1, `${command}: ${result.stdout}`);
        assert.match(result.stderr, /^(HEAD|POST) http:\/\/127.0.0.1:5311\/v2\/secure\/task\/\S+: 401 .*— check source.store.username\/password\n$/);
      }
    });
  }
  assert.deepEqual(JSON.parse(await skopeo('list-tags', '--tls-verify=false', '--creds', 'ci:s3cret', `docker://${registry}/secure/task`)).Tags, ['latest']);
});
