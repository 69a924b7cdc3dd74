import assert from 'node:assert/strict';
import { lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { RootfsWriter } from '../src/resource/extract.js';
import { readAdditionalTags, resolveImagePath } from '../src/resource/image-path.js';
import { validateCheckRequest, validateInRequest, validateOutRequest } from '../src/resource/schema.js';
import { launcherScript } from '../src/resource/server-bundle.js';
import { ROOT, tempDir } from './helpers/cli.js';
import { snapshotTree } from './helpers/snapshot.js';
import { writeTar, type TarEntry } from './helpers/tars.js';

const DIGEST = 'sha256:' + 'a'.repeat(64);
const FILE_SOURCE = { repository: 'app', store: { type: 'file', path: '/srv/store' } };
const REGISTRY_SOURCE = { repository: 'org/app', tag: '1.0', store: { type: 'registry', url: 'https://r.example', username: 'u', password: 'p', insecure: false, ca_certs: ['PEM'] }, platform: 'linux/arm64/v8', debug: true };

test('payloads Concourse sends are accepted', () => {
  assert.deepEqual(validateCheckRequest({ source: FILE_SOURCE }), { source: FILE_SOURCE });
  assert.ok(validateCheckRequest({ source: REGISTRY_SOURCE, version: null }));
  assert.ok(validateCheckRequest({ source: REGISTRY_SOURCE, version: { digest: DIGEST } }));
  assert.ok(validateInRequest({ source: FILE_SOURCE, version: { digest: DIGEST, tag: 'latest' }, params: { format: 'rootfs', skip_download: false, bundle_server: true } }));
  assert.ok(validateInRequest({ source: FILE_SOURCE, version: { digest: DIGEST }, params: null }));
  assert.ok(validateOutRequest({ source: FILE_SOURCE, params: { image: 'image/image.tar', additional_tags: ['a', 'b_1.2'] } }));
  assert.ok(validateOutRequest({ source: FILE_SOURCE, params: { image: 'image', additional_tags: 'version/tags', format: 'concourse-rootfs' } }));
  const bucket = { type: 's3', bucket: 'ci-images', prefix: 'team/a', endpoint: 'rgw.example:7480', disable_ssl: true, region_name: 'eu-1', access_key_id: 'k', secret_access_key: 's', session_token: 't', path_style: true, single_writer: false, ca_certs: ['PEM'] };
  assert.ok(validateCheckRequest({ source: { repository: 'ci/app', store: bucket } }));
});

// One line each, naming the JSON path of the bad value and, for unknown keys, the allowed ones.
const REJECTED: [string, (data: unknown) => unknown, unknown, string][] = [
  ['missing source', validateCheckRequest, {}, 'invalid payload: missing required key "source"'],
  ['unknown top-level key', validateCheckRequest, { source: FILE_SOURCE, sauce: 1 }, 'invalid payload: unknown key "sauce" (allowed: source, version)'],
  ['unknown source key', validateCheckRequest, { source: { ...FILE_SOURCE, reposit: 'x' } }, 'invalid payload: /source: unknown key "reposit" (allowed: repository, tag, store, username, password, insecure, ca_certs, platform, debug)'],
  ['missing repository', validateCheckRequest, { source: { store: FILE_SOURCE.store } }, 'invalid payload: /source: missing required key "repository"'],
  // Every problem at once, each once: a user fixes a payload in one round, not one error per run.
  ['no repository and an unknown key', validateCheckRequest, { source: { store: FILE_SOURCE.store, colour: 'blue' } }, 'invalid payload: /source: missing required key "repository"; /source: unknown key "colour" (allowed: repository, tag, store, username, password, insecure, ca_certs, platform, debug)'],
  ['a store without url and a bad tag', validateCheckRequest, { source: { repository: 'app', tag: '-x', store: { type: 'registry' } } }, 'invalid payload: /source/tag "-x" is not valid: a tag is letters, digits, _ . -, at most 128, not starting with . or -; /source/store: missing required key "url"'],
  ['more problems than shown', validateCheckRequest, { source: { repository: 'app', a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, h: 1, i: 1, j: 1 } }, `invalid payload: ${'abcdefgh'.split('').map((k) => `/source: unknown key "${k}" (allowed: repository, tag, store, username, password, insecure, ca_certs, platform, debug)`).join('; ')}; and 2 more problems`],
  ['store without type', validateCheckRequest, { source: { repository: 'app', store: { path: '/x' } } }, 'invalid payload: /source/store: missing required key "type"'],
  ['store of unknown type', validateCheckRequest, { source: { repository: 'app', store: { type: 'gcs' } } }, 'invalid payload: /source/store/type must be one of "registry", "file", "s3"'],
  ['bucket store without bucket', validateCheckRequest, { source: { repository: 'app', store: { type: 's3', endpoint: 'rgw:7480' } } }, 'invalid payload: /source/store: missing required key "bucket"'],
  ['bucket that is no bucket name', validateCheckRequest, { source: { repository: 'app', store: { type: 's3', bucket: 'My_Bucket' } } }, 'invalid payload: /source/store/bucket "My_Bucket" is not valid: a bucket name is 3–63 lower-case letters, digits, dots and hyphens'],
  ['bucket prefix with a leading slash', validateCheckRequest, { source: { repository: 'app', store: { type: 's3', bucket: 'images', prefix: '/ci' } } }, 'invalid payload: /source/store/prefix "/ci" is not valid: a prefix is a/b/c, with no leading, trailing or doubled slash'],
  ['unknown key in a bucket store', validateCheckRequest, { source: { repository: 'app', store: { type: 's3', bucket: 'images', secret_key: 'x' } } }, 'invalid payload: /source/store: unknown key "secret_key" (allowed: type, bucket, prefix, endpoint, disable_ssl, region_name, access_key_id, secret_access_key, session_token, path_style, single_writer, ca_certs)'],
  ['unknown key in a file store', validateCheckRequest, { source: { repository: 'app', store: { type: 'file', path: '/x', url: 'y' } } }, 'invalid payload: /source/store: unknown key "url" (allowed: type, path)'],
  ['unknown key in a registry store', validateCheckRequest, { source: { repository: 'app', store: { type: 'registry', url: 'r', user: 'u' } } }, 'invalid payload: /source/store: unknown key "user" (allowed: type, url, username, password, insecure, ca_certs)'],
  ['registry store without url', validateCheckRequest, { source: { repository: 'app', store: { type: 'registry' } } }, 'invalid payload: /source/store: missing required key "url"'],
  ['insecure as a string', validateCheckRequest, { source: { repository: 'app', store: { type: 'registry', url: 'r', insecure: 'true' } } }, 'invalid payload: /source/store/insecure must be boolean'],
  ['tag as a boolean', validateCheckRequest, { source: { ...FILE_SOURCE, tag: true } }, 'invalid payload: /source/tag must be string'],
  ['platform with an unknown key', validateCheckRequest, { source: { ...FILE_SOURCE, platform: { os: 'linux', arch: 'arm64' } } }, 'invalid payload: /source/platform: unknown key "arch" (allowed: os, architecture, variant)'],
  ['bad tag', validateCheckRequest, { source: { ...FILE_SOURCE, tag: '-x' } }, 'invalid payload: /source/tag "-x" is not valid: a tag is letters, digits, _ . -, at most 128, not starting with . or -'],
  ['bad platform', validateCheckRequest, { source: { ...FILE_SOURCE, platform: 'amd64' } }, 'invalid payload: /source/platform "amd64" is not valid: expected os/arch or os/arch/variant, e.g. linux/amd64'],
  ['version digest as a number', validateCheckRequest, { source: FILE_SOURCE, version: { digest: 5 } }, 'invalid payload: /version/digest must be string'],
  ['version with an unknown key', validateCheckRequest, { source: FILE_SOURCE, version: { digest: DIGEST, ref: 'x' } }, 'invalid payload: /version: unknown key "ref" (allowed: digest, tag)'],
  ['version without digest', validateCheckRequest, { source: FILE_SOURCE, version: {} }, 'invalid payload: /version: missing required key "digest"'],
  ['malformed digest', validateInRequest, { source: FILE_SOURCE, version: { digest: 'sha256:xyz' } }, 'invalid payload: /version/digest "sha256:xyz" is not valid: expected sha256:<64 hex digits>'],
  ['in without version', validateInRequest, { source: FILE_SOURCE }, 'invalid payload: missing required key "version"'],
  ['unknown get param', validateInRequest, { source: FILE_SOURCE, version: { digest: DIGEST }, params: { unpack: true } }, 'invalid payload: /params: unknown key "unpack" (allowed: format, skip_download, bundle_server)'],
  ['unknown get format', validateInRequest, { source: FILE_SOURCE, version: { digest: DIGEST }, params: { format: 'tar' } }, 'invalid payload: /params/format must be one of "oci", "oci-layout", "rootfs"'],
  ['out without params', validateOutRequest, { source: FILE_SOURCE }, 'invalid payload: missing required key "params"'],
  ['out without image', validateOutRequest, { source: FILE_SOURCE, params: {} }, 'invalid payload: /params: missing required key "image"'],
  ['image as a list', validateOutRequest, { source: FILE_SOURCE, params: { image: ['a'] } }, 'invalid payload: /params/image must be string'],
  ['bad additional tag', validateOutRequest, { source: FILE_SOURCE, params: { image: 'a', additional_tags: ['ok', 'not ok'] } }, 'invalid payload: /params/additional_tags/1 "not ok" is not valid: a tag is letters, digits, _ . -, at most 128, not starting with . or -'],
  ['additional tags as a number', validateOutRequest, { source: FILE_SOURCE, params: { image: 'a', additional_tags: 3 } }, 'invalid payload: /params/additional_tags must be array'],
];

test('bad payloads are rejected with the path of the bad value', async (t) => {
  for (const [label, validate, payload, message] of REJECTED) {
    await t.test(label, () => assert.throws(() => validate(payload), { message }));
  }
});

test('params.image: a path or a glob below the directory, matching exactly one path', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'image', 'rootfs'), { recursive: true });
  await writeFile(join(dir, 'image', 'metadata.json'), '{}');
  await mkdir(join(dir, 'build'), { recursive: true });
  await writeFile(join(dir, 'build', 'app-1.2.tar'), '');
  await writeFile(join(dir, 'build', 'app-1.3.tar'), '');
  await writeFile(join(dir, 'build', '.hidden.tar'), '');
  assert.equal(await resolveImagePath(dir, 'image'), join(dir, 'image'));
  assert.equal(await resolveImagePath(dir, './image/'), join(dir, 'image'));
  assert.equal(await resolveImagePath(dir, 'im*'), join(dir, 'image'));
  assert.equal(await resolveImagePath(dir, 'build/app-1.[2]*.tar'), join(dir, 'build', 'app-1.2.tar'));
  assert.equal(await resolveImagePath(dir, '*/app-?.3.tar'), join(dir, 'build', 'app-1.3.tar'));
  await assert.rejects(resolveImagePath(dir, 'nothing*'), { message: `params.image "nothing*" matches nothing in ${dir}` });
  await assert.rejects(resolveImagePath(dir, 'missing'), { message: `params.image "missing" matches nothing in ${dir}` });
  await assert.rejects(resolveImagePath(dir, 'build/*.tar'), { message: 'params.image "build/*.tar" matches 2 paths (build/app-1.2.tar, build/app-1.3.tar); it must match exactly one' });
});

test('params.additional_tags: a list, or a file of whitespace-separated tags', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'tags'), '1.2.3  1.2\n1\n');
  await writeFile(join(dir, 'bad-tags'), 'ok -no\n');
  assert.deepEqual(await readAdditionalTags(dir, undefined), []);
  assert.deepEqual(await readAdditionalTags(dir, ['a']), ['a']);
  assert.deepEqual(await readAdditionalTags(dir, 'tags'), ['1.2.3', '1.2', '1']);
  await assert.rejects(readAdditionalTags(dir, 'bad-tags'), /params.additional_tags file "bad-tags": "-no" is not a valid tag/);
  await assert.rejects(readAdditionalTags(dir, 'absent'), { message: 'params.additional_tags file "absent": no such file' });
});

test('the bundle_server launcher runs node through its own loader, from wherever it is called', () => {
  const script = launcherScript('ld-linux-x86-64.so.2');
  assert.match(script, /^#!\/bin\/sh\n/);
  assert.match(script, /exec "\$r\/lib\/ld-linux-x86-64.so.2" --library-path "\$r\/lib" "\$r\/node" --max-semi-space-size=4 "\$r\/dist\/src\/cli\/main.mjs" "\$@"/);
  assert.match(launcherScript(undefined), /exec "\$r\/node" --max-semi-space-size=4 "\$r\/dist\/src\/cli\/main.mjs" "\$@"/);
  // one serving process in a task unless the task sets CARTORIO_WORKERS
  assert.match(script, /\nexport CARTORIO_WORKERS="\$\{CARTORIO_WORKERS:-1\}"\nexec /);
});

// Layers are hand-built (tars.ts, fixed mtimes) for the cases real tools do not make on purpose.
async function applyLayers(t: { after: (fn: () => Promise<void>) => void }, layers: TarEntry[][]): Promise<{ root: string; outside: string; error?: Error }> {
  const dir = await tempDir(t);
  const root = join(dir, 'rootfs');
  const outside = join(dir, 'outside');
  await mkdir(root);
  await mkdir(outside);
  const writer = new RootfsWriter(root, { preserveOwnership: false });
  try {
    for (const [i, entries] of layers.entries()) {
      const path = join(dir, `layer-${i}.tar${i % 2 ? '.gz' : ''}`);
      await writeTar(path, entries, i % 2 === 1);
      await writer.applyLayerFile(path, `layer ${i}`);
    }
    await writer.finish();
    return { root, outside };
  } catch (error) {
    return { root, outside, error: error as Error };
  }
}

test('rootfs: layers apply in order with whiteouts and opaque directories', async (t) => {
  const { root, error } = await applyLayers(t, [
    [
      { name: 'etc/', type: 'directory' },
      { name: 'etc/keep', content: 'keep' },
      { name: 'etc/gone', content: 'gone' },
      { name: 'var/cache/', type: 'directory' },
      { name: 'var/cache/old', content: 'old' },
      { name: 'var/cache/sub/deep', content: 'deep' },
      { name: 'bin/tool', content: 'v1' },
      { name: 'bin/alias', type: 'symlink', linkname: 'tool' },
      { name: 'bin/hard', type: 'link', linkname: 'bin/tool' },
      { name: 'dir-to-file/x', content: 'x' },
    ],
    [
      { name: 'etc/.wh.gone' },
      { name: 'var/cache/new', content: 'new' },
      { name: 'var/cache/.wh..wh..opq' },
      { name: 'var/cache/newer', content: 'newer' },
      { name: 'bin/tool', content: 'v2' },
      { name: 'dir-to-file', content: 'now a file' },
      { name: 'dev/null', type: 'character-device' },
      { name: '.wh..wh.plnk/', type: 'directory' },
      { name: '.wh..wh.plnk/1234.5', content: 'aufs hard link store' },
    ],
  ]);
  assert.equal(error, undefined);
  assert.deepEqual((await snapshotTree(root)).map((line) => line.replace(/ [0-9a-f]{64}$/, '')), [
    'd bin 755',
    'l bin/alias -> tool',
    'f bin/hard 644 2',
    'f bin/tool 644 2',
    'd dev 755',
    'f dir-to-file 644 10',
    'd etc 755',
    'f etc/keep 644 4',
    'd var 755',
    'd var/cache 755',
    'f var/cache/new 644 3',
    'f var/cache/newer 644 5',
  ]);
  assert.equal(await readFile(join(root, 'bin', 'tool'), 'utf8'), 'v2');
  // A new file replaces the old one; the hard link keeps the old content (tar unlinks first).
  assert.equal(await readFile(join(root, 'bin', 'hard'), 'utf8'), 'v1');
  assert.equal((await lstat(join(root, 'etc', 'keep'))).mtime.toISOString(), '2000-01-01T00:00:00.000Z');
});

test('rootfs: nothing is written outside the root', async (t) => {
  const cases: [string, TarEntry[][], RegExp | undefined][] = [
    ['a name climbing out', [[{ name: '../escape', content: 'x' }]], /entry "..\/escape" climbs out of the archive with ".."/],
    ['an absolute name', [[{ name: '/abs', content: 'x' }]], /entry "\/abs" has an absolute path/],
    ['a relative symlink pointing above the root', [[{ name: 'up', type: 'symlink', linkname: '../../outside' }]], /symlink "up" -> "..\/..\/outside" points outside the rootfs/],
    ['a hard link to a path outside', [[{ name: 'h', type: 'link', linkname: '../outside/secret' }]], /hard link "h" -> "..\/outside\/secret"/],
    ['a hard link to nothing', [[{ name: 'h', type: 'link', linkname: 'absent' }]], /the target is not in the layers so far/],
  ];
  for (const [label, layers, expected] of cases) {
    await t.test(label, async (st) => {
      const { outside, error } = await applyLayers(st, layers);
      assert.match(error?.message ?? 'no error', expected as RegExp);
      assert.deepEqual(await readdir(outside), []);
    });
  }

  await t.test('an absolute symlink, then files written through it, stay inside (resolved as in a chroot)', async (st) => {
    const dir = await tempDir(st);
    const outsideAbs = join(dir, 'host-etc');
    await mkdir(outsideAbs);
    const { root, error } = await applyLayers(st, [
      [{ name: 'etc', type: 'symlink', linkname: outsideAbs }, { name: 'lib', type: 'symlink', linkname: 'usr/lib' }, { name: 'sneaky', type: 'symlink', linkname: '/' }],
      [{ name: 'etc/passwd', content: 'root' }, { name: 'lib/libx.so', content: 'lib' }, { name: 'sneaky/x', content: 'x' }],
      [{ name: 'etc/.wh.passwd' }, { name: 'h', type: 'link', linkname: 'lib/libx.so' }],
    ]);
    assert.equal(error?.message, undefined);
    assert.deepEqual(await readdir(outsideAbs), [], 'the host directory the link names is untouched');
    assert.equal(await readFile(join(root, outsideAbs.slice(1), 'passwd'), 'utf8').catch(() => 'whited out'), 'whited out');
    assert.equal(await readFile(join(root, 'usr', 'lib', 'libx.so'), 'utf8'), 'lib');
    assert.equal(await readFile(join(root, 'x'), 'utf8'), 'x');
    assert.equal(await readFile(join(root, 'h'), 'utf8'), 'lib');
  });

  await t.test('a symlink already on disk is replaced, never written through', async (st) => {
    const { root, outside, error } = await applyLayers(st, [[{ name: 'f', type: 'symlink', linkname: '/etc/shadow' }], [{ name: 'f', content: 'mine' }]]);
    assert.equal(error, undefined);
    assert.equal(await readFile(join(root, 'f'), 'utf8'), 'mine');
    assert.deepEqual(await readdir(outside), []);
  });
});

test('rootfs: a layer ending right after its last content (as umoci writes them) applies; cut content does not', async (t) => {
  const dir = await tempDir(t);
  const full = join(dir, 'full.tar');
  await writeTar(full, [{ name: 'etc/motd', content: 'hello from a layer' }]);
  const bytes = await readFile(full);
  const unpadded = join(dir, 'unpadded.tar');
  await writeFile(unpadded, bytes.subarray(0, 512 + 18));
  const cut = join(dir, 'cut.tar');
  await writeFile(cut, bytes.subarray(0, 512 + 10));
  const root = join(dir, 'root');
  await mkdir(root);
  const writer = new RootfsWriter(root, { preserveOwnership: false });
  await writer.applyLayerFile(unpadded, 'unpadded');
  assert.equal(await readFile(join(root, 'etc', 'motd'), 'utf8'), 'hello from a layer');
  await assert.rejects(writer.applyLayerFile(cut, 'cut'), { message: 'cut: Unexpected end of data' });
});

// STYLE §1: the resource uses client, store, formats and image, never registry or cli.
test('src/resource imports only client, store, formats, image, its libraries and node:', async () => {
  const dir = join(ROOT, 'src', 'resource');
  for (const file of await readdir(dir)) {
    const source = await readFile(join(dir, file), 'utf8');
    for (const [, specifier = ''] of source.matchAll(/^(?:import|export) [^;]*? from '([^']+)';$/gm)) {
      const allowed = specifier.startsWith('node:') || specifier.startsWith('./') || ['ajv', 'json-schema-to-ts', 'tar-stream'].includes(specifier)
        || ['../client/', '../store/', '../formats/', '../image/'].some((prefix) => specifier.startsWith(prefix));
      assert.ok(allowed, `${file} imports ${specifier}`);
    }
    assert.doesNotMatch(source, /process\.(argv|env|exit)\b/, `${file} touches process.argv/env/exit`);
  }
});
