import { readdirSync, readlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { type AddressInfo, BlockList } from 'node:net';
import { endianness } from 'node:os';

/** The state column of /proc/net/tcp for a listening socket (TCP_LISTEN). */
const LISTEN = '0A';
/** A whole socket line whose state (fourth column) is another. */
const OTHER_STATE = new RegExp(`^ *\\d+: \\S+ \\S+ (?!${LISTEN} )`, 'm');

type Address = { address: string; family: 'ipv4' | 'ipv6' };

/**
 * Listening sockets of other processes that take connections for `address` with this process's
 * own: what SO_REUSEPORT (`serve --workers`) allows and a plain bind would refuse. Every socket of
 * the same user may join a port that was bound with SO_REUSEPORT, so a second `cartorio serve` on
 * the port of a running one does not fail with EADDRINUSE but splits the connections with it: each
 * client gets one server's images or the other's. A socket overlaps ours when it is on the same
 * port and either holds the same address or one of the two is a wildcard (0.0.0.0, ::), the
 * same rule a plain bind follows. Read from the kernel's tables of this network namespace
 * (/proc/self/net/tcp and tcp6); a socket counts as this process's when one of its file
 * descriptors is it. Linux only (the one platform where `--workers` shares a port); elsewhere, or
 * when the tables cannot be read, none are found.
 */
export async function strangersOnPort(address: AddressInfo): Promise<number> {
  if (process.platform !== 'linux') return 0;
  const ours: Address = { address: address.address, family: address.family === 'IPv6' ? 'ipv6' : 'ipv4' };
  // "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt  uid  timeout inode …",
  // e.g. "   0: 0100007F:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000  0 4242 …"
  const port = address.port.toString(16).toUpperCase().padStart(4, '0');
  const onPort = new RegExp(`^ *\\d+: ([0-9A-F]+):${port} [0-9A-F]+:[0-9A-F]+ ${LISTEN}(?: +\\S+){5} +(\\d+)`, 'gm');
  const tables = await Promise.all(['tcp', 'tcp6'].map((table) => listeningLines(`/proc/self/net/${table}`)));
  const own = ownSockets();
  let strangers = 0;
  for (const [, hex = '', inode = ''] of tables.join('\n').matchAll(onPort)) {
    if (!own.has(inode) && overlaps(ours, procAddress(hex))) strangers++;
  }
  return strangers;
}

/** A chunk of the table: the listening sockets of a machine fit in one or a few. */
const CHUNK_BYTES = 16 * 1024;

/**
 * The lines of the listening sockets at the head of a table. The kernel prints its table of
 * listening sockets first, then every other (established, TIME_WAIT…), at ~3 µs a line, and a busy
 * host holds tens of thousands of the others (the benches leave ~5 000 TIME_WAIT): reading the
 * whole table cost 20 ms and 10 ms of this thread for 5 000 sockets. So it is read a chunk at a
 * time, up to the first line of another state.
 */
async function listeningLines(path: string): Promise<string> {
  const handle = await open(path).catch(() => undefined);
  if (handle === undefined) return '';
  try {
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    let text = '';
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, null);
      if (bytesRead === 0) return text;
      text += buffer.toString('latin1', 0, bytesRead);
      // the whole lines after the header
      const lines = text.slice(text.indexOf('\n') + 1, text.lastIndexOf('\n') + 1);
      if (OTHER_STATE.test(lines)) return text;
    }
  } catch {
    return '';
  } finally {
    await handle.close();
  }
}

/** Inodes of this process's sockets (the links of /proc/self/fd read "socket:[INODE]"). */
function ownSockets(): Set<string> {
  const inodes = new Set<string>();
  let fds: string[] = [];
  try {
    fds = readdirSync('/proc/self/fd');
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (match?.[1] !== undefined) inodes.add(match[1]);
    } catch {
      // closed meanwhile (the directory's own descriptor)
    }
  }
  return inodes;
}

/**
 * An address as /proc/net/tcp{,6} prints it: the bytes in network order, printed 32 bits at a
 * time as a number of this machine's byte order (127.0.0.1 is 0100007F on x86).
 */
function procAddress(hex: string): Address {
  const bytes = Buffer.from(hex, 'hex');
  if (endianness() === 'LE') for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  if (bytes.length === 4) return { address: [...bytes].join('.'), family: 'ipv4' };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return { address: groups.join(':'), family: 'ipv6' };
}

/**
 * Whether a socket on `a` and one on `b` (same port) would both take some connection. Called only
 * for another listening socket on the port, so the lists are made here, not at every start.
 */
function overlaps(a: Address, b: Address): boolean {
  // :: takes IPv4 too (unless IPV6_V6ONLY, which the table does not show: counted as overlapping)
  const anyIPv6 = new BlockList();
  anyIPv6.addAddress('::', 'ipv6');
  if (anyIPv6.check(a.address, a.family) || anyIPv6.check(b.address, b.family)) return true;
  if (a.address === '0.0.0.0') return takesIPv4(b);
  if (b.address === '0.0.0.0') return takesIPv4(a);
  // BlockList compares across spellings, IPv4-mapped IPv6 (::ffff:127.0.0.1) included
  const list = new BlockList();
  list.addAddress(a.address, a.family);
  return list.check(b.address, b.family);
}

function takesIPv4(address: Address): boolean {
  const mapped = new BlockList();
  mapped.addSubnet('::ffff:0.0.0.0', 96, 'ipv6');
  return address.family === 'ipv4' || mapped.check(address.address, 'ipv6');
}
