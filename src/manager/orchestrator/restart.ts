import type { Node, Service, Task, TaskSpec, RestartCondition } from '../../model/types';
import { nsToMs, parseIsoMs } from '../../common/time';
import { matchesConstraints, parseConstraintsLenient } from '../../model/constraints';
import { deepEqual } from '../../common/deep-equal';
import {
  type Plan, type ServiceMode, type Slot, RANK, createdMs, isGlobalMode, isJobMode, isRunnable, isTerminal,
  nodeIsDown, nodeIsInvalid, rank, replaceIn, targetState,
} from './task';

// The restart supervisor (SwarmKit orchestrator/restart), made stateless: every
// decision is derived from the slot's task history in the store, so it
// survives a manager restart and needs no timers of its own; the loop re-runs
// the service at the `wakeAt` a decision asks for.

export const DEFAULT_RESTART_DELAY_NS = 5_000_000_000;
// How long a replacement waits for the task it replaces to stop before it
// starts anyway (SwarmKit's defaultOldTaskTimeout).
export const OLD_TASK_TIMEOUT_MS = 60_000;

export interface ResolvedRestartPolicy {
  condition: RestartCondition;
  delayMs: number;
  maxAttempts: number;
  windowMs: number;
}

export function restartPolicy(spec: TaskSpec | undefined, job: boolean): ResolvedRestartPolicy {
  const rp = spec?.RestartPolicy ?? {};
  let condition: RestartCondition = rp.Condition ?? 'any';
  // Jobs run to completion: "any" would re-run a finished job forever.
  if (job && condition === 'any') condition = 'on-failure';
  return {
    condition,
    delayMs: nsToMs(rp.Delay ?? DEFAULT_RESTART_DELAY_NS),
    maxAttempts: rp.MaxAttempts ?? 0,
    windowMs: nsToMs(rp.Window ?? 0),
  };
}

function exitedCleanly(t: Task): boolean {
  return t.Status.State === 'complete' && !t.Status.ContainerStatus?.ExitCode;
}

// Restarts already spent in this slot by the time `t` stopped: the tasks with
// t's spec, created after the first one of that run (the first was created by
// a scale-up or an update, not a restart), within the policy window before t's
// last status. Like SwarmKit's taskinit, the history is rebuilt from the store;
// the reaper keeps MaxAttempts+1 tasks per slot so that this count is exact.
export function restartsSpent(t: Task, slot: Slot, windowMs: number): number {
  const tasks = slot.tasks;
  let i = tasks.findIndex((u) => u.ID === t.ID);
  if (i < 0) i = tasks.length - 1;
  let start = i;
  while (start > 0 && deepEqual(tasks[start - 1]!.Spec, t.Spec)) start--;
  const failedAt = parseIsoMs(t.Status.Timestamp);
  let n = 0;
  for (let j = start + 1; j <= i; j++) {
    if (windowMs > 0 && createdMs(tasks[j]!) <= failedAt - windowMs) continue;
    n++;
  }
  return n;
}

// Whether the policy lets `t` (stopped, or stranded on a bad node) be replaced.
export function shouldRestart(t: Task, slot: Slot, job: boolean): boolean {
  const p = restartPolicy(t.Spec, job);
  if (p.condition === 'none') return false;
  if (p.condition === 'on-failure' && exitedCleanly(t)) return false;
  if (p.maxAttempts <= 0) return true;
  return restartsSpent(t, slot, p.windowMs) < p.maxAttempts;
}

// A slot counts as occupied even without a runnable task when its newest task
// stopped and may not be restarted (SwarmKit's UpdatableTasksInSlot): so a
// task that exited under `--restart-condition none` is not recreated by the
// next reconcile, yet a rolling update still replaces it.
export function isSlotKept(slot: Slot, service: Service, mode: ServiceMode): boolean {
  const newest = slot.tasks[slot.tasks.length - 1];
  if (!newest || newest.DesiredState === 'remove') return false;
  if (service.UpdateStatus?.State === 'rollback_started') return false;
  return !shouldRestart(newest, slot, isJobMode(mode));
}

const SELF_STOPPED = new Set(['complete', 'failed', 'rejected', 'orphaned']);

// When a task created with desired state `ready` may be started, and what it
// still waits for. The delay is the restart policy's when the task replaces
// one that died (or whose node went down) with the same spec; a replacement
// for a drained node, a node that stopped matching, or an update starts
// without delay (SwarmKit does not apply the restart delay there). Either
// way it waits for the tasks being shut down in its slot to stop, for at most
// OLD_TASK_TIMEOUT_MS, unless their node is down.
export function readyStart(r: Task, slot: Slot, nodes: ReadonlyMap<string, Node>, job: boolean): { at: number; blockers: Task[] } {
  const i = slot.tasks.indexOf(r);
  const prev = i > 0 ? slot.tasks[i - 1] : undefined;
  const policyDelay = restartPolicy(r.Spec, job).delayMs;
  let delay = policyDelay;
  if (prev) {
    if (!deepEqual(prev.Spec, r.Spec)) delay = 0;
    else if (!SELF_STOPPED.has(prev.Status.State) && !nodeIsDown(prev.NodeID ? nodes.get(prev.NodeID) : undefined)) delay = 0;
  }
  const blockers = slot.tasks.filter((s) => s !== r
    && rank(s.DesiredState) >= RANK.shutdown
    && rank(s.Status.State) >= RANK.assigned && rank(s.Status.State) <= RANK.running
    && !!s.NodeID && !nodeIsDown(nodes.get(s.NodeID)));
  return { at: createdMs(r) + delay, blockers };
}

export interface SuperviseContext {
  service: Service;
  mode: ServiceMode;
  nodes: ReadonlyMap<string, Node>;
  plan: Plan;
  // false on a paused node (global): stopped tasks are shut down, not restarted.
  allowRestart?: boolean;
  // Replace runnable tasks stranded on a down/drained node or one that no
  // longer meets their constraints (replicated services and replicated jobs;
  // the global orchestrator handles its nodes itself).
  replaceOnBadNode?: boolean;
}

// The node is up, not drained, and meets the task's own constraints: a
// runnable task there stays (and its assignment there needs no reconcile:
// relevance.ts).
export function nodeCanHold(node: Node | undefined, t: Task): boolean {
  return !nodeIsInvalid(node) && matchesConstraints(node!, parseConstraintsLenient(t.Spec?.Placement?.Constraints));
}

// Restart supervision of one slot: restart what stopped, replace what is
// stranded, start replacements whose delay is over. Updates `slot.tasks` to
// the decided state so the caller's next steps (scale, update, reaper) see it.
export function superviseSlot(slot: Slot, ctx: SuperviseContext): void {
  const { mode, nodes, plan } = ctx;
  const job = isJobMode(mode);
  // By index over the tasks present at the start: decisions replace the task
  // at hand in place and append replacements, which need no supervision yet.
  for (let i = 0, n = slot.tasks.length; i < n; i++) {
    const t = slot.tasks[i]!;
    if (!isRunnable(t, mode)) continue;
    const node = t.NodeID ? nodes.get(t.NodeID) : undefined;
    if (isTerminal(t)) {
      if (job && t.Status.State === 'complete') continue; // done: what a job task is for
      // A replacement that died while still waiting out its own delay is
      // restarted only once that delay is over, so a task failing at once
      // (missing image) restarts at the policy's pace, not in a tight loop.
      if (t.DesiredState === 'ready') {
        const { at } = readyStart(t, slot, nodes, job);
        if (plan.now < at) { plan.wake(at); continue; }
      }
      restart(slot, t, ctx, 'stopped');
    } else if (ctx.replaceOnBadNode && t.NodeID && !nodeCanHold(node, t)) {
      restart(slot, t, ctx, nodeIsDown(node) ? 'node-down' : 'moved');
    } else if (t.DesiredState === 'ready') {
      const { at, blockers } = readyStart(t, slot, nodes, job);
      if (plan.now < at) plan.wake(at);
      else if (blockers.length && plan.now < at + OLD_TASK_TIMEOUT_MS) plan.wake(at + OLD_TASK_TIMEOUT_MS);
      else replaceIn(slot, t, plan.setDesired(t, targetState(mode)));
    }
  }
}

// Restart.Restart: the old task is shut down; a replacement in the same slot
// (same node for global services) follows if the policy allows.
function restart(slot: Slot, t: Task, ctx: SuperviseContext, why: 'stopped' | 'node-down' | 'moved'): void {
  const { plan, mode, service } = ctx;
  const stopped = plan.setDesired(t, 'shutdown');
  replaceIn(slot, t, stopped);
  if (ctx.allowRestart === false) return;
  if (!shouldRestart(t, slot, isJobMode(mode))) return;
  // SwarmKit applies no restart delay to tasks of a drained node. Shoal does
  // not apply it to a down node's tasks either (SwarmKit does): the delay
  // paces a task that keeps failing, and these did not fail; their node was
  // lost, and the time that took to notice (liveness.ts) is delay enough.
  // This is what keeps worker loss → tasks running elsewhere under 10 s.
  const node = t.NodeID ? ctx.nodes.get(t.NodeID) : undefined;
  const delayMs = why === 'moved' || why === 'node-down' || node?.Spec?.Availability === 'drain' ? 0 : restartPolicy(t.Spec, isJobMode(mode)).delayMs;
  const waitStop = why === 'moved';
  const r = plan.create(service, {
    slot: slot.slot,
    nodeId: isGlobalMode(mode) ? slot.nodeId : undefined,
    desired: delayMs > 0 || waitStop ? 'ready' : targetState(mode),
  });
  slot.tasks.push(r);
  if (delayMs > 0) plan.wake(plan.now + delayMs);
  else if (waitStop) plan.wake(plan.now + OLD_TASK_TIMEOUT_MS);
}
