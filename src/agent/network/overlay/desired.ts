import { ipv4Mac, type NodeNetworkView, type ViewNetwork } from '../../../protocol/network-view';
import { desiredTunnel, type DesiredTunnel } from './encryption';
import { MAX_VNI, isIPv4, parseCidr, plainAddr } from './names';

// What this node's overlays must look like, from the view (pure). Every item
// of the view is checked here: a bad one is left out and named in `problems`,
// the rest goes on.

export interface RemoteEntry {
  addr: string;      // a remote task's (or node load balancer's) address
  mac: string;       // ipv4Mac(addr): what the engine's bridge driver gives a container with that address
  dst: string;       // the data-path address of the node it lives on
  nodeId: string;
}

export interface DesiredNetwork {
  id: string;
  name: string;
  vni: number;
  subnet: string;
  gateway: string;
  internal: boolean;
  encrypted: boolean;        // its VXLAN runs through the node's tunnel (encryption.ts)
  lbAddr?: string;           // this node's load-balancer address (bridge MAC derives from it)
  localAddrs: string[];      // /32s on the bridge: the LB address and the services' VIPs
  remotes: RemoteEntry[];    // sorted by addr
}

export interface DesiredInput {
  nodeId: string;
  nodeAddr?: string;
  view: NodeNetworkView;
  // Networks a task on this node asked for before the view named them.
  pinned?: ViewNetwork[];
}

export interface Desired {
  networks: DesiredNetwork[];
  nodeAddr?: string;
  tunnel?: DesiredTunnel;    // when an encrypted network is among them and the node's address is known
  problems: string[];
}

export function desiredOverlays(input: DesiredInput): Desired {
  const { nodeId, view } = input;
  const problems: string[] = [];
  const nodeAddr = input.nodeAddr ?? view.LoadBalancers.find((l) => l.NodeID === nodeId && isIPv4(l.NodeAddr))?.NodeAddr
    ?? view.Endpoints.find((e) => e.NodeID === nodeId && isIPv4(e.NodeAddr))?.NodeAddr;

  const byId = new Map<string, ViewNetwork>();
  for (const n of [...(input.pinned ?? []), ...view.Networks]) {
    const bad = checkNetwork(n);
    if (bad) { problems.push(bad); continue; }
    byId.set(n.ID, n); // the view's version wins over a pinned one
  }
  // Subnets never overlap between swarm networks: every bridge is in one namespace.
  const networks: DesiredNetwork[] = [];
  for (const n of [...byId.values()].sort((a, b) => cmp(a.ID, b.ID))) networks.push(desiredNetwork(n, input, nodeAddr, problems));
  let tunnel: DesiredTunnel | undefined;
  const encrypted = networks.filter((n) => n.encrypted);
  if (encrypted.length && nodeAddr) {
    const peers = new Map<string, string>();
    for (const n of encrypted) for (const r of n.remotes) peers.set(r.nodeId, r.dst);
    tunnel = desiredTunnel(nodeId, nodeAddr, peers, view.Keys, problems);
  }
  return { networks, nodeAddr, ...(tunnel ? { tunnel } : {}), problems };
}

function checkNetwork(n: ViewNetwork): string | undefined {
  if (!n || typeof n.ID !== 'string' || !/^[a-z0-9]{12,64}$/.test(n.ID)) return `network with a bad ID ${JSON.stringify(n?.ID)}`;
  if (!parseCidr(n.Subnet)) return `network ${n.ID}: bad subnet ${JSON.stringify(n.Subnet)}`;
  if (!isIPv4(n.Gateway)) return `network ${n.ID}: bad gateway ${JSON.stringify(n.Gateway)}`;
  if (!Number.isInteger(n.VNI) || n.VNI < 1 || n.VNI > MAX_VNI) return `network ${n.ID}: bad VNI ${JSON.stringify(n.VNI)}`;
  return undefined;
}

function desiredNetwork(n: ViewNetwork, input: DesiredInput, nodeAddr: string | undefined, problems: string[]): DesiredNetwork {
  const { view, nodeId } = input;
  const lbAddr = plainAddr(n.LBAddr) ?? plainAddr(view.LoadBalancers.find((l) => l.NetworkID === n.ID && l.NodeID === nodeId)?.Addr);
  const local = new Set<string>();
  if (lbAddr) local.add(lbAddr);
  for (const s of view.Services) {
    for (const v of s.VIPs ?? []) {
      if (v.NetworkID !== n.ID) continue;
      const a = plainAddr(v.Addr);
      if (a) local.add(a); else problems.push(`service ${s.ID}: bad VIP ${JSON.stringify(v.Addr)}`);
    }
  }
  // Addresses of this node's own tasks: answered on the bridge itself, never through the VXLAN port.
  const taken = new Set(local);
  taken.add(n.Gateway);
  const isLocal = (nodeOf: string, addrOf: string): boolean => nodeOf === nodeId || (nodeAddr !== undefined && addrOf === nodeAddr);
  for (const e of view.Endpoints) {
    if (e.NetworkID === n.ID && isLocal(e.NodeID, e.NodeAddr)) { const a = plainAddr(e.Addr); if (a) taken.add(a); }
  }
  // Remote ones: a running task wins over a stopping one that had the same address.
  const remotes = new Map<string, RemoteEntry & { running: boolean }>();
  const offer = (addr: string | undefined, dst: string, nodeOf: string, running: boolean, what: string): void => {
    if (!addr || !isIPv4(dst)) { problems.push(`${what} on network ${n.ID}: bad address`); return; }
    if (taken.has(addr)) return;
    const had = remotes.get(addr);
    if (had && (had.running || !running)) return;
    remotes.set(addr, { addr, mac: ipv4Mac(addr), dst, nodeId: nodeOf, running });
  };
  for (const e of view.Endpoints) {
    if (e.NetworkID !== n.ID || isLocal(e.NodeID, e.NodeAddr)) continue;
    offer(plainAddr(e.Addr), e.NodeAddr, e.NodeID, e.Running === true, `task ${e.TaskID}`);
  }
  for (const l of view.LoadBalancers) {
    if (l.NetworkID !== n.ID || isLocal(l.NodeID, l.NodeAddr)) continue;
    offer(plainAddr(l.Addr), l.NodeAddr, l.NodeID, true, `load balancer of node ${l.NodeID}`);
  }
  return {
    id: n.ID,
    name: n.Name,
    vni: n.VNI,
    subnet: n.Subnet,
    gateway: n.Gateway,
    internal: !!n.Internal,
    encrypted: !!n.Encrypted,
    ...(lbAddr ? { lbAddr } : {}),
    localAddrs: [...local].sort(cmp),
    remotes: [...remotes.values()].map(({ addr, mac, dst, nodeId: id }) => ({ addr, mac, dst, nodeId: id })).sort((a, b) => cmp(a.addr, b.addr)),
  };
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
