import type { Task } from '../../model/types';
import { DEFAULT_TASK_HISTORY, reapSlot, retentionFor } from './reaper';
import { isSlotKept, superviseSlot } from './restart';
import { type ReconcileInput, type ReconcileSteps, type Slot, Plan, STEP_SLOTS, groupSlotsSteps, isRunnable } from './task';
import { planUpdate, updateRetention } from './update';

// The replicated orchestrator (SwarmKit orchestrator/replicated): slots
// 1..Replicas each hold one runnable task.

// The decisions for one replicated service, pausing (a bare `yield`) every STEP_SLOTS slots of its
// per-slot loops, so that the loop can give the event loop back in the middle
// of a service of 150,000 tasks. Pure all the same: it only ever reads `input`.
export function* reconcileReplicatedSteps(input: ReconcileInput): ReconcileSteps {
  const { service, nodes } = input;
  const mode = 'replicated' as const;
  const plan = new Plan(input.now, input.newId);
  const slots = [...(yield* groupSlotsSteps(input.tasks, false)).values()];
  yield;

  let n = 0;
  for (const slot of slots) {
    superviseSlot(slot, { service, mode, nodes, plan, replaceOnBadNode: true });
    if (++n % STEP_SLOTS === 0) yield;
  }

  const occupied: Slot[] = [];
  const dead: Slot[] = [];
  for (const slot of slots) {
    if (slot.tasks.some((t) => isRunnable(t, mode)) || isSlotKept(slot, service, mode)) occupied.push(slot);
    else dead.push(slot);
    if (++n % STEP_SLOTS === 0) yield;
  }

  const replicas = service.Spec.Mode?.Replicated?.Replicas ?? 1;
  let keep = occupied;
  if (occupied.length < replicas) {
    // Fill the lowest free slot numbers; a dead slot's number is reused and
    // its history stays with it (SwarmKit addTasks).
    const used = new Set(occupied.map((s) => s.slot));
    const deadByNo = new Map(dead.map((s) => [s.slot, s]));
    const fill = Math.min(replicas, occupied.length + (input.maxCreates ?? Infinity));
    let no = 0;
    for (let i = occupied.length; i < fill; i++) {
      do no++; while (used.has(no));
      const reused = deadByNo.get(no);
      const slot: Slot = reused ?? { key: no, slot: no, tasks: [] };
      if (reused) deadByNo.delete(no);
      else slots.push(slot);
      slot.tasks.push(plan.create(service, { slot: no, desired: 'running' }));
      if (++n % STEP_SLOTS === 0) yield;
    }
    dead.length = 0;
    // Slots left for the next pass may reuse the dead ones: they stay until the fill is done.
    if (fill < replicas) plan.wake(input.now);
    else dead.push(...deadByNo.values());
  } else if (occupied.length > replicas) {
    const order = scaleDownOrder(occupied, mode);
    keep = order.slice(0, replicas);
    for (const slot of order.slice(replicas)) removeSlot(slot, plan);
  }
  for (const slot of dead) removeSlot(slot, plan);

  yield;
  planUpdate(keep, { service, mode, nodes, plan, observed: input.observed });
  yield;

  const limit = updateRetention(service, retentionFor(service, input.retention ?? DEFAULT_TASK_HISTORY));
  for (const slot of slots) {
    reapSlot(slot, limit, nodes, plan);
    if (++n % STEP_SLOTS === 0) yield;
  }
  return plan;
}

function removeSlot(slot: Slot, plan: Plan): void {
  slot.tasks = slot.tasks.map((t) => (t.DesiredState === 'remove' ? t : plan.setDesired(t, 'remove')));
}

// Which slots survive a scale-down (SwarmKit replicated/services.go): prefer
// removing copies from the nodes holding the most copies of the service, and
// among equals tasks that are not running; lower slot numbers stay.
export function scaleDownOrder(slots: readonly Slot[], mode: 'replicated'): Slot[] {
  const repr = (s: Slot): Task[] => {
    const live = s.tasks.filter((t) => isRunnable(t, mode));
    return live.length ? live : s.tasks.slice(-1);
  };
  const running = (s: Slot): boolean => repr(s).some((t) => t.Status.State === 'running');
  const byRunning = [...slots].sort((a, b) => Number(running(b)) - Number(running(a)) || a.slot - b.slot);
  const perNode = new Map<string, number>();
  const indexed = byRunning.map((s, i) => {
    const r = repr(s);
    let index = -1;
    if (r.length === 1 && r[0]!.NodeID) {
      index = (perNode.get(r[0]!.NodeID) ?? 0) + 1;
      perNode.set(r[0]!.NodeID, index);
    }
    return { s, index, i };
  });
  indexed.sort((a, b) => {
    if (a.index < 0 !== b.index < 0) return a.index < 0 ? 1 : -1;
    return a.index - b.index || a.i - b.i;
  });
  return indexed.map((x) => x.s);
}
