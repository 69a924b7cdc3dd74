import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { createZstdCompress, gzipSync } from 'node:zlib';
import { LayerCheck } from '../src/formats/layer-check.js';
import { CLI, FIXTURES, cartorio, run, tempDir } from './helpers/cli.js';
import { expectRefusedLoads, type RefusalCase } from './helpers/refusals.js';
import { writeTar } from './helpers/tars.js';

// The hostile-input corpus, beyond test/bad-input.test.ts: damaged headers mid-archive, links
// and devices, sizes that lie, duplicates, deeply nested and huge JSON, gzip bombs, names that
// are not UTF-8. Each refused input gives one error line naming it, exit 1, and the store as it
// was; what cartorio deliberately accepts (devices, duplicates and byte names in a layer, as
// Docker does) is shown to load intact. Malformed tars are built here byte by byte: no tool
// writes them.

const MiB = 1024 * 1024;
const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');
const LATIN1_NAME = Buffer.from('caf\xe9', 'latin1'); // "café" in ISO-8859-1: not UTF-8

// ---- raw tar blocks ---------------------------------------------------------------------------

interface RawHeader {
  name: string | Buffer;
  size?: number;
  /** ustar typeflag: 0 file, 1 hard link, 2 symlink, 3 char device, 4 block device, 6 FIFO, x pax. */
  type?: string;
  linkname?: string;
  /** Changes the block before its checksum is computed. */
  patch?: (block: Buffer) => void;
}

/** One ustar header block with a correct checksum. */
function tarHeader({ name, size = 0, type = '0', linkname = '', patch }: RawHeader): Buffer {
  const block = Buffer.alloc(512);
  (Buffer.isBuffer(name) ? name : Buffer.from(name)).copy(block, 0, 0, 100);
  block.write('0000644\0', 100);
  block.write('0000000\0', 108);
  block.write('0000000\0', 116);
  block.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  block.write('07305420400\0', 136); // 2000-01-01
  block.write(type, 156);
  block.write(linkname, 157);
  block.write('ustar\0' + '00', 257);
  patch?.(block);
  block.fill(' ', 148, 156);
  const sum = block.reduce((total, byte) => total + byte, 0);
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return block;
}

/** A regular file entry: header, content, padding to the block size. */
function tarFile(name: string | Buffer, content: string | Buffer): Buffer {
  const bytes = Buffer.from(content);
  return Buffer.concat([tarHeader({ name, size: bytes.length }), bytes, Buffer.alloc((512 - (bytes.length % 512)) % 512)]);
}

const TAR_END = Buffer.alloc(1024);

/** A copy of a tar fixture with one byte of the name of its `n`th header (0-based) changed, checksum left stale. */
async function damageHeader(fixture: string, n: number): Promise<Buffer> {
  const bytes = Buffer.from(await readFile(join(FIXTURES, fixture)));
  let offset = 0;
  for (let i = 0; i < n; i++) {
    const size = parseInt(bytes.subarray(offset + 124, offset + 136).toString().replace(/\0.*$/s, ''), 8) || 0;
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  bytes[offset + 2] = (bytes[offset + 2] ?? 0) ^ 0x20;
  return bytes;
}

// ---- OCI layouts and archives -----------------------------------------------------------------

interface Index {
  manifests: { digest: string; size: number; mediaType: string; annotations?: Record<string, string> }[];
}

/** A copy of the busybox layout holding only its first image (tag 1), for edits. */
async function busyboxLayout(dir: string): Promise<string> {
  const layout = join(dir, 'layout');
  await cp(join(FIXTURES, 'busybox-oci'), layout, { recursive: true });
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as Index;
  index.manifests = index.manifests.slice(0, 1);
  await writeFile(join(layout, 'index.json'), JSON.stringify(index));
  return layout;
}

async function editIndex(layout: string, edit: (index: Index) => void): Promise<void> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as Index;
  edit(index);
  await writeFile(join(layout, 'index.json'), JSON.stringify(index));
}

/** Replaces the first image's manifest by `bytes` (stored under their digest, named in index.json). */
async function replaceManifest(layout: string, bytes: Buffer | string): Promise<void> {
  const hex = sha256(bytes);
  await writeFile(join(layout, 'blobs', 'sha256', hex), bytes);
  await editIndex(layout, (index) => Object.assign(index.manifests[0] ?? {}, { digest: `sha256:${hex}`, size: Buffer.byteLength(bytes) }));
}

async function firstManifest(layout: string): Promise<{ layers: { size: number }[] }> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as Index;
  return JSON.parse(await readFile(join(layout, 'blobs', 'sha256', (index.manifests[0]?.digest ?? '').slice(7)), 'utf8')) as { layers: { size: number }[] };
}

/** Tars a directory with the real tar (entries `./…`), as an OCI archive. */
async function tarDirectory(dir: string, out: string): Promise<string> {
  const made = await run('tar', ['-C', dir, '-cf', out, '.']);
  assert.equal(made.code, 0, made.stderr);
  return out;
}

// ---- JSON -------------------------------------------------------------------------------------

const DEPTH = 100_000;
const nestedArrays = (depth = DEPTH): string => '['.repeat(depth) + ']'.repeat(depth);
const nestedObjects = (depth = DEPTH): string => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
/** Valid JSON of at least `bytes` bytes: `{"key": "xxx…"}` (the key makes a schema refuse it only after the size check). */
const hugeObject = (bytes: number, key = 'padding'): string => JSON.stringify({ [key]: 'x'.repeat(bytes) });

const dockerConfig = (diffIds: string[]): string => JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } });

/** A legacy docker save archive with one layer (default: an empty tar), whose parts can be swapped. */
async function dockerArchive(path: string, parts: { config?: string; manifest?: string; layer?: Buffer } = {}): Promise<string> {
  const layer = parts.layer ?? TAR_END;
  const config = parts.config ?? dockerConfig([`sha256:${sha256(layer)}`]);
  const manifest = parts.manifest ?? JSON.stringify([{ Config: 'c.json', RepoTags: ['hostile:1'], Layers: ['l/layer.tar'] }]);
  await writeFile(path, Buffer.concat([tarFile('c.json', config), tarFile('l/layer.tar', layer), tarFile('manifest.json', manifest), TAR_END]));
  return path;
}

async function concourseImage(dir: string, metadata: string): Promise<string> {
  const image = join(dir, 'image');
  await cp(join(FIXTURES, 'concourse-rootfs'), image, { recursive: true, verbatimSymlinks: true });
  await writeFile(join(image, 'metadata.json'), metadata);
  return image;
}

// ---- the table --------------------------------------------------------------------------------


const write = async (path: string, bytes: Buffer | string): Promise<string> => {
  await writeFile(path, bytes);
  return path;
};

const cases: RefusalCase[] = [
  // Wrong checksums in tar headers, past the first one (detection only reads the first: the loader must notice).
  { name: 'docker save tarball, damaged header mid-archive', make: async (d) => [await write(join(d, 'a.tar'), await damageHeader('docker-save-busybox.tar', 4))], problem: /is corrupt: the tar header after entry "[0-9a-f]{64}\/layer\.tar" is damaged/ },
  { name: 'OCI archive, damaged header mid-archive', make: async (d) => [await write(join(d, 'a.tar'), await damageHeader('busybox-oci.tar', 3)), '--name', 'x'], problem: /is corrupt: the tar header after entry "blobs\/sha256\/[0-9a-f]{64}" is damaged/ },
  { name: 'rootfs tarball, damaged header mid-archive', make: async (d) => [await write(join(d, 'r.tar'), await damageHeader('rootfs.tar', 3)), '--name', 'x'], problem: /is corrupt: the tar header after entry "[^"]+" is damaged/ },
  { name: 'gzip rootfs tarball, damaged header mid-archive', make: async (d) => [await write(join(d, 'r.tar.gz'), gzipSync(await damageHeader('rootfs.tar', 3))), '--name', 'x'], problem: /is corrupt: the tar header after entry "[^"]+" is damaged/ },
  // a base-256 size field (first byte 0xff: negative, two's complement) holding -1
  { name: 'tar header with a negative size', make: async (d) => [await write(join(d, 'r.tar'), Buffer.concat([tarFile('a', 'x'), tarHeader({ name: 'b', patch: (block) => block.fill(0xff, 124, 135).fill(0xfe, 135, 136) }), TAR_END])), '--name', 'x'], problem: /is corrupt: a tar header after entry "a" has an invalid size/ },

  // Hard links out of the archive / rootfs; device files and FIFOs in image archives.
  { name: 'image archive hard link climbing out', make: async (d) => { const p = join(d, 'a.tar'); await writeTar(p, [{ name: 'manifest.json', content: '[]' }, { name: 'x/layer.tar', type: 'link', linkname: '../../etc/passwd' }]); return [p]; }, problem: /link "x\/layer\.tar" points outside the archive \("\.\.\/\.\.\/etc\/passwd"\)/ },
  { name: 'image archive hard link to an absolute path', make: async (d) => { const p = join(d, 'a.tar'); await writeTar(p, [{ name: 'manifest.json', content: '[]' }, { name: 'x/layer.tar', type: 'link', linkname: '/etc/passwd' }]); return [p]; }, problem: /link "x\/layer\.tar" points outside the archive \("\/etc\/passwd"\)/ },
  { name: 'rootfs tarball hard link to an absolute path', make: async (d) => { const p = join(d, 'r.tar'); await writeTar(p, [{ name: 'etc/', type: 'directory' }, { name: 'etc/x', type: 'link', linkname: '/etc/shadow' }]); return [p, '--name', 'x']; }, problem: /hard link "etc\/x" -> "\/etc\/shadow": entry "\/etc\/shadow" has an absolute path/ },
  { name: 'gzip rootfs tarball hard link climbing out from a subdirectory', make: async (d) => { const p = join(d, 'r.tar.gz'); await writeTar(p, [{ name: 'a/b/c', type: 'link', linkname: 'a/../../x' }], true); return [p, '--name', 'x']; }, problem: /hard link "a\/b\/c" -> "a\/\.\.\/\.\.\/x": entry "a\/\.\.\/\.\.\/x" climbs out/ },
  { name: 'image archive holding a block device', make: async (d) => [await write(join(d, 'a.tar'), Buffer.concat([tarFile('manifest.json', '[]'), tarHeader({ name: 'sda', type: '4' }), TAR_END]))], problem: /entry "sda" is a block-device, which an image archive never holds/ },
  { name: 'image archive holding a FIFO', make: async (d) => [await write(join(d, 'a.tar'), Buffer.concat([tarFile('manifest.json', '[]'), tarHeader({ name: 'pipe', type: '6' }), TAR_END]))], problem: /entry "pipe" is a fifo, which an image archive never holds/ },

  // A gzip layer in a legacy archive (some tools write them) is inflated to check its diff_id.
  { name: 'docker save tarball with a gzip layer whose diff_id lies', make: async (d) => [await dockerArchive(join(d, 'a.tar'), { layer: gzipSync(tarFile('x', 'y')), config: dockerConfig([`sha256:${sha256(tarFile('x', 'other'))}`]) })], problem: /layer "l\/layer\.tar" inflates to a tar with digest sha256:[0-9a-f]{64} but the config says sha256:[0-9a-f]{64}; the archive is corrupt/ },
  { name: 'docker save tarball with a gzip layer that is not gzip inside', make: async (d) => [await dockerArchive(join(d, 'a.tar'), { layer: Buffer.concat([Buffer.from([0x1f, 0x8b]), Buffer.alloc(600, 7)]) })], problem: /layer "l\/layer\.tar": is not a valid tar or gzip archive/ },

  // Sizes that lie.
  { name: 'OCI layout descriptor size larger than the manifest', make: async (d) => { const l = await busyboxLayout(d); await editIndex(l, (i) => { (i.manifests[0] as { size: number }).size += 1; }); return [l, '--name', 'x']; }, problem: /content is 503 bytes but the input says 504; the file is truncated or was altered/ },
  {
    name: 'OCI layout layer descriptor size smaller than the blob',
    make: async (d) => {
      const l = await busyboxLayout(d);
      const manifest = await firstManifest(l);
      (manifest.layers[0] as { size: number }).size -= 100;
      await replaceManifest(l, JSON.stringify(manifest));
      return [l, '--name', 'x'];
    },
    problem: /content is (\d+) bytes but the input says \d+; the file is truncated or was altered/,
  },
  { name: 'OCI archive descriptor size that lies', make: async (d) => { const l = await busyboxLayout(d); await editIndex(l, (i) => { (i.manifests[0] as { size: number }).size = 5000; }); return [await tarDirectory(l, join(d, 'a.tar')), '--name', 'x']; }, problem: /sha256:[0-9a-f]{64} is 503 bytes but its descriptor says 5000/ },
  { name: 'rootfs tarball header size larger than its data', make: async (d) => [await write(join(d, 'r.tar'), Buffer.concat([tarFile('a', 'x'), tarHeader({ name: 'b', size: MiB }), Buffer.alloc(4096, 1)])), '--name', 'x'], problem: /is truncated or corrupt \(Unexpected end of data\)/ },
  { name: 'image archive header size larger than its data', make: async (d) => [await write(join(d, 'a.tar'), Buffer.concat([tarFile('manifest.json', '[]'), tarHeader({ name: 'l/layer.tar', size: 64 * MiB }), Buffer.alloc(8192)]))], problem: /is truncated or corrupt \(Unexpected end of data\)/ },
  { name: 'pax header claiming 8 MiB', make: async (d) => [await write(join(d, 'r.tar'), Buffer.concat([tarHeader({ name: 'PaxHeader', type: 'x', size: 8 * MiB }), Buffer.alloc(8 * MiB, 0x31), TAR_END])), '--name', 'x'], problem: /has a tar extended header \(pax or GNU long name\) over 4 MiB/ },

  // Duplicates: an image archive has one meaning or none.
  {
    name: 'docker save tarball with manifest.json twice',
    make: async (d) => {
      const p = await dockerArchive(join(d, 'a.tar'));
      const bytes = await readFile(p);
      const second = tarFile('./manifest.json', JSON.stringify([{ Config: 'c.json', RepoTags: ['smuggled:1'], Layers: ['l/layer.tar'] }]));
      return [await write(p, Buffer.concat([bytes.subarray(0, bytes.length - 1024), second, TAR_END]))];
    },
    problem: /entry "manifest\.json" appears twice in the archive/,
  },
  {
    name: 'OCI archive with a blob twice',
    make: async (d) => {
      const l = await busyboxLayout(d);
      const p = await tarDirectory(l, join(d, 'a.tar'));
      const hex = (await readdir(join(l, 'blobs', 'sha256')))[0] ?? '';
      const bytes = await readFile(p);
      return [await write(p, Buffer.concat([bytes.subarray(0, bytes.length - 1024), tarFile(`blobs/sha256/${hex}`, await readFile(join(l, 'blobs', 'sha256', hex))), TAR_END])), '--name', 'x'];
    },
    problem: /entry "blobs\/sha256\/[0-9a-f]{64}" appears twice in the archive/,
  },

  // 100,000 levels of nesting: parsed without recursion and refused by the schema, no stack overflow.
  { name: 'OCI layout index.json nested 100k deep', make: async (d) => { const l = await busyboxLayout(d); await writeFile(join(l, 'index.json'), nestedArrays()); return [l, '--name', 'x']; }, problem: /index\.json: invalid index\.json: \(top level\) must be object/ },
  { name: 'OCI archive index.json nested 100k deep', make: async (d) => { const l = await busyboxLayout(d); await writeFile(join(l, 'index.json'), nestedObjects()); return [await tarDirectory(l, join(d, 'a.tar')), '--name', 'x']; }, problem: /index\.json: invalid index\.json: / },
  { name: 'OCI layout manifest nested 100k deep', make: async (d) => { const l = await busyboxLayout(d); await replaceManifest(l, `{"schemaVersion":2,"config":${nestedObjects()}}`); return [l, '--name', 'x']; }, problem: /manifest sha256:[0-9a-f]{64}: invalid image manifest: / },
  { name: 'docker save manifest.json nested 100k deep', make: async (d) => [await dockerArchive(join(d, 'a.tar'), { manifest: nestedArrays() })], problem: /manifest\.json: invalid manifest\.json: \/0 must be object/ },
  { name: 'docker save config nested 100k deep', make: async (d) => [await dockerArchive(join(d, 'a.tar'), { config: nestedObjects() })], problem: /c\.json: invalid image config: / },
  { name: 'Concourse metadata.json nested 100k deep', make: async (d) => [await concourseImage(d, `{"env":${nestedArrays()}}`), '--name', 'x'], problem: /metadata\.json: invalid metadata\.json: \/env\/0 must be string/ },

  // JSON over the caps: refused by size before anything parses it.
  { name: 'OCI layout index.json over 16 MiB', make: async (d) => { const l = await busyboxLayout(d); await writeFile(join(l, 'index.json'), hugeObject(17 * MiB)); return [l, '--name', 'x']; }, problem: /index\.json is \d+ bytes, over the 16777216-byte limit/ },
  { name: 'OCI archive index.json over 16 MiB', make: async (d) => { const l = await busyboxLayout(d); await writeFile(join(l, 'index.json'), hugeObject(17 * MiB)); return [await tarDirectory(l, join(d, 'a.tar')), '--name', 'x']; }, problem: /index\.json: sha256:[0-9a-f]{64} is \d+ bytes, over the 16777216-byte limit for JSON documents/ },
  { name: 'OCI layout manifest over 4 MiB', make: async (d) => { const l = await busyboxLayout(d); await replaceManifest(l, hugeObject(5 * MiB, 'annotations')); return [l, '--name', 'x']; }, problem: /sha256:[0-9a-f]{64} is \d+ bytes, over the 4194304-byte limit for JSON documents/ },
  { name: 'docker save manifest.json over 4 MiB', make: async (d) => [await dockerArchive(join(d, 'a.tar'), { manifest: JSON.stringify([{ Config: 'c.json', RepoTags: ['x:1'], Layers: ['l/layer.tar'], Parent: 'x'.repeat(5 * MiB) }]) })], problem: /manifest\.json: sha256:[0-9a-f]{64} is \d+ bytes, over the 4194304-byte limit/ },
  { name: 'docker save config over 4 MiB', make: async (d) => [await dockerArchive(join(d, 'a.tar'), { config: hugeObject(5 * MiB, 'architecture') })], problem: /c\.json: sha256:[0-9a-f]{64} is \d+ bytes, over the 4194304-byte limit/ },
  { name: 'resource_metadata.json over 1 MiB', make: async (d) => { const b = join(d, 'bundle'); await cp(join(FIXTURES, 'resource-bundle'), b, { recursive: true }); await writeFile(join(b, 'resource_metadata.json'), hugeObject(2 * MiB, 'type')); return [b]; }, problem: /resource_metadata\.json: \d+ bytes, over the 1048576-byte limit/ },

  // Names that are not UTF-8: refused where no tool writes them, or where they cannot be read back.
  { name: 'image archive entry named in Latin-1', make: async (d) => [await write(join(d, 'a.tar'), Buffer.concat([tarFile('manifest.json', '[]'), tarFile(LATIN1_NAME, 'x'), TAR_END]))], problem: /entry "caf\uFFFD" has a name that is not valid UTF-8/ },
  {
    name: 'rootfs directory holding a Latin-1 file name',
    make: async (d) => {
      const root = join(d, 'rootfs');
      await mkdir(root);
      // fs takes Buffer paths: the only way to write a name that is not UTF-8
      await writeFile(Buffer.concat([Buffer.from(`${root}/`), LATIN1_NAME]), 'x');
      return [root, '--name', 'x'];
    },
    problem: /holds a file whose name is not valid UTF-8 \("caf\uFFFD"\), which cannot be packed from a directory/,
  },

  // Inputs with nothing in them.
  { name: 'OCI layout with an empty index.json', make: async (d) => { const l = await busyboxLayout(d); await editIndex(l, (i) => { i.manifests = []; }); return [l, '--name', 'x']; }, problem: /holds no images \(oci-layout input/ },
  { name: 'docker save tarball with an empty manifest.json', make: async (d) => [await dockerArchive(join(d, 'a.tar'), { manifest: '[]' })], problem: /holds no images \(docker-archive input/ },
];

test('hostile inputs fail with one clear error and leave the store unchanged', (t) => expectRefusedLoads(t, cases));

test('layers may hold devices, FIFOs, repeated entries and byte names, as Docker layers do; they load intact', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  const layer = Buffer.concat([
    tarHeader({ name: 'dev/', type: '5' }),
    tarHeader({ name: 'dev/null', type: '3' }),
    tarHeader({ name: 'dev/sda', type: '4' }),
    tarHeader({ name: 'run/fifo', type: '6' }),
    tarFile('etc/motd', 'first'),
    tarFile('./etc/motd', 'second, wins on extraction'),
    tarFile(Buffer.concat([Buffer.from('srv/'), LATIN1_NAME]), 'latin-1 name'),
    TAR_END,
  ]);
  for (const [file, bytes] of [['layer.tar', layer], ['layer.tar.gz', gzipSync(layer)]] as const) {
    const input = join(dir, file);
    await writeFile(input, bytes);
    const result = await cartorio(['load', '--store', store, input, '--name', 'odd/layer', '--tag', file.replace(/\./g, '-')]);
    assert.equal(result.code, 0, result.stderr);
    // the layer is stored byte for byte: names stay bytes, nothing is re-encoded
    const stored = await readFile(join(store, 'odd', 'layer', 'blobs', 'sha256', sha256(bytes)));
    assert.ok(stored.equals(bytes), `${file} stored as is`);
  }
  const verify = await cartorio(['verify', '--store', store]);
  assert.equal(verify.code, 0, verify.stderr);
});

test('a legacy docker save tarball with a gzip layer and the right diff_id loads', async (t) => {
  const dir = await tempDir(t);
  const tar = Buffer.concat([tarFile('etc/motd', 'hello'), TAR_END]);
  const input = await dockerArchive(join(dir, 'gz.tar'), { layer: gzipSync(tar), config: dockerConfig([`sha256:${sha256(tar)}`]) });
  const result = await cartorio(['load', '--store', join(dir, 'store'), input]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^hostile:1@sha256:[0-9a-f]{64}$/m);
});

test('a gzip bomb layer (2 MiB inflating to 2 GiB) loads with flat memory: nothing inflated is kept', async (t) => {
  const dir = await tempDir(t);
  const bomb = join(dir, 'bomb.tar.gz');
  const size = 2 * 1024 * MiB;
  // gzip members concatenate into one stream: 32 copies of 64 MiB of zeros, deflated once
  const zeros = gzipSync(Buffer.alloc(64 * MiB), { level: 9 });
  const members = [gzipSync(tarHeader({ name: 'zeros', size })), ...Array.from({ length: size / (64 * MiB) }, () => zeros), gzipSync(TAR_END)];
  await writeFile(bomb, Buffer.concat(members));
  const started = Date.now();
  const { code, peakMb, stderr } = await peakRss(['load', '--store', join(dir, 'store'), bomb, '--name', 'bomb']);
  const seconds = (Date.now() - started) / 1000;
  t.diagnostic(`${(Buffer.concat(members).length / MiB).toFixed(1)} MiB gzip → 2 GiB tar: loaded in ${seconds.toFixed(1)} s, peak RSS ${peakMb.toFixed(0)} MB`);
  assert.equal(code, 0, stderr);
  assert.ok(peakMb < 200, `peak RSS ${peakMb} MB`);
  assert.ok(seconds < 60, `took ${seconds} s`);
});

test('a gzip layer inflating past its limit is refused while streaming, with the reason', async () => {
  const limit = 64 * MiB;
  const zeros = gzipSync(Buffer.alloc(16 * MiB));
  const bomb = Buffer.concat([gzipSync(tarHeader({ name: 'zeros', size: 256 * MiB })), ...Array.from({ length: 16 }, () => zeros)]);
  const check = new LayerCheck('gzip', limit);
  let passed = 0;
  const sink = new Writable({ write: (chunk: Buffer, _encoding, done) => { passed += chunk.length; done(); } });
  await assert.rejects(pipeline(Readable.from([bomb]), check, sink), { message: /^inflates to more than 64 MiB \(over 100 times its compressed size\): refused as a likely decompression bomb$/ });
  assert.ok(passed <= bomb.length, 'compressed bytes pass through untouched');
  // the same bytes under the default limit (8 GiB) are a valid, if sparse, layer
  const relaxed = new LayerCheck('gzip');
  await pipeline(Readable.from([Buffer.concat([bomb, gzipSync(TAR_END)])]), relaxed, new Writable({ write: (_chunk, _encoding, done) => done() }));
  assert.match(relaxed.diffId() ?? '', /^sha256:[0-9a-f]{64}$/);
});

test('a zstd layer inflating past its limit is refused the same way, and a valid one gets its diff_id', async () => {
  const limit = 64 * MiB;
  // One frame (Node.js 22's zstd decodes only a stream's first): a tar header, then 256 MiB of zeros.
  const zeros = Buffer.alloc(16 * MiB);
  const parts: Buffer[] = [];
  await pipeline(Readable.from([tarHeader({ name: 'zeros', size: 256 * MiB }), ...Array.from({ length: 16 }, () => zeros)]), createZstdCompress(), new Writable({ write: (chunk: Buffer, _encoding, done) => { parts.push(chunk); done(); } }));
  const bomb = Buffer.concat(parts);
  assert.ok(bomb.length < 64 * 1024, `${bomb.length} bytes of zstd for 256 MiB`);
  await assert.rejects(pipeline(Readable.from([bomb]), new LayerCheck('zstd', limit), new Writable({ write: (_chunk, _encoding, done) => done() })), { message: /^inflates to more than 64 MiB \(over 100 times its compressed size\): refused as a likely decompression bomb$/ });
  const relaxed = new LayerCheck('zstd');
  const whole: Buffer[] = [];
  await pipeline(Readable.from([tarHeader({ name: 'zeros', size: 256 * MiB }), ...Array.from({ length: 16 }, () => zeros), TAR_END]), createZstdCompress(), new Writable({ write: (chunk: Buffer, _encoding, done) => { whole.push(chunk); done(); } }));
  await pipeline(Readable.from([Buffer.concat(whole)]), relaxed, new Writable({ write: (_chunk, _encoding, done) => done() }));
  assert.match(relaxed.diffId() ?? '', /^sha256:[0-9a-f]{64}$/);
});

/** Runs the CLI and samples VmHWM (peak resident set) from /proc until it exits. */
async function peakRss(args: string[]): Promise<{ code: number | null; peakMb: number; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let peakKb = 0;
  const timer = setInterval(() => {
    void readFile(`/proc/${child.pid}/status`, 'utf8').then((status) => {
      peakKb = Math.max(peakKb, Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0));
    }, () => undefined);
  }, 20);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearInterval(timer);
  return { code, peakMb: peakKb / 1024, stderr };
}
