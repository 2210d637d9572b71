import { silentLogger } from '../../src/common/log';
import { nowIso } from '../../src/common/time';
import type { NodeDescription } from '../../src/model/types';
import { MemoryNetwork } from '../../src/rpc/memory';
import type { Store } from '../../src/store/store';
import { startDispatcher, type PayloadSource } from '../../src/manager/dispatcher/dispatcher';
import { RemoteControlPlane } from '../../src/agent/remote-control-plane';

// An agent's control plane as a one-node swarm gives it: a leading dispatcher
// on the store, reached through the in-memory transport with the node's own
// identity. The node is added to the store if it is not there (registration
// needs it).
export async function localDispatch(store: Store, payloads?: PayloadSource) {
  const clusterId = store.list('cluster')[0]?.ID ?? 'test-cluster';
  const net = new MemoryNetwork();
  const dispatcher = startDispatcher({ store, server: net.listen('dispatcher', () => clusterId), log: silentLogger, payloads });
  dispatcher.setLeading(store);
  const planes: RemoteControlPlane[] = [];
  const description: NodeDescription = { Hostname: 'test-host', Platform: { Architecture: 'x86_64', OS: 'linux' }, Resources: {}, Engine: { EngineVersion: 'test', Plugins: [] }, TLSInfo: {} };
  return {
    async plane(nodeId: string): Promise<RemoteControlPlane> {
      if (!store.get('nodes', nodeId)) {
        const now = nowIso();
        await store.txn().create('nodes', {
          ID: nodeId, Version: { Index: 0 }, CreatedAt: now, UpdatedAt: now, Spec: { Labels: {}, Role: 'manager', Availability: 'active' },
          Description: description, Status: { State: 'ready', Addr: '127.0.0.1' },
        }).commit();
      }
      const cp = new RemoteControlPlane({
        connect: (addr) => net.channel({ nodeId, role: 'manager', clusterId, address: '127.0.0.1' }, addr),
        managers: ['dispatcher'], describe: async () => description, log: silentLogger, backoff: { minMs: 10, maxMs: 200 },
      });
      planes.push(cp);
      return cp;
    },
    async stop(): Promise<void> {
      for (const cp of planes) await cp.stop();
      await dispatcher.stop();
    },
  };
}
