import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, cartorio, tempDir } from './helpers/cli.js';
import { snapshotTree } from './helpers/snapshot.js';

// Mutated fixture archives: each either loads completely (verify passes) or fails with one
// clean error line, exit 1, and the store unchanged. Bounded in count; seeded, so repeatable.
const ITERATIONS = 48;
const INPUTS = ['docker-save-busybox.tar', 'busybox-oci.tar', 'docker25-save.tar', 'rootfs.tar.gz'];

function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

test('mutated archives never corrupt the store or crash the loader', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  assert.equal((await cartorio(['load', '--store', store, join(FIXTURES, 'rootfs.tar'), '--name', 'base'])).code, 0);
  const random = prng(20261123);
  let failed = 0;
  let loaded = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const fixture = INPUTS[i % INPUTS.length] as string;
    const bytes = Buffer.from(await readFile(join(FIXTURES, fixture)));
    // mostly early bytes (tar headers, JSON), sometimes anywhere; sometimes cut short
    const mutations = 1 + Math.floor(random() * 4);
    for (let m = 0; m < mutations; m++) {
      const position = Math.floor((random() < 0.6 ? random() * Math.min(bytes.length, 8192) : random() * bytes.length));
      bytes[position] = Math.floor(random() * 256);
    }
    const input = join(dir, `fuzz-${i}-${fixture}`);
    await writeFile(input, random() < 0.2 ? bytes.subarray(0, Math.floor(random() * bytes.length)) : bytes);
    const before = await snapshotTree(store);
    const result = await cartorio(['load', '--store', store, input, '--name', `fuzz/n${i}`]);
    if (result.code === 0) {
      loaded++;
      assert.equal((await cartorio(['verify', '--store', store])).code, 0, `${input} loaded but the store does not verify`);
    } else {
      failed++;
      assert.equal(result.code, 1, `${input}: exit ${result.code}: ${result.stderr}`);
      assert.match(result.stderr, /^cartorio load: [^\n]+\n( {2}hint: [^\n]+\n)?$/, `${input}: one clean error line:\n${result.stderr}`);
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
      assert.deepEqual(await snapshotTree(store), before, `${input}: store unchanged`);
    }
  }
  t.diagnostic(`${ITERATIONS} mutated inputs: ${loaded} loaded (mutation in padding or data the format does not check), ${failed} refused cleanly`);
});
