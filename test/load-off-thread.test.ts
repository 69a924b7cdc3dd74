import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, FIXTURES, cartorio, run, tempDir } from './helpers/cli.js';
import { WRITE_MAX, pieces } from '../src/store/blob-file.js';
import { expectRefusedLoads } from './helpers/refusals.js';

// Work a load does on worker threads (src/store/copy-pool.ts): layers of 8 MiB and more in an
// uncompressed archive are copied and hashed by offset while tar-stream parses the headers
// (src/formats/archive-reader.ts) — the fixtures are skopeo's docker-archive and oci-archive of an
// image with 12 and 9 MiB layers of random bytes —, and a directory packed uncompressed is hashed
// and written on a thread of its own while the main thread builds the tar.

const DOCKER = join(FIXTURES, 'big-layers-docker.tar');
const OCI = join(FIXTURES, 'big-layers-oci.tar');

async function skopeoLayers(reference: string): Promise<string[]> {
  const result = await run('skopeo', ['inspect', reference]);
  assert.equal(result.code, 0, `skopeo inspect ${reference}: ${result.stderr}`);
  return (JSON.parse(result.stdout) as { Layers: string[] }).Layers;
}

async function loadAndCheck(store: string, input: string, args: string[], reference: string): Promise<void> {
  const loaded = await cartorio(['load', '--store', store, input, ...args]);
  assert.equal(loaded.code, 0, loaded.stderr);
  const verified = await cartorio(['verify', '--store', store]);
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  // skopeo reads every blob back from the store, checking each digest as it copies
  const copied = await run('skopeo', ['copy', '-q', `oci:${join(store, reference)}`, `dir:${join(store, '..', 'copied-' + reference.replace(/[/:]/g, '-'))}`]);
  assert.equal(copied.code, 0, copied.stderr);
}

test('big layers are copied by offset with the digests skopeo wrote', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  // skopeo's docker-archive RepoTag is docker.io/cartorio/big:1: the name keeps its registry.
  await loadAndCheck(store, DOCKER, [], 'docker.io/cartorio/big:1');
  assert.deepEqual(await skopeoLayers(`oci:${join(store, 'docker.io', 'cartorio', 'big')}:1`), await skopeoLayers(`docker-archive:${DOCKER}`));
  await loadAndCheck(store, OCI, ['--name', 'cartorio/big-oci', '--tag', '1'], 'cartorio/big-oci:1');
  assert.deepEqual(await skopeoLayers(`oci:${join(store, 'cartorio', 'big-oci')}:1`), await skopeoLayers(`oci-archive:${OCI}:1`));
  // the same image as an OCI layout directory: its big blobs go to the copy pool too
  const layout = join(dir, 'layout');
  assert.equal((await run('skopeo', ['copy', '-q', `oci-archive:${OCI}:1`, `oci:${layout}:1`])).code, 0);
  await loadAndCheck(store, layout, ['--name', 'cartorio/big-layout'], 'cartorio/big-layout:1');
  assert.deepEqual(await skopeoLayers(`oci:${join(store, 'cartorio', 'big-layout')}:1`), await skopeoLayers(`oci:${layout}:1`));
});

test('a directory packed uncompressed (hashed off-thread) and gzip (hashed on the main thread) gives one diff_id', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  for (const [tag, compression] of [['plain', 'none'], ['gzip', 'gzip']] as const) {
    const loaded = await cartorio(['load', '--store', store, join(FIXTURES, 'rootfs'), '--name', 'dir/packed', '--tag', tag, '--compression', compression]);
    assert.equal(loaded.code, 0, loaded.stderr);
  }
  const config = async (tag: string): Promise<{ rootfs: { diff_ids: string[] } }> => {
    const result = await run('skopeo', ['inspect', '--config', `oci:${join(store, 'dir', 'packed')}:${tag}`]);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as { rootfs: { diff_ids: string[] } };
  };
  const plainLayers = await skopeoLayers(`oci:${join(store, 'dir', 'packed')}:plain`);
  assert.deepEqual((await config('plain')).rootfs.diff_ids, plainLayers, 'an uncompressed layer is its own diff_id');
  assert.deepEqual((await config('gzip')).rootfs.diff_ids, plainLayers);
  const verified = await cartorio(['verify', '--store', store]);
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
});

test('an archive whose entries carry pax headers loads the same image through the streaming path', async (t) => {
  const dir = await tempDir(t);
  const unpacked = join(dir, 'unpacked');
  await mkdir(unpacked);
  assert.equal((await run('tar', ['-C', unpacked, '-xf', DOCKER])).code, 0);
  const repacked = join(dir, 'pax.tar');
  const packed = await run('tar', ['-C', unpacked, '--format=posix', '-cf', repacked, '.']);
  assert.equal(packed.code, 0, packed.stderr);
  assert.match((await run('tar', ['-tf', repacked])).stdout, /PaxHeaders|\.tar/); // GNU tar writes a pax header per entry
  const first = await cartorio(['load', '--store', join(dir, 'a'), DOCKER]);
  const second = await cartorio(['load', '--store', join(dir, 'b'), repacked]);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stdout, first.stdout, 'same name and manifest digest');
});

// Where in the file the 12 MiB entry's content lies, from GNU tar's own listing (`-R`: block numbers).
async function bigLayerOffset(archive: string, name: RegExp): Promise<number> {
  const listing = await run('tar', ['-R', '-tvf', archive]);
  for (const line of listing.stdout.split('\n')) {
    const fields = /^block (\d+): \S+ \S+ +(\d+) .* (\S+)$/.exec(line);
    if (fields && Number(fields[2]) > 12_000_000 && name.test(fields[3] ?? '')) return (Number(fields[1]) + 1) * 512;
  }
  throw new Error(`no 12 MiB entry in ${archive}:\n${listing.stdout}`);
}

async function flipByte(source: string, target: string, offset: number): Promise<string> {
  const bytes = await readFile(source);
  bytes[offset] = (bytes[offset] ?? 0) ^ 0xff;
  await writeFile(target, bytes);
  return target;
}

test('damaged big layers are refused and the store is left as it was', async (t) => {
  await expectRefusedLoads(t, [
    {
      name: 'docker-archive: one byte changed in the middle of a 12 MiB layer',
      make: async (dir) => [await flipByte(DOCKER, join(dir, 'flipped.tar'), (await bigLayerOffset(DOCKER, /\.tar$/)) + 6 * 1024 * 1024)],
      problem: /layer "[0-9a-f]{64}\.tar" has digest sha256:[0-9a-f]{64} but the config says sha256:[0-9a-f]{64}; the archive is corrupt/,
    },
    {
      name: 'oci-archive: one byte changed in the middle of a 12 MiB blob',
      make: async (dir) => [await flipByte(OCI, join(dir, 'flipped.tar'), (await bigLayerOffset(OCI, /blobs\/sha256\//)) + 6 * 1024 * 1024), '--name', 'x/y'],
      problem: /blobs\/sha256\/[0-9a-f]{64}: content has digest sha256:[0-9a-f]{64} but the input names it sha256:[0-9a-f]{64}/,
    },
    {
      name: 'OCI layout: one byte changed in the middle of a 12 MiB blob',
      make: async (dir) => {
        const layout = join(dir, 'layout');
        assert.equal((await run('skopeo', ['copy', '-q', `oci-archive:${OCI}:1`, `oci:${layout}:1`])).code, 0);
        const blobs = join(layout, 'blobs', 'sha256');
        const listing = await run('find', [blobs, '-type', 'f', '-size', '+12000000c']);
        const big = listing.stdout.trim().split('\n')[0] ?? '';
        await flipByte(big, big, 6 * 1024 * 1024);
        return [layout, '--name', 'x/y'];
      },
      problem: /blobs\/sha256\/[0-9a-f]{64}: content has digest sha256:[0-9a-f]{64} but the input names it sha256:[0-9a-f]{64}/,
    },
    {
      name: 'docker-archive cut off in the middle of its 12 MiB layer',
      make: async (dir) => {
        const path = join(dir, 'cut.tar');
        const bytes = await readFile(DOCKER);
        await writeFile(path, bytes.subarray(0, (await bigLayerOffset(DOCKER, /\.tar$/)) + 4 * 1024 * 1024));
        return [path];
      },
      problem: /truncated/,
    },
    {
      name: 'docker-archive that ends 4 KiB short of the end of its 12 MiB layer',
      make: async (dir) => {
        const path = join(dir, 'short.tar');
        const bytes = await readFile(DOCKER);
        await writeFile(path, bytes.subarray(0, (await bigLayerOffset(DOCKER, /\.tar$/)) + 12 * 1024 * 1024 - 4096));
        return [path];
      },
      problem: /truncated/,
    },
  ]);
});

test('no write call hands the kernel more than 512 KiB of a blob (bigger ones cost 3× the system time, src/store/blob-file.ts)', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  const log = join(dir, 'strace');
  // The 12 and 9 MiB layers go through the copy pool's threads, the 2 MiB one through BlobFile;
  // the directory through the off-thread sink (uncompressed) and BlobFile (gzip).
  const loads = [
    [DOCKER],
    [join(FIXTURES, 'rootfs'), '--name', 'dir/packed', '--tag', 'plain', '--compression', 'none'],
    [join(FIXTURES, 'rootfs'), '--name', 'dir/packed', '--tag', 'gzip', '--compression', 'gzip'],
  ];
  const sizes: number[] = [];
  for (const args of loads) {
    const traced = await run('strace', ['-f', '-qq', '-o', log, '-e', 'trace=write,writev,pwrite64,pwritev,pwritev2', process.execPath, CLI, 'load', '-q', '--store', store, ...args]);
    assert.equal(traced.code, 0, traced.stderr);
    for (const line of (await readFile(log, 'utf8')).split('\n')) {
      // a call on one thread while another runs is logged as `<unfinished ...>`, then `<... pwrite64 resumed>) = N`
      const written = /^\d+\s+(?:<\.\.\. )?p?writev?(?:64|2)?[( ].* = (\d+)$/.exec(line);
      if (written) sizes.push(Number(written[1]));
    }
  }
  assert.ok(sizes.filter((size) => size === 512 * 1024).length > 30, `expected the layers in 512 KiB writes, saw ${sizes.length} writes`);
  assert.equal(sizes.reduce((most, size) => Math.max(most, size), 0), 512 * 1024);
});

test('BlobFile regroups a writev into runs of at most WRITE_MAX bytes, in order', () => {
  const buffers = [Buffer.from('abc'), Buffer.from('defgh'), Buffer.from('ij')];
  const runs = [...pieces(buffers, 4)];
  assert.deepEqual(runs.map((run) => run.map((buffer) => buffer.toString())), [['abc', 'd'], ['efgh'], ['ij']]);
  assert.deepEqual([...pieces([Buffer.alloc(WRITE_MAX * 2 + 1)], WRITE_MAX)].map((run) => run.reduce((sum, buffer) => sum + buffer.length, 0)), [WRITE_MAX, WRITE_MAX, 1]);
});
