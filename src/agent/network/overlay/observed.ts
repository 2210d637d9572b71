import { ENGINE_NETWORK_LABEL } from '../../../protocol/network-view';
import { isTunnelName } from './encryption';
import { keyOfDevice } from './names';

// The node's overlay state as the kernel and the engine report it, read from
// `ip -j -d link show`, `ip -j addr show`, `ip -j neigh show`,
// `bridge -j fdb show` and the engine's network list. Parsing is lenient
// and checked: anything that is not what iproute2 prints is skipped.

export interface ObservedLink {
  name: string;
  kind: string;          // 'bridge', 'vxlan', ...
  mtu: number;
  mac: string;
  up: boolean;           // administratively up
  master?: string;
  vxlan?: { id: number; local?: string; port?: number; learning: boolean; proxy: boolean };
}

// A WireGuard interface of Shoal's (encryption.ts): kind 'wireguard' in the
// kernel, 'tun' when wireguard-go serves it.
export interface ObservedTunnel { name: string; kind: string; mtu: number; up: boolean; addrs: string[] }

export interface ObservedEngineNetwork {
  id: string;            // the engine's network ID
  name: string;
  networkId: string;     // ENGINE_NETWORK_LABEL
  bridge?: string;
  subnet?: string;
  gateway?: string;
  internal: boolean;
}

export interface ObservedOverlays {
  links: Map<string, ObservedLink>;                  // Shoal's devices only (sb-*, sv-*)
  tunnels: Map<string, ObservedTunnel>;              // sw-*, with their IPv6 addresses ("addr/len")
  addrs: Map<string, string[]>;                      // Shoal's bridges: "a.b.c.d/len"
  neighbours: Map<string, Map<string, string>>;      // Shoal's VXLAN devices: ip → mac (permanent entries)
  fdb: Map<string, Map<string, string[]>>;           // Shoal's VXLAN devices: mac → remote addresses
  engineNetworks: ObservedEngineNetwork[];           // labelled ENGINE_NETWORK_LABEL
  underlayMtu?: number;                              // of the device that holds the node's address
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): Json[] => (Array.isArray(v) ? v.filter(isObj) : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const ours = (ifname: unknown): ifname is string => typeof ifname === 'string' && keyOfDevice(ifname) !== undefined;

export function parseLinks(raw: unknown): Map<string, ObservedLink> {
  const out = new Map<string, ObservedLink>();
  for (const l of list(raw)) {
    if (!ours(l.ifname)) continue;
    const info = isObj(l.linkinfo) ? l.linkinfo : {};
    const kind = str(info.info_kind) ?? '';
    const link: ObservedLink = {
      name: l.ifname,
      kind,
      mtu: typeof l.mtu === 'number' ? l.mtu : 0,
      mac: (str(l.address) ?? '').toLowerCase(),
      up: Array.isArray(l.flags) && l.flags.includes('UP'),
      ...(str(l.master) ? { master: str(l.master) } : {}),
    };
    if (kind === 'vxlan' && isObj(info.info_data)) {
      const d = info.info_data;
      link.vxlan = {
        id: typeof d.id === 'number' ? d.id : -1,
        ...(str(d.local) ?? str(d.local6) ? { local: str(d.local) ?? str(d.local6) } : {}),
        ...(typeof d.port === 'number' ? { port: d.port } : {}),
        learning: d.learning === true,
        proxy: d.proxy === true,
      };
    }
    out.set(link.name, link);
  }
  return out;
}

export function parseTunnels(rawLinks: unknown, rawAddrs: unknown): Map<string, ObservedTunnel> {
  const out = new Map<string, ObservedTunnel>();
  for (const l of list(rawLinks)) {
    if (typeof l.ifname !== 'string' || !isTunnelName(l.ifname)) continue;
    const info = isObj(l.linkinfo) ? l.linkinfo : {};
    out.set(l.ifname, {
      name: l.ifname,
      kind: str(info.info_kind) ?? '',
      mtu: typeof l.mtu === 'number' ? l.mtu : 0,
      up: Array.isArray(l.flags) && l.flags.includes('UP'),
      addrs: [],
    });
  }
  for (const l of list(rawAddrs)) {
    const t = typeof l.ifname === 'string' ? out.get(l.ifname) : undefined;
    if (!t) continue;
    t.addrs = list(l.addr_info).filter((a) => a.family === 'inet6' && typeof a.local === 'string' && typeof a.prefixlen === 'number')
      .map((a) => `${String(a.local)}/${String(a.prefixlen)}`);
  }
  return out;
}

// Addresses of Shoal's devices, and the MTU of the device holding `nodeAddr`.
export function parseAddrs(raw: unknown, nodeAddr?: string): { addrs: Map<string, string[]>; underlayMtu?: number } {
  const addrs = new Map<string, string[]>();
  let underlayMtu: number | undefined;
  for (const l of list(raw)) {
    const inet = list(l.addr_info).filter((a) => a.family === 'inet' && typeof a.local === 'string' && typeof a.prefixlen === 'number');
    if (nodeAddr && typeof l.mtu === 'number' && inet.some((a) => a.local === nodeAddr)) underlayMtu = l.mtu;
    if (ours(l.ifname)) addrs.set(l.ifname, inet.map((a) => `${String(a.local)}/${String(a.prefixlen)}`));
  }
  return { addrs, ...(underlayMtu ? { underlayMtu } : {}) };
}

export function parseNeighbours(raw: unknown): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const n of list(raw)) {
    if (!ours(n.dev) || !str(n.dst) || !str(n.lladdr)) continue;
    if (!Array.isArray(n.state) || !n.state.includes('PERMANENT')) continue;
    let m = out.get(n.dev);
    if (!m) out.set(n.dev, (m = new Map()));
    m.set(n.dst as string, (n.lladdr as string).toLowerCase());
  }
  return out;
}

// Only the VXLAN devices' own entries with a remote (`dst`): the bridge's
// learned entries and the ports' own addresses are the kernel's business.
export function parseFdb(raw: unknown): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  for (const f of list(raw)) {
    if (!ours(f.ifname) || !str(f.mac) || !str(f.dst)) continue;
    let m = out.get(f.ifname);
    if (!m) out.set(f.ifname, (m = new Map()));
    const mac = (f.mac as string).toLowerCase();
    m.set(mac, [...(m.get(mac) ?? []), f.dst as string]);
  }
  return out;
}

// GET /networks (filtered by ENGINE_NETWORK_LABEL), as the engine answers.
export function parseEngineNetworks(raw: unknown): ObservedEngineNetwork[] {
  const out: ObservedEngineNetwork[] = [];
  for (const n of list(raw)) {
    const labels = isObj(n.Labels) ? n.Labels : {};
    const networkId = str(labels[ENGINE_NETWORK_LABEL]);
    if (!networkId || !str(n.Id)) continue;
    const cfg = isObj(n.IPAM) ? list(n.IPAM.Config)[0] : undefined;
    const opts = isObj(n.Options) ? n.Options : {};
    out.push({
      id: n.Id as string,
      name: str(n.Name) ?? '',
      networkId,
      ...(str(opts['com.docker.network.bridge.name']) ? { bridge: str(opts['com.docker.network.bridge.name']) } : {}),
      ...(str(cfg?.Subnet) ? { subnet: str(cfg?.Subnet) } : {}),
      ...(str(cfg?.Gateway) ? { gateway: str(cfg?.Gateway) } : {}),
      internal: n.Internal === true,
    });
  }
  return out;
}
