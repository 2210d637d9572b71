import type { Task } from '../../model/types';
import { type LeaderComponentHandle, type LeaderComponentOptions, DEFAULT_SLICE_MS, Slicer } from '../loop/component';
import { dispatchOrder } from '../loop/write-order';
import { taskStateRank } from '../../model/types';
import { ShoalError } from '../../common/errors';
import { nowIso } from '../../common/time';
import type { StoreEvent } from '../../store/objects';
import { BATCHES_IN_FLIGHT, eachBatch } from '../../store/store';
import { eachConcurrently } from '../../common/concurrent';
import { type NodeLoad, failingKey, needsScheduling, schedule } from './scheduler';

// The scheduler's I/O. It keeps what placement needs up to date from store
// events (per-node load: active task counts per service, reserved CPU and
// memory) so a pass costs O(tasks to place + nodes), never a scan of all
// tasks. Tasks that cannot be placed are written `pending` with the reason and
// parked; they are tried again when nodes change or capacity is freed.

export interface SchedulerHandle extends LeaderComponentHandle {
  // Places tasks about to be created (the orchestrator's, before its write),
  // so that each is written once, already `assigned`, not `pending` first and
  // `assigned` by a pass after: 30 % of what a 150,000-task create wrote to
  // etcd and every manager's mirror decoded (docs/ARCHITECTURE.md,
  // "Placing new tasks"). Gives the placed copies by ID, reserved at once on
  // their nodes; tasks left out (no node fits, or the scheduler is starting
  // or in a pass of its own) are written as they are and placed by a pass.
  placeNew(tasks: readonly Task[]): ReadonlyMap<string, Task>;
  // The write of these placed tasks is over: a reservation whose task is not
  // in the store (its write failed, or its outcome is unknown) is dropped.
  // One that lands later is counted again from its event.
  release(ids: Iterable<string>): void;
}
export type SchedulerOptions = LeaderComponentOptions;

// Events arriving within this window are placed together (SwarmKit debounces
// commits by 50 ms); the orchestrator writes a big scale-up in several
// transactions, and placing them as one group spreads them evenly.
const BATCH_MS = 10;
const RETRY_MS = 1000;
// Tasks placed per pass; the rest in the next one. The pure placement is
// fast (100,000 tasks on 1,000 nodes in about 0.1 s, bench/scheduler.ts), but
// reading, stamping and encoding each pass's writes is not: a bounded pass
// leaves the event loop free for heartbeats and the leader's lease.
const MAX_PER_PASS = 20_000;
// SwarmKit's nodeInfo.taskFailed: a node where a service failed this often
// lately is tried last for it.
const FAILURE_WINDOW_MS = 5 * 60_000;
const FAILURES_TO_AVOID = 5;

interface MutableLoad extends NodeLoad { byService: Map<string, number> }
interface Contribution { nodeId: string; serviceId: string; active: boolean; cpu: number; mem: number }

const ASSIGNED = taskStateRank('assigned');
const RUNNING = taskStateRank('running');
const COMPLETE = taskStateRank('complete');

// What a task takes from its node: resources while its container exists
// (assigned..running), a place in the spreading counts while it is also wanted.
function contribution(t: Task | undefined): Contribution | undefined {
  if (!t?.NodeID) return undefined;
  const s = taskStateRank(t.Status.State);
  if (s < ASSIGNED || s > RUNNING) return undefined;
  const r = t.Spec?.Resources?.Reservations;
  return { nodeId: t.NodeID, serviceId: t.ServiceID, active: taskStateRank(t.DesiredState) <= COMPLETE, cpu: r?.NanoCPUs ?? 0, mem: r?.MemoryBytes ?? 0 };
}

function assigned(t: Task, nodeId: string, ts: string): Task {
  return { ...t, NodeID: nodeId, UpdatedAt: ts, Status: { Timestamp: ts, State: 'assigned', Message: 'scheduler assigned task to node' } };
}

export function startScheduler(opts: SchedulerOptions): SchedulerHandle {
  const { store, log } = opts;
  const now = opts.now ?? Date.now;
  // The start reads every task (150,000 in bench/scale.ts) in slices this long at most.
  const sliceMs = opts.sliceMs ?? DEFAULT_SLICE_MS;

  const loads = new Map<string, MutableLoad>();
  const contrib = new Map<string, Contribution>();
  const queue = new Set<string>();
  const parked = new Set<string>();
  const failures = new Map<string, number[]>();
  let kick: NodeJS.Timeout | undefined;
  let running = false;
  let stopped = false;
  let loading = true; // the start's read of all tasks: no pass before it is done
  let idleWaiters: Array<() => void> = [];

  function apply(id: string, c: Contribution | undefined, sign: 1 | -1): void {
    if (!c) return;
    let l = loads.get(c.nodeId);
    if (!l) loads.set(c.nodeId, (l = { tasks: 0, byService: new Map(), nanoCPUs: 0, memoryBytes: 0 }));
    l.nanoCPUs += sign * c.cpu;
    l.memoryBytes += sign * c.mem;
    if (c.active) {
      l.tasks += sign;
      const n = (l.byService.get(c.serviceId) ?? 0) + sign;
      if (n) l.byService.set(c.serviceId, n); else l.byService.delete(c.serviceId);
    }
    if (sign > 0) contrib.set(id, c); else contrib.delete(id);
  }

  // Returns true when the change may have made room on a node.
  function track(id: string, t: Task | undefined): boolean {
    const before = contrib.get(id);
    const after = contribution(t);
    if (before && after && before.nodeId === after.nodeId && before.active === after.active && before.cpu === after.cpu && before.mem === after.mem) return false;
    apply(id, before, -1);
    apply(id, after, 1);
    return !!before && (!after || after.nodeId !== before.nodeId || (before.active && !after.active) || after.cpu < before.cpu || after.mem < before.mem);
  }

  function noteFailure(prev: Task | undefined, t: Task): void {
    // Global tasks do not choose their node: their failures say nothing about it.
    if (!t.NodeID || !t.Slot || prev?.Status.State === t.Status.State) return;
    if (t.Status.State !== 'failed' && t.Status.State !== 'rejected') return;
    const k = failingKey(t.NodeID, t.ServiceID);
    const list = failures.get(k) ?? [];
    list.push(now());
    failures.set(k, list);
  }

  function failingSet(): Set<string> {
    const cutoff = now() - FAILURE_WINDOW_MS;
    const out = new Set<string>();
    for (const [k, list] of failures) {
      const recent = list.filter((ts) => ts > cutoff);
      if (!recent.length) failures.delete(k);
      else { failures.set(k, recent); if (recent.length >= FAILURES_TO_AVOID) out.add(k); }
    }
    return out;
  }

  function unparkAll(): void {
    for (const id of parked) queue.add(id);
    parked.clear();
  }

  const onEvents = (events: StoreEvent[]): void => {
    let freed = false;
    for (const e of events) {
      if (e.kind === 'nodes') { freed = true; continue; }
      if (e.kind !== 'tasks') continue;
      const t = e.object as Task | undefined;
      const prev = e.previous as Task | undefined;
      if (track(e.id, t)) freed = true;
      if (t) noteFailure(prev, t);
      if (!t || !needsScheduling(t)) { queue.delete(e.id); parked.delete(e.id); continue; }
      // A parked task whose only change is our own `pending` write stays parked.
      if (parked.has(e.id) && prev && prev.DesiredState === t.DesiredState && prev.NodeID === t.NodeID) continue;
      parked.delete(e.id);
      queue.add(e.id);
    }
    if (freed) unparkAll();
    schedulePass();
  };

  function schedulePass(delay = BATCH_MS): void {
    if (stopped || loading || running || kick || !queue.size) return;
    kick = setTimeout(() => void runPass(), delay);
  }

  async function runPass(): Promise<void> {
    kick = undefined;
    if (stopped) return;
    running = true;
    let retryLater = false;
    const ids: string[] = [];
    for (const id of queue) { if (ids.length >= MAX_PER_PASS) break; ids.push(id); }
    for (const id of ids) queue.delete(id);
    try {
      const tasks: Task[] = [];
      for (const id of ids) {
        const t = store.get('tasks', id);
        if (t && needsScheduling(t)) tasks.push(t);
      }
      if (tasks.length) await place(tasks);
    } catch (err) {
      log.warn({ err }, 'scheduling pass failed; retrying');
      for (const id of ids) queue.add(id);
      retryLater = true;
    } finally {
      running = false;
    }
    if (queue.size && !stopped) schedulePass(retryLater ? RETRY_MS : 0);
    else notifyIdle();
  }

  // The pure placement against the nodes and loads as they are now.
  function decide(tasks: readonly Task[]): ReturnType<typeof schedule> {
    return schedule({ nodes: store.list('nodes'), load: loads, tasks, failing: failingSet() });
  }

  async function place(tasks: Task[]): Promise<void> {
    const started = Date.now();
    const result = decide(tasks);
    const ts = nowIso(now());
    const writes: Array<{ read: Task; next: Task }> = [];
    const decided = new Set<string>();
    for (const a of result.assignments) {
      const read = store.get('tasks', a.taskId);
      if (!read) continue;
      decided.add(a.taskId);
      writes.push({ read, next: assigned(read, a.nodeId, ts) });
    }
    for (const f of result.failures) {
      const read = store.get('tasks', f.taskId);
      if (!read) continue;
      decided.add(f.taskId);
      parked.add(f.taskId);
      const s = read.Status;
      // Written only when it changes, or the write would wake us up forever.
      if (s.State === 'pending' && s.Err === f.message && s.Message === 'pending task scheduling') continue;
      writes.push({ read, next: { ...read, UpdatedAt: ts, Status: { Timestamp: ts, State: 'pending', Message: 'pending task scheduling', Err: f.message } } });
    }
    // No decision (a preassigned task whose node is gone): wait for a change.
    for (const t of tasks) if (!decided.has(t.ID)) parked.add(t.ID);
    log.debug({ tasks: tasks.length, assigned: result.assignments.length, unplaced: result.failures.length, ms: Date.now() - started }, 'scheduling pass');

    const refused = (w: (typeof writes)[number], error: Error): void => log.error({ task: w.read.ID, err: error.message }, 'scheduler write refused');
    // Each task once: the batches are independent. A node's tasks together (loop/write-order.ts).
    const ordered = dispatchOrder(writes, (w) => w.next.NodeID || undefined);
    await eachConcurrently(eachBatch(store, ordered, (txn, w) => txn.update('tasks', w.next), refused), BATCHES_IN_FLIGHT, async ({ txn, items: chunk }) => {
      try {
        await txn.commit();
      } catch (e) {
        if (!(e instanceof ShoalError && e.kind === 'sequence')) throw e;
        await fallback(chunk);
      }
    });
  }

  // Someone (the orchestrator changing DesiredState) wrote a task of the
  // chunk meanwhile: apply each decision alone if the task still waits for
  // placement; otherwise it is queued again by its event.
  async function fallback(chunk: Array<{ read: Task; next: Task }>): Promise<void> {
    for (const w of chunk) {
      try {
        await store.mutate('tasks', w.read.ID, (cur) => {
          if (!needsScheduling(cur) || (cur.NodeID ?? '') !== (w.read.NodeID ?? '')) return undefined;
          cur.NodeID = w.next.NodeID;
          cur.Status = w.next.Status;
          cur.UpdatedAt = w.next.UpdatedAt;
          return cur;
        });
      } catch (err) {
        if (!(err instanceof ShoalError && err.kind === 'sequence')) throw err;
        queue.add(w.read.ID);
      }
    }
  }

  function placeNew(tasks: readonly Task[]): ReadonlyMap<string, Task> {
    const out = new Map<string, Task>();
    // Starting: loads are not all counted yet. In a pass: its decisions are
    // not counted until their events come back, and a second placement
    // meanwhile could give one node's room twice.
    if (stopped || loading || running) return out;
    const wanted = tasks.filter(needsScheduling);
    if (!wanted.length) return out;
    try {
      const result = decide(wanted);
      const ts = nowIso(now());
      const byId = new Map(wanted.map((t) => [t.ID, t]));
      for (const a of result.assignments) {
        const t = byId.get(a.taskId);
        if (!t) continue;
        const next = assigned(t, a.nodeId, ts);
        track(t.ID, next);
        out.set(t.ID, next);
      }
      log.debug({ tasks: wanted.length, placed: out.size }, 'new tasks placed at creation');
    } catch (err) {
      // Never the orchestrator's failure: its tasks go as they are.
      log.warn({ err }, 'placing new tasks failed; they are written pending');
      release(out.keys());
      out.clear();
    }
    return out;
  }

  function release(ids: Iterable<string>): void {
    let freed = false;
    for (const id of ids) {
      if (store.get('tasks', id) || !contrib.has(id)) continue;
      apply(id, contrib.get(id), -1);
      freed = true;
    }
    if (freed) { unparkAll(); schedulePass(); }
  }

  function notifyIdle(): void {
    if (!stopped && (loading || running || kick || queue.size)) return;
    const w = idleWaiters;
    idleWaiters = [];
    for (const r of w) r();
  }

  // Start: the load of every node, and every task waiting for a node. Events
  // are followed from the first moment; a task is read as it is now when its
  // turn comes, and track() is idempotent, so an event before or after that
  // turn counts once.
  const unsubscribe = store.subscribe(onEvents);
  async function load(): Promise<void> {
    const slicer = new Slicer(sliceMs);
    for (const id of store.list('tasks').map((t) => t.ID)) {
      if (slicer.due()) {
        await slicer.pause();
        if (stopped) return;
      }
      const t = store.get('tasks', id);
      if (!t) continue;
      track(id, t);
      if (needsScheduling(t)) queue.add(id);
    }
  }
  void load().then(() => {
    loading = false;
    if (!stopped) schedulePass(0);
    notifyIdle();
  });

  return {
    placeNew,
    release,
    stop(): void {
      stopped = true;
      unsubscribe();
      if (kick) { clearTimeout(kick); kick = undefined; }
      queue.clear();
      notifyIdle();
    },
    settled(): Promise<void> {
      if (stopped ? !running : !loading && !running && !kick && !queue.size) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}
