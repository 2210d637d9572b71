import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { silentLogger } from '../../../src/common/log';
import { EngineEventStream, toContainerEvent } from '../../../src/agent/executor/engine-events';
import { describeFromInfo, toExecutorError, withDefaultTag } from '../../../src/agent/executor/docker-executor';
import type { ContainerEvent } from '../../../src/agent/executor/executor';
import { EngineError } from '../../../src/engine/client';
import { waitFor } from './fakes';

// An engine client whose /events answers are streams the test writes into.
class FakeEventsEngine {
  readonly requests: Array<{ since?: string; filters?: unknown }> = [];
  readonly streams: PassThrough[] = [];
  failNext = 0;

  async stream(_method: string, path: string, opts: { query?: Record<string, string | undefined> } = {}): Promise<IncomingMessage> {
    assert.equal(path, '/events');
    const q = opts.query ?? {};
    this.requests.push({ since: q['since'], filters: q['filters'] === undefined ? undefined : JSON.parse(q['filters']) });
    if (this.failNext > 0) { this.failNext--; throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }); }
    const s = Object.assign(new PassThrough(), { statusCode: 200 });
    this.streams.push(s);
    return s as unknown as IncomingMessage;
  }
}

const ev = (action: string, id: string, taskId: string, timeNano: number, extra: Record<string, string> = {}) =>
  JSON.stringify({ Type: 'container', Action: action, Actor: { ID: id, Attributes: { 'com.docker.swarm.task.id': taskId, ...extra } }, time: Math.floor(timeNano / 1e9), timeNano }) + '\n';

test('one event stream: filtered to task containers, parsed, reconnected with since and a resync', async () => {
  const engine = new FakeEventsEngine();
  const stream = new EngineEventStream(engine, silentLogger, { minBackoffMs: 5, maxBackoffMs: 20 });
  const seen: ContainerEvent[] = [];
  const sub = stream.subscribe((e) => seen.push(e));
  const second = stream.subscribe(() => undefined);
  try {
    await sub.ready;
    await second.ready;
    assert.equal(engine.requests.length, 1, 'one stream for all subscribers');
    assert.deepEqual(engine.requests[0]!.filters, { type: ['container'], label: ['com.docker.swarm.task.id'], event: ['die', 'destroy', 'oom', 'health_status'] });
    assert.equal(engine.requests[0]!.since, undefined);

    const t0 = 1_767_225_600_000_000_000;
    // Split across writes, as a socket may deliver it.
    const line = ev('die', 'c1', 't1', t0, { exitCode: '137' });
    engine.streams[0]!.write(line.slice(0, 20));
    engine.streams[0]!.write(line.slice(20) + ev('health_status: unhealthy', 'c1', 't1', t0 + 1));
    await waitFor('two events', () => seen.length === 2);
    assert.deepEqual(seen, [
      { type: 'die', containerId: 'c1', taskId: 't1', exitCode: 137 },
      { type: 'health_status', containerId: 'c1', taskId: 't1', status: 'unhealthy' },
    ]);

    // The stream breaks; the engine is briefly unreachable; then it is back.
    engine.failNext = 2;
    engine.streams[0]!.end();
    await waitFor('reconnected', () => engine.streams.length === 2);
    assert.equal(engine.requests.length, 4);
    const since = Number(engine.requests.at(-1)!.since);
    assert.ok(since <= t0 / 1e9 && since >= t0 / 1e9 - 2, `since replays from just before the last event (${since})`);
    await waitFor('resync', () => seen.at(-1)?.type === 'resync');
    engine.streams[1]!.write(ev('destroy', 'c1', 't1', t0 + 5));
    await waitFor('destroy', () => seen.at(-1)?.type === 'destroy');
  } finally {
    sub.close();
    second.close();
  }
  assert.ok(engine.streams.every((s) => s.destroyed), 'closed with the last subscriber');
});

test('events without a task label, or of no interest, are dropped', () => {
  assert.equal(toContainerEvent({ Type: 'container', Action: 'die', Actor: { ID: 'c', Attributes: {} } }), undefined);
  assert.equal(toContainerEvent({ Type: 'container', Action: 'start', Actor: { ID: 'c', Attributes: { 'com.docker.swarm.task.id': 't' } } }), undefined);
  assert.equal(toContainerEvent({ Type: 'network', Action: 'die', Actor: { ID: 'c', Attributes: { 'com.docker.swarm.task.id': 't' } } }), undefined);
  assert.deepEqual(toContainerEvent({ Type: 'container', Action: 'oom', Actor: { ID: 'c', Attributes: { 'com.docker.swarm.task.id': 't' } } }), { type: 'oom', containerId: 'c', taskId: 't' });
});

test('describeNode: the engine\'s /info shaped as the node description in node-list.json', () => {
  const sample = JSON.parse(readFileSync('/work/shared/reference/docker-api-samples/node-list.json', 'utf8'))[0].Description;
  const d = describeFromInfo({
    Name: 'vm', Architecture: 'x86_64', OSType: 'linux', NCPU: 2, MemTotal: 25276514304, ServerVersion: '20.10.24+dfsg1', Labels: [],
    Plugins: {
      Volume: ['local'], Network: ['bridge', 'host', 'ipvlan', 'macvlan', 'null', 'overlay'], Authorization: null,
      Log: ['awslogs', 'fluentd', 'gcplogs', 'gelf', 'journald', 'json-file', 'local', 'logentries', 'splunk', 'syslog'],
    },
  });
  assert.deepEqual(d.Engine, sample.Engine);
  assert.deepEqual(d.Platform, sample.Platform);
  assert.deepEqual(d.Resources, sample.Resources);
  assert.equal(d.Hostname, sample.Hostname);
  const labelled = describeFromInfo({ Labels: ['zone=a', 'tier=db=1', 'bare'] });
  assert.deepEqual(labelled.Engine.Labels, { zone: 'a', tier: 'db=1' });
  assert.deepEqual(labelled.Engine.Plugins, [{ Type: 'Network', Name: 'overlay' }]);
});

test('image references get :latest only when they have neither tag nor digest', () => {
  assert.equal(withDefaultTag('busybox'), 'busybox:latest');
  assert.equal(withDefaultTag('localhost:5000/app'), 'localhost:5000/app:latest');
  assert.equal(withDefaultTag('localhost:5000/app:2'), 'localhost:5000/app:2');
  assert.equal(withDefaultTag('app@sha256:abc'), 'app@sha256:abc');
});

test('engine errors keep the engine\'s message; socket errors are temporary', () => {
  const refused = toExecutorError(new EngineError(404, 'No such container: x'));
  assert.equal(refused.message, 'No such container: x');
  assert.equal(refused.statusCode, 404);
  assert.equal(refused.temporary, false);
  assert.equal(toExecutorError(new Error('connect ENOENT /var/run/docker.sock')).temporary, true);
});
