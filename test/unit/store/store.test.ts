import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store, commitInBatches } from '../../../src/store/store';
import { silentLogger } from '../../../src/common/log';
import type { Service, Task } from '../../../src/model/types';
import { ShoalError } from '../../../src/common/errors';

function service(id: string, name: string): Service {
  return { ID: id, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: { Name: name }, Endpoint: { Spec: {} } };
}
function task(id: string, serviceId: string, nodeId?: string): Task {
  return { ID: id, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Labels: {}, Spec: {}, ServiceID: serviceId, NodeID: nodeId, Status: { Timestamp: 't', State: 'new', Message: '' }, DesiredState: 'running' };
}

test('create sets Version.Index to the commit revision and the mirror serves it at once', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  const s = service('s1', 'web');
  const rev = await store.txn().create('services', s).commit();
  assert.equal(s.Version.Index, rev);
  assert.equal(store.get('services', 's1')?.Version.Index, rev);
  assert.equal(store.get('services', 's1')?.Spec.Name, 'web');
});

test('first: the one object of a kind, or nothing for an empty kind', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  assert.equal(store.first('services'), undefined);
  await store.txn().create('services', service('s1', 'web')).commit();
  assert.equal(store.first('services')?.ID, 's1');
  await store.txn().delete('services', store.get('services', 's1')!).commit();
  assert.equal(store.first('services'), undefined);
});

test('a duplicate name is a conflict and writes nothing', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  await store.txn().create('services', service('s1', 'web')).commit();
  const before = store.revision;
  await assert.rejects(store.txn().create('services', service('s2', 'web')).commit(), (e: unknown) =>
    e instanceof ShoalError && e.kind === 'conflict' && /service web already exists/.test(e.message));
  assert.equal(store.get('services', 's2'), undefined);
  assert.equal(store.revision, before);
});

test('an update with a stale version is refused as out of sequence', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  await store.txn().create('services', service('s1', 'web')).commit();
  const v1 = structuredClone(store.get('services', 's1')!);
  const a = structuredClone(v1); a.Spec.Labels = { a: '1' };
  await store.txn().update('services', a, v1).commit();
  const b = structuredClone(v1); b.Spec.Labels = { b: '1' };
  await assert.rejects(store.txn().update('services', b, v1).commit(), (e: unknown) =>
    e instanceof ShoalError && e.kind === 'sequence' && e.message === 'rpc error: code = Unknown desc = update out of sequence');
  assert.deepEqual(store.get('services', 's1')?.Spec.Labels, { a: '1' });
});

test('deleting a service frees its name', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  await store.txn().create('services', service('s1', 'web')).commit();
  await store.txn().delete('services', store.get('services', 's1')!).commit();
  await store.txn().create('services', service('s2', 'web')).commit();
  assert.equal(store.get('services', 's2')?.Spec.Name, 'web');
});

test('subscribers get create, update and delete events with previous objects', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  const seen: string[] = [];
  store.subscribe((evs) => { for (const e of evs) seen.push(`${e.kind}:${e.action}:${e.id}:${e.previous ? 'prev' : '-'}`); });
  await store.txn().create('tasks', task('t1', 's1')).commit();
  await store.mutate('tasks', 't1', (t) => { t.NodeID = 'n1'; return t; });
  await store.txn().delete('tasks', store.get('tasks', 't1')!).commit();
  assert.deepEqual(seen, ['tasks:create:t1:-', 'tasks:update:t1:prev', 'tasks:delete:t1:prev']);
});

test('task indexes follow service and node changes', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  await store.txn().create('tasks', task('t1', 's1')).create('tasks', task('t2', 's1', 'n1')).commit();
  assert.deepEqual(store.tasksOfService('s1').map((t) => t.ID).sort(), ['t1', 't2']);
  assert.deepEqual(store.tasksOfNode('n1').map((t) => t.ID), ['t2']);
  await store.mutate('tasks', 't1', (t) => { t.NodeID = 'n2'; return t; });
  assert.deepEqual(store.tasksOfNode('n2').map((t) => t.ID), ['t1']);
  await store.txn().delete('tasks', store.get('tasks', 't2')!).commit();
  assert.deepEqual(store.tasksOfNode('n1'), []);
  assert.deepEqual(store.tasksOfService('s1').map((t) => t.ID), ['t1']);
  // An update under the same service and node: listed once, as it now is.
  await store.mutate('tasks', 't1', (t) => { t.Status = { ...t.Status, State: 'running' }; return t; });
  assert.deepEqual(store.tasksOfNode('n2').map((t) => [t.ID, t.Status.State]), [['t1', 'running']]);
  assert.deepEqual(store.tasksOfService('s1').map((t) => [t.ID, t.Status.State]), [['t1', 'running']]);
  await store.mutate('tasks', 't1', (t) => { t.NodeID = 'n3'; return t; });
  assert.deepEqual(store.tasksOfNode('n2'), []);
  assert.deepEqual(store.tasksOfNode('n3').map((t) => t.ID), ['t1']);
  await store.txn().delete('tasks', store.get('tasks', 't1')!).commit();
  assert.deepEqual([store.tasksOfNode('n3'), store.tasksOfService('s1')], [[], []]);
});

test('mutate retries when another writer changed the object in between', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  await store.txn().create('tasks', task('t1', 's1')).commit();
  let calls = 0;
  const result = await store.mutate('tasks', 't1', (t) => {
    calls++;
    if (calls === 1) {
      // Another writer sneaks in before our write lands.
      const other = structuredClone(store.get('tasks', 't1')!);
      other.DesiredState = 'shutdown';
      void store.txn().update('tasks', other, store.get('tasks', 't1')).commit();
    }
    t.NodeID = 'n1';
    return t;
  });
  assert.ok(calls >= 2, `change ran ${calls} times`);
  assert.equal(result?.NodeID, 'n1');
  const stored = store.get('tasks', 't1')!;
  assert.equal(stored.NodeID, 'n1');
  assert.equal(stored.DesiredState, 'shutdown', 'the other writer\'s change survives');
});

test('commitInBatches splits large writes and reports failed batches', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  const builds = Array.from({ length: 300 }, (_, i) => (t: import('../../../src/store/store').StoreTxn) => { t.create('tasks', task(`t${i}`, 's1')); });
  const { failed } = await commitInBatches(store, builds);
  assert.equal(failed, 0);
  assert.equal(store.count('tasks'), 300);
});
