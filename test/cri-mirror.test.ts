import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, cartorio, run, tempDir } from './helpers/cli.js';
import { podmanEnv, startDockerd, startServe } from './helpers/clients.js';
import { startCriContainerd } from './helpers/cri/containerd.js';
import { criImages } from './helpers/cri/image-service.js';

// One cartorio mirrors several registries for an air-gapped cluster. A kubelet pulls by CRI
// PullImage into containerd, which reads the node's hosts.toml and asks the mirror with
// `?ns=<registry>`; test/helpers/cri/ is that path (a private containerd with the CRI plugin and a
// gRPC ImageService client).

interface Listed { repository: string; tag: string; digest: string }

test('one store mirrors docker.io, quay.io and registry.k8s.io: every client gets each registry\'s own image', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  // docker.io/library/busybox:1 (skopeo's RepoTag), quay.io's image at the same path with other
  // content, and registry.k8s.io/pause:3.9.
  for (const args of [
    [join(FIXTURES, 'busybox-docker.tar')],
    [join(FIXTURES, 'rootfs.tar'), '--name', 'quay.io/library/busybox', '--tag', '1', '--cmd', '["/bin/cat", "/etc/motd"]'],
    [join(FIXTURES, 'concourse-rootfs'), '--name', 'registry.k8s.io/pause', '--tag', '3.9'],
  ]) {
    const loaded = await cartorio(['load', '--quiet', '--store', store, ...args]);
    assert.equal(loaded.code, 0, loaded.stderr);
  }
  const listed = JSON.parse((await cartorio(['list', '--json', '--store', store])).stdout) as Listed[];
  const digestOf = (repository: string, tag: string): string => listed.find((i) => i.repository === repository && i.tag === tag)?.digest ?? `${repository}:${tag} missing`;
  const images: [string, string][] = [
    ['docker.io/library/busybox:1', digestOf('docker.io/library/busybox', '1')],
    ['quay.io/library/busybox:1', digestOf('quay.io/library/busybox', '1')],
    ['registry.k8s.io/pause:3.9', digestOf('registry.k8s.io/pause', '3.9')],
  ];
  assert.equal(new Set(images.map(([, digest]) => digest)).size, 3, 'three different images');
  const server = await startServe(t, dir, store);

  // Without ns or a host in the path, library/busybox is held by two registries: refused, never a guess.
  const ambiguous = await fetch(`http://${server.address}/v2/library/busybox/manifests/1`);
  assert.equal(ambiguous.status, 404);
  const body = (await ambiguous.json()) as { errors: { code: string; detail: { candidates: string[] } }[] };
  assert.equal(body.errors[0]?.code, 'NAME_UNKNOWN');
  assert.deepEqual(body.errors[0]?.detail.candidates, ['docker.io/library/busybox', 'quay.io/library/busybox']);

  const config = join(dir, 'node-config');
  const written = await cartorio(['mirror-config', '--registry', server.address, '--store', store, '--out', config]);
  assert.equal(written.code, 0, written.stderr);

  await t.test('CRI PullImage through containerd hosts.toml, as a kubelet pulls', async (st) => {
    const containerd = await startCriContainerd(st, join(config, 'containerd', 'certs.d'));
    const cri = criImages(containerd.socket);
    st.after(() => cri.close());
    for (const [ref, digest] of images) {
      const { image } = await cri.pull(ref);
      const repository = ref.slice(0, ref.lastIndexOf(':'));
      assert.ok(image.repo_digests.includes(`${repository}@${digest}`), `${ref}: ${image.repo_digests.join(' ')}`);
    }
    const log = await containerd.log();
    assert.match(log, /\?ns=quay\.io/, 'containerd asked the mirror with ?ns=');
    assert.doesNotMatch(log, /registry-1\.docker\.io\/v2\/library\/busybox\/manifests\/1"/, 'never fell back to the internet');
  });

  await t.test('podman through the generated registries.conf (no ns: the registry is a path prefix)', async () => {
    const env = { ...(await podmanEnv(join(dir, 'podman'), server.address)), CONTAINERS_REGISTRIES_CONF: join(config, 'containers', 'registries.conf') };
    for (const [ref, digest] of images) {
      const pulled = await run('podman', ['pull', '-q', ref], { env });
      assert.equal(pulled.code, 0, `${ref}: ${pulled.stderr}`);
      const inspected = await run('podman', ['image', 'inspect', '--format', '{{.Digest}}', ref], { env });
      assert.equal(inspected.stdout.trim(), digest, ref);
    }
  });

  await t.test('skopeo and docker name the registry in the path', async (st) => {
    for (const [ref, digest] of images) {
      const inspected = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${server.address}/${ref}`]);
      assert.equal(inspected.code, 0, `${ref}: ${inspected.stderr}`);
      assert.equal((JSON.parse(inspected.stdout) as { Digest: string }).Digest, digest, ref);
    }
    const { docker } = await startDockerd(st);
    const ref = `${server.address}/quay.io/library/busybox:1`;
    assert.equal((await docker(['pull', '-q', ref])).code, 0);
    const ran = await docker(['run', '--rm', '--network', 'none', ref]);
    assert.equal(ran.stdout.trim(), 'hello from cartorio fixtures', ran.stderr);
    const digests = JSON.parse((await docker(['image', 'inspect', '--format', '{{json .RepoDigests}}', ref])).stdout) as string[];
    assert.ok(digests.includes(`${server.address}/quay.io/library/busybox@${digestOf('quay.io/library/busybox', '1')}`), digests.join(' '));
  });
});
