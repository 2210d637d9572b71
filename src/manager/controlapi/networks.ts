import type { ClusterInfo, Network, NetworkAttachmentConfig, NetworkSpec, ServiceSpec } from '../../model/types';
import { conflict, invalid, precondition, ShoalError } from '../../common/errors';
import { matchLabels, type Filters } from '../../common/filters';
import { newId } from '../../common/ids';
import { nowIso } from '../../common/time';
import { referenceKey } from '../../store/keys';
import type { ControlContext } from './context';
import { formatIpv4, parseIpv4Cidr } from './ipv4';
import { isAlive, lbEndpoint, needsIngress, networkResource, serviceNetworkTargets, type EndpointResource, type NetworkResource } from './network-resource';
import { resolveObject } from './resolve';
import { isIngressNetwork, OVERLAY, validateNetworkSpec } from './validate-network';

// Docker's swarm networks (SwarmKit controlapi/network.go, moby's
// daemon/cluster/networks.go): the spec is stored as asked; the allocator
// (manager/allocator) fills DriverState (the VNI) and IPAM (the subnet used).

const failedPrecondition = (msg: string) => precondition(`rpc error: code = FailedPrecondition desc = ${msg}`);

export const networkNameConflict = (name: string): ShoalError => conflict(`network with name ${name} already exists`);

// The routing mesh's network, made with the swarm (SwarmKit's
// newIngressNetwork): Docker leaves its subnet to the allocator, which takes
// the pool's first block; Shoal writes that block (10.0.0.0/24 by default)
// into the spec so the network is complete from the start.
export function newIngressNetwork(cluster: Pick<ClusterInfo, 'DefaultAddrPool' | 'SubnetSize'>, now: string): Network {
  const pool = parseIpv4Cidr(cluster.DefaultAddrPool[0] ?? '10.0.0.0/8') ?? parseIpv4Cidr('10.0.0.0/8')!;
  const bits = Math.max(pool.bits, Math.min(cluster.SubnetSize || 24, 29));
  return {
    ID: newId(),
    Version: { Index: 0 },
    CreatedAt: now,
    UpdatedAt: now,
    Spec: {
      Name: 'ingress',
      Labels: {},
      DriverConfiguration: { Name: OVERLAY },
      Ingress: true,
      IPAMOptions: { Driver: { Name: 'default' }, Configs: [{ Subnet: `${formatIpv4(pool.base)}/${bits}`, Gateway: formatIpv4(pool.base + 1) }] },
      Scope: 'swarm',
    },
  };
}

export class NetworksApi {
  constructor(private readonly ctx: ControlContext) {}

  all(): Network[] { return this.ctx.store.list('networks'); }

  // moby's cluster getNetwork: full ID, exact name, unique ID prefix.
  resolve(ref: string): Network {
    const { store } = this.ctx;
    return resolveObject('network', ref, store.list('networks'), (n) => n.Spec.Name, (id) => store.get('networks', id));
  }

  // The NetworkResource of one network, with Peers (and Services when verbose).
  resource(n: Network, verbose = false): NetworkResource {
    const { store } = this.ctx;
    const services = store.list('services');
    return networkResource(n, {
      services,
      tasks: store.list('tasks'),
      nodes: new Map(store.list('nodes').map((x) => [x.ID, x])),
      taskName: (t) => {
        const svc = services.find((s) => s.ID === t.ServiceID)?.Spec.Name ?? t.ServiceID;
        return t.Slot ? `${svc}.${t.Slot}` : `${svc}.${t.NodeID ?? ''}`;
      },
    }, verbose);
  }

  // This node's load-balancer endpoint on `n` (Containers' "lb-NAME"), when it has one.
  localEndpoint(n: Network): [string, EndpointResource] | undefined {
    const node = this.ctx.store.get('nodes', this.ctx.localNodeId);
    const addr = node?.Attachments?.find((a) => a.Network?.ID === n.ID)?.Addresses?.[0];
    return addr ? lbEndpoint(n, this.ctx.localNodeId, addr) : undefined;
  }

  // What `network ls` lists from the swarm, before Docker's own filters.
  list(): NetworkResource[] {
    return this.all().map((n) => networkResource(n)).sort((a, b) => (a.Id < b.Id ? -1 : a.Id > b.Id ? 1 : 0));
  }

  async create(spec: NetworkSpec | undefined): Promise<{ ID: string }> {
    const existing = this.all();
    if (spec?.Name && existing.some((n) => n.Spec.Name === spec.Name)) throw networkNameConflict(spec.Name);
    validateNetworkSpec(spec, existing);
    const now = nowIso(this.ctx.now());
    const stored: NetworkSpec = structuredClone(spec);
    stored.Labels ??= {};
    stored.Scope = 'swarm';
    const network: Network = { ID: newId(), Version: { Index: 0 }, CreatedAt: now, UpdatedAt: now, Spec: stored };
    const txn = this.ctx.store.txn().create('networks', network);
    // Two ingress networks made at once on two managers: the second sees the first.
    for (const n of existing.filter(isIngressNetwork)) txn.requireVersion('networks', n);
    try {
      await txn.commit();
    } catch (e) {
      if (e instanceof ShoalError && e.kind === 'conflict') throw networkNameConflict(spec.Name!);
      throw e;
    }
    return { ID: network.ID };
  }

  async remove(ref: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const n = this.resolve(ref);
      try {
        await this.removeOne(n);
        return;
      } catch (e) {
        // A service referenced it meanwhile, or it changed: look again.
        if (!(e instanceof ShoalError && e.kind === 'sequence') || attempt >= 5) throw e;
      }
    }
  }

  // Why the network cannot go now (SwarmKit's texts), or undefined.
  inUse(n: Network): string | undefined {
    const { store } = this.ctx;
    const services = store.list('services').sort((a, b) => (a.ID < b.ID ? -1 : 1));
    if (isIngressNetwork(n)) {
      const user = services.find(needsIngress);
      return user ? `ingress network cannot be removed because service ${user.ID} depends on it` : undefined;
    }
    const user = services.find((s) => serviceNetworkTargets(s).includes(n.ID));
    if (user) return `network ${n.ID} is in use by service ${user.ID}`;
    // Tasks of a removed service are on their way down: they do not hold the
    // network (Docker refuses until its orchestrator has marked them, which
    // makes `stack rm` fail now and then).
    const live = new Set(services.map((s) => s.ID));
    const task = store.list('tasks').find((t) => live.has(t.ServiceID) && isAlive(t)
      && ((t.Spec.Networks ?? []).some((a) => a.Target === n.ID) || t.NetworksAttachments?.some((a) => a.Network.ID === n.ID)));
    return task ? `network ${n.ID} is in use by task ${task.ID}` : undefined;
  }

  private async removeOne(n: Network): Promise<void> {
    const { store } = this.ctx;
    const key = referenceKey('networks', n.ID);
    const seen = store.meta(key)?.modRevision ?? 0;
    const why = this.inUse(n);
    if (why) throw failedPrecondition(why);
    const txn = store.txn().requireMeta(key, seen).delete('networks', n);
    if (seen) txn.deleteMeta(key);
    await txn.commit();
  }

  // `network prune` on the swarm's side (moby's clusterNetworksPrune): every
  // network no service or task holds, ingress excepted, created before
  // `until`, matching the label filters. Names of those removed.
  async prune(filters: Filters, until?: number): Promise<string[]> {
    const removed: string[] = [];
    for (const n of this.all()) {
      if (isIngressNetwork(n)) continue;
      if (until !== undefined && Date.parse(n.CreatedAt) > until) continue;
      if (!matchLabels(n.Spec.Labels, filters.get('label'))) continue;
      const not = filters.get('label!');
      if (not?.length && matchLabels(n.Spec.Labels, not)) continue;
      if (this.inUse(n)) continue;
      try {
        await this.removeOne(n);
        removed.push(n.Spec.Name ?? n.ID);
      } catch (e) {
        // In use by now, or already gone: not pruned, as Docker.
        if (!(e instanceof ShoalError)) throw e;
      }
    }
    return removed;
  }

  // A service's networks as SwarmKit stores them: the deprecated
  // ServiceSpec.Networks moved into TaskTemplate.Networks, every target
  // resolved to a network ID (moby's populateNetworkID), the ingress network
  // refused as an explicit target. Returns the IDs the service depends on
  // (the ingress network's too when it publishes through the mesh), for the
  // write to guard.
  resolveServiceNetworks(spec: ServiceSpec): string[] {
    const tt = (spec.TaskTemplate ??= {});
    if (!tt.Networks?.length && spec.Networks?.length) tt.Networks = spec.Networks;
    delete spec.Networks;
    const ids: string[] = [];
    const resolved: NetworkAttachmentConfig[] = [];
    for (const a of tt.Networks ?? []) {
      if (!a || typeof a.Target !== 'string' || !a.Target) throw invalid('rpc error: code = InvalidArgument desc = network attachment: target must be provided');
      const n = this.resolve(a.Target);
      if (isIngressNetwork(n)) {
        throw invalid(`rpc error: code = InvalidArgument desc = Service cannot be explicitly attached to the ingress network ${JSON.stringify(n.Spec.Name ?? '')}`);
      }
      if (ids.includes(n.ID)) throw invalid(`rpc error: code = InvalidArgument desc = service is already attached to network ${a.Target}`);
      ids.push(n.ID);
      resolved.push({ ...a, Target: n.ID });
    }
    if (tt.Networks) tt.Networks = resolved;
    if (needsIngress({ Spec: spec })) {
      const ingress = this.all().find(isIngressNetwork);
      if (!ingress) throw failedPrecondition('service needs ingress network, but no ingress network is present');
      ids.push(ingress.ID);
    }
    return ids;
  }
}
