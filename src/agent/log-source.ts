import type { EngineClient } from '../engine/client';
import type { Task } from '../model/types';
import { TASK_ID_LABEL } from './executor/container-config';
import { listContainers } from './executor/docker-executor';
import { readContainerLogs, type ContainerLogOptions, type LogLine } from './executor/logs';

export type { LogLine };
export type TaskLogOptions = ContainerLogOptions;

// Where a task's log lines come from. Today: this host's engine, for tasks on
// this node. With several hosts, a source that asks each task's node (its
// agent) takes its place; the logs route does not change.
export interface LogSource {
  // The task's lines in order; ends when its container's log ends (at once
  // without follow) or `signal` aborts. Yields nothing for a task it cannot
  // reach or whose container is gone.
  taskLogs(task: Task, opts: TaskLogOptions, signal: AbortSignal): AsyncIterable<LogLine>;
}

export class LocalLogSource implements LogSource {
  constructor(private readonly engine: EngineClient, private readonly nodeId: string) {}

  async *taskLogs(task: Task, opts: TaskLogOptions, signal: AbortSignal): AsyncIterable<LogLine> {
    if (task.NodeID !== this.nodeId) return;
    const containerId = task.Status.ContainerStatus?.ContainerID || (await this.findContainer(task.ID));
    if (!containerId) return;
    yield* readContainerLogs(this.engine, containerId, opts, signal);
  }

  private async findContainer(taskId: string): Promise<string | undefined> {
    const list = await listContainers(this.engine, { label: [`${TASK_ID_LABEL}=${taskId}`] });
    return list[0]?.Id;
  }
}
