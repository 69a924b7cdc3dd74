import { rmSync } from 'node:fs';

/**
 * Temp paths of loads running in this process. A load removes its own when it ends; a command
 * stopped by SIGINT or SIGTERM calls `removeTempPathsSync` before exiting, so Ctrl-C during a big
 * load leaves no hundreds of megabytes in `<store>/.tmp` (SIGKILL is left to the next load's sweep).
 */
const active = new Set<string>();

export function registerTempPath(path: string): void {
  active.add(path);
}

export function releaseTempPath(path: string): void {
  active.delete(path);
}

/** Synchronous: it runs in a signal handler, right before the process exits. */
export function removeTempPathsSync(): void {
  for (const path of active) rmSync(path, { recursive: true, force: true });
  active.clear();
}
