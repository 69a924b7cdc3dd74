import { copyFile, lstat, mkdir, mkdtemp, readFile, symlink } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { isRepositoryName, parseImageReference } from '../image/reference.js';
import { OCI_LAYOUT_FILE } from '../store/layout.js';

/**
 * `cartorio serve LAYOUT…`: serves OCI layouts (a get's `oci/`, a get output directory, any
 * layout) without a store. `cartorio serve` itself serves a store — a directory of
 * repositories — so the layouts are put in a throw-away store view: per repository a real
 * directory with a copy of `oci-layout` and `index.json` and a symlink to the layout's
 * `blobs/`. Nothing is copied but those two small files; the layouts may be read-only.
 *
 * A layout's repository name is `NAME=` before its path, else the `repository` file of the
 * get output it sits in, else the directory's own name.
 */
export interface ServeView {
  /** The `serve` arguments to run instead: `serve --store VIEW` plus the other options. */
  args: string[];
  /** Removes the view (call on exit). */
  cleanup: () => void;
  /** repository → layout directory, for messages. */
  layouts: Map<string, string>;
}

/** Options of `cartorio serve` that take a value (src/cli/serve.ts; a test compares them with `serve --help`). */
export const VALUE_OPTIONS = new Set(['-s', '--store', '-l', '--listen', '--ready-file', '--tls-cert', '--tls-key', '--htpasswd', '--log-level']);

/**
 * Rewrites `serve` arguments that name layouts; undefined when there are none (plain `serve`,
 * or another command). `scratch` lists where the view may go, first writable wins.
 */
export async function serveLayouts(args: string[], scratch: string[]): Promise<ServeView | undefined> {
  if (args[0] !== 'serve') return undefined;
  const options: string[] = [];
  const positional: string[] = [];
  for (let i = 1; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (arg.startsWith('-')) {
      options.push(arg);
      if (VALUE_OPTIONS.has(arg) && i + 1 < args.length) options.push(args[++i] as string);
    } else {
      positional.push(arg);
    }
  }
  if (positional.length === 0) return undefined;
  if (options.some((option) => option === '-s' || option === '--store' || option.startsWith('--store='))) {
    throw new Error('give either --store DIR or layout directories, not both');
  }
  const layouts = new Map<string, string>();
  for (const argument of positional) {
    const { name, layout } = await nameLayout(argument);
    const taken = layouts.get(name);
    if (taken !== undefined) throw new Error(`${layout} and ${taken} would both be served as "${name}"; name one: NAME=${argument}`);
    layouts.set(name, layout);
  }
  const view = await makeScratch(scratch);
  const cleanup = (): void => rmSync(view, { recursive: true, force: true });
  try {
    for (const [name, layout] of layouts) {
      const dir = join(view, ...name.split('/'));
      await mkdir(dir, { recursive: true });
      await copyFile(join(layout, OCI_LAYOUT_FILE), join(dir, OCI_LAYOUT_FILE));
      await copyFile(join(layout, 'index.json'), join(dir, 'index.json'));
      await symlink(join(layout, 'blobs'), join(dir, 'blobs'));
    }
  } catch (error) {
    cleanup();
    throw error;
  }
  return { args: ['serve', '--store', view, ...options], cleanup, layouts };
}

async function nameLayout(argument: string): Promise<{ name: string; layout: string }> {
  const equals = argument.indexOf('=');
  const given = equals > 0 ? argument.slice(0, equals) : undefined;
  const path = resolve(equals > 0 ? argument.slice(equals + 1) : argument);
  if (given !== undefined && !isRepositoryName(given)) throw new Error(`"${given}" is not a repository name (lowercase letters, digits, . _ - and /)`);
  let layout: string;
  let fromFile: string | undefined;
  if (await isLayout(path)) {
    layout = path;
    if (basename(path) === 'oci') fromFile = await repositoryFile(dirname(path));
  } else if (await isLayout(join(path, 'oci'))) {
    layout = join(path, 'oci');
    fromFile = await repositoryFile(path);
  } else {
    throw new Error(`${path} is not an OCI image layout (oci-layout + index.json) nor a get output holding one in oci/`);
  }
  const name = given ?? fromFile ?? basename(layout).toLowerCase();
  if (!isRepositoryName(name)) throw new Error(`cannot name ${layout} "${name}"; give a name: NAME=${argument}`);
  return { name, layout };
}

async function isLayout(dir: string): Promise<boolean> {
  const file = async (name: string): Promise<boolean> => (await lstat(join(dir, name)).catch(() => undefined))?.isFile() === true;
  return (await file(OCI_LAYOUT_FILE)) && (await file('index.json'));
}

// A get output's `repository` file (cartorio's or registry-image's), host dropped as clients add their own.
async function repositoryFile(dir: string): Promise<string | undefined> {
  const text = await readFile(join(dir, 'repository'), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  return parseImageReference(text.trim())?.repository;
}

async function makeScratch(parents: string[]): Promise<string> {
  let last: unknown;
  for (const parent of parents) {
    try {
      return await mkdtemp(join(parent, 'cartorio-serve-'));
    } catch (error) {
      last = error;
    }
  }
  throw new Error(`no writable directory for the serve view (tried ${parents.join(', ')}): ${(last as Error | undefined)?.message ?? ''}`);
}
