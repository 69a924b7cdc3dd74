import assert from 'node:assert/strict';
import { cp, mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, FIXTURES, run, tempDir } from './helpers/cli.js';
import { skopeo } from './helpers/client-fixtures.js';
import { ASSETS, ensureBundle, launchServe, metadataValue, resource, resourceOk, type StepOutput } from './helpers/resource-run.js';
import { snapshotTree } from './helpers/snapshot.js';

// The real assets/check, in and out, spawned with JSON on stdin as Concourse runs them, over a
// file store (a cartorio store on shared storage).
type Version = { digest: string; tag?: string };

test('file store: put a Concourse rootfs image, check, get, serve, reproduce', async (t) => {
  const dir = await tempDir(t, 'cartorio-resource-file-');
  const store = join(dir, 'store');
  await mkdir(store); // an empty directory starts a store
  const source = { repository: 'ci/task', tag: '1', store: { type: 'file', path: store } };
  const put = join(dir, 'put');
  await mkdir(put);
  await cp(join(FIXTURES, 'concourse-rootfs'), join(put, 'image'), { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  let digest = '';

  await t.test('check of an empty store finds nothing', async () => {
    const result = await resource('check', { source });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(result.json, []);
  });

  await t.test('put converts rootfs/ + metadata.json into an image, tagged tag and additional_tags', async () => {
    const output = await resourceOk<StepOutput>('out', { source, params: { image: 'ima*', additional_tags: ['stable'] } }, put);
    digest = output.version.digest;
    assert.match(digest, /^sha256:[a-f0-9]{64}$/);
    assert.deepEqual(output.version, { digest, tag: '1' });
    assert.deepEqual(output.metadata, [
      { name: 'repository', value: 'ci/task' },
      { name: 'tag', value: '1' },
      { name: 'additional_tags', value: 'stable' },
      { name: 'digest', value: digest },
      { name: 'layers', value: '1' },
      { name: 'source_format', value: 'concourse-rootfs' },
    ]);
    const listed = JSON.parse((await run(process.execPath, [CLI, 'list', '--json', '--store', store])).stdout) as { repository: string; tag: string; digest: string }[];
    assert.deepEqual(listed.map((row) => `${row.repository}:${row.tag}@${row.digest}`), [`ci/task:1@${digest}`, `ci/task:stable@${digest}`]);
  });

  await t.test('check finds the digest of the tag', async () => {
    assert.deepEqual(await resourceOk('check', { source }), [{ digest, tag: '1' }]);
    assert.deepEqual(await resourceOk('check', { source, version: { digest, tag: '1' } }), [{ digest, tag: '1' }]);
    assert.deepEqual(await resourceOk('check', { source: { ...source, tag: 'stable' } }), [{ digest, tag: 'stable' }]);
    assert.deepEqual(await resourceOk('check', { source: { ...source, tag: 'nope' } }), []);
  });

  await t.test('the same input gives the same digest: again, and copied elsewhere with new mtimes', async () => {
    const again = await resourceOk<StepOutput>('out', { source, params: { image: 'image' } }, put);
    assert.equal(again.version.digest, digest);
    const elsewhere = join(dir, 'elsewhere');
    await cp(join(put, 'image'), join(elsewhere, 'img'), { recursive: true, verbatimSymlinks: true });
    const now = new Date();
    for (const file of ['metadata.json', 'rootfs/etc/motd', 'rootfs/bin/busybox', 'rootfs']) await utimes(join(elsewhere, 'img', file), now, now);
    const copied = await resourceOk<StepOutput>('out', { source, params: { image: 'img' } }, elsewhere);
    assert.equal(copied.version.digest, digest);
  });

  await t.test('get writes an OCI layout skopeo reads, and repository, tag, digest files', async () => {
    const get = join(dir, 'get');
    const output = await resourceOk<StepOutput>('in', { source, version: { digest, tag: '1' } }, get);
    assert.deepEqual(output.version, { digest, tag: '1' });
    assert.equal(metadataValue(output, 'digest'), digest);
    assert.deepEqual((await readdir(get)).sort(), ['digest', 'labels.json', 'oci', 'repository', 'tag']);
    assert.equal(await readFile(join(get, 'repository'), 'utf8'), 'ci/task');
    assert.equal(await readFile(join(get, 'tag'), 'utf8'), '1');
    assert.equal(await readFile(join(get, 'digest'), 'utf8'), digest);
    const inspected = JSON.parse(await skopeo('inspect', `oci:${join(get, 'oci')}:1`)) as { Digest: string; Env: string[]; Created: string; Architecture: string };
    assert.equal(inspected.Digest, digest);
    assert.deepEqual(inspected.Env, ['PATH=/bin', 'GREETING=from-concourse']);
    assert.equal(inspected.Created, '1970-01-01T00:00:00Z');
    const config = JSON.parse(await skopeo('inspect', '--config', `oci:${join(get, 'oci')}:1`)) as { config: { Cmd: string[]; User: string } };
    assert.deepEqual(config.config.Cmd, ['/bin/cat', '/etc/motd']);
    assert.equal(config.config.User, '0');
  });

  await t.test('cartorio serve serves the get output as-is; skopeo copies the image with its digest', async (st) => {
    const server = await launchServe(st, process.execPath, [join(ASSETS, 'cartorio'), 'serve', join(dir, 'get', 'oci')], join(dir, 'ready-get'));
    // named by the get output's repository file
    assert.deepEqual(await (await fetch(`http://${server.address}/v2/_catalog`)).json(), { repositories: ['ci/task'] });
    const copy = join(dir, 'copied');
    await skopeo('copy', '--src-tls-verify=false', `docker://${server.address}/ci/task:1`, `oci:${copy}:1`);
    assert.equal(JSON.parse(await skopeo('inspect', `oci:${copy}:1`)).Digest, digest);
    // And the store itself, with the plain CLI.
    const storeServer = await launchServe(st, process.execPath, [CLI, 'serve', '--store', store], join(dir, 'ready-store'));
    assert.equal(JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://${storeServer.address}/ci/task:stable`)).Digest, digest);
  });

  await t.test('get with format: rootfs unpacks rootfs/ and metadata.json — the input of the put, back', async () => {
    const get = join(dir, 'get-rootfs');
    await resourceOk('in', { source, version: { digest }, params: { format: 'rootfs' } }, get);
    assert.deepEqual((await readdir(get)).sort(), ['digest', 'labels.json', 'metadata.json', 'oci', 'repository', 'rootfs', 'tag']);
    assert.deepEqual(await snapshotTree(join(get, 'rootfs')), await snapshotTree(join(FIXTURES, 'concourse-rootfs', 'rootfs')));
    assert.deepEqual(JSON.parse(await readFile(join(get, 'metadata.json'), 'utf8')), JSON.parse(await readFile(join(FIXTURES, 'concourse-rootfs', 'metadata.json'), 'utf8')));
    assert.equal((await stat(join(get, 'rootfs', 'etc', 'motd'))).uid, (await stat(join(FIXTURES, 'concourse-rootfs', 'rootfs', 'etc', 'motd'))).uid);
  });

  await t.test('get with skip_download writes only the three files', async () => {
    const get = join(dir, 'get-skip');
    await resourceOk('in', { source, version: { digest }, params: { skip_download: true } }, get);
    assert.deepEqual((await readdir(get)).sort(), ['digest', 'repository', 'tag']);
  });

  await t.test('get with bundle_server: ./input/cartorio serve ./input/oci runs on its own node', async (st) => {
    await ensureBundle();
    const input = join(dir, 'get-bundle');
    await resourceOk('in', { source, version: { digest }, params: { bundle_server: true } }, input);
    assert.equal(((await stat(join(input, 'cartorio'))).mode & 0o111) !== 0, true);
    const version = await run(join(input, 'cartorio'), ['--version'], { env: { PATH: '/nonexistent' } });
    assert.equal(version.code, 0, version.stderr);
    // From the task's working directory, with an empty PATH: nothing but the input is used.
    const server = await launchServe(st, './get-bundle/cartorio', ['serve', './get-bundle/oci'], join(dir, 'ready-bundle'), { cwd: dir });
    assert.equal(JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://${server.address}/ci/task:1`)).Digest, digest);
  });

  await t.test('other formats: a docker save tarball, an OCI archive, a registry-image get output', async () => {
    const inputs = join(dir, 'inputs');
    await mkdir(inputs);
    await cp(join(FIXTURES, 'docker-save-busybox.tar'), join(inputs, 'saved.tar'));
    await cp(join(FIXTURES, 'busybox-oci.tar'), join(inputs, 'oci.tar'));
    await cp(join(FIXTURES, 'registry-image-get'), join(inputs, 'registry-image-get'), { recursive: true, verbatimSymlinks: true });
    const formats: Record<string, string> = {};
    for (const image of ['saved.tar', 'oci.tar', 'registry-image-get']) {
      const output = await resourceOk<StepOutput>('out', { source: { ...source, repository: 'other', tag: image.replace(/\W/g, '-') }, params: { image } }, inputs);
      formats[image] = metadataValue(output, 'source_format') ?? '';
      const back = await resourceOk<Version[]>('check', { source: { ...source, repository: 'other', tag: image.replace(/\W/g, '-') } });
      assert.deepEqual(back, [output.version]);
    }
    assert.deepEqual(formats, { 'saved.tar': 'docker-archive', 'oci.tar': 'oci-archive', 'registry-image-get': 'registry-image' });
  });

  await t.test('a new image under the tag: check lists the old version first while another tag keeps it', async () => {
    const inputs = join(dir, 'next');
    await mkdir(inputs);
    await cp(join(FIXTURES, 'rootfs'), join(inputs, 'rootfs-dir'), { recursive: true, verbatimSymlinks: true });
    const next = (await resourceOk<StepOutput>('out', { source, params: { image: 'rootfs-dir' } }, inputs)).version.digest;
    assert.notEqual(next, digest);
    // `stable` still names the first image, so it is still in the store.
    assert.deepEqual(await resourceOk('check', { source, version: { digest, tag: '1' } }), [{ digest, tag: '1' }, { digest: next, tag: '1' }]);
    await resourceOk('out', { source, params: { image: 'rootfs-dir', additional_tags: ['stable'] } }, inputs);
    assert.deepEqual(await resourceOk('check', { source, version: { digest, tag: '1' } }), [{ digest: next, tag: '1' }]);
    const gone = await resource('in', { source, version: { digest, tag: '1' } }, join(dir, 'get-gone'));
    assert.equal(gone.code, 1);
    assert.equal(gone.stderr, `version ${digest} of ci/task is gone from file store ${store} (its tag moved on and the old image was removed)\n`);
    assert.deepEqual(await readdir(join(dir, 'get-gone')).catch(() => []), []);
  });

  await t.test('the store verifies clean', async () => {
    const verified = await run(process.execPath, [CLI, 'verify', '--store', store]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  });
});

test('bad requests fail with one stderr line and leave the store as it was', async (t) => {
  const dir = await tempDir(t, 'cartorio-resource-bad-');
  const store = join(dir, 'store');
  await mkdir(store);
  const source = { repository: 'app', store: { type: 'file', path: store } };
  const work = join(dir, 'work');
  await mkdir(join(work, 'build'), { recursive: true });
  await cp(join(FIXTURES, 'concourse-rootfs'), join(work, 'image'), { recursive: true, verbatimSymlinks: true });
  await cp(join(FIXTURES, 'rootfs.tar'), join(work, 'build', 'a.tar'));
  await cp(join(FIXTURES, 'rootfs.tar'), join(work, 'build', 'b.tar'));
  await cp(join(FIXTURES, 'docker-save-multi.tar'), join(work, 'multi.tar'));
  await writeFile(join(work, 'broken.tar'), (await readFile(join(FIXTURES, 'busybox-oci.tar'))).subarray(0, 700_000));
  const { version } = await resourceOk<StepOutput>('out', { source, params: { image: 'image' } }, work);
  const before = await snapshotTree(store);
  const absent = 'sha256:' + '0'.repeat(64);

  const cases: [string, 'check' | 'in' | 'out', unknown, RegExp][] = [
    ['not JSON', 'check', '{"source": ', /^invalid payload: not JSON \(.+\)$/],
    ['empty stdin', 'check', '', /^invalid payload: stdin is empty \(expected a JSON object with "source"\)$/],
    ['a JSON array', 'check', '[]', /^invalid payload: expected a JSON object with "source"$/],
    ['missing source', 'check', {}, /^invalid payload: missing required key "source"$/],
    ['unknown key in source', 'check', { source: { ...source, tga: 'x' } }, /^invalid payload: \/source: unknown key "tga" \(allowed: repository, tag, store, username, password, insecure, ca_certs, platform, debug\)$/],
    ['unknown put param', 'out', { source, params: { image: 'image', tags: ['x'] } }, /^invalid payload: \/params: unknown key "tags" \(allowed: image, additional_tags, version, bump_aliases, format\)$/],
    ['wrong type', 'out', { source, params: { image: 'image', additional_tags: 7 } }, /^invalid payload: \/params\/additional_tags must be array$/],
    ['a repository name that is not one', 'check', { source: { ...source, repository: 'App' } }, /^invalid payload: \/source\/repository "App" must be lowercase/],
    ['a version digest that does not exist', 'in', { source, version: { digest: absent } }, new RegExp(`^version ${absent} of app is gone from file store `)],
    ['a repository that does not exist is not "gone"', 'in', { source: { ...source, repository: 'never' }, version: { digest: absent } }, /^repository never does not exist in file store .+ \(check source.repository and source.store\)$/],
    ['an image glob matching nothing', 'out', { source, params: { image: 'imgs/*' } }, /^params.image "imgs\/\*" matches nothing in .+\/work$/],
    ['an image glob matching several', 'out', { source, params: { image: 'build/*.tar' } }, /^params.image "build\/\*.tar" matches 2 paths \(build\/a.tar, build\/b.tar\); it must match exactly one$/],
    ['an input holding several images', 'out', { source, params: { image: 'multi.tar' } }, /^params.image "multi.tar" holds \d images \(.+\); a put stores one/],
    ['a truncated archive', 'out', { source, params: { image: 'broken.tar' } }, /broken.tar: .+/],
    ['an additional_tags file that is missing', 'out', { source, params: { image: 'image', additional_tags: 'tags.txt' } }, /^params.additional_tags file "tags.txt": no such file$/],
    ['in without a directory', 'in', { source, version }, /^usage: in <directory>/],
  ];
  for (const [label, command, payload, expected] of cases) {
    await t.test(label, async () => {
      const target = label === 'in without a directory' ? undefined : command === 'out' ? work : join(dir, 'get', label.replace(/\W+/g, '-'));
      const result = await resource(command, payload, target, typeof payload === 'string' ? { raw: payload } : {});
      assert.notEqual(result.code, 0);
      assert.equal(result.stdout, '');
      const lines = result.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0] ?? '', expected);
      assert.deepEqual(await snapshotTree(store), before, 'the store is unchanged');
    });
  }
});
