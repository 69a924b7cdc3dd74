import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, run, type RunResult } from './cli.js';
import { readyFileContent, startChild, whenReady, type After } from './clients.js';

/** assets/check, assets/in, assets/out of the checkout (they run dist/src/resource). */
export const ASSETS = join(ROOT, 'assets');

/** What a resource script answered: exit code, raw streams, and stdout parsed when it is JSON. */
export interface ResourceResult extends RunResult {
  json: unknown;
}

/** Runs a real resource script the way Concourse does: `payload` as JSON on stdin, the directory as argv[1]. */
export async function resource(command: 'check' | 'in' | 'out', payload: unknown, dir?: string, options: { raw?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ResourceResult> {
  const input = options.raw ?? JSON.stringify(payload);
  const result = await run(join(ASSETS, command), dir === undefined ? [] : [dir], { input, ...(options.env && { env: options.env }) });
  let json: unknown;
  try {
    json = JSON.parse(result.stdout);
  } catch {
    json = undefined;
  }
  return { ...result, json };
}

/** Like `resource`, but fails with stderr when the script does. */
export async function resourceOk<T>(command: 'check' | 'in' | 'out', payload: unknown, dir?: string): Promise<T> {
  const result = await resource(command, payload, dir);
  if (result.code !== 0) throw new Error(`${command} exited ${result.code}: ${result.stderr}`);
  return result.json as T;
}

/** The answer of `out` and `in`. */
export interface StepOutput {
  version: { digest: string; tag?: string };
  metadata: { name: string; value: string }[];
}

export function metadataValue(output: StepOutput, name: string): string | undefined {
  return output.metadata.find((field) => field.name === name)?.value;
}

/** Builds dist/bundle (the esbuild bundles bundle_server copies) unless it is newer than dist/src. */
export async function ensureBundle(): Promise<void> {
  const bundle = join(ROOT, 'dist', 'bundle', 'cartorio', 'dist', 'src', 'cli', 'main.mjs');
  const mtime = async (path: string): Promise<number> => (await stat(path).catch(() => undefined))?.mtimeMs ?? 0;
  const bundled = await mtime(bundle);
  // The CLI bundle holds all of dist/src; main.js and the resource entry stand for it.
  const sources = await Promise.all(['dist/src/cli/main.js', 'dist/src/cli/serve.js', 'dist/src/resource/in.js'].map((p) => mtime(join(ROOT, p))));
  if (bundled > Math.max(...sources)) return;
  const result = await run(process.execPath, [join(ROOT, 'assets', 'build-bundle.mjs')]);
  if (result.code !== 0) throw new Error(`build-bundle.mjs: ${result.stderr}`);
}

/** A running `cartorio serve` started through a launcher (`assets/cartorio` or a get's `cartorio`). */
export interface LaunchedServer {
  address: string;
  stderr: () => string;
}

/**
 * Starts `command args… --listen 127.0.0.1:0 --ready-file F` and waits for the address;
 * stopped by PID with SIGTERM in `t.after`.
 */
export async function launchServe(t: After, command: string, args: string[], readyFile: string, options: { cwd?: string } = {}): Promise<LaunchedServer> {
  const started = startChild(t, command, [...args, '--listen', '127.0.0.1:0', '--ready-file', readyFile, '--log-level', 'warn', '--quiet'], options);
  const address = await whenReady(started, readyFileContent(readyFile), `${command} ${args.join(' ')}`);
  return { address, stderr: started.stderr };
}
