import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, cartorio, tempDir } from './helpers/cli.js';

// A store argument shaped like a URL is that object store or one clear error, never a relative
// path: `load --store gs://reg/images` once "succeeded" by writing ./gs:/reg/images.
const COMMANDS: { name: string; args: string[] }[] = [
  { name: 'load', args: ['load', join(FIXTURES, 'busybox-oci.tar')] },
  { name: 'serve', args: ['serve', '--listen', '127.0.0.1:0'] },
  { name: 'list', args: ['list'] },
  { name: 'verify', args: ['verify'] },
  { name: 'mirror-config', args: ['mirror-config', '--registry', '127.0.0.1:5000'] },
];

const REFUSED: { store: string; says: RegExp }[] = [
  { store: 'gs://reg/images', says: /gs:\/\/ \(Google Cloud Storage\) is not a store cartorio can use/ },
  { store: 'azblob://reg/images', says: /azblob:\/\/ \(Azure Blob Storage\) is not a store/ },
  { store: 'http://127.0.0.1:9/reg', says: /http:\/\/ \(an HTTP URL\) is not a store/ },
  { store: 'HTTPS://example.com/reg', says: /https:\/\/ \(an HTTPS URL\) is not a store/ },
  { store: 'file:///srv/images', says: /file:\/\/ \(a file: URL\)/ },
  { store: 'foo+bar://x/y', says: /foo\+bar:\/\/ is not a kind of store cartorio knows/ },
  { store: 's3://Reg_Images/x', says: /"Reg_Images" is not a bucket name/ },
  { store: 's3://key:secret@reg/x', says: /keys do not go in the URL/ },
  { store: 's3://reg/a//b', says: /has an empty, \. or \.\. part/ },
  { store: 's3://reg/x?region=eu', says: /unknown option "region"/ },
];

for (const { name, args } of COMMANDS) {
  test(`${name}: a URL store is refused in one line, by --store and by $CARTORIO_STORE, and nothing is written`, async (t) => {
    const cwd = await tempDir(t);
    for (const { store, says } of REFUSED) {
      for (const how of ['flag', 'env'] as const) {
        const result = how === 'flag'
          ? await cartorio([...args, '--store', store], { cwd })
          : await cartorio(args, { cwd, env: { ...process.env, CARTORIO_STORE: store } });
        const what = `${name} ${how} ${store}`;
        assert.equal(result.code, 1, `${what}: ${result.stderr}`);
        const lines = result.stderr.trimEnd().split('\n');
        assert.match(lines[0] ?? '', new RegExp(`^cartorio ${name}: store "${store.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}": `), what);
        assert.match(lines[0] ?? '', says, what);
        assert.ok(lines.length <= 2 && (lines[1] === undefined || lines[1].startsWith('  hint: ')), `${what}: ${result.stderr}`);
        assert.equal(result.stdout, '', what);
        assert.deepEqual(await readdir(cwd), [], `${what} wrote into the working directory`);
      }
    }
  });
}
