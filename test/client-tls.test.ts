import * as assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { RegistryClient } from '../src/client/registry-client.js';
import { run, tempDir } from './helpers/cli.js';

// A registry's /v2/ over TLS with a self-signed certificate made by openssl: what `ca_certs`
// and `insecure` are for. No image traffic: the transport is the same as over plain HTTP.
function answerV2(req: { url?: string }, res: { writeHead: (s: number, h: Record<string, string>) => void; end: (b: string) => void }): void {
  res.writeHead(req.url === '/v2/' ? 200 : 404, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
  res.end('{}');
}

async function listen(t: { after: (fn: () => Promise<void>) => void }, server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  });
  return (server.address() as AddressInfo).port;
}

test('TLS: self-signed registry, ca_certs, insecure, plain HTTP, refused', async (t) => {
  const dir = await tempDir(t);
  const made = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
  assert.equal(made.code, 0, made.stderr);
  const cert = await readFile(join(dir, 'cert.pem'), 'utf8');
  const httpsPort = await listen(t, createHttpsServer({ key: await readFile(join(dir, 'key.pem')), cert }, answerV2));
  const httpPort = await listen(t, createHttpServer(answerV2));
  const ping = async (options: ConstructorParameters<typeof RegistryClient>[0]): Promise<void> => {
    const client = new RegistryClient(options);
    try {
      await client.ping();
    } finally {
      client.close();
    }
  };

  await assert.rejects(ping({ url: `https://127.0.0.1:${httpsPort}` }), {
    message: `GET https://127.0.0.1:${httpsPort}/v2/: self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT) — trust the registry's CA: ca_certs, or a PEM in the worker's /etc/ssl/certs (SSL_CERT_DIR, SSL_CERT_FILE); or set insecure: true`,
  });
  await ping({ url: `https://127.0.0.1:${httpsPort}`, caCerts: [cert] });
  await ping({ url: `127.0.0.1:${httpsPort}`, caCerts: [cert] });
  await ping({ url: `https://127.0.0.1:${httpsPort}`, insecure: true });
  // Bare host:port with insecure means plain HTTP.
  await ping({ url: `127.0.0.1:${httpPort}`, insecure: true });
  await assert.rejects(ping({ url: `https://127.0.0.1:${httpPort}` }), /^RegistryClientError: GET https:\/\/127\.0\.0\.1:\d+\/v2\/: .* — the registry may speak plain HTTP: use an http:\/\/ url or insecure: true$/);
  await assert.rejects(ping({ url: 'http://127.0.0.1:1' }), { message: 'GET http://127.0.0.1:1/v2/: connect ECONNREFUSED 127.0.0.1:1 — check source.store.url' });
});
