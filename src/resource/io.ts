import type { Readable, Writable } from 'node:stream';
import type { PayloadValidator } from './schema.js';

/**
 * What a Concourse resource command gets, injected so tests can drive it without a process:
 * the request on stdin, the answer (JSON only) on stdout, logs on stderr, and the argv after
 * the script name (the step's directory for `in` and `out`).
 */
export interface CommandIO {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  args: string[];
  /**
   * The worker's environment: `http_proxy`/`https_proxy`/`no_proxy` and `SSL_CERT_FILE`/
   * `SSL_CERT_DIR` are honoured for every registry call. The entry scripts pass the process's own.
   */
  env?: Record<string, string | undefined>;
}

/** A request is a few KiB; anything far bigger is not one. */
const MAX_REQUEST_BYTES = 1024 * 1024;

/** Reads the whole request from stdin, parses and validates it; errors start with `invalid payload:`. */
export async function readRequest<T>(io: CommandIO, validate: PayloadValidator<T>): Promise<T> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of io.stdin as AsyncIterable<Buffer | string>) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += buffer.length;
    if (size > MAX_REQUEST_BYTES) throw new Error(`invalid payload: stdin holds more than ${MAX_REQUEST_BYTES} bytes`);
    chunks.push(buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new Error('invalid payload: stdin is empty (expected a JSON object with "source")');
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new Error(`invalid payload: not JSON (${(error as Error).message})`, { cause: error });
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error('invalid payload: expected a JSON object with "source"');
  return validate(data);
}

/** Writes the command's answer: one JSON document on stdout, nothing else ever goes there. */
export async function respond(io: CommandIO, answer: unknown): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    io.stdout.write(JSON.stringify(answer) + '\n', (error) => (error ? reject(error) : resolve()));
  });
}

/** The directory argument of `in` and `out` (Concourse passes it as argv[1]). */
export function directoryArgument(io: CommandIO, command: 'in' | 'out'): string {
  const dir = io.args[0];
  if (dir === undefined || dir === '') throw new Error(`usage: ${command} <directory> (Concourse passes the step's directory)`);
  return dir;
}

/** Logs to stderr (Concourse shows it in the build log); `debug` lines only with `source.debug`. */
export interface Log {
  info(line: string): void;
  debug(line: string): void;
}

export function createLog(io: CommandIO, debug: boolean): Log {
  return {
    info: (line) => void io.stderr.write(`${line}\n`),
    debug: (line) => {
      if (debug) io.stderr.write(`debug: ${line}\n`);
    },
  };
}
