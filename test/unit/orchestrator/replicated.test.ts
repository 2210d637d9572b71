import { test } from 'node:test';
import assert from 'node:assert/strict';
import { World, SEC, T0, slots } from './fixtures';
import { nowIso } from '../../../src/common/time';
import { reconcileService, reconcileServiceSteps } from '../../../src/manager/orchestrator/reconcile';
import { STEP_SLOTS, groupSlots, groupSlotsSteps } from '../../../src/manager/orchestrator/task';

test('a new replicated service gets one task per slot, shaped as Docker shapes it', () => {
  const w = new World();
  const s = w.addService('s', { replicas: 3 });
  const plan = w.run('s');
  assert.equal(plan.creates.length, 3);
  assert.deepEqual(slots(plan.creates), [1, 2, 3]);
  for (const t of plan.creates) {
    assert.equal(t.ServiceID, 's');
    assert.equal(t.DesiredState, 'running');
    assert.deepEqual(t.Labels, {});
    // No network and no port: nothing for the allocator, so `pending` at once.
    assert.deepEqual(t.Status, { Timestamp: nowIso(T0), State: 'pending', Message: 'pending task scheduling' });
    assert.deepEqual(t.Spec, s.Spec.TaskTemplate);
    assert.notEqual(t.Spec, s.Spec.TaskTemplate, 'the spec is a copy');
    assert.equal(t.NodeID, undefined);
    assert.equal(t.CreatedAt, nowIso(T0));
    assert.deepEqual(t.Version, { Index: 0 });
  }
  assert.ok(w.plan('s').empty, 'a second pass changes nothing');
});

test('a task with a network or a published port to allocate starts `new`, for the allocator', () => {
  const w = new World();
  w.addService('net', { template: { ContainerSpec: { Image: 'nginx:1' }, Networks: [{ Target: 'backend' }] } });
  const ports = w.addService('ports', {});
  ports.Spec.EndpointSpec = { Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'host' }] };
  const legacy = w.addService('legacy', {});
  legacy.Spec.Networks = [{ Target: 'backend' }];
  const allocated = w.addService('allocated', {});
  allocated.Endpoint = { Spec: {}, Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 30000, PublishMode: 'ingress' }] };
  for (const id of ['net', 'ports', 'legacy', 'allocated']) {
    const [t] = w.run(id).creates;
    assert.deepEqual(t?.Status, { Timestamp: nowIso(T0), State: 'new', Message: 'created' }, id);
  }
});

test('scaling: up fills the next slots, down removes the highest on one node, then the reaper deletes them', () => {
  const w = new World();
  w.addNode('n1');
  w.addService('s', { replicas: 3 });
  w.settle('s');
  w.runAll('s');
  w.services.get('s')!.Spec.Mode = { Replicated: { Replicas: 5 } };
  const up = w.run('s');
  assert.deepEqual(slots(up.creates), [4, 5]);
  assert.equal(up.updates.size, 0);
  w.runAll('s');

  w.services.get('s')!.Spec.Mode = { Replicated: { Replicas: 2 } };
  const down = w.run('s');
  assert.equal(down.creates.length, 0);
  assert.deepEqual([...down.updates.values()].map((t) => [t.Slot, t.DesiredState]).sort(), [[3, 'remove'], [4, 'remove'], [5, 'remove']]);
  assert.ok(w.plan('s').empty, 'nothing to delete while the containers still run');
  w.runAll('s'); // the agent shuts them down
  const reaped = w.run('s');
  assert.equal(reaped.deletes.size, 3);
  assert.deepEqual(slots(w.of('s')), [1, 2]);
});

test('scale-down balances nodes: it removes copies from the node holding the most', () => {
  const w = new World();
  w.addNode('a'); w.addNode('b');
  w.addService('s', { replicas: 4 });
  w.settle('s');
  w.runAll('s', ['a', 'a', 'a', 'b']);
  w.services.get('s')!.Spec.Mode = { Replicated: { Replicas: 2 } };
  const plan = w.run('s');
  const removed = [...plan.updates.values()].filter((t) => t.DesiredState === 'remove');
  assert.deepEqual(removed.map((t) => t.NodeID), ['a', 'a']);
  assert.deepEqual(w.live('s').map((t) => t.NodeID).sort(), ['a', 'b']);
});

test('scale-down prefers tasks that are not running', () => {
  const w = new World();
  w.addNode('a');
  w.addService('s', { replicas: 3 });
  w.settle('s');
  w.runAll('s');
  w.setState(w.inSlot('s', 1)[0]!.ID, 'preparing');
  w.services.get('s')!.Spec.Mode = { Replicated: { Replicas: 2 } };
  const plan = w.run('s');
  assert.deepEqual([...plan.updates.values()].map((t) => t.Slot), [1]);
});

test('scaling back up reuses freed slot numbers while the old tasks still stop', () => {
  const w = new World();
  w.addNode('a');
  w.addService('s', { replicas: 3 });
  w.settle('s');
  w.runAll('s');
  w.services.get('s')!.Spec.Mode = { Replicated: { Replicas: 1 } };
  w.run('s');
  w.services.get('s')!.Spec.Mode = { Replicated: { Replicas: 3 } };
  const up = w.run('s');
  assert.deepEqual(slots(up.creates), [2, 3]);
  assert.equal(up.updates.size, 0, 'the tasks being removed are left to stop');
});

test('a deleted service: every task desired remove; deleted once down or if never assigned', () => {
  const w = new World();
  w.addNode('a');
  w.addService('s', { replicas: 3 });
  w.settle('s');
  w.runAll('s');
  w.setState(w.inSlot('s', 3)[0]!.ID, 'pending');
  w.tasks.set(w.inSlot('s', 3)[0]!.ID, { ...w.inSlot('s', 3)[0]!, NodeID: undefined });
  w.services.delete('s');
  const plan = w.run('s');
  assert.equal([...plan.updates.values()].filter((t) => t.DesiredState === 'remove').length, 2);
  assert.equal(plan.deletes.size, 1, 'the never-assigned task goes at once');
  w.runAll('s');
  assert.equal(w.run('s').deletes.size, 2);
  assert.equal(w.of('s').length, 0);
});

test('100 replicas are decided in one pass', () => {
  const w = new World();
  w.addService('s', { replicas: 100 });
  const plan = w.run('s');
  assert.equal(plan.creates.length, 100);
  assert.equal(new Set(plan.creates.map((t) => t.Slot)).size, 100);
});

test('node down: its tasks are replaced elsewhere at once (no restart delay), without waiting for them', () => {
  const w = new World();
  w.addNode('a'); w.addNode('b');
  w.addService('s', { replicas: 2 });
  w.settle('s');
  w.runAll('s', ['a', 'b']);
  w.nodes.set('a', { ...w.nodes.get('a')!, Status: { State: 'down', Message: 'heartbeat failure', Addr: '' } });
  const plan = w.run('s');
  const old = w.onNode('s', 'a')[0]!;
  assert.equal(old.DesiredState, 'shutdown');
  assert.equal(old.Status.State, 'running', 'what the node last said stays until it says more');
  const repl = plan.creates[0]!;
  assert.equal(repl.Slot, old.Slot);
  assert.equal(repl.NodeID, undefined, 'the scheduler places it (on a ready node)');
  assert.equal(repl.DesiredState, 'running', 'a lost node is not a failing task: no restart delay, and a down node is not waited for');
  assert.equal(plan.wakeAt, undefined);
  assert.ok(w.plan('s').empty, 'nothing more while the node is down');
  w.runAll('s', ['b']);
  assert.equal(w.live('s').length, 2);
  assert.deepEqual(w.onNode('s', 'b').map((t) => t.Status.State), ['running', 'running']);

  // The node comes back: its agent reports the moved task shut down; nothing else changes.
  w.nodes.set('a', { ...w.nodes.get('a')!, Status: { State: 'ready', Addr: '10.0.0.1' } });
  assert.ok(w.plan('s').empty, 'a node back is not given its tasks back');
  w.setState(old.ID, 'shutdown');
  assert.ok(w.plan('s').empty);
  assert.equal(w.live('s').length, 2);
});

test('node down and back before the replacement ran: the old task stays shut down, the replacement stays', () => {
  const w = new World();
  w.addNode('a'); w.addNode('b');
  w.addService('s', { replicas: 1 });
  w.settle('s');
  w.runAll('s', ['a']);
  const old = w.onNode('s', 'a')[0]!;
  w.nodes.set('a', { ...w.nodes.get('a')!, Status: { State: 'down', Addr: '' } });
  const repl = w.run('s').creates[0]!;
  w.nodes.set('a', { ...w.nodes.get('a')!, Status: { State: 'ready', Addr: '10.0.0.1' } });
  const again = w.plan('s');
  assert.ok(again.empty, 'no flip-flop when the node returns');
  assert.equal(w.tasks.get(old.ID)!.DesiredState, 'shutdown');
  assert.equal(w.tasks.get(repl.ID)!.DesiredState, 'running');
});

test('node down under a restart policy with max attempts: a replacement counts as an attempt', () => {
  const w = new World();
  w.addNode('a'); w.addNode('b');
  w.addService('s', { replicas: 1, template: { ContainerSpec: { Image: 'nginx:1' }, RestartPolicy: { Condition: 'any', MaxAttempts: 1 } } });
  w.settle('s');
  w.runAll('s', ['a']);
  w.nodes.set('a', { ...w.nodes.get('a')!, Status: { State: 'down', Addr: '' } });
  assert.equal(w.run('s').creates.length, 1);
});

test('drain: the replacement starts without delay once the old task stopped (or after a minute)', () => {
  const w = new World();
  w.addNode('a'); w.addNode('b');
  w.addService('s', { replicas: 1 });
  w.settle('s');
  w.runAll('s', ['a']);
  w.nodes.set('a', { ...w.nodes.get('a')!, Spec: { ...w.nodes.get('a')!.Spec, Availability: 'drain' } });
  const plan = w.run('s');
  const repl = plan.creates[0]!;
  assert.equal(repl.DesiredState, 'ready');
  assert.equal(repl.NodeID, undefined, 'the scheduler picks its node');
  assert.equal(plan.wakeAt, T0 + 60 * SEC, 'waits for the old task, at most a minute');
  assert.ok(w.plan('s').empty);
  w.setState(w.onNode('s', 'a')[0]!.ID, 'shutdown');
  assert.equal(w.run('s').updates.get(repl.ID)?.DesiredState, 'running');
});

test('drain: a stuck old task is waited for one minute at most', () => {
  const w = new World();
  w.addNode('a'); w.addNode('b');
  w.addService('s', { replicas: 1 });
  w.settle('s');
  w.runAll('s', ['a']);
  w.nodes.set('a', { ...w.nodes.get('a')!, Spec: { ...w.nodes.get('a')!.Spec, Availability: 'drain' } });
  const repl = w.run('s').creates[0]!;
  w.tick(59 * SEC);
  assert.ok(w.plan('s').empty);
  w.tick(1 * SEC);
  assert.equal(w.run('s').updates.get(repl.ID)?.DesiredState, 'running');
});

test('a node that stops meeting the constraints gets its task replaced; pause changes nothing', () => {
  const w = new World();
  w.addNode('a', { labels: { zone: 'x' } }); w.addNode('b', { labels: { zone: 'x' } });
  w.addService('s', { replicas: 2, template: { ContainerSpec: { Image: 'nginx' }, Placement: { Constraints: ['node.labels.zone==x'] } } });
  w.settle('s');
  w.runAll('s', ['a', 'b']);
  w.nodes.set('b', { ...w.nodes.get('b')!, Spec: { ...w.nodes.get('b')!.Spec, Availability: 'pause' } });
  assert.ok(w.plan('s').empty, 'pause keeps what runs');
  w.nodes.set('a', { ...w.nodes.get('a')!, Spec: { ...w.nodes.get('a')!.Spec, Labels: { zone: 'y' } } });
  const plan = w.run('s');
  assert.equal(w.onNode('s', 'a')[0]!.DesiredState, 'shutdown');
  assert.equal(plan.creates.length, 1);
  assert.equal(plan.creates[0]!.DesiredState, 'ready');
});

test('a big scale-up is made in bounded passes: maxCreates slots each, the plan waking at once for the rest', () => {
  const w = new World();
  const s = w.addService('s', { replicas: 10 });
  const pass = (): ReturnType<typeof reconcileService> => {
    const plan = reconcileService({ service: s, tasks: w.of('s'), nodes: w.nodes, now: w.now, newId: w.newId, maxCreates: 4 });
    w.apply(plan);
    return plan;
  };
  const p1 = pass();
  assert.deepEqual(slots(p1.creates), [1, 2, 3, 4]);
  assert.equal(p1.wakeAt, T0 + 1, 'the rest comes at the next pass');
  assert.ok(p1.creates.every((t) => t.Spec === p1.creates[0]!.Spec) && p1.creates[0]!.Spec !== s.Spec.TaskTemplate, 'one copy of the template for the pass');
  assert.deepEqual(slots(pass().creates), [5, 6, 7, 8]);
  const p3 = pass();
  assert.deepEqual(slots(p3.creates), [9, 10]);
  assert.equal(p3.wakeAt, undefined, 'filled');
  assert.ok(pass().empty);
});

test('a big service is reconciled in steps: it pauses at least every STEP_SLOTS slots, and the steps decide what one call does', () => {
  const w = new World();
  w.addNode('a');
  const s = w.addService('s', { replicas: 3 * STEP_SLOTS + 5 });
  w.settle('s');
  w.runAll('s', ['a']);
  w.nodes.set('a', { ...w.nodes.get('a')!, Status: { ...w.nodes.get('a')!.Status, State: 'down' } });
  // Every task is replaced (node down): work in every per-slot loop.
  let work = 0;
  let most = 0;
  let pauses = 0;
  const newId = (): string => { work++; return w.newId(); };
  const steps = reconcileServiceSteps({ service: s, tasks: w.of('s'), nodes: w.nodes, now: w.now, newId });
  let r = steps.next();
  for (; !r.done; r = steps.next()) { pauses++; most = Math.max(most, work); work = 0; }
  const plan = r.value;
  assert.ok(most <= STEP_SLOTS, `at most ${STEP_SLOTS} tasks made between pauses (saw ${most})`);
  assert.ok(pauses >= 4, `paused ${pauses} times`);
  assert.equal(plan.creates.length, 3 * STEP_SLOTS + 5);
  assert.equal(plan.updates.size, 3 * STEP_SLOTS + 5, 'every stranded task shut down');
});

test('grouping a big service\'s tasks into slots pauses every STEP_SLOTS tasks and groups as in one go', () => {
  const w = new World();
  w.addNode('a');
  w.addService('s', { replicas: 2 * STEP_SLOTS + 10 });
  w.settle('s');
  w.runAll('s', ['a']);
  // A second task in the first STEP_SLOTS + 1 slots: their histories are sorted too.
  const tasks = w.of('s');
  const older = tasks.slice(0, STEP_SLOTS + 1).map((t) => ({ ...t, ID: `old${t.ID}`, CreatedAt: '2000-01-01T00:00:00Z' }));
  const all = [...tasks, ...older];
  const steps = groupSlotsSteps(all, false);
  let pauses = 0;
  let r = steps.next();
  for (; !r.done; r = steps.next()) pauses++;
  assert.ok(pauses >= 4, `paused ${pauses} times (${all.length} tasks grouped, ${older.length} histories sorted)`);
  assert.deepEqual(r.value, groupSlots(all, false));
  assert.equal(r.value.get(1)!.tasks[0]!.ID.startsWith('old'), true, 'oldest first');
});
