import { test } from 'node:test';
import assert from 'node:assert/strict';
import { heldRanges, holdSampleTimes, type HeldSample } from '../../../bench/held-summary';
import { compactionsIn, linesIn } from '../../../bench/daemon-log';

const sample = (seconds: number, leaderMB: number, followerMB: number, leader = 'host1'): HeldSample => ({
  seconds,
  managers: [
    { host: 'host1', leader: leader === 'host1', daemonMB: leaderMB, etcdMB: 300 },
    { host: 'host2', leader: leader === 'host2', daemonMB: followerMB, etcdMB: 300.4 },
  ],
});

test('held ranges: daemon plus etcd per manager, from the given second on; the leader as of the last sample', () => {
  const held = [sample(10, 900, 700), sample(120, 720, 560), sample(130, 700, 540), sample(140, 760, 580, 'host2')];
  assert.deepEqual(heldRanges(held, 120), { fromSeconds: 120, ranges: [
    { host: 'host1', leader: false, samples: 3, minMB: 1000, medianMB: 1020, maxMB: 1060 },
    { host: 'host2', leader: true, samples: 3, minMB: 840.4, medianMB: 860.4, maxMB: 880.4 },
  ] });
});

test('held ranges: a hold shorter than the start covers every sample', () => {
  const r = heldRanges([sample(10, 900, 700), sample(20, 800, 600)], 120);
  assert.equal(r.fromSeconds, 0);
  assert.deepEqual(r.ranges.map((x) => [x.host, x.samples, x.minMB, x.maxMB]), [['host1', 2, 1100, 1200], ['host2', 2, 900.4, 1000.4]]);
});

test('compactions: only the daemon\'s "heap compacted while quiet" lines within the hold, malformed ones skipped', () => {
  const line = (time: string, extra: Record<string, unknown> = {}) => JSON.stringify({ level: 30, time, oldSpaceMB: [403, 206], inUseMB: [200, 199], ms: 1470, msg: 'heap compacted while quiet', ...extra });
  const text = [
    line('2026-12-06T10:00:00.000Z'),                       // before the hold
    line('2026-12-06T10:05:00.000Z'),
    '{"level":30,"time":"2026-12-06T10:06:00.000Z","msg":"store loaded"}',
    'heap compacted while quiet, but not JSON',
    line('2026-12-06T10:07:00.000Z', { oldSpaceMB: 'big' }), // not the shape logged
    line('2026-12-06T10:20:00.000Z'),                       // after it
  ].join('\n');
  const from = Date.parse('2026-12-06T10:01:00.000Z');
  const to = Date.parse('2026-12-06T10:10:00.000Z');
  assert.deepEqual(compactionsIn(text, from, to), [{ at: '2026-12-06T10:05:00.000Z', oldSpaceMB: [403, 206], ms: 1470 }]);
});

test('log lines: by exact message and time span; the node marked down lines of a create are counted so', () => {
  const down = (time: string, node: string) => JSON.stringify({ level: 40, time, node, msg: 'node marked down: heartbeat failure' });
  const text = [down('2026-12-06T10:00:05.000Z', 'a'), down('2026-12-06T10:00:06.000Z', 'b'), down('2026-12-06T10:09:00.000Z', 'c'),
    JSON.stringify({ level: 40, time: '2026-12-06T10:00:07.000Z', msg: 'node marked down: heartbeat failure (again)' })].join('\n');
  const got = linesIn(text, 'node marked down: heartbeat failure', Date.parse('2026-12-06T10:00:00.000Z'), Date.parse('2026-12-06T10:05:00.000Z'));
  assert.deepEqual(got.map((r) => r.node), ['a', 'b']);
});

test('hold samples: every 10 s and at the end, one for a short hold, none without one', () => {
  assert.deepEqual(holdSampleTimes(35_000), [10_000, 20_000, 30_000, 35_000]);
  assert.deepEqual(holdSampleTimes(30_000), [10_000, 20_000, 30_000]);
  assert.deepEqual(holdSampleTimes(4_000), [4_000]);
  assert.deepEqual(holdSampleTimes(0), []);
});
