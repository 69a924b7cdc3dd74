import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { cartorio, tempDir } from './helpers/cli.js';
import { aws, startRgw } from './helpers/ceph.js';
import { layoutDigest, must, podmanEnv, startContainerd, startDockerd, startServe } from './helpers/clients.js';
import { startCriContainerd } from './helpers/cri/containerd.js';
import { criImages } from './helpers/cri/image-service.js';
import { loadEveryFormat } from './helpers/registry-store.js';

// A bucket store on a real object store (Ceph RGW, test/helpers/ceph-rgw.sh): every format loaded
// into it with `cartorio load --store s3://…`, then pulled by real clients (skopeo, podman, ctr,
// a kubelet's CRI path, docker) through `cartorio serve`, whose blob GETs answer 307 to a
// presigned URL: the bytes come from RGW, not from cartorio.
test('a bucket store: every format loaded, pulled by real clients through the redirect', async (t) => {
  const dir = await tempDir(t);
  const rgw = await startRgw(t);
  Object.assign(process.env, rgw.env);
  await aws(rgw, ['s3', 'mb', 's3://cartorio']);
  const bucket = 's3://cartorio/formats';
  const directory = join(dir, 'dir-store');
  const images = await loadEveryFormat(bucket);
  const same = await loadEveryFormat(directory);

  await t.test('the keys are a directory store\'s: same digests, same index.json and .repositories bytes, blobs once in the pool', async () => {
    assert.deepEqual(images.map((i) => i.digest), same.map((i) => i.digest));
    const keys = (await aws(rgw, ['s3', 'ls', '--recursive', bucket + '/'])).split('\n').map((line) => line.split(/\s+/)[3] ?? '').filter((key) => key !== '');
    for (const { repository } of images) {
      const index = await aws(rgw, ['s3', 'cp', `${bucket}/${repository}/index.json`, '-']);
      const local = await must('cat', [join(directory, repository, 'index.json')]).then((r) => r.stdout);
      // Byte for byte but the load times, which each load records when it runs.
      assert.match(index, /"io\.cartorio\.loaded": "\d{4}-/, `${repository}: the bucket's index records when each entry was loaded`);
      assert.equal(withoutLoadTimes(index), withoutLoadTimes(local), repository);
      assert.ok(keys.includes(`formats/${repository}/oci-layout`), repository);
    }
    assert.equal(await aws(rgw, ['s3', 'cp', `${bucket}/.repositories`, '-']), (await must('cat', [join(directory, '.repositories')])).stdout);
    assert.ok(keys.every((key) => !key.includes('/blobs/sha256/') || key.startsWith('formats/.blobs/blobs/sha256/')), 'blobs are kept once, in the pool');
    assert.ok(!keys.includes('formats/.lock'), 'the writer lock is gone after the loads');
    const verified = await cartorio(['verify', '--store', bucket]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, /0 problems/);
  });

  const server = await startServe(t, dir, bucket);
  const r = server.address;

  await t.test('blob GET is a 307 to a presigned URL on the object store; HEAD is answered here; the bytes match the digest', async () => {
    const image = images[0];
    assert.ok(image);
    const manifest = JSON.parse((await must('curl', ['-sf', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json', `http://${r}/v2/${image.repository}/manifests/${image.digest}`])).stdout) as { layers: { digest: string; size: number }[] };
    for (const layer of manifest.layers) {
      const blobUrl: string = `http://${r}/v2/${image.repository}/blobs/${layer.digest}`;
      const head = await must('curl', ['-sfI', blobUrl]);
      assert.match(head.stdout, /^HTTP\/1\.1 200/);
      assert.match(head.stdout, new RegExp(`content-length: ${layer.size}\\r`, 'i'));
      const get = await must('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', blobUrl]);
      const [code, location = ''] = get.stdout.split(' ');
      assert.equal(code, '307');
      assert.ok(location.startsWith(`${rgw.endpoint}/cartorio/formats/.blobs/blobs/sha256/`), location);
      assert.match(location, /X-Amz-Signature=/);
      const fetched: string | undefined = (await must('bash', ['-c', `curl -sfL '${blobUrl}' | sha256sum`])).stdout.split(' ')[0];
      assert.equal(`sha256:${fetched}`, layer.digest);
    }
  });

  await t.test('skopeo copy (to dir:, manifests kept as served): the stored digest of every format', async (st) => {
    await mkdir(join(dir, 'skopeo'));
    for (const image of images) {
      const copy = join(dir, 'skopeo', `${image.repository.replace(/[/:]/g, '_')}-${image.tag}`);
      await must('skopeo', ['copy', '-q', '--multi-arch', 'all', '--src-tls-verify=false', `docker://${r}/${image.repository}:${image.tag}`, `dir:${copy}`]);
      const manifest = (await must('sha256sum', [join(copy, 'manifest.json')])).stdout.split(' ')[0];
      assert.equal(`sha256:${manifest}`, image.digest, image.label);
      st.diagnostic(`PASS skopeo copy ${image.label}: ${image.repository}:${image.tag} ${image.digest}`);
    }
  });

  await t.test('podman pull: the stored digest', async () => {
    const env = await podmanEnv(join(dir, 'podman'), r);
    const image = images.find((i) => i.repository === 'busybox') ?? images[0];
    assert.ok(image);
    await must('podman', ['pull', '-q', '--tls-verify=false', `${r}/${image.repository}:${image.tag}`], { env });
    const digest = (await must('podman', ['images', '--digests', '--format', '{{.Digest}}', `${r}/${image.repository}:${image.tag}`], { env })).stdout.trim().split('\n')[0];
    assert.equal(digest, image.digest);
  });

  await t.test('containerd: ctr image pull --plain-http follows the redirect, unpacks, the stored digest', async (tc) => {
    const containerd = await startContainerd(tc);
    for (const image of images.filter((i) => i.repository === 'ocilayout/busybox')) {
      const ref = `${r}/${image.repository}:${image.tag}`;
      const pulled = await containerd.ctr(['image', 'pull', '--plain-http', ref]);
      assert.equal(pulled.code, 0, pulled.stderr);
      const list = (await containerd.ctr(['image', 'ls'])).stdout;
      assert.equal(list.split('\n').find((line) => line.startsWith(`${ref} `))?.split(/\s+/)[2], image.digest, list);
    }
  });

  await t.test('CRI PullImage through the hosts.toml mirror-config writes for the bucket store, as a kubelet pulls', async (st) => {
    const config = join(dir, 'node-config');
    const written = await cartorio(['mirror-config', '--registry', r, '--store', bucket, '--out', config]);
    assert.equal(written.code, 0, written.stderr);
    const containerd = await startCriContainerd(st, join(config, 'containerd', 'certs.d'));
    const cri = criImages(containerd.socket);
    st.after(() => cri.close());
    // Host-less stored names are Docker Hub's to a runtime: containerd asks the mirror with ?ns=docker.io.
    for (const image of images.filter((i) => i.repository === 'ocilayout/busybox')) {
      const { image: pulled } = await cri.pull(`docker.io/${image.repository}:${image.tag}`);
      assert.ok(pulled.repo_digests.includes(`docker.io/${image.repository}@${image.digest}`), pulled.repo_digests.join(' '));
    }
    assert.match(await containerd.log(), /\?ns=docker\.io/, 'containerd asked the mirror with ?ns=');
  });

  await t.test('docker pull + docker run of every format', async (st) => {
    const { docker } = await startDockerd(st);
    for (const image of images) {
      const ref = `${r}/${image.repository}:${image.tag}`;
      const pulled = await docker(['pull', '-q', ref]);
      assert.equal(pulled.code, 0, `docker pull ${ref}: ${pulled.stderr}`);
      const repoDigests = JSON.parse((await docker(['image', 'inspect', '--format', '{{json .RepoDigests}}', ref])).stdout) as string[];
      assert.ok(repoDigests.includes(`${r}/${image.repository}@${image.digest}`), `${ref}: ${repoDigests.join(' ')}`);
      const ran = await docker(['run', '--rm', '--network', 'none', ref, ...image.command]);
      assert.equal(ran.code, 0, `docker run ${ref}: ${ran.stderr}`);
      assert.equal(ran.stdout.trim(), image.prints, image.label);
      st.diagnostic(`PASS docker pull+run ${image.label}: ${ref} ${image.digest}`);
    }
  });

  await t.test('--blob-redirect off: the bytes stream through cartorio, Range included', async (st) => {
    const through = await startServe(st, dir, bucket, ['--blob-redirect', 'off']);
    const image = images.find((i) => i.repository === 'ociarchive/busybox');
    assert.ok(image);
    const manifest = JSON.parse((await must('curl', ['-sf', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json', `http://${through.address}/v2/${image.repository}/manifests/${image.digest}`])).stdout) as { layers: { digest: string; size: number }[] };
    const layer = manifest.layers[0];
    assert.ok(layer);
    const url = `http://${through.address}/v2/${image.repository}/blobs/${layer.digest}`;
    const whole = await must('bash', ['-c', `curl -sf -w '%{http_code}' -o >(sha256sum >&2) '${url}'`]);
    assert.equal(whole.stdout, '200');
    assert.equal(`sha256:${whole.stderr.split(' ')[0]}`, layer.digest);
    const part = await must('bash', ['-c', `curl -sf -r 10-19 -D - -o '${join(dir, 'part')}' '${url}'; cat '${join(dir, 'part')}' | od -An -tx1 | tr -d ' \\n'`]);
    assert.match(part.stdout, /^HTTP\/1\.1 206/);
    assert.match(part.stdout, new RegExp(`content-range: bytes 10-19/${layer.size}`, 'i'));
    const full = await must('bash', ['-c', `curl -sf '${url}' | head -c 20 | tail -c 10 | od -An -tx1 | tr -d ' \\n'`]);
    assert.ok(part.stdout.endsWith(full.stdout), 'the range is bytes 10–19 of the blob');
    const layout = join(dir, 'through');
    await must('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${through.address}/${image.repository}:${image.tag}`, `oci:${layout}:${image.tag}`]);
    assert.equal(await layoutDigest(layout, image.tag), image.digest);
  });

  const errors = server.logs().split('\n').filter((line) => line.includes('"level":50'));
  assert.deepEqual(errors, [], 'no error was logged');
});

/** index.json with every load time (LOADED_AT) blanked: two loads of the same input differ only there. */
function withoutLoadTimes(index: string): string {
  return index.replace(/"io\.cartorio\.loaded": "[^"]*"/g, '"io.cartorio.loaded": ""');
}
