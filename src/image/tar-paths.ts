import { posix } from 'node:path';

/**
 * Path rules for tar entries, in image archives and in layers: an entry may never name a path
 * outside the root it is extracted to, and a link may never point outside it.
 */

/** Normalises an entry name (`./a//b/` → `a/b`); returns a problem string when it escapes. */
export function normalizeEntryName(name: string): { path: string } | { problem: string } {
  if (name.includes('\0')) return { problem: `entry name ${JSON.stringify(name)} contains a NUL byte` };
  if (name.startsWith('/')) return { problem: `entry "${name}" has an absolute path` };
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') return { problem: `entry "${name}" climbs out of the archive with ".."` };
    parts.push(part);
  }
  return { path: parts.join('/') };
}

/**
 * A symlink at `entryPath` with `target` escapes when, read relative to the link's own
 * directory, it climbs above the root. Absolute targets are resolved inside the container's
 * root by every runtime, so they are allowed.
 */
export function symlinkEscapes(entryPath: string, target: string): boolean {
  if (target.startsWith('/')) return false;
  let depth = posix.dirname(entryPath) === '.' ? 0 : posix.dirname(entryPath).split('/').length;
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      depth -= 1;
      if (depth < 0) return true;
    } else {
      depth += 1;
    }
  }
  return false;
}

/** A hard link's target must be a plain relative path inside the archive. */
export function hardlinkProblem(entryPath: string, target: string): string | undefined {
  const normalized = normalizeEntryName(target);
  if ('problem' in normalized) return `hard link "${entryPath}" -> "${target}": ${normalized.problem}`;
  if (normalized.path === '') return `hard link "${entryPath}" points at the archive root`;
  return undefined;
}
