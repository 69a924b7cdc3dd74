import * as assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseChallenges } from '../src/client/auth.js';
import { nextLink } from '../src/client/registry-client.js';
import { parseRegistryUrl } from '../src/client/registry-url.js';
import { checkReference } from '../src/client/session.js';
import { ROOT } from './helpers/cli.js';
import { covers, scopeSet, scopeStrings } from '../src/client/scopes.js';

test('parseRegistryUrl', () => {
  const cases: Array<[string, boolean, string]> = [
    ['http://127.0.0.1:5001', false, 'http://127.0.0.1:5001'],
    ['https://host:5000/', false, 'https://host:5000'],
    ['https://host:5000/v2/', false, 'https://host:5000'],
    ['host:5000', false, 'https://host:5000'],
    ['host:5000', true, 'http://host:5000'],
    ['  registry.example.com  ', false, 'https://registry.example.com'],
    ['https://registry.example.com:443', false, 'https://registry.example.com'],
    ['docker.io', false, 'https://registry-1.docker.io'],
    ['[::1]:5000', true, 'http://[::1]:5000'],
  ];
  for (const [input, insecure, want] of cases) assert.equal(parseRegistryUrl(input, insecure).href.replace(/\/$/, ''), want, input);

  const bad: Array<[string, RegExp]> = [
    ['', /empty/],
    ['ftp://host', /http:\/\/ or https:\/\//],
    ['https://user:pw@host', /must not carry credentials/],
    ['host:5000/org/app', /must be just a host/],
    ['https://host/?x=1', /must be just a host/],
    ['http://exa mple', /not a valid address/],
  ];
  for (const [input, message] of bad) assert.throws(() => parseRegistryUrl(input), message, input);
  assert.doesNotMatch((() => { try { parseRegistryUrl('https://user:pw@host'); } catch (e) { return (e as Error).message; } return ''; })(), /pw/);
});

test('parseChallenges', () => {
  assert.deepEqual(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:samalba/my-app:pull,push' } },
  ]);
  assert.deepEqual(parseChallenges('Basic realm="cartorio-test"'), [{ scheme: 'basic', params: { realm: 'cartorio-test' } }]);
  assert.deepEqual(parseChallenges('Basic realm="a, b", Bearer realm=https://x/t, service = svc,error="insufficient_scope"'), [
    { scheme: 'basic', params: { realm: 'a, b' } },
    { scheme: 'bearer', params: { realm: 'https://x/t', service: 'svc', error: 'insufficient_scope' } },
  ]);
  assert.deepEqual(parseChallenges('Bearer realm="with \\"quote\\"",scope="repository:a:pull repository:b:pull"'), [
    { scheme: 'bearer', params: { realm: 'with "quote"', scope: 'repository:a:pull repository:b:pull' } },
  ]);
  assert.deepEqual(parseChallenges(''), []);
});

test('nextLink', () => {
  assert.equal(nextLink('</v2/app/tags/list?last=b&n=2>; rel="next"'), '/v2/app/tags/list?last=b&n=2');
  assert.equal(nextLink('<https://r/v2/x?n=1>; rel=next'), 'https://r/v2/x?n=1');
  assert.equal(nextLink('<https://a/prev>; rel="prev", <https://a/next>; title="x"; rel="next"'), 'https://a/next');
  assert.equal(nextLink('<https://a/p>; rel="prev"'), undefined);
  assert.equal(nextLink(undefined), undefined);
});

test('checkReference', () => {
  checkReference('1.0_rc-1');
  checkReference('sha256:' + 'a'.repeat(64));
  assert.throws(() => checkReference('sha512:' + 'a'.repeat(128)), /only sha256/);
  assert.throws(() => checkReference('../x'), /invalid tag or digest/);
});

test('scopes merge per repository and cover what they grant', () => {
  const merged = scopeSet(['repository:app:pull,push', 'repository:app:pull', 'repository:base:pull', 'registry:catalog:*']);
  assert.deepEqual(scopeStrings(merged), ['repository:app:pull,push', 'repository:base:pull', 'registry:catalog:*']);
  assert.equal(covers(merged, scopeSet(['repository:app:pull'])), true);
  assert.equal(covers(merged, scopeSet(['repository:app:pull,push', 'repository:base:pull'])), true);
  assert.equal(covers(merged, scopeSet(['repository:base:push'])), false);
  assert.equal(covers(merged, scopeSet(['repository:other:pull'])), false);
  assert.equal(covers(merged, scopeSet([])), true);
  assert.deepEqual(scopeStrings(scopeSet(['repository:host:5000/app:pull', 'garbage'])), ['repository:host:5000/app:pull']);
});

// STYLE §1 (as go-containerregistry's depcheck_test.go): the client depends on image/ only.
test('src/client imports only image and node:', async () => {
  const dir = join(ROOT, 'src', 'client');
  for (const file of await readdir(dir)) {
    const source = await readFile(join(dir, file), 'utf8');
    for (const [, specifier = ''] of source.matchAll(/^(?:import|export) [^;]*? from '([^']+)';$/gm)) {
      const allowed = specifier.startsWith('node:') || specifier.startsWith('./') || specifier.startsWith('../image/');
      assert.ok(allowed, `${file} imports ${specifier}`);
    }
    assert.doesNotMatch(source, /process\.(argv|env|exit)/, `${file} touches process.argv/env/exit`);
  }
});
