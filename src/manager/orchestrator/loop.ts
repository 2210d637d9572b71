import type { Node, Service, Task } from '../../model/types';
import { type LeaderComponentHandle, type LeaderComponentOptions, DEFAULT_SLICE_MS, Slicer } from '../loop/component';
import { newId as defaultNewId } from '../../common/ids';
import { ShoalError } from '../../common/errors';
import type { StoreEvent } from '../../store/objects';
import { BATCHES_IN_FLIGHT, eachBatch, type StoreTxn } from '../../store/store';
import { eachConcurrently } from '../../common/concurrent';
import { parseIsoMs } from '../../common/time';
import { deepEqual } from '../../common/deep-equal';
import { clusterRetention } from './reaper';
import { reconcileDeletedService, reconcileServiceSteps } from './reconcile';
import { taskChangeMatters } from './relevance';
import { dispatchOrder } from '../loop/write-order';
import { type Plan, serviceMode, isGlobalMode } from './task';
import type { TaskObservations } from './task';

// The orchestrator's I/O: watches the store, runs the pure reconcile of every
// service touched by an event that can change its decisions (relevance.ts;
// coalesced: a batch of events, or events that arrive while a pass is writing,
// make one reconcile per service; a long pass is followed by a pause as long,
// PACE_FROM_MS), writes the
// decisions in transactions etcd accepts (eachBatch: by operations and
// bytes), and re-runs a service at the time its decisions asked (restart
// delays, update delays).

export type OrchestratorHandle = LeaderComponentHandle;
export interface OrchestratorOptions extends LeaderComponentOptions {
  newId?: () => string;
  // The scheduler's placement of new tasks (scheduler/loop.ts placeNew): a
  // task it places is created `assigned`, one write instead of two. Without
  // it (or for what it leaves out) tasks are created as reconcile made them.
  placer?: Placer;
}

// What the orchestrator asks of the scheduler; the two meet nowhere else.
export interface Placer {
  placeNew(tasks: readonly Task[]): ReadonlyMap<string, Task>;
  release(ids: Iterable<string>): void;
}

type CreateOp = { kind: 'create'; serviceId: string; task: Task };
type Op =
  | CreateOp
  | { kind: 'update'; serviceId: string; task: Task; read: Task }
  | { kind: 'delete'; serviceId: string; task: Task }
  | { kind: 'service'; serviceId: string; service: Service };

const RETRY_MS = 1000;
// A pass whose decisions took this long (a service of tens of thousands of
// tasks) is followed by a pause as long before the next one: events keep
// coming while it writes, and back-to-back passes would leave the leader's
// event loop no time for heartbeats and status reports. Events meanwhile
// gather into that next pass; small services never wait.
const PACE_FROM_MS = 20;
// New tasks one service gets per pass: `--replicas 150000` is made in six
// passes of at most a few hundred ms each, not in one hold of the event loop
// that, on a loaded host, outlasted the leader's lease (3.5 s; bench/scale.ts).
const MAX_CREATES_PER_PASS = 25_000;
// setTimeout's limit; a later wake-up just re-arms.
const MAX_TIMER_MS = 2 ** 31 - 1;

export function startOrchestrator(opts: OrchestratorOptions): OrchestratorHandle {
  const { store, log } = opts;
  const now = opts.now ?? Date.now;
  const newId = opts.newId ?? defaultNewId;
  // A reconcile of a big service pauses (ReconcileSteps) once it has held the event loop this long.
  const sliceMs = opts.sliceMs ?? DEFAULT_SLICE_MS;

  const dirty = new Set<string>();
  const wakeAt = new Map<string, number>();
  let wakeTimer: NodeJS.Timeout | undefined;
  let wakeTimerAt = Infinity;
  let kick: NodeJS.Timeout | undefined;
  let running = false;
  let stopped = false;
  let idleWaiters: Array<() => void> = [];
  let lastNow = 0;
  let paceUntil = 0; // no pass before this (performance.now()): see PACE_FROM_MS
  // When each task was first seen running (the rolling updater's Monitor
  // needs it after the task has failed, when its status no longer says).
  const runningSince = new Map<string, number>();
  const observed: TaskObservations = { runningSince: (id) => runningSince.get(id), since: now() };
  const observeTask = (t: Task): void => {
    if (t.Status?.State === 'running' && !runningSince.has(t.ID)) runningSince.set(t.ID, parseIsoMs(t.Status.Timestamp) || now());
  };

  const nodeOf = (id: string): Node | undefined => store.get('nodes', id);
  const markAllServices = (): void => {
    for (const s of store.list('services')) dirty.add(s.ID);
  };

  const onEvents = (events: StoreEvent[]): void => {
    for (const e of events) {
      switch (e.kind) {
        case 'services':
          dirty.add(e.id);
          break;
        case 'tasks': {
          const t = (e.object ?? e.previous) as Task | undefined;
          if (t?.ServiceID && taskChangeMatters(e.previous as Task | undefined, e.object as Task | undefined, store.get('services', t.ServiceID), nodeOf)) dirty.add(t.ServiceID);
          if (e.object) observeTask(e.object as Task);
          else runningSince.delete(e.id);
          break;
        }
        case 'nodes':
          if (nodeChanged(e.previous as Node | undefined, e.object as Node | undefined)) {
            for (const t of store.tasksOfNode(e.id)) if (t.ServiceID) dirty.add(t.ServiceID);
            for (const s of store.list('services')) if (isGlobalMode(serviceMode(s))) dirty.add(s.ID);
          }
          break;
        case 'cluster': {
          const before = clusterRetention(e.previous as never);
          const after = clusterRetention(e.object as never);
          if (before !== after) markAllServices();
          break;
        }
        default:
          break;
      }
    }
    schedulePass();
  };

  function schedulePass(delay = 0): void {
    if (stopped || running || kick || !dirty.size) return;
    kick = setTimeout(() => void runPass(), Math.max(delay, paceUntil - performance.now()));
  }

  function armWakeTimer(): void {
    let next = Infinity;
    for (const at of wakeAt.values()) if (at < next) next = at;
    if (next === wakeTimerAt) return;
    if (wakeTimer) clearTimeout(wakeTimer);
    wakeTimer = undefined;
    wakeTimerAt = next;
    if (next === Infinity || stopped) return;
    wakeTimer = setTimeout(() => {
      wakeTimer = undefined;
      wakeTimerAt = Infinity;
      const t = now();
      for (const [id, at] of wakeAt) if (at <= t) { wakeAt.delete(id); dirty.add(id); }
      armWakeTimer();
      schedulePass();
    }, Math.min(MAX_TIMER_MS, Math.max(0, next - now())));
    wakeTimer.unref?.();
  }

  async function runPass(): Promise<void> {
    kick = undefined;
    if (stopped) return;
    running = true;
    let retryLater = false;
    try {
      const ids = [...dirty];
      dirty.clear();
      const { ops, busyMs } = await decide(ids);
      paceUntil = busyMs >= PACE_FROM_MS ? performance.now() + busyMs : 0;
      armWakeTimer();
      if (ops.length && !stopped) {
        const redo = await write(ops);
        for (const id of redo) dirty.add(id);
      }
    } catch (err) {
      // The store is unreachable (or a bug): try everything again shortly.
      log.warn({ err }, 'orchestrator pass failed; retrying');
      markAllServices();
      retryLater = true;
    } finally {
      running = false;
    }
    if (dirty.size && !stopped) schedulePass(retryLater ? RETRY_MS : 0);
    else notifyIdle();
  }

  // The decisions for `ids`, in slices of at most sliceMs (busyMs: their sum).
  async function decide(ids: string[]): Promise<{ ops: Op[]; busyMs: number }> {
    const slicer = new Slicer(sliceMs);
    const nodes = new Map<string, Node>(store.list('nodes').map((n) => [n.ID, n]));
    const retention = clusterRetention(store.first('cluster'));
    // Strictly increasing across passes: tasks of one slot are ordered by
    // CreatedAt (ms), and a replacement must sort after what it replaces.
    const t = (lastNow = Math.max(now(), lastNow + 1));
    const ops: Op[] = [];
    for (const id of ids) {
      const service = store.get('services', id);
      const tasks = store.tasksOfService(id);
      if (!service && !tasks.length) { wakeAt.delete(id); continue; }
      let plan: Plan;
      try {
        if (!service) plan = reconcileDeletedService(tasks, nodes, t);
        else {
          const steps = reconcileServiceSteps({ service, tasks, nodes, now: t, newId, retention, observed, maxCreates: MAX_CREATES_PER_PASS });
          for (let r = steps.next(); ; r = steps.next()) {
            if (r.done) { plan = r.value; break; }
            if (!slicer.due()) continue;
            await slicer.pause();
            // Deposed meanwhile: nothing of this pass may be written.
            if (stopped) return { ops: [], busyMs: slicer.busyMs() };
          }
        }
      } catch (err) {
        log.error({ err, service: id }, 'reconcile failed');
        continue;
      }
      if (plan.wakeAt !== undefined) wakeAt.set(id, plan.wakeAt);
      else wakeAt.delete(id);
      // Updates first so a restart's "old task down" and "new task" share a transaction where they can.
      for (const u of plan.updates.values()) ops.push({ kind: 'update', serviceId: id, task: u, read: store.get('tasks', u.ID) ?? u });
      for (const c of plan.creates) ops.push({ kind: 'create', serviceId: id, task: c });
      for (const d of plan.deletes.values()) ops.push({ kind: 'delete', serviceId: id, task: d });
      if (plan.service) ops.push({ kind: 'service', serviceId: id, service: plan.service });
    }
    const busyMs = slicer.busyMs();
    if (ops.length) log.debug({ services: ids.length, ops: ops.length, ms: Math.round(busyMs) }, 'orchestrator decisions');
    return { ops, busyMs };
  }

  // Writes in chunks; a chunk refused because an object changed under it is
  // redone op by op (see `fallback`). Returns the services to reconcile again.
  async function write(ops: Op[]): Promise<Set<string>> {
    const placed = placeCreates(ops);
    try {
      return await writeOps(ops);
    } finally {
      if (placed.length) opts.placer?.release(placed);
    }
  }

  // The scheduler places the new tasks among ops (replaced in place); the IDs it placed.
  function placeCreates(ops: Op[]): string[] {
    if (!opts.placer) return [];
    const creates = ops.filter((op): op is CreateOp => op.kind === 'create');
    if (!creates.length) return [];
    const placed = opts.placer.placeNew(creates.map((op) => op.task));
    for (const op of creates) op.task = placed.get(op.task.ID) ?? op.task;
    groupCreatesByNode(ops);
    return [...placed.keys()];
  }

  // Each run of consecutive creates put in dispatch order (write-order.ts);
  // every other op keeps its place, so what waits for what is unchanged.
  function groupCreatesByNode(ops: Op[]): void {
    for (let i = 0; i < ops.length;) {
      if (ops[i]!.kind !== 'create') { i++; continue; }
      let j = i;
      while (j < ops.length && ops[j]!.kind === 'create') j++;
      const run = dispatchOrder(ops.slice(i, j) as CreateOp[], (op) => op.task.NodeID || undefined);
      for (let k = 0; k < run.length; k++) ops[i + k] = run[k]!;
      i = j;
    }
  }

  async function writeOps(ops: Op[]): Promise<Set<string>> {
    const redo = new Set<string>();
    const refused = (op: Op, error: Error): void => log.error({ service: op.serviceId, kind: op.kind, err: error.message }, 'orchestrator write refused');
    // Batches of new tasks only go side by side; any other waits for those
    // before it, and those after wait for it: a restart's "old task down"
    // is written before its new task.
    const alone = (b: { items: Op[] }): boolean => b.items.some((op) => op.kind !== 'create');
    await eachConcurrently(eachBatch(store, ops, addOp, refused), BATCHES_IN_FLIGHT, async ({ txn, items: chunk }) => {
      try {
        await txn.commit();
      } catch (e) {
        if (!(e instanceof ShoalError && (e.kind === 'sequence' || e.kind === 'conflict'))) throw e;
        for (const op of chunk) redo.add(op.serviceId);
        await fallback(chunk);
      }
    }, alone);
    return redo;
  }

  // One op at a time, each re-checked against the current object: the agent
  // and the scheduler write the same tasks (Status, NodeID) while the
  // orchestrator owns DesiredState, so a desired-state change still applies
  // if nobody else changed DesiredState meanwhile. Deletions and service
  // writes that lost the race are dropped; the services are reconciled again.
  async function fallback(chunk: Op[]): Promise<void> {
    const creates = chunk.filter((o): o is Extract<Op, { kind: 'create' }> => o.kind === 'create');
    for (const { txn } of eachBatch(store, creates, (txn, c) => txn.create('tasks', c.task), () => undefined)) {
      await txn.commit().catch((err: unknown) => log.warn({ err }, 'task creation failed'));
    }
    for (const op of chunk) {
      try {
        if (op.kind === 'update') {
          await store.mutate('tasks', op.task.ID, (cur) => {
            if (cur.DesiredState !== op.read.DesiredState) return undefined;
            cur.DesiredState = op.task.DesiredState;
            cur.UpdatedAt = op.task.UpdatedAt;
            return cur;
          });
        } else if (op.kind === 'delete') {
          const cur = store.get('tasks', op.task.ID);
          if (cur && cur.Version.Index === op.task.Version.Index) await store.txn().delete('tasks', cur).commit();
        }
      } catch (err) {
        if (!(err instanceof ShoalError && err.kind === 'sequence')) throw err;
      }
    }
  }

  function addOp(txn: StoreTxn, op: Op): void {
    switch (op.kind) {
      case 'create': txn.create('tasks', op.task); break;
      case 'update': txn.update('tasks', op.task); break;
      case 'delete': txn.delete('tasks', op.task); break;
      case 'service': txn.update('services', op.service); break;
    }
  }

  function notifyIdle(): void {
    if (!stopped && (running || kick || dirty.size)) return;
    const w = idleWaiters;
    idleWaiters = [];
    for (const r of w) r();
  }

  const unsubscribe = store.subscribe(onEvents);
  for (const t of store.list('tasks')) observeTask(t);
  // Full pass at start: every service, and the tasks of services that are gone.
  markAllServices();
  // Tasks without a service are containers' network attachments (manager/dispatcher/attachments.ts), not ours.
  for (const t of store.list('tasks')) if (t.ServiceID && !store.get('services', t.ServiceID)) dirty.add(t.ServiceID);
  schedulePass();

  return {
    stop(): void {
      stopped = true;
      unsubscribe();
      if (wakeTimer) clearTimeout(wakeTimer);
      if (kick) { clearTimeout(kick); kick = undefined; }
      dirty.clear();
      notifyIdle();
    },
    settled(): Promise<void> {
      if (stopped ? !running : !running && !kick && !dirty.size) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}

// Only what placement and the orchestrators look at: not every node write
// (descriptions refreshed with the same content) needs a reconcile.
function nodeChanged(a: Node | undefined, b: Node | undefined): boolean {
  if (!a || !b) return true;
  return a.Status?.State !== b.Status?.State
    || a.Status?.Addr !== b.Status?.Addr
    || !deepEqual(a.Spec, b.Spec)
    || a.Description?.Hostname !== b.Description?.Hostname
    || !deepEqual(a.Description?.Platform, b.Description?.Platform)
    || !deepEqual(a.Description?.Engine?.Labels, b.Description?.Engine?.Labels);
}
