// The CLI turns Node's compile cache on in $XDG_CACHE_HOME/cartorio/compile-cache before its
// program loads (src/cli/compile-cache.ts): filled by a first start, never a reason to fail.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, run, tempDir } from './helpers/cli.js';

const ENTRIES = { dist: join(ROOT, 'dist', 'src', 'cli', 'main.js'), bundle: join(ROOT, 'dist', 'bundle', 'cartorio', 'dist', 'src', 'cli', 'main.mjs') };

// The environment without Node's own cache settings, which would win over the CLI's.
function envWith(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NODE_COMPILE_CACHE;
  if (!('NODE_DISABLE_COMPILE_CACHE' in extra)) delete env.NODE_DISABLE_COMPILE_CACHE;
  return env;
}

async function cachedFiles(dir: string): Promise<string[]> {
  const versions = await readdir(dir).catch(() => []);
  const files = await Promise.all(versions.map(async (version) => (await readdir(join(dir, version))).map((file) => join(version, file))));
  return files.flat();
}

for (const [kind, entry] of Object.entries(ENTRIES)) {
  test(`${kind} CLI: a first start fills the compile cache under XDG_CACHE_HOME; a second start answers the same`, async (t) => {
    const home = await tempDir(t);
    const first = await run(process.execPath, [entry, '--version'], { env: envWith({ XDG_CACHE_HOME: home }) });
    assert.equal(first.code, 0, first.stderr);
    const cached = await cachedFiles(join(home, 'cartorio', 'compile-cache'));
    // What loads after main turned it on: the bundle's program.mjs; every other module of dist.
    assert.ok(cached.length >= (kind === 'bundle' ? 1 : 10), `compile cache entries: ${cached.join(', ')}`);
    const second = await run(process.execPath, [entry, '--version'], { env: envWith({ XDG_CACHE_HOME: home }) });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, first.stdout);
  });
}

test('a cache directory that cannot be made leaves the cache off: under /proc (where Node\'s own mkdir -p never returns) and under a file', { timeout: 30_000 }, async (t) => {
  const home = await tempDir(t);
  for (const base of ['/proc/self/no-such-dir', join(ENTRIES.dist, 'under-a-file')]) {
    const result = await run(process.execPath, [ENTRIES.bundle, '--version'], { env: envWith({ XDG_CACHE_HOME: base, HOME: home }) });
    assert.equal(result.code, 0, `${base}: ${result.stderr}`);
    assert.match(result.stdout, /^\d+\.\d+\.\d+\n/);
  }
  assert.deepEqual(await readdir(home), [], 'nothing written to HOME instead');
});

test('NODE_DISABLE_COMPILE_CACHE=1 leaves it off', async (t) => {
  const home = await tempDir(t);
  const result = await run(process.execPath, [ENTRIES.bundle, '--version'], { env: envWith({ XDG_CACHE_HOME: home, NODE_DISABLE_COMPILE_CACHE: '1' }) });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(await readdir(home), []);
});
