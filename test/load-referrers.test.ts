import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { sha256Digest } from '../src/image/digest.js';
import { MediaType } from '../src/image/media-types.js';
import type { Descriptor, ImageIndex } from '../src/image/oci.schema.js';
import { FIXTURES, cartorio, run, tempDir } from './helpers/cli.js';
import { startServe } from './helpers/clients.js';
import { skopeo } from './helpers/client-fixtures.js';
import { BUSYBOX_1, BUSYBOX_ARM64 } from './helpers/registry-store.js';
import { snapshotTree } from './helpers/snapshot.js';

const REF_NAME = 'org.opencontainers.image.ref.name';
const SPDX = 'application/spdx+json';

/**
 * A layout as `oras attach` and `cosign sign` leave it: the image (copied by skopeo) tagged `1`,
 * an SBOM whose `subject` is the image, untagged (the spec's empty config descriptor), and a
 * cosign-style signature manifest tagged `sha256-<hex>.sig`. No attach tool is packaged for
 * Debian 12, so the two artifacts are written from bytes as those tools write them.
 */
async function layoutWithAttachments(dir: string): Promise<{ layout: string; sbom: string; signature: string; signatureTag: string }> {
  const layout = join(dir, 'layout');
  await skopeo('copy', '-q', `oci:${join(FIXTURES, 'busybox-oci')}:1`, `oci:${layout}:1`);
  const blob = async (content: string | Buffer): Promise<Descriptor & { digest: string }> => {
    const bytes = Buffer.from(content);
    const digest = sha256Digest(bytes);
    await writeFile(join(layout, 'blobs', 'sha256', digest.slice(7)), bytes);
    return { mediaType: 'application/octet-stream', digest, size: bytes.length };
  };
  const image: Descriptor = { mediaType: MediaType.ociManifest, digest: BUSYBOX_1, size: 503 };
  const empty = await blob('{}');
  const sbomLayer = await blob('{"spdxVersion":"SPDX-2.3","name":"busybox"}');
  const sbom = await blob(JSON.stringify({
    schemaVersion: 2, mediaType: MediaType.ociManifest, artifactType: SPDX,
    config: { mediaType: MediaType.ociEmpty, digest: empty.digest, size: empty.size },
    layers: [{ ...sbomLayer, mediaType: SPDX }], subject: image,
  }));
  const sigConfig = await blob('{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}');
  const payload = await blob(`{"critical":{"image":{"docker-manifest-digest":"${BUSYBOX_1}"}}}`);
  const signature = await blob(JSON.stringify({
    schemaVersion: 2, mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: sigConfig.digest, size: sigConfig.size },
    layers: [{ ...payload, mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', annotations: { 'dev.cosignproject.cosign/signature': 'MEUC' } }],
  }));
  const signatureTag = `sha256-${BUSYBOX_1.slice(7)}.sig`;
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as ImageIndex;
  index.manifests.push({ mediaType: MediaType.ociManifest, digest: sbom.digest, size: sbom.size, artifactType: SPDX });
  index.manifests.push({ mediaType: MediaType.ociManifest, digest: signature.digest, size: signature.size, annotations: { [REF_NAME]: signatureTag } });
  await writeFile(join(layout, 'index.json'), JSON.stringify(index));
  return { layout, sbom: sbom.digest, signature: signature.digest, signatureTag };
}

interface Listed { repository: string; tag: string; digest: string }

test('--tag names the image, never the SBOM attached to it; referrers stay reachable', async (t) => {
  const dir = await tempDir(t);
  const { layout, sbom, signature, signatureTag } = await layoutWithAttachments(dir);
  for (const extra of [['--name', 'conf', '--tag', '1'], ['--name', 'conf'], ['--name', 'docker.io/conf', '--tag', '1']]) {
    const store = join(dir, `store-${extra.length}-${extra[1]?.length}`);
    const loaded = await cartorio(['load', '--store', store, layout, '--json', ...extra]);
    assert.equal(loaded.code, 0, loaded.stderr);
    const repository = extra[1] === 'docker.io/conf' ? 'docker.io/library/conf' : 'conf';
    const list = await cartorio(['list', '--store', store, '--json']);
    const rows = (JSON.parse(list.stdout) as Listed[]).map((row) => `${row.repository}:${row.tag}@${row.digest}`).sort();
    assert.deepEqual(rows, [`${repository}:1@${BUSYBOX_1}`, `${repository}:${signatureTag}@${signature}`].sort(), extra.join(' '));
    const verify = await cartorio(['verify', '--store', store]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);

    const server = await startServe(t, join(dir, 'serve'), store);
    const copied = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${server.address}/${repository}:1`]);
    assert.equal(copied.code, 0, copied.stderr);
    assert.equal((JSON.parse(copied.stdout) as { Digest: string }).Digest, BUSYBOX_1);
    const referrers = (await (await fetch(`http://${server.address}/v2/${repository}/referrers/${BUSYBOX_1}`)).json()) as { manifests: Descriptor[] };
    assert.deepEqual(referrers.manifests.map((m) => [m.digest, m.artifactType]), [[sbom, SPDX]]);
  }
});

test('a load that would give one tag two digests fails naming both, and changes nothing', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  const other = join(dir, 'arm64');
  await skopeo('copy', '-q', `oci:${join(FIXTURES, 'busybox-oci')}:arm64`, `oci:${other}:arm64`);
  const { layout } = await layoutWithAttachments(dir);
  assert.equal((await cartorio(['load', '--store', store, layout, '--name', 'conf'])).code, 0);
  const before = await snapshotTree(store);
  // Across inputs of one transaction, and inside one input (a layout with two images).
  const both = join(dir, 'both');
  await skopeo('copy', '-q', `oci:${join(FIXTURES, 'busybox-oci')}:1`, `oci:${both}:1`);
  await skopeo('copy', '-q', `oci:${join(FIXTURES, 'busybox-oci')}:arm64`, `oci:${both}:arm64`);
  for (const args of [[layout, other, '--name', 'conf', '--tag', '2'], [both, '--name', 'conf', '--tag', '2']]) {
    const failed = await cartorio(['load', '--store', store, ...args]);
    assert.equal(failed.code, 1, failed.stdout);
    const lines = failed.stderr.trim().split('\n');
    assert.ok(lines.length <= 2 && (lines[1] === undefined || lines[1].startsWith('  hint: ')), failed.stderr);
    assert.match(lines[0] ?? '', /would tag conf:2 twice: sha256:[a-f0-9]{64} and sha256:[a-f0-9]{64}/);
    assert.ok(lines[0]?.includes(BUSYBOX_1) && lines[0].includes(BUSYBOX_ARM64), lines[0]);
    assert.deepEqual(await snapshotTree(store), before, 'the store is unchanged');
  }
});

test('verify reports what a store should never hold: a tag twice, a dangling subject, a tag on a referrer', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  const { layout, sbom } = await layoutWithAttachments(dir);
  assert.equal((await cartorio(['load', '--store', store, layout, '--name', 'conf'])).code, 0);
  const indexPath = join(store, 'conf', 'index.json');
  const index = JSON.parse(await readFile(indexPath, 'utf8')) as ImageIndex;
  const sbomEntry = index.manifests.find((m) => m.digest === sbom) as Descriptor;
  const imageEntry = index.manifests.find((m) => m.digest === BUSYBOX_1) as Descriptor;
  // An old cartorio's loss: the tag on the SBOM, the image untagged, and the tag written twice.
  const damaged: ImageIndex = { ...index, manifests: [
    { ...sbomEntry, annotations: { [REF_NAME]: '1' } },
    { ...imageEntry, annotations: {} },
    { ...sbomEntry, annotations: { [REF_NAME]: '1' } },
  ] };
  await writeFile(indexPath, JSON.stringify(damaged));
  let verify = await cartorio(['verify', '--store', store]);
  assert.equal(verify.code, 1);
  assert.match(verify.stdout + verify.stderr, /conf: index.json names tag "1" twice/);
  assert.match(verify.stdout + verify.stderr, new RegExp(`conf: tag "1" names a referrer of ${BUSYBOX_1}, which has no tag`));
  // The subject gone from the repository altogether.
  await writeFile(indexPath, JSON.stringify({ ...index, manifests: [{ ...sbomEntry, annotations: {} }] }));
  verify = await cartorio(['verify', '--store', store]);
  assert.equal(verify.code, 1);
  assert.match(verify.stdout + verify.stderr, new RegExp(`conf: ${sbom} refers to subject ${BUSYBOX_1}, which the repository does not hold`));
});

test('rm of an image takes its referrers with it: the SBOM naming it as subject and its .sig tag', async (t) => {
  const dir = await tempDir(t);
  const { layout, sbom, signature, signatureTag } = await layoutWithAttachments(dir);
  const store = join(dir, 'store');
  assert.equal((await cartorio(['load', '--store', store, layout, '--name', 'conf'])).code, 0);
  const dry = await cartorio(['rm', '--store', store, '--dry-run', '--json', `conf@${BUSYBOX_1}`]);
  assert.equal(dry.code, 0, dry.stderr);
  const removed = (JSON.parse(dry.stdout) as { repositories: { removed: { tag?: string; digest: string }[] }[] }).repositories[0]?.removed ?? [];
  assert.deepEqual(removed.map((entry) => entry.digest).sort(), [BUSYBOX_1, sbom, signature].sort());
  assert.ok(removed.some((entry) => entry.tag === signatureTag));
  // Untagging the image's only tag is the same: nothing is left to name it.
  const rm = await cartorio(['rm', '--store', store, 'conf:1']);
  assert.equal(rm.code, 0, rm.stderr);
  assert.match(rm.stdout, /removed repository conf/);
  const verify = await cartorio(['verify', '--store', store]);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  assert.equal((await cartorio(['gc', '--store', store, '--grace', '0s'])).code, 0);
  assert.deepEqual(await readdir(join(store, '.blobs', 'blobs', 'sha256')), []);
});
