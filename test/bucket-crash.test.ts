import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, FIXTURES, cartorio, tempDir } from './helpers/cli.js';
import { type Rgw, aws, startRgw } from './helpers/ceph.js';
import { must, startServe } from './helpers/clients.js';
import { type ProxiedRequest, startS3Proxy } from './helpers/s3-proxy.js';

// A load into a bucket store SIGKILLed at chosen requests of its publish (a proxy in front of a
// real Ceph RGW kills it when the request arrives, and that request never reaches the store):
// verify stays clean, every repository serves its old image or its new one whole, and the next
// load takes over the killed load's lock. A load paused past its lock while another publishes
// fails instead of undoing the other. Then a store that ignores conditional writes: a load is
// refused in one line and changes nothing, unless the URL says `?single-writer=true`.

const BUCKET = 'cartorio';
/** 40 MiB of random bytes: a layer of three 16 MiB multipart parts. */
const HUGE_LAYER_MIB = 40;

interface Image {
  repository: string;
  tag: string;
}

interface KillPoint {
  name: string;
  load: string[];
  /** The repositories the load writes, each served either as before the load or as after it. */
  images: Image[];
  trip: (request: ProxiedRequest, seen: readonly ProxiedRequest[]) => boolean;
  /** What the proxy must have forwarded before the kill for the point to be the one named. */
  before?: (seen: readonly ProxiedRequest[]) => boolean;
  /** Killed after one index.json was written: that repository serves the new image, the others the old. */
  oneMoved?: true;
}

const isPut = (request: ProxiedRequest, key: (key: string) => boolean): boolean => request.method === 'PUT' && key(request.key);
const poolKey = (key: string): boolean => key.includes('/.blobs/blobs/sha256/');
const indexKey = (key: string): boolean => key.endsWith('/index.json');
const done = (request: ProxiedRequest): boolean => request.status !== undefined && request.status < 300;

test('bucket store: loads killed while publishing, and an object store without conditional writes', async (t) => {
  const dir = await tempDir(t);
  const rgw = await startRgw(t);
  Object.assign(process.env, rgw.env);
  await aws(rgw, ['s3', 'mb', `s3://${BUCKET}`]);
  const huge = await hugeLayerArchive(join(dir, 'huge'));
  const multi = join(FIXTURES, 'docker-save-multi.tar');
  const old = join(FIXTURES, 'rootfs.tar');
  const seeded: Image[] = [{ repository: 'huge', tag: '1' }, { repository: 'busybox', tag: '1' }, { repository: 'other/tool', tag: '2' }];

  const points: KillPoint[] = [
    {
      name: 'between two parts of a multipart upload',
      load: [huge, '--name', 'huge', '--tag', '1'],
      images: [{ repository: 'huge', tag: '1' }],
      trip: (request) => request.method === 'PUT' && request.query.get('partNumber') === '2',
      before: (seen) => seen.some((request) => request.method === 'POST' && request.query.has('uploads')),
    },
    {
      name: 'between two blob uploads',
      load: [multi],
      images: [{ repository: 'busybox', tag: '1' }, { repository: 'other/tool', tag: '2' }],
      trip: (request, seen) => isPut(request, poolKey) && seen.some((earlier) => isPut(earlier, poolKey) && done(earlier)),
    },
    {
      name: 'after .repositories, before the index.json',
      load: [join(FIXTURES, 'rootfs.tar.gz'), '--name', 'fresh/one', '--tag', '1'],
      images: [{ repository: 'fresh/one', tag: '1' }],
      trip: (request) => isPut(request, indexKey),
      before: (seen) => seen.some((request) => isPut(request, (key) => key.endsWith('/.repositories')) && done(request)),
    },
    {
      name: "between two repositories' index.json",
      load: [multi],
      images: [{ repository: 'busybox', tag: '1' }, { repository: 'other/tool', tag: '2' }],
      trip: (request, seen) => isPut(request, indexKey) && seen.some((earlier) => isPut(earlier, indexKey) && done(earlier)),
      oneMoved: true,
    },
  ];

  await t.test('SIGKILL at four points of the publish: verify clean, old or new image whole, the next load takes over', async (st) => {
    // Each point in a store of its own (one lock each), seeded with an old image in every repository.
    const stores = points.map((_, i) => `s3://${BUCKET}/killed-${i}`);
    const before = new Map<string, Map<string, string>>();
    const after = new Map<string, Map<string, string>>();
    for (const [i, point] of points.entries()) {
      const store = stores[i] ?? '';
      for (const image of seeded) await must(process.execPath, [CLI, 'load', '--quiet', '--store', store, old, '--name', image.repository, '--tag', image.tag]);
      before.set(store, await digests(store));
      after.set(store, await digests(join(dir, `expected-${i}`), point.load));
    }
    for (const [i, point] of points.entries()) {
      const store = stores[i] ?? '';
      const killed = await killLoadAt(st, rgw, store, point);
      const verified = await cartorio(['verify', '--store', store]);
      assert.equal(verified.code, 0, `${point.name}: verify: ${verified.stdout}${verified.stderr}`);
      const server = await startServe(st, join(dir, 'serve'), store);
      const states: string[] = [];
      for (const image of point.images) {
        const ref = `${image.repository}:${image.tag}`;
        const served = await servedWhole(join(dir, `pulled-${i}`), server.address, image);
        const was = before.get(store)?.get(ref);
        const next = after.get(store)?.get(ref);
        assert.ok(served === was || served === next, `${point.name}: ${ref} serves ${served ?? 'nothing'}, neither the old ${was ?? 'nothing'} nor the new ${next ?? 'nothing'}`);
        states.push(`${ref} ${served === next ? 'new' : 'old'}`);
      }
      if (point.oneMoved === true) {
        const published = killed.seen.find((request) => isPut(request, indexKey) && done(request))?.key.replace(/^[^/]+\//, '').replace(/\/index\.json$/, '');
        for (const image of point.images) assert.equal(states.includes(`${image.repository}:${image.tag} new`), image.repository === published, `${point.name}: ${states.join(', ')} (published: ${published ?? 'none'})`);
      } else {
        assert.ok(states.every((state) => state.endsWith(' old')), `${point.name}: ${states.join(', ')}`);
      }
      st.diagnostic(`killed ${point.name} (at ${killed.tripped.method} ${killed.tripped.key}${killed.tripped.query.size > 0 ? `?${killed.tripped.query.toString().slice(0, 40)}` : ''}): verify clean; ${states.join(', ')}`);
    }
    // The next loads wait for the killed loads' locks to go stale (30 s after their last refresh), all at once.
    const started = Date.now();
    const next = await Promise.all(points.map((point, i) => cartorio(['load', '--quiet', '--store', stores[i] ?? '', ...point.load])));
    for (const [i, result] of next.entries()) assert.equal(result.code, 0, `the load after the kill ${points[i]?.name ?? ''}: ${result.stderr}`);
    st.diagnostic(`the next loads took over the killed loads' locks after ${Date.now() - started} ms`);
    for (const [i, point] of points.entries()) {
      const store = stores[i] ?? '';
      const verified = await cartorio(['verify', '--store', store]);
      assert.equal(verified.code, 0, `after ${point.name}: verify: ${verified.stdout}${verified.stderr}`);
      const now = await digests(store);
      for (const [ref, digest] of after.get(store) ?? []) assert.equal(now.get(ref), digest, `after ${point.name}: ${ref}`);
      assert.equal((await aws(rgw, ['s3', 'ls', `${store}/.lock`]).catch(() => '')).trim(), '', `after ${point.name}: the lock is released`);
    }
    // The killed multipart upload is left unfinished (no object); the lifecycle rule the docs give is one the store takes.
    const unfinished = JSON.parse(await aws(rgw, ['s3api', 'list-multipart-uploads', '--bucket', BUCKET, '--prefix', 'killed-0/', '--query', 'Uploads[].Key', '--output', 'json'])) as string[] | null;
    assert.equal(unfinished?.length, 1, `unfinished uploads: ${JSON.stringify(unfinished)}`);
    const rule = { Rules: [{ ID: 'abort-unfinished-uploads', Status: 'Enabled', Filter: {}, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }] };
    await aws(rgw, ['s3api', 'put-bucket-lifecycle-configuration', '--bucket', BUCKET, '--lifecycle-configuration', JSON.stringify(rule)]);
    assert.match(await aws(rgw, ['s3api', 'get-bucket-lifecycle-configuration', '--bucket', BUCKET]), /"DaysAfterInitiation": 1/);
  });

  await t.test('a load paused past its lock, resumed after another load published: it fails and undoes nothing', async (st) => {
    const store = `s3://${BUCKET}/paused`;
    await must(process.execPath, [CLI, 'load', '--quiet', '--store', store, old, '--name', 'shared', '--tag', 'seed']);
    // SIGSTOP at the paused load's index.json PUT, held by the proxy until after the other load.
    let release = (): void => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    let pause = (): void => undefined;
    const proxy = await startS3Proxy(st, rgw.endpoint, { tripWhen: (request) => isPut(request, indexKey), onTrip: () => (pause(), released) });
    const paused = spawn(process.execPath, [CLI, 'load', '--quiet', '--store', store, join(FIXTURES, 'rootfs.tar.gz'), '--name', 'shared', '--tag', 'paused'], { env: { ...process.env, AWS_ENDPOINT_URL_S3: proxy.endpoint }, stdio: ['ignore', 'ignore', 'pipe'] });
    pause = () => paused.kill('SIGSTOP');
    let stderr = '';
    paused.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => paused.once('exit', (code) => resolve(code)));
    st.after(() => void paused.kill('SIGKILL'));
    while (proxy.tripped === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
    // The other load takes the lock over once the paused one's expires, and publishes.
    const other = await cartorio(['load', '--quiet', '--store', store, huge, '--name', 'shared', '--tag', 'other']);
    assert.equal(other.code, 0, other.stderr);
    paused.kill('SIGCONT');
    release();
    const code = await exited;
    const tags = [...(await digests(store)).keys()].sort();
    assert.deepEqual(tags, ['shared:other', 'shared:seed'], `the load that took the lock over said it loaded shared:other; the paused load (exit ${code}) left: ${tags.join(' ')}; ${stderr}`);
    assert.equal(code, 1, stderr);
    assert.match(stderr, /^cartorio load: s3:\/\/cartorio\/paused\/shared\/index\.json: another writer changed it after this command lost the writer lock .*, so it was left as that writer made it; run the command again\n$/);
    const verified = await cartorio(['verify', '--store', store]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  });

  await t.test('an object store that ignores If-None-Match: the load is refused in one line and changes nothing; ?single-writer=true loads', async (st) => {
    const store = `s3://${BUCKET}/no-conditions`;
    await must(process.execPath, [CLI, 'load', '--quiet', '--store', store, old, '--name', 'seed', '--tag', '1']);
    const objects = async (): Promise<string> => aws(rgw, ['s3api', 'list-objects-v2', '--bucket', BUCKET, '--prefix', 'no-conditions/', '--query', 'Contents[].[Key,ETag]', '--output', 'json']);
    const unchanged = await objects();
    const proxy = await startS3Proxy(st, rgw.endpoint, { ignoreConditions: { accessKey: rgw.accessKey, secretKey: rgw.secretKey } });
    const env = { ...process.env, AWS_ENDPOINT_URL_S3: proxy.endpoint };

    const refused = await cartorio(['load', '--quiet', '--store', store, multi], { env });
    assert.equal(refused.code, 1, refused.stderr);
    assert.equal(refused.stderr.trimEnd().split('\n').length, 1, refused.stderr);
    // The line starts with the store, not the input the load was committing (the archive is sound), then says what to do.
    assert.match(refused.stderr, /^cartorio load: s3:\/\/cartorio\/no-conditions: the object store ignores conditional writes \(If-None-Match\).* s3:\/\/cartorio\/no-conditions\?single-writer=true\n$/);
    // The store was asked with the conditions, and answered without them: the proxy stood in for such a store.
    assert.ok(proxy.seen.some((request) => isPut(request, (key) => key.endsWith('/.lock')) && request.headers['if-none-match'] === '*' && done(request)), 'the lock was created through the proxy');
    assert.equal(await objects(), unchanged, 'the refused load changed nothing in the store');

    const lockRequests = proxy.seen.length;
    const loaded = await cartorio(['load', '--quiet', '--store', `${store}?single-writer=true`, multi], { env });
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.ok(!proxy.seen.slice(lockRequests).some((request) => request.key.endsWith('/.lock')), 'no lock object with ?single-writer=true');
    const verified = await cartorio(['verify', '--store', store]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    const expected = await digests(join(dir, 'expected-single-writer'), [multi]);
    const server = await startServe(st, join(dir, 'serve'), store);
    for (const image of [{ repository: 'busybox', tag: '1' }, { repository: 'other/tool', tag: '2' }, { repository: 'seed', tag: '1' }]) {
      const served = await servedWhole(join(dir, 'pulled-single-writer'), server.address, image);
      const want = image.repository === 'seed' ? (await digests(store)).get('seed:1') : expected.get(`${image.repository}:${image.tag}`);
      assert.ok(served !== undefined && served === want, `${image.repository}:${image.tag}: served ${served ?? 'nothing'}, loaded ${want ?? 'nothing'}`);
    }
  });
});

/** Runs `point.load` through a proxy that SIGKILLs it at the point's request; fails if the load never got there. */
async function killLoadAt(t: { after: (fn: () => Promise<void>) => void }, rgw: Rgw, store: string, point: KillPoint): Promise<{ seen: ProxiedRequest[]; tripped: ProxiedRequest }> {
  let kill = (): void => undefined;
  const proxy = await startS3Proxy(t, rgw.endpoint, { tripWhen: point.trip, onTrip: () => void kill() });
  const child = spawn(process.execPath, [CLI, 'load', '--quiet', '--store', store, ...point.load], { env: { ...process.env, AWS_ENDPOINT_URL_S3: proxy.endpoint }, stdio: ['ignore', 'ignore', 'pipe'] });
  kill = () => child.kill('SIGKILL');
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, how) => resolve(how)));
  await proxy.close();
  const { tripped, seen } = proxy;
  assert.ok(tripped !== undefined && signal === 'SIGKILL', `${point.name}: the load ended (${signal ?? 'exit'}) without reaching its kill point: ${stderr}`);
  assert.ok(point.before?.(seen) ?? true, `${point.name}: killed at ${tripped.method} ${tripped.key} before the point (seen: ${seen.map((r) => `${r.method} ${r.key}`).join(', ')})`);
  return { seen, tripped };
}

/** `repository:tag` → manifest digest in a store, after loading `inputs` into it when given. */
async function digests(store: string, inputs?: string[]): Promise<Map<string, string>> {
  if (inputs !== undefined) await must(process.execPath, [CLI, 'load', '--quiet', '--store', store, ...inputs]);
  const listed = await must(process.execPath, [CLI, 'list', '--json', '--store', store]);
  return new Map((JSON.parse(listed.stdout) as { repository: string; tag: string; digest: string }[]).map((image) => [`${image.repository}:${image.tag}`, image.digest]));
}

/**
 * What a registry client gets for an image: undefined when the server has no such manifest, else
 * its digest (skopeo inspect), after skopeo copied it whole (every blob the manifest names, checked).
 */
async function servedWhole(dir: string, address: string, image: Image): Promise<string | undefined> {
  const ref = `docker://${address}/${image.repository}:${image.tag}`;
  const head = await fetch(`http://${address}/v2/${image.repository}/manifests/${image.tag}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json' } });
  if (head.status === 404) return undefined;
  const inspected = await must('skopeo', ['inspect', '--tls-verify=false', '--format', '{{.Digest}}', ref]);
  const copy = join(dir, `${image.repository.replace(/\//g, '_')}-${Date.now()}`);
  await mkdir(dir, { recursive: true });
  await must('skopeo', ['copy', '-q', '--src-tls-verify=false', ref, `dir:${copy}`]);
  return inspected.stdout.trim();
}

/** An oci-archive of one image whose one layer is HUGE_LAYER_MIB of random bytes, made by umoci and skopeo. */
async function hugeLayerArchive(dir: string): Promise<string> {
  const archive = join(dir, 'huge.tar');
  await mkdir(join(dir, 'rootfs', 'opt', 'huge'), { recursive: true });
  const script = [
    `cd '${dir}'`,
    `head -c ${HUGE_LAYER_MIB}M /dev/zero | openssl enc -aes-256-ctr -nosalt -pass pass:huge -pbkdf2 > rootfs/opt/huge/huge.bin`,
    'umoci init --layout oci',
    'umoci new --image oci:1',
    'umoci insert --image oci:1 rootfs/opt/huge /opt/huge',
    'umoci config --image oci:1 --config.cmd /bin/sh',
    'skopeo copy -q oci:oci:1 oci-archive:huge.tar:1',
  ].join(' && ');
  await must('bash', ['-euo', 'pipefail', '-c', script]);
  return archive;
}
