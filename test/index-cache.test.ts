import assert from 'node:assert/strict';
import { cp, mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { MAX_INDEX_BYTES, MAX_INDEX_ENTRIES, SMALLEST_DESCRIPTOR_JSON, imageIndexSchema } from '../src/image/oci.schema.js';
import { compileValidator } from '../src/image/validate.js';
import { buildRegistry } from '../src/registry/app.js';
import { ServedImages } from '../src/store/image-source.js';
import { StoreReader } from '../src/store/reader.js';
import { FIXTURES, tempDir } from './helpers/cli.js';
import { BUSYBOX_1 } from './helpers/registry-store.js';

// A repository's index.json is read and parsed once per version of the file (inode, mtime, size),
// whether it parses or not: a broken 56 MB index.json re-parsed by every request cost each one
// over a second of CPU and slowed every other client.

async function layout(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await cp(join(FIXTURES, 'busybox-oci', 'blobs'), join(dir, 'blobs'), { recursive: true });
  await cp(join(FIXTURES, 'busybox-oci', 'oci-layout'), join(dir, 'oci-layout'));
}

// Replaced by rename, as every writer of a store does: a new inode, so a new version.
async function replaceIndex(dir: string, text: string): Promise<void> {
  await writeFile(join(dir, 'index.json.new'), text);
  await rename(join(dir, 'index.json.new'), join(dir, 'index.json'));
}

const GOOD = JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: BUSYBOX_1, size: 503, annotations: { 'org.opencontainers.image.ref.name': '1' } }] });

test('a broken index.json is parsed once per version of the file, and read again once it changes', async (t) => {
  const root = join(await tempDir(t), 'store');
  const dir = join(root, 'busybox');
  await layout(dir);
  await replaceIndex(dir, GOOD.slice(0, -5));
  const reader = new StoreReader(root);
  const failure = async (): Promise<Error> => {
    const error = await reader.repository('busybox').then(() => undefined, (caught: unknown) => caught);
    assert.ok(error instanceof Error, 'a broken index.json is an error');
    return error;
  };
  const first = await failure();
  assert.match(first.message, /index\.json: not valid JSON/);
  // The same error object: the failure of this version was kept, the file not read again.
  for (let i = 0; i < 5; i++) assert.equal(await failure(), first);

  // Over HTTP too: every request is answered from the one failed read, and stays a 500.
  const logs: string[] = [];
  const app = buildRegistry({ images: new ServedImages([reader]), logger: { level: 'error', stream: { write: (line: string) => void logs.push(line) } } });
  t.after(() => app.close());
  for (let i = 0; i < 3; i++) assert.equal((await app.inject({ url: '/v2/busybox/manifests/1' })).statusCode, 500);
  assert.equal(await failure(), first);

  // A fixed file is a new version: read again, and served.
  await replaceIndex(dir, GOOD);
  assert.deepEqual((await reader.repository('busybox'))?.tags, ['1']);
  assert.equal((await app.inject({ url: '/v2/busybox/manifests/1' })).statusCode, 200);
  // Broken again, differently (a schema problem, not JSON): a new version, a new error.
  await replaceIndex(dir, JSON.stringify({ schemaVersion: 2, manifests: [{ digest: BUSYBOX_1 }] }));
  const second = await failure();
  assert.notEqual(second, first);
  assert.match(second.message, /invalid index\.json/);
  assert.equal(await failure(), second);
});

test('the byte limit of index.json and the schema\'s limit on its entries agree: under the bytes, never refused for the count', () => {
  const validate = compileValidator(imageIndexSchema, 'index.json');
  // The smallest descriptor the schema accepts: three required keys with their shortest values.
  validate({ schemaVersion: 2, manifests: [JSON.parse(SMALLEST_DESCRIPTOR_JSON)] }, 'smallest');
  for (const shorter of ['{"mediaType":"","digest":"a:","size":0}', '{"mediaType":"","digest":"a","size":0}', '{"digest":"a:b","size":0}']) {
    assert.throws(() => validate({ schemaVersion: 2, manifests: [JSON.parse(shorter)] }, 'shorter'), /invalid index\.json/, shorter);
  }
  // One entry more than the limit, each the smallest there is, with no whitespace: over the bytes.
  const wrapper = JSON.stringify({ schemaVersion: 2, manifests: [] }).length;
  const smallestOver = wrapper + (MAX_INDEX_ENTRIES + 1) * (SMALLEST_DESCRIPTOR_JSON.length + 1) - 1;
  assert.ok(smallestOver > MAX_INDEX_BYTES, `${MAX_INDEX_ENTRIES + 1} entries take at least ${smallestOver} bytes, over ${MAX_INDEX_BYTES}`);
  // And the limit is no lower than it must be: the count that fits under the bytes is refused by nothing.
  const fitting = Math.floor((MAX_INDEX_BYTES - wrapper + 1) / (SMALLEST_DESCRIPTOR_JSON.length + 1));
  assert.ok(fitting <= MAX_INDEX_ENTRIES);
  const many = { schemaVersion: 2, manifests: new Array<unknown>(fitting).fill(JSON.parse(SMALLEST_DESCRIPTOR_JSON)) };
  assert.ok(JSON.stringify(many).length <= MAX_INDEX_BYTES);
  validate(many, 'as many entries as fit');
});
