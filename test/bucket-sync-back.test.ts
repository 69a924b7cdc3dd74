import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, mkdtemp, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, cartorio, tempDir } from './helpers/cli.js';
import { aws, startRgw } from './helpers/ceph.js';
import { skopeo } from './helpers/client-fixtures.js';
import { startServe } from './helpers/clients.js';

interface Listed {
  repository: string;
  tag: string;
  digest: string;
}

// A bucket store copied to a directory with `aws s3 sync` (the bucket keeps blobs only in the
// pool; repositories have oci-layout and index.json) is a store: served, verified, and kept by
// gc, rm and load under the bucket's rule (a repository with no blobs/ holds what its index and
// removed roots reach), then synced up again key for key. On a real Ceph RGW.
test('a bucket store synced back to a directory serves, verifies, and loses nothing to gc', async (t) => {
  const dir = await tempDir(t, 'cartorio-sync-back-');
  const rgw = await startRgw(t);
  const env = { ...process.env, ...rgw.env };
  const run = async (args: string[]): Promise<string> => {
    const result = await cartorio(args, { env });
    assert.equal(result.code, 0, `cartorio ${args.join(' ')}: ${result.stdout}${result.stderr}`);
    return result.stdout;
  };
  const list = async (store: string): Promise<string[]> => (JSON.parse(await run(['list', '--json', '--store', store])) as Listed[]).map(({ repository, tag, digest }) => `${repository}:${tag}@${digest}`).sort();
  const poolFiles = async (store: string): Promise<string[]> => (await readdir(join(store, '.blobs', 'blobs', 'sha256'))).sort();
  /**
   * Pulls every tag through `cartorio serve`: skopeo inspects and copies it (every platform), and
   * a plain HTTP walk checks every digest and says which blobs a pull fetches (skopeo's own output
   * holds manifests it converted, so it cannot say).
   */
  const pullAll = async (store: string): Promise<Set<string>> => {
    const server = await startServe(t, join(dir, 'serve'), store);
    const fetched = new Set<string>();
    for (const image of await list(store)) {
      const [name = '', digest = ''] = image.split('@');
      for (const blob of await httpPull(server.address, name.replace(/:([^:/]+)$/, ''), digest)) fetched.add(blob);
      // A name with a host:port (127.0.0.1:5000/busybox) is no reference skopeo parses under another registry.
      if (/^[^/]*:\d+\//.test(name)) continue;
      const inspected = JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://${server.address}/${name}`)) as { Digest: string };
      assert.equal(inspected.Digest, digest, name);
      await skopeo('copy', '--all', '--src-tls-verify=false', `docker://${server.address}/${name}`, `dir:${await mkdtemp(join(dir, 'pulled-'))}`);
    }
    process.kill(server.pid, 'SIGTERM');
    return fetched;
  };

  await aws(rgw, ['s3', 'mb', 's3://cartorio']);
  const bucket = 's3://cartorio/synced';
  await run(['load', '--quiet', '--store', bucket, join(FIXTURES, 'docker-save-busybox.tar')]);
  await run(['load', '--quiet', '--store', bucket, join(FIXTURES, 'docker-save-multi.tar')]);
  await run(['load', '--quiet', '--store', bucket, join(FIXTURES, 'busybox-oci.tar'), '--name', 'busybox', '--tag', '1']);
  // busybox:1 moves to another image: the first one's blobs stay in the bucket's pool, unreferenced.
  const first = (await list(bucket)).find((image) => image.startsWith('busybox:1@'));
  await run(['load', '--quiet', '--store', bucket, join(FIXTURES, 'docker-save-busybox.tar'), '--name', 'busybox', '--tag', '1']);
  const images = await list(bucket);
  assert.ok(first !== undefined && !images.includes(first), 'busybox:1 moved');

  const store = join(dir, 'store');
  await aws(rgw, ['s3', 'sync', bucket, store]);
  assert.equal(await lstat(join(store, 'busybox', 'blobs')).catch(() => 'absent'), 'absent', 'a bucket keeps no blobs/ per repository');

  await t.test('served and verified as it came: the same tags and digests, every blob pulled from the pool', async () => {
    assert.deepEqual(await list(store), images);
    const verified = await run(['verify', '--json', '--store', store]);
    assert.deepEqual((JSON.parse(verified) as { problems: string[] }).problems, []);
    await pullAll(store);
  });

  await t.test('gc --grace 0 frees only what no index reaches; every image still pulls', async () => {
    const before = await poolFiles(store);
    const report = JSON.parse(await run(['gc', '--grace', '0s', '--json', '--store', store])) as { freed: { digest: string }[] };
    const freed = report.freed.map((blob) => blob.digest.slice('sha256:'.length));
    assert.ok(freed.length > 0, 'the moved tag left blobs only the old image reached');
    const pulled = await pullAll(store);
    for (const blob of freed) assert.ok(!pulled.has(blob), `gc freed ${blob}, which a tag still needs`);
    assert.deepEqual(await poolFiles(store), before.filter((blob) => !freed.includes(blob)));
    assert.deepEqual((JSON.parse(await run(['verify', '--json', '--store', store])) as { problems: string[] }).problems, []);
    assert.deepEqual(await list(store), images);
  });

  await t.test('rm, load and gc again: removed blobs go, a load keeps the repository pool-backed, nothing else is lost', async () => {
    const removed = images.filter((image) => image.startsWith('other/tool:'));
    assert.ok(removed.length > 0);
    await run(['rm', '--quiet', '--store', store, 'other/tool']);
    await run(['load', '--quiet', '--store', store, join(FIXTURES, 'busybox-oci.tar'), '--name', 'busybox', '--tag', 'again']);
    assert.equal(await lstat(join(store, 'busybox', 'blobs')).catch(() => 'absent'), 'absent', 'a load into a pool-backed repository links nothing');
    // A repository with no links releases none: it lets go of what only its removed roots past the grace reached.
    const said = await run(['gc', '--grace', '0s', '--store', store]);
    assert.match(said, /; [1-9]\d* blobs no longer held \(reached only by removed roots past the grace\) in \d+ repositories$/m);
    assert.doesNotMatch(said, /links released/);
    const now = await list(store);
    assert.deepEqual(now.filter((image) => !image.startsWith('busybox:again@')), images.filter((image) => !removed.includes(image)));
    assert.deepEqual((JSON.parse(await run(['verify', '--json', '--store', store])) as { problems: string[] }).problems, []);
    await pullAll(store);
  });

  await t.test('a repository with its own blobs/ never serves a pool blob it does not link', async () => {
    await run(['load', '--quiet', '--store', store, join(FIXTURES, 'rootfs.tar'), '--name', 'own/app', '--tag', '1']);
    const blobs = await readdir(join(store, 'own', 'app', 'blobs', 'sha256'));
    const index = JSON.parse(await readFile(join(store, 'own', 'app', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const layer = blobs.find((blob) => `sha256:${blob}` !== index.manifests[0]?.digest) ?? '';
    await unlink(join(store, 'own', 'app', 'blobs', 'sha256', layer));
    assert.ok((await poolFiles(store)).includes(layer), 'the pool still has it');
    const server = await startServe(t, join(dir, 'serve'), store);
    const answer = await fetch(`http://${server.address}/v2/own/app/blobs/sha256:${layer}`);
    assert.equal(answer.status, 404);
    assert.equal((await fetch(`http://${server.address}/v2/busybox/manifests/again`, { method: 'HEAD', headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' } })).status, 200);
    process.kill(server.pid, 'SIGTERM');
    await run(['rm', '--quiet', '--store', store, 'own/app']);
    await run(['gc', '--grace', '0s', '--quiet', '--store', store]);
  });

  await t.test('aws s3 sync DIR s3://… takes it back up: the bucket serves the same images', async () => {
    const back = 's3://cartorio/back';
    await aws(rgw, ['s3', 'sync', store, back, '--exclude', '.tmp/*', '--exclude', '.lock/*']);
    assert.deepEqual(await list(back), await list(store));
    assert.deepEqual((JSON.parse(await run(['verify', '--json', '--store', back])) as { problems: string[] }).problems, []);
  });
});

const ACCEPT = 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json';

/** GETs a manifest and everything it names from a registry, checking every digest; the hex digests fetched. */
async function httpPull(address: string, name: string, digest: string): Promise<string[]> {
  const get = async (kind: 'manifests' | 'blobs', wanted: string): Promise<Buffer> => {
    const answer = await fetch(`http://${address}/v2/${name}/${kind}/${wanted}`, { headers: { accept: ACCEPT } });
    assert.equal(answer.status, 200, `${name} ${kind}/${wanted}`);
    const bytes = Buffer.from(await answer.arrayBuffer());
    assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, wanted, `${name} ${kind}/${wanted}`);
    return bytes;
  };
  const parsed = JSON.parse((await get('manifests', digest)).toString('utf8')) as { manifests?: { digest: string }[]; config?: { digest: string }; layers?: { digest: string }[] };
  const fetched = [digest.slice('sha256:'.length)];
  for (const child of parsed.manifests ?? []) fetched.push(...(await httpPull(address, name, child.digest)));
  for (const blob of [...(parsed.config ? [parsed.config] : []), ...(parsed.layers ?? [])]) {
    await get('blobs', blob.digest);
    fetched.push(blob.digest.slice('sha256:'.length));
  }
  return fetched;
}
