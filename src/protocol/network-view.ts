// What a node needs to know to build its part of the swarm's networks: the
// overlays its tasks (and the routing mesh) use, the services that answer on
// them and every running task's address on them, wherever it runs. The leader's
// dispatcher computes it per node (manager/dispatcher/network-view.ts) and sends
// it in the session (SessionMessage.NetworkView, a whole replacement each time it
// changes); the agent hands it to the node's network component (agent/network/):
// overlay (bridge + VXLAN + FDB/neighbour entries), load balancer (nftables VIPs
// and the routing mesh) and DNS. Addresses here are plain IPv4 ("10.0.1.5"),
// subnets CIDR.
import type { PortConfig } from '../model/types';

export interface ViewNetwork {
  ID: string;
  Name: string;
  Subnet: string;          // "10.0.1.0/24"
  Gateway: string;         // "10.0.1.1": the same on every node (ARP never crosses the VXLAN port)
  VNI: number;
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;        // the routing mesh's network
  Encrypted: boolean;
  Labels: Record<string, string>;
  LBAddr?: string;         // this node's load-balancer address on it (source of forwarded VIP/mesh traffic)
}

export interface ViewService {
  ID: string;
  Name: string;
  EndpointMode: 'vip' | 'dnsrr';
  VIPs: Array<{ NetworkID: string; Addr: string }>;      // none in dnsrr mode
  Ports: PortConfig[];                                    // as allocated (PublishedPort chosen)
  Aliases: Array<{ NetworkID: string; Aliases: string[] }>; // the service's network aliases
  KeepClientIP: boolean;                                  // KEEP_CLIENT_IP_LABEL
}

// One task's address on one network. Running is true only for a task that is
// running (and healthy, where it has a health check): only those are VIP
// backends and answer tasks.NAME.
export interface ViewEndpoint {
  TaskID: string;
  TaskName: string;        // "web.1.<task id>" (a DNS name of its own)
  ServiceID: string;
  NodeID: string;
  NodeAddr: string;        // the task's node's data-path address (VXLAN remote)
  NetworkID: string;
  Addr: string;
  Running: boolean;
}

// A node's load-balancer address on one network. Every node's bridge for a
// network carries its own LB address (as a /32) and a MAC derived from it
// (lbMac), so remote nodes reach it with static FDB/neighbour entries: replies
// to VIP and routing-mesh traffic, which is source-NATed to it, come back here.
export interface ViewLoadBalancer {
  NetworkID: string;
  NodeID: string;
  NodeAddr: string;
  Addr: string;
}

export interface NodeNetworkView {
  Networks: ViewNetwork[];
  Services: ViewService[];
  Endpoints: ViewEndpoint[];
  LoadBalancers: ViewLoadBalancer[];  // every node's, on the networks in Networks
}

// Where Shoal's DNS server listens on every node (a dummy interface in the
// node's namespace); task containers get it as their only --dns, so Docker's
// embedded resolver (127.0.0.11) forwards every name it does not know here.
export const SHOAL_DNS_ADDR = '169.254.53.53';

// The engine network that carries a swarm network on one node: a docker
// `bridge` network on Shoal's Linux bridge, labelled with the swarm network's
// ID (the API hides engine networks with this label from `network ls`).
export const ENGINE_NETWORK_LABEL = 'io.shoal.network.id';
export const engineNetworkName = (networkId: string): string => `shoal-${networkId.slice(0, 12)}`;

// Docker's MAC for an IPv4 address (02:42 + the four bytes), used for task
// containers by the engine's bridge driver and by Shoal for each bridge's LB address.
export function ipv4Mac(addr: string): string {
  const b = addr.split('.').map((x) => Number(x));
  return ['02', '42', ...b.map((x) => x.toString(16).padStart(2, '0'))].join(':');
}
