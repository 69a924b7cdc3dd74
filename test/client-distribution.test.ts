import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { RegistryClient } from '../src/client/registry-client.js';
import { MediaType } from '../src/image/media-types.js';
import { FIXTURES, tempDir } from './helpers/cli.js';
import { pushLayoutImage, readLayoutImage, skopeo, startDistribution, writeHtpasswd } from './helpers/client-fixtures.js';

// Against Debian's docker-registry (CNCF Distribution 2.8), seeded by skopeo.
const PLAIN = 5241;
const BASIC = 5242;
const BUSYBOX_1 = 'sha256:aa48215cf55ff8cc1922a87e696d659944c1aaf0502097800a4cc8cfa23d2bcb';
const BUSYBOX_MULTI = 'sha256:042824baea619777f6c26bffe935a21baf87abcd580436f3dc25f6cbefba4c04';
const BUSYBOX_V2S2 = 'sha256:0047d04aba563d9d85bc635db3d178955097994a629c2bd4901efa3f68bbfa3f';
const OCI = join(FIXTURES, 'busybox-oci');

function client(t: { after: (fn: () => void) => void }, port: number, extra: { username?: string; password?: string; log?: (line: string) => void } = {}): RegistryClient {
  const c = new RegistryClient({ url: `http://127.0.0.1:${port}`, ...extra });
  t.after(() => c.close());
  return c;
}

const sha256 = (bytes: Buffer): string => 'sha256:' + createHash('sha256').update(bytes).digest('hex');

test('Distribution without auth', async (t) => {
  await startDistribution(t, PLAIN);
  const at = `127.0.0.1:${PLAIN}`;
  await skopeo('copy', '--dest-tls-verify=false', `oci:${OCI}:1`, `docker://${at}/busybox:1`);
  await skopeo('copy', '--dest-tls-verify=false', '--multi-arch', 'all', `oci:${OCI}:multi`, `docker://${at}/busybox:multi`);
  await skopeo('copy', '--dest-tls-verify=false', `docker-archive:${join(FIXTURES, 'busybox-docker.tar')}`, `docker://${at}/busybox:v2s2`);
  const image = await readLayoutImage(OCI, '1');

  await t.test('ping, by URL and by bare host:port with insecure', async (t) => {
    await client(t, PLAIN).ping();
    const bare = new RegistryClient({ url: `127.0.0.1:${PLAIN}`, insecure: true });
    t.after(() => bare.close());
    await bare.ping();
    assert.equal(bare.url.href, `http://127.0.0.1:${PLAIN}/`);
  });

  await t.test('manifests by tag and digest, with Accept negotiation', async (t) => {
    const c = client(t, PLAIN);
    const byTag = await c.getManifest('busybox', '1');
    assert.ok(byTag);
    assert.equal(byTag.digest, BUSYBOX_1);
    assert.equal(byTag.mediaType, MediaType.ociManifest);
    assert.deepEqual(byTag.bytes, image.bytes);
    const byDigest = await c.getManifest('busybox', BUSYBOX_1);
    assert.deepEqual(byDigest, byTag);
    assert.deepEqual(await c.headManifest('busybox', '1'), { digest: BUSYBOX_1, mediaType: MediaType.ociManifest, size: image.bytes.length });
    assert.deepEqual(await c.headManifest('busybox', BUSYBOX_1), { digest: BUSYBOX_1, mediaType: MediaType.ociManifest, size: image.bytes.length });

    const multi = await c.getManifest('busybox', 'multi');
    assert.equal(multi?.digest, BUSYBOX_MULTI);
    assert.equal(multi?.mediaType, MediaType.ociIndex);
    const v2s2 = await c.getManifest('busybox', 'v2s2');
    assert.equal(v2s2?.digest, BUSYBOX_V2S2);
    assert.equal(v2s2?.mediaType, MediaType.dockerManifest);
    assert.equal((await c.headManifest('busybox', 'v2s2'))?.digest, BUSYBOX_V2S2);
  });

  await t.test('absent manifests are undefined', async (t) => {
    const c = client(t, PLAIN);
    assert.equal(await c.getManifest('busybox', 'nope'), undefined);
    assert.equal(await c.getManifest('no/such/repo', '1'), undefined);
    assert.equal(await c.getManifest('busybox', 'sha256:' + '0'.repeat(64)), undefined);
    assert.equal(await c.headManifest('busybox', 'nope'), undefined);
    assert.equal(await c.headManifest('no/such/repo', '1'), undefined);
  });

  await t.test('blobs: has, get, download with verification', async (t) => {
    const c = client(t, PLAIN);
    const dir = await tempDir(t);
    for (const blob of image.blobs) {
      assert.equal(await c.hasBlob('busybox', blob.digest), true);
      const path = join(dir, blob.digest);
      assert.equal(await c.downloadBlob('busybox', blob.digest, path, blob.size), blob.size);
      assert.equal(sha256(await readFile(path)), blob.digest);
    }
    const absent = 'sha256:' + '1'.repeat(64);
    assert.equal(await c.hasBlob('busybox', absent), false);
    assert.equal(await c.getBlob('busybox', absent), undefined);
    await assert.rejects(c.downloadBlob('busybox', absent, join(dir, 'absent')), /^RegistryClientError: GET http:\/\/127\.0\.0\.1:5241\/v2\/busybox\/blobs\/sha256:1{64}: 404/);
    // A descriptor that claims another size: the download fails and leaves nothing behind.
    const layer = image.blobs[1]!;
    await assert.rejects(c.downloadBlob('busybox', layer.digest, join(dir, 'short'), layer.size - 1), /more than the expected/);
    assert.deepEqual((await readdir(dir)).filter((name) => !name.startsWith('sha256:')), []);
    const blob = await c.getBlob('busybox', layer.digest);
    assert.equal(blob?.size, layer.size);
    blob?.stream.destroy();
  });

  await t.test('push a whole image, then skip what is there', async (t) => {
    const lines: string[] = [];
    const c = client(t, PLAIN, { log: (line) => lines.push(line) });
    assert.deepEqual(await pushLayoutImage(c, image, 'pushed/app', 'v1'), ['uploaded', 'uploaded', 'uploaded']);
    const inspected = JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://127.0.0.1:${PLAIN}/pushed/app:v1`)) as { Digest: string };
    assert.equal(inspected.Digest, BUSYBOX_1);
    assert.equal((await c.headManifest('pushed/app', 'v1'))?.digest, BUSYBOX_1);

    lines.length = 0;
    assert.deepEqual(await pushLayoutImage(c, image, 'pushed/app', 'v2'), ['exists', 'exists', 'exists']);
    // One HEAD per blob and the manifest PUT: no upload at all.
    assert.deepEqual(lines.map((line) => line.split(' ')[0]), ['HEAD', 'HEAD', 'HEAD', 'PUT']);
    assert.deepEqual((await c.listTags('pushed/app')).sort(), ['v1', 'v2']);
    assert.deepEqual(await c.listTags('never/pushed'), []);
  });

  await t.test('cross-repository mount, and its fallback to an upload', async (t) => {
    const lines: string[] = [];
    const c = client(t, PLAIN, { log: (line) => lines.push(line) });
    assert.deepEqual(await pushLayoutImage(c, image, 'mounted/app', '1', 'busybox'), ['mounted', 'mounted', 'mounted']);
    assert.equal(lines.filter((line) => line.startsWith('PUT ')).length, 1, 'only the manifest is PUT');
    const inspected = JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://127.0.0.1:${PLAIN}/mounted/app:1`)) as { Digest: string };
    assert.equal(inspected.Digest, BUSYBOX_1);
    // The source repository does not hold the blobs: Distribution opens an upload instead (202).
    assert.deepEqual(await pushLayoutImage(c, image, 'fallback/app', '1', 'never/pushed'), ['uploaded', 'uploaded', 'uploaded']);
  });
});

test('Distribution with htpasswd (Basic) auth', async (t) => {
  const dir = await tempDir(t);
  await writeHtpasswd(join(dir, 'htpasswd'), 'alice', 's3cret');
  await startDistribution(t, BASIC, join(dir, 'htpasswd'));
  const image = await readLayoutImage(OCI, '1');

  await t.test('push and pull with the right credentials', async (t) => {
    const lines: string[] = [];
    const c = client(t, BASIC, { username: 'alice', password: 's3cret', log: (line) => lines.push(line) });
    assert.deepEqual(await pushLayoutImage(c, image, 'private/app', '1'), ['uploaded', 'uploaded', 'uploaded']);
    assert.equal((await c.getManifest('private/app', '1'))?.digest, BUSYBOX_1);
    // The first request learns the scheme; every later one sends Basic up front.
    assert.equal(lines.filter((line) => line.endsWith(' 401')).length, 1, lines.join('\n'));
    const inspected = JSON.parse(await skopeo('inspect', '--tls-verify=false', '--creds', 'alice:s3cret', `docker://127.0.0.1:${BASIC}/private/app:1`)) as { Digest: string };
    assert.equal(inspected.Digest, BUSYBOX_1);
  });

  await t.test('a wrong password is one clear line, without the password', async (t) => {
    const c = client(t, BASIC, { username: 'alice', password: 'wrong-pw' });
    const manifest = image.bytes;
    await assert.rejects(c.putManifest('private/app', '1', manifest, image.mediaType), (error: Error) => {
      assert.equal(error.message, `PUT http://127.0.0.1:${BASIC}/v2/private/app/manifests/1: 401 UNAUTHORIZED authentication required — check source.store.username/password`);
      return true;
    });
    await assert.rejects(c.getManifest('private/app', '1'), /^RegistryClientError: GET http:\/\/127\.0\.0\.1:5242\/v2\/private\/app\/manifests\/1: 401 UNAUTHORIZED/);
  });

  await t.test('no credentials at all', async (t) => {
    const c = client(t, BASIC);
    await assert.rejects(c.ping(), { message: `GET http://127.0.0.1:${BASIC}/v2/: 401 UNAUTHORIZED authentication required — check source.store.username/password` });
  });
});
