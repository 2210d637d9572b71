import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/log';
import { createRootCA, type RootCA } from '../../../src/manager/ca/ca';
import { nodeTlsFrom } from '../../helpers/node-tls';
import { GrpcServer, grpcChannel, type NodeTls } from '../../../src/rpc/grpc';
import { RpcError } from '../../../src/rpc/transport';
import { MemoryBackend } from '../../../src/store/memory-backend';
import { Store } from '../../../src/store/store';
import { RelayHeartbeats } from '../../../src/protocol/dispatcher';
import { startDispatcher } from '../../../src/manager/dispatcher/dispatcher';
import { RemoteControlPlane } from '../../../src/agent/remote-control-plane';
import { startAgent } from '../../../src/agent/agent';
import { untilStore } from '../../helpers/store-wait';
import { FakeExecutor, makeTask } from '../agent/fakes';
import { makeNode, makeService } from '../orchestrator/fixtures';

// The relay over the real node-to-node transport (mutual TLS, gRPC): a worker
// connected to a manager that does not lead is served by the leader (its task
// statuses sent on the status pipe), and the leader takes relayed calls only
// from a manager's certificate.

const CLUSTER = 'clus0000000000000000000001';

const tlsFor = (ca: RootCA, id: string, role: 'manager' | 'worker'): Promise<NodeTls> => nodeTlsFrom(ca, id, role, CLUSTER);

test('over mutual TLS: a worker on a follower is served by the leader through the relay; a worker\'s certificate cannot relay', async () => {
  const ca = await createRootCA();
  const [m1, m2, w1] = await Promise.all([tlsFor(ca, 'mgr1', 'manager'), tlsFor(ca, 'mgr2', 'manager'), tlsFor(ca, 'w1', 'worker')]);
  const store = await Store.open(new MemoryBackend(), silentLogger);
  await store.txn()
    .create('cluster', {
      ID: CLUSTER, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: { Dispatcher: { HeartbeatPeriod: 600e6 } },
      TLSInfo: {}, RootRotationInProgress: false, DefaultAddrPool: [], SubnetSize: 24, DataPathPort: 4789, JoinTokens: { Worker: 'w', Manager: 'm' },
    })
    .create('nodes', makeNode('w1', { state: 'unknown', hostname: 'old' }))
    .create('services', makeService('svc1'))
    .create('tasks', makeTask('t1', { NodeID: 'w1' }))
    .commit();
  const servers = [new GrpcServer({ tls: () => m1, clusterId: () => CLUSTER, log: silentLogger }), new GrpcServer({ tls: () => m2, clusterId: () => CLUSTER, log: silentLogger })];
  const addrs = await Promise.all(servers.map(async (s) => `127.0.0.1:${await s.listen('127.0.0.1', 0)}`));
  // How the worker's status reports reach the follower: calls on the pipe, or unary calls.
  const reports = { pipe: 0, unary: 0 };
  const follower = servers[1]!;
  const countCalls = (kind: 'pipe' | 'unary', register: GrpcServer['unary']): GrpcServer['unary'] => (m, handler) => register(m, m.name.startsWith('dispatcher.UpdateTaskStatus')
    ? (req, ctx) => { reports[kind]++; return handler(req, ctx); }
    : handler);
  follower.unary = countCalls('unary', follower.unary.bind(follower));
  follower.pipe = countCalls('pipe', follower.pipe.bind(follower));
  const managers = () => ({ leaderAddr: addrs[0], addrs });
  const d1 = startDispatcher({ store, server: servers[0]!, log: silentLogger, managers, connect: (a) => grpcChannel(a, m1) });
  const d2 = startDispatcher({ store, server: servers[1]!, log: silentLogger, managers, connect: (a) => grpcChannel(a, m2) });
  d1.setLeading(store);
  const cp = new RemoteControlPlane({
    connect: (a) => grpcChannel(a, w1), managers: [addrs[1]!], firstManager: 'first', describe: async () => makeNode('w1').Description!,
    log: silentLogger, backoff: { minMs: 10, maxMs: 100 }, callTimeoutMs: 2000,
  });
  const agent = startAgent({ nodeId: 'w1', controlPlane: cp, executor: new FakeExecutor(), log: silentLogger, retry: { minMs: 20, maxMs: 200 } });
  const refused = grpcChannel(addrs[0]!, w1);
  try {
    await untilStore(store, () => store.get('tasks', 't1')!.Status.State === 'running', 't1 running, reported through the follower', 10_000);
    assert.equal(cp.connectedTo, addrs[1]);
    assert.ok(reports.pipe >= 1, 'the worker reported on the status pipe');
    assert.equal(reports.unary, 0, 'and never with a unary call');
    const node = store.get('nodes', 'w1')!;
    assert.equal(node.Status.State, 'ready');
    assert.equal(node.Status.Addr, '127.0.0.1', 'the worker\'s own address, as the follower saw it');
    await assert.rejects(refused.unary(RelayHeartbeats, { Beats: [{ For: { NodeID: 'mgr2', Role: 'manager', Addr: 'x' }, SessionID: 's' }] }, { timeoutMs: 2000 }),
      (e: RpcError) => e.rpcKind === 'permission');
  } finally {
    refused.close();
    await agent.stop();
    await cp.stop();
    await d2.stop();
    await d1.stop();
    for (const s of servers) await s.close();
    await store.close();
  }
});
