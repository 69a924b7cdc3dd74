import cluster, { type Worker } from 'node:cluster';
import type { ProcessGroup } from '../registry/app.js';
import type { BlobLocation } from '../store/image-source.js';
import type { MetricsSnapshot } from '../registry/metrics.js';
import type { VerificationStatus } from '../formats/archive-source.js';
import { CliError } from './common.js';

/**
 * `serve --workers N`: one port served by N processes. The first process (the primary) opens the
 * sources, listens, and serves at once, as a single process would; it then forks N-1 workers
 * that open the same sources and listen on the same address with SO_REUSEPORT, so the kernel
 * spreads new connections over the processes' own accept queues (Linux ≥ 3.9). node:cluster's
 * round-robin was the alternative: its primary accepts every connection and hands it to a worker
 * over IPC, a hop per connection, and the primary cannot serve itself.
 *
 * The primary supervises: a worker that dies is logged and replaced; SIGTERM and SIGHUP are
 * passed on; /metrics and /healthz answered by any process speak for all of them, over IPC.
 */

/** The environment variable that tells a forked process it is a worker, and the address to share. */
const WORKER_ENV = 'CARTORIO_WORKER_LISTEN';
/** The identity of the archives the primary serves (ArchiveSource.identity), for the worker to match. */
const IDENTITY_ENV = 'CARTORIO_WORKER_ARCHIVES';
/** A scrape waits this long for each process's counts; one that does not answer is left out. */
const METRICS_WAIT_MS = 1_000;
/** A worker that dies sooner than this after it started is replaced only after RESTART_DELAY_MS. */
const YOUNG_DEATH_MS = 5_000;
/** Doubled for every young death in a row, up to MAX_RESTART_DELAY_MS: a worker that cannot start does not spin. */
const RESTART_DELAY_MS = 1_000;
const MAX_RESTART_DELAY_MS = 30_000;
/** In-flight downloads get this long to finish after SIGTERM before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 10_000;

/** Messages between the primary and its workers (JSON over the cluster IPC channel). */
type Message =
  | { type: 'listening' }
  | { type: 'metrics-request'; id: number }
  | { type: 'metrics-reply'; id: number; snapshots: MetricsSnapshot[] }
  | { type: 'metrics-collect'; id: number }
  | { type: 'metrics'; id: number; snapshot: MetricsSnapshot }
  | { type: 'processes'; up: number; want: number }
  | { type: 'reload' }
  | { type: 'verdict'; identity: string; digest: string; path: string; offset: number; problem?: string; status?: VerificationStatus };

export type Verdict = Extract<Message, { type: 'verdict' }>;

/** The address a worker is to share, when this process is one (undefined in the primary). */
export function workerAddress(): string | undefined {
  return cluster.isWorker ? process.env[WORKER_ENV] : undefined;
}

/**
 * In a worker: closes the IPC channel to the primary, which would keep the event loop alive, so
 * the process ends with its exit code (a disconnect it did not ask for ends it at once with 0:
 * node:cluster's rule, which is also what a worker does when its primary is killed).
 */
export function leaveGroup(): void {
  if (cluster.worker?.isConnected()) cluster.worker.disconnect();
}

/**
 * In a worker: fails unless the archives it opened are the files the primary serves. An archive
 * replaced (renamed over) since the primary opened it would otherwise be served by this worker
 * alone: two processes answering one port with different images.
 */
export function checkSameArchives(identity: string, paths: string[]): void {
  const primary = process.env[IDENTITY_ENV];
  if (primary !== undefined && primary !== identity) {
    throw new CliError(`${paths.join(', ')}: changed since the first serving process (pid ${process.ppid}) opened them; this worker would serve other bytes than it does`, `send SIGHUP to pid ${process.ppid} to serve the new files from every process`);
  }
}

interface Log {
  error(details: object, message: string): void;
}

/** The server, as far as stopping it goes. */
interface Closable {
  log: { info(details: object, message: string): void; warn(message: string): void };
  close(): Promise<unknown>;
}

interface Member {
  worker: Worker;
  started: number;
  listening: boolean;
}

/** The primary's side: forks, watches and replaces the workers; answers for all of them. */
export class WorkerGroup implements ProcessGroup {
  readonly #members = new Map<number, Member>();
  readonly #want: number;
  #address = '';
  readonly #log: Log;
  readonly #own: () => MetricsSnapshot;
  readonly #waiting = new Map<number, (snapshot: MetricsSnapshot) => void>();
  #nextId = 0;
  #stopping = false;
  #up = 1;
  readonly #identity: () => string | undefined;
  #youngDeaths = 0;
  /** The identity of the files a location is in, if still served (ArchiveSource.identityOf). */
  identityOf: (digest: string, location: BlobLocation) => string | undefined = () => undefined;
  /** Applies a verdict a worker found to the primary's own archives. */
  adopt: (verdict: Verdict) => void = () => undefined;

  /**
   * `count` processes in all, the primary (this one) included; `identity`: of the archives the
   * primary serves now (each worker must open the same files).
   */
  constructor(count: number, log: Log, own: () => MetricsSnapshot, identity: () => string | undefined) {
    this.#want = count;
    this.#log = log;
    this.#own = own;
    this.#identity = identity;
  }

  /**
   * Forks every worker at once, to listen on `address` where the primary already does; resolves
   * when all listen, rejects if one exits before it does.
   */
  start(address: string): Promise<void> {
    this.#address = address;
    const starting = Array.from({ length: this.#want - 1 }, () => this.#fork());
    return Promise.all(starting).then(() => undefined);
  }

  processes(): { up: number; want: number } {
    return { up: this.#up, want: this.#want };
  }

  async peerMetrics(except?: Worker): Promise<MetricsSnapshot[]> {
    const asked = [...this.#members.values()].filter((member) => member.listening && member.worker !== except);
    const answers = await Promise.all(asked.map((member) => this.#collect(member.worker)));
    return answers.filter((snapshot): snapshot is MetricsSnapshot => snapshot !== undefined);
  }

  /** Sends the message to every worker but `except` (SIGHUP's reload, verdicts). */
  broadcast(message: Message, except?: Worker): void {
    for (const { worker } of this.#members.values()) if (worker !== except && worker.isConnected()) worker.send(message);
  }

  /** The primary found a blob good or bad while serving it: every worker learns it. */
  blobVerdict(location: BlobLocation, digest: string, problem?: string): void {
    const identity = this.identityOf(digest, location);
    if (identity !== undefined) this.broadcast(verdictOf(identity, location, digest, problem));
  }

  /** SIGTERM to every worker (each drains its own requests); resolves when all have exited. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const exits = [...this.#members.values()].map(({ worker }) => new Promise<void>((resolve) => {
      if (worker.isDead()) return resolve();
      worker.once('exit', () => resolve());
      worker.process.kill('SIGTERM');
    }));
    await Promise.all(exits);
  }

  async #fork(): Promise<void> {
    const identity = this.#identity();
    const worker = cluster.fork({ [WORKER_ENV]: this.#address, ...(identity !== undefined && { [IDENTITY_ENV]: identity }) });
    const member: Member = { worker, started: Date.now(), listening: false };
    this.#members.set(worker.id, member);
    return new Promise<void>((resolve, reject) => {
      worker.on('message', (message: Message) => {
        if (message.type === 'listening') {
          member.listening = true;
          this.#count();
          resolve();
        } else if (message.type === 'metrics') {
          this.#waiting.get(message.id)?.(message.snapshot);
        } else if (message.type === 'verdict') {
          // found by this worker while serving: the primary and the other workers refuse (or trust) the blob too
          this.adopt(message);
          this.broadcast(message, worker);
        } else if (message.type === 'metrics-request') {
          void this.peerMetrics(worker).then((others) => {
            if (worker.isConnected()) worker.send({ type: 'metrics-reply', id: message.id, snapshots: [this.#own(), ...others] } satisfies Message);
          });
        }
      });
      worker.once('exit', (code, signal) => {
        this.#members.delete(worker.id);
        this.#count();
        if (this.#stopping) return;
        const pid = worker.process.pid;
        if (!member.listening) {
          reject(new CliError(`worker ${pid ?? ''} exited (${signal ?? `code ${code}`}) before it listened on ${this.#address}`, 'its error is logged above'));
        }
        this.#youngDeaths = Date.now() - member.started < YOUNG_DEATH_MS ? this.#youngDeaths + 1 : 0;
        const delay = this.#youngDeaths === 0 ? 0 : Math.min(MAX_RESTART_DELAY_MS, RESTART_DELAY_MS * 2 ** (this.#youngDeaths - 1));
        this.#log.error({ worker: pid, code, signal, workers: this.processes(), restartInMs: delay }, `worker ${pid ?? ''} died (${signal ?? `code ${code}`}); starting another`);
        setTimeout(() => {
          if (!this.#stopping) this.#fork().catch((error: Error) => this.#log.error({}, error.message));
        }, delay).unref();
      });
    });
  }

  // Every worker learns how many processes serve, for its own /healthz.
  #count(): void {
    this.#up = 1 + [...this.#members.values()].filter((member) => member.listening).length;
    this.broadcast({ type: 'processes', up: this.#up, want: this.#want });
  }

  #collect(worker: Worker): Promise<MetricsSnapshot | undefined> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), METRICS_WAIT_MS);
      const done = (snapshot: MetricsSnapshot | undefined): void => {
        clearTimeout(timer);
        this.#waiting.delete(id);
        resolve(snapshot);
      };
      this.#waiting.set(id, done);
      if (worker.isConnected()) worker.send({ type: 'metrics-collect', id } satisfies Message);
      else done(undefined);
    });
  }
}

/** What a worker does on the primary's messages. */
export interface WorkerHandlers {
  /** This process's counts, for a scrape answered by another process. */
  own: () => MetricsSnapshot;
  /** SIGHUP reached the primary: read the archives again. */
  reload: () => void;
  /** --verify in the primary, or another process while serving, found a blob good or bad. */
  verdict: (verdict: Verdict) => void;
  /** The identity of the files a location is in, if still served (ArchiveSource.identityOf). */
  identityOf: (digest: string, location: BlobLocation) => string | undefined;
}

/** A worker's side: asks the primary for the others' counts, and hears how many processes are up. */
export class WorkerLink implements ProcessGroup {
  #processes: { up: number; want: number } = { up: 1, want: 1 };
  readonly #waiting = new Map<number, (snapshots: MetricsSnapshot[]) => void>();
  #nextId = 0;
  readonly #identityOf: (digest: string, location: BlobLocation) => string | undefined;

  constructor(handlers: WorkerHandlers) {
    this.#identityOf = handlers.identityOf;
    process.on('message', (message: Message) => {
      if (message.type === 'processes') this.#processes = { up: message.up, want: message.want };
      else if (message.type === 'metrics-collect') process.send?.({ type: 'metrics', id: message.id, snapshot: handlers.own() } satisfies Message);
      else if (message.type === 'metrics-reply') this.#waiting.get(message.id)?.(message.snapshots);
      else if (message.type === 'reload') handlers.reload();
      else if (message.type === 'verdict') handlers.verdict(message);
    });
  }

  /** Tells the primary this worker listens: it counts as up from now on. */
  listening(): void {
    process.send?.({ type: 'listening' } satisfies Message);
  }

  processes(): { up: number; want: number } {
    return this.#processes;
  }

  blobVerdict(location: BlobLocation, digest: string, problem?: string): void {
    const identity = this.#identityOf(digest, location);
    if (identity !== undefined && process.connected) process.send?.(verdictOf(identity, location, digest, problem));
  }

  peerMetrics(): Promise<MetricsSnapshot[]> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      // The primary waits up to METRICS_WAIT_MS for each of the others; a dead primary never answers.
      const timer = setTimeout(() => done([]), 2 * METRICS_WAIT_MS);
      const done = (snapshots: MetricsSnapshot[]): void => {
        clearTimeout(timer);
        this.#waiting.delete(id);
        resolve(snapshots);
      };
      this.#waiting.set(id, done);
      if (process.connected) process.send?.({ type: 'metrics-request', id } satisfies Message);
      else done([]);
    });
  }
}

/** SIGTERM/SIGINT: stop accepting, let running requests finish (the workers' too), then resolve. */
export function stopOnSignals(app: Closable, group: WorkerGroup | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      // Ctrl-C reaches every process of the group and the primary passes SIGTERM on: one stop each.
      if (stopping) return;
      stopping = true;
      app.log.info({ signal }, 'shutting down');
      process.once(signal, () => process.exit(1)); // a second signal: stop now
      setTimeout(() => {
        app.log.warn('requests still running after the grace period; exiting');
        process.exit(0);
      }, SHUTDOWN_GRACE_MS).unref();
      Promise.all([app.close(), group?.stop()]).then(() => resolve(), () => resolve());
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

function verdictOf(identity: string, location: BlobLocation, digest: string, problem: string | undefined): Verdict {
  return { type: 'verdict', identity, digest, path: location.path, offset: location.offset, ...(problem !== undefined && { problem }) };
}
