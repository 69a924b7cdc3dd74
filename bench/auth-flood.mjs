// bench/auth-flood.mjs — what a flood of wrong passwords costs a logged-in client. Starts
// `cartorio serve --htpasswd` (bcrypt cost 5, `htpasswd -B`'s default) over assets/sample-image.tar,
// then measures a logged-in client's GET /v2/_catalog latency (sequential, keep-alive, its
// credentials verified once) idle, and while wrk floods the server from 32 connections with
//   same:     one wrong password, over and over (what a misconfigured client or a probe sends);
//   distinct: a new wrong password on every request (a guessing attack: no cache can help).
// Prints medians and p90s, the flood's rate and answers, and latency under flood / idle (the ratio
// is the figure: the same client, same server, same run).
//   node bench/auth-flood.mjs [SECONDS per flood, default 8]
// Needs wrk; run `npm run build` first. Only 127.0.0.1 is contacted; the server is stopped by PID.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { hashSync } from 'bcryptjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const seconds = Number(process.argv[2] ?? 8);
const dir = mkdtempSync(join(tmpdir(), 'cartorio-auth-flood-'));
const basic = (user, password) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

writeFileSync(join(dir, 'htpasswd'), `alice:${hashSync('wonderland', 5)}\nbob:${hashSync('builder', 5)}\n`);
const server = spawn(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), 'serve', '--listen', '127.0.0.1:0', '--ready-file', join(dir, 'ready'), '--quiet', '--log-level', 'error', '--htpasswd', join(dir, 'htpasswd'), join(ROOT, 'assets/sample-image.tar')], { stdio: ['ignore', 'ignore', 'inherit'] });
const stop = () => server.exitCode === null && server.kill('SIGTERM');
process.on('exit', () => {
  stop();
  rmSync(dir, { recursive: true, force: true });
});
let address;
for (let i = 0; i < 200 && !address; i++) {
  await sleep(50);
  try {
    address = readFileSync(join(dir, 'ready'), 'utf8');
  } catch {}
}
if (!address) throw new Error('cartorio serve did not start');
const [host, port] = address.split(':');

const agent = new Agent({ keepAlive: true, maxSockets: 1 });
const good = basic('alice', 'wonderland');
function get(path, authorization) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request({ host, port, path, agent, headers: { authorization } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - started) : reject(new Error(`${path}: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}
// Sequential requests for `span` ms: a client pulling while the flood runs.
async function latency(span) {
  const times = [];
  for (const end = performance.now() + span; performance.now() < end;) times.push(await get('/v2/_catalog', good));
  times.sort((a, b) => a - b);
  const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
  return { count: times.length, mean: times.reduce((sum, t) => sum + t, 0) / times.length, median: at(0.5), p90: at(0.9), p99: at(0.99) };
}
const show = (l) => `mean ${ms(l.mean)}, median ${ms(l.median)}, p90 ${ms(l.p90)}, p99 ${ms(l.p99)} (${l.count} requests)`;

// A wrk script sending one of N prebuilt Authorization headers in turn (Lua has no base64).
function wrkScript(name, headers) {
  const path = join(dir, `${name}.lua`);
  writeFileSync(path, `local h = {${headers.map((value) => JSON.stringify(value)).join(',')}}\nlocal i = 0\nrequest = function()\n  i = i % #h + 1\n  return wrk.format("GET", "/v2/_catalog", { Authorization = h[i] })\nend\n`);
  return path;
}
function flood(script) {
  return new Promise((resolve, reject) => {
    const wrk = spawn('wrk', ['-t2', '-c32', `-d${seconds}s`, '-s', script, `http://${address}`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    wrk.stdout.on('data', (chunk) => (out += chunk));
    wrk.on('error', reject);
    wrk.on('exit', () => {
      const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
      resolve({ rate: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0), total, non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0), errors: /Socket errors:.*/.exec(out)?.[0] ?? 'no socket errors' });
    });
  });
}
const ms = (value) => `${value.toFixed(1)} ms`;

const span = (seconds - 2) * 1000;
await latency(500); // warm-up: alice's credentials verified once and remembered
const idle = await latency(span);
console.log(`idle:           _catalog ${show(idle)}`);
const floods = {
  same: wrkScript('same', [basic('alice', 'not-her-password')]),
  distinct: wrkScript('distinct', Array.from({ length: 20000 }, (_, i) => basic('alice', `guess-${i}-${Math.random().toString(36).slice(2)}`))),
};
for (const [name, script] of Object.entries(floods)) {
  const running = flood(script);
  await sleep(1000);
  const busy = await latency(span);
  const result = await running;
  console.log(`${name.padEnd(8)} flood: _catalog ${show(busy)}`);
  console.log(`                ${(busy.mean / idle.mean).toFixed(1)}× idle mean, ${(busy.p90 / idle.p90).toFixed(1)}× idle p90; flood ${result.rate} req/s, ${result.non2xx} of ${result.total} answered non-2xx (${result.errors})`);
}
stop();
