import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as join_ } from 'node:path';
import { createRootCA, issueEtcdCert, issueNodeCert } from '../../../src/manager/ca/ca';
import { ETCD_CERT_NAME } from '../../../src/manager/ca/ca';
import { EtcdProcess, etcdClientOptions, type EtcdTls } from '../../../src/store/etcd-process';
import { EtcdBackend } from '../../../src/store/etcd-backend';
import { initialCluster } from '../../../src/store/etcd-members';
import { Store } from '../../../src/store/store';
import { silentLogger } from '../../../src/common/log';
import { freePort, waitFor } from '../../helpers/daemon';
import { writeEtcdTls } from '../../helpers/etcd-tls';
import type { Service } from '../../../src/model/types';

const svc = (id: string, name: string): Service => ({ ID: id, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: { Name: name }, Endpoint: { Spec: {} } });

// A raw TLS client on etcd's peer port: does etcd take this certificate?
async function peerHandshake(url: string, tls: EtcdTls): Promise<'accepted' | 'refused'> {
  const { readFileSync } = await import('node:fs');
  const https = await import('node:https');
  return new Promise((resolve) => {
    const req = https.request(`${url}/members`, { ca: readFileSync(tls.caFile), cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile), agent: false, timeout: 3000 }, (res) => { res.resume(); resolve('accepted'); });
    req.on('error', () => resolve('refused'));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

interface Member { name: string; etcd: EtcdProcess; clientUrl: string; peerUrl: string; tls: EtcdTls; backend?: EtcdBackend }

test('three etcd members: learners join and are promoted, a node certificate is refused, a dead leader is replaced quickly', async (t) => {
  const dir = mkdtempSync(join_(tmpdir(), 'shoal-etcdm-'));
  const ca = await createRootCA();
  const members: Member[] = [];
  let stores: Store[] = [];
  // Stores before their backends, backends before etcd; each step bounded, so
  // a client still waiting on the killed member cannot keep the file alive.
  t.after(async () => {
    const bounded = (p: Promise<unknown>): Promise<unknown> => Promise.race([p.catch(() => undefined), new Promise((r) => setTimeout(r, 5_000).unref())]);
    for (const st of stores) await bounded(st.close());
    for (const m of members) await bounded(m.backend?.close() ?? Promise.resolve());
    for (const m of members) await m.etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const make = async (name: string, join?: (peerUrl: string) => Promise<string>): Promise<Member> => {
    const clientUrl = `https://127.0.0.1:${await freePort()}`;
    const peerUrl = `https://127.0.0.1:${await freePort()}`;
    const tls = writeEtcdTls(join_(dir, name, 'certs'), ca.certPem, await issueEtcdCert(ca, name, 'c1', Date.now(), ['127.0.0.1']));
    const cluster = join ? await join(peerUrl) : undefined;
    const etcd = new EtcdProcess({
      binary: '/usr/bin/etcd', dataDir: join_(dir, name, 'etcd'), name, clientUrl, peerUrl, tls, log: silentLogger,
      clusterToken: 'c1', allowedHostname: ETCD_CERT_NAME,
      ...(cluster ? { initialCluster: cluster, clusterState: 'existing' as const } : {}),
    });
    const m: Member = { name, etcd, clientUrl, peerUrl, tls };
    members.push(m);
    await etcd.start();
    m.backend = new EtcdBackend(etcdClientOptions(clientUrl, tls));
    return m;
  };
  const first = await make('m1');
  for (const name of ['m2', 'm3']) {
    let id = '';
    await make(name, async (peerUrl) => {
      // etcd refuses a member change until every member has been connected for 5 s ("unhealthy cluster").
      let added: Awaited<ReturnType<EtcdBackend['memberAdd']>> | undefined;
      await waitFor(`${name} added`, async () => { try { added = await first.backend!.memberAdd(peerUrl, true); return true; } catch { return false; } }, 20_000, 250);
      id = added!.added.id;
      return initialCluster(added!.members, name, peerUrl);
    });
    await waitFor(`${name} promoted`, async () => { try { await first.backend!.memberPromote(id); return true; } catch { return false; } }, 30_000, 200);
  }
  const list = await first.backend!.memberList();
  assert.equal(list.length, 3);
  assert.ok(list.every((m) => !m.learner && m.name), JSON.stringify(list));

  // A node certificate from the same CA (no etcd name) is refused on the peer port.
  const nodeTls = writeEtcdTls(join_(dir, 'node'), ca.certPem, await issueNodeCert(ca, 'w1', 'worker', 'c1', 3600e9));
  assert.equal(await peerHandshake(first.peerUrl, nodeTls), 'refused');
  assert.equal(await peerHandshake(first.peerUrl, first.tls), 'accepted');

  // Writes through every member; then the etcd leader dies.
  stores = await Promise.all(members.map((m) => Store.open(m.backend!, silentLogger)));
  await stores[1]!.txn().create('services', svc('s0', 'before')).commit();
  const status = await first.backend!.client.maintenance.status();
  const leaderId = String(status.leader);
  const leader = members.find((m) => list.find((x) => x.name === m.name)!.id === leaderId)!;
  const others = members.filter((m) => m !== leader);
  const survivor = stores[members.indexOf(others[0]!)]!;
  // The dead member's own client is closed first (before, etcd3's watch manager
  // retried a dead endpoint even after close; EtcdBackend.close() now cancels
  // its watchers first: test/integration/store/etcd.test.ts).
  const leaderStore = stores[members.indexOf(leader)]!;
  stores = stores.filter((x) => x !== leaderStore);
  await leaderStore.close();
  await leader.backend!.close();
  leader.backend = undefined;
  const killed = Date.now();
  process.kill(leader.etcd.pid!, 'SIGKILL');
  await leader.etcd.stop();
  let n = 0;
  await waitFor('a write after the etcd leader died', async () => {
    const at = Date.now() - killed;
    try { await survivor.txn().create('services', svc(`s${++n}`, `after${n}`)).commit(); return true; } catch (e) { console.log(`attempt at ${at} ms failed after ${Date.now() - killed - at} ms: ${(e as Error).message}`); return false; }
  }, 15_000, 20);
  const ms = Date.now() - killed;
  console.log(`etcd leader killed -> first successful write: ${ms} ms`);
  assert.ok(ms < 5_000, `failover took ${ms} ms`);
});
