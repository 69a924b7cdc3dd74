// bench/bucket-pulls.mjs REPO TAG N ADDR... — N concurrent pulls of REPO:TAG, spread over the
// registries at ADDR (host:port, round robin), each as a client does it: GET /v2/, the manifest,
// then its config and layers one after another, following redirects (a bucket store's blob GETs
// answer 307 to the object store, as Distribution's S3 driver does). Bodies are hashed and checked
// against their digests. Prints "WALL_MS ERRORS FIRST_ERROR".
import { createHash } from 'node:crypto';

const [repo, tag, n, ...addresses] = process.argv.slice(2);
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';

async function fetched(url, digest) {
  const response = await fetch(url, { headers: { accept: ACCEPT }, signal: AbortSignal.timeout(300_000) });
  if (response.status !== 200) throw new Error(`${url}: ${response.status}`);
  const hash = createHash('sha256');
  let body = [];
  for await (const chunk of response.body) {
    hash.update(chunk);
    if (digest === undefined) body.push(chunk);
  }
  const got = `sha256:${hash.digest('hex')}`;
  if (digest !== undefined && got !== digest) throw new Error(`${url}: bytes hash to ${got}`);
  return { body: Buffer.concat(body), digest: got, header: response.headers.get('docker-content-digest') };
}

async function pull(i) {
  const base = `http://${addresses[i % addresses.length]}/v2`;
  await fetched(`${base}/`);
  const manifest = await fetched(`${base}/${repo}/manifests/${tag}`);
  if (manifest.header !== manifest.digest) throw new Error('manifest digest mismatch');
  const parsed = JSON.parse(manifest.body.toString());
  for (const d of [parsed.config, ...parsed.layers]) await fetched(`${base}/${repo}/blobs/${d.digest}`, d.digest);
}

const start = Date.now();
const results = await Promise.allSettled(Array.from({ length: Number(n) }, (_, i) => pull(i)));
const failed = results.filter((r) => r.status === 'rejected');
console.log(`${Date.now() - start} ${failed.length} ${failed.length ? String(failed[0].reason?.message ?? failed[0].reason).replace(/\s+/g, '_') : '-'}`);
