import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SEC, World } from './fixtures';
import { retentionFor } from '../../../src/manager/orchestrator/reaper';

// A slot whose task failed `n` times (restart delay 0), all with distinct times.
function failNTimes(w: World, n: number): void {
  for (let i = 0; i < n; i++) {
    w.tick(SEC);
    const cur = w.live('s')[0]!;
    w.setState(cur.ID, 'failed');
    w.run('s');
    w.runAll('s');
  }
}

const template = { ContainerSpec: { Image: 'x' }, RestartPolicy: { Delay: 0 } };

test('history is trimmed to TaskHistoryRetentionLimit per slot, keeping the newest', () => {
  const w = new World();
  w.retention = 3;
  w.addNode('a');
  w.addService('s', { replicas: 1, template });
  w.settle('s');
  w.runAll('s');
  const first = w.of('s').map((t) => t.ID);
  failNTimes(w, 6);
  w.settle('s');
  const left = w.of('s');
  assert.equal(left.length, 3, 'the running task and the two newest failed ones');
  assert.equal(left.filter((t) => t.Status.State === 'running').length, 1);
  assert.ok(!left.some((t) => first.includes(t.ID)), 'the oldest went first');
});

test('a negative limit keeps everything; MaxAttempts keeps MaxAttempts+1', () => {
  assert.equal(retentionFor(undefined, -1), -1);
  assert.equal(retentionFor(undefined, 5), 5);
  const w = new World();
  const s = w.addService('s', { replicas: 1, template: { ...template, RestartPolicy: { Delay: 0, MaxAttempts: 7 } } });
  assert.equal(retentionFor(s, 5), 8);

  const w2 = new World();
  w2.retention = -1;
  w2.addNode('a');
  w2.addService('s', { replicas: 1, template });
  w2.settle('s');
  w2.runAll('s');
  failNTimes(w2, 8);
  w2.settle('s');
  assert.equal(w2.of('s').length, 9);
});

test('each slot has its own history', () => {
  const w = new World();
  w.retention = 2;
  w.addNode('a');
  w.addService('s', { replicas: 2, template });
  w.settle('s');
  w.runAll('s');
  for (let i = 0; i < 4; i++) {
    w.tick(SEC);
    w.setState(w.live('s').find((t) => t.Slot === 1)!.ID, 'failed');
    w.run('s');
    w.runAll('s');
  }
  w.settle('s');
  assert.equal(w.inSlot('s', 1).length, 2);
  assert.equal(w.inSlot('s', 2).length, 1);
});

test('tasks set to remove are deleted once down, not before', () => {
  const w = new World();
  w.addNode('a');
  w.addService('s', { replicas: 2, template });
  w.settle('s');
  w.runAll('s');
  w.services.get('s')!.Spec.Mode = { Replicated: { Replicas: 1 } };
  w.settle('s');
  assert.equal(w.of('s').length, 2, 'still running: kept');
  w.setState(w.inSlot('s', 2)[0]!.ID, 'shutdown');
  assert.equal(w.run('s').deletes.size, 1);
});

test('a limit of 0 still keeps a slot\'s last task, so a task not to be restarted is not recreated', () => {
  const w = new World();
  w.retention = 0;
  w.addNode('a');
  w.addService('s', { replicas: 1, template: { ContainerSpec: { Image: 'x' }, RestartPolicy: { Condition: 'none' } } });
  w.settle('s');
  w.runAll('s');
  w.setState(w.live('s')[0]!.ID, 'complete');
  w.settle('s');
  assert.equal(w.of('s').length, 1);
  assert.equal(w.of('s')[0]!.DesiredState, 'shutdown');
  // With a running task, the dead history goes entirely.
  const w2 = new World();
  w2.retention = 0;
  w2.addNode('a');
  w2.addService('s', { replicas: 1, template });
  w2.settle('s');
  w2.runAll('s');
  failNTimes(w2, 3);
  w2.settle('s');
  assert.deepEqual(w2.of('s').map((t) => t.Status.State), ['running']);
});
