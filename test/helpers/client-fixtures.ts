import { createReadStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hashSync } from 'bcryptjs';
import type { PushOutcome } from '../../src/client/blobs.js';
import type { RegistryClient } from '../../src/client/registry-client.js';
import { ROOT, run, tempDir } from './cli.js';

/** One image of an OCI layout: its manifest bytes and the blobs it references. */
export interface LayoutImage {
  bytes: Buffer;
  mediaType: string;
  digest: string;
  blobs: Array<{ digest: string; size: number; path: string }>;
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** Reads the single-image manifest tagged `ref` in the OCI layout at `dir`. */
export async function readLayoutImage(dir: string, ref: string): Promise<LayoutImage> {
  const blobPath = (digest: string): string => join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref);
  if (!entry) throw new Error(`${dir} has no ref ${ref}`);
  const bytes = await readFile(blobPath(entry.digest));
  const manifest = JSON.parse(bytes.toString()) as { config: Descriptor; layers: Descriptor[] };
  const blobs = [manifest.config, ...manifest.layers].map((d) => ({ digest: d.digest, size: d.size, path: blobPath(d.digest) }));
  return { bytes, mediaType: entry.mediaType, digest: entry.digest, blobs };
}

/** Pushes every blob then the manifest, the way the resource's `out` does; returns each blob's outcome. */
export async function pushLayoutImage(client: RegistryClient, image: LayoutImage, repository: string, tag: string, from?: string): Promise<PushOutcome[]> {
  const outcomes: PushOutcome[] = [];
  for (const blob of image.blobs) {
    outcomes.push(await client.pushBlob(repository, blob.digest, blob.size, () => createReadStream(blob.path), from === undefined ? {} : { from }));
  }
  await client.putManifest(repository, tag, image.bytes, image.mediaType);
  return outcomes;
}

const START = join(ROOT, 'test', 'helpers', 'start-distribution.sh');

/** Starts Debian's docker-registry on 127.0.0.1:`port` (Basic auth when `htpasswd` is given), stopped by PID in `t.after`. */
export async function startDistribution(t: { after: (fn: () => Promise<void>) => void }, port: number, htpasswd?: string, tls?: { cert: string; key: string }): Promise<string> {
  const data = await tempDir(t, `cartorio-dist-${port}-`);
  const env = { ...process.env, ...(htpasswd && { HTPASSWD: htpasswd }), ...(tls && { TLS_CERT: tls.cert, TLS_KEY: tls.key }) };
  await run('bash', [START, '--stop', String(port)]);
  const started = await run('bash', [START, String(port), join(data, 'data')], { env });
  if (started.code !== 0) throw new Error(`start-distribution.sh ${port}: ${started.stderr}`);
  t.after(async () => {
    await run('bash', [START, '--stop', String(port)]);
  });
  return data;
}

/** Writes an htpasswd file with one bcrypt entry (what Distribution's htpasswd auth reads). */
export async function writeHtpasswd(path: string, username: string, password: string): Promise<void> {
  await writeFile(path, `${username}:${hashSync(password, 10)}\n`);
}

/** Runs skopeo and fails with its stderr when it does. */
export async function skopeo(...args: string[]): Promise<string> {
  const result = await run('skopeo', args);
  if (result.code !== 0) throw new Error(`skopeo ${args.join(' ')}: ${result.stderr.trim()}`);
  return result.stdout;
}
