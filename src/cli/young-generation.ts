import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

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
 * Keeps the young generation of this process near NEW_SPACE_CAP without a command-line flag:
 * V8 fixes its maximum when the process starts, and re-running Node.js with the flag would cost
 * the start-up again. What V8 reads at every growth is its growth factor, so once the new space
 * has reached the cap, the factor is set to 1 (a growth that grows nothing), and back to 2 if V8
 * shrinks the space below the cap when the process goes idle. Checked after each garbage
 * collection, the only moment the size changes; the check runs on the event loop, after the
 * collection, so a burst of allocation within one turn may grow the space once more (8-16 MB
 * seen in test/memory.test.ts; 300 slow clients held the same RSS as with the flag). Nothing is
 * done when the user chose semi-space sizes (`node --max-semi-space-size`, NODE_OPTIONS): that
 * choice stands.
 */
export function capYoungGeneration(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  if ([...execArgv, nodeOptions ?? ''].some((arg) => /semi[-_]space/.test(arg))) return false;
  let growing = true;
  const observer = new PerformanceObserver(() => {
    const size = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0;
    if (growing === size < NEW_SPACE_CAP) return;
    growing = !growing;
    setFlagsFromString(`--semi-space-growth-factor=${growing ? GROWTH_FACTOR : 1}`);
  });
  observer.observe({ entryTypes: ['gc'] });
  return true;
}
