import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { copyFile, rename } from 'node:fs/promises';
import { get } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseWorkers } from '../src/cli/serve.js';
import { hasReusePort, parseCpuMax, workersFor } from '../src/cli/worker-count.js';
import { CLI, FIXTURES, cartorio, tempDir } from './helpers/cli.js';
import { readyFileContent, startChild, whenReady } from './helpers/clients.js';

// `serve --workers 2`: one port, two processes (the primary and a forked worker), each serving
// the same archive in place. Every request opens its own connection (agent: false), so the
// kernel spreads them over both processes' sockets.

interface Answer {
  status: number;
  body: Buffer;
}

/** GET on a connection of its own; `paceMs`: wait that long after each chunk (a slow client). */
function fetchAlone(address: string, path: string, paceMs = 0): Promise<Answer> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    get({ host, port: Number(port), path, agent: false, headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (paceMs > 0) {
          response.pause();
          setTimeout(() => response.resume(), paceMs);
        }
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }));
      response.on('error', reject);
    }).on('error', reject);
  });
}

async function json(address: string, path: string): Promise<{ status: number; value: Record<string, unknown> }> {
  const answer = await fetchAlone(address, path);
  return { status: answer.status, value: JSON.parse(answer.body.toString()) as Record<string, unknown> };
}

/** The pids of the processes that logged `message`. */
function pidsLogging(logs: string, message: string): Set<number> {
  const pids = new Set<number>();
  for (const line of logs.split('\n')) {
    if (!line.includes(message)) continue;
    pids.add((JSON.parse(line) as { pid: number }).pid);
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('--workers: auto, or a count from 1; anything else is one line and exit code 2', async () => {
  for (const args of [['--workers', '0'], ['--workers', 'many']]) {
    const refused = await cartorio(['serve', '--listen', '127.0.0.1:0', ...args]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /^error: option '--workers <n\|auto>' argument '[^']+' is invalid\. expected auto or a number of processes from 1 to 256\n/);
  }
  assert.equal(parseWorkers('auto'), 'auto');
  assert.equal(parseWorkers('3'), 3);
  for (const bad of ['0', '-1', '1.5', 'two', '', '100000']) assert.throws(() => parseWorkers(bad), /expected auto or a number of processes/, bad);
});

test('auto reads the cgroup v2 cpu.max quota, rounded up, within the cores the process may use', () => {
  assert.equal(parseCpuMax('max 100000\n'), undefined);
  assert.equal(parseCpuMax('200000 100000\n'), 2);
  assert.equal(parseCpuMax('150000 100000'), 1.5);
  assert.equal(parseCpuMax('50000 100000'), 0.5);
  assert.equal(parseCpuMax('100000'), 1, 'the period defaults to 100000');
  for (const bad of ['', 'garbage', '-5 100000', '0 100000', '100000 0']) assert.equal(parseCpuMax(bad), undefined, bad);
  assert.equal(workersFor(8, undefined), 8);
  assert.equal(workersFor(8, 1.5), 2);
  assert.equal(workersFor(8, 0.5), 1);
  assert.equal(workersFor(2, 4), 2, 'a quota above the cores allowed: the cores');
  assert.equal(workersFor(1, undefined), 1);
  // older Node.js ignores reusePort: auto is then 1
  for (const [version, has] of [['24.0.0', true], ['23.1.0', true], ['23.0.0', false], ['22.15.0', true], ['22.11.0', false], ['20.20.0', false]] as const) assert.equal(hasReusePort(version), has, version);
});

test('serve --workers 2: both serve; a killed worker is replaced while the server answers; /metrics sums; SIGHUP reaches both; SIGTERM drains both', async (t) => {
  const dir = await tempDir(t);
  const readyFile = join(dir, 'ready');
  const started = startChild(t, process.execPath, [CLI, 'serve', join(FIXTURES, 'big-layers-docker.tar'), '--workers', '2', '--listen', '127.0.0.1:0', '--ready-file', readyFile, '--log-level', 'info', '-q']);
  const address = await whenReady(started, readyFileContent(readyFile), 'cartorio serve --workers 2');
  const primary = started.child.pid ?? 0;
  const workerPid = (): number | undefined => [...pidsLogging(started.stderr(), 'Server listening')].filter((pid) => pid !== primary && alive(pid)).at(-1);

  // the ready file is written once every process listens: /healthz says so from the start
  assert.deepEqual((await json(address, '/healthz')).value.workers, { up: 2, want: 2 });

  // a worker killed: /healthz fails until another one listens, and the primary answers meanwhile.
  // (A connection the kernel had queued on the dead worker's socket is reset: SO_REUSEPORT moves
  // it to another socket only with net.ipv4.tcp_migrate_req=1.)
  const first = workerPid();
  assert.ok(first !== undefined, 'a worker logged that it listens');
  process.kill(first, 'SIGKILL');
  const down = await until('/healthz to report the dead worker', async () => {
    const health = await json(address, '/healthz').catch(() => undefined);
    return health?.status === 503 ? health.value : undefined;
  });
  assert.deepEqual({ status: down.status, workers: down.workers }, { status: 'workers down', workers: { up: 1, want: 2 } });
  await until('a new worker', async () => {
    const health = await json(address, '/healthz');
    assert.ok(health.status === 200 || health.value.status === 'workers down', JSON.stringify(health.value));
    return health.status === 200 ? true : undefined;
  });
  const second = workerPid();
  assert.ok(second !== undefined && second !== first, 'another worker listens');
  assert.match(started.stderr(), new RegExp(`"worker":${first}.*died \\(SIGKILL\\); starting another`));

  // both serve: 40 connections answered by two pids; any scrape sums both processes
  const answers = await Promise.all(Array.from({ length: 40 }, () => fetchAlone(address, '/v2/')));
  assert.ok(answers.every((answer) => answer.status === 200));
  await sleep(100);
  const served = pidsLogging(started.stderr().split('\n').filter((line) => line.includes('"url":"/v2/"')).join('\n'), 'incoming request');
  assert.deepEqual([...served].sort(), [primary, second].sort(), 'requests reached both processes');
  for (let i = 0; i < 4; i++) {
    const metrics = (await fetchAlone(address, '/metrics')).body.toString();
    assert.match(metrics, /^cartorio_server_processes 2$/m);
    assert.match(metrics, /^cartorio_http_requests_total\{route="base",method="GET",status="200"\} 40$/m);
  }

  // SIGHUP to the primary: every process reads the archive again
  process.kill(primary, 'SIGHUP');
  await until('both processes to re-read the archive', async () => (pidsLogging(started.stderr(), 'SIGHUP: archives read again').size === 2 ? true : undefined));

  // SIGTERM: downloads already running on either process finish whole; then every process exits
  const manifest = JSON.parse((await fetchAlone(address, '/v2/cartorio/big/manifests/1')).body.toString()) as { layers: { digest: string; size: number }[] };
  const layer = manifest.layers.reduce((a, b) => (a.size >= b.size ? a : b));
  const downloads = Array.from({ length: 8 }, () => fetchAlone(address, `/v2/cartorio/big/blobs/${layer.digest}`, 10));
  await sleep(300);
  const exited = new Promise<number | null>((resolve) => started.child.once('exit', (code) => resolve(code)));
  process.kill(primary, 'SIGTERM');
  for (const download of await Promise.all(downloads)) {
    assert.equal(download.status, 200);
    assert.equal(download.body.length, layer.size);
    assert.equal(`sha256:${createHash('sha256').update(download.body).digest('hex')}`, layer.digest);
  }
  assert.equal(await exited, 0);
  assert.equal(pidsLogging(started.stderr(), 'shutting down').size, 2, 'both processes drained');
  assert.ok(!alive(second), 'the worker exited with the primary');
});

test('serve --workers 2: a worker started after its archive was replaced refuses to serve other bytes until SIGHUP', async (t) => {
  const dir = await tempDir(t);
  const archive = join(dir, 'app.tar');
  await copyFile(join(FIXTURES, 'docker-save-busybox.tar'), archive);
  const readyFile = join(dir, 'ready');
  const started = startChild(t, process.execPath, [CLI, 'serve', `app=${archive}`, '--workers', '2', '--listen', '127.0.0.1:0', '--ready-file', readyFile, '--log-level', 'info', '-q']);
  const address = await whenReady(started, readyFileContent(readyFile), 'cartorio serve --workers 2');
  const primary = started.child.pid ?? 0;
  const before = (await fetchAlone(address, '/v2/app/tags/list')).body.toString();

  // another image renamed over the file; the primary keeps serving the bytes it opened
  await copyFile(join(FIXTURES, 'docker25-save.tar'), `${archive}.new`);
  await rename(`${archive}.new`, archive);
  const worker = [...pidsLogging(started.stderr(), 'Server listening')].find((pid) => pid !== primary);
  assert.ok(worker !== undefined);
  process.kill(worker, 'SIGKILL');
  await until('the replacement worker to refuse', async () => (started.stderr().includes('changed since the first serving process') ? true : undefined));
  assert.equal((await json(address, '/healthz')).status, 503);
  for (let i = 0; i < 10; i++) assert.equal((await fetchAlone(address, '/v2/app/tags/list')).body.toString(), before, 'only the old bytes are served');

  // SIGHUP: the primary serves the new file, and the next worker opens the same one
  process.kill(primary, 'SIGHUP');
  await until('a worker serving the new file', async () => ((await json(address, '/healthz')).status === 200 ? true : undefined), 20_000);
  const after = new Set<string>();
  for (let i = 0; i < 10; i++) after.add((await fetchAlone(address, '/v2/app/tags/list')).body.toString());
  assert.equal(after.size, 1, 'both processes answer the same');
  assert.notEqual([...after][0], before);
});

test('serve --workers 2: SIGTERM while the workers start stops cleanly (exit 0), not with an unsettled start', async (t) => {
  const started = startChild(t, process.execPath, [CLI, 'serve', join(FIXTURES, 'docker-save-busybox.tar'), '--workers', '2', '--listen', '127.0.0.1:0', '--log-level', 'info', '-q']);
  const primary = started.child.pid ?? 0;
  const exited = once(started.child, 'exit');
  // The primary listens first, then forks its worker (~100 ms to listen): the signal lands in between.
  await until('the primary to listen', async () => (pidsLogging(started.stderr(), 'Server listening').has(primary) ? true : undefined));
  started.child.kill('SIGTERM');
  const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
  assert.equal(started.stderr().includes('unsettled'), false, started.stderr());
  assert.deepEqual({ code, signal }, { code: 0, signal: null });
});

test('serve --workers 2 on a port another server already listens on: one line, exit 1, and every connection stays with the first', async (t) => {
  const dir = await tempDir(t);
  const readyFile = join(dir, 'ready');
  const first = startChild(t, process.execPath, [CLI, 'serve', join(FIXTURES, 'docker-save-busybox.tar'), '--workers', '2', '--listen', '127.0.0.1:0', '--ready-file', readyFile, '-q']);
  const address = await whenReady(first, readyFileContent(readyFile), 'the first cartorio serve --workers 2');
  const catalog = (await fetchAlone(address, '/v2/_catalog')).body.toString();
  const port = address.split(':')[1] ?? '';

  // SO_REUSEPORT would let the second bind: it must notice the first and leave, on the same
  // address or on the wildcard that covers it
  for (const listen of [address, `0.0.0.0:${port}`]) {
    const second = startChild(t, process.execPath, [CLI, 'serve', join(FIXTURES, 'docker25-save.tar'), '--workers', '2', '--listen', listen, '-q']);
    const code = await Promise.race([once(second.child, 'exit').then(([exitCode]) => exitCode as number | null), sleep(15_000).then(() => 'still serving')]);
    assert.equal(code, 1, second.stderr());
    assert.match(second.stderr(), new RegExp(`^cartorio serve: cannot listen on ${listen.replace(/\./g, '\\.')}: another process listens there already, and --workers \\(SO_REUSEPORT\\) would split the port's connections between the two servers\\n  hint: stop it \\(\`ss -ltnp 'sport = :${port}'\` names it\\), or choose another --listen\\n$`));
  }
  // one process without --workers: the kernel refuses the bind itself
  const plain = await cartorio(['serve', join(FIXTURES, 'docker25-save.tar'), '--workers', '1', '--listen', address, '-q']);
  assert.equal(plain.code, 1);
  assert.match(plain.stderr, new RegExp(`^cartorio serve: cannot listen on ${address.replace(/\./g, '\\.')}: listen EADDRINUSE`));

  const answers = await Promise.all(Array.from({ length: 30 }, () => fetchAlone(address, '/v2/_catalog')));
  assert.deepEqual(new Set(answers.map((answer) => answer.body.toString())), new Set([catalog]), 'only the first server answers');
});
