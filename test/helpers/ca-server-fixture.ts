import { silentLogger } from '../../src/common/log';
import { createRootCA, newJoinToken, type RootCA } from '../../src/manager/ca/ca';
import { registerCAServer } from '../../src/manager/ca/ca-server';
import { defaultSwarmSpec } from '../../src/manager/controlapi/cluster';
import { GrpcServer } from '../../src/rpc/grpc';
import { MemoryBackend } from '../../src/store/memory-backend';
import { Store } from '../../src/store/store';
import { nodeTlsFrom } from './node-tls';

// A manager's CA service on loopback over mutual TLS, with its swarm's
// cluster object (join tokens from a fresh root CA) in an in-memory store:
// what a joining node talks to.
export interface CAServerFixture {
  ca: RootCA;
  store: Store;
  address: string;   // 127.0.0.1:<port>
  tokens(): { Worker: string; Manager: string };
  close(): Promise<void>;
}

// managers, heartbeatMs: what the server tells a joining node of the managers and the heartbeat interval (ca-server.ts).
export async function startCAServer(clusterId: string, opts: { nodeCertExpiryNs?: number; managers?: () => { leaderAddr?: string; addrs: string[] }; heartbeatMs?: () => number } = {}): Promise<CAServerFixture> {
  const ca = await createRootCA();
  const store = await Store.open(new MemoryBackend(), silentLogger);
  const spec = defaultSwarmSpec();
  if (opts.nodeCertExpiryNs !== undefined) spec.CAConfig = { NodeCertExpiry: opts.nodeCertExpiryNs };
  await store.txn().create('cluster', {
    ID: clusterId, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: spec, TLSInfo: {},
    RootRotationInProgress: false, DefaultAddrPool: ['10.0.0.0/8'], SubnetSize: 24, DataPathPort: 4789,
    JoinTokens: { Worker: newJoinToken(ca), Manager: newJoinToken(ca) },
  }).commit();
  const tls = await nodeTlsFrom(ca, 'manager000000000000000001', 'manager', clusterId);
  const server = new GrpcServer({ tls: () => tls, clusterId: () => clusterId, log: silentLogger });
  registerCAServer(server, { store, ca: () => ca, log: silentLogger, now: () => Date.now(), ...(opts.managers ? { managers: opts.managers } : {}), ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}) });
  const address = `127.0.0.1:${await server.listen('127.0.0.1', 0)}`;
  return {
    ca, store, address,
    tokens: () => store.list('cluster')[0]!.JoinTokens,
    close: async () => { await server.close(); await store.close(); },
  };
}
