import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { ChunkPool } from '../src/image/chunk-pool.js';
import { collectTree, PACK_CHUNK, packTree } from '../src/image/layer-pack.js';
import { GZIP_BLOCK, ParallelGzip, type ParallelGzipOptions } from '../src/image/parallel-gzip.js';
import { FIXTURES, cartorio, run, tempDir } from './helpers/cli.js';
import { must, startDockerd, startServe } from './helpers/clients.js';

// Layers packed from a directory are gzip-compressed on every core (src/image/parallel-gzip.ts):
// fixed 1 MiB blocks, each deflated on a worker thread with the previous block's tail as its
// dictionary. The promise checked here: the bytes (so the digest) depend only on the input and
// the level, never on the thread count, and every reader takes them as one ordinary gzip member.

const sha256 = (bytes: Buffer): string => 'sha256:' + createHash('sha256').update(bytes).digest('hex');

/** Deterministic bytes that compress about as well as a rootfs (text runs and noise, mixed). */
function mixedBytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let state = seed >>> 0;
  const words = ['usr', 'share', 'locale', 'LC_MESSAGES', 'libc', '.mo', 'doc', 'copyright', '\n', ' '];
  for (let at = 0; at < size;) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    if (state % 4 === 0) {
      out[at++] = state >>> 24;
    } else {
      at += out.write(words[state % words.length] as string, at);
    }
  }
  return out;
}

/** A busybox rootfs with 5 MiB of data beside it: several blocks, files big and small. */
async function makeTree(dir: string): Promise<string> {
  const root = join(dir, 'tree');
  await cp(join(FIXTURES, 'rootfs'), root, { recursive: true, verbatimSymlinks: true });
  await mkdir(join(root, 'data', 'small'), { recursive: true });
  await writeFile(join(root, 'data', 'big.bin'), mixedBytes(3 * GZIP_BLOCK + 12345, 1));
  for (let i = 0; i < 40; i++) await writeFile(join(root, 'data', 'small', `f${i}`), mixedBytes(50_000 + i * 997, i + 2));
  return root;
}

async function gzipAll(input: Buffer | Readable, options: ParallelGzipOptions): Promise<{ gz: Buffer; diffId: string }> {
  const chunks: Buffer[] = [];
  const gzip = new ParallelGzip(options);
  const source = Buffer.isBuffer(input) ? Readable.from(splitOddly(input)) : input;
  await pipeline(source, gzip, new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      chunks.push(chunk);
      done();
    },
  }));
  return { gz: Buffer.concat(chunks), diffId: gzip.diffId() };
}

// Pieces of uneven sizes, so blocks are cut from writes that straddle them.
function* splitOddly(bytes: Buffer): Generator<Buffer> {
  for (let at = 0, n = 1; at < bytes.length; n++) {
    const size = (n * 7919) % 300_000 + 1;
    yield bytes.subarray(at, at + size);
    at += size;
  }
}

async function tarOf(root: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of packTree(collectTree(root).entries, { mtime: new Date(0) })) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

test('a tree packed with 1, 2 and 4 threads gives the same gzip bytes, which gunzip to the tar', async (t) => {
  const dir = await tempDir(t);
  const root = await makeTree(dir);
  const tar = await tarOf(root);
  assert.ok(tar.length > 5 * GZIP_BLOCK, `the tree spans several blocks (${tar.length} bytes)`);
  const results = [];
  for (const threads of [1, 2, 4]) results.push(await gzipAll(tar, { threads }));
  // Node 20.15+ has zlib.crc32; older Node computes CRC-32 in JavaScript: same bytes either way.
  results.push(await gzipAll(tar, { threads: 3, portableCrc: true }));
  // As cartorio packs a directory: packTree's 1 MiB chunks deflated in place, their memory reused.
  const pool = new ChunkPool(PACK_CHUNK);
  results.push(await gzipAll(packTree(collectTree(root).entries, { mtime: new Date(0), pool }), { threads: 2, adopt: { pool } }));
  const digests = results.map((result) => sha256(result.gz));
  assert.deepEqual(new Set(digests).size, 1, `one digest for every thread count: ${digests.join(' ')}`);
  const [first] = results as [{ gz: Buffer; diffId: string }];
  assert.ok(gunzipSync(first.gz).equals(tar), 'gunzip gives back the tar byte for byte');
  assert.equal(first.diffId, sha256(tar), 'diffId() is the sha256 of the tar');
  assert.ok(first.gz.length < tar.length * 0.8, `it compresses (${first.gz.length} of ${tar.length} bytes)`);
});

test('block edges: empty input, one byte, exactly one block, one block and a byte; levels differ', async () => {
  for (const size of [0, 1, GZIP_BLOCK, GZIP_BLOCK + 1, 2 * GZIP_BLOCK - 1]) {
    const input = mixedBytes(size, size + 7);
    const one = await gzipAll(input, { threads: 1 });
    const three = await gzipAll(input, { threads: 3 });
    assert.ok(one.gz.equals(three.gz), `${size} bytes: 1 and 3 threads agree`);
    assert.ok(gunzipSync(one.gz).equals(input), `${size} bytes: round trip`);
    assert.equal(one.gz.readUInt32LE(one.gz.length - 4), size, `${size} bytes: ISIZE`);
  }
  const input = mixedBytes(2 * GZIP_BLOCK, 99);
  const fast = await gzipAll(input, { level: 1 });
  const best = await gzipAll(input, { level: 9 });
  assert.ok(!fast.gz.equals(best.gz), 'the level changes the bytes');
  assert.ok(gunzipSync(fast.gz).equals(input) && gunzipSync(best.gz).equals(input));
  assert.throws(() => new ParallelGzip({ level: 0 }), /gzip level must be 1 to 9/);
});

/** The layer blobs of the only image in `store` (repository `repo`, tag `tag`). */
async function layerOf(store: string, repo: string, tag: string): Promise<{ path: string; digest: string; diffId: string }> {
  const layout = join(store, repo);
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  assert.ok(entry, `${repo}:${tag} in ${store}`);
  const blob = (digest: string): string => join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length));
  const manifest = JSON.parse(await readFile(blob(entry.digest), 'utf8')) as { config: { digest: string }; layers: { digest: string }[] };
  const config = JSON.parse(await readFile(blob(manifest.config.digest), 'utf8')) as { rootfs: { diff_ids: string[] } };
  const digest = manifest.layers[0]?.digest ?? '';
  return { path: blob(digest), digest, diffId: config.rootfs.diff_ids[0] ?? '' };
}

test('cartorio load of a directory: gzip -t, Python, GNU tar and skopeo read the layer; gzip:N picks the level', async (t) => {
  const dir = await tempDir(t);
  const tree = await makeTree(dir);
  const store = join(dir, 'store');
  for (const [tag, compression] of [['gz', 'gzip'], ['plain', 'none'], ['gz1', 'gzip:1'], ['gz9', 'gzip:9']]) {
    const loaded = await cartorio(['load', '-q', '--store', store, tree, '--name', 'par/gz', '--tag', tag as string, '--compression', compression as string]);
    assert.equal(loaded.code, 0, loaded.stderr);
  }
  const gz = await layerOf(store, 'par/gz', 'gz');
  const plain = await layerOf(store, 'par/gz', 'plain');
  assert.equal(gz.diffId, plain.digest, 'the gzip layer holds the uncompressed layer');
  assert.ok(gunzipSync(await readFile(gz.path)).equals(await readFile(plain.path)), 'byte for byte');
  const levels = [await layerOf(store, 'par/gz', 'gz1'), await layerOf(store, 'par/gz', 'gz9')];
  assert.equal(new Set([gz.digest, ...levels.map((layer) => layer.digest)]).size, 3, 'levels 1, 6 and 9 give three layers');
  assert.deepEqual(levels.map((layer) => layer.diffId), [gz.diffId, gz.diffId], 'of one tar');

  await must('gzip', ['-t', gz.path]);
  const python = await must('python3', ['-c', 'import gzip,hashlib,sys; print("sha256:" + hashlib.sha256(gzip.open(sys.argv[1]).read()).hexdigest())', gz.path]);
  assert.equal(python.stdout.trim(), gz.diffId, "Python's gzip module reads the diff_id's bytes");
  const unpacked = join(dir, 'unpacked');
  await mkdir(unpacked);
  await must('tar', ['-xzf', gz.path, '-C', unpacked]);
  const compared = await run('diff', ['-r', '--no-dereference', tree, unpacked]);
  assert.equal(compared.code, 0, `the layer unpacks to the tree:\n${compared.stdout}${compared.stderr}`);

  const again = await cartorio(['load', '-q', '--store', join(dir, 'store2'), tree, '--name', 'par/gz', '--tag', 'gz']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal((await layerOf(join(dir, 'store2'), 'par/gz', 'gz')).digest, gz.digest, 'a second load gives the same layer');

  // skopeo (containers/image, Go) decompresses each layer it copies with --dest-decompress.
  const server = await startServe(t, dir, store);
  const copied = join(dir, 'skopeo-dir');
  await must('skopeo', ['copy', '-q', '--src-tls-verify=false', '--dest-decompress', `docker://${server.address}/par/gz:gz`, `dir:${copied}`]);
  const files = await readdir(copied);
  assert.ok(files.includes(gz.diffId.slice('sha256:'.length)), `skopeo wrote the decompressed layer as its diff_id (${files.join(' ')})`);
  const copiedLayout = join(dir, 'skopeo-oci');
  await must('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${server.address}/par/gz:gz`, `oci:${copiedLayout}:gz`]);
  assert.ok((await readFile(join(copiedLayout, 'blobs', 'sha256', gz.digest.slice('sha256:'.length)))).equals(await readFile(gz.path)), 'skopeo copies the layer as served');

  for (const bad of ['gzip:0', 'gzip:10', 'gzip:x', 'zip']) {
    const refused = await cartorio(['load', '-q', '--store', join(dir, 'store3'), tree, '--name', 'par/bad', '--compression', bad]);
    assert.equal(refused.code, 2, `--compression ${bad} is refused as a usage error`);
    assert.match(refused.stderr, /--compression.*expected none, gzip, gzip:LEVEL with LEVEL 1 to 9 \(e.g. gzip:9\), or zstd/);
  }
});

test('docker pull + docker run of an image packed with the parallel gzip (Go compress/gzip in the engine)', async (t) => {
  const dir = await tempDir(t);
  const tree = await makeTree(dir);
  const store = join(dir, 'store');
  const loaded = await cartorio(['load', '-q', '--store', store, tree, '--name', 'par/run', '--tag', '1']);
  assert.equal(loaded.code, 0, loaded.stderr);
  // dockerd unpacks with unpigz when it finds it (bench/ installs pigz); this makes it use Go's reader.
  const previous = process.env['MOBY_DISABLE_PIGZ'];
  process.env['MOBY_DISABLE_PIGZ'] = 'true';
  let engine;
  try {
    engine = await startDockerd(t);
  } finally {
    if (previous === undefined) delete process.env['MOBY_DISABLE_PIGZ'];
    else process.env['MOBY_DISABLE_PIGZ'] = previous;
  }
  const server = await startServe(t, dir, store);
  const ref = `${server.address}/par/run:1`;
  const pulled = await engine.docker(['pull', '-q', ref]);
  assert.equal(pulled.code, 0, `docker pull ${ref}: ${pulled.stderr}`);
  const ran = await engine.docker(['run', '--rm', '--network', 'none', ref, '/bin/sha256sum', '/data/big.bin', '/data/small/f39']);
  assert.equal(ran.code, 0, `docker run ${ref}: ${ran.stderr}`);
  const expected = [join(tree, 'data', 'big.bin'), join(tree, 'data', 'small', 'f39')];
  const sums = await Promise.all(expected.map(async (file) => sha256(await readFile(file)).slice('sha256:'.length)));
  assert.deepEqual(ran.stdout.trim().split('\n').map((line) => line.split(/\s+/)[0]), sums, 'the container sees the files packed');
});
