import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { hashSync } from 'bcryptjs';
import { buildRegistry } from '../src/registry/app.js';
import { parseHtpasswd } from '../src/registry/auth.js';
import { ServedImages } from '../src/store/image-source.js';
import { StoreReader } from '../src/store/reader.js';
import { tempDir } from './helpers/cli.js';
import { BUSYBOX_1, makeRegistryStore } from './helpers/registry-store.js';

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

test('htpasswd: 401 with a Basic challenge without or with bad credentials, 200 with good ones', async (t) => {
  const root = join(await tempDir(t), 'store');
  await makeRegistryStore(root);
  // Cost 4 keeps the test fast; bcrypt's cost is part of the hash, so any cost works.
  const htpasswd = parseHtpasswd(`alice:${hashSync('wonderland', 4)}\nbob:${hashSync('builder', 4).replace('$2b$', '$2y$')}\n`, 'test htpasswd');
  const app = buildRegistry({ images: new ServedImages([new StoreReader(root)]), logger: false, htpasswd });
  t.after(() => app.close());

  const refused = [undefined, basic('alice', 'wrong'), basic('nobody', 'wonderland'), basic('alice', ''), 'Basic', 'Basic !!!', `Bearer abc`, basic('alice:wonderland', ''), 'Basic ' + Buffer.from('alicewonderland').toString('base64')];
  for (const url of ['/v2/', '/v2/_catalog', '/v2/busybox/manifests/1', '/v2/busybox/tags/list', '/v2/nope/blobs/sha256:bad']) {
    for (const authorization of refused) {
      for (const method of ['GET', 'HEAD'] as const) {
        const response = await app.inject({ method, url, ...(authorization !== undefined && { headers: { authorization } }) });
        const where = `${method} ${url} with ${authorization}`;
        assert.equal(response.statusCode, 401, where);
        assert.equal(response.headers['www-authenticate'], 'Basic realm="cartorio"', where);
        assert.equal(response.headers['docker-distribution-api-version'], 'registry/2.0', where);
        if (method === 'GET') assert.equal(JSON.parse(response.body).errors[0].code, 'UNAUTHORIZED', where);
        else assert.equal(response.body, '', where);
      }
    }
  }
  for (const authorization of [basic('alice', 'wonderland'), basic('bob', 'builder'), basic('alice', 'wonderland')]) {
    const response = await app.inject({ url: '/v2/busybox/manifests/1', headers: { authorization } });
    assert.equal(response.statusCode, 200, authorization);
    assert.equal(response.headers['docker-content-digest'], BUSYBOX_1);
    assert.equal((await app.inject({ url: '/v2/', headers: { authorization } })).statusCode, 200);
  }
  // Writes are refused for authenticated users too; health and metrics stay open for probes.
  assert.equal((await app.inject({ method: 'PUT', url: '/v2/busybox/manifests/1', headers: { authorization: basic('alice', 'wonderland') } })).statusCode, 405);
  assert.equal((await app.inject({ method: 'PUT', url: '/v2/busybox/manifests/1' })).statusCode, 401);
  assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200);
  assert.equal((await app.inject({ url: '/metrics' })).statusCode, 200);
});
