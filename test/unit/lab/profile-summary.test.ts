import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inclusiveMs, stalls, summarize, summarizeHeap } from '../../../bench/profile-summary';

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

test('summarize: a function\'s callers, as deep as asked', () => {
  assert.deepEqual(summarize(profile, 'parse').callers, [['decide src/manager/orchestrator/loop.js:10 < processImmediate node:internal:1 < (root) (root):0', 200]]);
  assert.deepEqual(summarize(profile, 'parse', 1).callers, [['decide src/manager/orchestrator/loop.js:10', 200]]);
  assert.deepEqual(summarize(profile, 'decide', 1).callers, [['processImmediate node:internal:1', 500]]);
});

test('inclusiveMs: a function with all it called; nothing for one never sampled', () => {
  assert.equal(inclusiveMs(profile, 'decide'), 700, 'decide ×5 and parse ×2 under it');
  assert.equal(inclusiveMs(profile, 'parse'), 200);
  assert.equal(inclusiveMs(profile, 'processImmediate'), 700);
  assert.equal(inclusiveMs(profile, 'nodesPhase'), 0);
});

test('summarizeHeap: bytes by allocating function, by module, and charged to the innermost Shoal frame above', () => {
  const frame = (functionName: string, url: string, lineNumber = 0): { functionName: string; url: string; lineNumber: number } => ({ functionName, url, lineNumber });
  const head = {
    callFrame: frame('(root)', ''), selfSize: 0, children: [
      { callFrame: frame('decode', 'file:///work/main/dist/src/store/store.js', 99), selfSize: 300, children: [
        { callFrame: frame('parse', 'node:internal/json'), selfSize: 700 },
      ] },
      { callFrame: frame('(V8 API)', ''), selfSize: 50 },
    ],
  };
  const s = summarizeHeap(head);
  assert.equal(s.totalBytes, 1050);
  assert.deepEqual(s.byOurs[0], ['decode src/store/store.js:100', 1000], 'the parse is charged to the Shoal function that called it');
  assert.deepEqual(s.byFunction[0], ['parse node:internal:1', 700]);
  assert.deepEqual(s.byModule.map(([m]) => m), ['node:internal', 'src/store/store.js', '(V8 API)']);
});
