import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, cartorio } from './cli.js';
import type { After, Server } from './clients.js';

/** A `cartorio serve ARGS…` child (archives, layouts, --store as given), with its PID for signals. */
export interface ArchiveServer extends Server {
  child: ChildProcess;
}

/** Starts `cartorio serve --listen 127.0.0.1:0 --ready-file F ARGS…`; stopped by PID in `t.after`. */
export async function serveArgs(t: After, dir: string, args: string[]): Promise<ArchiveServer> {
  const readyFile = join(dir, `ready-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  const child = spawn(process.execPath, [CLI, 'serve', '--listen', '127.0.0.1:0', '--ready-file', readyFile, '--quiet', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    if (child.exitCode === null && child.pid !== undefined) {
      process.kill(child.pid, 'SIGTERM');
      await Promise.race([exited, sleep(15_000)]);
    }
  });
  for (let i = 0; i < 200; i++) {
    const address = await readFile(readyFile, 'utf8').catch(() => '');
    if (address !== '') return { address, pid: child.pid ?? 0, logs: () => stderr, child };
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  throw new Error(`cartorio serve ${args.join(' ')} did not become ready: ${stderr}`);
}

/** What `cartorio load` + `list --json` gives for an archive: repository:tag → digest. */
export async function loadedDigests(store: string, archive: string, extra: string[] = []): Promise<Map<string, string>> {
  const loaded = await cartorio(['load', '--quiet', '--store', store, ...extra, archive]);
  if (loaded.code !== 0) throw new Error(`load ${archive}: ${loaded.stderr}`);
  const listed = JSON.parse((await cartorio(['list', '--json', '--store', store])).stdout) as { repository: string; tag: string; digest: string }[];
  return new Map(listed.map((image) => [`${image.repository}:${image.tag}`, image.digest]));
}

export const ACCEPT = [
  'application/vnd.oci.image.index.v1+json', 'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');
