import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { etcdClientOptions, EtcdProcess } from '../../../src/store/etcd-process';
import { makeEtcdTls } from '../../helpers/etcd-tls';
import { EtcdBackend } from '../../../src/store/etcd-backend';
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

const svc = (id: string, name: string): Service => ({ ID: id, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: { Name: name }, Endpoint: { Spec: {} } });

test('store on a real etcd: CAS, names, and a watch that survives kill -9 of etcd', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-etcd-'));
  const clientUrl = `https://127.0.0.1:${await freePort()}`;
  const tls = await makeEtcdTls(join(dir, 'certificates'));
  const etcd = new EtcdProcess({ binary: '/usr/bin/etcd', dataDir: join(dir, 'etcd'), name: 'n1', clientUrl, peerUrl: `https://127.0.0.1:${await freePort()}`, tls, log: silentLogger });
  await etcd.start();
  const store = await Store.open(new EtcdBackend(etcdClientOptions(clientUrl, tls)), silentLogger);
  t.after(async () => { await store.close(); await etcd.stop(); rmSync(dir, { recursive: true, force: true }); });

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
