import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  allowanceMs, DEFAULT_HEARTBEAT_PERIOD_MS, DISRUPTION_MIN_NODES, DOWN_BURST_MIN, downBurst, effectivePeriodMs, expect, forgive, forgiveSome, heard, heartbeatIntervalMs, heartbeatPeriodMs, MAX_BEATS_PER_SECOND, MIN_HEARTBEAT_PERIOD_MS, nextExpiry, RELAY_MIN_NODES, relayHeldUp, relayStallMs, startLeading, takeExpired, type DownMarks, type Liveness,
} from '../../../src/manager/dispatcher/liveness';
import { makeNode } from '../orchestrator/fixtures';

const T = 1_000_000;
// Below the burst limit every expired node goes down at once.
const expired = (s: Liveness, now: number): string[] => takeExpired(s, [], now, DEFAULT_HEARTBEAT_PERIOD_MS).down;

test('timing: the default period beats every 2.5 s and declares a node down after 7.5 s', () => {
  assert.equal(heartbeatPeriodMs(undefined), DEFAULT_HEARTBEAT_PERIOD_MS);
  assert.equal(heartbeatPeriodMs(0), DEFAULT_HEARTBEAT_PERIOD_MS, 'zero means the default');
  assert.equal(heartbeatPeriodMs(5e9), 5000);
  assert.equal(heartbeatPeriodMs(2e9), 2000, 'swarm update --dispatcher-heartbeat 2s');
  assert.equal(heartbeatPeriodMs(1e6), MIN_HEARTBEAT_PERIOD_MS, 'a floor against busy beating');
  assert.equal(heartbeatIntervalMs(5000), 2500);
  assert.equal(allowanceMs(5000), 7500);
  assert.ok(allowanceMs(5000) >= 3 * heartbeatIntervalMs(5000), 'two beats in a row may be lost');
});

test('a big cluster beats less often: the period grows in 5 s steps to keep the beats at most MAX_BEATS_PER_SECOND; the configured period is the floor', () => {
  const beatsPerSecond = (nodes: number, periodMs: number): number => (nodes * 1000) / heartbeatIntervalMs(periodMs);
  assert.equal(effectivePeriodMs(5000, 3), 5000, 'a small swarm keeps Docker\'s default');
  assert.equal(effectivePeriodMs(5000, 1250), 5000);
  assert.equal(effectivePeriodMs(5000, 1251), 10_000);
  assert.equal(effectivePeriodMs(5000, 5000), 20_000);
  assert.equal(effectivePeriodMs(5000, 5003), 25_000);
  assert.equal(effectivePeriodMs(10_000, 2500), 10_000);
  assert.equal(effectivePeriodMs(10_000, 5000), 20_000);
  assert.equal(effectivePeriodMs(30_000, 5000), 30_000, 'a longer configured period is kept');
  assert.equal(effectivePeriodMs(2000, 1200), 5000, 'a short configured period too is stretched, to a whole step');
  for (const nodes of [1, 999, 1000, 1250, 1251, 2500, 4999, 5000, 5001, 20_000]) {
    for (const configured of [MIN_HEARTBEAT_PERIOD_MS, 2000, 5000, 10_000, 60_000]) {
      const p = effectivePeriodMs(configured, nodes);
      assert.ok(p >= configured, `${nodes} nodes, ${configured} ms: ${p}`);
      assert.ok(p === configured || beatsPerSecond(nodes, p) <= MAX_BEATS_PER_SECOND, `${nodes} nodes, ${configured} ms: ${p} ms is ${beatsPerSecond(nodes, p)} beats/s`);
      assert.ok(p === configured || beatsPerSecond(nodes, p - 5000) > MAX_BEATS_PER_SECOND || p - 5000 < configured, `${nodes} nodes, ${configured} ms: ${p} ms is longer than needed`);
    }
  }
});

test('a node heard from stays alive until its allowance has passed, and each beat extends it', () => {
  const s: Liveness = new Map();
  heard(s, 'a', T, 5000);
  assert.deepEqual(expired(s, T + 7499), []);
  heard(s, 'a', T + 2500, 5000);
  assert.deepEqual(expired(s, T + 7500), [], 'the later beat counts');
  assert.equal(nextExpiry(s), T + 10_000);
  assert.deepEqual(expired(s, T + 10_000), ['a']);
  assert.equal(s.size, 0, 'a node declared down is no longer watched');
  assert.equal(nextExpiry(s), undefined);
});

test('expiry returns every node past its time, sorted, and leaves the others', () => {
  const s: Liveness = new Map();
  heard(s, 'c', T, 1000);
  heard(s, 'b', T, 1000);
  heard(s, 'a', T + 5000, 1000);
  assert.deepEqual(expired(s, T + 1500), ['b', 'c']);
  assert.deepEqual([...s.keys()], ['a']);
});

test('on becoming leader every node not down gets a fresh, longer grace; down nodes are not watched', () => {
  const nodes = [makeNode('r'), makeNode('u', { state: 'unknown' }), makeNode('d', { state: 'down' })];
  const s = startLeading(nodes, T, 5000);
  assert.deepEqual([...s.keys()].sort(), ['r', 'u']);
  assert.deepEqual(expired(s, T + 7500), [], 'not after a single allowance: agents need time to find the new leader');
  assert.deepEqual(expired(s, T + 15_000), ['r', 'u']);
});

test('expect does not shorten what a beat granted', () => {
  const s: Liveness = new Map();
  heard(s, 'a', T, 5000);
  expect(s, 'a', T - 1000, 5000);
  assert.equal(s.get('a'), T + 7500);
});

test('a stall of the manager itself gives every node its time back', () => {
  const state: Liveness = new Map([['a', 1000], ['b', 2500]]);
  forgive(state, 8000);
  assert.deepEqual(expired(state, 8500), [], 'nobody is down for the manager\'s own delay');
  assert.deepEqual(expired(state, 9000), ['a']);
});

test('a relaying manager\'s silence is excused to the nodes it relays, less the leader\'s own stalls meanwhile, up to an allowance, and only when it relays many', () => {
  const P = 10_000; // allowance 15 s
  assert.equal(relayStallMs(300, 0, 1000, P), 0, 'batches a few hundred ms apart: nothing');
  assert.equal(relayStallMs(6000, 0, 1000, P), 6000);
  assert.equal(relayStallMs(6000, 5500, 1000, P), 0, 'the leader\'s own stall already gave everyone that time');
  assert.equal(relayStallMs(6000, 2000, 1000, P), 4000);
  assert.equal(relayStallMs(60_000, 0, 1000, P), 15_000, 'at most an allowance');
  assert.equal(relayStallMs(6000, 0, RELAY_MIN_NODES - 1, P), 0, 'a few relayed nodes beat seconds apart anyway');
  assert.equal(relayHeldUp(6000, 0, 1000, P), true);
  assert.equal(relayHeldUp(16_000, 0, 1000, P), false, 'silent past an allowance: as good as gone');
  assert.equal(relayHeldUp(900, 0, 1000, P), false);
  const state: Liveness = new Map([['a', 1000], ['b', 2500], ['c', 1000]]);
  forgiveSome(state, ['a', 'b', 'gone'], 4000);
  assert.deepEqual([...state], [['a', 5000], ['b', 6500], ['c', 1000]], 'only the named nodes, and no entry for one not watched');
});

test('nodes waiting for their relay are not judged: left as they are, counted, and outside the burst count', () => {
  const state: Liveness = new Map([['direct', 1000], ['relayed-old', 1500], ['relayed-new', 4000]]);
  const marks: DownMarks = [];
  // The relay went silent at 3000: a node due before that was overdue already.
  const pending = (id: string, at: number): boolean => id.startsWith('relayed') && at >= 3000;
  const r = takeExpired(state, marks, 5000, 5000, pending);
  assert.deepEqual(r.down, ['direct', 'relayed-old']);
  assert.equal(r.pending, 1);
  assert.equal(state.get('relayed-new'), 4000, 'its expiry untouched: the relay\'s next batch excuses the silence');
});

test('many nodes silent at once: at most a tenth of the watched nodes (at least 10) go down per allowance; the rest get more time, and a beat saves them', () => {
  const P = DEFAULT_HEARTBEAT_PERIOD_MS;
  const s: Liveness = new Map();
  const ids = Array.from({ length: 200 }, (_, i) => `n${String(i).padStart(3, '0')}`);
  const beating = ids.slice(100); // the other half (less than DISRUPTION_FRACTION) falls silent
  for (const id of ids) heard(s, id, T, P);
  const beat = (t: number): void => { for (const id of beating) heard(s, id, t, P); };
  assert.equal(downBurst(200), 20);
  const marks: DownMarks = [];
  beat(T + 5000);
  const first = takeExpired(s, marks, T + 7500, P);
  assert.equal(first.down.length, 20);
  assert.equal(first.deferred, 80);
  assert.equal(first.disrupted, false);
  assert.equal(first.limit, 20);
  // Within the window nothing more goes down.
  beat(T + 10_000);
  assert.deepEqual(takeExpired(s, marks, T + 10_000, P).down, []);
  // A node heard meanwhile is saved.
  heard(s, 'n099', T + 12_000, P);
  beat(T + 15_000);
  const second = takeExpired(s, marks, T + 15_000, P);
  assert.equal(second.down.length, downBurst(180), 'a tenth of those still watched');
  assert.ok(!second.down.includes('n099'));
  assert.equal(s.get('n099'), T + 12_000 + 7500);
  // Every silent node goes down in the end.
  const gone = new Set([...first.down, ...second.down]);
  for (let t = T + 17_500; gone.size < 99 && t < T + 600_000; t += 2500) {
    beat(t);
    heard(s, 'n099', t, P); // it beats on
    for (const id of takeExpired(s, marks, t, P).down) gone.add(id);
  }
  assert.equal(gone.size, 99);
  assert.ok(!gone.has('n099'));
  assert.ok(beating.every((id) => !gone.has(id)));
});

test('most of a large swarm silent at once (the managers\' side, most likely): only DOWN_BURST_MIN per allowance go down, and all in the end', () => {
  const P = DEFAULT_HEARTBEAT_PERIOD_MS;
  const s: Liveness = new Map();
  for (let i = 0; i < DISRUPTION_MIN_NODES * 4; i++) heard(s, `n${String(i).padStart(3, '0')}`, T, P);
  const marks: DownMarks = [];
  const first = takeExpired(s, marks, T + 7500, P);
  assert.deepEqual({ down: first.down.length, deferred: first.deferred, disrupted: first.disrupted, limit: first.limit }, { down: DOWN_BURST_MIN, deferred: 190, disrupted: true, limit: DOWN_BURST_MIN });
  const gone = new Set(first.down);
  let windows = 1;
  for (let t = T + 10_000; gone.size < 200 && t < T + 3_600_000; t += 2500) {
    const r = takeExpired(s, marks, t, P);
    assert.ok(r.down.length <= DOWN_BURST_MIN);
    if (r.down.length) windows++;
    for (const id of r.down) gone.add(id);
  }
  assert.equal(gone.size, 200);
  assert.equal(windows, 200 / DOWN_BURST_MIN);
});

test('a few nodes lost at once in a small swarm all go down at once', () => {
  const s: Liveness = new Map();
  for (const id of ['a', 'b', 'c', 'd', 'e']) heard(s, id, T, 5000);
  heard(s, 'e', T + 5000, 5000);
  const r = takeExpired(s, [], T + 7500, 5000);
  assert.deepEqual(r, { down: ['a', 'b', 'c', 'd'], deferred: 0, disrupted: false, limit: DOWN_BURST_MIN, pending: 0 }, 'four of five: below DISRUPTION_MIN_NODES, no disruption');
});
