import type { Logger } from '../../common/log';
import type { EngineClient } from '../../engine/client';
import { ENGINE_NETWORK_LABEL } from '../../protocol/network-view';
import { removeDummyLink } from './dns/dummy-link';
import { DNS_LINK } from './dns/server';
import { LoadBalancer } from './loadbalancer/load-balancer';
import { EMPTY_VIEW, Overlay } from './overlay/overlay';

// What `docker swarm leave` takes off the node of Shoal's networking (the
// agent has stopped and the task containers are gone): every engine network
// Shoal made (containers still on one, `docker run --network` ones, are
// disconnected first, as Docker's daemon does with attachable networks on
// leave), the bridges and VXLAN ports (an overlay round with an empty view
// finds them by name), the `ip shoal` table with its FORWARD rule, and the DNS
// server's link. Each step is bounded and its failure logged; the next steps
// still run (a leave never fails for this).

export interface RemoveNodeNetworksOptions {
  nodeId: string;
  engine: EngineClient;
  log: Logger;
  timeoutMs?: number;       // per engine call
}

const ENGINE_TIMEOUT_MS = 15_000;

export async function removeNodeNetworks(opts: RemoveNodeNetworksOptions): Promise<void> {
  const { engine, log } = opts;
  const timeoutMs = opts.timeoutMs ?? ENGINE_TIMEOUT_MS;
  let networks: Array<{ Id?: unknown; Name?: unknown }> = [];
  try {
    const list = await engine.getJson<unknown>('/networks', { query: { filters: JSON.stringify({ label: [ENGINE_NETWORK_LABEL] }) }, timeoutMs });
    networks = Array.isArray(list) ? list.filter((n): n is { Id?: unknown; Name?: unknown } => !!n && typeof n === 'object') : [];
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'leave: cannot list the engine networks; removing the devices only');
  }
  for (const n of networks) {
    if (typeof n.Id !== 'string' || !n.Id) continue;
    await disconnectAll(engine, n.Id, timeoutMs, log);
  }
  // The overlay removes the engine networks, then the devices, all of them
  // (nothing is wanted any more).
  const overlay = new Overlay({ nodeId: opts.nodeId, engine, log, engineTimeoutMs: timeoutMs });
  await overlay.update(EMPTY_VIEW);
  await overlay.close();
  await new LoadBalancer({ nodeId: opts.nodeId, log }).close();
  const err = await removeDummyLink(DNS_LINK);
  if (err) log.warn({ err: err.message }, 'leave: the DNS link was not removed');
  log.info({ engineNetworks: networks.length }, 'left the swarm: its networks are removed from this node');
}

async function disconnectAll(engine: EngineClient, networkId: string, timeoutMs: number, log: Logger): Promise<void> {
  try {
    const n = await engine.getJson<{ Containers?: Record<string, unknown> | null }>(`/networks/${encodeURIComponent(networkId)}`, { timeoutMs });
    for (const container of Object.keys(n?.Containers ?? {})) {
      try {
        await engine.postJson(`/networks/${encodeURIComponent(networkId)}/disconnect`, { Container: container, Force: true }, { timeoutMs });
        log.info({ engineNetwork: networkId, container }, 'leave: container disconnected from a swarm network');
      } catch (err) {
        log.warn({ engineNetwork: networkId, container, err: (err as Error).message }, 'leave: cannot disconnect a container');
      }
    }
  } catch (err) {
    log.warn({ engineNetwork: networkId, err: (err as Error).message }, 'leave: cannot inspect an engine network');
  }
}
