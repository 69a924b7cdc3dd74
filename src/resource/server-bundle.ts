import { constants } from 'node:fs';
import { access, chmod, copyFile, mkdir, open, readFile, realpath, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

/**
 * `params.bundle_server`: puts a `cartorio` launcher in the get output so a task can run
 * `./<input>/cartorio serve ./<input>/oci` with nothing installed. It carries everything:
 *
 *   cartorio                      /bin/sh script
 *   .cartorio/node                this Node.js binary
 *   .cartorio/lib/                its dynamic loader and shared libraries (what it has mapped)
 *   .cartorio/dist/src/cli/main.mjs   the CLI, bundled by esbuild (it imports program.mjs beside it,
 *                                     which requires fastify.cjs beside it)
 *
 * The script starts node through the bundled loader with `--library-path`, so the task image
 * needs only a Linux kernel of the same architecture and a /bin/sh — not even a libc.
 */
export const LAUNCHER = 'cartorio';
export const RUNTIME_DIR = '.cartorio';
const BUNDLE_MAIN = join('dist', 'src', 'cli', 'main.mjs');
/** What main.mjs imports once Node's compile cache is on (assets/build-bundle.mjs). */
const BUNDLE_PROGRAM = join('dist', 'src', 'cli', 'program.mjs');
/** What program.mjs requires once `serve` has answered its first requests: fastify. */
const BUNDLE_FASTIFY = join('dist', 'src', 'cli', 'fastify.cjs');

/** Where the bundled CLI is: `dist/bundle/cartorio` of a checkout, `lib/cartorio` in the image. */
export async function findCliBundle(): Promise<string> {
  const candidates = [new URL('../../bundle/cartorio/', import.meta.url), new URL('./cartorio/', import.meta.url)].map((url) => fileURLToPath(url));
  for (const dir of candidates) {
    if (await access(join(dir, BUNDLE_MAIN)).then(() => true, () => false)) return dir;
  }
  throw new Error(`bundle_server: the bundled CLI is missing (looked in ${candidates.join(', ')}); in a checkout, run: node assets/build-bundle.mjs`);
}

/** What the launcher runs: a node binary, its ELF interpreter (if dynamic) and its libraries. */
export interface NodeRuntime {
  node: string;
  interpreter: string | undefined;
  libraries: string[];
}

/** This process's runtime: `execPath`, the interpreter its ELF header names, the libraries it has mapped. */
export async function currentRuntime(execPath: string): Promise<NodeRuntime> {
  const node = await realpath(execPath);
  const interpreter = await elfInterpreter(node);
  const maps = await readFile('/proc/self/maps', 'utf8').catch(() => '');
  const libraries = new Set<string>();
  for (const line of maps.split('\n')) {
    const path = line.slice(line.indexOf('/'));
    if (line.includes('/') && /\.so(\.\d+)*$/.test(path) && !path.startsWith('/dev/')) libraries.add(path);
  }
  return { node, interpreter, libraries: [...libraries].sort() };
}

/** Writes the launcher and its runtime into `dest` (replacing an earlier one). Returns the bytes written. */
export async function writeServerBundle(dest: string, runtime: NodeRuntime, cliBundle: string): Promise<number> {
  const partial = join(dest, `.cartorio.partial-${randomBytes(4).toString('hex')}`);
  let bytes = 0;
  const copy = async (from: string, to: string, mode: number): Promise<void> => {
    await copyFile(from, to, constants.COPYFILE_FICLONE);
    await chmod(to, mode);
    bytes += (await stat(to)).size;
  };
  try {
    await mkdir(join(partial, 'lib'), { recursive: true });
    await mkdir(join(partial, 'dist', 'src', 'cli'), { recursive: true });
    await copy(runtime.node, join(partial, 'node'), 0o755);
    await copy(join(cliBundle, 'package.json'), join(partial, 'package.json'), 0o644);
    for (const file of [BUNDLE_MAIN, BUNDLE_PROGRAM, BUNDLE_FASTIFY]) await copy(join(cliBundle, file), join(partial, file), 0o644);
    const names = new Set<string>();
    for (const library of runtime.libraries) {
      const name = basename(library);
      if (names.has(name)) continue;
      names.add(name);
      await copy(library, join(partial, 'lib', name), 0o755);
      // Mapped paths are real files (libstdc++.so.6.0.30); the loader looks for the soname (libstdc++.so.6).
      const soname = /^(.*?\.so\.\d+)\./.exec(name)?.[1];
      if (soname && !names.has(soname)) {
        names.add(soname);
        await symlink(name, join(partial, 'lib', soname));
      }
    }
    const loader = runtime.interpreter === undefined ? undefined : basename(runtime.interpreter);
    if (runtime.interpreter !== undefined && loader !== undefined && !names.has(loader)) {
      await copy(await realpath(runtime.interpreter), join(partial, 'lib', loader), 0o755);
    }
    await rm(join(dest, RUNTIME_DIR), { recursive: true, force: true });
    await rename(partial, join(dest, RUNTIME_DIR));
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    throw error;
  }
  const script = launcherScript(runtime.interpreter === undefined ? undefined : basename(runtime.interpreter));
  await writeFile(join(dest, `${LAUNCHER}.partial`), script, { mode: 0o755 });
  await rename(join(dest, `${LAUNCHER}.partial`), join(dest, LAUNCHER));
  return bytes + script.length;
}

/**
 * Node.js flags for a process that may serve: Node 24 grows its young generation to 64 MB or more,
 * which a server that walked 100 000 manifests then holds as RSS (peak 307 MB against 186 MB with
 * 4 MB semi-spaces, at the same request rate; bench/results.md). The resource image sets the same
 * in NODE_OPTIONS (Dockerfile).
 */
export const SERVER_NODE_FLAGS = '--max-semi-space-size=4';

/**
 * One serving process unless the task says otherwise: the launcher serves a handful of pulls to the
 * task's own steps, on a Concourse worker whose cores (often many, seldom limited by a cgroup quota)
 * belong to other builds; a single process also starts fastest and holds the least memory.
 */
const LAUNCHER_WORKERS = 'CARTORIO_WORKERS="${CARTORIO_WORKERS:-1}"';

/** The /bin/sh launcher: finds its own directory, then runs the bundled CLI on the bundled node. */
export function launcherScript(loader: string | undefined): string {
  const run = loader === undefined
    ? `exec "$r/node" ${SERVER_NODE_FLAGS} "$r/dist/src/cli/main.mjs" "$@"`
    : `exec "$r/lib/${loader}" --library-path "$r/lib" "$r/node" ${SERVER_NODE_FLAGS} "$r/dist/src/cli/main.mjs" "$@"`;
  return [
    '#!/bin/sh',
    '# cartorio, written by the cartorio resource (get with params.bundle_server: true).',
    '# Runs the bundled CLI on the bundled Node.js through its own dynamic loader and libraries:',
    '# the task image needs only /bin/sh and a Linux kernel of the same architecture.',
    '#   ./<input>/cartorio serve ./<input>/oci [more layouts…] --listen 127.0.0.1:5000',
    'case "$0" in */*) here=${0%/*} ;; *) here=. ;; esac',
    `r="$here/${RUNTIME_DIR}"`,
    `export ${LAUNCHER_WORKERS}`,
    run,
    '',
  ].join('\n');
}

// ELF64/ELF32 program headers: PT_INTERP names the dynamic loader (e.g. /lib64/ld-linux-x86-64.so.2).
async function elfInterpreter(path: string): Promise<string | undefined> {
  const handle = await open(path, 'r');
  try {
    const header = Buffer.alloc(64);
    await handle.read(header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46) return undefined;
    const is64 = header[4] === 2;
    const little = header[5] === 1;
    const u16 = (b: Buffer, o: number): number => (little ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b: Buffer, o: number): number => (little ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const word = (b: Buffer, o: number): number => (is64 ? Number(little ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)) : u32(b, o));
    const phoff = word(header, is64 ? 0x20 : 0x1c);
    const phentsize = u16(header, is64 ? 0x36 : 0x2a);
    const phnum = u16(header, is64 ? 0x38 : 0x2c);
    const table = Buffer.alloc(phentsize * phnum);
    await handle.read(table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) {
      const entry = table.subarray(i * phentsize);
      if (u32(entry, 0) !== 3) continue; // PT_INTERP
      const offset = word(entry, is64 ? 0x08 : 0x04);
      const size = word(entry, is64 ? 0x20 : 0x10);
      const name = Buffer.alloc(Math.min(size, 4096));
      await handle.read(name, 0, name.length, offset);
      return name.toString('utf8').replace(/\0.*$/s, '');
    }
    return undefined;
  } finally {
    await handle.close();
  }
}
