// Start-up work the CLI avoids or keeps: fastify's schema compilers are never loaded, and Node's
// compile cache goes to the user's cache directory (or where Node's own settings say), never
// failing a command when it cannot be written.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildRegistry } from '../src/registry/app.js';
import { ServedImages } from '../src/store/image-source.js';
import { StoreReader } from '../src/store/reader.js';
import { CLI, run, tempDir } from './helpers/cli.js';
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

// The environment of a child: Node's own compile-cache settings removed, then `extra`.
function env(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NODE_COMPILE_CACHE: _cache, NODE_DISABLE_COMPILE_CACHE: _disable, ...rest } = process.env;
  return { ...rest, ...extra };
}
const entries = (dir: string): Promise<string[]> => readdir(dir, { recursive: true }).catch(() => []);

test('the compile cache goes to $XDG_CACHE_HOME/cartorio/node-compile-cache; NODE_COMPILE_CACHE and NODE_DISABLE_COMPILE_CACHE win', async (t) => {
  const dir = await tempDir(t);
  const version = await run(process.execPath, [CLI, '--version'], { env: env({ XDG_CACHE_HOME: join(dir, 'xdg') }) });
  assert.equal(version.code, 0, version.stderr);
  assert.ok((await entries(join(dir, 'xdg', 'cartorio', 'node-compile-cache'))).length > 0, 'the cache holds the compiled modules');

  const own = await run(process.execPath, [CLI, '--version'], { env: env({ XDG_CACHE_HOME: join(dir, 'xdg2'), NODE_COMPILE_CACHE: join(dir, 'node-own') }) });
  assert.equal(own.code, 0, own.stderr);
  assert.ok((await entries(join(dir, 'node-own'))).length > 0, 'NODE_COMPILE_CACHE is where the cache goes');
  assert.deepEqual(await entries(join(dir, 'xdg2')), []);

  const off = await run(process.execPath, [CLI, '--version'], { env: env({ XDG_CACHE_HOME: join(dir, 'xdg3'), NODE_DISABLE_COMPILE_CACHE: '1' }) });
  assert.equal(off.code, 0, off.stderr);
  assert.deepEqual(await entries(join(dir, 'xdg3')), []);
});

test('an unwritable cache directory changes nothing: same output, exit 0, nothing on stderr', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'a-file');
  await writeFile(file, 'not a directory');
  const plain = await run(process.execPath, [CLI, '--version'], { env: env({ NODE_DISABLE_COMPILE_CACHE: '1' }) });
  for (const extra of [{ XDG_CACHE_HOME: file }, { XDG_CACHE_HOME: '/proc/cartorio-none' }]) {
    const result = await run(process.execPath, [CLI, '--version'], { env: env(extra) });
    assert.deepEqual(result, plain, JSON.stringify(extra));
  }
});

test('serve writes the compile cache once it listens, without waiting for its exit', async (t) => {
  const dir = await tempDir(t);
  const readyFile = join(dir, 'addr');
  const cache = join(dir, 'xdg', 'cartorio', 'node-compile-cache');
  const child = spawn(process.execPath, [CLI, 'serve', '--store', join(dir, 'store'), '--listen', '127.0.0.1:0', '--ready-file', readyFile, '--quiet', '--log-level', 'warn'], {
    env: env({ XDG_CACHE_HOME: join(dir, 'xdg') }),
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  t.after(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  let address: string | undefined;
  for (let i = 0; i < 300 && address === undefined; i++) {
    address = await readFile(readyFile, 'utf8').catch(() => undefined);
    if (address === undefined) await sleep(50);
  }
  assert.ok(address, 'serve became ready');
  assert.ok((await entries(cache)).length > 0, 'the cache is written while serving');
});
