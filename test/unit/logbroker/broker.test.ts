import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Service, Task } from '../../../src/model/types';
import { silentLogger } from '../../../src/common/log';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';
import { RpcError } from '../../../src/rpc/transport';
import { Publish, Subscriptions, checkPublishRequest, checkSubscriptionMessage, MAX_BATCH_BYTES, type SubscriptionMessage } from '../../../src/protocol/logs';
import { incompleteStream, type BrokerMessage, type LogOptions } from '../../../src/manager/logbroker';
import { FakeSource, LogCluster, line, peer } from '../../helpers/log-broker';
import { makeTask, waitFor } from '../agent/fakes';

// The broker with agents on a MemoryNetwork: lines from every node merged,
// follow, nodes cut off, publishes refused, cancellation reaching the readers.

const SVC = 'svcaaaaaaaaaaaaaaaaaaaaaa1';
const NODES = ['nodea', 'nodeb', 'nodec'];
const ALL: LogOptions = { follow: false, stdout: true, stderr: true };

function service(id: string, name: string): Service {
  return {
    ID: id, Version: { Index: 0 }, CreatedAt: '2026-01-01T00:00:00Z', UpdatedAt: '2026-01-01T00:00:00Z',
    Spec: { Name: name, TaskTemplate: { ContainerSpec: { Image: 'img:1' } }, Mode: { Replicated: { Replicas: 3 } } },
    Endpoint: { Spec: {} },
  };
}

const runningOn = (id: string, nodeId: string, slot: number, state: Task['Status']['State'] = 'running'): Task =>
  makeTask(id, { ServiceID: SVC, NodeID: nodeId, Slot: slot, CreatedAt: `2026-01-01T00:00:0${slot}Z`, Status: { Timestamp: 't', State: state, Message: state } });

// Three nodes, one task each, one source per node (so each node reads only its own).
async function setup() {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  let txn = store.txn().create('services', service(SVC, 'web'));
  NODES.forEach((n, i) => { txn = txn.create('tasks', runningOn(`task${i + 1}`, n, i + 1)); });
  await txn.commit();
  const cluster = new LogCluster(store, 'manager:2377', { connectGraceMs: 200 });
  const sources = new Map<string, FakeSource>();
  NODES.forEach((n, i) => {
    const s = new FakeSource();
    s.lines.set(`task${i + 1}`, [line('stdout', i, `${n}-one`), line('stderr', i, `${n}-two`)]);
    sources.set(n, s);
    cluster.addAgent(n, s);
  });
  await waitFor('agents connected', () => cluster.broker.connectedNodes().length === 3);
  const got: BrokerMessage[] = [];
  const texts = (): string[] => got.map((m) => (m.kind === 'line' ? `${m.nodeId}/${m.taskId}/${m.stream}:${m.line.toString().trim()}` : `error:${m.message}`));
  // Follows the service from now on; returns once every node reads its task.
  const followService = async (signal: AbortSignal): Promise<{ done: Promise<void> }> => {
    const done = cluster.broker.subscribe({ services: [SVC] }, { ...ALL, follow: true, tail: '0' }, (m) => { got.push(m); }, signal);
    await waitFor('three live readers', () => NODES.every((n, i) => sources.get(n)!.live.has(`task${i + 1}`)));
    return { done }; // not the promise itself: awaiting this would wait for the end
  };
  return { store, cluster, sources, got, texts, followService };
}

test('logs of tasks on three nodes are merged, each line tagged with its task and node', async () => {
  const { cluster, got, texts } = await setup();
  try {
    await cluster.broker.subscribe({ services: ['web'] }, ALL, (m) => { got.push(m); }, new AbortController().signal);
    assert.deepEqual(texts().sort(), [
      'nodea/task1/stderr:nodea-two', 'nodea/task1/stdout:nodea-one',
      'nodeb/task2/stderr:nodeb-two', 'nodeb/task2/stdout:nodeb-one',
      'nodec/task3/stderr:nodec-two', 'nodec/task3/stdout:nodec-one',
    ]);
    // Per node, the order of the log.
    assert.deepEqual(texts().filter((t) => t.startsWith('nodeb')), ['nodeb/task2/stdout:nodeb-one', 'nodeb/task2/stderr:nodeb-two']);
    const first = got.find((m) => m.kind === 'line')!;
    assert.ok(first.kind === 'line' && first.serviceId === SVC && /^2026-01-01T00:00:0\d\.000000000Z$/.test(first.timestamp));
    // Nothing left subscribed anywhere.
    await waitFor('agents idle', () => [...cluster.agents.values()].every((a) => a.activeSubscriptions() === 0));
    // A task selector reaches only that task's node.
    got.length = 0;
    await cluster.broker.subscribe({ tasks: ['task2'] }, { ...ALL, tail: '1' }, (m) => { got.push(m); }, new AbortController().signal);
    assert.deepEqual(texts(), ['nodeb/task2/stderr:nodeb-two']);
  } finally {
    await cluster.stop();
  }
});

test('follow: lines keep coming, a task that starts later on another node joins', async () => {
  const { store, cluster, sources, got, texts , followService } = await setup();
  const ac = new AbortController();
  try {
    const { done } = await followService(ac.signal);
    sources.get('nodec')!.live.get('task3')!.push(line('stdout', 5, 'c-live'));
    await waitFor('live line', () => got.length === 1);
    // A new task, assigned to node a, starts.
    await store.txn().create('tasks', runningOn('task4', 'nodea', 4, 'starting')).commit();
    await store.mutate('tasks', 'task4', (t) => { t.Status = { Timestamp: 't', State: 'running', Message: 'started' }; return t; });
    await waitFor('task4 followed', () => sources.get('nodea')!.live.has('task4'));
    sources.get('nodea')!.live.get('task4')!.push(line('stderr', 6, 'a-new'));
    await waitFor('new task line', () => got.length === 2);
    assert.deepEqual(texts(), ['nodec/task3/stdout:c-live', 'nodea/task4/stderr:a-new']);
    // A task whose log ends leaves the others going.
    sources.get('nodec')!.live.get('task3')!.end();
    sources.get('nodeb')!.live.get('task2')!.push(line('stdout', 7, 'b-live'));
    await waitFor('b line', () => got.length === 3);
    // The service removed and its logs ended: the stream ends by itself.
    await store.txn().delete('services', store.get('services', SVC)!).commit();
    for (const [n, id] of [['nodea', 'task1'], ['nodea', 'task4'], ['nodeb', 'task2']] as const) sources.get(n)!.live.get(id)!.end();
    await done;
  } finally {
    ac.abort();
    await cluster.stop();
  }
});

test('a node cut off ends its part with Docker\'s error; the other nodes go on', async () => {
  const { cluster, sources, got, texts , followService } = await setup();
  const ac = new AbortController();
  try {
    const { done } = await followService(ac.signal);
    cluster.net.partition('nodeb:2377');
    await waitFor('the error line', () => got.length === 1);
    assert.deepEqual(texts(), [`error:${incompleteStream(['node nodeb disconnected unexpectedly'])}`]);
    assert.match(texts()[0]!, /^error:warning: incomplete log stream\. some logs could not be retrieved for the following reasons: node nodeb disconnected unexpectedly$/);
    await waitFor('node b stops reading', () => sources.get('nodeb')!.reading === 0);
    sources.get('nodea')!.live.get('task1')!.push(line('stdout', 8, 'a-after'));
    sources.get('nodec')!.live.get('task3')!.push(line('stdout', 8, 'c-after'));
    await waitFor('the others go on', () => got.length === 3);
    ac.abort();
    await done;

    // Without follow: the whole answer, then one line naming the node that is not there.
    got.length = 0;
    await cluster.broker.subscribe({ services: [SVC] }, ALL, (m) => { got.push(m); }, new AbortController().signal);
    assert.equal(got.length, 5);
    assert.deepEqual(texts().at(-1), `error:${incompleteStream(['node nodeb is not available'])}`);
    cluster.net.heal('nodeb:2377');
    await waitFor('node b back', () => cluster.broker.connectedNodes().includes('nodeb'), 5000);
  } finally {
    ac.abort();
    await cluster.stop();
  }
});

test('a publish from a node the subscription was not sent to, or for another node\'s task, is refused', async () => {
  const { store, cluster, sources, got, texts , followService } = await setup();
  const ac = new AbortController();
  try {
    const { done } = await followService(ac.signal);
    // A hand-driven agent on node z, where a task of the service then starts: it learns the subscription.
    const seen: SubscriptionMessage[] = [];
    const spy = cluster.net.channel(peer('nodez'), 'manager:2377').stream(Subscriptions, {}, (m) => seen.push(m));
    await waitFor('node z connected', () => cluster.broker.connectedNodes().includes('nodez'));
    await store.txn().create('tasks', runningOn('task5', 'nodez', 5)).commit();
    await waitFor('the subscription', () => seen.length > 0);
    assert.deepEqual(seen[0]!.tasks, [{ taskId: 'task5' }]);
    const id = seen[0]!.id;
    const msg = { stream: 'stdout' as const, timestamp: '2026-01-01T00:00:09.000000000Z', data: Buffer.from('forged\n').toString('base64') };
    const asZ = cluster.net.channel(peer('nodez'), 'manager:2377');
    await assert.rejects(asZ.unary(Publish, { subscriptionId: id, messages: [{ ...msg, taskId: 'task1' }] }, { timeoutMs: 1000 }),
      (e: RpcError) => e.rpcKind === 'permission' && /task task1 is not in node nodez's part/.test(e.message));
    await assert.rejects(asZ.unary(Publish, { subscriptionId: id, messages: [], done: [{ taskId: 'task2' }] }, { timeoutMs: 1000 }),
      (e: RpcError) => e.rpcKind === 'permission');
    const outsider = cluster.net.channel(peer('nodey'), 'manager:2377');
    await assert.rejects(outsider.unary(Publish, { subscriptionId: id, messages: [{ ...msg, taskId: 'task1' }] }, { timeoutMs: 1000 }),
      (e: RpcError) => e.rpcKind === 'permission' && /was not sent to node nodey/.test(e.message));
    await assert.rejects(asZ.unary(Publish, { subscriptionId: 'nosuchsubscription', messages: [] }, { timeoutMs: 1000 }), (e: RpcError) => e.kind === 'not_found');
    assert.deepEqual(got, [], 'nothing refused reached the caller');
    // Its own task is accepted.
    await asZ.unary(Publish, { subscriptionId: id, messages: [{ ...msg, taskId: 'task5', data: Buffer.from('mine\n').toString('base64') }] }, { timeoutMs: 1000 });
    await waitFor('the accepted line', () => got.length === 1);
    assert.deepEqual(texts(), ['nodez/task5/stdout:mine']);
    spy.cancel();
    ac.abort();
    await done;
  } finally {
    ac.abort();
    await cluster.stop();
  }
});

test('the caller going away cancels the readers on every node', async () => {
  const { cluster, sources, got } = await setup();
  const ac = new AbortController();
  try {
    const done = cluster.broker.subscribe({ services: [SVC] }, { ...ALL, follow: true }, (m) => { got.push(m); }, ac.signal);
    await waitFor('three live readers', () => NODES.every((n) => sources.get(n)!.reading === 1));
    await waitFor('the existing lines', () => got.length === 6);
    ac.abort();
    await done;
    await waitFor('every reader ended', () => NODES.every((n) => sources.get(n)!.reading === 0));
    await waitFor('agents idle', () => [...cluster.agents.values()].every((a) => a.activeSubscriptions() === 0));
  } finally {
    await cluster.stop();
  }
});

test('messages are checked where they enter: bounded batches, strict fields', () => {
  const ok = { subscriptionId: 'abc', messages: [{ taskId: 't1', stream: 'stdout', timestamp: '2026-01-01T00:00:00.000000000Z', data: 'aGk=' }], done: [{ taskId: 't1' }], close: true };
  assert.deepEqual(checkPublishRequest(ok), ok);
  const bad = (v: unknown): void => assert.throws(() => checkPublishRequest(v), (e: Error & { kind?: string }) => e.kind === 'invalid');
  bad({ ...ok, subscriptionId: '../x' });
  bad({ ...ok, messages: [{ ...ok.messages[0], stream: 'stdin' }] });
  bad({ ...ok, messages: [{ ...ok.messages[0], data: 'not base64!' }] });
  bad({ ...ok, messages: [{ ...ok.messages[0], timestamp: 'yesterday' }] });
  bad({ ...ok, messages: 'x' });
  const big = 'A'.repeat(MAX_BATCH_BYTES / 2);
  bad({ ...ok, messages: [0, 1, 2].map(() => ({ ...ok.messages[0], data: big })) });
  assert.deepEqual(checkSubscriptionMessage({ id: 'abc', options: { follow: true, stdout: true, stderr: false, tail: '5', extra: 1 }, tasks: [{ taskId: 't1', containerId: 'abc123' }] }),
    { id: 'abc', options: { follow: true, stdout: true, stderr: false, tail: '5' }, tasks: [{ taskId: 't1', containerId: 'abc123' }] });
  assert.throws(() => checkSubscriptionMessage({ id: 'abc', options: { follow: 'yes', stdout: true, stderr: true } }));
  assert.throws(() => checkSubscriptionMessage({ id: 'abc', options: { follow: true, stdout: true, stderr: true, since: '1; rm' } }));
});

test('a task asked for by ID that has no node yet is named; a reading error on a node is reported', async () => {
  const { store, cluster, sources, got, texts } = await setup();
  try {
    await store.txn().create('tasks', makeTask('task9', { ServiceID: SVC, NodeID: '', Status: { Timestamp: 't', State: 'pending', Message: 'pending' } })).commit();
    await cluster.broker.subscribe({ tasks: ['task9'] }, ALL, (m) => { got.push(m); }, new AbortController().signal);
    assert.deepEqual(texts(), [`error:${incompleteStream(['task task9 has not been scheduled'])}`]);
    got.length = 0;
    sources.get('nodea')!.failures.set('task1', 'engine did not answer');
    await cluster.broker.subscribe({ services: [SVC] }, ALL, (m) => { got.push(m); }, new AbortController().signal);
    assert.equal(texts().at(-1), `error:${incompleteStream(['task task1: engine did not answer'])}`);
    assert.equal(got.length, 5);
  } finally {
    await cluster.stop();
  }
});

test('a caller too slow for the agent\'s publish deadline gets the lines so far and the reason, and the stream ends', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  await store.txn().create('services', service(SVC, 'web')).create('tasks', runningOn('task1', 'nodea', 1)).commit();
  const cluster = new LogCluster(store);
  const source = new FakeSource();
  source.lines.set('task1', [line('stdout', 1, 'one'), line('stdout', 2, 'two')]);
  cluster.addAgent('nodea', source, { publishTimeoutMs: 100 });
  try {
    await waitFor('agent connected', () => cluster.broker.connectedNodes().length === 1);
    const got: BrokerMessage[] = [];
    let slow = true;
    await cluster.broker.subscribe({ services: [SVC] }, ALL, async (m) => {
      got.push(m);
      if (slow) { slow = false; await new Promise((r) => setTimeout(r, 400)); }
    }, new AbortController().signal);
    const last = got.at(-1)!;
    assert.ok(last.kind === 'error' && /^warning: incomplete log stream\. .*node nodea: could not publish logs: deadline exceeded/.test(last.message), JSON.stringify(last));
    await waitFor('agent idle', () => cluster.agents.get('nodea')!.activeSubscriptions() === 0);
  } finally {
    await cluster.stop();
  }
});
