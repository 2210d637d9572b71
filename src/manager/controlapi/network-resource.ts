import { createHash } from 'node:crypto';
import type { Network, Node, Service, Task } from '../../model/types';
import { taskStateRank } from '../../model/types';
import { ipv4Mac } from '../../protocol/network-view';
import { isIngressNetwork, OVERLAY } from './validate-network';

// Docker's NetworkResource (GET /networks, /networks/{id}) for a swarm network,
// as moby's convert.BasicNetworkFromGRPC makes it from the store, plus the
// parts a node's own libnetwork would add: Peers (the nodes with tasks on
// it) and, verbose, Services. Field order is Go's.

export interface IpamConfigResource { Subnet?: string; IPRange?: string; Gateway?: string; AuxiliaryAddresses?: Record<string, string> }

export interface NetworkResource {
  Name: string;
  Id: string;
  Created: string;
  Scope: string;
  Driver: string;
  EnableIPv6: boolean;
  IPAM: { Driver: string; Options: Record<string, string> | null; Config: IpamConfigResource[] | null };
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  ConfigFrom: { Network: string };
  ConfigOnly: boolean;
  Containers: Record<string, unknown> | null;
  Options: Record<string, string> | null;
  Labels: Record<string, string> | null;
  Peers?: Array<{ Name: string; IP: string }>;
  Services?: Record<string, ServiceResource>;
}

// One of Containers' entries (moby's EndpointResource).
export interface EndpointResource { Name: string; EndpointID: string; MacAddress: string; IPv4Address: string; IPv6Address: string }

// The node's load-balancer endpoint on a network, as Docker lists it among
// Containers where the network is: "lb-NAME" ("ingress-sbox" on ingress).
// Docker's endpoint ID is random; this one is derived, so it stays put.
export function lbEndpoint(n: Network, nodeId: string, addr: string): [string, EndpointResource] {
  return lbEndpointOf(n.ID, n.Spec.Name ?? n.ID, isIngressNetwork(n), nodeId, addr);
}

// The same from a network's ID, name and whether it is the ingress network
// (a worker knows its networks from its network view only).
export function lbEndpointOf(networkId: string, name: string, ingress: boolean, nodeId: string, addr: string): [string, EndpointResource] {
  const ip = addr.split('/')[0]!;
  const mac = ipv4Mac(ip);
  const endpointId = createHash('sha256').update(`lb:${networkId}:${nodeId}`).digest('hex');
  return ingress
    ? ['ingress-sbox', { Name: 'ingress-endpoint', EndpointID: endpointId, MacAddress: mac, IPv4Address: addr, IPv6Address: '' }]
    : [`lb-${name}`, { Name: `${name}-endpoint`, EndpointID: endpointId, MacAddress: mac, IPv4Address: addr, IPv6Address: '' }];
}

interface ServiceResource {
  VIP: string;
  Ports: string[];
  LocalLBIndex: number;
  Tasks: Array<{ Name: string; EndpointID: string; EndpointIP: string; Info: Record<string, string> }>;
}

export interface NetworkUsers {
  services: Service[];
  tasks: Task[];
  nodes: Map<string, Node>;
  taskName: (t: Task) => string;
}

const stripPrefix = (cidr: string): string => cidr.replace(/\/\d+$/, '');

// What Docker shows before the allocator has run (no DriverState, no IPAM):
// the requested driver, options and subnet.
export function networkResource(n: Network, users?: NetworkUsers, verbose = false): NetworkResource {
  const ipam = n.IPAM ?? n.Spec.IPAMOptions;
  const configs = ipam?.Configs?.map((c) => {
    const out: IpamConfigResource = {};
    if (c.Subnet) out.Subnet = c.Subnet;
    if (c.Range) out.IPRange = c.Range;
    if (c.Gateway) out.Gateway = c.Gateway;
    if (c.AuxiliaryAddresses && Object.keys(c.AuxiliaryAddresses).length) out.AuxiliaryAddresses = { ...c.AuxiliaryAddresses };
    return out;
  });
  const r: NetworkResource = {
    Name: n.Spec.Name ?? '',
    Id: n.ID,
    Created: n.CreatedAt,
    Scope: 'swarm',
    Driver: n.DriverState?.Name || n.Spec.DriverConfiguration?.Name || OVERLAY,
    EnableIPv6: !!n.Spec.IPv6Enabled,
    IPAM: { Driver: ipam?.Driver?.Name || 'default', Options: ipam?.Driver?.Options ?? null, Config: configs ?? [] },
    Internal: !!n.Spec.Internal,
    Attachable: !!n.Spec.Attachable,
    Ingress: isIngressNetwork(n),
    ConfigFrom: { Network: n.Spec.ConfigFrom?.Network ?? '' },
    ConfigOnly: false,
    Containers: null,
    // As Docker: the options asked for, with the driver's state (the VNI) over them.
    Options: n.DriverState?.Options || n.Spec.DriverConfiguration?.Options ? { ...n.Spec.DriverConfiguration?.Options, ...n.DriverState?.Options } : null,
    Labels: n.Spec.Labels ?? {},
  };
  if (!users) return r;
  const onIt = users.tasks.filter((t) => isAlive(t) && taskUsesNetwork(t, n, users.services));
  // The nodes that carry it (libnetwork's networkdb peers): those with a task
  // on it, and those the allocator gave an LB address there (every node for
  // ingress, as every Docker node has the ingress sandbox).
  const peers = new Map<string, { Name: string; IP: string }>();
  const peer = (node: Node | undefined): void => { if (node) peers.set(node.ID, { Name: node.Description?.Hostname ?? node.ID, IP: node.Status.Addr }); };
  for (const t of onIt) peer(t.NodeID ? users.nodes.get(t.NodeID) : undefined);
  for (const node of users.nodes.values()) if (node.Attachments?.some((a) => a.Network?.ID === n.ID)) peer(node);
  if (peers.size) r.Peers = [...peers.values()].sort((a, b) => a.Name.localeCompare(b.Name));
  if (verbose) r.Services = serviceResources(n, onIt, users);
  return r;
}

function serviceResources(n: Network, tasks: Task[], users: NetworkUsers): Record<string, ServiceResource> {
  const out: Record<string, ServiceResource> = {};
  for (const s of users.services) {
    const mine = tasks.filter((t) => t.ServiceID === s.ID);
    const vip = s.Endpoint.VirtualIPs?.find((v) => v.NetworkID === n.ID);
    if (!vip && mine.length === 0) continue;
    out[s.Spec.Name ?? s.ID] = {
      VIP: vip ? stripPrefix(vip.Addr) : '',
      Ports: [],
      LocalLBIndex: 0,
      Tasks: mine.map((t) => {
        const addr = t.NetworksAttachments?.find((a) => a.Network.ID === n.ID)?.Addresses[0];
        const node = t.NodeID ? users.nodes.get(t.NodeID) : undefined;
        return { Name: `${users.taskName(t)}.${t.ID}`, EndpointID: '', EndpointIP: addr ? stripPrefix(addr) : '', Info: { 'Host IP': node?.Status.Addr ?? '' } };
      }),
    };
  }
  return out;
}

// SwarmKit's test for a task that still holds its network: neither meant to
// stop nor stopped.
export function isAlive(t: Task): boolean {
  return taskStateRank(t.DesiredState) <= taskStateRank('running') && taskStateRank(t.Status.State) <= taskStateRank('running');
}

export function serviceNetworkTargets(s: Pick<Service, 'Spec'>): string[] {
  const tt = s.Spec.TaskTemplate?.Networks ?? [];
  return (tt.length ? tt : s.Spec.Networks ?? []).map((a) => a.Target);
}

// Publishes a port through the routing mesh (SwarmKit's IsIngressNetworkNeeded).
export function needsIngress(s: Pick<Service, 'Spec'>): boolean {
  return (s.Spec.EndpointSpec?.Ports ?? []).some((p) => (p.PublishMode ?? 'ingress') === 'ingress');
}

export function taskUsesNetwork(t: Task, n: Network, services: readonly Service[]): boolean {
  if (t.NetworksAttachments?.some((a) => a.Network.ID === n.ID)) return true;
  if ((t.Spec.Networks ?? []).some((a) => a.Target === n.ID)) return true;
  if (isIngressNetwork(n)) {
    const s = services.find((x) => x.ID === t.ServiceID);
    return !!s && needsIngress(s);
  }
  return false;
}
