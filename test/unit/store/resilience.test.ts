import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store, commitInBatches, planBatches } from '../../../src/store/store';
import { MAX_TXN_BYTES, MAX_TXN_OPS, opBytes, type Compare, type Op, type RangeOptions, type RangeResult, type TxnResult, type WatchCallbacks, type WatchHandle } from '../../../src/store/backend';
import { ROOT, objectKey } from '../../../src/store/keys';
import { silentLogger } from '../../../src/common/log';
import type { Service, Task } from '../../../src/model/types';
import { ShoalError } from '../../../src/common/errors';
import { waitFor } from '../../helpers/daemon';
import { secondClient } from '../../helpers/memory-view';
import { capturingLogger } from '../../helpers/capturing-logger';

function task(id: string, serviceId: string, env: string[] = []): Task {
  return { ID: id, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Labels: {}, Spec: { ContainerSpec: { Image: 'busybox', Env: env } }, ServiceID: serviceId, Status: { Timestamp: 't', State: 'new', Message: '' }, DesiredState: 'running' };
}
const service = (id: string, name: string): Service => ({ ID: id, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: { Name: name }, Endpoint: { Spec: {} } });

// Every object key's value as the store would hand it out, from the backend and from the mirror.
async function backendObjects(b: MemoryBackend, store: Store): Promise<Map<string, number>> {
  const { kvs } = await b.range(ROOT + 'o/');
  void store;
  return new Map(kvs.map((kv) => [kv.key, kv.modRevision]));
}
function mirrorObjects(store: Store): Map<string, number> {
  const m = new Map<string, number>();
  for (const kind of ['services', 'tasks'] as const) for (const o of store.list(kind)) m.set(objectKey(kind, o.ID), o.Version.Index);
  return m;
}


test('a load bigger than one answer may be is read in pages, all at the revision of the first', async () => {
  const b = new MemoryBackend();
  const writer = await Store.open(b, silentLogger);
  await commitInBatches(writer, Array.from({ length: 3000 }, (_, i) => (t) => { t.create('tasks', task(`t${String(i).padStart(5, '0')}`, 's1', [`I=${i}`])); }));
  b.maxResponseBytes = 200_000;   // a whole-prefix read is about 1.4 MB: refused, as grpc refuses > 4 MiB
  // Writes land between pages: a key of a later page is deleted, one is added.
  const realRange = b.range.bind(b);
  let pages = 0;
  b.range = async (prefix: string, opts?: RangeOptions): Promise<RangeResult> => {
    const r = await realRange(prefix, opts);
    if (++pages === 1) {
      await writer.txn().delete('tasks', writer.get('tasks', 't02999')!).create('tasks', task('t99999', 's1')).commit();
    }
    return r;
  };
  const store = await Store.open(b, silentLogger);
  assert.ok(pages > 2, `read in ${pages} pages`);
  await waitFor('the mirror to apply the writes made during the load', async () => store.get('tasks', 't99999') !== undefined, 5000);
  assert.equal(store.get('tasks', 't02999'), undefined);
  assert.equal(store.count('tasks'), 3000);
  b.maxResponseBytes = 0;
  assert.deepEqual(mirrorObjects(store), await backendObjects(b, store));
});

test('bulk writes are split by bytes under etcd\'s request limit; one object too large fails alone', async () => {
  const b = new MemoryBackend();
  const sizes: number[] = [];
  const realTxn = b.txn.bind(b);
  b.txn = async (c: Compare[], ops: Op[]): Promise<TxnResult> => {
    const bytes = ops.reduce((n, op) => n + opBytes(op), 0);
    sizes.push(bytes);
    // etcd's --max-request-bytes (1.5 MiB) and --max-txn-ops
    if (bytes > 1.5 * 1024 * 1024 || ops.length > MAX_TXN_OPS) throw new Error('etcdserver: request is too large');
    return realTxn(c, ops);
  };
  const store = await Store.open(b, silentLogger);
  // 130 replicas with 12 KB of env, each task its own spec (distinct env) so no sharing helps.
  const big = (i: number): string[] => [`SLOT=${i}`, `X=${'x'.repeat(12 * 1024)}`];
  const builds = Array.from({ length: 130 }, (_, i) => (t: import('../../../src/store/store').StoreTxn) => { t.create('tasks', task(`t${i}`, 's1', big(i))); });
  builds.push((t) => { t.create('tasks', task('huge', 's1', [`H=${'h'.repeat(MAX_TXN_BYTES + 10)}`])); });
  const { failed, tooBig } = await commitInBatches(store, builds);
  assert.equal(failed, 0);
  assert.equal(store.count('tasks'), 130, 'every task but the oversized one is written');
  assert.equal(tooBig.length, 1);
  assert.match(tooBig[0]!.message, /too large for the cluster store/);
  assert.ok(sizes.length > 1 && Math.max(...sizes) <= MAX_TXN_BYTES, `txn sizes ${sizes.join(',')}`);
  // A single commit of it is refused with the same clear error, before reaching etcd.
  await assert.rejects(store.txn().create('tasks', task('huge', 's1', [`H=${'h'.repeat(MAX_TXN_BYTES + 10)}`])).commit(),
    (e: unknown) => e instanceof ShoalError && e.kind === 'invalid');
});

test('planBatches keeps op counts under etcd\'s --max-txn-ops', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  const { batches } = planBatches(store, Array.from({ length: 1000 }, (_, i) => service(`s${i}`, `n${i}`)), (t, s) => t.create('services', s));
  assert.ok(batches.every((x) => x.txn.size <= MAX_TXN_OPS));
  assert.equal(batches.reduce((n, x) => n + x.items.length, 0), 1000);
});

// etcd3's own resume after a reconnect restarts from the header revision of
// the last response, which can be past events not yet delivered: this
// backend delivers a stream that silently skips the next revision.
class SkippingBackend extends MemoryBackend {
  skip = 0;
  override async watch(prefix: string, from: number, cb: WatchCallbacks): Promise<WatchHandle> {
    return super.watch(prefix, from, {
      onEvents: (evs, h) => {
        if (this.skip > 0) { this.skip--; return; }
        cb.onEvents(evs, h);
      },
      onLost: cb.onLost,
    });
  }
}

test('a watch that skips revisions is detected and the mirror reloaded with a diff', async () => {
  const b = new SkippingBackend();
  const store = await Store.open(b, silentLogger);
  const other = await Store.open(secondClient(b), silentLogger);
  const seen: string[] = [];
  store.subscribe((evs) => { for (const e of evs) seen.push(`${e.action}:${e.id}`); });
  await other.txn().create('tasks', task('a', 's1')).commit();
  await waitFor('a', async () => store.get('tasks', 'a') !== undefined, 2000);
  b.skip = 1;
  await other.txn().create('tasks', task('b', 's1')).commit();   // lost in the stream
  await other.txn().create('tasks', task('c', 's1')).commit();   // arrives: a gap before it
  await waitFor('the reload to bring b and c', async () => store.get('tasks', 'b') !== undefined && store.get('tasks', 'c') !== undefined, 3000);
  assert.deepEqual(mirrorObjects(store), await backendObjects(b, store));
  assert.ok(seen.includes('create:b'), 'components are told about what the gap hid');
  await other.close(); await store.close();
});

test('a broken watch is resumed by the store from its own revision; writes made meanwhile arrive', async () => {
  const b = new MemoryBackend();
  const store = await Store.open(b, silentLogger);
  const other = await Store.open(secondClient(b), silentLogger);
  b.breakWatches();
  await other.txn().create('tasks', task('x', 's1')).commit();
  await other.txn().create('tasks', task('y', 's1')).commit();
  await waitFor('x and y', async () => store.get('tasks', 'x') !== undefined && store.get('tasks', 'y') !== undefined, 3000);
  assert.equal(store.revision, b.currentRevision);
  // Compacted past the mirror while the watch is down: resume fails, a full reload follows.
  b.breakWatches();
  await other.txn().create('tasks', task('z', 's1')).commit();
  await other.txn().delete('tasks', other.get('tasks', 'x')!).commit();
  b.compact(b.currentRevision);
  b.breakWatches();
  await waitFor('z, and x gone', async () => store.get('tasks', 'z') !== undefined && store.get('tasks', 'x') === undefined, 3000);
  assert.deepEqual(mirrorObjects(store), await backendObjects(b, store));
});

test('a watch that goes silent without an error is resumed once a write waits on it; the write completes', async () => {
  const b = new MemoryBackend();
  const { log, lines } = capturingLogger();
  const store = await Store.open(b, log, { watchStallMs: 100 });
  await store.txn().create('tasks', task('before', 's1')).commit();
  b.muteWatches();
  const started = Date.now();
  // Committed in the backend; its answer waits for the mirror to show it.
  await store.txn().create('tasks', task('after', 's1')).commit();
  assert.ok(store.get('tasks', 'after'), 'the mirror shows the write it waited for');
  assert.ok(Date.now() - started < 5_000, 'resumed well before the write\'s own bound');
  assert.equal(lines.filter((l) => l.msg === 'store watch silent while writes wait for it; resuming').length, 1);
  // Quiet with nothing waiting is not a stall: no resume.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(lines.filter((l) => l.msg === 'store watch silent while writes wait for it; resuming').length, 1);
  await store.close();
});

// A watch made from a revision with a backlog behind it that never arrives
// (a loaded etcd slower than the stall check to send hundreds of big
// revisions): created, then silent.
class SlowCatchUp extends MemoryBackend {
  silentBacklog = false;
  override async watch(prefix: string, from: number, cb: WatchCallbacks): Promise<WatchHandle> {
    if (this.silentBacklog && from <= this.currentRevision) return { close: async () => undefined };
    return super.watch(prefix, from, cb);
  }
}

test('a resumed watch silent again at the same revision is not resumed again but reloaded; the write completes', async () => {
  const b = new SlowCatchUp();
  const { log, lines } = capturingLogger();
  const store = await Store.open(b, log, { watchStallMs: 100 });
  await store.txn().create('tasks', task('before', 's1')).commit();
  b.silentBacklog = true;
  b.muteWatches();
  await store.txn().create('tasks', task('after', 's1')).commit();
  assert.ok(store.get('tasks', 'after'), 'the mirror shows the write it waited for');
  assert.equal(lines.filter((l) => l.msg === 'store watch silent while writes wait for it; resuming').length, 1);
  assert.equal(lines.filter((l) => l.msg === 'store watch silent again without catching up; reloading').length, 1);
  await store.close();
});

// A resumed watch whose backlog comes late (a loaded etcd gathering it).
class LateCatchUp extends MemoryBackend {
  lateMs = 0;
  override async watch(prefix: string, from: number, cb: WatchCallbacks): Promise<WatchHandle> {
    if (!this.lateMs || from > this.currentRevision) return super.watch(prefix, from, cb);
    let inner: WatchHandle | undefined;
    let closed = false;
    const timer = setTimeout(() => { void super.watch(prefix, from, cb).then((h) => { if (closed) void h.close(); else inner = h; }); }, this.lateMs);
    return { close: async () => { closed = true; clearTimeout(timer); await inner?.close(); } };
  }
}

test('a resumed watch slower than the stall check to send its backlog is waited for, not reloaded', async () => {
  const b = new LateCatchUp();
  const { log, lines } = capturingLogger();
  // Stall check 100 ms; a resumed watch silent for 1 s (ten checks) would be reloaded.
  const store = await Store.open(b, log, { watchStallMs: 100 });
  await store.txn().create('tasks', task('before', 's1')).commit();
  b.lateMs = 500;
  b.muteWatches();
  await store.txn().create('tasks', task('after', 's1')).commit();
  assert.ok(store.get('tasks', 'after'), 'the mirror shows the write it waited for');
  assert.equal(lines.filter((l) => l.msg === 'store watch silent while writes wait for it; resuming').length, 1);
  assert.equal(lines.filter((l) => l.msg === 'store watch silent again without catching up; reloading').length, 0);
  await store.close();
});

test('an etcd with another cluster ID is reloaded, not mixed into the mirror', async () => {
  const b = new MemoryBackend();
  const store = await Store.open(b, silentLogger);
  const other = await Store.open(secondClient(b), silentLogger);
  await other.txn().create('tasks', task('a', 's1')).commit();
  await waitFor('a', async () => store.get('tasks', 'a') !== undefined, 2000);
  b.clusterId = '2';
  await other.txn().create('tasks', task('b', 's1')).commit();
  await waitFor('b', async () => store.get('tasks', 'b') !== undefined, 3000);
  assert.deepEqual(mirrorObjects(store), await backendObjects(b, store));
});

test('garbage values under the prefix are logged once and left out; the store keeps serving', async () => {
  const b = new MemoryBackend();
  const w = await Store.open(b, silentLogger);
  await w.txn().create('services', service('s1', 'web')).commit();
  await b.txn([], [
    { put: objectKey('tasks', 'junk'), value: 'not json{' },
    { put: objectKey('tasks', 'arr'), value: '[1,2]' },
    { put: objectKey('tasks', 'wrongid'), value: JSON.stringify({ ...task('other', 's1'), Version: undefined }) },
    { put: objectKey('nodes', 'n1'), value: JSON.stringify({ ID: 'n1', Spec: 'nope' }) },
    { put: objectKey('tasks', 'noblob'), value: JSON.stringify({ ...task('noblob', 's1'), Spec: undefined, SpecRef: 'feed' }) },
    // Plausible, from another cluster: a task of a service nobody knows. Valid in shape: kept.
    { put: objectKey('tasks', 'foreign'), value: JSON.stringify({ ...task('foreign', 'unknown-service'), Version: undefined }) },
  ]);
  // Stored bytes that read as a packed value but do not inflate (store/value-packing.ts).
  await b.putStored(objectKey('tasks', 'unreadable'), Buffer.from([0x00, 0x01, 0xff, 0xff, 0xff]));
  const { log, lines } = capturingLogger();
  const store = await Store.open(b, log);
  assert.deepEqual(store.list('tasks').map((t) => t.ID), ['foreign']);
  assert.equal(store.count('nodes'), 0);
  assert.equal(store.get('services', 's1')?.Spec.Name, 'web');
  const bad = lines.filter((l) => l.msg === 'store: ignoring a value that is not a valid object');
  assert.equal(bad.length, 6);
  assert.match(String(bad.find((l) => l.key === objectKey('tasks', 'unreadable'))?.problem), /packed value that does not inflate/);
  // A backup leaves the unreadable value out, and says so; the rest is in it.
  const snap = await store.snapshot();
  assert.ok(snap.kvs.some(([k]) => k === objectKey('tasks', 'junk')));
  assert.ok(!snap.kvs.some(([k]) => k === objectKey('tasks', 'unreadable')));
  assert.ok(lines.some((l) => l.msg === 'backup: leaving out a value that cannot be read' && l.key === objectKey('tasks', 'unreadable')));
  // Through the watch too, and a good object turned bad leaves the mirror.
  await w.txn().create('tasks', task('good', 's1')).commit();
  await waitFor('good', async () => store.get('tasks', 'good') !== undefined, 2000);
  await b.txn([], [{ put: objectKey('tasks', 'good'), value: '{"ID":"good"}' }]);
  await waitFor('good to leave', async () => store.get('tasks', 'good') === undefined, 2000);
  // A reload does not report the same values again.
  b.breakWatches();
  b.compact(b.currentRevision); b.breakWatches();
  await w.txn().create('services', service('s2', 'db')).commit();
  await waitFor('s2', async () => store.get('services', 's2') !== undefined, 3000);
  assert.equal(lines.filter((l) => l.msg === 'store: ignoring a value that is not a valid object').length, 7);
});

test('a write whose answer is lost after it applied is reported as written, not as a conflict', async () => {
  const b = new MemoryBackend();
  const store = await Store.open(b, silentLogger);
  b.faults.txnAfter = 1;
  const s = service('s1', 'web');
  const rev = await store.txn().create('services', s).commit();
  assert.equal(store.get('services', 's1')?.Version.Index, rev);
  // Not applied (no answer, and the read-back shows nothing): sent again, once, never a conflict.
  b.faults.txnBefore = 1;
  await store.txn().create('services', service('s2', 'db')).commit();
  assert.equal(store.get('services', 's2')?.Spec.Name, 'db');
  // An update whose answer is lost.
  const cur = store.get('services', 's1')!;
  const next = structuredClone(cur); next.Spec.Labels = { a: '1' };
  b.faults.txnAfter = 1;
  await store.txn().update('services', next, cur).commit();
  assert.deepEqual(store.get('services', 's1')?.Spec.Labels, { a: '1' });
});

test('waitFor gives up with unavailable after its bound', async () => {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  await assert.rejects(store.waitFor(store.revision + 5, 50), (e: unknown) => e instanceof ShoalError && e.kind === 'unavailable');
});

test('tasks keep one shared spec: stored once in etcd, one object in the mirror, collected when unused', async () => {
  const b = new MemoryBackend();
  const store = await Store.open(b, silentLogger, { blobGcDelayMs: 10 });
  const env = [`BIG=${'e'.repeat(4096)}`];
  await commitInBatches(store, Array.from({ length: 300 }, (_, i) => (t) => { t.create('tasks', task(`t${i}`, 's1', env)); }));
  const { kvs } = await b.range(ROOT);
  const total = kvs.reduce((n, kv) => n + kv.value.length, 0);
  assert.ok(total < 300 * 1024, `300 tasks of 4 KB specs take ${total} bytes in etcd`);
  assert.equal(store.specCount, 1);
  const t0 = store.get('tasks', 't0')!; const t1 = store.get('tasks', 't1')!;
  assert.equal(t0.Spec, t1.Spec, 'one spec object shared in the mirror');
  assert.deepEqual(t0.Spec, { ContainerSpec: { Image: 'busybox', Env: env } });
  // A restart sees the same tasks with their specs.
  const again = await Store.open(b, silentLogger);
  assert.deepEqual(again.get('tasks', 't5'), store.get('tasks', 't5'));
  // mutate clones: changing one task's spec changes only it and makes a second blob.
  await store.mutate('tasks', 't0', (t) => { t.Spec.ContainerSpec!.Env = ['SMALL=1']; return t; });
  assert.deepEqual(store.get('tasks', 't1')!.Spec.ContainerSpec?.Env, env);
  assert.deepEqual(store.get('tasks', 't0')!.Spec.ContainerSpec?.Env, ['SMALL=1']);
  assert.equal(store.specCount, 2);
  // Remove every task using the big spec: its blob goes.
  await commitInBatches(store, store.list('tasks').filter((t) => t.ID !== 't0').map((t) => (x) => { x.delete('tasks', t); }));
  await waitFor('the unused blob to be collected', async () => store.specCount === 1, 3000);
  assert.equal((await b.range(ROOT + 'b/')).kvs.length, 1);
  await again.close(); await store.close();
});

// A watch the backend will not make while `refuse` is set: the store retries,
// and what was written meanwhile comes as one backlog of many revisions.
class RefusingBackend extends MemoryBackend {
  refuse = false;
  override async watch(prefix: string, from: number, cb: WatchCallbacks): Promise<WatchHandle> {
    if (this.refuse) throw new Error('14 UNAVAILABLE: No connection established');
    return super.watch(prefix, from, cb);
  }
}

// The store's mirror and a writer on one backend; the store's watch broken and
// not made again until `write` is done: what it wrote comes as one backlog.
async function backlogAfter(write: (other: Store, b: MemoryBackend) => Promise<void>): Promise<{ store: Store; seen: string[]; reloads: number; b: MemoryBackend }> {
  const b = new RefusingBackend();
  const { log, lines } = capturingLogger();
  const store = await Store.open(b, log);
  const other = await Store.open(secondClient(b), silentLogger, { blobGcDelayMs: 10 });
  const seen: string[] = [];
  store.subscribe((evs) => { for (const e of evs) seen.push(`${e.action}:${e.id}`); });
  await other.txn().create('services', service('s0', 'kept')).commit();
  await waitFor('s0', async () => store.get('services', 's0') !== undefined, 2000);
  b.refuse = true;
  b.breakWatches();
  await write(other, b);
  b.refuse = false;
  await waitFor('the backlog', async () => store.revision === b.currentRevision, 5000);
  await other.close();
  return { store, seen: seen.filter((x) => x !== 'create:s0'), reloads: lines.filter((l) => l.msg === 'store loaded').length - 1, b };
}

test('a backlog of many revisions is applied one revision at a time: an object made and removed meanwhile is gone', async () => {
  const { store, seen, reloads, b } = await backlogAfter(async (other) => {
    await other.txn().create('services', service('s1', 'short-lived')).commit();
    await other.txn().delete('services', other.get('services', 's1')!).commit();
  });
  assert.equal(store.get('services', 's1'), undefined, 'the delete in the backlog removed what its create had added');
  assert.deepEqual(seen, ['create:s1', 'delete:s1']);
  assert.equal(reloads, 0);
  assert.deepEqual(mirrorObjects(store), await backendObjects(b, store));
  await store.close();
});

test('a backlog of many revisions: a task whose spec was collected after the task went is no alarm', async () => {
  const { store, seen, reloads, b } = await backlogAfter(async (other, backend) => {
    await other.txn().create('tasks', task('t1', 's0', ['ONLY=t1'])).commit();
    await other.txn().delete('tasks', other.get('tasks', 't1')!).commit();
    await waitFor('the writer to collect the spec', async () => (await backend.range(ROOT + 'b/')).kvs.length === 0, 3000);
  });
  assert.deepEqual(seen, ['create:t1', 'delete:t1']);
  assert.equal(reloads, 0, 'no divergence, no reload');
  assert.deepEqual(mirrorObjects(store), await backendObjects(b, store));
  await store.close();
});
