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

export interface NodeNetworkView {
  Networks: ViewNetwork[];
  Services: ViewService[];
  Endpoints: ViewEndpoint[];
}
