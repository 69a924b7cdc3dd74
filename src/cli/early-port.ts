import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { listenAddress } from './listen-address.js';
import { strangersOnPort } from './port-strangers.js';
import { autoWorkers, hasReusePort, workersValue } from './worker-count.js';

/** Where `serve` would listen, as read from its arguments before commander is loaded. */
export interface ListenPlan {
  host: string;
  port: number;
  reusePort: boolean;
}

/**
 * What `serve` takes over: the bound server, the connections it accepted meanwhile, and with
 * SO_REUSEPORT the count of other processes' sockets on the port, read while the program loaded.
 */
export interface BoundListener {
  server: Server;
  connections: Socket[];
  strangers?: Promise<number>;
}

/**
 * `cartorio serve`'s port, bound before the program is loaded. Loading it (the bundle compiled
 * and evaluated, commander, node:http, the serve command) takes ~20 ms of CPU before `serve` can
 * listen; a client that connects meanwhile is refused and backs off (skopeo polls again 10 ms
 * later at best, a kubelet's pull retries after seconds). Bound first, its connections wait in the
 * kernel's queue and are answered once the program runs. Only the plain spellings of --listen and
 * --workers are read here; `serve` takes the socket only where it would listen itself (`take`),
 * and closes it otherwise, so an argument read differently here never serves anywhere else.
 */
export class EarlyPort {
  readonly #plan: ListenPlan;
  readonly #server: Server;
  readonly #connections: Socket[] = [];
  readonly #strangers: Promise<number> | undefined;

  private constructor(plan: ListenPlan, server: Server) {
    this.#plan = plan;
    this.#server = server;
    // The kernel's socket tables take milliseconds to read (port-strangers.ts): read meanwhile.
    this.#strangers = plan.reusePort ? strangersOnPort(server.address() as AddressInfo) : undefined;
    this.#strangers?.catch(() => undefined); // serve awaits it; a port it does not take never does
    // Unreferenced until serve takes them: a serve that fails before it listens (a missing
    // --tls-key) exits as it would have. Connections are held unread; one whose client gives up
    // meanwhile is dropped.
    server.unref();
    server.on('connection', (socket: Socket) => {
      this.#connections.push(socket);
      socket.unref();
      socket.on('error', dropSocket);
    });
  }

  /**
   * Binds where `serve args…` would listen; undefined when the arguments are not plain enough to
   * tell, ask for help, or the bind fails (serve then listens, and reports the error, itself).
   */
  static async bind(args: readonly string[], env: NodeJS.ProcessEnv): Promise<EarlyPort | undefined> {
    const plan = listenPlan(args, env);
    if (plan === undefined) return undefined;
    const server = createServer({ pauseOnConnect: true });
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen({ host: plan.host, port: plan.port, ...(plan.reusePort && { reusePort: true }) }, () => resolve(true));
    });
    return bound ? new EarlyPort(plan, server) : undefined;
  }

  /** The bound server if `serve` listens exactly there; else it is closed, with what it accepted. */
  take(wanted: { host: string; port: number; reusePort?: boolean }): BoundListener | undefined {
    const plan = this.#plan;
    if (wanted.host !== plan.host || wanted.port !== plan.port || (wanted.reusePort === true) !== plan.reusePort) {
      this.#server.close();
      for (const socket of this.#connections) socket.destroy();
      return undefined;
    }
    const connections = this.#connections.filter((socket) => !socket.destroyed);
    for (const socket of connections) socket.off('error', dropSocket).ref();
    this.#server.removeAllListeners('connection');
    // the socket keeps the process alive again, whichever server object holds it
    this.#server.ref();
    return { server: this.#server, connections, ...(this.#strangers && { strangers: this.#strangers }) };
  }
}

function dropSocket(this: Socket): void {
  this.destroy();
}

/**
 * --listen (`--listen V`, `--listen=V`, `-l V`, `-lV`, the last one given, else CARTORIO_LISTEN,
 * else 0.0.0.0:5000) and --workers (likewise, CARTORIO_WORKERS, auto) as commander reads them;
 * undefined for --help, for short options bundled with -l or -s, and for values they refuse.
 */
export function listenPlan(args: readonly string[], env: NodeJS.ProcessEnv): ListenPlan | undefined {
  let listen = env['CARTORIO_LISTEN'] ?? '0.0.0.0:5000';
  let workers = env['CARTORIO_WORKERS'] ?? 'auto';
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '--') break;
    if (arg === '--help' || arg === '-h') return undefined;
    const [name, inline] = arg.startsWith('--') ? splitLong(arg) : [arg.slice(0, 2), arg.length > 2 ? arg.slice(2) : undefined];
    const value = (): string | undefined => inline ?? args[++i];
    if (name === '--listen' || name === '-l') listen = value() ?? '';
    else if (name === '--workers') workers = value() ?? '';
    else if (name === '-s') value();
    else if (!arg.startsWith('--') && arg.startsWith('-') && /[hls]/.test(arg.slice(2))) return undefined;
  }
  const address = listenAddress(listen);
  const count = workersValue(workers);
  if (address === undefined || count === undefined) return undefined;
  const processes = count === 'auto' ? autoWorkers() : count;
  if (processes > 1 && !hasReusePort(process.versions.node)) return undefined;
  return { ...address, reusePort: processes > 1 };
}

function splitLong(arg: string): [string, string | undefined] {
  const equals = arg.indexOf('=');
  return equals === -1 ? [arg, undefined] : [arg.slice(0, equals), arg.slice(equals + 1)];
}
