import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/log';
import { TASK_STATES, taskStateRank, type Service, type Task, type TaskState } from '../../../src/model/types';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';
import { ServiceStatusCounts } from '../../../src/manager/controlapi/service-status';
import { makeTask } from '../agent/fakes';
import { makeNode, makeService } from '../orchestrator/fixtures';

// The counts kept from the store's events must always equal a walk over
// every task (what ServiceStatus was before): checked after each step of a
// seeded random run of task creates, updates (state, desired state, node),
// deletes, and nodes going down and up.

function walk(store: Store, s: Service): NonNullable<Service['ServiceStatus']> {
  let running = 0; let desiredRunning = 0; let completed = 0;
  for (const t of store.tasksOfService(s.ID)) {
    if (t.NodeID && store.get('nodes', t.NodeID)?.Status.State === 'down') continue;
    if (t.Status.State === 'running' && taskStateRank(t.DesiredState) <= taskStateRank('complete')) running++;
    if (t.Status.State === 'complete') completed++;
    if (t.DesiredState === 'running' || (t.DesiredState === 'complete' && taskStateRank(t.Status.State) <= taskStateRank('running'))) desiredRunning++;
  }
  const m = s.Spec.Mode ?? {};
  let desired = desiredRunning;
  if (m.Replicated) desired = m.Replicated.Replicas ?? 0;
  else if (m.ReplicatedJob) desired = Math.min(m.ReplicatedJob.MaxConcurrent ?? 1, Math.max(0, (m.ReplicatedJob.TotalCompletions ?? 1) - completed));
  return { RunningTasks: running, DesiredTasks: desired, CompletedTasks: completed };
}

function prng(seed: number): () => number {
  let x = seed >>> 0;
  return () => { x = (x * 1664525 + 1013904223) >>> 0; return x / 2 ** 32; };
}

test('ServiceStatus from counts kept by events equals a walk over every task, through 600 random changes', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  try {
    const nodes = ['n1', 'n2', 'n3'];
    const services = [makeService('rep', { replicas: 4 }), makeService('glob', { global: true }), makeService('job', { replicatedJob: { MaxConcurrent: 3, TotalCompletions: 9 } })];
    const setup = store.txn();
    for (const n of nodes) setup.create('nodes', makeNode(n));
    for (const s of services) setup.create('services', s);
    setup.create('tasks', makeTask('t0', { ServiceID: 'rep', NodeID: 'n1', Status: { Timestamp: 't', State: 'running', Message: '' } }));
    await setup.commit();
    const counts = new ServiceStatusCounts(store); // made with a task already there
    const rnd = prng(2026);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const desired: TaskState[] = ['running', 'complete', 'shutdown', 'remove'];
    let next = 1;
    for (let step = 0; step < 600; step++) {
      const tasks = store.list('tasks');
      const r = rnd();
      const txn = store.txn();
      if (r < 0.35 || !tasks.length) {
        txn.create('tasks', makeTask(`t${next++}`, {
          ServiceID: pick(services).ID, NodeID: rnd() < 0.15 ? '' : pick(nodes),
          Status: { Timestamp: 't', State: pick(TASK_STATES), Message: '' }, DesiredState: pick(desired),
        }));
      } else if (r < 0.8) {
        const t: Task = structuredClone(pick(tasks));
        const what = rnd();
        if (what < 0.5) t.Status = { ...t.Status, State: pick(TASK_STATES) };
        else if (what < 0.8) t.DesiredState = pick(desired);
        else t.NodeID = pick(nodes);
        txn.update('tasks', t);
      } else if (r < 0.9) {
        txn.delete('tasks', pick(tasks));
      } else {
        const n = structuredClone(store.get('nodes', pick(nodes))!);
        n.Status = { ...n.Status, State: n.Status.State === 'down' ? 'ready' : 'down' };
        txn.update('nodes', n);
      }
      await txn.commit();
      for (const s of services) assert.deepEqual(counts.status(s), walk(store, s), `step ${step}, service ${s.ID}`);
    }
    // The run reached every kind of count, so the comparison means something.
    const all = services.map((s) => counts.status(s));
    assert.ok(all.some((x) => x.RunningTasks > 0) && all.some((x) => x.CompletedTasks > 0), JSON.stringify(all));
  } finally {
    await store.close();
  }
});
