import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, open, readFile, rename, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { readTarHeaders, type TarEntry } from '../src/formats/tar-headers.js';
import { FIXTURES, cartorio, run, tempDir } from './helpers/cli.js';
import { must, startServe } from './helpers/clients.js';
import { ACCEPT, loadedDigests, serveArgs } from './helpers/serve-archive.js';

// `cartorio serve FILE.tar…`: archives served in place, with the digests `load` gives, checked
// against a store-backed server answering the same requests.

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function manifestOf(address: string, repository: string, reference: string): Promise<{ digest: string; bytes: Buffer; type: string }> {
  const response = await fetch(`http://${address}/v2/${repository}/manifests/${reference}`, { headers: { accept: ACCEPT } });
  assert.equal(response.status, 200, `${repository}:${reference}`);
  return { digest: response.headers.get('docker-content-digest') ?? '', bytes: Buffer.from(await response.arrayBuffer()), type: response.headers.get('content-type') ?? '' };
}

// Every blob a manifest (or index) reaches, by digest.
async function blobsOf(address: string, repository: string, bytes: Buffer, type: string): Promise<string[]> {
  const parsed = JSON.parse(bytes.toString()) as { manifests?: { digest: string }[]; config?: { digest: string }; layers?: { digest: string }[] };
  if (type.includes('index') || type.includes('list')) {
    const all: string[] = [];
    for (const child of parsed.manifests ?? []) {
      const m = await manifestOf(address, repository, child.digest);
      all.push(child.digest, ...(await blobsOf(address, repository, m.bytes, m.type)));
    }
    return all;
  }
  return [parsed.config?.digest ?? '', ...(parsed.layers ?? []).map((layer) => layer.digest)];
}

async function entryOf(archive: string, pick: (entry: TarEntry) => boolean): Promise<TarEntry> {
  const handle = await open(archive, 'r');
  try {
    const entries = await readTarHeaders(archive, handle, (await handle.stat()).size);
    const found = entries.filter(pick).sort((a, b) => b.size - a.size)[0];
    assert.ok(found, `an entry of ${archive}`);
    return found;
  } finally {
    await handle.close();
  }
}

const ARCHIVES: { file: string; name?: string }[] = [
  { file: 'docker-save-multi.tar' }, // Docker 20.10 legacy docker save, three images
  { file: 'docker-save-busybox.tar' },
  { file: 'busybox-docker.tar' }, // skopeo docker-archive (layer.tar symlinks)
  { file: 'docker25-save.tar' }, // Docker 25+ layout
  { file: 'big-layers-docker.tar' },
  { file: 'big-layers-oci.tar', name: 'cartorio/big' }, // OCI archives name tags only
  { file: 'busybox-oci.tar', name: 'fixtures/oci' },
];

test('every archive is served in place with the digests and bytes `load` gives', async (t) => {
  const dir = await tempDir(t);
  for (const { file, name } of ARCHIVES) {
    const archive = join(FIXTURES, file);
    const store = join(dir, `store-${file}`);
    const loaded = await loadedDigests(store, archive, name === undefined ? [] : ['--name', name]);
    const server = await serveArgs(t, dir, [name === undefined ? archive : `${name}=${archive}`]);
    const catalog = (await (await fetch(`http://${server.address}/v2/_catalog`)).json()) as { repositories: string[] };
    assert.deepEqual(catalog.repositories, [...new Set([...loaded.keys()].map((ref) => ref.slice(0, ref.lastIndexOf(':'))))].sort(), file);
    for (const [ref, digest] of loaded) {
      const at = ref.lastIndexOf(':');
      const [repository, tag] = [ref.slice(0, at), ref.slice(at + 1)];
      const manifest = await manifestOf(server.address, repository, tag);
      assert.equal(manifest.digest, digest, `${file} ${ref}: served in place as loaded`);
      assert.equal(sha256(manifest.bytes), digest);
      for (const blob of await blobsOf(server.address, repository, manifest.bytes, manifest.type)) {
        const response = await fetch(`http://${server.address}/v2/${repository}/blobs/${blob}`);
        assert.equal(response.status, 200, `${file} ${blob}`);
        assert.equal(sha256(Buffer.from(await response.arrayBuffer())), blob, `${file} ${blob}: bytes match`);
      }
      t.diagnostic(`PASS ${file} ${ref} ${digest}`);
    }
  }
});

test('the archive server answers what the store server answers (HEAD, Range, tags, catalog, referrers, errors, library/)', async (t) => {
  const dir = await tempDir(t);
  const archive = join(FIXTURES, 'docker-save-multi.tar');
  const store = join(dir, 'store');
  const loaded = await loadedDigests(store, archive);
  const fromStore = await startServe(t, dir, store);
  const inPlace = await serveArgs(t, dir, [archive]);
  const digest = loaded.get('busybox:1') ?? '';
  const manifest = JSON.parse((await manifestOf(inPlace.address, 'busybox', '1')).bytes.toString()) as { config: { digest: string }; layers: { digest: string }[] };
  const layer = manifest.layers[0]?.digest ?? '';
  const requests: [string, string, Record<string, string>?][] = [
    ['GET', '/v2/'],
    ['GET', '/v2/_catalog'],
    ['GET', '/v2/_catalog?n=1'],
    ['GET', '/v2/busybox/tags/list'],
    ['GET', '/v2/library/busybox/tags/list'],
    ['GET', '/v2/busybox/manifests/1', { accept: ACCEPT }],
    ['HEAD', '/v2/busybox/manifests/1', { accept: ACCEPT }],
    ['GET', `/v2/busybox/manifests/${digest}`],
    ['GET', '/v2/busybox/manifests/nope'],
    ['HEAD', `/v2/busybox/blobs/${layer}`],
    ['GET', `/v2/busybox/blobs/${manifest.config.digest}`],
    ['GET', `/v2/busybox/blobs/${layer}`, { range: 'bytes=100-199' }],
    ['GET', `/v2/busybox/blobs/${layer}`, { range: 'bytes=-10' }],
    ['GET', `/v2/busybox/blobs/${layer}`, { range: 'bytes=99999999-' }],
    ['GET', `/v2/busybox/blobs/${digest}`],
    ['GET', `/v2/busybox/blobs/${digest}`, { range: 'bytes=0-9' }],
    ['GET', `/v2/busybox/blobs/sha256:${'0'.repeat(64)}`],
    ['GET', `/v2/other/tool/blobs/${layer}`],
    ['GET', `/v2/busybox/referrers/${digest}`],
    ['GET', '/v2/nothing/here/tags/list'],
    ['GET', '/v2/Bad Name/tags/list'],
    ['PUT', '/v2/busybox/manifests/1'],
  ];
  for (const [method, path, headers] of requests) {
    const [a, b] = await Promise.all([fromStore, inPlace].map((server) => fetch(`http://${server.address}${path}`, { method, ...(headers && { headers }) })));
    const label = `${method} ${path} ${JSON.stringify(headers ?? {})}`;
    assert.equal(b?.status, a?.status, label);
    for (const header of ['content-type', 'content-length', 'docker-content-digest', 'content-range', 'etag', 'link', 'accept-ranges']) {
      assert.equal(b?.headers.get(header), a?.headers.get(header), `${label}: ${header}`);
    }
    assert.deepEqual(Buffer.from(await (b as Response).arrayBuffer()), Buffer.from(await (a as Response).arrayBuffer()), `${label}: body`);
  }
});

test('a layer byte flipped (digest only claimed): the download fails, nothing whole is delivered, the blob is refused and logged', async (t) => {
  const dir = await tempDir(t);
  for (const { file, name } of [{ file: 'big-layers-docker.tar' }, { file: 'big-layers-oci.tar', name: 'cartorio/big' }]) {
    const archive = join(dir, file);
    await copyFile(join(FIXTURES, file), archive);
    const layer = await entryOf(archive, (entry) => entry.type === 'file');
    const handle = await open(archive, 'r+');
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, layer.dataOffset + Math.floor(layer.size / 2));
    byte[0] = (byte[0] ?? 0) ^ 0xff;
    await handle.write(byte, 0, 1, layer.dataOffset + Math.floor(layer.size / 2));
    await handle.close();
    const server = await serveArgs(t, dir, [name === undefined ? archive : `${name}=${archive}`, '--log-level', 'info']);
    const repository = 'cartorio/big';
    const { bytes } = await manifestOf(server.address, repository, '1');
    const layers = (JSON.parse(bytes.toString()) as { layers: { digest: string; size: number }[] }).layers;
    const bad = layers.find((l) => l.size === layer.size);
    assert.ok(bad, 'the flipped layer is in the manifest');
    const response = await fetch(`http://${server.address}/v2/${repository}/blobs/${bad.digest}`);
    assert.equal(response.status, 200);
    let received = 0;
    await assert.rejects(async () => {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) received += chunk.length;
    }, 'the download is cut');
    assert.ok(received < bad.size, `${file}: ${received} of ${bad.size} bytes delivered`);
    await sleep(100);
    const log = server.logs().split('\n').find((line) => line.includes('do not match their digest'));
    assert.ok(log, `${file}: a log line`);
    assert.ok(log.includes(bad.digest) && log.includes(archive) && log.includes(layer.path), log);
    const again = await fetch(`http://${server.address}/v2/${repository}/blobs/${bad.digest}`);
    assert.equal(again.status, 500);
    assert.match(await again.text(), /does not match its digest/);
    const ranged = await fetch(`http://${server.address}/v2/${repository}/blobs/${bad.digest}`, { headers: { range: 'bytes=0-99' } });
    assert.equal(ranged.status, 500, 'no part of a refused blob either');
    const copied = await run('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${server.address}/${repository}:1`, `oci:${join(dir, `copy-${file}`)}:1`]);
    assert.notEqual(copied.code, 0, 'skopeo copy fails');
    t.diagnostic(`PASS ${file}: cut after ${received} of ${bad.size} bytes; skopeo: ${copied.stderr.trim().split('\n').pop() ?? ''}`);
  }
});

test('an unproven blob asked with Range is hashed whole first, then proven; a Range of a good blob is right', async (t) => {
  const dir = await tempDir(t);
  const archive = join(FIXTURES, 'big-layers-docker.tar');
  const server = await serveArgs(t, dir, [archive]);
  const { bytes } = await manifestOf(server.address, 'cartorio/big', '1');
  const layer = (JSON.parse(bytes.toString()) as { layers: { digest: string; size: number }[] }).layers.sort((a, b) => b.size - a.size)[0];
  assert.ok(layer);
  const part = await fetch(`http://${server.address}/v2/cartorio/big/blobs/${layer.digest}`, { headers: { range: `bytes=1000-${layer.size - 1}` } });
  assert.equal(part.status, 206);
  const rest = Buffer.from(await part.arrayBuffer());
  const whole = Buffer.from(await (await fetch(`http://${server.address}/v2/cartorio/big/blobs/${layer.digest}`)).arrayBuffer());
  assert.equal(sha256(whole), layer.digest);
  assert.deepEqual(rest, whole.subarray(1000));
});

test('a truncated archive: refused at start; truncated under the server: aborted downloads and a log line', async (t) => {
  const dir = await tempDir(t);
  const archive = join(dir, 'cut.tar');
  await copyFile(join(FIXTURES, 'big-layers-docker.tar'), archive);
  const layer = await entryOf(archive, (entry) => entry.type === 'file');
  const server = await serveArgs(t, dir, [archive, '--log-level', 'info']);
  const { bytes } = await manifestOf(server.address, 'cartorio/big', '1');
  const bad = (JSON.parse(bytes.toString()) as { layers: { digest: string; size: number }[] }).layers.find((l) => l.size === layer.size);
  assert.ok(bad);
  await truncate(archive, layer.dataOffset + 4096);
  const response = await fetch(`http://${server.address}/v2/cartorio/big/blobs/${bad.digest}`);
  await assert.rejects(response.arrayBuffer(), 'the download is cut');
  await sleep(100);
  assert.match(server.logs(), /blob read failed after headers were sent/);
  assert.equal((await fetch(`http://${server.address}/healthz`)).status, 503, '/healthz tells the archive lost bytes');

  const refused = await cartorio(['serve', '--listen', '127.0.0.1:0', archive]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /cut\.tar: is truncated: the entry after ".*" needs \d+ bytes past the end of the file/);
  assert.equal(refused.stderr.trim().split('\n').length <= 2, true, refused.stderr);
});

test('a tarball replaced by rename while a download runs: the download gets the old bytes; SIGHUP serves the new file', async (t) => {
  const dir = await tempDir(t);
  const archive = join(dir, 'images.tar');
  await copyFile(join(FIXTURES, 'big-layers-docker.tar'), archive);
  const server = await serveArgs(t, dir, [archive, '--log-level', 'info']);
  const { bytes } = await manifestOf(server.address, 'cartorio/big', '1');
  const layer = (JSON.parse(bytes.toString()) as { layers: { digest: string; size: number }[] }).layers.sort((a, b) => b.size - a.size)[0];
  assert.ok(layer);
  const response = await fetch(`http://${server.address}/v2/cartorio/big/blobs/${layer.digest}`);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  const first = await reader.read();
  if (first.value) chunks.push(first.value);
  // Replace the file while the download has only started: another archive, renamed over it.
  await copyFile(join(FIXTURES, 'docker-save-multi.tar'), join(dir, 'next.tar'));
  await rename(join(dir, 'next.tar'), archive);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  assert.equal(sha256(Buffer.concat(chunks)), layer.digest, 'the old, consistent bytes');
  assert.equal((await fetch(`http://${server.address}/v2/cartorio/big/manifests/1`)).status, 200, 'still served until SIGHUP');
  process.kill(server.pid, 'SIGHUP');
  let catalog: { repositories: string[] } = { repositories: [] };
  for (let i = 0; i < 50 && !catalog.repositories.includes('other/tool'); i++) {
    await sleep(100);
    catalog = (await (await fetch(`http://${server.address}/v2/_catalog`)).json()) as { repositories: string[] };
  }
  assert.deepEqual(catalog.repositories, ['127.0.0.1:5000/busybox', 'busybox', 'other/tool']);
  assert.match(server.logs(), /SIGHUP: archives read again/);
});

test('compressed tarballs, rootfs tarballs and clashing names are refused with one line', async (t) => {
  const dir = await tempDir(t);
  const gz = join(dir, 'images.tar.gz');
  await writeFile(gz, gzipSync(await readFile(join(FIXTURES, 'busybox-docker.tar'))));
  const gzip = await cartorio(['serve', '--listen', '127.0.0.1:0', gz]);
  assert.equal(gzip.code, 1);
  assert.match(gzip.stderr, /images\.tar\.gz: is gzip-compressed: a compressed tarball cannot be served in place/);
  assert.match(gzip.stderr, /cartorio load --store DIR .*gunzip -k/);
  assert.match(gzip.stderr, /^cartorio serve: [^\n]*\n  hint: [^\n]*\n$/, 'one line and its hint');
  // zstd by Debian's zstd(1), as `docker save | zstd` or a .tar.zst download would be.
  const zst = join(dir, 'images.tar.zst');
  assert.equal((await run('zstd', ['-q', '-o', zst, join(FIXTURES, 'busybox-docker.tar')])).code, 0);
  const zstd = await cartorio(['serve', '--listen', '127.0.0.1:0', zst]);
  assert.equal(zstd.code, 1);
  assert.match(zstd.stderr, /images\.tar\.zst: is zstd-compressed: a compressed tarball cannot be served in place/);
  assert.match(zstd.stderr, /^cartorio serve: [^\n]*\n  hint: load it \(cartorio load --store DIR \S*images\.tar\.zst, .*\(zstd -d \S*images\.tar\.zst\)\n$/, 'one line and its hint');
  const rootfs = await cartorio(['serve', '--listen', '127.0.0.1:0', join(FIXTURES, 'rootfs.tar')]);
  assert.equal(rootfs.code, 1);
  assert.match(rootfs.stderr, /rootfs\.tar: is not an image archive/);
  const unnamed = await cartorio(['serve', '--listen', '127.0.0.1:0', join(FIXTURES, 'busybox-oci.tar')]);
  assert.equal(unnamed.code, 1);
  assert.match(unnamed.stderr, /busybox-oci\.tar: holds an image with no name.*NAME=/s);
  const store = join(dir, 'store');
  await loadedDigests(store, join(FIXTURES, 'docker-save-busybox.tar'));
  const clash = await cartorio(['serve', '--listen', '127.0.0.1:0', '--store', store, join(FIXTURES, 'docker-save-multi.tar')]);
  assert.equal(clash.code, 1);
  assert.match(clash.stderr, /"busybox" would be served from both .*docker-save-multi\.tar and .*store/);
  const twice = await cartorio(['serve', '--listen', '127.0.0.1:0', join(FIXTURES, 'docker-save-busybox.tar'), `busybox=${join(FIXTURES, 'big-layers-docker.tar')}`]);
  assert.equal(twice.code, 1, 'a tag given to two images is refused');
  assert.match(twice.stderr, /big-layers-docker\.tar: gives busybox:1 to sha256:[0-9a-f]{64}, but .*docker-save-busybox\.tar gives it to sha256:/);
});

test('archives, layouts and a store served together; --verify reports on /healthz and in the log', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  await loadedDigests(store, join(FIXTURES, 'docker25-save.tar'));
  const corrupt = join(dir, 'corrupt.tar');
  await copyFile(join(FIXTURES, 'big-layers-docker.tar'), corrupt);
  const layer = await entryOf(corrupt, (entry) => entry.type === 'file');
  const handle = await open(corrupt, 'r+');
  await handle.write(Buffer.from('x'), 0, 1, layer.dataOffset + 10);
  await handle.close();
  const server = await serveArgs(t, dir, ['--store', store, join(FIXTURES, 'docker-save-multi.tar'), `tools/kit=${join(FIXTURES, 'busybox-oci')}`, corrupt, '--verify', '--log-level', 'info']);
  const catalog = (await (await fetch(`http://${server.address}/v2/_catalog`)).json()) as { repositories: string[] };
  assert.deepEqual(catalog.repositories, ['127.0.0.1:5000/busybox', 'busybox', 'docker.io/cartorio/big', 'docker.io/library/busybox', 'other/tool', 'tools/kit']);
  let health: { status: string; verification?: { state: string; failed: number; checked: number; total: number } } = { status: '' };
  for (let i = 0; i < 100 && health.verification?.state !== 'done'; i++) {
    await sleep(100);
    health = (await (await fetch(`http://${server.address}/healthz`)).json()) as typeof health;
  }
  assert.equal(health.verification?.state, 'done');
  assert.equal(health.verification?.failed, 1, '/healthz counts (the log names)');
  assert.ok(server.logs().split('\n').some((line) => line.includes('verification: blob does not match') && line.includes(`corrupt.tar: ${layer.path}`)), server.logs());
  assert.match(server.logs(), /verification finished: some blobs do not match/);
  const { bytes } = await manifestOf(server.address, 'cartorio/big', '1');
  const bad = (JSON.parse(bytes.toString()) as { layers: { digest: string; size: number }[] }).layers.find((l) => l.size === layer.size);
  assert.equal((await fetch(`http://${server.address}/v2/cartorio/big/blobs/${bad?.digest ?? ''}`)).status, 500, 'refused once verified bad');
  await must('skopeo', ['inspect', '--tls-verify=false', `docker://${server.address}/docker.io/library/busybox:25`]);
});

// registry-image's `format: oci` get writes go-containerregistry's `tarball.WriteToFile`: a legacy
// docker save layout whose layers are the gzip blobs as pulled, named `<digest hex>.tar.gz`, and a
// config named `sha256:<hex>`. Assembled here the same way from umoci's real layers, packed by tar.
async function ggcrTarball(dir: string, name: string, flip = false): Promise<string> {
  const layout = join(FIXTURES, 'busybox-oci');
  const manifest = JSON.parse(await readFile(join(layout, 'blobs', 'sha256', 'aa48215cf55ff8cc1922a87e696d659944c1aaf0502097800a4cc8cfa23d2bcb'), 'utf8')) as { config: { digest: string }; layers: { digest: string }[] };
  const work = join(dir, `${name}-work`);
  await must('mkdir', ['-p', work]);
  const hex = (digest: string): string => digest.slice('sha256:'.length);
  await copyFile(join(layout, 'blobs', 'sha256', hex(manifest.config.digest)), join(work, manifest.config.digest));
  const layers = manifest.layers.map((layer) => `${hex(layer.digest)}.tar.gz`);
  for (const [i, layer] of manifest.layers.entries()) await copyFile(join(layout, 'blobs', 'sha256', hex(layer.digest)), join(work, layers[i] as string));
  if (flip) {
    const last = join(work, layers[layers.length - 1] as string);
    const bytes = await readFile(last);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] ?? 0) ^ 0xff;
    await writeFile(last, bytes);
  }
  await writeFile(join(work, 'manifest.json'), JSON.stringify([{ Config: manifest.config.digest, RepoTags: ['registry.example.com/ci/app:1'], Layers: layers }]));
  const tarball = join(dir, `${name}.tar`);
  await must('tar', ['-C', work, '--numeric-owner', '--owner=0', '--group=0', '-cf', tarball, manifest.config.digest, ...layers, 'manifest.json']);
  return tarball;
}

test('registry-image image.tar (go-containerregistry tarball, gzip layers named by digest): load\'s digest, hashed while streaming, a flipped byte refused', async (t) => {
  const dir = await tempDir(t);
  const good = await ggcrTarball(dir, 'good');
  const loaded = await loadedDigests(join(dir, 'store'), good);
  const digest = loaded.get('registry.example.com/ci/app:1');
  assert.ok(digest, JSON.stringify([...loaded]));
  const bad = await ggcrTarball(dir, 'bad', true);
  // The corrupt tarball first: its copy of the layer is tried first, refused, then the good copy serves.
  const server = await serveArgs(t, dir, [`broken/app=${bad}`, good, '--log-level', 'info']);
  const served = await manifestOf(server.address, 'registry.example.com/ci/app', '1');
  assert.equal(served.digest, digest, 'the digest load gives');
  const layers = (JSON.parse(served.bytes.toString()) as { layers: { digest: string; mediaType: string }[] }).layers;
  assert.ok(layers.every((layer) => layer.mediaType === 'application/vnd.oci.image.layer.v1.tar+gzip'));
  const broken = await manifestOf(server.address, 'broken/app', '1');
  assert.equal(broken.digest, digest, 'same claims, same manifest');
  const last = layers[layers.length - 1]?.digest ?? '';
  // A layer of one chunk is cut before even the headers go out: the request fails either way.
  await assert.rejects(fetch(`http://${server.address}/v2/broken/app/blobs/${last}`).then((response) => response.arrayBuffer()), 'the download of the flipped layer is cut');
  await sleep(100);
  assert.match(server.logs(), new RegExp(`bad\\.tar: ${last.slice(7)}\\.tar\\.gz.*do not match their digest`));
  // Content-addressed: once the corrupt copy is refused, the good tarball's copy serves both names.
  await must('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${server.address}/broken/app:1`, `oci:${join(dir, 'copy-bad')}:1`]);
  await must('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${server.address}/registry.example.com/ci/app:1`, `oci:${join(dir, 'copy')}:1`]);
  const after = await fetch(`http://${server.address}/v2/registry.example.com/ci/app/blobs/${last}`);
  assert.equal(after.status, 200, 'the good tarball\'s copy of the layer serves once the bad one is refused');
  assert.equal(sha256(Buffer.from(await after.arrayBuffer())), last);
});

// "Start-up reads tar headers and the small JSON documents only": what the server process read
// (/proc/PID/io rchar: every read(2), its own JavaScript included) once ready on 24 MB of layers
// exceeds what it read for a 2 MB archive by far less than those layers.
test('start-up reads no layer bytes: a 24 MB archive costs the reads of a 2 MB one', async (t) => {
  const dir = await tempDir(t);
  const readAtStart = async (archive: string): Promise<number> => {
    const server = await serveArgs(t, dir, [`bench/start=${archive}`]);
    const io = await readFile(`/proc/${server.pid}/io`, 'utf8');
    return Number(/^rchar: (\d+)$/m.exec(io)?.[1]);
  };
  const small = await readAtStart(join(FIXTURES, 'docker-save-busybox.tar'));
  for (const big of ['big-layers-docker.tar', 'big-layers-oci.tar']) {
    const handle = await open(join(FIXTURES, big), 'r');
    const entries = await readTarHeaders(join(FIXTURES, big), handle, (await handle.stat()).size).finally(() => handle.close());
    const layers = entries.filter((entry) => entry.size > 1024 * 1024).reduce((sum, entry) => sum + entry.size, 0);
    assert.ok(layers > 16 * 1024 * 1024, `${big}: ${layers} bytes of layers`);
    const read = await readAtStart(join(FIXTURES, big));
    assert.ok(small > 0 && read - small < 1024 * 1024, `${big}: read ${read} bytes at start, ${small} for docker-save-busybox.tar; its layers are ${layers} bytes`);
  }
});

// The gzip check of a legacy layer uses the first bytes the header read already holds: for a docker
// save of many small layers, start-up makes no read per layer. The bytes must be the entry's own.
test('the header read keeps each entry\'s first bytes when it holds them, equal to the bytes in the file', async () => {
  for (const { file } of ARCHIVES) {
    const archive = join(FIXTURES, file);
    const handle = await open(archive, 'r');
    try {
      const entries = await readTarHeaders(archive, handle, (await handle.stat()).size);
      const files = entries.filter((entry) => entry.type === 'file' && entry.size > 0);
      const held = files.filter((entry) => entry.head !== undefined);
      assert.ok(held.length > 0, `${file}: some entries' first bytes are held`);
      for (const entry of held) {
        const bytes = Buffer.alloc(Math.min(4, entry.size));
        await handle.read(bytes, 0, bytes.length, entry.dataOffset);
        assert.deepEqual(entry.head, bytes, `${file}: ${entry.path}`);
      }
    } finally {
      await handle.close();
    }
  }
});
