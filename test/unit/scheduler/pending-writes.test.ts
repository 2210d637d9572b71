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
