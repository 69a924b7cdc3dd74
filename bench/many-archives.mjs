// bench/many-archives.mjs — COUNT legacy `docker save` tarballs of LAYERS layers each, for the
// "memory flat" row of bench/serve-archive.sh: every layer its own small tar (one file of its own
// bytes), every archive its own image bench/many-<i>:1. Written with tar-stream (the library
// cartorio reads and writes every tar with), in the layout moby's image/tarexport writes:
// <hex>/layer.tar, <hex>.json (the config, diff_ids = the layers' sha256), manifest.json.
//   node bench/many-archives.mjs DIR COUNT LAYERS
import { createHash } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';

const [dir, count = '50', layers = '200'] = process.argv.slice(2);
if (!dir) throw new Error('usage: node bench/many-archives.mjs DIR COUNT LAYERS');
mkdirSync(dir, { recursive: true });
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** A tar of one file, as bytes (tar-stream pack). */
async function layerTar(name, body) {
  const pack = tar.pack();
  const chunks = [];
  pack.on('data', (chunk) => chunks.push(chunk));
  const done = new Promise((resolve, reject) => { pack.on('end', resolve); pack.on('error', reject); });
  pack.entry({ name, mode: 0o644, mtime: new Date(0) }, body);
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

for (let i = 0; i < Number(count); i++) {
  const pack = tar.pack();
  const written = pipeline(pack, createWriteStream(join(dir, `many-${i}.tar`)));
  const diffIds = [];
  const paths = [];
  for (let j = 0; j < Number(layers); j++) {
    const layer = await layerTar(`srv/many-${i}/layer-${j}`, Buffer.from(`archive ${i} layer ${j}\n`.repeat(64)));
    const hex = sha256(layer);
    diffIds.push(`sha256:${hex}`);
    paths.push(`${hex}/layer.tar`);
    pack.entry({ name: `${hex}/`, type: 'directory', mode: 0o755, mtime: new Date(0) });
    pack.entry({ name: `${hex}/layer.tar`, mode: 0o644, mtime: new Date(0) }, layer);
  }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: diffIds } }));
  const configName = `${sha256(config)}.json`;
  pack.entry({ name: configName, mode: 0o644, mtime: new Date(0) }, config);
  pack.entry({ name: 'manifest.json', mode: 0o644, mtime: new Date(0) }, JSON.stringify([{ Config: configName, RepoTags: [`bench/many-${i}:1`], Layers: paths }]));
  pack.finalize();
  await written;
}
