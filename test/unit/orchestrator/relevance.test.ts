import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Task, TaskState } from '../../../src/model/types';
import { silentLogger } from '../../../src/common/log';
import { nowIso } from '../../../src/common/time';
import { taskChangeMatters } from '../../../src/manager/orchestrator/relevance';
import { MemoryBackend } from '../../../src/store/memory-backend';
import type { StoreEvent } from '../../../src/store/objects';
import { Store } from '../../../src/store/store';
import { NS, World, makeService } from './fixtures';
import { runningService, setImage } from './update-fixtures';

// The orchestrator's loop skips a reconcile for task changes that
// taskChangeMatters calls irrelevant. The claim checked here: for such a
// change, a reconcile of the settled service decides nothing, before or after.

const PROGRESS: TaskState[] = ['assigned', 'accepted', 'preparing', 'ready', 'starting', 'running'];

// Walks every task of a settled service through the agent's progress, one
// state at a time, settling after each change that matters (as the loop
// would). Returns how many changes were skipped; each must leave nothing to do.
function walk(w: World, serviceId: string): number {
  let skipped = 0;
  for (const state of PROGRESS) {
    for (const t of w.of(serviceId)) {
      const prev = w.tasks.get(t.ID)!;
      if (PROGRESS.indexOf(prev.Status.State) >= PROGRESS.indexOf(state) || prev.DesiredState === 'shutdown' || prev.DesiredState === 'remove') continue;
      const next = w.setState(t.ID, state, { node: prev.NodeID ?? 'a' });
      if (taskChangeMatters(prev, next, w.services.get(serviceId), (id) => w.nodes.get(id))) { w.settle(serviceId); continue; }
      skipped++;
      const plan = w.plan(serviceId);
      assert.ok(plan.empty, `${t.ID} ${prev.Status.State} → ${state} was skipped, but a reconcile decides: ${plan.creates.length} creates, ${plan.updates.size} updates, ${plan.deletes.size} deletes`);
    }
  }
  return skipped;
}

function settled(o: Parameters<World['addService']>[1]): World {
  const w = new World();
  w.addNode('a'); w.addNode('b');
  w.addService('s', o);
  w.settle('s');
  return w;
}

test('relevance: agents\' progress on a replicated service\'s tasks needs no reconcile', () => {
  const w = settled({ replicas: 4, template: { ContainerSpec: { Image: 'img:1' }, RestartPolicy: { Delay: 0 } } });
  assert.equal(walk(w, 's'), 4 * PROGRESS.length, 'every step is skipped, the assignment to a node that can hold the task included');
  assert.equal(w.of('s').filter((t) => t.Status.State === 'running').length, 4);
});

test('relevance: the same holds for global services, replicated jobs, and a replacement waiting out its restart delay', () => {
  const g = settled({ global: true });
  assert.ok(walk(g, 's') > 0);
  const j = settled({ replicatedJob: { MaxConcurrent: 2, TotalCompletions: 4 } });
  assert.ok(walk(j, 's') > 0);

  // A task fails; its replacement waits 10 s (desired `ready`) and is started after.
  const r = settled({ replicas: 2, template: { ContainerSpec: { Image: 'img:1' }, RestartPolicy: { Delay: 10 * NS } } });
  walk(r, 's');
  const victim = r.of('s')[0]!;
  const prev = r.tasks.get(victim.ID)!;
  assert.ok(taskChangeMatters(prev, r.setState(victim.ID, 'failed'), r.services.get('s')), 'a task that stopped matters');
  r.settle('s');
  assert.ok(r.of('s').some((t) => t.DesiredState === 'ready'), 'a replacement waits');
  assert.ok(walk(r, 's') > 0);
  r.tick(10_000);
  assert.ok(!r.plan('s').empty, 'the delay is over: the replacement is started (by the loop\'s timer, not by an event)');
});

test('relevance: progress during a rolling update matters, and a reconcile then moves the update on', () => {
  const w = runningService(3);
  setImage(w, 'img:2');
  w.settle('s');
  const fresh = w.of('s').find((t) => t.Spec.ContainerSpec?.Image === 'img:2')!;
  // stop-first: the old task stops, then the new one is started and assigned.
  for (const t of w.of('s')) if (t.DesiredState === 'shutdown' && t.Status.State === 'running') w.setState(t.ID, 'shutdown');
  w.settle('s');
  const assigned = w.setState(fresh.ID, 'assigned', { node: 'a' });
  w.settle('s');
  const running = w.setState(fresh.ID, 'running');
  assert.ok(taskChangeMatters(assigned, running, w.services.get('s')));
  assert.ok(!w.plan('s').empty, 'the next slot is updated once the new task runs');
});

test('relevance: an assignment matters when the node cannot hold the task, or when the node is not known', () => {
  const w = new World();
  w.addNode('a');
  w.addNode('drained', { availability: 'drain' });
  w.addNode('down', { state: 'down' });
  w.addNode('mgr', { role: 'manager' });
  w.addService('s', { replicas: 1, template: { ContainerSpec: { Image: 'img:1' }, Placement: { Constraints: ['node.role==worker'] } } });
  w.settle('s');
  const [t] = w.of('s');
  const svc = w.services.get('s')!;
  const nodeOf = (id: string): ReturnType<typeof w.nodes.get> => w.nodes.get(id);
  const to = (node: string): Task => ({ ...t!, NodeID: node, Status: { ...t!.Status, State: 'assigned' } });
  assert.equal(t!.NodeID, undefined);
  assert.equal(taskChangeMatters(t, to('a'), svc, nodeOf), false, 'a node that can hold it');
  for (const node of ['drained', 'down', 'mgr', 'gone']) {
    assert.equal(taskChangeMatters(t, to(node), svc, nodeOf), true, node);
    // and the reconcile it triggers does move the task
    w.tasks.set(t!.ID, to(node));
    assert.ok(!w.plan('s').empty, `a reconcile replaces a task assigned to ${node}`);
    w.tasks.set(t!.ID, t!);
  }
  assert.equal(taskChangeMatters(t, to('a'), svc), true, 'no node lookup: every assignment matters');
});

test('relevance: what always matters', () => {
  const svc = makeService('s', { replicas: 1 });
  const t: Task = {
    ID: 't1', Labels: {}, Version: { Index: 1 }, CreatedAt: nowIso(0), UpdatedAt: nowIso(0), ServiceID: 's', Slot: 1, NodeID: 'a',
    Spec: svc.Spec.TaskTemplate!, DesiredState: 'running', Status: { Timestamp: nowIso(0), State: 'assigned', Message: '' },
  };
  const at = (o: Partial<Task>): Task => ({ ...t, ...o });
  const progress = at({ Status: { ...t.Status, State: 'starting' } });
  assert.equal(taskChangeMatters(t, progress, svc), false);
  assert.equal(taskChangeMatters(undefined, t, svc), true, 'created');
  assert.equal(taskChangeMatters(t, undefined, svc), true, 'deleted');
  assert.equal(taskChangeMatters(t, progress, undefined), true, 'the service is gone');
  assert.equal(taskChangeMatters(t, at({ NodeID: 'b', Status: progress.Status }), svc), true, 'moved');
  assert.equal(taskChangeMatters(t, at({ DesiredState: 'shutdown' }), svc), true, 'asked to stop');
  assert.equal(taskChangeMatters(at({ DesiredState: 'shutdown' }), at({ DesiredState: 'shutdown', Status: progress.Status }), svc), true, 'progress of a task being stopped');
  assert.equal(taskChangeMatters(t, at({ Status: { ...t.Status, State: 'rejected' } }), svc), true, 'stopped');
  assert.equal(taskChangeMatters(t, at({ Spec: { ...t.Spec }, Status: progress.Status }), svc), true, 'another spec object');
  assert.equal(taskChangeMatters(t, progress, { ...svc, UpdateStatus: { State: 'updating' } }), true, 'an update under way');
  assert.equal(taskChangeMatters(t, progress, { ...svc, UpdateStatus: { State: 'rollback_started' } }), true, 'a rollback under way');
  assert.equal(taskChangeMatters(t, progress, { ...svc, UpdateStatus: { State: 'completed' } }), false, 'an update done');
});

test('relevance: the store hands out one spec object for every version of a task, so progress is recognised', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  try {
    const svc = makeService('s', { replicas: 1 });
    const t: Task = {
      ID: 't1', Labels: {}, Version: { Index: 0 }, CreatedAt: nowIso(0), UpdatedAt: nowIso(0), ServiceID: 's', Slot: 1, NodeID: 'a',
      Spec: svc.Spec.TaskTemplate!, DesiredState: 'running', Status: { Timestamp: nowIso(0), State: 'assigned', Message: '' },
    };
    await store.txn().create('services', svc).create('tasks', t).commit();
    const seen: StoreEvent[] = [];
    const off = store.subscribe((events) => { seen.push(...events.filter((e) => e.kind === 'tasks')); });
    await store.mutate('tasks', 't1', (cur) => { cur.Status = { ...cur.Status, State: 'running' }; return cur; });
    off();
    assert.equal(seen.length, 1);
    const [e] = seen;
    assert.ok((e!.previous as Task).Spec === (e!.object as Task).Spec, 'the same spec object');
    assert.equal(taskChangeMatters(e!.previous as Task, e!.object as Task, store.get('services', 's')), false);
  } finally {
    await store.close();
  }
});
