import { lstat, readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { isRepositoryName, normalizeRepositoryName, parseImageReference } from '../image/reference.js';
import { OCI_LAYOUT_FILE } from '../store/layout.js';
import { LoadError } from './load-error.js';

/**
 * Names the OCI layouts `cartorio serve DIR…` serves without a store. Each argument is
 * `NAME=DIR` or `DIR`, where DIR is a layout or a get output holding one in `oci/` (cartorio's
 * `in`, or registry-image's with an OCI layout). Unnamed, a layout is served under the get
 * output's `repository` file (host dropped, as clients add their own), else its directory name.
 */
export async function nameServedLayouts(args: string[]): Promise<Map<string, string>> {
  const layouts = new Map<string, string>();
  for (const argument of args) {
    const { name, layout } = await nameLayout(argument);
    const taken = layouts.get(name);
    if (taken !== undefined) throw new LoadError(argument, `would be served as "${name}", like ${taken}`, `name one: NAME=${argument}`);
    layouts.set(name, layout);
  }
  return layouts;
}

async function nameLayout(argument: string): Promise<{ name: string; layout: string }> {
  const equals = argument.indexOf('=');
  const givenText = equals > 0 ? argument.slice(0, equals) : undefined;
  const given = givenText === undefined ? undefined : normalizeRepositoryName(givenText);
  const path = resolve(equals > 0 ? argument.slice(equals + 1) : argument);
  if (givenText !== undefined && given === undefined) throw new LoadError(argument, `"${givenText}" is not a repository name (lowercase letters, digits, . _ - and /)`);
  let layout: string;
  let fromFile: string | undefined;
  if (await isLayout(path)) {
    layout = path;
    if (basename(path) === 'oci') fromFile = await repositoryFile(dirname(path));
  } else if (await isLayout(join(path, 'oci'))) {
    layout = join(path, 'oci');
    fromFile = await repositoryFile(path);
  } else {
    throw new LoadError(path, 'is not an OCI image layout (oci-layout + index.json) nor a get output holding one in oci/', 'serve a store with --store DIR, or convert the input first: cartorio convert SRC DEST');
  }
  const name = given ?? fromFile ?? basename(layout).toLowerCase();
  if (!isRepositoryName(name)) throw new LoadError(layout, `cannot be served as "${name}"`, `give a name: NAME=${argument}`);
  return { name, layout };
}

async function isLayout(dir: string): Promise<boolean> {
  const file = async (name: string): Promise<boolean> => (await lstat(join(dir, name)).catch(() => undefined))?.isFile() === true;
  return (await file(OCI_LAYOUT_FILE)) && (await file('index.json'));
}

async function repositoryFile(dir: string): Promise<string | undefined> {
  const text = await readFile(join(dir, 'repository'), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : parseImageReference(text.trim())?.repository;
}
