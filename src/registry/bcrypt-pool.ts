import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { startSourceWorker } from '../image/source-worker.js';
import { bcryptSource } from './bcrypt-source.js';

/** No thread will take the comparison (the queue is full, the server closing): the caller answers "try again later". */
export class PoolBusy extends Error {
  constructor(why = 'every password check thread is busy and the queue is full') {
    super(why);
    this.name = 'PoolBusy';
  }
}

export interface BcryptPoolLimits {
  /** Worker threads (default: one per core but one, at most two: the event loop keeps a core). */
  threads: number;
  /** Comparisons waiting for a thread; one more is refused with PoolBusy. */
  queue: number;
}

export const DEFAULT_BCRYPT_LIMITS: BcryptPoolLimits = {
  threads: Math.max(1, Math.min(2, availableParallelism() - 1)),
  // At cost 5 (`htpasswd -B`) a compare takes ~2.3 ms, so 64 waiting is ~150 ms of queue; at cost 10
  // (~73 ms) about 5 s, about what a client waits for an answer before giving up.
  queue: 64,
};

interface Job {
  password: string;
  hash: string;
  resolve: (ok: boolean) => void;
  reject: (error: Error) => void;
}

type Reply = { id: number; ok: boolean };

/**
 * bcrypt comparisons on worker threads. bcryptjs is pure JavaScript: on the event loop a flood of
 * wrong passwords from 32 connections held every other request for 100+ ms (bench/auth-flood.mjs).
 * The threads evaluate bcryptjs's CommonJS build from its source text (bcrypt-source.ts), which
 * also works from the single-file bundle, where there is no node_modules to load it from.
 *
 * Threads start on first use and never hold the process open; `close()` ends them.
 */
export class BcryptPool {
  readonly #limits: BcryptPoolLimits;
  readonly #idle: Worker[] = [];
  readonly #busy = new Map<Worker, { id: number; job: Job }>();
  readonly #queue: Job[] = [];
  #started = 0;
  #nextId = 0;

  constructor(limits: Partial<BcryptPoolLimits> = {}) {
    this.#limits = { ...DEFAULT_BCRYPT_LIMITS, ...limits };
  }

  /** True when `password` matches `hash`; rejects with PoolBusy when the queue is full. */
  compare(password: string, hash: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const job = { password, hash, resolve, reject };
      const worker = this.#idle.pop() ?? this.#start();
      if (worker) this.#run(worker, job);
      else if (this.#queue.length < this.#limits.queue) this.#queue.push(job);
      else reject(new PoolBusy());
    });
  }

  async close(): Promise<void> {
    const workers = [...this.#idle, ...this.#busy.keys()];
    this.#idle.length = 0;
    // Requests still waiting are told to come back (to this server restarted, or another replica).
    for (const { job } of this.#busy.values()) job.reject(new PoolBusy('the server is closing'));
    this.#busy.clear();
    for (const job of this.#queue.splice(0)) job.reject(new PoolBusy('the server is closing'));
    await Promise.all(workers.map((worker) => worker.terminate()));
  }

  #start(): Worker | undefined {
    if (this.#started >= this.#limits.threads) return undefined;
    this.#started++;
    const worker = startSourceWorker(compareOnThread);
    worker.unref();
    worker.postMessage({ source: bcryptSource() });
    worker.on('message', (reply: Reply) => {
      const running = this.#busy.get(worker);
      if (running?.id !== reply.id) return;
      this.#busy.delete(worker);
      running.job.resolve(reply.ok);
      this.#next(worker);
    });
    // A thread that dies fails its comparison (a 500, logged); the next comparison starts another.
    worker.on('error', (error) => {
      this.#busy.get(worker)?.job.reject(error);
      this.#busy.delete(worker);
    });
    worker.on('exit', () => {
      this.#started--;
      const at = this.#idle.indexOf(worker);
      if (at >= 0) this.#idle.splice(at, 1);
    });
    return worker;
  }

  #run(worker: Worker, job: Job): void {
    const id = this.#nextId++;
    this.#busy.set(worker, { id, job });
    worker.postMessage({ id, password: job.password, hash: job.hash });
  }

  #next(worker: Worker): void {
    const job = this.#queue.shift();
    if (job) this.#run(worker, job);
    else this.#idle.push(worker);
  }
}

// Runs on the worker thread from its source text: only `require` and Node built-ins.
function compareOnThread(require: NodeJS.Require): void {
  const { parentPort } = require('node:worker_threads') as typeof import('node:worker_threads');
  let bcrypt: { compareSync: (password: string, hash: string) => boolean } | undefined;
  parentPort?.on('message', (message: { source: string } | { id: number; password: string; hash: string }) => {
    if ('source' in message) {
      const module = { exports: {} as Record<string, unknown> };
      // bcryptjs's UMD build takes the CommonJS branch when given `module`, `exports` and `require`.
      new Function('module', 'exports', 'require', message.source)(module, module.exports, require);
      bcrypt = module.exports as unknown as typeof bcrypt;
      return;
    }
    let ok = false;
    try {
      ok = bcrypt?.compareSync(message.password, message.hash) === true;
    } catch {
      ok = false;
    }
    parentPort.postMessage({ id: message.id, ok });
  });
}
