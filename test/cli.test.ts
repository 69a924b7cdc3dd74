import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, ROOT, cartorio, tempDir } from './helpers/cli.js';

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
  const port = /on http:\/\/127\.0\.0\.1:(\d+) \(1 tags\)/.exec(stdout)?.[1];
  assert.ok(port, stdout);
  assert.match(stdout, new RegExp(`docker pull 127\\.0\\.0\\.1:${port}/cartorio/sample:1`));
  assert.match(stdout, new RegExp(`podman pull --tls-verify=false 127\\.0\\.0\\.1:${port}/cartorio/sample:1`));
  const pulled = await fetch(`http://127.0.0.1:${port}/v2/cartorio/sample/manifests/1`);
  assert.equal(pulled.status, 200);
});
