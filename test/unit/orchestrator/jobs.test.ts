import { test } from 'node:test';
import assert from 'node:assert/strict';
import { World, slots } from './fixtures';

const jobTemplate = { ContainerSpec: { Image: 'busybox', Command: ['true'] }, RestartPolicy: { Delay: 0 } };

test('replicated job: MaxConcurrent at a time until TotalCompletions completed', () => {
  const w = new World();
  w.addNode('a');
  w.addService('j', { replicatedJob: { MaxConcurrent: 2, TotalCompletions: 5 }, template: jobTemplate, iteration: 3 });
  const first = w.run('j');
  assert.deepEqual(slots(first.creates), [0, 1], 'slots count from 0 as in SwarmKit');
  for (const t of first.creates) {
    assert.equal(t.DesiredState, 'complete');
    assert.deepEqual(t.JobIteration, { Index: 3 });
  }
  assert.ok(w.plan('j').empty, 'two running: no more');

  let rounds = 0;
  while (w.of('j').filter((t) => t.Status.State === 'complete').length < 5 && rounds++ < 10) {
    w.runAll('j');
    for (const t of w.of('j')) if (t.Status.State === 'running') w.setState(t.ID, 'complete', { exitCode: 0 });
    w.settle('j');
    assert.ok(w.of('j').filter((t) => t.Status.State !== 'complete').length <= 2, 'never more than MaxConcurrent at once');
  }
  assert.deepEqual(slots(w.of('j')), [0, 1, 2, 3, 4]);
  assert.ok(w.of('j').every((t) => t.Status.State === 'complete' && t.DesiredState === 'complete'), 'completed tasks are not restarted');
  assert.ok(w.plan('j').empty);
});

test('replicated job defaults: one task, one completion', () => {
  const w = new World();
  w.addService('j', { replicatedJob: {}, template: jobTemplate });
  assert.equal(w.run('j').creates.length, 1);
  w.addNode('a');
  w.runAll('j');
  w.setState(w.of('j')[0]!.ID, 'complete');
  assert.ok(w.plan('j').empty);
});

test('replicated job: a failed task restarts in its slot (any is read as on-failure), up to MaxAttempts', () => {
  const w = new World();
  w.addNode('a');
  w.addService('j', { replicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 }, template: { ...jobTemplate, RestartPolicy: { Delay: 0, MaxAttempts: 1 } } });
  w.settle('j');
  w.runAll('j');
  w.setState(w.of('j')[0]!.ID, 'failed', { exitCode: 1 });
  const plan = w.run('j');
  assert.equal(plan.creates.length, 1);
  assert.equal(plan.creates[0]!.Slot, undefined, 'slot 0, omitted like Docker');
  assert.equal(plan.creates[0]!.DesiredState, 'complete');
  w.runAll('j');
  w.setState(w.live('j')[0]!.ID, 'failed', { exitCode: 1 });
  assert.equal(w.run('j').creates.length, 0, 'attempts used up');
  w.settle('j');
  assert.equal(w.of('j').length, 2, 'the job gives up on the slot rather than start a new one');
});

test('replicated job: a new iteration removes what still runs and starts over', () => {
  const w = new World();
  w.addNode('a');
  w.addService('j', { replicatedJob: { MaxConcurrent: 2, TotalCompletions: 2 }, template: jobTemplate });
  w.settle('j');
  w.runAll('j');
  w.setState(w.of('j')[0]!.ID, 'complete');
  w.services.get('j')!.JobStatus = { JobIteration: { Index: 1 } };
  const plan = w.run('j');
  assert.deepEqual([...plan.updates.values()].map((t) => t.DesiredState), ['remove'], 'only the running one of the old iteration');
  assert.equal(plan.creates.length, 2);
  assert.ok(plan.creates.every((t) => t.JobIteration?.Index === 1));
});

test('global job: one run per eligible node, not repeated once complete', () => {
  const w = new World();
  w.addNode('a'); w.addNode('b'); w.addNode('c', { availability: 'drain' });
  w.addService('gj', { globalJob: true, template: jobTemplate });
  const plan = w.run('gj');
  assert.deepEqual(plan.creates.map((t) => t.NodeID).sort(), ['a', 'b']);
  assert.ok(plan.creates.every((t) => t.DesiredState === 'complete'));
  w.runAll('gj');
  for (const t of w.of('gj')) w.setState(t.ID, 'complete');
  assert.ok(w.plan('gj').empty);
  w.addNode('d');
  assert.deepEqual(w.run('gj').creates.map((t) => t.NodeID), ['d'], 'a node that joins runs the job too');
});
