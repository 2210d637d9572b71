import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RestartPolicy, TaskState } from '../../../src/model/types';
import { NS, SEC, T0, World } from './fixtures';
import { restartPolicy } from '../../../src/manager/orchestrator/restart';

function oneReplica(policy: RestartPolicy | undefined): World {
  const w = new World();
  w.addNode('a');
  w.addService('s', { replicas: 1, template: { ContainerSpec: { Image: 'busybox' }, RestartPolicy: policy } });
  w.settle('s');
  w.runAll('s');
  return w;
}

// The task currently wanted in slot 1.
const current = (w: World) => w.inSlot('s', 1).filter((t) => t.DesiredState === 'running' || t.DesiredState === 'ready');

test('restart policy defaults: any, 5 s, unlimited, no window; jobs read any as on-failure', () => {
  assert.deepEqual(restartPolicy(undefined, false), { condition: 'any', delayMs: 5000, maxAttempts: 0, windowMs: 0 });
  assert.equal(restartPolicy({ RestartPolicy: { Condition: 'any' } }, true).condition, 'on-failure');
  assert.equal(restartPolicy({ RestartPolicy: { Condition: 'none' } }, true).condition, 'none');
  assert.deepEqual(restartPolicy({ RestartPolicy: { Condition: 'on-failure', Delay: 2 * NS, MaxAttempts: 3, Window: 60 * NS } }, false), { condition: 'on-failure', delayMs: 2000, maxAttempts: 3, windowMs: 60000 });
});

test('a failed task is replaced in its slot after the restart delay', () => {
  const w = oneReplica(undefined);
  const old = current(w)[0]!;
  w.tick(10 * SEC);
  w.setState(old.ID, 'failed', { exitCode: 1 });
  const plan = w.run('s');
  assert.equal(plan.updates.get(old.ID)?.DesiredState, 'shutdown');
  const repl = plan.creates[0]!;
  assert.equal(repl.Slot, 1);
  assert.equal(repl.DesiredState, 'ready', 'held back during the delay');
  assert.equal(plan.wakeAt, T0 + 15 * SEC, 'wake me when the delay is over');
  w.tick(4 * SEC);
  assert.ok(w.plan('s').empty, 'not yet');
  w.tick(1 * SEC);
  assert.equal(w.run('s').updates.get(repl.ID)?.DesiredState, 'running');
});

test('with a zero delay the replacement is created running', () => {
  const w = oneReplica({ Delay: 0 });
  const old = current(w)[0]!;
  w.setState(old.ID, 'failed');
  const plan = w.run('s');
  assert.equal(plan.creates[0]!.DesiredState, 'running');
  assert.equal(plan.wakeAt, undefined);
});

const cases: Array<{ name: string; policy: RestartPolicy; end: TaskState; exit?: number; restarts: boolean }> = [
  { name: 'any restarts a clean exit', policy: { Condition: 'any', Delay: 0 }, end: 'complete', exit: 0, restarts: true },
  { name: 'any restarts a failure', policy: { Condition: 'any', Delay: 0 }, end: 'failed', exit: 1, restarts: true },
  { name: 'on-failure restarts a failure', policy: { Condition: 'on-failure', Delay: 0 }, end: 'failed', exit: 2, restarts: true },
  { name: 'on-failure restarts a rejection', policy: { Condition: 'on-failure', Delay: 0 }, end: 'rejected', restarts: true },
  { name: 'on-failure leaves a clean exit', policy: { Condition: 'on-failure', Delay: 0 }, end: 'complete', exit: 0, restarts: false },
  { name: 'on-failure restarts a complete with a non-zero code', policy: { Condition: 'on-failure', Delay: 0 }, end: 'complete', exit: 3, restarts: true },
  { name: 'none leaves a failure', policy: { Condition: 'none', Delay: 0 }, end: 'failed', exit: 1, restarts: false },
];
for (const c of cases) {
  test(`restart condition: ${c.name}`, () => {
    const w = oneReplica(c.policy);
    const old = current(w)[0]!;
    w.setState(old.ID, c.end, { exitCode: c.exit });
    const plan = w.run('s');
    assert.equal(plan.updates.get(old.ID)?.DesiredState, 'shutdown', 'the stopped task is marked down either way');
    assert.equal(plan.creates.length, c.restarts ? 1 : 0);
    // A slot given up on stays given up: later passes do not refill it.
    w.settle('s');
    assert.equal(w.inSlot('s', 1).length, c.restarts ? 2 : 1);
  });
}

test('MaxAttempts counts restarts in the slot; the slot then stays as it is', () => {
  const w = oneReplica({ Delay: 0, MaxAttempts: 2 });
  for (let i = 0; i < 2; i++) {
    w.tick(SEC);
    w.setState(current(w)[0]!.ID, 'failed');
    assert.equal(w.run('s').creates.length, 1, `restart ${i + 1}`);
    w.runAll('s');
  }
  w.tick(SEC);
  w.setState(current(w)[0]!.ID, 'failed');
  const plan = w.run('s');
  assert.equal(plan.creates.length, 0, 'third failure: attempts used up');
  w.tick(60 * SEC);
  assert.ok(w.plan('s').empty);
  assert.equal(w.inSlot('s', 1).length, 3);
});

test('MaxAttempts within a Window: only restarts inside the window count', () => {
  const w = oneReplica({ Delay: 0, MaxAttempts: 1, Window: 10 * NS });
  w.setState(current(w)[0]!.ID, 'failed');
  assert.equal(w.run('s').creates.length, 1, 'first failure restarts');
  w.runAll('s');
  w.tick(20 * SEC);
  w.setState(current(w)[0]!.ID, 'failed');
  assert.equal(w.run('s').creates.length, 1, 'the previous restart is outside the 10 s window');
  w.runAll('s');
  w.tick(5 * SEC);
  w.setState(current(w)[0]!.ID, 'failed');
  assert.equal(w.run('s').creates.length, 0, 'one restart 5 s ago uses the single attempt');
});

test('an update resets the restart count (new spec, new history)', () => {
  const w = oneReplica({ Delay: 0, MaxAttempts: 1 });
  w.setState(current(w)[0]!.ID, 'failed');
  w.run('s');
  w.runAll('s');
  w.setState(current(w)[0]!.ID, 'failed');
  assert.equal(w.run('s').creates.length, 0);
  const s = w.services.get('s')!;
  s.Spec.TaskTemplate = { ...s.Spec.TaskTemplate, ContainerSpec: { Image: 'busybox:2' } };
  w.settle('s');
  w.runAll('s');
  w.settle('s');
  const fresh = current(w)[0]!;
  assert.equal(fresh.Spec.ContainerSpec?.Image, 'busybox:2');
  w.setState(fresh.ID, 'failed');
  assert.equal(w.run('s').creates.length, 1);
});

test('a replacement that fails during its own delay restarts only once that delay is over', () => {
  const w = oneReplica(undefined); // 5 s delay
  w.setState(current(w)[0]!.ID, 'failed');
  const repl = w.run('s').creates[0]!;
  w.runAll('s');
  w.tick(1 * SEC);
  w.setState(repl.ID, 'rejected'); // image pull failed while preparing
  const early = w.run('s');
  assert.equal(early.creates.length, 0);
  assert.equal(early.wakeAt, T0 + 5 * SEC);
  w.tick(4 * SEC);
  const plan = w.run('s');
  assert.equal(plan.updates.get(repl.ID)?.DesiredState, 'shutdown');
  assert.equal(plan.creates.length, 1);
  assert.equal(plan.creates[0]!.DesiredState, 'ready');
});

test('restarts of tasks on a node that is down follow the policy: none does not replace them', () => {
  const w = oneReplica({ Condition: 'none' });
  w.nodes.set('a', { ...w.nodes.get('a')!, Status: { State: 'down', Addr: '' } });
  const plan = w.run('s');
  assert.equal(plan.creates.length, 0);
  assert.equal([...plan.updates.values()][0]!.DesiredState, 'shutdown');
  assert.ok(w.plan('s').empty);
});
