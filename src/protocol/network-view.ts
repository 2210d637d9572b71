// What a node needs to know to build its part of the swarm's networks: the
// overlays its tasks (and the routing mesh) use, the services that answer on
// them and every running task's address on them, wherever it runs. The leader's
// dispatcher computes it per node (manager/dispatcher/network-view.ts) and sends
// it in the session (SessionMessage.NetworkView, a whole replacement each time it
// changes); the agent hands it to the node's network component (agent/network/):
// overlay (bridge + VXLAN + FDB/neighbour entries), load balancer (nftables VIPs
// and the routing mesh) and DNS. Addresses here are plain IPv4 ("10.0.1.5"),
// subnets CIDR.
import type { Network, PortConfig } from '../model/types';
import { invalid } from '../common/errors';
import { arr, bool, id, labels, num, oneOf, optStr, rec, str } from './checks';

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
  TaskName: string;        // "web.1.<task id>" (a DNS name of its own); a container's name for an attachment
  ServiceID: string;       // empty for a container's network attachment (protocol/attachments.ts)
  NodeID: string;
  NodeAddr: string;        // the task's node's data-path address (VXLAN remote)
  NetworkID: string;
  Addr: string;
  Running: boolean;
  // A container's network attachment only: its aliases on this network
  // (`--network-alias`, `network connect --alias`), names of its address.
  Aliases?: string[];
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

// One of the swarm's data-path keys for encrypted overlays (made and rotated
// by the leader, manager/netkeys/). Nodes derive every per-peer key from it;
// they receive with every key of the set and send with the primary one.
export interface ViewKey {
  Tag: number;             // increases with each new key; names the key on the wire
  Key: string;             // base64 of NETWORK_KEY_BYTES random bytes
  Primary: boolean;        // exactly one key of a set: the one to send with
}

// A swarm network a node carries, as its view has it, with the nodes that
// carry it too (a running task or a load-balancer address on it): what a
// worker's `network ls` and `network inspect` show (a Docker worker knows a
// swarm network only where it has a task or the routing mesh on it).
export interface CarriedNetwork { network: ViewNetwork; peers: Array<{ NodeID: string; IP: string }> }

export const NETWORK_KEY_BYTES = 32;
// A rotation holds at most the old and the new key.
export const MAX_NETWORK_KEYS = 2;

export interface NodeNetworkView {
  Networks: ViewNetwork[];
  Services: ViewService[];
  Endpoints: ViewEndpoint[];
  LoadBalancers: ViewLoadBalancer[];  // every node's, on the networks in Networks
  // Present only when one of Networks is encrypted: a node without a task (or
  // LB address) on an encrypted network is never sent key material.
  Keys?: ViewKey[];
}

// Where Shoal's DNS server listens on every node (a dummy interface in the
// node's namespace); task containers get it as their only --dns, so Docker's
// embedded resolver (127.0.0.11) forwards every name it does not know here.
export const SHOAL_DNS_ADDR = '169.254.53.53';

// The DNS server a container on these swarm networks gets as its first --dns.
// A container whose networks are all --internal has no default route, so
// SHOAL_DNS_ADDR is out of its reach: it asks the gateway of its first
// network instead (an address on its own subnet), which the node's load
// balancer table hands to the DNS server (a DNAT to a local address: nothing
// leaves the network). The DNS server does not forward such a container's
// other names upstream, as Docker's resolver since moby's CVE-2024-29018 fix.
export function dnsServerFor(networks: ReadonlyArray<Pick<Network, 'Spec' | 'IPAM'> | undefined>): string {
  const nets = networks.filter((n): n is Pick<Network, 'Spec' | 'IPAM'> => !!n);
  if (!nets.length || nets.some((n) => n.Spec?.Internal !== true)) return SHOAL_DNS_ADDR;
  const gw = nets[0]!.IPAM?.Configs?.[0]?.Gateway;
  return typeof gw === 'string' && IPV4.test(gw) ? gw : SHOAL_DNS_ADDR;
}

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

// ---------- checks (where a view enters: the agent's session) ----------

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const MAX_NAME = 1024;

function ipv4(v: unknown, what: string): string {
  const s = str(v, what, 15);
  if (!IPV4.test(s)) throw invalid(`${what}: not an IPv4 address`);
  return s;
}
function cidr(v: unknown, what: string): string {
  const s = str(v, what, 18);
  const [ip, bits] = s.split('/');
  if (!ip || !IPV4.test(ip) || !bits || !/^\d{1,2}$/.test(bits) || Number(bits) > 32) throw invalid(`${what}: not an IPv4 CIDR`);
  return s;
}
function int(v: unknown, what: string, min: number, max: number): number {
  const n = num(v, what);
  if (!Number.isInteger(n) || n < min || n > max) throw invalid(`${what}: want an integer from ${min} to ${max}`);
  return n;
}
const strings = (v: unknown, what: string): string[] => arr(v, what, 1000).map((x, i) => str(x, `${what}[${i}]`, MAX_NAME));

function checkPort(raw: unknown, what: string): PortConfig {
  const p = rec(raw, what);
  const name = optStr(p.Name, `${what}.Name`, MAX_NAME);
  return {
    ...(name !== undefined ? { Name: name } : {}),
    Protocol: oneOf(p.Protocol, ['tcp', 'udp', 'sctp'] as const, `${what}.Protocol`),
    TargetPort: int(p.TargetPort, `${what}.TargetPort`, 0, 65535),
    PublishedPort: int(p.PublishedPort ?? 0, `${what}.PublishedPort`, 0, 65535),
    PublishMode: oneOf(p.PublishMode, ['ingress', 'host'] as const, `${what}.PublishMode`),
  };
}

function checkNetwork(raw: unknown, what: string): ViewNetwork {
  const n = rec(raw, what);
  const lb = n.LBAddr === undefined ? undefined : ipv4(n.LBAddr, `${what}.LBAddr`);
  return {
    ID: id(n.ID, `${what}.ID`), Name: str(n.Name, `${what}.Name`, MAX_NAME),
    Subnet: cidr(n.Subnet, `${what}.Subnet`), Gateway: ipv4(n.Gateway, `${what}.Gateway`),
    VNI: int(n.VNI, `${what}.VNI`, 1, 2 ** 24 - 1),
    Internal: bool(n.Internal, `${what}.Internal`), Attachable: bool(n.Attachable, `${what}.Attachable`),
    Ingress: bool(n.Ingress, `${what}.Ingress`), Encrypted: bool(n.Encrypted, `${what}.Encrypted`),
    Labels: labels(n.Labels, `${what}.Labels`) ?? {},
    ...(lb ? { LBAddr: lb } : {}),
  };
}

function checkService(raw: unknown, what: string): ViewService {
  const s = rec(raw, what);
  return {
    ID: id(s.ID, `${what}.ID`), Name: str(s.Name, `${what}.Name`, MAX_NAME),
    EndpointMode: oneOf(s.EndpointMode, ['vip', 'dnsrr'] as const, `${what}.EndpointMode`),
    VIPs: arr(s.VIPs, `${what}.VIPs`, 1000).map((v, i) => {
      const x = rec(v, `${what}.VIPs[${i}]`);
      return { NetworkID: id(x.NetworkID, `${what}.VIPs[${i}].NetworkID`), Addr: ipv4(x.Addr, `${what}.VIPs[${i}].Addr`) };
    }),
    Ports: arr(s.Ports, `${what}.Ports`, 1000).map((p, i) => checkPort(p, `${what}.Ports[${i}]`)),
    Aliases: arr(s.Aliases, `${what}.Aliases`, 1000).map((a, i) => {
      const x = rec(a, `${what}.Aliases[${i}]`);
      return { NetworkID: id(x.NetworkID, `${what}.Aliases[${i}].NetworkID`), Aliases: strings(x.Aliases, `${what}.Aliases[${i}].Aliases`) };
    }),
    KeepClientIP: bool(s.KeepClientIP, `${what}.KeepClientIP`),
  };
}

function checkEndpoint(raw: unknown, what: string): ViewEndpoint {
  const e = rec(raw, what);
  return {
    TaskID: id(e.TaskID, `${what}.TaskID`), TaskName: str(e.TaskName, `${what}.TaskName`, MAX_NAME),
    ServiceID: str(e.ServiceID, `${what}.ServiceID`, 128), NodeID: id(e.NodeID, `${what}.NodeID`),
    NodeAddr: str(e.NodeAddr, `${what}.NodeAddr`, 255), NetworkID: id(e.NetworkID, `${what}.NetworkID`),
    Addr: ipv4(e.Addr, `${what}.Addr`), Running: bool(e.Running, `${what}.Running`),
    ...(e.Aliases !== undefined ? { Aliases: strings(e.Aliases, `${what}.Aliases`) } : {}),
  };
}

function checkLoadBalancer(raw: unknown, what: string): ViewLoadBalancer {
  const l = rec(raw, what);
  return {
    NetworkID: id(l.NetworkID, `${what}.NetworkID`), NodeID: id(l.NodeID, `${what}.NodeID`),
    NodeAddr: str(l.NodeAddr, `${what}.NodeAddr`, 255), Addr: ipv4(l.Addr, `${what}.Addr`),
  };
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

// A key set: at most MAX_NETWORK_KEYS keys of NETWORK_KEY_BYTES, distinct tags, exactly one primary.
function checkKeys(raw: unknown, what: string): ViewKey[] {
  const keys = arr(raw, what, MAX_NETWORK_KEYS).map((k, i): ViewKey => {
    const x = rec(k, `${what}[${i}]`);
    const key = str(x.Key, `${what}[${i}].Key`, 64);
    if (!BASE64.test(key) || Buffer.from(key, 'base64').length !== NETWORK_KEY_BYTES) throw invalid(`${what}[${i}].Key: not ${NETWORK_KEY_BYTES} bytes of base64`);
    return { Tag: int(x.Tag, `${what}[${i}].Tag`, 1, 2 ** 32 - 1), Key: key, Primary: bool(x.Primary, `${what}[${i}].Primary`) };
  });
  if (new Set(keys.map((k) => k.Tag)).size !== keys.length) throw invalid(`${what}: two keys with one tag`);
  if (keys.filter((k) => k.Primary).length !== 1) throw invalid(`${what}: want exactly one primary key`);
  return keys;
}

// Every field of a view from the managers, checked; throws `invalid` naming the first bad one.
export function checkNodeNetworkView(raw: unknown): NodeNetworkView {
  const v = rec(raw, 'NetworkView');
  const networks = arr(v.Networks, 'NetworkView.Networks', 10_000).map((n, i) => checkNetwork(n, `NetworkView.Networks[${i}]`));
  const keys = v.Keys === undefined ? undefined : checkKeys(v.Keys, 'NetworkView.Keys');
  // Key material travels only to nodes that need it: a view that has some without an encrypted network is wrong.
  if (keys && !networks.some((n) => n.Encrypted)) throw invalid('NetworkView.Keys: keys without an encrypted network');
  return {
    Networks: networks,
    Services: arr(v.Services, 'NetworkView.Services').map((s, i) => checkService(s, `NetworkView.Services[${i}]`)),
    Endpoints: arr(v.Endpoints, 'NetworkView.Endpoints').map((e, i) => checkEndpoint(e, `NetworkView.Endpoints[${i}]`)),
    LoadBalancers: arr(v.LoadBalancers, 'NetworkView.LoadBalancers').map((l, i) => checkLoadBalancer(l, `NetworkView.LoadBalancers[${i}]`)),
    ...(keys ? { Keys: keys } : {}),
  };
}
