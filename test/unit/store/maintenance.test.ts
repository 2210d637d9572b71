import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Maintenance, type MaintenanceBackend } from '../../../src/store/maintenance';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';
import { silentLogger } from '../../../src/common/log';
import { ShoalError } from '../../../src/common/errors';
import type { Compare, Op, TxnResult } from '../../../src/store/backend';

class FakeEtcd implements MaintenanceBackend {
  calls: string[] = [];
  alarmList: string[] = [];
  size = { dbSize: 100 * 1024 * 1024, dbSizeInUse: 90 * 1024 * 1024 };
  async status() { this.calls.push('status'); return this.size; }
  async alarms() { return this.alarmList; }
  async compact(rev: number) { this.calls.push(`compact ${rev}`); }
  async defragment() { this.calls.push('defragment'); }
  async disarm() { this.calls.push('disarm'); this.alarmList = []; }
}

const opts = { intervalMs: 3_600_000, retention: 1000, defragBelow: 0.5, defragMinBytes: 64 * 1024 * 1024 };

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

test('a write refused for space is a clear unavailable error', async () => {
  const b = new MemoryBackend();
  const store = await Store.open(b, silentLogger);
  b.txn = async (_c: Compare[], _o: Op[]): Promise<TxnResult> => { throw new Error('etcdserver: mvcc: database space exceeded'); };
  await assert.rejects(store.txn().create('services', { ID: 's', Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: { Name: 'x' }, Endpoint: { Spec: {} } }).commit(),
    (err: unknown) => err instanceof ShoalError && err.kind === 'unavailable' && /cluster store is out of space/.test(err.message));
  await store.close();
});
