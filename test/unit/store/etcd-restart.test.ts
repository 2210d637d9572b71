import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nextRestart, type RestartPolicy } from '../../../src/store/etcd-restart';

const policy: RestartPolicy = { windowMs: 60_000, crashLoopExits: 5, firstDelayMs: 200, maxDelayMs: 5_000, crashLoopDelayMs: 10_000 };

test('a lone exit restarts fast; quick repeated exits back off', () => {
  assert.deepEqual(nextRestart([1_000], 1_000, policy), { recentExits: [1_000], delayMs: 200, crashLoop: false });
  assert.equal(nextRestart([0, 1_000, 2_000], 2_000, policy).delayMs, 800);
  assert.equal(nextRestart([0, 1, 2, 3], 3, policy).delayMs, 1_600);
});

test('many exits within the window are a crash loop, retried slowly', () => {
  const d = nextRestart([0, 1_000, 2_000, 3_000, 4_000], 4_000, policy);
  assert.equal(d.crashLoop, true);
  assert.equal(d.delayMs, 10_000);
});

test('exits older than the window are forgotten', () => {
  const d = nextRestart([0, 1_000, 2_000, 3_000, 100_000], 100_000, policy);
  assert.deepEqual(d.recentExits, [100_000]);
  assert.equal(d.crashLoop, false);
  assert.equal(d.delayMs, 200);
});
