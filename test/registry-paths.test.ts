import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRange } from '../src/registry/blobs.js';
import { parseV2Path } from '../src/registry/paths.js';
import { parseHtpasswd } from '../src/registry/auth.js';
import { parseListen } from '../src/cli/serve.js';

const D = 'sha256:aa48215cf55ff8cc1922a87e696d659944c1aaf0502097800a4cc8cfa23d2bcb';

// [tail after /v2/, expected kind, name, reference | error code]
const PATHS: [string, string, string?, string?][] = [
  ['busybox/manifests/1', 'manifests', 'busybox', '1'],
  [`busybox/manifests/${D}`, 'manifests', 'busybox', D],
  [`busybox/manifests/sha256%3A${D.slice(7)}`, 'manifests', 'busybox', D],
  ['library/busybox/manifests/latest', 'manifests', 'library/busybox', 'latest'],
  ['a/b/c/d/manifests/v1.0_rc-2', 'manifests', 'a/b/c/d', 'v1.0_rc-2'],
  // Read from the end: components named like route words are still names.
  ['manifests/manifests/1', 'manifests', 'manifests', '1'],
  ['x/manifests/tags/blobs/' + D, 'blobs', 'x/manifests/tags', D],
  ['busybox/tags/tags/list', 'tags', 'busybox/tags'],
  [`busybox/blobs/${D}`, 'blobs', 'busybox', D],
  [`busybox/referrers/${D}`, 'referrers', 'busybox', D],
  ['busybox/tags/list', 'tags', 'busybox'],
  ['my-org/my_app__x/tags/list', 'tags', 'my-org/my_app__x'],
  // Not routes of the API.
  ['busybox/tags/lists', 'none'],
  ['busybox/blobs/uploads/', 'none'],
  ['busybox/blobs/uploads/123', 'none'],
  ['busybox', 'none'],
  ['', 'none'],
  ['manifests/1', 'none'],
  ['../../etc/passwd', 'none'],
  // Names.
  ['Busybox/manifests/1', 'error', undefined, 'NAME_INVALID'],
  ['..%2f..%2fetc/manifests/1', 'error', undefined, 'NAME_INVALID'],
  ['../manifests/1', 'error', undefined, 'NAME_INVALID'],
  ['a/../b/manifests/1', 'error', undefined, 'NAME_INVALID'],
  ['%2e%2e/manifests/1', 'error', undefined, 'NAME_INVALID'],
  ['a%2fb/manifests/1', 'error', undefined, 'NAME_INVALID'],
  ['a%00/manifests/1', 'error', undefined, 'NAME_INVALID'],
  ['/busybox/manifests/1', 'error', undefined, 'NAME_INVALID'],
  ['a//b/manifests/1', 'error', undefined, 'NAME_INVALID'],
  ['.blobs/blobs/' + D, 'error', undefined, 'NAME_INVALID'],
  ['busybox/blobs/blobs/' + D, 'error', undefined, 'NAME_INVALID'],
  ['_catalog/tags/list', 'error', undefined, 'NAME_INVALID'],
  ['%zz/manifests/1', 'error', undefined, 'NAME_INVALID'],
  [`${'a'.repeat(256)}/manifests/1`, 'error', undefined, 'NAME_INVALID'],
  [`${'a/'.repeat(600)}manifests/1`, 'error', undefined, 'NAME_INVALID'],
  // References.
  ['busybox/manifests/-bad', 'error', undefined, 'MANIFEST_UNKNOWN'],
  ['busybox/manifests/1%00', 'error', undefined, 'MANIFEST_UNKNOWN'],
  [`busybox/manifests/${'t'.repeat(129)}`, 'error', undefined, 'MANIFEST_UNKNOWN'],
  ['busybox/manifests/sha256:baddigeststring', 'error', undefined, 'DIGEST_INVALID'],
  ['busybox/blobs/sha256:baddigeststring', 'error', undefined, 'DIGEST_INVALID'],
  ['busybox/blobs/latest', 'error', undefined, 'DIGEST_INVALID'],
  [`busybox/blobs/${D.toUpperCase()}`, 'error', undefined, 'DIGEST_INVALID'],
  [`busybox/blobs/sha512:${'ab'.repeat(64)}`, 'error', undefined, 'DIGEST_INVALID'],
  [`busybox/blobs/md5:${'ab'.repeat(16)}`, 'error', undefined, 'DIGEST_INVALID'],
  [`busybox/blobs/sha256:../../${'a'.repeat(58)}`, 'none'],
  [`busybox/blobs/sha256%3a..%2f..%2fx`, 'error', undefined, 'DIGEST_INVALID'],
  ['busybox/referrers/latest', 'error', undefined, 'DIGEST_INVALID'],
];

test('parseV2Path reads routes from the end and validates names and digests first', () => {
  for (const [tail, kind, name, expected] of PATHS) {
    const parsed = parseV2Path(tail);
    assert.equal(parsed.kind, kind, `kind of ${tail}`);
    if (parsed.kind === 'error') {
      assert.equal(parsed.error.code, expected, `error of ${tail}`);
    } else if (parsed.kind !== 'none') {
      assert.equal(parsed.name, name, `name of ${tail}`);
      assert.equal(parsed.reference, expected, `reference of ${tail}`);
    }
  }
});

// [Range header, size, expected]
const RANGES: [string | undefined, number, ReturnType<typeof parseRange>][] = [
  [undefined, 100, undefined],
  ['bytes=0-9', 100, { start: 0, end: 9 }],
  ['bytes=90-', 100, { start: 90, end: 99 }],
  ['bytes=90-1000', 100, { start: 90, end: 99 }],
  ['bytes=-10', 100, { start: 90, end: 99 }],
  ['bytes=-1000', 100, { start: 0, end: 99 }],
  ['bytes=99-99', 100, { start: 99, end: 99 }],
  ['bytes=100-', 100, 'unsatisfiable'],
  ['bytes=100-200', 100, 'unsatisfiable'],
  ['bytes=-0', 100, 'unsatisfiable'],
  ['bytes=0-', 0, 'unsatisfiable'],
  ['bytes=-5', 0, 'unsatisfiable'],
  // Ignored (whole body): bad syntax, other units, several ranges.
  ['bytes=9-0', 100, undefined],
  ['bytes=-', 100, undefined],
  ['bytes=a-b', 100, undefined],
  ['items=0-9', 100, undefined],
  ['bytes=0-1,5-6', 100, undefined],
];

test('parseRange follows RFC 9110 for a single range', () => {
  for (const [header, size, expected] of RANGES) assert.deepEqual(parseRange(header, size), expected, `${header} of ${size}`);
});

test('parseHtpasswd takes bcrypt entries only and names the bad line', () => {
  const hash = '$2y$05$' + 'a'.repeat(53);
  const users = parseHtpasswd(`# users\nalice:${hash}\n\nbob:${hash.replace('$2y$', '$2b$')}\n`, 'h');
  assert.deepEqual([...users.keys()], ['alice', 'bob']);
  assert.throws(() => parseHtpasswd('carol:$apr1$abc$def\n', 'h'), /h:1: user "carol" has no bcrypt hash/);
  assert.throws(() => parseHtpasswd(`ok:${hash}\nno-colon\n`, 'h'), /h:2: expected "user:bcrypt-hash"/);
  assert.throws(() => parseHtpasswd('# nothing\n', 'h'), /h: no users/);
});

test('parseListen accepts HOST:PORT, [IPv6]:PORT and :PORT', () => {
  assert.deepEqual(parseListen('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseListen('0.0.0.0:5000'), { host: '0.0.0.0', port: 5000 });
  assert.deepEqual(parseListen('[::1]:5000'), { host: '::1', port: 5000 });
  assert.deepEqual(parseListen(':5000'), { host: '0.0.0.0', port: 5000 });
  assert.deepEqual(parseListen('localhost:80'), { host: 'localhost', port: 80 });
  for (const bad of ['5000', '127.0.0.1', '127.0.0.1:70000', '::1:5000', 'host:port']) assert.throws(() => parseListen(bad), /is not HOST:PORT/, bad);
});
