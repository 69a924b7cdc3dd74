import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { parseAllDocuments } from 'yaml';
import { CLI, FIXTURES, run } from './cli.js';

/** A manifest of deploy/kubernetes as parsed, enough to find it and read its spec. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: Record<string, unknown>;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

// The Kubernetes schemas (kubernetes-models) of every kind the manifests use.
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment as never,
  'batch/v1/Job': Job as never,
  'v1/ConfigMap': ConfigMap as never,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim as never,
  'v1/Secret': Secret as never,
  'v1/Service': Service as never,
};

/** Every document of every manifest file in `dir` (kustomization.yaml aside), each checked to parse. */
export async function readManifests(dir: string): Promise<Manifest[]> {
  const all: Manifest[] = [];
  for (const file of (await readdir(dir)).filter((name) => name.endsWith('.yaml') && name !== 'kustomization.yaml')) {
    for (const document of parseAllDocuments(await readFile(join(dir, file), 'utf8'))) {
      assert.deepEqual(document.errors, [], `${file} parses`);
      all.push(document.toJS() as Manifest);
    }
  }
  return all;
}

/** Asserts each manifest validates against the Kubernetes schema of its kind, and that every file `dir`'s kustomization lists exists. */
export async function assertValid(dir: string, manifests: readonly Manifest[]): Promise<void> {
  for (const manifest of manifests) {
    const Model = MODELS[`${manifest.apiVersion}/${manifest.kind}`];
    assert.ok(Model, `a model for ${manifest.apiVersion} ${manifest.kind}`);
    assert.doesNotThrow(() => new Model(manifest as never).validate(), `${manifest.kind} ${manifest.metadata.name}`);
  }
  const kustomization = parseAllDocuments(await readFile(join(dir, 'kustomization.yaml'), 'utf8'))[0]?.toJS() as { resources: string[] };
  for (const resource of kustomization.resources) await readFile(join(dir, resource));
}

/** The first container of a workload's pod template (a Deployment's or a Job's). */
export function firstContainer<C>(manifest: Manifest): C {
  return (manifest.spec['template'] as { spec: { containers: C[] } }).spec.containers[0] as C;
}

/**
 * Runs a load Job's command as its container would, in `dir`: `cartorio` on PATH is this build,
 * `dir/incoming` holds a docker save of several images, and each path of `paths` in the script is
 * rewritten to its place under `dir` (`/incoming` always).
 */
export async function runLoadJob(load: { command?: string[]; args: string[] }, dir: string, paths: readonly string[], env: NodeJS.ProcessEnv): Promise<Awaited<ReturnType<typeof run>>> {
  const bin = join(dir, 'bin');
  await mkdir(join(dir, 'incoming'), { recursive: true });
  await mkdir(bin);
  await writeFile(join(bin, 'cartorio'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
  await chmod(join(bin, 'cartorio'), 0o755);
  await writeFile(join(dir, 'incoming', 'images.tar'), await readFile(join(FIXTURES, 'docker-save-multi.tar')));
  let script = load.args[0] ?? '';
  for (const path of [...paths, '/incoming']) script = script.replaceAll(path, join(dir, path.slice(1)));
  return run(load.command?.[0] ?? 'sh', [...(load.command?.slice(1) ?? []), script], { env: { ...env, PATH: `${join(dir, 'bin')}:${env['PATH'] ?? ''}` } });
}
