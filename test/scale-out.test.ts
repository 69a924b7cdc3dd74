import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, cartorio, run, tempDir } from './helpers/cli.js';
import { startServe } from './helpers/clients.js';

// Scale-out on one machine: two `cartorio serve` over one store; a load while both run is
// served by both, with no restart (DESIGN §4: the store is read-only while serving).
test('two servers over one store both serve an image loaded while they run', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  assert.equal((await cartorio(['load', '--store', store, join(FIXTURES, 'docker-save-busybox.tar')])).code, 0);
  const servers = [await startServe(t, join(dir, 'a'), store), await startServe(t, join(dir, 'b'), store)];
  for (const server of servers) assert.equal((await fetch(`http://${server.address}/v2/other/tool/manifests/2`)).status, 404);

  const loaded = await cartorio(['load', '--store', store, join(FIXTURES, 'docker-save-multi.tar'), '--json']);
  assert.equal(loaded.code, 0, loaded.stderr);
  const digest = (JSON.parse(loaded.stdout) as { repository: string; digest: string }[]).find((image) => image.repository === 'other/tool')?.digest;

  for (const server of servers) {
    const manifest = await fetch(`http://${server.address}/v2/other/tool/manifests/2`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(manifest.status, 200);
    assert.equal(manifest.headers.get('docker-content-digest'), digest);
    const copied = await run('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${server.address}/other/tool:2`, `oci:${join(dir, `pulled-${server.address.split(':')[1]}`)}:2`]);
    assert.equal(copied.code, 0, copied.stderr);
    const catalog = (await (await fetch(`http://${server.address}/v2/_catalog`)).json()) as { repositories: string[] };
    assert.deepEqual(catalog.repositories, ['127.0.0.1:5000/busybox', 'busybox', 'other/tool']);
  }
});
