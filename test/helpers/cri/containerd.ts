import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from '../cli.js';
import { unmountUnder, type After } from '../clients.js';

/** A private containerd with its CRI plugin: the image service a kubelet talks to. */
export interface CriContainerd {
  /** The gRPC socket, for `criImages`. */
  socket: string;
  /** containerd's log so far (its requests to registries are logged at debug level). */
  log: () => Promise<string>;
}

/**
 * Starts containerd in a temp directory of its own with the CRI plugin enabled and registry hosts
 * read from `certsDir` (`<certsDir>/<registry>/hosts.toml`, containerd's `config_path`), as a node
 * configured by `cartorio mirror-config` has them. `t.after` stops it by PID, unmounts what it left
 * mounted and removes the directory.
 *
 * The config names only what differs from containerd's defaults: its own root, state, sockets and
 * opt dir, so that the host's containerd and /etc/containerd are never touched; the `native`
 * snapshotter, which needs no overlayfs; and an empty private CNI config dir. Without a CNI config
 * the CRI plugin logs "failed to load cni during init" and still serves the image service: only
 * pod sandboxes need networking, and pulling needs none.
 */
export async function startCriContainerd(t: After, certsDir: string): Promise<CriContainerd> {
  const dir = await mkdtemp(join(tmpdir(), 'cartorio-cri-'));
  const socket = join(dir, 'containerd.sock');
  const config = join(dir, 'config.toml');
  const logFile = join(dir, 'containerd.log');
  await Promise.all(['cni/bin', 'cni/net.d', 'opt'].map((sub) => mkdir(join(dir, sub), { recursive: true })));
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  await writeFile(config, [
    'version = 2',
    `root = "${dir}/root"`,
    `state = "${dir}/state"`,
    'disabled_plugins = []',
    '[grpc]', `  address = "${socket}"`,
    '[ttrpc]', `  address = "${socket}.ttrpc"`,
    '[debug]', '  address = ""',
    '[metrics]', '  address = ""',
    `[${cri}.containerd]`, '  snapshotter = "native"',
    `[${cri}.cni]`, `  bin_dir = "${dir}/cni/bin"`, `  conf_dir = "${dir}/cni/net.d"`,
    `[${cri}.registry]`, `  config_path = "${certsDir}"`,
    '[plugins."io.containerd.internal.v1.opt"]', `  path = "${dir}/opt"`,
    '',
  ].join('\n'));
  // containerd writes its log to stderr; a file keeps all of it for the test to read.
  const logFd = openSync(logFile, 'a');
  const child = spawn('containerd', ['--config', config, '--log-level', 'debug'], { stdio: ['ignore', logFd, logFd], detached: true });
  closeSync(logFd);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      process.kill(child.pid, 'SIGTERM');
      if ((await Promise.race([exited.then(() => 'exited' as const), sleep(15_000)])) !== 'exited') process.kill(child.pid, 'SIGKILL');
    }
    await unmountUnder(dir);
    await rm(dir, { recursive: true, force: true });
  });
  const log = (): Promise<string> => readFile(logFile, 'utf8').catch(() => '');

  // Ready when the CRI plugin reports ok; a plugin that failed to load is named in the error.
  let plugins = '';
  for (let i = 0; i < 150 && child.exitCode === null; i++) {
    plugins = (await run('ctr', ['-a', socket, 'plugins', 'ls'])).stdout;
    const status = plugins.split('\n').map((line) => line.trim().split(/\s+/)).find((cols) => cols[0] === 'io.containerd.grpc.v1' && cols[1] === 'cri')?.at(-1);
    if (status === 'ok') return { socket, log };
    if (status !== undefined) throw new Error(`containerd's CRI plugin reports "${status}"; log:\n${(await log()).slice(-2000)}`);
    await sleep(200);
  }
  throw new Error(`containerd (config ${config}) did not serve CRI within 30 s; plugins:\n${plugins}\nlog:\n${(await log()).slice(-2000)}`);
}
