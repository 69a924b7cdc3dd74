// Shared by assets/check, assets/in and assets/out: finds the compiled command — the esbuild bundle
// next to the scripts in the image (/opt/resource/lib/resource.mjs), else the checkout's dist/ — and
// runs it the way Concourse expects: request on stdin, JSON on stdout, one error line on stderr, exit 1.
import { existsSync } from 'node:fs';

const BUNDLE = new URL('./lib/resource.mjs', import.meta.url);
const COMPILED = { check: '../dist/src/resource/check.js', in: '../dist/src/resource/in.js', out: '../dist/src/resource/out.js' };
const EXPORTS = { check: 'checkCommand', in: 'inCommand', out: 'outCommand' };

export async function runResource(command) {
  try {
    const module = await import(existsSync(BUNDLE) ? BUNDLE.href : new URL(COMPILED[command], import.meta.url).href);
    // A step aborted by the worker (SIGTERM) or by hand (SIGINT) leaves no temp files behind.
    for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
      process.once(signal, () => {
        module.cleanUpTempFiles?.();
        process.exit(code);
      });
    }
    await module[EXPORTS[command]]({ stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, args: process.argv.slice(2), env: process.env });
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    if (process.env.CARTORIO_DEBUG === '1' && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    process.exitCode = 1;
  }
}
