import { SingleBar, Presets } from 'cli-progress';

/** Byte progress on stderr: a bar on a terminal, nothing when not a TTY or with --quiet. */
export interface Progress {
  start(label: string, totalBytes: number | undefined): void;
  add(bytes: number): void;
  /** A line for the operator on stderr, printed above the bar. */
  note(line: string): void;
  stop(): void;
}

const SILENT: Progress = { start: () => undefined, add: () => undefined, note: (line) => void process.stderr.write(`${line}\n`), stop: () => undefined };
/** Inputs smaller than this load too fast for a bar to help. */
const MIN_BAR_BYTES = 32 * 1024 * 1024;

export function createProgress(quiet: boolean): Progress {
  if (quiet || !process.stderr.isTTY) return SILENT;
  let bar: SingleBar | undefined;
  let seen = 0;
  return {
    start(label, totalBytes) {
      bar?.stop();
      seen = 0;
      bar = undefined;
      if (totalBytes !== undefined && totalBytes < MIN_BAR_BYTES) return;
      bar = new SingleBar(
        { format: `${label} [{bar}] {percentage}% {done}/{size} MB {speed} MB/s`, stream: process.stderr, hideCursor: true, clearOnComplete: true },
        Presets.shades_classic,
      );
      bar.start(totalBytes ?? 0, 0, { done: '0', size: mb(totalBytes ?? 0), speed: '0' });
      (bar as SingleBar & { startedAt?: number }).startedAt = Date.now();
    },
    add(bytes) {
      if (!bar) return;
      seen += bytes;
      const seconds = Math.max((Date.now() - ((bar as SingleBar & { startedAt?: number }).startedAt ?? Date.now())) / 1000, 0.001);
      bar.update(seen, { done: mb(seen), speed: (seen / 1048576 / seconds).toFixed(0) });
    },
    note(line) {
      // Over the bar's line; the bar draws itself again below on its next update.
      process.stderr.write(bar ? `\r\x1b[2K${line}\n` : `${line}\n`);
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}

function mb(bytes: number): string {
  return (bytes / 1048576).toFixed(1);
}
