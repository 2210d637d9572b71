import type { NodeDescription, Task, TaskStatus } from '../../../src/model/types';
import { taskStateRank } from '../../../src/model/types';
import type { AgentControlPlane, Assignments, ServiceAnnotations } from '../../../src/agent/control-plane';
import type { ContainerCreate } from '../../../src/agent/executor/container-config';
import { ExecutorError, type ContainerEvent, type ContainerInfo, type Executor } from '../../../src/agent/executor/executor';

// Polls a condition until it holds or the deadline passes (then fails with `what`).
export async function waitFor<T>(what: string, cond: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const NODE_ID = 'node00000000000000000000a1';

export function makeTask(id: string, over: Partial<Task> = {}): Task {
  return {
    ID: id,
    Version: { Index: 1 },
    CreatedAt: '2026-01-01T00:00:00.000000000Z',
    UpdatedAt: '2026-01-01T00:00:00.000000000Z',
    Labels: {},
    Spec: { ContainerSpec: { Image: 'img:1', Args: ['sleep', '60'], StopGracePeriod: 1e9 } },
    ServiceID: 'svc1',
    Slot: 1,
    NodeID: NODE_ID,
    Status: { Timestamp: '2026-01-01T00:00:00.000000000Z', State: 'assigned', Message: 'scheduler assigned task to node' },
    DesiredState: 'running',
    ...over,
  };
}

interface FakeContainer extends ContainerInfo { config?: ContainerCreate }

// An engine in memory. Every call is logged; failures can be queued per verb.
export class FakeExecutor implements Executor {
  readonly containers = new Map<string, FakeContainer>();
  readonly calls: string[] = [];
  inspects = 0;
  readonly images = new Set<string>(['img:1']);
  readonly failures = new Map<string, Error[]>();
  private readonly listeners = new Set<(e: ContainerEvent) => void>();
  private seq = 0;
  exitOnStop = 143;
  startHook?: (c: FakeContainer) => void;
  stopHook?: () => Promise<void>; // awaited by stop (a grace period)
  lists = 0;

  failNext(verb: string, err: Error): void {
    const list = this.failures.get(verb) ?? [];
    list.push(err);
    this.failures.set(verb, list);
  }

  private maybeFail(verb: string): void {
    const err = this.failures.get(verb)?.shift();
    if (err) throw err;
  }

  async describeNode(): Promise<NodeDescription> {
    return { Hostname: 'host-a', Platform: { Architecture: 'x86_64', OS: 'linux' }, Resources: {}, Engine: { EngineVersion: 'fake', Plugins: [] }, TLSInfo: {} };
  }

  readonly pulls: Array<{ image: string; registryAuth?: string }> = [];

  // As DockerExecutor: a refused pull is not an error here; the create fails.
  async ensureImage(image: string, registryAuth?: string): Promise<void> {
    this.maybeFail('pull');
    if (this.images.has(image)) return;
    this.calls.push(`pull ${image}`);
    this.pulls.push({ image, ...(registryAuth ? { registryAuth } : {}) });
  }

  async create(config: ContainerCreate): Promise<string> {
    this.maybeFail('create');
    this.calls.push(`create ${config.name}`);
    const image = String(config.body.Image ?? '');
    if (!this.images.has(image)) throw new ExecutorError(`No such image: ${image}`, false, 404);
    const id = `c${++this.seq}`;
    this.containers.set(id, { id, taskId: config.body.Labels['com.docker.swarm.task.id']!, name: config.name, running: false, pid: 0, exitCode: 0, config });
    return id;
  }

  async start(id: string): Promise<void> {
    this.maybeFail('start');
    this.calls.push(`start ${id}`);
    const c = this.containers.get(id);
    if (!c) throw new ExecutorError(`No such container: ${id}`, false, 404);
    c.running = true;
    c.pid = 1000 + this.seq;
    c.startedAt = new Date().toISOString();
    this.startHook?.(c);
  }

  async stop(id: string, grace: number): Promise<void> {
    this.maybeFail('stop');
    this.calls.push(`stop ${id} ${grace}`);
    await this.stopHook?.();
    const c = this.containers.get(id);
    if (c?.running) this.exit(id, this.exitOnStop);
  }

  async remove(id: string): Promise<void> {
    this.maybeFail('remove');
    this.calls.push(`remove ${id}`);
    const c = this.containers.get(id);
    if (!c) return;
    this.containers.delete(id);
    this.emit({ type: 'destroy', containerId: id, taskId: c.taskId });
  }

  async inspect(id: string): Promise<ContainerInfo | undefined> {
    this.inspects++;
    this.maybeFail('inspect');
    const c = this.containers.get(id);
    if (!c) return undefined;
    const { config: _c, ...info } = c;
    return { ...info };
  }

  async listTaskContainers(): Promise<ContainerInfo[]> {
    this.maybeFail('list');
    this.lists++;
    return [...this.containers.values()].map(({ config: _c, ...info }) => ({ ...info }));
  }

  watchEvents(listener: (e: ContainerEvent) => void): { ready: Promise<void>; close(): void } {
    this.listeners.add(listener);
    return { ready: Promise.resolve(), close: () => { this.listeners.delete(listener); } };
  }

  // ---- what happens to containers behind the agent's back ----
  exit(id: string, code: number, silent = false): void {
    const c = this.containers.get(id)!;
    c.running = false;
    c.pid = 0;
    c.exitCode = code;
    if (!silent) this.emit({ type: 'die', containerId: id, taskId: c.taskId, exitCode: code });
  }

  // docker rm -f: killed (137), then destroyed.
  forceRemove(id: string): void {
    const c = this.containers.get(id)!;
    if (c.running) this.exit(id, 137);
    this.containers.delete(id);
    this.emit({ type: 'destroy', containerId: id, taskId: c.taskId });
  }

  // Adds a container as if an earlier agent had made it.
  addContainer(c: Omit<FakeContainer, 'id'> & { id?: string }): string {
    const id = c.id ?? `c${++this.seq}`;
    this.containers.set(id, { ...c, id });
    return id;
  }

  emit(e: ContainerEvent): void { for (const l of this.listeners) l(e); }

  byTask(taskId: string): FakeContainer[] { return [...this.containers.values()].filter((c) => c.taskId === taskId); }
}

// The managers in memory: status writes are applied as the dispatcher
// does (no regressions) and echoed back as assignment changes.
export class FakeControlPlane implements AgentControlPlane {
  readonly tasks = new Map<string, Task>();
  readonly history = new Map<string, TaskStatus[]>();
  readonly services = new Map<string, ServiceAnnotations>([['svc1', { Name: 'web' }]]);
  private readonly watchers = new Set<(a: Assignments) => void>();
  // Per-task hooks: make a write hang or fail.
  blockUpdates = new Map<string, Promise<void>>();
  failUpdates = new Map<string, number>();

  put(t: Task): void {
    this.tasks.set(t.ID, structuredClone(t));
    this.notify(new Set([t.ID]), new Set());
  }

  setDesired(id: string, desired: Task['DesiredState']): void {
    const t = this.tasks.get(id)!;
    this.put({ ...t, DesiredState: desired, Version: { Index: t.Version.Index + 1 } });
  }

  remove(id: string): void {
    this.tasks.delete(id);
    this.notify(new Set(), new Set([id]));
  }

  state(id: string): string | undefined { return this.tasks.get(id)?.Status.State; }
  status(id: string): TaskStatus | undefined { return this.tasks.get(id)?.Status; }
  states(id: string): string[] { return (this.history.get(id) ?? []).map((s) => s.State); }

  watchAssignments(_nodeId: string, onChange: (a: Assignments) => void): () => void {
    this.watchers.add(onChange);
    onChange({ tasks: new Map(this.tasks), changed: new Set(this.tasks.keys()), removed: new Set() });
    return () => { this.watchers.delete(onChange); };
  }

  serviceAnnotations(serviceId: string): ServiceAnnotations | undefined { return this.services.get(serviceId); }

  async updateTaskStatus(taskId: string, status: TaskStatus): Promise<void> {
    await this.blockUpdates.get(taskId);
    const fails = this.failUpdates.get(taskId) ?? 0;
    if (fails > 0) {
      this.failUpdates.set(taskId, fails - 1);
      throw new Error('rpc error: code = Unknown desc = update out of sequence');
    }
    const t = this.tasks.get(taskId);
    if (!t) return;
    if (taskStateRank(status.State) < taskStateRank(t.Status.State)) return;
    const list = this.history.get(taskId) ?? [];
    list.push(structuredClone(status));
    this.history.set(taskId, list);
    this.tasks.set(taskId, { ...t, Status: structuredClone(status), Version: { Index: t.Version.Index + 1 } });
    this.notify(new Set([taskId]), new Set());
  }

  private notify(changed: Set<string>, removed: Set<string>): void {
    for (const w of this.watchers) w({ tasks: new Map(this.tasks), changed, removed });
  }
}
