import type { EndpointVirtualIP, Network, NetworkAttachment, NetworkAttachmentConfig, Node, Service, Task, TaskStatus } from '../../model/types';
import { taskStateRank, VXLAN_ID_OPTION } from '../../model/types';
import { deepEqual } from '../../common/deep-equal';
import { type Cidr, addrOf, formatCidr, formatIp, overlaps, parseCidr, parseIp, withPrefix } from './ipv4';
import { AddressPool } from './pool';
import { NO_DEFAULT_POOL, POOL_OVERLAPS, nextSubnet } from './subnets';
import { allocatePorts, isIngressPort, portKey, publishesIngress } from './ports';

// The allocator's decisions (SwarmKit's network allocator), pure: it is told
// what the store holds (observe*) and answers what to write (allocate*),
// reserving what it hands out at once. The loop (loop.ts) writes the answers;
// a write that fails is followed by observe* of the stored object, which puts
// the reservations back in line with the store. So the state is always "what
// the store holds, plus decisions in flight", and a new leader rebuilds it by
// observing every object: no address is ever handed out twice.

export interface AllocatorSettings { defaultAddrPool: string[]; subnetSize: number }

export const VNI_FIRST = 4097;
const VNI_LAST = 2 ** 24 - 1;
export const ALLOCATED_MESSAGE = 'pending task scheduling';
export const NO_IP = 'could not find an available IP';
export const NO_VIP = 'could not find an available IP while allocating VIP';

const RUNNING = taskStateRank('running');
const COMPLETE = taskStateRank('complete');

interface NetState { network: Network; subnet: Cidr; pool: AddressPool; vni: number }
interface Claim { net: string; addr: number }

export type Decision<T> = { ok: true; next?: T } | { ok: false; error: string };

// A task holds its addresses until its container is over (SwarmKit's taskDead).
export const holdsAddresses = (t: Task): boolean => taskStateRank(t.Status.State) <= RUNNING;
// A task the allocator moves on: `new`, and wanted (as the scheduler's needsScheduling).
export const needsAllocation = (t: Task): boolean =>
  taskStateRank(t.Status.State) < taskStateRank('pending') && taskStateRank(t.DesiredState) <= COMPLETE;

export const isAllocatedNetwork = (n: Network): boolean =>
  !!n.IPAM?.Configs?.[0]?.Subnet && !!n.DriverState?.Options?.[VXLAN_ID_OPTION];

// The attachments a service's tasks ask for (TaskTemplate's, or the deprecated service-level ones).
export function networkConfigs(spec: Task['Spec'] | undefined, service: Service | undefined): NetworkAttachmentConfig[] {
  if (spec?.Networks?.length) return spec.Networks;
  return service?.Spec.TaskTemplate?.Networks?.length ? service.Spec.TaskTemplate.Networks : service?.Spec.Networks ?? [];
}

// The status of a task whose allocation is done: the scheduler's to place.
export const allocatedStatus = (ts: string): TaskStatus => ({ Timestamp: ts, State: 'pending', Message: ALLOCATED_MESSAGE });

// A task the allocator would only move to `pending`: no network to attach
// it to, no port to publish (ingress or host mode), so nothing to allocate.
// The orchestrator creates such tasks `pending` at once, which spares each a
// store write that every manager's mirror and etcd member would apply.
export function nothingToAllocate(spec: Task['Spec'] | undefined, service: Service): boolean {
  return networkConfigs(spec, service).length === 0 && !service.Spec.EndpointSpec?.Ports?.length && !service.Endpoint?.Ports?.length;
}

const owners = {
  task: (id: string) => `task:${id}`,
  vip: (id: string) => `vip:${id}`,
  lb: (id: string) => `lb:${id}`,
};

function claimsOf(attachments: NetworkAttachment[] | undefined): Claim[] {
  const out: Claim[] = [];
  for (const a of attachments ?? []) {
    const net = a?.Network?.ID;
    if (typeof net !== 'string') continue;
    for (const s of Array.isArray(a.Addresses) ? a.Addresses : []) {
      const addr = typeof s === 'string' ? parseIp(addrOf(s)) : undefined;
      if (addr !== undefined) out.push({ net, addr });
    }
  }
  return out;
}

export class AllocatorCore {
  private settings: AllocatorSettings = { defaultAddrPool: ['10.0.0.0/8'], subnetSize: 24 };
  private readonly nets = new Map<string, NetState>();
  private readonly known = new Map<string, Network>();       // every stored network, allocated or not
  private readonly vnis = new Map<number, string>();
  private lastVni = VNI_FIRST - 1;
  private readonly claims = new Map<string, Claim[]>();
  private readonly ports = new Map<string, string>();        // "tcp/8080" → service ID
  private readonly portsOf = new Map<string, string[]>();
  private readonly serviceNames = new Map<string, string>();
  private readonly serviceErrors = new Map<string, string>(); // why a service's VIPs/ports could not be had
  // Which networks each node's live tasks use (the node needs its LB address there).
  private readonly taskNode = new Map<string, { node: string; nets: string[] }>();
  private readonly nodeNets = new Map<string, Map<string, number>>();
  private readonly lastLb = new Map<string, number>();       // "node net" → address, to give it back on return

  setSettings(s: Partial<AllocatorSettings>): void {
    if (s.defaultAddrPool?.length) this.settings.defaultAddrPool = [...s.defaultAddrPool];
    if (s.subnetSize) this.settings.subnetSize = s.subnetSize;
  }

  // ---------- what the store holds ----------

  // Returns problems found (an address or subnet held twice): the loop logs them.
  observeNetwork(id: string, n: Network | undefined): string[] {
    if (!n) { this.known.delete(id); this.dropNetwork(id); return []; }
    this.known.set(id, n);
    if (!isAllocatedNetwork(n)) { this.dropNetwork(id); return []; }
    const cur = this.nets.get(id);
    if (cur) { cur.network = n; return []; }
    const cfg = n.IPAM!.Configs![0]!;
    const subnet = parseCidr(cfg.Subnet!, true);
    const vni = Number(n.DriverState!.Options![VXLAN_ID_OPTION]);
    if (!subnet) return [`network ${id}: stored subnet ${cfg.Subnet} is not an IPv4 CIDR`];
    const problems: string[] = [];
    for (const [other, st] of this.nets) if (overlaps(st.subnet, subnet)) problems.push(`network ${id}: subnet ${formatCidr(subnet)} overlaps network ${other}'s ${formatCidr(st.subnet)}`);
    const holder = this.vnis.get(vni);
    if (holder !== undefined && holder !== id) problems.push(`network ${id}: VNI ${vni} also held by network ${holder}`);
    else if (Number.isInteger(vni)) { this.vnis.set(vni, id); this.lastVni = Math.max(this.lastVni, vni); }
    const gw = parseIp(cfg.Gateway ?? '') ?? subnet.base + 1;
    this.nets.set(id, { network: n, subnet, pool: new AddressPool(subnet, gw), vni });
    return problems;
  }

  private dropNetwork(id: string): void {
    const st = this.nets.get(id);
    if (!st) return;
    this.nets.delete(id);
    if (this.vnis.get(st.vni) === id) this.vnis.delete(st.vni);
  }

  observeService(id: string, s: Service | undefined): string[] {
    if (!s) {
      this.serviceNames.delete(id);
      this.serviceErrors.delete(id);
      this.setPorts(id, []);
      return this.setClaims(owners.vip(id), []);
    }
    this.serviceNames.set(id, s.Spec.Name ?? '');
    const vips: Claim[] = [];
    for (const v of s.Endpoint?.VirtualIPs ?? []) {
      const addr = parseIp(addrOf(v.Addr ?? ''));
      if (addr !== undefined && typeof v.NetworkID === 'string') vips.push({ net: v.NetworkID, addr });
    }
    const keys = (s.Endpoint?.Ports ?? []).filter((p) => isIngressPort(p) && p.PublishedPort).map((p) => portKey(p.Protocol ?? 'tcp', p.PublishedPort!));
    return [...this.setPorts(id, keys), ...this.setClaims(owners.vip(id), vips)];
  }

  observeTask(id: string, t: Task | undefined): string[] {
    const live = !!t && holdsAddresses(t);
    const claims = live ? claimsOf(t.NetworksAttachments) : [];
    // The node's needs: networks of its live tasks.
    const before = this.taskNode.get(id);
    const after = live && t.NodeID && claims.length ? { node: t.NodeID, nets: [...new Set(claims.map((c) => c.net))] } : undefined;
    if (!deepEqual(before, after)) {
      if (before) this.countNets(before.node, before.nets, -1);
      if (after) this.countNets(after.node, after.nets, 1);
      if (after) this.taskNode.set(id, after); else this.taskNode.delete(id);
    }
    return this.setClaims(owners.task(id), claims);
  }

  observeNode(id: string, n: Node | undefined): string[] {
    return this.setClaims(owners.lb(id), n ? claimsOf(n.Attachments) : []);
  }

  private countNets(node: string, nets: string[], sign: 1 | -1): void {
    let m = this.nodeNets.get(node);
    if (!m) this.nodeNets.set(node, (m = new Map()));
    for (const net of nets) {
      const c = (m.get(net) ?? 0) + sign;
      if (c > 0) m.set(net, c); else m.delete(net);
    }
    if (!m.size) this.nodeNets.delete(node);
  }

  private setClaims(owner: string, want: Claim[]): string[] {
    for (const c of this.claims.get(owner) ?? []) {
      if (!want.some((w) => w.net === c.net && w.addr === c.addr)) this.nets.get(c.net)?.pool.release(c.addr, owner);
    }
    const kept: Claim[] = [];
    const problems: string[] = [];
    for (const w of want) {
      const pool = this.nets.get(w.net)?.pool;
      if (!pool) continue; // a network that is gone (or not allocated): nothing to hold
      if (pool.claim(w.addr, owner)) kept.push(w);
      else problems.push(`${owner}: address ${formatIp(w.addr)} on network ${w.net} is ${pool.owner(w.addr) ? `also held by ${pool.owner(w.addr)}` : 'outside its usable range'}`);
    }
    if (kept.length) this.claims.set(owner, kept); else this.claims.delete(owner);
    return problems;
  }

  private setPorts(serviceId: string, keys: string[]): string[] {
    for (const k of this.portsOf.get(serviceId) ?? []) if (this.ports.get(k) === serviceId && !keys.includes(k)) this.ports.delete(k);
    const problems: string[] = [];
    const kept: string[] = [];
    for (const k of keys) {
      const h = this.ports.get(k);
      if (h !== undefined && h !== serviceId) { problems.push(`service ${serviceId}: published port ${k} also held by service ${h}`); continue; }
      this.ports.set(k, serviceId);
      kept.push(k);
    }
    if (kept.length) this.portsOf.set(serviceId, kept); else this.portsOf.delete(serviceId);
    return problems;
  }

  // ---------- lookups ----------

  ingress(): Network | undefined {
    for (const st of this.nets.values()) if (st.network.Spec.Ingress) return st.network;
    return undefined;
  }

  private resolve(target: string): Network | undefined {
    const byId = this.known.get(target);
    if (byId) return byId;
    for (const n of this.known.values()) if (n.Spec.Name === target) return n;
    return undefined;
  }

  // Networks the node needs an LB address on: its live tasks' and ingress (every node).
  neededNetworks(nodeId: string): string[] {
    const out = [...(this.nodeNets.get(nodeId)?.keys() ?? [])].filter((id) => this.nets.has(id));
    const ing = this.ingress();
    if (ing && !out.includes(ing.ID)) out.unshift(ing.ID);
    return out;
  }

  networkError(id: string): string | undefined { return this.netErrors.get(id); }
  private readonly netErrors = new Map<string, string>();

  // The networks one of a service's tasks attaches to, in order (ingress first), or why not yet.
  private taskNetworks(spec: Task['Spec'] | undefined, service: Service | undefined, what: string): { ok: true; nets: Array<{ st: NetState; aliases?: string[] }> } | { ok: false; error: string } {
    const out: Array<{ st: NetState; aliases?: string[] }> = [];
    const ing = this.ingress();
    if (ing && service && publishesIngress(service.Spec) && (service.Spec.EndpointSpec?.Mode ?? 'vip') === 'vip') out.push({ st: this.nets.get(ing.ID)! });
    for (const c of networkConfigs(spec, service)) {
      const n = this.resolve(c.Target);
      if (!n) return { ok: false, error: `network ${c.Target} not found` };
      const st = this.nets.get(n.ID);
      if (!st) {
        const why = this.netErrors.get(n.ID);
        return { ok: false, error: `network ${n.Spec.Name ?? n.ID} attached to ${what} not allocated yet${why ? `: ${why}` : ''}` };
      }
      if (out.some((o) => o.st === st)) continue;
      out.push({ st, ...(c.Aliases?.length ? { aliases: [...c.Aliases] } : {}) });
    }
    return { ok: true, nets: out };
  }

  // ---------- decisions ----------

  // A network's subnet, gateway and VNI. `next` absent: already allocated.
  allocateNetwork(n: Network): Decision<Network> {
    if (isAllocatedNetwork(n)) return { ok: true };
    const given = n.Spec.IPAMOptions?.Configs?.[0];
    let subnet: Cidr | undefined;
    if (given?.Subnet) {
      subnet = parseCidr(given.Subnet, true);
      if (!subnet) return this.netFailed(n.ID, `invalid subnet ${given.Subnet}`);
      if ([...this.nets.values()].some((st) => overlaps(st.subnet, subnet!))) return this.netFailed(n.ID, POOL_OVERLAPS);
    } else {
      subnet = nextSubnet(this.settings.defaultAddrPool, this.settings.subnetSize, [...this.nets.values()].map((st) => st.subnet));
      if (!subnet) return this.netFailed(n.ID, NO_DEFAULT_POOL);
    }
    let gateway = subnet.base + 1;
    if (given?.Gateway) {
      const gw = parseIp(given.Gateway);
      if (gw === undefined || !(gw > subnet.base && gw < subnet.base + 2 ** (32 - subnet.bits))) return this.netFailed(n.ID, `invalid gateway ${given.Gateway} for subnet ${formatCidr(subnet)}`);
      gateway = gw;
    }
    // Next-fit, as for addresses: a VNI just released may still be on a
    // node's VXLAN device for a moment (a second device with it is refused).
    let vni: number | undefined;
    for (let i = 0, v = this.lastVni + 1; i <= VNI_LAST - VNI_FIRST; i++, v++) {
      if (v > VNI_LAST) v = VNI_FIRST;
      if (!this.vnis.has(v)) { vni = v; break; }
    }
    if (vni === undefined) return this.netFailed(n.ID, 'no VXLAN ID left');
    this.lastVni = vni;
    const next: Network = structuredClone(n);
    next.IPAM = {
      Driver: n.Spec.IPAMOptions?.Driver ?? { Name: 'default' },
      Configs: [{ ...(given ?? {}), Subnet: formatCidr(subnet), Gateway: formatIp(gateway) }],
    };
    next.DriverState = { Name: 'overlay', Options: { [VXLAN_ID_OPTION]: String(vni) } };
    this.netErrors.delete(n.ID);
    this.observeNetwork(n.ID, next);
    return { ok: true, next };
  }

  private netFailed(id: string, error: string): Decision<Network> {
    this.netErrors.set(id, error);
    return { ok: false, error };
  }

  // A service's published ports and VIPs. `next` absent: nothing to change.
  allocateService(s: Service): Decision<Service> {
    const describe = (id: string): string => `'${this.serviceNames.get(id) ?? ''}' (${id})`;
    const ports = allocatePorts(s, (k) => this.ports.get(k), describe);
    if (!ports.ok) return this.serviceFailed(s.ID, ports.error);
    const vipMode = (s.Spec.EndpointSpec?.Mode ?? 'vip') === 'vip';
    const vips: EndpointVirtualIP[] = [];
    const claims: Claim[] = [];
    if (vipMode) {
      const nets = this.taskNetworks(s.Spec.TaskTemplate, s, `service ${s.ID}`);
      if (!nets.ok) return this.serviceFailed(s.ID, nets.error);
      const had = new Map<string, number>();
      for (const v of s.Endpoint?.VirtualIPs ?? []) {
        const a = parseIp(addrOf(v.Addr ?? ''));
        if (a !== undefined) had.set(v.NetworkID, a);
      }
      const owner = owners.vip(s.ID);
      for (const { st } of nets.nets) {
        const prev = had.get(st.network.ID);
        const addr = prev !== undefined && st.pool.owner(prev) === owner ? prev : st.pool.allocate(owner);
        if (addr === undefined) {
          // Give back what this decision took; keep what the store holds.
          for (const c of claims) this.nets.get(c.net)?.pool.release(c.addr, owner);
          this.observeService(s.ID, s);
          return this.serviceFailed(s.ID, `failed to allocate VIP on network ${st.network.Spec.Name ?? st.network.ID}: ${NO_VIP}`);
        }
        claims.push({ net: st.network.ID, addr });
        vips.push({ NetworkID: st.network.ID, Addr: withPrefix(addr, st.subnet) });
      }
    }
    this.serviceErrors.delete(s.ID);
    const endpoint: Service['Endpoint'] = { ...s.Endpoint };
    delete endpoint.Ports;
    delete endpoint.VirtualIPs;
    if (ports.ports.length) endpoint.Ports = ports.ports;
    if (vips.length) endpoint.VirtualIPs = vips;
    this.setClaims(owners.vip(s.ID), claims);
    this.setPorts(s.ID, ports.ports.filter((p) => isIngressPort(p) && p.PublishedPort).map((p) => portKey(p.Protocol!, p.PublishedPort!)));
    if (deepEqual(endpoint.Ports, s.Endpoint?.Ports) && deepEqual(endpoint.VirtualIPs, s.Endpoint?.VirtualIPs)) return { ok: true };
    return { ok: true, next: { ...s, Endpoint: endpoint } };
  }

  private serviceFailed(id: string, error: string): Decision<Service> {
    this.serviceErrors.set(id, error);
    return { ok: false, error };
  }

  serviceError(id: string): string | undefined { return this.serviceErrors.get(id); }

  // A new task's addresses on its networks, then `pending`. `now`: the manager's clock (ISO).
  allocateTask(t: Task, service: Service | undefined, now: string): Decision<Task> {
    if (!needsAllocation(t)) return { ok: true };
    const svcErr = service && this.serviceErrors.get(service.ID);
    if (svcErr) return { ok: false, error: svcErr };
    const nets = this.taskNetworks(t.Spec, service, `task ${t.ID}`);
    if (!nets.ok) return nets;
    const owner = owners.task(t.ID);
    const had = new Map(claimsOf(t.NetworksAttachments).map((c) => [c.net, c.addr]));
    const claims: Claim[] = [];
    const attachments: NetworkAttachment[] = [];
    for (const { st, aliases } of nets.nets) {
      const prev = had.get(st.network.ID);
      const addr = prev !== undefined && st.pool.owner(prev) === owner ? prev : st.pool.allocate(owner);
      if (addr === undefined) {
        for (const c of claims) this.nets.get(c.net)?.pool.release(c.addr, owner);
        this.observeTask(t.ID, t);
        return { ok: false, error: `failed to allocate network IP for task ${t.ID} network ${st.network.Spec.Name ?? st.network.ID}: ${NO_IP}` };
      }
      claims.push({ net: st.network.ID, addr });
      attachments.push({ Network: structuredClone(st.network), Addresses: [withPrefix(addr, st.subnet)], ...(aliases ? { Aliases: aliases } : {}) });
    }
    this.setClaims(owner, claims);
    const next: Task = { ...t, UpdatedAt: now, Status: allocatedStatus(now) };
    if (attachments.length) next.NetworksAttachments = attachments; else delete next.NetworksAttachments;
    // The node publishes host-mode ports from the task's own copy of the endpoint (SwarmKit's Task.Endpoint).
    if (service?.Endpoint.Ports?.length) next.Endpoint = { Spec: structuredClone(service.Endpoint.Spec), Ports: structuredClone(service.Endpoint.Ports) };
    return { ok: true, next };
  }

  // A node's load-balancer address on each network it needs; those it no
  // longer needs are given back. Networks that are full are left out (and
  // reported); the loop tries again when addresses are released.
  allocateNode(n: Node): { next?: Node; errors: string[] } {
    const owner = owners.lb(n.ID);
    const want = this.neededNetworks(n.ID);
    const had = new Map(claimsOf(n.Attachments).map((c) => [c.net, c.addr]));
    const existing = new Map((n.Attachments ?? []).map((a) => [a.Network?.ID, a]));
    const claims: Claim[] = [];
    const attachments: NetworkAttachment[] = [];
    const errors: string[] = [];
    for (const id of want) {
      const st = this.nets.get(id)!;
      const prev = had.get(id);
      const key = `${n.ID} ${id}`;
      let addr = prev !== undefined && st.pool.owner(prev) === owner ? prev : undefined;
      if (addr !== undefined) { attachments.push(existing.get(id)!); claims.push({ net: id, addr }); continue; }
      addr = st.pool.allocate(owner, this.lastLb.get(key));
      if (addr === undefined) { errors.push(`failed to allocate the load-balancer address of node ${n.ID} on network ${st.network.Spec.Name ?? id}: ${NO_IP}`); continue; }
      this.lastLb.set(key, addr);
      claims.push({ net: id, addr });
      attachments.push({ Network: structuredClone(st.network), Addresses: [withPrefix(addr, st.subnet)] });
    }
    this.setClaims(owner, claims);
    if (deepEqual(attachments, n.Attachments ?? [])) return { errors };
    const next: Node = { ...n };
    if (attachments.length) next.Attachments = attachments; else delete next.Attachments;
    return { next, errors };
  }

  // Figures for logs and tests.
  usage(networkId: string): { inUse: number; capacity: number } | undefined {
    const st = this.nets.get(networkId);
    return st && { inUse: st.pool.inUse, capacity: st.pool.capacity };
  }
}

