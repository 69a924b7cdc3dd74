import assert from 'node:assert/strict';
import { cp, readFile, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, ROOT, cartorio, run, tempDir } from './helpers/cli.js';
import { must, podmanEnv, startDockerd, startServe, unmountUnder } from './helpers/clients.js';

// DESIGN §4 and the air-gapped issue: one cartorio mirrors several registries for a cluster. The
// kubelet's path is CRI PullImage into containerd, which asks the mirror with `?ns=<registry>`;
// shared/harness/cri/ is that path (a private containerd with the CRI plugin and a gRPC client).
const HARNESS = join(ROOT, '..', 'shared', 'harness', 'cri');

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

  await t.test('CRI PullImage through containerd hosts.toml, as a kubelet pulls', async () => {
    const cri = join(dir, 'cri');
    await cp(HARNESS, cri, { recursive: true });
    await rm(join(cri, 'node_modules'), { recursive: true, force: true });
    await symlink(join(ROOT, 'node_modules'), join(cri, 'node_modules'));
    const env = { ...process.env, CRI_CHECK_DIR: join(dir, 'cri-state'), CERTS_D: join(config, 'containerd', 'certs.d'), CTD_LOG_LEVEL: 'info' };
    const pid = (await must('bash', [join(cri, 'start-containerd.sh')], { env })).stdout.trim();
    t.after(async () => {
      if (/^\d+$/.test(pid)) process.kill(Number(pid), 'SIGTERM');
      for (let i = 0; i < 50 && (await run('kill', ['-0', pid])).code === 0; i++) await new Promise((resolve) => setTimeout(resolve, 100));
      await unmountUnder(join(dir, 'cri-state'));
    });
    const socket = join(dir, 'cri-state', 'ctd', 'containerd.sock');
    for (const [ref, digest] of images) {
      const pulled = await run(process.execPath, [join(cri, 'pull.mjs'), socket, ref], { env });
      assert.equal(pulled.code, 0, `${ref}: ${pulled.stderr}`);
      const repository = ref.slice(0, ref.lastIndexOf(':'));
      assert.match(pulled.stdout, new RegExp(`repo_digests=\\S*${repository.replaceAll('.', '\\.')}@${digest}`), `${ref}: ${pulled.stdout}`);
    }
    const log = await readFile(join(dir, 'cri-state', 'ctd', 'containerd.log'), 'utf8').catch(() => '');
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
