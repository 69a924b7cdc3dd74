import assert from 'node:assert/strict';
import { cp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, cartorio, tempDir } from './helpers/cli.js';
import { expectRefusedLoads, type RefusalCase } from './helpers/refusals.js';
import { snapshotTree } from './helpers/snapshot.js';
import { writeTar } from './helpers/tars.js';

// Every bad input gives one clear error naming the input and the problem, exit code 1, and
// leaves the store byte-for-byte as it was (a good image was loaded into it first).


const sha256 = (text: string): string => `sha256:${text}`;
const DIGEST_A = 'a'.repeat(64);

async function copyFixture(dir: string, name: string): Promise<string> {
  const target = join(dir, name);
  await cp(join(FIXTURES, name), target, { recursive: true, verbatimSymlinks: true });
  return target;
}

async function firstLayerOf(layout: string): Promise<{ path: string; digest: string }> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifestDigest = index.manifests[0]?.digest ?? '';
  const manifest = JSON.parse(await readFile(join(layout, 'blobs', 'sha256', manifestDigest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
  const digest = manifest.layers[0]?.digest ?? '';
  return { path: join(layout, 'blobs', 'sha256', digest.slice(7)), digest };
}

async function truncated(dir: string, fixture: string, keep: number): Promise<string> {
  const bytes = await readFile(join(FIXTURES, fixture));
  const path = join(dir, `truncated-${fixture}`);
  await writeFile(path, bytes.subarray(0, Math.floor(bytes.length * keep)));
  return path;
}

const dockerConfig = (diffIds: string[]): string => JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } });

const cases: RefusalCase[] = [
  { name: 'truncated docker save tarball', make: async (dir) => [await truncated(dir, 'docker-save-busybox.tar', 0.6)], problem: /truncated or corrupt|not in the archive|neither manifest/ },
  { name: 'truncated OCI archive', make: async (dir) => [await truncated(dir, 'busybox-oci.tar', 0.5), '--format', 'oci-archive', '--name', 'x'], problem: /truncated or corrupt|has neither/ },
  { name: 'truncated gzip rootfs tarball', make: async (dir) => [await truncated(dir, 'rootfs.tar.gz', 0.7), '--name', 'x'], problem: /truncated or corrupt/ },
  { name: 'truncated plain rootfs tarball', make: async (dir) => [await truncated(dir, 'rootfs.tar', 0.7), '--name', 'x'], problem: /truncated or corrupt/ },
  { name: 'not a tar at all', make: async (dir) => { const p = join(dir, 'random.bin'); await writeFile(p, Buffer.alloc(4096, 7)); return [p, '--name', 'x']; }, problem: /neither a directory nor a tar archive/ },
  { name: 'zstd input cut in its header', make: async (dir) => { const p = join(dir, 'x.tar.zst'); await writeFile(p, Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0])); return [p, '--name', 'x']; }, problem: /is truncated or corrupt/ },
  // Node.js 22's zstd decompressor ends quietly on a stream that lost its last bytes (the checksum).
  { name: 'zstd input 4 bytes short', make: async (dir) => { const p = join(dir, 'x.tar.zst'); const whole = await readFile(join(FIXTURES, 'rootfs.tar.zst')); await writeFile(p, whole.subarray(0, whole.length - 4)); return [p, '--name', 'x']; }, problem: /: is truncated or corrupt \(the zstd stream ends inside a frame: truncated\)\n/ },
  { name: 'tar with no manifest', make: async () => [join(FIXTURES, 'rootfs.tar'), '--format', 'docker-archive'], problem: /has neither manifest\.json/ },
  {
    name: 'manifest naming a missing layer',
    make: async (dir) => {
      const p = join(dir, 'missing-layer.tar');
      await writeTar(p, [
        { name: `${DIGEST_A}.json`, content: dockerConfig([sha256(DIGEST_A)]) },
        { name: 'manifest.json', content: JSON.stringify([{ Config: `${DIGEST_A}.json`, RepoTags: ['x:1'], Layers: ['gone/layer.tar'] }]) },
      ]);
      return [p];
    },
    problem: /config ".*\.json" has digest sha256:[a-f0-9]+, not the one its name claims|names layer "gone\/layer\.tar", which is not in the archive/,
  },
  {
    name: 'layer whose bytes do not match the config diff_id',
    make: async (dir) => {
      const p = join(dir, 'bad-diffid.tar');
      const config = dockerConfig([sha256(DIGEST_A)]);
      await writeTar(p, [
        { name: 'config.json', content: config },
        { name: 'l/layer.tar', content: Buffer.alloc(1024) },
        { name: 'manifest.json', content: JSON.stringify([{ Config: 'config.json', RepoTags: ['x:1'], Layers: ['l/layer.tar'] }]) },
      ]);
      return [p];
    },
    problem: /layer "l\/layer\.tar" has digest sha256:[a-f0-9]+ but the config says sha256:a{64}; the archive is corrupt/,
  },
  {
    name: 'OCI layout blob whose content does not match its digest',
    make: async (dir) => {
      const layout = await copyFixture(dir, 'busybox-oci');
      const layer = await firstLayerOf(layout);
      const bytes = await readFile(layer.path);
      bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
      await writeFile(layer.path, bytes);
      return [layout, '--name', 'x'];
    },
    problem: /content has digest sha256:[a-f0-9]+ but the input names it sha256:[a-f0-9]+; the file is corrupt or was altered/,
  },
  {
    name: 'OCI archive blob named by another digest',
    make: async (dir) => {
      const p = join(dir, 'renamed-blob.tar');
      await writeTar(p, [{ name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' }, { name: `blobs/sha256/${DIGEST_A}`, content: 'not what the name says' }, { name: 'index.json', content: '{"schemaVersion":2,"manifests":[]}' }]);
      return [p, '--name', 'x'];
    },
    problem: new RegExp(`blobs/sha256/${DIGEST_A}: content has digest sha256:[a-f0-9]+ but the input names it sha256:${DIGEST_A}`),
  },
  {
    name: 'descriptor digest with a path in it',
    make: async (dir) => {
      const layout = await copyFixture(dir, 'busybox-oci');
      const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
      (index.manifests[0] as { digest: string }).digest = 'sha256:../../../../etc/passwd';
      await writeFile(join(layout, 'index.json'), JSON.stringify(index));
      return [layout, '--name', 'x'];
    },
    problem: /invalid index\.json: \/manifests\/0\/digest must match pattern/,
  },
  {
    name: 'manifest layer digest with a slash',
    make: async (dir) => {
      const p = join(dir, 'slash-digest.tar');
      const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: 'sha256:ab/cd', size: 2 }, layers: [] });
      const { createHash } = await import('node:crypto');
      const hex = createHash('sha256').update(manifest).digest('hex');
      await writeTar(p, [
        { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
        { name: `blobs/sha256/${hex}`, content: manifest },
        { name: 'index.json', content: JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${hex}`, size: manifest.length }] }) },
      ]);
      return [p, '--name', 'x'];
    },
    problem: /invalid image manifest: \/config\/digest must match pattern/,
  },
  { name: 'blob with an unsupported algorithm', make: async (dir) => { const p = join(dir, 'md5.tar'); await writeTar(p, [{ name: 'oci-layout', content: '{}' }, { name: 'blobs/md5/abc', content: 'x' }]); return [p, '--format', 'oci-archive', '--name', 'x']; }, problem: /uses digest algorithm "md5"; only sha256 is supported/ },
  { name: 'archive entry with ../', make: async (dir) => { const p = join(dir, 'dotdot.tar'); await writeTar(p, [{ name: '../evil', content: 'x' }, { name: 'manifest.json', content: '[]' }]); return [p, '--format', 'docker-archive']; }, problem: /entry "\.\.\/evil" climbs out of the archive/ },
  { name: 'archive entry with an absolute path', make: async (dir) => { const p = join(dir, 'abs.tar'); await writeTar(p, [{ name: '/etc/evil', content: 'x' }, { name: 'manifest.json', content: '[]' }]); return [p, '--format', 'docker-archive']; }, problem: /entry "\/etc\/evil" has an absolute path/ },
  { name: 'archive symlink out of the archive', make: async (dir) => { const p = join(dir, 'link.tar'); await writeTar(p, [{ name: 'manifest.json', content: '[]' }, { name: 'x/layer.tar', type: 'symlink', linkname: '/etc/passwd' }]); return [p]; }, problem: /link "x\/layer\.tar" points outside the archive/ },
  { name: 'archive holding a device file', make: async (dir) => { const p = join(dir, 'dev.tar'); await writeTar(p, [{ name: 'manifest.json', content: '[]' }, { name: 'null', type: 'character-device' }]); return [p]; }, problem: /is a character-device, which an image archive never holds/ },
  { name: 'rootfs tar with ../ entry', make: async (dir) => { const p = join(dir, 'rootfs-dotdot.tar'); await writeTar(p, [{ name: 'bin/', type: 'directory' }, { name: 'bin/../../escape', content: 'x' }]); return [p, '--name', 'x']; }, problem: /climbs out of the archive with "\.\."/ },
  { name: 'rootfs tar with an escaping symlink', make: async (dir) => { const p = join(dir, 'rootfs-link.tar.gz'); await writeTar(p, [{ name: 'a/b', type: 'symlink', linkname: '../../etc/shadow' }], true); return [p, '--name', 'x']; }, problem: /symlink "a\/b" -> "\.\.\/\.\.\/etc\/shadow" points outside the rootfs/ },
  { name: 'rootfs tar with an escaping hard link', make: async (dir) => { const p = join(dir, 'rootfs-hardlink.tar'); await writeTar(p, [{ name: 'a', type: 'link', linkname: '../etc/shadow' }]); return [p, '--name', 'x']; }, problem: /hard link "a" -> "\.\.\/etc\/shadow"/ },
  {
    name: 'rootfs directory with an escaping symlink',
    make: async (dir) => {
      const root = join(dir, 'rootfs');
      await mkdir(join(root, 'etc'), { recursive: true });
      await symlink('../../../../etc/shadow', join(root, 'etc', 'shadow'));
      return [root, '--name', 'x'];
    },
    problem: /symlink "etc\/shadow" -> "\.\.\/\.\.\/\.\.\/\.\.\/etc\/shadow" points outside the rootfs/,
  },
  {
    name: 'Concourse rootfs that is a symlink',
    make: async (dir) => {
      const image = join(dir, 'image');
      await mkdir(image);
      await symlink('/', join(image, 'rootfs'));
      await writeFile(join(image, 'metadata.json'), '{}');
      return [image, '--format', 'concourse-rootfs', '--name', 'x'];
    },
    problem: /rootfs is not a directory/,
  },
  {
    name: 'metadata.json of the wrong shape',
    make: async (dir) => {
      const image = await copyFixture(dir, 'concourse-rootfs');
      await writeFile(join(image, 'metadata.json'), '{"env":"PATH=/bin"}');
      return [image, '--name', 'x'];
    },
    problem: /metadata\.json: invalid metadata\.json: \/env must be array,null/,
  },
  {
    name: 'metadata.json that is not JSON',
    make: async (dir) => {
      const image = await copyFixture(dir, 'concourse-rootfs');
      await writeFile(join(image, 'metadata.json'), '{"env": [');
      return [image, '--name', 'x'];
    },
    problem: /metadata\.json: not valid JSON/,
  },
  {
    name: 'oversized metadata.json',
    make: async (dir) => {
      const image = await copyFixture(dir, 'concourse-rootfs');
      await writeFile(join(image, 'metadata.json'), JSON.stringify({ env: [`X=${'y'.repeat(2 * 1024 * 1024)}`] }));
      return [image, '--name', 'x'];
    },
    problem: /over the 1048576-byte limit/,
  },
  { name: 'an invalid --name', make: async () => [join(FIXTURES, 'rootfs.tar'), '--name', 'Not/A_Valid:Name'], problem: /--name "Not\/A_Valid:Name" is not a repository name/ },
  { name: 'a reserved repository path component', make: async () => [join(FIXTURES, 'rootfs.tar'), '--name', 'app/blobs'], problem: /uses the reserved path component "blobs"/ },
  { name: 'an invalid --tag', make: async () => [join(FIXTURES, 'rootfs.tar'), '--name', 'x', '--tag', '-bad'], problem: /"-bad" is not a valid tag/ },
  {
    name: 'a RepoTag that is not an image reference',
    make: async (dir) => {
      const p = join(dir, 'badtag.tar');
      const layer = Buffer.alloc(1024);
      const { createHash } = await import('node:crypto');
      const diffId = sha256(createHash('sha256').update(layer).digest('hex'));
      await writeTar(p, [{ name: 'c.json', content: dockerConfig([diffId]) }, { name: 'l/layer.tar', content: layer }, { name: 'manifest.json', content: JSON.stringify([{ Config: 'c.json', RepoTags: ['UPPER/Case:1'], Layers: ['l/layer.tar'] }]) }]);
      return [p];
    },
    problem: /RepoTag "UPPER\/Case:1", which is not a valid image reference/,
  },
  { name: 'an input that does not exist', make: async (dir) => [join(dir, 'nope.tar')], problem: /does not exist or cannot be read/ },
  { name: 'an OCI layout with no name and no --name', make: async () => [join(FIXTURES, 'busybox-oci')], problem: /holds an image with no name \(oci-layout input\)/ },
];

test('bad inputs fail with a clear error and leave the store unchanged', (t) => expectRefusedLoads(t, cases));

test('a load into a store that did not exist leaves nothing behind when it fails', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'new-store');
  const result = await cartorio(['load', '--store', store, join(FIXTURES, 'rootfs.tar'), '--format', 'docker-archive']);
  assert.equal(result.code, 1);
  assert.deepEqual(await snapshotTree(dir), []);
});
