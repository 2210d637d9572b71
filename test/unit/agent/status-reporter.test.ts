import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/log';
import type { TaskState, TaskStatus } from '../../../src/model/types';
import type { AgentControlPlane } from '../../../src/agent/control-plane';
import { StatusReporter } from '../../../src/agent/status-reporter';
import { waitFor } from './fakes';
import { capturingLogger } from '../../helpers/capturing-logger';

// Records what reached the managers, and when (ms after the test's start).
class Recorder {
  readonly sent: Array<{ task: string; state: TaskState; at: number }> = [];
  failNext = 0;
  readonly t0 = Date.now();
  readonly cp: AgentControlPlane = {
    watchAssignments: () => () => {},
    updateTaskStatus: async (task: string, s: TaskStatus) => {
      if (this.failNext > 0) { this.failNext--; throw new Error('manager unavailable'); }
      this.sent.push({ task, state: s.State, at: Date.now() - this.t0 });
    },
  };
  states(task: string): TaskState[] { return this.sent.filter((x) => x.task === task).map((x) => x.state); }
}
const st = (State: TaskState): TaskStatus => ({ Timestamp: new Date().toISOString(), State, Message: State });
const RETRY = { minMs: 10, maxMs: 50 };

test('a container that starts within the hold costs one report: running; an end goes out at once', async () => {
  const r = new Recorder();
  const rep = new StatusReporter(r.cp, silentLogger, RETRY, 60_000);
  for (const s of ['accepted', 'preparing', 'ready', 'starting'] as const) rep.report('a', st(s));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(r.sent, [], 'transitional states wait');
  rep.report('a', st('running'));
  await waitFor('running sent', () => r.states('a').length === 1, 2000);
  assert.deepEqual(r.states('a'), ['running']);
  rep.report('b', st('rejected'));
  await waitFor('rejected sent without the 60 s hold', () => r.states('b').length === 1, 2000);
  await rep.close();
});

test('a held state goes out once the hold is over, counted from the first; a retry is not held again', async () => {
  const r = new Recorder();
  // Hold 400 ms, the second state 250 ms in: a hold counted from the first
  // sends at about 400 ms, one restarted by the second at about 650 ms.
  const rep = new StatusReporter(r.cp, silentLogger, RETRY, 400);
  rep.report('p', st('accepted'));
  await new Promise((resolve) => setTimeout(resolve, 250));
  rep.report('p', st('preparing')); // a newer transitional state does not restart the hold
  await waitFor('preparing sent', () => r.states('p').length === 1, 3000);
  assert.deepEqual(r.states('p'), ['preparing']);
  assert.ok(r.sent[0]!.at >= 390 && r.sent[0]!.at < 600, `sent ${r.sent[0]!.at} ms in, after the 400 ms hold from the first report`);

  r.failNext = 1;
  const reportedAt = Date.now() - r.t0;
  rep.report('q', st('starting'));
  await waitFor('starting sent after one failure', () => r.states('q').length === 1, 3000);
  const took = r.sent.find((x) => x.task === 'q')!.at - reportedAt;
  assert.ok(took >= 390 && took < 700, `one 400 ms hold and one 10 ms back-off, not two holds (about 810 ms; took ${took} ms)`);
  await rep.close();
});

test('close sends what is held instead of waiting out the hold', async () => {
  const r = new Recorder();
  const rep = new StatusReporter(r.cp, silentLogger, RETRY, 60_000);
  rep.report('c', st('preparing'));
  await rep.close(2000);
  assert.deepEqual(r.states('c'), ['preparing']);
});

test('a failed call for many tasks is one warning, not one per task', async () => {
  const { log, lines } = capturingLogger('info');
  const r = new Recorder();
  r.failNext = 50;
  const rep = new StatusReporter(r.cp, log, RETRY, 0);
  for (let i = 0; i < 50; i++) rep.report(`t${i}`, st('running'));
  await waitFor('every report sent after its failure', () => r.sent.length === 50, 3000);
  const warned = lines.filter((l) => l.msg === 'task status reports failed; retrying');
  assert.equal(warned.length, 1);
  assert.equal(warned[0]!.err, 'manager unavailable');
  await rep.close();
});
