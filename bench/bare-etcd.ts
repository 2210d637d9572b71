// A bare etcd cluster, started exactly as a Shoal manager starts its own
// (EtcdProcess: same binary, flags, environment and mutual TLS) on loopback
// ports, with no Shoal code around it: the floor under a manager's memory
// (bench/memory-floor.ts) and under a create's time (bench/etcd-limit.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../src/common/log';
import { createRootCA, ETCD_CERT_NAME, issueEtcdCert } from '../src/manager/ca/ca';
import { EtcdProcess, type EtcdTls } from '../src/store/etcd-process';
import { freePort } from '../test/helpers/daemon';
import { writeEtcdTls } from '../test/helpers/etcd-tls';

// One member: its process, where its clients reach it, and a certificate
// etcd accepts from a client (its own: the test helpers' way too).
export interface BareMember { pid: number | undefined; clientUrl: string; tls: EtcdTls }
// kill(i): member i's process killed (SIGKILL); resolves once its supervisor
// (EtcdProcess, as in a manager) has it answering again (bounded: 30 s).
export interface BareEtcd { members: BareMember[]; stop(): Promise<void>; kill(i: number): Promise<void> }

// The members start together (a new cluster has no leader until a quorum
// runs); each start is bounded by EtcdProcess itself (30 s).
export async function startBareEtcd(members = 3, etcdBinary = '/usr/bin/etcd', token = 'bare'): Promise<BareEtcd> {
  const dir = mkdtempSync(join(tmpdir(), `shoal-${token}-`));
  const ca = await createRootCA();
  const names = Array.from({ length: members }, (_, i) => `${token}${i + 1}`);
  const ports = await Promise.all(names.map(async () => ({ client: await freePort(), peer: await freePort() })));
  const initialCluster = names.map((n, i) => `${n}=https://127.0.0.1:${ports[i]!.peer}`).join(',');
  const etcds: EtcdProcess[] = [];
  const out: BareMember[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(etcds.map((m) => m.stop().catch(() => undefined)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const [i, name] of names.entries()) {
      const tls = writeEtcdTls(join(dir, name), ca.certPem, await issueEtcdCert(ca, name, token, Date.now(), ['127.0.0.1']));
      const clientUrl = `https://127.0.0.1:${ports[i]!.client}`;
      etcds.push(new EtcdProcess({
        binary: etcdBinary, dataDir: join(dir, name, 'etcd'), name, tls,
        clientUrl, peerUrl: `https://127.0.0.1:${ports[i]!.peer}`,
        clusterToken: token, allowedHostname: ETCD_CERT_NAME, initialCluster, clusterState: 'new', log: silentLogger,
      }));
      out.push({ pid: undefined, clientUrl, tls });
    }
    await Promise.all(etcds.map((m) => m.start()));
  } catch (err) {
    await stop();
    throw err;
  }
  etcds.forEach((m, i) => { out[i]!.pid = m.pid; });
  const kill = async (i: number): Promise<void> => {
    const m = etcds[i]!;
    const old = m.pid;
    if (old === undefined) throw new Error(`member ${i} has no process`);
    process.kill(old, 'SIGKILL');
    const until = Date.now() + 30_000;
    while (m.pid === old || !m.health().ok) {
      if (Date.now() > until) throw new Error(`member ${i} not back within 30 s of its kill`);
      await new Promise((r) => setTimeout(r, 100));
    }
    out[i]!.pid = m.pid;
  };
  return { members: out, stop, kill };
}
