import type { Task, TaskStatus } from '../api/types';
import { taskStateRank } from '../api/types';
import type { Store } from '../store/store';
import type { AgentControlPlane, Assignments, PayloadValue, ServiceAnnotations } from './control-plane';

// How the manager side opens stored values (controlapi secrets/configs `reveal`).
export interface PayloadSource {
  revealSecret(id: string): Buffer | undefined;
  revealConfig(id: string): Buffer | undefined;
}

// The agent's control plane when the agent runs in the manager's process:
// assignments come straight from the store's mirror, status goes to etcd.
export class LocalControlPlane implements AgentControlPlane {
  private nodeId?: string;

  constructor(private readonly store: Store, private readonly payloads?: PayloadSource) {}

  watchAssignments(nodeId: string, onChange: (a: Assignments) => void): () => void {
    this.nodeId = nodeId;
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

  // Only the objects the task references, and only for a task of the watched node.
  async getSecrets(taskId: string): Promise<PayloadValue[]> {
    const task = this.assigned(taskId);
    const ids = new Set((task?.Spec.ContainerSpec?.Secrets ?? []).map((r) => r.SecretID));
    const out: PayloadValue[] = [];
    for (const id of ids) {
      const s = this.store.get('secrets', id);
      const data = s && this.payloads?.revealSecret(id);
      if (s && data) out.push({ ID: s.ID, Name: s.Spec.Name ?? '', Data: data, ...(s.Spec.Templating ? { Templating: s.Spec.Templating } : {}) });
    }
    return out;
  }

  async getConfigs(taskId: string): Promise<PayloadValue[]> {
    const task = this.assigned(taskId);
    const ids = new Set((task?.Spec.ContainerSpec?.Configs ?? []).map((r) => r.ConfigID));
    const out: PayloadValue[] = [];
    for (const id of ids) {
      const c = this.store.get('configs', id);
      const data = c && this.payloads?.revealConfig(id);
      if (c && data) out.push({ ID: c.ID, Name: c.Spec.Name ?? '', Data: data, ...(c.Spec.Templating ? { Templating: c.Spec.Templating } : {}) });
    }
    return out;
  }

  private assigned(taskId: string): Task | undefined {
    const t = this.store.get('tasks', taskId);
    if (!t?.NodeID || (this.nodeId !== undefined && t.NodeID !== this.nodeId)) return undefined;
    return t;
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
