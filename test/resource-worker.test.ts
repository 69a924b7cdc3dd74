import assert from 'node:assert/strict';
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, tempDir } from './helpers/cli.js';
import { skopeo, startDistribution } from './helpers/client-fixtures.js';
import { metadataValue, resource, type StepOutput } from './helpers/resource-run.js';
import { makeTestCa, PROXY_ONLY_HOST, startFlakyFront, startTinyproxy } from './helpers/worker-env.js';

// What a real worker adds around the resource scripts: its CA certificates, its proxy
// variables, flaky front ends — against Debian's docker-registry, with sources written in
// registry-image's vocabulary (the registry is the repository's host). Ports 5330-5339.
const PLAIN = 5330;
const TLS = 5331;
const PROXY = 5332;
const BUSYBOX_1 = 'sha256:aa48215cf55ff8cc1922a87e696d659944c1aaf0502097800a4cc8cfa23d2bcb';
const BUSYBOX_MULTI = 'sha256:042824baea619777f6c26bffe935a21baf87abcd580436f3dc25f6cbefba4c04';

// The environment of a worker with none of the test machine's SSL or proxy variables.
const PATH_ONLY = { PATH: process.env['PATH'] ?? '/usr/bin:/bin' };

async function putDir(dir: string): Promise<string> {
  const put = join(dir, 'put');
  await mkdir(put, { recursive: true });
  await cp(join(FIXTURES, 'concourse-rootfs'), join(put, 'image'), { recursive: true, verbatimSymlinks: true });
  return put;
}

test("the worker's CA certificates: a TLS registry signed by a private CA", async (t) => {
  const dir = await tempDir(t, 'cartorio-worker-tls-');
  const ca = await makeTestCa(dir);
  await startDistribution(t, TLS, undefined, { cert: ca.cert, key: ca.key });
  const source = { repository: `127.0.0.1:${TLS}/ci/app`, tag: '1' };
  const put = await putDir(dir);
  let digest = '';

  await t.test("without the CA: refused, with the verification error and a hint", async () => {
    const result = await resource('check', { source }, undefined, { env: PATH_ONLY });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, `HEAD https://127.0.0.1:${TLS}/v2/ci/app/manifests/1: unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE) — trust the registry's CA: ca_certs, or a PEM in the worker's /etc/ssl/certs (SSL_CERT_DIR, SSL_CERT_FILE); or set insecure: true\n`);
  });

  await t.test('SSL_CERT_DIR holding the CA (a mounted /etc/ssl/certs): put, check, get', async () => {
    const env = { ...PATH_ONLY, SSL_CERT_DIR: ca.certsDir };
    const out = await resource('out', { source, params: { image: 'image' } }, put, { env });
    assert.equal(out.code, 0, out.stderr);
    digest = (out.json as StepOutput).version.digest;
    assert.equal(metadataValue(out.json as StepOutput, 'repository'), `127.0.0.1:${TLS}/ci/app`);
    const checked = await resource('check', { source }, undefined, { env });
    assert.deepEqual(checked.json, [{ digest, tag: '1' }]);
    // registry-image's defaults: a get without params writes rootfs/ + metadata.json (no oci/).
    const get = join(dir, 'get');
    const got = await resource('in', { source, version: { digest, tag: '1' } }, get, { env });
    assert.equal(got.code, 0, got.stderr);
    assert.deepEqual((await readdir(get)).sort(), ['digest', 'labels.json', 'metadata.json', 'repository', 'rootfs', 'tag']);
    assert.equal(await readFile(join(get, 'repository'), 'utf8'), `127.0.0.1:${TLS}/ci/app`);
    assert.equal(await readFile(join(get, 'rootfs', 'etc', 'motd'), 'utf8'), 'hello from cartorio fixtures\n');
  });

  await t.test('SSL_CERT_FILE naming the CA; ca_certs at the top level (registry-image style)', async () => {
    assert.deepEqual((await resource('check', { source }, undefined, { env: { ...PATH_ONLY, SSL_CERT_FILE: ca.caPem, SSL_CERT_DIR: join(dir, 'none') } })).json, [{ digest, tag: '1' }]);
    const caCerts = [await readFile(ca.caPem, 'utf8')];
    assert.deepEqual((await resource('check', { source: { ...source, ca_certs: caCerts } }, undefined, { env: PATH_ONLY })).json, [{ digest, tag: '1' }]);
  });

  await t.test('skopeo with the same certs agrees on the digest', async () => {
    // containers/image reads CAs from *.crt files of --cert-dir.
    const certDir = join(dir, 'skopeo-certs');
    await mkdir(certDir);
    await cp(ca.caPem, join(certDir, 'ca.crt'));
    const inspected = JSON.parse(await skopeo('inspect', '--cert-dir', certDir, `docker://127.0.0.1:${TLS}/ci/app:1`)) as { Digest: string };
    assert.equal(inspected.Digest, digest);
  });
});

test("the worker's proxy: tinyproxy is the only one that can resolve the registry's name", async (t) => {
  const dir = await tempDir(t, 'cartorio-worker-proxy-');
  const ca = await makeTestCa(dir);
  await startDistribution(t, PLAIN);
  await startDistribution(t, TLS, undefined, { cert: ca.cert, key: ca.key });
  const log = await startTinyproxy(t, dir, PROXY);
  const proxy = `http://127.0.0.1:${PROXY}`;
  const plain = { repository: `${PROXY_ONLY_HOST}:${PLAIN}/ci/app`, tag: '1', insecure: true };
  const put = await putDir(dir);

  await t.test('without a proxy the name does not resolve', async () => {
    const result = await resource('check', { source: plain }, undefined, { env: PATH_ONLY });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /getaddrinfo (ENOTFOUND|EAI_AGAIN) registry\.cartorio\.test/);
  });

  let digest = '';
  await t.test('http_proxy: put and check over plain HTTP through the proxy (absolute-form requests)', async () => {
    const env = { ...PATH_ONLY, http_proxy: proxy };
    const out = await resource('out', { source: plain, params: { image: 'image' } }, put, { env });
    assert.equal(out.code, 0, out.stderr);
    digest = (out.json as StepOutput).version.digest;
    assert.deepEqual((await resource('check', { source: plain }, undefined, { env: { ...PATH_ONLY, HTTP_PROXY: proxy } })).json, [{ digest, tag: '1' }]);
    assert.match(await readFile(log, 'utf8'), new RegExp(`Request \\(file descriptor \\d+\\): (HEAD|GET|PUT|POST) http://${PROXY_ONLY_HOST.replace(/\./g, '\\.')}:${PLAIN}/v2/`));
  });

  await t.test('no_proxy naming the host sends it direct (and so it fails to resolve)', async () => {
    const result = await resource('check', { source: plain }, undefined, { env: { ...PATH_ONLY, http_proxy: proxy, no_proxy: `localhost,.cartorio.test` } });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /ENOTFOUND|EAI_AGAIN/);
  });

  await t.test('https_proxy: a CONNECT tunnel, TLS to the registry inside, trusted through SSL_CERT_DIR', async () => {
    const source = { repository: `${PROXY_ONLY_HOST}:${TLS}/ci/app`, tag: '1' };
    const env = { ...PATH_ONLY, HTTPS_PROXY: proxy, SSL_CERT_DIR: ca.certsDir };
    const out = await resource('out', { source, params: { image: 'image' } }, put, { env });
    assert.equal(out.code, 0, out.stderr);
    assert.equal((out.json as StepOutput).version.digest, digest);
    assert.deepEqual((await resource('check', { source }, undefined, { env })).json, [{ digest, tag: '1' }]);
    assert.match(await readFile(log, 'utf8'), new RegExp(`CONNECT ${PROXY_ONLY_HOST.replace(/\./g, '\\.')}:${TLS}`));
  });
});

test('a flaky front end: 503s and Retry-After are retried, each retry logged', async (t) => {
  const dir = await tempDir(t, 'cartorio-worker-retry-');
  await startDistribution(t, PLAIN);
  const put = await putDir(dir);

  await t.test('check: the first two requests answer 503, then it passes through', async () => {
    const front = await startFlakyFront(t, PLAIN, (_req, seen) => seen <= 2);
    const source = { repository: `127.0.0.1:${front.port}/ci/flaky`, insecure: true };
    const result = await resource('check', { source }, undefined, { env: PATH_ONLY });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(result.json, []);
    const retries = result.stderr.split('\n').filter((line) => line.includes('; retry '));
    assert.equal(retries.length, 2, result.stderr);
    assert.match(retries[0] ?? '', /^HEAD http:\/\/127\.0\.0\.1:\d+\/v2\/ci\/flaky\/manifests\/latest: 503 Service Unavailable; retry 1 of 4 in 1 s$/);
    assert.match(retries[1] ?? '', /; retry 2 of 4 in 1 s$/); // Retry-After: 1, not the 2 s backoff
    assert.equal(front.failed.length, 2);
  });

  await t.test('put: a failed upload (POST, then PUT) starts over and the image arrives whole', async () => {
    let posts = 0;
    let puts = 0;
    const front = await startFlakyFront(t, PLAIN, (req) => (req.method === 'POST' && ++posts === 1) || (req.method === 'PUT' && req.url?.includes('/blobs/uploads/') === true && ++puts === 1));
    const source = { repository: `127.0.0.1:${front.port}/ci/flaky`, tag: '2', insecure: true };
    const result = await resource('out', { source, params: { image: 'image' } }, put, { env: PATH_ONLY });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(front.failed.length, 2);
    assert.match(result.stderr, /upload of sha256:[0-9a-f]{64} to ci\/flaky: POST http:\/\/127\.0\.0\.1:\d+\/v2\/ci\/flaky\/blobs\/uploads\/: 503 .*; retry 1 of 4 in 1 s/);
    const digest = (result.json as StepOutput).version.digest;
    const inspected = JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://127.0.0.1:${PLAIN}/ci/flaky:2`)) as { Digest: string };
    assert.equal(inspected.Digest, digest);
  });
});

test('put: strict input detection, and the get outputs of registry-image put back as they were', async (t) => {
  const dir = await tempDir(t, 'cartorio-worker-put-');
  await startDistribution(t, PLAIN);
  const registry = `127.0.0.1:${PLAIN}`;
  const work = join(dir, 'work');
  await mkdir(work);
  const source = (tag: string) => ({ repository: `${registry}/ci/put`, tag, insecure: true });
  const out = (tag: string, params: Record<string, unknown>) => resource('out', { source: source(tag), params }, work, { env: PATH_ONLY });

  await t.test('a directory holding image.tar (and a get\'s small files) is that image, not a rootfs', async () => {
    await mkdir(join(work, 'built'));
    await cp(join(FIXTURES, 'busybox-oci.tar'), join(work, 'built', 'image.tar'));
    for (const file of ['repository', 'tag', 'digest']) await writeFile(join(work, 'built', file), 'x');
    const result = await out('tar', { image: 'built' });
    assert.equal(result.code, 0, result.stderr);
    assert.equal((result.json as StepOutput).version.digest, BUSYBOX_1);
    assert.equal(metadataValue(result.json as StepOutput, 'source_format'), 'oci-archive');
  });

  await t.test('ambiguous directories fail, listing what they hold', async () => {
    await writeFile(join(work, 'built', 'notes.txt'), 'x');
    const beside = await out('x', { image: 'built' });
    assert.equal(beside.stderr, 'params.image "built" is a directory holding an image beside other files: image.tar, notes.txt — point params.image at the image itself (e.g. built/image.tar), or set params.format: rootfs-dir to pack the directory as a root filesystem\n');
    await mkdir(join(work, 'junk'));
    await writeFile(join(work, 'junk', 'a.txt'), 'x');
    const junk = await out('x', { image: 'junk' });
    assert.match(junk.stderr, /^params.image "junk" is a directory holding neither an image nor a root filesystem \(no bin\/, etc\/, usr\/ …\): a\.txt — /);
    const forced = await out('junk', { image: 'junk', format: 'rootfs-dir' });
    assert.equal(forced.code, 0, forced.stderr);
    const rootfs = join(work, 'rootfs');
    await cp(join(FIXTURES, 'rootfs'), rootfs, { recursive: true, verbatimSymlinks: true });
    const plainRootfs = await out('rootfs', { image: 'rootfs' });
    assert.equal(metadataValue(plainRootfs.json as StepOutput, 'source_format'), 'rootfs-dir', plainRootfs.stderr);
  });

  await t.test('registry-image get format: oci (image.tar) puts back with the same digest; docker-archive too', async () => {
    const get = join(work, 'get-oci');
    const got = await resource('in', { source: source('tar'), version: { digest: BUSYBOX_1 }, params: { format: 'oci' } }, get, { env: PATH_ONLY });
    assert.equal(got.code, 0, got.stderr);
    assert.deepEqual((await readdir(get)).sort(), ['digest', 'image.tar', 'labels.json', 'repository', 'tag']);
    const again = await out('tar-again', { image: 'get-oci' });
    assert.equal(again.code, 0, again.stderr);
    assert.equal((again.json as StepOutput).version.digest, BUSYBOX_1);
    // The same image.tar read by skopeo both ways.
    const asOci = JSON.parse(await skopeo('inspect', `oci-archive:${join(get, 'image.tar')}`)) as { Digest: string; Layers: string[] };
    assert.equal(asOci.Digest, BUSYBOX_1);
    // skopeo shows a docker-archive's layers by diff_id (uncompressed), so compare counts.
    assert.equal(JSON.parse(await skopeo('inspect', `docker-archive:${join(get, 'image.tar')}`)).Layers.length, asOci.Layers.length);
  });

  await t.test('a multi-platform oci-layout get output (index.json is the index, as registry-image writes it) is stored as that index', async () => {
    await skopeo('copy', '--dest-tls-verify=false', '--multi-arch', 'all', `oci:${join(FIXTURES, 'busybox-oci')}:multi`, `docker://${registry}/ci/put:multi`);
    const get = join(work, 'get-multi');
    const got = await resource('in', { source: source('multi'), version: { digest: BUSYBOX_MULTI }, params: { format: 'oci-layout' } }, get, { env: PATH_ONLY });
    assert.equal(got.code, 0, got.stderr);
    const back = await out('multi-again', { image: 'get-multi' });
    assert.equal((back.json as StepOutput).version.digest, BUSYBOX_MULTI, back.stderr);
    // go-containerregistry's layout.Write puts the index itself in index.json: the same bytes.
    const ggcr = join(work, 'ggcr');
    await cp(join(get, 'oci'), join(ggcr, 'oci'), { recursive: true });
    await writeFile(join(ggcr, 'oci', 'index.json'), await readFile(join(get, 'oci', 'blobs', 'sha256', BUSYBOX_MULTI.slice(7))));
    await rmIndexBlob(ggcr);
    for (const file of ['repository', 'tag', 'digest']) await cp(join(get, file), join(ggcr, file));
    const fromGgcr = await out('multi-ggcr', { image: 'ggcr' });
    assert.equal((fromGgcr.json as StepOutput).version.digest, BUSYBOX_MULTI, fromGgcr.stderr);
    const layoutOnly = await out('multi-layout', { image: 'ggcr/oci' });
    assert.equal((layoutOnly.json as StepOutput).version.digest, BUSYBOX_MULTI, layoutOnly.stderr);
  });
});

async function rmIndexBlob(dir: string): Promise<void> {
  const { rm } = await import('node:fs/promises');
  await rm(join(dir, 'oci', 'blobs', 'sha256', BUSYBOX_MULTI.slice(7)));
}
