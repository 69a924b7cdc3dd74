import assert from 'node:assert/strict';
import { cp, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, ROOT, tempDir } from './helpers/cli.js';
import { startDockerd } from './helpers/clients.js';
import { IMAGE_NODE_MAJOR, importBusyboxOnly, importNodeBase } from './helpers/resource-docker.js';
import { resource, type StepOutput } from './helpers/resource-run.js';
import { snapshotTree } from './helpers/snapshot.js';
import { startDistribution } from './helpers/client-fixtures.js';
import { makeTestCa, PROXY_ONLY_HOST, startFlakyFront, startTinyproxy } from './helpers/worker-env.js';

// The Dockerfile, built with no network on a base made from this machine's Node.js 24, and its
// /opt/resource scripts run with `docker run -i` next to the checkout's: same answers.
const BASE = 'cartorio-test/node-base:1';
const BUSYBOX_ONLY = 'cartorio-test/busybox-only:1';
const IMAGE = 'cartorio-test/resource:1';

test('the resource image behaves like the checkout', async (t) => {
  const dir = await tempDir(t, 'cartorio-resource-docker-');
  const { docker } = await startDockerd(t);
  await importNodeBase({ docker }, dir, BASE);
  await importBusyboxOnly({ docker }, dir, BUSYBOX_ONLY);

  await t.test('DOCKER_BUILDKIT=0 docker build --network none --build-arg BASE=…: tests stage, then the image', async () => {
    // The checkout may hold other work in progress: its type errors must not stop this build.
    const args = ['build', '-q', '--network', 'none', '--build-arg', `BASE=${BASE}`, '--build-arg', 'TYPE_ERRORS=warn'];
    const tests = await docker([...args, '--target', 'tests', ROOT]);
    assert.equal(tests.code, 0, tests.stdout + tests.stderr);
    const built = await docker([...args, '-t', IMAGE, ROOT]);
    assert.equal(built.code, 0, built.stdout + built.stderr);
    const listed = await docker(['run', '--rm', '--network', 'none', IMAGE, 'ls', '/opt/resource']);
    assert.deepEqual(listed.stdout.trim().split('\n').sort(), ['cartorio', 'check', 'in', 'lib', 'out', 'package.json', 'run-resource.mjs']);
    const version = await docker(['run', '--rm', '--network', 'none', IMAGE, 'cartorio', '--version']);
    const { version: expected } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.match(version.stdout.trim(), new RegExp(`^${expected.replace(/\./g, '\\.')}\nNode\\.js v${IMAGE_NODE_MAJOR}\\.\\d+\\.\\d+ \\(supported: `));
    // The image's NODE_OPTIONS caps the young generation (Node 24 alone grows it to 64 MB or more
    // under this churn): the largest new space seen stays near 2 × 4 MiB (8–10 measured, 64+ without).
    const churn = "const v8=require('node:v8');let k=[],m=0;for(let i=0;i<1.5e6;i++){k.push({i,s:'x'+i});if(k.length>2e5)k=k.slice(1e5);if(i%1e4===0)m=Math.max(m,v8.getHeapSpaceStatistics().find((s)=>s.space_name==='new_space').space_size)}console.log(m>>20)";
    const young = await docker(['run', '--rm', '--network', 'none', IMAGE, 'node', '-e', churn]);
    assert.ok(young.code === 0 && Number(young.stdout) > 0 && Number(young.stdout) <= 16, `new space ${young.stdout.trim()} MiB: ${young.stderr}`);
  });

  // The same absolute paths inside and out, so one payload serves both.
  const store = join(dir, 'store');
  const work = join(dir, 'work');
  await mkdir(work);
  await cp(join(FIXTURES, 'concourse-rootfs'), join(work, 'image'), { recursive: true, verbatimSymlinks: true });
  const source = { repository: 'ci/task', tag: '1', store: { type: 'file', path: store } };
  const mounts = ['-v', `${store}:${store}`, '-v', `${work}:${work}`];
  const inImage = (command: string, payload: string, args: string[] = []) => docker(['run', '-i', '--rm', '--network', 'none', ...mounts, IMAGE, `/opt/resource/${command}`, ...args], { input: payload });
  let digest = '';

  await t.test('out: the image and the checkout store the same digest (a reproducible put)', async () => {
    await mkdir(store);
    const payload = JSON.stringify({ source, params: { image: 'image' } });
    const fromImage = await inImage('out', payload, [work]);
    assert.equal(fromImage.code, 0, fromImage.stderr);
    const fromCheckout = await resource('out', undefined, work, { raw: payload });
    assert.equal(fromCheckout.code, 0, fromCheckout.stderr);
    assert.deepEqual(JSON.parse(fromImage.stdout), fromCheckout.json);
    digest = (fromCheckout.json as StepOutput).version.digest;
  });

  await t.test('check: same stdout, stderr and exit code for good and bad payloads', async () => {
    const payloads = [
      JSON.stringify({ source }),
      JSON.stringify({ source, version: { digest, tag: '1' } }),
      JSON.stringify({ source: { ...source, tag: 'absent' } }),
      JSON.stringify({ source: { ...source, colour: 'blue' } }),
      JSON.stringify({ source: { repository: 'ci/task', store: { type: 'file' } } }),
      '{"source":',
    ];
    for (const payload of payloads) {
      const fromImage = await inImage('check', payload);
      const fromCheckout = await resource('check', undefined, undefined, { raw: payload });
      assert.deepEqual({ code: fromImage.code, stdout: fromImage.stdout, stderr: fromImage.stderr }, { code: fromCheckout.code, stdout: fromCheckout.stdout, stderr: fromCheckout.stderr }, payload);
    }
    assert.deepEqual(JSON.parse((await inImage('check', payloads[0] as string)).stdout), [{ digest, tag: '1' }]);
  });

  await t.test('in: the image writes what the checkout writes; its launcher serves from an image with no libc and no node', async () => {
    const payload = JSON.stringify({ source, version: { digest, tag: '1' }, params: { format: 'rootfs', bundle_server: true } });
    const fromImage = await inImage('in', payload, [join(work, 'get')]);
    assert.equal(fromImage.code, 0, fromImage.stderr);
    const checkout = join(dir, 'get-checkout');
    const fromCheckout = await resource('in', undefined, checkout, { raw: JSON.stringify({ source, version: { digest, tag: '1' }, params: { format: 'rootfs' } }) });
    assert.equal(fromCheckout.code, 0, fromCheckout.stderr);
    for (const part of ['oci', 'rootfs']) assert.deepEqual(await snapshotTree(join(work, 'get', part)), await snapshotTree(join(checkout, part)), part);
    for (const file of ['metadata.json', 'repository', 'tag', 'digest']) assert.equal(await readFile(join(work, 'get', file), 'utf8'), await readFile(join(checkout, file), 'utf8'), file);

    // What a downstream task does with the get output: serve it and pull from it. The client is
    // busybox wget, in the same container (no network), asking for the manifest by tag.
    const script = [
      'cd /tmp/build',
      './get/cartorio serve ./get/oci --listen 127.0.0.1:5000 --ready-file /tmp/ready --log-level warn --quiet &',
      'i=0; while [ ! -f /tmp/ready ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done',
      'wget -q -O /tmp/manifest --header "Accept: application/vnd.oci.image.manifest.v1+json" http://127.0.0.1:5000/v2/ci/task/manifests/1 || exit 1',
      'echo "sha256:$(sha256sum < /tmp/manifest | cut -d" " -f1)"',
      'kill $!',
    ].join('\n');
    const served = await docker(['run', '--rm', '--network', 'none', '-v', `${work}:/tmp/build`, BUSYBOX_ONLY, 'sh', '-c', script]);
    assert.equal(served.code, 0, served.stdout + served.stderr);
    assert.equal(served.stdout.trim(), digest);
    // The launcher carries the image's Node.js 24.
    const launcher = await docker(['run', '--rm', '--network', 'none', '-v', `${work}:/tmp/build`, BUSYBOX_ONLY, '/tmp/build/get/cartorio', '--version']);
    assert.match(launcher.stdout, new RegExp(`\nNode\\.js v${IMAGE_NODE_MAJOR}\\.\\d+\\.\\d+ \\(supported: `), launcher.stdout + launcher.stderr);
    t.diagnostic(`bundle_server launcher: ${launcher.stdout.trim().split('\n')[1]}; ${fromImage.stderr.match(/cartorio launcher \(\d+ MiB\)/)?.[0] ?? '?'}`);
    const noNode = await docker(['run', '--rm', '--network', 'none', BUSYBOX_ONLY, 'sh', '-c', 'command -v node || ls /lib /usr/lib 2>&1 | head -2']);
    assert.doesNotMatch(noNode.stdout, /node|libc/);
  });

  // As a worker runs it: host network (the registries are on 127.0.0.1), the worker's certs
  // bind-mounted at /etc/ssl/certs, its proxy variables in the environment, argv /tmp/build/…
  // Ports 5334-5337 are this file's.
  await t.test('as a worker runs it: mounted certs, proxy variables, a flaky front end, strict put, an unmounted file store', async () => {
    const TLS = 5334;
    const PLAIN = 5335;
    const PROXY = 5336;
    const ca = await makeTestCa(join(dir, 'ca'));
    await startDistribution(t, TLS, undefined, { cert: ca.cert, key: ca.key });
    await startDistribution(t, PLAIN);
    await startTinyproxy(t, dir, PROXY);
    const build = join(dir, 'build');
    await mkdir(join(build, 'put', 'built'), { recursive: true });
    await cp(join(FIXTURES, 'concourse-rootfs'), join(build, 'put', 'image'), { recursive: true, verbatimSymlinks: true });
    await cp(join(FIXTURES, 'busybox-oci.tar'), join(build, 'put', 'built', 'image.tar'));
    const worker = (command: string, payload: unknown, options: { env?: string[]; certs?: boolean; args?: string[] } = {}) =>
      docker([
        'run', '-i', '--rm', '--network', 'host', '-v', `${build}:/tmp/build`,
        ...(options.certs === false ? [] : ['-v', `${ca.certsDir}:/etc/ssl/certs:ro`]),
        ...(options.env ?? []).flatMap((e) => ['-e', e]),
        IMAGE, `/opt/resource/${command}`, ...(options.args ?? []),
      ], { input: JSON.stringify(payload) });
    const tls = { repository: `127.0.0.1:${TLS}/ci/app`, tag: '1' };

    const refused = await worker('check', { source: tls }, { certs: false });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\) — trust the registry's CA/);
    const put = await worker('out', { source: tls, params: { image: 'image' } }, { args: ['/tmp/build/put'] });
    assert.equal(put.code, 0, put.stderr);
    const version = (JSON.parse(put.stdout) as StepOutput).version;
    assert.deepEqual(JSON.parse((await worker('check', { source: tls })).stdout), [version]);
    const got = await worker('in', { source: tls, version }, { args: ['/tmp/build/get'] });
    assert.equal(got.code, 0, got.stderr);
    assert.equal(await readFile(join(build, 'get', 'rootfs', 'etc', 'motd'), 'utf8'), 'hello from cartorio fixtures\n');
    assert.equal(await readFile(join(build, 'get', 'repository'), 'utf8'), `127.0.0.1:${TLS}/ci/app`);

    // The registry's name resolves only in tinyproxy's namespace; https goes through CONNECT.
    const proxied = { repository: `${PROXY_ONLY_HOST}:${TLS}/ci/app`, tag: '1' };
    const direct = await worker('check', { source: proxied });
    assert.match(direct.stderr, /ENOTFOUND|EAI_AGAIN/);
    const viaProxy = await worker('check', { source: proxied }, { env: [`https_proxy=http://127.0.0.1:${PROXY}`, 'no_proxy=localhost,127.0.0.1'] });
    assert.equal(viaProxy.code, 0, viaProxy.stderr);
    assert.deepEqual(JSON.parse(viaProxy.stdout), [version]);

    const front = await startFlakyFront(t, PLAIN, (_req, seen) => seen <= 2);
    const flaky = await worker('out', { source: { repository: `127.0.0.1:${front.port}/ci/flaky`, insecure: true }, params: { image: 'built' } }, { args: ['/tmp/build/put'] });
    assert.equal(flaky.code, 0, flaky.stderr);
    assert.equal(flaky.stderr.split('\n').filter((line) => line.includes('; retry ')).length, 2, flaky.stderr);
    // built/ holds image.tar: that image, not a rootfs holding /image.tar.
    assert.equal((JSON.parse(flaky.stdout) as StepOutput).version.digest, 'sha256:aa48215cf55ff8cc1922a87e696d659944c1aaf0502097800a4cc8cfa23d2bcb');

    const unmounted = await worker('out', { source: { repository: 'ci/app', store: { type: 'file', path: '/mnt/images' } }, params: { image: 'image' } }, { args: ['/tmp/build/put'] });
    assert.equal(unmounted.code, 1);
    assert.equal(unmounted.stderr, 'file store /mnt/images: no such directory in this container; store.path must be a directory mounted into the resource container (stock Concourse mounts none: use a registry store)\n');
  });
});
