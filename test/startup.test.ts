// Start-up work the registry avoids: fastify's schema compilers (Ajv, fast-json-stringify) are never
// loaded, since no route has a schema.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildRegistry } from '../src/registry/app.js';
import { ServedImages } from '../src/store/image-source.js';
import { StoreReader } from '../src/store/reader.js';
import { tempDir } from './helpers/cli.js';
import { BUSYBOX_1, makeRegistryStore } from './helpers/registry-store.js';

const loadedModules = (): string[] => Object.keys(createRequire(import.meta.url).cache);

test('the registry answers manifests, tags and errors without loading fastify\'s schema compilers (Ajv, fast-json-stringify)', async (t) => {
  const root = join(await tempDir(t), 'store');
  await makeRegistryStore(root);
  const app = buildRegistry({ images: new ServedImages([new StoreReader(root)]), logger: false });
  t.after(() => app.close());
  const manifest = await app.inject({ method: 'GET', url: `/v2/busybox/manifests/${BUSYBOX_1}` });
  assert.equal(manifest.statusCode, 200);
  assert.equal((await app.inject({ method: 'GET', url: '/v2/busybox/tags/list' })).json<{ name: string }>().name, 'busybox');
  const missing = await app.inject({ method: 'GET', url: '/v2/nothing/manifests/1' });
  assert.equal(missing.statusCode, 404);
  assert.equal(missing.json<{ errors: { code: string }[] }>().errors[0]?.code, 'NAME_UNKNOWN');
  assert.ok(loadedModules().some((path) => path.includes('/fastify/')), 'fastify itself is loaded through require');
  const compilers = loadedModules().filter((path) => /@fastify\/(ajv-compiler|fast-json-stringify-compiler)\//.test(path));
  assert.deepEqual(compilers, []);
});

test('a route given a schema fails at start with a message saying the compilers are not loaded', async (t) => {
  const root = join(await tempDir(t), 'store');
  await makeRegistryStore(root);
  const app = buildRegistry({ images: new ServedImages([new StoreReader(root)]), logger: false });
  t.after(() => app.close());
  app.get('/with-schema', { schema: { querystring: { type: 'object' } } }, () => 'x');
  await assert.rejects(async () => app.ready(), /registry routes take no schema/);
});
