import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nowIso } from '../../../src/common/time';
import { T0 } from './fixtures';
import { NS, SEC, type UpdateWorld, manualRollback, runningService, setImage } from './update-fixtures';

// Update failure semantics (SwarmKit updater.go): a task the update made that
// stops on its own before it ran or within Monitor after it started counts;
// when failures / slots of the update > MaxFailureRatio, FailureAction
// pauses, rolls back (Spec <= PreviousSpec) or is ignored (continue). A
// failing rollback pauses; it is never rolled back.

// The newest task of a slot.
const newest = (w: UpdateWorld, slot: number) => { const ts = w.inSlot('s', slot); return ts[ts.length - 1]!; };

// Replaces slot 1 (stop-first) so that its new task runs at the current time.
function firstSlotRunning(w: UpdateWorld): string {
  w.run('s');
  w.step();
  w.runAll('s');
  const t = newest(w, 1);
  assert.equal(t.Status.State, 'running');
  assert.equal(t.Spec.ContainerSpec?.Image, 'img:2');
  return t.ID;
}

test('pause: a new task failing within Monitor pauses the update with its ID; nothing more is replaced', () => {
  const w = runningService(3, { update: { Monitor: 5 * NS, FailureAction: 'pause' } });
  setImage(w, 'img:2');
  const id = firstSlotRunning(w);
  w.tick(4 * SEC);
  w.setState(id, 'failed');
  w.settle('s');
  assert.deepEqual(w.status(), {
    State: 'paused', StartedAt: nowIso(T0),
    Message: `update paused due to failure or early termination of task ${id}`,
  });
  // Stays paused: the other slots keep the old image; the failed slot is restarted as its policy says.
  for (let i = 0; i < 5; i++) { w.tick(10 * SEC); w.steps(); }
  assert.equal(w.status()?.State, 'paused');
  assert.deepEqual(w.wanted(), ['1:img:2:running', '2:img:1:running', '3:img:1:running']);
});

test('pause is the default FailureAction', () => {
  const w = runningService(2);
  setImage(w, 'img:2');
  const id = firstSlotRunning(w);
  w.setState(id, 'complete');     // early termination counts too
  w.settle('s');
  assert.equal(w.status()?.State, 'paused');
});

test('a task that fails before it ever ran counts (rejected)', () => {
  const w = runningService(2);
  setImage(w, 'img:2');
  w.run('s');
  w.step();
  const t = newest(w, 1);
  w.setState(t.ID, 'rejected');
  w.settle('s');
  assert.equal(w.status()?.State, 'paused');
  assert.match(w.status()!.Message!, new RegExp(t.ID));
});

test('a failure after the Monitor window does not count; the update goes on', () => {
  const w = runningService(2, { update: { Monitor: 5 * NS, Delay: 10 * NS } });
  setImage(w, 'img:2');
  const id = firstSlotRunning(w);
  w.tick(6 * SEC);
  w.setState(id, 'failed');
  w.settle('s');
  assert.equal(w.status()?.State, 'updating');
  w.tick(4 * SEC); w.steps();
  assert.deepEqual(w.wanted(), ['1:img:2:running', '2:img:2:running']);
  // Done at T0+10s + Delay, then Delay + 1 s of watching (Delay >= Monitor).
  w.tick(20 * SEC); w.settle('s');
  assert.equal(w.status()?.State, 'updating');
  w.tick(1 * SEC); w.settle('s');
  assert.equal(w.status()?.State, 'completed');
});

test('a failure during the last Monitor period stops the update from completing', () => {
  const w = runningService(1, { update: { Monitor: 5 * NS } });
  setImage(w, 'img:2');
  const id = firstSlotRunning(w);
  w.tick(4 * SEC); w.settle('s');
  assert.equal(w.status()?.State, 'updating');
  w.setState(id, 'failed');
  w.tick(2 * SEC); w.settle('s');
  assert.equal(w.status()?.State, 'paused');
});

test('failures of restarted tasks, of old tasks, and of tasks that stopped before the loop watched do not count', () => {
  const w = runningService(3, { update: { Monitor: 5 * NS, Delay: 20 * NS } });
  setImage(w, 'img:2');
  const id = firstSlotRunning(w);
  w.tick(6 * SEC);
  w.setState(id, 'failed');      // after Monitor: not a failure
  w.settle('s');
  w.step();                      // its restart runs ...
  const restart = newest(w, 1);
  assert.notEqual(restart.ID, id);
  w.setState(restart.ID, 'failed'); // ... and fails at once: a restart, not the update's task
  w.setState(newest(w, 3).ID, 'failed'); // an old task fails: not the update's either
  w.settle('s');
  assert.equal(w.status()?.State, 'updating');

  // A new loop that never saw slot 2's update task run: a failure it sees
  // counts, one from before it started does not.
  const v = runningService(2, { update: { Delay: 20 * NS } });
  setImage(v, 'img:2');
  const before = firstSlotRunning(v);
  v.tick(SEC);
  v.setState(before, 'failed');
  v.runningSince.clear();
  v.since = v.now + 1;
  v.tick(SEC);
  v.settle('s');
  assert.equal(v.status()?.State, 'updating');
});

test('MaxFailureRatio: the action triggers when failures / slots of the update exceed it', () => {
  const w = runningService(4, { update: { Parallelism: 0, MaxFailureRatio: 0.5 } });
  setImage(w, 'img:2');
  w.run('s'); w.step(); w.runAll('s'); w.settle('s');
  const news = [1, 2, 3, 4].map((s) => newest(w, s));
  assert.ok(news.every((t) => t.Spec.ContainerSpec?.Image === 'img:2' && t.Status.State === 'running'));
  w.tick(SEC);
  w.setState(news[0]!.ID, 'failed');
  w.setState(news[1]!.ID, 'failed');
  w.settle('s');
  assert.equal(w.status()?.State, 'updating', '2/4 is not above 0.5');
  w.tick(SEC);
  w.setState(news[2]!.ID, 'failed');
  w.settle('s');
  assert.equal(w.status()?.State, 'paused');
  assert.equal(w.status()?.Message, `update paused due to failure or early termination of task ${news[2]!.ID}`);
});

test('continue: failures never stop the update; it completes', () => {
  const w = runningService(3, { update: { FailureAction: 'continue' } });
  setImage(w, 'img:2');
  const id = firstSlotRunning(w);
  w.setState(id, 'failed');
  w.settle('s');
  w.steps(); w.steps();
  assert.deepEqual(w.wanted(), ['1:img:2:running', '2:img:2:running', '3:img:2:running']);
  w.tick(5 * SEC); w.settle('s');
  assert.equal(w.status()?.State, 'completed');
});

test('rollback: the service goes back to PreviousSpec (then gone) with RollbackConfig, and ends rollback_completed', () => {
  const w = runningService(3, {
    update: { Parallelism: 2, FailureAction: 'rollback', Monitor: 5 * NS },
    rollback: { Parallelism: 0, Monitor: 3 * NS, Order: 'start-first' },
  });
  setImage(w, 'img:2');
  w.run('s'); w.step(); w.runAll('s');
  const failed = newest(w, 1);
  assert.equal(failed.Spec.ContainerSpec?.Image, 'img:2');
  w.tick(SEC);
  w.setState(failed.ID, 'failed');
  w.settle('s');
  const s = w.svc();
  assert.equal(s.Spec.TaskTemplate?.ContainerSpec?.Image, 'img:1');
  assert.equal(s.PreviousSpec, undefined, 'as SwarmKit: the previous spec is used up');
  assert.deepEqual(s.UpdateStatus, {
    State: 'rollback_started', StartedAt: nowIso(T0),
    Message: `update rolled back due to failure or early termination of task ${failed.ID}`,
  });
  // RollbackConfig: start-first, all at once.
  const rb = w.run('s');
  assert.ok(rb.creates.every((t) => t.Spec.ContainerSpec?.Image === 'img:1' && t.DesiredState === 'running'));
  w.steps();
  assert.deepEqual(w.wanted(), ['1:img:1:running', '2:img:1:running', '3:img:1:running']);
  assert.equal(w.status()?.State, 'rollback_started');
  w.tick(3 * SEC); w.settle('s');
  assert.equal(w.status()?.State, 'rollback_completed');
  assert.equal(w.status()?.Message, 'rollback completed');
});

test('a failing rollback pauses (RollbackConfig pause): rollback_paused, spec unchanged', () => {
  const w = runningService(2);
  setImage(w, 'img:2');
  w.steps(); w.tick(5 * SEC); w.settle('s');
  assert.equal(w.status()?.State, 'completed');
  manualRollback(w);
  w.run('s'); w.step(); w.runAll('s');
  const t = newest(w, 1);
  assert.equal(t.Spec.ContainerSpec?.Image, 'img:1');
  w.setState(t.ID, 'failed');
  w.settle('s');
  assert.equal(w.status()?.State, 'rollback_paused');
  // SwarmKit's message for FailureAction pause, also while rolling back.
  assert.equal(w.status()?.Message, `update paused due to failure or early termination of task ${t.ID}`);
  assert.equal(w.svc().Spec.TaskTemplate?.ContainerSpec?.Image, 'img:1');
  w.tick(60 * SEC); w.steps();
  assert.equal(w.status()?.State, 'rollback_paused');
  assert.equal(w.live('s').filter((x) => x.Spec.ContainerSpec?.Image === 'img:2').length, 1, 'slot 2 is not rolled back any further');
});

test('a rollback is never rolled back: RollbackConfig rollback pauses it with "rollback paused"', () => {
  const w = runningService(2, { update: { FailureAction: 'rollback' }, rollback: { FailureAction: 'rollback' } });
  setImage(w, 'img:2');
  const id = firstSlotRunning(w);
  w.setState(id, 'failed');
  w.settle('s');
  assert.equal(w.status()?.State, 'rollback_started');
  w.run('s'); w.step(); w.runAll('s');
  const t = newest(w, 1);
  assert.equal(t.Spec.ContainerSpec?.Image, 'img:1');
  w.setState(t.ID, 'failed');
  w.settle('s');
  assert.equal(w.status()?.State, 'rollback_paused');
  assert.equal(w.status()?.Message, `rollback paused due to failure or early termination of task ${t.ID}`);
  assert.equal(w.svc().Spec.TaskTemplate?.ContainerSpec?.Image, 'img:1');
});

test('rollback without a previous spec pauses instead', () => {
  const w = runningService(1, { update: { FailureAction: 'rollback' } });
  setImage(w, 'img:2');
  delete w.svc().PreviousSpec;
  const id = firstSlotRunning(w);
  w.setState(id, 'failed');
  w.settle('s');
  assert.equal(w.status()?.State, 'paused');
});
