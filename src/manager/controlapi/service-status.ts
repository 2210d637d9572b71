import type { Service, Task } from '../../model/types';
import { taskStateRank } from '../../model/types';
import type { Store } from '../../store/store';

// ServiceStatus (what `docker service ls` shows as REPLICAS) as dockerd
// computes it, from counts kept up to date by the store's events: walking a
// service's every task on each request cost the leader a third of its time
// with 30,000 tasks, as `service ls` and progress bars poll it.
//
// Counts are kept per service and node, because a task on a node that is
// down does not count and nodes go down and up without their tasks changing.

interface Counts { running: number; desiredRunning: number; completed: number }

const NO_NODE = '';

function countsOf(t: Task): Counts {
  return {
    // A task on its way down (drain, scale-down, update) no longer counts as running.
    running: t.Status.State === 'running' && taskStateRank(t.DesiredState) <= taskStateRank('complete') ? 1 : 0,
    desiredRunning: t.DesiredState === 'running' || (t.DesiredState === 'complete' && taskStateRank(t.Status.State) <= taskStateRank('running')) ? 1 : 0,
    completed: t.Status.State === 'complete' ? 1 : 0,
  };
}

export class ServiceStatusCounts {
  private readonly byService = new Map<string, Map<string, Counts>>();

  // Reads the store's tasks once, then follows its events (a reload after a
  // lost watch arrives as events too). Synchronous: no event is missed.
  constructor(private readonly store: Store) {
    for (const t of store.list('tasks')) this.add(t, 1);
    store.subscribe((events) => {
      for (const e of events) {
        if (e.kind !== 'tasks') continue;
        if (e.previous) this.add(e.previous as Task, -1);
        if (e.object) this.add(e.object as Task, 1);
      }
    });
  }

  status(s: Service): NonNullable<Service['ServiceStatus']> {
    let running = 0;
    let desiredRunning = 0;
    let completed = 0;
    for (const [nodeId, c] of this.byService.get(s.ID) ?? []) {
      if (nodeId !== NO_NODE && this.store.get('nodes', nodeId)?.Status.State === 'down') continue;
      running += c.running;
      desiredRunning += c.desiredRunning;
      completed += c.completed;
    }
    const m = s.Spec.Mode ?? {};
    let desired = desiredRunning;
    if (m.Replicated) desired = m.Replicated.Replicas ?? 0;
    else if (m.ReplicatedJob) desired = Math.min(m.ReplicatedJob.MaxConcurrent ?? 1, Math.max(0, (m.ReplicatedJob.TotalCompletions ?? 1) - completed));
    return { RunningTasks: running, DesiredTasks: desired, CompletedTasks: completed };
  }

  private add(t: Task, sign: 1 | -1): void {
    const d = countsOf(t);
    if (!d.running && !d.desiredRunning && !d.completed) return;
    let nodes = this.byService.get(t.ServiceID);
    if (!nodes) this.byService.set(t.ServiceID, (nodes = new Map()));
    const key = t.NodeID || NO_NODE;
    let c = nodes.get(key);
    if (!c) nodes.set(key, (c = { running: 0, desiredRunning: 0, completed: 0 }));
    c.running += sign * d.running;
    c.desiredRunning += sign * d.desiredRunning;
    c.completed += sign * d.completed;
    if (!c.running && !c.desiredRunning && !c.completed) {
      nodes.delete(key);
      if (!nodes.size) this.byService.delete(t.ServiceID);
    }
  }
}
