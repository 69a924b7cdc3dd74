import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse as parseToml } from 'smol-toml';
import { parseAllDocuments } from 'yaml';
import { CLI, FIXTURES, ROOT, run, tempDir } from './helpers/cli.js';
import { startContainerd, startServe } from './helpers/clients.js';
import { type Manifest, assertValid, firstContainer, readManifests, runLoadJob } from './helpers/kubernetes.js';

// deploy/kubernetes: every manifest parses and validates against the Kubernetes schemas
// (kubernetes-models); the commands in them run for real against a local store. What is not
// run here: a real cluster (no kubelet in this sandbox).
const DEPLOY = join(ROOT, 'deploy', 'kubernetes');
type Container = { command?: string[]; args: string[]; readinessProbe?: { httpGet: { path: string } }; livenessProbe?: { httpGet: { path: string } }; volumeMounts: { name: string; readOnly?: boolean }[] };
const manifests = (): Promise<Manifest[]> => readManifests(DEPLOY);
const container = (manifest: Manifest): Container => firstContainer<Container>(manifest);

test('every manifest validates against the Kubernetes schemas', async () => {
  const all = await manifests();
  assert.deepEqual(all.map((m) => m.kind).sort(), ['Deployment', 'Job', 'PersistentVolumeClaim', 'Service']);
  // and the kustomization lists files that exist
  await assertValid(DEPLOY, all);
});

test('the Deployment serves the store read-only with /healthz probes, and its args start a real server', async (t) => {
  const deployment = (await manifests()).find((m) => m.kind === 'Deployment') as Manifest;
  const serve = container(deployment);
  assert.equal(serve.readinessProbe?.httpGet.path, '/healthz');
  assert.equal(serve.livenessProbe?.httpGet.path, '/healthz');
  assert.ok(serve.volumeMounts.every((mount) => mount.readOnly === true), 'store mounted read-only');
  // the same args against a local store (only --store and --listen point elsewhere)
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  const loaded = await run(process.execPath, [CLI, 'load', '--store', store, join(FIXTURES, 'docker-save-busybox.tar')]);
  assert.equal(loaded.code, 0, loaded.stderr);
  const args = serve.args.slice(1).filter((_, i, list) => !['--store', '--listen'].includes(list[i] ?? '') && !['--store', '--listen'].includes(list[i - 1] ?? ''));
  const server = await startServe(t, dir, store, args);
  const health = await fetch(`http://${server.address}/healthz`);
  assert.equal(health.status, 200);
  const manifest = await fetch(`http://${server.address}/v2/busybox/manifests/1`);
  assert.equal(manifest.status, 200);
});

test('the load Job command loads what is in the incoming directory', async (t) => {
  const job = (await manifests()).find((m) => m.kind === 'Job') as Manifest;
  const load = container(job);
  const dir = await tempDir(t);
  const result = await runLoadJob(load, dir, ['/store'], process.env);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /other\/tool:2@sha256:/);
});

test('node configs point containerd, k3s, CRI-O and Docker at the Service NodePort, as mirror-config writes them', async (t) => {
  const service = (await manifests()).find((m) => m.kind === 'Service') as Manifest;
  const nodePort = (service.spec['ports'] as { nodePort: number }[])[0]?.nodePort;
  const nodeConfig = join(DEPLOY, 'node-config');
  const hosts = parseToml(await readFile(join(nodeConfig, 'containerd', 'certs.d', 'quay.io', 'hosts.toml'), 'utf8')) as { server: string; host: Record<string, { capabilities: string[] }> };
  assert.equal(hosts.server, 'https://quay.io');
  assert.deepEqual(Object.keys(hosts.host), [`http://127.0.0.1:${nodePort}`]);
  assert.deepEqual(Object.values(hosts.host)[0]?.capabilities, ['pull', 'resolve']);
  const k3s = parseAllDocuments(await readFile(join(nodeConfig, 'k3s', 'registries.yaml'), 'utf8'))[0]?.toJS() as { mirrors: Record<string, { endpoint: string[] }> };
  assert.deepEqual(Object.keys(k3s.mirrors), ['docker.io', 'ghcr.io', 'quay.io', 'registry.k8s.io']);
  for (const mirror of Object.values(k3s.mirrors)) assert.deepEqual(mirror.endpoint, [`http://127.0.0.1:${nodePort}`]);
  const conf = parseToml(await readFile(join(nodeConfig, 'containers', 'registries.conf'), 'utf8')) as { registry: { prefix: string; mirror: { location: string }[] }[] };
  assert.deepEqual(conf.registry.map((r) => [r.prefix, r.mirror[0]?.location]), ['docker.io', 'ghcr.io', 'quay.io', 'registry.k8s.io'].map((h) => [h, `127.0.0.1:${nodePort}/${h}`]));
  // The shipped files are exactly what the command writes: regenerate them, compare byte for byte.
  const dir = await tempDir(t);
  const generated = await run(process.execPath, [CLI, 'mirror-config', '--registry', `127.0.0.1:${nodePort}`, '--host', 'docker.io', '--host', 'quay.io', '--host', 'registry.k8s.io', '--host', 'ghcr.io', '--out', dir]);
  assert.equal(generated.code, 0, generated.stderr);
  for (const file of generated.stdout.trim().split('\n').map((line) => line.split(' → ')[0]?.slice(dir.length + 1) ?? '')) {
    assert.equal(await readFile(join(nodeConfig, file), 'utf8'), await readFile(join(dir, file), 'utf8'), file);
  }
});

test('containerd, configured with the shipped hosts.toml, pulls docker.io/library/busybox:1 from cartorio', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  const loaded = await run(process.execPath, [CLI, 'load', '--store', store, join(FIXTURES, 'docker-save-busybox.tar')]);
  assert.equal(loaded.code, 0, loaded.stderr);
  const server = await startServe(t, dir, store);
  // the shipped file, with only the NodePort replaced by this test server's port
  const shipped = await readFile(join(DEPLOY, 'node-config', 'containerd', 'certs.d', 'docker.io', 'hosts.toml'), 'utf8');
  await mkdir(join(dir, 'certs.d', 'docker.io'), { recursive: true });
  await writeFile(join(dir, 'certs.d', 'docker.io', 'hosts.toml'), shipped.replaceAll('127.0.0.1:30500', server.address));
  const containerd = await startContainerd(t);
  const pulled = await containerd.ctr(['image', 'pull', '--hosts-dir', join(dir, 'certs.d'), 'docker.io/library/busybox:1']);
  assert.equal(pulled.code, 0, `${pulled.stdout}\n${pulled.stderr}`);
  const listed = await containerd.ctr(['image', 'ls']);
  assert.match(listed.stdout, /docker\.io\/library\/busybox:1/);
});
