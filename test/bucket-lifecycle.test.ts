import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Bucket } from '../src/store/bucket/client.js';
import { CLI, FIXTURES, cartorio, tempDir } from './helpers/cli.js';
import { aws, startRgw } from './helpers/ceph.js';
import { startServe } from './helpers/clients.js';
import { ok, tags } from './helpers/lifecycle.js';
import { startS3Proxy } from './helpers/s3-proxy.js';

// rm, prune and gc on a bucket store (Ceph RGW), with the directory store's semantics and
// messages: what lifecycle.test.ts asserts of a directory, on keys, beside a live replica.

const MANIFEST_TYPES = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json';

interface GcJson {
  bytesFreed: number;
  freed: { digest: string }[];
  dropped: string[];
  inGrace: { blobs: number };
  aborted: { path: string }[];
}

async function gc(store: string, ...flags: string[]): Promise<GcJson> {
  return JSON.parse(await ok(['gc', '--store', store, '--json', ...flags])) as GcJson;
}

test('rm, prune and gc on a bucket store (Ceph RGW)', async (t) => {
  const dir = await tempDir(t);
  const rgw = await startRgw(t);
  Object.assign(process.env, rgw.env);
  await aws(rgw, ['s3', 'mb', 's3://cartorio']);
  const bucket = await Bucket.open({ bucket: 'cartorio', prefix: '', pathStyle: true }, { endpoint: rgw.endpoint });
  const keys = async (prefix: string): Promise<string[]> => {
    const found: string[] = [];
    for await (const { path } of bucket.list(prefix)) found.push(path);
    return found;
  };
  const uploads = async (prefix: string): Promise<string[]> => {
    const found: string[] = [];
    for await (const { path } of bucket.uploads()) if (path.startsWith(prefix)) found.push(path);
    return found;
  };

  await t.test('rm of tags and repositories, prune, gc: the same results and list as a directory store', async () => {
    const stores = ['s3://cartorio/tidy', join(dir, 'tidy')];
    for (const store of stores) {
      await ok(['load', '--quiet', '--store', store, join(FIXTURES, 'docker-save-multi.tar')]);
      await ok(['load', '--quiet', '--store', store, join(FIXTURES, 'busybox-oci'), '--name', 'oci/busybox']);
      for (const tag of ['1', '2', '3']) await ok(['load', '--quiet', '--store', store, join(FIXTURES, tag === '2' ? 'rootfs.tar' : 'rootfs.tar.gz'), '--name', 'ci/app', '--tag', tag]);
    }
    const [bucketStore, directory] = stores as [string, string];
    const refused = await cartorio(['rm', '--store', bucketStore, 'busybox:1', 'busybox:2']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^cartorio rm: busybox:2: busybox has no tag 2; nothing was removed/);
    const missing = await cartorio(['prune', '--store', bucketStore, '--keep', '1', 'no/such']);
    assert.match(missing.stderr, /no\/such: no such repository in s3:\/\/cartorio\/tidy; nothing was removed/);
    for (const store of stores) {
      const removed = await ok(['rm', '--store', store, 'busybox:1', 'oci/busybox:arm64']);
      assert.match(removed, /^removed repository busybox\nremoved oci\/busybox:arm64@sha256:/);
      await ok(['prune', '--store', store, '--keep', '1', 'ci/app']);
    }
    const expected = ['127.0.0.1:5000/busybox:1', 'ci/app:3', 'oci/busybox:1', 'oci/busybox:multi', 'other/tool:2'];
    assert.deepEqual(await tags(bucketStore), expected);
    assert.equal(await ok(['list', '--store', bucketStore]), await ok(['list', '--store', directory]), 'list (and ONLY IN REPOSITORY) as for a directory');
    assert.equal((await bucket.get('tidy/.repositories') as { bytes: Buffer }).bytes.toString(), '127.0.0.1:5000/busybox\nci/app\noci/busybox\nother/tool\n');

    // Within the grace nothing goes; then exactly what the directory store frees.
    const kept = await gc(bucketStore);
    assert.equal(kept.bytesFreed, 0);
    assert.ok(kept.inGrace.blobs > 0);
    // One gc GETs each manifest once, though its mark, heldBlobs and poolBlobs all walk them.
    const proxy = await startS3Proxy(t, rgw.endpoint);
    const counted = await cartorio(['gc', '--store', bucketStore, '--dry-run', '--json'], { env: { ...process.env, AWS_ENDPOINT_URL_S3: proxy.endpoint } });
    assert.equal(counted.code, 0, counted.stderr);
    const fetched = proxy.seen.filter((request) => request.method === 'GET' && request.key.startsWith('tidy/.blobs/')).map((request) => request.key);
    assert.ok(fetched.length > 0, 'gc read the manifests through the proxy');
    assert.deepEqual(fetched.filter((key, i) => fetched.indexOf(key) !== i), [], 'no manifest fetched twice');
    const dry = await gc(bucketStore, '--grace', '0s', '--dry-run');
    const poolBefore = await keys('tidy/.blobs/');
    const freed = await gc(bucketStore, '--grace', '0s');
    const fromDirectory = await gc(directory, '--grace', '0s');
    assert.equal(freed.bytesFreed, dry.bytesFreed, 'gc frees what --dry-run said');
    assert.ok(freed.bytesFreed > 0);
    assert.deepEqual(freed.freed.map((blob) => blob.digest).sort(), fromDirectory.freed.map((blob) => blob.digest).sort());
    assert.deepEqual(freed.dropped, ['busybox']);
    assert.deepEqual(await keys('tidy/busybox/'), [], 'the removed repository\'s keys are gone');
    assert.equal((await keys('tidy/.blobs/')).length, poolBefore.length - freed.freed.length);
    assert.equal((await gc(bucketStore, '--grace', '0s')).freed.length, 0, 'a second gc finds nothing');
    await ok(['verify', '--store', bucketStore]);
    assert.deepEqual(await tags(bucketStore), expected);
  });

  await t.test('gc beside a live replica: a pull begun before rm completes; after the grace gc frees it', async (st) => {
    const store = 's3://cartorio/served';
    await ok(['load', '--quiet', '--store', store, join(FIXTURES, 'busybox-oci'), '--name', 'app']);
    await ok(['load', '--quiet', '--store', store, join(FIXTURES, 'docker-save-busybox.tar')]);
    const server = await startServe(st, dir, store, ['--refresh', '300ms']);
    const base = `http://${server.address}/v2`;
    // The pull's first step: the manifest, before rm.
    const manifest = await fetch(`${base}/app/manifests/1`, { headers: { accept: MANIFEST_TYPES } });
    assert.equal(manifest.status, 200);
    const { config, layers } = (await manifest.json()) as { config: { digest: string }; layers: { digest: string }[] };
    const blobs = [config.digest, ...layers.map((layer) => layer.digest)];
    await ok(['rm', '--store', store, 'app']);
    const catalog = async (): Promise<string[]> => ((await (await fetch(`${base}/_catalog`)).json()) as { repositories: string[] }).repositories;
    const tagged = async (): Promise<number> => (await fetch(`${base}/app/manifests/1`, { headers: { accept: MANIFEST_TYPES } })).status;
    // Within one refresh (300 ms here): out of the catalog, its tags gone.
    for (let waited = 0; (await catalog()).includes('app') || (await tagged()) !== 404; waited += 100) {
      assert.ok(waited < 5000, 'app left the catalog and its tag went within 5 s');
      await sleep(100);
    }
    // The rest of the pull, after rm and after a gc within the grace: every blob, through the redirect.
    assert.equal((await gc(store)).bytesFreed, 0);
    await sleep(700); // two refreshes of the replica after the gc
    for (const digest of blobs) {
      const response = await fetch(`${base}/app/blobs/${digest}`);
      assert.equal(response.status, 200, `${digest} after rm`);
      assert.equal(`sha256:${createHash('sha256').update(Buffer.from(await response.arrayBuffer())).digest('hex')}`, digest);
    }
    const freed = await gc(store, '--grace', '0s');
    assert.deepEqual(freed.dropped, ['app']);
    const onlyApp = blobs.filter((digest) => freed.freed.some((blob) => blob.digest === digest));
    assert.ok(onlyApp.length > 0, 'blobs only app held are freed');
    for (const digest of onlyApp) assert.equal(await bucket.head(`served/.blobs/blobs/sha256/${digest.slice(7)}`), undefined, `${digest} is gone from the pool`);
    for (let waited = 0; (await fetch(`${base}/app/blobs/${blobs[0] ?? ''}`)).status !== 404; waited += 100) {
      assert.ok(waited < 5000, 'the replica stops serving the dropped repository within 5 s');
      await sleep(100);
    }
    await ok(['verify', '--store', store]);
    assert.equal((await fetch(`${base}/busybox/manifests/1`, { headers: { accept: MANIFEST_TYPES } })).status, 200, 'what stays is served');
  });

  await t.test('a killed load: gc aborts its multipart upload and frees its orphans once older than the grace', async () => {
    const store = 's3://cartorio/killed';
    await ok(['load', '--quiet', '--store', store, join(FIXTURES, 'docker-save-busybox.tar')]);
    const big = join(dir, 'big-rootfs');
    await mkdir(big, { recursive: true });
    await writeFile(join(big, 'small'), randomBytes(4096));
    await writeFile(join(big, 'large'), randomBytes(64 * 1024 * 1024));
    const child = spawn(process.execPath, [CLI, 'load', '--quiet', '--store', store, big, '--name', 'big', '--tag', '1'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    for (let waited = 0; (await uploads('killed/')).length === 0; waited += 20) {
      assert.ok(waited < 60_000 && child.exitCode === null, 'the load began a multipart upload');
      await sleep(20);
    }
    // By now the small blobs (config, manifest: uploaded beside the layer) are in the pool: orphans.
    child.kill('SIGKILL');
    await exited;
    // The dead load's lock would expire 30 s after its last refresh; the operator who killed it may remove it.
    await bucket.delete('killed/.lock');
    await ok(['verify', '--store', store]);
    const young = await gc(store);
    assert.equal(young.aborted.length, 0, 'an upload begun less than the grace ago is left');
    assert.equal(young.bytesFreed, 0, 'orphans younger than the grace stay');
    assert.ok(young.inGrace.blobs >= 1, 'the killed load left orphans in the pool');
    const pool = await keys('killed/.blobs/');
    await sleep(1100); // LastModified and Initiated have whole seconds
    const old = await gc(store, '--grace', '1s');
    assert.ok(old.aborted.length >= 1, `the killed load's upload is aborted: ${JSON.stringify(old.aborted)}`);
    assert.deepEqual(await uploads('killed/'), []);
    assert.equal(old.freed.length, young.inGrace.blobs, 'the killed load\'s blobs are freed');
    assert.equal((await keys('killed/.blobs/')).length, pool.length - old.freed.length);
    assert.deepEqual(await tags(store), ['busybox:1']);
    await ok(['verify', '--store', store]);
    const human = await ok(['gc', '--store', store, '--grace', '0s']);
    assert.match(human, /^freed 0 blobs, 0 bytes/);
  });

  await t.test('a second writer is kept out while gc holds the lock', async () => {
    const store = 's3://cartorio/locked';
    await ok(['load', '--quiet', '--store', store, join(FIXTURES, 'docker-save-multi.tar')]);
    // Unheld pool blobs enough for gc's sweep to hold the lock a while.
    await Promise.all(Array.from({ length: 600 }, () => bucket.put(`locked/.blobs/blobs/sha256/${randomBytes(32).toString('hex')}`, 'orphan')));
    await sleep(1100);
    const collector = spawn(process.execPath, [CLI, 'gc', '--store', store, '--grace', '1s', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    collector.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const collected = new Promise((resolve) => collector.once('exit', resolve));
    for (let tries = 0; (await bucket.head('locked/.lock')) === undefined; tries++) {
      assert.ok(tries < 5000 && collector.exitCode === null, 'gc took the lock object');
    }
    collector.kill('SIGSTOP');
    const writer = spawn(process.execPath, [CLI, 'rm', '--store', store, 'busybox:1'], { stdio: 'ignore' });
    const written = new Promise((resolve) => writer.once('exit', resolve));
    await sleep(3000);
    assert.equal(writer.exitCode, null, 'rm waits while gc holds the lock');
    assert.ok((await tags(store)).includes('busybox:1'));
    collector.kill('SIGCONT');
    assert.equal(await collected, 0);
    assert.equal((JSON.parse(output) as GcJson).freed.length, 600);
    assert.equal(await written, 0);
    assert.ok(!(await tags(store)).includes('busybox:1'), 'rm ran once gc was done');
    await ok(['verify', '--store', store]);
  });
});
