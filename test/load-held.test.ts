import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FIXTURES, cartorio, run, tempDir } from './helpers/cli.js';
import { startServe } from './helpers/clients.js';

// 64 concurrent clients mixing manifest GETs, whole and ranged blob GETs and disconnects
// mid-blob, while `cartorio load` keeps adding images: no failed request, no leaked file
// descriptor. Bounded: STORM_MS of traffic.
const CLIENTS = 64;
const STORM_MS = 15_000;

interface Reply {
  status: number;
  body: Buffer;
}

function get(agent: http.Agent, address: string, path: string, headers: Record<string, string> = {}, abortAfterFirstChunk = false): Promise<Reply | 'aborted'> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const request = http.get({ agent, host, port: Number(port), path, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (abortAfterFirstChunk) {
          request.destroy();
          resolve('aborted');
        }
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }));
      response.on('error', (error) => (abortAfterFirstChunk ? resolve('aborted') : reject(error)));
    });
    request.on('error', (error) => (abortAfterFirstChunk ? resolve('aborted') : reject(error)));
  });
}

async function fdCount(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

test(`${CLIENTS} concurrent clients while loads run: no failures, no leaked descriptors`, async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  const made = await run('bash', ['-c', `mkdir -p ${dir}/rootfs/data && head -c 24M /dev/zero | openssl enc -aes-256-ctr -nosalt -pass pass:held -pbkdf2 > ${dir}/rootfs/data/blob.bin`]);
  assert.equal(made.code, 0, made.stderr);
  const loaded = await cartorio(['load', '--store', store, join(dir, 'rootfs'), '--name', 'held/big', '--tag', '1', '--compression', 'none', '--json']);
  assert.equal(loaded.code, 0, loaded.stderr);
  const manifestDigest = (JSON.parse(loaded.stdout) as { digest: string }[])[0]?.digest ?? '';
  const manifestPath = join(store, 'held', 'big', 'blobs', 'sha256', manifestDigest.slice(7));
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as { layers: { digest: string; size: number }[] };
  const layer = manifest.layers[0] as { digest: string; size: number };
  const layerBytes = await readFile(join(store, 'held', 'big', 'blobs', 'sha256', layer.digest.slice(7)));

  const server = await startServe(t, dir, store, ['--log-level', 'error']);
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  t.after(() => agent.destroy());
  await get(agent, server.address, '/v2/held/big/manifests/1'); // warm up
  const fdsBefore = await fdCount(server.pid);

  const counts = { manifest: 0, blob: 0, range: 0, aborted: 0, loads: 0 };
  const failures: string[] = [];
  const deadline = Date.now() + STORM_MS;
  const client = async (id: number): Promise<void> => {
    let n = id;
    while (Date.now() < deadline) {
      n = (n * 1103515245 + 12345) % 2147483648;
      const pick = n % 100;
      try {
        if (pick < 40) {
          const reply = await get(agent, server.address, '/v2/held/big/manifests/1', { Accept: 'application/vnd.oci.image.manifest.v1+json' });
          if (reply === 'aborted' || reply.status !== 200 || createHash('sha256').update(reply.body).digest('hex') !== manifestDigest.slice(7)) failures.push(`manifest: ${reply === 'aborted' ? 'aborted' : reply.status}`);
          counts.manifest++;
        } else if (pick < 60) {
          const reply = await get(agent, server.address, `/v2/held/big/blobs/${layer.digest}`);
          if (reply === 'aborted' || reply.status !== 200 || !reply.body.equals(layerBytes)) failures.push(`blob: ${reply === 'aborted' ? 'aborted' : `${reply.status}, ${reply.body.length} bytes`}`);
          counts.blob++;
        } else if (pick < 85) {
          const start = n % (layer.size - 70_000);
          const end = start + (n % 65_536);
          const reply = await get(agent, server.address, `/v2/held/big/blobs/${layer.digest}`, { Range: `bytes=${start}-${end}` });
          if (reply === 'aborted' || reply.status !== 206 || !reply.body.equals(layerBytes.subarray(start, end + 1))) failures.push(`range ${start}-${end}: ${reply === 'aborted' ? 'aborted' : reply.status}`);
          counts.range++;
        } else {
          await get(agent, server.address, `/v2/held/big/blobs/${layer.digest}`, {}, true);
          counts.aborted++;
        }
      } catch (error) {
        failures.push(`request error: ${(error as Error).message}`);
      }
    }
  };
  const loader = async (): Promise<void> => {
    while (Date.now() < deadline - 2000) {
      const result = await cartorio(['load', '--store', store, join(FIXTURES, 'rootfs.tar'), '--name', 'held/big', '--tag', `extra${counts.loads}`]);
      if (result.code !== 0) failures.push(`load: ${result.stderr}`);
      counts.loads++;
    }
  };
  await Promise.all([loader(), ...Array.from({ length: CLIENTS }, (_, i) => client(i + 1))]);
  agent.destroy();
  await sleep(1000); // let the server close the sockets the agent dropped
  const fdsAfter = await fdCount(server.pid);
  const status = await readFile(`/proc/${server.pid}/status`, 'utf8');
  const peakMb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  t.diagnostic(`${JSON.stringify(counts)}; server fds ${fdsBefore} → ${fdsAfter}; server peak RSS ${peakMb.toFixed(0)} MB`);

  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} failed requests`);
  assert.ok(counts.manifest > 100 && counts.blob > 10 && counts.range > 50 && counts.aborted > 10 && counts.loads > 2, JSON.stringify(counts));
  assert.ok(fdsAfter <= fdsBefore + 2, `server file descriptors ${fdsBefore} before, ${fdsAfter} after`);
  // the images loaded during the storm are served
  const tags = await get(new http.Agent(), server.address, '/v2/held/big/tags/list');
  assert.ok(tags !== 'aborted' && JSON.parse(tags.body.toString()).tags.includes('extra0'));
});
