import { InvalidArgumentError } from 'commander';
import { SingleBar, Presets } from 'cli-progress';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `10m`, `2h`, `30d`, `1h30m` → milliseconds (commander argument parser). */
export function parseDuration(value: string): number {
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)];
  if (parts.length === 0 || parts.map((part) => part[0]).join('') !== value) {
    throw new InvalidArgumentError('expected a duration such as 0s, 90s, 10m, 2h, 30d or 1h30m');
  }
  return parts.reduce((sum, part) => sum + Number(part[1]) * (UNITS[part[2] as string] ?? 0), 0);
}

/** Counting progress on stderr for long walks (gc over many repositories): a bar on a terminal only. */
export interface CountProgress {
  update(done: number, total: number): void;
  stop(): void;
}

/** Below this many items the work is over before a bar helps. */
const MIN_BAR_ITEMS = 200;

export function createCountProgress(label: string, quiet: boolean): CountProgress {
  if (quiet || !process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  let bar: SingleBar | undefined;
  return {
    update(done, total) {
      if (total < MIN_BAR_ITEMS) return;
      if (!bar) {
        bar = new SingleBar({ format: `${label} [{bar}] {value}/{total}`, stream: process.stderr, hideCursor: true, clearOnComplete: true }, Presets.shades_classic);
        bar.start(total, 0);
      }
      bar.update(done);
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}

/** Bytes for people: 1.2 GB. */
export function humanBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
