import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/log';
import type { NodeRole } from '../../../src/model/types';
import { decideRoleStep, newerNotice, type RoleNotice } from '../../../src/node/role';
import { RoleSwitch } from '../../../src/node/role-switch';

const W = (version: number): RoleNotice => ({ role: 'worker', version });
const M = (version: number): RoleNotice => ({ role: 'manager', version });

test('newerNotice: the higher node version wins, whatever order the notices come in', () => {
  assert.deepEqual(newerNotice(undefined, W(10)), W(10));
  assert.deepEqual(newerNotice(W(10), M(11)), M(11));
  assert.deepEqual(newerNotice(M(11), W(10)), M(11)); // a demotion's notice after the promotion
  assert.deepEqual(newerNotice(M(11), W(11)), M(11)); // same version: same object, nothing new
  assert.deepEqual(newerNotice(M(11), W(0)), M(11));  // unversioned: never over a versioned one
});

test('decideRoleStep: stay, renew, or switch only on a certificate as new as the decision', () => {
  assert.deepEqual(decideRoleStep({ running: 'manager' }), { kind: 'stay' });
  assert.deepEqual(decideRoleStep({ running: 'manager', desired: M(5) }), { kind: 'stay' });
  assert.deepEqual(decideRoleStep({ running: 'manager', desired: W(10) }), { kind: 'renew', want: 'worker' });
  assert.deepEqual(decideRoleStep({ running: 'manager', desired: W(10), cert: W(10) }), { kind: 'switch', to: 'worker' });
  assert.deepEqual(decideRoleStep({ running: 'manager', desired: W(10), cert: W(12) }), { kind: 'switch', to: 'worker' });
  // The CA had already seen the promotion: the demotion is undone before it starts.
  assert.deepEqual(decideRoleStep({ running: 'manager', desired: W(10), cert: M(11) }), { kind: 'stay' });
  // A worker certificate from a CA behind the promotion: renewed again, never acted on.
  assert.deepEqual(decideRoleStep({ running: 'worker', desired: M(11), cert: W(10) }), { kind: 'renew', want: 'manager' });
  assert.deepEqual(decideRoleStep({ running: 'worker', desired: M(11), cert: M(11) }), { kind: 'switch', to: 'manager' });
});

// A node driven by scripted renewals and switches that the test releases.
function harness(start: NodeRole, opts: { renewals?: number; retryMs?: number } = {}) {
  let running: NodeRole = start;
  const renewQueue: Array<(n: RoleNotice) => void> = [];
  const becomeQueue: Array<() => void> = [];
  const became: NodeRole[] = [];
  let renewCalls = 0;
  const sw = new RoleSwitch({
    running: () => running,
    renew: () => { renewCalls++; return new Promise<RoleNotice>((resolve) => renewQueue.push(resolve)); },
    become: (role) => new Promise<void>((resolve) => becomeQueue.push(() => { running = role; became.push(role); resolve(); })),
    log: silentLogger,
    renewPauseMs: 1,
    ...opts,
  });
  const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
  // Until the loop has asked (its retries and pauses run on timers of a few ms): bounded by 2 s.
  const until = async (ready: () => boolean): Promise<void> => {
    const deadline = Date.now() + 2000;
    while (!ready() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
  };
  return {
    sw, became, get running() { return running; }, get renewCalls() { return renewCalls; },
    // Answers the pending renewal once the loop has asked for it.
    async renew(n: RoleNotice): Promise<void> {
      await until(() => renewQueue.length > 0);
      const r = renewQueue.shift();
      assert.ok(r, 'a renewal was asked for');
      r(n);
      await tick();
    },
    async finishSwitch(): Promise<void> {
      await until(() => becomeQueue.length > 0);
      const b = becomeQueue.shift();
      assert.ok(b, 'a switch was started');
      b();
      await tick();
    },
    pendingRenewals: () => renewQueue.length,
    pendingSwitches: () => becomeQueue.length,
  };
}

test('demote then promote at once: a promotion during the demotion, then a stale worker notice and a stale worker certificate, end as a manager', async () => {
  const h = harness('manager');
  h.sw.note(W(10));                  // the demotion, from the mirror
  await h.renew(W(10));              // the CA signs a worker certificate
  // The demotion runs (leaving etcd ...); meanwhile the promotion arrives,
  // then the session's message from before it (a dispatcher that was behind).
  h.sw.note(M(11));
  h.sw.note(W(10));
  await h.finishSwitch();
  assert.equal(h.running, 'worker');
  // The loop decides again: the promotion is what the store says last. The
  // first CA asked has not seen it yet and signs worker again: not acted on.
  await h.renew(W(10));
  assert.equal(h.pendingSwitches(), 0);
  await h.renew(M(11));
  await h.finishSwitch();
  await h.sw.idle();
  assert.equal(h.running, 'manager');
  assert.deepEqual(h.became, ['worker', 'manager']);
  // A late notice of the demotion changes nothing.
  h.sw.note(W(10));
  await h.sw.idle();
  assert.equal(h.pendingRenewals(), 0);
  assert.equal(h.running, 'manager');
});

test('a worker certificate signed for the demotion, arriving after the promotion was seen, does not demote', async () => {
  const h = harness('manager');
  h.sw.note(W(10));
  h.sw.note(M(11));                  // seen while the renewal is on its way
  await h.renew(W(10));              // the demotion's certificate, late
  await h.sw.idle();
  assert.equal(h.pendingSwitches(), 0);
  assert.equal(h.running, 'manager');
  assert.deepEqual(h.became, []);
});

test('the CA already saw the promotion: the demotion is a no-op, and its stale notices after it too', async () => {
  const h = harness('manager');
  h.sw.note(W(10));
  await h.renew(M(11));
  await h.sw.idle();
  assert.deepEqual(h.became, []);
  h.sw.note(W(10));                  // the session's copy of the demotion, late
  await h.sw.idle();
  assert.equal(h.renewCalls, 1);
  assert.equal(h.running, 'manager');
});

test('a CA that stays behind: bounded renewals, then a later try that switches', async () => {
  const h = harness('worker', { renewals: 2, retryMs: 5 });
  h.sw.note(M(20));
  await h.renew(W(19));
  await h.renew(W(19));
  await h.sw.idle();                 // gave up for now, a retry is armed
  assert.equal(h.running, 'worker');
  await h.renew(M(20));              // the retry's renewal
  await h.finishSwitch();
  await h.sw.idle();
  assert.equal(h.running, 'manager');
  h.sw.stop();
});

test('a failed switch is tried again', async () => {
  let running = 'worker' as NodeRole;
  let fail = true;
  const sw = new RoleSwitch({
    running: () => running,
    renew: async () => M(7),
    become: async (role) => { if (fail) { fail = false; throw new Error('etcd join refused'); } running = role; },
    log: silentLogger,
    retryMs: 5,
  });
  sw.note(M(7));
  for (let i = 0; i < 200 && running !== 'manager'; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(running, 'manager');
  sw.stop();
});
