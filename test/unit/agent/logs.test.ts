import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inject } from 'light-my-request';
import type { Service, Task } from '../../../src/model/types';
import { silentLogger } from '../../../src/common/log';
import { unavailable, NOT_A_MANAGER } from '../../../src/common/errors';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';
import { Router } from '../../../src/api/router';
import { createApiHandler } from '../../../src/api/server';
import { detailsOf, frame, formatLine, queryEscape, registerLogRoutes, type LogRouteDeps } from '../../../src/api/routes/logs';
import { fixedNanos, RawLineParser, StdcopyParser, type LogLine } from '../../../src/agent/executor/logs';
import type { LogSource } from '../../../src/agent/log-source';
import { FakeSource, LogCluster, line } from '../../helpers/log-broker';
import { makeTask, NODE_ID, waitFor } from './fakes';

const SAMPLE = '/work/shared/reference/docker-api-samples/service-logs.raw';

// ---------- the engine side: frames and timestamps ----------

test('stdcopy frames are split into messages whatever the chunking', () => {
  const payloads: Array<[number, string]> = [[1, '2026-01-01T00:00:00.5Z out one\n'], [2, '2026-01-01T00:00:01.123456789Z err two\n'], [1, '2026-01-01T00:00:02Z partial']];
  const bytes = Buffer.concat(payloads.map(([s, p]) => { const h = Buffer.alloc(8); h[0] = s; h.writeUInt32BE(Buffer.byteLength(p), 4); return Buffer.concat([h, Buffer.from(p)]); }));
  for (const size of [1, 3, 8, 13, bytes.length]) {
    const parser = new StdcopyParser();
    const out: LogLine[] = [];
    for (let i = 0; i < bytes.length; i += size) out.push(...parser.push(bytes.subarray(i, i + size)));
    assert.deepEqual(out.map((l) => [l.stream, l.timestamp, l.line.toString()]), [
      ['stdout', '2026-01-01T00:00:00.500000000Z', 'out one\n'],
      ['stderr', '2026-01-01T00:00:01.123456789Z', 'err two\n'],
      ['stdout', '2026-01-01T00:00:02.000000000Z', 'partial'],
    ], `chunks of ${size}`);
  }
});

test('TTY streams are cut at newlines; a last unterminated line is kept', () => {
  const p = new RawLineParser();
  const out = [...p.push(Buffer.from('2026-01-01T00:00:00Z a\r\n2026-01-01T00:00:01Z b')), ...p.push(Buffer.from('c\r\n2026-01-01T00:00:02Z d')), ...p.end()];
  assert.deepEqual(out.map((l) => [l.stream, l.line.toString()]), [['stdout', 'a\r\n'], ['stdout', 'bc\r\n'], ['stdout', 'd']]);
});

test('timestamps get exactly nine fractional digits, as moby prints them', () => {
  assert.equal(fixedNanos('2026-11-22T23:56:17.24926952Z'), '2026-11-22T23:56:17.249269520Z');
  assert.equal(fixedNanos('2026-11-22T23:56:17Z'), '2026-11-22T23:56:17.000000000Z');
  assert.equal(fixedNanos('2026-11-22T23:56:17.1+02:00'), '2026-11-22T23:56:17.100000000+02:00');
  assert.equal(fixedNanos('garbage'), undefined);
});

// ---------- the HTTP side ----------

test('a framed line is byte for byte what dockerd sends (service-logs.raw)', () => {
  const sample = readFileSync(SAMPLE);
  const t = makeTask('pyeiux85klhgrrh3i9649fjzr', { ServiceID: 'p4aab1sq9ghcjd3vpo3cawctl', NodeID: 'pclsnij79fqysnwzjn54k7ioe' });
  const line: LogLine = { stream: 'stdout', timestamp: '2026-11-22T23:56:17.249269529Z', line: Buffer.from('tick\n') };
  const bytes = frame('stdout', formatLine(line, true, Buffer.from(detailsOf(t) + ' ')));
  assert.deepEqual(bytes, sample.subarray(0, bytes.length));
  assert.equal(queryEscape('a b/c=d,e!'), 'a+b%2Fc%3Dd%2Ce%21');
});

const L = line;

function service(id: string, name: string, tty = false): Service {
  return {
    ID: id, Version: { Index: 0 }, CreatedAt: '2026-01-01T00:00:00Z', UpdatedAt: '2026-01-01T00:00:00Z',
    Spec: { Name: name, TaskTemplate: { ContainerSpec: { Image: 'img:1', TTY: tty } }, Mode: { Replicated: { Replicas: 2 } } },
    Endpoint: { Spec: {} },
  };
}

const running = (id: string, serviceId: string, slot: number, created: string): Task =>
  makeTask(id, { ServiceID: serviceId, Slot: slot, CreatedAt: created, Status: { Timestamp: created, State: 'running', Message: 'started', ContainerStatus: { ContainerID: `c-${id}`, PID: 1, ExitCode: 0 } } });

const clusters: LogCluster[] = [];
after(async () => { await Promise.all(clusters.map((c) => c.stop())); });

async function fixture(deps: Partial<LogRouteDeps> & { source?: LogSource } = {}) {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  await store.txn()
    .create('services', service('svcaaaaaaaaaaaaaaaaaaaaaa1', 'web'))
    .create('services', service('svcbbbbbbbbbbbbbbbbbbbbbb2', 'tty', true))
    .create('tasks', running('task2', 'svcaaaaaaaaaaaaaaaaaaaaaa1', 2, '2026-01-01T00:00:02Z'))
    .create('tasks', running('task1', 'svcaaaaaaaaaaaaaaaaaaaaaa1', 1, '2026-01-01T00:00:01Z'))
    .create('tasks', running('ttytask', 'svcbbbbbbbbbbbbbbbbbbbbbb2', 1, '2026-01-01T00:00:01Z'))
    .commit();
  const source = new FakeSource();
  source.lines.set('task1', [L('stdout', 1, 'one-a'), L('stderr', 2, 'one-b'), L('stdout', 3, 'one-c')]);
  source.lines.set('task2', [L('stdout', 4, 'two-a')]);
  source.lines.set('ttytask', [L('stdout', 1, 'tty-a')]);
  const logs = new LogCluster(store);
  clusters.push(logs);
  logs.addAgent(NODE_ID, deps.source ?? source);
  const router = new Router();
  registerLogRoutes(router, { store, broker: () => logs.broker, ...deps });
  const handler = createApiHandler({
    router,
    engine: { forward: (_q: IncomingMessage, s: ServerResponse) => { s.writeHead(404); s.end(); }, forwardUpgrade: () => undefined },
    engineVersion: () => '20.10.24',
    log: silentLogger,
  });
  return { store, source, handler };
}

// Decodes a multiplexed body into [stream, text] frames.
function frames(body: Buffer): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (let i = 0; i < body.length;) {
    const size = body.readUInt32BE(i + 4);
    assert.deepEqual([...body.subarray(i + 1, i + 4)], [0, 0, 0]);
    out.push([body[i]!, body.subarray(i + 8, i + 8 + size).toString()]);
    i += 8 + size;
  }
  return out;
}

test('service logs: one frame per line, tasks in creation order, stdout=1 stderr=2', async () => {
  const { handler } = await fixture();
  const res = await inject(handler, { method: 'GET', url: '/v1.41/services/web/logs?stdout=1&stderr=1' });
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['content-type'], 'application/vnd.docker.raw-stream');
  assert.deepEqual(frames(res.rawPayload), [[1, 'one-a\n'], [2, 'one-b\n'], [1, 'one-c\n'], [1, 'two-a\n']]);
});

test('details and timestamps prefix every line as moby does', async () => {
  const { handler } = await fixture();
  const res = await inject(handler, { method: 'GET', url: '/v1.41/services/svcaaaaaaaaaaaaaaaaaaaaaa1/logs?stdout=1&stderr=1&details=1&timestamps=1' });
  const f = frames(res.rawPayload);
  assert.equal(f[0]![1], '2026-01-01T00:00:01.000000000Z com.docker.swarm.node.id=node00000000000000000000a1,com.docker.swarm.service.id=svcaaaaaaaaaaaaaaaaaaaaaa1,com.docker.swarm.task.id=task1 one-a\n');
  assert.equal(f.length, 4);
});

test('stream selection, tail per task, since passed on; bad parameters are 400', async () => {
  const { handler, source } = await fixture();
  const onlyErr = await inject(handler, { method: 'GET', url: '/v1.41/services/web/logs?stdout=0&stderr=1' });
  assert.deepEqual(frames(onlyErr.rawPayload), [[2, 'one-b\n']]);
  const tail = await inject(handler, { method: 'GET', url: '/v1.41/services/web/logs?stdout=1&stderr=1&tail=1&since=1767225601.5' });
  assert.deepEqual(frames(tail.rawPayload), [[1, 'one-c\n'], [1, 'two-a\n']]);
  assert.equal(source.calls.at(-1)!.opts.since, '1767225601.5');
  const all = await inject(handler, { method: 'GET', url: '/v1.41/services/web/logs?stdout=1&tail=all' });
  assert.equal(frames(all.rawPayload).length, 3);

  const none = await inject(handler, { method: 'GET', url: '/v1.41/services/web/logs?stdout=0&stderr=false' });
  assert.equal(none.statusCode, 400);
  assert.deepEqual(JSON.parse(none.payload), { message: 'Bad parameters: you must choose at least one stream' });
  assert.equal((await inject(handler, { method: 'GET', url: '/v1.41/services/web/logs?stdout=1&tail=x' })).statusCode, 400);
  assert.equal((await inject(handler, { method: 'GET', url: '/v1.41/services/web/logs?stdout=1&since=yesterday' })).statusCode, 400);
});

test('TTY services are written raw, without frames', async () => {
  const { handler } = await fixture();
  const res = await inject(handler, { method: 'GET', url: '/v1.41/services/tty/logs?stdout=1&stderr=1' });
  assert.equal(res.payload, 'tty-a\n');
});

test('resolution: ID prefix, task logs; unknown ones are 404 with Docker\'s text; no swarm is 503', async () => {
  const { handler } = await fixture();
  const byPrefix = await inject(handler, { method: 'GET', url: '/v1.41/services/svcaaa/logs?stdout=1' });
  assert.equal(frames(byPrefix.rawPayload).length, 3);
  const ambiguous = await inject(handler, { method: 'GET', url: '/v1.41/services/svc/logs?stdout=1' });
  assert.equal(ambiguous.statusCode, 400);
  const nosvc = await inject(handler, { method: 'GET', url: '/v1.41/services/nope/logs?stdout=1' });
  assert.equal(nosvc.statusCode, 404);
  assert.deepEqual(JSON.parse(nosvc.payload), { message: 'service nope not found' });
  const task = await inject(handler, { method: 'GET', url: '/v1.41/tasks/task2/logs?stdout=1&stderr=1&details=1' });
  assert.deepEqual(frames(task.rawPayload), [[1, 'com.docker.swarm.node.id=node00000000000000000000a1,com.docker.swarm.service.id=svcaaaaaaaaaaaaaaaaaaaaaa1,com.docker.swarm.task.id=task2 two-a\n']]);
  const notask = await inject(handler, { method: 'GET', url: '/v1.41/tasks/zzz/logs?stdout=1' });
  assert.equal(notask.statusCode, 404);
  assert.deepEqual(JSON.parse(notask.payload), { message: 'task zzz not found' });

  const noSwarm = await fixture({ store: undefined, swarm: { control: () => { throw unavailable(NOT_A_MANAGER); } } });
  const r = await inject(noSwarm.handler, { method: 'GET', url: '/v1.41/services/web/logs?stdout=1' });
  assert.equal(r.statusCode, 503);
});

test('follow: lines keep coming, tasks started later join, the stream ends when the client leaves', { timeout: 10_000 }, async () => {
  const { handler, source, store } = await fixture();
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  let body = Buffer.alloc(0);
  const req = request({ host: '127.0.0.1', port, path: '/v1.41/services/web/logs?stdout=1&stderr=1&follow=1&tail=0' });
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => { req.on('response', resolve); req.on('error', reject); req.end(); });
    assert.equal(res.statusCode, 200);
    res.on('data', (c: Buffer) => { body = Buffer.concat([body, c]); });
    await waitFor('both tasks followed', () => source.live.has('task1') && source.live.has('task2'));
    source.live.get('task2')!.push(L('stdout', 5, 'live-2'));
    await waitFor('live line', () => frames(body).length === 1);
    // A task that starts while we listen.
    const t3 = makeTask('task3', { ServiceID: 'svcaaaaaaaaaaaaaaaaaaaaaa1', Slot: 3, CreatedAt: '2026-01-01T00:00:09Z', Status: { Timestamp: 't', State: 'preparing', Message: 'preparing' } });
    await store.txn().create('tasks', t3).commit();
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(!source.live.has('task3'), 'not before it runs');
    await store.mutate('tasks', 'task3', (t) => { t.Status = { Timestamp: 't', State: 'running', Message: 'started', ContainerStatus: { ContainerID: 'c3', PID: 1, ExitCode: 0 } }; return t; });
    await waitFor('task3 followed', () => source.live.has('task3'));
    source.live.get('task3')!.push(L('stderr', 6, 'live-3'));
    await waitFor('task3 line', () => frames(body).length === 2);
    assert.deepEqual(frames(body), [[1, 'live-2\n'], [2, 'live-3\n']]);
    req.destroy();
    // The server side lets go of the task streams once the client is gone.
    await waitFor('the task streams to end', () => source.ended === 3);
  } finally {
    req.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('task logs with follow end when the task\'s log ends', { timeout: 10_000 }, async () => {
  const { handler } = await fixture();
  // The fake follows forever, so use a source whose follow ends at once (a stopped container).
  const res = await inject(handler, { method: 'GET', url: '/v1.41/tasks/task1/logs?stdout=1&stderr=1' });
  assert.equal(frames(res.rawPayload).length, 3);
  const ended = await fixture({ source: { async *taskLogs() { yield L('stdout', 1, 'last'); } } });
  const r = await inject(ended.handler, { method: 'GET', url: '/v1.41/tasks/task1/logs?stdout=1&follow=1' });
  assert.deepEqual(frames(r.rawPayload), [[1, 'last\n']]);
});

test('a task on a node the broker cannot reach: Docker\'s error on the system-error stream (raw with a TTY)', async () => {
  const { handler, store } = await fixture();
  await store.txn().create('tasks', running('gone1', 'svcaaaaaaaaaaaaaaaaaaaaaa1', 3, '2026-01-01T00:00:03Z'))
    .create('tasks', running('gone2', 'svcbbbbbbbbbbbbbbbbbbbbbb2', 2, '2026-01-01T00:00:03Z')).commit();
  await store.mutate('tasks', 'gone1', (t) => { t.NodeID = 'nodeelsewhere'; return t; });
  await store.mutate('tasks', 'gone2', (t) => { t.NodeID = 'nodeelsewhere'; return t; });
  const res = await inject(handler, { method: 'GET', url: '/v1.41/services/web/logs?stdout=1&stderr=1' });
  const f = frames(res.rawPayload);
  assert.deepEqual(f.slice(0, 4).map(([s]) => s), [1, 2, 1, 1]);
  assert.deepEqual(f[4], [3, 'Error grabbing logs: rpc error: code = Unknown desc = warning: incomplete log stream. some logs could not be retrieved for the following reasons: node nodeelsewhere is not available\n']);
  const tty = await inject(handler, { method: 'GET', url: '/v1.41/services/tty/logs?stdout=1&stderr=1' });
  assert.equal(tty.payload, 'tty-a\nError grabbing logs: rpc error: code = Unknown desc = warning: incomplete log stream. some logs could not be retrieved for the following reasons: node nodeelsewhere is not available\n');
});
