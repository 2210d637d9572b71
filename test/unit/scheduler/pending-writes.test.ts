import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Task } from '../../../src/model/types';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store, commitInBatches } from '../../../src/store/store';
import type { Compare, Op, TxnResult } from '../../../src/store/backend';
import { silentLogger } from '../../../src/common/log';
import { startScheduler } from '../../../src/manager/scheduler/loop';
import { makeNode } from '../orchestrator/fixtures';

const N = 5_000;
const pending = (i: number): Task => ({
  ID: `t${i}`, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Labels: {}, ServiceID: 's1', Slot: i + 1,
  Spec: { ContainerSpec: { Image: 'busybox', Env: [`PAD=${'p'.repeat(4096)}`] }, Placement: { Constraints: ['node.labels.nothing==here'] } },
  Status: { Timestamp: 't', State: 'pending', Message: '' }, DesiredState: 'running',
});

test(`${N.toLocaleString('en')} unplaceable tasks: the reason is written once, in byte-bounded batches, not again on later passes`, async () => {
  const b = new MemoryBackend();
  const store = await Store.open(b, silentLogger);
  await store.txn().create('nodes', makeNode('n1')).commit();
  await commitInBatches(store, Array.from({ length: N }, (_, i) => (t) => { t.create('tasks', pending(i)); }));
  let taskWrites = 0;
  const realTxn = b.txn.bind(b);
  b.txn = async (c: Compare[], ops: Op[]): Promise<TxnResult> => {
    taskWrites += ops.filter((o) => 'put' in o && o.put.includes('/o/tasks/')).length;
    return realTxn(c, ops);
  };
  const sched = startScheduler({ store, log: silentLogger });
  try {
    await sched.settled();
    assert.equal(taskWrites, N, 'each pending task gets its reason once');
    assert.ok(store.list('tasks').every((t) => /no suitable node/.test(t.Status.Err ?? '')));
    // A node change makes every parked task be tried again: same reason, no write.
    taskWrites = 0;
    await store.mutate('nodes', 'n1', (n) => { n.Spec.Labels = { other: 'x' }; return n; });
    await new Promise((r) => setTimeout(r, 100));
    await sched.settled();
    assert.equal(taskWrites, 0);
  } finally {
    sched.stop();
    await store.close();
  }
});

test('a scheduler that starts beside 3,000 tasks reads them in slices, counts their load, and places what arrives meanwhile', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  await store.txn().create('nodes', makeNode('a')).create('nodes', makeNode('b')).commit();
  const task = (i: number, nodeId?: string): Task => ({
    ID: `t${i}`, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Labels: {}, ServiceID: 's1', Slot: i + 1,
    Spec: { ContainerSpec: { Image: 'busybox' } },
    Status: { Timestamp: 't', State: nodeId ? 'running' : 'pending', Message: '' }, DesiredState: 'running',
    ...(nodeId ? { NodeID: nodeId } : {}),
  });
  await commitInBatches(store, Array.from({ length: 3000 }, (_, i) => (t) => { t.create('tasks', task(i, 'a')); }));
  await commitInBatches(store, Array.from({ length: 4 }, (_, i) => (t) => { t.create('tasks', task(3000 + i)); }));
  const sched = startScheduler({ store, log: silentLogger, sliceMs: 0 });
  try {
    // Arrives while the start is still reading (one task per turn with sliceMs 0).
    await store.txn().create('tasks', task(3004)).create('tasks', task(3005)).commit();
    await sched.settled();
    const placed = store.list('tasks').filter((t) => Number(t.ID.slice(1)) >= 3000);
    assert.equal(placed.length, 6);
    assert.ok(placed.every((t) => t.NodeID === 'b' && t.Status.State === 'assigned'), 'all on b: a already runs 3,000 of the service');
  } finally {
    sched.stop();
    await store.close();
  }
});
