import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';
import { MirrorAudit, type MirrorView } from '../../../src/store/mirror-audit';
import type { WatchCallbacks, WatchEvent, WatchHandle } from '../../../src/store/backend';
import { objectKey, objectPrefix, ROOT } from '../../../src/store/keys';
import { silentLogger } from '../../../src/common/log';
import { ShoalError } from '../../../src/common/errors';
import type { Service, Task } from '../../../src/model/types';
import { waitFor } from '../../helpers/daemon';
import { secondClient } from '../../helpers/memory-view';
import { capturingLogger } from '../../helpers/capturing-logger';

const service = (id: string, name: string): Service => ({ ID: id, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: { Name: name }, Endpoint: { Spec: {} } });
function task(id: string, serviceId: string): Task {
  return { ID: id, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Labels: {}, Spec: { ContainerSpec: { Image: 'busybox' } }, ServiceID: serviceId, Status: { Timestamp: 't', State: 'new', Message: '' }, DesiredState: 'running' };
}

const loads = (lines: Array<Record<string, unknown>>): number => lines.filter((l) => l.msg === 'store loaded').length;
const divergences = (lines: Array<Record<string, unknown>>): Array<Record<string, unknown>> => lines.filter((l) => l.msg === 'store mirror disagrees with etcd; reloading it');

// A stream that loses one event out of a revision that carried others: the
// revisions still follow one by one, so the watch's own gap check cannot see it.
class LossyBackend extends MemoryBackend {
  lose?: (e: WatchEvent) => boolean;
  override async watch(prefix: string, from: number, cb: WatchCallbacks): Promise<WatchHandle> {
    return super.watch(prefix, from, {
      onEvents: (evs, h) => {
        const lose = this.lose;
        const kept = lose ? evs.filter((e) => !lose(e)) : evs;
        if (kept.length < evs.length) this.lose = undefined;
        cb.onEvents(kept, h);
      },
      onLost: cb.onLost,
    });
  }
}

async function storeAndWriter(b: MemoryBackend, opts: { auditEveryMs?: number; deepCheckDelayMs?: number; divergeBackoffMs?: number } = {}): Promise<{ store: Store; writer: Store; lines: Array<Record<string, unknown>> }> {
  const { log, lines } = capturingLogger();
  const store = await Store.open(b, log, {
    audit: { intervalMs: opts.auditEveryMs ?? 3_600_000 },
    ...(opts.deepCheckDelayMs ? { deepCheckDelayMs: opts.deepCheckDelayMs } : {}),
    ...(opts.divergeBackoffMs ? { divergeBackoffMs: opts.divergeBackoffMs } : {}),
  });
  return { store, writer: await Store.open(secondClient(b), silentLogger, { audit: { intervalMs: 3_600_000 } }), lines };
}

// A store whose stream lost the removal of service s1: the writer removed it
// and created task t-s1 in the same revision, and only the task arrived.
async function lostRemoval(auditEveryMs: number): Promise<{ store: Store; writer: Store; lines: Array<Record<string, unknown>>; deleted: string[] }> {
  const b = new LossyBackend();
  const { store, writer, lines } = await storeAndWriter(b, { auditEveryMs });
  await writer.txn().create('services', service('s1', 'web')).commit();
  await waitFor('s1 in the mirror', async () => store.get('services', 's1') !== undefined, 2000);
  b.lose = (e) => e.type === 'delete' && e.kv.key === objectKey('services', 's1');
  const deleted: string[] = [];
  store.subscribe((evs) => { for (const e of evs) if (e.action === 'delete') deleted.push(e.id); });
  await writer.txn().delete('services', writer.get('services', 's1')!).create('tasks', task('t-s1', 'other')).commit();
  await waitFor('the companion task', async () => store.get('tasks', 't-s1') !== undefined, 2000);
  return { store, writer, lines, deleted };
}

test('the periodic count finds a delete the watch lost and reloads the mirror', async () => {
  const { store, writer, lines, deleted } = await lostRemoval(50);
  await waitFor('the audit to put the mirror right', async () => store.get('services', 's1') === undefined, 3000);
  assert.ok(store.get('tasks', 't-s1'), 'the rest of that revision stays');
  assert.deepEqual(deleted, ['s1'], 'components are told of the delete the stream lost');
  const said = divergences(lines);
  assert.ok(said.length >= 1);
  assert.match(String(said[0]!.why), /services objects: 1 in the mirror, 0 in etcd/);
  await writer.close(); await store.close();
});

test('a write refused although the mirror says it would pass puts the mirror right at once', async () => {
  const { store, writer, lines } = await lostRemoval(3_600_000);
  const stale = store.get('services', 's1');
  assert.ok(stale, 'the mirror kept the removed service (the fault under test)');
  await assert.rejects(store.txn().update('services', { ...stale, Spec: { Name: 'web', Labels: { a: '1' } } }).commit(),
    (e: unknown) => e instanceof ShoalError && e.kind === 'sequence');
  await waitFor('the reload', async () => store.get('services', 's1') === undefined, 3000);
  assert.match(String(divergences(lines)[0]?.why), /services\/s1 mod revision: \d+ in the mirror, 0 in etcd/);
  await writer.close(); await store.close();
});

test('no alarm on a healthy mirror: plain conflicts, names taken, and values the mirror cannot decode', async () => {
  const b = new MemoryBackend();
  const { store, writer, lines } = await storeAndWriter(b);
  await writer.txn().create('services', service('s1', 'web')).commit();
  await waitFor('s1', async () => store.get('services', 's1') !== undefined, 2000);
  const old = store.get('services', 's1')!;
  await writer.mutate('services', 's1', (s) => ({ ...s, Spec: { ...s.Spec, Labels: { by: 'writer' } } }));
  // A stale version (the mirror has caught up: a plain conflict), and a name already taken.
  await assert.rejects(store.txn().update('services', { ...old, Spec: { Name: 'web', Labels: { by: 'store' } } }).commit());
  await assert.rejects(store.txn().create('services', service('s2', 'web')).commit());
  // A value etcd holds that the mirror cannot decode is still counted.
  await b.txn([], [{ put: objectKey('services', 'bad'), value: '{not json' }]);
  await waitFor('the mirror at etcd\'s revision', async () => store.revision === b.currentRevision, 2000);
  const audit = new MirrorAudit(mirrorViewOf(store), b, silentLogger, () => assert.fail('no divergence'));
  assert.equal(await audit.countCheck(), true);
  // The refusals above were plain conflicts: the store's check ended before the write's error came back.
  assert.deepEqual(divergences(lines), []);
  await writer.close(); await store.close();
});

// The store's own view, reached as the audit reaches it.
function mirrorViewOf(store: Store): MirrorView {
  return (store as unknown as { mirrorView(): MirrorView }).mirrorView();
}

test('the checks compare at the mirror\'s revision, read pinned, and skip what the mirror cannot judge', async () => {
  const b = new MemoryBackend();
  const key = objectKey('services', 'x');
  await b.txn([], [{ put: key, value: '{}' }]);           // revision 2
  await b.txn([], [{ del: key }]);                        // revision 3
  let held = 2;                                           // the mirror, still at revision 2, holds x at 2
  const view: MirrorView = {
    revision: () => 2,
    modRevisionOf: (k) => (k === key ? held : k.startsWith(ROOT + 'n/') ? undefined : 0),
    objectCount: (k) => (k === 'services' ? 1 : 0),
    objectKeys: () => (held ? [[key, held]] : []),
  };
  const why: string[] = [];
  const audit = new MirrorAudit(view, b, silentLogger, (w) => why.push(w));
  // At revision 2 etcd agrees with this mirror, though x is gone now.
  assert.equal(await audit.countCheck(), true);
  assert.equal(await audit.checkRefusal([{ key, modRevision: 2 }]), true);
  assert.equal(await audit.deepCheck(), true);
  // Conditions it cannot judge (a name key, the leader's fence), or that fail in the mirror: not checked.
  assert.equal(await audit.checkRefusal([{ key, modRevision: 2 }, { key: ROOT + 'n/services/web', absent: true }]), undefined);
  assert.equal(await audit.checkRefusal([{ key, modRevision: 2 }, { key: ROOT + 'm/leader', createRevision: 5 }]), undefined);
  assert.equal(await audit.checkRefusal([{ key, modRevision: 1 }]), undefined);
  assert.deepEqual(why, []);
  // A mirror that says x is absent at revision 2 is wrong.
  held = 0;
  assert.equal(await audit.checkRefusal([{ key, absent: true }]), false);
  assert.match(why[0]!, /at revision 2, .*services\/x mod revision: 0 in the mirror, 2 in etcd/);
  // A revision compacted away teaches nothing.
  b.compact(3);
  assert.equal(await audit.countCheck(), undefined);
});

test('the deep check, read at the mirror\'s revision without values, finds lost updates and deletes and nothing else', async () => {
  const b = new MemoryBackend();
  const a = objectKey('services', 'a'); const d = objectKey('services', 'd'); const n = objectKey('services', 'n');
  await b.txn([], [{ put: a, value: '{}' }, { put: d, value: '{}' }]); // 2
  await b.txn([], [{ put: a, value: '{"v":2}' }]);                    // 3: an update the mirror lost
  await b.txn([], [{ del: d }]);                                      // 4: a delete the mirror lost
  await b.txn([], [{ put: n, value: '{}' }]);                         // 5: after the mirror's revision
  const mirror = new Map<string, number>([[a, 2], [d, 2]]);
  const view: MirrorView = { revision: () => 4, modRevisionOf: (k) => mirror.get(k) ?? 0, objectCount: () => 0, objectKeys: () => mirror };
  const why: string[] = [];
  const audit = new MirrorAudit(view, b, silentLogger, (w) => why.push(w));
  assert.equal(await audit.deepCheck(), false);
  assert.match(why[0]!, /at revision 4, 2 key\(s\) differ: .*services\/a: mod revision 2 in the mirror, 3 in etcd; .*services\/d: mod revision 2 in the mirror, none in etcd/);
  // Caught up: a at 3, d gone, and n (created after revision 4, and a key changed after it) prove nothing.
  mirror.set(a, 6); mirror.delete(d); mirror.set(n, 5);
  assert.equal(await audit.deepCheck(), true);
});

test('after the watch is made again, the deep check finds an update the stream lost', async () => {
  const b = new LossyBackend();
  const { store, writer, lines } = await storeAndWriter(b, { deepCheckDelayMs: 20 });
  await writer.txn().create('services', service('s1', 'web')).commit();
  await waitFor('s1', async () => store.get('services', 's1') !== undefined, 2000);
  // The check made after the store opened is over: only the one after the broken watch can find what follows.
  await waitFor('the deep check after open', async () => lines.some((l) => l.msg === 'mirror deep check: the mirror agrees with etcd'), 2000);
  b.lose = (e) => e.type === 'put' && e.kv.key === objectKey('services', 's1');
  const s1 = writer.get('services', 's1')!;
  await writer.txn().update('services', { ...s1, Spec: { Name: 'web', Labels: { v: '2' } } }).create('tasks', task('t1', 's1')).commit();
  await waitFor('the companion task', async () => store.get('tasks', 't1') !== undefined, 2000);
  assert.equal(store.get('services', 's1')?.Spec.Labels, undefined, 'the mirror missed the update (the fault under test)');
  b.breakWatches();
  await waitFor('the deep check to put the mirror right', async () => store.get('services', 's1')?.Spec.Labels?.v === '2', 3000);
  assert.match(String(divergences(lines)[0]?.why), /1 key\(s\) differ: .*services\/s1: mod revision \d+ in the mirror, \d+ in etcd/);
  await writer.close(); await store.close();
});

test('a deep check etcd does not answer is tried again, and then finds the update the stream lost', async () => {
  // Keys-only reads are the deep check's alone: the first ones fail, as on a member that lost its quorum.
  class Unanswering extends LossyBackend {
    failKeysOnly = 0;
    override async range(...args: Parameters<MemoryBackend['range']>): ReturnType<MemoryBackend['range']> {
      if (args[1]?.keysOnly && this.failKeysOnly > 0) { this.failKeysOnly--; throw new Error('14 UNAVAILABLE: no leader'); }
      return super.range(...args);
    }
  }
  const b = new Unanswering();
  const { store, writer, lines } = await storeAndWriter(b, { deepCheckDelayMs: 20 });
  await writer.txn().create('services', service('s1', 'web')).commit();
  await waitFor('the deep check after open', async () => lines.some((l) => l.msg === 'mirror deep check: the mirror agrees with etcd'), 2000);
  b.lose = (e) => e.type === 'put' && e.kv.key === objectKey('services', 's1');
  const s1 = writer.get('services', 's1')!;
  await writer.txn().update('services', { ...s1, Spec: { Name: 'web', Labels: { v: '2' } } }).create('tasks', task('t1', 's1')).commit();
  await waitFor('the companion task', async () => store.get('tasks', 't1') !== undefined, 2000);
  b.failKeysOnly = 3;
  b.breakWatches();
  await waitFor('a later deep check to put the mirror right', async () => store.get('services', 's1')?.Spec.Labels?.v === '2', 3000);
  assert.equal(b.failKeysOnly, 0, 'three checks were skipped first');
  assert.equal(lines.filter((l) => l.msg === 'mirror deep check skipped').length, 3);
  assert.match(String(divergences(lines)[0]?.why), /1 key\(s\) differ: .*services\/s1/);
  await writer.close(); await store.close();
});

test('a new watch while a deep check runs gets its own check after it, never one alongside', async () => {
  // Keys-only reads are the deep check's alone: held on a gate while `hold`.
  class Gated extends LossyBackend {
    hold = false;
    running = 0;
    mostAtOnce = 0;
    started = 0;
    private release: Array<() => void> = [];
    open(): void { this.hold = false; for (const r of this.release.splice(0)) r(); }
    override async range(...args: Parameters<MemoryBackend['range']>): ReturnType<MemoryBackend['range']> {
      if (!args[1]?.keysOnly) return super.range(...args);
      this.started++;
      this.mostAtOnce = Math.max(this.mostAtOnce, ++this.running);
      try {
        if (this.hold) await new Promise<void>((r) => this.release.push(r));
        return await super.range(...args);
      } finally {
        this.running--;
      }
    }
  }
  const b = new Gated();
  const { store, writer, lines } = await storeAndWriter(b, { deepCheckDelayMs: 20 });
  const agreed = (): number => lines.filter((l) => l.msg === 'mirror deep check: the mirror agrees with etcd').length;
  await waitFor('the deep check after open', async () => agreed() === 1, 2000);
  const restarts = (): number => lines.filter((l) => l.msg === 'store watch restarted').length;
  const before = restarts();
  b.hold = true;
  b.breakWatches();
  await waitFor('a second check, held', async () => b.started === 2, 2000);
  b.breakWatches();
  await waitFor('the new watch', async () => restarts() === before + 2, 2000);
  // Ten times the delay after which a check alongside would have started.
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(b.started, 2, 'no check started while one ran');
  b.open();
  await waitFor('the held check and then the new watch\'s own', async () => agreed() === 3, 2000);
  assert.equal(b.started, 3);
  assert.equal(b.mostAtOnce, 1);
  await writer.close(); await store.close();
});

test('a task whose spec never arrived makes the store reload; a spec missing from etcd itself does not, again and again', async () => {
  const b = new LossyBackend();
  const { store, writer, lines } = await storeAndWriter(b, { divergeBackoffMs: 20 });
  b.lose = (e) => e.type === 'put' && e.kv.key.startsWith(ROOT + 'b/');
  await writer.txn().create('tasks', task('t1', 's1')).commit();
  await waitFor('the reload to bring t1 with its spec', async () => store.get('tasks', 't1')?.Spec.ContainerSpec?.Image === 'busybox', 3000);
  assert.match(String(divergences(lines)[0]?.why), /tasks at revision \d+ refer to spec\(s\) \w+ the mirror lacks/);
  // A task whose spec etcd does not hold (written around the store): reported, left out, no reload loop.
  await b.txn([], [{ put: objectKey('tasks', 't2'), value: JSON.stringify({ ...task('t2', 's1'), Spec: undefined, SpecRef: 'nosuchspec' }) }]);
  await waitFor('the second divergence', async () => divergences(lines).length === 2, 3000);
  // Found with no watch restart since the first one's reload: that reload is held back a little.
  assert.equal(divergences(lines)[1]?.reloadInMs, 20);
  await waitFor('the reload', async () => loads(lines) === 3, 3000);
  await b.txn([], [{ put: objectKey('tasks', 't2'), value: JSON.stringify({ ...task('t2', 's1'), Spec: undefined, SpecRef: 'nosuchspec', Labels: { again: '1' } }) }]);
  // The spec check runs as the mirror applies the event.
  await waitFor('the mirror at etcd\'s revision', async () => store.revision === b.currentRevision, 2000);
  assert.equal(divergences(lines).length, 2, 'known missing after the reload: not a divergence again');
  assert.equal(store.get('tasks', 't2'), undefined);
  await writer.close(); await store.close();
});

// A count etcd answers one higher than the mirror can hold, while `lie`: a
// divergence no reload cures (as a fault of Shoal's own would be).
class MiscountingBackend extends MemoryBackend {
  lie = true;
  override async count(prefix: string, revision = 0): Promise<number> {
    return (await super.count(prefix, revision)) + (this.lie && prefix === objectPrefix('services') ? 1 : 0);
  }
}

test('a divergence the reload did not cure is reloaded again later and later; one after a new watch at once', async () => {
  const b = new MiscountingBackend();
  const { store, writer, lines } = await storeAndWriter(b, { auditEveryMs: 10, divergeBackoffMs: 60 });
  await waitFor('four divergences', async () => divergences(lines).length >= 4, 5000);
  b.lie = false;
  const said = divergences(lines).slice(0, 4);
  assert.deepEqual(said.map((l) => l.reloadInMs), [undefined, 60, 120, 240], 'at once, then held back, doubling');
  // While a reload is held back nothing else is said or done: the next divergence comes after it.
  for (let k = 1; k < 3; k++) assert.ok(Number(said[k + 1]!.time) - Number(said[k]!.time) >= Number(said[k]!.reloadInMs), `divergence ${k + 1} after the held-back reload`);
  // Every divergence gets its reload (one load at open besides).
  await waitFor('the held-back reload', async () => loads(lines) === divergences(lines).length + 1, 3000);
  // A watch made again for another reason (its etcd member restarted): the next divergence may be a new lost event.
  b.breakWatches();
  await waitFor('the watch resumed', async () => lines.some((l) => l.msg === 'store watch restarted' && l.mode === 'resume'), 3000);
  const before = divergences(lines).length;
  b.lie = true;
  await waitFor('a divergence after the new watch', async () => divergences(lines).length > before, 3000);
  assert.equal(divergences(lines)[before]?.reloadInMs, undefined, 'reloaded at once');
  await writer.close(); await store.close();
});
