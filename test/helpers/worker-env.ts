import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { run } from './cli.js';
import { startChild, whenReady, type After } from './clients.js';

/** A name only the test proxy can resolve (its own /etc/hosts, in its own mount namespace). */
export const PROXY_ONLY_HOST = 'registry.cartorio.test';

/** A private CA and a server certificate it signed, for 127.0.0.1 and PROXY_ONLY_HOST (openssl). */
export interface TestCa {
  /** A directory holding only the CA's PEM: what a worker mounts at /etc/ssl/certs. */
  certsDir: string;
  caPem: string;
  cert: string;
  key: string;
}

export async function makeTestCa(dir: string): Promise<TestCa> {
  const certsDir = join(dir, 'certs');
  await mkdir(certsDir, { recursive: true });
  const caPem = join(certsDir, 'cartorio-test-ca.pem');
  const ossl = async (args: string[]): Promise<void> => {
    const result = await run('openssl', args);
    if (result.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${result.stderr}`);
  };
  await ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=cartorio test CA', '-keyout', join(dir, 'ca.key'), '-out', caPem]);
  await ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', join(dir, 'server.key'), '-out', join(dir, 'server.csr')]);
  await writeFile(join(dir, 'ext.cnf'), `subjectAltName=IP:127.0.0.1,DNS:${PROXY_ONLY_HOST}\nbasicConstraints=CA:FALSE\n`);
  await ossl(['x509', '-req', '-in', join(dir, 'server.csr'), '-CA', caPem, '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-days', '2', '-extfile', join(dir, 'ext.cnf'), '-out', join(dir, 'server.pem')]);
  return { certsDir, caPem, cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
}

/**
 * Starts Debian's tinyproxy on 127.0.0.1:`port` in a mount namespace of its own whose
 * /etc/hosts maps PROXY_ONLY_HOST to 127.0.0.1, so that name resolves for the proxy and for
 * nothing else on the machine. Stopped by PID in `t.after`. Returns the log path.
 */
export async function startTinyproxy(t: After, dir: string, port: number): Promise<string> {
  const conf = join(dir, 'tinyproxy.conf');
  const hosts = join(dir, 'hosts');
  const log = join(dir, 'tinyproxy.log');
  await writeFile(hosts, `127.0.0.1 localhost\n127.0.0.1 ${PROXY_ONLY_HOST}\n`);
  await writeFile(conf, [`Port ${port}`, 'Listen 127.0.0.1', 'Timeout 60', `LogFile "${log}"`, 'LogLevel Connect', 'MaxClients 20', 'Allow 127.0.0.1', 'DisableViaHeader Yes', ''].join('\n'));
  const started = startChild(t, 'unshare', ['-m', 'sh', '-c', `mount --bind ${hosts} /etc/hosts && exec tinyproxy -d -c ${conf}`]);
  await whenReady(started, async () => ((await canConnect(port)) ? true : undefined), `tinyproxy on 127.0.0.1:${port}`, 100);
  return log;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * A flaky front end: answers 503 to the requests `fails` picks (the second with Retry-After: 1),
 * passes every other one through to 127.0.0.1:`upstream`. Returns its port and the requests seen.
 */
export async function startFlakyFront(t: After, upstream: number, fails: (req: IncomingMessage, seen: number) => boolean): Promise<{ port: number; failed: string[] }> {
  const failed: string[] = [];
  let seen = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen++;
    if (fails(req, seen)) {
      failed.push(`${req.method} ${req.url?.split('?')[0]}`);
      req.resume();
      res.writeHead(503, { 'content-type': 'text/plain', ...(failed.length === 2 && { 'retry-after': '1' }) });
      res.end('front end busy');
      return;
    }
    const forward = request({ host: '127.0.0.1', port: upstream, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as AddressInfo).port, failed };
}
