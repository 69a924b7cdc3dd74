/**
 * `--listen`'s value: `HOST:PORT`, `[IPv6]:PORT`, or `:PORT` (all interfaces); undefined when it
 * is none of them. Apart from serve.ts (and commander) so that main.ts can read it before the
 * program loads (early-port.ts).
 */
export function listenAddress(value: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || port > 65535) return undefined;
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}
