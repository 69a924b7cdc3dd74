// bench/scale-fixtures.mjs — builds the scale section's stores from one real image (bench/scale.sh).
//
//   node scale-fixtures.mjs repos STORE DISTROOT NAMES_FILE
//     STORE/bench/tiny (loaded by cartorio) is copied with hard links to every name of NAMES_FILE,
//     and STORE/.repositories written; DISTROOT's repositories/bench/tiny (pushed by skopeo) is
//     copied the same way (its _manifests/_layers link files), so both hold the same repositories.
//   node scale-fixtures.mjs tags STORE DISTROOT TAGS COPIES
//     STORE/bench/tags-0: TAGS tags t-00000…, each naming its own manifest (tiny's, plus one
//     annotation), hard-linked to bench/tags-1 … tags-(COPIES-1); DISTROOT gets bench/tags-0 with
//     the same manifests (blob data + revision and tag links).
import { createHash } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [mode, store, distRoot, a, b] = process.argv.slice(2);
const repos = join(distRoot, 'docker/registry/v2/repositories');
const blobs = join(distRoot, 'docker/registry/v2/blobs/sha256');

function linkTree(from, to) {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    if (entry.isDirectory()) linkTree(join(from, entry.name), join(to, entry.name));
    else linkSync(join(from, entry.name), join(to, entry.name));
  }
}

if (mode === 'repos') {
  const names = readFileSync(a, 'utf8').split('\n').filter(Boolean);
  for (const name of names) {
    linkTree(join(store, 'bench/tiny'), join(store, name));
    linkTree(join(repos, 'bench/tiny'), join(repos, name));
  }
} else if (mode === 'tags') {
  const count = Number(a);
  const copies = Number(b);
  const tiny = join(store, 'bench/tiny');
  const index = JSON.parse(readFileSync(join(tiny, 'index.json'), 'utf8'));
  const base = index.manifests[0];
  const manifest = JSON.parse(readFileSync(join(tiny, 'blobs/sha256', base.digest.slice(7)), 'utf8'));
  const dir = join(store, 'bench/tags-0');
  mkdirSync(join(dir, 'blobs/sha256'), { recursive: true });
  for (const file of readdirSync(join(tiny, 'blobs/sha256'))) linkSync(join(tiny, 'blobs/sha256', file), join(dir, 'blobs/sha256', file));
  linkSync(join(tiny, 'oci-layout'), join(dir, 'oci-layout'));
  const dist = join(repos, 'bench/tags-0');
  linkTree(join(repos, 'bench/tiny/_layers'), join(dist, '_layers'));
  const entries = [];
  for (let i = 0; i < count; i++) {
    const tag = `t-${String(i).padStart(5, '0')}`;
    const bytes = Buffer.from(JSON.stringify({ ...manifest, annotations: { ...manifest.annotations, 'org.example.build': tag } }));
    const hex = createHash('sha256').update(bytes).digest('hex');
    writeFileSync(join(dir, 'blobs/sha256', hex), bytes);
    mkdirSync(join(blobs, hex.slice(0, 2), hex), { recursive: true });
    writeFileSync(join(blobs, hex.slice(0, 2), hex, 'data'), bytes);
    const link = `sha256:${hex}`;
    mkdirSync(join(dist, '_manifests/revisions/sha256', hex), { recursive: true });
    writeFileSync(join(dist, '_manifests/revisions/sha256', hex, 'link'), link);
    mkdirSync(join(dist, '_manifests/tags', tag, 'current'), { recursive: true });
    writeFileSync(join(dist, '_manifests/tags', tag, 'current/link'), link);
    mkdirSync(join(dist, '_manifests/tags', tag, 'index/sha256', hex), { recursive: true });
    writeFileSync(join(dist, '_manifests/tags', tag, 'index/sha256', hex, 'link'), link);
    entries.push({ mediaType: base.mediaType, digest: link, size: bytes.length, annotations: { 'org.opencontainers.image.ref.name': tag } });
  }
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ ...index, manifests: entries }));
  for (let c = 1; c < copies; c++) linkTree(dir, join(store, `bench/tags-${c}`));
} else {
  console.error(`usage: scale-fixtures.mjs repos|tags …`);
  process.exit(2);
}
