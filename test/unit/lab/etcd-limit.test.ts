import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keyOf, limitReport, limitSummary, planTxns, valueBytes, type LimitFigures } from '../../../bench/etcd-limit';

test('etcd limit: the create\'s puts split over its transaction count, every put sent once', () => {
  const plan = planTxns({ puts: 1003, putBytes: 200_600, txns: 10, keys: 300 });
  assert.equal(plan.length, 10);
  assert.equal(plan.reduce((a, b) => a + b, 0), 1003);
  assert.deepEqual(plan.slice(0, 4), [101, 101, 101, 100]);
  assert.deepEqual(planTxns({ puts: 3, putBytes: 600, txns: 10, keys: 3 }), [1, 1, 1]);
});

test('etcd limit: key plus value weigh what a put of the create did', () => {
  const shape = { puts: 456_787, putBytes: 91_696_790, txns: 7302, keys: 150_000 };
  assert.equal(keyOf(0).length, keyOf(149_999).length);
  assert.equal(keyOf(0).length + valueBytes(shape), Math.round(91_696_790 / 456_787));
  assert.notEqual(keyOf(1), keyOf(2));
});

test('etcd limit: medians of the runs that finished; a failed run is named, never counted', () => {
  const run = (watched: number, mb: number[]) => ({ ackedSeconds: watched - 1, watchedSeconds: watched, etcdCpuSeconds: 2 * watched, clientCpuSeconds: 1, etcdMB: mb });
  const f: LimitFigures = {
    shape: { puts: 1000, putBytes: 200_000, txns: 10, keys: 100 }, inflight: 4,
    runs: [run(10, [100, 120]), run(30, [90]), run(20, [110]), { ...run(NaN, []), error: 'watchers saw 1, 2, 3 of 1000 events' }],
  };
  const s = limitSummary(f)!;
  assert.equal(s.runs, 3);
  assert.equal(s.watchedSeconds, 20);
  assert.equal(s.etcdMB, 110);
  assert.equal(s.putsPerSecond, 50);
  assert.match(limitReport(f), /\| 20 s \| 19 s \| 50 \| 40 \| 1 \| 110 MB \|/);
  assert.match(limitReport(f), /failed: watchers saw 1, 2, 3/);
  assert.equal(limitSummary({ ...f, runs: f.runs.slice(3) }), undefined);
});
