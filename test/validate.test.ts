import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import '../src/formats/concourse.js';
import '../src/formats/docker-archive.js';
import '../src/store/layout.js';
import { ROOT, cartorio, tempDir } from './helpers/cli.js';

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

// Start-up (`serve FILE.tar`) uses validators compiled ahead of time (src/image/validators.generated.ts):
// they must be those of today's schemas, and report exactly what Ajv compiled at run time reports.
test('the precompiled validators are those of the current schemas and answer as Ajv does', async () => {
  const { generatedValidators } = (await import(pathToFileURL(join(ROOT, 'assets', 'build-validators.mjs')).href)) as { generatedValidators: () => Promise<string> };
  const current = await readFile(join(ROOT, 'src', 'image', 'validators.generated.ts'), 'utf8');
  assert.ok(current === (await generatedValidators()), 'src/image/validators.generated.ts is stale: run `npm run build && node assets/build-validators.mjs && npm run build`');
  const { compiledSchemas, schemaKey, AJV_OPTIONS } = await import('../src/image/validate.js');
  const { precompiled } = await import('../src/image/validators.generated.js');
  const ajv = new Ajv(AJV_OPTIONS);
  const documents: unknown[] = [
    null, 7, 'x', [], {}, [{ Config: 1, Layers: 'a', RepoTags: [2] }], { schemaVersion: 3, mediaType: 'x'.repeat(300), layers: [{ digest: 'nope', size: -1 }] },
    { architecture: 1, os: [], rootfs: { type: 'tars', diff_ids: ['sha256:x'] }, config: { Env: 'a' } }, { imageLayoutVersion: 2 }, { manifests: [{}] },
  ];
  assert.ok(compiledSchemas.length >= 5, 'the schemas of the loaded modules registered');
  for (const { schema, what } of compiledSchemas) {
    const fast = precompiled[schemaKey(schema)] as ValidateFunction | undefined;
    assert.ok(fast, `${what}: precompiled`);
    const slow = ajv.compile(schema);
    for (const document of documents) {
      assert.equal(fast(document), slow(document), `${what}: ${JSON.stringify(document)}`);
      assert.deepEqual(fast.errors ?? null, slow.errors ?? null, `${what}: errors of ${JSON.stringify(document)}`);
    }
  }
});
