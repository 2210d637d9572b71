import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nowIso } from '../../../src/common/time';
import { isTaskDirty } from '../../../src/manager/orchestrator/dirty';
import { updateParams } from '../../../src/manager/orchestrator/update';
import { T0, makeNode } from './fixtures';
import { NS, SEC, UpdateWorld, manualRollback, runningService, setImage, updateService } from './update-fixtures';

// Rolling updates without failures: batches, Delay, Order, the Monitor
// period before `completed`, what is (not) replaced, rollbacks.

test('stop-first, parallelism 1: one slot at a time, the old task stops before the new one starts', () => {
  const w = runningService(3);
  setImage(w, 'img:2');
  const p1 = w.run('s');
  assert.deepEqual(w.status(), { State: 'updating', StartedAt: nowIso(T0), Message: 'update in progress' });
  assert.equal(p1.creates.length, 1);
  assert.equal(p1.creates[0]!.Slot, 1);
  assert.equal(p1.creates[0]!.DesiredState, 'ready', 'waits for the old task to stop');
  assert.equal(w.inSlot('s', 1)[0]!.DesiredState, 'shutdown');
  assert.ok(w.plan('s').empty, 'nothing more until the old task is down');

  for (let slot = 1; slot <= 3; slot++) {
    assert.ok(w.runningCount() <= 3);
    w.step(); // old one shuts down, the new one is assigned and started
    assert.ok(w.runningCount() <= 3, 'never more running than replicas');
    w.step(); // runs; the next slot starts
  }
  assert.deepEqual(w.wanted(), ['1:img:2:running', '2:img:2:running', '3:img:2:running']);
});

test('completed only once the last new task has run for Monitor without failing', () => {
  const w = runningService(2, { update: { Monitor: 10 * NS } });
  setImage(w, 'img:2');
  w.steps();
  assert.deepEqual(w.runningImages(), ['img:2', 'img:2']);
  assert.equal(w.status()?.State, 'updating');
  const p = w.plan('s');
  assert.equal(p.wakeAt, T0 + 10 * SEC, 'wakes up when the monitor period ends');
  w.tick(9 * SEC); w.settle('s');
  assert.equal(w.status()?.State, 'updating');
  w.tick(1 * SEC); w.settle('s');
  assert.deepEqual(w.status(), { State: 'completed', StartedAt: nowIso(T0), CompletedAt: nowIso(T0 + 10 * SEC), Message: 'update completed' });
  assert.ok(w.plan('s').empty, 'a fixpoint');
});

test('Monitor defaults to 5 s; when Delay >= Monitor, the last wait is Delay + 1 s', () => {
  assert.equal(updateParams(undefined).monitorMs, 5000);
  assert.equal(updateParams({ Monitor: 0 }).monitorMs, 5000);
  const w = runningService(1);
  setImage(w, 'img:2');
  w.steps();
  w.tick(4999); w.settle('s');
  assert.equal(w.status()?.State, 'updating');
  w.tick(1); w.settle('s');
  assert.equal(w.status()?.State, 'completed');

  const d = runningService(1, { update: { Delay: 3 * NS, Monitor: 2 * NS } });
  setImage(d, 'img:2');
  d.steps();
  // The worker sleeps Delay (3 s) after its slot, then the final watch lasts Delay + 1 s.
  assert.equal(d.plan('s').wakeAt, T0 + 7 * SEC);
  d.tick(7 * SEC); d.settle('s');
  assert.equal(d.status()?.State, 'completed');
});

test('parallelism 2: two slots at a time, the next two once both run; 0 replaces all at once', () => {
  const w = runningService(5, { update: { Parallelism: 2 } });
  setImage(w, 'img:2');
  const first = w.run('s');
  assert.deepEqual(first.creates.map((t) => t.Slot), [1, 2]);
  w.runAll('s'); w.settle('s');                    // old ones stopped, new ones assigned
  assert.equal(w.of('s').filter((t) => t.Spec.ContainerSpec?.Image === 'img:2').length, 2, 'no third while two are not running');
  w.runAll('s');                                  // both run
  const next = w.run('s');
  assert.deepEqual(next.creates.map((t) => t.Slot), [3, 4]);
  w.steps();
  assert.equal(w.runningImages().filter((i) => i === 'img:2').length, 5);

  const all = runningService(5, { update: { Parallelism: 0 } });
  setImage(all, 'img:2');
  assert.equal(all.run('s').creates.length, 5);
});

test('Delay: a worker waits Delay after its task ran before taking the next slot', () => {
  const w = runningService(4, { update: { Parallelism: 2, Delay: 10 * NS } });
  setImage(w, 'img:2');
  w.run('s');
  w.step();          // slots 1 and 2: old ones stop, new ones start
  w.runAll('s');     // and run, at T0
  const wait = w.run('s');
  assert.equal(wait.creates.length, 0);
  assert.equal(wait.wakeAt, T0 + 10 * SEC);
  w.tick(9 * SEC);
  assert.equal(w.run('s').creates.length, 0);
  w.tick(1 * SEC);
  assert.deepEqual(w.run('s').creates.map((t) => t.Slot), [3, 4]);
});

test('Delay is per worker: a task that runs late does not hold back the other worker', () => {
  const w = runningService(3, { update: { Parallelism: 2, Delay: 5 * NS } });
  setImage(w, 'img:2');
  w.run('s');
  w.runAll('s'); w.settle('s');
  const [n1, n2] = w.newTasks();
  w.setState(n1!.ID, 'running');     // slot 1 runs at T0
  w.tick(3 * SEC);
  w.setState(n2!.ID, 'running');     // slot 2 at T0+3s
  w.settle('s');
  w.tick(2 * SEC);                   // T0+5s: slot 1's worker is free again
  assert.deepEqual(w.run('s').creates.map((t) => t.Slot), [3]);
});

test('start-first: the new task runs next to the old one, which stops once the new one runs', () => {
  const w = runningService(2, { update: { Order: 'start-first' } });
  setImage(w, 'img:2');
  const p = w.run('s');
  assert.equal(p.creates.length, 1);
  assert.equal(p.creates[0]!.DesiredState, 'running');
  assert.equal(p.updates.size, 0, 'the old task keeps running');
  assert.ok(w.plan('s').empty);
  assert.equal(w.runningCount(), 2);
  w.runAll('s');                                // the new one runs next to the old one
  assert.equal(w.runningCount(), 3);
  const done = w.run('s');
  assert.deepEqual([...done.updates.values()].map((t) => `${t.Slot}:${t.Spec.ContainerSpec?.Image}:${t.DesiredState}`), ['1:img:1:shutdown']);
  assert.deepEqual(done.creates.map((t) => `${t.Slot}:${t.Spec.ContainerSpec?.Image}`), ['2:img:2'], 'and the next slot starts');
  for (let i = 0; i < 4; i++) { assert.ok(w.runningCount() >= 2, 'never fewer running than replicas'); w.step(); }
  assert.deepEqual(w.wanted(), ['1:img:2:running', '2:img:2:running']);
  w.tick(5 * SEC); w.settle('s');
  assert.equal(w.status()?.State, 'completed');
});

test('start-first keeps the old task while the new one fails and restarts', () => {
  const w = runningService(1, { update: { Order: 'start-first', FailureAction: 'continue' }, restartDelayNs: 0 });
  setImage(w, 'img:2');
  w.run('s');
  const n = w.newTasks()[0]!;
  w.setState(n.ID, 'failed', { node: 'a' });
  w.settle('s');
  assert.equal(w.of('s').find((t) => t.Spec.ContainerSpec?.Image === 'img:1')!.DesiredState, 'running', 'old one still serves');
  w.steps();
  assert.deepEqual(w.wanted(), ['1:img:2:running']);
});

test('a replicas-only change replaces nothing and leaves UpdateStatus alone', () => {
  const w = runningService(2);
  updateService(w, (s) => { s.Mode = { Replicated: { Replicas: 3 } }; });
  w.steps();
  assert.equal(w.status(), undefined);
  assert.deepEqual(w.wanted(), ['1:img:1:running', '2:img:1:running', '3:img:1:running']);
  assert.equal(w.of('s').length, 3, 'nothing replaced');
});

test('an UpdateConfig-only change replaces nothing; ForceUpdate replaces every task', () => {
  const w = runningService(2);
  updateService(w, (s) => { s.UpdateConfig = { Parallelism: 2, Delay: 1 * NS }; });
  w.steps();
  assert.equal(w.status(), undefined);
  assert.equal(w.of('s').length, 2);
  updateService(w, (s) => { s.TaskTemplate = { ...s.TaskTemplate, ForceUpdate: 1 }; });
  const p = w.run('s');
  assert.equal(w.status()?.State, 'updating');
  assert.equal(p.creates.length, 2);
  w.steps();
  assert.equal(w.live('s').filter((t) => t.Spec.ForceUpdate === 1 && t.Status.State === 'running').length, 2);
});

test('scale-up during an update: new slots get the new spec and are not part of the update', () => {
  const w = runningService(2);
  setImage(w, 'img:2');
  w.svc().Spec.Mode = { Replicated: { Replicas: 3 } };
  const p = w.run('s');
  assert.deepEqual(p.creates.map((t) => `${t.Slot}:${t.Spec.ContainerSpec?.Image}:${t.DesiredState}`).sort(), ['1:img:2:ready', '3:img:2:running']);
  // Slot 3's task does not hold the single worker: slot 2 goes as soon as slot 1 runs.
  w.runAll('s'); w.settle('s'); w.runAll('s');
  assert.deepEqual(w.run('s').creates.map((t) => t.Slot), [2]);
  w.steps();
  assert.deepEqual(w.wanted(), ['1:img:2:running', '2:img:2:running', '3:img:2:running']);
});

test('a paused update replaces nothing more, even later; the next update starts afresh', () => {
  const w = runningService(2);
  setImage(w, 'img:2');
  w.svc().UpdateStatus = { State: 'paused', StartedAt: nowIso(T0), Message: 'update paused due to failure or early termination of task x' };
  const p = w.run('s');
  assert.equal(p.creates.length, 0);
  assert.equal(p.service, undefined);
  w.tick(60 * SEC);
  assert.ok(w.plan('s').empty);
  setImage(w, 'img:3');
  assert.equal(w.run('s').creates.length, 1);
  assert.equal(w.status()?.State, 'updating');
});

test('docker service rollback: rollback_started (control API) goes back with RollbackConfig, ends rollback_completed', () => {
  const w = runningService(4, { update: { Parallelism: 1 }, rollback: { Parallelism: 0, Monitor: 2 * NS } });
  setImage(w, 'img:2');
  for (let i = 0; i < 12; i++) w.step();
  w.tick(5 * SEC); w.settle('s');
  assert.equal(w.status()?.State, 'completed');
  assert.deepEqual(w.runningImages(), ['img:2', 'img:2', 'img:2', 'img:2']);

  w.tick(SEC);
  manualRollback(w);
  const p = w.run('s');
  assert.equal(p.creates.length, 4, 'RollbackConfig parallelism 0: all at once');
  assert.ok(p.creates.every((t) => t.Spec.ContainerSpec?.Image === 'img:1'));
  assert.equal(p.service, undefined, 'the status stays rollback_started');
  w.steps();
  assert.deepEqual(w.runningImages(), ['img:1', 'img:1', 'img:1', 'img:1']);
  assert.equal(w.status()?.State, 'rollback_started');
  w.tick(2 * SEC); w.settle('s');   // RollbackConfig's Monitor
  assert.deepEqual(w.status(), { State: 'rollback_completed', StartedAt: nowIso(T0 + 6 * SEC), CompletedAt: nowIso(T0 + 8 * SEC), Message: 'rollback completed' });
});

test('a rollback that replaces nothing completes at once', () => {
  const w = runningService(1);
  updateService(w, (s) => { s.Labels = { x: 'y' }; });
  w.steps();
  manualRollback(w);
  w.settle('s');
  assert.equal(w.status()?.State, 'rollback_completed');
  assert.equal(w.status()?.Message, 'rollback completed');
});

test('global services update node by node and complete after Monitor', () => {
  const w = new UpdateWorld();
  w.addNode('a'); w.addNode('b');
  w.addService('g', { global: true, template: { ContainerSpec: { Image: 'x:1' } } });
  w.settle('g'); w.runAll('g'); w.settle('g');
  setImage(w, 'x:2', 'g');
  const p = w.run('g');
  assert.equal(p.creates.length, 1);
  assert.equal(p.creates[0]!.NodeID, 'a');
  w.steps('g');
  assert.deepEqual(w.live('g').map((t) => `${t.NodeID}:${t.Spec.ContainerSpec?.Image}:${t.Status.State}`).sort(), ['a:x:2:running', 'b:x:2:running']);
  w.tick(5 * SEC); w.settle('g');
  assert.equal(w.status('g')?.State, 'completed');
});

test('a new manager resumes: tasks already replaced are not redone, busy workers still count', () => {
  const w = runningService(3, { update: { Parallelism: 1 } });
  setImage(w, 'img:2');
  w.run('s');
  w.runAll('s'); w.settle('s');   // slot 1's new task is starting
  // A new loop: no observations, started now.
  w.runningSince.clear();
  w.since = w.now;
  assert.equal(w.run('s').creates.length, 0, 'the single worker is still busy with slot 1');
  w.runAll('s');
  assert.deepEqual(w.run('s').creates.map((t) => t.Slot), [2]);
});

test('isTaskDirty: spec changes are dirty; a placement-only change is not while the node still fits', () => {
  const w = runningService(1);
  const s = w.svc();
  const t = w.live('s')[0]!;
  assert.equal(isTaskDirty(t, s), false);
  // JSON drops undefined keys: a stored copy compares equal.
  assert.equal(isTaskDirty({ ...t, Spec: JSON.parse(JSON.stringify({ ...t.Spec, Networks: undefined })) }, s), false);
  const withConstraint = { ...s, Spec: { ...s.Spec, TaskTemplate: { ...s.Spec.TaskTemplate, Placement: { Constraints: ['node.labels.zone==x'] } } } };
  assert.equal(isTaskDirty(t, withConstraint, makeNode('a', { labels: { zone: 'x' } })), false);
  assert.equal(isTaskDirty(t, withConstraint, makeNode('a', { labels: { zone: 'y' } })), true);
  assert.equal(isTaskDirty(t, withConstraint), true, 'no node known: dirty');
  const newImage = { ...s, Spec: { ...s.Spec, TaskTemplate: { ...s.Spec.TaskTemplate, ContainerSpec: { Image: 'img:2' } } } };
  assert.equal(isTaskDirty(t, newImage, makeNode('a')), true);
  const forced = { ...s, Spec: { ...s.Spec, TaskTemplate: { ...s.Spec.TaskTemplate, ForceUpdate: 1 } } };
  assert.equal(isTaskDirty(t, forced), true);
});
