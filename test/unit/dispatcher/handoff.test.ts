import { test } from 'node:test';
import assert from 'node:assert/strict';
import { handoffTarget, type HandoffQuestion } from '../../../src/manager/dispatcher/handoff';

const q = (o: Partial<HandoffQuestion> = {}): HandoffQuestion => ({
  role: 'worker', relayed: false, acceptsHandoff: true, directWorkers: 5, keep: 5, targets: ['m2:2377', 'm3:2377'], turn: 0, ...o,
});

test('hand-off: a direct worker session past the leader\'s share goes to the other managers in turn', () => {
  assert.equal(handoffTarget(q()), 'm2:2377');
  assert.equal(handoffTarget(q({ turn: 1 })), 'm3:2377');
  assert.equal(handoffTarget(q({ turn: 2 })), 'm2:2377');
});

test('hand-off: kept under the share, with no other manager up, for a manager, a relayed session, or an agent that takes none', () => {
  assert.equal(handoffTarget(q({ directWorkers: 4 })), undefined);
  assert.equal(handoffTarget(q({ targets: [] })), undefined);
  assert.equal(handoffTarget(q({ role: 'manager' })), undefined);
  assert.equal(handoffTarget(q({ relayed: true })), undefined);
  assert.equal(handoffTarget(q({ acceptsHandoff: false })), undefined);
});
