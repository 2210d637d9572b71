import type { Platform } from '../model/types';
import type { Logger } from '../common/log';
import type { AgentControlPlane, Assignments } from './control-plane';
import type { ContainerEvent, ContainerInfo, Executor } from './executor/executor';
import type { TaskFiles } from './executor/task-files';
import { Slots, START_CONCURRENCY, StartLimitedExecutor } from './start-limit';
import { DEFAULT_RETRY, StatusReporter, type RetryOptions } from './status-reporter';
import { TaskRunner, type TaskNetworks } from './task-runner';

export interface AgentOptions {
  nodeId: string;
  controlPlane: AgentControlPlane;
  executor: Executor;
  log: Logger;
  hostname?: string;     // the node's hostname when it is not the engine's (lab hosts), for {{.Node.Hostname}}
  retry?: RetryOptions;  // back-off for engine and report retries (tests shorten it)
  taskFiles?: TaskFiles; // where tasks' secrets and configs go on the host (a tmpfs per task)
  startConcurrency?: number; // container creates and starts in flight at once (START_CONCURRENCY)
  networks?: TaskNetworks; // makes a task's networks on this node before its container (agent/network/)
  sweepMs?: number;      // how often leftover task containers are looked for (SWEEP_MS; 0: never)
}

// How often the agent lists its task containers for any whose task it no
// longer has: a removal the engine failed or timed out on, or a create that
// finished after its task was gone, would otherwise stay until the agent's
// next start. One engine call per node and period.
export const SWEEP_MS = 30_000;

export interface RunningAgent {
  // Resolves once the agent has adopted the containers it found and follows its assignments.
  ready: Promise<void>;
  // Stops the agent; the containers keep running, a restarted agent adopts them.
  stop(): Promise<void>;
}

// The node's worker: follows the tasks assigned to this node, runs one
// TaskRunner per task, routes engine events to them, and removes the
// containers of tasks that no longer exist (at once, and by a sweep every
// SWEEP_MS for any a removal missed).
//
// Start-up order matters: the engine event stream is connected first, then the
// existing task containers are listed, then assignments are followed, so that
// no container exit falls between what was listed and what is heard.
export function startAgent(opts: AgentOptions): RunningAgent {
  const { nodeId, controlPlane, log } = opts;
  const executor = new StartLimitedExecutor(opts.executor, new Slots(opts.startConcurrency ?? START_CONCURRENCY));
  const retry = opts.retry ?? DEFAULT_RETRY;
  const reporter = new StatusReporter(controlPlane, log, retry);
  const runners = new Map<string, TaskRunner>();
  const disposing = new Set<Promise<void>>();
  const leaving = new Set<string>(); // tasks whose runner is disposing (it waits out a stop's grace first)
  let node: { hostname?: string; platform?: Platform } = {};
  let stopped = false;
  let unwatch: (() => void) | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let wakeRetry: (() => void) | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;

  const onEvent = (e: ContainerEvent): void => {
    if (e.type === 'resync') { for (const r of runners.values()) r.onEvent(e); return; }
    runners.get(e.taskId)?.onEvent(e);
  };
  const events = executor.watchEvents(onEvent);

  const removeContainer = (c: { id: string; taskId: string }, why: string, releaseFiles = true): void => {
    log.info({ container: c.id, task: c.taskId }, why);
    track(executor.remove(c.id)
      .then(() => (releaseFiles && c.taskId ? opts.taskFiles?.release(c.taskId) : undefined))
      .catch((err: unknown) => log.warn({ err: (err as Error).message, container: c.id }, 'removing container failed')));
  };
  const track = (p: Promise<void>): void => {
    disposing.add(p);
    void p.finally(() => disposing.delete(p));
  };

  const newRunner = (taskId: string, a: Assignments, adopted?: ContainerInfo): void => {
    const task = a.tasks.get(taskId);
    if (!task) return;
    const r = new TaskRunner(task, {
      nodeId,
      executor,
      report: (id, status) => reporter.report(id, status),
      service: (id) => controlPlane.serviceAnnotations?.(id),
      node: () => node,
      log,
      retry,
      files: opts.taskFiles,
      networks: opts.networks,
      payloads: controlPlane.getSecrets && controlPlane.getConfigs
        ? { secrets: (id) => controlPlane.getSecrets!(id), configs: (id) => controlPlane.getConfigs!(id) }
        : undefined,
    }, adopted);
    runners.set(taskId, r);
    r.start();
  };

  // Leftovers: every assigned task has a runner (from the first assignments
  // on, when the sweeps start), and `runners` is read once the list is in, so
  // a task assigned meanwhile keeps the container its runner just made.
  const sweep = async (): Promise<void> => {
    const found = await executor.listTaskContainers(nodeId);
    if (stopped) return;
    for (const c of found) {
      if (!runners.has(c.taskId) && !leaving.has(c.taskId)) removeContainer(c, 'removing container of a task that no longer exists');
    }
  };
  const scheduleSweep = (): void => {
    const every = opts.sweepMs ?? SWEEP_MS;
    if (stopped || every <= 0) return;
    sweepTimer = setTimeout(() => {
      void sweep()
        .catch((err: unknown) => log.warn({ err: (err as Error).message }, 'looking for leftover task containers failed'))
        .finally(scheduleSweep);
    }, every);
    sweepTimer.unref();
  };

  const follow = (found: ContainerInfo[]): void => {
    let first = true;
    unwatch = controlPlane.watchAssignments(nodeId, (a) => {
      if (stopped) return;
      if (first) {
        first = false;
        // Adoption: a container whose task still exists is picked up as it is
        // (running containers are not restarted); the others are leftovers.
        const byTask = new Map<string, ContainerInfo>();
        for (const c of found) {
          const task = a.tasks.get(c.taskId);
          if (!task) { removeContainer(c, 'removing container of a task that no longer exists'); continue; }
          const prev = byTask.get(c.taskId);
          const recorded = task.Status.ContainerStatus?.ContainerID;
          if (!prev || c.id === recorded) {
            if (prev) removeContainer(prev, 'removing duplicate task container', false);
            byTask.set(c.taskId, c);
          } else {
            removeContainer(c, 'removing duplicate task container', false);
          }
        }
        // Secrets tmpfs of tasks that are gone (a crash between removal and cleanup).
        if (opts.taskFiles) track(opts.taskFiles.sweep(new Set(a.tasks.keys())).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'sweeping secrets tmpfs failed')));
        for (const id of a.tasks.keys()) newRunner(id, a, byTask.get(id));
        if (byTask.size) log.info({ adopted: byTask.size }, 'adopted task containers');
        scheduleSweep();
        return;
      }
      for (const id of a.removed) {
        const r = runners.get(id);
        runners.delete(id);
        reporter.forget(id);
        if (r) {
          leaving.add(id);
          track(r.dispose()
            .catch((err: unknown) => log.warn({ err: (err as Error).message, task: id }, 'removing task container failed'))
            .finally(() => leaving.delete(id)));
        }
      }
      for (const id of a.changed) {
        const task = a.tasks.get(id);
        if (!task) continue;
        const r = runners.get(id);
        if (r) r.update(task);
        else newRunner(id, a);
      }
    });
  };

  // Engine first (events, node facts, existing containers); retried until it answers.
  const init = async (): Promise<void> => {
    let backoff = retry.minMs;
    for (;;) {
      if (stopped) return;
      try {
        await events.ready;
        const desc = await executor.describeNode();
        node = { hostname: opts.hostname ?? desc.Hostname, platform: desc.Platform };
        const found = await executor.listTaskContainers(nodeId);
        if (stopped) return;
        follow(found);
        log.info({ nodeId, tasks: runners.size }, 'agent started');
        return;
      } catch (err) {
        log.warn({ err: (err as Error).message, retryMs: backoff }, 'engine not ready for the agent; retrying');
        await new Promise<void>((resolve) => {
          retryTimer = setTimeout(resolve, backoff);
          wakeRetry = resolve;
        });
        backoff = Math.min(retry.maxMs, backoff * 2);
      }
    }
  };
  const ready = init();

  return {
    ready,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      if (retryTimer) clearTimeout(retryTimer);
      if (sweepTimer) clearTimeout(sweepTimer);
      wakeRetry?.();
      unwatch?.();
      events.close();
      // Steps in flight (a pull, a stop with its grace period) are not waited
      // for long: the containers stay, and the next agent adopts them.
      await Promise.all([...runners.values()].map((r) => r.close(2000)));
      await Promise.race([Promise.all([...disposing]), delay(5000)]);
      await reporter.close();
      runners.clear();
    },
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
