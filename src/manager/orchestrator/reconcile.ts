import type { Node, Task } from '../../model/types';
import { reconcileGlobal } from './global';
import { reconcileGlobalJob, reconcileReplicatedJob } from './jobs';
import { reapSlot } from './reaper';
import { reconcileReplicatedSteps } from './replicated';
import { type ReconcileInput, type ReconcileSteps, Plan, drainSteps, groupSlots, serviceMode } from './task';

// One entry point for the loop: the decisions for one service, by mode.
export function reconcileService(input: ReconcileInput): Plan {
  return drainSteps(reconcileServiceSteps(input));
}

// The same, in pausable steps (task.ts ReconcileSteps). Only replicated
// services pause inside: a global service has one task per node, a job's
// tasks are bounded by its MaxConcurrent.
export function* reconcileServiceSteps(input: ReconcileInput): ReconcileSteps {
  switch (serviceMode(input.service)) {
    case 'global': return reconcileGlobal(input);
    case 'replicated-job': return reconcileReplicatedJob(input);
    case 'global-job': return reconcileGlobalJob(input);
    default: return yield* reconcileReplicatedSteps(input);
  }
}

// The service is gone: every task is set to `remove`, and deleted once its
// container is down (or it never reached a node).
export function reconcileDeletedService(tasks: readonly Task[], nodes: ReadonlyMap<string, Node>, now: number): Plan {
  const plan = new Plan(now, () => { throw new Error('no tasks are created for a deleted service'); });
  const marked = tasks.map((t) => (t.DesiredState === 'remove' ? t : plan.setDesired(t, 'remove')));
  for (const slot of groupSlots(marked, false).values()) reapSlot(slot, -1, nodes, plan);
  return plan;
}
