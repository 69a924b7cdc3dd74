import assert from 'node:assert/strict';
import { cp, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { validateCheckRequest, validateInRequest, validateOutRequest } from '../src/resource/schema.js';
import { FIXTURES, tempDir } from './helpers/cli.js';
import { startDistribution } from './helpers/client-fixtures.js';
import { startDockerd } from './helpers/clients.js';
import { readPipeline, runJob, steps } from './helpers/resource-pipeline.js';
import { ensureBundle, resourceOk, type StepOutput } from './helpers/resource-run.js';

// pipeline-examples/ run for real: cartorio steps through the real scripts against Debian's
// docker-registry, task scripts exactly as written; only oci-build-task, git, registry-image and
// s3 steps are stood in for (they make the files those resources would). Port 5320 is this file's.
const PORT = 5320;
const EXAMPLES = ['build-and-pull.yml', 'convert-rootfs.yml', 'air-gapped-bundle.yml', 'from-registry-image.yml'];
const DIGEST = 'sha256:' + 'a'.repeat(64);

test('every cartorio source and step of the examples is a valid payload', async () => {
  for (const file of EXAMPLES) {
    const pipeline = await readPipeline(file);
    assert.ok(pipeline.resource_types?.some((type) => type.name === 'cartorio'), `${file}: declares the cartorio resource type`);
    const cartorio = new Set(pipeline.resources.filter((r) => r.type === 'cartorio').map((r) => r.name));
    for (const resource of pipeline.resources.filter((r) => r.type === 'cartorio')) {
      const source = JSON.parse(JSON.stringify(resource.source).replace(/\(\(\w+\)\)/g, 'var'));
      assert.doesNotThrow(() => validateCheckRequest({ source }), `${file}: ${resource.name}`);
    }
    for (const job of pipeline.jobs) {
      for (const step of steps(job.plan)) {
        const source = { repository: 'registry.example.com/x' };
        if (step.put !== undefined && cartorio.has(step.put)) {
          assert.doesNotThrow(() => validateOutRequest({ source, params: step.params }), `${file}: put ${step.put}`);
          assert.doesNotThrow(() => validateInRequest({ source, version: { digest: DIGEST }, params: step.get_params ?? null }), `${file}: get_params of ${step.put}`);
        }
        if (step.get !== undefined && cartorio.has(step.get)) assert.doesNotThrow(() => validateInRequest({ source, version: { digest: DIGEST }, params: step.params ?? null }), `${file}: get ${step.get}`);
      }
    }
  }
});

test('the examples, run', async (t) => {
  await ensureBundle();
  await startDistribution(t, PORT);
  const store = { type: 'registry', url: `http://127.0.0.1:${PORT}` };
  // The examples' tasks `mktemp -d` (a bundle, a site): keep those inside this test's temp dir.
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', TMPDIR: await tempDir(t) };

  await t.test('1: oci-build-task → put → get with the launcher → a task pulls from its own registry (skopeo, docker)', async (st) => {
    const dir = await tempDir(st);
    const pipeline = await readPipeline('build-and-pull.yml');
    const ociBuildTask = async (build: string): Promise<void> => {
      await mkdir(join(build, 'image'), { recursive: true });
      await cp(join(FIXTURES, 'busybox-oci.tar'), join(build, 'image', 'image.tar'));
    };
    const first = await runJob(pipeline, 'build-and-pull', { dir, store, env, fakes: { 'app-src': async () => undefined, build: ociBuildTask } });
    const digest = first.outputs.get('put app-image')?.version.digest ?? '';
    const pulled = first.tasks.get('pull-from-a-task-local-registry');
    assert.equal(pulled?.code, 0, pulled?.stderr);
    assert.match(pulled?.stdout ?? '', new RegExp(`^pulled 127.0.0.1:\\d+/ci/app:latest@${digest} from a registry inside this task$`, 'm'));

    const { host } = await startDockerd(st);
    const again = await runJob(pipeline, 'build-and-pull', {
      dir, store, env: { ...env, DOCKER_HOST: host }, taskParams: { 'pull-from-a-task-local-registry': { PULL_WITH: 'docker' } },
      fakes: { 'app-src': async () => undefined, build: async () => undefined, 'app-image': async () => undefined },
    });
    const docker = again.tasks.get('pull-from-a-task-local-registry');
    assert.equal(docker?.code, 0, docker?.stderr);
    assert.match(docker?.stdout ?? '', new RegExp(`pulled 127.0.0.1:\\d+/ci/app:latest@${digest}`));
  });

  await t.test('2: a registry-image rootfs get becomes a real image, and comes back as a task image', async (st) => {
    const dir = await tempDir(st);
    const pipeline = await readPipeline('convert-rootfs.yml');
    const registryImageGet = async (build: string): Promise<void> => {
      const out = join(build, 'busybox-rootfs');
      await cp(join(FIXTURES, 'concourse-rootfs'), out, { recursive: true, verbatimSymlinks: true });
      await writeFile(join(out, 'repository'), 'busybox');
      await writeFile(join(out, 'tag'), 'stable');
      await writeFile(join(out, 'digest'), DIGEST);
    };
    const run = await runJob(pipeline, 'convert', { dir, store, env, fakes: { 'busybox-rootfs': registryImageGet } });
    const put = run.outputs.get('put busybox-image');
    assert.equal(put?.metadata.find((m) => m.name === 'source_format')?.value, 'concourse-rootfs');
    const task = run.tasks.get('run-in-the-converted-image');
    assert.equal(task?.code, 0, task?.stderr);
    assert.equal(task?.stdout, '0\n/bin/sh\n\n/etc:\nmotd\n');
    // Reproducible: converting the same rootfs again stores the same digest.
    const rerun = await runJob(pipeline, 'convert', { dir: join(dir, 'again'), store, env, fakes: { 'busybox-rootfs': registryImageGet } });
    assert.equal(rerun.outputs.get('put busybox-image')?.version.digest, put?.version.digest);
  });

  await t.test('3: an air-gapped bundle of three images and their registry, served from one task', async (st) => {
    const dir = await tempDir(st);
    const pipeline = await readPipeline('air-gapped-bundle.yml');
    const seed = join(dir, 'seed');
    await mkdir(seed);
    await cp(join(FIXTURES, 'docker-save-busybox.tar'), join(seed, 'app.tar'));
    await cp(join(FIXTURES, 'busybox-oci.tar'), join(seed, 'worker.tar'));
    await cp(join(FIXTURES, 'concourse-rootfs'), join(seed, 'busybox'), { recursive: true, verbatimSymlinks: true });
    const digests: string[] = [];
    for (const [repository, tag, image] of [['ci/app', 'latest', 'app.tar'], ['ci/worker', 'latest', 'worker.tar'], ['mirror/busybox', 'stable', 'busybox']] as const) {
      digests.push((await resourceOk<StepOutput>('out', { source: { repository, tag, store }, params: { image } }, seed)).version.digest);
    }
    const build = join(dir, 'make-bundle');
    const made = await runJob(pipeline, 'make-bundle', { dir: build, store, env, fakes: { 'airgap-bundle': async () => undefined } });
    assert.equal(made.tasks.get('pack')?.code, 0, made.tasks.get('pack')?.stderr);
    assert.deepEqual(await readdir(join(build, 'airgap')), ['cartorio-airgap.tgz']);
    const other = join(dir, 'other-side');
    const tried = await runJob(pipeline, 'try-the-bundle', {
      dir: other, store, env,
      fakes: { 'airgap-bundle': async (b) => cp(join(build, 'airgap'), join(b, 'airgap-bundle'), { recursive: true }) },
    });
    const served = tried.tasks.get('serve-and-pull-everything');
    assert.equal(served?.code, 0, served?.stderr);
    const lines = (served?.stdout ?? '').trim().split('\n').map((line) => line.replace(/127\.0\.0\.1:\d+/, 'R'));
    assert.deepEqual(lines, [`served R/ci/app:latest@${digests[0]}`, `served R/mirror/busybox:stable@${digests[2]}`, `served R/ci/worker:latest@${digests[1]}`]);
  });

  await t.test('4: a registry-image pipeline with only type: changed — put image.tar, run in the implicit get', async (st) => {
    const dir = await tempDir(st);
    const pipeline = await readPipeline('from-registry-image.yml');
    assert.deepEqual(pipeline.resources.map((r) => r.type), ['cartorio']);
    const ociBuildTask = async (build: string): Promise<void> => {
      await mkdir(join(build, 'image'), { recursive: true });
      await cp(join(FIXTURES, 'busybox-oci.tar'), join(build, 'image', 'image.tar'));
    };
    const run = await runJob(pipeline, 'build-and-run', { dir, store, registryHost: `127.0.0.1:${PORT}`, env, fakes: { build: ociBuildTask } });
    const put = run.outputs.get('put app-image');
    assert.equal(put?.version.digest, 'sha256:aa48215cf55ff8cc1922a87e696d659944c1aaf0502097800a4cc8cfa23d2bcb');
    assert.equal(put?.metadata.find((m) => m.name === 'repository')?.value, `127.0.0.1:${PORT}/ci/app`);
    const task = run.tasks.get('run-in-the-pushed-image');
    assert.equal(task?.code, 0, task?.stderr);
    assert.equal(task?.stdout, 'hello from cartorio fixtures\n');
  });
});
