import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QUICK_MAX_MS, QUICK_MIN_MS, WriteLatency } from '../../../src/store/write-latency';

test('the quick write timeout: a second while writes are fast, three times the slowest lately, at most five', () => {
  const w = new WriteLatency();
  assert.equal(w.quickTimeoutMs(), QUICK_MIN_MS, 'nothing seen yet');
  for (let i = 0; i < 100; i++) w.note(20);
  assert.equal(w.quickTimeoutMs(), QUICK_MIN_MS);
  w.note(900);
  assert.equal(w.quickTimeoutMs(), 2700, 'one slow write widens it');
  w.note(4000);
  assert.equal(w.quickTimeoutMs(), QUICK_MAX_MS);
  for (let i = 0; i < 31; i++) w.note(10);
  assert.equal(w.quickTimeoutMs(), QUICK_MAX_MS, 'the 4 s write is still among the last 32');
  w.note(10);
  assert.equal(w.quickTimeoutMs(), QUICK_MIN_MS, 'the slow ones aged out');
  w.note(Number.NaN);
  w.note(-5);
  assert.equal(w.quickTimeoutMs(), QUICK_MIN_MS, 'nonsense ignored');
});
