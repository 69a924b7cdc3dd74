import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, ROOT, tempDir } from './helpers/cli.js';
import { aws, startRgw } from './helpers/ceph.js';
import { readyFileContent, startChild, whenReady } from './helpers/clients.js';
import { type Manifest, assertValid, firstContainer, readManifests, runLoadJob } from './helpers/kubernetes.js';

// deploy/kubernetes/object-storage: every manifest validates against the Kubernetes schemas, and
// the Deployment's and the load Job's commands run for real against Ceph RGW with the environment
// the ConfigMap and Secret give them (only the endpoint, bucket and keys are the test's). What is
// not run here: a real cluster (no kubelet in this sandbox).
const DEPLOY = join(ROOT, 'deploy', 'kubernetes', 'object-storage');
interface Container {
  command?: string[];
  args: string[];
  envFrom: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  resources?: { limits?: { memory?: string } };
  readinessProbe?: { httpGet: { path: string } };
  volumeMounts?: { name: string; mountPath: string }[];
}

const manifests = (): Promise<Manifest[]> => readManifests(DEPLOY);
const container = (manifest: Manifest): Container => firstContainer<Container>(manifest);

// Kubernetes expands $(VAR) in args from the container's environment.
function expand(args: string[], env: Record<string, string>): string[] {
  return args.map((arg) => arg.replace(/\$\(([A-Z0-9_]+)\)/g, (_, name: string) => env[name] ?? `$(${name})`));
}

test('the object-storage manifests validate; replicas read the bucket from the ConfigMap and Secret, keep nothing on disk', async () => {
  const all = await manifests();
  assert.deepEqual(all.map((m) => m.kind).sort(), ['ConfigMap', 'Deployment', 'Job', 'Secret', 'Service']);
  await assertValid(DEPLOY, all);
  const secret = all.find((m) => m.kind === 'Secret') as Manifest;
  const config = all.find((m) => m.kind === 'ConfigMap') as Manifest;
  assert.deepEqual(Object.keys(secret.stringData ?? {}).sort(), ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']);
  assert.match(config.data?.['CARTORIO_STORE'] ?? '', /^s3:\/\/[a-z0-9.-]+\//);
  const deployment = all.find((m) => m.kind === 'Deployment') as Manifest;
  assert.ok((deployment.spec['replicas'] as number) >= 2);
  for (const workload of [deployment, all.find((m) => m.kind === 'Job') as Manifest]) {
    const refs = container(workload).envFrom.map((from) => from.configMapRef?.name ?? from.secretRef?.name);
    assert.deepEqual(refs, [config.metadata.name, secret.metadata.name], workload.metadata.name);
  }
  const serve = container(deployment);
  assert.equal(serve.readinessProbe?.httpGet.path, '/healthz');
  assert.equal(serve.volumeMounts, undefined, 'no volume: the store is the bucket');
  assert.equal(serve.resources?.limits?.memory, '150Mi');
});

test('the Deployment\'s args serve the bucket and the load Job\'s command loads into it, on Ceph RGW', async (t) => {
  const dir = await tempDir(t);
  const rgw = await startRgw(t);
  await aws(rgw, ['s3', 'mb', 's3://k8s-images']);
  const all = await manifests();
  const config = all.find((m) => m.kind === 'ConfigMap') as Manifest;
  // The ConfigMap's keys, with the values this test's object store has; the keys from the Secret's names.
  const env: Record<string, string> = {
    ...Object.fromEntries(Object.keys(config.data ?? {}).map((key) => [key, ''])),
    CARTORIO_STORE: 's3://k8s-images/prod',
    AWS_ENDPOINT_URL_S3: rgw.endpoint,
    AWS_REGION: 'us-east-1',
    CARTORIO_BLOB_ENDPOINT: rgw.endpoint.replace('127.0.0.1', 'localhost'),
    AWS_ACCESS_KEY_ID: rgw.accessKey,
    AWS_SECRET_ACCESS_KEY: rgw.secretKey,
  };
  assert.deepEqual(Object.keys(env).slice(0, Object.keys(config.data ?? {}).length).sort(), Object.keys(config.data ?? {}).sort());
  Object.assign(process.env, rgw.env, env);

  const load = container(all.find((m) => m.kind === 'Job') as Manifest);
  const loaded = await runLoadJob(load, dir, [], { ...process.env, TMPDIR: join(dir, 'tmp') });
  assert.equal(loaded.code, 0, loaded.stderr);
  assert.match(loaded.stdout, /other\/tool:2@sha256:/);

  const serve = container(all.find((m) => m.kind === 'Deployment') as Manifest);
  const readyFile = join(dir, 'ready');
  const args = expand(serve.args, env).map((arg) => (arg === '0.0.0.0:5000' ? '127.0.0.1:0' : arg));
  const server = startChild(t, process.execPath, [CLI, ...args, '--ready-file', readyFile]);
  const address = await whenReady(server, readyFileContent(readyFile), 'cartorio serve (Deployment args)');
  assert.equal((await fetch(`http://${address}/healthz`)).status, 200);
  const manifest = await fetch(`http://${address}/v2/other/tool/manifests/2`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
  assert.equal(manifest.status, 200);
  const { layers } = (await manifest.json()) as { layers: { digest: string }[] };
  const blob = await fetch(`http://${address}/v2/other/tool/blobs/${layers[0]?.digest ?? ''}`, { redirect: 'manual' });
  assert.equal(blob.status, 307);
  // Signed for the endpoint clients use (--blob-redirect-endpoint $(CARTORIO_BLOB_ENDPOINT)), and it works there.
  const location = blob.headers.get('location') ?? '';
  assert.ok(location.startsWith(`${env['CARTORIO_BLOB_ENDPOINT'] ?? ''}/k8s-images/prod/.blobs/blobs/sha256/`), location);
  assert.equal((await fetch(location)).status, 200);
});
