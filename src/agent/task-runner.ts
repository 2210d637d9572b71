import type { Labels, Platform, PortConfig, Task, TaskState, TaskStatus } from '../model/types';
import { taskStateRank as rank } from '../model/types';
import type { Logger } from '../common/log';
import { nowIso } from '../common/time';
import { buildContainerConfig, stopGraceSeconds, templateContext, type ContainerConfigInput, type EngineMount } from './executor/container-config';
import { ExecutorError, isTemporary, type ContainerEvent, type ContainerInfo, type Executor } from './executor/executor';
import { buildTaskFiles, needsTaskFiles, type TaskFiles } from './executor/task-files';
import type { PayloadValue } from './control-plane';
import type { RetryOptions } from './status-reporter';

// Docker's texts for a task whose container ended badly (moby
// daemon/cluster/executor/container/{controller,errors}.go).
export const exitErr = (code: number): string => `task: non-zero exit (${code})`;
export const ERR_UNHEALTHY = 'dockerexec: unhealthy container';
export const ERR_DESTROYED = 'dockerexec: container destroyed';
export const ERR_IMAGE_REQUIRED = 'dockerexec: image required';

type ContainerStatus = NonNullable<TaskStatus['ContainerStatus']>;

export interface TaskRunnerDeps {
  nodeId: string;
  executor: Executor;
  report(taskId: string, status: TaskStatus): void;
  service(serviceId: string): { Name: string; Labels?: Labels } | undefined;
  node(): { hostname?: string; platform?: Platform };
  log: Logger;
  retry: RetryOptions;
  // The values of the task's secrets and configs (from the control plane) and
  // the host tmpfs they are written to. Without them a task that references
  // any is rejected.
  payloads?: { secrets(taskId: string): Promise<PayloadValue[]>; configs(taskId: string): Promise<PayloadValue[]> };
  files?: TaskFiles;
  // Makes the task's networks on this node (agent/network/): called before its
  // container is created and started, so the engine never answers "network
  // not found". Without it a task with networks is rejected.
  networks?: TaskNetworks;
}

export interface TaskNetworks { ensure(task: Task): Promise<void> }

// One task's state machine (SwarmKit's exec.Do): each step looks at the
// desired state and the observed state, does at most one piece of container
// work, and reports the next state. Steps of one task run one at a time;
// anything that happens meanwhile (a new desired state, a container event)
// makes the loop run again. Tasks never wait on each other.
export class TaskRunner {
  private task: Task;
  private status: TaskStatus;
  private containerId?: string;
  private exitCode?: number;       // from a `die` event, for when the container is gone before we look
  private unhealthy = false;
  private needsCheck = true;       // look at the container at the next step (start, adoption, events)
  private closed = false;
  private again = false;
  private loop?: Promise<void>;
  private retryTimer?: NodeJS.Timeout;
  private backoff: number;
  private filesReady = false;      // this task's secrets/configs are on their tmpfs
  private createdName?: string;
  private ports?: PortConfig[];    // host-mode ports the engine bound at start    // asked the engine for this container; it may exist though the answer never came

  constructor(task: Task, private readonly deps: TaskRunnerDeps, adopted?: ContainerInfo) {
    this.task = task;
    this.status = structuredClone(task.Status);
    this.containerId = adopted?.id || task.Status.ContainerStatus?.ContainerID || undefined;
    this.backoff = deps.retry.minMs;
  }

  get id(): string { return this.task.ID; }
  get state(): TaskState { return this.status.State; }
  get container(): string | undefined { return this.containerId; }

  start(): void { this.kick(); }

  // A newer version of the task from the managers. Its Status is not taken:
  // what this runner observed is the truth here, and a terminal state written
  // by the managers (rejected, orphaned) must not stop it from shutting the
  // container down (SwarmKit's agent also keeps its own status).
  update(task: Task): void {
    this.task = task;
    this.kick();
  }

  onEvent(e: ContainerEvent): void {
    if (e.type !== 'resync') {
      if (!this.containerId || e.containerId !== this.containerId) return;
      if (e.type === 'die') this.exitCode = e.exitCode;
      if (e.type === 'health_status' && e.status === 'unhealthy') this.unhealthy = true;
    }
    this.needsCheck = true;
    this.kick();
  }

  // Stops working on the task, leaving its container as it is (agent shutdown).
  async close(timeoutMs?: number): Promise<void> {
    this.closed = true;
    if (this.retryTimer) { clearTimeout(this.retryTimer); this.retryTimer = undefined; }
    const idle = this.loop ?? Promise.resolve();
    if (timeoutMs === undefined) { await idle; return; }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([idle, new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); })]);
    clearTimeout(timer);
  }

  // The task no longer exists: its container goes too (task history trimmed).
  async dispose(): Promise<void> {
    await this.close();
    const container = this.containerId ?? this.createdName;
    if (container) await this.deps.executor.remove(container);
    await this.releaseFiles();
  }

  private kick(): void {
    if (this.closed) return;
    if (this.loop) { this.again = true; return; }
    this.loop = this.run().finally(() => { this.loop = undefined; });
  }

  private async run(): Promise<void> {
    do {
      this.again = false;
      try {
        while (!this.closed && (await this.step())) this.backoff = this.deps.retry.minMs;
      } catch (err) {
        if (this.closed) return;
        if (isTemporary(err)) {
          this.deps.log.warn({ task: this.id, state: this.status.State, err: (err as Error).message, retryMs: this.backoff }, 'task step failed; retrying');
          this.scheduleRetry();
          return;
        }
        this.fatal(err as Error);
        this.again = true; // see whether the new state asks for more
      }
    } while (this.again && !this.closed);
  }

  private scheduleRetry(): void {
    if (this.retryTimer) return;
    const delay = this.backoff;
    this.backoff = Math.min(this.deps.retry.maxMs, this.backoff * 2);
    this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.needsCheck = true; this.kick(); }, delay);
  }

  // One transition; true when something changed and the next step may follow.
  private async step(): Promise<boolean> {
    const state = this.status.State;
    const desired = this.task.DesiredState;
    if (rank(desired) >= rank('shutdown')) {
      if (rank(state) >= rank('complete')) return false;
      return this.shutdown();
    }
    if (rank(state) > rank(desired)) return false;
    // These may proceed past the desired state (a task held at `ready` still prepares).
    switch (state) {
      case 'preparing': return this.prepare();
      case 'starting': return this.startContainer();
      case 'running': return this.checkRunning();
      default: break;
    }
    if (rank(state) >= rank(desired)) return false;
    switch (state) {
      case 'new': case 'allocated': case 'pending': case 'assigned':
        return this.transition('accepted', 'accepted');
      case 'accepted':
        return this.transition('preparing', 'preparing');
      case 'ready':
        return this.transition('starting', 'starting');
      default:
        return false; // terminal
    }
  }

  private async prepare(): Promise<boolean> {
    await this.ensureContainer();
    return this.transition('ready', 'prepared');
  }

  // Image present and container created; reuses a container that still exists.
  private async ensureContainer(): Promise<string> {
    const { executor } = this.deps;
    if (this.containerId && (await executor.inspect(this.containerId))) {
      // A container made before an agent restart (or a reboot) needs its files back before it starts.
      if (!this.filesReady && needsTaskFiles(this.task.Spec.ContainerSpec)) await this.prepareFiles(this.configInput());
      return this.containerId;
    }
    const image = this.task.Spec.ContainerSpec?.Image;
    if (!image) throw new ExecutorError(ERR_IMAGE_REQUIRED, false);
    const input = this.configInput();
    const fileMounts = await this.prepareFiles(input);
    let config;
    try {
      config = buildContainerConfig({ ...input, fileMounts });
    } catch (err) {
      throw new ExecutorError((err as Error).message, false);
    }
    await executor.ensureImage(image, this.task.Spec.ContainerSpec?.PullOptions?.RegistryAuth);
    await this.ensureNetworks();
    this.createdName = config.name;
    this.containerId = await executor.create(config);
    this.exitCode = undefined;
    return this.containerId;
  }

  private async ensureNetworks(): Promise<void> {
    if (!this.task.NetworksAttachments?.length) return;
    if (!this.deps.networks) throw new ExecutorError('overlay networks are not available to this node\'s agent', false);
    try {
      await this.deps.networks.ensure(this.task);
    } catch (err) {
      // A node that could not be looked at (engine down) is retried; a network that failed rejects the task.
      throw err instanceof ExecutorError ? err : new ExecutorError((err as Error).message, (err as { temporary?: unknown }).temporary === true);
    }
  }

  private configInput(): ContainerConfigInput {
    const svc = this.deps.service(this.task.ServiceID);
    const node = this.deps.node();
    return {
      task: this.task,
      serviceName: svc?.Name || this.task.ServiceID,
      serviceLabels: svc?.Labels,
      nodeId: this.deps.nodeId,
      nodeHostname: node.hostname,
      nodePlatform: node.platform,
    };
  }

  // Writes the task's secrets and configs onto its tmpfs; the container's bind mounts.
  private async prepareFiles(input: ContainerConfigInput): Promise<EngineMount[]> {
    const spec = this.task.Spec.ContainerSpec;
    if (!spec || !needsTaskFiles(spec)) return [];
    const { payloads, files } = this.deps;
    if (!payloads || !files) throw new ExecutorError('secrets and configs are not available to this node\'s agent', false);
    let secrets: PayloadValue[] = [];
    let configs: PayloadValue[] = [];
    try {
      try {
        [secrets, configs] = await Promise.all([payloads.secrets(this.task.ID), payloads.configs(this.task.ID)]);
      } catch (err) {
        throw err instanceof ExecutorError ? err : new ExecutorError(`getting the task's secrets and configs failed: ${(err as Error).message}`, false);
      }
      const list = buildTaskFiles(spec, secrets, configs, templateContext(input));
      const mounts = await files.prepare(this.task.ID, list);
      this.filesReady = true;
      return mounts;
    } finally {
      for (const v of [...secrets, ...configs]) v.Data.fill(0);
    }
  }

  // The task's tmpfs goes once it is over (moby unmounts secrets when the container stops).
  private async releaseFiles(): Promise<void> {
    if (!this.deps.files || !needsTaskFiles(this.task.Spec.ContainerSpec)) return;
    this.filesReady = false;
    await this.deps.files.release(this.task.ID);
  }

  private async startContainer(): Promise<boolean> {
    const { executor } = this.deps;
    // The container made at `preparing` is started without looking at it
    // first (every extra engine call slows the others down); one that went
    // missing meanwhile, or one from before an agent restart, goes through
    // ensureContainer.
    let id = this.containerId && this.createdName ? this.containerId : await this.ensureContainer();
    await this.ensureNetworks(); // still there (quick when they are)
    try {
      await executor.start(id);
    } catch (err) {
      if (isTemporary(err)) throw err;
      if (!(err instanceof ExecutorError && err.statusCode === 404 && id === this.containerId)) throw new ExecutorError(`starting container failed: ${(err as Error).message}`, false);
      this.containerId = undefined;
      id = await this.ensureContainer();
      await executor.start(id).catch((e: unknown) => { throw isTemporary(e) ? e : new ExecutorError(`starting container failed: ${(e as Error).message}`, false); });
    }
    // This look gives the PID and doubles as the first check of the running
    // task: only if it already exited (or an event came meanwhile) does
    // checkRunning need to look again.
    this.needsCheck = false;
    const info = await executor.inspect(id);
    if (!info?.running) this.needsCheck = true;
    this.ports = info?.ports;
    return this.transition('running', 'started', { ContainerID: id, PID: info?.pid ?? 0, ExitCode: 0 });
  }

  // Running: only look at the container when told something happened.
  private async checkRunning(): Promise<boolean> {
    if (!this.needsCheck) return false;
    this.needsCheck = false;
    const { executor } = this.deps;
    const id = this.containerId;
    const info = id ? await executor.inspect(id) : undefined;
    if (info?.running) {
      if (info.health === 'unhealthy') this.unhealthy = true;
      if (this.unhealthy) {
        // Like moby: an unhealthy container is stopped, and its exit fails the task.
        await executor.stop(info.id, stopGraceSeconds(this.task.Spec.ContainerSpec));
        this.needsCheck = true;
        return true;
      }
      const cs = this.status.ContainerStatus;
      if (cs?.ContainerID !== info.id || cs.PID !== info.pid) {
        this.ports = info.ports;
        return this.transition('running', 'started', { ContainerID: info.id, PID: info.pid, ExitCode: 0 });
      }
      return false;
    }
    const code = info ? info.exitCode : this.exitCode;
    if (code === undefined) {
      return this.transition('failed', this.status.Message, { ContainerID: id ?? '', PID: 0, ExitCode: 0 }, ERR_DESTROYED);
    }
    const cs: ContainerStatus = { ContainerID: id ?? '', PID: 0, ExitCode: code };
    if (this.unhealthy) {
      return this.transition('failed', this.status.Message, cs, code ? `${exitErr(code)}: ${ERR_UNHEALTHY}` : ERR_UNHEALTHY);
    }
    if (code === 0) return this.transition('complete', 'finished', cs);
    return this.transition('failed', this.status.Message, cs, exitErr(code));
  }

  private async shutdown(): Promise<boolean> {
    const { executor } = this.deps;
    let cs = this.status.ContainerStatus;
    const id = this.containerId;
    if (id) {
      await executor.stop(id, stopGraceSeconds(this.task.Spec.ContainerSpec));
      const info = await executor.inspect(id);
      if (info || cs) cs = { ContainerID: id, PID: 0, ExitCode: info?.exitCode ?? this.exitCode ?? cs?.ExitCode ?? 0 };
    }
    return this.transition('shutdown', 'shutdown', cs);
  }

  // SwarmKit's fatal(): before starting the task is rejected, after it failed.
  private fatal(err: Error): void {
    const state: TaskState = rank(this.status.State) < rank('starting') ? 'rejected' : 'failed';
    this.deps.log.warn({ task: this.id, from: this.status.State, to: state, err: err.message }, 'task failed');
    this.transition(state, this.status.Message, undefined, err.message);
  }

  private transition(state: TaskState, message: string, cs?: ContainerStatus, err?: string): boolean {
    const status: TaskStatus = { Timestamp: nowIso(), State: state, Message: message };
    if (err) status.Err = err;
    const containerStatus = cs ?? (rank(state) >= rank('starting') ? this.status.ContainerStatus : undefined);
    if (containerStatus) status.ContainerStatus = { ...containerStatus };
    // Host-mode ports as bound, while the task runs (moby's PortStatus).
    status.PortStatus = state === 'running' && this.ports?.length ? { Ports: this.ports.map((p) => ({ ...p })) } : {};
    this.deps.log.debug({ task: this.id, from: this.status.State, to: state, message, err }, 'task state');
    this.status = status;
    this.deps.report(this.id, status);
    if (rank(state) >= rank('complete')) {
      this.releaseFiles().catch((e: unknown) => this.deps.log.warn({ task: this.id, err: (e as Error).message }, 'removing the task\'s secrets tmpfs failed'));
    }
    return true;
  }
}
