import { test } from 'node:test';
import assert from 'node:assert/strict';
import { busyStep, DEFAULT_BUSY_POLICY, startedWithoutTurbofan } from '../../../src/daemon/tiering';

test('TurboFan goes on after the set number of busy windows in a row, and a quiet window starts over', () => {
  const p = { ...DEFAULT_BUSY_POLICY, threshold: 0.5, windows: 3 };
  let n = 0;
  const seen: boolean[] = [];
  for (const u of [0.9, 0.6, 0.1, 0.5, 0.7]) { const s = busyStep(n, u, p); n = s.busyInARow; seen.push(s.optimize); }
  assert.deepEqual(seen, [false, false, false, false, false]);
  const s = busyStep(n, 0.99, p);
  assert.equal(s.optimize, true);
});

test('the monitor runs only when node started with the optimizing compiler off', () => {
  assert.equal(startedWithoutTurbofan(['--no-opt'], ''), true);
  assert.equal(startedWithoutTurbofan([], '--max-old-space-size=100 --no-turbofan'), true);
  assert.equal(startedWithoutTurbofan(['--lite-mode'], ''), false);
  assert.equal(startedWithoutTurbofan([], ''), false);
});
