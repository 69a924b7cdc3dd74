import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, linkSync, lchownSync, lutimesSync, mkdirSync, renameSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { collectTree, packTree } from '../src/image/layer-pack.js';
import { TreeWalk, TreeWalkError } from '../src/image/tree-walk.js';
import { tempDir } from './helpers/cli.js';

// The tar a directory packs into is part of the layer's digest, so of every image built from a
// directory and of the reproducibility promise of `put`: the bytes must not change when the packer
// does. These digests were taken from the packer of commit 02abf74 (one tar-stream entry stream
// per file) and pin every kind of entry it writes: ustar names, names split into prefix + name,
// names and link targets that need a pax header (too long, not ASCII), hard links, symlinks,
// a FIFO, empty and block-sized files, files read whole and files streamed (over 256 KiB).

const T0 = 946684800; // 2000-01-01T00:00:00Z

function makeFixtureTree(root: string): string[] {
  const paths: string[] = [];
  const dir = (path: string, mode = 0o755): void => {
    mkdirSync(join(root, path));
    chmodSync(join(root, path), mode);
    paths.push(path);
  };
  const file = (path: string, content: Buffer | string, mode = 0o644): void => {
    writeFileSync(join(root, path), content);
    chmodSync(join(root, path), mode);
    paths.push(path);
  };
  const pattern = (size: number, seed: number): Buffer => {
    const out = Buffer.alloc(size);
    let state = seed;
    for (let i = 0; i < size; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      out[i] = (state >>> 16) & 0xff;
    }
    return out;
  };
  dir('bin');
  file('bin/tool', pattern(300 * 1024 + 17, 1), 0o755);
  file('bin/setuid', 'x', 0o4755);
  symlinkSync('tool', join(root, 'bin/link-to-tool'));
  paths.push('bin/link-to-tool');
  linkSync(join(root, 'bin/tool'), join(root, 'bin/hard-tool'));
  paths.push('bin/hard-tool');
  dir('etc');
  file('etc/empty', '');
  file('etc/block', pattern(512, 2));
  file('etc/block-and-one', pattern(513, 3));
  file('etc/motd', 'hello from the pinned tree\n');
  file('etc/sticky-mode', 'sticky', 0o1600);
  dir('tmp', 0o1777);
  const deep = 'd'.repeat(60) + '/' + 'e'.repeat(60);
  mkdirSync(join(root, deep), { recursive: true });
  paths.push('d'.repeat(60), deep);
  file(`${deep}/name-that-needs-the-ustar-prefix-field.txt`, 'prefix');
  const long = 'l'.repeat(200);
  mkdirSync(join(root, long.slice(0, 100), long.slice(100)), { recursive: true });
  paths.push(long.slice(0, 100), `${long.slice(0, 100)}/${long.slice(100)}`);
  file(`${long.slice(0, 100)}/${long.slice(100)}/${'n'.repeat(120)}`, 'pax path');
  symlinkSync('t'.repeat(150), join(root, 'etc/long-link'));
  paths.push('etc/long-link');
  file('etc/ação-ünïcode.txt', 'utf-8 name');
  execFileSync('mkfifo', [join(root, 'etc/fifo')]);
  paths.push('etc/fifo');
  file('etc/owned', 'by 1234:5678');
  lchownSync(join(root, 'etc/owned'), 1234, 5678);
  file('big.bin', pattern(2 * 1024 * 1024 + 100, 4));
  // Distinct, fixed times (directories last: writing into them changed theirs).
  for (const [i, path] of paths.reverse().entries()) {
    const at = T0 + i * 3607;
    if (path.endsWith('link-to-tool') || path.endsWith('long-link')) lutimesSync(join(root, path), at, at);
    else utimesSync(join(root, path), at, at);
  }
  return paths;
}

// As listed by collectTree, or by a TreeWalk (as `load` packs a directory); `headStart` false: every
// entry as the TreeWalk's thread encodes it (with the head start, this small tree is listed whole
// on this thread before the other has started).
async function packedDigest(root: string, mtime?: Date, batch?: number, headStart = true): Promise<string> {
  const hash = createHash('sha256');
  const entries = batch === undefined ? collectTree(root).entries : new TreeWalk(root, { batch, headStart });
  for await (const chunk of packTree(entries, mtime ? { mtime } : {})) hash.update(chunk as Buffer);
  return 'sha256:' + hash.digest('hex');
}

test('a fixture tree packs to the bytes the packer has always written', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'tree');
  mkdirSync(root);
  chmodSync(root, 0o755);
  makeFixtureTree(root);
  assert.equal(await packedDigest(root), 'sha256:086817403948f77997267f884d5846f8a6f74bed83b7871ceea0873576053684', 'each entry with its own mtime');
  assert.equal(await packedDigest(root, new Date(0)), 'sha256:4cc119b36da1fe8a11667ef2522f9ba8af30b141e3730f0941445a4bb115be44', 'every entry at the epoch (as a put packs)');
  // Listed on another thread, in batches of 1, 3 and 512 entries (symlinks on both sides of a batch edge).
  for (const batch of [1, 3, 512]) {
    assert.equal(await packedDigest(root, undefined, batch), 'sha256:086817403948f77997267f884d5846f8a6f74bed83b7871ceea0873576053684', `listed by a TreeWalk, batches of ${batch}`);
    assert.equal(await packedDigest(root, undefined, batch, false), 'sha256:086817403948f77997267f884d5846f8a6f74bed83b7871ceea0873576053684', `listed by a TreeWalk's thread alone, batches of ${batch}`);
  }
  assert.equal(await packedDigest(root, new Date(0), 2), 'sha256:4cc119b36da1fe8a11667ef2522f9ba8af30b141e3730f0941445a4bb115be44', 'listed by a TreeWalk, at the epoch');
  assert.equal(await packedDigest(root, new Date(0), 2, false), 'sha256:4cc119b36da1fe8a11667ef2522f9ba8af30b141e3730f0941445a4bb115be44', "listed by a TreeWalk's thread alone, at the epoch");
});

test('a TreeWalk fails as collectTree does: a symlink out of the tree, a root that is not there', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'tree');
  mkdirSync(join(root, 'a/b'), { recursive: true });
  for (let i = 0; i < 20; i++) writeFileSync(join(root, `a/f${i}`), 'x');
  symlinkSync('../../../etc/passwd', join(root, 'a/b/escape'));
  const drain = async (entries: TreeWalk): Promise<void> => {
    for await (const chunk of packTree(entries)) void chunk;
  };
  assert.throws(() => collectTree(root), /symlink "a\/b\/escape" -> "..\/..\/..\/etc\/passwd" points outside the rootfs/);
  await assert.rejects(drain(new TreeWalk(root, { batch: 4 })), (error: unknown) => error instanceof TreeWalkError && /symlink "a\/b\/escape" -> "..\/..\/..\/etc\/passwd" points outside the rootfs/.test(error.message));
  await assert.rejects(drain(new TreeWalk(join(dir, 'missing'))), (error: unknown) => error instanceof TreeWalkError && error.code === 'ENOENT' && error.path === join(dir, 'missing'));
});

// The first entries are listed here while the thread starts, then dropped from its list: a tree
// changed in between fails the pack instead of giving an entry twice or not at all.
test('a TreeWalk whose tree changes between its two listings fails, naming the entry', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'tree');
  mkdirSync(root);
  for (const name of ['a', 'b', 'c']) writeFileSync(join(root, name), name);
  const walk = new TreeWalk(root);
  const first = walk.next();
  assert.equal(typeof first === 'object' && first.path, 'a', 'listed here, before the thread has started');
  renameSync(join(root, 'a'), join(root, 'a2'));
  await assert.rejects(async () => {
    for await (const chunk of packTree(walk)) void chunk;
  }, (error: unknown) => error instanceof TreeWalkError && /changed while being listed: "a" was listed, then "a2" in its place/.test(error.message));
});

// chunk-end-grows: header + content end exactly at the 1 MiB chunk's end, so the growth check is a read of its own.
test('a file that grows or shrinks between listing and packing fails the pack, naming the file', async (t) => {
  const dir = await tempDir(t);
  for (const [name, size, change] of [['small-grows', 1000, 1001], ['small-shrinks', 1000, 999], ['big-grows', 3 * 1024 * 1024, 3 * 1024 * 1024 + 1], ['big-shrinks', 3 * 1024 * 1024, 2 * 1024 * 1024], ['chunk-end-grows', 1024 * 1024 - 512, 1024 * 1024]] as const) {
    const root = join(dir, name);
    mkdirSync(root);
    writeFileSync(join(root, 'f'), Buffer.alloc(size, 1));
    const { entries } = collectTree(root);
    writeFileSync(join(root, 'f'), Buffer.alloc(change, 1));
    await assert.rejects(async () => {
      for await (const chunk of packTree(entries)) void chunk;
    }, new RegExp(`${name}/f changed size while being packed`), name);
  }
});
