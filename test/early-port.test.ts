import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, type Socket, connect, createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EarlyPort, listenPlan } from '../src/cli/early-port.js';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUTS } from '../src/registry/http-server.js';
import { Metrics } from '../src/registry/metrics.js';
import { StartingServer } from '../src/registry/start-server.js';
import { CLI, FIXTURES } from './helpers/cli.js';
import { startChild } from './helpers/clients.js';

// `cartorio serve` binds its port before the program loads (src/cli/early-port.ts), then takes
// that socket over, and the connections it held, once it would listen there itself.

async function freePort(): Promise<number> {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Connects and sends GET `path`; resolves with everything the server sent once it closes. */
function rawGet(port: number, path: string): { socket: Socket; answer: Promise<string> } {
  const socket = connect(port, '127.0.0.1');
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const answer = new Promise<string>((resolve) => socket.on('close', () => resolve(Buffer.concat(chunks).toString())));
  socket.on('error', () => undefined);
  return { socket, answer };
}

function startingServer(): StartingServer {
  return new StartingServer({ timeouts: DEFAULT_TIMEOUTS, maxConnections: DEFAULT_MAX_CONNECTIONS });
}

test('a connection made before serve takes the early port is answered by the server that takes it', { timeout: 20_000 }, async (t) => {
  const port = await freePort();
  const early = await EarlyPort.bind(['--listen', `127.0.0.1:${port}`, '--workers', '1'], {});
  assert.ok(early, 'bound');
  const client = rawGet(port, '/v2/');
  const server = startingServer();
  t.after(async () => {
    client.socket.destroy();
    await server.close();
  });
  await sleep(100); // accepted by the early port meanwhile, unread

  await server.listen({ host: '127.0.0.1', port }, early.take({ host: '127.0.0.1', port }));
  assert.equal((server.server.address() as AddressInfo).port, port);
  await server.prepare(new Metrics());
  const answer = await client.answer;
  assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(answer, /\r\ndocker-distribution-api-version: registry\/2\.0\r\n/i);
  assert.match(answer, /\r\n\r\n\{\}$/);
  // and the connections after it
  assert.match(await rawGet(port, '/v2/').answer, /^HTTP\/1\.1 200 OK\r\n/);
});

test('an early port where serve does not listen is closed with what it held, and the address is free again', { timeout: 20_000 }, async () => {
  const port = await freePort();
  const early = await EarlyPort.bind([`--listen=127.0.0.1:${port}`, '--workers=1'], {});
  assert.ok(early);
  const client = rawGet(port, '/v2/');
  await sleep(100);
  // serve decided otherwise (here: SO_REUSEPORT for several processes)
  assert.equal(early.take({ host: '127.0.0.1', port, reusePort: true }), undefined);
  assert.equal(await client.answer, '', 'the held connection is closed unanswered');
  const again = createServer().listen(port, '127.0.0.1');
  await once(again, 'listening');
  await new Promise((resolve) => again.close(resolve));
});

test('the early port is bound only for plain --listen and --workers spellings, where commander would listen', async () => {
  const one = { host: '127.0.0.1', port: 0, reusePort: false };
  assert.deepEqual(listenPlan(['app.tar', '--listen', '127.0.0.1:0', '--workers', '1'], {}), one);
  assert.deepEqual(listenPlan(['-l', '127.0.0.1:0', '--workers', '1'], {}), one);
  assert.deepEqual(listenPlan(['-l127.0.0.1:0', '--workers=1', '-q'], {}), one);
  assert.deepEqual(listenPlan(['--listen=0.0.0.0:1', '--listen', '127.0.0.1:0', '--workers', '1'], {}), one, 'the last --listen counts');
  assert.deepEqual(listenPlan(['--workers', '1'], { CARTORIO_LISTEN: '127.0.0.1:0' }), one);
  assert.deepEqual(listenPlan([], { CARTORIO_LISTEN: '127.0.0.1:0', CARTORIO_WORKERS: '1' }), one);
  assert.deepEqual(listenPlan(['--workers', '1'], {}), { host: '0.0.0.0', port: 5000, reusePort: false }, "serve's default");
  assert.deepEqual(listenPlan(['--listen', '[::1]:0', '--workers', '3'], {}), { host: '::1', port: 0, reusePort: true }, 'several processes share the port');
  assert.deepEqual(listenPlan(['--workers', '1', '--', '--listen', '127.0.0.1:0'], {}), { host: '0.0.0.0', port: 5000, reusePort: false }, 'after --, an input');
  // anything else binds nothing: serve listens where commander says, as before
  for (const args of [['--listen', '127.0.0.1:0', '--help'], ['-h'], ['-ql', '127.0.0.1:0'], ['-qs', 'dir'], ['--listen', 'nowhere'], ['--listen', '127.0.0.1:0', '--workers', 'many']]) {
    assert.equal(listenPlan(args, {}), undefined, args.join(' '));
  }
  assert.equal(await EarlyPort.bind(['--help'], {}), undefined);
});

test('serve answers a client that connected before it was loaded', { timeout: 60_000 }, async (t) => {
  const port = await freePort();
  const started = startChild(t, process.execPath, [CLI, 'serve', join(FIXTURES, 'docker-save-busybox.tar'), '--listen', `127.0.0.1:${port}`, '--workers', '1', '-q']);
  // the first connection that the port accepts, as early as it does
  let first: { socket: Socket; answer: Promise<string> } | undefined;
  for (let attempt = 0; attempt < 5000 && !first; attempt++) {
    const socket = connect(port, '127.0.0.1');
    const connected = await new Promise<boolean>((resolve) => socket.once('connect', () => resolve(true)).once('error', () => resolve(false)));
    if (connected) {
      socket.destroy();
      first = rawGet(port, '/v2/busybox/tags/list');
    } else {
      await sleep(1);
    }
  }
  assert.ok(first, 'serve listened');
  const answer = await first.answer;
  assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/, started.stderr());
  assert.match(answer, /\{"name":"busybox","tags":\[[^\]]+\]\}$/);
});
