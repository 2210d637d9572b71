import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Maintenance, type MaintenanceBackend } from '../../../src/store/maintenance';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { ETCD_HELD_ENTRIES, RaftLogWindow } from '../../../src/store/raft-log-window';
import { Store } from '../../../src/store/store';
import { silentLogger } from '../../../src/common/log';
import { ShoalError } from '../../../src/common/errors';
import type { Compare, Op, TxnResult } from '../../../src/store/backend';
import { untilStore } from '../../helpers/store-wait';

class FakeEtcd implements MaintenanceBackend {
  calls: string[] = [];
  alarmList: string[] = [];
  size = { dbSize: 100 * 1024 * 1024, dbSizeInUse: 90 * 1024 * 1024 };
  leads = false;
  noops = 0;
  onNoop: () => void = () => undefined;
  async status() { this.calls.push('status'); return { ...this.size, leads: this.leads }; }
  async noopEntry() { this.noops++; this.onNoop(); }
  async alarms() { return this.alarmList; }
  async compact(rev: number) { this.calls.push(`compact ${rev}`); }
  async defragment() { this.calls.push('defragment'); }
  async disarm() { this.calls.push('disarm'); this.alarmList = []; }
}

const opts = { intervalMs: 3_600_000, retention: 1000, defragBelow: 0.5, defragMinBytes: 64 * 1024 * 1024, trimAboveBytes: 1000, quietRevisions: 50, trimInflight: 4, trimMs: 60_000 };

test('maintenance compacts behind the mirror and defragments only a mostly free database', async () => {
  const e = new FakeEtcd();
  let rev = 5000;
  const m = new Maintenance(e, () => rev, silentLogger, opts);
  await m.tick();
  assert.deepEqual(e.calls, ['compact 4000', 'status']);
  e.calls = [];
  e.size = { dbSize: 200 * 1024 * 1024, dbSizeInUse: 40 * 1024 * 1024 };
  rev = 5500;
  await m.tick();
  assert.deepEqual(e.calls, ['compact 4500', 'status', 'defragment']);
  m.stop();
});

test('a NOSPACE alarm is cleared: compact to the mirror, defragment, disarm', async () => {
  const e = new FakeEtcd();
  e.alarmList = ['Nospace'];
  const m = new Maintenance(e, () => 7000, silentLogger, opts);
  await m.tick();
  assert.deepEqual(e.calls, ['compact 7000', 'defragment', 'disarm']);
  m.stop();
});

// A window of 100 entries whose writes at revisions 1-40 weigh 2,000 bytes each, then 10 light ones.
function burst(): RaftLogWindow {
  const w = new RaftLogWindow(100);
  for (let r = 1; r <= 40; r++) w.note(r, 2000);
  for (let r = 41; r <= 50; r++) w.note(r, 10);
  return w;
}

test('once quiet after a burst, the leading member\'s manager pushes the burst out of etcd\'s raft log, once', async () => {
  const e = new FakeEtcd();
  e.leads = true;
  const w = burst();
  let rev = 50;
  const m = new Maintenance(e, () => rev, silentLogger, { ...opts, trimAboveBytes: 50_000 }, w);
  await m.tick();                       // the first look cannot tell quiet from busy
  assert.equal(e.noops, 0);
  rev = 60;                             // 10 revisions since: quiet
  w.note(60, 10);
  await m.tick();
  assert.equal(e.noops, 100 - 20, 'every entry but the light ones after the last heavy one (revisions 41-60)');
  assert.equal(w.heldBytes, 0);
  await m.tick();
  assert.equal(e.noops, 80, 'nothing held: no second trim');
  m.stop();
});

test('no trim by a member that does not lead, while the store is busy, or below the bound', async () => {
  for (const c of [{ leads: false, step: 10, above: 1000 }, { leads: true, step: 50, above: 1000 }, { leads: true, step: 10, above: 100_000 }]) {
    const e = new FakeEtcd();
    e.leads = c.leads;
    let rev = 50;
    const m = new Maintenance(e, () => rev, silentLogger, { ...opts, trimAboveBytes: c.above }, burst());
    await m.tick();
    rev += c.step;
    await m.tick();
    assert.equal(e.noops, 0, JSON.stringify(c));
    m.stop();
  }
});

test('a trim gives way when the store writes again, and a failing entry ends it; the next quiet look tries again', async () => {
  const e = new FakeEtcd();
  e.leads = true;
  const w = burst();
  let rev = 50;
  const m = new Maintenance(e, () => rev, silentLogger, opts, w);
  await m.tick();
  e.onNoop = () => { if (e.noops === 20) rev += 50; };
  await m.tick();
  assert.ok(e.noops >= 20 && e.noops < 30, `${e.noops} entries sent after the store's writes resumed`);
  assert.equal(w.heldBytes, 80_100, 'not cleared');
  e.noops = 0;
  await m.tick();                       // 50 revisions since the last look: busy
  assert.equal(e.noops, 0);
  e.onNoop = () => { if (e.noops === 5) throw new Error('etcd gone'); };
  await m.tick();                       // rev unchanged since: quiet
  assert.ok(e.noops >= 5 && e.noops < 10);
  assert.equal(w.heldBytes, 80_100);
  e.noops = 0;
  e.onNoop = () => undefined;
  await m.tick();
  assert.equal(e.noops, 90);
  assert.equal(w.heldBytes, 0);
  m.stop();
});

test('the raft log window holds the bytes of its last entries only, a gap counting as empty entries', () => {
  const w = new RaftLogWindow(4);
  w.note(1, 10); w.note(1, 5); w.note(2, 20); w.note(3, 30);
  assert.equal(w.heldBytes, 65);
  assert.equal(w.lightTail(25), 0);
  assert.equal(w.lightTail(1000), 4);
  w.note(4, 1);
  assert.equal(w.lightTail(25), 1);
  w.note(5, 1);                         // revision 1 leaves
  assert.equal(w.heldBytes, 52);
  w.note(7, 2);                         // 6 and 7: 2 leaves, then 3
  assert.equal(w.heldBytes, 4);
  w.note(100, 3);                       // everything before leaves
  assert.equal(w.heldBytes, 3);
  w.clear();
  assert.equal(w.heldBytes, 0);
  assert.throws(() => new RaftLogWindow(0), /not a positive integer/);
});

test('a write refused for space is a clear unavailable error', async () => {
  const b = new MemoryBackend();
  const store = await Store.open(b, silentLogger);
  b.txn = async (_c: Compare[], _o: Op[]): Promise<TxnResult> => { throw new Error('etcdserver: mvcc: database space exceeded'); };
  await assert.rejects(store.txn().create('services', { ID: 's', Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: { Name: 'x' }, Endpoint: { Spec: {} } }).commit(),
    (err: unknown) => err instanceof ShoalError && err.kind === 'unavailable' && /cluster store is out of space/.test(err.message));
  await store.close();
});

// The memory backend with etcd's maintenance calls, its member leading: a
// store over it runs a Maintenance, as over etcd.
class MaintainableMemory extends MemoryBackend implements MaintenanceBackend {
  passes = 0;
  noops = 0;
  async status() { this.passes++; return { dbSize: 1024, dbSizeInUse: 1024, leads: true }; }
  async noopEntry() { this.noops++; }
  async alarms() { return []; }
  override async compact(rev: number) { super.compact(rev); }
  async defragment() {}
  async disarm() {}
}

test('the store tells its maintenance what it writes: a burst written through it is pushed out of the raft log once quiet', async () => {
  const b = new MaintainableMemory();
  const store = await Store.open(b, silentLogger, { maintenance: { intervalMs: 10, trimAboveBytes: 20_000, quietRevisions: 5 } });
  try {
    await untilStore(store, () => b.passes >= 3, 'three maintenance passes');
    assert.equal(b.noops, 0, 'nothing written: nothing to push out');
    // One transaction (one raft entry, so no pass can find it half-written) of 30 KB.
    const big = 'x'.repeat(1500);
    const burst = store.txn();
    for (let i = 0; i < 20; i++) burst.create('services', { ID: `s${i}`, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: { Name: `svc${i}`, Labels: { big } }, Endpoint: { Spec: {} } });
    await burst.commit();
    await untilStore(store, () => b.noops > 0, 'the burst pushed out', 10_000);
    const passes = b.passes;
    await untilStore(store, () => b.passes >= passes + 3, 'three passes more');
    // As many no-ops as etcd holds entries (the burst is the newest entry),
    // and not again once done.
    const sent = b.noops;
    assert.equal(sent, ETCD_HELD_ENTRIES);
    const later = b.passes;
    await untilStore(store, () => b.passes >= later + 3, 'three passes more');
    assert.equal(b.noops, sent, 'pushed out once');
  } finally { await store.close(); }
});
