import module from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Turns on Node's on-disk compile cache (the V8 code cache of every module loaded) in
 * `$XDG_CACHE_HOME/cartorio/node-compile-cache` (`~/.cache/…`): a start after the first skips
 * most of the parsing and compiling of fastify, commander and the CLI. Node's own settings win:
 * `NODE_COMPILE_CACHE=DIR` (Node already turned it on there) and `NODE_DISABLE_COMPILE_CACHE=1`.
 * A cache is only a speed-up: an unwritable directory, or a Node.js without the API, leaves it off
 * and never fails the command. Returns the directory in use, or undefined.
 */
export function startCompileCache(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.NODE_DISABLE_COMPILE_CACHE) return undefined;
  try {
    if (env.NODE_COMPILE_CACHE) return module.getCompileCacheDir?.();
    const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
    // Node's recursive mkdir loops forever under procfs and sysfs (mkdir gives ENOENT there).
    if (/^\/(proc|sys)(\/|$)/.test(base)) return undefined;
    const result = module.enableCompileCache?.(join(base, 'cartorio', 'node-compile-cache'));
    return result?.directory;
  } catch {
    return undefined;
  }
}

/**
 * Writes what the cache has gathered so far. A server runs until it is killed, possibly without
 * a clean exit, so `serve` calls this once listening instead of waiting for the exit to write it.
 */
export function flushCompileCache(): void {
  try {
    module.flushCompileCache?.();
  } catch {
    // a cache is only a speed-up
  }
}
