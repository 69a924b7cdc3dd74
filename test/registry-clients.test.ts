import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { hashSync } from 'bcryptjs';
import { run, tempDir } from './helpers/cli.js';
import { layoutDigest, makeTestCA, must, podmanEnv, startContainerd, startServe } from './helpers/clients.js';
import { BUSYBOX_1, BUSYBOX_ARM64, BUSYBOX_MULTI, makeRegistryStore } from './helpers/registry-store.js';

// Real clients against `cartorio serve` (the CLI, as a child process) over 127.0.0.1, on a store
// written by skopeo from the umoci fixtures. Each prints one line, collected in the report.
test('real clients pull from cartorio serve', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  await makeRegistryStore(store);
  await mkdir(join(dir, 'skopeo'));
  const server = await startServe(t, dir, store);
  const r = server.address;
  const report = (line: string): void => t.diagnostic(line);

  await t.test('skopeo copy docker:// → oci: and skopeo inspect: digests equal the stored ones', async () => {
    for (const [ref, tag, digest] of [['busybox:1', '1', BUSYBOX_1], ['library/busybox:latest', 'latest', BUSYBOX_1], ['busybox:arm64', 'arm64', BUSYBOX_ARM64]] as const) {
      const layout = join(dir, 'skopeo', ref.replace(/[/:]/g, '_'));
      await must('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${r}/${ref}`, `oci:${layout}:${tag}`]);
      assert.equal(await layoutDigest(layout, tag), digest, ref);
      const inspect = JSON.parse((await must('skopeo', ['inspect', '--tls-verify=false', `docker://${r}/${ref}`, '--override-arch', tag === 'arm64' ? 'arm64' : 'amd64'])).stdout) as { Digest: string };
      assert.equal(inspect.Digest, digest, `inspect ${ref}`);
      report(`PASS skopeo copy+inspect ${r}/${ref} ${digest}`);
    }
    const raw = await must('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${r}/busybox:multi`]);
    assert.match(raw.stdout, /application\/vnd\.oci\.image\.index\.v1\+json/);
  });

  await t.test('multi-platform index: skopeo --multi-arch all keeps the index, --override-arch arm64 picks arm64', async () => {
    const all = join(dir, 'skopeo', 'multi-all');
    await must('skopeo', ['copy', '-q', '--src-tls-verify=false', '--multi-arch', 'all', `docker://${r}/busybox:multi`, `oci:${all}:multi`]);
    assert.equal(await layoutDigest(all, 'multi'), BUSYBOX_MULTI);
    const arm = join(dir, 'skopeo', 'multi-arm64');
    await must('skopeo', ['copy', '-q', '--src-tls-verify=false', '--override-arch', 'arm64', `docker://${r}/busybox:multi`, `oci:${arm}:arm64`]);
    assert.equal(await layoutDigest(arm, 'arm64'), BUSYBOX_ARM64);
    const amd = join(dir, 'skopeo', 'multi-amd64');
    await must('skopeo', ['copy', '-q', '--src-tls-verify=false', '--override-arch', 'amd64', `docker://${r}/busybox:multi`, `oci:${amd}:amd64`]);
    assert.equal(await layoutDigest(amd, 'amd64'), BUSYBOX_1);
    report(`PASS skopeo multi-arch ${r}/busybox:multi all=${BUSYBOX_MULTI} arm64=${BUSYBOX_ARM64} amd64=${BUSYBOX_1}`);
  });

  await t.test('podman pull (root, vfs, private root/runroot): the stored digest', async () => {
    const env = await podmanEnv(join(dir, 'podman'), r);
    for (const ref of ['busybox:1', 'library/busybox:latest']) {
      await must('podman', ['pull', '-q', '--tls-verify=false', `${r}/${ref}`], { env });
      const digest = (await must('podman', ['images', '--digests', '--format', '{{.Digest}}', `${r}/${ref}`], { env })).stdout.trim().split('\n')[0];
      assert.equal(digest, BUSYBOX_1, ref);
      report(`PASS podman pull ${r}/${ref} ${digest}`);
    }
    await must('podman', ['pull', '-q', '--tls-verify=false', '--arch', 'arm64', `${r}/busybox:multi`], { env });
  });

  await t.test('containerd: ctr image pull --plain-http, unpacked, the stored digest', async (tc) => {
    const containerd = await startContainerd(tc);
    for (const [ref, digest] of [['busybox:1', BUSYBOX_1], ['busybox:multi', BUSYBOX_MULTI]] as const) {
      const pulled = await containerd.ctr(['image', 'pull', '--plain-http', `${r}/${ref}`]);
      assert.equal(pulled.code, 0, pulled.stderr);
      const list = (await containerd.ctr(['image', 'ls'])).stdout;
      const line = list.split('\n').find((l) => l.startsWith(`${r}/${ref} `));
      assert.equal(line?.split(/\s+/)[2], digest, list);
      report(`PASS ctr image pull --plain-http ${r}/${ref} ${digest}`);
    }
    const check = await containerd.ctr(['image', 'check']);
    assert.match(check.stdout, new RegExp(`${r}/busybox:1\\s+\\S+\\s+\\S+\\s+complete`), check.stdout);
  });

  const errors = server.logs().split('\n').filter((line) => line.includes('"level":50'));
  assert.deepEqual(errors, [], 'no error was logged');
});

test('TLS with a test CA, with and without basic auth, pulled by skopeo', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  await makeRegistryStore(store);
  const { caDir, cert, key } = await makeTestCA(join(dir, 'tls'));
  const htpasswd = join(dir, 'htpasswd');
  await writeFile(htpasswd, `puller:${hashSync('s3cret', 5)}\n`);
  const tls = await startServe(t, dir, store, ['--tls-cert', cert, '--tls-key', key]);
  const both = await startServe(t, dir, store, ['--tls-cert', cert, '--tls-key', key, '--htpasswd', htpasswd]);

  const layout = join(dir, 'tls-pull');
  await must('skopeo', ['copy', '-q', '--src-cert-dir', caDir, `docker://${tls.address}/busybox:1`, `oci:${layout}:1`]);
  assert.equal(await layoutDigest(layout, '1'), BUSYBOX_1);
  // Without the CA the certificate is not trusted: TLS really is on.
  const untrusted = await run('skopeo', ['inspect', `docker://${tls.address}/busybox:1`]);
  assert.notEqual(untrusted.code, 0);
  assert.match(untrusted.stderr, /certificate|x509/i);

  const noCreds = await run('skopeo', ['inspect', '--cert-dir', caDir, `docker://${both.address}/busybox:1`]);
  assert.notEqual(noCreds.code, 0);
  assert.match(noCreds.stderr, /unauthorized|authentication required/i);
  const wrong = await run('skopeo', ['inspect', '--cert-dir', caDir, '--creds', 'puller:wrong', `docker://${both.address}/busybox:1`]);
  assert.notEqual(wrong.code, 0);
  const inspect = JSON.parse((await must('skopeo', ['inspect', '--cert-dir', caDir, '--creds', 'puller:s3cret', `docker://${both.address}/busybox:1`])).stdout) as { Digest: string };
  assert.equal(inspect.Digest, BUSYBOX_1);
  const authed = join(dir, 'tls-auth-pull');
  await must('skopeo', ['copy', '-q', '--src-cert-dir', caDir, '--src-creds', 'puller:s3cret', `docker://${both.address}/busybox:multi`, `oci:${authed}:multi`, '--multi-arch', 'all']);
  assert.equal(await layoutDigest(authed, 'multi'), BUSYBOX_MULTI);
});
