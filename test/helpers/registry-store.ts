import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Digest } from '../../src/image/digest.js';
import { MediaType } from '../../src/image/media-types.js';
import type { Descriptor } from '../../src/image/oci.schema.js';
import { updateIndex } from '../../src/store/index-file.js';
import { Ingest } from '../../src/store/ingest.js';
import { FIXTURES, run } from './cli.js';

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
