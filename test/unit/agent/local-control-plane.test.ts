import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/log';
import { LocalControlPlane } from '../../../src/agent/local-control-plane';
import type { Compare, Op } from '../../../src/store/backend';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';
import type { TaskStatus } from '../../../src/model/types';
import { makeTask } from './fakes';

// A memory backend that counts the transactions it is given.
class CountingBackend extends MemoryBackend {
  txns = 0;
  override txn(compares: Compare[], ops: Op[]) { this.txns++; return super.txn(compares, ops); }
}

const running = (ts: string): TaskStatus => ({ Timestamp: ts, State: 'running', Message: 'started', PortStatus: {} });

async function storeWithTasks(n: number) {
  const backend = new CountingBackend();
  const store = await Store.open(backend, silentLogger);
  const txn = store.txn();
  for (let i = 0; i < n; i++) txn.create('tasks', makeTask(`t${i}`, { Slot: i + 1 }));
  await txn.commit();
  backend.txns = 0;
  return { backend, store, cp: new LocalControlPlane(store) };
}

test('status reports of many tasks at once go to the store in a few transactions, each applied', async () => {
  const { backend, store, cp } = await storeWithTasks(60);
  const ts = '2026-01-01T00:00:01.000000000Z';
  await Promise.all(Array.from({ length: 60 }, (_, i) => cp.updateTaskStatus(`t${i}`, running(ts))));
  for (let i = 0; i < 60; i++) assert.equal(store.get('tasks', `t${i}`)!.Status.State, 'running');
  assert.equal(store.get('tasks', 't0')!.UpdatedAt, ts);
  assert.equal(backend.txns, 2, 'one transaction per 50 tasks, not one per task');
  await store.close();
});

test('a batch refused because one task changed meanwhile is written task by task; regressions are ignored', async () => {
  const { store, cp } = await storeWithTasks(3);
  await cp.updateTaskStatus('t0', running('2026-01-01T00:00:01.000000000Z'));
  // The orchestrator changes t1 between the agent's read and its write.
  const t1 = store.get('tasks', 't1')!;
  const writes = [
    cp.updateTaskStatus('t0', { Timestamp: '2026-01-01T00:00:02.000000000Z', State: 'preparing', Message: 'preparing' }),
    cp.updateTaskStatus('t1', running('2026-01-01T00:00:02.000000000Z')),
    cp.updateTaskStatus('t2', running('2026-01-01T00:00:02.000000000Z')),
  ];
  await store.txn().update('tasks', { ...t1, DesiredState: 'shutdown' }).commit();
  await Promise.all(writes);
  assert.equal(store.get('tasks', 't0')!.Status.State, 'running', 'no regression');
  assert.equal(store.get('tasks', 't1')!.Status.State, 'running');
  assert.equal(store.get('tasks', 't1')!.DesiredState, 'shutdown', 'the other writer\'s change is kept');
  assert.equal(store.get('tasks', 't2')!.Status.State, 'running');
  await store.close();
});
