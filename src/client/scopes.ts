/**
 * Token scopes, `type:name:actions` (https://distribution.github.io/distribution/spec/auth/scope/),
 * e.g. `repository:org/app:pull,push`. Tokens are cached by the scopes they were asked for, so a
 * token fetched for a push also serves the pulls and manifest PUT that follow.
 */

/** The scope to read `repository`. */
export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

/** The scope to write `repository` (pushing needs pull too: HEAD checks, mounts). */
export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}

/** Resource (`type:name`) → actions. */
export type ScopeSet = Map<string, Set<string>>;

/** Parses and merges scopes; the same resource named twice gets the union of its actions. */
export function scopeSet(scopes: Iterable<string>): ScopeSet {
  const set: ScopeSet = new Map();
  for (const scope of scopes) {
    // The name may itself hold a colon (a registry host:port in some token servers), the
    // type never does: split at the first and the last colon.
    const first = scope.indexOf(':');
    const last = scope.lastIndexOf(':');
    if (first < 0 || last === first) continue;
    const resource = scope.slice(0, last);
    const actions = set.get(resource) ?? new Set<string>();
    for (const action of scope.slice(last + 1).split(',')) if (action) actions.add(action);
    set.set(resource, actions);
  }
  return set;
}

/** The scopes of a set, as sent to a token server (one `scope=` parameter each). */
export function scopeStrings(set: ScopeSet): string[] {
  return [...set].map(([resource, actions]) => `${resource}:${[...actions].join(',')}`);
}

/** True when `have` grants every action of `need`. */
export function covers(have: ScopeSet, need: ScopeSet): boolean {
  for (const [resource, actions] of need) {
    const granted = have.get(resource);
    if (!granted) return false;
    for (const action of actions) if (!granted.has(action) && !granted.has('*')) return false;
  }
  return true;
}
