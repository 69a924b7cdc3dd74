import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from './helpers/cli.js';
import { layoutDigest, must, podmanEnv, startContainerd, startServe } from './helpers/clients.js';
import { loadEveryFormat } from './helpers/registry-store.js';

// Every fixture format, loaded by `cartorio load` and served by `cartorio serve`, pulled by
// skopeo, podman and containerd; each pulled digest must be the stored one.
test('every loaded format is pulled by skopeo, podman and containerd with the stored digest', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  const images = await loadEveryFormat(store);
  const server = await startServe(t, dir, store);
  const r = server.address;
  const env = await podmanEnv(join(dir, 'podman'), r);
  const containerd = await startContainerd(t);
  await mkdir(join(dir, 'skopeo'));

  for (const image of images) {
    const ref = `${r}/${image.repository}:${image.tag}`;
    const multi = image.tag === 'multi' ? ['--multi-arch', 'all'] : [];
    const layout = join(dir, 'skopeo', `${image.repository.replace(/\//g, '_')}-${image.tag}`);
    // skopeo gzips uncompressed layers on their way into an OCI layout unless told not to.
    await must('skopeo', ['copy', '-q', '--src-tls-verify=false', '--preserve-digests', '--dest-oci-accept-uncompressed-layers', ...multi, `docker://${ref}`, `oci:${layout}:${image.tag}`]);
    assert.equal(await layoutDigest(layout, image.tag), image.digest, `skopeo copy ${image.label}`);
    const inspected = JSON.parse((await must('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`])).stdout) as { Digest: string };
    assert.equal(inspected.Digest, image.digest, `skopeo inspect ${image.label}`);

    await must('podman', ['pull', '-q', '--tls-verify=false', ref], { env });
    // Images with the same config are one image to podman; RepoDigests says what each name pulled.
    const repoDigests = JSON.parse((await must('podman', ['image', 'inspect', '--format', '{{json .RepoDigests}}', ref], { env })).stdout) as string[];
    assert.ok(repoDigests.includes(`${r}/${image.repository}@${image.digest}`), `podman ${image.label}: ${repoDigests.join(' ')}`);

    const pulled = await containerd.ctr(['image', 'pull', '--plain-http', ref]);
    assert.equal(pulled.code, 0, `containerd ${image.label}: ${pulled.stderr}`);
    const line = (await containerd.ctr(['image', 'ls'])).stdout.split('\n').find((l) => l.startsWith(`${ref} `));
    assert.equal(line?.split(/\s+/)[2], image.digest, `containerd ${image.label}`);
    t.diagnostic(`PASS ${image.label}: ${image.repository}:${image.tag} ${image.digest} (skopeo, podman, containerd)`);
  }
});
