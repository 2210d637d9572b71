import { test } from 'node:test';
import assert from 'node:assert/strict';
import { INITIAL_KEEPALIVE, MAX_PING_MS, MIN_PING_MS, needsRetune, nodeKeepalive, retuneDelayMs } from '../../../src/agent/keepalive';
import { allowanceMs, DEFAULT_HEARTBEAT_PERIOD_MS, effectivePeriodMs, heartbeatIntervalMs, intervalInForceMs } from '../../../src/manager/dispatcher/liveness';

// The node's pings, from the heartbeat interval the dispatcher asks.

const periodAt = (nodes: number): number => effectivePeriodMs(DEFAULT_HEARTBEAT_PERIOD_MS, nodes);
const pingsAt = (nodes: number) => nodeKeepalive(heartbeatIntervalMs(periodAt(nodes)));

test('at Docker\'s default period a node pings every second with two to answer, as before; past 1,250 nodes less often', () => {
  assert.deepEqual(INITIAL_KEEPALIVE, { timeMs: 1000, timeoutMs: 2000 });
  assert.deepEqual(pingsAt(3), { timeMs: 1000, timeoutMs: 2000 });
  assert.deepEqual(pingsAt(1250), { timeMs: 1000, timeoutMs: 2000 });
  assert.deepEqual(pingsAt(1251), { timeMs: 2000, timeoutMs: 4000 }, '10 s period');
  assert.deepEqual(pingsAt(5000), { timeMs: 4000, timeoutMs: 8000 }, '20 s period');
  assert.equal(nodeKeepalive(250).timeMs, MIN_PING_MS, 'a short configured period does not ping faster than the floor');
  assert.deepEqual(nodeKeepalive(1e12), { timeMs: MAX_PING_MS, timeoutMs: 2 * MAX_PING_MS }, 'a period of years still pings (and within a timer\'s range)');
  // What a join's answer tells (the cluster's configured period in ns, the swarm's size).
  assert.equal(intervalInForceMs(undefined, 3), 2500);
  assert.equal(intervalInForceMs(10e9, 3), 5000);
  assert.equal(intervalInForceMs(5e9, 5000), 10_000);
});

test('the managers answer at most 1,250 pings a second at any size, and a lost manager is found within half the allowance', () => {
  for (let nodes = 1; nodes <= 20_000; nodes += nodes < 2000 ? 1 : 7) {
    const { timeMs, timeoutMs } = pingsAt(nodes);
    assert.ok(nodes * 1000 / timeMs <= 1250, `${nodes} nodes: ${nodes * 1000 / timeMs} pings a second`);
    // Found: at worst the manager goes just after an answer, the next ping goes
    // timeMs later and waits timeoutMs.
    assert.ok(timeMs + timeoutMs <= allowanceMs(periodAt(nodes)) / 2, `${nodes} nodes: found within ${timeMs + timeoutMs} ms`);
  }
});

test('a connection is made again only when its pings are off by half or more', () => {
  const k = (timeMs: number) => ({ timeMs, timeoutMs: 2 * timeMs });
  assert.equal(needsRetune(k(1000), k(1000)), false);
  assert.equal(needsRetune(k(2000), k(3000)), false);
  assert.equal(needsRetune(k(3000), k(4000)), false);
  assert.equal(needsRetune(k(1000), k(2000)), true, 'the swarm grew');
  assert.equal(needsRetune(k(4000), k(1000)), true, 'the swarm shrank: pings too slow to find a lost manager in time');
});

test('a swarm growing one node at a time to 5,000 moves each node\'s connection at most twice', () => {
  let most = 0;
  for (let joinedAt = 1; joinedAt <= 5000; joinedAt += 13) {
    let held = pingsAt(joinedAt);
    let moves = 0;
    for (let nodes = joinedAt; nodes <= 5000; nodes++) {
      const wanted = pingsAt(nodes);
      if (needsRetune(held, wanted)) { held = wanted; moves++; }
    }
    most = Math.max(most, moves);
  }
  assert.equal(most, 2);
});

test('the moves spread over 10 intervals for a node without tasks, 60 for one with tasks, at most an hour', () => {
  assert.equal(retuneDelayMs(5000, false, 0), 0);
  assert.equal(retuneDelayMs(5000, false, 0.5), 25_000);
  assert.equal(retuneDelayMs(5000, true, 0.5), 150_000);
  assert.ok(retuneDelayMs(10_000, true, 0.999_999) < 600_000);
  assert.equal(retuneDelayMs(1e12, true, 0.5), 3_600_000, 'at most an hour (and within a timer\'s range)');
});
