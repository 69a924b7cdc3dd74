import { splitName } from '../../image/reference.js';

/** How the browser reached this server: the address clients should pull from. */
export interface Endpoint {
  /** HOST[:PORT] as the browser named it (the Host header, or X-Forwarded-Host behind a trusted proxy). */
  host: string;
  tls: boolean;
}

export interface PullCommand {
  client: string;
  command: string;
  /** What the command needs on the node beyond this line, if anything. */
  note?: string;
}

// Hostnames, IPv4 and [IPv6] with an optional port: anything else in a Host header is not shown.
const HOST_HEADER = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

/** A Host header value if it is one a client can pull from, else undefined. */
export function validHost(value: string | undefined): string | undefined {
  const host = value?.split(',')[0]?.trim();
  return host !== undefined && HOST_HEADER.test(host) ? host.toLowerCase() : undefined;
}

/**
 * Copy-ready pull commands for `name` at `reference` (`:tag` or `@sha256:…`), spelled as the
 * mirror configuration of `cartorio mirror-config` makes them work (README "naming"):
 * - docker, podman, skopeo and ctr pull from this server directly: a name with a registry host
 *   keeps it as a path prefix (`HOST:PORT/quay.io/org/app`), which the server reads as that
 *   registry's name, as it does for podman's mirror locations;
 * - crictl and Kubernetes go through containerd's mirror (certs.d hosts.toml from mirror-config):
 *   a name with a registry host is written as upstream spells it and containerd adds `?ns=HOST`;
 *   a host-less name has no upstream, so it names this server.
 */
export function pullCommands(name: string, reference: string, endpoint: Endpoint): PullCommand[] {
  const direct = `${endpoint.host}/${name}${reference}`;
  const { host } = splitName(name);
  const mirrored = host === undefined ? direct : `${name}${reference}`;
  const plain = !endpoint.tls;
  const last = (name.split('/').pop() ?? name).replace(/[^a-z0-9._-]/g, '');
  const archive = `${last}${reference.startsWith('@') ? '' : `-${reference.slice(1)}`}.tar`;
  const mirrorNote = host === undefined ? undefined : `containerd on the node mirrors ${host} to this server (cartorio mirror-config; containerd sends ?ns=${host})`;
  const plainNote = plain ? `plain HTTP: containerd needs /etc/containerd/certs.d/${endpoint.host}/hosts.toml with [host."http://${endpoint.host}"]` : undefined;
  const commands: PullCommand[] = [
    { client: 'docker', command: `docker pull ${direct}`, ...(plain && !isLoopback(endpoint.host) && { note: `plain HTTP: add "${endpoint.host}" to insecure-registries in /etc/docker/daemon.json` }) },
    { client: 'podman', command: `podman pull${plain ? ' --tls-verify=false' : ''} ${direct}` },
    { client: 'ctr', command: `ctr image pull${plain ? ' --plain-http' : ''} ${direct}` },
    { client: 'crictl', command: `crictl pull ${mirrored}`, ...((mirrorNote ?? plainNote) !== undefined && { note: mirrorNote ?? plainNote }) },
    { client: 'skopeo', command: `skopeo copy${plain ? ' --src-tls-verify=false' : ''} docker://${direct} oci-archive:${archive}` },
    { client: 'kubernetes', command: `image: ${mirrored}`, ...((mirrorNote ?? plainNote) !== undefined && { note: mirrorNote ?? plainNote }) },
  ];
  return commands;
}

/** Docker trusts 127.0.0.0/8 over plain HTTP without configuration (and only that). */
function isLoopback(host: string): boolean {
  return /^127\.\d+\.\d+\.\d+(?::\d+)?$/.test(host) || /^localhost(?::\d+)?$/.test(host);
}

/** The registry host a name came from, as the home page groups it; host-less names are local. */
export function hostOf(name: string): string {
  return splitName(name).host ?? LOCAL_HOST;
}

/** The group of names without a registry host (no registry host is spelled `-`). */
export const LOCAL_HOST = '-';
