// bench/scale-pulls.mjs PORT REPO TAG N — N concurrent pulls of REPO:TAG from 127.0.0.1:PORT, each
// as a client does it (GET /v2/, the manifest, then its config and layers one after another, on
// one keep-alive connection per pull; bodies drained, sizes and the manifest digest checked).
// Prints "WALL_MS ERRORS FIRST_ERROR".
import { createHash } from 'node:crypto';
import http from 'node:http';

const [port, repo, tag, n] = process.argv.slice(2);
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json';

function get(agent, path, keep) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent, headers: { accept: ACCEPT } }, (res) => {
      const chunks = [];
      let size = 0;
      res.on('data', (c) => { size += c.length; if (keep) chunks.push(c); });
      res.on('end', () => resolve({ status: res.statusCode, size, body: keep ? Buffer.concat(chunks) : undefined, digest: res.headers['docker-content-digest'] }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(120000, () => req.destroy(new Error(`timeout on ${path}`)));
  });
}

async function pull() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const ping = await get(agent, '/v2/', false);
    if (ping.status !== 200) throw new Error(`/v2/: ${ping.status}`);
    const m = await get(agent, `/v2/${repo}/manifests/${tag}`, true);
    if (m.status !== 200) throw new Error(`manifest: ${m.status}`);
    if (`sha256:${createHash('sha256').update(m.body).digest('hex')}` !== m.digest) throw new Error('manifest digest mismatch');
    const manifest = JSON.parse(m.body.toString());
    for (const d of [manifest.config, ...manifest.layers]) {
      const r = await get(agent, `/v2/${repo}/blobs/${d.digest}`, false);
      if (r.status !== 200 || r.size !== d.size) throw new Error(`blob ${d.digest}: ${r.status}, ${r.size} of ${d.size} bytes`);
    }
  } finally {
    agent.destroy();
  }
}

const start = Date.now();
const results = await Promise.allSettled(Array.from({ length: Number(n) }, pull));
const failed = results.filter((r) => r.status === 'rejected');
console.log(`${Date.now() - start} ${failed.length} ${failed.length ? String(failed[0].reason?.message ?? failed[0].reason).replace(/\s+/g, '_') : '-'}`);
