import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, cartorio, run, tempDir } from './helpers/cli.js';

// Every input format, loaded by the real CLI, then read back by skopeo and umoci.

interface Inspected {
  Digest: string;
  Architecture: string;
  Env?: string[];
  Layers: string[];
}

async function skopeoInspect(layout: string, tag: string, extra: string[] = []): Promise<Inspected> {
  const result = await run('skopeo', ['inspect', ...extra, `oci:${layout}:${tag}`]);
  assert.equal(result.code, 0, `skopeo inspect oci:${layout}:${tag}: ${result.stderr}`);
  return JSON.parse(result.stdout) as Inspected;
}

async function skopeoConfig(layout: string, tag: string): Promise<{ config: { Env?: string[]; Cmd?: string[]; User?: string; Entrypoint?: string[]; Labels?: Record<string, string> }; architecture: string; os: string; rootfs: { diff_ids: string[] }; created: string }> {
  const result = await run('skopeo', ['inspect', '--config', `oci:${layout}:${tag}`]);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout);
}

async function load(store: string, args: string[]): Promise<string[]> {
  const result = await cartorio(['load', '--store', store, ...args]);
  assert.equal(result.code, 0, `cartorio load ${args.join(' ')}: ${result.stderr}`);
  assert.equal(result.stderr, '');
  return result.stdout.trim().split('\n');
}

async function fixtureDigest(layout: string, ref: string): Promise<string> {
  const index = JSON.parse(await readFile(join(FIXTURES, layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref);
  if (!entry) throw new Error(`${layout} has no ref ${ref}`);
  return entry.digest;
}

test('a genuine docker save tarball loads with its RepoTags, readable by skopeo and umoci', async (t) => {
  const store = await tempDir(t);
  const lines = await load(store, [join(FIXTURES, 'docker-save-busybox.tar')]);
  assert.equal(lines.length, 1);
  assert.match(lines[0] ?? '', /^busybox:1@sha256:[a-f0-9]{64}$/);
  const inspected = await skopeoInspect(join(store, 'busybox'), '1');
  assert.equal(inspected.Digest, lines[0]?.split('@')[1]);
  assert.deepEqual(inspected.Env, ['PATH=/bin', 'GREETING=hello']);
  const umoci = await run('umoci', ['stat', '--image', `${join(store, 'busybox')}:1`]);
  assert.equal(umoci.code, 0, umoci.stderr);
  assert.match(umoci.stdout, /COPY bin \/bin/);
});

test('one docker save of several images and several RepoTags yields all of them, names keep their registry', async (t) => {
  const store = await tempDir(t);
  const lines = await load(store, [join(FIXTURES, 'docker-save-multi.tar')]);
  assert.deepEqual(lines.map((line) => line.split('@')[0]).sort(), ['127.0.0.1:5000/busybox:1', 'busybox:1', 'other/tool:2']);
  const tool = await skopeoConfig(join(store, 'other', 'tool'), '2');
  assert.deepEqual(tool.config.Cmd, ['cat', '/etc/tool']);
  assert.equal(tool.rootfs.diff_ids.length, 3);
});

test('skopeo docker-archive, Docker 25+ save layout and registry-image get output load with their names', async (t) => {
  const store = await tempDir(t);
  const lines = await load(store, [join(FIXTURES, 'busybox-docker.tar'), join(FIXTURES, 'docker25-save.tar'), join(FIXTURES, 'registry-image-get')]);
  const names = lines.map((line) => line.split('@')[0]).sort();
  assert.deepEqual(names, ['docker.io/library/busybox:1', 'docker.io/library/busybox:25', 'fixtures/getimage:latest']);
  // the get output is loaded byte for byte: same digest as the layout it came from
  const getDigest = (await readFile(join(FIXTURES, 'registry-image-get', 'digest'), 'utf8')).trim();
  assert.equal((await skopeoInspect(join(store, 'fixtures', 'getimage'), 'latest')).Digest, getDigest);
  assert.equal((await skopeoInspect(join(store, 'docker.io', 'library', 'busybox'), '25')).Layers.length, 2);
});

test('OCI layouts and archives keep their digests byte for byte, multi-platform index included', async (t) => {
  const store = await tempDir(t);
  await load(store, [join(FIXTURES, 'busybox-oci'), '--name', 'oci/busybox']);
  await load(store, [join(FIXTURES, 'busybox-oci.tar'), '--name', 'archive/busybox']);
  const single = await fixtureDigest('busybox-oci', '1');
  const multi = await fixtureDigest('busybox-oci', 'multi');
  assert.equal((await skopeoInspect(join(store, 'oci', 'busybox'), '1')).Digest, single);
  assert.equal((await skopeoInspect(join(store, 'archive', 'busybox'), '1')).Digest, single);
  const index = JSON.parse(await readFile(join(store, 'oci', 'busybox', 'index.json'), 'utf8')) as { manifests: { digest: string; annotations: Record<string, string> }[] };
  assert.equal(index.manifests.find((m) => m.annotations['org.opencontainers.image.ref.name'] === 'multi')?.digest, multi);
  const arm = await skopeoInspect(join(store, 'oci', 'busybox'), 'multi', ['--override-arch', 'arm64']);
  assert.equal(arm.Architecture, 'arm64');
});

test('a Concourse rootfs image gets env, user and cmd from metadata.json; flags override', async (t) => {
  const store = await tempDir(t);
  await load(store, [join(FIXTURES, 'concourse-rootfs'), '--name', 'ci/task', '--tag', '1']);
  const config = await skopeoConfig(join(store, 'ci', 'task'), '1');
  assert.deepEqual(config.config.Env, ['PATH=/bin', 'GREETING=from-concourse']);
  assert.equal(config.config.User, '0');
  assert.deepEqual(config.config.Cmd, ['/bin/cat', '/etc/motd']);
  assert.equal(config.os, 'linux');
  assert.equal(config.created, '1970-01-01T00:00:00Z');
  await load(store, [join(FIXTURES, 'concourse-rootfs'), '--name', 'ci/task', '--tag', '2', '--env', 'GREETING=flag', '--user', 'nobody', '--label', 'a=b', '--platform', 'linux/arm64']);
  const overridden = await skopeoConfig(join(store, 'ci', 'task'), '2');
  assert.deepEqual(overridden.config.Env, ['PATH=/bin', 'GREETING=flag']);
  assert.equal(overridden.config.User, 'nobody');
  assert.deepEqual(overridden.config.Labels, { a: 'b' });
  assert.equal(overridden.architecture, 'arm64');
});

test('a rootfs directory packs reproducibly, keeping symlinks as links', async (t) => {
  const store = await tempDir(t);
  const first = await load(store, [join(FIXTURES, 'rootfs'), '--name', 'tools/busybox', '--tag', 'a', '--cmd', '/bin/sh']);
  const second = await load(store, [join(FIXTURES, 'rootfs'), '--name', 'tools/busybox', '--tag', 'b', '--cmd', '/bin/sh']);
  assert.equal(first[0]?.split('@')[1], second[0]?.split('@')[1]);
  const unpacked = await tempDir(t);
  const result = await run('umoci', ['raw', 'unpack', '--rootless', '--image', `${join(store, 'tools', 'busybox')}:a`, join(unpacked, 'root')]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(await readFile(join(unpacked, 'root', 'etc', 'motd'), 'utf8'), 'hello from cartorio fixtures\n');
  const link = await run('readlink', [join(unpacked, 'root', 'bin', 'sh')]);
  assert.equal(link.stdout.trim(), 'busybox');
});

test('rootfs tarballs, plain and gzip, load as one layer copied as is', async (t) => {
  const store = await tempDir(t);
  await load(store, [join(FIXTURES, 'rootfs.tar'), '--name', 'plain']);
  await load(store, [join(FIXTURES, 'rootfs.tar.gz'), '--name', 'gz']);
  const plain = await skopeoInspect(join(store, 'plain'), 'latest');
  const gz = await skopeoInspect(join(store, 'gz'), 'latest');
  const sha = async (file: string): Promise<string> => 'sha256:' + (await run('sha256sum', [file])).stdout.split(' ')[0];
  assert.deepEqual(plain.Layers, [await sha(join(FIXTURES, 'rootfs.tar'))]);
  assert.deepEqual(gz.Layers, [await sha(join(FIXTURES, 'rootfs.tar.gz'))]);
  // both configs name the same uncompressed content
  assert.deepEqual((await skopeoConfig(join(store, 'gz'), 'latest')).rootfs.diff_ids, plain.Layers);
});

test('a resource-type bundle is named by its type and tagged with its version and latest', async (t) => {
  const store = await tempDir(t);
  const lines = await load(store, [join(FIXTURES, 'resource-bundle')]);
  assert.deepEqual(lines.map((line) => line.split('@')[0]), ['fixture-resource:1.2.3', 'fixture-resource:latest']);
});

test('list and verify report the store; verify finds a corrupted blob', async (t) => {
  const store = await tempDir(t);
  await load(store, [join(FIXTURES, 'docker-save-multi.tar')]);
  const list = await cartorio(['list', '--store', store, '--json']);
  assert.equal(list.code, 0, list.stderr);
  const rows = JSON.parse(list.stdout) as { repository: string; tag: string; size: number }[];
  assert.deepEqual(rows.map((row) => `${row.repository}:${row.tag}`), ['127.0.0.1:5000/busybox:1', 'busybox:1', 'other/tool:2']);
  assert.ok(rows.every((row) => row.size > 1_000_000));
  assert.equal((await cartorio(['verify', '--store', store])).code, 0);
  // flip one byte of a layer (it is hard-linked, so every repository sees it)
  const inspected = await skopeoInspect(join(store, 'busybox'), '1');
  const layer = join(store, 'busybox', 'blobs', 'sha256', (inspected.Layers[0] ?? '').slice(7));
  const bytes = await readFile(layer);
  bytes[100] = (bytes[100] ?? 0) ^ 0xff;
  const { writeFile } = await import('node:fs/promises');
  await writeFile(layer, bytes);
  const verify = await cartorio(['verify', '--store', store]);
  assert.equal(verify.code, 1);
  assert.match(verify.stdout, /busybox: application\/vnd\.oci\.image\.layer\.v1\.tar sha256:[a-f0-9]+: content hashes to sha256:/);
});

test('convert writes a standalone OCI layout that skopeo reads', async (t) => {
  const dir = await tempDir(t);
  const dest = join(dir, 'out');
  const result = await cartorio(['convert', join(FIXTURES, 'concourse-rootfs'), dest, '--tag', '7']);
  assert.equal(result.code, 0, result.stderr);
  const config = await skopeoConfig(dest, '7');
  assert.deepEqual(config.config.Cmd, ['/bin/cat', '/etc/motd']);
  const again = await cartorio(['convert', join(FIXTURES, 'concourse-rootfs'), dest]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already exists and is not empty/);
});

