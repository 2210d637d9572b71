import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Service, Task, TaskState } from '../../../src/model/types';
import { silentLogger } from '../../../src/common/log';
import { nowIso } from '../../../src/common/time';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';
import { startOrchestrator } from '../../../src/manager/orchestrator/loop';
import { startScheduler } from '../../../src/manager/scheduler/loop';
import { startAllocator } from '../../../src/manager/allocator/loop';
import { STEP_SLOTS } from '../../../src/manager/orchestrator/task';
import { makeNode, makeService } from './fixtures';
import { untilStore as until } from '../../helpers/store-wait';


// As the daemon wires them (daemon/manager-parts.ts): the scheduler places
// new tasks for the orchestrator; { placer: false } leaves that out.
async function cluster(o: { placer?: boolean } = {}) {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  await store.txn().create('cluster', {
    ID: 'cluster1', Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't',
    Spec: { Orchestration: { TaskHistoryRetentionLimit: 5 } }, TLSInfo: {}, RootRotationInProgress: false,
    DefaultAddrPool: [], SubnetSize: 24, DataPathPort: 4789, JoinTokens: { Worker: 'w', Manager: 'm' },
  }).create('nodes', makeNode('node1', { labels: { zone: 'a' } })).commit();
  const scheduler = startScheduler({ store, log: silentLogger });
  await scheduler.settled();
  const orchestrator = startOrchestrator({ store, log: silentLogger, ...(o.placer === false ? {} : { placer: scheduler }) });
  const allocator = startAllocator({ store, log: silentLogger });
  const stop = async (): Promise<void> => {
    orchestrator.stop();
    allocator.stop();
    scheduler.stop();
    await Promise.all([orchestrator.settled(), allocator.settled(), scheduler.settled()]);
    await store.close();
  };
  return { store, orchestrator, scheduler, allocator, stop };
}

const tasksOf = (store: Store, id: string): Task[] => store.tasksOfService(id);
// Plays the agent: report a state for a task.
async function report(store: Store, id: string, state: TaskState): Promise<void> {
  await store.mutate('tasks', id, (t) => { t.Status = { Timestamp: nowIso(), State: state, Message: state }; return t; });
}

test('loop: a created service gets its tasks created and assigned; scale down and delete clean up', async () => {
  const { store, stop } = await cluster();
  try {
    const svc: Service = makeService('svc1', { replicas: 3, template: { ContainerSpec: { Image: 'nginx' }, RestartPolicy: { Delay: 0 } } });
    await store.txn().create('services', svc).commit();

    await until(store, () => {
      const ts = tasksOf(store, 'svc1');
      return ts.length === 3 && ts.every((t) => t.Status.State === 'assigned' && t.NodeID === 'node1');
    }, '3 assigned tasks');
    const ts = tasksOf(store, 'svc1');
    assert.deepEqual(ts.map((t) => t.Slot).sort(), [1, 2, 3]);
    assert.ok(ts.every((t) => t.Status.Message === 'scheduler assigned task to node' && t.DesiredState === 'running'));

    // The agent runs them; one fails and is replaced in its slot (delay 0).
    for (const t of ts) await report(store, t.ID, 'running');
    const victim = ts.find((t) => t.Slot === 2)!;
    await report(store, victim.ID, 'failed');
    await until(store, () => tasksOf(store, 'svc1').some((t) => t.Slot === 2 && t.ID !== victim.ID && t.Status.State === 'assigned'), 'a replacement in slot 2');
    assert.equal(store.get('tasks', victim.ID)?.DesiredState, 'shutdown');

    // Scale to 1: the running task of slot 3 is set to remove and deleted once
    // the agent reports it down; slot 2's replacement never ran, so it goes at once.
    const cur = store.get('services', 'svc1')!;
    await store.txn().update('services', { ...cur, Spec: { ...cur.Spec, Mode: { Replicated: { Replicas: 1 } } } }).commit();
    await until(store, () => tasksOf(store, 'svc1').filter((t) => t.DesiredState === 'running').length === 1
      && tasksOf(store, 'svc1').filter((t) => t.DesiredState === 'remove').length === 1, 'slot 3 set to remove');
    assert.deepEqual(tasksOf(store, 'svc1').map((t) => t.Slot).sort(), [1, 3]);
    for (const t of tasksOf(store, 'svc1').filter((x) => x.DesiredState === 'remove')) await report(store, t.ID, 'shutdown');
    await until(store, () => !tasksOf(store, 'svc1').some((t) => t.DesiredState === 'remove'), 'removed tasks deleted');

    // Delete the service: everything goes.
    await store.txn().delete('services', store.get('services', 'svc1')!).commit();
    await until(store, () => tasksOf(store, 'svc1').every((t) => t.DesiredState === 'remove'), 'all tasks set to remove');
    for (const t of tasksOf(store, 'svc1')) if (t.Status.State === 'running' || t.Status.State === 'assigned') await report(store, t.ID, 'shutdown');
    await until(store, () => tasksOf(store, 'svc1').length === 0, 'no tasks left');
  } finally {
    await stop();
  }
});

test('loop: a task no node can take waits as pending with the reason, and is placed when a node fits', async () => {
  const { store, scheduler, orchestrator, allocator, stop } = await cluster();
  try {
    const svc = makeService('svc2', { replicas: 1, template: { ContainerSpec: { Image: 'nginx' }, Placement: { Constraints: ['node.labels.zone==b'] } } });
    await store.txn().create('services', svc).commit();
    // The allocator moves it to pending, then the scheduler notes why it cannot be placed.
    await until(store, () => tasksOf(store, 'svc2')[0]?.Status.State === 'pending' && !!tasksOf(store, 'svc2')[0]?.Status.Err, 'a pending task with its reason');
    const t = tasksOf(store, 'svc2')[0]!;
    assert.equal(t.Status.Err, 'no suitable node (scheduling constraints not satisfied on 1 node)');
    assert.equal(t.Status.Message, 'pending task scheduling');
    // Settled means no write loop on the pending task.
    await Promise.all([scheduler.settled(), orchestrator.settled(), allocator.settled()]);
    const version = store.get('tasks', t.ID)!.Version.Index;
    await Promise.all([scheduler.settled(), orchestrator.settled(), allocator.settled()]);
    assert.equal(store.get('tasks', t.ID)!.Version.Index, version);

    await store.txn().create('nodes', makeNode('node2', { labels: { zone: 'b' } })).commit();
    await until(store, () => store.get('tasks', t.ID)?.NodeID === 'node2' && store.get('tasks', t.ID)?.Status.State === 'assigned', 'placed on the new node');
  } finally {
    await stop();
  }
});

test('loop: 100 replicas are written in at most two transactions', async () => {
  const { store, stop } = await cluster();
  try {
    const revisions = new Set<number>();
    store.subscribe((evs) => { for (const e of evs) if (e.kind === 'tasks' && e.action === 'create') revisions.add(e.revision); });
    await store.txn().create('services', makeService('svc3', { replicas: 100 })).commit();
    await until(store, () => tasksOf(store, 'svc3').length === 100 && tasksOf(store, 'svc3').every((t) => t.Status.State === 'assigned'), '100 assigned tasks');
    assert.ok(revisions.size <= 2, `${revisions.size} transactions`);
  } finally {
    await stop();
  }
});

for (const placer of [true, false]) {
  test(`loop: ${placer ? 'a new task is created assigned: one write, the scheduler placed it first' : 'without the placer a new task is created pending, then assigned: two writes'}`, async () => {
    const { store, stop } = await cluster({ placer });
    try {
      const created: string[] = [];
      let writes = 0;
      store.subscribe((evs) => {
        for (const e of evs) {
          if (e.kind !== 'tasks') continue;
          writes++;
          if (e.action === 'create') created.push((e.object as Task).Status.State);
        }
      });
      await store.txn().create('services', makeService('svc5', { replicas: 10 })).commit();
      await until(store, () => tasksOf(store, 'svc5').length === 10 && tasksOf(store, 'svc5').every((t) => t.Status.State === 'assigned' && t.NodeID === 'node1'), '10 assigned tasks');
      assert.deepEqual(new Set(created), new Set([placer ? 'assigned' : 'pending']));
      assert.equal(writes, placer ? 10 : 20);
      assert.ok(tasksOf(store, 'svc5').every((t) => t.Status.Message === 'scheduler assigned task to node'));
    } finally {
      await stop();
    }
  });
}

// The dispatcher sends a node its new tasks once per batch of store events:
// written in slot order, spread placement gave each node one task per
// transaction (write-order.ts).
for (const placer of [true, false]) {
  test(`loop: a big service's new tasks are written a node's tasks together, in few transactions each (${placer ? 'placed at creation' : 'placed by a scheduler pass'})`, async () => {
    const { store, stop } = await cluster({ placer });
    try {
      const nodes = Array.from({ length: 199 }, (_, i) => makeNode(`n${String(i).padStart(3, '0')}`));
      for (let i = 0; i < nodes.length; i += 50) {
        const txn = store.txn();
        for (const n of nodes.slice(i, i + 50)) txn.create('nodes', n);
        await txn.commit();
      }
      // 1,600 tasks over 200 nodes: 8 each, about 13 transactions.
      const revisions = new Map<string, Set<number>>();
      store.subscribe((evs) => {
        for (const e of evs) {
          // The write that placed it: the create (placed at creation) or the pass's update.
          if (e.kind !== 'tasks' || (e.object as Task | undefined)?.Status.State !== 'assigned' || (e.previous as Task | undefined)?.Status.State === 'assigned') continue;
          const node = (e.object as Task).NodeID ?? '';
          let set = revisions.get(node);
          if (!set) revisions.set(node, (set = new Set()));
          set.add(e.revision);
        }
      });
      await store.txn().create('services', makeService('big', { replicas: 1600 })).commit();
      await until(store, () => tasksOf(store, 'big').filter((t) => t.Status.State === 'assigned').length === 1600, '1,600 assigned tasks');
      assert.equal(revisions.size, 200, 'spread over every node');
      const all = new Set([...revisions.values()].flatMap((s) => [...s]));
      assert.ok(all.size >= 10, `written in ${all.size} transactions`);
      // Each node's 8 in one transaction, or two where a transaction ends among them (slot order: 8).
      const worst = Math.max(...[...revisions.values()].map((s) => s.size));
      assert.ok(worst <= 2, `a node's tasks came in ${worst} transactions`);
    } finally {
      await stop();
    }
  });
}

test('loop: a restart delay is honoured through a timer, then the replacement is started', async () => {
  const { store, stop } = await cluster();
  try {
    await store.txn().create('services', makeService('svc4', { replicas: 1, template: { ContainerSpec: { Image: 'x' }, RestartPolicy: { Delay: 200_000_000 } } })).commit();
    await until(store, () => tasksOf(store, 'svc4')[0]?.Status.State === 'assigned', 'an assigned task');
    const first = tasksOf(store, 'svc4')[0]!;
    await report(store, first.ID, 'running');
    const failedAt = Date.now();
    await report(store, first.ID, 'failed');
    await until(store, () => tasksOf(store, 'svc4').some((t) => t.ID !== first.ID && t.DesiredState === 'ready'), 'a replacement held back');
    await until(store, () => tasksOf(store, 'svc4').some((t) => t.ID !== first.ID && t.DesiredState === 'running'), 'the replacement started');
    assert.ok(Date.now() - failedAt >= 190, 'not before the delay');
  } finally {
    await stop();
  }
});

test('loop: a pass is decided in slices, and an orchestrator stopped (deposed) in the middle of one writes none of it', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  try {
    await store.txn().create('nodes', makeNode('node1')).create('services', makeService('big', { replicas: 5000 })).commit();
    let made = 0;
    let turns = 0;
    let turnsAtStop = -1;
    let turnsAtFirst = -1;
    let ticking = true;
    const tick = (): void => { turns++; if (ticking) setImmediate(tick); };
    setImmediate(tick);
    // Deposed halfway through deciding the 5,000 new tasks.
    const orchestrator = startOrchestrator({
      store, log: silentLogger, sliceMs: 0,
      newId: () => { if (++made === 1) turnsAtFirst = turns; if (made === 2500) { turnsAtStop = turns; orchestrator.stop(); } return `t${made}`; },
    });
    await until(store, () => turnsAtStop >= 0, 'the pass reaches its 2,500th new task');
    await orchestrator.settled();
    ticking = false;
    assert.ok(turnsAtStop > turnsAtFirst, 'the event loop turned between the pass\'s 1st and 2,500th new task');
    assert.ok(made < 5000 && made <= 2500 + STEP_SLOTS, `the pass stopped deciding at its next pause (${made} tasks decided)`);
    assert.equal(store.tasksOfService('big').length, 0, 'nothing of the pass was written');
  } finally {
    await store.close();
  }
});

test('loop: a sliced pass makes all 5,000 tasks of a big service', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  const orchestrator = startOrchestrator({ store, log: silentLogger, sliceMs: 0 });
  try {
    await store.txn().create('nodes', makeNode('node1')).create('services', makeService('big', { replicas: 5000 })).commit();
    await until(store, () => store.tasksOfService('big').length === 5000, '5,000 tasks');
    await orchestrator.settled();
    assert.deepEqual(new Set(store.tasksOfService('big').map((t) => t.Slot)).size, 5000, 'one task per slot');
  } finally {
    orchestrator.stop();
    await store.close();
  }
});
