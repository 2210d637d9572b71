import type { Network, Node, Service, Task } from '../../model/types';
import { deepEqual } from '../../common/deep-equal';
import type { StoreEvent } from '../../store/objects';
import type { Store } from '../../store/store';
import { holdsAddresses, networkConfigs } from '../allocator/core';
import { type NetworkSnapshot, keepsClientIp, wantedRunning } from './network-view';

// The store seen by network (the dispatcher's NetworkSnapshot while it
// leads): which live tasks, services and nodes' LB addresses are on each
// network, kept up to date from store events. `apply` also says what an event
// batch touched (networks, and nodes whose own needs changed), so only the
// views of nodes on those networks are computed again: a task's move from
// `preparing` to `starting` touches nothing.

// `lbNetworks`: networks where only the set of nodes' LB addresses changed.
// Those matter only to nodes with endpoints there (network-view.ts), so a
// node joining (its LB address on ingress) does not recompute every view.
export interface Touched { all: boolean; networks: Set<string>; lbNetworks: Set<string>; nodes: Set<string> }

type Index = Map<string, Set<string>>;

function add(ix: Index, key: string, id: string): void {
  let s = ix.get(key);
  if (!s) ix.set(key, (s = new Set()));
  s.add(id);
}
function remove(ix: Index, key: string, id: string): void {
  const s = ix.get(key);
  if (!s) return;
  s.delete(id);
  if (!s.size) ix.delete(key);
}

const taskNets = (t: Task | undefined): string[] =>
  t && holdsAddresses(t) ? [...new Set((t.NetworksAttachments ?? []).map((a) => a.Network?.ID).filter((x): x is string => !!x))] : [];
const onNoNetwork = (t: Task | undefined): boolean => !t?.NetworksAttachments?.length;
const nodeNets = (n: Node | undefined): string[] => (n?.Attachments ?? []).map((a) => a.Network?.ID).filter((x): x is string => !!x);

// What of a task the views read.
// What of a task the views show; a container's attachment also shows its
// name and aliases (NameAttachment sets them once the engine made it).
const taskFace = (t: Task | undefined) => t && {
  n: t.NodeID, w: wantedRunning(t), r: t.Status.State === 'running', a: t.NetworksAttachments,
  ...(t.ServiceID ? {} : { c: t.Spec.NetworkAttachmentSpec, s: t.Spec.Networks }),
};
const serviceFace = (s: Service | undefined) => s && {
  n: s.Spec.Name, m: s.Spec.EndpointSpec?.Mode, e: s.Endpoint?.VirtualIPs, p: s.Endpoint?.Ports, k: keepsClientIp(s), c: networkConfigs(s.Spec.TaskTemplate, s),
};

export class NetworkIndex implements NetworkSnapshot {
  private readonly tasks: Index = new Map();
  private readonly services: Index = new Map();
  private readonly nodes: Index = new Map();
  private readonly serviceNetsOf = new Map<string, string[]>();
  private ingressId?: string;

  constructor(private readonly store: Store) {
    this.findIngress();
    for (const t of store.list('tasks')) for (const id of taskNets(t)) add(this.tasks, id, t.ID);
    for (const s of store.list('services')) this.indexService(s.ID, s);
    for (const n of store.list('nodes')) for (const id of nodeNets(n)) add(this.nodes, id, n.ID);
  }

  // ---------- NetworkSnapshot ----------
  node(id: string): Node | undefined { return this.store.get('nodes', id); }
  network(id: string): Network | undefined { return this.store.get('networks', id); }
  service(id: string): Service | undefined { return this.store.get('services', id); }
  ingress(): Network | undefined { return this.ingressId ? this.store.get('networks', this.ingressId) : undefined; }
  tasksOfNode(nodeId: string): Iterable<Task> { return this.store.tasksOfNode(nodeId); }
  *tasksOnNetwork(id: string): Iterable<Task> { for (const t of this.tasks.get(id) ?? []) { const x = this.store.get('tasks', t); if (x) yield x; } }
  *servicesOnNetwork(id: string): Iterable<Service> { for (const s of this.services.get(id) ?? []) { const x = this.store.get('services', s); if (x) yield x; } }
  *nodesOnNetwork(id: string): Iterable<Node> { for (const n of this.nodes.get(id) ?? []) { const x = this.store.get('nodes', n); if (x) yield x; } }

  // ---------- upkeep ----------
  private findIngress(): void {
    this.ingressId = this.store.list('networks').find((n) => n.Spec.Ingress)?.ID;
  }

  private serviceNets(s: Service): string[] {
    const out = new Set((s.Endpoint?.VirtualIPs ?? []).map((v) => v.NetworkID));
    for (const c of networkConfigs(s.Spec.TaskTemplate, s)) {
      if (this.store.get('networks', c.Target)) out.add(c.Target);
      else { const n = this.store.list('networks').find((x) => x.Spec.Name === c.Target); if (n) out.add(n.ID); }
    }
    return [...out];
  }

  private indexService(id: string, s: Service | undefined): string[] {
    const before = this.serviceNetsOf.get(id) ?? [];
    for (const n of before) remove(this.services, n, id);
    const after = s ? this.serviceNets(s) : [];
    for (const n of after) add(this.services, n, id);
    if (after.length) this.serviceNetsOf.set(id, after); else this.serviceNetsOf.delete(id);
    return [...before, ...after];
  }

  apply(events: StoreEvent[]): Touched {
    const out: Touched = { all: false, networks: new Set(), lbNetworks: new Set(), nodes: new Set() };
    const touch = (ids: Iterable<string>): void => { for (const id of ids) out.networks.add(id); };
    for (const e of events) {
      switch (e.kind) {
        case 'tasks': {
          const t = e.object as Task | undefined;
          const p = e.previous as Task | undefined;
          if (onNoNetwork(p) && onNoNetwork(t)) break; // in no view (most tasks, on every status report)
          if (deepEqual(taskFace(p), taskFace(t))) break;
          const before = taskNets(p);
          const after = taskNets(t);
          if (!before.length && !after.length) break; // on no network: in no view
          for (const n of before) remove(this.tasks, n, e.id);
          for (const n of after) add(this.tasks, n, e.id);
          touch(before);
          touch(after);
          if (p?.NodeID) out.nodes.add(p.NodeID);
          if (t?.NodeID) out.nodes.add(t.NodeID);
          break;
        }
        case 'services': {
          const s = e.object as Service | undefined;
          if (deepEqual(serviceFace(e.previous as Service | undefined), serviceFace(s))) break;
          touch(this.indexService(e.id, s));
          break;
        }
        case 'nodes': {
          const n = e.object as Node | undefined;
          const p = e.previous as Node | undefined;
          if (n && p && n.Status?.Addr === p.Status?.Addr && deepEqual(n.Attachments, p.Attachments)) break;
          for (const id of nodeNets(p)) remove(this.nodes, id, e.id);
          for (const id of nodeNets(n)) add(this.nodes, id, e.id);
          for (const id of [...nodeNets(p), ...nodeNets(n)]) out.lbNetworks.add(id);
          out.nodes.add(e.id);
          // Its address is every one of its endpoints' VXLAN remote.
          if (n?.Status?.Addr !== p?.Status?.Addr) for (const t of this.store.tasksOfNode(e.id)) touch(taskNets(t));
          break;
        }
        case 'networks': {
          const n = (e.object ?? e.previous) as Network | undefined;
          out.networks.add(e.id);
          if (n?.Spec?.Ingress || this.ingressId === e.id) out.all = true;
          this.findIngress();
          // Services may name it (by name): index them again (networks change rarely).
          for (const s of this.store.list('services')) this.indexService(s.ID, s);
          break;
        }
        default:
          break;
      }
    }
    return out;
  }
}
