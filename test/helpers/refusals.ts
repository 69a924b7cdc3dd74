import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { FIXTURES, cartorio, tempDir } from './cli.js';
import { snapshotTree } from './snapshot.js';

/** A bad input: `make` builds it in a temp dir and returns the load arguments (input first). */
export interface RefusalCase {
  name: string;
  make: (dir: string) => Promise<string[]>;
  problem: RegExp;
}

/**
 * Loads a good image into a store, then each case: the load must exit 1 with nothing on stdout
 * and one error line (plus an optional hint) that starts with the input and matches `problem`,
 * and the store must stay byte for byte as it was.
 */
export async function expectRefusedLoads(t: TestContext, cases: RefusalCase[]): Promise<void> {
  const store = join(await tempDir(t), 'store');
  const good = await cartorio(['load', '--store', store, join(FIXTURES, 'docker-save-busybox.tar')]);
  assert.equal(good.code, 0, good.stderr);
  const before = await snapshotTree(store);
  for (const { name, make, problem } of cases) {
    await t.test(name, async (t) => {
      const args = await make(await tempDir(t));
      const input = args[0] ?? '';
      const result = await cartorio(['load', '--store', store, ...args]);
      assert.equal(result.code, 1, `exit code; stderr: ${result.stderr}`);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /^cartorio load: [^\n]+\n( {2}hint: [^\n]+\n)?$/, `one error line (+ hint), got:\n${result.stderr}`);
      assert.ok(result.stderr.startsWith(`cartorio load: ${input}`), `names the input ${input}: ${result.stderr}`);
      assert.match(result.stderr, problem);
      assert.deepEqual(await snapshotTree(store), before, 'store unchanged');
    });
  }
}
