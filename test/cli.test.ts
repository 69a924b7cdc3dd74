import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, ROOT, cartorio, run, tempDir } from './helpers/cli.js';

// The CLI's contract with shells: --version, exit codes (0 ok, 1 failed, 2 usage), --help everywhere.

test('--version prints the package version, then the Node.js it runs on', async () => {
  const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const result = await cartorio(['--version']);
  assert.equal(result.code, 0);
  const [first, second, ...rest] = result.stdout.trim().split('\n');
  assert.equal(first, version);
  assert.match(second ?? '', new RegExp(`^Node\\.js ${process.version.replace(/\./g, '\\.')} \\(supported: Node\\.js 24 or 22\\.15\\+\\)$`));
  assert.deepEqual(rest, []);
});

test('usage errors exit 2, failures exit 1', async (t) => {
  for (const args of [['bogus'], ['load'], ['load', 'x', '--format', 'nope'], ['serve', '--log-level', 'loud'], ['list', '--unknown']]) {
    const result = await cartorio(args);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, /error: /);
  }
  const dir = await tempDir(t);
  const failed = await cartorio(['load', '--store', join(dir, 's'), join(dir, 'missing.tar')]);
  assert.equal(failed.code, 1);
  assert.equal(failed.stderr.split('\n')[0], `cartorio load: ${join(dir, 'missing.tar')}: does not exist or cannot be read`);
});

test('every command has --help with examples', async () => {
  for (const command of ['load', 'serve', 'list', 'verify', 'convert']) {
    const result = await cartorio([command, '--help']);
    assert.equal(result.code, 0, `${command} --help`);
    assert.match(result.stdout, /Examples:\n {2}\$ .*cartorio /);
  }
});

test('serve prints where it listens and how to pull, once listening', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  assert.equal((await cartorio(['load', '--store', store, join(ROOT, 'assets', 'sample-image.tar')])).code, 0);
  const child = spawn(process.execPath, [CLI, 'serve', '--store', store, '--listen', '127.0.0.1:0', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => void child.kill('SIGTERM'));
  let stdout = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('skopeo inspect')) resolve();
    });
    child.once('exit', () => reject(new Error(`serve exited: ${stdout}`)));
  });
  const port = /on http:\/\/127\.0\.0\.1:(\d+) \(1 repository\)/.exec(stdout)?.[1];
  assert.ok(port, stdout);
  // The sample's RepoTag is docker.io/cartorio/sample:1: the name keeps its registry.
  assert.match(stdout, new RegExp(`docker pull 127\\.0\\.0\\.1:${port}/docker.io/cartorio/sample:1`));
  assert.match(stdout, new RegExp(`podman pull --tls-verify=false 127\\.0\\.0\\.1:${port}/docker.io/cartorio/sample:1`));
  // The README's host-less pull still finds it: one registry holds cartorio/sample.
  for (const path of ['cartorio/sample', 'docker.io/cartorio/sample', 'cartorio/sample?ns=docker.io']) {
    const [name, query] = path.split('?');
    const pulled: Response = await fetch(`http://127.0.0.1:${port}/v2/${name}/manifests/1${query ? `?${query}` : ''}`);
    assert.equal(pulled.status, 200, path);
  }
});

test('output into a closed pipe ends quietly (status 141, as git and coreutils), never a stack trace', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  assert.equal((await cartorio(['load', '--store', store, join(ROOT, 'assets', 'sample-image.tar')])).code, 0);
  // Enough repositories that `list` writes more than a pipe holds (hard links: no bytes copied).
  const copies = Array.from({ length: 1500 }, (_, i) => `cp -al "$S/docker.io/cartorio/sample" "$S/docker.io/cartorio/s${i}"`).join('\n');
  const made = await run('bash', ['-c', `set -e\n${copies}\nrm "$S/.repositories"`], { env: { ...process.env, S: store } });
  assert.equal(made.code, 0, made.stderr);
  for (const command of [
    `node "${CLI}" list --store "${store}"`,
    `node "${CLI}" list --store "${store}" --json`,
    `node "${CLI}" load --json --store "${join(dir, 'other')}" "${join(ROOT, 'assets', 'sample-image.tar')}"`,
    `node "${CLI}" load --help`,
    `node "${CLI}" --help`,
  ]) {
    const piped = await run('bash', ['-c', `${command} | head -c 1 >/dev/null; echo "status=\${PIPESTATUS[0]}" >&2`]);
    const status = /status=(\d+)/.exec(piped.stderr)?.[1];
    assert.ok(status === '0' || status === '141', `${command}: ${piped.stderr}`);
    assert.equal(piped.stderr.replace(/status=\d+\n/, ''), '', `${command}: quiet on stderr`);
  }
});

test('list and verify refuse a store that does not exist (a mistyped path is not an empty store)', async (t) => {
  const dir = await tempDir(t);
  for (const command of ['list', 'verify']) {
    const result = await cartorio([command, '--store', join(dir, 'nostore')]);
    assert.equal(result.code, 1, command);
    assert.equal(result.stderr.split('\n')[0], `cartorio ${command}: store ${join(dir, 'nostore')} does not exist`);
  }
});

test('help texts wrap where the terminal is, not mid-sentence', async () => {
  for (const command of ['load', 'convert', 'verify']) {
    const help = (await cartorio([command, '--help'])).stdout;
    const description = help.split('\n\n')[1] ?? '';
    // commander wraps at 80 columns when not a TTY: every line but the last is long
    const lines = description.split('\n');
    assert.ok(lines.slice(0, -1).every((line) => line.length > 50), `${command}: ${description}`);
  }
});
