#!/usr/bin/env node
// Bundles the compiled code (run `npm run build` first) into single files with esbuild, for the
// resource image and the get's `cartorio` launcher (params.bundle_server):
//   OUT/resource.mjs                          checkCommand, inCommand, outCommand
//   OUT/cartorio/dist/src/cli/main.mjs        the cartorio CLI (imports program.mjs beside it)
//   OUT/cartorio/dist/src/cli/aws-sdk.mjs     the AWS SDK, imported by both only for an s3 store
//   OUT/cartorio/dist/src/cli/fastify.cjs     fastify and its dependencies, required by the CLI's registry
//   OUT/cartorio/package.json                 name and version (the CLI reads ../../../package.json)
// OUT defaults to dist/bundle. Usage: node assets/build-bundle.mjs [OUT]
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = resolve(process.argv[2] ?? join(root, 'dist', 'bundle'));
// Bundled CommonJS dependencies call require(); give ESM output a real one.
const banner = { js: "import { createRequire as __cartorioRequire } from 'node:module'; const require = __cartorioRequire(import.meta.url);" };
// src/image/tar-headers.ts loads tar-stream's header codec by path at run time (the package does not
// export it); a bundle has no node_modules then, so the module becomes a static import of that file.
const tarHeadersPath = join(dirname(createRequire(import.meta.url).resolve('tar-stream/package')), 'headers.js');
const tarHeaders = {
  name: 'tar-headers',
  setup(bundler) {
    bundler.onLoad({ filter: /[\\/]image[\\/]tar-headers\.js$/ }, () => ({
      contents: `import headers from ${JSON.stringify(tarHeadersPath)};\nexport const tarHeaders = headers;\n`,
      loader: 'js',
      resolveDir: root,
    }));
  },
};
// src/registry/bcrypt-source.ts reads bcryptjs's CommonJS build by path for the password-check
// threads to evaluate; a bundle has no node_modules, so the module returns the same text inlined.
const bcryptSourcePath = createRequire(import.meta.url).resolve('bcryptjs');
const bcryptSource = {
  name: 'bcrypt-source',
  setup(bundler) {
    bundler.onLoad({ filter: /[\\/]registry[\\/]bcrypt-source\.js$/ }, async () => ({
      contents: `export function bcryptSource() { return ${JSON.stringify(await readFile(bcryptSourcePath, 'utf8'))}; }\n`,
      loader: 'js',
    }));
  },
};
// src/image/validate.ts loads Ajv through createRequire only when a schema has no precompiled
// validator; in a bundle that becomes a plain require('ajv'), which esbuild bundles (still lazily).
const lazyAjv = {
  name: 'lazy-ajv',
  setup(bundler) {
    bundler.onLoad({ filter: /[\\/]image[\\/]validate\.js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      const lazy = "createRequire(import.meta.url)('ajv')";
      if (!text.includes(lazy)) throw new Error(`build-bundle: ${args.path} no longer loads Ajv by ${lazy}; update the lazy-ajv plugin`);
      return { contents: text.replace(lazy, "require('ajv')"), loader: 'js', resolveDir: dirname(args.path) };
    });
  },
};
// The CLI never loads these fastify dependencies: its registry has no route schemas (it gives fastify
// its own compilers, src/registry/app.ts) and never calls inject(). Left out of the CLI bundle they
// are ~500 KB less to read and parse at every start; a call that reached one would fail loudly.
const NEVER_LOADED = ['@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler', 'light-my-request'];
const leaveOut = {
  name: 'leave-out',
  setup(bundler) {
    const filter = new RegExp(`^(${NEVER_LOADED.map((name) => name.replace(/[/.]/g, '\\$&')).join('|')})$`);
    bundler.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'left-out' }));
    bundler.onLoad({ filter: /.*/, namespace: 'left-out' }, (args) => ({
      contents: `module.exports = function () { throw new Error(${JSON.stringify(`${args.path} is not in the cartorio bundle (assets/build-bundle.mjs)`)}); };\n`,
      loader: 'js',
    }));
  },
};
// The AWS SDK (s3:// stores only) inside the CLI bundle would double it (1.2 → 2.3 MB, read at
// every start): src/store/bucket/sdk.js becomes a file of its own beside it, aws-sdk.mjs,
// imported only when a store is s3://.
// The resource bundle (a bucket store's check, in and out) imports that same file, beside the CLI.
const SDK_FILE = 'aws-sdk.mjs';
const PROGRAM_FILE = 'program.mjs';
const SDK_DIR = 'cartorio/dist/src/cli';
const sdkApart = (path) => ({
  name: 'sdk-apart',
  setup(bundler) {
    bundler.onResolve({ filter: /[\\/]sdk\.js$/ }, (args) => (/[\\/]store[\\/]bucket$/.test(args.resolveDir) ? { path, external: true } : undefined));
  },
});
// An ESM import of a Node.js builtin builds its ESM facade, which reads every export; node:http's
// WebSocket getter then loads Node's bundled undici (~60 ms at every start, nodejs/node#59686).
// esbuild also hoists every builtin import of the bundle to its top, loaded at start even when only
// a lazily imported module uses it. Taken with require() instead, a builtin is loaded when the
// module that uses it is, and no facade is built.
const builtinsByRequire = {
  name: 'builtins-by-require',
  setup(bundler) {
    bundler.onResolve({ filter: /^node:/ }, (args) => (args.kind === 'import-statement' ? { path: args.path, namespace: 'builtin' } : undefined));
    bundler.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});\n`, loader: 'js' }));
  },
};
// commander requires node:child_process at load (for executable subcommands, which cartorio has
// none of): ~2 ms of every start. Given a stand-in that loads the module on first use instead.
const lazyChildProcess = {
  name: 'lazy-child-process',
  setup(bundler) {
    bundler.onResolve({ filter: /^(node:)?child_process$/ }, (args) => (/[\\/]node_modules[\\/]commander[\\/]/.test(args.importer) ? { path: 'child_process', namespace: 'lazy-builtin' } : undefined));
    bundler.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, () => ({
      contents: "let loaded;\nmodule.exports = new Proxy({}, { get: (_, key) => (loaded ??= require('node:child_process'))[key] });\n",
      loader: 'js',
    }));
  },
};
const common = { bundle: true, platform: 'node', format: 'esm', target: 'node22', banner, legalComments: 'none', logLevel: 'warning', plugins: [builtinsByRequire, lazyChildProcess, tarHeaders, lazyAjv, bcryptSource] };

const resourceEntry = join(out, '.resource-entry.mjs');
await mkdir(out, { recursive: true });
await writeFile(resourceEntry, ['check', 'in', 'out'].map((c) => `export * from ${JSON.stringify(join(root, 'dist', 'src', 'resource', `${c}.js`))};`).join('\n') + '\n');
await build({ ...common, plugins: [...common.plugins, sdkApart(`./${SDK_DIR}/${SDK_FILE}`)], entryPoints: [resourceEntry], outfile: join(out, 'resource.mjs') });
await rm(resourceEntry);
// fastify and its dependencies (~500 KB of the CLI's 1.4 MB) are wanted only once `serve` has
// answered its first requests (src/registry/start-server.ts): kept in a file of their own beside
// the program, fastify.cjs, they are not read, decoded and looked up in the compile cache at
// every start of every command. Only src/registry/app.js imports fastify; its import becomes a
// require of that file, run when app.js itself is first evaluated (an ESM import of it would be
// hoisted to the program's top and load it at every start). CommonJS: require() is synchronous.
const FASTIFY_FILE = 'fastify.cjs';
const fastifyApart = {
  name: 'fastify-apart',
  setup(bundler) {
    bundler.onResolve({ filter: /^fastify$/ }, (args) => (/[\\/]dist[\\/]src[\\/]/.test(args.importer) ? { path: 'fastify', namespace: 'fastify-apart' } : undefined));
    bundler.onResolve({ filter: /^\.\/fastify\.cjs$/ }, (args) => (args.namespace === 'fastify-apart' ? { path: args.path, external: true } : undefined));
    bundler.onLoad({ filter: /.*/, namespace: 'fastify-apart' }, () => ({ contents: `module.exports = require('./${FASTIFY_FILE}');\n`, loader: 'js' }));
  },
};
// Two files: main.mjs, a few lines that turn Node's compile cache on (src/cli/compile-cache.ts), then
// import program.mjs, all the rest, which is then compiled from the cache after the first start
// (serve: 12–20 ms less CPU before it listens). esbuild's code splitting at the commands' dynamic
// imports was measured too: its ~40 chunks cost more to load than compiling the unused code saved.
const cliDir = join(out, 'cartorio', 'dist', 'src', 'cli');
const programApart = {
  name: 'program-apart',
  setup(bundler) {
    bundler.onResolve({ filter: /^\.\/program\.js$/ }, () => ({ path: `./${PROGRAM_FILE}`, external: true }));
  },
};
await rm(cliDir, { recursive: true, force: true });
await build({ ...common, plugins: [...common.plugins, programApart], entryPoints: [join(root, 'dist', 'src', 'cli', 'main.js')], outfile: join(cliDir, 'main.mjs') });
// Whitespace minified (names and messages kept): a third less to read and parse at every start.
await build({
  ...common,
  plugins: [...common.plugins, fastifyApart, sdkApart(`./${SDK_FILE}`)],
  minifyWhitespace: true,
  entryPoints: [join(root, 'dist', 'src', 'cli', 'program.js')],
  outfile: join(cliDir, PROGRAM_FILE),
});
await build({
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node22',
  legalComments: 'none',
  logLevel: 'warning',
  plugins: [leaveOut],
  minifyWhitespace: true,
  stdin: { contents: "module.exports = require('fastify');\n", resolveDir: root, loader: 'js' },
  outfile: join(cliDir, FASTIFY_FILE),
});
await build({ ...common, minifyWhitespace: true, entryPoints: [join(root, 'dist', 'src', 'store', 'bucket', 'sdk.js')], outfile: join(out, SDK_DIR, SDK_FILE) });
// One non-ASCII character makes V8 hold the whole program (1.3 MB) as a two-byte string: slower to
// decode, hash and parse at every start. esbuild escapes them everywhere but in tagged templates
// (the catalog pages' html`…`), whose static text must use HTML character references instead.
const programText = await readFile(join(cliDir, PROGRAM_FILE), 'utf8');
const wide = /[^\x00-\x7f]/.exec(programText);
if (wide) throw new Error(`build-bundle: ${PROGRAM_FILE} holds the non-ASCII character ${JSON.stringify(wide[0])} in "${programText.slice(Math.max(0, wide.index - 60), wide.index + 20)}"; write it as an HTML character reference (&mdash;) or a \\u escape`);
const { name, version, license } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
await writeFile(join(out, 'cartorio', 'package.json'), JSON.stringify({ name, version, license, type: 'module', private: true }, null, 2) + '\n');
process.stdout.write(`${out}\n`);
