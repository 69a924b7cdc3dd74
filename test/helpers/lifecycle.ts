import assert from 'node:assert/strict';
import { cartorio } from './cli.js';

/** What `rm`, `prune` and `gc` tests share, for directory and bucket stores alike. */

/** Runs the CLI and returns its stdout; fails the test with its stderr unless it exits 0. */
export async function ok(args: string[]): Promise<string> {
  const result = await cartorio(args);
  assert.equal(result.code, 0, `cartorio ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

/** Every `repository:tag` the store lists, sorted. */
export async function tags(store: string): Promise<string[]> {
  const rows = JSON.parse(await ok(['list', '--store', store, '--json'])) as { repository: string; tag: string }[];
  return rows.map((row) => `${row.repository}:${row.tag}`).sort();
}
