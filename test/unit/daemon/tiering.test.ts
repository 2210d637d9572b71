import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBusy, startedWithTurbofan, startedWithoutTurbofan, type BusyPolicy } from '../../../src/daemon/tiering';

const p: BusyPolicy = { windowMs: 1_000, windows: 3, minUtilization: 0.5, minCpuMs: 1_500 };
const s = (utilization: number, cpuMs: number) => ({ utilization, cpuMs });

test('TurboFan goes on when the loop was busy and the process used the CPU, over the whole span', () => {
  assert.equal(isBusy([s(1, 900), s(1, 900)], p), false, 'not enough windows yet');
  assert.equal(isBusy([s(1, 600), s(0.9, 600), s(0.8, 600)], p), true);
  assert.equal(isBusy([s(0, 0), s(1, 600), s(0.9, 600), s(0.8, 600)], p), true, 'only the last windows count');
});

test('a starved host: a loop waiting for a core looks busy but uses little CPU, and stays without TurboFan', () => {
  assert.equal(isBusy([s(1, 200), s(1, 300), s(0.9, 300)], p), false);
  assert.equal(isBusy([s(0.1, 900), s(0.2, 900), s(0.1, 900)], p), false, 'CPU in threads beside a quiet loop');
});

test('node started with the optimizing compiler off', () => {
  assert.equal(startedWithoutTurbofan(['--no-opt'], ''), true);
  assert.equal(startedWithoutTurbofan([], '--max-old-space-size=100 --no-turbofan'), true);
  assert.equal(startedWithoutTurbofan(['--lite-mode'], ''), false);
  assert.equal(startedWithoutTurbofan([], ''), false);
});

test('TurboFan is kept on from the start when node was told so', () => {
  assert.equal(startedWithTurbofan(['--turbofan'], ''), true);
  assert.equal(startedWithTurbofan([], '--opt'), true);
  assert.equal(startedWithTurbofan(['--no-opt'], ''), false);
  assert.equal(startedWithTurbofan([], ''), false);
});
