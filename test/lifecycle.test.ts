import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { link, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, FIXTURES, ROOT, cartorio, run, tempDir } from './helpers/cli.js';
import { startServe } from './helpers/clients.js';
import { ok, tags } from './helpers/lifecycle.js';
import { BUSYBOX_ARM64, BUSYBOX_MULTI } from './helpers/registry-store.js';
import { snapshotTree } from './helpers/snapshot.js';

// Removing images from a store and freeing their bytes: rm, gc, prune, load --replace.

const MANIFEST_TYPES = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json';

async function verified(store: string): Promise<void> {
  const result = await cartorio(['verify', '--store', store]);
  assert.equal(result.code, 0, `verify: ${result.stdout}${result.stderr}`);
}

/** Pool blobs no repository links: what gc should have freed. */
async function unheldPoolBlobs(store: string): Promise<string[]> {
  const dir = join(store, '.blobs', 'blobs', 'sha256');
  const names = await readdir(dir).catch(() => [] as string[]);
  const unheld: string[] = [];
  for (const name of names) if ((await stat(join(dir, name))).nlink < 2) unheld.push(name);
  return unheld;
}

test('rm untags, removes an image or a whole repository; blobs another repository shares survive gc', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  await ok(['load', '--store', store, '--tarball', join(FIXTURES, 'docker-save-multi.tar')]);
  await ok(['load', '--store', store, `--tarball=${join(FIXTURES, 'busybox-oci')}`, '--name', 'oci/busybox']);
  assert.deepEqual(await tags(store), ['127.0.0.1:5000/busybox:1', 'busybox:1', 'oci/busybox:1', 'oci/busybox:arm64', 'oci/busybox:multi', 'other/tool:2']);

  // Every REF is checked first: one that names nothing changes nothing.
  const before = await snapshotTree(store);
  for (const refs of [['busybox:1', 'nothing/here:1'], ['busybox:2'], ['other/tool@sha256:' + '0'.repeat(64)], ['Bad Name']]) {
    const refused = await cartorio(['rm', '--store', store, ...refs]);
    assert.equal(refused.code, 1, refs.join(' '));
    assert.match(refused.stderr, new RegExp(`cartorio rm: .*${(refs.at(-1) as string).split(/[:@]/)[0]}.*nothing was removed`));
  }
  const dry = JSON.parse(await ok(['rm', '--store', store, '--dry-run', '--json', 'busybox:1', 'other/tool'])) as { repositories: { repository: string; whole: boolean }[] };
  assert.deepEqual(dry.repositories.map((r) => [r.repository, r.whole]), [['busybox', true], ['other/tool', true]]);
  assert.deepEqual(await snapshotTree(store), before, '--dry-run and refused REFs leave every byte as it was');

  // The last tag of busybox goes, so the repository goes; 127.0.0.1:5000/busybox shares every blob.
  await ok(['rm', '--store', store, 'busybox:1']);
  // An index goes alone: the platform images it names keep their own tags.
  await ok(['rm', '--store', store, `oci/busybox@${BUSYBOX_MULTI}`]);
  // Untag one of two images of a repository.
  await ok(['rm', '--store', store, 'oci/busybox:arm64']);
  assert.deepEqual(await tags(store), ['127.0.0.1:5000/busybox:1', 'oci/busybox:1', 'other/tool:2']);
  assert.deepEqual((await readFile(join(store, '.repositories'), 'utf8')).split('\n').filter(Boolean), ['127.0.0.1:5000/busybox', 'oci/busybox', 'other/tool']);
  await verified(store);

  // Nothing is freed within the grace.
  const kept = JSON.parse(await ok(['gc', '--store', store, '--json'])) as { bytesFreed: number; inGrace: { blobs: number } };
  assert.equal(kept.bytesFreed, 0);
  assert.ok(kept.inGrace.blobs > 0);
  const dryGc = JSON.parse(await ok(['gc', '--store', store, '--grace', '0s', '--dry-run', '--json'])) as { bytesFreed: number; freed: { digest: string }[] };
  assert.ok(dryGc.freed.some((blob) => blob.digest === BUSYBOX_MULTI) && dryGc.freed.some((blob) => blob.digest === BUSYBOX_ARM64));
  const unchanged = await snapshotTree(store);
  const gc = JSON.parse(await ok(['gc', '--store', store, '--grace', '0s', '--json'])) as { bytesFreed: number; freed: { digest: string }[]; dropped: string[] };
  assert.equal(gc.bytesFreed, dryGc.bytesFreed, 'gc frees what --dry-run said');
  assert.deepEqual(gc.dropped, ['busybox']);
  assert.notDeepEqual(await snapshotTree(store), unchanged);
  await assert.rejects(stat(join(store, 'busybox')), 'the removed repository is gone once gc ran');
  assert.deepEqual(await unheldPoolBlobs(store), []);
  await verified(store);
  await mkdir(join(dir, 'out'));
  // (skopeo's oci: transport cannot name a path with a colon: 127.0.0.1:5000/busybox is left to verify)
  for (const ref of ['oci/busybox:1', 'other/tool:2']) {
    const [name, tag] = ref.split(/:(?=[^:]*$)/) as [string, string];
    const copy = await run('skopeo', ['copy', '-q', `oci:${join(store, ...name.split('/'))}:${tag}`, `dir:${join(dir, 'out', ref.replace(/\W/g, '_'))}`]);
    assert.equal(copy.code, 0, `${ref} is complete after gc: ${copy.stderr}`);
  }

  // A whole repository: list says what it alone holds, gc frees exactly that; a second gc has nothing left to do.
  const rows = JSON.parse(await ok(['list', '--store', store, '--json'])) as { repository: string; repositoryOnlyBytes: number }[];
  const only = rows.find((row) => row.repository === 'other/tool')?.repositoryOnlyBytes;
  assert.ok(only !== undefined && only > 0, 'other/tool holds a config and manifest of its own');
  assert.match(await ok(['list', '--store', store]), /ONLY IN REPOSITORY/);
  await ok(['rm', '--store', store, 'other/tool']);
  assert.match(await ok(['gc', '--store', store, '--grace', '0s', '--dry-run']), /; [1-9]\d* links released in \d+ repositories$/m, 'a directory repository holds its blobs by links');
  const freed = JSON.parse(await ok(['gc', '--store', store, '--grace', '0s', '--json'])) as { bytesFreed: number };
  assert.equal(freed.bytesFreed, only);
  const again = JSON.parse(await ok(['gc', '--store', store, '--grace', '0s', '--json'])) as { bytesFreed: number; released: unknown[] };
  assert.deepEqual([again.bytesFreed, again.released.length], [0, 0]);
  assert.deepEqual(await tags(store), ['127.0.0.1:5000/busybox:1', 'oci/busybox:1']);
  await verified(store);
});

test('rm resolves names as the server does and refuses an ambiguous one', async (t) => {
  const store = join(await tempDir(t), 'store');
  const sample = join(ROOT, 'assets', 'sample-image.tar');
  await ok(['load', '--store', store, sample]); // docker.io/cartorio/sample:1
  await ok(['load', '--store', store, sample, '--name', 'quay.io/cartorio/sample']);
  const ambiguous = await cartorio(['rm', '--store', store, 'cartorio/sample:1']);
  assert.equal(ambiguous.code, 1);
  assert.match(ambiguous.stderr, /names several repositories \(docker\.io\/cartorio\/sample.*quay\.io\/cartorio\/sample/);
  await ok(['rm', '--store', store, 'quay.io/cartorio/sample']);
  // Now one registry holds cartorio/sample: the host-less spelling finds it, as a pull would.
  const removed = await ok(['rm', '--store', store, 'cartorio/sample:1']);
  assert.match(removed, /removed repository docker\.io\/cartorio\/sample/);
  assert.deepEqual(await tags(store), []);
  await verified(store);
});

test('a pull that holds its manifest finishes after rm and gc; the server stops serving what went', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  await ok(['load', '--store', store, join(FIXTURES, 'docker-save-multi.tar')]);
  const server = await startServe(t, dir, store);
  const base = `http://${server.address}/v2`;
  const got = await fetch(`${base}/other/tool/manifests/2`, { headers: { accept: MANIFEST_TYPES } });
  assert.equal(got.status, 200);
  const manifest = JSON.parse(await got.text()) as { config: { digest: string }; layers: { digest: string }[] };
  const digests = [manifest.config.digest, ...manifest.layers.map((layer) => layer.digest)];

  await ok(['rm', '--store', store, 'other/tool:2']);
  assert.equal((await fetch(`${base}/other/tool/manifests/2`, { headers: { accept: MANIFEST_TYPES } })).status, 404, 'the tag is gone without a restart');
  const catalog = (await (await fetch(`${base}/_catalog`)).json()) as { repositories: string[] };
  assert.ok(!catalog.repositories.includes('other/tool'));
  const inspect = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${server.address}/other/tool:2`]);
  assert.notEqual(inspect.code, 0, 'skopeo no longer finds it');

  await ok(['gc', '--store', store]); // the default grace: nothing the pull needs goes
  for (const digest of digests) {
    const blob = await fetch(`${base}/other/tool/blobs/${digest}`);
    assert.equal(blob.status, 200, `${digest} during the grace`);
    assert.equal(`sha256:${createHash('sha256').update(Buffer.from(await blob.arrayBuffer())).digest('hex')}`, digest);
  }
  assert.equal((await fetch(`${base}/other/tool/blobs/${digests[0]}`, { method: 'DELETE' })).status, 405, 'the API stays read-only');
  assert.equal((await fetch(`${base}/other/tool/manifests/2`, { method: 'DELETE' })).status, 405);

  await ok(['gc', '--store', store, '--grace', '0s']);
  assert.equal((await fetch(`${base}/other/tool/blobs/${digests[0]}`)).status, 404, 'after the grace the blob is gone');

  // A tag a load moves (a Concourse put of `latest`) keeps the old image's blobs for the grace too.
  await ok(['load', '--store', store, join(FIXTURES, 'rootfs.tar'), '--name', 'app', '--tag', 'latest', '--label', 'build=1']);
  const old = JSON.parse(await (await fetch(`${base}/app/manifests/latest`, { headers: { accept: MANIFEST_TYPES } })).text()) as { config: { digest: string } };
  await ok(['load', '--store', store, join(FIXTURES, 'rootfs.tar'), '--name', 'app', '--tag', 'latest', '--label', 'build=2']);
  await ok(['gc', '--store', store]);
  assert.equal((await fetch(`${base}/app/blobs/${old.config.digest}`)).status, 200, 'the old config during the grace');
  await ok(['gc', '--store', store, '--grace', '0s']);
  assert.equal((await fetch(`${base}/app/blobs/${old.config.digest}`)).status, 404);
  const busybox = await run('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${server.address}/busybox:1`, `dir:${join(dir, 'pulled')}`]);
  assert.equal(busybox.code, 0, `the sharer still pulls: ${busybox.stderr}`);
  await verified(store);
});

test('gc keeps every blob the server serves: an image one index below one tag and nine below another', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  await ok(['load', '--store', store, join(FIXTURES, 'docker-save-busybox.tar')]);
  const repository = join(store, 'busybox');
  const loaded = JSON.parse(await readFile(join(repository, 'index.json'), 'utf8')) as { manifests: { mediaType: string; digest: string; size: number }[] };
  const { mediaType, digest: image, size } = loaded.manifests[0] ?? assert.fail('busybox:1 loaded');
  const indexType = 'application/vnd.oci.image.index.v1+json';
  // Indexes nested as a hand-made layout may nest them (a load refuses more than 8 levels): one
  // index X names the image; tag `deep` reaches X only nine indexes down, below the depth a walk
  // descends, and tag `near` one index down. The server serves the image under `near`.
  const wrap = async (child: { mediaType: string; digest: string; size: number }, note = 'deep'): Promise<{ mediaType: string; digest: string; size: number }> => {
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: indexType, manifests: [child], annotations: { note } }));
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const pooled = join(store, '.blobs', 'blobs', 'sha256', digest.slice(7));
    await writeFile(pooled, bytes);
    await link(pooled, join(repository, 'blobs', 'sha256', digest.slice(7)));
    return { mediaType: indexType, digest, size: bytes.length };
  };
  const x = await wrap({ mediaType, digest: image, size });
  let deep = x;
  for (let level = 0; level < 9; level++) deep = await wrap(deep);
  const near = await wrap(x, 'near');
  const tagged = (descriptor: typeof x, tag: string): object => ({ ...descriptor, annotations: { 'org.opencontainers.image.ref.name': tag } });
  await writeFile(join(repository, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [tagged(deep, 'deep'), tagged(near, 'near')] }));

  const server = await startServe(t, dir, store);
  const base = `http://${server.address}/v2/busybox`;
  const served = async (): Promise<string[]> => {
    const got = await fetch(`${base}/manifests/${image}`, { headers: { accept: MANIFEST_TYPES } });
    assert.equal(got.status, 200, 'the image under `near`');
    const manifest = JSON.parse(await got.text()) as { config: { digest: string }; layers: { digest: string }[] };
    const blobs = [manifest.config.digest, ...manifest.layers.map((layer) => layer.digest)];
    for (const blob of blobs) assert.equal((await fetch(`${base}/blobs/${blob}`)).status, 200, blob);
    return blobs;
  };
  const before = await served();
  const report = JSON.parse(await ok(['gc', '--store', store, '--grace', '0s', '--json'])) as { released: { digest: string }[] };
  const released = new Set(report.released.map((blob) => blob.digest));
  for (const blob of [image, ...before]) assert.ok(!released.has(blob), `gc released ${blob}, which the server serves`);
  assert.deepEqual(await served(), before);
});

test('load --replace leaves exactly the tags it brings; prune keeps the N newest by load time', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  const rootfs = join(FIXTURES, 'rootfs.tar');
  for (const tag of ['1', '2', '3', '4']) await ok(['load', '--store', store, rootfs, '--name', 'app', '--tag', tag, '--label', `v=${tag}`]);
  await ok(['load', '--store', store, rootfs, '--name', 'tool', '--tag', 'a']);
  const before = await snapshotTree(store);
  const dry = await ok(['prune', '--store', store, '--keep', '2', '--dry-run']);
  assert.match(dry, /would remove app:2@/);
  assert.match(dry, /would remove app:1@/);
  assert.deepEqual(await snapshotTree(store), before);
  assert.equal(JSON.parse(await ok(['prune', '--store', store, '--keep', '1', '--older-than', '1d', '--json'])).repositories.length, 0, 'nothing is a day old');
  await ok(['prune', '--store', store, '--keep', '2', 'app']);
  assert.deepEqual(await tags(store), ['app:3', 'app:4', 'tool:a']);
  await ok(['prune', '--store', store, '--keep', '1']);
  assert.deepEqual(await tags(store), ['app:4', 'tool:a']);

  await ok(['load', '--store', store, rootfs, '--name', 'app', '--tag', '9']);
  await ok(['load', '--store', store, '--replace', rootfs, '--name', 'app', '--tag', '10', '--tag', '11']);
  assert.deepEqual(await tags(store), ['app:10', 'app:11', 'tool:a']);
  await ok(['gc', '--store', store, '--grace', '0s']);
  assert.deepEqual(await unheldPoolBlobs(store), []);
  await verified(store);
});

test('gc --grace 0s running beside a big load loses nothing of it', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  const made = await run('bash', ['-c', `mkdir -p ${dir}/rootfs/data && head -c 160M /dev/zero | openssl enc -aes-256-ctr -nosalt -pass pass:gc -pbkdf2 > ${dir}/rootfs/data/blob.bin && cp -a ${FIXTURES}/rootfs/. ${dir}/rootfs/`]);
  assert.equal(made.code, 0, made.stderr);
  await ok(['load', '--store', store, join(FIXTURES, 'docker-save-multi.tar')]);
  // Garbage for every gc to find while the load runs.
  await ok(['rm', '--store', store, 'other/tool', '127.0.0.1:5000/busybox']);

  const load = spawn(process.execPath, [CLI, 'load', '--store', store, join(dir, 'rootfs'), '--name', 'big', '--tag', '1', '--compression', 'none'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let loadErr = '';
  load.stderr.on('data', (chunk: Buffer) => (loadErr += chunk.toString()));
  const loaded = new Promise<number | null>((resolve) => load.on('exit', resolve));
  let running = true;
  void loaded.then(() => (running = false));
  let runs = 0;
  while (running) {
    await ok(['gc', '--store', store, '--grace', '0s', '-q']);
    runs++;
  }
  assert.equal(await loaded, 0, loadErr);
  t.diagnostic(`${runs} gc runs during the load`);
  assert.ok(runs >= 2, 'gc ran while the load did');
  await ok(['gc', '--store', store, '--grace', '0s']);
  await verified(store);
  const server = await startServe(t, dir, store);
  const pulled = await run('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${server.address}/big:1`, `oci:${join(dir, 'pulled')}:1`]);
  assert.equal(pulled.code, 0, pulled.stderr);
  assert.deepEqual(await tags(store), ['big:1', 'busybox:1']);
});

test('SIGKILL of gc at any point leaves a valid store, and the next gc finishes the job', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'store');
  const names = Array.from({ length: 400 }, (_, i) => `many/r${i}:1`);
  const made = await run('bash', ['-c', `set -e; mkdir ${dir}/save && tar -xf ${FIXTURES}/docker-save-busybox.tar -C ${dir}/save && rm -f ${dir}/save/repositories && cd ${dir}/save && jq -c '.[0].RepoTags = $names' --argjson names '${JSON.stringify(names)}' manifest.json > m && mv m manifest.json && tar -cf ${dir}/many.tar *`]);
  assert.equal(made.code, 0, made.stderr);
  await ok(['load', '--store', store, join(dir, 'many.tar')]);
  await ok(['load', '--store', store, join(FIXTURES, 'busybox-oci'), '--name', 'keep']);
  let next = 0;
  const outcomes = { none: 0, partial: 0, finished: 0 };
  const delays = [60, 150, 250, 350, 450, 550, 650, 800, 1000];
  for (const delay of delays) {
    // Each round removes 40 repositories, then kills gc at a later point of its run.
    await ok(['rm', '--store', store, '-q', ...names.slice(next, next + 40).map((name) => name.replace(/:1$/, ''))]);
    next += 40;
    const before = (await readdir(join(store, 'many'))).length;
    const child = spawn(process.execPath, [CLI, 'gc', '--store', store, '--grace', '0s', '-q'], { stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, delay));
    child.kill('SIGKILL');
    await exited;
    await verified(store);
    assert.equal((await tags(store)).length, 400 - next + 3); // and keep's three tags
    const after = (await readdir(join(store, 'many'))).length;
    outcomes[after === before ? 'none' : after === 400 - next ? 'finished' : 'partial']++;
  }
  t.diagnostic(`killed gc runs: ${outcomes.none} before the sweep, ${outcomes.partial} during it, ${outcomes.finished} after it`);
  await ok(['gc', '--store', store, '--grace', '0s']);
  const left = JSON.parse(await ok(['gc', '--store', store, '--grace', '0s', '--dry-run', '--json'])) as { released: unknown[]; freed: unknown[]; dropped: unknown[] };
  assert.deepEqual([left.released.length, left.freed.length, left.dropped.length], [0, 0, 0], 'the last gc finished the job');
  assert.equal((await readdir(join(store, 'many'))).length, 400 - next);
  assert.deepEqual(await unheldPoolBlobs(store), []);
  await verified(store);
});

test('rm, gc and prune have --help with examples; load takes --tarball as the first README wrote it', async (t) => {
  for (const command of ['rm', 'gc', 'prune']) {
    const result = await cartorio([command, '--help']);
    assert.equal(result.code, 0, `${command} --help`);
    assert.match(result.stdout, /Examples:\n {2}\$ .*cartorio /);
  }
  assert.match((await cartorio(['prune', '--help'])).stdout, /io\.cartorio\.loaded/);
  const store = join(await tempDir(t), 'store');
  assert.match(await ok(['load', '--store', store, `--tarball=${join(ROOT, 'assets', 'sample-image.tar')}`]), /docker\.io\/cartorio\/sample:1@sha256:/);
  assert.equal((await cartorio(['load', '--store', store])).code, 2, 'no source is a usage error');
});
