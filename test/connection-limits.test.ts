import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { buildRegistry, type RegistryOptions } from '../src/registry/app.js';
import { ServedImages } from '../src/store/image-source.js';
import { StoreReader } from '../src/store/reader.js';
import { tempDir } from './helpers/cli.js';
import { makeTestCA } from './helpers/clients.js';
import { makeRegistryStore } from './helpers/registry-store.js';

// Connections that hold the server without asking anything: a TLS client that never handshakes
// (no HTTP timeout applies before the handshake ends), and more connections than the server takes.

async function listening(t: { after: (fn: () => Promise<void>) => void }, options: Partial<RegistryOptions>): Promise<number> {
  const root = join(await tempDir(t), 'store');
  await makeRegistryStore(root);
  const app = buildRegistry({ images: new ServedImages([new StoreReader(root)]), logger: false, ...options });
  t.after(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  return (app.server.address() as { port: number }).port;
}

/** Resolves with how long the server took to close `socket`, or undefined if it had not after `ms`. */
function closedWithin(socket: Socket, ms: number): Promise<number | undefined> {
  const started = performance.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(undefined);
    }, ms);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(performance.now() - started);
    });
  });
}

// A JSON-lines pino stream the test can read.
function logLines(): { stream: Writable; lines: () => string[] } {
  let text = '';
  const stream = new Writable({ write: (chunk: Buffer, _encoding, done) => ((text += chunk.toString()), done()) });
  return { stream, lines: () => text.split('\n').filter(Boolean) };
}

test('a TLS connection that never handshakes is closed after the handshake timeout; a real handshake still works', async (t) => {
  const dir = await tempDir(t);
  const ca = await makeTestCA(dir);
  const port = await listening(t, { tls: { cert: await readFile(ca.cert), key: await readFile(ca.key) }, timeouts: { handshakeTimeout: 500 } });
  // Node's default is 120 s: 10 s of silence tells the two apart.
  const silent = await closedWithin(connect(port, '127.0.0.1'), 10_000);
  assert.ok(silent !== undefined, 'a connection that never starts TLS is still open after 10 s');
  const secure = tlsConnect({ port, host: '127.0.0.1', ca: await readFile(join(ca.caDir, 'ca.crt')) });
  await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
  let answer = '';
  secure.on('data', (chunk: Buffer) => (answer += chunk.toString()));
  secure.write('GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  await new Promise((resolve) => secure.once('close', resolve));
  assert.match(answer, /^HTTP\/1\.1 200 /);
});

test('beyond maxConnections a connection is closed as it arrives, the log says so once, and one ending makes room', async (t) => {
  const log = logLines();
  const port = await listening(t, { maxConnections: 2, logger: { level: 'warn', stream: log.stream } });
  const held = [connect(port, '127.0.0.1'), connect(port, '127.0.0.1')];
  for (const socket of held) await new Promise((resolve) => socket.once('connect', resolve));
  // Node counts a connection once it has accepted it: the two are accepted before the next arrive.
  await new Promise((resolve) => setTimeout(resolve, 100));
  for (let i = 0; i < 3; i++) assert.ok((await closedWithin(connect(port, '127.0.0.1'), 3000)) !== undefined, `connection ${i + 3} is closed`);
  const warnings = log.lines().filter((line) => line.includes('connections are open, the most this server takes'));
  assert.equal(warnings.length, 1, log.lines().join('\n'));
  assert.equal((JSON.parse(warnings[0] ?? '{}') as { maxConnections: number }).maxConnections, 2);
  held[0]?.destroy();
  await new Promise((resolve) => setTimeout(resolve, 100));
  const answer = await fetch(`http://127.0.0.1:${port}/v2/`);
  assert.equal(answer.status, 200, 'room for one more once a connection ended');
  held[1]?.destroy();
});
