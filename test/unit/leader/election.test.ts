import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { isDeposed, Store, commitInBatches, type Fence } from '../../../src/store/store';
import { silentLogger } from '../../../src/common/log';
import { Election } from '../../../src/manager/leader/election';
import { electionStep, leaseTtlMs } from '../../../src/manager/leader/decide';
import { LEADER_KEY, PRESENCE } from '../../../src/store/keys';
import type { Service } from '../../../src/model/types';
import type { LeaseKeeper } from '../../../src/store/lease-keeper';
import type { Compare, Op, TxnResult } from '../../../src/store/backend';

const service = (id: string, name: string): Service => ({ ID: id, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: { Name: name }, Endpoint: { Spec: {} } });

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('decide: campaign only with a live lease and no leader; step down when the key or lease goes', () => {
  const base = { nodeId: 'a', now: 10_000, ttlMs: 2000, marginMs: 300 };
  assert.equal(electionStep({ ...base }), 'new-lease');
  assert.equal(electionStep({ ...base, leaseConfirmedSentAt: 9_000 }), 'campaign');
  assert.equal(electionStep({ ...base, leaseConfirmedSentAt: 9_000, leaderKey: { value: 'b', createRevision: 5 } }), 'hold');
  assert.equal(electionStep({ ...base, leaseConfirmedSentAt: 9_000, leaderKey: { value: 'a', createRevision: 5 }, term: 5 }), 'hold');
  assert.equal(electionStep({ ...base, leaseConfirmedSentAt: 9_000, leaderKey: { value: 'a', createRevision: 7 }, term: 5 }), 'step-down');
  assert.equal(electionStep({ ...base, leaseConfirmedSentAt: 9_000, term: 5 }), 'step-down');
  // The lease may have expired at etcd (last confirmed renewal sent 1.8 s ago, TTL 2 s, margin 0.3 s).
  assert.equal(electionStep({ ...base, leaseConfirmedSentAt: 8_200, leaderKey: { value: 'a', createRevision: 5 }, term: 5 }), 'step-down');
});

test('one leader among three managers; a dead leader is replaced and its fenced writes are refused', async () => {
  const backend = new MemoryBackend();
  const stores = await Promise.all([0, 1, 2].map(() => Store.open(backend, silentLogger)));
  const leading = new Map<string, Fence>();
  const elections = stores.map((store, i) => new Election({
    store, nodeId: `m${i}`, log: silentLogger, renewMs: 20,
    lead: async (fence) => { leading.set(`m${i}`, fence); return { stop: async () => { leading.delete(`m${i}`); } }; },
  }));
  for (const e of elections) e.start();
  await until(() => leading.size === 1 && stores[0]!.metaUnder(PRESENCE).length === 3, 'a leader and three presence keys');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(leading.size, 1, 'exactly one leader');
  const [first, fence] = [...leading][0]!;
  const i = Number(first.slice(1));
  assert.equal(stores[0]!.meta(LEADER_KEY)?.value, first);

  // The leader's lease expires (its host died): another leads; the old term's writes are refused.
  const oldLeaderStore = stores[i]!.fenced(fence);
  const lease = (elections[i] as unknown as { lease: string }).lease;
  await elections[i]!.stop().catch(() => undefined); // stop renewing (revokes: same effect as expiry, faster)
  void lease;
  await until(() => leading.size === 1 && !leading.has(first), 'a new leader');
  await assert.rejects(oldLeaderStore.txn().create('services', service('s1', 'web')).commit(), (e: unknown) => isDeposed(e));
  const r = await commitInBatches(oldLeaderStore, [(t) => { t.create('services', service('s2', 'web2')); }]).catch((e: unknown) => e);
  assert.ok(isDeposed(r));
  // The new leader's fenced writes go through.
  const [, newFence] = [...leading][0]!;
  await stores[(i + 1) % 3]!.fenced(newFence).txn().create('services', service('s3', 'web3')).commit();
  assert.ok(stores[0]!.get('services', 's3'));
  assert.equal(stores[0]!.metaUnder(PRESENCE).length, 2, 'the stopped manager has no presence');
  for (const e of elections) await e.stop();
  for (const s of stores) await s.close();
});

test('a manager whose lease expires at etcd steps down; the others take over', async () => {
  const backend = new MemoryBackend();
  const stores = await Promise.all([0, 1].map(() => Store.open(backend, silentLogger)));
  const leading = new Set<string>();
  const elections = stores.map((store, i) => new Election({
    store, nodeId: `m${i}`, log: silentLogger, renewMs: 20,
    lead: async () => { leading.add(`m${i}`); return { stop: async () => { leading.delete(`m${i}`); } }; },
  }));
  for (const e of elections) e.start();
  await until(() => leading.size === 1, 'a leader');
  const first = [...leading][0]!;
  const e = elections[Number(first.slice(1))] as unknown as { lease: string };
  backend.expireLease(e.lease);
  await until(() => leading.size === 1 && !leading.has(first), 'the other manager leads');
  for (const x of elections) await x.stop();
  for (const s of stores) await s.close();
});

test('decide: a leader key naming this manager while it does not lead is cleared', () => {
  const base = { nodeId: 'a', now: 10_000, ttlMs: 2000, marginMs: 300, leaseConfirmedSentAt: 9_000 };
  assert.equal(electionStep({ ...base, leaderKey: { value: 'a', createRevision: 5 } }), 'clear-own');
  assert.equal(electionStep({ ...base, leaseConfirmedSentAt: 7_000, leaderKey: { value: 'a', createRevision: 5 } }), 'new-lease');
});

// A backend whose renewals take as long as the test says.
class SlowRenewals extends MemoryBackend {
  delayMs = 0;
  // The next transaction that puts the leader key on a lease is applied, and then reported as failed (an answer lost).
  loseNextMoveAnswer = false;
  override async txn(compares: Compare[], ops: Op[]): Promise<TxnResult> {
    const res = await super.txn(compares, ops);
    if (this.loseNextMoveAnswer && ops.some((o) => 'put' in o && o.put === LEADER_KEY && o.lease)) {
      this.loseNextMoveAnswer = false;
      throw new Error('4 DEADLINE_EXCEEDED: Deadline exceeded');
    }
    return res;
  }
  override async keepAliveOnce(lease: string): Promise<void> {
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    return super.keepAliveOnce(lease);
  }
  holder(key: string): string | undefined {
    for (const [lease, keys] of (this as unknown as { leases: Map<string, Set<string>> }).leases) if (keys.has(key)) return lease;
    return undefined;
  }
}

// One manager on its own, counting its terms.
async function soleManager(backend: MemoryBackend, opts: Partial<ConstructorParameters<typeof Election>[0]>) {
  const store = await Store.open(backend, silentLogger);
  const state = { terms: 0, leading: false };
  const election = new Election({
    store, nodeId: 'm0', log: silentLogger, renewMs: 20, ...opts,
    lead: async () => { state.leading = true; state.terms++; return { stop: async () => { state.leading = false; } }; },
  });
  election.start();
  return { store, election, state, close: async (): Promise<void> => { await election.stop(); await store.close(); } };
}

// Quorum lost and back: the leader's renewal is confirmed, but too late for it
// to be sure, so it stepped down; etcd kept the lease and so the leader key.
// Before, that manager held the key for ever without leading (nobody led).
test('a leader that stepped down on a late renewal while etcd kept its lease leads again', async () => {
  const backend = new SlowRenewals();
  const { store, state, close } = await soleManager(backend, { ttlSeconds: 0.3, maxTtlSeconds: 0.3, marginMs: 50 });
  try {
    await until(() => state.leading, 'a leader');
    backend.delayMs = 400;
    await until(() => !state.leading, 'the step-down');
    assert.equal(store.meta(LEADER_KEY)?.value, 'm0', 'the key outlived the term');
    backend.delayMs = 0;
    await until(() => state.leading && state.terms === 2, 'a new term');
  } finally {
    await close();
  }
});

// A step that waits (here the leader's components take 600 ms to start, five
// times the lease's margin) must not hold the renewals up: before, the lease
// ran out meanwhile, the new leader stepped down at once and started over.
test('renewals go on while a step waits: a slow start of the leader components keeps the term', async () => {
  class Counting extends MemoryBackend {
    renewals = 0;
    override async keepAliveOnce(lease: string): Promise<void> { this.renewals++; return super.keepAliveOnce(lease); }
  }
  const backend = new Counting();
  const store = await Store.open(backend, silentLogger);
  let terms = 0;
  let leading = false;
  let renewedDuringStart = -1;
  const election = new Election({
    store, nodeId: 'm0', log: silentLogger, renewMs: 20, ttlSeconds: 0.3, marginMs: 50,
    lead: async () => {
      terms++;
      const before = backend.renewals;
      await new Promise((r) => setTimeout(r, 600));
      renewedDuringStart = backend.renewals - before;
      leading = true;
      return { stop: async () => { leading = false; } };
    },
  });
  election.start();
  try {
    await until(() => leading, 'a leader');
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(renewedDuringStart >= 5, `${renewedDuringStart} renewals while the components started`);
    assert.equal(terms, 1, 'one term');
    assert.ok(leading, 'still leading');
  } finally {
    await election.stop();
    await store.close();
  }
});

test('decide: the lease TTL follows the worst recent hold-up, between the configured TTL and the maximum', () => {
  assert.equal(leaseTtlMs(4000, 16_000, 0), 4000);
  assert.equal(leaseTtlMs(4000, 16_000, 1300), 4000, '3 x 1.3 s is within 4 s');
  assert.equal(leaseTtlMs(4000, 16_000, 1400), 5000, 'rounded up to whole seconds (etcd grants seconds)');
  assert.equal(leaseTtlMs(4000, 16_000, 3200), 10_000);
  assert.equal(leaseTtlMs(4000, 16_000, 30_000), 16_000);
  assert.equal(leaseTtlMs(4000, 2000, 30_000), 4000, 'never below the configured TTL');
});

// A sole manager whose lease may stretch from 0.6 s to 3 s, once it leads.
async function stretchingLeader() {
  const backend = new SlowRenewals();
  const m = await soleManager(backend, { ttlSeconds: 0.6, maxTtlSeconds: 3, marginMs: 50, strainWindowMs: 1000 });
  await until(() => m.state.leading, 'a leader');
  return { ...m, backend, e: m.election as unknown as { lease?: string; ttlMs: number }, term: m.store.meta(LEADER_KEY)!.createRevision };
}

test('a leader whose renewals slow down stretches its lease and keeps its term; the TTL comes back after the window', async () => {
  const { backend, store, e, state, close, term } = await stretchingLeader();
  try {
    const first = e.lease!;
    assert.equal(e.ttlMs, 600);
    // Renewals take 250 ms, within the 600 ms lease: 3 x 250 ms asks for 1 s.
    backend.delayMs = 250;
    await until(() => e.ttlMs === 1000, 'a 1 s lease');
    assert.notEqual(e.lease, first, 'a new lease');
    assert.equal(backend.holder(LEADER_KEY), e.lease, 'the leader key moved to it');
    assert.equal(backend.holder(`${PRESENCE}m0`), e.lease, 'so did the presence key');
    assert.equal(store.meta(LEADER_KEY)!.createRevision, term, 'same term: the fence still holds');
    // Slower still: 3 x 400 ms asks for 2 s.
    backend.delayMs = 400;
    await until(() => e.ttlMs === 2000, 'a 2 s lease');
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(state.leading, 'still leading');
    assert.equal(state.terms, 1, 'one term all along');
    // Calm again: once the hold-ups leave the window, the configured TTL is back.
    backend.delayMs = 0;
    await until(() => e.ttlMs === 600, 'the 600 ms lease again', 4000);
    assert.ok(state.leading);
    assert.equal(state.terms, 1);
    assert.equal(store.meta(LEADER_KEY)!.createRevision, term);
  } finally {
    await close();
  }
});

// One renewal at a time, a lease's age reached twice the round trip before a
// renewal counted (the next was sent only when the one before was confirmed):
// 350 ms renewals on a 100 ms timer lost a 600 ms lease (age up to 750 ms)
// although etcd renewed it every 400 ms.
test('renewals overlap: renewals slower than half the lease keep the term', async () => {
  const backend = new SlowRenewals();
  const { state, close } = await soleManager(backend, { renewMs: 100, ttlSeconds: 0.6, maxTtlSeconds: 0.6, marginMs: 50 });
  try {
    await until(() => state.leading, 'a leader');
    backend.delayMs = 350;
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(state.leading, 'still leading');
    assert.equal(state.terms, 1, 'one term');
  } finally {
    await close();
  }
});

// Stands for the keeper's thread: it confirms the lease it was told to keep
// as renewed now, while `confirming`.
class FakeKeeper implements LeaseKeeper {
  kept?: string;
  beats = 0;
  closed = false;
  confirming = true;
  keep(lease: string | undefined): void { this.kept = lease; }
  beat(): void { this.beats++; }
  confirmedSentAt(lease: string): number | undefined { return this.confirming && lease === this.kept ? Date.now() : undefined; }
  async close(): Promise<void> { this.closed = true; }
}

test('a lease the keeper thread renews keeps the term while the loop\'s own renewals come too late; without it the leader steps down', async () => {
  const backend = new SlowRenewals();
  const keeper = new FakeKeeper();
  const { state, election, close } = await soleManager(backend, { ttlSeconds: 0.3, maxTtlSeconds: 0.3, marginMs: 50, keeper });
  const e = election as unknown as { lease?: string };
  let closed = false;
  try {
    await until(() => state.leading, 'a leader');
    assert.equal(keeper.kept, e.lease, 'the keeper renews the lease the election holds');
    // The election's own renewals take longer than the lease (the loop held up).
    backend.delayMs = 400;
    await new Promise((r) => setTimeout(r, 1200));
    assert.ok(state.leading, 'still leading');
    assert.equal(state.terms, 1, 'one term');
    assert.ok(keeper.beats > 0, 'the election tells the keeper its loop turns');
    keeper.confirming = false;
    await until(() => !state.leading, 'the step-down once nothing confirms the lease in time');
    await close();
    closed = true;
    assert.equal(keeper.kept, undefined, 'nothing left to renew');
    assert.ok(keeper.closed, 'the keeper closed with the election');
  } finally {
    if (!closed) await close();
  }
});

// Seen at 5,000 nodes: a move to a longer lease applied, its answer timed
// out, and the election revoked the new lease, deleting the leader key.
test('a move to another lease whose answer is lost keeps the leader key and the term', async () => {
  const { backend, store, e, state, close, term } = await stretchingLeader();
  try {
    backend.loseNextMoveAnswer = true;
    backend.delayMs = 250; // asks for a 1 s lease
    await until(() => e.ttlMs === 1000, 'the move to a 1 s lease');
    assert.equal(backend.loseNextMoveAnswer, false, 'the move\'s answer was lost');
    assert.equal(backend.holder(LEADER_KEY), e.lease, 'the leader key is on the lease the election holds');
    assert.equal(store.meta(LEADER_KEY)?.createRevision, term, 'same term');
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(state.leading, 'still leading');
    assert.equal(state.terms, 1, 'one term');
  } finally {
    await close();
  }
});

// A leader whose mirror stopped following etcd (its watch stalled) went on
// seeing its own leader key: refused writes must end its term anyway.
test('a leader whose fenced write etcd refuses steps down at once, even while its mirror still shows its key', async () => {
  const backend = new MemoryBackend();
  const store = await Store.open(backend, silentLogger);
  let fence: Fence | undefined;
  let leading = false;
  const election = new Election({
    store, nodeId: 'm0', log: silentLogger, renewMs: 20,
    lead: async (f) => { fence = f; leading = true; return { stop: async () => { leading = false; } }; },
  });
  election.start();
  try {
    await until(() => leading, 'a leader');
    backend.muteWatches();
    // Another term in etcd; this manager's mirror does not see it.
    await backend.txn([], [{ del: LEADER_KEY }]);
    await backend.txn([], [{ put: LEADER_KEY, value: 'm9' }]);
    assert.equal(store.meta(LEADER_KEY)?.value, 'm0', 'the mirror still shows this manager leading');
    await assert.rejects(store.fenced(fence!).txn().create('services', service('s1', 'web')).commit(), (e: unknown) => isDeposed(e));
    await until(() => !leading, 'the step-down');
  } finally {
    await election.stop();
    await store.close();
  }
});
