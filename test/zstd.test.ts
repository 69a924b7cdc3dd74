import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, ROOT, cartorio, run, tempDir } from './helpers/cli.js';
import { layoutDigest, must, startContainerd, startServe } from './helpers/clients.js';
import { resourceOk } from './helpers/resource-run.js';
import { snapshotTree } from './helpers/snapshot.js';

// zstd layers (Node.js 22.15+ and 24 have zstd in node:zlib): an image skopeo 1.9 wrote with
// `--dest-compress-format zstd`, a rootfs tarball compressed by Debian's zstd, and directories
// packed with --compression zstd. Pulled back by skopeo and containerd's ctr (Docker 20.10 cannot
// unpack zstd layers, so docker pull is not among the clients here).

const ZSTD_LAYER = 'application/vnd.oci.image.layer.v1.tar+zstd';

interface Manifest { layers: { mediaType: string; digest: string }[]; config: { digest: string } }

async function blobJson<T>(layout: string, digest: string): Promise<T> {
  return JSON.parse(await readFile(join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length)), 'utf8')) as T;
}

async function loadOk(store: string, args: string[]): Promise<string> {
  const result = await cartorio(['load', '--store', store, ...args]);
  assert.equal(result.code, 0, `cartorio load ${args.join(' ')}: ${result.stderr}`);
  return result.stdout.trim();
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

test('a skopeo --dest-compress-format zstd layout loads as is, is served, and skopeo and ctr pull it', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  const fixture = join(FIXTURES, 'busybox-oci-zstd');
  const digest = await layoutDigest(fixture, '1');
  assert.ok(digest);
  const manifest = await blobJson<Manifest>(fixture, digest);
  assert.deepEqual(manifest.layers.map((l) => l.mediaType), [ZSTD_LAYER, ZSTD_LAYER], 'the fixture really has zstd layers');
  assert.equal(await loadOk(store, [fixture, '--name', 'zstd/busybox']), `zstd/busybox:1@${digest}`);
  const verified = await cartorio(['verify', '--store', store]);
  assert.equal(verified.code, 0, verified.stderr);
  const server = await startServe(t, dir, store);
  const r = server.address;

  await t.test('skopeo copy docker:// → oci: keeps the digest and the zstd layers', async () => {
    const out = join(dir, 'skopeo-out');
    await must('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${r}/zstd/busybox:1`, `oci:${out}:1`]);
    assert.equal(await layoutDigest(out, '1'), digest);
    t.diagnostic(`PASS skopeo copy ${r}/zstd/busybox:1 ${digest}`);
  });

  await t.test('containerd: ctr image pull --plain-http unpacks the zstd layers; same digest', async (tc) => {
    const containerd = await startContainerd(tc);
    const pulled = await containerd.ctr(['image', 'pull', '--plain-http', `${r}/zstd/busybox:1`]);
    assert.equal(pulled.code, 0, pulled.stderr);
    const list = (await containerd.ctr(['image', 'ls'])).stdout;
    assert.equal(list.split('\n').find((l) => l.startsWith(`${r}/zstd/busybox:1 `))?.split(/\s+/)[2], digest, list);
    const check = await containerd.ctr(['image', 'check']);
    assert.match(check.stdout, new RegExp(`${r}/zstd/busybox:1\\s+\\S+\\s+\\S+\\s+complete`), check.stdout);
    // Unpacked into a snapshot: a layer that failed to decompress would fail here.
    const mounted = join(dir, 'ctr-mount');
    await must('mkdir', ['-p', mounted]);
    const mount = await containerd.ctr(['image', 'mount', `${r}/zstd/busybox:1`, mounted]);
    assert.equal(mount.code, 0, mount.stderr);
    try {
      assert.equal(await readFile(join(mounted, 'etc', 'motd'), 'utf8'), 'hello from cartorio fixtures\n');
    } finally {
      await containerd.ctr(['image', 'unmount', mounted]);
    }
    t.diagnostic(`PASS ctr image pull --plain-http ${r}/zstd/busybox:1 ${digest} (unpacked, /etc/motd read)`);
  });

  await t.test('get with format: rootfs unpacks the zstd image to the same tree as the gzip one', async () => {
    await loadOk(store, [join(FIXTURES, 'busybox-oci'), '--name', 'gzip/busybox']);
    const gzipDigest = await layoutDigest(join(FIXTURES, 'busybox-oci'), '1');
    const trees = [];
    for (const [repository, version] of [['zstd/busybox', digest], ['gzip/busybox', gzipDigest]] as const) {
      const get = join(dir, `get-${repository.replace('/', '-')}`);
      await resourceOk('in', { source: { repository, store: { type: 'file', path: store } }, version: { digest: version }, params: { format: 'rootfs' } }, get);
      trees.push(await snapshotTree(join(get, 'rootfs')));
    }
    assert.ok((trees[0] ?? []).some((line) => line.startsWith('f etc/motd ')), 'the rootfs was unpacked');
    assert.deepEqual(trees[0], trees[1]);
  });
});

test('a rootfs .tar.zst made by Debian zstd loads: the layer is the file, the diff_id is the tar', async (t) => {
  const store = await tempDir(t);
  const line = await loadOk(store, [join(FIXTURES, 'rootfs.tar.zst'), '--name', 'rootfs/zst']);
  const layout = join(store, 'rootfs', 'zst');
  const manifest = await blobJson<Manifest>(layout, line.split('@')[1] ?? '');
  const config = await blobJson<{ rootfs: { diff_ids: string[] } }>(layout, manifest.config.digest);
  assert.deepEqual(manifest.layers.map((l) => l.mediaType), [ZSTD_LAYER]);
  assert.equal(manifest.layers[0]?.digest, sha256(await readFile(join(FIXTURES, 'rootfs.tar.zst'))));
  assert.deepEqual(config.rootfs.diff_ids, [sha256(await readFile(join(FIXTURES, 'rootfs.tar')))]);
  // convert reads it too, to an OCI layout skopeo can read.
  const out = join(store, 'converted');
  const converted = await cartorio(['convert', join(FIXTURES, 'rootfs.tar.zst'), out, '--name', 'rootfs/zst']);
  assert.equal(converted.code, 0, converted.stderr);
  const inspected = await run('skopeo', ['inspect', `oci:${out}:latest`]);
  assert.equal(inspected.code, 0, inspected.stderr);
});

test('a .tar.zst of two frames (zstd appends frames) loads whole on Node.js 24, and is refused where only the first would be read', async (t) => {
  const dir = await tempDir(t);
  const tar = await readFile(join(FIXTURES, 'rootfs.tar'));
  const file = join(dir, 'two-frames.tar.zst');
  await writeFile(join(dir, 'a'), tar.subarray(0, 10240));
  await writeFile(join(dir, 'b'), tar.subarray(10240));
  await must('sh', ['-c', `zstd -q -c '${join(dir, 'a')}' > '${file}' && zstd -q -c '${join(dir, 'b')}' >> '${file}'`]);
  const result = await cartorio(['load', '--store', join(dir, 'store'), file, '--name', 'two/frames']);
  if (Number(process.versions.node.split('.')[0]) >= 24) {
    assert.equal(result.code, 0, result.stderr);
    const layout = join(dir, 'store', 'two', 'frames');
    const manifest = await blobJson<Manifest>(layout, result.stdout.trim().split('@')[1] ?? '');
    const config = await blobJson<{ rootfs: { diff_ids: string[] } }>(layout, manifest.config.digest);
    assert.deepEqual(config.rootfs.diff_ids, [sha256(tar)]);
  } else {
    assert.equal(result.code, 1);
    assert.match(result.stderr, /two-frames\.tar\.zst: holds more than one zstd frame, and the zstd of Node\.js v\S+ decodes only the first: run cartorio on Node\.js 24\n/);
  }
});

test('a docker-archive compressed whole by zstd loads as the plain archive does', async (t) => {
  const dir = await tempDir(t);
  const zst = join(dir, 'busybox-docker.tar.zst');
  await must('zstd', ['-q', '-o', zst, join(FIXTURES, 'busybox-docker.tar')]);
  const plain = await loadOk(join(dir, 'a'), [join(FIXTURES, 'busybox-docker.tar')]);
  assert.equal(await loadOk(join(dir, 'b'), [zst]), plain);
});

test('--compression zstd packs a directory reproducibly, with the same diff_id as gzip', async (t) => {
  const dir = await tempDir(t);
  const packed = [];
  for (const [store, compression] of [['a', 'zstd'], ['b', 'zstd'], ['c', 'gzip']] as const) {
    const line = await loadOk(join(dir, store), [join(FIXTURES, 'rootfs'), '--name', 'dir/img', '--compression', compression]);
    const layout = join(dir, store, 'dir', 'img');
    const manifest = await blobJson<Manifest>(layout, line.split('@')[1] ?? '');
    const config = await blobJson<{ rootfs: { diff_ids: string[] } }>(layout, manifest.config.digest);
    packed.push({ line, mediaType: manifest.layers[0]?.mediaType, diffId: config.rootfs.diff_ids[0] });
  }
  const [first, second, gzip] = packed;
  assert.equal(first?.mediaType, ZSTD_LAYER);
  assert.equal(first?.line, second?.line, 'same input, same digest');
  assert.equal(first?.diffId, gzip?.diffId, 'the same tar inside');
  // The zstd layer decompresses with Debian's zstd to that tar.
  const layer = (await readdir(join(dir, 'a', 'dir', 'img', 'blobs', 'sha256'))).map((name) => join(dir, 'a', 'dir', 'img', 'blobs', 'sha256', name));
  const sums = await Promise.all(layer.map(async (path) => (await run('sh', ['-c', `zstd -dc '${path}' 2>/dev/null | sha256sum`])).stdout.split(' ')[0]));
  assert.ok(sums.includes(first?.diffId?.slice('sha256:'.length)), 'zstd -d of the layer gives the diff_id');
});

test('a runtime without zstd refuses each zstd use with one line naming the runtime', async (t) => {
  const dir = await tempDir(t);
  // node:zlib as Node.js 20 has it: no zstd functions.
  const noZstd = join(dir, 'no-zstd.mjs');
  await writeFile(noZstd, "import zlib from 'node:zlib';\nfor (const name of Object.keys(zlib)) if (/zstd/i.test(name)) delete zlib[name];\n");
  const cli = (args: string[]) => run(process.execPath, ['--import', noZstd, join(ROOT, 'dist', 'src', 'cli', 'main.js'), ...args]);
  const store = join(dir, 'store');
  const cases: [string[], RegExp][] = [
    [['load', '--store', store, join(FIXTURES, 'rootfs.tar.zst'), '--name', 'x'], /^cartorio load: .*rootfs\.tar\.zst: is zstd-compressed: zstd needs Node\.js 22\.15 or later, and this is Node\.js v\d+\.\d+\.\d+$/],
    [['convert', join(FIXTURES, 'rootfs.tar.zst'), join(dir, 'out'), '--name', 'x'], /^cartorio convert: .*rootfs\.tar\.zst: is zstd-compressed: zstd needs Node\.js 22\.15 or later/],
    [['load', '--store', store, join(FIXTURES, 'rootfs'), '--name', 'x', '--compression', 'zstd'], /^cartorio load: .*rootfs: cannot be packed with --compression zstd: zstd needs Node\.js 22\.15 or later, and this is Node\.js v/],
  ];
  for (const [args, line] of cases) {
    const result = await cli(args);
    assert.equal(result.code, 1, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr.split('\n')[0] ?? '', line);
  }
  assert.deepEqual(await readdir(dir).then((names) => names.filter((n) => n === 'store' || n === 'out')), [], 'nothing was written');

  // A rootfs get of a zstd image, by the resource on such a runtime.
  const zstore = join(dir, 'zstore');
  await loadOk(zstore, [join(FIXTURES, 'busybox-oci-zstd'), '--name', 'zstd/busybox']);
  const digest = await layoutDigest(join(FIXTURES, 'busybox-oci-zstd'), '1');
  const payload = { source: { repository: 'zstd/busybox', store: { type: 'file', path: zstore } }, version: { digest }, params: { format: 'rootfs' } };
  const got = await run(join(ROOT, 'assets', 'in'), [join(dir, 'get')], { input: JSON.stringify(payload), env: { ...process.env, NODE_OPTIONS: `--import=${noZstd}` } });
  assert.equal(got.code, 1, got.stderr);
  assert.match(got.stderr.trim(), /^[^\n]*layer 1\/2 sha256:[0-9a-f]{64}: cannot unpack a zstd layer: zstd needs Node\.js 22\.15 or later, and this is Node\.js v[^\n]*\(run the resource on Node\.js 24, or get with format: oci\)$/);
});
