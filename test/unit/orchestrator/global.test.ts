import { test } from 'node:test';
import assert from 'node:assert/strict';
import { World } from './fixtures';

test('global: one task per node that is up, not drained and not paused; NodeID preset, no slot', () => {
  const w = new World();
  w.addNode('a');
  w.addNode('b', { availability: 'drain' });
  w.addNode('c', { availability: 'pause' });
  w.addNode('d', { state: 'down' });
  w.addNode('e', { state: 'unknown' });
  w.addService('g', { global: true });
  const plan = w.run('g');
  assert.deepEqual(plan.creates.map((t) => t.NodeID).sort(), ['a', 'e']);
  for (const t of plan.creates) {
    assert.equal(t.Slot, undefined, 'Docker omits Slot 0');
    assert.equal(t.DesiredState, 'running');
    assert.equal(t.Status.State, 'pending', 'nothing to allocate');
  }
  assert.ok(w.plan('g').empty);
});

test('global: placement constraints choose the nodes', () => {
  const w = new World();
  w.addNode('a', { labels: { type: 'web' } });
  w.addNode('b', { labels: { type: 'db' } });
  w.addNode('c', { role: 'manager' });
  w.addService('g', { global: true, template: { ContainerSpec: { Image: 'x' }, Placement: { Constraints: ['node.labels.type!=db', 'node.role==worker'] } } });
  assert.deepEqual(w.run('g').creates.map((t) => t.NodeID), ['a']);
});

test('global: a node joining gets a task; drained, down or removed nodes lose theirs', () => {
  const w = new World();
  w.addNode('a'); w.addNode('b'); w.addNode('c');
  w.addService('g', { global: true });
  w.settle('g');
  w.runAll('g');
  w.addNode('d');
  const join = w.run('g');
  assert.deepEqual(join.creates.map((t) => t.NodeID), ['d']);
  w.runAll('g');

  w.nodes.set('a', { ...w.nodes.get('a')!, Spec: { ...w.nodes.get('a')!.Spec, Availability: 'drain' } });
  w.nodes.set('b', { ...w.nodes.get('b')!, Status: { State: 'down', Addr: '' } });
  w.nodes.delete('c');
  const plan = w.run('g');
  assert.equal(plan.creates.length, 0, 'nothing moves elsewhere');
  const desired = Object.fromEntries([...plan.updates.values()].map((t) => [t.NodeID, t.DesiredState]));
  assert.deepEqual(desired, { a: 'shutdown', b: 'shutdown' });
  // c's task has no node to wait for any more: removed and deleted at once.
  assert.deepEqual([...plan.deletes.values()].map((t) => t.NodeID), ['c']);
});

test('global: a failed task restarts on the same node; on a paused node it is not restarted', () => {
  const w = new World();
  w.addNode('a'); w.addNode('b');
  w.addService('g', { global: true, template: { ContainerSpec: { Image: 'x' }, RestartPolicy: { Delay: 0 } } });
  w.settle('g');
  w.runAll('g');
  w.setState(w.onNode('g', 'a')[0]!.ID, 'failed');
  const plan = w.run('g');
  assert.equal(plan.creates.length, 1);
  assert.equal(plan.creates[0]!.NodeID, 'a');
  assert.equal(plan.creates[0]!.DesiredState, 'running');

  w.nodes.set('b', { ...w.nodes.get('b')!, Spec: { ...w.nodes.get('b')!.Spec, Availability: 'pause' } });
  w.setState(w.onNode('g', 'b')[0]!.ID, 'failed');
  const paused = w.run('g');
  assert.equal(paused.creates.length, 0);
  assert.equal([...paused.updates.values()][0]!.DesiredState, 'shutdown');
});

test('global: a node leaving the constraints loses its task, no replacement', () => {
  const w = new World();
  w.addNode('a', { labels: { run: 'yes' } }); w.addNode('b', { labels: { run: 'yes' } });
  w.addService('g', { global: true, template: { ContainerSpec: { Image: 'x' }, Placement: { Constraints: ['node.labels.run==yes'] } } });
  w.settle('g');
  w.runAll('g');
  w.nodes.set('b', { ...w.nodes.get('b')!, Spec: { ...w.nodes.get('b')!.Spec, Labels: {} } });
  const plan = w.run('g');
  assert.equal(plan.creates.length, 0);
  assert.equal(w.onNode('g', 'b')[0]!.DesiredState, 'shutdown');
});

test('global: a node back from down gets a new task once its old one is over, never two running', () => {
  const w = new World();
  w.addNode('a'); w.addNode('b');
  w.addService('g', { global: true });
  w.settle('g');
  w.runAll('g');
  const old = w.onNode('g', 'a')[0]!;
  w.nodes.set('a', { ...w.nodes.get('a')!, Status: { State: 'down', Message: 'heartbeat failure', Addr: '' } });
  w.run('g');
  assert.equal(w.tasks.get(old.ID)!.DesiredState, 'shutdown');
  assert.ok(w.plan('g').empty, 'nothing for a down node');
  w.nodes.set('a', { ...w.nodes.get('a')!, Status: { State: 'ready', Addr: '10.0.0.1' } });
  const back = w.run('g');
  assert.deepEqual(back.creates.map((t) => t.NodeID), ['a'], 'a fresh task for the node that came back');
  assert.equal(w.tasks.get(old.ID)!.DesiredState, 'shutdown', 'the old one is still to be stopped by the agent');
});
