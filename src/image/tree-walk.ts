import { receiveMessageOnPort, MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import { listTree, type EntryStats, type TreeEntry } from './layer-pack.js';
import { startSourceWorker } from './source-worker.js';
import { symlinkEscapes } from './tar-paths.js';

/** Entries per message from the walking thread. */
const BATCH = 512;
/** Numbers per entry in a batch: kind, mode, uid, gid, size, mtimeMs, dev, ino, nlink, rdev. */
const FIELDS = 10;
const KINDS = ['file', 'directory', 'symlink', 'character-device', 'block-device', 'fifo'] as const;

type Batch = { count: number; numbers: Float64Array; names: string; targets: string };
type WalkMessage = Batch | { done: true; contentBytes: number } | { error: { message: string; code?: string; path?: string } };

/** What `TreeWalk.next()` returns when the next entry has not arrived yet: wait on `arrival()`. */
export const NOT_YET = Symbol('not yet');

/**
 * Lists a directory tree on a thread of its own while the caller packs what has been listed: the
 * same entries in the same order as `collectTree` (depth-first, names sorted bytewise, links not
 * followed), handed over in batches. The lstat, readdir and readlink of a 35k-entry tree (~0.6 s)
 * then run on the other core, beside the open/read/close of packing instead of before it.
 *
 * `next()` never blocks: it gives an entry, `undefined` at the end, or NOT_YET, and then
 * `arrival()` settles when more has come (or the walk failed). A walk error (the tree's: a name
 * lstat cannot find, a symlink out of the rootfs) is thrown by `next()` as a TreeWalkError, in
 * the place of the entry it stopped at.
 */
export class TreeWalk {
  readonly #root: string;
  readonly #worker: Worker;
  readonly #port: MessagePort;
  readonly #queue: WalkMessage[] = [];
  #batch: Batch | undefined;
  #at = 0;
  #nameAt = 0;
  #targetAt = 0;
  #contentBytes: number | undefined;
  #failure: Error | undefined;
  #exited = false;
  #waiting: (() => void) | undefined;
  #closed = false;
  // While the thread starts (~100 ms), this thread lists the tree's first entries itself; the
  // same entries are then dropped from the thread's list, checked name by name.
  #local: Generator<TreeEntry> | undefined;
  readonly #listedHere: string[] = [];
  #dropped = 0;
  /** Called once, when the walk has listed everything, with the total size of the files' contents. */
  onListed: ((contentBytes: number) => void) | undefined;

  /**
   * `batch`: entries per message (tests make it small, to cross many batch edges). `headStart`
   * false: every entry comes from the thread (tests: a small tree is otherwise listed here whole
   * before the thread has started, and the thread's encoding of entries is never packed).
   */
  constructor(root: string, { batch = BATCH, headStart = true }: { batch?: number; headStart?: boolean } = {}) {
    this.#root = root.length > 1 ? root.replace(/\/+$/, '') : root;
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    // Batches are taken as they come when the packer waits, and with receiveMessageOnPort when it
    // is busy (no turn of the event loop needed): one queue, in the order they were sent.
    this.#port.on('message', (message: WalkMessage) => {
      this.#queue.push(message);
      this.#wake();
    });
    this.#local = headStart ? listTree(root) : undefined;
    this.#worker = startSourceWorker(walkWorker);
    this.#worker.postMessage({ root, port: port2, batch }, [port2]);
    this.#worker.on('error', (error) => {
      this.#failure ??= error;
      this.#wake();
    });
    // Whatever it sent before it stopped is already in the port's queue.
    this.#worker.on('exit', () => {
      this.#exited = true;
      this.#wake();
    });
  }

  next(): TreeEntry | undefined | typeof NOT_YET {
    if (this.#local) {
      const entry = this.#queue.length === 0 && !this.#failure && !this.#exited ? this.#nextHere() : undefined;
      if (entry) return entry;
      this.#local.return(undefined);
      this.#local = undefined;
    }
    for (;;) {
      const entry = this.#nextListed();
      if (this.#dropped === this.#listedHere.length) return entry;
      if (entry === NOT_YET) return NOT_YET;
      const expected = this.#listedHere[this.#dropped++];
      if (entry?.path !== expected) throw new TreeWalkError(`changed while being listed: "${expected}" was listed, then ${entry ? `"${entry.path}"` : 'nothing'} in its place; pack it again when nothing writes to it`);
    }
  }

  // The next entry this thread lists itself, until the walking thread has sent its first message.
  #nextHere(): TreeEntry | undefined {
    const received = receiveMessageOnPort(this.#port) as { message: WalkMessage } | undefined;
    if (received) {
      this.#queue.push(received.message);
      return undefined;
    }
    let next;
    try {
      next = (this.#local as Generator<TreeEntry>).next();
    } catch (error) {
      const { message, code, path } = error as NodeJS.ErrnoException;
      throw Object.assign(new TreeWalkError(message, { cause: error }), { code, path });
    }
    if (next.done) return undefined;
    this.#listedHere.push(next.value.path);
    return next.value;
  }

  #nextListed(): TreeEntry | undefined | typeof NOT_YET {
    while (!this.#batch || this.#at === this.#batch.count) {
      if (this.#contentBytes !== undefined) return undefined;
      const message = this.#queue.shift() ?? (receiveMessageOnPort(this.#port) as { message: WalkMessage } | undefined)?.message;
      if (message) {
        this.#take(message);
        continue;
      }
      if (this.#failure) throw this.#failure;
      if (this.#exited) throw new Error(`the thread listing ${this.#root} stopped before the end of the tree`);
      return NOT_YET;
    }
    const batch = this.#batch;
    const i = this.#at++ * FIELDS;
    const n = batch.numbers;
    const end = batch.names.indexOf('\0', this.#nameAt);
    const path = batch.names.slice(this.#nameAt, end);
    this.#nameAt = end + 1;
    const kind = KINDS[n[i] as number] as EntryStats['kind'];
    let linkTarget: string | undefined;
    if (kind === 'symlink') {
      const targetEnd = batch.targets.indexOf('\0', this.#targetAt);
      linkTarget = batch.targets.slice(this.#targetAt, targetEnd);
      this.#targetAt = targetEnd + 1;
      if (symlinkEscapes(path, linkTarget)) throw new TreeWalkError(`symlink "${path}" -> "${linkTarget}" points outside the rootfs`);
    }
    const stats: EntryStats = {
      kind, mode: n[i + 1] as number, uid: n[i + 2] as number, gid: n[i + 3] as number, size: n[i + 4] as number, mtimeMs: n[i + 5] as number,
      inode: `${n[i + 6]}:${n[i + 7]}`, nlink: n[i + 8] as number, rdev: n[i + 9] as number, ...(linkTarget !== undefined && { linkTarget }),
    };
    return { path, absolute: `${this.#root}/${path}`, stats };
  }

  /** Settles when `next()` has something new to say. */
  arrival(): Promise<void> {
    return new Promise((resolve) => {
      this.#waiting = resolve;
      if (this.#queue.length > 0 || this.#failure || this.#exited) this.#wake();
    });
  }

  /** Stops the thread (at the end, or when the pack is abandoned). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#port.close();
    void this.#worker.terminate();
  }

  #take(message: WalkMessage): void {
    if ('error' in message) {
      const { message: text, code, path } = message.error;
      this.#failure ??= Object.assign(new TreeWalkError(text), { code, path });
      throw this.#failure;
    }
    if ('done' in message) {
      this.#contentBytes = message.contentBytes;
      this.close();
      this.onListed?.(message.contentBytes);
      return;
    }
    this.#batch = message;
    this.#at = 0;
    this.#nameAt = 0;
    this.#targetAt = 0;
  }

  #wake(): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.();
  }
}

/** A problem of the tree being listed (as `collectTree` throws it), not of the packer. */
export class TreeWalkError extends Error {
  code?: string | undefined;
  path?: string | undefined;
}

/**
 * The walking thread (started by `startSourceWorker`: only `require` and Node built-ins). Lists
 * the tree as collectTree does and posts it in batches on the port it is given: the numbers of
 * each entry in a Float64Array, names and link targets each in one NUL-separated string (a name
 * never holds NUL). Ends with `done` and the content size, or with the first error.
 */
function walkWorker(require: NodeJS.Require): void {
  const { parentPort } = require('node:worker_threads') as typeof import('node:worker_threads');
  const fs = require('node:fs') as typeof import('node:fs');
  (parentPort as NonNullable<typeof parentPort>).once('message', ({ root, port, batch }: { root: string; port: MessagePort; batch: number }) => {
    const fields = 10;
    const { S_IFMT, S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO } = fs.constants;
    const KIND_OF_FORMAT: number[] = [];
    for (const [format, kind] of [[S_IFREG, 0], [S_IFDIR, 1], [S_IFLNK, 2], [S_IFCHR, 3], [S_IFBLK, 4], [S_IFIFO, 5]] as const) KIND_OF_FORMAT[format >>> 12] = kind;
    let numbers = new Float64Array(batch * fields);
    let names: string[] = [];
    let targets: string[] = [];
    let count = 0;
    let contentBytes = 0;
    const send = (): void => {
      port.postMessage({ count, numbers, names: names.join('\0') + '\0', targets: targets.join('\0') + '\0' }, [numbers.buffer]);
      numbers = new Float64Array(batch * fields);
      names = [];
      targets = [];
      count = 0;
    };
    const visit = (dir: string, prefix: string): void => {
      const entries = fs.readdirSync(dir).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      for (const name of entries) {
        const absolute = dir.endsWith('/') ? dir + name : `${dir}/${name}`;
        const stats = fs.lstatSync(absolute);
        const kind = KIND_OF_FORMAT[(stats.mode & S_IFMT) >>> 12] ?? -1;
        if (kind < 0) continue; // sockets cannot be archived; tar skips them too
        const path = prefix === '' ? name : `${prefix}/${name}`;
        if (kind === 2) targets.push(fs.readlinkSync(absolute));
        const size = kind === 0 ? stats.size : 0;
        const at = count * fields;
        numbers[at] = kind;
        numbers[at + 1] = stats.mode & 0o7777;
        numbers[at + 2] = stats.uid;
        numbers[at + 3] = stats.gid;
        numbers[at + 4] = size;
        numbers[at + 5] = stats.mtimeMs;
        numbers[at + 6] = stats.dev;
        numbers[at + 7] = stats.ino;
        numbers[at + 8] = stats.nlink;
        numbers[at + 9] = stats.rdev;
        names.push(path);
        contentBytes += size;
        if (++count === batch) send();
        if (kind === 1) visit(absolute, path);
      }
    };
    try {
      visit(root, '');
      if (count > 0) send();
      port.postMessage({ done: true, contentBytes });
    } catch (error) {
      const { message, code, path } = error as NodeJS.ErrnoException;
      port.postMessage({ error: { message, code, path } });
    }
  });
}
