import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';

/** `serve --workers`: how many processes serve the port. */
export const MAX_WORKERS = 256;

/**
 * `--workers`: `auto` or a count from 1; undefined for anything else. (No commander here: main.ts
 * reads it before the program loads, early-port.ts.)
 */
export function workersValue(value: string): number | 'auto' | undefined {
  if (value === 'auto') return 'auto';
  const count = Number(value);
  return /^\d+$/.test(value) && count >= 1 && count <= MAX_WORKERS ? count : undefined;
}

/**
 * Cores allowed by a cgroup v2 `cpu.max` ("QUOTA PERIOD" in microseconds, or "max PERIOD" for no
 * limit); undefined when there is no limit or the text is not understood.
 */
export function parseCpuMax(text: string): number | undefined {
  const [quota, period = '100000'] = text.trim().split(/\s+/);
  if (quota === undefined || quota === 'max' || !/^\d+$/.test(quota) || !/^\d+$/.test(period)) return undefined;
  const cores = Number(quota) / Number(period);
  return Number.isFinite(cores) && cores > 0 ? cores : undefined;
}

/** Processes for `auto`: the cores this process may run on, capped by a CPU quota rounded up (1.5 cores are used whole only by 2). */
export function workersFor(cores: number, quota: number | undefined): number {
  return Math.max(1, Math.min(cores, quota === undefined ? cores : Math.ceil(quota)));
}

/**
 * `--workers auto`: os.availableParallelism() (the CPUs of this process's affinity mask) and the
 * tightest cgroup v2 cpu.max from this process's cgroup up to the root (a container's limit may be
 * set on a parent). Only on Linux, where SO_REUSEPORT spreads connections; 1 elsewhere.
 */
export function autoWorkers(): number {
  if (process.platform !== 'linux' || !hasReusePort(process.versions.node)) return 1;
  return workersFor(availableParallelism(), cgroupCpuQuota());
}

/** Read synchronously: kernel files that never block, before `serve` listens (a promise per file cost ~1 ms of it). */
function cgroupCpuQuota(): number | undefined {
  const self = readOrUndefined('/proc/self/cgroup') ?? '';
  const line = self.split('\n').find((each) => each.startsWith('0::'));
  if (line === undefined) return undefined;
  let quota: number | undefined;
  for (let dir = line.slice(3).trim() || '/'; ; dir = dirname(dir)) {
    const text = readOrUndefined(join('/sys/fs/cgroup', dir, 'cpu.max'));
    const cores = text === undefined ? undefined : parseCpuMax(text);
    if (cores !== undefined) quota = Math.min(quota ?? cores, cores);
    if (dir === '/' || dir === '.') return quota;
  }
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Whether this Node.js has listen's `reusePort` (22.12 on the 22 line, 23.1 on): older ones ignore it. */
export function hasReusePort(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}
