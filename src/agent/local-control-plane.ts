import type { Task, TaskStatus } from '../model/types';
import { taskStateRank } from '../model/types';
import { ShoalError } from '../common/errors';
import type { Store } from '../store/store';
import type { AgentControlPlane, Assignments, PayloadValue, ServiceAnnotations } from './control-plane';

// How the manager side opens stored values (controlapi secrets/configs `reveal`).
export interface PayloadSource {
  revealSecret(id: string): Buffer | undefined;
  revealConfig(id: string): Buffer | undefined;
  // A task as its node receives it (registry credentials in clear:
  // controlapi/registry-auth.ts revealTaskForNode). Minimal hook until the
  // dispatcher's prepareTask takes its place.
  prepareTask?(task: Task): Task;
}

// Status writes waiting for the next transaction. Each is one compare and
// one put; etcd takes up to 128 operations per transaction.
const STATUS_BATCH = 50;

interface StatusWrite { taskId: string; status: TaskStatus; done(err?: unknown): void }

// The agent's control plane when the agent runs in the manager's process:
// assignments come straight from the store's mirror, status goes to etcd.
export class LocalControlPlane implements AgentControlPlane {
  private nodeId?: string;
  private readonly queued: StatusWrite[] = [];
  private flushing = false;

  constructor(private readonly store: Store, private readonly payloads?: PayloadSource) {}

  watchAssignments(nodeId: string, onChange: (a: Assignments) => void): () => void {
    this.nodeId = nodeId;
    const isMine = (t: Task | undefined): t is Task =>
      !!t && t.NodeID === nodeId && taskStateRank(t.Status.State) >= taskStateRank('assigned');
    const prepare = (t: Task): Task => this.payloads?.prepareTask?.(t) ?? t;
    const tasks = new Map<string, Task>();
    for (const t of this.store.tasksOfNode(nodeId)) if (isMine(t)) tasks.set(t.ID, prepare(t));
    onChange({ tasks: new Map(tasks), changed: new Set(tasks.keys()), removed: new Set() });
    return this.store.subscribe((events) => {
      const changed = new Set<string>();
      const removed = new Set<string>();
      for (const e of events) {
        if (e.kind !== 'tasks') continue;
        const t = e.object as Task | undefined;
        if (isMine(t)) { tasks.set(e.id, prepare(t)); changed.add(e.id); }
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

  // Status reports of many tasks arrive together (a service's tasks start
  // together): the ones that arrive while a write is in flight go to etcd
  // as one transaction, not one each.
  updateTaskStatus(taskId: string, status: TaskStatus): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queued.push({ taskId, status, done: (err) => (err === undefined ? resolve() : reject(err)) });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    try {
      while (this.queued.length) await this.writeBatch(this.takeBatch());
    } finally {
      this.flushing = false;
    }
  }

  // Up to STATUS_BATCH writes, one per task (a transaction names a key once).
  private takeBatch(): StatusWrite[] {
    const batch: StatusWrite[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < this.queued.length && batch.length < STATUS_BATCH;) {
      const w = this.queued[i]!;
      if (seen.has(w.taskId)) { i++; continue; }
      seen.add(w.taskId);
      batch.push(w);
      this.queued.splice(i, 1);
    }
    return batch;
  }

  private async writeBatch(batch: StatusWrite[]): Promise<void> {
    const txn = this.store.txn();
    for (const w of batch) {
      const current = this.store.get('tasks', w.taskId);
      const next = current && withStatus(structuredClone(current), w.status);
      if (current && next) txn.update('tasks', next, current);
    }
    try {
      if (txn.size) await txn.commit();
      for (const w of batch) w.done();
      return;
    } catch (err) {
      if (!(err instanceof ShoalError && err.kind === 'sequence')) { for (const w of batch) w.done(err); return; }
    }
    // One of the tasks changed under us (the orchestrator wrote it): each on its own.
    await Promise.all(batch.map((w) => this.store.mutate('tasks', w.taskId, (t) => withStatus(t, w.status)).then(() => w.done(), (err: unknown) => w.done(err))));
  }
}

// The task with the agent's status, or undefined when there is nothing to
// write (a regression, or the same status again).
function withStatus(t: Task, status: TaskStatus): Task | undefined {
  if (taskStateRank(status.State) < taskStateRank(t.Status.State)) return undefined;
  if (JSON.stringify(t.Status) === JSON.stringify(status)) return undefined;
  t.Status = status;
  t.UpdatedAt = status.Timestamp;
  return t;
}
