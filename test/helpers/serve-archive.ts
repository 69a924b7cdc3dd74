import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { CLI, cartorio } from './cli.js';
import { readyFileContent, startChild, whenReady, type After, type Server } from './clients.js';

/** A `cartorio serve ARGS…` child (archives, layouts, --store as given), with its PID for signals. */
export interface ArchiveServer extends Server {
  child: ChildProcess;
}

/** Starts `cartorio serve --listen 127.0.0.1:0 --ready-file F ARGS…`; stopped by PID in `t.after`. */
export async function serveArgs(t: After, dir: string, args: string[]): Promise<ArchiveServer> {
  const readyFile = join(dir, `ready-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  const started = startChild(t, process.execPath, [CLI, 'serve', '--listen', '127.0.0.1:0', '--ready-file', readyFile, '--quiet', ...args]);
  const address = await whenReady(started, readyFileContent(readyFile), `cartorio serve ${args.join(' ')}`);
  return { address, pid: started.child.pid ?? 0, logs: started.stderr, child: started.child };
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
