import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Digest } from '../../src/image/digest.js';
import { MediaType } from '../../src/image/media-types.js';
import type { Descriptor } from '../../src/image/oci.schema.js';
import { updateIndex } from '../../src/store/index-file.js';
import { Ingest } from '../../src/store/ingest.js';
import { FIXTURES, cartorio, run } from './cli.js';

/** Digests of the fixture images (test/fixtures/make-fixtures.sh; fixed on every machine). */
export const BUSYBOX_1 = 'sha256:aa48215cf55ff8cc1922a87e696d659944c1aaf0502097800a4cc8cfa23d2bcb';
export const BUSYBOX_ARM64 = 'sha256:e380d288e4f0e59441489c6a519185f5a715d44e5492098e86e819319ddda28b';
export const BUSYBOX_MULTI = 'sha256:042824baea619777f6c26bffe935a21baf87abcd580436f3dc25f6cbefba4c04';
export const SBOM_TYPE = 'application/vnd.example.sbom.v1+json';
export const SIGNATURE_TYPE = 'application/vnd.example.signature.v1';

/** What `makeRegistryStore` built, for assertions. */
export interface RegistryStore {
  root: string;
  /** Referrers of busybox:1: an SBOM and a signature artifact, stored untagged. */
  sbom: Descriptor;
  signature: Descriptor;
  /** A blob only `busybox` holds (the SBOM's layer). */
  busyboxOnlyBlob: string;
  /** A file under busybox/blobs/sha256 that index.json does not reach. */
  strayBlob: string;
}

/**
 * A store as `cartorio load` would leave it, built by skopeo from the umoci fixtures (a store
 * repository is just an OCI layout): `busybox` with tags 1, 2, 3, arm64, multi (an index) and
 * v1.0; `library/busybox:latest`; `other/tool:1`. Referrer artifacts have no tool here that
 * writes them (skopeo 1.9 has no --subject), so they are assembled from bytes and committed
 * through the store's own ingest, which checks them as any load does.
 */
export async function makeRegistryStore(root: string): Promise<RegistryStore> {
  const layout = join(FIXTURES, 'busybox-oci');
  await mkdir(join(root, 'library'), { recursive: true });
  await mkdir(join(root, 'other'), { recursive: true });
  await skopeo(['copy', '-q', `oci:${layout}:1`, `oci:${join(root, 'busybox')}:1`]);
  await skopeo(['copy', '-q', '--multi-arch', 'all', `oci:${layout}:multi`, `oci:${join(root, 'busybox')}:multi`]);
  await skopeo(['copy', '-q', `oci:${layout}:arm64`, `oci:${join(root, 'busybox')}:arm64`]);
  await skopeo(['copy', '-q', `oci:${layout}:1`, `oci:${join(root, 'library', 'busybox')}:latest`]);
  await skopeo(['copy', '-q', `oci:${layout}:1`, `oci:${join(root, 'other', 'tool')}:1`]);
  const busybox1: Descriptor = { mediaType: MediaType.ociManifest, digest: BUSYBOX_1, size: 503 };
  await updateIndex(join(root, 'busybox'), join(root, '.tmp'), [{ tags: ['2', '3', 'v1.0'], descriptor: busybox1 }]);

  const ingest = await Ingest.begin(root);
  const empty = await ingest.writeBytes(Buffer.from('{}'), { where: 'empty config' });
  const artifact = async (artifactType: string, content: string): Promise<{ descriptor: Descriptor; layer: string }> => {
    const layer = await ingest.writeBytes(Buffer.from(content), { where: 'artifact layer' });
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType,
      config: { mediaType: MediaType.ociEmpty, digest: empty.digest, size: empty.size },
      layers: [{ mediaType: 'application/octet-stream', digest: layer.digest, size: layer.size }],
      subject: busybox1,
      annotations: { 'org.example.kind': artifactType },
    }));
    const written = await ingest.writeBytes(manifest, { where: 'artifact manifest' });
    return { descriptor: { mediaType: MediaType.ociManifest, digest: written.digest, size: written.size }, layer: layer.digest };
  };
  const sbom = await artifact(SBOM_TYPE, '{"sbom":"busybox"}');
  const signature = await artifact(SIGNATURE_TYPE, 'signed');
  await ingest.commit([
    { repository: 'busybox', tags: [], descriptor: sbom.descriptor },
    { repository: 'busybox', tags: [], descriptor: signature.descriptor },
  ], 'test referrers');

  const strayContent = 'not referenced by index.json';
  const strayBlob = sha256Digest(strayContent);
  await writeFile(join(root, 'busybox', 'blobs', 'sha256', strayBlob.slice(7)), strayContent);
  return { root, sbom: sbom.descriptor, signature: signature.descriptor, busyboxOnlyBlob: sbom.layer, strayBlob };
}

/** The bytes of a blob as stored in a repository. */
export function storedBlob(root: string, repository: string, digest: string): Promise<Buffer> {
  return readFile(join(root, ...repository.split('/'), 'blobs', 'sha256', digest.slice(7)));
}

async function skopeo(args: string[]): Promise<void> {
  const result = await run('skopeo', args);
  if (result.code !== 0) throw new Error(`skopeo ${args.join(' ')}: ${result.stderr}`);
}

/** One fixture format loaded by `cartorio load`, and what running its image prints. */
export interface LoadedFormat {
  label: string;
  repository: string;
  tag: string;
  /** The stored digest of repository:tag, from `cartorio list --json`. */
  digest: string;
  /** Arguments of `docker run IMAGE …`; empty to run the image's own Cmd. */
  command: string[];
  prints: string;
}

const MOTD = 'hello from cartorio fixtures';
const CAT_MOTD = ['cat', '/etc/motd'];

/** [label, input under .test-fixtures, extra load flags, repository, tag, run command, output] */
const FORMATS: [string, string, string[], string, string, string[], string][] = [
  ['docker save (legacy)', 'docker-save-busybox.tar', [], 'busybox', '1', CAT_MOTD, MOTD],
  ['docker save of several images', 'docker-save-multi.tar', [], 'other/tool', '2', [], 'tool-layer'],
  ['docker save (25+ layout)', 'docker25-save.tar', [], 'docker.io/library/busybox', '25', CAT_MOTD, MOTD],
  ['OCI layout', 'busybox-oci', ['--name', 'ocilayout/busybox'], 'ocilayout/busybox', '1', CAT_MOTD, MOTD],
  ['OCI layout, multi-platform index', 'busybox-oci', ['--name', 'ocilayout/busybox'], 'ocilayout/busybox', 'multi', CAT_MOTD, MOTD],
  ['OCI archive', 'busybox-oci.tar', ['--name', 'ociarchive/busybox'], 'ociarchive/busybox', '1', CAT_MOTD, MOTD],
  ['docker-archive (skopeo)', 'busybox-docker.tar', ['--name', 'dockerarchive/busybox'], 'dockerarchive/busybox', '1', CAT_MOTD, MOTD],
  ['rootfs tarball', 'rootfs.tar', ['--name', 'rootfs/tar', '--tag', '1'], 'rootfs/tar', '1', CAT_MOTD, MOTD],
  ['rootfs tar.gz', 'rootfs.tar.gz', ['--name', 'rootfs/targz', '--tag', '1'], 'rootfs/targz', '1', CAT_MOTD, MOTD],
  ['rootfs directory', 'rootfs', ['--name', 'rootfs/dir', '--tag', '1'], 'rootfs/dir', '1', CAT_MOTD, MOTD],
  ['Concourse rootfs image', 'concourse-rootfs', ['--name', 'concourse/img', '--tag', '1'], 'concourse/img', '1', [], MOTD],
  ['Concourse resource-type bundle', 'resource-bundle', [], 'fixture-resource', '1.2.3', CAT_MOTD, MOTD],
  ['registry-image get output', 'registry-image-get', [], 'fixtures/getimage', 'latest', CAT_MOTD, MOTD],
];

/**
 * Loads every fixture format into `store` with the real `cartorio load` (one load per input, the
 * docker-save tarballs first, as an operator would), and returns what each became.
 */
export async function loadEveryFormat(store: string): Promise<LoadedFormat[]> {
  const loaded = new Set<string>();
  for (const [, input, flags] of FORMATS) {
    const key = `${input} ${flags.join(' ')}`;
    if (loaded.has(key)) continue;
    loaded.add(key);
    const result = await cartorio(['load', '--quiet', '--store', store, join(FIXTURES, input), ...flags]);
    if (result.code !== 0) throw new Error(`cartorio load ${input}: ${result.stderr}`);
  }
  const listed = await cartorio(['list', '--json', '--store', store]);
  if (listed.code !== 0) throw new Error(`cartorio list: ${listed.stderr}`);
  const images = JSON.parse(listed.stdout) as { repository: string; tag: string; digest: string }[];
  return FORMATS.map(([label, , , repository, tag, command, prints]) => {
    const image = images.find((i) => i.repository === repository && i.tag === tag);
    if (!image) throw new Error(`${label}: ${repository}:${tag} is not in the store`);
    return { label, repository, tag, digest: image.digest, command, prints };
  });
}
