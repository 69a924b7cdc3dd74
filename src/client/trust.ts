import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Where OpenSSL-based tools (skopeo, curl, Go programs) look for the system's CA certificates. */
export interface TrustEnvironment {
  SSL_CERT_FILE?: string | undefined;
  SSL_CERT_DIR?: string | undefined;
}

const DEFAULT_CERT_DIR = '/etc/ssl/certs';
const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----/g;
/** A CA bundle is a few hundred KiB; a file far bigger is not one. */
const MAX_CERT_FILE = 8 * 1024 * 1024;
const MAX_DIR_ENTRIES = 5000;

/**
 * The PEM certificates the system trusts, read the way OpenSSL does: the file `SSL_CERT_FILE`
 * (if set), and every file of `SSL_CERT_DIR` (colon-separated; default /etc/ssl/certs, which a
 * Concourse worker bind-mounts into resource containers). Node itself trusts only its bundled
 * Mozilla list (Node ≥ 22.15 has `--use-system-ca`/`tls.getCACertificates('system')`; this
 * works on Node 20 too). Unreadable files, dangling links (the worker's links into
 * /usr/share/ca-certificates are not mounted) and non-PEM files are skipped; duplicates (the
 * hash links, the bundle) are kept once.
 */
export function systemCaCerts(env: TrustEnvironment): string[] {
  const found = new Set<string>();
  const addFile = (path: string): void => {
    try {
      const info = statSync(path);
      if (!info.isFile() || info.size > MAX_CERT_FILE) return;
      for (const [pem] of readFileSync(path, 'latin1').matchAll(PEM_BLOCK)) found.add(pem.replace(/\r\n/g, '\n'));
    } catch {
      // unreadable or a dangling link: not a certificate we can use
    }
  };
  if (env.SSL_CERT_FILE) addFile(env.SSL_CERT_FILE);
  const dirs = env.SSL_CERT_DIR ? env.SSL_CERT_DIR.split(':').filter((dir) => dir !== '') : [DEFAULT_CERT_DIR];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir).sort().slice(0, MAX_DIR_ENTRIES);
    } catch {
      continue;
    }
    for (const name of names) addFile(join(dir, name));
  }
  return [...found];
}
