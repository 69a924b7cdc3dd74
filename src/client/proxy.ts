import { isIP } from 'node:net';

/** The proxy variables of a worker's environment, read in upper and lower case (lower wins, as curl). */
export interface ProxyEnvironment {
  [name: string]: string | undefined;
}

/** Which proxy a request goes through. */
export interface ProxySettings {
  http?: URL;
  https?: URL;
  /** `no_proxy` entries, lowercased: hosts, `.domain`/`*.domain` suffixes, `host:port`, IPs, or `*`. */
  noProxy: string[];
}

/**
 * Reads `http_proxy`, `https_proxy` and `no_proxy` (and their upper-case forms) as curl and Go's
 * net/http do. A proxy value without a scheme means `http://`; only http:// proxies are
 * supported (an https:// one is refused here rather than ignored).
 */
export function proxySettingsFromEnv(env: ProxyEnvironment): ProxySettings {
  const read = (name: string): string | undefined => {
    const value = env[name] ?? env[name.toUpperCase()];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const settings: ProxySettings = { noProxy: (read('no_proxy') ?? '').split(/[\s,]+/).map((entry) => entry.toLowerCase()).filter((entry) => entry !== '') };
  const http = read('http_proxy');
  const https = read('https_proxy');
  if (http !== undefined) settings.http = parseProxyUrl('http_proxy', http);
  if (https !== undefined) settings.https = parseProxyUrl('https_proxy', https);
  return settings;
}

function parseProxyUrl(name: string, value: string): URL {
  let url: URL;
  try {
    url = new URL(/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(value) ? value : `http://${value}`);
  } catch {
    throw new Error(`${name} "${value}" is not a proxy address (expected http://host:port)`);
  }
  if (url.protocol !== 'http:') throw new Error(`${name} "${url.protocol}//${url.host}": only http:// proxies are supported`);
  return url;
}

/** The proxy for a request to `url`, or undefined when it goes direct (no proxy set, or `no_proxy` matches). */
export function proxyFor(url: URL, settings: ProxySettings): URL | undefined {
  const proxy = url.protocol === 'https:' ? settings.https : settings.http;
  if (proxy === undefined) return undefined;
  return bypassesProxy(url, settings.noProxy) ? undefined : proxy;
}

/** curl's and Go's `no_proxy` rules: `*`; exact host or any subdomain of an entry; an optional `:port` must match too. */
export function bypassesProxy(url: URL, noProxy: string[]): boolean {
  const host = url.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  for (const raw of noProxy) {
    if (raw === '*') return true;
    let entry = raw;
    let entryPort: string | undefined;
    const bracketed = /^\[(.*)\](?::(\d+))?$/.exec(entry);
    if (bracketed) {
      entry = bracketed[1] ?? '';
      entryPort = bracketed[2];
    } else if (isIP(entry) !== 6) {
      const colon = entry.lastIndexOf(':');
      if (colon > 0 && /^\d+$/.test(entry.slice(colon + 1))) {
        entryPort = entry.slice(colon + 1);
        entry = entry.slice(0, colon);
      }
    }
    if (entryPort !== undefined && entryPort !== port) continue;
    entry = entry.replace(/^\*?\./, '');
    if (entry === '') continue;
    if (host === entry || (isIP(host) === 0 && host.endsWith(`.${entry}`))) return true;
  }
  return false;
}
