import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { cartorio, tempDir } from './helpers/cli.js';

// Every JSON from outside reports all its problems in one line, not one per run.
test('a metadata.json or manifest with several problems names them all, in one line, capped', async (t) => {
  const dir = await tempDir(t);
  const image = join(dir, 'image');
  await mkdir(join(image, 'rootfs'), { recursive: true });
  await writeFile(join(image, 'metadata.json'), JSON.stringify({ user: 0, env: 'PATH=/bin', cmd: [1] }));
  const failed = await cartorio(['load', '--store', join(dir, 'store'), image, '--name', 'x']);
  assert.equal(failed.code, 1);
  const line = failed.stderr.split('\n')[0] ?? '';
  for (const problem of ['/env must be array,null', '/user must be string', '/cmd/0 must be string']) assert.ok(line.includes(problem), `${problem} in: ${line}`);

  const bundle = join(dir, 'bundle');
  await mkdir(bundle);
  await writeFile(join(bundle, 'rootfs.tgz'), '');
  await writeFile(join(bundle, 'resource_metadata.json'), JSON.stringify({ version: 1, privileged: 'yes' }));
  const bundleFailed = await cartorio(['load', '--store', join(dir, 'store'), bundle]);
  const bundleLine = bundleFailed.stderr.split('\n')[0] ?? '';
  for (const problem of ['missing required key "type"', '/version must be string', '/privileged must be boolean']) assert.ok(bundleLine.includes(problem), `${problem} in: ${bundleLine}`);
});
