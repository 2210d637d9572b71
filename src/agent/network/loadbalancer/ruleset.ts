// The node's load balancer as one nftables table (pure: the network view and
// this node's ID in, the table's text out). kube-proxy's nftables mode is the
// model: a verdict map from the destination to a chain per frontend, which
// spreads new connections with `numgen random` over the backends' addresses.
//
//  - A service VIP (vip mode, one per network) answers on every port, as
//    Swarm's IPVS does: tcp and udp to it from that network go to the
//    service's running tasks on it, wherever they run, source-NATed to this
//    node's LB address on the network so that the replies come back here.
//  - The routing mesh: a published port (ingress mode) on any local address of
//    the node, loopback included, goes to the service's running tasks on the
//    ingress network, source-NATed the same way. With KeepClientIP and a
//    running task on this node, only local tasks get it and without source NAT
//    (their gateway is this node, so the replies pass its conntrack anyway);
//    with no local task every task gets it, still without source NAT, and the
//    node that runs the task sends the replies back through this one
//    (keepClientReturn below), whose conntrack undoes the DNAT.
//  - A frontend without backends rejects (tcp reset, icmp unreachable) rather
//    than leaving the client to time out.
//
// Every connection this table balances carries MARK_BALANCED in its conntrack
// mark: dockerd's FORWARD chain (policy DROP) lets it through on that mark
// (forward-accept.ts). MARK_SNAT asks postrouting for the source NAT.
import { SHOAL_DNS_ADDR, ipv4Mac, type NodeNetworkView, type ViewEndpoint, type ViewNetwork } from '../../../protocol/network-view';
import { byAddress, inSubnet, ipv4ToInt, parseSubnet, plainIpv4, type Subnet } from './ipv4';

export const TABLE_FAMILY = 'ip';
export const TABLE_NAME = 'shoal';
export const MARK_BALANCED = 0x10000000;
export const MARK_SNAT = 0x20000000;
// A KeepClientIP connection that reached a local task from another node's
// mesh: the low 16 bits are that node's address on the ingress network (a
// /16 at most, so they name it), where the replies go back.
export const MARK_ENTRY = 0x40000000;
const ENTRY_KEY_MASK = 0x4000ffff;
// Return through the entry node needs its address in 16 bits.
const MIN_RETURN_PREFIX = 16;
export const hexMark = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

export type Proto = 'tcp' | 'udp';

export interface Frontend {
  key: string;              // unique in a ruleset: "vip 10.0.1.2", "mesh tcp 30080"
  kind: 'vip' | 'mesh';
  chain: string;
  serviceId: string;
  serviceName: string;
  networkId: string;
  addr?: string;            // the VIP (vip)
  proto?: Proto;            // mesh
  port?: number;            // the published port (mesh)
  targetPort?: number;      // mesh
  backends: string[];       // addresses new connections go to, sorted; none: rejected
  snat: boolean;            // false: KeepClientIP (local tasks first, else every task, replies sent back here)
}

// This node's side of KeepClientIP connections from other nodes' meshes: its
// running tasks of such services on ingress (address, protocol, target port)
// and every other node's ingress address, where the replies go back.
export interface KeepClientReturn {
  tasks: Array<{ addr: string; proto: Proto; port: number }>;
  entries: Array<{ addr: string; mac: string; mark: number }>;
}

export interface Ruleset {
  text: string;             // `table ip shoal { ... }`
  frontends: Frontend[];
  warnings: string[];       // items left out (bad or conflicting data), one line each
  localnetAddrs: string[];  // LB addresses whose interface needs route_localnet (mesh on 127.0.0.1)
  hairpinAddrs: string[];   // LB addresses of networks with balanced traffic: their bridge's ports need hairpin
}

interface Net { view: ViewNetwork; subnet: Subnet; lb?: string }

const ID_RE = /^[A-Za-z0-9]{1,64}$/;
const validPort = (p: unknown): p is number => typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
// What may go into an nft comment: no quotes, nothing nft would parse.
const comment = (s: string): string => `comment "${s.replace(/[^A-Za-z0-9 ._:/-]/g, '_').slice(0, 120)}"`;

export function buildRuleset(view: NodeNetworkView, nodeId: string): Ruleset {
  const warnings: string[] = [];
  const nets = usableNetworks(view, nodeId, warnings);
  const running = runningEndpoints(view.Endpoints, nets, warnings);
  const ingress = [...nets.values()].find((n) => n.view.Ingress);
  const frontends: Frontend[] = [];
  const keepTasks: KeepClientReturn['tasks'] = [];
  const taken = new Set<string>();
  const add = (f: Frontend, what: string): void => {
    if (taken.has(f.key)) { warnings.push(`${what}: ${f.key} is already taken by another service; left out`); return; }
    taken.add(f.key);
    frontends.push(f);
  };

  for (const svc of [...view.Services].sort((a, b) => a.ID.localeCompare(b.ID))) {
    const what = `service ${svc.Name} (${svc.ID})`;
    if (!ID_RE.test(svc.ID)) { warnings.push(`${what}: malformed ID; left out`); continue; }
    if (svc.EndpointMode === 'vip') {
      for (const v of svc.VIPs ?? []) {
        const net = nets.get(v.NetworkID);
        if (!net) continue; // a network this node does not have
        const addr = plainIpv4(v.Addr);
        if (!addr || !inSubnet(addr, net.subnet)) { warnings.push(`${what}: VIP "${v.Addr}" is not an address of network ${net.view.Name}; left out`); continue; }
        if (!net.lb) warnings.push(`${what}: no load-balancer address on network ${net.view.Name}; its VIP rejects`);
        add({
          key: `vip ${addr}`, kind: 'vip', chain: `vip-${addr.replace(/\./g, '-')}`,
          serviceId: svc.ID, serviceName: svc.Name, networkId: net.view.ID, addr,
          backends: net.lb ? backendsOf(running, svc.ID, net.view.ID).map((e) => e.Addr) : [], snat: true,
        }, what);
      }
    }
    for (const p of svc.Ports ?? []) {
      if ((p.PublishMode ?? 'ingress') !== 'ingress' || p.PublishedPort === undefined || p.PublishedPort === 0) continue;
      const proto = p.Protocol ?? 'tcp';
      if (proto !== 'tcp' && proto !== 'udp') { warnings.push(`${what}: published ${proto} port ${p.PublishedPort} is not supported; left out`); continue; }
      if (!validPort(p.PublishedPort) || !validPort(p.TargetPort)) { warnings.push(`${what}: malformed port ${p.PublishedPort}:${p.TargetPort}; left out`); continue; }
      if (!ingress) { warnings.push(`${what}: published port ${p.PublishedPort}/${proto} but no ingress network; left out`); continue; }
      if (!ingress.lb) warnings.push(`${what}: no load-balancer address on the ingress network; port ${p.PublishedPort}/${proto} rejects`);
      const all = ingress.lb ? backendsOf(running, svc.ID, ingress.view.ID) : [];
      const keep = svc.KeepClientIP && ingress.subnet.prefix >= MIN_RETURN_PREFIX;
      if (svc.KeepClientIP && !keep) warnings.push(`${what}: keep-client-ip needs an ingress network of /${MIN_RETURN_PREFIX} or smaller; the client address is lost`);
      const local = keep ? all.filter((e) => e.NodeID === nodeId) : [];
      add({
        key: `mesh ${proto} ${p.PublishedPort}`, kind: 'mesh', chain: `mesh-${proto}-${p.PublishedPort}`,
        serviceId: svc.ID, serviceName: svc.Name, networkId: ingress.view.ID,
        proto, port: p.PublishedPort, targetPort: p.TargetPort,
        backends: (local.length ? local : all).map((e) => e.Addr), snat: !keep,
      }, what);
      if (keep) for (const e of local) keepTasks.push({ addr: e.Addr, proto, port: p.TargetPort });
    }
  }
  frontends.sort((a, b) => a.key.localeCompare(b.key));
  const meshLive = frontends.some((f) => f.kind === 'mesh' && f.backends.length > 0);
  const keepReturn = ingress ? keepClientReturn(view, nodeId, ingress, keepTasks) : undefined;
  return {
    text: render(frontends, [...nets.values()], keepReturn, ingress),
    frontends,
    warnings,
    localnetAddrs: meshLive && ingress?.lb ? [ingress.lb] : [],
    hairpinAddrs: [...new Set(frontends.filter((f) => f.backends.length > 0).map((f) => nets.get(f.networkId)!.lb!))].sort(byAddress),
  };
}

function keepClientReturn(view: NodeNetworkView, nodeId: string, ingress: Net, tasks: KeepClientReturn['tasks']): KeepClientReturn | undefined {
  if (!tasks.length) return undefined;
  const entries = new Map<string, KeepClientReturn['entries'][number]>();
  for (const l of view.LoadBalancers) {
    if (l.NetworkID !== ingress.view.ID || l.NodeID === nodeId) continue;
    const addr = plainIpv4(l.Addr);
    if (!addr || !inSubnet(addr, ingress.subnet) || addr === ingress.lb) continue;
    entries.set(addr, { addr, mac: ipv4Mac(addr), mark: (MARK_ENTRY | ((ipv4ToInt(addr)! & 0xffff))) >>> 0 });
  }
  if (!entries.size) return undefined;
  const seen = new Set<string>();
  const uniq = tasks.filter((t) => { const k = `${t.addr} ${t.proto} ${t.port}`; if (seen.has(k)) return false; seen.add(k); return true; });
  return { tasks: uniq.sort((a, b) => byAddress(a.addr, b.addr) || a.proto.localeCompare(b.proto) || a.port - b.port), entries: [...entries.values()].sort((a, b) => byAddress(a.addr, b.addr)) };
}

// Networks with a valid subnet and (if it has one here) this node's LB address on it.
function usableNetworks(view: NodeNetworkView, nodeId: string, warnings: string[]): Map<string, Net> {
  const nets = new Map<string, Net>();
  for (const n of [...view.Networks].sort((a, b) => a.ID.localeCompare(b.ID))) {
    const subnet = parseSubnet(n.Subnet ?? '');
    if (!ID_RE.test(n.ID) || !subnet) { warnings.push(`network ${n.Name} (${n.ID}): malformed ID or subnet "${n.Subnet}"; left out`); continue; }
    const lbRaw = n.LBAddr ?? view.LoadBalancers.find((l) => l.NetworkID === n.ID && l.NodeID === nodeId)?.Addr;
    const lb = lbRaw === undefined ? undefined : plainIpv4(lbRaw);
    if (lbRaw !== undefined && (!lb || !inSubnet(lb, subnet))) warnings.push(`network ${n.Name} (${n.ID}): load-balancer address "${lbRaw}" is not in ${subnet.cidr}`);
    nets.set(n.ID, { view: n, subnet, ...(lb && inSubnet(lb, subnet) ? { lb } : {}) });
  }
  return nets;
}

// Running endpoints with a valid address inside their network's subnet, keyed "service/network".
function runningEndpoints(endpoints: ViewEndpoint[], nets: Map<string, Net>, warnings: string[]): Map<string, ViewEndpoint[]> {
  const out = new Map<string, ViewEndpoint[]>();
  for (const e of endpoints) {
    if (!e.Running) continue;
    const net = nets.get(e.NetworkID);
    if (!net) continue;
    const addr = plainIpv4(e.Addr);
    if (!addr || !inSubnet(addr, net.subnet)) { warnings.push(`task ${e.TaskID}: address "${e.Addr}" is not in network ${net.view.Name}; left out`); continue; }
    const key = `${e.ServiceID}/${e.NetworkID}`;
    const list = out.get(key) ?? [];
    if (!list.some((x) => x.Addr === addr)) list.push({ ...e, Addr: addr });
    out.set(key, list);
  }
  for (const list of out.values()) list.sort((a, b) => byAddress(a.Addr, b.Addr));
  return out;
}

const backendsOf = (running: Map<string, ViewEndpoint[]>, serviceId: string, networkId: string): ViewEndpoint[] =>
  running.get(`${serviceId}/${networkId}`) ?? [];

// ---------- text ----------

function elements(items: string[]): string[] {
  return items.length ? [`\t\telements = { ${items.join(`,\n\t\t\t     `)} }`] : [];
}

function render(frontends: Frontend[], nets: Net[], keep: KeepClientReturn | undefined, ingress: Net | undefined): string {
  const live = frontends.filter((f) => f.backends.length > 0);
  const dead = frontends.filter((f) => f.backends.length === 0);
  const vipLive = live.filter((f) => f.kind === 'vip').map((f) => `${f.addr} : goto ${f.chain}`);
  const meshLive = live.filter((f) => f.kind === 'mesh').map((f) => `${f.proto} . ${f.port} : goto ${f.chain}`);
  const vipDead = dead.filter((f) => f.kind === 'vip').map((f) => f.addr!);
  const meshDead = dead.filter((f) => f.kind === 'mesh').map((f) => `${f.proto} . ${f.port}`);
  const both = hexMark(MARK_BALANCED | MARK_SNAT);
  const dispatch = [
    '\t\tmeta l4proto { tcp, udp } ip daddr vmap @vip-services',
    '\t\tfib daddr type local meta l4proto . th dport vmap @mesh-ports',
  ];
  const out: string[] = [
    `table ${TABLE_FAMILY} ${TABLE_NAME} {`,
    '\tmap vip-services {', '\t\ttype ipv4_addr : verdict', ...elements(vipLive), '\t}',
    '\tmap mesh-ports {', '\t\ttype inet_proto . inet_service : verdict', ...elements(meshLive), '\t}',
    '\tset vip-no-backends {', '\t\ttype ipv4_addr', ...elements(vipDead), '\t}',
    '\tset mesh-no-backends {', '\t\ttype inet_proto . inet_service', ...elements(meshDead), '\t}',
    // Before dockerd's own nat chains (priority dstnat/srcnat): the first chain that NATs wins.
    '\tchain prerouting {', '\t\ttype nat hook prerouting priority dstnat - 10; policy accept;', ...internalDns(nets), ...dispatch, '\t}',
    '\tchain output {', '\t\ttype nat hook output priority -110; policy accept;', ...dispatch, '\t}',
    '\tchain postrouting {', '\t\ttype nat hook postrouting priority srcnat - 10; policy accept;',
    ...nets.filter((n) => n.lb).map((n) =>
      `\t\tct mark & ${hexMark(MARK_SNAT)} == ${hexMark(MARK_SNAT)} ip daddr ${n.subnet.cidr} snat ip to ${n.lb} ${comment(`network ${n.view.Name}`)}`),
    '\t}',
    '\tchain input {', '\t\ttype filter hook input priority filter - 10; policy accept;',
    // route_localnet (for the mesh on 127.0.0.1) must not open loopback to the network.
    '\t\tiifname != "lo" ip daddr 127.0.0.0/8 ip saddr != 127.0.0.0/8 ct state != { established, related } drop',
    '\t\tmeta l4proto { tcp, udp } ip daddr @vip-no-backends goto no-backends',
    '\t\tmeta l4proto . th dport @mesh-no-backends goto no-backends',
    '\t}',
    '\tchain no-backends {', '\t\tmeta l4proto tcp reject with tcp reset', '\t\treject', '\t}',
    ...(keep && ingress ? keepClientChain(keep, ingress) : []),
  ];
  for (const f of live) {
    const n = f.backends.length;
    const label = comment(`${f.serviceName} ${f.key}`);
    const net = nets.find((x) => x.view.ID === f.networkId)!;
    out.push(`\tchain ${f.chain} {`);
    // A VIP serves its own network only (isolation: the FORWARD accept would let others through).
    if (f.kind === 'vip') out.push(`\t\tip saddr != ${net.subnet.cidr} return`);
    if (f.snat) {
      out.push(`\t\tct mark set ct mark | ${both}`);
    } else {
      // KeepClientIP: still source-NAT what the node sends itself and what comes from the
      // ingress network (a task's reply to a neighbour on the same bridge would skip this node).
      out.push(`\t\tct mark set ct mark | ${hexMark(MARK_BALANCED)}`);
      out.push(`\t\tfib saddr type local ct mark set ct mark | ${hexMark(MARK_SNAT)}`);
      out.push(`\t\tip saddr ${net.subnet.cidr} ct mark set ct mark | ${hexMark(MARK_SNAT)}`);
    }
    const targets = f.backends.map((b, i) => (f.kind === 'vip' ? `${i} : ${b}` : `${i} : ${b} . ${f.targetPort}`)).join(', ');
    out.push(f.kind === 'vip'
      ? `\t\tdnat ip to numgen random mod ${n} map { ${targets} } ${label}`
      : `\t\tmeta l4proto ${f.proto} dnat ip to numgen random mod ${n} map { ${targets} } ${label}`);
    out.push('\t}');
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}

// The connection came bridged from the other node's mesh (the kernel's bridge
// netfilter gives it a conntrack entry here); the task's replies, routed by
// this node (its gateway), go straight back to that node's ingress address
// instead of out of this node, where nothing would undo the DNAT.
function keepClientChain(keep: KeepClientReturn, ingress: Net): string[] {
  const hexKey = (m: number): string => hexMark((m & ENTRY_KEY_MASK) >>> 0);
  return [
    '\tmap keep-client-entry {', '\t\ttype ether_addr : mark', ...elements(keep.entries.map((e) => `${e.mac} : ${hexMark(e.mark | MARK_BALANCED)}`)), '\t}',
    '\tmap keep-client-return {', '\t\ttype mark : ipv4_addr', ...elements(keep.entries.map((e) => `${hexKey(e.mark)} : ${e.addr}`)), '\t}',
    '\tset keep-client-tasks {', '\t\ttype ipv4_addr . inet_proto . inet_service', ...elements(keep.tasks.map((t) => `${t.addr} . ${t.proto} . ${t.port}`)), '\t}',
    '\tchain keep-client-ip {', '\t\ttype filter hook prerouting priority mangle; policy accept;',
    `\t\tct state new ip saddr != ${ingress.subnet.cidr} ip daddr . meta l4proto . th dport @keep-client-tasks ct mark set ether saddr map @keep-client-entry`,
    `\t\tct direction reply ct mark & ${hexMark(MARK_ENTRY)} == ${hexMark(MARK_ENTRY)} dup to ct mark & ${hexMark(ENTRY_KEY_MASK)} map @keep-client-return drop`,
    '\t}',
  ];
}

// A container on --internal networks only has no route to SHOAL_DNS_ADDR: it
// asks its network's gateway (dnsServerFor), and this hands the query from
// that network to the DNS server, a local address (input, not forward:
// nothing leaves the network). The server still sees the container's address.
function internalDns(nets: Net[]): string[] {
  return nets.filter((n) => n.view.Internal && !n.view.Ingress).flatMap((n) => {
    const gw = plainIpv4(n.view.Gateway);
    if (!gw || !inSubnet(gw, n.subnet)) return [];
    return [`\t\tip saddr ${n.subnet.cidr} ip daddr ${gw} meta l4proto { tcp, udp } th dport 53 dnat ip to ${SHOAL_DNS_ADDR} ${comment(`dns on internal network ${n.view.Name}`)}`];
  });
}

// One nft transaction replacing the table whole (creating it first makes the delete safe).
export function replaceTransaction(text: string): string {
  return `table ${TABLE_FAMILY} ${TABLE_NAME} {}\ndelete table ${TABLE_FAMILY} ${TABLE_NAME}\n${text}`;
}

export const removeTransaction = (): string => `table ${TABLE_FAMILY} ${TABLE_NAME} {}\ndelete table ${TABLE_FAMILY} ${TABLE_NAME}\n`;
