// bench/lifecycle-fixtures.mjs — inputs for bench/lifecycle.sh, from one real docker save.
//
//   node lifecycle-fixtures.mjs names SAVE_DIR N
//     SAVE_DIR holds an extracted `docker save` of one image: its manifest.json is rewritten to
//     name that image N times (many/r0:1 … many/r{N-1}:1), as `docker save` of N tags writes it.
//   node lifecycle-fixtures.mjs images SAVE_DIR N
//     the same, but N images: each its own config (one label apart), all sharing the layers; a
//     store of it holds 2N blobs of its own (config and manifest per repository) besides them.
//   node lifecycle-fixtures.mjs dist STORE DISTROOT
//     DISTROOT becomes Distribution 2.8's filesystem storage holding every tag of STORE: blob data
//     copied from STORE's pool, the repository's revision, tag and layer links.
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [mode, a, b] = process.argv.slice(2);

if (mode === 'names' || mode === 'images') {
  const count = Number(b);
  const entries = JSON.parse(readFileSync(join(a, 'manifest.json'), 'utf8'));
  const first = entries[0];
  const manifest = [];
  const config = JSON.parse(readFileSync(join(a, first.Config), 'utf8'));
  for (let i = 0; i < count; i++) {
    let configFile = first.Config;
    if (mode === 'images') {
      const bytes = Buffer.from(JSON.stringify({ ...config, config: { ...config.config, Labels: { ...config.config?.Labels, n: String(i) } } }));
      configFile = `${createHash('sha256').update(bytes).digest('hex')}.json`;
      writeFileSync(join(a, configFile), bytes);
    }
    manifest.push({ ...first, Config: configFile, RepoTags: [`many/r${i}:1`] });
  }
  writeFileSync(join(a, 'manifest.json'), JSON.stringify(mode === 'names' ? [{ ...first, RepoTags: manifest.map((m) => m.RepoTags[0]) }] : manifest));
} else if (mode === 'dist') {
  const store = a;
  const v2 = join(b, 'docker/registry/v2');
  const names = readFileSync(join(store, '.repositories'), 'utf8').split('\n').filter(Boolean);
  const blob = (digest) => join(store, '.blobs/blobs/sha256', digest.slice(7));
  const put = (digest) => {
    const dir = join(v2, 'blobs/sha256', digest.slice(7, 9), digest.slice(7));
    mkdirSync(dir, { recursive: true });
    // Copied, not linked: a link would count as a holder of the store's pool blob, and gc would keep it.
    copyFileSync(blob(digest), join(dir, 'data'));
  };
  const writeLink = (path, digest) => {
    mkdirSync(path, { recursive: true });
    writeFileSync(join(path, 'link'), digest);
  };
  for (const name of names) {
    const repo = join(v2, 'repositories', name);
    const index = JSON.parse(readFileSync(join(store, name, 'index.json'), 'utf8'));
    for (const entry of index.manifests) {
      const tag = entry.annotations?.['org.opencontainers.image.ref.name'];
      const body = JSON.parse(readFileSync(blob(entry.digest), 'utf8'));
      put(entry.digest);
      const hex = entry.digest.slice(7);
      writeLink(join(repo, '_manifests/revisions/sha256', hex), entry.digest);
      if (tag !== undefined) {
        writeLink(join(repo, '_manifests/tags', tag, 'current'), entry.digest);
        writeLink(join(repo, '_manifests/tags', tag, 'index/sha256', hex), entry.digest);
      }
      for (const child of [body.config, ...(body.layers ?? [])].filter(Boolean)) {
        put(child.digest);
        writeLink(join(repo, '_layers/sha256', child.digest.slice(7)), child.digest);
      }
    }
  }
} else {
  console.error('usage: lifecycle-fixtures.mjs names|images SAVE_DIR N | dist STORE DISTROOT');
  process.exit(2);
}
