import { Worker } from 'node:worker_threads';

/**
 * Starts a worker thread running `main(require)` from the function's source text (`eval`).
 * cartorio runs both from dist/ and from single-file esbuild bundles (the resource image, the
 * bundle_server launcher), where there is no separate worker file to point a Worker at; `main`
 * may therefore use only its `require` argument and Node built-ins, never the enclosing module.
 */
export function startSourceWorker(main: (require: NodeJS.Require) => void): Worker {
  return new Worker(`(${main.toString()})(require)`, { eval: true });
}
