import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Writable } from 'node:stream';
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

// bcrypt runs on worker threads behind a bounded queue; one thread and a queue of 2 here, and cost
// 12 (~300 ms a compare in bcryptjs), so the 8 checks below are all asked before the first ends.
test('password checks beyond the queue get 429 TOOMANYREQUESTS with Retry-After; remembered credentials, good or wrong, never wait', async (t) => {
  const root = join(await tempDir(t), 'store');
  await makeRegistryStore(root);
  const htpasswd = parseHtpasswd(`alice:${hashSync('wonderland', 12)}\n`, 'test htpasswd');
  const app = buildRegistry({ images: new ServedImages([new StoreReader(root)]), logger: false, htpasswd, bcrypt: { threads: 1, queue: 2 } });
  t.after(() => app.close());
  const get = (authorization: string) => app.inject({ url: '/v2/_catalog', headers: { authorization } });
  assert.equal((await get(basic('alice', 'wonderland'))).statusCode, 200);
  assert.equal((await get(basic('alice', 'wrong'))).statusCode, 401);
  const flood = Array.from({ length: 8 }, (_, i) => get(basic('alice', `guess-${i}`)));
  // While one check runs and two wait: the known good and the known wrong pair are answered at once.
  const [good, wrong] = await Promise.all([get(basic('alice', 'wonderland')), get(basic('alice', 'wrong'))]);
  assert.equal(good.statusCode, 200, 'a remembered good credential does not wait for the flood');
  assert.equal(wrong.statusCode, 401, 'a remembered wrong one is refused without bcrypt');
  const answers = await Promise.all(flood);
  assert.deepEqual(answers.map((answer) => answer.statusCode).sort(), [401, 401, 401, 429, 429, 429, 429, 429]);
  for (const answer of answers.filter((a) => a.statusCode === 429)) {
    assert.equal(answer.headers['retry-after'], '1');
    assert.equal(JSON.parse(answer.body).errors[0].code, 'TOOMANYREQUESTS');
    assert.equal(answer.headers['www-authenticate'], undefined, 'not a challenge: the credentials were not judged');
  }
  // The same credentials sent at once share one check: 6 requests, one thread, a queue of 2, no 429.
  const same = await Promise.all(Array.from({ length: 6 }, () => get(basic('alice', 'same-guess'))));
  assert.deepEqual(same.map((answer) => answer.statusCode), [401, 401, 401, 401, 401, 401]);
});

test('htpasswd entries of different bcrypt costs: one warning at start, naming the costs', async (t) => {
  const root = join(await tempDir(t), 'store');
  await makeRegistryStore(root);
  const start = (text: string): string[] => {
    let logged = '';
    const stream = new Writable({ write: (chunk: Buffer, _encoding, done) => ((logged += chunk.toString()), done()) });
    const app = buildRegistry({ images: new ServedImages([new StoreReader(root)]), logger: { level: 'info', stream }, htpasswd: parseHtpasswd(text, 'test htpasswd') });
    t.after(() => app.close());
    return logged.split('\n').filter((line) => line.includes('different bcrypt costs'));
  };
  const mixed = start(`alice:${hashSync('a', 4)}\nbob:${hashSync('b', 5)}\ncarol:${hashSync('c', 5)}\n`);
  assert.equal(mixed.length, 1);
  assert.deepEqual((JSON.parse(mixed[0] ?? '{}') as { costs: unknown }).costs, { 4: ['alice'], 5: ['bob', 'carol'] });
  assert.match(mixed[0] ?? '', /htpasswd -B -C/);
  assert.deepEqual(start(`alice:${hashSync('a', 4)}\nbob:${hashSync('b', 4)}\n`), [], 'one cost: no warning');
});
