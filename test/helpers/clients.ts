import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, ROOT, run, type RunResult } from './cli.js';

/** What node:test's context offers that these helpers need. */
export interface After {
  after: (fn: () => Promise<void> | void) => void;
}

/** A `cartorio serve` child process. */
export interface Server {
  /** host:port as written to --ready-file. */
  address: string;
  pid: number;
  /** What it wrote to stderr so far (pino JSON lines). */
  logs: () => string;
}

/**
 * Starts the real CLI, `cartorio serve --listen 127.0.0.1:0 --ready-file F`, and waits for the
 * ready file. Stopped with SIGTERM (by PID) in `t.after`.
 */
export async function startServe(t: After, dir: string, store: string, extra: string[] = []): Promise<Server> {
  await mkdir(dir, { recursive: true });
  const readyFile = join(dir, `ready-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  const started = startChild(t, process.execPath, [CLI, 'serve', '--store', store, '--listen', '127.0.0.1:0', '--ready-file', readyFile, '--log-level', 'warn', ...extra]);
  const address = await whenReady(started, readyFileContent(readyFile), 'cartorio serve');
  return { address, pid: started.child.pid ?? 0, logs: started.stderr };
}

/** A child process a test started, and what it wrote to stderr so far. */
export interface TestChild {
  child: ChildProcess;
  stderr: () => string;
}

/** Spawns `command args…` (stdout ignored, stderr kept); stopped by PID in `t.after`: SIGTERM, SIGKILL after 15 s. */
export function startChild(t: After, command: string, args: string[], options: { cwd?: string } = {}): TestChild {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: options.cwd });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(() => stopChild(child, exited));
  return { child, stderr: () => stderr };
}

/**
 * What `ready` gives once it gives something, asked every 50 ms, `attempts` times at most; fails
 * naming `what` and with the child's stderr when the child exits first or never gets ready.
 */
export async function whenReady<T>(started: TestChild, ready: () => Promise<T | undefined>, what: string, attempts = 200): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const value = await ready();
    if (value !== undefined) return value;
    if (started.child.exitCode !== null) break;
    await sleep(50);
  }
  throw new Error(`${what} did not become ready: ${started.stderr()}`);
}

/** For `whenReady`: the address a server wrote to its --ready-file, once it has. */
export function readyFileContent(file: string): () => Promise<string | undefined> {
  return async () => (await readFile(file, 'utf8').catch(() => '')) || undefined;
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  process.kill(child.pid, 'SIGTERM');
  const code = await Promise.race([exited, sleep(15_000).then(() => 'timeout' as const)]);
  if (code === 'timeout') process.kill(child.pid, 'SIGKILL');
}

/** Runs a command and fails with its output when it exits non-zero. */
export async function must(command: string, args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const result = await run(command, args, options);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}:\n${result.stdout}\n${result.stderr}`);
  return result;
}

/** The digest of the manifest tagged `tag` in an OCI layout (what skopeo copied). */
export async function layoutDigest(layout: string, tag: string): Promise<string | undefined> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  return index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag)?.digest;
}

/**
 * Environment for podman as root without systemd: vfs storage and a
 * private graphroot/runroot under `dir`, the registry marked insecure (plain HTTP), runc with
 * ulimits this sandbox allows (only `podman run` needs those).
 */
export async function podmanEnv(dir: string, registry: string): Promise<NodeJS.ProcessEnv> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'storage.conf'), `[storage]\ndriver = "vfs"\ngraphroot = "${dir}/root"\nrunroot = "${dir}/run"\n`);
  await writeFile(join(dir, 'registries.conf'), `unqualified-search-registries = []\n[[registry]]\nlocation = "${registry}"\ninsecure = true\n`);
  await writeFile(join(dir, 'containers.conf'), '[containers]\ndefault_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]\nnetns = "none"\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n');
  return { ...process.env, CONTAINERS_CONF: join(dir, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf'), CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf') };
}

/** A private containerd (own root, state and socket; no CRI): the host's containerd is never touched. */
export interface Containerd {
  socket: string;
  ctr: (args: string[]) => Promise<RunResult>;
}

/** Starts it in a temp directory of its own, stopped (by PID), unmounted and removed in `t.after`. */
export async function startContainerd(t: After): Promise<Containerd> {
  const dir = await mkdtemp(join(tmpdir(), 'cartorio-containerd-'));
  const socket = join(dir, 'containerd.sock');
  const config = join(dir, 'config.toml');
  await writeFile(config, [
    'version = 2', `root = "${dir}/root"`, `state = "${dir}/state"`, 'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]', `  address = "${socket}"`, '[ttrpc]', `  address = "${socket}.ttrpc"`, '[debug]', '  address = ""', '[metrics]', '  address = ""', '',
  ].join('\n'));
  const child = spawn('containerd', ['--config', config], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(async () => {
    await stopChild(child, exited);
    await unmountUnder(dir);
    await rm(dir, { recursive: true, force: true });
  });
  const ctr = (args: string[]): Promise<RunResult> => run('ctr', ['-a', socket, '-n', 'cartorio-test', ...args]);
  for (let i = 0; i < 100; i++) {
    if ((await ctr(['version'])).code === 0) return { socket, ctr };
    if (child.exitCode !== null) break;
    await sleep(100);
  }
  throw new Error(`containerd did not start: ${log.slice(-500)}`);
}

/** Undoes mounts a daemon left below `dir` (deepest first). */
export async function unmountUnder(dir: string): Promise<void> {
  const mounts = (await readFile('/proc/mounts', 'utf8')).split('\n').map((line) => line.split(' ')[1] ?? '').filter((m) => m.startsWith(`${dir}/`));
  for (const mount of mounts.sort().reverse()) {
    if ((await run('umount', [mount])).code !== 0) await run('umount', ['-l', mount]);
  }
}

/** A private Docker engine (test/helpers/dockerd.sh): `docker` runs the client against it, legacy builder. */
export interface Docker {
  /** `unix://…/docker.sock`, for DOCKER_HOST. */
  host: string;
  docker: (args: string[], options?: { input?: string }) => Promise<RunResult>;
}

/**
 * Starts dockerd in a temp directory of its own; `t.after` stops it (by PID), then unmounts and
 * removes the directory (dockerd bind-mounts its data-root there).
 */
export async function startDockerd(t: After): Promise<Docker> {
  const script = join(ROOT, 'test', 'helpers', 'dockerd.sh');
  const dir = await mkdtemp(join(tmpdir(), 'cartorio-dockerd-'));
  t.after(async () => {
    await run('bash', [script, 'stop', dir]);
    await unmountUnder(dir);
    await rm(dir, { recursive: true, force: true });
  });
  const host = (await must('bash', [script, 'start', dir])).stdout.trim();
  // No base image can be pulled here, and BuildKit would want one for its frontend: the classic builder.
  const env = { ...process.env, DOCKER_BUILDKIT: '0', DOCKER_CLI_HINTS: 'false' };
  return { host, docker: (args, options = {}) => run('docker', ['-H', host, ...args], { env, ...(options.input !== undefined && { input: options.input }) }) };
}

/**
 * A test CA and a server certificate for 127.0.0.1 signed by it (openssl), in `dir`:
 * ca.crt, server.crt, server.key. The CA sits alone in `dir/ca` as containers' cert-dir wants.
 */
export async function makeTestCA(dir: string): Promise<{ caDir: string; cert: string; key: string }> {
  await mkdir(join(dir, 'ca'), { recursive: true });
  const ca = join(dir, 'ca', 'ca.crt');
  const caKey = join(dir, 'ca.key');
  const key = join(dir, 'server.key');
  const csr = join(dir, 'server.csr');
  const cert = join(dir, 'server.crt');
  const ext = join(dir, 'server.ext');
  await must('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', ca, '-days', '2', '-subj', '/CN=cartorio test CA']);
  await must('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=127.0.0.1']);
  await writeFile(ext, 'subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth\n');
  await must('openssl', ['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext]);
  return { caDir: join(dir, 'ca'), cert, key };
}
