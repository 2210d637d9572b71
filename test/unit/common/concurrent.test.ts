import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eachConcurrently } from '../../../src/common/concurrent';

// Calls that end when the test says so: what ran beside what is then exact.
function gate(): { calls: Map<number, () => void>; running: Set<number>; log: string[]; fn: (i: number) => Promise<void> } {
  const calls = new Map<number, () => void>();
  const running = new Set<number>();
  const log: string[] = [];
  const fn = (i: number): Promise<void> => new Promise<void>((resolve) => {
    running.add(i);
    log.push(`start ${i} beside ${[...running].filter((x) => x !== i).sort().join(',') || '-'}`);
    calls.set(i, () => { running.delete(i); resolve(); });
  });
  return { calls, running, log, fn };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('at most `limit` calls in flight, started in order; an `alone` item runs by itself between the others', async () => {
  const g = gate();
  const done = eachConcurrently([1, 2, 3, 4, 5, 6], 2, g.fn, (i) => i === 4);
  await turn();
  assert.deepEqual([...g.running], [1, 2]);
  g.calls.get(1)!();
  await turn();
  assert.deepEqual([...g.running].sort(), [2, 3]);
  g.calls.get(2)!();
  await turn();
  assert.deepEqual([...g.running], [3], '4 waits for 3 to end');
  g.calls.get(3)!();
  await turn();
  assert.deepEqual([...g.running], [4]);
  g.calls.get(4)!();
  await turn();
  assert.deepEqual([...g.running].sort(), [5, 6], '5 and 6 waited for 4');
  g.calls.get(5)!();
  g.calls.get(6)!();
  await done;
  assert.deepEqual(g.log, ['start 1 beside -', 'start 2 beside 1', 'start 3 beside 2', 'start 4 beside -', 'start 5 beside -', 'start 6 beside 5']);
});

test('the first failure stops new calls and is thrown after those in flight end', async () => {
  const started: number[] = [];
  let slowEnded = false;
  const err = await eachConcurrently([1, 2, 3, 4], 2, async (i) => {
    started.push(i);
    if (i === 1) { await new Promise((r) => setTimeout(r, 30)); slowEnded = true; return; }
    if (i === 2) throw new Error('two failed');
  }).catch((e: unknown) => e);
  assert.equal((err as Error).message, 'two failed');
  assert.ok(slowEnded, 'the call in flight was waited for');
  assert.deepEqual(started, [1, 2], 'nothing started after the failure');
});
