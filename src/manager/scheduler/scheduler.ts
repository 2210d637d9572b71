import type { Node, Platform, Task, TaskSpec } from '../../model/types';
import { isAttachmentTask } from '../../protocol/attachments';
import { deepEqual } from '../../common/deep-equal';
import { type Constraint, ENGINE_LABEL_PREFIX, NODE_LABEL_PREFIX, matchesConstraints, parseConstraintsLenient } from '../../model/constraints';
import { IntHeap } from './heap';

// Placement (SwarmKit manager/scheduler), pure: nodes, their load and the
// tasks to place in; assignments and explained failures out.
//
// Per group of tasks (same service, same placement and reservations):
//  1. filter nodes as SwarmKit's pipeline does: ready+active, resources,
//     constraints, platform, max replicas per node;
//  2. spread preferences make a tree: one level per `spread=` descriptor,
//     branches keyed by the label value ("" when missing); each task goes down
//     the branch holding the fewest tasks of the service;
//  3. in the leaf, the node with the fewest tasks of the service, then the
//     fewest tasks overall (nodes where the service kept failing go last).
// Each decision is O(levels·log(branches) + log(nodes)) through heaps, the
// node scan is O(nodes) per group: 100k tasks on 1k nodes in tens of ms.

export interface NodeLoad {
  tasks: number;                          // active tasks on the node (all services)
  byService: ReadonlyMap<string, number>; // active tasks per service
  nanoCPUs: number;                       // reserved by the tasks the node runs
  memoryBytes: number;
}

export interface ScheduleInput {
  nodes: readonly Node[];
  load?: ReadonlyMap<string, NodeLoad>;
  tasks: readonly Task[];
  // `${nodeId} ${serviceId}`: the service failed repeatedly there of late.
  failing?: ReadonlySet<string>;
}

export interface Assignment { taskId: string; nodeId: string }
export interface SchedulingFailure { taskId: string; message: string }
export interface ScheduleResult { assignments: Assignment[]; failures: SchedulingFailure[] }

const EMPTY_LOAD: NodeLoad = { tasks: 0, byService: new Map(), nanoCPUs: 0, memoryBytes: 0 };

// Tasks the scheduler takes: not yet placed (new, or pending after an earlier
// try), and still wanted.
// Only `pending` tasks: the allocator moves a task there once its network
// addresses are set (`new` tasks are the allocator's).
// A container's network attachment (protocol/attachments.ts) is placed already and never runs.
export function needsScheduling(t: Task): boolean {
  if (t.Status.State !== 'pending' || isAttachmentTask(t)) return false;
  return t.DesiredState === 'running' || t.DesiredState === 'ready' || t.DesiredState === 'complete';
}

export function failingKey(nodeId: string, serviceId: string): string { return `${nodeId} ${serviceId}`; }

// ---------- filters and their explanations (SwarmKit filter.go) ----------
const FILTERS = ['ready', 'resources', 'constraints', 'platform', 'maxReplicas'] as const;
type FilterName = typeof FILTERS[number];
const plural = (n: number, one: string, many: string): string => (n === 1 ? one : many.replace('%d', String(n)));
const EXPLAIN: Record<FilterName, (n: number) => string> = {
  ready: (n) => plural(n, '1 node not available for new tasks', '%d nodes not available for new tasks'),
  resources: (n) => plural(n, 'insufficient resources on 1 node', 'insufficient resources on %d nodes'),
  constraints: (n) => plural(n, 'scheduling constraints not satisfied on 1 node', 'scheduling constraints not satisfied on %d nodes'),
  platform: (n) => plural(n, 'unsupported platform on 1 node', 'unsupported platform on %d nodes'),
  maxReplicas: () => 'max replicas per node limit exceed',
};

// Most frequent failure first, as SwarmKit's Pipeline.Explain.
export function explain(counts: Partial<Record<FilterName, number>>): string {
  const parts = FILTERS.map((f, i) => ({ f, i, n: counts[f] ?? 0 })).filter((x) => x.n > 0)
    .sort((a, b) => b.n - a.n || a.i - b.i).map((x) => EXPLAIN[x.f](x.n));
  return parts.length ? `no suitable node (${parts.join('; ')})` : 'no suitable node';
}

const normArch = (a: string | undefined): string => (a === 'x86_64' ? 'amd64' : a === 'aarch64' ? 'arm64' : a ?? '');

export function platformMatches(node: Node, platforms: readonly Platform[]): boolean {
  if (!platforms.length) return true;
  const np = node.Description?.Platform;
  if (!np) return false;
  const arch = normArch(np.Architecture);
  return platforms.some((p) => (!p.Architecture || normArch(p.Architecture) === arch) && (!p.OS || p.OS === np.OS));
}

// The label a spread descriptor reads; undefined for descriptors SwarmKit
// does not spread on (the level is skipped).
function spreadValue(node: Node, desc: string): string {
  const lower = desc.toLowerCase();
  if (lower.startsWith(NODE_LABEL_PREFIX)) return node.Spec?.Labels?.[desc.slice(NODE_LABEL_PREFIX.length)] ?? '';
  return node.Description?.Engine?.Labels?.[desc.slice(ENGINE_LABEL_PREFIX.length)] ?? '';
}
function isSpreadable(desc: string): boolean {
  const lower = desc.toLowerCase();
  return (lower.length > NODE_LABEL_PREFIX.length && lower.startsWith(NODE_LABEL_PREFIX))
    || (lower.length > ENGINE_LABEL_PREFIX.length && lower.startsWith(ENGINE_LABEL_PREFIX));
}

// ---------- the cluster as this call sees it ----------
class ClusterState {
  readonly n: number;
  readonly index = new Map<string, number>();
  readonly ready: Uint8Array;
  readonly cpuFree: Float64Array;
  readonly memFree: Float64Array;
  readonly total: Int32Array;
  private readonly svc = new Map<string, Int32Array>();
  private readonly staticCache = new Map<string, Uint8Array>();

  constructor(readonly nodes: readonly Node[], private readonly load: ReadonlyMap<string, NodeLoad> | undefined) {
    const n = (this.n = nodes.length);
    this.ready = new Uint8Array(n);
    this.cpuFree = new Float64Array(n);
    this.memFree = new Float64Array(n);
    this.total = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const node = nodes[i]!;
      this.index.set(node.ID, i);
      const l = load?.get(node.ID) ?? EMPTY_LOAD;
      this.ready[i] = node.Status?.State === 'ready' && (node.Spec?.Availability ?? 'active') === 'active' ? 1 : 0;
      const r = node.Description?.Resources;
      this.cpuFree[i] = (r?.NanoCPUs ?? 0) - l.nanoCPUs;
      this.memFree[i] = (r?.MemoryBytes ?? 0) - l.memoryBytes;
      this.total[i] = l.tasks;
    }
  }

  // This service's active tasks per node; updated as tasks are assigned.
  serviceCounts(serviceId: string): Int32Array {
    let a = this.svc.get(serviceId);
    if (!a) {
      a = new Int32Array(this.n);
      if (this.load) for (let i = 0; i < this.n; i++) a[i] = this.load.get(this.nodes[i]!.ID)?.byService.get(serviceId) ?? 0;
      this.svc.set(serviceId, a);
    }
    return a;
  }

  // Constraints and platform do not change within a call: evaluated once per
  // distinct placement.
  staticOk(constraints: readonly Constraint[], platforms: readonly Platform[], key: string): Uint8Array {
    let ok = this.staticCache.get(key);
    if (!ok) {
      ok = new Uint8Array(this.n);
      for (let i = 0; i < this.n; i++) {
        const node = this.nodes[i]!;
        ok[i] = matchesConstraints(node, constraints) && platformMatches(node, platforms) ? 1 : 0;
      }
      this.staticCache.set(key, ok);
    }
    return ok;
  }
}

// What one group of tasks asks of a node.
class Demand {
  readonly constraints: Constraint[];
  readonly platforms: Platform[];
  readonly cpu: number;
  readonly mem: number;
  readonly maxReplicas: number;
  readonly spreads: string[];
  readonly staticKey: string;

  constructor(spec: TaskSpec) {
    const p = spec.Placement;
    this.constraints = parseConstraintsLenient(p?.Constraints);
    this.platforms = p?.Platforms ?? [];
    const r = spec.Resources?.Reservations;
    this.cpu = r?.NanoCPUs ?? 0;
    this.mem = r?.MemoryBytes ?? 0;
    this.maxReplicas = p?.MaxReplicas ?? 0;
    this.spreads = (p?.Preferences ?? []).map((x) => x.Spread?.SpreadDescriptor ?? '').filter(isSpreadable);
    this.staticKey = `${(p?.Constraints ?? []).join('\u0000')}\u0001${this.platforms.length ? JSON.stringify(this.platforms) : ''}`;
  }

  get needsResources(): boolean { return this.cpu > 0 || this.mem > 0; }

  // The dynamic filters: they change as tasks land on the node.
  fits(c: ClusterState, svc: Int32Array, i: number): boolean {
    return c.cpuFree[i]! >= this.cpu && c.memFree[i]! >= this.mem && (this.maxReplicas <= 0 || svc[i]! < this.maxReplicas);
  }

  // The first filter node i fails, in pipeline order; undefined if it passes.
  failedFilter(c: ClusterState, svc: Int32Array, i: number): FilterName | undefined {
    if (!c.ready[i]) return 'ready';
    if (this.needsResources && (c.cpuFree[i]! < this.cpu || c.memFree[i]! < this.mem)) return 'resources';
    const node = c.nodes[i]!;
    if (this.constraints.length && !matchesConstraints(node, this.constraints)) return 'constraints';
    if (this.platforms.length && !platformMatches(node, this.platforms)) return 'platform';
    if (this.maxReplicas > 0 && svc[i]! >= this.maxReplicas) return 'maxReplicas';
    return undefined;
  }

  explainAll(c: ClusterState, svc: Int32Array): string {
    const counts: Partial<Record<FilterName, number>> = {};
    for (let i = 0; i < c.n; i++) {
      const f = this.failedFilter(c, svc, i);
      if (f) counts[f] = (counts[f] ?? 0) + 1;
    }
    return explain(counts);
  }

  assign(c: ClusterState, svc: Int32Array, i: number): void {
    svc[i]!++;
    c.total[i]!++;
    c.cpuFree[i]! -= this.cpu;
    c.memFree[i]! -= this.mem;
  }
}

// ---------- the spread tree ----------
interface Branch {
  tasks: number;               // tasks of the service under this branch
  order: number;               // tie-break among siblings (label value order)
  full: boolean;               // no node below can take another task
  kids?: Branch[];
  kidHeap?: IntHeap;           // indexes into kids, fewest tasks first
  byValue?: Map<string, Branch>;
  nodes?: number[];            // leaf: candidate node indexes
  nodeHeap?: IntHeap;
}

function buildTree(c: ClusterState, d: Demand, svc: Int32Array, nodeLess: (a: number, b: number) => boolean, candidate: (i: number) => boolean): Branch {
  const root: Branch = { tasks: 0, order: 0, full: false };
  for (let i = 0; i < c.n; i++) {
    let b = root;
    const here = svc[i]!;
    for (const desc of d.spreads) {
      b.tasks += here;
      const v = spreadValue(c.nodes[i]!, desc);
      b.byValue ??= new Map();
      let next = b.byValue.get(v);
      if (!next) b.byValue.set(v, (next = { tasks: 0, order: 0, full: false }));
      b = next;
    }
    b.tasks += here;
    if (candidate(i)) (b.nodes ??= []).push(i);
  }
  finish(root, nodeLess);
  return root;
}

function finish(b: Branch, nodeLess: (a: number, b: number) => boolean): void {
  if (!b.byValue) {
    b.nodeHeap = IntHeap.from(b.nodes ?? [], nodeLess);
    b.full = b.nodeHeap.empty;
    return;
  }
  const values = [...b.byValue.keys()].sort();
  const kids = values.map((v, k) => { const kid = b.byValue!.get(v)!; kid.order = k; return kid; });
  b.kids = kids;
  b.byValue = undefined;
  const open: number[] = [];
  kids.forEach((kid, k) => { finish(kid, nodeLess); if (!kid.full) open.push(k); });
  b.kidHeap = IntHeap.from(open, (x, y) => kids[x]!.tasks < kids[y]!.tasks || (kids[x]!.tasks === kids[y]!.tasks && x < y));
  b.full = b.kidHeap.empty;
}

// Places the tasks of one group, as many as fit; the rest fail with the explanation.
function placeGroup(c: ClusterState, d: Demand, serviceId: string, tasks: readonly Task[], failing: ReadonlySet<string> | undefined, out: ScheduleResult): void {
  const svc = c.serviceCounts(serviceId);
  const stat = c.staticOk(d.constraints, d.platforms, d.staticKey);
  let bad: Uint8Array | undefined;
  if (failing?.size) {
    for (let i = 0; i < c.n; i++) {
      if (failing.has(failingKey(c.nodes[i]!.ID, serviceId))) (bad ??= new Uint8Array(c.n))[i] = 1;
    }
  }
  const { total } = c;
  const nodeLess = bad
    ? (a: number, b: number): boolean => bad![a]! - bad![b]! < 0 || (bad![a] === bad![b] && (svc[a]! < svc[b]! || (svc[a] === svc[b] && (total[a]! < total[b]! || (total[a] === total[b] && a < b)))))
    : (a: number, b: number): boolean => svc[a]! < svc[b]! || (svc[a] === svc[b] && (total[a]! < total[b]! || (total[a] === total[b] && a < b)));
  const root = buildTree(c, d, svc, nodeLess, (i) => c.ready[i] === 1 && stat[i] === 1 && d.fits(c, svc, i));

  const path: Branch[] = [];
  let placed = 0;
  while (placed < tasks.length && !root.full) {
    path.length = 0;
    let b = root;
    while (b.kids) { path.push(b); b = b.kids[b.kidHeap!.top()]!; }
    const heap = b.nodeHeap!;
    while (!heap.empty && !d.fits(c, svc, heap.top())) heap.pop();
    if (heap.empty) {
      // This leaf is exhausted: close it, and every ancestor left without an open branch.
      b.full = true;
      for (let k = path.length - 1; k >= 0; k--) {
        const p = path[k]!;
        p.kidHeap!.pop();
        if (!p.kidHeap!.empty) break;
        p.full = true;
      }
      continue;
    }
    const i = heap.top();
    d.assign(c, svc, i);
    heap.fixTop();
    b.tasks++;
    for (let k = path.length - 1; k >= 0; k--) { path[k]!.tasks++; path[k]!.kidHeap!.fixTop(); }
    out.assignments.push({ taskId: tasks[placed]!.ID, nodeId: c.nodes[i]!.ID });
    placed++;
  }
  if (placed < tasks.length) {
    const message = d.explainAll(c, svc);
    for (let k = placed; k < tasks.length; k++) out.failures.push({ taskId: tasks[k]!.ID, message });
  }
}

// Global tasks arrive with their node chosen: only check that node.
function placePreassigned(c: ClusterState, t: Task, out: ScheduleResult): void {
  const i = c.index.get(t.NodeID!);
  if (i === undefined) return; // the node is gone; the orchestrator removes the task
  const d = new Demand(t.Spec);
  const svc = c.serviceCounts(t.ServiceID);
  const f = d.failedFilter(c, svc, i);
  if (f) { out.failures.push({ taskId: t.ID, message: explain({ [f]: 1 }) }); return; }
  d.assign(c, svc, i);
  out.assignments.push({ taskId: t.ID, nodeId: t.NodeID! });
}

function sameStrings(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === b) return true;
  const n = a?.length ?? 0;
  if (n !== (b?.length ?? 0)) return false;
  for (let i = 0; i < n; i++) if (a![i] !== b![i]) return false;
  return true;
}

// Grouping compares every task with its group's first: the common fields are
// compared directly, the rare ones structurally.
function samePlacement(a: TaskSpec, b: TaskSpec): boolean {
  if (a === b) return true;
  const pa = a.Placement;
  const pb = b.Placement;
  if (pa !== pb) {
    if (!pa || !pb) return false;
    if (!sameStrings(pa.Constraints, pb.Constraints) || (pa.MaxReplicas ?? 0) !== (pb.MaxReplicas ?? 0)) return false;
    const xa = pa.Preferences ?? [];
    const xb = pb.Preferences ?? [];
    if (xa.length !== xb.length) return false;
    for (let i = 0; i < xa.length; i++) if (xa[i]!.Spread?.SpreadDescriptor !== xb[i]!.Spread?.SpreadDescriptor) return false;
    if ((pa.Platforms?.length || pb.Platforms?.length) && !deepEqual(pa.Platforms ?? [], pb.Platforms ?? [])) return false;
  }
  const ra = a.Resources?.Reservations;
  const rb = b.Resources?.Reservations;
  return ra === rb || ((ra?.NanoCPUs ?? 0) === (rb?.NanoCPUs ?? 0) && (ra?.MemoryBytes ?? 0) === (rb?.MemoryBytes ?? 0));
}

// Why a stored task cannot be placed whatever the nodes: the parts of its
// spec the scheduler reads are not of the API's types (a spec written before
// the API checked them, or by hand). Such a task fails alone.
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNum = (v: unknown): boolean => v === undefined || (typeof v === 'number' && Number.isFinite(v));
const isOptString = (v: unknown): boolean => v === undefined || typeof v === 'string';
const listOf = (v: unknown, ok: (x: unknown) => boolean): boolean => v === undefined || (Array.isArray(v) && v.every(ok));
const isPlatform = (x: unknown): boolean => isObj(x) && isOptString(x.Architecture) && isOptString(x.OS);
const isPreference = (x: unknown): boolean => isObj(x) && (x.Spread === undefined || (isObj(x.Spread) && isOptString(x.Spread.SpreadDescriptor)));
const isString = (x: unknown): boolean => typeof x === 'string';

export function placementProblem(spec: TaskSpec | undefined): string | undefined {
  if (spec === undefined) return undefined;
  if (!isObj(spec)) return 'the task spec is not an object';
  const p: unknown = spec.Placement;
  if (p !== undefined) {
    if (!isObj(p)) return 'Placement is not an object';
    if (!listOf(p.Constraints, isString)) return 'Placement.Constraints is not a list of strings';
    if (!listOf(p.Preferences, isPreference)) return 'Placement.Preferences is not a list of preferences';
    if (!listOf(p.Platforms, isPlatform)) return 'Placement.Platforms is not a list of platforms';
    if (!isNum(p.MaxReplicas)) return 'Placement.MaxReplicas is not a number';
  }
  const r: unknown = spec.Resources;
  if (r !== undefined) {
    if (!isObj(r)) return 'Resources is not an object';
    const res = r.Reservations;
    if (res !== undefined && (!isObj(res) || !isNum(res.NanoCPUs) || !isNum(res.MemoryBytes))) return 'Resources.Reservations is not a set of numbers';
  }
  return undefined;
}

const unschedulable = (why: string): string => `invalid task spec, cannot schedule: ${why}`;

export function schedule(input: ScheduleInput): ScheduleResult {
  const out: ScheduleResult = { assignments: [], failures: [] };
  const c = new ClusterState(input.nodes, input.load);
  const groups = new Map<string, Array<{ spec: TaskSpec; tasks: Task[] }>>();
  const pre: Task[] = [];
  for (const t of input.tasks) {
    // One bad task must not stop the others: it gets its own failure.
    try {
      if (!needsScheduling(t)) continue;
      const problem = placementProblem(t.Spec);
      if (problem) { out.failures.push({ taskId: t.ID, message: unschedulable(problem) }); continue; }
      if (t.NodeID) { pre.push(t); continue; }
      let list = groups.get(t.ServiceID);
      if (!list) groups.set(t.ServiceID, (list = []));
      const spec = t.Spec ?? {};
      let g = list.find((x) => samePlacement(x.spec, spec));
      if (!g) list.push((g = { spec, tasks: [] }));
      g.tasks.push(t);
    } catch (e) {
      out.failures.push({ taskId: String(t?.ID), message: unschedulable(errorText(e)) });
    }
  }
  for (const t of pre) {
    try { placePreassigned(c, t, out); } catch (e) { out.failures.push({ taskId: t.ID, message: unschedulable(errorText(e)) }); }
  }
  for (const [serviceId, list] of groups) {
    for (const g of list) {
      const before = out.assignments.length;
      const failedBefore = out.failures.length;
      try {
        placeGroup(c, new Demand(g.spec), serviceId, g.tasks, input.failing, out);
      } catch (e) {
        // The group's tasks share one spec: those not placed before the fault fail with it.
        const done = new Set(out.assignments.slice(before).map((a) => a.taskId));
        for (let k = failedBefore; k < out.failures.length; k++) done.add(out.failures[k]!.taskId);
        const message = unschedulable(errorText(e));
        for (const t of g.tasks) if (!done.has(t.ID)) out.failures.push({ taskId: t.ID, message });
      }
    }
  }
  return out;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
