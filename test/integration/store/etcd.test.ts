import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { spawn } from 'node:child_process';
import { getPriority } from 'node:os';
import { ETCD_NICE_BELOW_DAEMON, etcdClientOptions, EtcdProcess } from '../../../src/store/etcd-process';
import { makeEtcdTls } from '../../helpers/etcd-tls';
import { EtcdBackend, SoftDeadlineError } from '../../../src/store/etcd-backend';
import { Store } from '../../../src/store/store';
import { silentLogger } from '../../../src/common/log';
import type { Service } from '../../../src/model/types';
import { ShoalError } from '../../../src/common/errors';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
    s.on('error', reject);
  });
}

async function until(what: string, fn: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// A one-member etcd on free ports with its own certificates, in a new temp dir.
async function startEtcd(prefix: string) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const clientUrl = `https://127.0.0.1:${await freePort()}`;
  const tls = await makeEtcdTls(join(dir, 'certificates'));
  const etcd = new EtcdProcess({ binary: '/usr/bin/etcd', dataDir: join(dir, 'etcd'), name: 'n1', clientUrl, peerUrl: `https://127.0.0.1:${await freePort()}`, tls, log: silentLogger });
  await etcd.start();
  return { dir, clientUrl, tls, etcd };
}

const svc = (id: string, name: string): Service => ({ ID: id, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: { Name: name }, Endpoint: { Spec: {} } });

test('store on a real etcd: CAS, names, and a watch that survives kill -9 of etcd', async (t) => {
  const { dir, clientUrl, tls, etcd } = await startEtcd('shoal-etcd-');
  const store = await Store.open(new EtcdBackend(etcdClientOptions(clientUrl, tls)), silentLogger);
  t.after(async () => { await store.close(); await etcd.stop(); rmSync(dir, { recursive: true, force: true }); });

  // etcd goes before its daemon for the CPU (the tests run as root, as the daemon does).
  assert.equal(getPriority(etcd.pid!), Math.max(-20, getPriority() - ETCD_NICE_BELOW_DAEMON));
  const s = svc('s1', 'web');
  await store.txn().create('services', s).commit();
  assert.ok(s.Version.Index > 0);
  await assert.rejects(store.txn().create('services', svc('s2', 'web')).commit(), (e: unknown) => e instanceof ShoalError && e.kind === 'conflict');
  const stale = structuredClone(s);
  await store.mutate('services', 's1', (x) => { x.Spec.Labels = { v: '2' }; return x; });
  await assert.rejects(store.txn().update('services', stale, s).commit(), (e: unknown) => e instanceof ShoalError && e.kind === 'sequence');

  // kill -9 of etcd: the supervisor restarts it, the watch resumes, nothing acknowledged is lost.
  const oldPid = etcd.pid!;
  process.kill(oldPid, 'SIGKILL');
  await until('etcd restarted', () => etcd.pid !== undefined && etcd.pid !== oldPid);
  await etcd.waitHealthy(20_000);
  assert.equal(getPriority(etcd.pid!), Math.max(-20, getPriority() - ETCD_NICE_BELOW_DAEMON), 'the restarted member too');
  let write: number | undefined;
  const deadline = Date.now() + 20_000;
  while (write === undefined) {
    try { write = await store.txn().create('services', svc('s3', 'after')).commit(); } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await until('watch delivered the write made after the restart', () => store.get('services', 's3') !== undefined);
  assert.deepEqual(store.get('services', 's1')?.Spec.Labels, { v: '2' });

  // A second store opened on the same etcd sees the same state.
  const other = await Store.open(new EtcdBackend(etcdClientOptions(clientUrl, tls)), silentLogger);
  assert.deepEqual(other.list('services').map((x) => x.Spec.Name).sort(), ['after', 'web']);
  await other.close();
});

// etcd3's watch manager retries a dead endpoint for as long as a watcher is
// attached, even after its client is closed (issue 8): a process whose store
// was closed after its etcd died must still end by itself.
test('a write etcd answers late fails alone: the client keeps its connection, the watch its stream, and the write still lands', async (t) => {
  const { dir, clientUrl, tls, etcd } = await startEtcd('shoal-etcd-soft-');
  const backend = new EtcdBackend(etcdClientOptions(clientUrl, tls));
  t.after(async () => { try { process.kill(etcd.pid!, 'SIGCONT'); } catch { /* gone */ } await backend.close(); await etcd.stop(); rmSync(dir, { recursive: true, force: true }); });
  // etcd3 keeps one gRPC client per service and host, and throws them all
  // away (closing their channels; the next call makes new ones) when a call
  // fails with a "recoverable" error, a call deadline among them.
  const kvClient = (): unknown => (backend.client as unknown as { pool: { hosts: Array<{ cachedServices: Record<string, unknown> }> } }).pool.hosts[0]!.cachedServices.KV;
  const { revision } = await backend.range('/t/');
  const before = kvClient();
  assert.ok(before, 'a KV client after the first call');
  const seen: string[] = [];
  const lost: string[] = [];
  await backend.watch('/t/', revision + 1, { onEvents: (evs) => { for (const e of evs) seen.push(e.kv.key); }, onLost: (err) => { lost.push(err.message); } });

  // etcd held: the write's answer cannot come within its 300 ms.
  process.kill(etcd.pid!, 'SIGSTOP');
  await assert.rejects(backend.txn([{ key: '/t/a', absent: true }], [{ put: '/t/a', value: '1' }], { timeoutMs: 300 }), SoftDeadlineError);
  process.kill(etcd.pid!, 'SIGCONT');
  await backend.txn([], [{ put: '/t/b', value: '2' }]);
  assert.equal(kvClient(), before, 'the same client (and channel) after the late answer');
  await until('both writes seen by the watch, the late one too', () => seen.includes('/t/a') && seen.includes('/t/b'), 10_000);
  assert.deepEqual(lost, [], 'the watch was never lost');
});

test('a store closed after its etcd died leaves nothing running: its process ends', async (t) => {
  const { dir, clientUrl, tls, etcd } = await startEtcd('shoal-etcd-close-');
  const src = join(__dirname, '../../../src');
  const script = `
    const { EtcdBackend } = require(${JSON.stringify(join(src, 'store/etcd-backend.js'))});
    const { etcdClientOptions } = require(${JSON.stringify(join(src, 'store/etcd-process.js'))});
    const { Store } = require(${JSON.stringify(join(src, 'store/store.js'))});
    const { createLogger } = require(${JSON.stringify(join(src, 'common/log.js'))});
    (async () => {
      const store = await Store.open(new EtcdBackend(etcdClientOptions(process.argv[1], JSON.parse(process.argv[2]))), createLogger('warn'));
      process.stdout.write('open\\n');
      process.stdin.once('data', () => { process.stdin.destroy(); store.close().then(() => process.stdout.write('closed\\n')); });
    })();`;
  const child = spawn(process.execPath, ['-e', script, clientUrl, JSON.stringify(tls)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.after(async () => { if (child.exitCode === null) child.kill('SIGKILL'); await etcd.stop(); rmSync(dir, { recursive: true, force: true }); });

  await until('the child store open', () => out.includes('open'));
  // etcd dies for good: the store sees its watch break and keeps trying to resume it.
  process.kill(etcd.pid!, 'SIGKILL');
  await etcd.stop();
  await until('the child store trying to resume its watch', () => /store watch broken|store resync failed/.test(err));
  child.stdin.write('close\n');
  await until('the child store closed', () => out.includes('closed'));
  const code = await Promise.race([exited, new Promise<'alive'>((r) => setTimeout(() => r('alive'), 10_000).unref())]);
  assert.equal(code, 0, `the child did not end within 10 s of its store's close (stderr: ${err.slice(-2000)})`);
});

test('a client whose watches wedge (every new watch waits for ever) is replaced for watches: the next watch works', async (t) => {
  const { dir, clientUrl, tls, etcd } = await startEtcd('shoal-etcd-wedge-');
  const backend = new EtcdBackend(etcdClientOptions(clientUrl, tls));
  t.after(async () => { await backend.close(); await etcd.stop(); rmSync(dir, { recursive: true, force: true }); });
  // etcd3's watch manager stuck "connecting", as seen in CI after a kill -9 of etcd: reads and writes still work.
  (backend as unknown as { watchClient: { watchManager: { state: number } } }).watchClient.watchManager.state = 1;
  const { revision } = await backend.txn([], [{ put: '/wedge/a', value: '1' }]);
  await assert.rejects(backend.watch('/wedge/', revision + 1, { onEvents: () => undefined, onLost: () => undefined }), /did not create the watch/);
  const seen: string[] = [];
  const h = await backend.watch('/wedge/', revision + 1, { onEvents: (evs) => { for (const e of evs) seen.push(e.kv.key); }, onLost: () => undefined });
  await backend.txn([], [{ put: '/wedge/b', value: '2' }]);
  await until('the event on the new client', () => seen.includes('/wedge/b'), 10_000);
  await h.close();
});

test('etcd counts keys at a past revision, and a watch from an old revision delivers its whole backlog, each revision once', async (t) => {
  const { dir, clientUrl, tls, etcd } = await startEtcd('shoal-etcd-count-');
  const b = new EtcdBackend(etcdClientOptions(clientUrl, tls));
  t.after(async () => { await b.close(); await etcd.stop(); rmSync(dir, { recursive: true, force: true }); });
  let rev = 0;
  for (let i = 0; i < 50; i++) rev = (await b.txn([], [{ put: `/shoal/v1/o/services/s${i}`, value: '{}' }, { put: `/other/${i}`, value: 'x' }])).revision;
  const at = rev;
  for (let i = 0; i < 10; i++) await b.txn([], [{ del: `/shoal/v1/o/services/s${i}` }]);
  assert.equal(await b.count('/shoal/v1/o/services/'), 40);
  assert.equal(await b.count('/shoal/v1/o/services/', at), 50, 'pinned at the revision asked for');
  assert.equal(await b.count('/shoal/v1/o/nodes/', at), 0);
  // The backlog follows etcd's "created" (the handlers are on before it): every event of it reaches the callback.
  const seen: number[] = [];
  const w = await b.watch('', 1, { onEvents: (evs) => { for (const e of evs) seen.push(e.kv.modRevision); }, onLost: () => undefined });
  t.after(() => w.close());
  await until('the backlog', () => seen.length >= 110);
  const revisions = [...new Set(seen)];
  assert.equal(seen.length, 110, '50 revisions of two puts and 10 of one delete');
  assert.deepEqual(revisions, revisions.slice().sort((x, y) => x - y), 'in order');
  assert.equal(revisions.length, 60);
});

test('a no-op entry moves etcd\'s raft log on and nothing else: no revision, no watch event; a lone member leads', async (t) => {
  const { dir, clientUrl, tls, etcd } = await startEtcd('shoal-etcd-noop-');
  const b = new EtcdBackend(etcdClientOptions(clientUrl, tls));
  t.after(async () => { await b.close(); await etcd.stop(); rmSync(dir, { recursive: true, force: true }); });
  const rev = (await b.txn([], [{ put: '/shoal/v1/o/services/s', value: '{}' }])).revision;
  const seen: string[] = [];
  const w = await b.watch('', rev + 1, { onEvents: (evs) => { for (const e of evs) seen.push(`${e.type} ${e.kv.key}`); }, onLost: () => undefined });
  t.after(() => w.close());
  const before = Number((await b.client.maintenance.status()).raftIndex);
  for (let i = 0; i < 20; i++) await b.noopEntry();
  const after = Number((await b.client.maintenance.status()).raftIndex);
  assert.ok(after >= before + 20, `raft index ${before} -> ${after}`);
  const next = (await b.txn([], [{ put: '/shoal/v1/o/services/t', value: '{}' }])).revision;
  assert.equal(next, rev + 1, 'no revision in between');
  await until('the put after them', () => seen.length >= 1);
  assert.deepEqual(seen, ['put /shoal/v1/o/services/t']);
  assert.equal((await b.status()).leads, true);
});

// The keeper's thread renews through etcd's gateway while this thread is held
// up (a busy loop, as a leader's long pass): a kept lease outlives a hold-up
// longer than its TTL. One whose keeper hears no beat for longer than its
// maxStallMs (a stuck daemon) lapses like one nobody renews.
test('a lease keeper thread renews a lease while the main loop is held up, and lets it go when the loop seems stuck', async (t) => {
  const { dir, clientUrl, tls, etcd } = await startEtcd('shoal-etcd-keeper-');
  const backend = new EtcdBackend(etcdClientOptions(clientUrl, tls));
  const busy = backend.leaseKeeper(silentLogger, { renewMs: 200, maxStallMs: 30_000, timeoutMs: 2_000 });
  const stuck = backend.leaseKeeper(silentLogger, { renewMs: 200, maxStallMs: 1_000, timeoutMs: 2_000 });
  t.after(async () => { await busy.close(); await stuck.close(); await backend.close(); await etcd.stop(); rmSync(dir, { recursive: true, force: true }); });

  const [kept, abandoned, alone] = [await backend.grantLease(2), await backend.grantLease(2), await backend.grantLease(2)];
  busy.keep(kept);
  stuck.keep(abandoned);
  busy.beat(Date.now());
  stuck.beat(Date.now());
  // The keepers' first confirmations: their threads reach etcd.
  await until('the keepers renew', () => busy.confirmedSentAt(kept) !== undefined && stuck.confirmedSentAt(abandoned) !== undefined, 10_000);
  const heldFrom = Date.now();
  while (Date.now() - heldFrom < 5_000) { /* held up: no timer, no I/O on this thread */ }
  assert.ok(busy.confirmedSentAt(kept)! > heldFrom + 3_000, 'renewed during the hold-up');
  await backend.keepAliveOnce(kept);
  await assert.rejects(backend.keepAliveOnce(alone), /could not be renewed/, 'a lease nobody renews lapsed');
  await assert.rejects(backend.keepAliveOnce(abandoned), /could not be renewed/, 'a stuck loop\'s lease lapsed');
  // A confirmation counts only for the lease the keeper keeps now.
  busy.keep(alone);
  assert.equal(busy.confirmedSentAt(kept), undefined);
  assert.equal(busy.confirmedSentAt(alone), undefined);
});
