import type { Node, Service, Task, TaskSpec, TaskState } from '../../model/types';
import { TASK_STATES } from '../../model/types';
import { nowIso, parseIsoMs } from '../../common/time';
import { allocatedStatus, nothingToAllocate } from '../allocator/core';

// When the loop saw tasks reach running. A task's status keeps only its latest
// state, so how long a failed task had been running is only known to whoever
// watched it: the loop records the first `running` it sees of each task.
export interface TaskObservations {
  runningSince(taskId: string): number | undefined;
  // Observations start here (the loop's start): a task that stopped before
  // without having been seen running is not held against the update, as a
  // new SwarmKit leader's updater does not know the tasks of the previous one.
  since?: number;
}

// Shared vocabulary of the orchestrator's pure decisions: ranks, slots, the
// task factory, and the Plan that collects decisions.

// taskStateRank as a table: it is called for every task on every pass.
const RANKS = Object.fromEntries(TASK_STATES.map((s, i) => [s, i])) as Record<TaskState, number>;
export const rank = (s: TaskState): number => RANKS[s] ?? -1;

export const RANK = {
  new: rank('new'),
  pending: rank('pending'),
  assigned: rank('assigned'),
  ready: rank('ready'),
  running: rank('running'),
  complete: rank('complete'),
  shutdown: rank('shutdown'),
  remove: rank('remove'),
} as const;

export type ServiceMode = 'replicated' | 'global' | 'replicated-job' | 'global-job';

export function serviceMode(s: Service): ServiceMode {
  const m = s.Spec.Mode ?? {};
  if (m.Global) return 'global';
  if (m.ReplicatedJob) return 'replicated-job';
  if (m.GlobalJob) return 'global-job';
  return 'replicated';
}

export const isJobMode = (m: ServiceMode): boolean => m === 'replicated-job' || m === 'global-job';
export const isGlobalMode = (m: ServiceMode): boolean => m === 'global' || m === 'global-job';

// What a task of this mode is ultimately asked to reach: jobs run to completion.
export const targetState = (m: ServiceMode): TaskState => (isJobMode(m) ? 'complete' : 'running');

// The orchestrator still wants this task to run (or to complete, for jobs).
export function isRunnable(t: Task, mode: ServiceMode): boolean {
  return rank(t.DesiredState) <= rank(targetState(mode));
}

// The container is gone or never will be (observed state past running).
export const isTerminal = (t: Task): boolean => rank(t.Status.State) > RANK.running;

export const createdMs = (t: Task): number => parseIsoMs(t.CreatedAt);

// One slot's history: replicated tasks share a slot number, global tasks a node.
export interface Slot {
  key: number | string; // the slot number, or the node ID for global services
  slot: number;       // 0 for global services
  nodeId?: string;    // for global services
  tasks: Task[];      // oldest first (CreatedAt, then ID)
}

export function byCreation(a: Task, b: Task): number {
  const d = createdMs(a) - createdMs(b);
  return d !== 0 ? d : a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : 0;
}

// The order of byCreation, each time parsed once rather than per comparison
// (every slot's history is sorted on every pass).
function sortByCreation(tasks: readonly Task[]): Task[] {
  const keyed = tasks.map((t) => ({ t, at: createdMs(t) }));
  keyed.sort((a, b) => a.at - b.at || (a.t.ID < b.t.ID ? -1 : a.t.ID > b.t.ID ? 1 : 0));
  return keyed.map((k) => k.t);
}

export function groupSlots(tasks: readonly Task[], global: boolean): Map<number | string, Slot> {
  return drainSteps(groupSlotsSteps(tasks, global));
}

// The same, pausing every STEP_SLOTS tasks (grouped or sorted): grouping a
// 150,000-task service held the leader's event loop 0.3-0.46 s in one go
// (bench/scale.ts, the leader's profile).
export function* groupSlotsSteps(tasks: readonly Task[], global: boolean): Generator<void, Map<number | string, Slot>, void> {
  const slots = new Map<number | string, Slot>();
  let n = 0;
  for (const t of tasks) {
    const key = global ? t.NodeID ?? '' : t.Slot ?? 0;
    let s = slots.get(key);
    if (!s) slots.set(key, (s = global ? { key, slot: 0, nodeId: key as string, tasks: [] } : { key, slot: key as number, tasks: [] }));
    s.tasks.push(t);
    if (++n % STEP_SLOTS === 0) yield;
  }
  n = 0;
  for (const s of slots.values()) {
    if (s.tasks.length > 1) {
      s.tasks = sortByCreation(s.tasks);
      n += s.tasks.length;
      if (n >= STEP_SLOTS) { n = 0; yield; }
    }
  }
  return slots;
}

export function newestTask(slot: Slot): Task | undefined {
  return slot.tasks[slot.tasks.length - 1];
}

export function nodeIsDown(n: Node | undefined): boolean {
  return !n || n.Status?.State === 'down';
}

// SwarmKit's orchestrator.InvalidNode: tasks there must be replaced.
export function nodeIsInvalid(n: Node | undefined): boolean {
  return !n || n.Status?.State === 'down' || n.Spec?.Availability === 'drain';
}

export interface NewTaskOptions {
  slot: number;
  nodeId?: string;
  desired: TaskState;
}

// A fresh task for `service` (orchestrator.NewTask): Spec is a deep copy of the
// template (or `spec`, one such copy shared by the tasks of a pass: stored
// specs are shared and never changed), Labels stay empty as Docker keeps them,
// Slot is omitted when 0 as Docker's JSON omits it. A task with nothing for
// the allocator to do starts `pending`, as the allocator would leave it.
export function makeTask(service: Service, id: string, now: number, o: NewTaskOptions, spec?: TaskSpec): Task {
  const ts = nowIso(now);
  const taskSpec = spec ?? structuredClone(service.Spec.TaskTemplate ?? {});
  const t: Task = {
    ID: id,
    Version: { Index: 0 },
    CreatedAt: ts,
    UpdatedAt: ts,
    Labels: {},
    Spec: taskSpec,
    ServiceID: service.ID,
    Status: nothingToAllocate(taskSpec, service)
      ? allocatedStatus(ts)
      : { Timestamp: ts, State: 'new', Message: 'created' },
    DesiredState: o.desired,
  };
  if (o.slot) t.Slot = o.slot;
  if (o.nodeId) t.NodeID = o.nodeId;
  const m = serviceMode(service);
  if (isJobMode(m)) t.JobIteration = { Index: service.JobStatus?.JobIteration?.Index ?? 0 };
  return t;
}

// The decisions of one reconcile pass. Pure bookkeeping: nothing here does I/O.
// Changed tasks are copies carrying the Version that was read, so the writer's
// compare-and-swap refuses them if someone else changed the task meanwhile.
export class Plan {
  readonly creates: Task[] = [];
  readonly updates = new Map<string, Task>();
  readonly deletes = new Map<string, Task>();
  service?: Service;          // the service with a changed UpdateStatus
  wakeAt?: number;            // run this service again at this time (ms)
  private readonly createdIds = new Set<string>();
  private readonly specs = new Map<Service, TaskSpec>(); // one copy of each template for the pass's new tasks

  constructor(readonly now: number, private readonly newId: () => string) {}

  get empty(): boolean {
    return !this.creates.length && !this.updates.size && !this.deletes.size && !this.service;
  }

  // Returns the changed copy; callers replace the task in their slot with it.
  setDesired(t: Task, desired: TaskState): Task {
    if (t.DesiredState === desired) return t;
    const copy: Task = { ...t, DesiredState: desired, UpdatedAt: nowIso(this.now) };
    if (this.createdIds.has(t.ID)) this.creates[this.creates.findIndex((c) => c.ID === t.ID)] = copy;
    else this.updates.set(t.ID, copy);
    return copy;
  }

  create(service: Service, o: NewTaskOptions): Task {
    let spec = this.specs.get(service);
    if (!spec) this.specs.set(service, (spec = structuredClone(service.Spec.TaskTemplate ?? {})));
    const t = makeTask(service, this.newId(), this.now, o, spec);
    this.creates.push(t);
    this.createdIds.add(t.ID);
    return t;
  }

  delete(t: Task): void {
    this.updates.delete(t.ID);
    this.deletes.set(t.ID, t);
  }

  wake(at: number): void {
    if (at <= this.now) at = this.now + 1;
    if (this.wakeAt === undefined || at < this.wakeAt) this.wakeAt = at;
  }
}

// Replace `from` by `to` in the slot (after Plan.setDesired).
export function replaceIn(slot: Slot, from: Task, to: Task): void {
  if (from === to) return;
  const i = slot.tasks.indexOf(from);
  if (i >= 0) slot.tasks[i] = to;
}

// A reconcile that can pause: it yields (nothing) between steps of bounded
// work and returns its plan. The loop resumes it after letting the event loop
// run; tests and small callers drain it at once.
export type ReconcileSteps = Generator<void, Plan, void>;
// Slots handled between two pauses: a few milliseconds of work.
export const STEP_SLOTS = 2000;

export function drainSteps<T>(steps: Generator<void, T, void>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

// What one service's reconcile sees: the service, all its tasks, all nodes.
export interface ReconcileInput {
  service: Service;
  tasks: readonly Task[];
  nodes: ReadonlyMap<string, Node>;
  now: number;
  newId: () => string;
  retention?: number;   // the cluster's TaskHistoryRetentionLimit (default 5)
  observed?: TaskObservations; // what the loop saw of tasks (rolling updates' Monitor)
  // At most this many empty slots filled by one reconcile; the plan then
  // wakes at once for the rest (a bounded pass keeps the leader responsive).
  maxCreates?: number;
}
