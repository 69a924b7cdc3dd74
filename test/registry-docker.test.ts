import assert from 'node:assert/strict';
import { cp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, cartorio, tempDir } from './helpers/cli.js';
import { startDockerd, startServe } from './helpers/clients.js';
import { BUSYBOX_1, BUSYBOX_MULTI, loadEveryFormat, makeRegistryStore } from './helpers/registry-store.js';

// A real Docker engine (Debian docker.io 20.10, private, vfs, no network) pulling from
// `cartorio serve` and running what it pulled: DESIGN §1's reference flow and every format.
// One dockerd serves the whole file; it is stopped (by PID) when the file ends.
test('docker pulls from cartorio serve and runs what it pulled', async (t) => {
  const dir = await tempDir(t);
  const { docker } = await startDockerd(t);
  const pullAndRun = async (registry: string, repository: string, tag: string, digest: string, command: string[]): Promise<string> => {
    const ref = `${registry}/${repository}:${tag}`;
    const pulled = await docker(['pull', '-q', ref]);
    assert.equal(pulled.code, 0, `docker pull ${ref}: ${pulled.stderr}`);
    const inspect = await docker(['image', 'inspect', '--format', '{{json .RepoDigests}}', ref]);
    const repoDigests = JSON.parse(inspect.stdout) as string[];
    assert.ok(repoDigests.includes(`${registry}/${repository}@${digest}`), `${ref}: RepoDigests ${repoDigests.join(' ')} lack ${digest}`);
    const ran = await docker(['run', '--rm', '--network', 'none', ref, ...command]);
    assert.equal(ran.code, 0, `docker run ${ref}: ${ran.stderr}`);
    return ran.stdout.trim();
  };

  await t.test('the seed flow: docker save → cartorio load → cartorio serve → docker pull → docker run', async (st) => {
    const store = join(dir, 'seed-store');
    for (const tarball of ['docker-save-busybox.tar', 'docker-save-multi.tar']) {
      const loaded = await cartorio(['load', '--quiet', '--store', store, join(FIXTURES, tarball)]);
      assert.equal(loaded.code, 0, loaded.stderr);
    }
    const listed = JSON.parse((await cartorio(['list', '--json', '--store', store])).stdout) as { repository: string; tag: string; digest: string }[];
    const digestOf = (repository: string, tag: string): string => listed.find((i) => i.repository === repository && i.tag === tag)?.digest ?? 'missing';
    const server = await startServe(st, dir, store);
    const motd = await pullAndRun(server.address, 'busybox', '1', digestOf('busybox', '1'), ['cat', '/etc/motd']);
    assert.equal(motd, 'hello from cartorio fixtures');
    st.diagnostic(`PASS docker pull+run ${server.address}/busybox:1 ${digestOf('busybox', '1')}: ${motd}`);
    // docker-save-multi.tar also held 127.0.0.1:5000/busybox:1 (served as busybox:1) and other/tool:2.
    const tool = await pullAndRun(server.address, 'other/tool', '2', digestOf('other/tool', '2'), []);
    assert.equal(tool, 'tool-layer');
    st.diagnostic(`PASS docker pull+run ${server.address}/other/tool:2 ${digestOf('other/tool', '2')}: ${tool}`);
  });

  await t.test('every other format, loaded by cartorio load', async (st) => {
    const store = join(dir, 'formats-store');
    const images = await loadEveryFormat(store);
    const server = await startServe(st, dir, store);
    for (const image of images) {
      // Docker resolves a multi-platform index to this machine's manifest; RepoDigests keeps the index's digest.
      const output = await pullAndRun(server.address, image.repository, image.tag, image.digest, image.command);
      assert.equal(output, image.prints, image.label);
      st.diagnostic(`PASS docker pull+run ${image.label}: ${image.repository}:${image.tag} ${image.digest}: ${output}`);
    }
  });

  await t.test('a store written by skopeo (plain OCI layouts), an OCI image index included', async (st) => {
    const store = join(dir, 'skopeo-store');
    await makeRegistryStore(store);
    const server = await startServe(st, dir, store);
    assert.equal(await pullAndRun(server.address, 'busybox', '1', BUSYBOX_1, ['cat', '/etc/motd']), 'hello from cartorio fixtures');
    assert.equal(await pullAndRun(server.address, 'busybox', 'multi', BUSYBOX_MULTI, ['sh', '-c', 'echo $GREETING']), 'hello');
    st.diagnostic(`PASS docker pull+run ${server.address}/busybox:1 ${BUSYBOX_1} and busybox:multi ${BUSYBOX_MULTI}`);
  });

  await t.test('a Concourse rootfs with "user": "root" and no /etc/passwd runs as Concourse runs it (uid 0)', async (st) => {
    const image = join(dir, 'root-image');
    await cp(join(FIXTURES, 'concourse-rootfs'), image, { recursive: true });
    await writeFile(join(image, 'metadata.json'), JSON.stringify({ env: ['PATH=/bin'], user: 'root:root', cmd: ['/bin/busybox', 'sh', '-c', 'id -u; id -g; cat /etc/motd'] }));
    const store = join(dir, 'root-store');
    const loaded = await cartorio(['load', '--store', store, image, '--name', 'ci/task', '--tag', '1', '--json']);
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.match(loaded.stderr, /metadata.json user "root:root" has no entry in rootfs\/etc\/passwd or group; the image runs as "0:0"/);
    const digest = (JSON.parse(loaded.stdout) as { digest: string }[])[0]?.digest ?? '';
    const server = await startServe(st, dir, store);
    const ran = await pullAndRun(server.address, 'ci/task', '1', digest, []);
    assert.deepEqual(ran.split('\n'), ['0', '0', 'hello from cartorio fixtures']);
    // A name the rootfs does not define is refused: no runtime could start it.
    await writeFile(join(image, 'metadata.json'), JSON.stringify({ user: 'builder' }));
    const refused = await cartorio(['load', '--store', store, image, '--name', 'ci/task', '--tag', '2']);
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr.split('\n')[0], `cartorio load: ${image}: metadata.json user "builder": "builder" is not in rootfs/etc/passwd, so no container runtime can start the image as that user`);
    // Defined in the rootfs: the name is kept as it is.
    await writeFile(join(image, 'rootfs', 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nbuilder:x:1000:1000::/tmp:/bin/sh\n');
    await writeFile(join(image, 'metadata.json'), JSON.stringify({ env: ['PATH=/bin'], user: 'builder', cmd: ['/bin/busybox', 'id', '-u'] }));
    const named = await cartorio(['load', '--store', store, image, '--name', 'ci/task', '--tag', '3', '--json']);
    assert.equal(named.code, 0, named.stderr);
    assert.equal(named.stderr, '');
    assert.equal(await pullAndRun(server.address, 'ci/task', '3', (JSON.parse(named.stdout) as { digest: string }[])[0]?.digest ?? '', []), '1000');
  });
});
