import type { EngineClient } from '../engine/client';
import { listContainers } from './executor/docker-executor';
import { NODE_ID_LABEL, TASK_ID_LABEL } from './executor/container-config';
import { readContainerLogs, type ContainerLogOptions, type LogLine } from './executor/logs';

export type { LogLine };
export type TaskLogOptions = ContainerLogOptions;

// A task whose log is wanted, as a log subscription names it.
export interface TaskLogRef {
  ID: string;
  containerId?: string; // as the task's status reported it; looked up by label otherwise
}

// Where the log publisher reads a task's lines: this node's engine. The one
// seam between the log publisher and the executor, so that the engine client
// behind it can change.
export interface LogSource {
  // The task's lines in order; ends when its container's log ends (at once
  // without follow) or `signal` aborts. Yields nothing for a task whose
  // container is not on this node.
  taskLogs(task: TaskLogRef, opts: TaskLogOptions, signal: AbortSignal): AsyncIterable<LogLine>;
}

export class LocalLogSource implements LogSource {
  constructor(private readonly engine: EngineClient, private readonly nodeId: string) {}

  async *taskLogs(task: TaskLogRef, opts: TaskLogOptions, signal: AbortSignal): AsyncIterable<LogLine> {
    const containerId = task.containerId || (await this.findContainer(task.ID));
    if (!containerId || signal.aborted) return;
    yield* readContainerLogs(this.engine, containerId, opts, signal);
  }

  private async findContainer(taskId: string): Promise<string | undefined> {
    const list = await listContainers(this.engine, { label: [`${TASK_ID_LABEL}=${taskId}`, `${NODE_ID_LABEL}=${this.nodeId}`] });
    return list[0]?.Id;
  }
}
