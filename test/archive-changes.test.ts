import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, open, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { hashSync } from 'bcryptjs';
import { readTarHeaders, type TarEntry } from '../src/formats/tar-headers.js';
import { FIXTURES, tempDir } from './helpers/cli.js';
import { ACCEPT, serveArgs } from './helpers/serve-archive.js';

// An archive served in place is read through a handle held open: replaced by rename, it keeps its
// old bytes; rewritten in place, the handle sees the new ones. Blobs proven by an earlier download
// must then be hashed again, never sent whole under their digest with other bytes.

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

interface Image {
  config: { digest: string; size: number };
  layers: { digest: string; size: number }[];
}

async function imageOf(address: string, repository: string, headers: Record<string, string> = {}): Promise<Image> {
  const response = await fetch(`http://${address}/v2/${repository}/manifests/1`, { headers: { accept: ACCEPT, ...headers } });
  assert.equal(response.status, 200);
  return (await response.json()) as Image;
}

// The archive entry holding exactly the bytes of `digest`.
async function entryHolding(archive: string, digest: string, size: number): Promise<TarEntry> {
  const handle = await open(archive, 'r');
  try {
    for (const entry of await readTarHeaders(archive, handle, (await handle.stat()).size)) {
      if (entry.type !== 'file' || entry.size !== size) continue;
      const bytes = Buffer.alloc(size);
      await handle.read(bytes, 0, size, entry.dataOffset);
      if (sha256(bytes) === digest) return entry;
    }
  } finally {
    await handle.close();
  }
  assert.fail(`${archive} holds ${digest}`);
}

// One byte flipped in the middle of the entry: the file keeps its size.
async function flipInPlace(archive: string, entry: TarEntry): Promise<void> {
  const handle = await open(archive, 'r+');
  const at = entry.dataOffset + Math.floor(entry.size / 2);
  const byte = Buffer.alloc(1);
  await handle.read(byte, 0, 1, at);
  byte[0] = (byte[0] ?? 0) ^ 0xff;
  await handle.write(byte, 0, 1, at);
  await handle.close();
}

async function download(url: string): Promise<Buffer> {
  const response = await fetch(url);
  assert.equal(response.status, 200, url);
  return Buffer.from(await response.arrayBuffer());
}

test('an archive rewritten in place (same size) after its config and layer were proven: neither is sent whole with the new bytes', async (t) => {
  const dir = await tempDir(t);
  for (const { file, name } of [{ file: 'big-layers-docker.tar' }, { file: 'big-layers-oci.tar', name: 'cartorio/big' }]) {
    const archive = join(dir, file);
    await copyFile(join(FIXTURES, file), archive);
    // One process: what /healthz counts is what the process answering it saw (serve-workers covers verdicts across processes).
    const server = await serveArgs(t, dir, [name === undefined ? archive : `${name}=${archive}`, '--log-level', 'info', '--workers', '1']);
    const image = await imageOf(server.address, 'cartorio/big');
    const layer = [...image.layers].sort((a, b) => b.size - a.size)[0];
    assert.ok(layer);
    const blobs = [image.config, layer];
    const url = (digest: string): string => `http://${server.address}/v2/cartorio/big/blobs/${digest}`;
    // Downloaded whole once: proven (the config at start, the layer by this hash as it streamed).
    for (const blob of blobs) assert.equal(sha256(await download(url(blob.digest))), blob.digest);
    const entries = await Promise.all(blobs.map((blob) => entryHolding(archive, blob.digest, blob.size)));
    for (const entry of entries) await flipInPlace(archive, entry);
    for (const blob of blobs) {
      const got = await fetch(url(blob.digest)).then(async (response) => Buffer.from(await response.arrayBuffer())).catch(() => undefined);
      assert.ok(got === undefined || sha256(got) === blob.digest, `${file}: ${blob.digest} was sent whole with other bytes (${got && sha256(got)})`);
      assert.equal(got, undefined, `${file}: the download is cut`);
      const refused = await fetch(url(blob.digest));
      assert.equal(refused.status, 500, `${file}: refused from now on`);
      const body = await refused.text();
      assert.ok(!body.includes(dir) && !body.includes(basename(archive)), `${file}: the error body names no file of the server: ${body}`);
    }
    await sleep(100);
    const logs = server.logs();
    const changed = logs.split('\n').find((line) => line.includes('archive changed in place'));
    assert.ok(changed?.includes(archive), `${file}: the log names the archive: ${logs}`);
    for (const [i, blob] of blobs.entries()) {
      assert.ok(logs.split('\n').some((line) => line.includes('do not match their digest') && line.includes(blob.digest) && line.includes(entries[i]?.path ?? '?')), `${file}: the log names ${blob.digest}`);
    }
    const health = await fetch(`http://${server.address}/healthz`);
    assert.equal(health.status, 200, 'still serving: degraded, not down');
    assert.deepEqual(await health.json(), { status: 'degraded', archives: { served: 1, changedInPlace: 1 }, refusedBlobs: 2 });
  }
});

test('an archive rewritten in place while a proven layer downloads: the download is cut before its end', async (t) => {
  const dir = await tempDir(t);
  const archive = join(dir, 'images.tar');
  await copyFile(join(FIXTURES, 'big-layers-docker.tar'), archive);
  const server = await serveArgs(t, dir, [archive, '--log-level', 'info']);
  const layer = [...(await imageOf(server.address, 'cartorio/big')).layers].sort((a, b) => b.size - a.size)[0];
  assert.ok(layer);
  const url = `http://${server.address}/v2/cartorio/big/blobs/${layer.digest}`;
  assert.equal(sha256(await download(url)), layer.digest, 'proven by a whole download');
  const entry = await entryHolding(archive, layer.digest, layer.size);
  const response = await fetch(url);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  let received = (await reader.read()).value?.length ?? 0;
  // The layer (more than loopback's socket buffers) is still being read when a byte near its end changes.
  await flipInPlace(archive, { ...entry, dataOffset: entry.dataOffset + Math.floor(entry.size / 2) - 1 });
  await assert.rejects(async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received += value.length;
    }
  }, 'the download is cut');
  assert.ok(received < layer.size, `${received} of ${layer.size} bytes`);
  await sleep(100);
  assert.match(server.logs(), /archive changed while the blob was being sent/);
});

test('/healthz names no file, entry or digest, with auth on and --verify failures; the log does', async (t) => {
  const dir = await tempDir(t);
  const corrupt = join(dir, 'corrupt.tar');
  await copyFile(join(FIXTURES, 'big-layers-docker.tar'), corrupt);
  const handle = await open(corrupt, 'r');
  const entries = await readTarHeaders(corrupt, handle, (await handle.stat()).size).finally(() => handle.close());
  const layer = entries.filter((entry) => entry.type === 'file').sort((a, b) => b.size - a.size)[0];
  assert.ok(layer);
  await flipInPlace(corrupt, layer);
  await writeFile(join(dir, 'htpasswd'), `alice:${hashSync('wonderland', 4)}\n`);
  const server = await serveArgs(t, dir, [corrupt, '--verify', '--htpasswd', join(dir, 'htpasswd'), '--log-level', 'info']);
  let health: { status?: string; verification?: { state: string; failed: number } } = {};
  let text = '';
  for (let i = 0; i < 100 && health.verification?.state !== 'done'; i++) {
    await sleep(100);
    text = await (await fetch(`http://${server.address}/healthz`)).text();
    health = JSON.parse(text) as typeof health;
  }
  assert.equal(health.verification?.state, 'done', text);
  assert.equal(health.verification?.failed, 1, text);
  assert.equal(health.status, 'degraded');
  for (const secret of [dir, 'corrupt.tar', layer.path, 'sha256:', '/']) assert.ok(!text.includes(secret), `/healthz says "${secret}": ${text}`);
  const logged = server.logs().split('\n').find((line) => line.includes('verification: blob does not match its digest'));
  assert.ok(logged?.includes(corrupt) && logged.includes(layer.path) && logged.includes('sha256:'), server.logs());
});
