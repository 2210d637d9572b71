import type { Node, Service, Task, UpdateConfig, UpdateStatus } from '../../api/types';
import { nowIso, nsToMs, parseIsoMs } from '../../common/time';
import { isTaskDirty } from './dirty';
import { OLD_TASK_TIMEOUT_MS } from './restart';
import { type Plan, type ServiceMode, type Slot, RANK, createdMs, isGlobalMode, isRunnable, nodeIsDown, rank, replaceIn, targetState } from './task';

// The rolling updater (SwarmKit orchestrator/update) as a stateless step
// function: each call looks at the slots, moves the update forward as far as
// Parallelism, Order and Delay allow, and says when to look again. What an
// update is doing is read back from the tasks themselves (clean vs dirty, who
// runs), plus Service.UpdateStatus.StartedAt, so a restarted manager resumes
// where the previous one stopped.
//
// Not yet here (issue 4): Monitor, FailureAction (pause/continue/rollback),
// MaxFailureRatio, automatic rollback. The hooks are `inFlight` (slots whose
// new task has not reached running) and `finished` below.

export interface UpdateContext {
  service: Service;
  mode: ServiceMode;
  nodes: ReadonlyMap<string, Node>;
  plan: Plan;
}

export interface UpdateParams {
  parallelism: number;   // Infinity for 0 ("all at once")
  delayMs: number;
  startFirst: boolean;
}

export function updateParams(cfg: UpdateConfig | undefined): UpdateParams {
  const p = cfg?.Parallelism ?? 1;
  return { parallelism: p <= 0 ? Infinity : p, delayMs: nsToMs(cfg?.Delay ?? 0), startFirst: cfg?.Order === 'start-first' };
}

export interface UpdateProgress {
  dirty: number;      // slots still running an outdated task
  inFlight: number;   // slots whose replacement has not reached running yet
  started: number;    // slots started by this step
}

const ACTIVE = new Set(['updating', 'rollback_started']);
const PAUSED = new Set(['paused', 'rollback_paused']);

// `slots`: the slots the service keeps (after scaling), each with its runnable
// tasks or, for a slot whose task stopped for good, that newest task.
export function planUpdate(slots: readonly Slot[], ctx: UpdateContext): UpdateProgress {
  const { service, mode, nodes, plan } = ctx;
  const now = plan.now;
  const state = service.UpdateStatus?.State;
  const rollingBack = state === 'rollback_started' || state === 'rollback_paused';
  const params = updateParams(rollingBack ? service.Spec.RollbackConfig : service.Spec.UpdateConfig);
  const active = !!state && ACTIVE.has(state);
  const paused = !!state && PAUSED.has(state);
  const startedAt = active ? parseIsoMs(service.UpdateStatus?.StartedAt) : now;
  const target = targetState(mode);
  const dirtyTask = (t: Task): boolean => isTaskDirty(t, service, t.NodeID ? nodes.get(t.NodeID) : undefined);

  let dirty = 0;
  let inFlight = 0;
  let lastDone = 0;
  const todo: Slot[] = [];

  for (const slot of slots) {
    const live = slot.tasks.length === 1 ? (isRunnable(slot.tasks[0]!, mode) ? slot.tasks : []) : slot.tasks.filter((t) => isRunnable(t, mode));
    const newest = slot.tasks[slot.tasks.length - 1];
    const considered = live.length ? live : newest ? [newest] : [];
    if (!considered.length) continue;
    const clean = considered.length === 1 ? (dirtyTask(considered[0]!) ? [] : considered) : considered.filter((t) => !dirtyTask(t));
    if (considered.length === 1 && clean.length === 1) {
      // Up to date. While an update runs, a task it created counts against
      // Parallelism until it runs; the last one to run starts the Delay.
      // (A scale-up's new task is no update's: it does not hold a place,
      // though its start may delay the next batch.)
      const c = clean[0]!;
      if (active && live.length && createdMs(c) >= startedAt) {
        if (c.Status.State === 'running') lastDone = Math.max(lastDone, parseIsoMs(c.Status.Timestamp));
        else if (rank(c.Status.State) < RANK.running && slot.tasks.some((t) => t !== c && dirtyTask(t))) inFlight++;
      }
      continue;
    }
    dirty++;
    if (clean.length && live.length) {
      // A replacement exists already (start-first in progress, or left by a
      // previous manager): once it runs, the others go.
      const c = clean.find((t) => t.DesiredState === target) ?? clean[0]!;
      if (c.DesiredState === target && c.Status.State !== 'running') { inFlight++; continue; }
      for (const o of live) if (o !== c) replaceIn(slot, o, plan.setDesired(o, 'shutdown'));
      if (c.Status.State === 'running') lastDone = Math.max(lastDone, parseIsoMs(c.Status.Timestamp));
      else inFlight++;
      continue;
    }
    todo.push(slot);
  }

  let started = 0;
  if (todo.length && !paused) {
    const canStartAt = params.delayMs > 0 && lastDone > 0 ? lastDone + params.delayMs : 0;
    if (now < canStartAt) {
      plan.wake(canStartAt);
    } else {
      const n = Math.min(todo.length, params.parallelism - inFlight);
      if (n > 0) {
        todo.sort(slotOrder);
        for (const slot of todo.slice(0, n)) startSlot(slot, ctx, params.startFirst, target);
        started = n;
      }
    }
  }

  const status = nextStatus(service, { dirty, inFlight, started }, now);
  if (status) plan.service = { ...(plan.service ?? service), UpdateStatus: status, UpdatedAt: nowIso(now) };
  return { dirty, inFlight, started };
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

// The UpdateStatus transitions Docker shows: `updating` when a task-spec
// change starts replacing tasks, `completed` when nothing is left to replace
// (rollbacks: `rollback_started`, set by the control API, to
// `rollback_completed`). A change that replaces nothing leaves it alone.
function nextStatus(service: Service, p: UpdateProgress, now: number): UpdateStatus | undefined {
  const cur = service.UpdateStatus;
  const state = cur?.State;
  if (state && PAUSED.has(state)) return undefined;
  if (state && ACTIVE.has(state)) {
    if (p.dirty > 0 || p.inFlight > 0 || p.started > 0) return undefined;
    return state === 'rollback_started'
      ? { State: 'rollback_completed', StartedAt: cur?.StartedAt, CompletedAt: nowIso(now), Message: 'rollback completed' }
      : { State: 'completed', StartedAt: cur?.StartedAt, CompletedAt: nowIso(now), Message: 'update completed' };
  }
  if (p.dirty > 0) return { State: 'updating', StartedAt: nowIso(now), Message: 'update in progress' };
  return undefined;
}
