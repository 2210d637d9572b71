import type { Network, Node, Service, Task } from '../../model/types';
import { KEEP_CLIENT_IP_LABEL, VXLAN_ID_OPTION } from '../../model/types';
import type { NodeNetworkView, ViewEndpoint, ViewKey, ViewLoadBalancer, ViewNetwork, ViewService } from '../../protocol/network-view';
import { holdsAddresses, isAllocatedNetwork, networkConfigs } from '../allocator/core';
import { addrOf } from '../allocator/ipv4';
import { isEncryptedNetwork } from '../netkeys/schedule';

// What one node needs to know of the swarm's networks (protocol/network-view.ts),
// computed from the store's objects through a snapshot (network-index.ts keeps
// the indexes that make it cheap; tests pass lists). Pure.

export interface NetworkSnapshot {
  node(id: string): Node | undefined;
  network(id: string): Network | undefined;
  ingress(): Network | undefined;
  tasksOfNode(nodeId: string): Iterable<Task>;
  // Tasks holding an address on the network (not over yet), services attached
  // to it (a VIP or a network config naming it), nodes with an LB address on it.
  tasksOnNetwork(networkId: string): Iterable<Task>;
  servicesOnNetwork(networkId: string): Iterable<Service>;
  nodesOnNetwork(networkId: string): Iterable<Node>;
  service(id: string): Service | undefined;
}

// A task that should be running (a job's task until it completes): its address is a backend and a name.
export const wantedRunning = (t: Task): boolean => (t.DesiredState === 'running' || t.DesiredState === 'complete') && holdsAddresses(t);

// Networks a node needs: those of its tasks that are not over, and ingress.
export function networksOfNode(nodeId: string, snap: NetworkSnapshot): Set<string> {
  const out = new Set<string>();
  const ing = snap.ingress();
  if (ing && isAllocatedNetwork(ing)) out.add(ing.ID);
  for (const t of snap.tasksOfNode(nodeId)) {
    if (!holdsAddresses(t)) continue;
    for (const a of t.NetworksAttachments ?? []) if (a.Network?.ID) out.add(a.Network.ID);
  }
  return out;
}

const byId = (a: { ID: string }, b: { ID: string }): number => (a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : 0);
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function keepsClientIp(s: Service): boolean {
  const v = s.Spec.Labels?.[KEEP_CLIENT_IP_LABEL];
  return v !== undefined && !['false', '0', 'no'].includes(v.toLowerCase());
}

export function taskName(t: Task, service: Service | undefined): string {
  // A container's attachment answers to the container's name, as on Docker's attachable overlays.
  const spec = t.Spec.NetworkAttachmentSpec as { ContainerID?: unknown } | undefined;
  if (!t.ServiceID && spec) return typeof spec.ContainerID === 'string' && spec.ContainerID ? spec.ContainerID : t.ID;
  return `${service?.Spec.Name ?? t.ServiceID}.${t.Slot || t.NodeID || ''}.${t.ID}`;
}

// `keys`: the swarm's data-path keys (manager/netkeys/), sent only to a node
// with an encrypted network in its view.
export function networkViewFor(nodeId: string, snap: NetworkSnapshot, keys?: readonly ViewKey[]): NodeNetworkView {
  const self = snap.node(nodeId);
  const networks: ViewNetwork[] = [];
  const ids = new Set<string>();
  for (const id of networksOfNode(nodeId, snap)) {
    const n = snap.network(id);
    if (!n || !isAllocatedNetwork(n)) continue;
    ids.add(id);
    const cfg = n.IPAM!.Configs![0]!;
    const lb = self?.Attachments?.find((a) => a.Network?.ID === id)?.Addresses?.[0];
    networks.push({
      ID: id, Name: n.Spec.Name ?? id, Subnet: cfg.Subnet!, Gateway: cfg.Gateway ?? '',
      VNI: Number(n.DriverState!.Options![VXLAN_ID_OPTION]),
      Internal: !!n.Spec.Internal, Attachable: !!n.Spec.Attachable, Ingress: !!n.Spec.Ingress,
      Encrypted: isEncryptedNetwork(n),
      Labels: { ...(n.Spec.Labels ?? {}) },
      ...(lb ? { LBAddr: addrOf(lb) } : {}),
    });
  }
  networks.sort(byId);

  const services = new Map<string, ViewService>();
  const endpoints: ViewEndpoint[] = [];
  const lbs: ViewLoadBalancer[] = [];
  const nameToId = new Map(networks.map((n) => [n.Name, n.ID]));
  for (const id of ids) {
    for (const s of snap.servicesOnNetwork(id)) {
      if (services.has(s.ID)) continue;
      const aliases: ViewService['Aliases'] = [];
      for (const c of networkConfigs(s.Spec.TaskTemplate, s)) {
        const net = ids.has(c.Target) ? c.Target : nameToId.get(c.Target);
        if (net && c.Aliases?.length) aliases.push({ NetworkID: net, Aliases: [...c.Aliases] });
      }
      services.set(s.ID, {
        ID: s.ID, Name: s.Spec.Name ?? '', EndpointMode: s.Spec.EndpointSpec?.Mode === 'dnsrr' ? 'dnsrr' : 'vip',
        VIPs: (s.Endpoint?.VirtualIPs ?? []).filter((v) => ids.has(v.NetworkID)).map((v) => ({ NetworkID: v.NetworkID, Addr: addrOf(v.Addr) })),
        Ports: (s.Endpoint?.Ports ?? []).map((p) => ({ ...p })),
        Aliases: aliases,
        KeepClientIP: keepsClientIp(s),
      });
    }
    for (const t of snap.tasksOnNetwork(id)) {
      if (!wantedRunning(t) || !t.NodeID) continue;
      const a = t.NetworksAttachments?.find((x) => x.Network?.ID === id);
      const addr = a?.Addresses?.[0];
      if (!addr) continue;
      // A container's aliases (a service task's are the service's, in Services).
      const aliases = !t.ServiceID ? (a.Aliases ?? []).filter((x) => typeof x === 'string' && x) : [];
      endpoints.push({
        TaskID: t.ID, TaskName: taskName(t, snap.service(t.ServiceID)), ServiceID: t.ServiceID, NodeID: t.NodeID,
        NodeAddr: snap.node(t.NodeID)?.Status.Addr ?? '', NetworkID: id, Addr: addrOf(addr), Running: t.Status.State === 'running',
        ...(aliases.length ? { Aliases: [...new Set(aliases)] } : {}),
      });
    }
    // Other nodes' LB addresses are where replies to this node's tasks go
    // (connections they forwarded): a node with no endpoint here needs only its own.
    const lbOf = (n: Node): void => {
      const addr = n.Attachments?.find((x) => x.Network?.ID === id)?.Addresses?.[0];
      if (addr) lbs.push({ NetworkID: id, NodeID: n.ID, NodeAddr: n.Status.Addr, Addr: addrOf(addr) });
    };
    if (endpoints.some((e) => e.NetworkID === id && e.NodeID === nodeId)) for (const n of snap.nodesOnNetwork(id)) lbOf(n);
    else if (self) lbOf(self);
  }
  endpoints.sort((a, b) => cmp(a.NetworkID, b.NetworkID) || cmp(a.TaskID, b.TaskID));
  lbs.sort((a, b) => cmp(a.NetworkID, b.NetworkID) || cmp(a.NodeID, b.NodeID));
  const withKeys = !!keys?.length && networks.some((n) => n.Encrypted);
  return {
    Networks: networks, Services: [...services.values()].sort(byId), Endpoints: endpoints, LoadBalancers: lbs,
    ...(withKeys ? { Keys: keys.map((k) => ({ ...k })) } : {}),
  };
}

// A snapshot over plain lists (tests, and small one-off views).
export function listSnapshot(o: { networks: Network[]; services: Service[]; tasks: Task[]; nodes: Node[] }): NetworkSnapshot {
  const attached = (t: Task, id: string): boolean => holdsAddresses(t) && !!t.NetworksAttachments?.some((a) => a.Network?.ID === id);
  return {
    node: (id) => o.nodes.find((n) => n.ID === id),
    network: (id) => o.networks.find((n) => n.ID === id),
    ingress: () => o.networks.find((n) => n.Spec.Ingress),
    service: (id) => o.services.find((s) => s.ID === id),
    tasksOfNode: (id) => o.tasks.filter((t) => t.NodeID === id),
    tasksOnNetwork: (id) => o.tasks.filter((t) => attached(t, id)),
    servicesOnNetwork: (id) => {
      const name = o.networks.find((n) => n.ID === id)?.Spec.Name;
      return o.services.filter((s) => s.Endpoint?.VirtualIPs?.some((v) => v.NetworkID === id)
        || networkConfigs(s.Spec.TaskTemplate, s).some((c) => c.Target === id || (name !== undefined && c.Target === name)));
    },
    nodesOnNetwork: (id) => o.nodes.filter((n) => n.Attachments?.some((a) => a.Network?.ID === id)),
  };
}
