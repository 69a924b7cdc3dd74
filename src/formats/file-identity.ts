import type { BigIntStats } from 'node:fs';

/** The fields of fstat that tell a file rewritten in place (an archive served from an open handle). */
export interface FileIdentity {
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  nlink: bigint;
}

export function identityOf(info: BigIntStats): FileIdentity {
  return { size: info.size, mtimeNs: info.mtimeNs, ctimeNs: info.ctimeNs, nlink: info.nlink };
}

/**
 * Whether the bytes may have changed: the size or mtime did, or the ctime (which no one can set
 * back) without the link count. Replacing the file by rename unlinks the old inode, which moves
 * its ctime and not its bytes (an open handle keeps them), so that is no change.
 */
export function rewritten(was: FileIdentity, now: FileIdentity): boolean {
  return now.size !== was.size || now.mtimeNs !== was.mtimeNs || (now.ctimeNs !== was.ctimeNs && now.nlink === was.nlink);
}

/** For the log line that tells of a change. */
export function describeIdentity(identity: FileIdentity): string {
  return `size ${identity.size}, mtime ${identity.mtimeNs} ns, ctime ${identity.ctimeNs} ns, links ${identity.nlink}`;
}
