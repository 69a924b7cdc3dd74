import { mkdir, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ROOT, run, type RunResult } from './cli.js';
import { resourceOk, type StepOutput } from './resource-run.js';

/**
 * A small stand-in for Concourse, enough to run pipeline-examples/ for real: cartorio `get`s and
 * `put`s go through the real assets/in and assets/out (with the store swapped for a local one),
 * `sh -ec` tasks run their exact script in a build directory holding their inputs, and steps of
 * other resource types or task images are replaced by `fakes` that make their outputs.
 */
export interface Pipeline {
  resource_types?: { name: string; type: string; source: Record<string, unknown> }[];
  resources: { name: string; type: string; source: Record<string, unknown> }[];
  jobs: { name: string; plan: Step[] }[];
}

export interface Step {
  get?: string;
  put?: string;
  task?: string;
  resource?: string;
  params?: Record<string, unknown>;
  get_params?: Record<string, unknown>;
  in_parallel?: Step[] | { steps: Step[] };
  image?: string;
  input_mapping?: Record<string, string>;
  config?: TaskConfig;
  [key: string]: unknown;
}

export interface TaskConfig {
  inputs?: { name: string; path?: string }[];
  outputs?: { name: string }[];
  params?: Record<string, string>;
  run: { path: string; args?: string[] };
}

export const EXAMPLES = join(ROOT, 'pipeline-examples');

export async function readPipeline(file: string): Promise<Pipeline> {
  return parse(await readFile(join(EXAMPLES, file), 'utf8')) as Pipeline;
}

/** Every step of a plan, `in_parallel` flattened, in order. */
export function steps(plan: Step[]): Step[] {
  return plan.flatMap((step) => {
    if (step.in_parallel === undefined) return [step];
    return steps(Array.isArray(step.in_parallel) ? step.in_parallel : step.in_parallel.steps);
  });
}

export interface RunOptions {
  /** Build directory: artifacts are `<dir>/<name>`. */
  dir: string;
  /** The store every cartorio resource with `store:` uses instead of its `((vars))`. */
  store: Record<string, unknown>;
  /**
   * For sources in registry-image's vocabulary (no `store:`): the registry `host:port` that
   * replaces `((registry_host))`; reached over plain HTTP, and the credentials dropped.
   */
  registryHost?: string;
  /** Steps (by get/put/task name) done by a stand-in. */
  fakes?: Record<string, (dir: string) => Promise<void>>;
  /** Environment of task scripts. */
  env?: NodeJS.ProcessEnv;
  /** Extra task params, by task name (e.g. PULL_WITH). */
  taskParams?: Record<string, Record<string, string>>;
}

/** What a job run did: the answers of the resource steps and the output of each task. */
export interface JobRun {
  outputs: Map<string, StepOutput>;
  tasks: Map<string, RunResult>;
}

export async function runJob(pipeline: Pipeline, jobName: string, options: RunOptions): Promise<JobRun> {
  const job = pipeline.jobs.find((j) => j.name === jobName);
  if (!job) throw new Error(`no job ${jobName}`);
  await mkdir(options.dir, { recursive: true });
  const result: JobRun = { outputs: new Map(), tasks: new Map() };
  for (const step of steps(job.plan)) {
    const name = step.get ?? step.put ?? step.task ?? '?';
    const fake = options.fakes?.[name];
    if (fake) {
      await fake(options.dir);
      continue;
    }
    if (step.get !== undefined || step.put !== undefined) {
      const resource = pipeline.resources.find((r) => r.name === (step.resource ?? name));
      if (resource?.type !== 'cartorio') throw new Error(`step ${name}: resource type ${resource?.type ?? '?'} needs a fake`);
      const source = sourceFor(resource.source, options);
      if (step.put !== undefined) {
        // Concourse runs out in a directory holding every artifact of the build so far.
        const output = await resourceOk<StepOutput>('out', { source, params: step.params ?? {} }, options.dir);
        result.outputs.set(`put ${name}`, output);
        result.outputs.set(`get ${name}`, await resourceOk<StepOutput>('in', { source, version: output.version, params: step.get_params ?? {} }, join(options.dir, name)));
      } else {
        const versions = await resourceOk<StepOutput['version'][]>('check', { source });
        const version = versions.at(-1);
        if (!version) throw new Error(`get ${name}: check found no version`);
        result.outputs.set(`get ${name}`, await resourceOk<StepOutput>('in', { source, version, params: step.params ?? {} }, join(options.dir, name)));
      }
      continue;
    }
    if (step.task !== undefined && step.config) {
      result.tasks.set(name, await runTask(step, options));
      continue;
    }
    throw new Error(`step ${name}: not runnable here`);
  }
  return result;
}

function sourceFor(source: Record<string, unknown>, options: RunOptions): Record<string, unknown> {
  if (source['store'] !== undefined || options.registryHost === undefined) return { ...source, store: options.store };
  const { username: _u, password: _p, ...rest } = source;
  return { ...rest, repository: String(source['repository']).replace('((registry_host))', options.registryHost), insecure: true };
}

async function runTask(step: Step, options: RunOptions): Promise<RunResult> {
  const config = step.config as TaskConfig;
  const [flags, script] = config.run.args ?? [];
  if (config.run.path !== 'sh' || flags !== '-ec' || script === undefined) throw new Error(`task ${step.task}: only "sh -ec SCRIPT" tasks run here`);
  const env = { ...options.env, ...config.params, ...options.taskParams?.[step.task ?? ''] };
  if (step.image !== undefined) {
    // `image: X`: Concourse runs the task in X's rootfs/ with metadata.json's env and user.
    const root = join(options.dir, step.image, 'rootfs');
    const metadata = JSON.parse(await readFile(join(options.dir, step.image, 'metadata.json'), 'utf8')) as { env: string[] };
    const imageEnv = Object.fromEntries(metadata.env.map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]));
    return run('/usr/sbin/chroot', [root, 'sh', '-ec', script], { env: { ...imageEnv, ...config.params } });
  }
  const work = join(options.dir, `.task-${step.task}`);
  await mkdir(work, { recursive: true });
  for (const input of config.inputs ?? []) {
    const artifact = step.input_mapping?.[input.name] ?? input.name;
    await symlink(join(options.dir, artifact), join(work, input.path ?? input.name)).catch(() => undefined);
  }
  for (const output of config.outputs ?? []) {
    await mkdir(join(options.dir, output.name), { recursive: true });
    await symlink(join(options.dir, output.name), join(work, output.name)).catch(() => undefined);
  }
  return run('sh', ['-ec', script], { cwd: work, env });
}
