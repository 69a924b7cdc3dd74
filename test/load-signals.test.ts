import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, ROOT, run, tempDir } from './helpers/cli.js';

async function tempBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name)).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

// Ctrl-C (SIGINT) or a stop (SIGTERM) in the middle of a big load: exit 130 / 143, and this run's
// temp files are gone at once, not left for a later load to sweep.
test('SIGINT and SIGTERM during load and convert remove the run\'s temp files', async (t) => {
  const dir = await tempDir(t);
  const rootfs = join(dir, 'rootfs');
  await mkdir(rootfs);
  // Incompressible, so gzip keeps the load busy for seconds.
  const made = await run('bash', ['-c', `head -c 200000000 /dev/urandom > "${join(rootfs, 'blob.bin')}"`]);
  assert.equal(made.code, 0, made.stderr);
  for (const [command, signal, code] of [['load', 'SIGINT', 130], ['load', 'SIGTERM', 143], ['convert', 'SIGINT', 130]] as const) {
    const store = join(dir, `store-${command}-${signal}`);
    const dest = join(dir, `dest-${command}-${signal}`);
    const args = command === 'load' ? ['load', '--quiet', '--store', store, rootfs, '--name', 'big'] : ['convert', '--quiet', rootfs, dest];
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
    const scratch = command === 'load' ? join(store, '.tmp') : dir;
    // Wait until the load has written a good part of its layer.
    for (let i = 0; i < 400 && (await tempBytes(command === 'load' ? scratch : join(dir, `.dest-${command}-${signal}.cartorio-${child.pid}`))) < 20_000_000; i++) await sleep(25);
    process.kill(child.pid ?? 0, signal);
    assert.equal(await exited, code, `${command} ${signal}: ${stderr}`);
    if (command === 'load') assert.equal(await tempBytes(store), 0, `${command} ${signal}: nothing left under the store`);
    else assert.deepEqual((await readdir(dir)).filter((name) => name.includes('cartorio-')), [], 'the scratch store is gone');
  }
});

test('SIGTERM during a resource put removes its scratch layout and temp files (exit 143)', async (t) => {
  const dir = await tempDir(t);
  const work = join(dir, 'work');
  await mkdir(join(work, 'image', 'rootfs', 'etc'), { recursive: true });
  await writeFile(join(work, 'image', 'metadata.json'), '{"env":["PATH=/bin"]}');
  const made = await run('bash', ['-c', `head -c 200000000 /dev/urandom > "${join(work, 'image', 'rootfs', 'etc', 'blob.bin')}"`]);
  assert.equal(made.code, 0, made.stderr);
  const store = join(dir, 'store');
  await mkdir(store);
  const tmp = join(dir, 'tmp');
  await mkdir(tmp);
  const child = spawn(process.execPath, [join(ROOT, 'assets', 'out'), work], { stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, TMPDIR: tmp } });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.end(JSON.stringify({ source: { repository: 'app', store: { type: 'file', path: store } }, params: { image: 'image' } }));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
  for (let i = 0; i < 400 && (await tempBytes(tmp)) < 20_000_000; i++) await sleep(25);
  assert.ok((await tempBytes(tmp)) >= 20_000_000, 'the put was writing its layer when stopped');
  process.kill(child.pid ?? 0, 'SIGTERM');
  assert.equal(await exited, 143, stderr);
  assert.deepEqual(await readdir(tmp), [], 'no scratch left in TMPDIR');
  assert.equal(await tempBytes(store), 0, 'nothing in the store');
});
