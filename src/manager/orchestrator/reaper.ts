import type { Node, Service, Task } from '../../model/types';
import { parseIsoMs } from '../../common/time';
import type { ClusterObject } from '../../store/objects';
import { type Plan, type Slot, RANK, rank } from './task';

// The task reaper (SwarmKit orchestrator/taskreaper): trims each slot's
// history to the cluster's TaskHistoryRetentionLimit and deletes tasks the
// orchestrator set to `remove` once their container is gone.

export const DEFAULT_TASK_HISTORY = 5;

export function clusterRetention(cluster: ClusterObject | undefined): number {
  return cluster?.Spec?.Orchestration?.TaskHistoryRetentionLimit ?? DEFAULT_TASK_HISTORY;
}

// How many tasks a slot keeps. With MaxAttempts set SwarmKit keeps exactly
// MaxAttempts+1, overriding the cluster setting, because the restart count is
// rebuilt from that history. Negative means keep everything.
export function retentionFor(service: Service | undefined, clusterLimit: number): number {
  const max = service?.Spec.TaskTemplate?.RestartPolicy?.MaxAttempts ?? 0;
  if (clusterLimit >= 0 && max > 0) return max + 1;
  return clusterLimit;
}

// Still wanted, or still occupying a container somewhere: never reaped.
// Unlike SwarmKit, a task that was never assigned and is no longer wanted, or
// whose node is gone (node rm), has no container to wait for and may go.
export function isAlive(t: Task, nodes: ReadonlyMap<string, Node>): boolean {
  const d = rank(t.DesiredState);
  const s = rank(t.Status.State);
  if (d <= RANK.running) return true;
  if (s > RANK.running) return false;
  if (d <= RANK.complete) return true; // a job task yet to run
  return s >= RANK.assigned && !!t.NodeID && nodes.has(t.NodeID);
}

// A task set to `remove` can go once it has stopped, or if it never reached
// an agent (never got past `assigned`), or its node no longer exists.
export function isRemovable(t: Task, nodes: ReadonlyMap<string, Node>): boolean {
  if (t.DesiredState !== 'remove') return false;
  const s = rank(t.Status.State);
  return s > RANK.running || s <= RANK.assigned || !t.NodeID || !nodes.has(t.NodeID);
}

// Decides the deletions of one slot into `plan` and drops them from the slot.
// A slot keeps at least one task even with a limit of 0: a slot's last task
// is its outcome (a job's completion, a task not to be restarted), and
// reaping it would make the orchestrator start the slot afresh.
export function reapSlot(slot: Slot, configuredLimit: number, nodes: ReadonlyMap<string, Node>, plan: Plan): void {
  const limit = configuredLimit < 0 ? configuredLimit : Math.max(1, configuredLimit);
  if ((limit < 0 || slot.tasks.length <= limit) && !slot.tasks.some((t) => t.DesiredState === 'remove')) return;
  const kept: Task[] = [];
  for (const t of slot.tasks) {
    if (isRemovable(t, nodes)) plan.delete(t);
    else kept.push(t);
  }
  if (limit >= 0 && kept.length > limit) {
    // Oldest status first, as SwarmKit sorts (tasksByTimestamp).
    const order = [...kept].sort((a, b) => parseIsoMs(a.Status.Timestamp) - parseIsoMs(b.Status.Timestamp));
    let count = kept.length;
    const gone = new Set<Task>();
    for (const t of order) {
      if (count <= limit) break;
      if (isAlive(t, nodes)) continue;
      plan.delete(t);
      gone.add(t);
      count--;
    }
    if (gone.size) slot.tasks = kept.filter((t) => !gone.has(t));
    else slot.tasks = kept;
  } else {
    slot.tasks = kept;
  }
}
