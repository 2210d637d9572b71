import type { Node, Service, ServiceSpec, Task, TaskSpec, TaskState, UpdateConfig, UpdateStatus } from '../../../src/model/types';
import { nowIso } from '../../../src/common/time';
import { reconcileDeletedService, reconcileService } from '../../../src/manager/orchestrator/reconcile';
import type { Plan } from '../../../src/manager/orchestrator/task';

// A small in-memory world for the pure orchestrator: services, tasks and nodes,
// a clock, and helpers that play the scheduler and the agent, so scenarios read
// like "create, fail, wait 5 s, look".

export const T0 = Date.parse('2026-01-01T00:00:00Z');
export const SEC = 1000;
export const NS = 1_000_000_000;

export interface NodeOpts {
  state?: Node['Status']['State'];
  availability?: 'active' | 'pause' | 'drain';
  labels?: Record<string, string>;
  engineLabels?: Record<string, string>;
  role?: 'manager' | 'worker';
  hostname?: string;
  os?: string;
  arch?: string;
  cpus?: number;
  memory?: number;
  addr?: string;
}

export function makeNode(id: string, o: NodeOpts = {}): Node {
  return {
    ID: id, Version: { Index: 1 }, CreatedAt: nowIso(T0), UpdatedAt: nowIso(T0),
    Spec: { Labels: o.labels ?? {}, Role: o.role ?? 'worker', Availability: o.availability ?? 'active' },
    Description: {
      Hostname: o.hostname ?? `host-${id}`,
      Platform: { Architecture: o.arch ?? 'x86_64', OS: o.os ?? 'linux' },
      Resources: { NanoCPUs: (o.cpus ?? 4) * NS, MemoryBytes: o.memory ?? 8 * 1024 ** 3 },
      Engine: { EngineVersion: '20.10.24', Labels: o.engineLabels, Plugins: [] },
      TLSInfo: {},
    },
    Status: { State: o.state ?? 'ready', Addr: o.addr ?? '10.0.0.1' },
  };
}

export interface ServiceOpts {
  replicas?: number;
  global?: boolean;
  replicatedJob?: { MaxConcurrent?: number; TotalCompletions?: number };
  globalJob?: boolean;
  image?: string;
  template?: TaskSpec;
  update?: UpdateConfig;
  updateStatus?: UpdateStatus;
  iteration?: number;
}

export function makeService(id: string, o: ServiceOpts = {}): Service {
  const mode: ServiceSpec['Mode'] = o.global ? { Global: {} }
    : o.replicatedJob ? { ReplicatedJob: o.replicatedJob }
    : o.globalJob ? { GlobalJob: {} }
    : { Replicated: { Replicas: o.replicas ?? 1 } };
  const s: Service = {
    ID: id, Version: { Index: 1 }, CreatedAt: nowIso(T0), UpdatedAt: nowIso(T0),
    Spec: {
      Name: `svc-${id}`, Labels: {}, Mode: mode,
      TaskTemplate: o.template ?? { ContainerSpec: { Image: o.image ?? 'nginx:1' }, Runtime: 'container', ForceUpdate: 0 },
      UpdateConfig: o.update,
    },
    Endpoint: { Spec: {} },
  };
  if (o.updateStatus) s.UpdateStatus = o.updateStatus;
  if (o.replicatedJob || o.globalJob) s.JobStatus = { JobIteration: { Index: o.iteration ?? 0 } };
  return s;
}

export class World {
  now = T0;
  retention = 5;
  readonly services = new Map<string, Service>();
  readonly tasks = new Map<string, Task>();
  readonly nodes = new Map<string, Node>();
  private seq = 0;
  private version = 100;
  // Zero-padded so that IDs sort in creation order, as ties on CreatedAt are broken by ID.
  readonly newId = (): string => `t${String(++this.seq).padStart(5, '0')}`;

  addNode(id: string, o: NodeOpts = {}): Node { const n = makeNode(id, o); this.nodes.set(id, n); return n; }
  addService(id: string, o: ServiceOpts = {}): Service { const s = makeService(id, o); this.services.set(id, s); return s; }

  tick(ms: number): void { this.now += ms; }

  plan(serviceId: string): Plan {
    const service = this.services.get(serviceId);
    const tasks = [...this.tasks.values()].filter((t) => t.ServiceID === serviceId);
    return service
      ? reconcileService({ service, tasks, nodes: this.nodes, now: this.now, newId: this.newId, retention: this.retention })
      : reconcileDeletedService(tasks, this.nodes, this.now);
  }

  apply(plan: Plan): Plan {
    for (const t of plan.creates) this.tasks.set(t.ID, { ...t, Version: { Index: ++this.version } });
    for (const t of plan.updates.values()) this.tasks.set(t.ID, { ...t, Version: { Index: ++this.version } });
    for (const id of plan.deletes.keys()) this.tasks.delete(id);
    if (plan.service) this.services.set(plan.service.ID, { ...plan.service, Version: { Index: ++this.version } });
    return plan;
  }

  // One reconcile, applied.
  run(serviceId: string): Plan { return this.apply(this.plan(serviceId)); }

  // Reconcile until nothing changes (at most 10 rounds), like the loop reacting to its own writes.
  settle(serviceId: string): void {
    for (let i = 0; i < 10; i++) if (this.run(serviceId).empty) return;
    throw new Error('orchestrator did not reach a fixpoint');
  }

  // ---- playing the scheduler and the agent ----
  setState(id: string, state: TaskState, extra: { exitCode?: number; node?: string } = {}): Task {
    const t = this.tasks.get(id);
    if (!t) throw new Error(`no task ${id}`);
    const next: Task = {
      ...t,
      NodeID: extra.node ?? t.NodeID,
      Status: { Timestamp: nowIso(this.now), State: state, Message: state, ...(extra.exitCode !== undefined ? { ContainerStatus: { ExitCode: extra.exitCode } } : {}) },
      Version: { Index: ++this.version },
    };
    this.tasks.set(id, next);
    return next;
  }

  // Assign every unassigned task of the service (round-robin on `nodes`) and run it.
  runAll(serviceId: string, nodes: string[] = [...this.nodes.keys()]): void {
    let i = 0;
    for (const t of this.of(serviceId)) {
      const assigned = t.NodeID ?? nodes[i++ % nodes.length];
      if (t.Status.State === 'new' || t.Status.State === 'pending') this.setState(t.ID, 'assigned', { node: assigned });
      const cur = this.tasks.get(t.ID)!;
      if ((cur.DesiredState === 'running' || cur.DesiredState === 'complete') && ['assigned', 'accepted', 'preparing', 'ready', 'starting'].includes(cur.Status.State)) this.setState(t.ID, 'running');
      if (cur.DesiredState === 'shutdown' || cur.DesiredState === 'remove') {
        if (['assigned', 'accepted', 'preparing', 'ready', 'starting', 'running'].includes(cur.Status.State)) this.setState(t.ID, 'shutdown');
      }
    }
  }

  of(serviceId: string): Task[] {
    return [...this.tasks.values()].filter((t) => t.ServiceID === serviceId).sort((a, b) => (a.CreatedAt < b.CreatedAt ? -1 : a.CreatedAt > b.CreatedAt ? 1 : Number(a.ID.slice(1)) - Number(b.ID.slice(1))));
  }

  live(serviceId: string): Task[] {
    return this.of(serviceId).filter((t) => t.DesiredState === 'running' || t.DesiredState === 'ready' || t.DesiredState === 'complete');
  }

  inSlot(serviceId: string, slot: number): Task[] { return this.of(serviceId).filter((t) => (t.Slot ?? 0) === slot); }
  onNode(serviceId: string, node: string): Task[] { return this.of(serviceId).filter((t) => t.NodeID === node); }
}

export const slots = (ts: Task[]): number[] => ts.map((t) => t.Slot ?? 0).sort((a, b) => a - b);
export const states = (ts: Task[]): string[] => ts.map((t) => `${t.Slot ?? t.NodeID}:${t.Status.State}/${t.DesiredState}`);
