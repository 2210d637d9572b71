import type { Node, Service, Task } from '../../model/types';
import { nowIso, parseIsoMs } from '../../common/time';
import { isTaskDirty } from './dirty';
import { OLD_TASK_TIMEOUT_MS } from './restart';
import { type Plan, type ServiceMode, type Slot, type TaskObservations, RANK, createdMs, isGlobalMode, isRunnable, nodeIsDown, rank, replaceIn, targetState } from './task';
import {
  type UpdateParams, activeParams, completedStatus, finalMonitorMs, onFailure, startedStatus, updatePhase, updateStartMs,
} from './update-state';

export { updateParams, type UpdateParams } from './update-state';

// The rolling updater (SwarmKit orchestrator/update) as a stateless step
// function: each call looks at the slots, moves the update forward as far as
// Parallelism, Delay and Order allow, applies FailureAction when tasks it made
// fail within Monitor, completes it one Monitor period after the last batch,
// and says when to look again. What an update has done is read back from the
// tasks themselves plus Service.UpdateStatus, so a restarted manager resumes
// where the previous one stopped:
//
// - a task made by the current update ("update task") is the first task of
//   its slot with the current spec that follows a task with another spec and
//   was created since the update started (UpdateStatus.StartedAt). Restarts of
//   it have its spec and follow it, so they are not update tasks, as in SwarmKit;
// - SwarmKit runs Parallelism workers, each taking a dirty slot, waiting for
//   its new task to reach running (or to stop), then sleeping Delay. Here a
//   worker is busy while an update task has not reached running, and for Delay
//   after it did;
// - a failure is an update task that stopped on its own (failed, complete,
//   rejected, orphaned) before it ran or within Monitor after it started
//   running. The action triggers when failures / slots of the update exceed
//   MaxFailureRatio (SwarmKit divides by the dirty slots the update started with).

export interface UpdateContext {
  service: Service;
  mode: ServiceMode;
  nodes: ReadonlyMap<string, Node>;
  plan: Plan;
  observed?: TaskObservations;
}

export interface UpdateProgress {
  dirty: number;      // slots still running an outdated task (or more than one task)
  inFlight: number;   // update tasks that have not reached running yet
  started: number;    // slots started by this step
  failures: number;   // update tasks that failed within Monitor
}

const SELF_STOPPED = new Set(['complete', 'failed', 'rejected', 'orphaned']);

interface UpdateTask {
  slot: Slot;
  task: Task;
  reachedAt?: number;  // when it reached running, or stopped without running
}

// `slots`: the slots the service keeps (after scaling), each with its runnable
// tasks or, for a slot whose task stopped for good, that newest task.
export function planUpdate(slots: readonly Slot[], ctx: UpdateContext): UpdateProgress {
  const { service, mode, nodes, plan } = ctx;
  const now = plan.now;
  const status = service.UpdateStatus;
  const phase = updatePhase(status);
  const params = activeParams(service);
  const since = updateStartMs(status, now);
  const target = targetState(mode);
  const dirtyTask = (t: Task): boolean => isTaskDirty(t, service, t.NodeID ? nodes.get(t.NodeID) : undefined);

  const made: UpdateTask[] = [];
  const todo: Slot[] = [];
  let dirty = 0;
  let finishing = 0;   // dirty slots whose replacement exists and is not running yet
  let total = 0;       // slots this update is about (replaced or to replace)

  for (const slot of slots) {
    const live = slot.tasks.filter((t) => isRunnable(t, mode));
    const newest = slot.tasks[slot.tasks.length - 1];
    const considered = live.length ? live : newest ? [newest] : [];
    if (!considered.length) continue;
    const u = phase !== 'none' ? updateTaskOf(slot, since, dirtyTask) : undefined;
    if (u) made.push({ slot, task: u, reachedAt: reachedAt(u, ctx.observed) });
    const clean = considered.filter((t) => !dirtyTask(t));
    if (considered.length === 1 && clean.length === 1) { if (u) total++; continue; }
    dirty++;
    total++;
    if (clean.length && live.length) {
      // A replacement exists already (start-first in progress, a restart of
      // one, or left by a previous manager): once it runs, the others go.
      const c = clean.find((t) => t.Status.State === 'running') ?? clean.find((t) => t.DesiredState === target) ?? clean[0]!;
      if (c.Status.State !== 'running') { finishing++; continue; }
      for (const o of live) if (o !== c) replaceIn(slot, o, plan.setDesired(o, 'shutdown'));
      continue;
    }
    todo.push(slot);
  }

  const inFlight = made.filter((m) => m.reachedAt === undefined).length;
  const progress: UpdateProgress = { dirty, inFlight, started: 0, failures: 0 };

  // Failures of this update's tasks, in the order they happened.
  const failed = made
    .filter((m) => isFailure(m.task, params, ctx.observed))
    .sort((a, b) => parseIsoMs(a.task.Status.Timestamp) - parseIsoMs(b.task.Status.Timestamp) || (a.task.ID < b.task.ID ? -1 : 1));
  progress.failures = failed.length;

  if (phase === 'paused') return progress;

  if (phase !== 'none' && failed.length) {
    for (let k = 1; k <= failed.length; k++) {
      if (k / Math.max(1, total) <= params.maxFailureRatio) continue;
      const decision = onFailure(service, params.failureAction, failed[k - 1]!.task.ID, now);
      if (decision) { plan.service = decision.service; return progress; }
      break;
    }
  }

  // Starting an update: SwarmKit's startUpdate, when there is anything to replace.
  let startedNow = false;
  if (phase === 'none' && dirty > 0) {
    plan.service = { ...service, UpdateStatus: startedStatus(now), UpdatedAt: nowIso(now) };
    startedNow = true;
  }

  if (todo.length) {
    // Workers busy: an update task not yet running, or running for less than Delay.
    let busy = 0;
    let freeAt = Infinity;
    for (const m of made) {
      if (m.reachedAt === undefined) { busy++; continue; }
      const until = m.reachedAt + params.delayMs;
      if (params.delayMs > 0 && now < until) { busy++; freeAt = Math.min(freeAt, until); }
    }
    const n = Math.min(todo.length, params.parallelism - busy);
    if (n > 0) {
      todo.sort(slotOrder);
      for (const slot of todo.slice(0, n)) startSlot(slot, ctx, params.startFirst, target);
      progress.started = n;
    }
    if (todo.length > Math.max(0, n) && freeAt < Infinity) plan.wake(freeAt);
    return progress;
  }

  if (finishing > 0 || startedNow || phase === 'none') return progress;

  // Nothing left to replace: complete one monitor period after the last
  // worker finished (its task reached running, plus Delay).
  if (inFlight > 0) return progress;
  if (made.length === 0) {
    if (phase === 'running') plan.service = { ...service, UpdateStatus: completedStatus(status, now), UpdatedAt: nowIso(now) };
    return progress;
  }
  let lastDone = 0;
  for (const m of made) lastDone = Math.max(lastDone, m.reachedAt! + params.delayMs);
  const completeAt = lastDone + finalMonitorMs(params);
  if (now < completeAt) plan.wake(completeAt);
  else plan.service = { ...service, UpdateStatus: completedStatus(status, now), UpdatedAt: nowIso(now) };
  return progress;
}

// The update task of a slot (see above), if the current update made one there.
function updateTaskOf(slot: Slot, since: number, dirtyTask: (t: Task) => boolean): Task | undefined {
  const ts = slot.tasks;
  for (let i = ts.length - 1; i >= 1; i--) {
    const t = ts[i]!;
    if (createdMs(t) < since) break;
    if (dirtyTask(t)) continue;
    if (dirtyTask(ts[i - 1]!)) {
      // The first clean task after a dirty one; an earlier one wins (a slot
      // updated, then made dirty again, then updated within one update).
      let first = t;
      for (let j = i - 2; j >= 1 && createdMs(ts[j]!) >= since; j--) {
        if (!dirtyTask(ts[j]!) && dirtyTask(ts[j - 1]!)) first = ts[j]!;
      }
      return first;
    }
  }
  return undefined;
}

// When an update task got past waiting: it reached running (as first seen by
// the loop, else its running status), or stopped before that, or was given up.
function reachedAt(t: Task, observed: TaskObservations | undefined): number | undefined {
  const seen = observed?.runningSince(t.ID);
  if (seen !== undefined) return seen;
  const s = rank(t.Status.State);
  if (s >= RANK.running) return parseIsoMs(t.Status.Timestamp);
  // No longer wanted before it ran (SwarmKit's worker would wait for ever).
  if (rank(t.DesiredState) > RANK.running) return parseIsoMs(t.UpdatedAt);
  return undefined;
}

function isFailure(t: Task, params: UpdateParams, observed: TaskObservations | undefined): boolean {
  if (!SELF_STOPPED.has(t.Status.State)) return false;
  const stoppedAt = parseIsoMs(t.Status.Timestamp);
  const runningSince = observed?.runningSince(t.ID);
  if (runningSince === undefined) return observed?.since === undefined || stoppedAt >= observed.since;
  return stoppedAt - runningSince <= params.monitorMs;
}

function slotOrder(a: Slot, b: Slot): number {
  if (a.slot !== b.slot) return a.slot - b.slot;
  return (a.nodeId ?? '') < (b.nodeId ?? '') ? -1 : (a.nodeId ?? '') > (b.nodeId ?? '') ? 1 : 0;
}

function startSlot(slot: Slot, ctx: UpdateContext, startFirst: boolean, target: Task['DesiredState']): void {
  const { plan, service, mode, nodes } = ctx;
  const live = slot.tasks.filter((t) => isRunnable(t, mode));
  let desired = target;
  if (startFirst) {
    // Only the task that serves (the newest running) is worth keeping until
    // its successor runs; others (a previous update's replacement still
    // starting) just go.
    const serving = live.filter((o) => o.Status.State === 'running').pop();
    for (const o of live) if (o !== serving) replaceIn(slot, o, plan.setDesired(o, 'shutdown'));
  } else {
    // stop-first: the old task is asked to stop; the new one is created
    // `ready` and started by the restart supervisor once the old one stopped.
    for (const o of live) {
      replaceIn(slot, o, plan.setDesired(o, 'shutdown'));
      const s = rank(o.Status.State);
      if (s >= RANK.assigned && s <= RANK.running && o.NodeID && !nodeIsDown(nodes.get(o.NodeID))) desired = 'ready';
    }
  }
  const t = plan.create(service, { slot: slot.slot, nodeId: isGlobalMode(mode) ? slot.nodeId : undefined, desired });
  slot.tasks.push(t);
  if (desired === 'ready') plan.wake(plan.now + OLD_TASK_TIMEOUT_MS);
}

// The reaper keeps at least this many tasks per slot while an update runs:
// an update task is recognised by the task before it.
export function updateRetention(service: Service, limit: number): number {
  const phase = updatePhase(service.UpdateStatus);
  return limit >= 0 && limit < 2 && (phase === 'running' || phase === 'paused') ? 2 : limit;
}
