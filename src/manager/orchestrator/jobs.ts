import type { Service, Task } from '../../model/types';
import { globalNodeVerdict } from './global';
import { DEFAULT_TASK_HISTORY, reapSlot, retentionFor } from './reaper';
import { isSlotKept, superviseSlot } from './restart';
import { type ReconcileInput, type ServiceMode, type Slot, Plan, RANK, groupSlots, isRunnable, rank, replaceIn } from './task';

// The jobs orchestrator (SwarmKit orchestrator/jobs). A job runs its tasks to
// completion; tasks that complete are never restarted, failed ones are per
// the restart policy with "any" read as "on-failure". Each update of a job
// service bumps JobStatus.JobIteration (control API); tasks of an older
// iteration still running are removed, and the new iteration starts afresh.

export function jobIteration(service: Service): number {
  return service.JobStatus?.JobIteration?.Index ?? 0;
}

function splitIterations(input: ReconcileInput, plan: Plan): { current: Task[]; old: Task[] } {
  const it = jobIteration(input.service);
  const current: Task[] = [];
  const old: Task[] = [];
  for (const t of input.tasks) {
    if (t.JobIteration && t.JobIteration.Index === it) { current.push(t); continue; }
    old.push(rank(t.Status.State) <= RANK.running && t.DesiredState !== 'remove' ? plan.setDesired(t, 'remove') : t);
  }
  return { current, old };
}

interface SlotCounts { done: boolean; active: boolean; gaveUp: boolean }

function countSlot(slot: Slot, service: Service, mode: ServiceMode): SlotCounts {
  const done = slot.tasks.some((t) => t.Status.State === 'complete');
  const active = !done && slot.tasks.some((t) => isRunnable(t, mode));
  // A slot whose task failed beyond what the policy allows: the job will not
  // reach TotalCompletions through it, and it is not tried again.
  const gaveUp = !done && !active && slot.tasks.length > 0 && isSlotKept(slot, service, mode);
  return { done, active, gaveUp };
}

// History is trimmed per slot across iterations, as SwarmKit's reaper does.
function reap(input: ReconcileInput, plan: Plan, tasks: Task[], global: boolean): void {
  const limit = retentionFor(input.service, input.retention ?? DEFAULT_TASK_HISTORY);
  for (const slot of groupSlots(tasks, global).values()) reapSlot(slot, limit, input.nodes, plan);
}

export function reconcileReplicatedJob(input: ReconcileInput): Plan {
  const { service, nodes } = input;
  const mode = 'replicated-job' as const;
  const plan = new Plan(input.now, input.newId);
  const { current, old } = splitIterations(input, plan);
  const slots = groupSlots(current, false);
  for (const slot of slots.values()) superviseSlot(slot, { service, mode, nodes, plan, replaceOnBadNode: true });

  const rj = service.Spec.Mode?.ReplicatedJob ?? {};
  const maxConcurrent = rj.MaxConcurrent || 1;
  const total = rj.TotalCompletions ?? maxConcurrent;
  let done = 0;
  let active = 0;
  let gaveUp = 0;
  const used = new Set<number>();
  for (const slot of slots.values()) {
    const c = countSlot(slot, service, mode);
    if (c.done) done++;
    if (c.active) active++;
    if (c.gaveUp) gaveUp++;
    if (c.done || c.active || c.gaveUp) used.add(slot.slot);
  }
  const toCreate = Math.max(0, Math.min(maxConcurrent - active, total - done - active - gaveUp));
  // Slots 0..TotalCompletions-1, each completed once (SwarmKit numbers job slots from 0).
  let no = -1;
  for (let i = 0; i < toCreate; i++) {
    do no++; while (used.has(no));
    const t = plan.create(service, { slot: no, desired: 'complete' });
    const slot = slots.get(no);
    if (slot) slot.tasks.push(t);
    else slots.set(no, { key: no, slot: no, tasks: [t] });
  }

  reap(input, plan, [...old, ...[...slots.values()].flatMap((s) => s.tasks)], false);
  return plan;
}

export function reconcileGlobalJob(input: ReconcileInput): Plan {
  const { service, nodes } = input;
  const mode = 'global-job' as const;
  const plan = new Plan(input.now, input.newId);
  const { current, old } = splitIterations(input, plan);
  const slots = groupSlots(current, true);
  for (const id of [...nodes.keys()].sort()) {
    if (!slots.has(id)) slots.set(id, { key: id, slot: 0, nodeId: id, tasks: [] });
  }
  for (const slot of slots.values()) {
    const verdict = globalNodeVerdict(service, nodes.get(slot.nodeId ?? ''));
    if (verdict === 'stop' || verdict === 'gone') {
      const to = verdict === 'gone' ? 'remove' : 'shutdown';
      for (const t of [...slot.tasks]) {
        if (isRunnable(t, mode) && t.Status.State !== 'complete') replaceIn(slot, t, plan.setDesired(t, to));
      }
      continue;
    }
    superviseSlot(slot, { service, mode, nodes, plan, allowRestart: verdict === 'run' });
    if (verdict === 'pause') continue;
    const c = countSlot(slot, service, mode);
    if (!c.done && !c.active && !c.gaveUp) slot.tasks.push(plan.create(service, { slot: 0, nodeId: slot.nodeId, desired: 'complete' }));
  }
  reap(input, plan, [...old, ...[...slots.values()].flatMap((s) => s.tasks)], true);
  return plan;
}
