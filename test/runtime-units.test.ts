import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { constants as zlibConstants, zstdCompressSync } from 'node:zlib';
import { SUPPORTED_NODE, isSupported, runtimeLine } from '../src/cli/runtime.js';
import { ZstdFrames, inflating, sniffCompression, zstdCompressor, zstdProblem, type ZstdRuntime } from '../src/formats/input-stream.js';
import { LoadError } from '../src/formats/load-error.js';
import { OffThreadBlobSink } from '../src/store/copy-pool.js';
import { ROOT, tempDir } from './helpers/cli.js';

// The runtimes cartorio supports, and what it says on one without zstd (Node.js before 22.15),
// with that runtime injected: node:zlib as Node.js 20 has it.
const NODE_20: ZstdRuntime = { version: 'v20.20.2', zlib: {} };

test('package.json engines names the supported lines, and --version tells them apart', async () => {
  const { engines } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
  assert.equal(engines.node, SUPPORTED_NODE.map((line) => `^${line.major}.${line.minor}.0`).reverse().join(' || '));
  for (const [version, supported] of [['v24.0.0', true], ['v24.22.3', true], ['v22.15.0', true], ['v22.23.5', true], ['v22.14.0', false], ['v20.20.2', false], ['v23.11.0', false], ['v26.12.1', false]] as const) {
    assert.equal(isSupported(version), supported, version);
  }
  assert.equal(runtimeLine('v24.22.3'), 'Node.js v24.22.3 (supported: Node.js 24 or 22.15+)');
  assert.equal(runtimeLine('v20.20.2'), 'Node.js v20.20.2: not supported, use Node.js 24 or 22.15+');
});

test('a runtime without zstd: a .tar.zst is refused in one line naming the runtime; with zstd it is read', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'rootfs.tar.zst');
  await writeFile(file, zstdCompressSync(Buffer.alloc(1024)));
  assert.equal(zstdProblem(), undefined, 'this runtime has zstd');
  assert.equal(await sniffCompression(file), 'zstd');
  await assert.rejects(sniffCompression(file, NODE_20), (error: unknown) => {
    assert.ok(error instanceof LoadError);
    assert.equal(error.message, `${file}: is zstd-compressed: zstd needs Node.js 22.15 or later, and this is Node.js v20.20.2`);
    assert.equal(error.hint, `run cartorio on Node.js 24, or decompress it first: zstd -d ${file}`);
    return true;
  });
  assert.throws(() => inflating('zstd', 1024, NODE_20), { message: 'zstd needs Node.js 22.15 or later, and this is Node.js v20.20.2' });
  assert.throws(() => zstdCompressor(NODE_20), { message: 'zstd needs Node.js 22.15 or later, and this is Node.js v20.20.2' });
  assert.equal(inflating('gzip', 1024, NODE_20).length, 2, 'gzip needs nothing new');
});

test('the off-thread blob writer writes exactly the bytes of chunks that are slices of bigger buffers', async (t) => {
  const dir = await tempDir(t);
  const output = join(dir, 'blob');
  const sink = new OffThreadBlobSink(output);
  const source = Buffer.alloc(40000, 1);
  // Slices (never their whole ArrayBuffer) of 100 B, 3 KiB and 20 KiB: small copies land in the
  // shared Buffer pool, which Node.js 20 sent whole (8 KiB for 100 bytes) and Node.js 24 refuses.
  const chunks = [source.subarray(1, 101), source.subarray(200, 200 + 3072), source.subarray(5000, 25480), Buffer.from('end')];
  await pipeline(Readable.from(chunks), sink);
  const expected = Buffer.concat(chunks);
  assert.deepEqual(await sink.copied, { digest: `sha256:${createHash('sha256').update(expected).digest('hex')}`, size: expected.length });
  await sink.durable;
  assert.deepEqual(await readFile(output), expected);
});

test('the zstd frame walk passes whole streams fed byte by byte, and refuses every cut', async () => {
  const sink = () => new Writable({ write: (_chunk, _encoding, done) => done() });
  const skippable = Buffer.concat([Buffer.from([0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0]), Buffer.from('abc')]);
  const frames = [
    zstdCompressSync(Buffer.alloc(300000, 7)), // RLE blocks, over one 128 KiB block
    zstdCompressSync(randomBytes(5000), { params: { [zlibConstants.ZSTD_c_checksumFlag]: 1, [zlibConstants.ZSTD_c_contentSizeFlag]: 0 } }),
    skippable,
    zstdCompressSync(Buffer.from('tail')),
  ];
  const whole = Buffer.concat(frames);
  await pipeline(Readable.from([...whole].map((byte) => Buffer.from([byte]))), new ZstdFrames(), sink());
  await pipeline(Readable.from([whole]), new ZstdFrames(), sink());
  const first = frames[0]?.length ?? 0;
  for (const cut of [1, 4, 5, 9, first - 1, first + 3, whole.length - skippable.length - 1 - (frames[3]?.length ?? 0), whole.length - 1]) {
    await assert.rejects(pipeline(Readable.from([whole.subarray(0, cut)]), new ZstdFrames(), sink()), { message: /ends inside a frame|is not valid zstd/ }, `cut at ${cut}`);
  }
  await assert.rejects(pipeline(Readable.from([Buffer.concat([whole, Buffer.from('garbage!')])]), new ZstdFrames(), sink()), { message: /is not valid zstd/ });
  // On a runtime whose zstd stops after the first frame, a second one is refused, not dropped.
  await assert.rejects(pipeline(Readable.from([whole]), new ZstdFrames('v22.23.5'), sink()), { message: 'holds more than one zstd frame, and the zstd of Node.js v22.23.5 decodes only the first: run cartorio on Node.js 24' });
  await pipeline(Readable.from([frames[0] ?? Buffer.alloc(0)]), new ZstdFrames('v22.23.5'), sink());
});
