import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, FIXTURES, ROOT, cartorio, run, tempDir } from './helpers/cli.js';

// A load killed at any moment leaves the store as it was or with the new image complete.

const KILL_POINTS_MS = [5, 60, 100, 140, 180, 220, 260, 300, 330, 360, 390, 420, 450, 480, 520, 600];

async function loadKilledAfter(store: string, input: string, name: string, delayMs: number): Promise<void> {
  const child = spawn(process.execPath, [CLI, 'load', '--store', store, input, '--name', name, '--compression', 'none'], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  child.kill('SIGKILL');
  await exited;
}

async function listed(store: string): Promise<{ repository: string; tag: string; digest: string }[]> {
  const result = await cartorio(['list', '--store', store, '--json']);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout);
}

test('SIGKILL at many points of a load never leaves half an image', async (t) => {
  const dir = await tempDir(t);
  const made = await run('bash', ['-c', `mkdir -p ${dir}/rootfs/data && head -c 96M /dev/zero | openssl enc -aes-256-ctr -nosalt -pass pass:crash -pbkdf2 > ${dir}/rootfs/data/blob.bin && cp -a ${FIXTURES}/rootfs/. ${dir}/rootfs/`]);
  assert.equal(made.code, 0, made.stderr);
  const store = join(dir, 'store');
  const base = await cartorio(['load', '--store', store, join(FIXTURES, 'docker-save-busybox.tar')]);
  assert.equal(base.code, 0, base.stderr);

  let completed = 0;
  for (const [i, delay] of KILL_POINTS_MS.entries()) {
    await loadKilledAfter(store, join(dir, 'rootfs'), `big/n${i}`, delay);
    const verify = await cartorio(['verify', '--store', store]);
    assert.equal(verify.code, 0, `after a kill at ${delay} ms: ${verify.stdout}${verify.stderr}`);
    const rows = await listed(store);
    assert.ok(rows.some((row) => row.repository === 'busybox'), 'the earlier image is still there');
    for (const row of rows) {
      const inspect = await run('skopeo', ['inspect', `oci:${join(store, ...row.repository.split('/'))}:${row.tag}`]);
      assert.equal(inspect.code, 0, `listed ${row.repository}:${row.tag} is complete: ${inspect.stderr}`);
    }
    if (rows.some((row) => row.repository === `big/n${i}`)) completed++;
    // the next load succeeds (waiting out a lock the killed load may have held), so the next kill hits a running load
    const next = await cartorio(['load', '--store', store, join(FIXTURES, 'rootfs.tar'), '--name', 'small', '--tag', `after${i}`]);
    assert.equal(next.code, 0, `load after a kill at ${delay} ms: ${next.stderr}`);
  }
  t.diagnostic(`${completed} of ${KILL_POINTS_MS.length} killed loads had committed before the kill`);

  // the next load succeeds, taking over a stale lock if a kill left one, and clears stale temp files
  const next = await cartorio(['load', '--store', store, join(dir, 'rootfs'), '--name', 'big/after']);
  assert.equal(next.code, 0, next.stderr);
  assert.deepEqual(await readdir(join(store, '.tmp')).catch(() => []), []);
  assert.equal((await cartorio(['verify', '--store', store])).code, 0);
});

test('two concurrent loads into one store both end up complete', async (t) => {
  const store = join(await tempDir(t), 'store');
  const [a, b] = await Promise.all([
    cartorio(['load', '--store', store, join(FIXTURES, 'docker-save-multi.tar')]),
    cartorio(['load', '--store', store, join(FIXTURES, 'busybox-oci'), '--name', 'oci/busybox']),
  ]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const names = (await listed(store)).map((row) => `${row.repository}:${row.tag}`).sort();
  assert.deepEqual(names, ['127.0.0.1:5000/busybox:1', 'busybox:1', 'oci/busybox:1', 'oci/busybox:arm64', 'oci/busybox:multi', 'other/tool:2']);
  assert.equal((await cartorio(['verify', '--store', store])).code, 0);
});

test('SIGKILL at many points of a Concourse put into a file store never leaves half an image', async (t) => {
  const dir = await tempDir(t);
  // the put's directory: a Concourse rootfs image (rootfs/ + metadata.json) with 24 MB of data (a put takes ~0.9 s here)
  const made = await run('bash', ['-c', `mkdir -p ${dir}/put/image/rootfs/data && cp -a ${FIXTURES}/concourse-rootfs/. ${dir}/put/image/ && head -c 24M /dev/zero | openssl enc -aes-256-ctr -nosalt -pass pass:out -pbkdf2 > ${dir}/put/image/rootfs/data/blob.bin`]);
  assert.equal(made.code, 0, made.stderr);
  const store = join(dir, 'store');
  await mkdir(store); // a file store must exist (an empty directory starts one)
  // A SIGKILLed put cannot remove its scratch directory; keep those inside the test's own dir.
  const scratch = join(dir, 'tmp');
  await mkdir(scratch);
  const payload = JSON.stringify({ source: { repository: 'ci/app', store: { type: 'file', path: store } }, params: { image: 'image' } });
  const put = (): ReturnType<typeof spawn> => {
    const child = spawn(join(ROOT, 'assets', 'out'), [join(dir, 'put')], { stdio: ['pipe', 'ignore', 'ignore'], env: { ...process.env, TMPDIR: scratch } });
    child.stdin?.end(payload);
    return child;
  };
  let completed = 0;
  for (const delay of [50, 150, 250, 350, 450, 550, 650, 750, 850, 950, 1100]) {
    const child = put();
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, delay));
    child.kill('SIGKILL');
    await exited;
    const verify = await cartorio(['verify', '--store', store]);
    assert.ok(verify.code === 0 || /^0 repositories/m.test(verify.stdout), `after a kill at ${delay} ms: ${verify.stdout}${verify.stderr}`);
    const rows = await listed(store).catch(() => []);
    for (const row of rows) {
      const inspect = await run('skopeo', ['inspect', `oci:${join(store, ...row.repository.split('/'))}:${row.tag}`]);
      assert.equal(inspect.code, 0, `listed ${row.repository}:${row.tag} is complete: ${inspect.stderr}`);
    }
    if (rows.length > 0) completed++;
  }
  t.diagnostic(`the store held a complete image after ${completed} of 11 kills (the first commit landed before the kill at that point)`);
  // a put that runs to the end succeeds, after whatever the kills left
  const finished = put();
  const code = await new Promise<number | null>((resolve) => finished.on('exit', resolve));
  assert.equal(code, 0);
  assert.equal((await cartorio(['verify', '--store', store])).code, 0);
  assert.deepEqual((await listed(store)).map((row) => `${row.repository}:${row.tag}`), ['ci/app:latest']);
});
