import type { NodeNetworkView } from '../../../protocol/network-view';

// The names a node's DNS server answers, built once per view (pure) so that a
// query is a few map look-ups and a new view replaces them all in one
// assignment: a task gone from the view is gone from every answer at once.
//
// Per swarm network, each name maps to the addresses it answers there:
//   SERVICE and each network alias of it: its VIP on that network (vip mode),
//     or the addresses of its running tasks there (dnsrr);
//   tasks.SERVICE, tasks.ALIAS: the addresses of its running tasks there;
//   a task's own name ("web.1.<task id>"): its address there;
//   a container's name and aliases (a network attachment): its address there.
// Names are lower case (DNS compares them without case). The ingress network
// carries no names: it is the routing mesh's, not a place to find services
// (as in Docker).

export interface DnsRecords {
  names: Map<string, Map<string, string[]>>;     // network ID → name → addresses
  reverse: Map<string, Map<string, string>>;     // network ID → address → name (PTR)
  taskOfAddr: Map<string, string>;               // any endpoint's address → its task ID
  networksOfTask: Map<string, string[]>;         // task ID → its (non-ingress) networks
  subnets: Array<{ networkId: string; net: number; mask: number; internal: boolean }>;
  internalOnly: Set<string>;                     // tasks whose every network is --internal: nothing forwarded for them
}

export const EMPTY_RECORDS: DnsRecords = {
  names: new Map(), reverse: new Map(), taskOfAddr: new Map(), networksOfTask: new Map(), subnets: [], internalOnly: new Set(),
};

// A view item that is not what the contract says is left out alone; the
// rest of the view still answers.
const str = (x: unknown): x is string => typeof x === 'string' && x.length > 0;
const addr4 = (x: unknown): x is string => typeof x === 'string' && ipv4ToInt(x) !== undefined;
const list = <T>(x: T[] | undefined): T[] => (Array.isArray(x) ? x.filter((i) => i && typeof i === 'object') : []);

export function buildRecords(view: NodeNetworkView): DnsRecords {
  const networks = list(view.Networks).filter((n) => str(n.ID));
  const endpoints = list(view.Endpoints).filter((e) => str(e.TaskID) && str(e.TaskName) && typeof e.ServiceID === 'string' && str(e.NetworkID) && addr4(e.Addr));
  const services = list(view.Services).filter((s) => str(s.ID) && str(s.Name));
  const ingress = new Set(networks.filter((n) => n.Ingress).map((n) => n.ID));
  const internal = new Set(networks.filter((n) => n.Internal === true && !n.Ingress).map((n) => n.ID));
  const routed = new Set<string>(); // tasks with a network that is not internal (a way out)
  const names = new Map<string, Map<string, string[]>>();
  const reverse = new Map<string, Map<string, string>>();
  const taskOfAddr = new Map<string, string>();
  const networksOfTask = new Map<string, string[]>();

  const add = (networkId: string, name: string, addrs: string[]): void => {
    let m = names.get(networkId);
    if (!m) names.set(networkId, (m = new Map()));
    const key = name.toLowerCase();
    const prev = m.get(key);
    // Two owners of one name on one network (a service named like another's
    // alias): both answer, as Docker does.
    m.set(key, prev ? unique([...prev, ...addrs]) : unique(addrs));
  };
  const addReverse = (networkId: string, addr: string, name: string): void => {
    let m = reverse.get(networkId);
    if (!m) reverse.set(networkId, (m = new Map()));
    if (!m.has(addr)) m.set(addr, name);
  };

  // Running task addresses per service per network.
  const running = new Map<string, Map<string, string[]>>(); // service ID → network ID → addrs
  for (const e of endpoints) {
    // A task's ingress address still tells who asks (its default route may
    // be there), but gives it no names.
    taskOfAddr.set(e.Addr, e.TaskID);
    if (!internal.has(e.NetworkID)) routed.add(e.TaskID);
    if (ingress.has(e.NetworkID)) continue;
    const nets = networksOfTask.get(e.TaskID) ?? [];
    if (!nets.includes(e.NetworkID)) nets.push(e.NetworkID);
    networksOfTask.set(e.TaskID, nets);
    add(e.NetworkID, e.TaskName, [e.Addr]);
    addReverse(e.NetworkID, e.Addr, e.TaskName);
    // A container's aliases name its address too (several containers with one alias: all answer).
    if (!e.ServiceID && Array.isArray(e.Aliases)) for (const alias of e.Aliases.filter(str)) add(e.NetworkID, alias, [e.Addr]);
    // A container's network attachment (no service) has its name only.
    if (!e.Running || !e.ServiceID) continue;
    let bySvc = running.get(e.ServiceID);
    if (!bySvc) running.set(e.ServiceID, (bySvc = new Map()));
    const list = bySvc.get(e.NetworkID);
    if (list) list.push(e.Addr);
    else bySvc.set(e.NetworkID, [e.Addr]);
  }

  for (const s of services) {
    const tasks = running.get(s.ID) ?? new Map<string, string[]>();
    const vips = list(s.VIPs).filter((v) => str(v.NetworkID) && addr4(v.Addr));
    const aliasSets = list(s.Aliases).filter((a) => str(a.NetworkID) && Array.isArray(a.Aliases));
    // The networks the service is on: where it has a VIP, aliases or tasks.
    const nets = new Set<string>([
      ...vips.map((v) => v.NetworkID), ...aliasSets.map((a) => a.NetworkID), ...tasks.keys(),
    ]);
    for (const n of nets) {
      if (ingress.has(n)) continue;
      const aliases = aliasSets.filter((a) => a.NetworkID === n).flatMap((a) => a.Aliases).filter(str);
      const taskAddrs = tasks.get(n) ?? [];
      const vip = s.EndpointMode !== 'dnsrr' ? vips.find((v) => v.NetworkID === n)?.Addr : undefined;
      for (const name of [s.Name, ...aliases]) {
        add(n, name, s.EndpointMode === 'dnsrr' ? taskAddrs : vip ? [vip] : []);
        add(n, `tasks.${name}`, taskAddrs);
      }
      if (vip) addReverse(n, vip, s.Name);
    }
  }

  const subnets: DnsRecords['subnets'] = [];
  for (const n of networks) {
    if (n.Ingress) continue;
    const c = str(n.Subnet) ? parseCidr(n.Subnet) : undefined;
    if (c) subnets.push({ networkId: n.ID, ...c, internal: internal.has(n.ID) });
  }
  const internalOnly = new Set([...taskOfAddr.values()].filter((t) => !routed.has(t)));
  return { names, reverse, taskOfAddr, networksOfTask, subnets, internalOnly };
}

// Whether names that are not the swarm's may be forwarded upstream for
// `asker`: not for a container whose networks are all --internal (DNS would
// be its way out; moby's CVE-2024-29018), nor for an unknown address on an
// internal network's subnet.
export function mayForward(records: DnsRecords, asker: string): boolean {
  const task = records.taskOfAddr.get(asker);
  if (task) return !records.internalOnly.has(task);
  const a = ipv4ToInt(asker);
  if (a === undefined) return true;
  const nets = records.subnets.filter((s) => ((a & s.mask) >>> 0) === s.net);
  return nets.length === 0 || nets.some((s) => !s.internal);
}

// The networks whose names a query from `asker` may see: those of the task
// that owns the address, else those whose subnet holds it (a container the
// view does not list yet, or not a task at all).
export function networksOfAsker(records: DnsRecords, asker: string): string[] {
  const task = records.taskOfAddr.get(asker);
  if (task) return records.networksOfTask.get(task) ?? [];
  const a = ipv4ToInt(asker);
  if (a === undefined) return [];
  return records.subnets.filter((s) => ((a & s.mask) >>> 0) === s.net).map((s) => s.networkId);
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}

export function ipv4ToInt(addr: string): number | undefined {
  // "::ffff:10.0.1.5" is how a dual-stack socket shows an IPv4 peer.
  const m = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/i.exec(addr);
  if (!m) return undefined;
  const b = m.slice(1, 5).map(Number);
  if (b.some((x) => x > 255)) return undefined;
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

function parseCidr(cidr: string): { net: number; mask: number } | undefined {
  const [addr, bitsText] = cidr.split('/');
  const base = addr === undefined ? undefined : ipv4ToInt(addr);
  const bits = Number(bitsText);
  if (base === undefined || !Number.isInteger(bits) || bits < 0 || bits > 32) return undefined;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { net: (base & mask) >>> 0, mask };
}
