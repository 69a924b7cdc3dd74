import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, FIXTURES, ROOT, cartorio, run, tempDir } from './helpers/cli.js';
import { must, podmanEnv, startDockerd } from './helpers/clients.js';
import { headingAnchors, linkTargets, markdownFiles, testedBlocks, type TestedBlock } from './helpers/docs.js';

// The documentation is checked like code: its links lead somewhere, the command reference is what
// the CLI prints, and the commands it shows (the quick start, blocks marked `<!-- docs-test: run -->`)
// run here against real clients.

test('every relative link in README.md and docs/ leads to a file, and every #anchor to a heading', async () => {
  const broken: string[] = [];
  for (const file of await markdownFiles()) {
    const text = await readFile(join(ROOT, file), 'utf8');
    for (const target of linkTargets(text)) {
      if (/^[a-z]+:/i.test(target)) continue; // https:, mailto:: not this test's to check
      const [path = '', anchor] = target.split('#');
      const resolved = path === '' ? join(ROOT, file) : join(ROOT, dirname(file), decodeURIComponent(path));
      const info = await stat(resolved).catch(() => undefined);
      if (!info) {
        broken.push(`${file}: ${target}: no such file ${relative(ROOT, resolved)}`);
      } else if (anchor !== undefined) {
        const anchors = resolved.endsWith('.md') ? headingAnchors(await readFile(resolved, 'utf8')) : new Set<string>();
        if (!anchors.has(anchor)) broken.push(`${file}: ${target}: no heading #${anchor} in ${relative(ROOT, resolved)}`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

test('docs/commands.md is what `npm run docs` writes from the CLI\'s own --help', async () => {
  const checked = await run(process.execPath, [join(ROOT, 'scripts', 'commands-doc.mjs'), '--check']);
  assert.equal(checked.code, 0, `${checked.stderr}(run \`npm run docs\` and commit docs/commands.md)`);
  const reference = await readFile(join(ROOT, 'docs', 'commands.md'), 'utf8');
  for (const command of ['load', 'serve', 'list', 'verify', 'convert', 'mirror-config']) {
    assert.match(reference, new RegExp(`^## cartorio ${command}\\n\\n\`\`\`text\\nUsage: cartorio ${command}`, 'm'), command);
  }
});

test('cartorio --help lists each command on one line, with its summary', async () => {
  const help = await cartorio(['--help']);
  assert.equal(help.code, 0);
  const section = help.stdout.split(/^Commands:\n/m)[1] ?? '';
  const lines = section.split('\n').filter((line) => line.trim() !== '');
  assert.ok(lines.length >= 6, help.stdout);
  for (const line of lines) assert.match(line, /^ {2}\S.* {2,}\S/, `a command line, not a wrapped summary: "${line}"`);
});

test('README.md is a front door: at most 12 KB, the two-command quick start, links into docs/', async () => {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  assert.ok(Buffer.byteLength(readme) <= 12 * 1024, `README.md is ${Buffer.byteLength(readme)} bytes`);
  assert.match(readme, /^```sh\nnpm ci && npm start +# .*\nnpm test +# .*\n```$/m);
  for (const page of ['getting-started', 'loading', 'serving', 'concourse', 'deploying', 'security', 'troubleshooting', 'benchmarks', 'commands']) {
    assert.ok(readme.includes(`(docs/${page}.md)`), `README.md links docs/${page}.md`);
  }
});

/** A directory with what the documented commands name: `cartorio` on PATH, busybox.tar, rootfs/, fixtures/. */
async function workspace(dir: string): Promise<{ cwd: string; path: string }> {
  const bin = join(dir, 'bin');
  await mkdir(bin, { recursive: true });
  await writeFile(join(bin, 'cartorio'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`, { mode: 0o755 });
  const cwd = join(dir, 'work');
  await mkdir(join(cwd, 'fixtures'), { recursive: true });
  await cp(join(FIXTURES, 'docker-save-busybox.tar'), join(cwd, 'busybox.tar'));
  await cp(join(FIXTURES, 'rootfs'), join(cwd, 'rootfs'), { recursive: true, verbatimSymlinks: true });
  await cp(join(FIXTURES, 'docker-save-multi.tar'), join(cwd, 'fixtures', 'tools.tar'));
  // fixtures/app.tar: the busybox `docker save` archive, its RepoTag renamed app:1.
  const unpacked = join(dir, 'app');
  await mkdir(unpacked);
  await must('tar', ['-xf', join(FIXTURES, 'docker-save-busybox.tar'), '-C', unpacked]);
  const manifest = JSON.parse(await readFile(join(unpacked, 'manifest.json'), 'utf8')) as { RepoTags: string[] }[];
  for (const entry of manifest) entry.RepoTags = ['app:1'];
  await writeFile(join(unpacked, 'manifest.json'), JSON.stringify(manifest));
  await must('bash', ['-c', `cd "${unpacked}" && tar -cf "${join(cwd, 'fixtures', 'app.tar')}" *`]);
  return { cwd, path: `${bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}` };
}

/** Runs a documented block with bash -euo pipefail; what it started in the background is stopped on exit. */
function runBlock(script: string, cwd: string, env: NodeJS.ProcessEnv): ReturnType<typeof run> {
  const guarded = [
    'set -euo pipefail',
    "trap 'exit 143' TERM",
    "trap 'kill $(jobs -p) 2>/dev/null || true; wait || true' EXIT",
    script,
  ].join('\n');
  return run('timeout', ['120', 'bash', '-c', guarded], { cwd, env });
}

test('the documented commands run', async (t) => {
  const blocks = await testedBlocks();
  const quickStart = blocks.filter((block) => block.kind === 'quick-start');
  const runnable = blocks.filter((block) => block.kind === 'run');
  assert.equal(quickStart.length, 1, 'README.md marks its quick-start pulls');
  assert.ok(runnable.length >= 4, `blocks marked docs-test: run: ${runnable.length}`);
  assert.deepEqual(blocks.filter((block) => block.kind !== 'quick-start' && block.kind !== 'run'), [], 'known kinds only');
  const { host } = await startDockerd(t);
  const dir = await tempDir(t);

  await t.test('the quick start: npm start\'s load and serve, then the README\'s skopeo, docker and podman pulls', async (st) => {
    const { cwd } = await workspace(join(dir, 'quick-start'));
    const start = ((JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts['start'] ?? '').split(' && ');
    // `npm test` has built dist/ already; the rest runs as written, from a directory with the
    // checkout's dist/ and assets/, listening on a free port (as `npm start -- --listen …` would).
    assert.equal(start[0], 'npm run build --silent');
    await symlink(join(ROOT, 'dist'), join(cwd, 'dist'));
    await symlink(join(ROOT, 'assets'), join(cwd, 'assets'));
    const command = `${start.slice(1).map((step) => step.replace(/^node /, `"${process.execPath}" `)).join(' && ')} --listen 127.0.0.1:0 --ready-file addr`;
    const child = spawn('bash', ['-c', command], { cwd, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    st.after(async () => {
      if (child.exitCode === null && child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
      await exited;
    });
    let address = '';
    for (let i = 0; i < 600 && address === '' && child.exitCode === null; i++) {
      address = await readFile(join(cwd, 'addr'), 'utf8').catch(() => '');
      if (address === '') await sleep(50);
    }
    assert.notEqual(address, '', `npm start's commands did not serve: ${stderr}`);
    const env = { ...(await podmanEnv(join(dir, 'podman'), address)), DOCKER_HOST: host };
    const script = (quickStart[0] as TestedBlock).script.replaceAll('127.0.0.1:5000', address);
    const pulled = await runBlock(script, cwd, env);
    assert.equal(pulled.code, 0, `${pulled.stdout}\n${pulled.stderr}`);
    assert.match(pulled.stdout, /"Name": "127\.0\.0\.1:\d+\/cartorio\/sample"/, 'skopeo inspect printed the image');
  });

  for (const [i, block] of runnable.entries()) {
    await t.test(`${block.file}:${block.line}`, async () => {
      const { cwd, path } = await workspace(join(dir, `block-${i}`));
      const env = { ...(await podmanEnv(join(dir, `podman-${i}`), '127.0.0.1')), DOCKER_HOST: host, PATH: path };
      const result = await runBlock(block.script, cwd, env);
      assert.equal(result.code, 0, `${block.file}:${block.line}\n${block.script}\n${result.stdout}\n${result.stderr}`);
    });
  }
});
