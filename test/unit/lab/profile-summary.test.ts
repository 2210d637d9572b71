import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stalls, summarize } from '../../../bench/profile-summary';

// A hand-made profile: root → (idle), and root → main loop → a Shoal
// function, plus GC, sampled every 100 ms.
const profile = {
  nodes: [
    { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 }, children: [2, 3, 5] },
    { id: 2, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
    { id: 3, callFrame: { functionName: 'processImmediate', url: 'node:internal/timers', lineNumber: 0 }, children: [4] },
    { id: 4, callFrame: { functionName: 'decide', url: 'file:///work/main/dist/src/manager/orchestrator/loop.js', lineNumber: 9 }, children: [6] },
    { id: 5, callFrame: { functionName: '(garbage collector)', url: '', lineNumber: -1 } },
    { id: 6, callFrame: { functionName: 'parse', url: 'node:internal/json', lineNumber: 0 } },
  ],
  //        idle  |---- 600 ms held: decide ×3, parse ×2 (under decide), GC ×1 ----|  idle  busy 200 ms  idle
  samples: [2, 2, 4, 4, 6, 5, 6, 4, 2, 4, 4, 2],
  timeDeltas: Array(12).fill(100_000),
  startTime: 0,
  endTime: 1_200_000,
};

test('stalls: each stretch without an idle sample, at least the minimum long, with the Shoal frames and GC that filled it', () => {
  const found = stalls(profile, 500);
  assert.equal(found.length, 1, 'the 200 ms stretch is below the minimum');
  assert.equal(found[0]!.ms, 600);
  assert.equal(found[0]!.startMs, 200, 'from the sample before the first busy one');
  assert.deepEqual(found[0]!.top, [['decide src/manager/orchestrator/loop.js:10', 500], ['(garbage collector)', 100]]);
  assert.equal(stalls(profile, 200).length, 2);
});

test('summarize: self time by function and module', () => {
  const s = summarize(profile);
  assert.equal(s.totalMs, 1200);
  assert.deepEqual(s.byModule.find(([m]) => m === '(idle)'), ['(idle)', 400]);
});
