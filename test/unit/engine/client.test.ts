import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeEngine } from '../../helpers/fake-engine';
import { EngineClient, EngineError } from '../../../src/engine/client';
import { DockerExecutor } from '../../../src/agent/executor/docker-executor';
import { silentLogger } from '../../../src/common/log';

test('a pull carries X-Registry-Auth; a refused pull is left to the create, which fails with the engine\'s message', async () => {
  const engine = await startFakeEngine();
  const client = new EngineClient(engine.address);
  try {
    engine.handle = (req, res) => {
      req.resume();
      const path = new URL(req.url ?? '/', 'http://engine').pathname;
      if (/\/images\/.+\/json$/.test(path)) { res.writeHead(404, { 'Content-Type': 'application/json' }); res.end('{"message":"No such image: reg:5000/app:1"}\n'); return; }
      if (path.endsWith('/images/create')) {
        // 200, then the failure inside the progress stream, cut in the middle of a 3-byte character.
        res.writeHead(200, { 'Content-Type': 'application/json' });
        const line = Buffer.from('{"status":"Pulling"}\n{"errorDetail":{"message":"unauthorized: authentication required €"},"error":"unauthorized"}\n');
        const cut = line.indexOf(Buffer.from('€')) + 1;
        res.write(line.subarray(0, cut));
        setTimeout(() => res.end(line.subarray(cut)), 10);
        return;
      }
      if (path.endsWith('/containers/create')) { res.writeHead(404, { 'Content-Type': 'application/json' }); res.end('{"message":"No such image: reg:5000/app:1"}\n'); return; }
      res.writeHead(500); res.end();
    };
    const ex = new DockerExecutor(client, silentLogger);
    await ex.ensureImage('reg:5000/app:1', 'eyJ1c2VybmFtZSI6InUifQ');
    const pull = engine.requests.find((r) => r.url.includes('/images/create'))!;
    assert.equal(pull.headers['x-registry-auth'], 'eyJ1c2VybmFtZSI6InUifQ');
    assert.match(pull.url, /^\/v1\.41\/images\/create\?fromImage=reg%3A5000%2Fapp%3A1$/);
    await assert.rejects(ex.create({ name: 'app.1.x', body: { Image: 'reg:5000/app:1', Labels: {} } as never }), (err: Error & { statusCode?: number }) => {
      assert.equal(err.message, 'No such image: reg:5000/app:1');
      assert.equal(err.statusCode, 404);
      return true;
    });
    // Without credentials no header is sent.
    await ex.ensureImage('reg:5000/app:1');
    assert.equal(engine.requests.filter((r) => r.url.includes('/images/create')).at(-1)!.headers['x-registry-auth'], undefined);
  } finally {
    client.close();
    await engine.close();
  }
});

test('JSON calls: the engine\'s status and message, a query, the API version prefix', async () => {
  const engine = await startFakeEngine();
  const client = new EngineClient(engine.address);
  try {
    engine.handle = (req, res) => {
      req.resume();
      res.writeHead(409, { 'Content-Type': 'application/json' });
      res.end('{"message":"Conflict. The container name is already in use"}\n');
    };
    await assert.rejects(client.postJson('/containers/create', { Image: 'x' }, { query: { name: 'a b' } }), (err: unknown) => {
      assert.ok(err instanceof EngineError);
      assert.equal(err.status, 409);
      assert.equal(err.kind, 'conflict');
      assert.equal(err.message, 'Conflict. The container name is already in use');
      return true;
    });
    assert.equal(engine.requests.at(-1)!.url, '/v1.41/containers/create?name=a+b');
  } finally {
    client.close();
    await engine.close();
  }
});
