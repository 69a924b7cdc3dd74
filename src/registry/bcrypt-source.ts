import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/**
 * The source text of bcryptjs's CommonJS (UMD) build, which bcrypt-pool.ts's threads evaluate.
 * The single-file bundle has no node_modules: assets/build-bundle.mjs replaces this module with
 * one returning the same text inlined.
 */
export function bcryptSource(): string {
  return readFileSync(createRequire(import.meta.url).resolve('bcryptjs'), 'utf8');
}
