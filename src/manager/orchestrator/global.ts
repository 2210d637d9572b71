import type { Node, Service } from '../../model/types';
import { matchesConstraints, parseConstraintsLenient } from '../../model/constraints';
import { DEFAULT_TASK_HISTORY, reapSlot, retentionFor } from './reaper';
import { isSlotKept, superviseSlot } from './restart';
import { type ReconcileInput, type Slot, Plan, groupSlots, isRunnable, replaceIn } from './task';
import { planUpdate, updateRetention } from './update';

// The global orchestrator (SwarmKit orchestrator/global): one task per node
// that is not down, not drained and meets the service's constraints. A paused
// node keeps what it runs but gets nothing new (no new tasks, no updates, no
// restarts). Global tasks carry their NodeID from creation; the scheduler only
// checks that node.

export type NodeVerdict = 'run' | 'pause' | 'stop' | 'gone';

export function globalNodeVerdict(service: Service, node: Node | undefined): NodeVerdict {
  if (!node) return 'gone';
  if (node.Status?.State === 'down' || node.Spec?.Availability === 'drain') return 'stop';
  if (!matchesConstraints(node, parseConstraintsLenient(service.Spec.TaskTemplate?.Placement?.Constraints))) return 'stop';
  return node.Spec?.Availability === 'pause' ? 'pause' : 'run';
}

export function reconcileGlobal(input: ReconcileInput): Plan {
  const { service, nodes } = input;
  const mode = 'global' as const;
  const plan = new Plan(input.now, input.newId);
  const slots = groupSlots(input.tasks, true);
  for (const id of [...nodes.keys()].sort()) {
    if (!slots.has(id)) slots.set(id, { key: id, slot: 0, nodeId: id, tasks: [] });
  }

  const updatable: Slot[] = [];
  for (const slot of slots.values()) {
    const verdict = globalNodeVerdict(service, nodes.get(slot.nodeId ?? ''));
    if (verdict === 'stop' || verdict === 'gone') {
      // No replacement elsewhere: this node just stops running the service.
      // Tasks of a removed node are removed with it.
      const to = verdict === 'gone' ? 'remove' : 'shutdown';
      for (const t of [...slot.tasks]) if (isRunnable(t, mode)) replaceIn(slot, t, plan.setDesired(t, to));
      continue;
    }
    superviseSlot(slot, { service, mode, nodes, plan, allowRestart: verdict === 'run' });
    if (verdict === 'pause') continue;
    if (slot.tasks.some((t) => isRunnable(t, mode)) || isSlotKept(slot, service, mode)) updatable.push(slot);
    else slot.tasks.push(plan.create(service, { slot: 0, nodeId: slot.nodeId, desired: 'running' }));
  }

  planUpdate(updatable, { service, mode, nodes, plan, observed: input.observed });

  const limit = updateRetention(service, retentionFor(service, input.retention ?? DEFAULT_TASK_HISTORY));
  for (const slot of slots.values()) reapSlot(slot, limit, nodes, plan);
  return plan;
}
