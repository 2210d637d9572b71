import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyKeyStep, decideKeyStep, isEncryptedNetwork, keyTimingFromEnv, DEFAULT_KEY_TIMING, type KeyTiming } from '../../../src/manager/netkeys/schedule';
import type { StoredNetworkKeys } from '../../../src/store/objects';

const T: KeyTiming = { periodMs: 1000, stepMs: 100 };

// Runs the schedule from nothing, taking every step at the time it asks for.
function walk(until: number): Array<{ at: number; kind: string; tag: number; keys: number[]; primary: number }> {
  const out: Array<{ at: number; kind: string; tag: number; keys: number[]; primary: number }> = [];
  let set: StoredNetworkKeys | undefined;
  let now = 0;
  while (now <= until) {
    const d = decideKeyStep(set, true, now, T);
    if (d.step) {
      set = applyKeyStep(set, d.step, now, `sealed-${d.step.tag}`);
      out.push({ at: now, kind: d.step.kind, tag: d.step.tag, keys: set.Keys.map((k) => k.Tag), primary: set.PrimaryTag });
      continue;
    }
    assert.ok(d.wakeAt !== undefined && d.wakeAt > now, 'a steady set says when to look again');
    now = d.wakeAt;
  }
  return out;
}

test('key schedule: first key, then every period: add (receive only), promote (send), retire the old one, a step apart', () => {
  assert.deepEqual(walk(2250), [
    { at: 0, kind: 'create', tag: 1, keys: [1], primary: 1 },
    { at: 1000, kind: 'add', tag: 2, keys: [1, 2], primary: 1 },
    { at: 1100, kind: 'promote', tag: 2, keys: [1, 2], primary: 2 },
    { at: 1200, kind: 'retire', tag: 1, keys: [2], primary: 2 },
    { at: 2200, kind: 'add', tag: 3, keys: [2, 3], primary: 2 },
  ]);
});

test('key schedule: nothing without an encrypted network; nothing early; a forced rotation starts at once', () => {
  assert.deepEqual(decideKeyStep(undefined, false, 5, T), {});
  const one = applyKeyStep(undefined, { kind: 'create', tag: 1 }, 0, 's1');
  assert.deepEqual(decideKeyStep(one, false, 5000, T), {}, 'no rotation without a network that uses the keys');
  assert.deepEqual(decideKeyStep(one, true, 999, T), { wakeAt: 1000 });
  assert.deepEqual(decideKeyStep(one, true, 10, T, true).step, { kind: 'add', tag: 2 });
  const two = applyKeyStep(one, { kind: 'add', tag: 2 }, 10, 's2');
  assert.deepEqual(decideKeyStep(two, true, 50, T, true), { wakeAt: 110 }, 'force does not skip a rotation\'s steps');
  assert.equal(two.Keys.find((k) => k.Tag === 2)!.SealedKey, 's2');
  assert.equal(two.PrimaryTag, 1, 'the new key is for receiving only');
});

test('key schedule: a set changed by a clock ahead of ours counts as due; broken sets are repaired', () => {
  const one = applyKeyStep(undefined, { kind: 'create', tag: 4 }, 10_000, 's');
  assert.deepEqual(decideKeyStep(one, true, 5_000, T).step, { kind: 'add', tag: 5 });
  const lost: StoredNetworkKeys = { Keys: [{ Tag: 3, SealedKey: 'a', CreatedAt: 0 }, { Tag: 4, SealedKey: 'b', CreatedAt: 0 }], PrimaryTag: 9, ChangedAt: 0 };
  assert.deepEqual(decideKeyStep(lost, true, 1, T).step, { kind: 'promote', tag: 4 });
  const many: StoredNetworkKeys = { Keys: [1, 2, 3].map((Tag) => ({ Tag, SealedKey: 'x', CreatedAt: 0 })), PrimaryTag: 2, ChangedAt: 0 };
  assert.deepEqual(decideKeyStep(many, true, 1, T).step, { kind: 'retire', tag: 1 });
  assert.throws(() => applyKeyStep(undefined, { kind: 'create', tag: 1 }, 0), /needs a new key/);
});

test('key schedule: encrypted networks and timing from the environment', () => {
  assert.equal(isEncryptedNetwork({ Spec: { Name: 'a', DriverConfiguration: { Name: 'overlay', Options: { encrypted: '' } } } }), true);
  assert.equal(isEncryptedNetwork({ Spec: { Name: 'a', DriverConfiguration: { Name: 'overlay' } } }), false);
  assert.deepEqual(keyTimingFromEnv({}), DEFAULT_KEY_TIMING);
  assert.equal(DEFAULT_KEY_TIMING.periodMs, 12 * 3600_000);
  assert.deepEqual(keyTimingFromEnv({ SHOAL_NETWORK_KEY_PERIOD_MS: '2000', SHOAL_NETWORK_KEY_STEP_MS: 'x' }), { periodMs: 2000, stepMs: DEFAULT_KEY_TIMING.stepMs });
});
