import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { nameServedLayouts } from '../src/formats/served-layouts.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, FIXTURES, cartorio, run, tempDir } from './helpers/cli.js';

// `cartorio serve DIR…`: OCI layouts served without a store (a Concourse get's oci/, any layout).

async function layout(path: string): Promise<void> {
  await mkdir(join(path, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(path, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(path, 'index.json'), '{"schemaVersion":2,"manifests":[]}');
}

test('layouts are named NAME=DIR, by a get output\'s repository file, or by their directory', async (t) => {
  const dir = await tempDir(t);
  await layout(join(dir, 'app', 'oci'));
  await writeFile(join(dir, 'app', 'repository'), 'registry.example.com:5000/org/app\n');
  await layout(join(dir, 'db', 'oci'));
  await writeFile(join(dir, 'db', 'repository'), 'db');
  await layout(join(dir, 'plain-layout'));
  const named = await nameServedLayouts([join(dir, 'app', 'oci'), join(dir, 'db'), `tools/x=${join(dir, 'plain-layout')}`, join(dir, 'plain-layout')]);
  assert.deepEqual([...named], [['registry.example.com:5000/org/app', join(dir, 'app', 'oci')], ['db', join(dir, 'db', 'oci')], ['tools/x', join(dir, 'plain-layout')], ['plain-layout', join(dir, 'plain-layout')]]);
  await assert.rejects(nameServedLayouts([dir]), { message: `${dir}: is not an OCI image layout (oci-layout + index.json) nor a get output holding one in oci/` });
  await assert.rejects(nameServedLayouts([join(dir, 'app'), join(dir, 'app', 'oci')]), /would be served as "registry.example.com:5000\/org\/app", like /);
  await assert.rejects(nameServedLayouts([`Bad=${join(dir, 'app')}`]), /"Bad" is not a repository name/);
});

test('cartorio serve DIR… serves layouts as they are; a name held by a layout and the store is refused', async (t) => {
  const dir = await tempDir(t);
  await cp(join(FIXTURES, 'registry-image-get'), join(dir, 'get'), { recursive: true });
  const ready = join(dir, 'ready');
  const child = spawn(process.execPath, [CLI, 'serve', join(dir, 'get'), `tools/kit=${join(FIXTURES, 'busybox-oci')}`, '--listen', '127.0.0.1:0', '--ready-file', ready, '--quiet'], { stdio: 'ignore' });
  t.after(() => void child.kill('SIGTERM'));
  let address = '';
  for (let i = 0; i < 100 && address === ''; i++) {
    address = await readFile(ready, 'utf8').catch(() => '');
    if (address === '') await sleep(50);
  }
  assert.notEqual(address, '', 'serve wrote its ready file');
  const catalog = (await (await fetch(`http://${address}/v2/_catalog`)).json()) as { repositories: string[] };
  assert.deepEqual(catalog.repositories, ['fixtures/getimage', 'tools/kit']);
  const want = (await readFile(join(dir, 'get', 'digest'), 'utf8')).trim();
  const inspected = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${address}/fixtures/getimage:latest`]);
  assert.equal(inspected.code, 0, inspected.stderr);
  assert.equal((JSON.parse(inspected.stdout) as { Digest: string }).Digest, want);
  const multi = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${address}/tools/kit:multi`]);
  assert.match(multi.stdout, /application\/vnd\.oci\.image\.index\.v1\+json/);
  assert.equal((await fetch(`http://${address}/healthz`)).status, 200);

  // A store and layouts are served together now; a name both hold is refused at start.
  const loaded = await cartorio(['load', '--quiet', '--store', join(dir, 's'), '--name', 'fixtures/getimage', join(FIXTURES, 'busybox-oci.tar')]);
  assert.equal(loaded.code, 0, loaded.stderr);
  const both = await cartorio(['serve', '--store', join(dir, 's'), join(dir, 'get')]);
  assert.equal(both.code, 1);
  assert.match(both.stderr, /"fixtures\/getimage" would be served from both /);
});
