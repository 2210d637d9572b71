import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineClient } from '../../../src/engine/client';
import { silentLogger } from '../../../src/common/log';
import { startAgent } from '../../../src/agent/agent';
import { DockerExecutor } from '../../../src/agent/executor/docker-executor';
import { ExecutorError } from '../../../src/agent/executor/executor';
import { FakeControlPlane, makeTask, NODE_ID, waitFor } from './fakes';

// A dockerd that answers what it is told to and leaves the rest hanging
// forever (a wedged engine): requests whose path matches `hang` get no answer.
async function fakeEngine(hang: RegExp): Promise<{ socket: string; hung: () => number; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-fake-engine-'));
  const socket = join(dir, 'docker.sock');
  let hung = 0;
  const json = (res: ServerResponse, status: number, body?: unknown): void => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(body === undefined ? undefined : JSON.stringify(body));
  };
  const names = new Map<string, string>(); // container id -> name
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const url = new URL(req.url ?? '/', 'http://engine');
    const path = url.pathname.replace(/^\/v1\.\d+/, '');
    if (hang.test(`${req.method} ${path}?${url.searchParams.toString()}`)) { hung++; return; }
    if (path === '/events') { res.writeHead(200, { 'Content-Type': 'application/json' }); res.flushHeaders(); return; }
    if (path === '/info') return json(res, 200, { Name: 'fake', Architecture: 'x86_64', OSType: 'linux' });
    if (path === '/containers/json') return json(res, 200, []);
    if (/^\/images\/.+\/json$/.test(path)) return json(res, 200, { Id: 'sha256:1' });
    if (path === '/containers/create') {
      const name = url.searchParams.get('name') ?? '';
      names.set(`c-${name}`, name);
      return json(res, 201, { Id: `c-${name}`, Warnings: [] });
    }
    const m = /^\/containers\/([^/]+)(\/\w+)?$/.exec(path);
    if (m && m[2] === '/start') return json(res, 204);
    if (m && m[2] === '/json') {
      return json(res, 200, { Id: m[1], Name: `/${names.get(m[1]!) ?? ''}`, Config: { Labels: {} }, State: { Running: true, Pid: 42, ExitCode: 0 } });
    }
    if (m && (m[2] === '/stop' || req.method === 'DELETE')) return json(res, 204);
    json(res, 404, { message: `fake engine: no ${req.method} ${path}` });
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return {
    socket,
    hung: () => hung,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('an engine call that gets no answer fails for good within its bound, with the call named', async () => {
  const engine = await fakeEngine(/^(POST \/containers\/.+\/(start|stop)|GET \/containers\/c-x\/json)/);
  try {
    const ex = new DockerExecutor(new EngineClient(`unix://${engine.socket}`), silentLogger, { callMs: 200, stopExtraMs: 100 });
    const t0 = Date.now();
    await assert.rejects(ex.start('c-x'), (err: unknown) => {
      assert.ok(err instanceof ExecutorError);
      assert.equal(err.message, 'engine did not answer start container c-x within 200 ms');
      assert.equal(err.temporary, false, 'a hung engine fails the task rather than piling up retries');
      return true;
    });
    await assert.rejects(ex.inspect('c-x'), /engine did not answer inspect container c-x within 200 ms/);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 400 && elapsed < 2000, `two bounded calls took ${elapsed} ms`);
    // A stop gets its grace period on top of the bound.
    const s0 = Date.now();
    await assert.rejects(ex.stop('c-x', 1), /engine did not answer stop container c-x within 1.1 s/);
    assert.ok(Date.now() - s0 >= 1000, 'the grace period is waited out');
    // Other calls still work.
    assert.equal((await ex.inspect('c-y'))?.running, true);
  } finally {
    await engine.close();
  }
});

test('a hung create rejects its task with a clear error within the bound; other tasks run', async () => {
  const engine = await fakeEngine(/^POST \/containers\/create\?.*name=web\.2\.stuck/);
  const cp = new FakeControlPlane();
  cp.put(makeTask('ok'));
  cp.put(makeTask('stuck', { Slot: 2 }));
  const ex = new DockerExecutor(new EngineClient(`unix://${engine.socket}`), silentLogger, { callMs: 300 });
  const t0 = Date.now();
  const agent = startAgent({ nodeId: NODE_ID, controlPlane: cp, executor: ex, log: silentLogger, retry: { minMs: 5, maxMs: 20 } });
  try {
    await agent.ready;
    await waitFor('ok running', () => cp.state('ok') === 'running', 3000);
    const st = await waitFor(`stuck rejected (now ${JSON.stringify(cp.status('stuck'))}, hung ${engine.hung()})`, () => cp.state('stuck') === 'rejected' && cp.status('stuck'), 3000);
    assert.equal(st.Err, 'engine did not answer create container web.2.stuck within 300 ms');
    assert.ok(Date.now() - t0 < 2500, 'rejected close to the bound');
    assert.equal(engine.hung(), 1, "not retried against a hung engine");
  } finally {
    await agent.stop();
    await engine.close();
  }
});
