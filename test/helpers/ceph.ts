import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, run } from './cli.js';

/** A running single-node Ceph with its RADOS Gateway on 127.0.0.1 (test/helpers/ceph-rgw.sh). */
export interface Rgw {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  /** What a cartorio process needs to reach it through the AWS SDK's own chain. */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

const SCRIPT = join(ROOT, 'test', 'helpers', 'ceph-rgw.sh');

/** Starts a throw-away RGW (~2–4 s); stopped by PID when `t.after` runs. */
export async function startRgw(t: { after: (fn: () => Promise<void>) => void }): Promise<Rgw> {
  const dir = join(await mkdtemp(join(tmpdir(), 'cartorio-ceph-')), 'cluster');
  const started = await run('bash', [SCRIPT, 'start', dir]);
  if (started.code !== 0) throw new Error(`ceph-rgw.sh start failed: ${started.stderr}`);
  const values = Object.fromEntries(started.stdout.trim().split('\n').map((line) => line.split('=', 2) as [string, string]));
  const stop = async (): Promise<void> => {
    await run('bash', [SCRIPT, 'stop', dir]);
  };
  t.after(stop);
  const endpoint = values['S3_ENDPOINT'] ?? '';
  const accessKey = values['S3_ACCESS_KEY'] ?? '';
  const secretKey = values['S3_SECRET_KEY'] ?? '';
  const env: NodeJS.ProcessEnv = {
    ...withoutAws(process.env),
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_ACCESS_KEY_ID: accessKey,
    AWS_SECRET_ACCESS_KEY: secretKey,
    AWS_REGION: 'us-east-1',
    // No profile or instance metadata lookups from the test machine's own AWS set-up.
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  return { endpoint, accessKey, secretKey, env, stop };
}

/** The environment without any AWS_ setting of the machine running the tests. */
export function withoutAws(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([key]) => !key.startsWith('AWS_')));
}

/** Runs the aws CLI against the RGW (bucket creation, `aws s3 sync`, listing). */
export async function aws(rgw: Rgw, args: string[]): Promise<string> {
  const result = await run('aws', ['--endpoint-url', rgw.endpoint, ...args], { env: { ...rgw.env, AWS_DEFAULT_REGION: 'us-east-1' } });
  if (result.code !== 0) throw new Error(`aws ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}
