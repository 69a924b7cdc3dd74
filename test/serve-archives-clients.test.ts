import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, tempDir } from './helpers/cli.js';
import { must, podmanEnv, startContainerd, startDockerd } from './helpers/clients.js';
import { loadedDigests, serveArgs } from './helpers/serve-archive.js';

// Real clients pull from tarballs served in place (`cartorio serve FILE.tar`) and get the digests
// `cartorio load` gives the same tarballs; Docker pulls and runs from a tarball its own engine wrote.
test('real clients pull from a served tarball with the digests load gives', async (t) => {
  const dir = await tempDir(t);
  // Docker 20.10's own `docker save` of busybox:1, 127.0.0.1:5000/busybox:1 and other/tool:2; skopeo's docker-archive; Docker 25+'s layout.
  const archives = ['docker-save-multi.tar', 'busybox-docker.tar', 'docker25-save.tar'].map((file) => join(FIXTURES, file));
  const loaded = new Map<string, string>();
  for (const archive of archives) for (const [ref, digest] of await loadedDigests(join(dir, 'store'), archive)) loaded.set(ref, digest);
  const server = await serveArgs(t, dir, archives);
  const r = server.address;
  const digestOf = (ref: string): string => loaded.get(ref) ?? `missing ${ref}`;

  await t.test('skopeo copy and inspect', async () => {
    await mkdir(join(dir, 'skopeo'), { recursive: true });
    for (const [asked, ref] of [['busybox:1', 'busybox:1'], ['other/tool:2', 'other/tool:2'], ['docker.io/library/busybox:25', 'docker.io/library/busybox:25']] as const) {
      // dir: keeps the manifest as served (oci: would compress the uncompressed layers of a docker save).
      const copy = join(dir, 'skopeo', asked.replace(/[/:]/g, '_'));
      await must('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${r}/${asked}`, `dir:${copy}`]);
      assert.equal(`sha256:${createHash('sha256').update(await readFile(join(copy, 'manifest.json'))).digest('hex')}`, digestOf(ref), asked);
      const inspect = JSON.parse((await must('skopeo', ['inspect', '--tls-verify=false', `docker://${r}/${asked}`])).stdout) as { Digest: string };
      assert.equal(inspect.Digest, digestOf(ref));
      t.diagnostic(`PASS skopeo copy+inspect ${r}/${asked} ${inspect.Digest}`);
    }
  });

  await t.test('podman pull', async () => {
    const env = await podmanEnv(join(dir, 'podman'), r);
    for (const ref of ['busybox:1', 'other/tool:2']) {
      await must('podman', ['pull', '-q', `${r}/${ref}`], { env });
      const digest = (await must('podman', ['image', 'inspect', '--format', '{{.Digest}}', `${r}/${ref}`], { env })).stdout.trim();
      assert.equal(digest, digestOf(ref), ref);
      t.diagnostic(`PASS podman pull ${r}/${ref} ${digest}`);
    }
    await must('podman', ['rmi', '-a', '-f'], { env });
  });

  await t.test('containerd ctr image pull', async (st) => {
    const { ctr } = await startContainerd(st);
    for (const ref of ['busybox:1', 'other/tool:2', 'docker.io/library/busybox:25']) {
      const pulled = await ctr(['image', 'pull', '--plain-http', `${r}/${ref}`]);
      assert.equal(pulled.code, 0, `${ref}: ${pulled.stderr}`);
      const listed = (await ctr(['image', 'ls'])).stdout;
      assert.ok(listed.includes(digestOf(ref)), `${ref}: ${listed}`);
      t.diagnostic(`PASS ctr image pull ${r}/${ref} ${digestOf(ref)}`);
    }
  });

  await t.test('docker pull + docker run from the tarball docker save wrote', async (st) => {
    const { docker } = await startDockerd(st);
    for (const [ref, command, prints] of [['busybox:1', ['cat', '/etc/motd'], 'hello from cartorio fixtures'], ['other/tool:2', [], 'tool-layer'], ['docker.io/library/busybox:25', ['cat', '/etc/motd'], 'hello from cartorio fixtures']] as const) {
      const full = `${r}/${ref}`;
      const pulled = await docker(['pull', '-q', full]);
      assert.equal(pulled.code, 0, `docker pull ${full}: ${pulled.stderr}`);
      const repoDigests = JSON.parse((await docker(['image', 'inspect', '--format', '{{json .RepoDigests}}', full])).stdout) as string[];
      const want = digestOf(ref);
      assert.ok(repoDigests.some((d) => d.endsWith(`@${want}`)), `${full}: ${repoDigests.join(' ')}`);
      const ran = await docker(['run', '--rm', '--network', 'none', full, ...command]);
      assert.equal(ran.code, 0, `docker run ${full}: ${ran.stderr}`);
      assert.equal(ran.stdout.trim(), prints);
      t.diagnostic(`PASS docker pull+run ${full} ${want}: ${prints}`);
    }
  });
});
