import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { UpdateConfig } from '../../../src/api/types';
import { nowIso } from '../../../src/common/time';
import { isTaskDirty } from '../../../src/manager/orchestrator/dirty';
import { NS, SEC, T0, World, makeNode } from './fixtures';

function running(replicas: number, update?: UpdateConfig): World {
  const w = new World();
  w.addNode('a'); w.addNode('b');
  w.addService('s', { replicas, update, template: { ContainerSpec: { Image: 'nginx:1' }, RestartPolicy: { Delay: 0 } } });
  w.settle('s');
  w.runAll('s');
  return w;
}

function changeImage(w: World, image: string): void {
  const s = w.services.get('s')!;
  s.Spec.TaskTemplate = { ...s.Spec.TaskTemplate, ContainerSpec: { Image: image } };
  delete s.UpdateStatus; // the control API clears it on every update
}

const images = (w: World) => w.live('s').map((t) => `${t.Slot}:${t.Spec.ContainerSpec?.Image}:${t.DesiredState}`).sort();

test('rolling update, stop-first, parallelism 1: one slot at a time, old stops before new starts', () => {
  const w = running(3);
  changeImage(w, 'nginx:2');
  const p1 = w.run('s');
  assert.deepEqual(w.services.get('s')!.UpdateStatus, { State: 'updating', StartedAt: nowIso(T0), Message: 'update in progress' });
  assert.equal(p1.creates.length, 1);
  assert.equal(p1.creates[0]!.Slot, 1);
  assert.equal(p1.creates[0]!.DesiredState, 'ready', 'waits for the old task to stop');
  assert.equal(w.inSlot('s', 1)[0]!.DesiredState, 'shutdown');
  assert.ok(w.plan('s').empty, 'nothing more until the old task is down');

  for (let slot = 1; slot <= 3; slot++) {
    w.runAll('s');             // old one shuts down, new one is assigned
    w.settle('s');             // promoted to running
    w.runAll('s');             // and runs
    w.settle('s');             // next slot starts
  }
  assert.deepEqual(images(w), ['1:nginx:2:running', '2:nginx:2:running', '3:nginx:2:running']);
  assert.deepEqual(w.services.get('s')!.UpdateStatus, { State: 'completed', StartedAt: nowIso(T0), CompletedAt: nowIso(T0), Message: 'update completed' });
});

test('parallelism 2 updates two slots at once; 0 updates all', () => {
  const w = running(5, { Parallelism: 2 });
  changeImage(w, 'nginx:2');
  assert.equal(w.run('s').creates.length, 2);
  const all = running(5, { Parallelism: 0 });
  changeImage(all, 'nginx:2');
  assert.equal(all.run('s').creates.length, 5);
});

test('start-first: the new task runs next to the old one, which stops once the new one runs', () => {
  const w = running(1, { Order: 'start-first' });
  changeImage(w, 'nginx:2');
  const p = w.run('s');
  assert.equal(p.creates[0]!.DesiredState, 'running');
  assert.equal(p.updates.size, 0, 'the old task keeps running');
  assert.ok(w.plan('s').empty);
  w.runAll('s');
  const done = w.run('s');
  assert.deepEqual([...done.updates.values()].map((t) => `${t.Spec.ContainerSpec?.Image}:${t.DesiredState}`), ['nginx:1:shutdown']);
  w.settle('s');
  assert.equal(w.services.get('s')!.UpdateStatus?.State, 'completed');
});

test('Delay waits between batches, counted from when the last new task started running', () => {
  const w = running(2, { Delay: 10 * NS });
  changeImage(w, 'nginx:2');
  w.settle('s');
  w.runAll('s');
  w.settle('s');
  w.runAll('s'); // slot 1's new task runs at T0
  const wait = w.run('s');
  assert.equal(wait.creates.length, 0);
  assert.equal(wait.wakeAt, T0 + 10 * SEC);
  w.tick(10 * SEC);
  assert.equal(w.run('s').creates[0]!.Slot, 2);
});

test('a replicas-only change replaces nothing and leaves UpdateStatus alone', () => {
  const w = running(2);
  w.services.get('s')!.Spec.Mode = { Replicated: { Replicas: 3 } };
  w.settle('s');
  assert.equal(w.services.get('s')!.UpdateStatus, undefined);
  assert.equal(w.of('s').length, 3);
  assert.ok(w.of('s').every((t) => t.DesiredState === 'running'));
});

test('scale-up during an update makes new tasks with the new spec and does not slow the update', () => {
  const w = running(2);
  changeImage(w, 'nginx:2');
  w.services.get('s')!.Spec.Mode = { Replicated: { Replicas: 3 } };
  const p = w.run('s');
  assert.deepEqual(p.creates.map((t) => `${t.Slot}:${t.Spec.ContainerSpec?.Image}:${t.DesiredState}`).sort(), ['1:nginx:2:ready', '3:nginx:2:running']);
});

test('a rollback (rollback_started by the control API) ends as rollback_completed', () => {
  const w = running(1);
  const s = w.services.get('s')!;
  s.UpdateStatus = { State: 'rollback_started', StartedAt: nowIso(T0), Message: 'manually requested rollback' };
  s.Spec.TaskTemplate = { ...s.Spec.TaskTemplate, ForceUpdate: 1 };
  w.settle('s');
  w.runAll('s'); w.settle('s'); w.runAll('s'); w.settle('s');
  assert.equal(w.services.get('s')!.UpdateStatus?.State, 'rollback_completed');
  assert.equal(w.services.get('s')!.UpdateStatus?.Message, 'rollback completed');
});

test('a paused update replaces nothing more', () => {
  const w = running(2);
  changeImage(w, 'nginx:2');
  w.services.get('s')!.UpdateStatus = { State: 'paused', Message: 'update paused' };
  const p = w.run('s');
  assert.equal(p.creates.length, 0);
  assert.equal(p.service, undefined);
});

test('global services update node by node', () => {
  const w = new World();
  w.addNode('a'); w.addNode('b');
  w.addService('g', { global: true, template: { ContainerSpec: { Image: 'x:1' } } });
  w.settle('g'); w.runAll('g');
  const s = w.services.get('g')!;
  s.Spec.TaskTemplate = { ContainerSpec: { Image: 'x:2' } };
  const p = w.run('g');
  assert.equal(p.creates.length, 1);
  assert.equal(p.creates[0]!.NodeID, 'a');
  for (let i = 0; i < 4; i++) { w.runAll('g'); w.settle('g'); }
  assert.deepEqual(w.live('g').map((t) => `${t.NodeID}:${t.Spec.ContainerSpec?.Image}`).sort(), ['a:x:2', 'b:x:2']);
  assert.equal(w.services.get('g')!.UpdateStatus?.State, 'completed');
});

test('isTaskDirty: spec changes are dirty; a placement-only change is not while the node still fits', () => {
  const w = running(1);
  const s = w.services.get('s')!;
  const t = w.live('s')[0]!;
  assert.equal(isTaskDirty(t, s), false);
  // JSON drops undefined keys: a stored copy compares equal.
  assert.equal(isTaskDirty({ ...t, Spec: JSON.parse(JSON.stringify({ ...t.Spec, Networks: undefined })) }, s), false);
  const withConstraint = { ...s, Spec: { ...s.Spec, TaskTemplate: { ...s.Spec.TaskTemplate, Placement: { Constraints: ['node.labels.zone==x'] } } } };
  assert.equal(isTaskDirty(t, withConstraint, makeNode('a', { labels: { zone: 'x' } })), false);
  assert.equal(isTaskDirty(t, withConstraint, makeNode('a', { labels: { zone: 'y' } })), true);
  assert.equal(isTaskDirty(t, withConstraint), true, 'no node known: dirty');
  const newImage = { ...s, Spec: { ...s.Spec, TaskTemplate: { ...s.Spec.TaskTemplate, ContainerSpec: { Image: 'nginx:2' } } } };
  assert.equal(isTaskDirty(t, newImage, makeNode('a')), true);
  const forced = { ...s, Spec: { ...s.Spec, TaskTemplate: { ...s.Spec.TaskTemplate, ForceUpdate: 1 } } };
  assert.equal(isTaskDirty(t, forced), true);
});
