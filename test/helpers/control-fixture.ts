import { inject } from 'light-my-request';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { MemoryBackend } from '../../src/store/memory-backend';
import { Store } from '../../src/store/store';
import { silentLogger } from '../../src/common/log';
import { ControlApi } from '../../src/manager/controlapi';
import { registerSwarmApiRoutes } from '../../src/api/routes/swarm-api';
import { Router } from '../../src/api/router';
import { createApiHandler, type ApiServerOptions } from '../../src/api/server';
import { SecretBox } from '../../src/manager/controlapi/secret-box';
import type { SwarmMembership } from '../../src/api/routes/membership';
import { defaultSwarmSpec } from '../../src/manager/controlapi/cluster';
import { newIngressNetwork } from '../../src/manager/controlapi/networks';
import { validateInitRequest } from '../../src/manager/controlapi/validate-swarm';
import type { Node, SwarmInfo } from '../../src/model/types';
import { conflict, NOT_A_MANAGER, unavailable } from '../../src/common/errors';

export const NODE_ID = 'node0000000000000000000001';
export const CLUSTER_ID = 'clus0000000000000000000001';

export function fakeNode(id: string, hostname: string, role: 'manager' | 'worker' = 'manager'): Node {
  return {
    ID: id, Version: { Index: 0 }, CreatedAt: '2026-01-01T00:00:00Z', UpdatedAt: '2026-01-01T00:00:00Z',
    Spec: { Labels: {}, Role: role, Availability: 'active' },
    Description: { Hostname: hostname, Platform: { Architecture: 'x86_64', OS: 'linux' }, Resources: { NanoCPUs: 2e9, MemoryBytes: 8e9 }, Engine: { EngineVersion: '20.10.24', Plugins: [] }, TLSInfo: {} },
    Status: { State: 'ready', Addr: '127.0.0.1' },
    ...(role === 'manager' ? { ManagerStatus: { Leader: true, Reachability: 'reachable' as const, Addr: '127.0.0.1:2377' } } : {}),
  };
}

// The swarm routes over an in-memory store holding a one-node swarm; no
// socket, no etcd, no engine (requests the API does not own answer 404).
export async function controlFixture(opts: { active?: boolean; ca?: { certPem: string; keyPem: string } } = {}) {
  const store = await Store.open(new MemoryBackend(), silentLogger);
  const ca = opts.ca ?? { certPem: '', keyPem: '' }; // a real one (createRootCA) where tokens get rotated
  await store.txn().create('cluster', {
    ID: CLUSTER_ID, Version: { Index: 0 }, CreatedAt: 't', UpdatedAt: 't', Spec: defaultSwarmSpec(), TLSInfo: {},
    RootRotationInProgress: false, DefaultAddrPool: ['10.0.0.0/8'], SubnetSize: 24, DataPathPort: 4789,
    JoinTokens: { Worker: 'SWMTKN-1-a-w', Manager: 'SWMTKN-1-a-m' },
  }).create('nodes', fakeNode(NODE_ID, 'host-a'))
    .create('networks', newIngressNetwork({ DefaultAddrPool: ['10.0.0.0/8'], SubnetSize: 24 }, '2026-11-23T00:00:00.000000000Z')).commit();
  const dataKey = new SecretBox(SecretBox.generateKey());
  const control = new ControlApi({ store, localNodeId: NODE_ID, now: () => Date.parse('2026-11-23T00:00:00Z') }, () => ca, dataKey);
  const active = opts.active ?? true;
  const swarm: SwarmMembership = {
    // As SwarmNode.init: the request checked (controlapi) before anything is made.
    init: async (req) => { validateInitRequest(req); return NODE_ID; },
    join: async () => undefined,
    leave: async () => undefined,
    // As SwarmNode.unlock on an active manager (the locked path needs a daemon: test/integration).
    unlock: async () => { if (!active) throw unavailable(NOT_A_MANAGER); throw conflict('swarm is not locked'); },
    info: (): SwarmInfo => ({ NodeID: active ? NODE_ID : '', NodeAddr: '', LocalNodeState: active ? 'active' : 'inactive', ControlAvailable: active, Error: '', RemoteManagers: null }),
    control: () => { if (!active) throw unavailable(NOT_A_MANAGER); return control; },
  };
  const router = new Router();
  registerSwarmApiRoutes(router, swarm);
  // What reached the engine (it must never see the swarm's own paths).
  const forwarded: Array<{ method: string; url: string; upgrade: boolean }> = [];
  const serverOptions: ApiServerOptions = {
    router,
    engine: {
      forward: (req: IncomingMessage, res: ServerResponse) => {
        forwarded.push({ method: req.method ?? '', url: req.url ?? '', upgrade: false });
        res.writeHead(404, { 'Content-Type': 'application/json' }); res.end('{"message":"page not found"}\n');
      },
      forwardUpgrade: (req: IncomingMessage, socket: Duplex) => {
        forwarded.push({ method: req.method ?? '', url: req.url ?? '', upgrade: true });
        socket.destroy();
      },
    },
    engineVersion: () => '20.10.24',
    log: silentLogger,
  };
  const handler = createApiHandler(serverOptions);
  const call = async (method: string, url: string, body?: unknown) => {
    const res = await inject(handler, { method: method as 'GET', url, payload: body === undefined ? undefined : JSON.stringify(body), headers: body === undefined ? {} : { 'content-type': 'application/json' } });
    let json: unknown;
    try { json = res.payload ? JSON.parse(res.payload) : undefined; } catch { json = undefined; }
    return { status: res.statusCode, headers: res.headers, json: json as any, text: res.payload };
  };
  return { store, control, call, handler, router, forwarded, serverOptions };
}
