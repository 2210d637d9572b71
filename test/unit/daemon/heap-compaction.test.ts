import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compactHeap, DEFAULT_COMPACTION_POLICY as P, oldSpace, shouldCompact, type HeapSample } from '../../../src/daemon/heap-compaction';

const MB = 1024 * 1024;
const quiet = (n: number, last: Partial<HeapSample> = {}): HeapSample[] =>
  Array.from({ length: n }, (_, i) => ({ utilization: 0.1, oldSize: 400 * MB, oldUsed: 200 * MB, ...(i === n - 1 ? last : {}) }));

test('heap compaction: only after the loop was quiet over the span, with much of the old space free, and not again too soon', () => {
  assert.equal(shouldCompact(quiet(P.quietWindows), Infinity, P), true);
  assert.equal(shouldCompact(quiet(P.quietWindows - 1), Infinity, P), false, 'not quiet for long enough yet');
  const busyOnce = quiet(P.quietWindows);
  busyOnce[2] = { ...busyOnce[2]!, utilization: 0.9 };
  assert.equal(shouldCompact(busyOnce, Infinity, P), true, 'one busy second in a quiet span');
  const busy = quiet(P.quietWindows).map((x, i) => (i % 2 ? x : { ...x, utilization: 0.6 }));
  assert.equal(shouldCompact(busy, Infinity, P), false, 'busy half the time');
  // Judged on the last span only.
  assert.equal(shouldCompact([...busy, ...quiet(P.quietWindows)], Infinity, P), true);
  assert.equal(shouldCompact([...quiet(P.quietWindows), ...busy], Infinity, P), false);
  assert.equal(shouldCompact(quiet(P.quietWindows), P.minIntervalMs - 1, P), false, 'too soon after the last');
  assert.equal(shouldCompact(quiet(P.quietWindows), P.minIntervalMs, P), true);
  // A small heap, or one mostly in use, never qualifies.
  assert.equal(shouldCompact(quiet(P.quietWindows, { oldSize: 120 * MB, oldUsed: 40 * MB }), Infinity, P), false, 'under minFreeBytes free');
  assert.equal(shouldCompact(quiet(P.quietWindows, { oldSize: 1000 * MB, oldUsed: 700 * MB }), Infinity, P), false, 'under minFreeShare free');
});

test('heap compaction: garbage V8 has not marked yet counts by the old space in use after its last full collection', () => {
  // Right after a burst: nearly all "in use", but 150 MB live when V8 last collected.
  const unmarked = quiet(P.quietWindows, { oldSize: 420 * MB, oldUsed: 400 * MB });
  assert.equal(shouldCompact(unmarked, Infinity, P), false, 'no full collection seen: nothing known to be free');
  assert.equal(shouldCompact(unmarked.map((x) => ({ ...x, oldLive: 150 * MB })), Infinity, P), true);
  // In use now below the last collection's figure: a newer collection not seen
  // yet freed more, and the lower figure counts (120 MB free, under 35 %).
  assert.equal(shouldCompact(quiet(P.quietWindows, { oldSize: 420 * MB, oldUsed: 300 * MB, oldLive: 350 * MB }), Infinity, P), false);
  // Still only when quiet.
  assert.equal(shouldCompact(unmarked.map((x) => ({ ...x, utilization: 0.9, oldLive: 150 * MB })), Infinity, P), false);
});

test('heap compaction: a fragmented old space is given back, what is live stays', () => {
  // Some 100 MB of small objects, all live while they are made (so no
  // collection meanwhile can free or move any: the old space holds them all,
  // whatever the machine's load), then two in three dropped: every page is a
  // third live.
  let all: Array<{ id: string; n: number[] }> = [];
  for (let i = 0; i < 1_200_000; i++) all.push({ id: `task-${i}`, n: [i, i + 1, i + 2] });
  const keep = all.filter((_, i) => i % 3 === 0);
  all = [];
  const grown = oldSpace();
  const r = compactHeap();
  assert.ok(r.after.size < grown.size * 0.75, `old space ${Math.round(grown.size / MB)} MB before, ${Math.round(r.after.size / MB)} MB after`);
  assert.equal(keep.length, 400_000);
  assert.equal(keep[399_999]!.id, 'task-1199997');
});
