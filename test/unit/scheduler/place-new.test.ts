import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Task } from '../../../src/model/types';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';
import { silentLogger } from '../../../src/common/log';
import { startScheduler } from '../../../src/manager/scheduler/loop';
import { makeNode } from '../orchestrator/fixtures';

const GB = 1024 ** 3;
// A new task as the orchestrator makes it, reserving `gb` of memory.
const fresh = (id: string, gb: number, constraints: string[] = []): Task => ({
  ID: id, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Labels: {}, ServiceID: 's1', Slot: 1,
  Spec: { ContainerSpec: { Image: 'busybox' }, Resources: { Reservations: { MemoryBytes: gb * GB } }, Placement: { Constraints: constraints } },
  Status: { Timestamp: 't', State: 'pending', Message: '' }, DesiredState: 'running',
});

async function started() {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  await store.txn().create('nodes', makeNode('a', { memory: 2 * GB })).create('nodes', makeNode('b', { memory: 2 * GB })).commit();
  const sched = startScheduler({ store, log: silentLogger });
  await sched.settled();
  return { store, sched, stop: async () => { sched.stop(); await store.close(); } };
}

test('placeNew: new tasks come back assigned and spread, their room reserved at once, before any write', async () => {
  const { sched, stop } = await started();
  try {
    const placed = sched.placeNew(['t1', 't2', 't3', 't4'].map((id) => fresh(id, 1)));
    assert.equal(placed.size, 4);
    const t1 = placed.get('t1')!;
    assert.equal(t1.Status.State, 'assigned');
    assert.equal(t1.Status.Message, 'scheduler assigned task to node');
    assert.deepEqual({ ...t1, NodeID: undefined, Status: undefined, UpdatedAt: undefined }, { ...fresh('t1', 1), NodeID: undefined, Status: undefined, UpdatedAt: undefined }, 'the rest of the task is kept');
    assert.deepEqual([...placed.values()].map((t) => t.NodeID).sort(), ['a', 'a', 'b', 'b']);
    // Both nodes are full with what was placed though nothing is written yet.
    assert.equal(sched.placeNew([fresh('t5', 1)]).size, 0);
  } finally {
    await stop();
  }
});

test('placeNew: a reservation whose write failed is released; one whose task is in the store stays', async () => {
  const { store, sched, stop } = await started();
  try {
    const placed = sched.placeNew([fresh('t1', 2), fresh('t2', 2)]);
    assert.equal(placed.size, 2);
    // t1's create landed; t2's failed.
    await store.txn().create('tasks', placed.get('t1')!).commit();
    sched.release(['t1', 't2']);
    const again = sched.placeNew([fresh('t3', 2), fresh('t4', 2)]);
    assert.equal(again.size, 1, 'the room t2 held is free again, t1 still holds its node');
    assert.notEqual(again.values().next().value!.NodeID, placed.get('t1')!.NodeID);
  } finally {
    await stop();
  }
});

test('placeNew: what no node takes is left out (the scheduler writes its reason), and tasks not waiting for a node are not touched', async () => {
  const { sched, stop } = await started();
  try {
    const running: Task = { ...fresh('r1', 0), NodeID: 'a', Status: { Timestamp: 't', State: 'running', Message: '' } };
    const placed = sched.placeNew([fresh('n1', 0, ['node.labels.zone==mars']), running, fresh('ok', 0)]);
    assert.deepEqual([...placed.keys()], ['ok']);
  } finally {
    await stop();
  }
});

test('placeNew: nothing while the scheduler is stopped', async () => {
  const { sched, stop } = await started();
  sched.stop();
  assert.equal(sched.placeNew([fresh('t1', 0)]).size, 0);
  await stop();
});

// Bounded: the pass's write and the scheduler's settling are awaited below.
test('placeNew: nothing while the scheduler reads its loads at start, nor while a pass of its own is being written', { timeout: 10_000 }, async () => {
  const b = new MemoryBackend();
  const store = await Store.open(b, silentLogger);
  await store.txn().create('nodes', makeNode('a', { memory: 2 * GB })).create('tasks', fresh('p1', 1)).commit();
  // The pass's write waits until the test lets it go.
  let letGo: () => void = () => undefined;
  const held = new Promise<void>((r) => { letGo = r; });
  let passWriting: () => void = () => undefined;
  const writing = new Promise<void>((r) => { passWriting = r; });
  const realTxn = b.txn.bind(b);
  b.txn = async (c, ops) => { passWriting(); await held; return realTxn(c, ops); };
  const sched = startScheduler({ store, log: silentLogger });
  try {
    assert.equal(sched.placeNew([fresh('t1', 0)]).size, 0, 'still reading its loads');
    await writing;
    assert.equal(sched.placeNew([fresh('t2', 0)]).size, 0, 'its pass placing p1 is not counted yet');
    letGo();
    await sched.settled();
    assert.equal(store.get('tasks', 'p1')?.Status.State, 'assigned');
    assert.equal(sched.placeNew([fresh('t3', 0)]).size, 1);
  } finally {
    letGo();
    sched.stop();
    await store.close();
  }
});
