import type { Task, TaskStatus } from '../api/types';
import { taskStateRank } from '../api/types';
import type { Store } from '../store/store';
import type { AgentControlPlane, Assignments, ServiceAnnotations } from './control-plane';

// The agent's control plane when the agent runs in the manager's process:
// assignments come straight from the store's mirror, status goes to etcd.
export class LocalControlPlane implements AgentControlPlane {
  constructor(private readonly store: Store) {}

  watchAssignments(nodeId: string, onChange: (a: Assignments) => void): () => void {
    const isMine = (t: Task | undefined): t is Task =>
      !!t && t.NodeID === nodeId && taskStateRank(t.Status.State) >= taskStateRank('assigned');
    const tasks = new Map<string, Task>();
    for (const t of this.store.tasksOfNode(nodeId)) if (isMine(t)) tasks.set(t.ID, t);
    onChange({ tasks: new Map(tasks), changed: new Set(tasks.keys()), removed: new Set() });
    return this.store.subscribe((events) => {
      const changed = new Set<string>();
      const removed = new Set<string>();
      for (const e of events) {
        if (e.kind !== 'tasks') continue;
        const t = e.object as Task | undefined;
        if (isMine(t)) { tasks.set(e.id, t); changed.add(e.id); }
        else if (tasks.delete(e.id)) removed.add(e.id);
      }
      if (changed.size || removed.size) onChange({ tasks: new Map(tasks), changed, removed });
    });
  }

  serviceAnnotations(serviceId: string): ServiceAnnotations | undefined {
    const s = this.store.get('services', serviceId);
    return s ? { Name: s.Spec.Name ?? '', Labels: s.Spec.Labels } : undefined;
  }

  async updateTaskStatus(taskId: string, status: TaskStatus): Promise<void> {
    await this.store.mutate('tasks', taskId, (t) => {
      if (taskStateRank(status.State) < taskStateRank(t.Status.State)) return undefined;
      if (JSON.stringify(t.Status) === JSON.stringify(status)) return undefined;
      t.Status = status;
      t.UpdatedAt = status.Timestamp;
      return t;
    });
  }
}
