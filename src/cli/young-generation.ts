import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * The young generation a serving process may grow to: 8 MB of new space, what
 * `--max-semi-space-size=4` allows. Node.js 24 lets V8 grow it to 128 MB on a machine with a few
 * GB of memory, and a server's steady stream of short-lived objects does grow it: 300 clients at
 * 2 MB/s held two processes at 278 MB RSS, 241 MB with 4 MB semi-spaces, at the same rate sent.
 * Manifest GETs ran no slower with the smaller young generation (bench/results.md).
 */
const NEW_SPACE_CAP = 8 * 1024 * 1024;
const GROWTH_FACTOR = 2;
/**
 * A new space that doubled past the cap (a growth the check came too late for) is shrunk back, at
 * most this often: each shrink is a full collection. Below that, V8 moves the space by a page or
 * a few above the cap (8-13 MB seen) and back on its own.
 */
const SHRINK_EVERY_MS = 60_000;

/**
 * Keeps the young generation of this process near NEW_SPACE_CAP without a command-line flag:
 * V8 fixes its maximum when the process starts, and re-running Node.js with the flag would cost
 * the start-up again. What V8 reads at every growth is its growth factor, so once the new space
 * has reached the cap, the factor is set to 1 (a growth that grows nothing), and back to 2 if V8
 * shrinks the space below the cap when the process goes idle. Checked after each garbage
 * collection, the only moment the size changes; the check runs on the event loop, after the
 * collection, so a burst of allocation within one turn may grow the space once more. A space
 * past the cap when this is called (the start-up: opening a store of 10 000 repositories left
 * workers at 16 MB), or doubled past it later (such a burst), is shrunk at once by a collection
 * that reduces memory, what V8 does on its own only when the process goes idle: 300 clients at
 * 2 MB/s otherwise held such a process 8-12 MB above its peer. Nothing is done when the user chose semi-space sizes
 * (`node --max-semi-space-size`, NODE_OPTIONS): that choice stands.
 */
export function capYoungGeneration(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  if ([...execArgv, nodeOptions ?? ''].some((arg) => /semi[-_]space/.test(arg))) return false;
  let growing = true;
  let shrunk = -Infinity;
  const check = (over: number): void => {
    let size = newSpaceSize();
    if (size >= over && performance.now() - shrunk >= SHRINK_EVERY_MS) {
      shrunk = performance.now();
      shrinkHeap();
      size = newSpaceSize();
    }
    if (growing === size < NEW_SPACE_CAP) return;
    growing = !growing;
    setFlagsFromString(`--semi-space-growth-factor=${growing ? GROWTH_FACTOR : 1}`);
  };
  // at once: the start-up before this call may have grown the space past the cap
  check(NEW_SPACE_CAP + 1);
  const observer = new PerformanceObserver(() => check(2 * NEW_SPACE_CAP));
  observer.observe({ entryTypes: ['gc'] });
  return true;
}

function newSpaceSize(): number {
  return getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0;
}

let collect: ((options: object) => void) | undefined;

/**
 * A full collection that reduces memory ("last resort", V8's answer to a low-memory warning): the
 * new space goes back to its first size. Node.js has no API for it; V8's gc() is made visible
 * only in a new context, not to the process's own code.
 */
function shrinkHeap(): void {
  if (collect === undefined) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as (options: object) => void;
  }
  collect({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}
