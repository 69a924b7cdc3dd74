import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { bypassesProxy, proxyFor, proxySettingsFromEnv } from '../src/client/proxy.js';
import { DEFAULT_RETRY, isRetryableError, isRetryableStatus, retryDelay } from '../src/client/retry.js';
import type { HttpResponse } from '../src/client/http-transport.js';
import { validateCheckRequest, type Source } from '../src/resource/schema.js';
import { resolveSource } from '../src/resource/source.js';

// registry-image's source vocabulary → what cartorio resolves it to; the worker's proxy rules.
const io = { stdin: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough(), args: [], env: {} };
const resolve = (source: Record<string, unknown>) => {
  const resolved = resolveSource(io, validateCheckRequest({ source }).source as Source);
  resolved.store.close();
  return { repository: resolved.repository, name: resolved.name, tag: resolved.tag, where: resolved.store.where, registryImageStyle: resolved.registryImageStyle, platform: resolved.platform };
};

test('registry-image sources: the registry is the repository host; Docker Hub by default', () => {
  assert.deepEqual(resolve({ repository: 'registry.example.com/ci/app', tag: 7 }), {
    repository: 'ci/app', name: 'registry.example.com/ci/app', tag: '7', where: 'registry https://registry.example.com', registryImageStyle: true, platform: resolve({ repository: 'x/y.z/a' }).platform,
  });
  assert.equal(resolve({ repository: 'busybox' }).name, 'docker.io/library/busybox');
  assert.equal(resolve({ repository: 'busybox' }).where, 'registry https://registry-1.docker.io');
  assert.equal(resolve({ repository: 'concourse/git-resource' }).repository, 'concourse/git-resource');
  assert.equal(resolve({ repository: 'localhost:5000/app', insecure: true }).where, 'registry http://localhost:5000');
  assert.deepEqual(resolve({ repository: 'a.io/b', platform: { architecture: 'arm64', os: 'linux' } }).platform, { os: 'linux', architecture: 'arm64' });
});

test("cartorio's store: a repository host must be the store's own", () => {
  const store = { type: 'registry', url: 'http://127.0.0.1:5000' };
  assert.equal(resolve({ repository: '127.0.0.1:5000/ci/app', store }).repository, 'ci/app');
  assert.equal(resolve({ repository: 'ci/app', store }).registryImageStyle, false);
  assert.throws(() => resolve({ repository: 'registry.example.com/ci/app', store }), {
    message: 'invalid payload: /source/repository "registry.example.com/ci/app" names registry registry.example.com, but /source/store/url is 127.0.0.1:5000: drop the host from repository to use the store, or drop store to use registry.example.com (registry-image style)',
  });
  assert.throws(() => resolve({ repository: 'ci/app', store, username: 'u', password: 'p' }), /^Error: invalid payload: \/source has both store and username, password: give the registry either as store/);
  // A file store keeps names with their registry (the naming rule).
  assert.equal(resolve({ repository: 'docker.io/busybox', store: { type: 'file', path: '/srv/store' } }).repository, 'docker.io/library/busybox');
});

test("registry-image keys cartorio does not implement are refused in one line that says so", () => {
  assert.throws(() => resolve({ repository: 'a.io/b', tag_regex: '^1\\.', semver_constraint: '>= 1' }), {
    message: "invalid payload: /source/tag_regex is registry-image's and cartorio does not implement it (cartorio checks one tag: set source.tag); /source/semver_constraint is registry-image's and cartorio does not implement it (cartorio checks one tag: set source.tag)",
  });
  assert.throws(() => resolve({ repository: 'a.io/b', aws_region: 'eu-west-1' }), /aws_region is registry-image's and cartorio does not implement it \(ECR credentials/);
});

test('proxy variables: lower case wins, no_proxy as curl and Go read it', () => {
  const settings = proxySettingsFromEnv({ HTTP_PROXY: 'http://upper:3128', http_proxy: 'lower:3128', HTTPS_PROXY: 'http://p:8080', no_proxy: 'localhost, .internal.example,10.0.0.1,registry.local:5000' });
  assert.equal(settings.http?.href, 'http://lower:3128/');
  assert.equal(proxyFor(new URL('https://quay.io/v2/'), settings)?.host, 'p:8080');
  assert.equal(proxyFor(new URL('http://quay.io/v2/'), settings)?.host, 'lower:3128');
  for (const direct of ['http://localhost:5000/', 'https://a.internal.example/', 'https://internal.example/', 'http://10.0.0.1/', 'https://registry.local:5000/']) assert.equal(bypassesProxy(new URL(direct), settings.noProxy), true, direct);
  for (const proxied of ['https://registry.local/', 'https://notinternal.example/', 'http://10.0.0.10/']) assert.equal(bypassesProxy(new URL(proxied), settings.noProxy), false, proxied);
  assert.equal(bypassesProxy(new URL('https://any.where/'), ['*']), true);
  assert.throws(() => proxySettingsFromEnv({ https_proxy: 'https://p:8443' }), /^Error: https_proxy "https:\/\/p:8443": only http:\/\/ proxies are supported$/);
});

test('retries: which failures, how long', () => {
  assert.deepEqual([429, 500, 502, 503, 504, 501, 505, 404, 401].map(isRetryableStatus), [true, true, true, true, true, false, false, false, false]);
  assert.equal(isRetryableError(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })), true);
  assert.equal(isRetryableError(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'EPIPE' }) })), true);
  assert.equal(isRetryableError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })), false);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((n) => retryDelay(n, DEFAULT_RETRY)), [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  const withRetryAfter = (value: string) => ({ headers: { 'retry-after': value } }) as unknown as HttpResponse;
  assert.equal(retryDelay(3, DEFAULT_RETRY, withRetryAfter('2')), 2000);
  assert.equal(retryDelay(1, DEFAULT_RETRY, withRetryAfter('3600')), 30000);
  assert.equal(retryDelay(2, DEFAULT_RETRY, withRetryAfter('soon')), 2000);
});
