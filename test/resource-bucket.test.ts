import assert from 'node:assert/strict';
import { cp, mkdir, readdir, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { createServer } from 'node:tls';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, ROOT, cartorio, tempDir } from './helpers/cli.js';
import { aws, startRgw, type Rgw } from './helpers/ceph.js';
import { startDockerd } from './helpers/clients.js';
import { importNodeBase } from './helpers/resource-docker.js';
import { resource, type StepOutput } from './helpers/resource-run.js';
import { makeTestCa } from './helpers/worker-env.js';

// The resource's bucket store (`store: {type: s3}`) on a real Ceph RGW, run as a worker runs it:
// the built image under `docker run -i`, nothing in its environment but what the image sets and
// the build's BUILD_* variables, argv /tmp/build/put and /tmp/build/get. The RGW is reached
// through a TLS front signed by a private CA, trusted through the worker's /etc/ssl/certs.
const BASE = 'cartorio-test/node-base:1';
const IMAGE = 'cartorio-test/resource:1';
const BUCKET = 'ci-images';
const BUILD_ENV = ['BUILD_ID=42', 'BUILD_NAME=7', 'BUILD_JOB_NAME=build', 'BUILD_PIPELINE_NAME=app', 'BUILD_TEAM_NAME=main', 'ATC_EXTERNAL_URL=https://ci.example.com'];

test('a bucket store: put, check and get against Ceph RGW from the resource image', async (t) => {
  const dir = await tempDir(t, 'cartorio-resource-bucket-');
  const rgw = await startRgw(t);
  await aws(rgw, ['s3', 'mb', `s3://${BUCKET}`]);
  const ca = await makeTestCa(join(dir, 'ca'));
  const tlsPort = await startTlsFront(t, rgw, ca);
  const { docker } = await startDockerd(t);
  await importNodeBase({ docker }, dir, BASE);
  const args = ['build', '-q', '--network', 'none', '--build-arg', `BASE=${BASE}`, '--build-arg', 'TYPE_ERRORS=warn'];
  const built = await docker([...args, '-t', IMAGE, ROOT]);
  assert.equal(built.code, 0, built.stdout + built.stderr);

  const build = join(dir, 'build');
  await mkdir(join(build, 'put'), { recursive: true });
  await cp(join(FIXTURES, 'concourse-rootfs'), join(build, 'put', 'image'), { recursive: true, verbatimSymlinks: true });
  const worker = (command: string, payload: unknown, options: { certs?: boolean; args?: string[] } = {}) =>
    docker([
      'run', '-i', '--rm', '--network', 'host', '-v', `${build}:/tmp/build`,
      ...(options.certs === false ? [] : ['-v', `${ca.certsDir}:/etc/ssl/certs:ro`]),
      ...(command === 'check' ? [] : BUILD_ENV.flatMap((e) => ['-e', e])),
      IMAGE, `/opt/resource/${command}`, ...(options.args ?? []),
    ], { input: JSON.stringify(payload) });
  const store = { type: 's3', bucket: BUCKET, prefix: 'pipelines/app', endpoint: `127.0.0.1:${tlsPort}`, access_key_id: rgw.accessKey, secret_access_key: rgw.secretKey };
  const source = { repository: 'ci/task', tag: '1', store };
  const cli = { env: { ...rgw.env } };
  let version: StepOutput['version'] = { digest: '' };

  await t.test('out: a Concourse rootfs image into the bucket, as `cartorio load --store s3://…` stores it', async () => {
    const put = await worker('out', { source, params: { image: 'image', additional_tags: ['stable'] } }, { args: ['/tmp/build/put'] });
    assert.equal(put.code, 0, put.stderr);
    version = (JSON.parse(put.stdout) as StepOutput).version;
    assert.match(put.stderr, new RegExp(`stored ci/task@${version.digest} in bucket store s3://${BUCKET}/pipelines/app at https://127\\.0\\.0\\.1:${tlsPort} as 1, stable: 3 blobs sent, 0 already there`));
    // The same input through the checkout into a file store: the same digest (a reproducible put).
    const fileStore = join(dir, 'file-store');
    await mkdir(fileStore);
    const local = await resource('out', { source: { ...source, store: { type: 'file', path: fileStore } }, params: { image: 'image' } }, join(build, 'put'));
    assert.equal((local.json as StepOutput).version.digest, version.digest, local.stderr);
    // The CLI reads what the put wrote, and finds it sound.
    const listed = await cartorio(['list', '--json', '--store', `s3://${BUCKET}/pipelines/app`], cli);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual((JSON.parse(listed.stdout) as { repository: string; tag: string; digest: string }[]).map(({ repository, tag, digest }) => `${repository}:${tag}@${digest}`).sort(), [`ci/task:1@${version.digest}`, `ci/task:stable@${version.digest}`]);
    const verified = await cartorio(['verify', '--store', `s3://${BUCKET}/pipelines/app`], cli);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    // A second put of the same input sends nothing.
    const again = await worker('out', { source, params: { image: 'image' } }, { args: ['/tmp/build/put'] });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /: 0 blobs sent, 3 already there/);
  });

  await t.test('check: the version the tag names; [] for a tag not there yet', async () => {
    const checked = await worker('check', { source });
    assert.equal(checked.code, 0, checked.stderr);
    assert.deepEqual(JSON.parse(checked.stdout), [version]);
    assert.deepEqual(JSON.parse((await worker('check', { source: { ...source, tag: 'absent' } })).stdout), []);
  });

  await t.test('in: the image back as rootfs/ + metadata.json and an OCI layout, bytes hashed as they arrive', async () => {
    const got = await worker('in', { source, version, params: { format: 'rootfs' } }, { args: ['/tmp/build/get'] });
    assert.equal(got.code, 0, got.stderr);
    const get = join(build, 'get');
    assert.deepEqual((await readdir(get)).sort(), ['digest', 'labels.json', 'metadata.json', 'oci', 'repository', 'rootfs', 'tag']);
    assert.equal(await readFile(join(get, 'rootfs', 'etc', 'motd'), 'utf8'), 'hello from cartorio fixtures\n');
    assert.equal(await readFile(join(get, 'digest'), 'utf8'), version.digest);
    const layout = JSON.parse(await readFile(join(get, 'oci', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    assert.deepEqual(layout.manifests.map((m) => m.digest), [version.digest]);
    const gone = await worker('in', { source, version: { digest: `sha256:${'0'.repeat(64)}` } }, { args: ['/tmp/build/gone'] });
    assert.equal(gone.code, 1);
    assert.equal(gone.stderr, `version sha256:${'0'.repeat(64)} of ci/task is gone from bucket store s3://${BUCKET}/pipelines/app at https://127.0.0.1:${tlsPort} (its tag moved on and the old image was removed)\n`);
  });

  await t.test('wrong keys, an untrusted endpoint, half a key pair, an s3 resource key cartorio lacks: one line each', async () => {
    const wrong = await worker('check', { source: { ...source, store: { ...store, secret_access_key: 'not-the-secret' } } });
    assert.equal(wrong.code, 1);
    assert.equal(wrong.stderr, `s3://${BUCKET}/pipelines/app: the object store at https://127.0.0.1:${tlsPort} refused the keys (HTTP 403): check source.store.access_key_id and secret_access_key\n`);
    const untrusted = await worker('out', { source, params: { image: 'image' } }, { certs: false, args: ['/tmp/build/put'] });
    assert.equal(untrusted.code, 1);
    assert.equal(untrusted.stderr, `s3://${BUCKET}/pipelines/app: the object store at https://127.0.0.1:${tlsPort} has a certificate this machine does not trust (UNABLE_TO_VERIFY_LEAF_SIGNATURE): trust its CA: source.store.ca_certs, or a PEM in the worker's /etc/ssl/certs (SSL_CERT_DIR, SSL_CERT_FILE)\n`);
    // The CA in ca_certs instead of the worker's certificates.
    const withCa = await worker('check', { source: { ...source, store: { ...store, ca_certs: [await readFile(ca.caPem, 'utf8')] } } }, { certs: false });
    assert.deepEqual(JSON.parse(withCa.stdout), [version], withCa.stderr);
    const half = await worker('check', { source: { ...source, store: { ...store, secret_access_key: undefined } } });
    assert.equal(half.stderr, "invalid payload: /source/store has access_key_id without secret_access_key: give both, or neither to use the worker's instance profile\n");
    const lacking = await worker('check', { source: { ...source, store: { ...store, skip_ssl_verification: true } } });
    assert.equal(lacking.stderr, "invalid payload: /source/store/skip_ssl_verification is the s3 resource's and a bucket store does not implement it (give the endpoint's CA in ca_certs, or put it in the worker's /etc/ssl/certs)\n");
  });
});

/** A TLS front for the RGW with a certificate of the test CA (what a private object store presents). */
async function startTlsFront(t: { after: (fn: () => Promise<void>) => void }, rgw: Rgw, ca: { cert: string; key: string }): Promise<number> {
  const target = Number(new URL(rgw.endpoint).port);
  const server = createServer({ cert: await readFile(ca.cert), key: await readFile(ca.key) }, (client) => {
    const upstream = connect(target, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as { port: number }).port;
}
