import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, FIXTURES, cartorio, tempDir } from './helpers/cli.js';
import { aws, startRgw } from './helpers/ceph.js';
import { startServe } from './helpers/clients.js';

// A bucket store on a real object store (Ceph RGW) across machines' worth of processes: replicas
// see each other's loads, killed loads leave the store sound, mistakes fail in one line, and a
// directory store copied up with `aws s3 sync` is served with the same digests.
test('bucket store consistency on Ceph RGW', async (t) => {
  const dir = await tempDir(t);
  const rgw = await startRgw(t);
  Object.assign(process.env, rgw.env);
  await aws(rgw, ['s3', 'mb', 's3://cartorio']);
  const list = async (store: string): Promise<{ repository: string; tag: string; digest: string }[]> => {
    const listed = await cartorio(['list', '--json', '--store', store]);
    assert.equal(listed.code, 0, listed.stderr);
    return JSON.parse(listed.stdout) as { repository: string; tag: string; digest: string }[];
  };
  const catalog = async (address: string): Promise<string[]> => ((await (await fetch(`http://${address}/v2/_catalog`)).json()) as { repositories: string[] }).repositories;
  const tagDigest = async (address: string, repository: string, tag: string): Promise<string | null> =>
    (await fetch(`http://${address}/v2/${repository}/manifests/${tag}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json' } })).headers.get('docker-content-digest');
  const within = async (what: string, ms: number, check: () => Promise<boolean>): Promise<number> => {
    const started = Date.now();
    while (!(await check())) {
      assert.ok(Date.now() - started < ms, `${what} not seen within ${ms} ms`);
      await sleep(100);
    }
    return Date.now() - started;
  };

  await t.test('wrong keys, a missing bucket, an unreachable endpoint: one line each, for every command', async () => {
    const cases: { label: string; store: string; env: NodeJS.ProcessEnv; says: RegExp }[] = [
      { label: 'wrong keys', store: 's3://cartorio/x', env: { AWS_SECRET_ACCESS_KEY: 'not-the-secret' }, says: /refused the keys .*check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/ },
      { label: 'missing bucket', store: 's3://no-such-bucket/x', env: {}, says: /bucket "no-such-bucket" does not exist at http:\/\/127\.0\.0\.1:\d+/ },
      { label: 'unreachable endpoint', store: 's3://cartorio/x', env: { AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9' }, says: /cannot reach the object store at http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\)/ },
    ];
    const commands = [['load', join(FIXTURES, 'docker-save-busybox.tar')], ['serve', '--listen', '127.0.0.1:0'], ['list'], ['verify'], ['mirror-config', '--registry', '127.0.0.1:5000']];
    for (const { label, store, env, says } of cases) {
      for (const args of commands) {
        const result = await cartorio([...args, '--store', store], { env: { ...process.env, ...env } });
        const what = `${args[0] ?? ''} with ${label}`;
        assert.equal(result.code, 1, `${what}: ${result.stderr}`);
        const lines = result.stderr.trimEnd().split('\n');
        assert.equal(lines.length, 1, `${what}: ${result.stderr}`);
        assert.match(lines[0] ?? '', new RegExp(`^cartorio ${args[0] ?? ''}: s3://`), what);
        assert.match(lines[0] ?? '', says, what);
      }
    }
  });

  await t.test('a replica started second sees loads made after it started, within --refresh', async (st) => {
    const store = 's3://cartorio/replicas';
    const first = await cartorio(['load', '--quiet', '--store', store, join(FIXTURES, 'docker-save-busybox.tar')]);
    assert.equal(first.code, 0, first.stderr);
    const a = await startServe(st, dir, store, ['--refresh', '500ms']);
    const b = await startServe(st, dir, store, ['--refresh', '500ms']);
    const before = await tagDigest(b.address, 'busybox', '1');
    assert.match(before ?? '', /^sha256:/);
    // A new repository, loaded while both serve.
    const second = await cartorio(['load', '--quiet', '--store', store, join(FIXTURES, 'docker-save-multi.tar')]);
    assert.equal(second.code, 0, second.stderr);
    for (const server of [a, b]) {
      const ms = await within(`other/tool on ${server.address}`, 5000, async () => (await catalog(server.address)).includes('other/tool'));
      st.diagnostic(`new repository served by ${server.address} after ${ms} ms`);
    }
    // A tag moved to another image, in a repository both replicas hold in memory.
    const moved = await cartorio(['load', '--quiet', '--store', store, join(FIXTURES, 'busybox-oci.tar'), '--name', 'busybox', '--tag', '1']);
    assert.equal(moved.code, 0, moved.stderr);
    const now = (await list(store)).find((image) => image.repository === 'busybox' && image.tag === '1')?.digest;
    assert.ok(now !== undefined && now !== before, 'the load moved busybox:1');
    for (const server of [a, b]) await within(`busybox:1 → ${now} on ${server.address}`, 5000, async () => (await tagDigest(server.address, 'busybox', '1')) === now);
  });

  await t.test('two loads at once: the lock object serialises them and both images are there', async () => {
    const store = 's3://cartorio/concurrent';
    const [one, two] = await Promise.all([
      cartorio(['load', '--quiet', '--store', store, join(FIXTURES, 'rootfs.tar'), '--name', 'one', '--tag', '1']),
      cartorio(['load', '--quiet', '--store', store, join(FIXTURES, 'rootfs.tar.gz'), '--name', 'two', '--tag', '1']),
    ]);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(two.code, 0, two.stderr);
    assert.deepEqual((await list(store)).map((image) => image.repository), ['one', 'two']);
  });

  await t.test('SIGKILL of a load at several points leaves verify clean; the next load takes over the lock', async (st) => {
    const store = 's3://cartorio/killed';
    const seed = await cartorio(['load', '--quiet', '--store', store, join(FIXTURES, 'docker-save-busybox.tar')]);
    assert.equal(seed.code, 0, seed.stderr);
    for (const delay of [150, 400, 700, 1000, 1300]) {
      const child = spawn(process.execPath, [CLI, 'load', '--quiet', '--store', store, join(FIXTURES, 'big-layers-oci.tar'), '--name', `big/k${delay}`], { stdio: 'ignore' });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await sleep(delay);
      child.kill('SIGKILL');
      await exited;
      const verified = await cartorio(['verify', '--store', store]);
      assert.equal(verified.code, 0, `killed after ${delay} ms: ${verified.stdout}${verified.stderr}`);
      const repositories = (await list(store)).map((image) => image.repository);
      st.diagnostic(`killed after ${delay} ms: verify clean; served: ${repositories.join(' ')}`);
    }
    const started = Date.now();
    const after = await cartorio(['load', '--quiet', '--store', store, join(FIXTURES, 'big-layers-oci.tar'), '--name', 'big/after']);
    assert.equal(after.code, 0, after.stderr);
    st.diagnostic(`the load after the kills took ${Date.now() - started} ms (a killed holder's lock expires 30 s after its last refresh)`);
    const verified = await cartorio(['verify', '--store', store]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.ok((await list(store)).some((image) => image.repository === 'big/after'));
  });

  await t.test('aws s3 sync of a directory store serves the same digests', async (st) => {
    const directory = join(dir, 'dir-store');
    for (const [input, ...flags] of [['docker-save-multi.tar'], ['busybox-oci', '--name', 'layout/busybox'], ['rootfs', '--name', 'rootfs/dir', '--tag', '1']] as const) {
      const loaded = await cartorio(['load', '--quiet', '--store', directory, join(FIXTURES, input), ...flags]);
      assert.equal(loaded.code, 0, loaded.stderr);
    }
    await aws(rgw, ['s3', 'sync', '--only-show-errors', directory, 's3://cartorio/synced']);
    const fromDisk = await list(directory);
    assert.deepEqual(await list('s3://cartorio/synced'), fromDisk);
    const verified = await cartorio(['verify', '--store', 's3://cartorio/synced']);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    const server = await startServe(st, dir, 's3://cartorio/synced');
    for (const image of fromDisk) assert.equal(await tagDigest(server.address, image.repository, image.tag), image.digest, `${image.repository}:${image.tag}`);
  });
});
