import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, ROOT, cartorio, tempDir } from './helpers/cli.js';
import { BUSYBOX_1, makeRegistryStore } from './helpers/registry-store.js';

test('cartorio serve: ready file, pino logs on stderr, picks up loads, SIGTERM and SIGINT stop it cleanly', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  await makeRegistryStore(store);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const ready = join(dir, `ready-${signal}`);
    const quiet = signal === 'SIGINT' ? ['--quiet'] : [];
    const child = spawn(process.execPath, [CLI, 'serve', '--store', store, '--listen', '127.0.0.1:0', '--ready-file', ready, ...quiet], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    t.after(() => {
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    let address = '';
    for (let i = 0; i < 200 && address === ''; i++) {
      address = await readFile(ready, 'utf8').catch(() => '');
      if (address === '') await sleep(50);
    }
    assert.match(address, /^127\.0\.0\.1:\d+$/, 'the ready file holds the bound address, nothing else');
    const response = await fetch(`http://${address}/v2/busybox/manifests/1`);
    assert.equal(response.headers.get('docker-content-digest'), BUSYBOX_1);
    await response.arrayBuffer();

    // A load while serving is served without a restart.
    const loaded = await cartorio(['load', '--quiet', '--store', store, join(ROOT, '.test-fixtures', 'concourse-rootfs'), '--name', `live/${signal.toLowerCase()}`, '--tag', '1']);
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.equal((await fetch(`http://${address}/v2/live/${signal.toLowerCase()}/manifests/1`)).status, 200);

    process.kill(child.pid ?? 0, signal);
    assert.equal(await exited, 0, `exit code after ${signal}; stderr: ${stderr}`);
    await assert.rejects(stat(ready), 'the ready file is removed on shutdown');
    // stdout has the human banner (address, pull commands) or, with --quiet, nothing; logs never go there
    if (quiet.length > 0) assert.equal(stdout, '', 'nothing on stdout with --quiet');
    else assert.match(stdout, /^cartorio: serving \S+ on http:\/\/127\.0\.0\.1:\d+ \(\d+ repositor(?:y|ies)\)\npull with:\n {2}docker pull [^\n]+\n(?:[^{\n][^\n]*\n)+$/);
    const lines = stderr.trim().split('\n').map((line) => JSON.parse(line) as { level: number; msg: string; req?: { url: string } });
    assert.ok(lines.some((line) => line.msg === 'incoming request' && line.req?.url === '/v2/busybox/manifests/1'), 'request logged');
    assert.ok(lines.some((line) => line.msg === 'shutting down'), 'shutdown logged');
  }
});

test('cartorio serve: --help has examples; bad options fail with one line', async (t) => {
  const help = await cartorio(['serve', '--help']);
  assert.equal(help.code, 0);
  for (const option of ['--store', '--listen', '--ready-file', '--tls-cert', '--tls-key', '--htpasswd', '--log-level', 'Examples:', '$ cartorio serve']) assert.ok(help.stdout.includes(option), option);

  const dir = await tempDir(t);
  const bad = join(dir, 'htpasswd');
  await writeFile(bad, 'alice:$apr1$salt$hash\n');
  const cases: [string[], RegExp][] = [
    [['--listen', 'nonsense'], /--listen "nonsense" is not HOST:PORT/],
    [['--tls-cert', join(dir, 'x.crt')], /--tls-cert and --tls-key go together/],
    [['--tls-cert', join(dir, 'x.crt'), '--tls-key', join(dir, 'x.key')], /--tls-cert .*x\.crt: no such file/],
    [['--htpasswd', bad], /htpasswd:1: user "alice" has no bcrypt hash/],
    [['--htpasswd', join(dir, 'none')], /--htpasswd .*none: no such file/],
    [['--listen', '192.0.2.1:1'], /cannot listen on 192\.0\.2\.1:1/],
  ];
  for (const [args, message] of cases) {
    const result = await cartorio(['serve', '--store', dir, '--listen', '127.0.0.1:0', ...args]);
    assert.equal(result.code, 1, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, /^cartorio serve: /, args.join(' '));
    assert.match(result.stderr, message, args.join(' '));
  }
  const usage = await cartorio(['serve', '--log-level', 'loud']);
  assert.equal(usage.code, 2);
});

// STYLE §1 and go-containerregistry's depcheck_test.go: the registry reads the store and nothing else.
test('src/registry imports only store, image, fastify, bcryptjs and node:', async () => {
  const dir = join(ROOT, 'src', 'registry');
  // Subdirectories too (ui/): their `../` is the registry itself, `../../store/` the store.
  for (const file of (await readdir(dir, { recursive: true })).filter((path) => path.endsWith('.ts'))) {
    const source = await readFile(join(dir, file), 'utf8');
    const up = '../'.repeat(file.split('/').length - 1);
    for (const [, specifier = ''] of source.matchAll(/^import .* from '([^']+)';$/gm)) {
      const within = specifier.startsWith('./') || (up !== '' && specifier.startsWith('../') && !specifier.startsWith(`${up}../`));
      const allowed = specifier.startsWith('node:') || within || specifier.startsWith(`${up}../store/`) || specifier.startsWith(`${up}../image/`) || specifier === 'fastify' || specifier === 'bcryptjs';
      assert.ok(allowed, `${file} imports ${specifier}`);
    }
    assert.doesNotMatch(source, /process\.(argv|env|exit)/, `${file} touches process.argv/env/exit`);
    assert.doesNotMatch(source, /\b(writeFile|appendFile|rename|unlink|mkdir|rm|createWriteStream|copyFile|symlink|link|chmod)\(/, `${file} writes`);
  }
});
