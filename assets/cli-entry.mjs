// The `cartorio` CLI, plus `cartorio serve LAYOUT…` for OCI layouts such as a get's oci/
// (src/resource/serve-layouts.ts turns them into a throw-away store view). This file is the
// entry esbuild bundles for the get's launcher and the image; assets/cartorio runs it in a checkout.
import { tmpdir } from 'node:os';
import { serveLayouts } from '../dist/src/resource/serve-layouts.js';

try {
  const view = await serveLayouts(process.argv.slice(2), [tmpdir(), process.cwd()]);
  if (view) {
    process.argv = [...process.argv.slice(0, 2), ...view.args];
    process.on('exit', view.cleanup);
    for (const [name, layout] of view.layouts) process.stderr.write(`cartorio: serving ${layout} as ${name}\n`);
  }
} catch (error) {
  process.stderr.write(`cartorio serve: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
await import('../dist/src/cli/main.js');
