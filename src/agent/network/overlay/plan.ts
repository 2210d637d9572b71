import { ENGINE_NETWORK_LABEL, engineNetworkName, ipv4Mac } from '../../../protocol/network-view';
import type { DesiredNetwork } from './desired';
import { ENCRYPTED_EXTRA_OVERHEAD, TUNNEL_OVERHEAD, TUNNEL_PREFIX_LEN, tunnelAddr, tunnelConfig, type DesiredTunnel } from './encryption';
import { VXLAN_OVERHEAD, VXLAN_PORT, bridgeName, keyOfDevice, networkKey, vxlanName } from './names';
import type { ObservedEngineNetwork, ObservedLink, ObservedOverlays } from './observed';

// Desired overlays + what the node has → what to do (pure). Commands are
// lines for `ip -batch` and `bridge -batch`. Order matters and is kept by the
// caller: links first, then the engine network (dockerd puts the gateway on
// the bridge and, when it takes an existing bridge, replaces an address of
// the subnet it finds there: so the /32s come after it), then addresses,
// neighbours and FDB entries.

export const DEFAULT_UNDERLAY_MTU = 1500;

export interface EngineNetworkCreate {
  Name: string;
  CheckDuplicate: boolean;
  Driver: 'bridge';
  Internal: boolean;
  IPAM: { Driver: 'default'; Config: Array<{ Subnet: string; Gateway: string }> };
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

export interface NetworkPlan {
  networkId: string;
  encrypted: boolean;              // its VXLAN port needs the node's tunnel
  links: string[];                 // ip -batch, before the engine network
  engineRemove: string[];          // engine network IDs that do not fit, removed before the create
  engineCreate?: EngineNetworkCreate;
  ip: string[];                    // ip -batch, once the engine network exists
  fdb: string[];                   // bridge -batch, likewise
}

export interface Teardown {
  key: string;                     // networkKey of the network
  networkId?: string;              // when an engine network names it
  engineNetworks: string[];        // engine network IDs, removed first (the engine refuses while containers use one)
  links: string[];                 // ip -batch: the devices, once the engine networks are gone
}

// The node's WireGuard interface for its encrypted networks, made before
// their VXLAN ports (which are bound to its address).
export interface TunnelPlan {
  name: string;
  create: boolean;                 // it does not exist yet (tunnel.ts makes it)
  ip: string[];                    // ip -batch: address, MTU, up
  config?: string;                 // for `wg syncconf`, once the view holds a key
}

export interface OverlayPlan {
  mtu: number;
  networks: NetworkPlan[];
  teardown: Teardown[];
  tunnel?: TunnelPlan;
  tunnelRemove: string[];          // names of tunnels no longer wanted, deleted after the teardown
  problems: string[];
}

export function overlayMtu(underlayMtu: number | undefined): number {
  return (underlayMtu && underlayMtu > VXLAN_OVERHEAD + 68 ? underlayMtu : DEFAULT_UNDERLAY_MTU) - VXLAN_OVERHEAD;
}

export function planOverlays(desired: DesiredNetwork[], nodeAddr: string | undefined, observed: ObservedOverlays, tunnel?: DesiredTunnel): OverlayPlan {
  const mtu = overlayMtu(observed.underlayMtu);
  const problems: string[] = [];
  const networks = desired.map((d) => planNetwork(d, nodeAddr, mtu, observed, problems));
  const wanted = new Set(desired.map((d) => networkKey(d.id)));
  const wantedIds = new Set(desired.map((d) => d.id));

  const gone = new Map<string, Teardown>();
  const teardownOf = (key: string): Teardown => {
    let t = gone.get(key);
    if (!t) gone.set(key, (t = { key, engineNetworks: [], links: [] }));
    return t;
  };
  for (const en of observed.engineNetworks) {
    if (wantedIds.has(en.networkId)) continue;
    const t = teardownOf(networkKey(en.networkId));
    t.networkId = en.networkId;
    t.engineNetworks.push(en.id);
  }
  // The VXLAN port before its bridge (the engine removes the bridge with its network anyway).
  const links = [...observed.links.values()].sort((a, b) => (a.kind === b.kind ? cmp(a.name, b.name) : a.kind === 'vxlan' ? -1 : 1));
  for (const l of links) {
    const key = keyOfDevice(l.name)!;
    if (wanted.has(key)) continue;
    teardownOf(key).links.push(`link del dev ${l.name}`);
  }
  const tunnelRemove = [...observed.tunnels.keys()].filter((n) => n !== tunnel?.name).sort(cmp);
  return {
    mtu, networks, teardown: [...gone.values()].sort((a, b) => cmp(a.key, b.key)),
    ...(tunnel ? { tunnel: planTunnel(tunnel, mtu, observed) } : {}), tunnelRemove, problems,
  };
}

export const tunnelMtu = (overlayMtu: number): number => overlayMtu + VXLAN_OVERHEAD - TUNNEL_OVERHEAD;

function planTunnel(t: DesiredTunnel, mtu: number, observed: ObservedOverlays): TunnelPlan {
  const have = observed.tunnels.get(t.name);
  const ip: string[] = [];
  const addr = `${t.addr}/${TUNNEL_PREFIX_LEN}`;
  // nodad: usable at once (no other node ever holds this address on this link).
  if (!have?.addrs.includes(addr)) ip.push(`addr replace ${addr} dev ${t.name} nodad`);
  for (const a of have?.addrs ?? []) if (a !== addr && !a.startsWith('fe80:')) ip.push(`addr del ${a} dev ${t.name}`);
  const want = tunnelMtu(mtu);
  if (have?.mtu !== want) ip.push(`link set dev ${t.name} mtu ${want}`);
  if (!have?.up) ip.push(`link set dev ${t.name} up`);
  const config = tunnelConfig(t);
  return { name: t.name, create: !have, ip, ...(config ? { config } : {}) };
}

function planNetwork(d: DesiredNetwork, nodeAddr: string | undefined, mtu: number, observed: ObservedOverlays, problems: string[]): NetworkPlan {
  const br = bridgeName(d.id);
  const vx = vxlanName(d.id);
  const links: string[] = [];
  const ip: string[] = [];
  const fdb: string[] = [];
  const mac = d.lbAddr ? ipv4Mac(d.lbAddr) : undefined;
  // An encrypted network's VXLAN runs between tunnel addresses, with room for the tunnel's header.
  if (d.encrypted) mtu -= ENCRYPTED_EXTRA_OVERHEAD;
  const local = nodeAddr && (d.encrypted ? tunnelAddr(nodeAddr) : nodeAddr);
  const remoteEnd = (dst: string): string => (d.encrypted ? tunnelAddr(dst) : dst);

  // The bridge.
  let bridge = observed.links.get(br);
  if (bridge && bridge.kind !== 'bridge') { links.push(`link del dev ${br}`); bridge = undefined; }
  if (!bridge) {
    links.push(`link add name ${br}${mac ? ` address ${mac}` : ''} mtu ${mtu} type bridge`, `link set dev ${br} up`);
  } else {
    if (mac && bridge.mac !== mac) links.push(`link set dev ${br} address ${mac}`);
    if (bridge.mtu !== mtu) links.push(`link set dev ${br} mtu ${mtu}`);
    if (!bridge.up) links.push(`link set dev ${br} up`);
  }

  // Its VXLAN port (a new one, or one whose parameters differ, is made again).
  let vxlan: ObservedLink | undefined = observed.links.get(vx);
  if (!local) {
    problems.push(`network ${d.id}: this node's data-path address is not known yet: no VXLAN port`);
  } else {
    if (vxlan && !vxlanFits(vxlan, d.vni, local)) { links.push(`link del dev ${vx}`); vxlan = undefined; }
    if (!vxlan) {
      links.push(`link add name ${vx} mtu ${mtu} type vxlan id ${d.vni} local ${local} dstport ${VXLAN_PORT} nolearning proxy`,
        `link set dev ${vx} master ${br}`, `link set dev ${vx} up`);
    } else {
      if (vxlan.mtu !== mtu) links.push(`link set dev ${vx} mtu ${mtu}`);
      if (vxlan.master !== br) links.push(`link set dev ${vx} master ${br}`);
      if (!vxlan.up) links.push(`link set dev ${vx} up`);
    }
  }

  // The engine network on the bridge.
  const create = engineNetworkBody(d, mtu);
  const mine = observed.engineNetworks.filter((n) => n.networkId === d.id);
  const fits = mine.find((n) => engineNetworkFits(n, create));
  const engineRemove = mine.filter((n) => n !== fits).map((n) => n.id);

  // The bridge's /32s: the LB address and the VIPs (the gateway is the engine's).
  const have = new Set((observed.addrs.get(br) ?? []).filter((a) => a.endsWith('/32')).map((a) => a.slice(0, -3)));
  for (const a of d.localAddrs) if (!have.has(a)) ip.push(`addr add ${a}/32 dev ${br}`);
  for (const a of [...have].sort(cmp)) if (!d.localAddrs.includes(a)) ip.push(`addr del ${a}/32 dev ${br}`);

  if (local) {
    // A VXLAN device made in this round has no entries yet.
    const neigh = vxlan ? observed.neighbours.get(vx) ?? new Map<string, string>() : new Map<string, string>();
    const fdbHave = vxlan ? observed.fdb.get(vx) ?? new Map<string, string[]>() : new Map<string, string[]>();
    const wantIp = new Set<string>();
    const wantMac = new Map<string, string>();
    for (const r of d.remotes) {
      const dst = remoteEnd(r.dst);
      wantIp.add(r.addr);
      wantMac.set(r.mac, dst);
      if (neigh.get(r.addr) !== r.mac) ip.push(`neigh replace ${r.addr} lladdr ${r.mac} dev ${vx} nud permanent`);
      const dsts = fdbHave.get(r.mac) ?? [];
      for (const old of dsts) if (old !== dst) fdb.push(`fdb del ${r.mac} dev ${vx} dst ${old} self`);
      if (!dsts.includes(dst)) fdb.push(`fdb append ${r.mac} dev ${vx} dst ${dst} self`);
    }
    for (const a of [...neigh.keys()].sort(cmp)) if (!wantIp.has(a)) ip.push(`neigh del ${a} dev ${vx}`);
    for (const [m, dsts] of [...fdbHave.entries()].sort((a, b) => cmp(a[0], b[0]))) {
      if (!wantMac.has(m)) for (const old of dsts) fdb.push(`fdb del ${m} dev ${vx} dst ${old} self`);
    }
  }

  return { networkId: d.id, encrypted: d.encrypted, links, engineRemove, ...(fits ? {} : { engineCreate: create }), ip, fdb };
}

function vxlanFits(l: ObservedLink, vni: number, nodeAddr: string): boolean {
  const v = l.vxlan;
  return l.kind === 'vxlan' && !!v && v.id === vni && v.local === nodeAddr && (v.port ?? VXLAN_PORT) === VXLAN_PORT && !v.learning && v.proxy;
}

export function engineNetworkBody(d: DesiredNetwork, mtu: number): EngineNetworkCreate {
  return {
    Name: engineNetworkName(d.id),
    CheckDuplicate: true,
    Driver: 'bridge',
    Internal: d.internal,
    IPAM: { Driver: 'default', Config: [{ Subnet: d.subnet, Gateway: d.gateway }] },
    Options: { 'com.docker.network.bridge.name': bridgeName(d.id), 'com.docker.network.driver.mtu': String(mtu) },
    Labels: { [ENGINE_NETWORK_LABEL]: d.id },
  };
}

function engineNetworkFits(n: ObservedEngineNetwork, want: EngineNetworkCreate): boolean {
  const cfg = want.IPAM.Config[0]!;
  return n.name === want.Name && n.bridge === want.Options['com.docker.network.bridge.name'] && n.subnet === cfg.Subnet
    && n.gateway === cfg.Gateway && n.internal === want.Internal;
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
